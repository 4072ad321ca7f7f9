//! One watch list for every debug client, and the thread that reads the values back.
//!
//! rt-core copies the variables of a single watch list (≤ 1024) at the end of every scan.
//! Each read request *leases* its variables: they join the union (with a last-used time)
//! and stay pinned until the reply is built. The sampler thread writes the union into the
//! shared memory whenever its membership changes, and, while any request waits, reads the
//! values back once per new scan and publishes them (a tokio `watch` channel). A request
//! takes the first sample that (a) holds all its variables and (b) was taken in a scan that
//! began after the request arrived. Variables nobody used for `evict_after` leave the list.
//!
//! Locks are std mutexes held for a few map operations, never across an await; the only
//! calls into the backend that may block (writing the list, reading the values) happen on
//! the sampler thread.

use crate::backend::Backend;
use shared_abi::debug::{DebugValues, MAX_WATCH, WatchedValue};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::thread::Thread;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How often the sampler looks at rt-core's loop counter while a request waits.
const POLL_INTERVAL: Duration = Duration::from_micros(200);
/// How long the sampler sleeps when no request waits (it is woken when one arrives).
const IDLE_INTERVAL: Duration = Duration::from_millis(100);
/// How often rt-core's liveness is probed.
const ALIVE_INTERVAL: Duration = Duration::from_millis(100);

/// Values of one scan, as rt-core published them.
pub struct Sample {
    /// rt-core's loop counter when the values were taken.
    pub cycle: u64,
    /// The program's scan count (the protocol's tick).
    pub tick: u64,
    pub program_gen: u32,
    pub watch_generation: u32,
    entries: HashMap<u32, WatchedValue>,
    data: Vec<u8>,
}

/// A value in a sample.
pub enum Value<'a> {
    Bytes {
        kind: shared_abi::program::VarKind,
        raw: &'a [u8],
    },
    /// The variable does not exist in the program (size 0).
    Missing,
    /// It exists but did not fit rt-core's debug data area.
    NoRoom,
}

impl Sample {
    pub fn get(&self, var: u32) -> Option<Value<'_>> {
        let e = self.entries.get(&var)?;
        if e.size == 0 {
            return Some(Value::Missing);
        }
        if e.valid == 0 {
            return Some(Value::NoRoom);
        }
        let start = e.offset as usize;
        match self.data.get(start..start + e.size as usize) {
            Some(raw) => Some(Value::Bytes { kind: shared_abi::program::VarKind::from_u32(e.kind as u32), raw }),
            None => Some(Value::NoRoom),
        }
    }

    pub fn contains(&self, var: u32) -> bool {
        self.entries.contains_key(&var)
    }

    fn from_values(dv: &DebugValues) -> Sample {
        let count = (dv.count as usize).min(MAX_WATCH);
        let data_len = (dv.data_len as usize).min(dv.data.len());
        Sample {
            cycle: dv.cycle,
            tick: dv.tick,
            program_gen: dv.program_gen,
            watch_generation: dv.watch_generation,
            entries: dv.entries[..count].iter().map(|e| (e.var, *e)).collect(),
            data: dv.data[..data_len].to_vec(),
        }
    }
}

/// What the sampler last saw.
#[derive(Clone)]
pub struct Snapshot {
    pub alive: bool,
    pub values: Option<Arc<Sample>>,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Full;

struct Slot {
    last_used: Instant,
    pins: u32,
}

struct Union {
    vars: HashMap<u32, Slot>,
    /// Membership (or wanted order) changed since the list was last written.
    dirty: bool,
    /// Bumped by every request for a rewrite; `written_seq` is the value the last write saw.
    rewrite_seq: u64,
    written_seq: u64,
    written_generation: u32,
    last_evict: Instant,
}

struct Shared {
    backend: Arc<dyn Backend>,
    union: Mutex<Union>,
    tx: watch::Sender<Snapshot>,
    waiting: AtomicUsize,
    stop: AtomicBool,
    thread: OnceLock<Thread>,
    evict_after: Duration,
}

impl Shared {
    fn union(&self) -> MutexGuard<'_, Union> {
        self.union.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wake(&self) {
        if let Some(t) = self.thread.get() {
            t.unpark();
        }
    }
}

/// The watch-list union and its sampler thread (stopped when the `Watcher` is dropped).
pub struct Watcher {
    shared: Arc<Shared>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.wake();
    }
}

