//! The hand-off between the dispatcher (the scan thread) and one task thread: a futex word
//! that says who owns the task right now, the release it was given, and the report of its
//! last run. Ownership passes with the word's Release/Acquire pairs, so each side touches
//! the report only while it owns it: no lock, no allocation, and the task thread's only
//! system call is the futex wait for its next release.

use crate::guard::Fault;
use crate::sys;
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};

/// Waiting for a release; the dispatcher owns the task's variables.
pub const IDLE: u32 = 0;
/// Released: the task thread owns the task until it stores `DONE`.
pub const RELEASED: u32 = 1;
/// The run ended; its report waits for the dispatcher, which then stores `IDLE`.
pub const DONE: u32 = 2;
/// The thread is to end.
pub const EXIT: u32 = 3;

/// What one run of the task was like.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunReport {
    /// The release this run answered (CLOCK_MONOTONIC ns on the tick grid).
    pub release_ns: u64,
    pub wake_ns: u64,
    pub end_ns: u64,
    pub fault: Option<Fault>,
}

/// Whether the thread came up.
pub const STARTING: u32 = 0;
pub const READY: u32 = 1;
pub const FAILED: u32 = 2;

pub struct TaskSlot {
    state: AtomicU32,
    release_tick: AtomicU64,
    release_ns: AtomicU64,
    report: UnsafeCell<RunReport>,
    pub(super) ready: AtomicU32,
    /// The SCHED_FIFO priority the thread got (0: refused).
    pub(super) fifo: AtomicI32,
    /// The CPU it is pinned to, -1 when not pinned.
    pub(super) cpu: AtomicI32,
}

// SAFETY: `report` is written only by the task thread between its Acquire load of RELEASED
// and its Release store of DONE, and read only by the dispatcher after its Acquire load of
// DONE and before its store of IDLE (`take_report`): never by both at once.
unsafe impl Sync for TaskSlot {}

impl TaskSlot {
    pub fn new() -> TaskSlot {
        TaskSlot {
            state: AtomicU32::new(IDLE),
            release_tick: AtomicU64::new(0),
            release_ns: AtomicU64::new(0),
            report: UnsafeCell::new(RunReport::default()),
            ready: AtomicU32::new(STARTING),
            fifo: AtomicI32::new(0),
            cpu: AtomicI32::new(-1),
        }
    }

    pub fn state(&self) -> u32 {
        self.state.load(Ordering::Acquire)
    }

    /// Dispatcher: releases an `IDLE` task for base tick `tick` due at `release_ns`.
    pub fn release(&self, tick: u64, release_ns: u64) {
        self.release_tick.store(tick, Ordering::Relaxed);
        self.release_ns.store(release_ns, Ordering::Relaxed);
        self.state.store(RELEASED, Ordering::Release);
        sys::futex_wake(&self.state);
    }

    /// Dispatcher: takes the report of a `DONE` run and makes the task `IDLE` again.
    pub fn take_report(&self) -> Option<RunReport> {
        if self.state.load(Ordering::Acquire) != DONE {
            return None;
        }
        // SAFETY: DONE was loaded with Acquire: the task thread wrote the report before its
        // Release store and touches it again only after the next release.
        let report = unsafe { *self.report.get() };
        self.state.store(IDLE, Ordering::Release);
        Some(report)
    }

    /// Asks the thread to end (after its current run, if any).
    pub fn exit(&self) {
        self.state.store(EXIT, Ordering::Release);
        sys::futex_wake(&self.state);
    }

    /// Task thread: waits for a release; `Some((tick, release_ns))`, or `None` to end.
    pub(super) fn wait_release(&self) -> Option<(u64, u64)> {
        loop {
            match self.state.load(Ordering::Acquire) {
                RELEASED => {
                    return Some((self.release_tick.load(Ordering::Relaxed), self.release_ns.load(Ordering::Relaxed)));
                }
                EXIT => return None,
                other => sys::futex_wait(&self.state, other),
            }
        }
    }

    /// Task thread: hands the run's report over.
    pub(super) fn finish(&self, report: RunReport) {
        // SAFETY: the thread owns the slot (RELEASED, loaded with Acquire in wait_release)
        // until the Release store below; an EXIT stored meanwhile keeps it EXIT (the CAS
        // fails) and nobody reads the report any more.
        unsafe { *self.report.get() = report };
        let _ = self.state.compare_exchange(RELEASED, DONE, Ordering::Release, Ordering::Relaxed);
    }
}

impl Default for TaskSlot {
    fn default() -> Self {
        Self::new()
    }
}
