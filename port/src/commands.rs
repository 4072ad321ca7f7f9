//! The calls that wait for rt-core: results of commands, applied writes, new cycles and
//! scans, program loads. Each has an async form (for tokio tasks) and a `_blocking` twin
//! (for plugin threads and tools). All fail fast with `RtGone` or `RtReplaced`, and hold
//! the lease only to send.

use crate::error::PortError;
use crate::port::{CommandTicket, LoadKind, PlcPort, WriteTicket};
use shared_abi::client::{Observer, Reader};
use shared_abi::debug::{LoadOutcome, LoadResult};
use shared_abi::layout::WritesApplied;
use shared_abi::msg::{Command, CommandStatus, MAX_FORCE_BYTES};
use shared_abi::sizes::ImageRequest;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

fn result_of(obs: &Observer, seq: u32) -> Result<Option<CommandStatus>, PortError> {
    match obs.shm().control.result_of(seq) {
        Some(code) => CommandStatus::from_u32(code).map(Some).ok_or(PortError::Torn("command result")),
        None => Ok(None),
    }
}

fn cycle_after(obs: &Observer, cycle: u64) -> Option<u64> {
    let now = obs.shm().header.heartbeat.load(Ordering::Acquire);
    (now > cycle).then_some(now)
}

/// The loop cycle that applied `ticket`'s writes, once rt-core has reported applying them
/// (at the start of that cycle, before its scan), or once the cycle that applies them at
/// the latest has ended.
fn applied(obs: &Observer, ticket: &WriteTicket) -> Option<u64> {
    let header = &obs.shm().header;
    let reported = WritesApplied::unpack(header.writes_applied.load(Ordering::Acquire));
    // Read after the report: no earlier than the cycle that stored it.
    let now = header.heartbeat.load(Ordering::Acquire);
    if reported.covers(ticket.position) {
        Some(reported.cycle(now).min(ticket.applied_by))
    } else {
        (now > ticket.applied_by).then_some(ticket.applied_by)
    }
}

/// Once load `seq` has an outcome: `Ok(Some)` when swapped in, `Err` when refused.
fn load_done(obs: &Observer, seq: u32) -> Result<Option<LoadResult>, PortError> {
    let result = obs.load_result().map_err(|_| PortError::Torn("load result"))?;
    if result.request_seq != seq || result.outcome() == LoadOutcome::Pending {
        return Ok(None);
    }
    if result.outcome() == LoadOutcome::Failed {
        return Err(PortError::LoadFailed(result.message_str().to_string()));
    }
    // Loaded: done once it is swapped in at a cycle boundary.
    let swapped = obs.shm().header.program_gen.load(Ordering::Acquire) == result.program_gen;
    Ok(swapped.then_some(result))
}

/// A `Force` command; `big_endian` numbers are converted by rt-core, which knows each
/// variable's size and kind.
pub fn force_command(var: u32, value: &[u8], big_endian: bool) -> Result<Command, PortError> {
    let value = heapless::Vec::<u8, MAX_FORCE_BYTES>::from_slice(value)
        .map_err(|_| PortError::TooLarge { what: "forced value" })?;
    Ok(Command::Force { var, value, big_endian })
}

impl PlcPort {
    /// Waits for rt-core's answer to a command sent with [`PlcPort::send`].
    pub async fn wait_result(&self, ticket: CommandTicket, timeout: Duration) -> Result<CommandStatus, PortError> {
        self.poll("a command", timeout, Some(ticket.incarnation), &mut |o| result_of(o, ticket.seq)).await
    }

    pub fn wait_result_blocking(&self, ticket: CommandTicket, timeout: Duration) -> Result<CommandStatus, PortError> {
        self.poll_blocking("a command", timeout, Some(ticket.incarnation), &mut |o| result_of(o, ticket.seq))
    }

    /// Sends `command` and waits for the answer (the lease is held only to send).
    pub async fn command(&self, command: Command, timeout: Duration) -> Result<CommandStatus, PortError> {
        let ticket = self.send(command)?;
        self.wait_result(ticket, timeout).await
    }

    pub fn command_blocking(&self, command: Command, timeout: Duration) -> Result<CommandStatus, PortError> {
        let ticket = self.send(command)?;
        self.wait_result_blocking(ticket, timeout)
    }

    /// Forces debug variable `var` (flat index) to `value` until released.
    pub async fn force(
        &self,
        var: u32,
        value: &[u8],
        big_endian: bool,
        timeout: Duration,
    ) -> Result<CommandStatus, PortError> {
        self.command(force_command(var, value, big_endian)?, timeout).await
    }

