//! One scan cycle's work, with no sleeping and no clock of its own beyond reading the time:
//! commands → program swap → inputs → writes → forces → program → forces → outputs →
//! debug values → stats → next deadline. The scan thread calls `run_cycle` after each
//! wake-up; tests and benches call it directly.
//!
//! Nothing here allocates, locks or blocks once the engine is built: every buffer is sized
//! up front, programs arrive and leave as boxes moved through wait-free queues, and the
//! loader thread (never this one) frees what is retired.

use crate::guard::{Fault, ForcedVar};
use crate::program::LoadedProgram;
use crate::sys;
use bytemuck::Zeroable;
use heapless::Vec as FixedVec;
use shared_abi::debug::{DEBUG_DATA_BYTES, MAX_WATCH, WatchList, WatchedValue};
use shared_abi::layout::{DIRTY_BOOL, DIRTY_BYTE, DIRTY_DINT, DIRTY_INT, DIRTY_LINT, PlcState, SharedMemory};
use shared_abi::msg::{Command, CommandEnvelope, CommandStatus, Event, ImageWrite, MAX_FORCE_BYTES, MAX_PATH};
use shared_abi::program::VarKind;
use shared_abi::ring::{Consumer, Producer};
use shared_abi::stats::Stats;
use std::sync::atomic::Ordering;

/// Per-cycle bounds, part of the contract with clients (defined in shared-abi).
pub use shared_abi::msg::{MAX_COMMANDS_PER_CYCLE, MAX_WRITES_PER_CYCLE};
/// Variables that can be forced at once.
pub const MAX_FORCES: usize = 128;
/// Overrun reports are sent at most this often.
const OVERRUN_REPORT_NS: u64 = 1_000_000_000;

/// Work for the loader thread.
// The path travels inline: boxing it would allocate on the scan thread.
#[allow(clippy::large_enum_variant)]
pub enum LoaderRequest {
    Load {
        seq: u32,
        path: heapless::String<MAX_PATH>,
        start: bool,
        warm: bool,
        program_gen: u32,
    },
    /// A program that was swapped out or unloaded, to be freed off the scan thread.
    Retire(Box<LoadedProgram>),
}

/// The loader thread's answers.
pub enum LoaderReply {
    Loaded { program: Box<LoadedProgram>, start: bool },
    Failed,
}

/// The queues between the scan thread and the loader thread.
pub struct LoaderLink {
    pub to_loader: rtrb::Producer<LoaderRequest>,
    pub from_loader: rtrb::Consumer<LoaderReply>,
}

/// The loader thread's ends of the same queues.
pub struct LoaderEnds {
    pub requests: rtrb::Consumer<LoaderRequest>,
    pub replies: rtrb::Producer<LoaderReply>,
}

/// Makes the pair of queues (capacity enough for a swap and a retirement in flight).
pub fn loader_queues() -> (LoaderLink, LoaderEnds) {
    let (to_loader, requests) = rtrb::RingBuffer::new(8);
    let (replies, from_loader) = rtrb::RingBuffer::new(8);
    (LoaderLink { to_loader, from_loader }, LoaderEnds { requests, replies })
}

/// What the scan loop needs after a cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CycleEnd {
    /// The next absolute deadline (CLOCK_MONOTONIC ns).
    pub next_deadline_ns: u64,
    /// A `Shutdown` command arrived.
    pub shutdown: bool,
}

