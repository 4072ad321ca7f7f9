//! How the plugin reaches the PLC: one small trait. The companion implements it over its
//! one port to rt-core; [`crate::MemoryPlc`] implements it in memory for the tests.
//!
//! Everything goes through debug variables (the Editor's OPC-UA configuration names them
//! by debug index) except the client's optional located points. Reads are *samples*: the
//! values of a set of variables copied by rt-core at the end of one scan that began after
//! the request, so a structure's leaves are never torn across scans. Writes are applied by
//! rt-core at the start of a scan; the call returns once that happened.

use async_trait::async_trait;
use shared_abi::image::IecAddress;
use shared_abi::layout::PlcState;
use shared_abi::program::VarKind;
use std::time::Duration;

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
    /// The port to rt-core is gone.
    #[error("PLC unavailable: {0}")]
    Unavailable(String),
}

/// The PLC as the OPC-UA plugin sees it. Implementations must be cheap to call from many
/// tasks at once: the server calls `sample` for every Read request and once per publishing
/// period for all monitored variables together.
#[async_trait]
pub trait OpcuaPlc: Send + Sync + 'static {
    /// The program loaded now (`None`: no program).
    fn program(&self) -> Option<ProgramLayout>;

    /// The PLC's state.
    fn state(&self) -> PlcState;

    /// Values of `vars` (flat debug indices) from one scan that began after this call,
    /// through the watch list the debugger shares. At most [`crate::MAX_SAMPLE_VARS`]
    /// variables per call.
    async fn sample(&self, vars: &[u32], timeout: Duration) -> Result<Scan, PlcError>;

    /// Writes `value` (exactly the variable's size, the program's layout) into debug
    /// variable `var` once, at the start of a scan (rt-core's `SetVar`); returns once a
    /// scan has started with it. The program may overwrite it in that scan, as with any
    /// variable it assigns.
    async fn write_var(&self, var: u32, value: &[u8], timeout: Duration) -> Result<(), PlcError>;

    /// Located points: `%I` from the input image, `%Q`/`%M` from the latest published
    /// outputs (the client's located mappings).
    fn read_points(&self, points: &[IecAddress]) -> Result<Vec<u64>, PlcError>;

    /// Located points: `%I` into the input image for the next scan, `%Q`/`%M` queued for
    /// the start of a later scan; all or nothing.
    fn write_points(&self, points: &[(IecAddress, u64)]) -> Result<(), PlcError>;
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
