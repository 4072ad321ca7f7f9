//! Per-task statistics of a program with several IEC tasks, each on its own real-time thread
//! (rt-core's `tasks`): one record per task and one wake-up latency histogram per task.
//!
//! Writers: rt-core's dispatcher (the scan thread) writes `records` and `histograms` (the task
//! threads hand their figures to it when a run ends); task thread `i` writes only its own
//! `in_program_since_ns[i]` (the watchdog's stamp) and `tids[i]`. Readers: the companion, the
//! control tool and rt-core's watchdog. A program run on the scan thread alone has `count` 0.

use crate::program::TASK_NAME_BYTES;
use crate::seqlock::SeqLock;
use crate::stats::{Histogram, Stats};
use bytemuck::{Pod, Zeroable};
use core::sync::atomic::{AtomicU32, AtomicU64};

/// Tasks a program may have on threads of their own (more: it runs on the scan thread).
pub const MAX_TASKS: usize = 16;

/// One task's description and figures.
///
/// `stats` keeps the scan's meaning per task: `scan_count` completed runs, `overruns`
/// releases that found the task still running (skipped, never queued), `scan_time` the run
/// from wake-up to end, `cycle_time` start to start, `latency` wake-up minus release time on
/// the tick grid, `period_ns` the task's interval.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct TaskRecord {
    /// NUL-terminated.
    pub name: [u8; TASK_NAME_BYTES],
    pub interval_ns: u64,
    /// As declared (IEC: 0 most urgent).
    pub iec_priority: i32,
    /// The SCHED_FIFO priority its thread runs at (0: refused, normal priority).
    pub fifo_priority: i32,
    /// The CPU its thread is pinned to, -1 when not pinned.
    pub cpu: i32,
    pub tid: u32,
    pub stats: Stats,
}

impl TaskRecord {
    pub fn name_str(&self) -> &str {
        let end = self.name.iter().position(|&b| b == 0).unwrap_or(self.name.len());
        core::str::from_utf8(&self.name[..end]).unwrap_or("")
    }
}

/// Every task of the running program.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct TaskRecords {
    /// The program these records belong to (`header.program_gen`), 0 when none.
    pub program_gen: u32,
    /// Tasks on threads of their own (0: the program runs on the scan thread).
    pub count: u32,
    pub tasks: [TaskRecord; MAX_TASKS],
}

impl TaskRecords {
    /// The records in use.
    pub fn active(&self) -> &[TaskRecord] {
        &self.tasks[..(self.count as usize).min(MAX_TASKS)]
    }

    /// The record of the task named `name` (case-insensitive, as IEC names are).
    pub fn find(&self, name: &str) -> Option<(usize, &TaskRecord)> {
        self.active().iter().enumerate().find(|(_, t)| t.name_str().eq_ignore_ascii_case(name))
    }
}

/// The region in the shared memory.
#[repr(C)]
pub struct TaskTable {
    pub records: SeqLock<TaskRecords>,
    /// Task `i`'s watchdog stamp: when its current run entered the program, 0 outside one.
    pub in_program_since_ns: [AtomicU64; MAX_TASKS],
    /// Task `i`'s thread id (for the watchdog's abort request), 0 when it has none.
    pub tids: [AtomicU32; MAX_TASKS],
    /// Task `i`'s wake-up latency, 1 µs buckets.
    pub histograms: [Histogram; MAX_TASKS],
}

impl TaskTable {
    /// Only for the creator of the shared memory, before anyone else can see it.
    pub fn init(&mut self) {
        self.records.init();
    }
}
