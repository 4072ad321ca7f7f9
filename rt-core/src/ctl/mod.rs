//! The control tool: `openplc-rt <command>` drives a running rt-core through the shared
//! memory, as the companion does. Mutating commands take the client lease (refused while the
//! companion holds it); reads work alongside the companion as an observer.
//!
//! Everything goes to stdout through [`out!`], which returns write errors instead of
//! panicking, so a closed pipe (`openplc-rt stats | head -1`) ends the tool quietly.
//!
//! - [`report`]: status, statistics and the histogram (text or JSON).
//! - [`points`]: inputs, image writes and reads.
//! - [`vars`]: debug variables: watch, force, write once, release.

pub mod points;
pub mod report;
pub mod tasks;
pub mod vars;

use rt_core::program::LoadedProgram;
use rt_core::runtime::RunError;
use shared_abi::client::{ClientError, Observer, Reader, RtClient};
use shared_abi::msg::{Command, CommandStatus};
use std::time::Duration;

/// Writes a line to stdout, returning `CtlError::Output` when it cannot (a closed pipe).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*).map_err($crate::ctl::CtlError::Output)
    }};
}
pub(crate) use out;

/// Why a control-tool command failed.
#[derive(Debug)]
pub enum CtlError {
    Client(ClientError),
    /// rt-core answered with another status than the command needs.
    Refused {
        what: &'static str,
        status: CommandStatus,
    },
    /// The command line names something that does not exist or does not fit.
    Usage(String),
    /// A library that `check` refused.
    Load(rt_core::program::LoadError),
    /// `run` failed.
    Run(RunError),
    /// Writing to stdout failed (a closed pipe ends the tool quietly).
    Output(std::io::Error),
}

impl std::fmt::Display for CtlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CtlError::Client(e) => write!(f, "{e}"),
            CtlError::Refused { what, status } => write!(f, "{what}: {}", status.as_str()),
            CtlError::Usage(m) => f.write_str(m),
            CtlError::Load(e) => write!(f, "{e}"),
            CtlError::Run(e) => write!(f, "{e}"),
            CtlError::Output(e) => write!(f, "writing the output: {e}"),
        }
    }
}

impl From<ClientError> for CtlError {
    fn from(e: ClientError) -> Self {
        CtlError::Client(e)
    }
}

impl From<RunError> for CtlError {
    fn from(e: RunError) -> Self {
        CtlError::Run(e)
    }
}

pub type CtlResult = Result<(), CtlError>;

pub(crate) const TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) fn client(shm: &str) -> Result<RtClient, CtlError> {
    Ok(RtClient::open(shm)?)
}

/// Prefers the lease (so a lone control tool sees its own inputs), falls back to observing.
pub(crate) fn reader(shm: &str) -> Result<Box<dyn Reader>, CtlError> {
    match RtClient::open(shm) {
        Ok(c) => Ok(Box::new(c)),
        Err(ClientError::Shm(shared_abi::shm::ShmError::ClientAttached { .. })) => Ok(Box::new(Observer::open(shm)?)),
        Err(e) => Err(e.into()),
    }
}

pub(crate) fn expect_ok(status: CommandStatus, what: &'static str) -> CtlResult {
    match status {
        CommandStatus::Ok => Ok(()),
        status => Err(CtlError::Refused { what, status }),
    }
}

pub fn simple(shm: &str, command: Command, what: &'static str) -> CtlResult {
    let mut c = client(shm)?;
    let status = c.command(command, TIMEOUT)?;
    expect_ok(status, what)?;
    out!("{what}: ok")
}

pub fn load(shm: &str, path: &str, start: bool, timeout_ms: u64) -> CtlResult {
    let mut c = client(shm)?;
    let absolute = std::fs::canonicalize(path).map_err(|e| CtlError::Usage(format!("{path}: {e}")))?;
    let result = c.load(&absolute.to_string_lossy(), start, Duration::from_millis(timeout_ms))?;
    out!("{}", result.message_str())?;
    out!("program generation {}, state {}", result.program_gen, c.status().state.as_str())
}

pub use shared_abi::program::CHECK_OK;

pub fn check(path: &str) -> CtlResult {
    // On this (the main) thread, not a thread with the loader's stack: a fault in the
    // program's constructors is recovered by jumping out of dlopen, which leaves the dynamic
    // linker's lock held by the faulting thread. Held by the main thread, exit can still take
    // it again (it is recursive); held by a finished helper thread, exit waits forever.
    let checked = LoadedProgram::check(std::path::Path::new(path)).map_err(CtlError::Load)?;
    out!(
        "{path}: {CHECK_OK} {}, generator {}, {} debug variables, scan period {} µs",
        shared_abi::program::PROGRAM_ABI_VERSION,
        checked.generator.as_deref().unwrap_or("unknown"),
        checked.info.var_count,
        checked.info.period_ns / 1000
    )
}
