//! The error of the shared bench code.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// A tool we ran exited with a failure.
    #[error("{command} failed: {detail}")]
    Failed { command: String, detail: String },
    #[error("building {bundle}: {source}\n{log}")]
    Build {
        bundle: String,
        log: String,
        #[source]
        source: openplc_builder::BuildError,
    },
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout { what: String, after: Duration },
    #[error("{what}: {detail}")]
    Unexpected { what: &'static str, detail: String },
    /// Ctrl-C or SIGTERM: everything started is being stopped.
    #[error("interrupted")]
    Interrupted,
}

impl Error {
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let what = what.into();
        move |source| Error::Io { what, source }
    }
}
