//! What every plugin of one host shares: the image mirror the pointer tables point into,
//! the recursive image lock, the journal of pending writes, and the view the Python helper
//! reads from.
//!
//! Semantics (documented for plugin authors in the README):
//! - `image_lock()` (outermost) flushes the journal, then refreshes the whole mirror: outputs
//!   and memory from the latest published scan, inputs from what the companion publishes.
//!   It is recursive, so a plugin may take it inside `cycle_end` (where the host already
//!   holds it).
//! - `image_unlock()` (outermost) compares the mirror with what the lock loaded and sends
//!   every changed cell on: input cells into the input image, output and memory cells
//!   through the write ring (rt-core applies them at its next scan start).
//! - `journal_write_*` queue one point. The queue is flushed once per published scan by the
//!   cycle thread, at every outermost `image_lock`/`image_unlock`, and whenever it holds
//!   `JOURNAL_MAX` entries, so a write normally reaches rt-core before its next scan.
//!
//! Lock order, outermost first: image lock → journal flush lock → view → pending journal →
//! (the port's own locks). Of these only the image lock is held while
//! a plugin runs (its cycle hooks), and none is held while waiting for Python's GIL. (The
//! host's own state lock, held around lifecycle calls, is outside all of them.)

use openplc_port::{PlcPort, PortError, WriteRing};
use shared_abi::debug::ProgramInfo;
use shared_abi::image::{Area, BITS_PER_BYTE, IecAddress, Image, InputImage, OutputImage, TABLE_CAPACITY, Width};
use shared_abi::layout::{OutputSnapshot, PlcState};
use shared_abi::msg::{Command, CommandStatus, LogLevel};
use shared_abi::plugin::PluginRuntimeArgs;
use shared_abi::sizes::ImageSizes;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

/// Pending journal entries before a write flushes the queue itself (upstream's per-bank
/// journal size).
pub(crate) const JOURNAL_MAX: usize = 4096;

/// The least a plugin's force or start/stop request waits for rt-core's answer.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(3);

/// The pointer tables of `plugin_runtime_args_t`, pointing into the mirror.
#[repr(C)]
#[derive(bytemuck::Zeroable)]
struct Tables {
    bool_input: [[*mut u8; BITS_PER_BYTE]; TABLE_CAPACITY],
    bool_output: [[*mut u8; BITS_PER_BYTE]; TABLE_CAPACITY],
    bool_memory: [[*mut u8; BITS_PER_BYTE]; TABLE_CAPACITY],
    byte_input: [*mut u8; TABLE_CAPACITY],
    byte_output: [*mut u8; TABLE_CAPACITY],
    int_input: [*mut u16; TABLE_CAPACITY],
    int_output: [*mut u16; TABLE_CAPACITY],
    int_memory: [*mut u16; TABLE_CAPACITY],
    dint_input: [*mut u32; TABLE_CAPACITY],
    dint_output: [*mut u32; TABLE_CAPACITY],
    dint_memory: [*mut u32; TABLE_CAPACITY],
    lint_input: [*mut u64; TABLE_CAPACITY],
    lint_output: [*mut u64; TABLE_CAPACITY],
    lint_memory: [*mut u64; TABLE_CAPACITY],
}

/// A lock that the same thread may take again, released by a separate call: the shape
/// `image_lock()`/`image_unlock()` have (two C calls, no guard object).
struct RecursiveLock {
    state: Mutex<(Option<ThreadId>, u32)>,
    free: Condvar,
}

impl RecursiveLock {
    fn new() -> Self {
        RecursiveLock { state: Mutex::new((None, 0)), free: Condvar::new() }
    }

    /// Takes the lock; returns the depth now held (1 for the outermost).
    fn acquire(&self) -> u32 {
        let me = std::thread::current().id();
        let mut s = lock(&self.state);
        loop {
            match s.0 {
                None => {
                    *s = (Some(me), 1);
                    return 1;
                }
                Some(owner) if owner == me => {
                    s.1 += 1;
                    return s.1;
                }
                Some(_) => s = self.free.wait(s).unwrap_or_else(|e| e.into_inner()),
            }
        }
    }