impl Watcher {
    pub fn new(backend: Arc<dyn Backend>, evict_after: Duration) -> Watcher {
        let (tx, _) = watch::channel(Snapshot { alive: true, values: None });
        let shared = Arc::new(Shared {
            backend,
            union: Mutex::new(Union {
                vars: HashMap::new(),
                dirty: false,
                rewrite_seq: 0,
                written_seq: 0,
                written_generation: 0,
                last_evict: Instant::now(),
            }),
            tx,
            waiting: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            thread: OnceLock::new(),
            evict_after,
        });
        let weak = Arc::downgrade(&shared);
        let handle = std::thread::Builder::new()
            .name("debug-sampler".into())
            .spawn(move || sampler(weak))
            .map(|h| h.thread().clone());
        match handle {
            Ok(t) => {
                let _ = shared.thread.set(t);
            }
            Err(e) => {
                // Without the thread no read can be answered; say so on every one.
                tracing::error!("debugger: cannot start the sampler thread: {e}");
                shared.tx.send_replace(Snapshot { alive: false, values: None });
            }
        }
        Watcher { shared }
    }

    pub fn subscribe(&self) -> watch::Receiver<Snapshot> {
        self.shared.tx.subscribe()
    }

    /// The latest snapshot, without waiting.
    pub fn latest(&self) -> Snapshot {
        self.shared.tx.borrow().clone()
    }

    /// Adds `vars` to the union and pins them until the lease is dropped. `Full` when the
    /// union cannot take them even after evicting every unpinned variable.
    pub fn lease(&self, vars: &[u32]) -> Result<Lease, Full> {
        let now = Instant::now();
        let mut u = self.shared.union();
        let mut distinct: Vec<u32> = vars.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        let new = distinct.iter().filter(|v| !u.vars.contains_key(v)).count();
        let over = (u.vars.len() + new).saturating_sub(MAX_WATCH);
        if over > 0 {
            let mut idle: Vec<(Instant, u32)> = u
                .vars
                .iter()
                .filter(|(v, s)| s.pins == 0 && !distinct.contains(v))
                .map(|(v, s)| (s.last_used, *v))
                .collect();
            if idle.len() < over {
                return Err(Full);
            }
            idle.sort_unstable();
            for (_, v) in idle.into_iter().take(over) {
                u.vars.remove(&v);
            }
        }
        for &v in &distinct {
            let slot = u.vars.entry(v).or_insert_with(|| Slot { last_used: now, pins: 0 });
            slot.pins += 1;
            slot.last_used = now;
        }
        if new > 0 || over > 0 {
            u.dirty = true;
        }
        drop(u);
        self.shared.waiting.fetch_add(1, Ordering::AcqRel);
        self.shared.wake();
        Ok(Lease { shared: self.shared.clone(), vars: distinct })
    }

    /// Asks for the list to be written again, pinned variables first (so they get room in
    /// rt-core's data area before idle ones). Returns a ticket for [`Watcher::written_after`].
    pub fn request_rewrite(&self) -> u64 {
        let mut u = self.shared.union();
        u.rewrite_seq += 1;
        u.dirty = true;
        let seq = u.rewrite_seq;
        drop(u);
        self.shared.wake();
        seq
    }

    /// The generation of the first write that honoured rewrite `ticket`, once it happened.
    pub fn written_after(&self, ticket: u64) -> Option<u32> {
        let u = self.shared.union();
        (u.written_seq >= ticket).then_some(u.written_generation)
    }

    /// Variables in the union now (for tests and diagnostics).
    pub fn union_len(&self) -> usize {
        self.shared.union().vars.len()
    }
}

