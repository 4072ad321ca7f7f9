//! How the plugin reaches the PLC: through the companion's one port to rt-core, in two
//! parts. The process image (the client's located `%I`/`%Q`/`%M` mappings) is port's own
//! [`ImagePort`]; the debug variables (the server's nodes, the client's debug mappings) are
//! the small [`DebugVars`] seam below. [`crate::PortVars`] implements it over the port (the
//! one production implementation); `MemoryPlc` (feature `model`) in memory, for tests of
//! what a real program cannot easily hold (every IEC type, exotic sizes).
//!
//! Reads are *samples*: the values of a set of variables copied by rt-core at the end of
//! one scan that began after the request, through the watch list the Editor's debugger
//! shares, so a structure's leaves are never torn across scans. Writes are rt-core's
//! `SetVar`, applied at the start of a scan; the call returns once that scan has run.

use async_trait::async_trait;
use openplc_port::ImagePort;
use shared_abi::program::VarKind;
use std::sync::Arc;
use std::time::Duration;

/// What the plugin reaches the PLC through.
#[derive(Clone)]
pub struct Plc {
    /// Debug variables: the server's nodes, the client's debug-variable mappings.
    pub vars: Arc<dyn DebugVars>,
    /// The process image: the client's located mappings.
    pub image: Arc<dyn ImagePort>,
}

/// The running program, as far as the plugin needs it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProgramLayout {
    /// Changes with every program load (0: none).
    pub program_gen: u32,
    /// The program's MD5 as the Editor computes it, when it has one.
    pub md5: Option<String>,
    /// Debug variables in all.
    pub var_count: u32,
    /// Variables per debug array (STruC++'s `(array, element)` leaves; a MatIEC program
    /// has one flat list). The flat index runs through the arrays in order.
    pub group_len: Vec<u32>,
}

impl ProgramLayout {
    /// The flat index of STruC++ leaf `(arr, elem)`, if the program has it.
    pub fn flat_index(&self, arr: u32, elem: u32) -> Option<u32> {
        let len = *self.group_len.get(arr as usize)?;
        if elem >= len {
            return None;
        }
        let before: u64 = self.group_len[..arr as usize].iter().map(|&n| n as u64).sum();
        u32::try_from(before + elem as u64).ok().filter(|&i| i < self.var_count)
    }
}

/// One variable's bytes as rt-core copied them (the program's layout, little-endian).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawValue {
    pub kind: VarKind,
    pub bytes: Vec<u8>,
}

/// The values of the requested variables from one scan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scan {
    /// rt-core's loop counter when the values were taken.
    pub cycle: u64,
    /// The program they come from.
    pub program_gen: u32,
    /// In the order requested; `None` for a variable the program does not have (or that
    /// did not fit rt-core's debug area).
    pub values: Vec<Option<RawValue>>,
}

/// Why the PLC could not do what was asked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlcError {
    /// No scan answered in time (the PLC is stopped, stalled or overloaded).
    #[error("no scan answered in time")]
    Timeout,
    /// rt-core refused it (an unknown variable, a value of the wrong size, a full queue).
    #[error("refused: {0}")]
    Rejected(String),
    /// The running program cannot do it (a library built before variable writes existed).
    #[error("the running program does not support this (rebuild it)")]
    Unsupported,
    /// rt-core or the program is gone, or another program was loaded meanwhile.
    #[error("PLC unavailable: {0}")]
    Unavailable(String),
}

/// The debug variables of the running program. Implementations must be cheap to call
/// from many tasks at once: the server calls `sample` for every Read request and once per
/// publishing period for all monitored variables together.
#[async_trait]
pub trait DebugVars: Send + Sync + 'static {
    /// The program loaded now (`None`: no program).
    fn program(&self) -> Option<ProgramLayout>;

    /// Values of `vars` (flat debug indices) from one scan that began after this call,
    /// through the watch list the debugger shares. At most [`crate::MAX_SAMPLE_VARS`]
    /// variables per call.
    async fn sample(&self, vars: &[u32], timeout: Duration) -> Result<Scan, PlcError>;

    /// Writes `value` (exactly the variable's size, the program's layout) into debug
    /// variable `var` once, at the start of a scan (rt-core's `SetVar`); returns once that
    /// scan has run. The program may overwrite it in that scan, as with any variable it
    /// assigns.
    async fn write_var(&self, var: u32, value: &[u8], timeout: Duration) -> Result<(), PlcError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_index_runs_through_the_arrays() {
        let layout = ProgramLayout { program_gen: 1, md5: None, var_count: 6, group_len: vec![4, 0, 2] };
        assert_eq!(layout.flat_index(0, 3), Some(3));
        assert_eq!(layout.flat_index(0, 4), None);
        assert_eq!(layout.flat_index(1, 0), None);
        assert_eq!(layout.flat_index(2, 1), Some(5));
        assert_eq!(layout.flat_index(3, 0), None);
    }
}