    /// The depth held by the calling thread, if it holds the lock.
    fn held_depth(&self) -> Option<u32> {
        let s = lock(&self.state);
        (s.0 == Some(std::thread::current().id())).then_some(s.1)
    }

    /// Gives up one level; the caller must hold the lock.
    fn release(&self) {
        let mut s = lock(&self.state);
        s.1 = s.1.saturating_sub(1);
        if s.1 == 0 {
            s.0 = None;
            self.free.notify_one();
        }
    }
}

/// The mirror cells and what the outermost lock loaded into them. Everything is on the
/// heap and copied pointer to pointer: a plugin's thread may have a small stack, so nothing
/// image-sized ever goes through a local.
struct Mirror {
    cells: *mut Image,
    baseline: *mut Image,
    tables: *mut Tables,
    /// Entries of every table pointing into `cells` so far (filled up to the longest table
    /// a plugin was told about; the rest of the tables' room is never touched).
    filled: std::sync::Mutex<usize>,
}

impl Drop for Mirror {
    fn drop(&mut self) {
        // SAFETY: the pointers came from `Box::into_raw` in `Mirror::new` and are freed only
        // here. Every args struct holding the tables also holds the `Core` that owns this
        // mirror (see `slots::ArgsCell`), so no plugin is left with the tables.
        unsafe {
            drop(Box::from_raw(self.cells));
            drop(Box::from_raw(self.baseline));
            drop(Box::from_raw(self.tables));
        }
    }
}

impl Mirror {
    fn new() -> Self {
        let cells: *mut Image = Box::into_raw(bytemuck::zeroed_box::<Image>());
        let baseline: *mut Image = Box::into_raw(bytemuck::zeroed_box::<Image>());
        let tables: Box<Tables> = bytemuck::zeroed_box();
        Mirror { cells, baseline, tables: Box::into_raw(tables), filled: std::sync::Mutex::new(0) }
    }

    /// Points entries `..n` of every table at their mirror cells (once each).
    fn fill_up_to(&self, n: usize) {
        let mut filled = lock(&self.filled);
        let n = n.min(TABLE_CAPACITY);
        let (cells, tables) = (self.cells, self.tables);
        // SAFETY: `cells` and `tables` are live allocations owned by this mirror;
        // `addr_of_mut!` takes addresses of the cells' fields without creating references
        // that later raw writes by plugins would invalidate, and the table entries written
        // (`filled..n`) are ones no plugin was given yet (each is bounded by the
        // `buffer_size` it was told, at most `filled`).
        unsafe {
            let i = std::ptr::addr_of_mut!((*cells).inputs);
            let o = std::ptr::addr_of_mut!((*cells).outputs);
            let t = &mut *tables;
            for n in *filled..n {
                for b in 0..BITS_PER_BYTE {
                    t.bool_input[n][b] = std::ptr::addr_of_mut!((*i).bool_input[n][b]);
                    t.bool_output[n][b] = std::ptr::addr_of_mut!((*o).bool_output[n][b]);
                    t.bool_memory[n][b] = std::ptr::addr_of_mut!((*o).bool_memory[n][b]);
                }
                t.byte_input[n] = std::ptr::addr_of_mut!((*i).byte_input[n]);
                t.byte_output[n] = std::ptr::addr_of_mut!((*o).byte_output[n]);
                t.int_input[n] = std::ptr::addr_of_mut!((*i).int_input[n]);
                t.int_output[n] = std::ptr::addr_of_mut!((*o).int_output[n]);
                t.int_memory[n] = std::ptr::addr_of_mut!((*o).int_memory[n]);
                t.dint_input[n] = std::ptr::addr_of_mut!((*i).dint_input[n]);
                t.dint_output[n] = std::ptr::addr_of_mut!((*o).dint_output[n]);
                t.dint_memory[n] = std::ptr::addr_of_mut!((*o).dint_memory[n]);
                t.lint_input[n] = std::ptr::addr_of_mut!((*i).lint_input[n]);
                t.lint_output[n] = std::ptr::addr_of_mut!((*o).lint_output[n]);
                t.lint_memory[n] = std::ptr::addr_of_mut!((*o).lint_memory[n]);
            }
        }
        *filled = (*filled).max(n);
    }
}