    pub fn force_blocking(
        &self,
        var: u32,
        value: &[u8],
        big_endian: bool,
        timeout: Duration,
    ) -> Result<CommandStatus, PortError> {
        self.command_blocking(force_command(var, value, big_endian)?, timeout)
    }

    /// Releases a forced variable.
    pub async fn unforce(&self, var: u32, timeout: Duration) -> Result<CommandStatus, PortError> {
        self.command(Command::Unforce { var }, timeout).await
    }

    pub fn unforce_blocking(&self, var: u32, timeout: Duration) -> Result<CommandStatus, PortError> {
        self.command_blocking(Command::Unforce { var }, timeout)
    }

    /// Waits until rt-core has applied the writes of `ticket`: at the start of a cycle,
    /// right before the scan that sees them, so the wait ends within a period of the
    /// writes being queued (plus the port's wake-up, see `wait.rs`). Returns that loop
    /// cycle: outputs stamped with it or later show the writes (unless the program
    /// overwrote them), and it has ended once [`PlcPort::cycle`] is greater. Fails with
    /// `RtReplaced` if another rt-core took over: it may not apply them.
    pub async fn wait_applied(&self, ticket: WriteTicket, timeout: Duration) -> Result<u64, PortError> {
        self.poll("image writes", timeout, Some(ticket.incarnation), &mut |o| Ok(applied(o, &ticket))).await
    }

    pub fn wait_applied_blocking(&self, ticket: WriteTicket, timeout: Duration) -> Result<u64, PortError> {
        self.poll_blocking("image writes", timeout, Some(ticket.incarnation), &mut |o| Ok(applied(o, &ticket)))
    }

    /// Waits until the loop counter passes `cycle`; returns it. The loop turns whether or
    /// not a program runs.
    pub async fn wait_cycle_after(&self, cycle: u64, timeout: Duration) -> Result<u64, PortError> {
        self.poll("a scan cycle", timeout, None, &mut |o| Ok(cycle_after(o, cycle))).await
    }

    pub fn wait_cycle_after_blocking(&self, cycle: u64, timeout: Duration) -> Result<u64, PortError> {
        self.poll_blocking("a scan cycle", timeout, None, &mut |o| Ok(cycle_after(o, cycle)))
    }

    /// Waits until a program scan later than loop cycle `cycle` has been published and
    /// returns its stamp (`OutputSnapshot::cycle`). Only a running program publishes.
    pub async fn wait_scan_after(&self, cycle: u64, timeout: Duration) -> Result<u64, PortError> {
        self.poll("a published scan", timeout, None, &mut |_| Ok(Some(self.outputs().cycle).filter(|&c| c > cycle)))
            .await
    }

    pub fn wait_scan_after_blocking(&self, cycle: u64, timeout: Duration) -> Result<u64, PortError> {
        self.poll_blocking("a published scan", timeout, None, &mut |_| {
            Ok(Some(self.outputs().cycle).filter(|&c| c > cycle))
        })
    }

    /// Loads a program library and waits until it is swapped in at a cycle boundary. The
    /// previous program keeps running if the load fails. rt-core copies the file first, so
    /// it may be replaced afterwards. `kind`: cold (initial values) or warm (see
    /// [`LoadKind`]). `image`: the table sizes the upload configured. `timeout` covers the
    /// whole load.
    pub async fn load(
        &self,
        path: &str,
        start: bool,
        kind: LoadKind<'_>,
        image: ImageRequest,
        timeout: Duration,
    ) -> Result<LoadResult, PortError> {
        let begin = Instant::now();
        let ticket = self.send_load(path, start, kind, image)?;
        match self.wait_result(ticket, timeout).await? {
            CommandStatus::Accepted => {}
            other => return Err(PortError::Refused(other)),
        }
        let left = timeout.saturating_sub(begin.elapsed());
        self.poll("a program load", left, Some(ticket.incarnation), &mut |o| load_done(o, ticket.seq)).await
    }

    pub fn load_blocking(
        &self,
        path: &str,
        start: bool,
        kind: LoadKind<'_>,
        image: ImageRequest,
        timeout: Duration,
    ) -> Result<LoadResult, PortError> {
        let begin = Instant::now();
        let ticket = self.send_load(path, start, kind, image)?;
        match self.wait_result_blocking(ticket, timeout)? {
            CommandStatus::Accepted => {}
            other => return Err(PortError::Refused(other)),
        }
        let left = timeout.saturating_sub(begin.elapsed());
        self.poll_blocking("a program load", left, Some(ticket.incarnation), &mut |o| load_done(o, ticket.seq))
    }
}
