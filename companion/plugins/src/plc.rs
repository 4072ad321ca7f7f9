//! What the plugin host needs from the PLC. The companion implements [`PluginPlc`] over its
//! PLC bridge (which owns the single `RtClient`); [`crate::rt_bridge::RtClientBridge`] is a
//! plain implementation over a `Mutex<RtClient>`, used by the tests.
//!
//! Every method is called from ordinary threads: a plugin's own thread, the host's cycle
//! thread, or the caller of [`crate::PluginHost`]'s methods. None is called on a tokio
//! worker by the host itself; methods that wait (`wait_for_scan_after`, `debug_read`) may
//! block for up to their timeout.

use shared_abi::debug::ProgramInfo;
use shared_abi::image::{IecAddress, InputImage};
use shared_abi::layout::{OutputSnapshot, PlcState};
use shared_abi::msg::LogLevel;
use std::fmt;
use std::time::Duration;

/// Why the PLC side refused a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlcError {
    /// rt-core is not attached or not running.
    NotAttached,
    /// A bounded queue (the write ring, the command ring) is full; nothing was queued past
    /// the point reported.
    QueueFull,
    /// The request does not apply (an input address given to `write`, a debug variable
    /// that does not exist).
    Rejected(String),
    /// This implementation cannot do it.
    Unsupported,
}

impl fmt::Display for PlcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlcError::NotAttached => f.write_str("rt-core is not attached"),
            PlcError::QueueFull => f.write_str("rt-core's queue is full"),
            PlcError::Rejected(why) => write!(f, "rejected: {why}"),
            PlcError::Unsupported => f.write_str("not supported by this runtime"),
        }
    }
}

impl std::error::Error for PlcError {}

/// The PLC as plugins see it.
pub trait PluginPlc: Send + Sync + 'static {
    /// Copies the latest published outputs and memory (stamped with rt-core's `cycle` and
    /// the program `tick`) into `into`. False when nothing could be read.
    fn read_outputs(&self, into: &mut OutputSnapshot) -> bool;

    /// Copies the input image as the companion currently publishes it.
    fn read_inputs(&self, into: &mut InputImage);

    /// Changes inputs and publishes them for rt-core's next scan. `f` must be quick: it may
    /// run under the lock that guards the client.
    fn update_inputs(&self, f: &mut dyn FnMut(&mut InputImage));

    /// Queues writes to output or memory points; rt-core applies them at the start of its
    /// next scan. On `QueueFull` the writes before the failing one were queued.
    fn write(&self, writes: &[(IecAddress, u64)]) -> Result<(), PlcError>;

    /// Waits until a scan newer than `cycle` has been published and returns its `cycle`
    /// stamp (`OutputSnapshot::cycle`); `None` after `timeout` without one.
    fn wait_for_scan_after(&self, cycle: u64, timeout: Duration) -> Option<u64>;

    fn state(&self) -> PlcState;

    /// Asks for the PLC to start. Must not block and must not call back into the plugin
    /// host on this thread: plugins call it from inside their hooks.
    fn request_start(&self, reason: &str);

    /// Asks for the PLC to stop (which stops the plugins too, later, from another thread).
    /// Must not block and must not call back into the plugin host on this thread.
    fn request_stop(&self, reason: &str);

    /// The program swapped in, if any (`period_ns` becomes `base_tick_ns`).
    fn program_info(&self) -> Option<ProgramInfo>;

    /// The current bytes of debug variable `var` (flat index), taken at a scan after the
    /// call; `None` if the variable does not exist or no scan came within `timeout`.
    fn debug_read(&self, var: u32, timeout: Duration) -> Option<Vec<u8>>;

    /// Forces `var` to `value` (native byte order), or releases it with `None`.
    fn debug_force(&self, var: u32, value: Option<&[u8]>) -> Result<(), PlcError>;

    /// Writes `var` once, leaving any force in place. rt-core has no such command yet.
    fn debug_write(&self, _var: u32, _value: &[u8]) -> Result<(), PlcError> {
        Err(PlcError::Unsupported)
    }

    /// A line for the runtime log (what the Editor's log view shows).
    fn log(&self, level: LogLevel, text: &str);
}