/// Copies the byte ranges `ranges` of `*src` into the same bytes of `*dst`.
///
/// # Safety
/// `src` and `dst` must be live, distinct `T`s; every range must lie inside `T`.
unsafe fn copy_ranges<T>(src: *const T, dst: *mut T, ranges: &[(usize, usize)]) {
    for &(offset, len) in ranges {
        // SAFETY: in bounds of both `T`s, which do not overlap (caller).
        unsafe { std::ptr::copy_nonoverlapping((src as *const u8).add(offset), (dst as *mut u8).add(offset), len) };
    }
}

/// What the Python helper reads: the latest outputs and the inputs as published plus
/// journal writes not flushed yet.
pub(crate) struct ViewData {
    pub outputs: Box<OutputSnapshot>,
    pub inputs: Box<InputImage>,
}

/// Counters for `PluginHost::counters`.
#[derive(Default)]
pub(crate) struct Counters {
    pub journal_writes: AtomicU64,
    pub journal_flushes: AtomicU64,
    pub writes_dropped: AtomicU64,
    pub image_locks: AtomicU64,
}

/// Why a plugin's debug request was not carried out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DebugRefusal {
    /// rt-core's command queue is full.
    QueueFull,
    /// No such variable, a value that does not fit, rt-core refused or is not there.
    Refused,
    /// rt-core has no such command yet.
    Unsupported,
}

pub(crate) struct Core {
    pub plc: Arc<PlcPort>,
    image_lock: RecursiveLock,
    mirror: Mirror,
    pending: Mutex<Vec<(IecAddress, u64)>>,
    flush_lock: Mutex<()>,
    view: Mutex<ViewData>,
    view_changed: Condvar,
    /// The run/stop switch (`set_switch_position`); starts are refused while it is STOP.
    pub switch: Arc<crate::switch::RunSwitch>,
    pub counters: Counters,
    /// Sizes of debug variables, per program generation (reading one takes a scan).
    debug_sizes: Mutex<HashMap<(u32, u32), u16>>,
    /// Native plugins loaded so far that cannot be told per-table sizes (by name).
    without_image_sizes: Mutex<std::collections::BTreeSet<String>>,
    /// The program's table sizes as last read (journal writes are checked against them
    /// without copying a snapshot per write).
    known_sizes: Mutex<ImageSizes>,
    last_drop_report: Mutex<Option<Instant>>,
}

