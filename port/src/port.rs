//! [`PlcPort`] itself: the lease and the observer, the reads that never wait, and the
//! calls that hold the lease for a moment (inputs, writes, sending a command, draining).

use crate::error::{Incarnation, PortError};
use crate::log::LogSink;
use crate::sampler::{EVICT_AFTER, Sampler};
use crate::ticker::Ticker;
use shared_abi::client::{ClientError, Observer, Reader, RtClient, Status};
use shared_abi::debug::{DebugValues, ForceTable, LoadResult, ProgramInfo};
use shared_abi::image::{Area, IecAddress, InputImage};
use shared_abi::layout::{OutputSnapshot, PlcState, SharedMemory, WriteRing};
use shared_abi::migrate::{MigratePlan, SwapReport};
use shared_abi::msg::{Command, Event, LogLevel, LogLine, MAX_WRITES_PER_CYCLE};
use shared_abi::retain::RetainImage;
use shared_abi::seqlock::{READER_ATTEMPTS, SeqLock};
use shared_abi::sizes::ImageRequest;
use shared_abi::stats::{HistogramSnapshot, Stats};
use shared_abi::tasks::TaskRecords;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock, Weak};
use std::time::Duration;

/// rt-core's rules for a batch of image writes, checked before anything is queued: no
/// input, every value within its point's width, no more than the queue holds.
pub(crate) fn check_writes(writes: &[(IecAddress, u64)]) -> Result<(), PortError> {
    for &(addr, value) in writes {
        if addr.area() == Area::Input {
            return Err(PortError::InputNotWritable(addr));
        }
        if addr.check_value(value).is_err() {
            return Err(PortError::ValueTooLarge { addr, value });
        }
    }
    if writes.len() > WriteRing::CAPACITY {
        return Err(PortError::TooManyWrites { count: writes.len(), capacity: WriteRing::CAPACITY });
    }
    Ok(())
}

/// How a program starts after a load.
#[derive(Clone, Copy)]
pub enum LoadKind<'a> {
    /// Every variable at its initial value (a new upload).
    Cold,
    /// The same program coming back (rt-core restarted, the device rebooted): rt-core gives
    /// it the RETAIN values and forces of its live copy in the shared memory when that copy
    /// is its own, else `staged` (values from the RETAIN file) when they are its own, else
    /// its initial values.
    Warm { staged: Option<&'a RetainImage> },
    /// An online change: the running program's values carried into the new one at the
    /// swap as `plan` says (the client matched the variables by name and type); the new
    /// program runs the very next cycle. rt-core starts it cold instead when the running
    /// program is not the one the plan was made for (see [`PlcPort::swap_report`]).
    Online { plan: &'a MigratePlan },
}

impl<'a> LoadKind<'a> {
    fn is_warm(self) -> bool {
        matches!(self, LoadKind::Warm { .. })
    }

    fn staged(self) -> Option<&'a RetainImage> {
        match self {
            LoadKind::Warm { staged } => staged,
            LoadKind::Cold | LoadKind::Online { .. } => None,
        }
    }

    fn plan(self) -> Option<&'a MigratePlan> {
        match self {
            LoadKind::Online { plan } => Some(plan),
            _ => None,
        }
    }
}

/// The one way to reach rt-core. See the crate documentation for the contract.
pub struct PlcPort {
    me: Weak<PlcPort>,
    /// The client lease: sole producer of commands and writes, sole writer of inputs and
    /// the watch list. Held only for the duration of one push or publish.
    client: Mutex<Option<RtClient>>,
    /// Read-only view of the same shared memory, for reads and waits.
    observer: RwLock<Option<Arc<Observer>>>,
    /// The outputs last copied, and the copy before them to copy the next into.
    outputs: Mutex<OutputCopies>,
    log: LogSink,
    ticker: OnceLock<Ticker>,
    sampler: OnceLock<Sampler>,
}

/// A batch of writes queued: its place in rt-core's write ring, which rt-core reports
/// applying at the start of the cycle that applies it (see [`PlcPort::wait_applied`]), and
/// the loop cycle by whose end it is applied at the latest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteTicket {
    pub(crate) applied_by: u64,
    /// The write ring's producer counter just after the batch was pushed.
    pub(crate) position: u32,
    pub(crate) incarnation: Incarnation,
}

