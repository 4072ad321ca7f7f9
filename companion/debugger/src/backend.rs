//! What the debugger needs from the PLC, as a small trait the companion implements over its
//! own bridge to rt-core (it owns the single `RtClient`), and [`RtClientBackend`], an
//! implementation straight over an `RtClient`, for tests and as a reference.
//!
//! Who calls what, from where:
//! - [`Backend::heartbeat`]: on the Socket.IO receive path, once per command, to stamp its
//!   arrival. Must be an atomic load or as cheap: never a lock that a slow call may hold.
//! - [`Backend::program_info`], [`Backend::rt_alive`]: from async tasks; must not wait on
//!   rt-core (a seqlock read, a flock probe).
//! - [`Backend::set_watch`], [`Backend::debug_values`]: only from the debugger's own sampler
//!   thread; may briefly wait for a lock.
//! - [`Backend::force`], [`Backend::unforce`]: from `spawn_blocking`; they wait for rt-core's
//!   answer (about one scan).
//! - [`Backend::log`]: anywhere; must not block for long.

use shared_abi::client::{ClientError, Reader, RtClient};
use shared_abi::debug::{DebugValues, ProgramInfo};
use shared_abi::msg::{Command, CommandStatus, LogLevel};
use std::sync::Mutex;
use std::time::Duration;

/// A failure to talk to rt-core (as opposed to an answer it gave).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendError(pub String);

impl std::fmt::Display for BackendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BackendError {}

impl From<ClientError> for BackendError {
    fn from(e: ClientError) -> Self {
        BackendError(e.to_string())
    }
}

pub trait Backend: Send + Sync + 'static {
    /// rt-core's loop counter (the shared-memory header's heartbeat).
    fn heartbeat(&self) -> u64;
    /// Whether an rt-core process holds the shared memory.
    fn rt_alive(&self) -> bool;
    /// The program currently swapped in (`program_gen == 0`: none).
    fn program_info(&self) -> Result<ProgramInfo, BackendError>;
    /// Replaces the watch list; returns its generation.
    fn set_watch(&self, vars: &[u32]) -> Result<u32, BackendError>;
    /// Copies the latest watched values into `out`.
    fn debug_values(&self, out: &mut DebugValues) -> Result<(), BackendError>;
    /// Forces debug variable `var`. `big_endian`: numeric values arrive big-endian and
    /// rt-core converts them (it knows each variable's size and kind).
    fn force(&self, var: u32, value: &[u8], big_endian: bool) -> Result<CommandStatus, BackendError>;
    /// Releases a forced variable.
    fn unforce(&self, var: u32) -> Result<CommandStatus, BackendError>;
    /// A line for the runtime log (the one `/api/runtime-logs` serves).
    fn log(&self, level: LogLevel, message: &str);
}

type LogSink = Box<dyn Fn(LogLevel, &str) + Send + Sync>;

/// [`Backend`] over an `RtClient` (commands, watch list) plus an `Observer` of the same
/// shared memory for reads, so reads never wait behind a command that waits for rt-core.
pub struct RtClientBackend {
    client: Mutex<RtClient>,
    observer: shared_abi::client::Observer,
    command_timeout: Duration,
    log: LogSink,
}

impl RtClientBackend {
    /// Takes the client lease of shared memory `shm`.
    pub fn open(shm: &str) -> Result<Self, BackendError> {
        let client = RtClient::open(shm)?;
        let observer = shared_abi::client::Observer::open(shm)?;
        Ok(RtClientBackend {
            client: Mutex::new(client),
            observer,
            command_timeout: Duration::from_secs(2),
            log: Box::new(|level, message| match level {
                LogLevel::Error => tracing::error!(target: "runtime", "{message}"),
                LogLevel::Warning => tracing::warn!(target: "runtime", "{message}"),
                LogLevel::Info => tracing::info!(target: "runtime", "{message}"),
                LogLevel::Debug => tracing::debug!(target: "runtime", "{message}"),
            }),
        })
    }

    /// Sends runtime-log lines to `sink` instead of `tracing`.
    pub fn with_log_sink(mut self, sink: impl Fn(LogLevel, &str) + Send + Sync + 'static) -> Self {
        self.log = Box::new(sink);
        self
    }

    /// Runs `f` with the client (for setting up tests: loading a program, inputs).
    pub fn with_client<R>(&self, f: impl FnOnce(&mut RtClient) -> R) -> R {
        let mut c = self.client.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut c)
    }

    fn command(&self, command: Command) -> Result<CommandStatus, BackendError> {
        let mut c = self.client.lock().unwrap_or_else(|p| p.into_inner());
        Ok(c.command(command, self.command_timeout)?)
    }
}

impl Backend for RtClientBackend {
    fn heartbeat(&self) -> u64 {
        self.observer.shm().header.heartbeat.load(std::sync::atomic::Ordering::Acquire)
    }

    fn rt_alive(&self) -> bool {
        self.observer.rt_alive()
    }

    fn program_info(&self) -> Result<ProgramInfo, BackendError> {
        Ok(self.observer.program_info()?)
    }

    fn set_watch(&self, vars: &[u32]) -> Result<u32, BackendError> {
        let mut c = self.client.lock().unwrap_or_else(|p| p.into_inner());
        Ok(c.set_watch(vars))
    }

    fn debug_values(&self, out: &mut DebugValues) -> Result<(), BackendError> {
        self.observer
            .shm()
            .debug
            .read(out, 100_000)
            .map(|_| ())
            .map_err(|_| BackendError("could not read a consistent copy of the debug values".into()))
    }

    fn force(&self, var: u32, value: &[u8], big_endian: bool) -> Result<CommandStatus, BackendError> {
        let value = heapless::Vec::from_slice(value)
            .map_err(|_| BackendError(format!("forced value of {} bytes is too long", value.len())))?;
        self.command(Command::Force { var, value, big_endian })
    }

    fn unforce(&self, var: u32) -> Result<CommandStatus, BackendError> {
        self.command(Command::Unforce { var })
    }

    fn log(&self, level: LogLevel, message: &str) {
        (self.log)(level, message)
    }
}
