//! The dispatcher: the scan cycle of a program whose tasks run on threads of their own
//! (`crate::tasks`). At each base tick, on the scan thread:
//!
//! 1. variable writes and forces, as for any scan;
//! 2. every run that ended since the last tick is collected: its located outputs are copied
//!    into the image (`task_outputs`, while the task is idle) and its figures recorded;
//! 3. every task due at this tick (tick a multiple of its divisor) is released: its located
//!    inputs are copied from the image (`task_inputs`, while it is still idle), then its
//!    thread is woken for this grid point. A task still running is not released: an overrun
//!    of that task, counted, never queued;
//! 4. the image's outputs are published as for any scan, then each task's record.
//!
//! So each run of a task sees one input snapshot (the image at its release) and its outputs
//! reach the published image all together, at the first tick after the run ended. Only this
//! thread touches the image, the shared memory's task records and histograms.

use super::Engine;
use super::faults::{live, stamped};
use crate::guard::Fault;
use crate::tasks::slot::IDLE;
use bytemuck::Zeroable;
use shared_abi::program::TASK_NAME_BYTES;
use shared_abi::stats::Stats;
use shared_abi::tasks::{MAX_TASKS, TaskRecord};
use std::sync::atomic::Ordering;

/// The dispatcher's per-task figures (the task records it publishes).
pub(super) struct TaskBooks {
    /// The program these belong to (0: to be set up at the next dispatch).
    program_gen: u32,
    count: usize,
    records: [TaskRecord; MAX_TASKS],
    /// When each task last woke, for its start-to-start time.
    prev_wake: [u64; MAX_TASKS],
}

impl TaskBooks {
    pub(super) fn new() -> TaskBooks {
        TaskBooks { program_gen: 0, count: 0, records: [TaskRecord::zeroed(); MAX_TASKS], prev_wake: [0; MAX_TASKS] }
    }
}

impl Engine {
    /// Forgets the figures (a reset or a swap) and clears what readers see.
    pub(super) fn reset_task_books(&mut self) {
        self.task_books.program_gen = 0;
        self.task_books.count = 0;
        for h in &self.shm.tasks.histograms {
            h.reset();
        }
        self.publish_task_records();
    }

    /// Sets the books up for the running program's tasks.
    fn open_task_books(&mut self) {
        let Some(program) = self.program.as_deref() else { return };
        let (Some(tasks), Some(threads)) = (program.tasks(), program.task_threads()) else { return };
        let books = &mut self.task_books;
        books.program_gen = program.info().program_gen;
        books.count = tasks.descs().len().min(MAX_TASKS);
        let since = crate::sys::now_ns();
        for (i, desc) in tasks.descs().iter().take(MAX_TASKS).enumerate() {
            let (fifo, cpu) = threads.placement(i);
            let mut r = TaskRecord::zeroed();
            let n = desc.info.name.len().min(TASK_NAME_BYTES);
            r.name[..n].copy_from_slice(&desc.info.name[..n]);
            r.name[TASK_NAME_BYTES - 1] = 0;
            r.interval_ns = desc.divisor * program.period_ns();
            r.iec_priority = desc.info.priority;
            r.fifo_priority = fifo;
            r.cpu = cpu;
            r.tid = self.shm.tasks.tids[i].load(Ordering::Acquire);
            r.stats = Stats { period_ns: r.interval_ns, since_ns: since, ..Stats::zeroed() };
            books.records[i] = r;
            books.prev_wake[i] = 0;
        }
    }

    fn publish_task_records(&self) {
        let books = &self.task_books;
        // SAFETY: the engine (the scan thread) is the single writer of the task records.
        unsafe {
            self.shm.tasks.records.write(|r| {
                r.program_gen = books.program_gen;
                r.count = books.count as u32;
                r.tasks[..books.count].copy_from_slice(&books.records[..books.count]);
            })
        };
    }

    /// One base tick of a program whose tasks run on threads: see the module's comment.
    /// `false` when the program has no task threads (the caller scans it instead).
    pub(super) fn dispatch(&mut self, deadline_ns: u64, wake_ns: u64) -> bool {
        let has_threads = self.program.as_deref().is_some_and(|p| p.task_threads().is_some());
        if !has_threads {
            return false;
        }
        let program_gen = self.program.as_deref().map_or(0, |p| p.info().program_gen);
        if self.task_books.program_gen != program_gen {
            self.open_task_books();
        }
        let tick = self.tick;
        let mut fault: Option<Fault> = None;
        let mut overruns = 0u64;
        {
            let (forces, set_vars, books, shm) = (&self.forces, &mut self.set_vars, &mut self.task_books, self.shm);
            let Some(program) = live(self.state, &mut self.program) else { return true };
            let result = stamped(shm, program, wake_ns, |program| {
                program.write_vars(set_vars)?;
                program.apply_forces(forces)
            });
            set_vars.clear();
            if let Err(f) = result {
                fault = Some(f);
            }
            for i in 0..books.count {
                if fault.is_some() {
                    break;
                }
                let Some(slot) = program.task_threads().and_then(|t| t.slot(i)) else { continue };
                // Collect the run that ended.
                if let Some(report) = slot.take_report() {
                    if let Some(f) = report.fault {
                        fault = Some(f);
                        break;
                    }
                    if let Err(f) = stamped(shm, program, wake_ns, |p| p.task_outputs(i as u32)) {
                        fault = Some(f);
                        break;
                    }
                    let r = &mut books.records[i];
                    let latency = report.wake_ns.saturating_sub(report.release_ns);
                    r.stats.scan_count += 1;
                    r.stats.latency.record(latency);
                    r.stats.scan_time.record(report.end_ns.saturating_sub(report.wake_ns));
                    if books.prev_wake[i] != 0 {
                        r.stats.cycle_time.record(report.wake_ns.saturating_sub(books.prev_wake[i]));
                    }
                    books.prev_wake[i] = report.wake_ns;
                    shm.tasks.histograms[i].record(latency);
                }
                let divisor = program.tasks().map_or(1, |t| t.descs()[i].divisor);
                if !tick.is_multiple_of(divisor) {
                    continue;
                }
                let idle = program.task_threads().and_then(|t| t.slot(i)).is_some_and(|s| s.state() == IDLE);
                if !idle {
                    // Still running (or its report not yet collected): skipped, not queued.
                    let r = &mut books.records[i];
                    r.stats.overruns += 1;
                    r.stats.skipped_periods += 1;
                    overruns += 1;
                    continue;
                }
                if let Err(f) = stamped(shm, program, wake_ns, |p| p.task_inputs(i as u32)) {
                    fault = Some(f);
                    break;
                }
                if let Some(slot) = program.task_threads().and_then(|t| t.slot(i)) {
                    slot.release(tick, deadline_ns);
                }
            }
        }
        if overruns > 0 {
            self.overruns_unreported += overruns;
        }
        match fault {
            Some(f) => self.program_faulted(f, wake_ns),
            None => {
                self.tick += 1;
                self.stats.scan_count += 1;
                self.publish_outputs(false);
                if self.tick.is_multiple_of(self.retain_every) {
                    self.publish_retain();
                }
            }
        }
        self.publish_task_records();
        true
    }
}
