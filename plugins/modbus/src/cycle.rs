//! Waiting for rt-core's loop counter to pass a value, with microsecond promptness.
//!
//! tokio's timers tick in milliseconds, which would add up to a millisecond to every write
//! reply on a 1 ms PLC. One plain thread polls the counter every tenth of a period (50 µs
//! to 1 ms) while someone waits, parks while nobody does, and wakes the waiters through a
//! `watch` channel.

use crate::plc::PlcImage;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::watch;

struct Inner {
    plc: Arc<dyn PlcImage>,
    tx: watch::Sender<u64>,
    waiters: AtomicUsize,
    stop: AtomicBool,
}

pub struct CycleWatch {
    inner: Arc<Inner>,
    thread: Option<JoinHandle<()>>,
}

struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl CycleWatch {
    pub fn start(plc: Arc<dyn PlcImage>) -> std::io::Result<CycleWatch> {
        let (tx, _) = watch::channel(plc.cycle());
        let inner = Arc::new(Inner { plc, tx, waiters: AtomicUsize::new(0), stop: AtomicBool::new(false) });
        let i = inner.clone();
        let thread = std::thread::Builder::new().name("modbus-cycle".into()).spawn(move || poll(&i))?;
        Ok(CycleWatch { inner, thread: Some(thread) })
    }

    /// Waits until the loop counter is greater than `target`, at most `timeout`; true if
    /// it got there.
    pub async fn wait_past(&self, target: u64, timeout: Duration) -> bool {
        let inner = &self.inner;
        if inner.plc.cycle() > target {
            return true;
        }
        let mut rx = inner.tx.subscribe();
        inner.waiters.fetch_add(1, Ordering::AcqRel);
        let _waiting = Waiting(&inner.waiters);
        if let Some(t) = &self.thread {
            t.thread().unpark();
        }
        matches!(tokio::time::timeout(timeout, rx.wait_for(|&c| c > target)).await, Ok(Ok(_)))
    }
}

fn poll(inner: &Inner) {
    while !inner.stop.load(Ordering::Acquire) {
        if inner.waiters.load(Ordering::Acquire) == 0 {
            // Woken by the first waiter; the timeout only bounds a missed unpark.
            std::thread::park_timeout(Duration::from_millis(100));
            continue;
        }
        let now = inner.plc.cycle();
        inner.tx.send_if_modified(|c| {
            let changed = *c != now;
            *c = now;
            changed
        });
        let step = (inner.plc.period_ns() / 10).clamp(50_000, 1_000_000);
        std::thread::sleep(Duration::from_nanos(step));
    }
}

impl Drop for CycleWatch {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}
