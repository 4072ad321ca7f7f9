//! The client side of the shared memory, as one typed API: what the companion and the
//! control tool use to drive rt-core. It holds the client lease, so it is the single
//! producer of commands and writes and the single writer of inputs and the watch list.
//!
//! Calls that wait (for a command result, a load, fresh debug values) poll with short
//! sleeps: they run on ordinary threads, never on rt-core's.
//!
//! Commands queued before rt-core (re)starts are carried out once its scan loop runs,
//! including any a dead predecessor did not get to.

use crate::debug::{DebugValues, LoadOutcome, LoadResult, MAX_WATCH, ProgramInfo, WatchList};
use crate::image::{IecAddress, InputImage};
use crate::layout::{
    INPUT_LINE_BYTES, INPUT_LINE_WORDS, InputSnapshot, OutputSnapshot, PlcState, SharedMemory, input_table_lines,
};
use crate::msg::{Command, CommandEnvelope, CommandStatus, Event, ImageWrite, LogLine, MAX_PATH};
use crate::ring::PushError;
use crate::shm::{ClientMapping, ObserverMapping, ShmError};
use crate::sizes::{ImageRequest, ImageSizes};
use crate::stats::{HistogramSnapshot, Stats};
use crate::tasks::TaskRecords;
use bytemuck::Zeroable;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::seqlock::READER_ATTEMPTS as READ_ATTEMPTS;

