//! How the port waits for rt-core: one poll loop, in a blocking and an async flavour, that
//! ends as soon as the awaited condition holds, rt-core dies, another rt-core takes over, or
//! the time is up. No wait holds the lease.
//!
//! Async waits are woken by the [`Ticker`](crate::ticker::Ticker) at every change rt-core
//! publishes (a cycle's writes applied, a cycle ended): tokio's timers tick in
//! milliseconds, which would add up to a millisecond to every answer. Blocking waits poll
//! every [`BLOCKING_POLL`].

use crate::error::{Incarnation, PortError};
use crate::port::{PlcPort, incarnation_of};
use shared_abi::client::{Observer, Reader};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a blocking wait looks again.
pub(crate) const BLOCKING_POLL: Duration = Duration::from_micros(200);
/// How often a wait probes rt-core's liveness (a `flock` system call), and the longest an
/// async wait sleeps without looking.
pub(crate) const ALIVE_PROBE: Duration = Duration::from_millis(50);

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
