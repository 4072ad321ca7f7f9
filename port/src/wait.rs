//! How the port waits for rt-core: one poll loop, in a blocking and an async flavour, that
//! ends as soon as the awaited condition holds, rt-core dies, another rt-core takes over, or
//! the time is up. No wait holds the lease.
//!
//! Async waits are woken by [`Ticker`], one plain thread that watches the loop counter at a
//! tenth of the period (50 µs to 1 ms) while anyone waits and parks otherwise: tokio's
//! timers tick in milliseconds, which would add up to a millisecond to every answer on a
//! 1 ms PLC. Blocking waits poll every [`BLOCKING_POLL`].

use crate::error::{Incarnation, PortError};
use crate::port::{PlcPort, incarnation_of};
use shared_abi::client::{Observer, Reader};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::thread::Thread;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How often a blocking wait looks again.
pub(crate) const BLOCKING_POLL: Duration = Duration::from_micros(200);
/// How often a wait probes rt-core's liveness (a `flock` system call), and the longest an
/// async wait sleeps without looking.
const ALIVE_PROBE: Duration = Duration::from_millis(50);
/// How long the ticker parks while nobody waits (it is woken when someone starts).
const TICKER_IDLE: Duration = Duration::from_millis(100);

/// One wait's hold on rt-core: the mapping, which rt-core it is waiting for, its deadline.
struct Wait {
    observer: Arc<Observer>,
    asked: Incarnation,
    what: &'static str,
    timeout: Duration,
    start: Instant,
    next_probe: Instant,
}

impl Wait {
    fn begin(
        port: &PlcPort,
        what: &'static str,
        timeout: Duration,
        asked: Option<Incarnation>,
    ) -> Result<Wait, PortError> {
        let observer = port.observer().ok_or(PortError::NotAttached)?;
        let asked = asked.unwrap_or_else(|| incarnation_of(observer.shm()));
        let start = Instant::now();
        // The first probe after one interval: most waits end before it (a probe is a few
        // system calls, and a Modbus write waits once per request).
        Ok(Wait { observer, asked, what, timeout, start, next_probe: start + ALIVE_PROBE })
    }

    /// Fails when the rt-core asked is no longer the one in the shared memory: nothing it
    /// had taken will be answered, and a successor's progress says nothing about it.
    fn same_rt(&self) -> Result<(), PortError> {
        let now = incarnation_of(self.observer.shm());
        if now == self.asked {
            return Ok(());
        }
        Err(if now.pid != 0 && self.observer.rt_alive() {
            PortError::RtReplaced { asked: self.asked, now }
        } else {
            PortError::RtGone
        })
    }

    /// Fails once rt-core is dead or the time is up.
    fn alive_and_in_time(&mut self) -> Result<(), PortError> {
        let now = Instant::now();
        if now >= self.next_probe {
            if !self.observer.rt_alive() {
                return Err(PortError::RtGone);
            }
            self.next_probe = now + ALIVE_PROBE;
        }
        if now.duration_since(self.start) >= self.timeout {
            return Err(PortError::Timeout { what: self.what, after: self.timeout });
        }
        Ok(())
    }

    fn left(&self) -> Duration {
        self.timeout.saturating_sub(self.start.elapsed())
    }
}

/// What a wait looks for: `Ok(Some(_))` done, `Ok(None)` not yet, `Err` give up.
pub(crate) type Check<'a, T> = dyn FnMut(&Observer) -> Result<Option<T>, PortError> + Send + 'a;

impl PlcPort {
    /// Polls `check` on the calling thread until it answers. `asked`: the rt-core a ticket
    /// went to (default: the one there now).
    pub(crate) fn poll_blocking<T>(
        &self,
        what: &'static str,
        timeout: Duration,
        asked: Option<Incarnation>,
        check: &mut Check<'_, T>,
    ) -> Result<T, PortError> {
        let mut wait = Wait::begin(self, what, timeout, asked)?;
        loop {
            wait.same_rt()?;
            if let Some(v) = check(&wait.observer)? {
                return Ok(v);
            }
            wait.alive_and_in_time()?;
            std::thread::sleep(BLOCKING_POLL.min(wait.left()));
        }
    }

    /// [`Self::poll_blocking`] for async callers, woken by the ticker at every new cycle.
    pub(crate) async fn poll<T>(
        &self,
        what: &'static str,
        timeout: Duration,
        asked: Option<Incarnation>,
        check: &mut Check<'_, T>,
    ) -> Result<T, PortError> {
        let mut wait = Wait::begin(self, what, timeout, asked)?;
        let mut ticks = self.ticker().subscribe();
        loop {
            wait.same_rt()?;
            if let Some(v) = check(&wait.observer)? {
                return Ok(v);
            }
            wait.alive_and_in_time()?;
            let nap = wait.left().min(ALIVE_PROBE);
            // Err: the ticker is gone with its port, which cannot be while `self` lives;
            // the timeout bounds the nap either way.
            let _ = tokio::time::timeout(nap, ticks.rx.changed()).await;
        }
    }
}

struct TickShared {
    tx: watch::Sender<u64>,
    waiters: AtomicUsize,
    stop: AtomicBool,
}

/// Publishes the loop counter to async waiters, promptly, while there are any.
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

fn tick(shared: &TickShared, port: &Weak<PlcPort>) {
    while !shared.stop.load(Ordering::Acquire) {
        if shared.waiters.load(Ordering::Acquire) == 0 {
            std::thread::park_timeout(TICKER_IDLE);
            continue;
        }
        let Some(port) = port.upgrade() else { return };
        let (cycle, period) = (port.cycle(), port.period_ns());
        drop(port);
        shared.tx.send_if_modified(|c| {
            let changed = *c != cycle;
            *c = cycle;
            changed
        });
        let step = (period / 10).clamp(50_000, 1_000_000);
        std::thread::sleep(Duration::from_nanos(step));
    }
}