impl WriteTicket {
    /// The latest loop cycle that can apply the batch: once [`PlcPort::cycle`] is greater,
    /// the program has seen it (usually applied sooner: [`PlcPort::wait_applied`] says
    /// when).
    pub fn applied_by(&self) -> u64 {
        self.applied_by
    }

    /// The rt-core the writes went to.
    pub fn incarnation(&self) -> Incarnation {
        self.incarnation
    }
}

/// A command sent and not yet answered: its sequence number and the rt-core it went to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommandTicket {
    pub(crate) seq: u32,
    pub(crate) incarnation: Incarnation,
}

impl CommandTicket {
    pub fn seq(&self) -> u32 {
        self.seq
    }

    pub fn incarnation(&self) -> Incarnation {
        self.incarnation
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves its data whole at each step (a complete ring push, a
    // complete publish), so a panic elsewhere must not disable the port.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub(crate) fn incarnation_of(shm: &SharedMemory) -> Incarnation {
    Incarnation {
        pid: shm.header.rt_pid.load(Ordering::Acquire),
        boot_ns: shm.header.rt_boot_ns.load(Ordering::Acquire),
    }
}

fn empty_outputs() -> Arc<OutputSnapshot> {
    zeroed_arc()
}

/// An all-zero snapshot made in place (the 2.8 MiB never pass through the stack). It writes
/// every page: a millisecond and more on a VM, so a reader makes one only when it has no
/// copy to reuse.
fn zeroed_arc() -> Arc<OutputSnapshot> {
    bytemuck::allocation::zeroed_arc()
}

/// The published outputs as the port last copied them, keyed by the seqlock version they
/// were copied at, and the copy before, whose memory the next copy reuses once no caller
/// holds it any more (usually: a caller holds one for a request).
#[derive(Default)]
struct OutputCopies {
    latest: Option<(u64, Arc<OutputSnapshot>)>,
    spare: Option<Arc<OutputSnapshot>>,
}

impl OutputCopies {
    /// The latest copy if it is of `version`.
    fn of(&self, version: u64) -> Option<Arc<OutputSnapshot>> {
        self.latest.as_ref().filter(|(v, _)| *v == version).map(|(_, snap)| snap.clone())
    }

    /// A new copy of the published outputs: into the spare when nobody holds it, else into
    /// a fresh one. The copy it replaces becomes the spare.
    fn renew(&mut self, seqlock: &SeqLock<OutputSnapshot>) -> Option<Arc<OutputSnapshot>> {
        let mut copy = self.spare.take().filter(|spare| Arc::strong_count(spare) == 1).unwrap_or_else(zeroed_arc);
        // Torn (rt-core died mid-publish): the partial copy is dropped.
        let version = shared_abi::layout::reread_outputs(seqlock, Arc::get_mut(&mut copy)?, READER_ATTEMPTS).ok()?;
        self.spare = self.latest.replace((version, copy.clone())).map(|(_, old)| old);
        Some(copy)
    }

    /// The last good copy (all zero, `cycle` 0, before the first).
    fn last_good(&self) -> Arc<OutputSnapshot> {
        self.latest.as_ref().map(|(_, snap)| snap.clone()).unwrap_or_else(empty_outputs)
    }
}

impl PlcPort {
    /// A port with no rt-core yet: the companion's, which its supervisor attaches once
    /// rt-core runs. Every call that needs rt-core answers `NotAttached` until then.
    pub fn detached(log: LogSink) -> Arc<PlcPort> {
        Arc::new_cyclic(|me| PlcPort {
            me: me.clone(),
            client: Mutex::new(None),
            observer: RwLock::new(None),
            outputs: Mutex::new(OutputCopies::default()),
            log,
            ticker: OnceLock::new(),
            sampler: OnceLock::new(),
        })
    }

    /// Takes the client lease of shared memory `shm` now (tools, tests, a standalone
    /// plugin). Fails while another client holds it.
    pub fn open(shm: &str, log: LogSink) -> Result<Arc<PlcPort>, PortError> {
        let client = RtClient::open(shm).map_err(client_error)?;
        let observer = Observer::open(shm).map_err(client_error)?;
        let port = PlcPort::detached(log);
        port.attach(client, observer);
        Ok(port)
    }

    /// Installs a freshly opened lease and observer of the same shared memory.
    pub fn attach(&self, client: RtClient, observer: Observer) {
        *lock(&self.client) = Some(client);
        *self.observer.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(observer));
        *lock(&self.outputs) = OutputCopies::default();
    }

    /// Drops the lease (another client may take it) and the observer. Waits under way fail
    /// with `RtGone` or `RtReplaced` once rt-core is gone, or time out.
    pub fn detach(&self) {
        *self.observer.write().unwrap_or_else(|p| p.into_inner()) = None;
        *lock(&self.client) = None;
    }

    pub fn is_attached(&self) -> bool {
        self.observer.read().unwrap_or_else(|p| p.into_inner()).is_some()
    }

    pub(crate) fn observer(&self) -> Option<Arc<Observer>> {
        self.observer.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Runs `f` on the observer while attached, without cloning it.
    fn with_observer<R>(&self, f: impl FnOnce(&Observer) -> R) -> Option<R> {
        self.observer.read().unwrap_or_else(|p| p.into_inner()).as_deref().map(f)
    }

    pub(crate) fn ticker(&self) -> &Ticker {
        self.ticker.get_or_init(|| Ticker::start(self.me.clone()))
    }

    /// The shared watch list and its sampler thread (started on first use).
    pub fn sampler(&self) -> &Sampler {
        self.sampler.get_or_init(|| Sampler::start(self.me.clone(), EVICT_AFTER))
    }

    /// A line for the runtime log.
    pub fn log(&self, level: LogLevel, text: &str) {
        self.log.log(level, text)
    }

    // ---- reads: never wait on rt-core ----

    /// rt-core's loop counter (the header's heartbeat, one atomic load); 0 while detached.
    pub fn cycle(&self) -> u64 {
        self.with_observer(|o| o.shm().header.heartbeat.load(Ordering::Acquire)).unwrap_or(0)
    }

    /// The cycle a request arriving now is after (see [`shared_abi::layout::arrival_cycle`]):
    /// what to pass as `arrival` to [`PlcPort::sample`] and [`crate::Lease::wait`] for values
    /// of the first scan that begins after now. Between cycles, which is nearly always,
    /// that is the very next scan; [`PlcPort::cycle`] as `arrival` would wait for the one
    /// after it. 0 while detached.
    pub fn arrival(&self) -> u64 {
        self.with_observer(|o| shared_abi::layout::arrival_cycle(&o.shm().header)).unwrap_or(0)
    }

    /// The loop period in force, ns; 0 while detached.
    pub fn period_ns(&self) -> u64 {
        self.with_observer(|o| o.shm().header.period_ns.load(Ordering::Acquire)).unwrap_or(0)
    }

    /// The PLC state rt-core last published (stale if it died: see [`PlcPort::rt_alive`]).
    pub fn state(&self) -> Option<PlcState> {
        self.with_observer(|o| o.shm().state())
    }

    /// Whether an rt-core process holds the shared memory (a `flock` probe: a system call,
    /// not free, but it never waits).
    pub fn rt_alive(&self) -> bool {
        self.with_observer(|o| o.rt_alive()).unwrap_or(false)
    }

    /// The header at a glance, liveness included.
    pub fn status(&self) -> Option<Status> {
        self.with_observer(|o| o.status())
    }

    /// The rt-core process the shared memory belongs to now.
    pub fn incarnation(&self) -> Option<Incarnation> {
        self.with_observer(|o| incarnation_of(o.shm()))
    }

    /// The program swapped in; `None` while detached, with no program, or when the
    /// record cannot be read consistently.
    pub fn program_info(&self) -> Option<ProgramInfo> {
        self.with_observer(|o| o.program_info().ok()).flatten().filter(|p| p.program_gen != 0)
    }

    pub fn stats(&self) -> Option<Stats> {
        self.with_observer(|o| o.stats().ok()).flatten()
    }

    pub fn histogram(&self) -> Option<Box<HistogramSnapshot>> {
        self.with_observer(|o| o.histogram())
    }

    /// The per-task records of the running program when its tasks run on threads of their
    /// own (`None` otherwise: no program, another program's records, or a torn read).
    pub fn task_records(&self) -> Option<Box<TaskRecords>> {
        self.with_observer(|o| {
            let records = o.task_records().ok()?;
            let current = records.count > 0 && records.program_gen == o.status().program_gen;
            current.then_some(records)
        })
        .flatten()
    }

    /// Task `index`'s wake-up latency histogram (an index into [`PlcPort::task_records`]).
    pub fn task_histogram(&self, index: usize) -> Option<Box<HistogramSnapshot>> {
        self.with_observer(|o| o.task_histogram(index)).flatten()
    }

    /// The outcome of the last program load rt-core carried out.
    pub fn load_result(&self) -> Option<LoadResult> {
        self.with_observer(|o| o.load_result().ok()).flatten()
    }

    /// The variables forced in the running program, as rt-core last published them
    /// (check `program_gen` against [`PlcPort::program_info`]'s before naming them).
    pub fn forces(&self) -> Option<Box<ForceTable>> {
        self.with_observer(|o| o.forces().ok()).flatten()
    }

    /// What the last program swap did: cold or online, the swap cycle, and for an online
    /// change how many values were carried, converted and truncated.
    pub fn swap_report(&self) -> Option<SwapReport> {
        self.with_observer(|o| o.swap_report().ok()).flatten()
    }

    /// The running program's RETAIN values as rt-core last published them.
    pub fn retain_saved(&self) -> Option<Box<RetainImage>> {
        self.with_observer(|o| o.retain_saved().ok()).flatten()
    }

    /// The latest published outputs and memory. One copy per published scan (keyed by the
    /// seqlock's version), shared by every caller until the next scan is published, so it
    /// is cheap enough for every protocol read. While detached, or if rt-core died
    /// mid-publish, the last good copy (all zero, `cycle` 0, before the first).
    pub fn outputs(&self) -> Arc<OutputSnapshot> {
        let mut copies = lock(&self.outputs);
        let fresh = self.with_observer(|obs| {
            let seqlock = &obs.shm().outputs;
            // Only the program's tables are copied: the cost of a copy follows the
            // program, not the 2.8 MiB the layout has room for.
            copies.of(seqlock.version()).or_else(|| copies.renew(seqlock))
        });
        fresh.flatten().unwrap_or_else(|| copies.last_good())
    }

    pub(crate) fn read_debug(&self, out: &mut DebugValues) -> Result<(), PortError> {
        self.with_observer(|o| {
            o.shm().debug.read(out, READER_ATTEMPTS).map(|_| ()).map_err(|_| PortError::Torn("debug values"))
        })
        .unwrap_or(Err(PortError::NotAttached))
    }

    // ---- the lease, held for one call ----

    /// Lets `f` read the input image as this port last published it (no copy); `None`
    /// while detached.
    pub fn inputs<R>(&self, f: impl FnOnce(&InputImage) -> R) -> Option<R> {
        lock(&self.client).as_ref().map(|c| f(c.inputs()))
    }

    /// Changes inputs with `f` and publishes them for rt-core's next scan. `f` runs under
    /// the lease: keep it short.
    pub fn update_inputs(&self, f: impl FnOnce(&mut InputImage)) -> Result<(), PortError> {
        let mut client = lock(&self.client);
        let client = client.as_mut().ok_or(PortError::NotAttached)?;
        client.update_inputs(f);
        Ok(())
    }

    /// Queues writes to `%Q`/`%M` points, all or nothing: either every one is queued, or
    /// none is and the error says why (`WriteQueueFull` clears once rt-core drains its
    /// queue). rt-core applies them at the start of a later cycle, at most
    /// `MAX_WRITES_PER_CYCLE` per cycle, in order: batches queued by any number of callers
    /// during one cycle are applied together at the start of the next.
    pub fn write(&self, writes: &[(IecAddress, u64)]) -> Result<WriteTicket, PortError> {
        check_writes(writes)?;
        let mut client = lock(&self.client);
        let client = client.as_mut().ok_or(PortError::NotAttached)?;
        let sizes = client.image_sizes();
        if let Some(&(addr, _)) = writes.iter().find(|(addr, _)| !sizes.contains(*addr)) {
            return Err(PortError::OutsideImage(addr));
        }
        let ring = &client.shm().writes;
        // The lease holder is the ring's only producer, so the room seen here cannot
        // shrink before the pushes below: the batch goes in whole or not at all.
        if ring.capacity() - ring.len() < writes.len() {
            return Err(PortError::WriteQueueFull);
        }
        for &(addr, value) in writes {
            client.write(addr, value).map_err(|e| match e {
                ClientError::RingFull => PortError::WriteQueueFull,
                _ => PortError::ValueTooLarge { addr, value },
            })?;
        }
        let shm = client.shm();
        let position = shm.writes.produced();
        let now = shm.header.heartbeat.load(Ordering::Acquire);
        // Cycle `now` may be past its write step already; each later cycle takes up to
        // MAX_WRITES_PER_CYCLE from the queue, ours being the last of it.
        let backlog = shm.writes.len().max(1);
        Ok(WriteTicket {
            applied_by: now + backlog.div_ceil(MAX_WRITES_PER_CYCLE) as u64,
            position,
            incarnation: incarnation_of(shm),
        })
    }

    /// Queues a command without waiting for its answer (see [`PlcPort::wait_result`]).
    pub fn send(&self, command: Command) -> Result<CommandTicket, PortError> {
        let mut client = lock(&self.client);
        let client = client.as_mut().ok_or(PortError::NotAttached)?;
        let seq = client.send(command).map_err(|e| match e {
            ClientError::RingFull => PortError::CommandQueueFull,
            _ => PortError::TooLarge { what: "command" },
        })?;
        Ok(CommandTicket { seq, incarnation: incarnation_of(client.shm()) })
    }

    /// Stages `retain` (or a cold start) and queues a `Load`, under one hold of the lease.
    pub(crate) fn send_load(
        &self,
        path: &str,
        start: bool,
        kind: LoadKind<'_>,
        image: ImageRequest,
    ) -> Result<CommandTicket, PortError> {
        use shared_abi::msg::MAX_PATH;
        if path.len() > MAX_PATH {
            return Err(PortError::TooLarge { what: "program path" });
        }
        let path = shared_abi::msg::bounded::<MAX_PATH>(path);
        let command = Command::Load { path, start, warm: kind.is_warm(), online: kind.plan().is_some(), image };
        let mut client = lock(&self.client);
        let client = client.as_mut().ok_or(PortError::NotAttached)?;
        client.stage_retain(kind.staged());
        client.stage_plan(kind.plan());
        let seq = client.send(command).map_err(|e| match e {
            ClientError::RingFull => PortError::CommandQueueFull,
            _ => PortError::TooLarge { what: "program path" },
        })?;
        Ok(CommandTicket { seq, incarnation: incarnation_of(client.shm()) })
    }

    /// Replaces the watch list (the sampler's job alone: it owns the list).
    pub(crate) fn set_watch(&self, vars: &[u32]) -> Result<u32, PortError> {
        let mut client = lock(&self.client);
        Ok(client.as_mut().ok_or(PortError::NotAttached)?.set_watch(vars))
    }

    /// Hands rt-core's queued events and log lines to `on_event` and `on_log` (called
    /// after the lease is released). False while detached.
    pub fn drain(&self, mut on_event: impl FnMut(Event), mut on_log: impl FnMut(LogLine)) -> bool {
        let (events, lines) = {
            let mut client = lock(&self.client);
            let Some(client) = client.as_mut() else { return false };
            let (mut events, mut lines) = (Vec::new(), Vec::new());
            client.drain_events(|e| events.push(e));
            client.drain_logs(|l| lines.push(l));
            (events, lines)
        };
        events.into_iter().for_each(&mut on_event);
        lines.into_iter().for_each(&mut on_log);
        true
    }

    /// How long to wait for an answer that comes at a cycle start: `at_least`, and at
    /// least three loop periods (a program with a slow task period needs longer).
    pub fn command_timeout(&self, at_least: Duration) -> Duration {
        at_least.max(Duration::from_nanos(self.period_ns().saturating_mul(3)))
    }
}

/// Opening a lease or an observer fails only on the shared memory itself.
fn client_error(e: ClientError) -> PortError {
    match e {
        ClientError::Shm(e) => PortError::Open(e),
        _ => PortError::RtGone,
    }
}

impl std::fmt::Debug for PlcPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlcPort").field("attached", &self.is_attached()).field("cycle", &self.cycle()).finish()
    }
}