/// Pins variables in the union while a request needs them.
pub struct Lease {
    shared: Arc<Shared>,
    vars: Vec<u32>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let now = Instant::now();
        let mut u = self.shared.union();
        for v in &self.vars {
            if let Some(slot) = u.vars.get_mut(v) {
                slot.pins = slot.pins.saturating_sub(1);
                slot.last_used = now;
            }
        }
        drop(u);
        self.shared.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

/// `a` is at or after `b` in a wrapping u32 sequence.
pub fn generation_reached(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) >= 0
}

fn sampler(weak: Weak<Shared>) {
    let mut values: Box<DebugValues> = bytemuck::zeroed_box();
    let mut last_read_heartbeat = u64::MAX;
    let mut last_alive_check = Instant::now() - ALIVE_INTERVAL;
    let mut alive = true;
    loop {
        let Some(shared) = weak.upgrade() else { return };
        if shared.stop.load(Ordering::Acquire) {
            return;
        }
        let now = Instant::now();

        let list = {
            let mut u = shared.union();
            if now.duration_since(u.last_evict) >= Duration::from_millis(250) {
                u.last_evict = now;
                let before = u.vars.len();
                let evict_after = shared.evict_after;
                u.vars.retain(|_, s| s.pins > 0 || now.duration_since(s.last_used) < evict_after);
                if u.vars.len() != before {
                    u.dirty = true;
                }
            }
            if u.dirty {
                u.dirty = false;
                let mut order: Vec<(bool, Instant, u32)> =
                    u.vars.iter().map(|(v, s)| (s.pins == 0, s.last_used, *v)).collect();
                // Pinned first, then the most recently used: rt-core lays values out in list
                // order and drops those that no longer fit its data area.
                order.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)).then(a.2.cmp(&b.2)));
                Some((order.into_iter().map(|(_, _, v)| v).collect::<Vec<u32>>(), u.rewrite_seq))
            } else {
                None
            }
        };
        if let Some((list, seq)) = list {
            match shared.backend.set_watch(&list) {
                Ok(generation) => {
                    let mut u = shared.union();
                    u.written_seq = seq;
                    u.written_generation = generation;
                }
                Err(e) => {
                    tracing::warn!("debugger: writing the watch list failed: {e}");
                    shared.union().dirty = true;
                }
            }
            // A new list is answered in a later scan: read again once it turns.
            last_read_heartbeat = u64::MAX;
        }

        if now.duration_since(last_alive_check) >= ALIVE_INTERVAL {
            last_alive_check = now;
            let now_alive = shared.backend.rt_alive();
            if now_alive != alive {
                alive = now_alive;
                shared.tx.send_modify(|s| s.alive = alive);
            }
        }

        let waiting = shared.waiting.load(Ordering::Acquire) > 0;
        if waiting && alive {
            let hb = shared.backend.heartbeat();
            if hb != last_read_heartbeat {
                match shared.backend.debug_values(&mut values) {
                    Ok(()) => {
                        last_read_heartbeat = hb;
                        let sample = Arc::new(Sample::from_values(&values));
                        let fresh = shared.tx.borrow().values.as_ref().is_none_or(|old| {
                            old.cycle != sample.cycle || old.watch_generation != sample.watch_generation
                        });
                        if fresh {
                            shared.tx.send_replace(Snapshot { alive, values: Some(sample) });
                        }
                    }
                    Err(e) => tracing::debug!("debugger: {e}"),
                }
            }
        }
        drop(shared);
        if waiting && alive {
            std::thread::sleep(POLL_INTERVAL);
        } else {
            std::thread::park_timeout(IDLE_INTERVAL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::BackendError;
    use shared_abi::debug::ProgramInfo;
    use shared_abi::msg::{CommandStatus, LogLevel};
    use std::sync::atomic::AtomicU64;

    /// A pretend rt-core: every read is a new scan; values are the variable number.
    #[derive(Default)]
    struct Fake {
        list: Mutex<(u32, Vec<u32>)>,
        heartbeat: AtomicU64,
    }

    impl Backend for Fake {
        fn heartbeat(&self) -> u64 {
            self.heartbeat.fetch_add(1, Ordering::AcqRel)
        }
        fn rt_alive(&self) -> bool {
            true
        }
        fn program_info(&self) -> Result<ProgramInfo, BackendError> {
            Ok(bytemuck::Zeroable::zeroed())
        }
        fn set_watch(&self, vars: &[u32]) -> Result<u32, BackendError> {
            let mut l = self.list.lock().unwrap();
            l.0 += 1;
            l.1 = vars.to_vec();
            Ok(l.0)
        }
        fn debug_values(&self, out: &mut DebugValues) -> Result<(), BackendError> {
            let l = self.list.lock().unwrap();
            out.watch_generation = l.0;
            out.count = l.1.len() as u32;
            out.cycle = self.heartbeat.load(Ordering::Acquire);
            out.tick = out.cycle;
            for (i, &v) in l.1.iter().enumerate() {
                out.entries[i] = WatchedValue { var: v, offset: i as u32 * 4, size: 4, kind: 0, valid: 1 };
                out.data[i * 4..i * 4 + 4].copy_from_slice(&v.to_le_bytes());
            }
            out.data_len = l.1.len() as u32 * 4;
            Ok(())
        }
        fn force(&self, _: u32, _: &[u8], _: bool) -> Result<CommandStatus, BackendError> {
            Ok(CommandStatus::Ok)
        }
        fn unforce(&self, _: u32) -> Result<CommandStatus, BackendError> {
            Ok(CommandStatus::Ok)
        }
        fn log(&self, _: LogLevel, _: &str) {}
    }

    async fn wait_for(w: &Watcher, vars: &[u32]) -> Arc<Sample> {
        let mut rx = w.subscribe();
        loop {
            if let Some(s) = rx.borrow_and_update().values.clone()
                && vars.iter().all(|v| s.contains(*v))
            {
                return s;
            }
            tokio::time::timeout(Duration::from_secs(5), rx.changed()).await.unwrap().unwrap();
        }
    }

    #[tokio::test]
    async fn clients_with_different_sets_are_all_served_and_idle_ones_evicted() {
        let fake = Arc::new(Fake::default());
        let w = Watcher::new(fake.clone(), Duration::from_millis(300));
        let a = w.lease(&[1, 2, 3]).unwrap();
        let b = w.lease(&[3, 4, 900]).unwrap();
        let s = wait_for(&w, &[1, 2, 3, 4, 900]).await;
        match s.get(900) {
            Some(Value::Bytes { raw, .. }) => assert_eq!(raw, &900u32.to_le_bytes()),
            _ => panic!("900 missing"),
        }
        assert_eq!(w.union_len(), 5);
        drop(a);
        // 1 and 2 are idle now; 3, 4 and 900 are still pinned by `b`.
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert_eq!(w.union_len(), 3);
        drop(b);
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert_eq!(w.union_len(), 0);
        assert!(fake.list.lock().unwrap().1.is_empty(), "the evictions reached the shared list");
    }

    #[tokio::test]
    async fn a_full_union_makes_room_from_idle_variables_only() {
        let w = Watcher::new(Arc::new(Fake::default()), Duration::from_secs(60));
        let all: Vec<u32> = (0..MAX_WATCH as u32).collect();
        let pinned = w.lease(&all[..1000]).unwrap();
        drop(w.lease(&all[1000..]).unwrap());
        // 24 idle variables can be evicted for 24 new ones, not for 25.
        let extra: Vec<u32> = (5000..5025).collect();
        assert_eq!(w.lease(&extra).err(), Some(Full));
        let ok = w.lease(&extra[..24]).unwrap();
        assert_eq!(w.union_len(), MAX_WATCH);
        drop((ok, pinned));
    }

    #[test]
    fn generations_compare_across_the_wrap() {
        assert!(generation_reached(5, 5));
        assert!(generation_reached(6, 5));
        assert!(!generation_reached(4, 5));
        assert!(generation_reached(1, u32::MAX));
    }
}
