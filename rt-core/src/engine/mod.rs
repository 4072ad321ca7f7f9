//! One scan cycle's work, with no sleeping and no clock of its own beyond reading the time:
//! commands → program swap → inputs → writes → variable writes → forces → program → forces
//! → outputs → debug values → stats → next deadline. The scan thread calls `run_cycle`
//! after each wake-up; tests and benches call it directly.
//!
//! Nothing here allocates, locks or blocks once the engine is built: every buffer is sized
//! up front, programs arrive and leave as boxes moved through wait-free queues, and the
//! loader thread (never this one) frees what is retired.
//!
//! - [`commands`]: the client's commands, forces, variable writes and program swaps.
//! - [`io`]: inputs, image writes, outputs and RETAIN values.
//! - [`debug`]: the watched debug values.
//! - [`faults`]: a program that ends a call its own way (ERROR, restart in place).
//! - [`online`]: an online change's values carried from the old instance at the swap.
//! - [`stats`]: statistics and overrun reports.
//! - [`dispatch`]: the base tick of a program whose tasks run on threads of their own.

mod commands;
mod debug;
mod dispatch;
mod faults;
mod io;
mod online;
mod stats;

use faults::{live, stamped};

use crate::program::LoadedProgram;
use crate::queue::LoaderLink;
use crate::restart::{self, RestartKind};
use crate::sys;
use bytemuck::Zeroable;
use debug::DebugPublisher;
use heapless::Vec as FixedVec;
use shared_abi::debug::ForcedValue;
use shared_abi::layout::{OutputSnapshot, PlcState, SharedMemory};
use shared_abi::msg::{Event, FaultCause, MAX_PATH};
use shared_abi::shm::{CommandConsumer, EventProducer, LogProducer, RtEnds, WriteConsumer};
use shared_abi::stats::Stats;
use std::sync::atomic::Ordering;

/// Variables that can be forced at once.
pub use shared_abi::debug::MAX_FORCES;
pub use shared_abi::msg::{MAX_COMMANDS_PER_CYCLE, MAX_WRITES_PER_CYCLE};
/// Overrun reports are sent at most this often.
const OVERRUN_REPORT_NS: u64 = 1_000_000_000;
/// How often the running program's RETAIN values are published (they are also published
/// when it stops, is unloaded or swapped out).
const RETAIN_PUBLISH_NS: u64 = 100_000_000;

/// The engine's ends of the shared-memory rings (from [`RtEnds`], which hands them out once
/// per mapping: holding them proves the engine is their only consumer or producer).
pub struct EngineRings<'a> {
    pub commands: CommandConsumer<'a>,
    pub writes: WriteConsumer<'a>,
    pub events: EventProducer<'a>,
}

impl<'a> EngineRings<'a> {
    /// Splits rt-core's ring ends: the engine's, and the log producer for the loader.
    pub fn split(ends: RtEnds<'a>) -> (EngineRings<'a>, LogProducer<'a>) {
        (EngineRings { commands: ends.commands, writes: ends.writes, events: ends.events }, ends.logs)
    }
}

/// What the scan loop needs after a cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CycleEnd {
    /// The next absolute deadline (CLOCK_MONOTONIC ns).
    pub next_deadline_ns: u64,
    /// A `Shutdown` command arrived.
    pub shutdown: bool,
    /// A fault this cycle needs rt-core to restart in place (`restart`).
    pub restart: Option<RestartKind>,
}

/// How the engine starts.
pub struct EngineConfig {
    /// The loop's period while no program is loaded.
    pub idle_period_ns: u64,
}

pub struct Engine {
    shm: &'static SharedMemory,
    rings: EngineRings<'static>,
    loader: LoaderLink,
    program: Option<Box<LoadedProgram>>,
    /// A retired program the loader queue had no room for yet.
    retiring: Option<Box<LoadedProgram>>,
    state: PlcState,
    /// Scans of the current program since it was loaded (the program's and debugger's tick).
    tick: u64,
    next_program_gen: u32,
    load_pending: bool,
    forces: FixedVec<ForcedValue, MAX_FORCES>,
    /// `SetVar` values waiting for the next scan.
    set_vars: FixedVec<ForcedValue, MAX_COMMANDS_PER_CYCLE>,
    debug: DebugPublisher,
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
    /// A fault that needs a restart in place, requested at the end of the cycle.
    restart: Option<(RestartKind, FaultCause, u64)>,
    /// Per-task figures of a program whose tasks run on threads of their own.
    task_books: dispatch::TaskBooks,
}

