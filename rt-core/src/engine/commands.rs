//! The client's commands, carried out at the start of a cycle: start/stop, loads and the
//! program swap, forces, variable writes, statistics resets and shutdown. A faulted program
//! is never called again: forcing, releasing and writing are refused while in ERROR.

use super::online::{Carry, online_report};
use super::{Engine, MAX_COMMANDS_PER_CYCLE, RETAIN_PUBLISH_NS, live, stamped};
use crate::force;
use crate::program::LoadedProgram;
use crate::queue::{LoaderReply, LoaderRequest};
use crate::sys;
use bytemuck::Zeroable;
use shared_abi::layout::PlcState;
use shared_abi::migrate::{SwapOutcome, SwapReport};
use shared_abi::msg::{Command, CommandStatus, Event, MAX_PATH, RingId, decode_command};
use std::sync::atomic::Ordering;

impl Engine {
    pub(super) fn take_commands(&mut self) {
        for _ in 0..MAX_COMMANDS_PER_CYCLE {
            let Some(msg) = self.rings.commands.pop_with(decode_command) else { break };
            match msg {
                Ok(envelope) => {
                    let status = self.execute(envelope.seq, envelope.command);
                    self.shm.control.record(envelope.seq, status as u32);
                }
                Err(_) => self.emit(Event::BadMessage { ring: RingId::Commands }),
            }
            self.stats.commands_applied += 1;
        }
    }

    fn execute(&mut self, seq: u32, command: Command) -> CommandStatus {
        match command {
            Command::Start => match (self.state, self.program.is_some()) {
                (_, false) => CommandStatus::NoProgram,
                (PlcState::Error, _) => CommandStatus::InError,
                (PlcState::Running, _) => CommandStatus::AlreadyRunning,
                _ => {
                    self.reset_stats();
                    self.inputs_stale = true;
                    self.set_state(PlcState::Running);
                    CommandStatus::Ok
                }
            },
            Command::Stop => {
                if self.state == PlcState::Running {
                    self.publish_retain();
                    self.set_state(PlcState::Stopped);
                    self.publish_safe_outputs = true;
                    CommandStatus::Ok
                } else {
                    CommandStatus::NotRunning
                }
            }
            Command::Load { path, start, warm, online, image } => {
                if self.load_pending {
                    CommandStatus::Busy
                } else if self.request_load(seq, path, start, warm, online, image) {
                    CommandStatus::Accepted
                } else {
                    CommandStatus::Busy
                }
            }
            Command::Unload => {
                self.publish_retain();
                match self.program.take() {
                    Some(old) => {
                        self.retire(old);
                        self.forces.clear();
                        self.set_vars.clear();
                        self.after_program_change();
                        self.set_state(PlcState::Empty);
                        CommandStatus::Ok
                    }
                    None => CommandStatus::NoProgram,
                }
            }
            Command::Force { var, value, big_endian } => self.force(var, &value, big_endian),
            Command::Unforce { var } => self.unforce(var),
            Command::UnforceAll => {
                let error = self.state == PlcState::Error;
                while let Some(f) = self.forces.pop() {
                    if !error {
                        self.release(f.var);
                    }
                }
                self.publish_forces();
                CommandStatus::Ok
            }
            Command::ResetStats => {
                self.reset_stats();
                CommandStatus::Ok
            }
            Command::Shutdown => {
                self.shutdown = true;
                CommandStatus::Ok
            }
            Command::SetVar { var, value, big_endian } => self.set_var(var, &value, big_endian),
        }
    }

    pub(super) fn request_load(
        &mut self,
        seq: u32,
        path: heapless::String<MAX_PATH>,
        start: bool,
        warm: bool,
        online: bool,
        image: shared_abi::sizes::ImageRequest,
    ) -> bool {
        let program_gen = self.next_program_gen;
        let request = LoaderRequest::Load { seq, path, start, warm, online, program_gen, image };
        if self.loader.to_loader.push(request).is_err() {
            return false;
        }
        self.next_program_gen = self.next_program_gen.wrapping_add(1).max(1);
        self.load_pending = true;
        true
    }

    pub(super) fn take_loader_replies(&mut self) {
        while let Ok(reply) = self.loader.from_loader.pop() {
            self.load_pending = false;
            if let LoaderReply::Loaded { program, start } = reply {
                self.install(program, start);
            }
        }
    }

