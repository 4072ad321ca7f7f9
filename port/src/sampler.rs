//! One watch list for every reader of debug variables (the Editor's debugger, plugins, the
//! REST monitor), and the thread that reads the values back.
//!
//! rt-core copies the variables of a single watch list (≤ 1024) at the end of every scan.
//! Each read *leases* its variables: they join the union (with a last-used time) and stay
//! pinned until the lease is dropped. The sampler thread writes the union into the shared
//! memory whenever its membership changes and, while any lease is held, reads the values
//! back once per new scan and publishes them (a tokio `watch` channel). A lease's
//! [`Lease::wait`] takes the first sample that holds all its variables and was taken in a
//! scan that began after the request arrived. Variables nobody used for 5 s leave the list.
//!
//! The watch list belongs to the sampler: nothing else in the process writes it. Locks are
//! std mutexes held for a few map operations, never across an await; the only calls that
//! touch rt-core (writing the list, reading the values) happen on the sampler thread.

use crate::error::PortError;
use crate::port::PlcPort;
use shared_abi::debug::{DebugValues, MAX_WATCH, WatchedValue};
use shared_abi::msg::LogLevel;
use shared_abi::program::VarKind;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::thread::Thread;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Watched variables nobody read for this long leave the list.
pub(crate) const EVICT_AFTER: Duration = Duration::from_secs(5);
/// How often the sampler looks at rt-core's loop counter while a lease is held.
const POLL_INTERVAL: Duration = Duration::from_micros(200);
/// How long the sampler sleeps while no lease is held (it is woken when one is taken).
const IDLE_INTERVAL: Duration = Duration::from_millis(100);
/// How often rt-core's liveness is probed.
const ALIVE_INTERVAL: Duration = Duration::from_millis(100);
/// How often idle variables are looked for.
const EVICT_INTERVAL: Duration = Duration::from_millis(250);

/// Why a read of debug variables was not answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SampleError {
    /// rt-core is not running.
    RtDown,
    /// No program is loaded.
    NoProgram,
    /// The watch list cannot take the variables, even after dropping every idle one.
    WatchFull,
    /// Another program was swapped in meanwhile: the indices mean something else now.
    ProgramChanged,
    /// rt-core's debug data area has no room for some of the values.
    NoRoom,
    /// No scan in time (a stopped or stalled loop).
    Timeout(Duration),
    /// The sampler thread is gone (it could not start, or its port was dropped).
    Stopped,
}

impl fmt::Display for SampleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SampleError::RtDown => f.write_str("The PLC runtime (openplc-rt) is not running"),
            SampleError::NoProgram => f.write_str("No PLC program loaded"),
            SampleError::WatchFull => f.write_str("the watch list is full"),
            SampleError::ProgramChanged => f.write_str("the PLC program changed"),
            SampleError::NoRoom => f.write_str("no room for the values in rt-core's debug area"),
            SampleError::Timeout(d) => write!(f, "No fresh values from the PLC runtime within {} ms", d.as_millis()),
            SampleError::Stopped => f.write_str("The debug sampler has stopped"),
        }
    }
}

impl std::error::Error for SampleError {}

/// Values of one scan, as rt-core published them.
pub struct Sample {
    /// rt-core's loop counter when the values were taken.
    pub cycle: u64,
    /// The program's scan count (the debug protocol's tick).
    pub tick: u64,
    pub program_gen: u32,
    pub watch_generation: u32,
    entries: HashMap<u32, WatchedValue>,
    data: Vec<u8>,
}

/// A value in a sample.
pub enum Value<'a> {
    Bytes {
        kind: VarKind,
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
            Some(raw) => Some(Value::Bytes { kind: VarKind::from_u32(e.kind as u32), raw }),
            None => Some(Value::NoRoom),
        }
    }

    pub fn contains(&self, var: u32) -> bool {
        self.entries.contains_key(&var)
    }

    /// The bytes of `var`, `None` when the program has no such variable.
    pub fn bytes(&self, var: u32) -> Option<Vec<u8>> {
        match self.get(var)? {
            Value::Bytes { raw, .. } => Some(raw.to_vec()),
            Value::Missing | Value::NoRoom => None,
        }
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
    port: Weak<PlcPort>,
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

    fn rt_alive(&self) -> bool {
        self.port.upgrade().is_some_and(|p| p.rt_alive())
    }

    /// Asks for the list to be written again, pinned variables first (so they get room in
    /// rt-core's data area before idle ones). Returns a ticket for `written_after`.
    fn request_rewrite(&self) -> u64 {
        let mut u = self.union();
        u.rewrite_seq += 1;
        u.dirty = true;
        let seq = u.rewrite_seq;
        drop(u);
        self.wake();
        seq
    }

    /// The generation of the first write that honoured rewrite `ticket`, once it happened.
    fn written_after(&self, ticket: u64) -> Option<u32> {
        let u = self.union();
        (u.written_seq >= ticket).then_some(u.written_generation)
    }
}