pub struct Engine {
    shm: &'static SharedMemory,
    commands: Consumer<'static, 64, 320>,
    writes: Consumer<'static, 4096, 28>,
    events: Producer<'static, 256, 60>,
    loader: LoaderLink,
    program: Option<Box<LoadedProgram>>,
    /// A retired program the loader queue had no room for yet.
    retiring: Option<Box<LoadedProgram>>,
    state: PlcState,
    /// Scans of the current program since it was loaded (the program's and debugger's tick).
    tick: u64,
    next_program_gen: u32,
    load_pending: bool,
    forces: FixedVec<ForcedVar, MAX_FORCES>,
    watch: Box<WatchList>,
    watch_version: u64,
    layout: Box<[WatchedValue; MAX_WATCH]>,
    layout_count: usize,
    layout_dirty: bool,
    /// Where each watched variable's value is, as the program last said.
    addresses: Box<[usize; MAX_WATCH]>,
    /// The addresses must be asked again (new layout, a force or a release).
    addresses_stale: bool,
    /// The program's RETAIN variables' addresses must be asked again (a force or release).
    retain_addresses_stale: bool,
    /// RETAIN values are published every this many scans (about every 100 ms).
    retain_every: u64,
    /// Inputs must be copied even without a new snapshot (a new program's image is empty).
    inputs_stale: bool,
    /// Loop counter when the inputs in the program's image were taken.
    inputs_cycle: u64,
    /// Generation of the input snapshot in the program's image.
    inputs_generation: u64,
    /// Outputs to publish once in the safe state (after a stop, a fault or an unload).
    publish_safe_outputs: bool,
    stats: Stats,
    prev_wake_ns: u64,
    idle_period_ns: u64,
    overruns_unreported: u64,
    worst_latency_unreported: u64,
    last_overrun_report_ns: u64,
    shutdown: bool,
}

/// How often the running program's RETAIN values are published (they are also published
/// when it stops, is unloaded or swapped out).
const RETAIN_PUBLISH_NS: u64 = 100_000_000;

/// How the engine starts.
pub struct EngineConfig {
    /// The loop's period while no program is loaded.
    pub idle_period_ns: u64,
}

impl Engine {
    /// Takes rt-core's ends of the shared memory. Commands and writes already queued (a
    /// client may send as soon as the file exists, or a dead predecessor's client left them)
    /// are processed like any other: dropping them would lose a live client's command.
    ///
    /// The engine must be the only consumer of the command and write rings and the only
    /// producer of the event ring; `rt-core`'s main makes exactly one.
    pub fn new(shm: &'static SharedMemory, loader: LoaderLink, config: EngineConfig) -> Box<Engine> {
        // SAFETY: rt-core creates exactly one engine per process and holds the exclusive
        // flock on the file, so these are the only consumer/producer ends in any process.
        let (commands, writes, events) =
            unsafe { (shm.commands.consumer(), shm.writes.consumer(), shm.events.producer()) };
        let previous_gen = shm.header.program_gen.load(Ordering::Acquire);
        let mut engine = Box::new(Engine {
            shm,
            commands,
            writes,
            events,
            loader,
            program: None,
            retiring: None,
            state: PlcState::Empty,
            tick: 0,
            next_program_gen: previous_gen.wrapping_add(1).max(1),
            load_pending: false,
            forces: FixedVec::new(),
            watch: bytemuck::zeroed_box(),
            watch_version: u64::MAX,
            layout: Box::new([WatchedValue::default(); MAX_WATCH]),
            layout_count: 0,
            layout_dirty: true,
            addresses: Box::new([0; MAX_WATCH]),
            addresses_stale: true,
            retain_addresses_stale: false,
            retain_every: 1,
            inputs_stale: true,
            inputs_cycle: 0,
            inputs_generation: 0,
            publish_safe_outputs: true,
            stats: Stats::zeroed(),
            prev_wake_ns: 0,
            idle_period_ns: config.idle_period_ns,
            overruns_unreported: 0,
            worst_latency_unreported: 0,
            last_overrun_report_ns: 0,
            shutdown: false,
        });
        engine.reset_published_state();
        engine
    }

    /// Clears what a previous rt-core left in the regions this engine writes.
    fn reset_published_state(&mut self) {
        let h = &self.shm.header;
        h.state.store(PlcState::Empty as u32, Ordering::Release);
        h.program_gen.store(0, Ordering::Release);
        h.period_ns.store(self.idle_period_ns, Ordering::Release);
        h.in_program_since_ns.store(0, Ordering::Release);
        // SAFETY: the engine is the single writer of these regions (see `new`).
        unsafe {
            self.shm.program.write(|p| *p = Zeroable::zeroed());
            self.shm.outputs.write(|o| *o = Zeroable::zeroed());
        }
        self.stats.period_ns = self.idle_period_ns;
        self.publish_stats();
        self.shm.histogram.reset();
    }

