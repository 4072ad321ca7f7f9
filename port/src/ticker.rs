//! The thread that wakes async waiters when rt-core publishes a change: a cycle's queued
//! writes applied (at the start of the cycle, before its scan) or a cycle ended (the loop
//! counter). rt-core's scan thread makes no system call, so nothing can wake us from its
//! side: the ticker looks at the header while anyone waits, and parks otherwise.
//!
//! Looking often costs CPU, looking seldom costs latency, and the changes come at known
//! times: rt-core's cycles start on a fixed grid (one deadline per period, a late cycle
//! skips rather than shifts it). So the ticker learns where in the period the changes come
//! ([`Phase`]: the earliest of the last few cycle ends, which rt-core stamps exactly, and
//! of the cycle starts it saw, each noted at the look before it was seen), sleeps until
//! [`LEAD`] before the next one is due, then looks every [`FINE_STEP`] until that cycle
//! has ended. A write is thus
//! answered within about a step of the start of the cycle that applied it, with a handful
//! of looks per cycle whatever the period. Its timer slack is cut to 1 µs (Linux stretches
//! a normal thread's sleeps by up to 50 µs to batch wake-ups).

use crate::port::PlcPort;
use crate::wait::ALIVE_PROBE;
use shared_abi::client::Reader;
use shared_abi::shm::monotonic_ns;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::thread::Thread;
use std::time::Duration;
use tokio::sync::watch;

/// How long before a change is due the ticker starts looking every [`FINE_STEP`] (a
/// quarter of the period at most, as [`LATE_WINDOW`]).
const LEAD: u64 = 150_000;
/// How often it looks while a change is due.
const FINE_STEP: u64 = 20_000;
/// How long past a due change it keeps looking every [`FINE_STEP`] (rt-core late, a long
/// scan); after that, every tenth of a period.
const LATE_WINDOW: u64 = 500_000;
/// How long the ticker parks while nobody waits (it is woken when someone starts).
const IDLE: Duration = Duration::from_millis(100);
/// Cycle times remembered to find the phase.
const SAMPLES: usize = 32;

/// Where in the period rt-core's changes come, from the times they were seen.
#[derive(Debug, Default)]
pub(crate) struct Phase {
    period: u64,
    /// Times modulo the period.
    samples: [u64; SAMPLES],
    len: usize,
    newest: usize,
}

impl Phase {
    /// A change at `at_ns` (CLOCK_MONOTONIC) with the loop at `period` ns.
    pub fn note(&mut self, at_ns: u64, period: u64) {
        if period == 0 {
            return;
        }
        if period != self.period {
            *self = Phase { period, ..Phase::default() };
        }
        self.newest = (self.newest + 1) % SAMPLES;
        self.samples[self.newest] = at_ns % period;
        self.len = (self.len + 1).min(SAMPLES);
    }

    /// The earliest point of the period a change was seen at, modulo the period (measured
    /// around the newest sample, since the samples of one grid lie close together).
    fn earliest(&self) -> Option<u64> {
        if self.len == 0 {
            return None;
        }
        let p = self.period as i128;
        let r = self.samples[self.newest] as i128;
        let signed = |x: u64| {
            let d = (x as i128 - r).rem_euclid(p);
            if d > p / 2 { d - p } else { d }
        };
        let min = (0..self.len).map(|k| signed(self.samples[(self.newest + SAMPLES - k) % SAMPLES])).min()?;
        Some((r + min).rem_euclid(p) as u64)
    }

    /// When the first change after the cycle that ended at `last_end_ns` is due.
    pub fn next_due(&self, last_end_ns: u64, period: u64) -> u64 {
        match self.earliest().filter(|_| period == self.period && period != 0) {
            Some(phase) => {
                let mut due = last_end_ns - last_end_ns % period + phase;
                if due <= last_end_ns {
                    due += period;
                }
                due
            }
            None => last_end_ns.saturating_add(period),
        }
    }

    /// How long to sleep at `now_ns` when the next change is due at `due_ns`.
    pub fn nap(now_ns: u64, due_ns: u64, period: u64) -> Duration {
        // Short periods: close looks over half the period at most.
        let (lead, late) = (LEAD.min(period / 4), LATE_WINDOW.min(period / 4));
        let ns = if period == 0 {
            50_000
        } else if now_ns + lead < due_ns {
            (due_ns - lead - now_ns).min(ALIVE_PROBE.as_nanos() as u64)
        } else if now_ns < due_ns + late {
            FINE_STEP
        } else {
            (period / 10).clamp(FINE_STEP, 1_000_000)
        };
        Duration::from_nanos(ns)
    }
}

struct TickShared {
    /// Bumped at every change seen.
    tx: watch::Sender<u64>,
    waiters: AtomicUsize,
    stop: AtomicBool,
}

/// Wakes async waiters at every change rt-core publishes, promptly, while there are any.
pub(crate) struct Ticker {
    shared: Arc<TickShared>,
    thread: Option<Thread>,
}

/// An async waiter's subscription; counted so the ticker runs only while someone waits.
pub(crate) struct Ticks<'a> {
    pub rx: watch::Receiver<u64>,
    shared: &'a TickShared,
}