/// The watch-list union and its sampler thread (stopped when the port is dropped).
pub struct Sampler {
    shared: Arc<Shared>,
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.wake();
    }
}

impl Sampler {
    pub(crate) fn start(port: Weak<PlcPort>, evict_after: Duration) -> Sampler {
        let (tx, _) = watch::channel(Snapshot { alive: true, values: None });
        let shared = Arc::new(Shared {
            port,
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
            .spawn(move || sample_loop(weak))
            .map(|h| h.thread().clone());
        match handle {
            Ok(t) => {
                let _ = shared.thread.set(t);
            }
            Err(e) => {
                // Without the thread no read can be answered; say so on every one.
                if let Some(port) = shared.port.upgrade() {
                    port.log(LogLevel::Error, &format!("debug sampler: cannot start its thread: {e}"));
                }
                shared.tx.send_replace(Snapshot { alive: false, values: None });
            }
        }
        Sampler { shared }
    }

    pub fn subscribe(&self) -> watch::Receiver<Snapshot> {
        self.shared.tx.subscribe()
    }

    /// The latest sample, without waiting (its sizes help size a reply frame).
    pub fn latest(&self) -> Option<Arc<Sample>> {
        self.shared.tx.borrow().values.clone()
    }

    /// Adds `vars` to the union and pins them until the lease is dropped. `WatchFull` when
    /// the union cannot take them even after evicting every unpinned variable.
    pub fn lease(&self, vars: &[u32]) -> Result<Lease, SampleError> {
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
                .filter(|(v, s)| s.pins == 0 && distinct.binary_search(v).is_err())
                .map(|(v, s)| (s.last_used, *v))
                .collect();
            if idle.len() < over {
                return Err(SampleError::WatchFull);
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

    /// Variables in the union now.
    pub fn watched(&self) -> usize {
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

/// Where a wait for a sample stands after looking at one snapshot.
struct Progress {
    program_gen: u32,
    arrival: u64,
    /// Set once the list was asked to be rewritten to make room.
    rewrite: Option<u64>,
}

impl Lease {
    /// The leased variables, sorted, without duplicates.
    pub fn vars(&self) -> &[u32] {
        &self.vars
    }

    /// Waits for the first sample that holds every leased variable, stamped with a cycle
    /// later than `arrival`, of program `program_gen`. [`PlcPort::arrival`] as `arrival`:
    /// the first scan that begins after now.
    pub async fn wait(&self, program_gen: u32, arrival: u64, timeout: Duration) -> Result<Arc<Sample>, SampleError> {
        let deadline = Instant::now() + timeout;
        let mut rx = self.shared.tx.subscribe();
        let mut progress = Progress { program_gen, arrival, rewrite: None };
        loop {
            let snapshot = rx.borrow_and_update().clone();
            if let Some(done) = self.look(&snapshot, &mut progress) {
                return done;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(SampleError::Timeout(timeout));
            }
            match tokio::time::timeout(left, rx.changed()).await {
                Ok(Ok(())) | Err(_) => {}
                Ok(Err(_)) => return Err(SampleError::Stopped),
            }
        }
    }

    /// [`Lease::wait`] on the calling thread (plugin threads).
    pub fn wait_blocking(&self, program_gen: u32, arrival: u64, timeout: Duration) -> Result<Arc<Sample>, SampleError> {
        let deadline = Instant::now() + timeout;
        let mut progress = Progress { program_gen, arrival, rewrite: None };
        loop {
            let snapshot = self.shared.tx.borrow().clone();
            if let Some(done) = self.look(&snapshot, &mut progress) {
                return done;
            }
            if Instant::now() >= deadline {
                return Err(SampleError::Timeout(timeout));
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    fn look(&self, snapshot: &Snapshot, p: &mut Progress) -> Option<Result<Arc<Sample>, SampleError>> {
        // A sampler that last saw rt-core down while a new one already runs (a restart)
        // catches up within a sampling period: wait for it rather than fail.
        if !snapshot.alive && !self.shared.rt_alive() {
            return Some(Err(SampleError::RtDown));
        }
        let s = snapshot.values.as_ref().filter(|_| snapshot.alive)?;
        if s.cycle <= p.arrival || !self.vars.iter().all(|&v| s.contains(v)) {
            return None;
        }
        if s.program_gen != p.program_gen {
            return Some(Err(SampleError::ProgramChanged));
        }
        if !self.vars.iter().any(|&v| matches!(s.get(v), Some(Value::NoRoom))) {
            return Some(Ok(s.clone()));
        }
        // rt-core's data area is full: have pinned variables placed first, and give up once
        // a list written that way still leaves some out.
        match p.rewrite {
            None => p.rewrite = Some(self.shared.request_rewrite()),
            Some(ticket) => {
                if let Some(g) = self.shared.written_after(ticket)
                    && generation_reached(s.watch_generation, g)
                {
                    return Some(Err(SampleError::NoRoom));
                }
            }
        }
        None
    }
}

impl PlcPort {
    /// The bytes of `vars` (flat debug indices) taken in a scan stamped later than
    /// `arrival` (see [`PlcPort::arrival`]), through the shared watch list; `None` for a
    /// variable the program lacks.
    pub async fn sample(
        &self,
        vars: &[u32],
        arrival: u64,
        timeout: Duration,
    ) -> Result<Vec<Option<Vec<u8>>>, SampleError> {
        let (program_gen, lease) = self.lease_for_sample(vars)?;
        let sample = lease.wait(program_gen, arrival, timeout).await?;
        Ok(vars.iter().map(|&v| sample.bytes(v)).collect())
    }

    pub fn sample_blocking(
        &self,
        vars: &[u32],
        arrival: u64,
        timeout: Duration,
    ) -> Result<Vec<Option<Vec<u8>>>, SampleError> {
        let (program_gen, lease) = self.lease_for_sample(vars)?;
        let sample = lease.wait_blocking(program_gen, arrival, timeout)?;
        Ok(vars.iter().map(|&v| sample.bytes(v)).collect())
    }

    fn lease_for_sample(&self, vars: &[u32]) -> Result<(u32, Lease), SampleError> {
        if !self.rt_alive() {
            return Err(SampleError::RtDown);
        }
        let info = self.program_info().ok_or(SampleError::NoProgram)?;
        Ok((info.program_gen, self.sampler().lease(vars)?))
    }
}

/// `a` is at or after `b` in a wrapping u32 sequence.
fn generation_reached(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) >= 0
}

fn sample_loop(weak: Weak<Shared>) {
    let mut values: Box<DebugValues> = bytemuck::zeroed_box();
    let mut last_read_cycle = u64::MAX;
    let mut last_alive_check = Instant::now() - ALIVE_INTERVAL;
    let mut alive = true;
    let mut write_failing = false;
    loop {
        let Some(shared) = weak.upgrade() else { return };
        if shared.stop.load(Ordering::Acquire) {
            return;
        }
        let Some(port) = shared.port.upgrade() else { return };
        let now = Instant::now();

        if let Some((list, seq)) = next_list(&shared, now) {
            match port.set_watch(&list) {
                Ok(generation) => {
                    write_failing = false;
                    let mut u = shared.union();
                    u.written_seq = seq;
                    u.written_generation = generation;
                }
                Err(e) => {
                    if !write_failing && !matches!(e, PortError::NotAttached) {
                        port.log(LogLevel::Warning, &format!("debug sampler: writing the watch list failed: {e}"));
                    }
                    write_failing = true;
                    shared.union().dirty = true;
                }
            }
            // A new list is answered in a later scan: read again once it turns.
            last_read_cycle = u64::MAX;
        }

        if now.duration_since(last_alive_check) >= ALIVE_INTERVAL {
            last_alive_check = now;
            let now_alive = port.rt_alive();
            if now_alive != alive {
                alive = now_alive;
                shared.tx.send_modify(|s| s.alive = alive);
            }
        }

        let waiting = shared.waiting.load(Ordering::Acquire) > 0;
        if waiting && alive {
            let cycle = port.cycle();
            if cycle != last_read_cycle && port.read_debug(&mut values).is_ok() {
                last_read_cycle = cycle;
                let sample = Arc::new(Sample::from_values(&values));
                let fresh = shared
                    .tx
                    .borrow()
                    .values
                    .as_ref()
                    .is_none_or(|old| old.cycle != sample.cycle || old.watch_generation != sample.watch_generation);
                if fresh {
                    shared.tx.send_replace(Snapshot { alive, values: Some(sample) });
                }
            }
        }
        drop((shared, port));
        if waiting && alive {
            std::thread::sleep(POLL_INTERVAL);
        } else {
            std::thread::park_timeout(IDLE_INTERVAL);
        }
    }
}

/// Evicts idle variables (every `EVICT_INTERVAL`) and, if membership changed, returns the
/// list to write: pinned first, then the most recently used (rt-core lays values out in
/// list order and drops those that no longer fit its data area), with the rewrite sequence
/// it honours.
fn next_list(shared: &Shared, now: Instant) -> Option<(Vec<u32>, u64)> {
    let mut u = shared.union();
    if now.duration_since(u.last_evict) >= EVICT_INTERVAL {
        u.last_evict = now;
        let before = u.vars.len();
        let evict_after = shared.evict_after;
        u.vars.retain(|_, s| s.pins > 0 || now.duration_since(s.last_used) < evict_after);
        if u.vars.len() != before {
            u.dirty = true;
        }
    }
    if !u.dirty {
        return None;
    }
    u.dirty = false;
    let mut order: Vec<(bool, Instant, u32)> = u.vars.iter().map(|(v, s)| (s.pins == 0, s.last_used, *v)).collect();
    order.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)).then(a.2.cmp(&b.2)));
    Some((order.into_iter().map(|(_, _, v)| v).collect(), u.rewrite_seq))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LogSink;
    use crate::testkit::{Rt, wait_for};
    use shared_abi::client::Reader;

    #[test]
    fn generations_compare_across_the_wrap() {
        assert!(generation_reached(5, 5));
        assert!(generation_reached(6, 5));
        assert!(!generation_reached(4, 5));
        assert!(generation_reached(1, u32::MAX));
    }

    #[test]
    fn a_full_union_makes_room_from_idle_variables_only() {
        let port = PlcPort::detached(LogSink::discard());
        let s = Sampler::start(Arc::downgrade(&port), Duration::from_secs(60));
        let all: Vec<u32> = (0..MAX_WATCH as u32).collect();
        let pinned = s.lease(&all[..1000]).unwrap();
        drop(s.lease(&all[1000..]).unwrap());
        // 24 idle variables can be evicted for 24 new ones, not for 25.
        let extra: Vec<u32> = (5000..5025).collect();
        assert_eq!(s.lease(&extra).err(), Some(SampleError::WatchFull));
        let ok = s.lease(&extra[..24]).unwrap();
        assert_eq!(s.watched(), MAX_WATCH);
        drop((ok, pinned));
    }

    /// The union as rt-core last received it.
    fn shared_list(rt: &Rt) -> Vec<u32> {
        let obs = rt.observer();
        let mut w: shared_abi::debug::WatchList = bytemuck::Zeroable::zeroed();
        obs.shm().watch.read(&mut w, 1000).unwrap();
        let mut list = w.vars[..w.count as usize].to_vec();
        list.sort_unstable();
        list
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn leases_with_different_sets_are_all_served_and_idle_ones_leave_the_shared_list() {
        let rt = Rt::with_fixture(&[]);
        let port = rt.port();
        let s = Sampler::start(Arc::downgrade(&port), Duration::from_millis(300));
        let info = port.program_info().expect("the fixture is loaded");
        let a = s.lease(&[0, 6]).unwrap();
        let b = s.lease(&[6, 4, 900]).unwrap();
        let arrival = port.cycle();
        let (sa, sb) = tokio::join!(
            a.wait(info.program_gen, arrival, Duration::from_secs(5)),
            b.wait(info.program_gen, arrival, Duration::from_secs(5))
        );
        let (sa, sb) = (sa.unwrap(), sb.unwrap());
        assert!(sa.cycle > arrival && sb.cycle > arrival, "values from a scan after the request");
        let string = sb.bytes(6).unwrap();
        assert_eq!(&string[..8], b"\x07rt-core", "the fixture's STRING");
        assert_eq!(sb.bytes(4).unwrap().len(), 8, "LINT");
        assert!(matches!(sb.get(900), Some(Value::Missing)), "no variable 900 in the fixture");
        assert_eq!(sa.bytes(0).unwrap().len(), 2, "the UINT counter");
        assert_eq!(shared_list(&rt), [0, 4, 6, 900]);
        drop(a);
        // 0 is idle now; 4, 6 and 900 are still pinned by `b`.
        wait_for("0 to leave the shared list", Duration::from_secs(5), || {
            (shared_list(&rt) == [4, 6, 900]).then_some(())
        });
        drop(b);
        wait_for("the shared list to empty", Duration::from_secs(5), || shared_list(&rt).is_empty().then_some(()));
        assert_eq!(s.watched(), 0);
    }
}
