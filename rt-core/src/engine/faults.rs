//! When the program ends a call its own way: the PLC goes to ERROR with safe outputs, the
//! faulted instance is never called again, and rt-core restarts in place when the fault may
//! have left a library lock held. Also the two helpers every call into the program goes
//! through: [`live`] (never a faulted instance) and [`stamped`] (the watchdog's stamp and the
//! program's code range set for the call).

use super::Engine;
use crate::guard::{self, Fault};
use crate::program::LoadedProgram;
use crate::restart::{self, RestartKind};
use crate::sys;
use shared_abi::layout::{PlcState, SharedMemory};
use shared_abi::msg::{Event, FaultCause};
use std::sync::atomic::Ordering;

impl Engine {
    /// The program ended a call its own way: ERROR, safe outputs, and a restart in place
    /// when the fault may have left a library lock held.
    pub(super) fn program_faulted(&mut self, fault: Fault, since_ns: u64) {
        if let Some(p) = self.program.as_deref_mut() {
            p.mark_faulted();
        }
        let cycle = self.shm.header.heartbeat.load(Ordering::Relaxed);
        let restart = fault.needs_restart();
        let ran_ns = sys::now_ns().saturating_sub(since_ns);
        let event = if fault.cause == FaultCause::Watchdog {
            Event::WatchdogAbort { ran_ns, cycle, restart }
        } else {
            Event::ProgramFault { cause: fault.cause, cycle, restart }
        };
        self.emit(event);
        self.set_state(PlcState::Error);
        self.set_vars.clear();
        // Its variables are no longer shown (it is never called again).
        self.debug.program_changed();
        self.publish_safe_outputs = true;
        if restart && self.restart.is_none() {
            let kind = if fault.cause == FaultCause::Watchdog { RestartKind::Watchdog } else { RestartKind::ScanFault };
            self.restart = Some((kind, fault.cause, ran_ns / 1_000_000));
        }
    }

    /// Tells `restart` which program a restart in place would reload.
    pub(super) fn update_resumable(&self) {
        let resumable = self
            .program
            .as_deref()
            .filter(|p| !p.is_faulted() && self.state != PlcState::Error)
            .and_then(|p| p.library_fd())
            .map(|fd| (fd, self.state == PlcState::Running));
        restart::set_resumable(resumable);
    }
}

/// The program, unless it faulted (a faulted instance is never called again).
pub(super) fn live(state: PlcState, program: &mut Option<Box<LoadedProgram>>) -> Option<&mut LoadedProgram> {
    if state == PlcState::Error {
        return None;
    }
    program.as_deref_mut().filter(|p| !p.is_faulted())
}

/// Runs `call` on `program` with the watchdog's stamp `since` set for this thread, so an
/// abort request sent for this run can end only this run, and with the program's code
/// range set, so a fault inside it counts as clean.
pub(super) fn stamped<R>(
    shm: &'static SharedMemory,
    program: &mut LoadedProgram,
    since: u64,
    call: impl FnOnce(&mut LoadedProgram) -> Result<R, Fault>,
) -> Result<R, Fault> {
    let stamp = &shm.header.in_program_since_ns;
    guard::set_watch_stamp(stamp);
    guard::set_code(program.code());
    stamp.store(since.max(1), Ordering::Release);
    let result = call(program);
    stamp.store(0, Ordering::Release);
    result
}