    /// Swaps a freshly loaded program in at this cycle boundary: cold (initial values, or a
    /// warm load's RETAIN values and forces), or as an online change (see `online`).
    ///
    /// Never inlined: its frame holds the carried forces inline (tens of KiB), and inlined
    /// into `run_cycle` that frame's stack probe would run every cycle, not once per load.
    #[cold]
    #[inline(never)]
    fn install(&mut self, mut program: Box<LoadedProgram>, start: bool) {
        let started_ns = sys::now_ns();
        // The outgoing program's last RETAIN values, for a companion that stores them.
        if self.state == PlcState::Running {
            self.publish_retain();
        }
        let program_gen = program.info().program_gen;
        let mut report = SwapReport { program_gen, outcome: SwapOutcome::Cold as u32, ..SwapReport::default() };
        let mut online = None;
        let mut new_fault = None;
        if program.has_migration() {
            match self.carry_over(&mut program, started_ns) {
                Carry::Done { carried, forces, dropped_forces } => {
                    report = online_report(program_gen, self.tick, &carried, forces.len() as u32, dropped_forces);
                    online = Some(forces);
                }
                Carry::Refused(why) => {
                    report.outcome = SwapOutcome::OnlineRefused as u32;
                    report.refusal = why as u32;
                }
                Carry::NewFaulted(fault) => new_fault = Some(fault),
            }
        }
        self.retain_every = (RETAIN_PUBLISH_NS / program.period_ns().max(1)).max(1);
        if let Some(old) = self.program.replace(program) {
            self.retire(old);
        }
        self.set_vars.clear();
        self.forces.clear();
        match &online {
            // The old program's forces, carried to the same variables of the new one.
            Some(carried) => self.forces.clone_from(carried),
            None => {
                // Forces belonged to the old program's variables; a warm start may bring back
                // the new one's (already applied by the loader). Copied, not moved: the
                // loader's vector is freed with the program, on the loader thread.
                if let Some(p) = self.program.as_deref() {
                    let restored = p.restored_forces();
                    let _ = self.forces.extend_from_slice(&restored[..restored.len().min(self.forces.capacity())]);
                }
                self.tick = 0;
            }
        }
        self.after_program_change();
        let Some(program) = self.program.as_deref() else { return };
        let info = *program.info();
        // SAFETY: the engine is the single writer of the program info.
        unsafe { self.shm.program.write(|p| *p = info) };
        self.shm.header.period_ns.store(info.period_ns, Ordering::Release);
        let cycle = self.shm.header.heartbeat.load(Ordering::Relaxed);
        self.emit(Event::ProgramSwapped { program_gen: info.program_gen, cycle });
        for i in 0..self.forces.len() {
            let var = self.forces[i].var;
            self.emit(Event::Forced { var, forced: true });
        }
        if online.is_some() {
            // The scan count, statistics and outputs carry on: no glitch, no safe state
            // (unless it is not to run).
            self.retain_addresses_stale = true;
            self.debug.variables_moved();
            self.set_state(if start { PlcState::Running } else { PlcState::Stopped });
            self.publish_safe_outputs = !start;
        } else {
            self.reset_stats();
            self.set_state(if start { PlcState::Running } else { PlcState::Stopped });
            if !start {
                self.publish_safe_outputs = true;
            }
        }
        self.publish_swap(report, started_ns);
        if let Some(fault) = new_fault {
            self.program_faulted(fault, started_ns);
        }
        // Last: clients treat the new generation as "the swap is complete".
        self.shm.header.program_gen.store(info.program_gen, Ordering::Release);
    }

    fn after_program_change(&mut self) {
        self.inputs_stale = true;
        self.debug.program_changed();
        self.retain_addresses_stale = false;
        self.publish_safe_outputs = true;
        self.publish_forces();
        if self.program.is_none() {
            // SAFETY: the engine is the single writer of the program info.
            unsafe { self.shm.program.write(|p| *p = Zeroable::zeroed()) };
            self.shm.header.program_gen.store(0, Ordering::Release);
        }
    }

    fn retire(&mut self, program: Box<LoadedProgram>) {
        if let Err(rtrb::PushError::Full(LoaderRequest::Retire(p))) =
            self.loader.to_loader.push(LoaderRequest::Retire(program))
        {
            // Never free on this thread: park it and try again next cycle.
            self.retiring = Some(p);
        }
    }

    pub(super) fn retire_pending(&mut self) {
        if let Some(p) = self.retiring.take() {
            self.retire(p);
        }
    }

