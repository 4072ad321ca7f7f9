//! Why a bundle could not be built, in one line each, and which write failures are the
//! storage's fault rather than the bundle's.

use crate::detect::Generation;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// Why a bundle could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    #[error("cannot read the bundle directory {}: {source}", path.display())]
    BundleUnreadable { path: PathBuf, source: io::Error },
    #[error("not an OpenPLC Editor program bundle: {detail}")]
    NotABundle { detail: String },
    #[error(
        "incomplete {generation} bundle ({}): {} missing",
        generation.editor_versions(),
        missing_list(missing)
    )]
    IncompleteBundle { generation: Generation, missing: Vec<String> },
    #[error("cannot build this {generation} bundle ({}): {detail}", generation.editor_versions())]
    Unbuildable { generation: Generation, detail: String },
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
    /// A write failed because the device is full (or its quota is, or it failed): the
    /// bundle is not at fault, and nothing the build wrote is left behind.
    #[error("{}: {what}", storage_problem(source).unwrap_or("the storage failed"))]
    Storage { what: String, source: io::Error },
    #[error("cannot run the compiler `{program}`: {source}")]
    CompilerUnavailable { program: String, source: io::Error },
    #[error("{}", compiler_failure(step, *exit_code, *signal, first_error.as_deref()))]
    CompilerFailed { step: String, exit_code: Option<i32>, signal: Option<i32>, first_error: Option<String> },
    #[error("the build took longer than {} s and was stopped while {step}", limit.as_secs_f64())]
    TimedOut { step: String, limit: Duration },
    /// The compiler sandbox (bubblewrap) is required but cannot run here.
    #[error(
        "the compiler sandbox cannot run ({detail}); install bubblewrap (apt-get install bubblewrap) and allow \
         unprivileged user namespaces, or turn the sandbox off with build_sandbox = false (not on a production \
         device: the compiler could then read every file the runtime can)"
    )]
    SandboxUnavailable { detail: String },
    /// The built library failed `openplc-rt check` (opened in a throwaway, sandboxed process).
    #[error("the program does not load: {reason}")]
    LoadCheckFailed { reason: String },
}

impl BuildError {
    /// The compiler's exit code, where a compiler failed with one.
    pub fn exit_code(&self) -> Option<i32> {
        match self {
            BuildError::CompilerFailed { exit_code, .. } => *exit_code,
            _ => None,
        }
    }

    /// Whether the build failed because the storage could not take what it wrote.
    pub fn is_storage(&self) -> bool {
        matches!(self, BuildError::Storage { .. })
    }

    /// An I/O failure while `what`: a [`BuildError::Storage`] when the storage is at fault.
    pub(crate) fn io(what: impl Into<String>, source: io::Error) -> BuildError {
        let what = what.into();
        if storage_problem(&source).is_some() {
            BuildError::Storage { what, source }
        } else {
            BuildError::Io { what, source }
        }
    }
}

/// What a write failure says about the storage, when it is the storage's fault: a full
/// device (`ENOSPC`), an exhausted quota (`EDQUOT`), a device error (`EIO`), a read-only
/// file system (`EROFS`). `None` for every other error.
pub fn storage_problem(err: &io::Error) -> Option<&'static str> {
    match err.raw_os_error()? {
        libc::ENOSPC => Some("no space left on the device"),
        libc::EDQUOT => Some("no space left on the device (disk quota exceeded)"),
        libc::EIO => Some("the storage device failed (input/output error)"),
        libc::EROFS => Some("the storage is read-only"),
        _ => None,
    }
}

/// The compiler's words for a full device, as GNU tools print them (`strerror(ENOSPC)`).
pub(crate) fn says_no_space(line: &str) -> bool {
    line.contains("No space left on device") || line.contains("Disk quota exceeded")
}

fn missing_list(missing: &[String]) -> String {
    match missing {
        [one] => format!("{one} is"),
        many => format!("{} are", many.join(", ")),
    }
}

fn compiler_failure(step: &str, exit_code: Option<i32>, signal: Option<i32>, first_error: Option<&str>) -> String {
    let how = match (exit_code, signal) {
        (Some(code), _) => format!("failed with exit code {code}"),
        (None, Some(9)) => "was killed (signal 9; the compiler may have exceeded its CPU or memory limit)".into(),
        (None, Some(sig)) => format!("was killed by signal {sig}"),
        (None, None) => "failed".into(),
    };
    match first_error {
        Some(line) => format!("{step} {how}: {line}"),
        None => format!("{step} {how}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_are_one_line_and_name_the_problem() {
        let err = BuildError::IncompleteBundle { generation: Generation::Matiec, missing: vec!["glueVars.c".into()] };
        assert_eq!(
            err.to_string(),
            "incomplete MatIEC bundle (OpenPLC Editor 4.1.4 and earlier): glueVars.c is missing"
        );
        let err = BuildError::CompilerFailed {
            step: "compiling Res0.c".into(),
            exit_code: Some(1),
            signal: None,
            first_error: Some("POUS.c:3:5: error: expected ';'".into()),
        };
        assert_eq!(err.to_string(), "compiling Res0.c failed with exit code 1: POUS.c:3:5: error: expected ';'");
        assert_eq!(err.exit_code(), Some(1));
        let err = BuildError::Unbuildable {
            generation: Generation::Strucpp,
            detail: "generated.hpp declares no CONFIGURATION (no Configuration_<NAME> class)".into(),
        };
        assert_eq!(
            err.to_string(),
            "cannot build this STruC++ bundle (OpenPLC Editor 4.2 and later): generated.hpp declares no \
             CONFIGURATION (no Configuration_<NAME> class)"
        );
    }

    #[test]
    fn storage_failures_are_told_apart_from_other_io_errors() {
        let full = BuildError::io("writing program.so", io::Error::from_raw_os_error(libc::ENOSPC));
        assert!(full.is_storage());
        assert_eq!(full.to_string(), "no space left on the device: writing program.so");
        let quota = BuildError::io("copying the bundle", io::Error::from_raw_os_error(libc::EDQUOT));
        assert!(quota.to_string().starts_with("no space left on the device (disk quota exceeded): "));
        let eio = BuildError::io("copying the bundle", io::Error::from_raw_os_error(libc::EIO));
        assert!(eio.is_storage() && eio.to_string().contains("input/output error"));
        let denied = BuildError::io("copying the bundle", io::Error::from_raw_os_error(libc::EACCES));
        assert!(!denied.is_storage());
        assert!(says_no_space("cc1: error: Res0.o: No space left on device"));
        assert!(!says_no_space("POUS.c:3: error: expected ';'"));
    }
}
