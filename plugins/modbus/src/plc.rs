//! How the plugin reaches the PLC: a small trait the companion implements over its bridge
//! to rt-core, and [`RtClientImage`], an implementation over an [`RtClient`] of our own
//! (used by the tests, the bench and the standalone binary).
//!
//! Writes to `%Q`/`%M` points are queued and applied by rt-core at the start of a later
//! scan. [`PlcImage::write`] returns the loop cycle by which they are certainly applied,
//! so a caller that must not answer before the program has the value (a Modbus write
//! reply, a read-after-write in FC 23) can wait for [`PlcImage::cycle`] to pass it.

use shared_abi::client::{ClientError, Reader, RtClient};
use shared_abi::image::{IecAddress, InputImage};
use shared_abi::layout::OutputSnapshot;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};

/// Image writes rt-core applies per cycle (`rt_core::engine::MAX_WRITES_PER_CYCLE`; a
/// test pins the two together). A backlog longer than this takes several cycles to drain.
pub const MAX_WRITES_PER_CYCLE: usize = 256;

/// Why writes were not queued. Nothing was queued in either case (all or nothing).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlcWriteError {
    /// No room for the whole batch right now; it fits once rt-core drains its queue.
    #[error("rt-core's write queue is full")]
    Busy,
    /// The batch can never be queued (an input address, a value too wide, too many points).
    #[error("invalid write: {0}")]
    Invalid(String),
    /// rt-core (or the bridge to it) is gone.
    #[error("PLC unavailable: {0}")]
    Unavailable(String),
}

/// The PLC as the Modbus plugin sees it.
pub trait PlcImage: Send + Sync + 'static {
    /// rt-core's loop counter (it advances every cycle, whether a program runs or not).
    fn cycle(&self) -> u64;

    /// The loop period in force, ns (paces waits for a cycle).
    fn period_ns(&self) -> u64;

    /// The latest published outputs and memory. Called for every Modbus read, so it must
    /// be cheap: implementations copy rt-core's snapshot at most once per cycle and hand
    /// out the same `Arc` until the cycle counter moves.
    fn outputs(&self) -> Arc<OutputSnapshot>;

    /// Lets `f` read the input image as last published (no copy).
    fn read_inputs(&self, f: &mut dyn FnMut(&InputImage));

    /// Changes inputs with `f` and publishes them for the next scan.
    fn update_inputs(&self, f: &mut dyn FnMut(&mut InputImage));

    /// Queues writes to `%Q`/`%M` points, all or nothing. Returns the loop cycle by whose
    /// end every one of them has been applied: once `cycle()` is greater than it, the
    /// program has seen them (and the outputs published after that show them, unless the
    /// program overwrote them).
    fn write(&self, writes: &[(IecAddress, u64)]) -> Result<u64, PlcWriteError>;
}

/// [`PlcImage`] over an [`RtClient`] held by this process.
pub struct RtClientImage {
    inner: Mutex<Inner>,
}

struct Inner {
    client: RtClient,
    /// The snapshot copied during the cycle counted in `.0`.
    cached: Option<(u64, Arc<OutputSnapshot>)>,
}

impl RtClientImage {
    pub fn new(client: RtClient) -> Self {
        RtClientImage { inner: Mutex::new(Inner { client, cached: None }) }
    }

    /// Takes the client lease of the shared memory `name` (a path or a /dev/shm name).
    pub fn open(name: &str) -> Result<Self, ClientError> {
        Ok(Self::new(RtClient::open(name)?))
    }

    /// Runs `f` with the client (for tests and tools that also drive rt-core).
    pub fn with_client<R>(&self, f: impl FnOnce(&mut RtClient) -> R) -> R {
        f(&mut self.lock().client)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves the client usable: every method leaves it
        // consistent before anything can panic.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl PlcImage for RtClientImage {
    fn cycle(&self) -> u64 {
        self.lock().client.shm().header.heartbeat.load(Ordering::Acquire)
    }

    fn period_ns(&self) -> u64 {
        self.lock().client.shm().header.period_ns.load(Ordering::Acquire)
    }

    fn outputs(&self) -> Arc<OutputSnapshot> {
        let mut inner = self.lock();
        let cycle = inner.client.shm().header.heartbeat.load(Ordering::Acquire);
        if let Some((at, snap)) = &inner.cached
            && *at == cycle
        {
            return snap.clone();
        }
        match inner.client.outputs() {
            Ok(boxed) => {
                let snap: Arc<OutputSnapshot> = Arc::from(boxed);
                inner.cached = Some((cycle, snap.clone()));
                snap
            }
            // A torn read means rt-core died mid-publish: the last good copy is the best
            // there is, and the next cycle (if any) replaces it.
            Err(_) => match &inner.cached {
                Some((_, snap)) => snap.clone(),
                None => Arc::from(bytemuck::zeroed_box::<OutputSnapshot>()),
            },
        }
    }

    fn read_inputs(&self, f: &mut dyn FnMut(&InputImage)) {
        f(self.lock().client.inputs())
    }

    fn update_inputs(&self, f: &mut dyn FnMut(&mut InputImage)) {
        self.lock().client.update_inputs(|img| f(img))
    }

    fn write(&self, writes: &[(IecAddress, u64)]) -> Result<u64, PlcWriteError> {
        write_all_or_nothing(&mut self.lock().client, writes)
    }
}

/// Queues `writes` through `client` whole or not at all; returns the loop cycle by whose
/// end rt-core has applied all of them. For any holder of the client lease (this crate's
/// [`RtClientImage`], the companion's bridge).
pub fn write_all_or_nothing(client: &mut RtClient, writes: &[(IecAddress, u64)]) -> Result<u64, PlcWriteError> {
    for &(addr, value) in writes {
        if addr.area() == shared_abi::image::Area::Input {
            return Err(PlcWriteError::Invalid(format!("{addr} is an input")));
        }
        addr.check_value(value).map_err(|e| PlcWriteError::Invalid(format!("{addr}: {e}")))?;
    }
    let ring = &client.shm().writes;
    if writes.len() > ring.capacity() {
        return Err(PlcWriteError::Invalid(format!("{} writes exceed the queue", writes.len())));
    }
    // The lease holder is the ring's only producer, so the room seen here cannot shrink
    // before the pushes below: the batch goes in whole or not at all.
    if ring.capacity() - ring.len() < writes.len() {
        return Err(PlcWriteError::Busy);
    }
    for &(addr, value) in writes {
        client.write(addr, value).map_err(|e| match e {
            ClientError::RingFull => PlcWriteError::Busy,
            other => PlcWriteError::Unavailable(other.to_string()),
        })?;
    }
    let shm = client.shm();
    let now = shm.header.heartbeat.load(Ordering::Acquire);
    // Cycle `now` may already be past its write step; each later cycle takes up to
    // MAX_WRITES_PER_CYCLE from the queue, ours being the last `writes.len()` of it.
    let backlog = shm.writes.len().max(1);
    Ok(now + backlog.div_ceil(MAX_WRITES_PER_CYCLE) as u64)
}

#[cfg(test)]
mod tests {
    #[test]
    fn writes_per_cycle_matches_the_engine() {
        assert_eq!(super::MAX_WRITES_PER_CYCLE, rt_core::engine::MAX_WRITES_PER_CYCLE);
    }
}