impl Drop for Ticks<'_> {
    fn drop(&mut self) {
        self.shared.waiters.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Ticker {
    pub fn start(port: Weak<PlcPort>) -> Ticker {
        let shared = Arc::new(TickShared {
            tx: watch::channel(0).0,
            waiters: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("plc-port-ticker".into())
            .spawn(move || tick(&s, &port))
            .map(|h| h.thread().clone());
        // Without the thread, async waits still end: they look again every ALIVE_PROBE.
        Ticker { shared, thread: thread.ok() }
    }

    pub fn subscribe(&self) -> Ticks<'_> {
        let rx = self.shared.tx.subscribe();
        self.shared.waiters.fetch_add(1, Ordering::AcqRel);
        if let Some(t) = &self.thread {
            t.unpark();
        }
        Ticks { rx, shared: &self.shared }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(t) = &self.thread {
            t.unpark();
        }
    }
}

/// What the ticker last saw of the header.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Seen {
    heartbeat: u64,
    writes_applied: u64,
}

fn tick(shared: &TickShared, port: &Weak<PlcPort>) {
    // Best effort: without it, each step is up to 50 µs longer.
    let _ = nix::sys::prctl::set_timerslack(1_000);
    let mut seen = Seen { heartbeat: 0, writes_applied: 0 };
    let mut phase = Phase::default();
    let mut last_look = 0u64;
    while !shared.stop.load(Ordering::Acquire) {
        if shared.waiters.load(Ordering::Acquire) == 0 {
            std::thread::park_timeout(IDLE);
            last_look = 0;
            continue;
        }
        let Some(port) = port.upgrade() else { return };
        let observer = port.observer();
        drop(port);
        let Some(observer) = observer else {
            // Detached: waits fail on their own; look again now and then.
            std::thread::sleep(Duration::from_millis(1));
            continue;
        };
        let h = &observer.shm().header;
        let now = Seen {
            writes_applied: h.writes_applied.load(Ordering::Acquire),
            heartbeat: h.heartbeat.load(Ordering::Acquire),
        };
        let last_end = h.last_cycle_ns.load(Ordering::Acquire);
        let period = h.period_ns.load(Ordering::Acquire);
        let t = monotonic_ns();
        if now != seen {
            shared.tx.send_modify(|n| *n = n.wrapping_add(1));
            if now.heartbeat != seen.heartbeat {
                // A cycle ended: rt-core stamped the moment.
                phase.note(last_end, period);
            } else {
                // A cycle started (its writes applied) since the last look: note the
                // earliest it can have been, so the next window opens in time for it (a
                // sample from a long nap is too early, and ages out of the window).
                phase.note(if last_look == 0 { t } else { last_look }, period);
            }
            seen = now;
        }
        last_look = t;
        std::thread::sleep(Phase::nap(t, phase.next_due(last_end, period), period));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: u64 = 10_000_000;

    #[test]
    fn the_phase_is_the_earliest_change_seen() {
        let mut phase = Phase::default();
        assert_eq!(phase.next_due(5 * P + 300_000, P), 6 * P + 300_000, "no samples: a period after the last end");
        // Cycle ends at 300 µs into the period; starts seen at 290 µs (late by up to a step).
        for k in 0..10 {
            phase.note(k * P + 300_000, P);
            phase.note(k * P + 290_000 + (k % 3) * 5_000, P);
        }
        assert_eq!(phase.earliest(), Some(290_000));
        assert_eq!(phase.next_due(20 * P + 300_000, P), 21 * P + 290_000, "the next cycle's start");
        // A period change starts over.
        phase.note(7_000, 2 * P);
        assert_eq!(phase.earliest(), Some(7_000));
    }

    #[test]
    fn the_phase_is_found_across_the_period_boundary() {
        let mut phase = Phase::default();
        for (k, offset) in [(1, P - 20_000), (2, 10_000), (3, P - 40_000), (4, 5_000)] {
            phase.note(k * P + offset, P);
        }
        assert_eq!(phase.earliest(), Some(P - 40_000));
        assert_eq!(phase.next_due(6 * P + 5_000, P), 7 * P - 40_000);
    }

    #[test]
    fn naps_are_long_until_a_change_is_due_then_short() {
        let due = 100 * P;
        assert_eq!(Phase::nap(due - P / 2, due, P), Duration::from_nanos(P / 2 - LEAD));
        assert_eq!(Phase::nap(due - 100 * P, due, 100 * P), ALIVE_PROBE, "at most ALIVE_PROBE");
        assert_eq!(Phase::nap(due - LEAD, due, P), Duration::from_nanos(FINE_STEP));
        assert_eq!(Phase::nap(due + 100_000, due, P), Duration::from_nanos(FINE_STEP));
        assert_eq!(Phase::nap(due + 2 * LATE_WINDOW, due, P), Duration::from_millis(1), "long late: a tenth");
        assert_eq!(Phase::nap(0, 0, 0), Duration::from_micros(50), "no period known");
        // A 200 µs period: close looks from 50 µs before to 50 µs after, a tenth otherwise.
        let (p, due) = (200_000, 1_000_000);
        assert_eq!(Phase::nap(due - 120_000, due, p), Duration::from_micros(70));
        assert_eq!(Phase::nap(due - 40_000, due, p), Duration::from_nanos(FINE_STEP));
        assert_eq!(Phase::nap(due + 60_000, due, p), Duration::from_nanos(FINE_STEP));
    }
}
