//! What can go wrong between a consumer and rt-core, as one typed error.

use shared_abi::image::IecAddress;
use shared_abi::msg::CommandStatus;
use shared_abi::shm::ShmError;
use std::fmt;
use std::time::Duration;

/// Which rt-core process a request went to: its pid and the monotonic time its scan loop
/// started. A successor that takes over the shared memory has another one, and it never
/// answers what its predecessor had taken (a load under way, say).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Incarnation {
    pub pid: u32,
    pub boot_ns: u64,
}

#[derive(Debug)]
pub enum PortError {
    /// No rt-core is attached to this port (not yet, or the supervisor is replacing it).
    NotAttached,
    /// rt-core is not running: it exited before or while the call waited.
    RtGone,
    /// Another rt-core took over the shared memory while the call waited: the one that was
    /// asked will never answer, and what became of the request is unknown.
    RtReplaced { asked: Incarnation, now: Incarnation },
    /// No answer in time.
    Timeout { what: &'static str, after: Duration },
    /// rt-core's command queue is full (is its scan loop stalled?). Nothing was queued.
    CommandQueueFull,
    /// No room for the whole batch in the write queue right now; it fits once rt-core has
    /// drained some. Nothing was queued.
    WriteQueueFull,
    /// More writes in one batch than the write queue can ever hold. Nothing was queued.
    TooManyWrites { count: usize, capacity: usize },
    /// An input in a write batch: inputs change through `update_inputs`. Nothing was queued.
    InputNotWritable(IecAddress),
    /// A value too wide for its address in a write batch. Nothing was queued.
    ValueTooLarge { addr: IecAddress, value: u64 },
    /// An address past the running program's image tables in a write batch. Nothing was
    /// queued.
    OutsideImage(IecAddress),
    /// A command that does not fit its message (a program path or a forced value too long).
    TooLarge { what: &'static str },
    /// rt-core answered with another status than the call needs.
    Refused(CommandStatus),
    /// rt-core could not load the program; the previous one keeps running.
    LoadFailed(String),
    /// A snapshot could not be read consistently (its writer died mid-write).
    Torn(&'static str),
    /// The shared memory could not be opened (`PlcPort::open`).
    Open(ShmError),
}

impl fmt::Display for PortError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortError::NotAttached => f.write_str("openplc-rt is not attached"),
            PortError::RtGone => f.write_str("openplc-rt is not running"),
            PortError::RtReplaced { asked, now } => write!(
                f,
                "openplc-rt (pid {}) was replaced by pid {} while waiting; the request's outcome is unknown",
                asked.pid, now.pid
            ),
            PortError::Timeout { what, after } => write!(f, "no answer from openplc-rt to {what} within {after:?}"),
            PortError::CommandQueueFull => {
                f.write_str("openplc-rt's command queue is full (is its scan loop stalled?)")
            }
            PortError::WriteQueueFull => f.write_str("openplc-rt's write queue is full"),
            PortError::TooManyWrites { count, capacity } => {
                write!(f, "{count} writes in one batch; the write queue holds {capacity}")
            }
            PortError::InputNotWritable(a) => write!(f, "{a} is an input: inputs are not written through the queue"),
            PortError::ValueTooLarge { addr, value } => write!(f, "{value} does not fit {addr}"),
            PortError::OutsideImage(a) => write!(f, "{a} is past the running program's image tables"),
            PortError::TooLarge { what } => write!(f, "{what} too long for an rt-core command"),
            PortError::Refused(s) => write!(f, "openplc-rt refused: {}", s.as_str()),
            PortError::LoadFailed(m) => write!(f, "program load failed: {m}"),
            PortError::Torn(what) => write!(f, "could not read a consistent {what}"),
            PortError::Open(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for PortError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PortError::Open(e) => Some(e),
            _ => None,
        }
    }
}

impl PortError {
    /// Whether rt-core is (or just became) unreachable, as opposed to a refusal or a bad
    /// request: a caller may wait for the supervisor to bring one back.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, PortError::NotAttached | PortError::RtGone | PortError::RtReplaced { .. } | PortError::Open(_))
    }
}
