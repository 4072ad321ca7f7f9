//! The watchdog thread: aborts a program that stays inside one call for too long (on the
//! scan thread, or on a task thread: each task is watched against its own interval).
//!
//! The scan thread stamps `in_program_since_ns` around every call into program code. When
//! a stamp is older than the limit, the watchdog asks the scan thread to abort that run: a
//! SIGUSR2 queued with the stamp as its value, which the crash guard honours only while the
//! same stamp is still set (a request that arrives after the program returned, or during
//! the next call, is ignored: no time-of-check to time-of-use window). The request is
//! repeated every poll until the run ends. The engine then puts the PLC in ERROR with its
//! outputs in the safe state, and restarts rt-core in place if the abort landed outside the
//! program's own code. If even that does not end the run (the program blocked the signal,
//! or rt-core itself is stuck), the watchdog has rt-core restart in place (same pid); if
//! that fails too, the process exits with code 42 so the companion's supervisor restarts it.

use crate::guard;
use crate::restart::{self, RestartKind};
use crate::sys;
use shared_abi::layout::SharedMemory;
use shared_abi::tasks::{MAX_TASKS, TaskRecords};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const POLL: Duration = Duration::from_millis(20);
/// The automatic limit: this many scan periods…
const AUTO_PERIODS: u64 = 10;
/// …but never below this (host stalls of tens of ms are normal on VMs).
const AUTO_FLOOR_NS: u64 = 500_000_000;

/// The limit in force for a given period.
pub fn limit_ns(watchdog_ms: u64, period_ns: u64) -> u64 {
    if watchdog_ms > 0 { watchdog_ms * 1_000_000 } else { (period_ns * AUTO_PERIODS).max(AUTO_FLOOR_NS) }
}

pub fn run(shm: &'static SharedMemory, watchdog_ms: u64, stop: Arc<AtomicBool>) {
    let h = &shm.header;
    let mut signalled_for = 0u64;
    let mut tasks = TaskWatch { records: bytemuck::zeroed_box(), signalled_for: [0; MAX_TASKS] };
    while !stop.load(Ordering::Acquire) {
        std::thread::sleep(POLL);
        tasks.check(shm, watchdog_ms);
        let since = h.in_program_since_ns.load(Ordering::Acquire);
        if since == 0 {
            continue;
        }
        let limit = limit_ns(watchdog_ms, h.period_ns.load(Ordering::Relaxed));
        let ran = sys::now_ns().saturating_sub(since);
        if ran <= limit {
            continue;
        }
        let tid = h.scan_tid.load(Ordering::Acquire);
        if signalled_for != since {
            signalled_for = since;
            eprintln!(
                "openplc-rt: [ERROR] program scan running for {} ms (limit {} ms): aborting it",
                ran / 1_000_000,
                limit / 1_000_000
            );
        }
        if let Err(e) = guard::signal_watchdog(tid, since) {
            eprintln!("openplc-rt: [ERROR] cannot signal the scan thread: {e}");
        }
        if ran > 2 * limit + 1_000_000_000 {
            if restart::pending().is_none() {
                eprintln!(
                    "openplc-rt: [ERROR] the scan thread did not return after the watchdog abort; restarting in place"
                );
                restart::request(RestartKind::StuckScan, None, ran / 1_000_000);
            } else if ran > 3 * limit + 3_000_000_000 {
                eprintln!("openplc-rt: [ERROR] the restart in place did not happen; exiting (42) for a restart");
                // SAFETY: _exit ends the process without running anything else: nothing of the
                // stuck scan thread's state can be trusted any more.
                unsafe { libc::_exit(42) };
            }
        }
    }
}

/// The watchdog's view of the task threads (a program whose tasks run on threads of their
/// own): each task's run is watched like a scan, against a limit from its own interval.
struct TaskWatch {
    records: Box<TaskRecords>,
    signalled_for: [u64; MAX_TASKS],
}

impl TaskWatch {
    fn check(&mut self, shm: &'static SharedMemory, watchdog_ms: u64) {
        let t = &shm.tasks;
        if t.in_program_since_ns.iter().all(|s| s.load(Ordering::Acquire) == 0) {
            return;
        }
        if t.records.read(&mut self.records, 64).is_err() {
            return;
        }
        for (i, stamp) in t.in_program_since_ns.iter().enumerate() {
            let since = stamp.load(Ordering::Acquire);
            if since == 0 {
                continue;
            }
            let interval = self.records.tasks.get(i).map_or(0, |r| r.interval_ns);
            let period = if interval > 0 { interval } else { shm.header.period_ns.load(Ordering::Relaxed) };
            let limit = limit_ns(watchdog_ms, period);
            let ran = sys::now_ns().saturating_sub(since);
            if ran <= limit {
                continue;
            }
            if self.signalled_for[i] != since {
                self.signalled_for[i] = since;
                let name = self.records.tasks.get(i).map_or("?", |r| r.name_str());
                eprintln!(
                    "openplc-rt: [ERROR] task {name} running for {} ms (limit {} ms): aborting it",
                    ran / 1_000_000,
                    limit / 1_000_000
                );
            }
            let tid = t.tids[i].load(Ordering::Acquire);
            if tid != 0
                && let Err(e) = guard::signal_watchdog(tid, since)
            {
                eprintln!("openplc-rt: [ERROR] cannot signal task thread {tid}: {e}");
            }
            if ran > 2 * limit + 1_000_000_000 && restart::pending().is_none() {
                eprintln!(
                    "openplc-rt: [ERROR] a task thread did not return after the watchdog abort; restarting in place"
                );
                restart::request(RestartKind::StuckScan, None, ran / 1_000_000);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_automatic_limit_is_ten_periods_with_a_floor() {
        assert_eq!(limit_ns(0, 1_000_000), AUTO_FLOOR_NS);
        assert_eq!(limit_ns(0, 100_000_000), 1_000_000_000);
        assert_eq!(limit_ns(250, 100_000_000), 250_000_000);
    }
}