    /// Refuses a command that would call into the program: none loaded, or in ERROR.
    fn refuse_program_call(&self) -> Option<CommandStatus> {
        match (&self.program, self.state) {
            (None, _) => Some(CommandStatus::NoProgram),
            (Some(_), PlcState::Error) => Some(CommandStatus::InError),
            _ => None,
        }
    }

    fn force(&mut self, var: u32, value: &[u8], big_endian: bool) -> CommandStatus {
        if let Some(status) = self.refuse_program_call() {
            return status;
        }
        let Some(program) = self.program.as_deref() else { return CommandStatus::NoProgram };
        let forced = match force::encode(var, program.var_size(var), program.var_kind(var), value, big_endian) {
            Ok(f) => f,
            Err(status) => return status,
        };
        match self.forces.iter_mut().find(|f| f.var == var) {
            Some(existing) => *existing = forced,
            None => {
                if self.forces.push(forced).is_err() {
                    return CommandStatus::TooManyForces;
                }
            }
        }
        // Visible at once, also while stopped; re-applied around every scan.
        let now = sys::now_ns();
        if let Some(Err(fault)) = live(self.state, &mut self.program)
            .map(|p| stamped(self.shm, p, now, |p| p.apply_forces(core::slice::from_ref(&forced))))
        {
            self.program_faulted(fault, now);
        }
        self.publish_forces();
        self.debug.variables_moved();
        self.retain_addresses_stale = true;
        self.emit(Event::Forced { var, forced: true });
        CommandStatus::Ok
    }

    fn unforce(&mut self, var: u32) -> CommandStatus {
        if let Some(status) = self.refuse_program_call() {
            return status;
        }
        if var >= self.program.as_deref().map_or(0, |p| p.var_count()) {
            return CommandStatus::BadVariable;
        }
        if let Some(i) = self.forces.iter().position(|f| f.var == var) {
            self.forces.swap_remove(i);
        }
        self.release(var);
        self.publish_forces();
        CommandStatus::Ok
    }

    fn release(&mut self, var: u32) {
        self.debug.variables_moved();
        self.retain_addresses_stale = true;
        // A released located input takes its input's value again at the next cycle (the
        // image copies only the lines that changed otherwise).
        self.inputs_stale = true;
        let now = sys::now_ns();
        if let Some(Err(fault)) =
            live(self.state, &mut self.program).map(|p| stamped(self.shm, p, now, |p| p.unforce(var)))
        {
            self.program_faulted(fault, now);
        }
        self.emit(Event::Forced { var, forced: false });
    }

    /// `SetVar`: queued for the start of the next scan while running, written at once
    /// while stopped.
    fn set_var(&mut self, var: u32, value: &[u8], big_endian: bool) -> CommandStatus {
        if let Some(status) = self.refuse_program_call() {
            return status;
        }
        let Some(program) = self.program.as_deref() else { return CommandStatus::NoProgram };
        let write = match force::encode(var, program.var_size(var), program.var_kind(var), value, big_endian) {
            Ok(w) => w,
            Err(status) => return status,
        };
        if !program.can_write_vars() {
            return CommandStatus::Unsupported;
        }
        if self.state == PlcState::Running {
            return match self.set_vars.push(write) {
                Ok(()) => CommandStatus::Ok,
                Err(_) => CommandStatus::Busy,
            };
        }
        let now = sys::now_ns();
        if let Some(Err(fault)) = live(self.state, &mut self.program)
            .map(|p| stamped(self.shm, p, now, |p| p.write_vars(core::slice::from_ref(&write))))
        {
            self.program_faulted(fault, now);
        }
        CommandStatus::Ok
    }

    /// Publishes the forced variables: their count, and the table a restarted rt-core
    /// gives back to the same program.
    pub(super) fn publish_forces(&mut self) {
        self.shm.control.forced_count.store(self.forces.len() as u32, Ordering::Release);
        let forces = &self.forces;
        let program = self.program.as_deref();
        // SAFETY: the engine is the single writer of the force table.
        unsafe {
            self.shm.forces.write(|t| {
                t.program_gen = program.map_or(0, |p| p.info().program_gen);
                t.md5 = program.map_or([0; 32], |p| p.info().md5);
                t.vars_hash = program.map_or(0, |p| p.vars_hash());
                t.count = forces.len() as u32;
                t.entries[..forces.len()].copy_from_slice(forces);
            })
        };
    }
}