    /// Asks the loader for a program before the loop starts (`openplc-rt run --load`).
    pub fn request_initial_load(&mut self, path: &str, start: bool) -> bool {
        let path = shared_abi::msg::bounded::<MAX_PATH>(path);
        self.request_load(0, path, start, false)
    }

    pub fn state(&self) -> PlcState {
        self.state
    }

    /// The period the loop should run at now.
    pub fn period_ns(&self) -> u64 {
        self.program.as_ref().map_or(self.idle_period_ns, |p| p.period_ns())
    }

    pub fn program(&self) -> Option<&LoadedProgram> {
        self.program.as_deref()
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Does one cycle's work for the deadline `deadline_ns`, woken at `wake_ns`, and
    /// returns the next deadline. Missed periods are skipped, not caught up.
    pub fn run_cycle(&mut self, deadline_ns: u64, wake_ns: u64) -> CycleEnd {
        let latency = wake_ns.saturating_sub(deadline_ns);
        self.stats.latency.record(latency);
        self.shm.histogram.record(latency);
        if self.prev_wake_ns != 0 {
            self.stats.cycle_time.record(wake_ns.saturating_sub(self.prev_wake_ns));
        }
        self.prev_wake_ns = wake_ns;

        self.take_commands();
        self.take_loader_replies();
        self.retire_pending();

        let running = self.state == PlcState::Running && self.program.is_some();
        if running {
            self.take_inputs();
        }
        self.apply_writes();
        if running {
            self.scan(wake_ns);
        }
        if self.publish_safe_outputs {
            self.publish_outputs(true);
            self.publish_safe_outputs = false;
        }
        self.publish_debug();

        let end_ns = sys::now_ns();
        self.stats.scan_time.record(end_ns.saturating_sub(wake_ns));
        let period = self.period_ns();
        let mut next = deadline_ns + period;
        if end_ns > next {
            // Skip every period that has already begun: never a burst of late scans.
            let skipped = (end_ns - next) / period + 1;
            next += skipped * period;
            self.stats.overruns += 1;
            self.stats.skipped_periods += skipped;
            self.overruns_unreported += 1;
            self.worst_latency_unreported = self.worst_latency_unreported.max(latency);
        }
        self.report_overruns(end_ns);
        self.stats.period_ns = period;
        self.publish_stats();
        let h = &self.shm.header;
        h.period_ns.store(period, Ordering::Relaxed);
        h.last_cycle_ns.store(end_ns, Ordering::Relaxed);
        h.heartbeat.store(h.heartbeat.load(Ordering::Relaxed) + 1, Ordering::Release);
        CycleEnd { next_deadline_ns: next, shutdown: self.shutdown }
    }

    fn scan(&mut self, wake_ns: u64) {
        let Some(program) = self.program.as_mut() else { return };
        let h = &self.shm.header;
        let mut result = program.apply_forces(&self.forces);
        if result.is_ok() {
            h.in_program_since_ns.store(wake_ns.max(1), Ordering::Release);
            result = program.run_tick(self.tick);
            h.in_program_since_ns.store(0, Ordering::Release);
        }
        if result.is_ok() {
            // Again after the body, so the program cannot overwrite a forced value.
            result = program.apply_forces(&self.forces);
        }
        match result {
            Ok(()) => {
                self.tick += 1;
                self.stats.scan_count += 1;
                self.publish_outputs(false);
                if self.tick.is_multiple_of(self.retain_every) {
                    self.publish_retain();
                }
            }
            Err(fault) => self.program_faulted(fault, wake_ns),
        }
    }

    /// Publishes the program's RETAIN values for the companion to store. No allocation:
    /// the values go straight into the shared memory. Not after a fault: a scan that
    /// crashed may have left them half-updated, and the last good ones are already out.
    fn publish_retain(&mut self) {
        if self.state == PlcState::Error {
            return;
        }
        let Some(program) = self.program.as_mut() else { return };
        if program.retain_summary().0 == 0 {
            return;
        }
        if core::mem::take(&mut self.retain_addresses_stale)
            && let Err(f) = program.refresh_retain_addresses()
        {
            self.program_faulted(f, sys::now_ns());
            return;
        }
        let cycle = self.shm.header.heartbeat.load(Ordering::Relaxed);
        let program_gen = program.info().program_gen;
        let program = &**program;
        // SAFETY: the engine is the single writer of the saved RETAIN values (see `new`).
        let saved = unsafe {
            self.shm.retain_saved.write(|r| {
                r.program_gen = program_gen;
                r.cycle = cycle;
                program.save_retain(r)
            })
        };
        if let Err(f) = saved {
            self.program_faulted(f, sys::now_ns());
        }
    }

    fn program_faulted(&mut self, fault: Fault, since_ns: u64) {
        let cycle = self.shm.header.heartbeat.load(Ordering::Relaxed);
        let event = if fault.0 == libc::SIGUSR2 {
            Event::WatchdogAbort { ran_ns: sys::now_ns().saturating_sub(since_ns), cycle }
        } else {
            Event::ProgramFault { signal: fault.0, cycle }
        };
        self.emit(event);
        self.set_state(PlcState::Error);
        self.publish_safe_outputs = true;
    }

    fn take_inputs(&mut self) {
        let Some(program) = self.program.as_mut() else { return };
        // SAFETY: the engine is the only reader of the input buffer (see `new`).
        let (snapshot, fresh) = unsafe { self.shm.inputs.read_latest() };
        if fresh || self.inputs_stale {
            let dst = &mut program.image_mut().inputs;
            let src = &snapshot.image;
            if !self.inputs_stale && snapshot.generation == self.inputs_generation + 1 {
                // Only the areas that changed since the snapshot we already hold.
                let d = snapshot.dirty;
                if d & DIRTY_BOOL != 0 {
                    dst.bool_input = src.bool_input;
                }
                if d & DIRTY_BYTE != 0 {
                    dst.byte_input = src.byte_input;
                }
                if d & DIRTY_INT != 0 {
                    dst.int_input = src.int_input;
                }
                if d & DIRTY_DINT != 0 {
                    dst.dint_input = src.dint_input;
                }
                if d & DIRTY_LINT != 0 {
                    dst.lint_input = src.lint_input;
                }
            } else {
                *dst = *src;
            }
            self.inputs_generation = snapshot.generation;
            self.inputs_stale = false;
            self.inputs_cycle = self.shm.header.heartbeat.load(Ordering::Relaxed);
            self.stats.inputs_taken += 1;
        }
    }

    fn apply_writes(&mut self) {
        for _ in 0..MAX_WRITES_PER_CYCLE {
            let Some(write) = self.writes.pop::<ImageWrite>() else { break };
            match write {
                Ok(ImageWrite { addr, value }) => {
                    if let Some(program) = self.program.as_mut() {
                        program.image_mut().set(addr, value);
                        program.widen_extents(addr);
                    }
                    self.stats.writes_applied += 1;
                }
                Err(_) => self.emit(Event::BadMessage { ring: 1 }),
            }
        }
    }

    fn publish_outputs(&mut self, safe_state: bool) {
        let cycle = self.shm.header.heartbeat.load(Ordering::Relaxed);
        let tick = self.tick;
        let inputs_cycle = self.inputs_cycle;
        let state = self.state as u32;
        let program = self.program.as_deref();
        // SAFETY: the engine is the single writer of the outputs (see `new`).
        unsafe {
            self.shm.outputs.write(|snap| {
                snap.cycle = cycle;
                snap.tick = tick;
                snap.inputs_cycle = inputs_cycle;
                snap.state = state;
                snap.program_gen = program.map_or(0, |p| p.info().program_gen);
                match program {
                    // The safe-state publication is the full one that follows every swap,
                    // stop and fault; in between only what the program can change is copied.
                    Some(p) if safe_state => snap.image = p.image().outputs,
                    Some(p) => p.extents().copy(&p.image().outputs, &mut snap.image),
                    None => snap.image = Zeroable::zeroed(),
                }
                if safe_state {
                    snap.image.clear_outputs();
                }
            })
        };
    }

    // ---- commands ----

    fn take_commands(&mut self) {
        for _ in 0..MAX_COMMANDS_PER_CYCLE {
            let Some(msg) = self.commands.pop::<CommandEnvelope>() else { break };
            match msg {
                Ok(CommandEnvelope { seq, command }) => {
                    let status = self.execute(seq, command);
                    self.shm.control.record(seq, status as u32);
                }
                Err(_) => self.emit(Event::BadMessage { ring: 0 }),
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
            Command::Load { path, start, warm } => {
                if self.load_pending {
                    CommandStatus::Busy
                } else if self.request_load(seq, path, start, warm) {
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
                while let Some(f) = self.forces.pop() {
                    self.release(f.var);
                }
                self.publish_forced_count();
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
        }
    }

    fn request_load(&mut self, seq: u32, path: heapless::String<MAX_PATH>, start: bool, warm: bool) -> bool {
        let program_gen = self.next_program_gen;
        let request = LoaderRequest::Load { seq, path, start, warm, program_gen };
        if self.loader.to_loader.push(request).is_err() {
            return false;
        }
        self.next_program_gen = self.next_program_gen.wrapping_add(1).max(1);
        self.load_pending = true;
        true
    }

    fn take_loader_replies(&mut self) {
        while let Ok(reply) = self.loader.from_loader.pop() {
            self.load_pending = false;
            if let LoaderReply::Loaded { program, start } = reply {
                self.install(program, start);
            }
        }
    }

    /// Swaps a freshly loaded program in at this cycle boundary.
    fn install(&mut self, program: Box<LoadedProgram>, start: bool) {
        // The outgoing program's last RETAIN values, for a companion that stores them.
        if self.state == PlcState::Running {
            self.publish_retain();
        }
        self.retain_every = (RETAIN_PUBLISH_NS / program.period_ns().max(1)).max(1);
        if let Some(old) = self.program.replace(program) {
            self.retire(old);
        }
        // Forces belonged to the old program's variables.
        self.forces.clear();
        self.tick = 0;
        self.after_program_change();
        let Some(program) = self.program.as_deref() else { return };
        let info = *program.info();
        // SAFETY: the engine is the single writer of the program info (see `new`).
        unsafe { self.shm.program.write(|p| *p = info) };
        self.shm.header.period_ns.store(info.period_ns, Ordering::Release);
        self.reset_stats();
        self.emit(Event::ProgramSwapped {
            program_gen: info.program_gen,
            cycle: self.shm.header.heartbeat.load(Ordering::Relaxed),
        });
        self.set_state(if start { PlcState::Running } else { PlcState::Stopped });
        if !start {
            self.publish_safe_outputs = true;
        }
        // Last: clients treat the new generation as "the swap is complete".
        self.shm.header.program_gen.store(info.program_gen, Ordering::Release);
    }

    fn after_program_change(&mut self) {
        self.inputs_stale = true;
        self.layout_dirty = true;
        self.publish_safe_outputs = true;
        self.publish_forced_count();
        if self.program.is_none() {
            // SAFETY: the engine is the single writer of the program info (see `new`).
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

    fn retire_pending(&mut self) {
        if let Some(p) = self.retiring.take() {
            self.retire(p);
        }
    }

    fn force(&mut self, var: u32, value: &[u8], big_endian: bool) -> CommandStatus {
        let Some(program) = self.program.as_mut() else { return CommandStatus::NoProgram };
        let forced = match prepare_force(program, var, value, big_endian) {
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
        if let Err(fault) = program.apply_forces(core::slice::from_ref(&forced)) {
            self.program_faulted(fault, sys::now_ns());
        }
        self.publish_forced_count();
        self.addresses_stale = true;
        self.retain_addresses_stale = true;
        self.emit(Event::Forced { var, forced: true });
        CommandStatus::Ok
    }

    fn unforce(&mut self, var: u32) -> CommandStatus {
        let Some(program) = self.program.as_ref() else { return CommandStatus::NoProgram };
        if var >= program.var_count() {
            return CommandStatus::BadVariable;
        }
        if let Some(i) = self.forces.iter().position(|f| f.var == var) {
            self.forces.swap_remove(i);
        }
        self.release(var);
        self.publish_forced_count();
        CommandStatus::Ok
    }

    fn release(&mut self, var: u32) {
        self.addresses_stale = true;
        self.retain_addresses_stale = true;
        let Some(program) = self.program.as_mut() else { return };
        if let Err(fault) = program.unforce(var) {
            self.program_faulted(fault, sys::now_ns());
        }
        self.emit(Event::Forced { var, forced: false });
    }

    fn publish_forced_count(&self) {
        self.shm.control.forced_count.store(self.forces.len() as u32, Ordering::Release);
    }

    fn set_state(&mut self, state: PlcState) {
        if self.state == state {
            return;
        }
        self.state = state;
        self.shm.header.state.store(state as u32, Ordering::Release);
        self.emit(Event::StateChanged {
            state: state as u32,
            cycle: self.shm.header.heartbeat.load(Ordering::Relaxed),
        });
    }

    fn emit(&mut self, event: Event) {
        // A full ring is counted by the ring itself; the scan never waits for the reader.
        let _ = self.events.push(&event);
    }

    // ---- debug values ----

    fn publish_debug(&mut self) {
        if self.shm.watch.version() != self.watch_version {
            // One attempt: a torn read keeps the previous list until the next cycle.
            if let Ok(version) = self.shm.watch.try_read(&mut self.watch) {
                self.watch_version = version;
                self.layout_dirty = true;
            }
        }
        if self.layout_dirty {
            self.relayout();
            self.addresses_stale = true;
        }
        let dirty = core::mem::take(&mut self.layout_dirty);
        if self.layout_count == 0 && !dirty {
            return;
        }
        if core::mem::take(&mut self.addresses_stale)
            && let Some(p) = self.program.as_deref()
            && let Err(f) = p.watched_addresses(&self.layout[..self.layout_count], &mut self.addresses[..])
        {
            self.program_faulted(f, sys::now_ns());
            return;
        }
        let cycle = self.shm.header.heartbeat.load(Ordering::Relaxed);
        let tick = self.tick;
        let generation = self.watch.generation;
        let layout = &self.layout[..self.layout_count];
        let addresses = &self.addresses[..self.layout_count];
        let program = self.program.as_deref();
        let mut fault = None;
        // SAFETY: the engine is the single writer of the debug values (see `new`).
        unsafe {
            self.shm.debug.write(|dv| {
                if dirty {
                    dv.entries[..layout.len()].copy_from_slice(layout);
                    dv.count = layout.len() as u32;
                    dv.data_len = layout.iter().map(|w| w.offset + w.size as u32).max().unwrap_or(0);
                    dv.watch_generation = generation;
                    dv.program_gen = program.map_or(0, |p| p.info().program_gen);
                }
                if let Some(p) = program
                    && let Err(f) = p.copy_watched(addresses, layout, &mut dv.data)
                {
                    fault = Some(f);
                }
                dv.cycle = cycle;
                dv.tick = tick;
            })
        };
        if let Some(f) = fault {
            self.program_faulted(f, sys::now_ns());
        }
    }

    /// Places each watched variable in the debug data area.
    fn relayout(&mut self) {
        let count = (self.watch.count as usize).min(MAX_WATCH);
        let mut offset = 0usize;
        for (slot, &var) in self.layout.iter_mut().zip(&self.watch.vars[..count]) {
            let (size, kind) = match self.program.as_deref() {
                Some(p) => (p.var_size(var) as usize, p.var_kind(var) as u8),
                None => (0, VarKind::Opaque as u8),
            };
            let fits = size > 0 && size <= u16::MAX as usize && offset + size <= DEBUG_DATA_BYTES;
            *slot = WatchedValue { var, offset: offset as u32, size: size as u16, kind, valid: fits as u8 };
            if fits {
                offset += size;
            }
        }
        self.layout_count = count;
    }

    // ---- stats ----

    fn reset_stats(&mut self) {
        let period = self.stats.period_ns;
        self.stats = Stats::zeroed();
        self.stats.period_ns = period;
        self.stats.since_ns = sys::now_ns();
        self.prev_wake_ns = 0;
        self.shm.histogram.reset();
    }

    fn publish_stats(&self) {
        let stats = self.stats;
        // SAFETY: the engine is the single writer of the stats (see `new`).
        unsafe { self.shm.stats.write(|s| *s = stats) };
    }

    fn report_overruns(&mut self, now_ns: u64) {
        if self.overruns_unreported == 0 || now_ns.saturating_sub(self.last_overrun_report_ns) < OVERRUN_REPORT_NS {
            return;
        }
        self.emit(Event::Overruns {
            new: self.overruns_unreported,
            total: self.stats.overruns,
            worst_latency_ns: self.worst_latency_unreported,
        });
        self.overruns_unreported = 0;
        self.worst_latency_unreported = 0;
        self.last_overrun_report_ns = now_ns;
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // Leave the outputs in the safe state for whoever reads them after rt-core exits.
        if self.program.is_some() {
            self.state = PlcState::Empty;
            self.publish_outputs(true);
            self.shm.header.state.store(PlcState::Empty as u32, Ordering::Release);
        }
    }
}

/// Turns a forced value as it arrived into the program's native bytes for `var`.
fn prepare_force(
    program: &LoadedProgram,
    var: u32,
    value: &[u8],
    big_endian: bool,
) -> Result<ForcedVar, CommandStatus> {
    let size = program.var_size(var) as usize;
    if size == 0 {
        return Err(CommandStatus::BadVariable);
    }
    if size > MAX_FORCE_BYTES {
        return Err(CommandStatus::BadValue);
    }
    let mut forced = ForcedVar { var, len: size as u32, bytes: [0; 256] };
    let out = &mut forced.bytes[..size];
    match program.var_kind(var) {
        VarKind::Scalar => {
            if big_endian {
                // The Editor sends integers and reals big-endian at their natural width.
                if value.len() != size {
                    return Err(CommandStatus::BadValue);
                }
                for (o, v) in out.iter_mut().zip(value.iter().rev()) {
                    *o = *v;
                }
            } else {
                if value.len() > size {
                    return Err(CommandStatus::BadValue);
                }
                out[..value.len()].copy_from_slice(value);
            }
        }
        VarKind::Timespec => {
            // 8 bytes: i32 seconds + i32 nanoseconds (the Editor's TIME encoding);
            // 16 bytes: the native {i64, i64} layout.
            let (sec, nsec) = match value.len() {
                8 => {
                    let s: [u8; 4] = value[..4].try_into().map_err(|_| CommandStatus::BadValue)?;
                    let n: [u8; 4] = value[4..].try_into().map_err(|_| CommandStatus::BadValue)?;
                    if big_endian {
                        (i32::from_be_bytes(s) as i64, i32::from_be_bytes(n) as i64)
                    } else {
                        (i32::from_le_bytes(s) as i64, i32::from_le_bytes(n) as i64)
                    }
                }
                16 => {
                    let s: [u8; 8] = value[..8].try_into().map_err(|_| CommandStatus::BadValue)?;
                    let n: [u8; 8] = value[8..].try_into().map_err(|_| CommandStatus::BadValue)?;
                    if big_endian {
                        (i64::from_be_bytes(s), i64::from_be_bytes(n))
                    } else {
                        (i64::from_le_bytes(s), i64::from_le_bytes(n))
                    }
                }
                _ => return Err(CommandStatus::BadValue),
            };
            if size != 16 {
                return Err(CommandStatus::BadValue);
            }
            out[..8].copy_from_slice(&sec.to_ne_bytes());
            out[8..].copy_from_slice(&nsec.to_ne_bytes());
        }
        VarKind::String | VarKind::Opaque => {
            // Never byte-swapped; a short value is zero-padded.
            if value.len() > size {
                return Err(CommandStatus::BadValue);
            }
            out[..value.len()].copy_from_slice(value);
        }
    }
    Ok(forced)
}
