//! Where the port's runtime-log lines go: the companion installs its log hub, tools and
//! tests their own.

use shared_abi::msg::LogLevel;
use std::fmt;
use std::sync::Arc;

/// A cheap-to-clone handle on a `Fn(LogLevel, &str)`. It may be called from any thread,
/// including the port's helper threads, and must not block for long.
#[derive(Clone)]
pub struct LogSink(Arc<LogFn>);

type LogFn = dyn Fn(LogLevel, &str) + Send + Sync;

impl LogSink {
    pub fn new(f: impl Fn(LogLevel, &str) + Send + Sync + 'static) -> LogSink {
        LogSink(Arc::new(f))
    }

    /// Drops every line.
    pub fn discard() -> LogSink {
        LogSink::new(|_, _| {})
    }

    pub fn log(&self, level: LogLevel, text: &str) {
        (self.0)(level, text)
    }
}

impl fmt::Debug for LogSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LogSink")
    }
}