#[derive(Debug)]
pub enum ClientError {
    Shm(ShmError),
    /// The command ring is full: rt-core is not taking commands (stalled or gone).
    RingFull,
    /// The command did not fit a slot (a path longer than `MAX_PATH`, say).
    TooLarge,
    /// No answer in time.
    Timeout {
        what: &'static str,
        after: Duration,
    },
    /// rt-core is not running.
    RtGone,
    /// rt-core answered with a status other than the one the call needs.
    Refused(CommandStatus),
    /// A load that rt-core could not carry out.
    LoadFailed(String),
    /// A snapshot could not be read consistently (its writer died mid-write).
    Torn(&'static str),
    BadAddress(crate::image::AddressError),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Shm(e) => write!(f, "{e}"),
            ClientError::RingFull => write!(f, "rt-core's command ring is full (is its scan loop stalled?)"),
            ClientError::TooLarge => write!(f, "command too large for a ring slot"),
            ClientError::Timeout { what, after } => write!(f, "no answer from rt-core to {what} within {after:?}"),
            ClientError::RtGone => write!(f, "openplc-rt is not running"),
            ClientError::Refused(s) => write!(f, "rt-core refused: {}", s.as_str()),
            ClientError::LoadFailed(m) => write!(f, "program load failed: {m}"),
            ClientError::Torn(what) => write!(f, "could not read a consistent {what}"),
            ClientError::BadAddress(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<ShmError> for ClientError {
    fn from(e: ShmError) -> Self {
        ClientError::Shm(e)
    }
}

/// A glance at rt-core's header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub state: PlcState,
    pub program_gen: u32,
    pub heartbeat: u64,
    pub period_ns: u64,
    pub rt_pid: u32,
    pub rt_boot_ns: u64,
    pub rt_alive: bool,
    pub scan_cpu: i32,
    pub scan_priority: i32,
    pub rt_flags: u32,
}

fn status_of(shm: &SharedMemory, rt_alive: bool) -> Status {
    let h = &shm.header;
    Status {
        state: shm.state(),
        program_gen: h.program_gen.load(Ordering::Acquire),
        heartbeat: h.heartbeat.load(Ordering::Acquire),
        period_ns: h.period_ns.load(Ordering::Acquire),
        rt_pid: h.rt_pid.load(Ordering::Acquire),
        rt_boot_ns: h.rt_boot_ns.load(Ordering::Acquire),
        rt_alive,
        scan_cpu: h.scan_cpu.load(Ordering::Acquire),
        scan_priority: h.scan_priority.load(Ordering::Acquire),
        rt_flags: h.rt_flags.load(Ordering::Acquire),
    }
}

/// The lines (`INPUT_LINE_BYTES` each) in which `new` differs from `old`.
fn changed_lines(old: &InputImage, new: &InputImage, sizes: &ImageSizes) -> [u64; INPUT_LINE_WORDS] {
    let mut changed = [0u64; INPUT_LINE_WORDS];
    let (old, new) = (bytemuck::bytes_of(old), bytemuck::bytes_of(new));
    for range in input_table_lines(sizes) {
        for i in range {
            let at = i * INPUT_LINE_BYTES..(i + 1) * INPUT_LINE_BYTES;
            if old.get(at.clone()) != new.get(at) {
                changed[i / 64] |= 1 << (i % 64);
            }
        }
    }
    changed
}

/// Copies `lines` of `src` into `dst` (two input images' bytes).
fn copy_lines(src: &[u8], dst: &mut [u8], lines: &[core::ops::Range<usize>]) {
    for range in lines {
        let at = range.start * INPUT_LINE_BYTES..range.end * INPUT_LINE_BYTES;
        if let (Some(d), Some(s)) = (dst.get_mut(at.clone()), src.get(at)) {
            d.copy_from_slice(s);
        }
    }
}

/// Reads shared by the client and the observer.
pub trait Reader {
    fn shm(&self) -> &SharedMemory;
    fn rt_alive(&self) -> bool;

    fn status(&self) -> Status {
        status_of(self.shm(), self.rt_alive())
    }

    fn stats(&self) -> Result<Stats, ClientError> {
        let mut s = Stats::zeroed();
        self.shm().stats.read(&mut s, READ_ATTEMPTS).map_err(|_| ClientError::Torn("stats"))?;
        Ok(s)
    }

    fn histogram(&self) -> Box<HistogramSnapshot> {
        let mut h = Box::new(HistogramSnapshot::empty());
        self.shm().histogram.snapshot(&mut h);
        h
    }

    /// Per-task records of a program whose tasks run on threads of their own (`count` 0
    /// otherwise).
    fn task_records(&self) -> Result<Box<TaskRecords>, ClientError> {
        let mut r: Box<TaskRecords> = bytemuck::zeroed_box();
        self.shm().tasks.records.read(&mut r, READ_ATTEMPTS).map_err(|_| ClientError::Torn("task records"))?;
        Ok(r)
    }

    /// Task `index`'s wake-up latency histogram (`None` past `tasks::MAX_TASKS`).
    fn task_histogram(&self, index: usize) -> Option<Box<HistogramSnapshot>> {
        let cell = self.shm().tasks.histograms.get(index)?;
        let mut h = Box::new(HistogramSnapshot::empty());
        cell.snapshot(&mut h);
        Some(h)
    }

    fn program_info(&self) -> Result<ProgramInfo, ClientError> {
        let mut p = ProgramInfo::zeroed();
        self.shm().program.read(&mut p, READ_ATTEMPTS).map_err(|_| ClientError::Torn("program info"))?;
        Ok(p)
    }

    fn outputs(&self) -> Result<Box<OutputSnapshot>, ClientError> {
        let mut o: Box<OutputSnapshot> = bytemuck::zeroed_box();
        crate::layout::read_outputs(&self.shm().outputs, &mut o, READ_ATTEMPTS)
            .map_err(|_| ClientError::Torn("output image"))?;
        Ok(o)
    }

    fn debug_values(&self) -> Result<Box<DebugValues>, ClientError> {
        let mut d: Box<DebugValues> = bytemuck::zeroed_box();
        self.shm().debug.read(&mut d, READ_ATTEMPTS).map_err(|_| ClientError::Torn("debug values"))?;
        Ok(d)
    }

    /// The running program's RETAIN values as rt-core last published them.
    fn retain_saved(&self) -> Result<Box<crate::retain::RetainImage>, ClientError> {
        let mut r: Box<crate::retain::RetainImage> = bytemuck::zeroed_box();
        self.shm().retain_saved.read(&mut r, READ_ATTEMPTS).map_err(|_| ClientError::Torn("retain values"))?;
        Ok(r)
    }

    /// The variables forced in the running program, as rt-core last published them.
    fn forces(&self) -> Result<Box<crate::debug::ForceTable>, ClientError> {
        let mut f: Box<crate::debug::ForceTable> = bytemuck::zeroed_box();
        self.shm().forces.read(&mut f, READ_ATTEMPTS).map_err(|_| ClientError::Torn("forced values"))?;
        Ok(f)
    }

    /// What the last program swap did (an online change's counts, the swap cycle).
    fn swap_report(&self) -> Result<crate::migrate::SwapReport, ClientError> {
        let mut r = crate::migrate::SwapReport::zeroed();
        self.shm().swap.read(&mut r, READ_ATTEMPTS).map_err(|_| ClientError::Torn("swap report"))?;
        Ok(r)
    }

    fn load_result(&self) -> Result<LoadResult, ClientError> {
        let mut r = LoadResult::zeroed();
        self.shm().load_result.read(&mut r, READ_ATTEMPTS).map_err(|_| ClientError::Torn("load result"))?;
        Ok(r)
    }

    /// Waits until the loop counter passes `cycle` (at least one full cycle after a call
    /// that read `cycle`). Errors if rt-core dies or stalls past `timeout`.
    fn wait_cycle_after(&self, cycle: u64, timeout: Duration) -> Result<u64, ClientError> {
        let start = Instant::now();
        loop {
            let now = self.shm().header.heartbeat.load(Ordering::Acquire);
            if now > cycle {
                return Ok(now);
            }
            if !self.rt_alive() {
                return Err(ClientError::RtGone);
            }
            if start.elapsed() > timeout {
                return Err(ClientError::Timeout { what: "a scan cycle", after: timeout });
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

/// Read-only access alongside the client.
pub struct Observer {
    mapping: ObserverMapping,
}

impl Observer {
    pub fn open(name: &str) -> Result<Self, ClientError> {
        Ok(Observer { mapping: ObserverMapping::open(name)? })
    }
}

impl Reader for Observer {
    fn shm(&self) -> &SharedMemory {
        self.mapping.shm()
    }
    fn rt_alive(&self) -> bool {
        self.mapping.rt_alive()
    }
}

/// The lease holder's API.
pub struct RtClient {
    mapping: ClientMapping,
    next_seq: u32,
    /// The input image as this client wants it.
    inputs: Box<InputImage>,
    /// What was last published, to tell rt-core which areas changed.
    published: Box<InputSnapshot>,
    /// The next publish marks everything changed and copies every line: after taking
    /// over, and after a program swap.
    publish_all: bool,
    /// The loaded program's table sizes (keyed by its generation): what is compared and
    /// copied on every other publish.
    sizes: (u32, ImageSizes),
    watch_generation: u32,
}

impl Reader for RtClient {
    fn shm(&self) -> &SharedMemory {
        self.mapping.shm()
    }
    fn rt_alive(&self) -> bool {
        self.mapping.rt_alive()
    }
}

impl RtClient {
    /// Takes the client lease and picks up where the previous client left off: its
    /// inputs, its watch-list generation, and command numbers that cannot collide with
    /// commands it left in the ring.
    pub fn open(name: &str) -> Result<Self, ClientError> {
        let mapping = ClientMapping::open(name)?;
        let shm = mapping.shm();
        let next_seq = shm.control.acked_seq.load(Ordering::Acquire).wrapping_add(shm.commands.len() as u32 + 1);
        let mut published: Box<InputSnapshot> = bytemuck::zeroed_box();
        // SAFETY: we hold the client lease, so we are the only (future) writer of the input
        // buffer; `copy_latest` only fails while the reader is mid-swap, which ends quickly.
        while !unsafe { shm.inputs.copy_latest(&mut published) } {
            std::thread::yield_now();
        }
        let mut inputs: Box<InputImage> = bytemuck::zeroed_box();
        bytemuck::bytes_of_mut(&mut *inputs).copy_from_slice(bytemuck::bytes_of(&published.image));
        let mut watch = WatchList::zeroed();
        let watch_generation = match shm.watch.read(&mut watch, READ_ATTEMPTS) {
            Ok(_) => watch.generation,
            // A previous client died mid-write; the next write repairs the sequence.
            Err(_) => 0,
        };
        Ok(RtClient {
            mapping,
            next_seq,
            inputs,
            published,
            publish_all: true,
            sizes: (u32::MAX, ImageSizes::FULL),
            watch_generation,
        })
    }

    /// Queues a command; returns its sequence number.
    pub fn send(&mut self, command: Command) -> Result<u32, ClientError> {
        let seq = self.next_seq;
        let envelope = CommandEnvelope { seq, command };
        // SAFETY: the client lease makes this the only producer of the command ring.
        let mut tx = unsafe { self.mapping.shm().commands.producer() };
        match tx.push(&envelope) {
            Ok(()) => {
                self.next_seq = self.next_seq.wrapping_add(1);
                Ok(seq)
            }
            Err(PushError::Full) => Err(ClientError::RingFull),
            Err(PushError::TooLarge) => Err(ClientError::TooLarge),
        }
    }

    /// Waits for the scan thread's answer to command `seq`.
    pub fn wait_result(&self, seq: u32, timeout: Duration) -> Result<CommandStatus, ClientError> {
        let start = Instant::now();
        loop {
            if let Some(code) = self.shm().control.result_of(seq) {
                return CommandStatus::from_u32(code).ok_or(ClientError::Torn("command result"));
            }
            if !self.rt_alive() {
                return Err(ClientError::RtGone);
            }
            if start.elapsed() > timeout {
                return Err(ClientError::Timeout { what: "a command", after: timeout });
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// Sends a command and waits for its answer.
    pub fn command(&mut self, command: Command, timeout: Duration) -> Result<CommandStatus, ClientError> {
        let seq = self.send(command)?;
        self.wait_result(seq, timeout)
    }

    /// Loads a program library and waits until it is swapped in (or refused). The old
    /// program keeps running if the load fails.
    pub fn load(&mut self, path: &str, start: bool, timeout: Duration) -> Result<LoadResult, ClientError> {
        self.load_with(path, start, false, timeout)
    }

    /// `load`, warm (`warm`: with the RETAIN values staged by `stage_retain`) or cold.
    pub fn load_with(
        &mut self,
        path: &str,
        start: bool,
        warm: bool,
        timeout: Duration,
    ) -> Result<LoadResult, ClientError> {
        self.load_sized(path, start, warm, ImageRequest::FROM_PROGRAM, timeout)
    }

    /// `load_with`, with the image sizes the upload configured.
    pub fn load_sized(
        &mut self,
        path: &str,
        start: bool,
        warm: bool,
        image: ImageRequest,
        timeout: Duration,
    ) -> Result<LoadResult, ClientError> {
        if path.len() > MAX_PATH {
            return Err(ClientError::TooLarge);
        }
        let path = crate::msg::bounded::<MAX_PATH>(path);
        let begin = Instant::now();
        let seq = self.send(Command::Load { path, start, warm, online: false, image })?;
        match self.wait_result(seq, timeout)? {
            CommandStatus::Accepted => {}
            other => return Err(ClientError::Refused(other)),
        }
        loop {
            let result = self.load_result()?;
            if result.request_seq == seq && result.outcome() != LoadOutcome::Pending {
                if result.outcome() == LoadOutcome::Failed {
                    return Err(ClientError::LoadFailed(result.message_str().to_string()));
                }
                // Loaded: wait for the swap at the next cycle boundary.
                if self.shm().header.program_gen.load(Ordering::Acquire) == result.program_gen {
                    return Ok(result);
                }
            }
            if !self.rt_alive() {
                return Err(ClientError::RtGone);
            }
            if begin.elapsed() > timeout {
                return Err(ClientError::Timeout { what: "a program load", after: timeout });
            }
            std::thread::sleep(Duration::from_micros(500));
        }
    }

    /// The inputs as this client last published them.
    pub fn inputs(&self) -> &InputImage {
        &self.inputs
    }

    /// The loaded program's table sizes (every table's whole room while none is loaded,
    /// so inputs set before a program are there for it).
    pub fn image_sizes(&mut self) -> ImageSizes {
        let generation = self.shm().header.program_gen.load(Ordering::Acquire);
        if generation == 0 {
            self.sizes = (0, ImageSizes::FULL);
        } else if self.sizes.0 != generation {
            let mut info = ProgramInfo::zeroed();
            if self.shm().program.read(&mut info, READ_ATTEMPTS).is_ok() && info.program_gen == generation {
                self.sizes = (generation, info.image_sizes);
                // The new program may reach cells the old one did not: the next publish
                // promises nothing, so rt-core copies its tables whole.
                self.publish_all = true;
            }
        }
        self.sizes.1
    }

    /// Changes inputs with `f` and publishes them for the next cycle. Only the program's
    /// tables (its sizes) are compared and copied: the cost follows the program.
    pub fn update_inputs(&mut self, f: impl FnOnce(&mut InputImage)) {
        f(&mut self.inputs);
        let sizes = self.image_sizes();
        let shm = self.mapping.shm();
        let previous = self.published.generation;
        if self.publish_all {
            // Taking over, or a new program: nothing is known of what rt-core holds.
            self.published.changed_since = 0;
            self.published.changed = [u64::MAX; INPUT_LINE_WORDS];
        } else {
            let step = changed_lines(&self.published.image, &self.inputs, &sizes);
            if shm.inputs.latest_taken() {
                // rt-core took the previous snapshot (it cannot take an older one any more):
                // it holds that one, so this one's changes are relative to it alone.
                self.published.changed_since = previous;
                self.published.changed = step;
            } else {
                // The previous one may never be taken: keep covering every step since the
                // snapshot rt-core may still hold.
                for (acc, s) in self.published.changed.iter_mut().zip(step) {
                    *acc |= s;
                }
            }
        }
        self.published.generation = previous + 1;
        // Only the lines of the program's tables are copied: the rest of each buffer is
        // never read (rt-core copies changed lines, all inside them, or those tables).
        // After taking over or a swap, every line: no buffer is left short of a table the
        // new program may have.
        let lines = input_table_lines(if self.publish_all { &ImageSizes::FULL } else { &sizes });
        copy_lines(bytemuck::bytes_of(&*self.inputs), bytemuck::bytes_of_mut(&mut self.published.image), &lines);
        self.publish_all = false;
        // SAFETY: the client lease makes us the only writer of the input buffer; the back
        // buffer reference does not outlive this block.
        unsafe {
            let back = bytemuck::bytes_of_mut(shm.inputs.back_buffer());
            let published = bytemuck::bytes_of(&*self.published);
            let head = core::mem::offset_of!(InputSnapshot, image);
            back[..head].copy_from_slice(&published[..head]);
            copy_lines(&published[head..], &mut back[head..], &lines);
            shm.inputs.publish();
        }
    }

    /// Sets one input point.
    pub fn set_input(&mut self, addr: IecAddress, value: u64) -> Result<(), ClientError> {
        addr.check_value(value).map_err(ClientError::BadAddress)?;
        if addr.area() != crate::image::Area::Input {
            return Err(ClientError::BadAddress(crate::image::AddressError::NoSuchArea));
        }
        self.update_inputs(|img| {
            img.set(addr, value);
        });
        Ok(())
    }

    /// Queues a write to an output or memory point, applied at the start of the next cycle.
    pub fn write(&mut self, addr: IecAddress, value: u64) -> Result<(), ClientError> {
        addr.check_value(value).map_err(ClientError::BadAddress)?;
        // SAFETY: the client lease makes this the only producer of the write ring.
        let mut tx = unsafe { self.mapping.shm().writes.producer() };
        tx.push(&ImageWrite { addr, value }).map_err(|e| match e {
            PushError::Full => ClientError::RingFull,
            PushError::TooLarge => ClientError::TooLarge,
        })
    }

    /// RETAIN values for the next `Load` to give back (`None`: a cold start). rt-core
    /// restores them only into a program with the same MD5 and RETAIN layout.
    pub fn stage_retain(&mut self, values: Option<&crate::retain::RetainImage>) {
        // SAFETY: the client lease makes us the only writer of the staged values.
        unsafe {
            self.mapping.shm().retain_restore.write(|r| match values {
                Some(v) => *r = *v,
                None => {
                    r.program_gen = 0;
                    r.count = 0;
                    r.len = 0;
                }
            })
        };
    }

    /// Stages the migration plan for the next online `Load` (`None`: none, so an online
    /// load starts cold).
    pub fn stage_plan(&mut self, plan: Option<&crate::migrate::MigratePlan>) {
        // SAFETY: the client lease makes us the only writer of the staged plan.
        unsafe {
            self.mapping.shm().migrate_plan.write(|p| match plan {
                Some(v) => *p = *v,
                None => {
                    p.old_program_gen = 0;
                    p.count = 0;
                }
            })
        };
    }

    /// Replaces the watch list; returns its generation (echoed in `DebugValues`).
    pub fn set_watch(&mut self, vars: &[u32]) -> u32 {
        self.watch_generation = self.watch_generation.wrapping_add(1).max(1);
        let generation = self.watch_generation;
        let n = vars.len().min(MAX_WATCH);
        // SAFETY: the client lease makes us the only writer of the watch list.
        unsafe {
            self.mapping.shm().watch.write(|w| {
                w.generation = generation;
                w.count = n as u32;
                w.vars[..n].copy_from_slice(&vars[..n]);
            })
        };
        generation
    }

    /// Waits for debug values that answer watch generation `generation` and were taken in
    /// a cycle after `after_cycle`.
    pub fn wait_debug_values(
        &self,
        generation: u32,
        after_cycle: u64,
        timeout: Duration,
    ) -> Result<Box<DebugValues>, ClientError> {
        let start = Instant::now();
        loop {
            let values = self.debug_values()?;
            if values.watch_generation == generation && values.cycle > after_cycle {
                return Ok(values);
            }
            if !self.rt_alive() {
                return Err(ClientError::RtGone);
            }
            if start.elapsed() > timeout {
                return Err(ClientError::Timeout { what: "debug values", after: timeout });
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// Hands every queued event to `f`; returns how many. Undecodable slots are skipped.
    pub fn drain_events(&mut self, mut f: impl FnMut(Event)) -> usize {
        // SAFETY: the client lease makes this the only consumer of the event ring.
        let mut rx = unsafe { self.mapping.shm().events.consumer() };
        let mut n = 0;
        while let Some(msg) = rx.pop::<Event>() {
            if let Ok(event) = msg {
                f(event);
            }
            n += 1;
        }
        n
    }

    /// Hands every queued log line from rt-core's control thread to `f`.
    pub fn drain_logs(&mut self, mut f: impl FnMut(LogLine)) -> usize {
        // SAFETY: the client lease makes this the only consumer of the log ring.
        let mut rx = unsafe { self.mapping.shm().logs.consumer() };
        let mut n = 0;
        while let Some(msg) = rx.pop::<LogLine>() {
            if let Ok(line) = msg {
                f(line);
            }
            n += 1;
        }
        n
    }
}