impl Engine {
    /// Takes rt-core's ends of the shared memory. Commands and writes already queued (a
    /// client may send as soon as the file exists, or a dead predecessor's client left them)
    /// are processed like any other: dropping them would lose a live client's command.
    pub fn new(
        shm: &'static SharedMemory,
        rings: EngineRings<'static>,
        loader: LoaderLink,
        config: EngineConfig,
    ) -> Box<Engine> {
        let previous_gen = shm.header.program_gen.load(Ordering::Acquire);
        let mut engine = Box::new(Engine {
            shm,
            rings,
            loader,
            program: None,
            retiring: None,
            state: PlcState::Empty,
            tick: 0,
            next_program_gen: previous_gen.wrapping_add(1).max(1),
            load_pending: false,
            forces: FixedVec::new(),
            set_vars: FixedVec::new(),
            debug: DebugPublisher::new(),
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
            restart: None,
            task_books: dispatch::TaskBooks::new(),
        });
        engine.reset_published_state();
        engine
    }

    /// Clears what a previous rt-core left in the regions this engine writes, except the
    /// live copies a warm load gives back (RETAIN values, forces).
    fn reset_published_state(&mut self) {
        let h = &self.shm.header;
        h.state.store(PlcState::Empty as u32, Ordering::Release);
        h.program_gen.store(0, Ordering::Release);
        h.period_ns.store(self.idle_period_ns, Ordering::Release);
        h.in_program_since_ns.store(0, Ordering::Release);
        self.shm.control.forced_count.store(0, Ordering::Release);
        // SAFETY: the engine is the single writer of these regions (its rings prove it is
        // rt-core's engine, and rt-core makes one).
        unsafe {
            self.shm.program.write(|p| *p = Zeroable::zeroed());
            // The head only (its sizes zero): no table is read past them, and writing the
            // tables would bring back pages `residency` gave back.
            self.shm.outputs.write(|o| bytemuck::bytes_of_mut(o)[..OutputSnapshot::HEAD_BYTES].fill(0));
        }
        self.stats.period_ns = self.idle_period_ns;
        self.publish_stats();
        self.shm.histogram.reset();
    }

    /// Asks the loader for a program before the loop starts (`openplc-rt run --load`, or
    /// the program a restart in place reloads, warm).
    pub fn request_initial_load(
        &mut self,
        path: &str,
        start: bool,
        warm: bool,
        image: shared_abi::sizes::ImageRequest,
    ) -> bool {
        let path = shared_abi::msg::bounded::<MAX_PATH>(path);
        self.request_load(0, path, start, warm, false, image)
    }

    /// Starts in ERROR (a restart in place after a fault): nothing runs until a load.
    pub fn enter_error(&mut self) {
        self.set_state(PlcState::Error);
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
        {
            let h = &self.shm.header;
            h.cycles_begun.store(h.heartbeat.load(Ordering::Relaxed) + 1, Ordering::Release);
        }
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
            self.scan(deadline_ns, wake_ns);
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
        // Last, once the fault's event, the ERROR state and the safe outputs are out.
        let restart = self.restart.map(|(kind, cause, ran_ms)| {
            restart::request(kind, Some(cause), ran_ms);
            kind
        });
        CycleEnd { next_deadline_ns: next, shutdown: self.shutdown, restart }
    }

    fn scan(&mut self, deadline_ns: u64, wake_ns: u64) {
        if self.dispatch(deadline_ns, wake_ns) {
            return;
        }
        let tick = self.tick;
        // A variable written once may be a located input: the next cycle gives it back its
        // input's value (the image copies only the lines that changed otherwise).
        self.inputs_stale |= !self.set_vars.is_empty();
        let (forces, set_vars) = (&self.forces, &mut self.set_vars);
        let Some(program) = live(self.state, &mut self.program) else { return };
        let result = stamped(self.shm, program, wake_ns, |program| {
            // Variable writes first, then forces (a forced variable keeps its forced value).
            program.write_vars(set_vars)?;
            program.apply_forces(forces)?;
            program.run_tick(tick)?;
            // Again after the body, so the program cannot overwrite a forced value.
            program.apply_forces(forces)
        });
        set_vars.clear();
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

    fn set_state(&mut self, state: PlcState) {
        if self.state != state {
            self.state = state;
            self.shm.header.state.store(state as u32, Ordering::Release);
            self.emit(Event::StateChanged { state, cycle: self.shm.header.heartbeat.load(Ordering::Relaxed) });
        }
        self.update_resumable();
    }

    fn emit(&mut self, event: Event) {
        // A full ring is counted by the ring itself; the scan never waits for the reader.
        let _ = self.rings.events.push(&event);
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
