//! [`PortVars`]: the debug variables over the companion's one port to rt-core, the only
//! production [`DebugVars`]. Samples go through the port's shared watch list (the one the
//! Editor's debugger uses); writes are `SetVar` commands, applied at a scan start.

use crate::plc::{DebugVars, Plc, PlcError, ProgramLayout, RawValue, Scan};
use async_trait::async_trait;
use openplc_port::{PlcPort, PortError, SampleError, Value};
use shared_abi::debug::MAX_GROUPS;
use shared_abi::msg::{Command, CommandStatus, MAX_FORCE_BYTES};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Debug variables through a [`PlcPort`].
pub struct PortVars {
    port: Arc<PlcPort>,
}

impl PortVars {
    pub fn new(port: Arc<PlcPort>) -> PortVars {
        PortVars { port }
    }
}

impl Plc {
    /// Everything through the port: its image and its debug variables.
    pub fn from_port(port: Arc<PlcPort>) -> Plc {
        Plc { vars: Arc::new(PortVars::new(port.clone())), image: port }
    }
}

fn port_error(e: PortError) -> PlcError {
    match e {
        PortError::Timeout { .. } => PlcError::Timeout,
        e if e.is_unavailable() => PlcError::Unavailable(e.to_string()),
        e => PlcError::Rejected(e.to_string()),
    }
}

fn sample_error(e: SampleError) -> PlcError {
    match e {
        SampleError::Timeout(_) => PlcError::Timeout,
        SampleError::WatchFull | SampleError::NoRoom => PlcError::Rejected(e.to_string()),
        SampleError::RtDown | SampleError::NoProgram | SampleError::ProgramChanged | SampleError::Stopped => {
            PlcError::Unavailable(e.to_string())
        }
    }
}

#[async_trait]
impl DebugVars for PortVars {
    fn program(&self) -> Option<ProgramLayout> {
        let info = self.port.program_info()?;
        let groups = (info.group_count as usize).min(MAX_GROUPS);
        Some(ProgramLayout {
            program_gen: info.program_gen,
            md5: info.md5_str().map(str::to_owned),
            var_count: info.var_count,
            group_len: info.group_len[..groups].to_vec(),
        })
    }

    async fn sample(&self, vars: &[u32], timeout: Duration) -> Result<Scan, PlcError> {
        if vars.len() > crate::MAX_SAMPLE_VARS {
            return Err(PlcError::Rejected(format!("{} variables in one sample", vars.len())));
        }
        let arrival = self.port.arrival();
        if !self.port.rt_alive() {
            return Err(sample_error(SampleError::RtDown));
        }
        let info = self.port.program_info().ok_or_else(|| sample_error(SampleError::NoProgram))?;
        let lease = self.port.sampler().lease(vars).map_err(sample_error)?;
        let sample = lease.wait(info.program_gen, arrival, timeout).await.map_err(sample_error)?;
        let values = vars
            .iter()
            .map(|&v| match sample.get(v) {
                Some(Value::Bytes { kind, raw }) => Some(RawValue { kind, bytes: raw.to_vec() }),
                _ => None,
            })
            .collect();
        Ok(Scan { cycle: sample.cycle, program_gen: sample.program_gen, values })
    }

    async fn write_var(&self, var: u32, value: &[u8], timeout: Duration) -> Result<(), PlcError> {
        let begin = Instant::now();
        let value = heapless::Vec::<u8, MAX_FORCE_BYTES>::from_slice(value)
            .map_err(|_| PlcError::Rejected(format!("{} bytes: longer than any variable", value.len())))?;
        let status =
            self.port.command(Command::SetVar { var, value, big_endian: false }, timeout).await.map_err(port_error)?;
        match status {
            // Queued for the scan of the cycle that took the command (or written at once
            // while stopped): done once a cycle after this answer has ended.
            CommandStatus::Ok => {
                let answered = self.port.cycle();
                let left = timeout.saturating_sub(begin.elapsed()).max(Duration::from_millis(1));
                self.port.wait_cycle_after(answered, left).await.map(|_| ()).map_err(port_error)
            }
            CommandStatus::Unsupported => Err(PlcError::Unsupported),
            CommandStatus::NoProgram | CommandStatus::InError => Err(PlcError::Unavailable(status.as_str().into())),
            other => Err(PlcError::Rejected(other.as_str().into())),
        }
    }
}