// SAFETY: the raw pointers in `Mirror` point at heap allocations owned by `Core` for its
// whole life. Rust code touches the cells only while holding `image_lock` (the plugins'
// contract is the same); everything else in `Core` is `Sync` already.
unsafe impl Send for Core {}
// SAFETY: as for `Send`.
unsafe impl Sync for Core {}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section here leaves its data consistent at each step, so a panic in
    // one (caught at the FFI boundary) must not disable the host.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Core {
    pub fn new(plc: Arc<PlcPort>, switch: Arc<crate::switch::RunSwitch>) -> Arc<Core> {
        Arc::new(Core {
            plc,
            image_lock: RecursiveLock::new(),
            mirror: Mirror::new(),
            pending: Mutex::new(Vec::new()),
            flush_lock: Mutex::new(()),
            view: Mutex::new(ViewData { outputs: bytemuck::zeroed_box(), inputs: bytemuck::zeroed_box() }),
            view_changed: Condvar::new(),
            switch,
            counters: Counters::default(),
            debug_sizes: Mutex::new(HashMap::new()),
            without_image_sizes: Mutex::new(Default::default()),
            known_sizes: Mutex::new(ImageSizes::ZERO),
            last_drop_report: Mutex::new(None),
        })
    }

    /// Records whether plugin `name` exports `set_image_sizes`.
    pub fn note_image_sizes(&self, name: &str, exports: bool) {
        let mut set = lock(&self.without_image_sizes);
        if exports {
            set.remove(name);
        } else {
            set.insert(name.to_string());
        }
    }

    /// The loaded native plugins that cannot be told per-table sizes: while any is, a
    /// program's tables all get the longest one's length (upstream's rule).
    pub fn plugins_without_image_sizes(&self) -> Vec<String> {
        lock(&self.without_image_sizes).iter().cloned().collect()
    }

    /// The running program's table sizes (what plugins are told and what the mirror
    /// refreshes).
    pub fn image_sizes(&self) -> ImageSizes {
        let sizes = self.plc.outputs().sizes;
        *lock(&self.known_sizes) = sizes;
        sizes
    }

    /// The sizes as last read (refreshed at every image lock and published scan).
    pub fn known_sizes(&self) -> ImageSizes {
        *lock(&self.known_sizes)
    }

    /// Points the 14 tables of `args` at the mirror and fills the sizes: `buffer_size` is
    /// the longest table, and every table has that many entries (a plugin that bounds all
    /// of them by `buffer_size` never reads a null entry).
    pub fn fill_tables(&self, args: &mut PluginRuntimeArgs) {
        let longest = self.image_sizes().largest();
        self.mirror.fill_up_to(longest);
        let t = self.mirror.tables;
        // SAFETY: `t` is the live table allocation (see `Mirror`); only field addresses are
        // taken, nothing is read or written.
        unsafe {
            args.bool_input = std::ptr::addr_of_mut!((*t).bool_input).cast();
            args.bool_output = std::ptr::addr_of_mut!((*t).bool_output).cast();
            args.bool_memory = std::ptr::addr_of_mut!((*t).bool_memory).cast();
            args.byte_input = std::ptr::addr_of_mut!((*t).byte_input).cast();
            args.byte_output = std::ptr::addr_of_mut!((*t).byte_output).cast();
            args.int_input = std::ptr::addr_of_mut!((*t).int_input).cast();
            args.int_output = std::ptr::addr_of_mut!((*t).int_output).cast();
            args.int_memory = std::ptr::addr_of_mut!((*t).int_memory).cast();
            args.dint_input = std::ptr::addr_of_mut!((*t).dint_input).cast();
            args.dint_output = std::ptr::addr_of_mut!((*t).dint_output).cast();
            args.dint_memory = std::ptr::addr_of_mut!((*t).dint_memory).cast();
            args.lint_input = std::ptr::addr_of_mut!((*t).lint_input).cast();
            args.lint_output = std::ptr::addr_of_mut!((*t).lint_output).cast();
            args.lint_memory = std::ptr::addr_of_mut!((*t).lint_memory).cast();
        }
        args.buffer_size = longest as i32;
        args.bits_per_buffer = BITS_PER_BYTE as i32;
    }

    // ---- image lock ----

    pub fn image_lock(&self) {
        self.counters.image_locks.fetch_add(1, Ordering::Relaxed);
        if self.image_lock.acquire() > 1 {
            return;
        }
        self.flush_journal();
        let Mirror { cells, baseline, .. } = self.mirror;
        let outputs = self.plc.outputs();
        *lock(&self.known_sizes) = outputs.sizes;
        // Only the program's tables: a lock costs what the program uses.
        let out_ranges = OutputImage::ranges_within(&outputs.sizes);
        let in_ranges = InputImage::ranges_within(&outputs.sizes);
        // SAFETY: we hold the image lock (outermost level), which is what entitles anyone,
        // Rust or plugin, to touch the mirror and its baseline; they, the port's snapshot
        // and its input image are distinct live heap allocations, so no copy overlaps, and
        // the ranges lie inside the images they are taken for.
        unsafe {
            let (o, i) = (std::ptr::addr_of_mut!((*cells).outputs), std::ptr::addr_of_mut!((*cells).inputs));
            let (bo, bi) = (std::ptr::addr_of_mut!((*baseline).outputs), std::ptr::addr_of_mut!((*baseline).inputs));
            if outputs.cycle != 0 {
                copy_ranges(&outputs.image, o, &out_ranges);
            }
            self.plc.inputs(|src| copy_ranges(src, i, &in_ranges));
            copy_ranges(o, bo, &out_ranges);
            copy_ranges(i, bi, &in_ranges);
        }
    }

    pub fn image_unlock(&self) {
        match self.image_lock.held_depth() {
            None => {
                tracing::warn!("image_unlock() called by a thread that does not hold the image lock; ignored");
            }
            Some(1) => {
                self.publish_mirror_changes();
                self.image_lock.release();
                self.flush_journal();
            }
            Some(_) => self.image_lock.release(),
        }
    }

    /// Sends every mirror cell the holder changed since the outermost lock.
    fn publish_mirror_changes(&self) {
        // SAFETY: called with the image lock held (outermost level) by its holder, so no one
        // who honours the lock writes the mirror or the baseline while these borrows live.
        let (now, before) = unsafe { (&*self.mirror.cells, &*self.mirror.baseline) };
        let mut inputs = Vec::new();
        let mut others = Vec::new();
        diff_image(now, before, &self.image_sizes(), &mut |addr, v| {
            if addr.area() == Area::Input { inputs.push((addr, v)) } else { others.push((addr, v)) }
        });
        if !inputs.is_empty() {
            self.apply_inputs(&inputs);
        }
        if !others.is_empty() {
            self.send_writes(&others);
        }
    }

    // ---- journal ----

    /// Queues one write (already checked against its width).
    pub fn journal_write(&self, addr: IecAddress, value: u64) {
        self.counters.journal_writes.fetch_add(1, Ordering::Relaxed);
        let full = {
            let mut p = lock(&self.pending);
            p.push((addr, value));
            p.len() >= JOURNAL_MAX
        };
        if addr.area() == Area::Input {
            lock(&self.view).inputs.set(addr, value);
        }
        if full {
            self.flush_journal();
        }
    }

    /// Sends every queued write on: inputs into one input publish, output and memory
    /// writes (last one per address) into the write ring.
    pub fn flush_journal(&self) {
        let _one_flush_at_a_time = lock(&self.flush_lock);
        let batch = std::mem::take(&mut *lock(&self.pending));
        if batch.is_empty() {
            return;
        }
        self.counters.journal_flushes.fetch_add(1, Ordering::Relaxed);
        let (inputs, others): (Vec<_>, Vec<_>) = batch.into_iter().partition(|(a, _)| a.area() == Area::Input);
        if !inputs.is_empty() {
            // Detached: the inputs are lost with the rt-core they were meant for.
            let _ = self.plc.update_inputs(|img| {
                for &(a, v) in &inputs {
                    img.set(a, v);
                }
            });
        }
        if !others.is_empty() {
            // Keep the last write per address, in the order of those last writes.
            let mut last: HashMap<IecAddress, usize> = HashMap::new();
            for (i, (a, _)) in others.iter().enumerate() {
                last.insert(*a, i);
            }
            let kept: Vec<_> = others.iter().enumerate().filter(|(i, (a, _))| last[a] == *i).map(|(_, w)| *w).collect();
            self.send_writes(&kept);
        }
    }

    fn apply_inputs(&self, inputs: &[(IecAddress, u64)]) {
        let _ = self.plc.update_inputs(|img| {
            for &(a, v) in inputs {
                img.set(a, v);
            }
        });
        let mut view = lock(&self.view);
        for &(a, v) in inputs {
            view.inputs.set(a, v);
        }
    }

    /// Queues writes, in batches the write ring can hold; a batch that finds no room is
    /// dropped whole (counted, and reported at most every 5 s).
    fn send_writes(&self, writes: &[(IecAddress, u64)]) {
        for batch in writes.chunks(WriteRing::CAPACITY) {
            let Err(e) = self.plc.write(batch) else { continue };
            self.counters.writes_dropped.fetch_add(batch.len() as u64, Ordering::Relaxed);
            let mut last = lock(&self.last_drop_report);
            if last.is_none_or(|t| t.elapsed() > Duration::from_secs(5)) {
                *last = Some(Instant::now());
                let msg = match e {
                    PortError::WriteQueueFull => {
                        "plugin writes to outputs/memory dropped: rt-core's write ring is full".into()
                    }
                    other => format!("plugin writes to outputs/memory dropped: {other}"),
                };
                self.plc.log(LogLevel::Warning, &msg);
            }
        }
    }

    // ---- view ----

    /// Re-reads outputs and inputs into the view, keeping unflushed input writes visible.
    pub fn refresh_view(&self) {
        let mut view = lock(&self.view);
        let ViewData { outputs, inputs: view_inputs } = &mut *view;
        let snapshot = self.plc.outputs();
        *lock(&self.known_sizes) = snapshot.sizes;
        let fresh_outputs = snapshot.cycle != 0;
        // The stamp and the program's tables only.
        let head = OutputSnapshot::HEAD_BYTES;
        bytemuck::bytes_of_mut(&mut **outputs)[..head].copy_from_slice(&bytemuck::bytes_of(&*snapshot)[..head]);
        outputs.image.copy_within_sizes(&snapshot.image, &snapshot.sizes);
        self.plc.inputs(|i| view_inputs.copy_within_sizes(i, &snapshot.sizes));
        for &(a, v) in lock(&self.pending).iter() {
            if a.area() == Area::Input {
                view_inputs.set(a, v);
            }
        }
        drop(view);
        if fresh_outputs {
            self.view_changed.notify_all();
        }
    }

    /// Reads points from the view.
    pub fn read_view(&self, addrs: &[IecAddress]) -> Vec<u64> {
        let view = lock(&self.view);
        addrs
            .iter()
            .map(|&a| match a.area() {
                Area::Input => view.inputs.get(a).unwrap_or(0),
                Area::Output | Area::Memory => view.outputs.image.get(a).unwrap_or(0),
            })
            .collect()
    }

    /// `(cycle, tick)` of the scan in the view.
    pub fn view_scan(&self) -> (u64, u64) {
        let view = lock(&self.view);
        (view.outputs.cycle, view.outputs.tick)
    }

    /// Waits until the view holds a scan with a tick greater than `tick`.
    pub fn wait_view_tick_after(&self, tick: u64, timeout: Duration) -> Option<u64> {
        let deadline = Instant::now() + timeout;
        let mut view = lock(&self.view);
        loop {
            if view.outputs.tick > tick {
                return Some(view.outputs.tick);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            view = self.view_changed.wait_timeout(view, left).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    // ---- debug variables ----

    /// The flat variable index of `(arr, elem)` in `info`; a program without groups is one
    /// group holding every variable.
    pub fn debug_var(info: &ProgramInfo, arr: u8, elem: u16) -> Option<u32> {
        if info.group_count == 0 {
            return (arr == 0 && (elem as u32) < info.var_count).then_some(elem as u32);
        }
        info.flat_index(arr as u32, elem as u32)
    }

    pub fn debug_array_count(info: &ProgramInfo) -> u8 {
        match info.group_count {
            0 if info.var_count > 0 => 1,
            n => n.min(u8::MAX as u32) as u8,
        }
    }

    pub fn debug_elem_count(info: &ProgramInfo, arr: u8) -> u16 {
        if info.group_count == 0 {
            return if arr == 0 { info.var_count.min(u16::MAX as u32) as u16 } else { 0 };
        }
        info.group_len
            .get(arr as usize)
            .filter(|_| (arr as u32) < info.group_count)
            .map_or(0, |&n| n.min(u16::MAX as u32) as u16)
    }

    /// How long a debug read may wait: a few scans, at least 100 ms, at most 2 s.
    pub fn debug_timeout(info: &ProgramInfo) -> Duration {
        Duration::from_nanos(info.period_ns.saturating_mul(5)).clamp(Duration::from_millis(100), Duration::from_secs(2))
    }

    pub fn debug_size(&self, info: &ProgramInfo, var: u32) -> u16 {
        let key = (info.program_gen, var);
        if let Some(&n) = lock(&self.debug_sizes).get(&key) {
            return n;
        }
        let n = self.debug_read(var, Self::debug_timeout(info)).map_or(0, |v| v.len().min(u16::MAX as usize) as u16);
        if n != 0 {
            lock(&self.debug_sizes).insert(key, n);
        }
        n
    }
    /// The bytes of debug variable `var` taken at a scan after the call, through the port's
    /// shared watch list (the Editor's debugger uses the same one).
    pub fn debug_read(&self, var: u32, timeout: Duration) -> Option<Vec<u8>> {
        self.plc.sample_blocking(&[var], self.plc.cycle(), timeout).ok()?.pop().flatten()
    }

    /// Forces `var` to `value` (native byte order), or releases it with `None`.
    pub fn debug_force(&self, var: u32, value: Option<&[u8]>) -> Result<(), DebugRefusal> {
        let timeout = self.plc.command_timeout(COMMAND_TIMEOUT);
        let result = match value {
            Some(bytes) => self.plc.force_blocking(var, bytes, false, timeout),
            None => self.plc.unforce_blocking(var, timeout),
        };
        match result {
            Ok(CommandStatus::Ok) => Ok(()),
            Err(PortError::CommandQueueFull) => Err(DebugRefusal::QueueFull),
            Ok(_) | Err(_) => Err(DebugRefusal::Refused),
        }
    }

    /// Writes `var` once, leaving any force in place: rt-core has no such command yet.
    pub fn debug_write(&self, _var: u32, _value: &[u8]) -> Result<(), DebugRefusal> {
        Err(DebugRefusal::Unsupported)
    }

    /// The PLC state as plugins see it (STOPPED-like EMPTY without rt-core).
    pub fn plc_state(&self) -> PlcState {
        self.plc.state().unwrap_or(PlcState::Empty)
    }

    /// Asks rt-core to start or stop without waiting: plugins call this from inside their
    /// hooks, and the plugins themselves are started and stopped later from another
    /// thread. A refusal is logged when rt-core answers.
    pub fn request(&self, command: Command) {
        let what = if matches!(command, Command::Start) { "start" } else { "stop" };
        let ticket = match self.plc.send(command) {
            Ok(t) => t,
            Err(e) => return self.plc.log(LogLevel::Warning, &format!("the plugin's {what} request failed: {e}")),
        };
        let plc = self.plc.clone();
        let answered = move || match plc.wait_result_blocking(ticket, plc.command_timeout(COMMAND_TIMEOUT)) {
            Ok(CommandStatus::Ok) => {}
            Ok(other) => {
                plc.log(LogLevel::Warning, &format!("the plugin's {what} request was refused: {}", other.as_str()))
            }
            Err(e) => plc.log(LogLevel::Warning, &format!("the plugin's {what} request failed: {e}")),
        };
        if std::thread::Builder::new().name("plugin-request".into()).spawn(answered).is_err() {
            self.plc
                .log(LogLevel::Warning, &format!("the plugin's {what} request was sent; its answer is not followed"));
        }
    }
}

/// Calls `f` for every cell of `now` that differs from `before`.
fn diff_image(now: &Image, before: &Image, sizes: &ImageSizes, f: &mut dyn FnMut(IecAddress, u64)) {
    use shared_abi::sizes::Table::*;
    let n = |t| sizes.get(t);
    fn words<T: Copy + PartialEq + Into<u64>>(
        now: &[T],
        before: &[T],
        area: Area,
        width: Width,
        f: &mut dyn FnMut(IecAddress, u64),
    ) {
        if now == before {
            return;
        }
        for (i, (a, b)) in now.iter().zip(before).enumerate() {
            if a != b
                && let Ok(addr) = IecAddress::new(area, width, i as u16, 0)
            {
                f(addr, (*a).into());
            }
        }
    }
    fn bits(now: &[[u8; 8]], before: &[[u8; 8]], area: Area, f: &mut dyn FnMut(IecAddress, u64)) {
        if now == before {
            return;
        }
        for (i, (a, b)) in now.iter().zip(before).enumerate() {
            for bit in 0..BITS_PER_BYTE {
                if a[bit] != b[bit]
                    && let Ok(addr) = IecAddress::new(area, Width::Bit, i as u16, bit as u8)
                {
                    f(addr, (a[bit] != 0) as u64);
                }
            }
        }
    }
    let (ni, bi) = (&now.inputs, &before.inputs);
    bits(&ni.bool_input[..n(BoolInput)], &bi.bool_input[..n(BoolInput)], Area::Input, f);
    words(&ni.byte_input[..n(ByteInput)], &bi.byte_input[..n(ByteInput)], Area::Input, Width::Byte, f);
    words(&ni.int_input[..n(IntInput)], &bi.int_input[..n(IntInput)], Area::Input, Width::Word, f);
    words(&ni.dint_input[..n(DintInput)], &bi.dint_input[..n(DintInput)], Area::Input, Width::DWord, f);
    words(&ni.lint_input[..n(LintInput)], &bi.lint_input[..n(LintInput)], Area::Input, Width::LWord, f);
    let (no, bo) = (&now.outputs, &before.outputs);
    bits(&no.bool_output[..n(BoolOutput)], &bo.bool_output[..n(BoolOutput)], Area::Output, f);
    words(&no.byte_output[..n(ByteOutput)], &bo.byte_output[..n(ByteOutput)], Area::Output, Width::Byte, f);
    words(&no.int_output[..n(IntOutput)], &bo.int_output[..n(IntOutput)], Area::Output, Width::Word, f);
    words(&no.dint_output[..n(DintOutput)], &bo.dint_output[..n(DintOutput)], Area::Output, Width::DWord, f);
    words(&no.lint_output[..n(LintOutput)], &bo.lint_output[..n(LintOutput)], Area::Output, Width::LWord, f);
    bits(&no.bool_memory[..n(BoolMemory)], &bo.bool_memory[..n(BoolMemory)], Area::Memory, f);
    words(&no.int_memory[..n(IntMemory)], &bo.int_memory[..n(IntMemory)], Area::Memory, Width::Word, f);
    words(&no.dint_memory[..n(DintMemory)], &bo.dint_memory[..n(DintMemory)], Area::Memory, Width::DWord, f);
    words(&no.lint_memory[..n(LintMemory)], &bo.lint_memory[..n(LintMemory)], Area::Memory, Width::LWord, f);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_reports_exactly_the_changed_cells() {
        let before: Box<Image> = bytemuck::zeroed_box();
        let mut now: Box<Image> = bytemuck::zeroed_box();
        now.inputs.bool_input[3][5] = 1;
        now.inputs.int_input[7] = 0xBEEF;
        now.outputs.dint_memory[1023] = 9;
        now.outputs.bool_output[0][0] = 1;
        // Past the program's tables: never reported.
        now.outputs.int_memory[1024] = 5;
        let mut seen = Vec::new();
        diff_image(&now, &before, &ImageSizes::LEGACY, &mut |a, v| seen.push((a.to_string(), v)));
        seen.sort();
        assert_eq!(
            seen,
            vec![
                ("%IW7".to_string(), 0xBEEF),
                ("%IX3.5".to_string(), 1),
                ("%MD1023".to_string(), 9),
                ("%QX0.0".to_string(), 1)
            ]
        );
    }

    #[test]
    fn recursive_lock_counts_depth_per_thread() {
        let l = Arc::new(RecursiveLock::new());
        assert_eq!(l.acquire(), 1);
        assert_eq!(l.acquire(), 2);
        assert_eq!(l.held_depth(), Some(2));
        let other = {
            let l = l.clone();
            std::thread::spawn(move || {
                assert_eq!(l.held_depth(), None);
                let d = l.acquire();
                l.release();
                d
            })
        };
        l.release();
        assert_eq!(l.held_depth(), Some(1));
        l.release();
        assert_eq!(other.join().unwrap(), 1, "the other thread gets the lock only once it is free");
        assert_eq!(l.held_depth(), None);
    }
}
