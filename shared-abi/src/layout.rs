//! The shared-memory file: one `#[repr(C)]` struct mapped by rt-core and by its client.
//!
//! Who writes what (one writer per region, always):
//!
//! | region | writer | readers |
//! |---|---|---|
//! | `header` identity fields | rt-core at creation | everyone |
//! | `header.heartbeat/state/program_gen/period_ns/...` | rt-core scan thread | everyone |
//! | `header.client_pid` | the client holding the lease | everyone |
//! | `control`, `stats`, `histogram`, `program`, `outputs`, `debug`, `events` | rt-core scan thread | everyone (`events`: the client) |
//! | `load_result`, `logs` | rt-core control thread | the client |
//! | `retain_saved`, `forces` | rt-core scan thread | the client; a restarted rt-core (the live copy) |
//! | `inputs`, `watch`, `commands`, `writes`, `retain_restore` | the client (lease holder) | rt-core |
//!
//! "The client" is the companion, or the control tool while no companion runs. The client
//! lease (an exclusive `flock` on `<file>.client`, see `shm`) makes sure there is only one
//! at a time, so the single-producer and single-writer rules of the rings, buffers and
//! seqlocks hold across processes. rt-core holds an exclusive `flock` on the file itself
//! for its whole life, which is how everyone tells whether it is alive.

use crate::debug::{DebugValues, ForceTable, LoadResult, ProgramInfo, WatchList};
use crate::image::{InputImage, OutputImage};
use crate::sizes::ImageSizes;

/// The unit in which a new input snapshot says what changed: 64 bytes of the image (a
/// cache line), so rt-core copies only those lines into the program's image.
pub const INPUT_LINE_BYTES: usize = 64;
/// Lines in an input image.
pub const INPUT_LINES: usize = core::mem::size_of::<InputImage>() / INPUT_LINE_BYTES;
/// Words of the `InputSnapshot::changed` bitmap.
pub const INPUT_LINE_WORDS: usize = INPUT_LINES.div_ceil(64);
const _: () = assert!(core::mem::size_of::<InputImage>().is_multiple_of(INPUT_LINE_BYTES));
use crate::migrate::{MigratePlan, SwapReport};
use crate::pad::CachePadded;
use crate::retain::RetainImage;
use crate::ring::Ring;
use crate::seqlock::SeqLock;
use crate::stats::{Histogram, Stats};
use crate::tasks::TaskTable;
use crate::triple::TripleBuffer;
use bytemuck::{Pod, Zeroable};
use core::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};
use serde::{Deserialize, Serialize};

/// "OPLC-SHM" little-endian; written last by the creator, so a reader that sees it sees an
/// initialised layout.
pub const MAGIC: u64 = u64::from_le_bytes(*b"OPLC-SHM");

/// Bumped on any change of the layout below; attachers refuse any other version.
pub const ABI_VERSION: u32 = 9;

/// Command results kept, indexed by `seq % RESULT_SLOTS`.
pub const RESULT_SLOTS: usize = 64;

pub type CommandRing = Ring<64, 320>;
pub type WriteRing = Ring<4096, 28>;
pub type EventRing = Ring<256, 60>;
pub type LogRing = Ring<256, 508>;

/// PLC states, as the OpenPLC API names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[repr(u32)]
pub enum PlcState {
    Empty = 0,
    Stopped = 1,
    Running = 2,
    Error = 3,
}

impl PlcState {
    pub const fn from_u32(v: u32) -> Self {
        match v {
            1 => PlcState::Stopped,
            2 => PlcState::Running,
            3 => PlcState::Error,
            _ => PlcState::Empty,
        }
    }

    /// `EMPTY`, `STOPPED`, `RUNNING`, `ERROR`.
    pub const fn as_str(self) -> &'static str {
        match self {
            PlcState::Empty => "EMPTY",
            PlcState::Stopped => "STOPPED",
            PlcState::Running => "RUNNING",
            PlcState::Error => "ERROR",
        }
    }
}

/// Where rt-core's scan thread runs (`openplc-rt run --cpu`, the companion's `rt_cpu`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuChoice {
    /// An isolated CPU when the kernel has one, otherwise the last allowed CPU.
    Auto,
    /// Leave it to the scheduler.
    None,
    Cpu(usize),
}

/// A CPU choice that is not `auto`, `none` or a CPU number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuChoiceError;

impl core::fmt::Display for CpuChoiceError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("expected auto, none or a CPU number")
    }
}

impl core::str::FromStr for CpuChoice {
    type Err = CpuChoiceError;
    fn from_str(s: &str) -> Result<Self, CpuChoiceError> {
        match s.trim() {
            "auto" => Ok(CpuChoice::Auto),
            "none" => Ok(CpuChoice::None),
            n if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
                n.parse().map(CpuChoice::Cpu).map_err(|_| CpuChoiceError)
            }
            _ => Err(CpuChoiceError),
        }
    }
}

/// The spelling `FromStr` reads back (what goes on `openplc-rt run --cpu`).
impl core::fmt::Display for CpuChoice {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            CpuChoice::Auto => f.write_str("auto"),
            CpuChoice::None => f.write_str("none"),
            CpuChoice::Cpu(n) => write!(f, "{n}"),
        }
    }
}

#[repr(C, align(64))]
pub struct Header {
    pub magic: AtomicU64,
    pub abi_version: u32,
    pub header_size: u32,
    pub total_size: u64,
    /// The rt-core process that owns the file (informational; liveness is its flock).
    pub rt_pid: AtomicU32,
    /// The client holding the lease, 0 when none (informational; the lease is a flock).
    pub client_pid: AtomicU32,
    /// CLOCK_MONOTONIC ns at rt-core's start; changes on every rt-core start.
    pub rt_boot_ns: AtomicU64,
    /// Loop iterations: the liveness counter.
    pub heartbeat: AtomicU64,
    /// CLOCK_MONOTONIC ns at the end of the last loop iteration.
    pub last_cycle_ns: AtomicU64,
    /// `PlcState` as u32.
    pub state: AtomicU32,
    /// Generation of the program swapped in, 0 for none.
    pub program_gen: AtomicU32,
    /// The scan period in force, ns.
    pub period_ns: AtomicU64,
    /// CLOCK_MONOTONIC ns when the program body was entered, 0 outside it (watchdog).
    pub in_program_since_ns: AtomicU64,
    /// Kernel thread id of the scan thread.
    pub scan_tid: AtomicU32,
    /// CPU the scan thread is pinned to, -1 when not pinned.
    pub scan_cpu: AtomicI32,
    /// SCHED_FIFO priority of the scan thread, 0 when it could not get one.
    pub scan_priority: AtomicI32,
    /// `RT_*` bits: what of the real-time set-up succeeded.
    pub rt_flags: AtomicU32,
    /// How far the write ring has been applied: [`WritesApplied`] packed, stored by the
    /// scan thread (Release) right after a cycle applied queued writes, before that
    /// cycle's scan, so a writer can be answered as soon as the scan that sees its writes
    /// has started.
    pub writes_applied: AtomicU64,
    /// Loop iterations begun: stored (Release) as a cycle wakes, before it takes commands
    /// and inputs. It equals `heartbeat` between cycles and is one more while a cycle
    /// runs, so a reader knows whether the next cycle (numbered `heartbeat`, the stamp of
    /// the values it publishes) begins after this moment: see [`arrival_cycle`].
    pub cycles_begun: AtomicU64,
}

/// The cycle a request arriving now is *after*: values stamped with a later cycle come
/// from a scan that began after it. Between cycles that is `heartbeat - 1` (the next
/// cycle, numbered `heartbeat`, has not begun); while one runs it is that cycle. Read from
/// `cycles_begun` alone, so no torn pair: `cycles_begun - 1` in both cases. Before any
/// cycle, 0 (a scan numbered 0 is not waited for but 1 is: conservative).
pub fn arrival_cycle(header: &Header) -> u64 {
    header.cycles_begun.load(Ordering::Acquire).saturating_sub(1)
}

/// `Header::writes_applied`: the write ring's consumer position after a cycle's writes were
/// applied, and that cycle, in one 64-bit word so a reader always sees a matching pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WritesApplied {
    /// The ring's free-running consumer counter (`Ring::consumed`): every write pushed
    /// before the producer counter reached this value has been applied.
    pub position: u32,
    /// The low 32 bits of the loop cycle (heartbeat) that applied them.
    pub cycle_low: u32,
}

impl WritesApplied {
    pub const fn pack(self) -> u64 {
        ((self.cycle_low as u64) << 32) | self.position as u64
    }

    pub const fn unpack(word: u64) -> WritesApplied {
        WritesApplied { position: word as u32, cycle_low: (word >> 32) as u32 }
    }

    /// Whether every write pushed before the producer counter read `position` is applied
    /// (free-running counters: compared modulo 2^32, within 2^31 of each other).
    pub const fn covers(self, position: u32) -> bool {
        (self.position.wrapping_sub(position) as i32) >= 0
    }

    /// The whole loop cycle, given a heartbeat read after this word (so no earlier than
    /// the cycle that stored it, and less than 2^32 cycles later).
    pub const fn cycle(self, heartbeat: u64) -> u64 {
        heartbeat.saturating_sub((heartbeat as u32).wrapping_sub(self.cycle_low) as u64)
    }
}

/// `Header::rt_flags`: memory locked with mlockall.
pub const RT_MLOCKED: u32 = 1;
/// `Header::rt_flags`: the scan thread runs SCHED_FIFO.
pub const RT_FIFO: u32 = 2;
/// `Header::rt_flags`: the scan thread is pinned to one CPU.
pub const RT_PINNED: u32 = 4;
/// `Header::rt_flags`: `/dev/cpu_dma_latency` is held at 0.
pub const RT_DMA_LATENCY: u32 = 8;
/// `Header::rt_flags`: the pinned CPU is isolated (isolcpus / cpuset).
pub const RT_ISOLATED_CPU: u32 = 16;

/// Replies to commands, written by the scan thread.
#[repr(C, align(64))]
pub struct Control {
    /// Sequence number of the last command processed.
    pub acked_seq: AtomicU32,
    /// Forced debug variables right now.
    pub forced_count: AtomicU32,
    /// `(seq << 32) | CommandStatus`, at `seq % RESULT_SLOTS`.
    pub results: [AtomicU64; RESULT_SLOTS],
}

impl Control {
    /// The status of command `seq`, once processed and while its slot was not reused.
    pub fn result_of(&self, seq: u32) -> Option<u32> {
        let v = self.results[seq as usize % RESULT_SLOTS].load(Ordering::Acquire);
        ((v >> 32) as u32 == seq && v as u32 != 0).then_some(v as u32)
    }

    /// Records the status of command `seq` (scan thread only).
    pub fn record(&self, seq: u32, status: u32) {
        self.results[seq as usize % RESULT_SLOTS].store(((seq as u64) << 32) | status as u64, Ordering::Release);
        self.acked_seq.store(seq, Ordering::Release);
    }
}

/// What rt-core publishes at the end of each cycle: outputs and memory, with their stamp.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub struct OutputSnapshot {
    /// Loop counter when published.
    pub cycle: u64,
    /// Program scans when published.
    pub tick: u64,
    /// Loop counter when the inputs now in the image were taken (their age in cycles is
    /// `cycle - inputs_cycle`).
    pub inputs_cycle: u64,
    pub program_gen: u32,
    /// `PlcState` as u32.
    pub state: u32,
    /// The running program's table sizes: only these prefixes of `image` are published
    /// (the rest is stale or zero and is never read).
    pub sizes: ImageSizes,
    pub image: OutputImage,
}

impl OutputSnapshot {
    /// Bytes before `image`: the stamp and the sizes, read first to know what else to copy.
    pub const HEAD_BYTES: usize = core::mem::offset_of!(OutputSnapshot, image);
}

/// Copies the published outputs the running program's sizes cover (the stamp, the sizes,
/// and those prefixes of every output and memory table), retrying torn reads up to
/// `attempts` times. Cells past the sizes keep what `out` held. A copy costs what the
/// program uses, not the 2.8 MiB the layout has room for.
pub fn read_outputs(
    lock: &SeqLock<OutputSnapshot>,
    out: &mut OutputSnapshot,
    attempts: u32,
) -> Result<u64, crate::seqlock::Torn> {
    let parts = |head: &OutputSnapshot| {
        OutputImage::ranges_within(&head.sizes).map(|(o, n)| (OutputSnapshot::HEAD_BYTES + o, n))
    };
    for _ in 0..attempts.max(1) {
        if let Ok(v) = lock.try_read_parts(out, OutputSnapshot::HEAD_BYTES, parts) {
            return Ok(v);
        }
        core::hint::spin_loop();
    }
    Err(crate::seqlock::Torn)
}

/// [`read_outputs`] into a snapshot that holds an earlier copy (so a reader reuses one
/// buffer instead of zeroing 2.8 MiB per published scan): where the earlier copy's tables
/// were longer than the new ones, the cells past the new sizes are cleared, so `out` reads
/// zero outside its sizes exactly as a fresh zeroed copy would. Torn: `out` is partly
/// overwritten and must be dropped.
pub fn reread_outputs(
    lock: &SeqLock<OutputSnapshot>,
    out: &mut OutputSnapshot,
    attempts: u32,
) -> Result<u64, crate::seqlock::Torn> {
    let held = out.sizes;
    let version = read_outputs(lock, out, attempts)?;
    if out.sizes != held {
        let image = bytemuck::bytes_of_mut(&mut out.image);
        // The same tables in the same order: only the lengths differ.
        for ((offset, was), (_, now)) in
            OutputImage::ranges_within(&held).into_iter().zip(OutputImage::ranges_within(&out.sizes))
        {
            if was > now {
                image[offset + now..offset + was].fill(0);
            }
        }
    }
    Ok(version)
}

/// What the client publishes for rt-core to take at cycle start: the whole input image,
/// numbered, with the lines that may differ from any snapshot rt-core can still hold, so
/// rt-core copies only those.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub struct InputSnapshot {
    pub generation: u64,
    /// `changed` covers every line that changed since snapshot `changed_since`, through
    /// each snapshot in between: a reader holding any generation from `changed_since` to
    /// `generation - 1` copies those lines and has this snapshot. 0: no such promise, copy
    /// everything.
    pub changed_since: u64,
    /// Bit `i` (word `i / 64`, bit `i % 64`) is line `i` (`INPUT_LINE_BYTES` bytes at
    /// `i * INPUT_LINE_BYTES` of `image`).
    pub changed: [u64; INPUT_LINE_WORDS],
    pub image: InputImage,
}

impl InputSnapshot {
    /// Whether a reader whose image holds snapshot `held` may copy only `changed`.
    pub fn lines_suffice_from(&self, held: u64) -> bool {
        self.changed_since != 0 && self.changed_since <= held && held < self.generation
    }

    /// Copies the `changed` lines of `image` that hold the tables `sizes` names into `dst`
    /// (an image that holds a snapshot for which `lines_suffice_from` is true). Only the
    /// bitmap's words over those tables are read: a few words for a program of 1024-element
    /// tables, not the whole bitmap the largest tables need.
    pub fn copy_changed_lines(&self, dst: &mut InputImage, sizes: &ImageSizes) {
        let (dst, src) = (bytemuck::bytes_of_mut(dst), bytemuck::bytes_of(&self.image));
        for lines in input_table_lines(sizes) {
            for w in lines.start / 64..lines.end.div_ceil(64) {
                // This table's lines of word `w` only (its first and last word may hold others).
                let from = lines.start.saturating_sub(w * 64);
                let to = lines.end - w * 64;
                let below_to = if to >= 64 { u64::MAX } else { (1u64 << to) - 1 };
                let mut bits = self.changed.get(w).copied().unwrap_or(0) & below_to & (u64::MAX << from);
                while bits != 0 {
                    let at = (w * 64 + bits.trailing_zeros() as usize) * INPUT_LINE_BYTES;
                    bits &= bits - 1;
                    if let (Some(d), Some(s)) =
                        (dst.get_mut(at..at + INPUT_LINE_BYTES), src.get(at..at + INPUT_LINE_BYTES))
                    {
                        d.copy_from_slice(s);
                    }
                }
            }
        }
    }
}

/// The lines of an input image that hold the tables `sizes` names (each table's prefix,
/// rounded out to whole lines): all a publish compares and marks, and all a reader of the
/// `changed` bitmap needs to look at.
pub fn input_table_lines(sizes: &ImageSizes) -> [core::ops::Range<usize>; 5] {
    InputImage::ranges_within(sizes).map(|(offset, len)| {
        let first = (offset / INPUT_LINE_BYTES).min(INPUT_LINES);
        let end = (offset + len).div_ceil(INPUT_LINE_BYTES);
        if len == 0 { first..first } else { first..end.min(INPUT_LINES) }
    })
}

/// The whole shared-memory file.
#[repr(C)]
pub struct SharedMemory {
    pub header: Header,
    pub control: Control,
    pub stats: SeqLock<Stats>,
    pub histogram: Histogram,
    pub program: SeqLock<ProgramInfo>,
    pub load_result: SeqLock<LoadResult>,
    pub inputs: TripleBuffer<InputSnapshot>,
    pub outputs: SeqLock<OutputSnapshot>,
    pub watch: SeqLock<WatchList>,
    pub debug: SeqLock<DebugValues>,
    pub commands: CommandRing,
    pub writes: WriteRing,
    pub events: EventRing,
    pub logs: LogRing,
    /// The running program's RETAIN values, refreshed every ~100 ms and when it stops.
    pub retain_saved: SeqLock<RetainImage>,
    /// RETAIN values for the next `Load` to give back (when they match the program).
    pub retain_restore: SeqLock<RetainImage>,
    /// The variables forced right now (the live copy a restarted rt-core restores).
    pub forces: SeqLock<ForceTable>,
    /// Per-task statistics and histograms (a program whose tasks run on threads of their own).
    pub tasks: TaskTable,
    /// The migration plan for the next online `Load` (written by the client under its lease).
    pub migrate_plan: SeqLock<MigratePlan>,
    /// What the last program swap did (written by rt-core's scan thread).
    pub swap: SeqLock<SwapReport>,
    /// Read/written only through atomics; keeps the two ends of the file apart.
    pub tail_guard: CachePadded<AtomicU64>,
}

/// Size of the file. Changing the layout changes this number: bump `ABI_VERSION` too.
pub const LAYOUT_SIZE: usize = core::mem::size_of::<SharedMemory>();

/// A fingerprint of the layout (size and region offsets), stored beside the version so
/// that two builds which forgot to bump the version still refuse each other.
pub const LAYOUT_FINGERPRINT: u64 = {
    use core::mem::offset_of;
    let parts = [
        LAYOUT_SIZE as u64,
        offset_of!(Header, writes_applied) as u64,
        offset_of!(SharedMemory, control) as u64,
        offset_of!(SharedMemory, stats) as u64,
        offset_of!(SharedMemory, histogram) as u64,
        offset_of!(SharedMemory, program) as u64,
        offset_of!(SharedMemory, load_result) as u64,
        offset_of!(SharedMemory, inputs) as u64,
        offset_of!(SharedMemory, outputs) as u64,
        offset_of!(SharedMemory, watch) as u64,
        offset_of!(SharedMemory, debug) as u64,
        offset_of!(SharedMemory, commands) as u64,
        offset_of!(SharedMemory, writes) as u64,
        offset_of!(SharedMemory, events) as u64,
        offset_of!(SharedMemory, logs) as u64,
        offset_of!(SharedMemory, retain_saved) as u64,
        offset_of!(SharedMemory, retain_restore) as u64,
        offset_of!(SharedMemory, forces) as u64,
        offset_of!(SharedMemory, tasks) as u64,
        offset_of!(SharedMemory, migrate_plan) as u64,
        offset_of!(SharedMemory, swap) as u64,
    ];
    // FNV-1a over the little-endian bytes.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < parts.len() {
        let bytes = parts[i].to_le_bytes();
        let mut j = 0;
        while j < 8 {
            hash ^= bytes[j] as u64;
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
            j += 1;
        }
        i += 1;
    }
    hash
};

const _: () = {
    use core::mem::{align_of, offset_of, size_of};
    assert!(size_of::<Header>() == 128);
    assert!(offset_of!(Header, writes_applied) % 8 == 0);
    assert!(offset_of!(SharedMemory, header) == 0);
    assert!(offset_of!(SharedMemory, control) % 64 == 0);
    assert!(offset_of!(SharedMemory, inputs) % 64 == 0);
    assert!(offset_of!(SharedMemory, outputs) % 64 == 0);
    assert!(offset_of!(SharedMemory, commands) % 64 == 0);
    assert!(align_of::<SharedMemory>() == 64);
    assert!(OutputSnapshot::HEAD_BYTES.is_multiple_of(8));
    // Room for 65 536 elements in every table: three input buffers (1.5 MiB each) and the
    // published outputs (2.8 MiB) are most of the file, the online change's plan 0.25 MiB.
    assert!(LAYOUT_SIZE < 9 * 1024 * 1024);
};

/// Why a mapping cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachError {
    /// Smaller than a header, or not the size this build expects.
    WrongSize { found: u64, expected: u64 },
    /// No magic yet: not initialised (or not ours).
    NotInitialised,
    /// Made by another version of the runtime.
    WrongVersion { found: u32, expected: u32 },
    /// Same version number, different layout (a build that forgot to bump the version).
    WrongLayout,
    /// A ring or buffer is in an impossible state.
    Corrupt,
}

impl core::fmt::Display for AttachError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            AttachError::WrongSize { found, expected } => {
                write!(f, "shared memory is {found} bytes, this build expects {expected}")
            }
            AttachError::NotInitialised => write!(f, "shared memory is not initialised by rt-core (yet)"),
            AttachError::WrongVersion { found, expected } => write!(
                f,
                "shared memory has ABI version {found}, this build speaks version {expected}: run matching rt-core and companion binaries"
            ),
            AttachError::WrongLayout => {
                write!(f, "shared memory layout differs from this build's although the version matches")
            }
            AttachError::Corrupt => write!(f, "shared memory rings or buffers are in an impossible state"),
        }
    }
}

impl SharedMemory {
    /// Initialises a zero-filled mapping in place and publishes the magic last.
    ///
    /// # Safety
    /// `ptr` must point at `LAYOUT_SIZE` writable, zero-filled, 64-aligned bytes that no
    /// other thread or process is using yet.
    pub unsafe fn init_in_place<'a>(ptr: *mut SharedMemory, rt_pid: u32, boot_ns: u64) -> &'a SharedMemory {
        // SAFETY: the caller guarantees exclusive access to valid, aligned memory; every
        // field type is valid when zero-filled (atomics, integers, arrays of them).
        let shm = unsafe { &mut *ptr };
        shm.header.abi_version = ABI_VERSION;
        shm.header.header_size = core::mem::size_of::<Header>() as u32;
        shm.header.total_size = LAYOUT_SIZE as u64;
        *shm.header.rt_pid.get_mut() = rt_pid;
        *shm.header.rt_boot_ns.get_mut() = boot_ns;
        *shm.header.scan_cpu.get_mut() = -1;
        *shm.header.state.get_mut() = PlcState::Empty as u32;
        *shm.tail_guard.0.get_mut() = LAYOUT_FINGERPRINT;
        shm.stats.init();
        shm.program.init();
        shm.load_result.init();
        shm.inputs.init();
        shm.outputs.init();
        shm.watch.init();
        shm.debug.init();
        shm.commands.init();
        shm.writes.init();
        shm.events.init();
        shm.logs.init();
        shm.retain_saved.init();
        shm.retain_restore.init();
        shm.forces.init();
        shm.tasks.init();
        shm.header.magic.store(MAGIC, Ordering::Release);
        shm
    }

    /// Checks that `len` bytes at `ptr` hold a layout this build can use.
    ///
    /// # Safety
    /// `ptr` must point at `len` readable and writable bytes, 64-aligned, that stay mapped
    /// for `'a`.
    pub unsafe fn from_mapping<'a>(ptr: *const u8, len: usize) -> Result<&'a SharedMemory, AttachError> {
        if len < core::mem::size_of::<Header>() {
            return Err(AttachError::WrongSize { found: len as u64, expected: LAYOUT_SIZE as u64 });
        }
        // SAFETY: at least a header's worth of bytes is mapped and aligned (caller).
        let header = unsafe { &*(ptr as *const Header) };
        if header.magic.load(Ordering::Acquire) != MAGIC {
            return Err(AttachError::NotInitialised);
        }
        if header.abi_version != ABI_VERSION {
            return Err(AttachError::WrongVersion { found: header.abi_version, expected: ABI_VERSION });
        }
        if header.total_size != LAYOUT_SIZE as u64 || len != LAYOUT_SIZE {
            return Err(AttachError::WrongSize { found: header.total_size, expected: LAYOUT_SIZE as u64 });
        }
        // SAFETY: the size matches and the magic was published after initialisation.
        let shm = unsafe { &*(ptr as *const SharedMemory) };
        if shm.tail_guard.0.load(Ordering::Acquire) != LAYOUT_FINGERPRINT {
            return Err(AttachError::WrongLayout);
        }
        let consistent = shm.inputs.is_consistent()
            && shm.commands.is_consistent()
            && shm.writes.is_consistent()
            && shm.events.is_consistent()
            && shm.logs.is_consistent();
        if !consistent {
            return Err(AttachError::Corrupt);
        }
        Ok(shm)
    }

    pub fn state(&self) -> PlcState {
        PlcState::from_u32(self.header.state.load(Ordering::Acquire))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_choices_read_back_what_they_print() {
        for text in ["auto", "none", "0", "3"] {
            let choice: CpuChoice = text.parse().unwrap();
            let mut buf = heapless::String::<8>::new();
            core::fmt::write(&mut buf, format_args!("{choice}")).unwrap();
            assert_eq!(buf.as_str(), text);
        }
        for bad in ["", "Auto", "-1", "1x", "cpu2", "99999999999999999999999"] {
            assert_eq!(bad.parse::<CpuChoice>(), Err(CpuChoiceError), "{bad:?}");
        }
    }

    #[test]
    fn writes_applied_packs_a_matching_pair_and_compares_across_wraps() {
        let w = WritesApplied { position: 7, cycle_low: 0xFFFF_FFFF };
        assert_eq!(WritesApplied::unpack(w.pack()), w);
        assert!(w.covers(7) && w.covers(3) && !w.covers(8));
        let wrapped = WritesApplied { position: 2, cycle_low: 0 };
        assert!(wrapped.covers(u32::MAX - 1), "a position just before the wrap is covered");
        assert!(!wrapped.covers(3));
        // Stored in cycle 2^32 + 5, read with the heartbeat a cycle or many later.
        let c = (1u64 << 32) + 5;
        let w = WritesApplied { position: 0, cycle_low: c as u32 };
        assert_eq!(w.cycle(c), c);
        assert_eq!(w.cycle(c + 1), c);
        assert_eq!(w.cycle(c + 1_000_000), c);
        let w = WritesApplied { position: 0, cycle_low: u32::MAX };
        assert_eq!(w.cycle((1u64 << 32) + 1), (1u64 << 32) - 1, "across the low word's wrap");
    }

    #[test]
    fn command_results_match_their_sequence_number() {
        // SAFETY: `Control` is atomics only, for which all-zero is a valid value.
        let control: Control = unsafe { core::mem::zeroed() };
        assert_eq!(control.result_of(5), None);
        control.record(5, 1);
        assert_eq!(control.result_of(5), Some(1));
        control.record(5 + RESULT_SLOTS as u32, 3);
        assert_eq!(control.result_of(5), None, "a reused slot no longer answers for the old seq");
    }

    /// The changed lines inside the tables are copied, at both ends of each table (a
    /// table's first and last words may be shared with lines outside it); a bit marked
    /// outside the tables is never followed.
    #[test]
    fn changed_lines_are_copied_inside_the_program_tables_only() {
        use crate::sizes::Table;
        let mut sizes = ImageSizes::ZERO;
        sizes.set(Table::IntInput, 100); // 200 bytes: lines 0..4 of its table
        sizes.set(Table::BoolInput, 1); // 8 bytes: one line
        let mut snap: std::boxed::Box<InputSnapshot> = bytemuck::zeroed_box();
        bytemuck::bytes_of_mut(&mut snap.image).fill(0xAB);
        let tables = input_table_lines(&sizes);
        let ints = tables.iter().find(|l| l.len() == 4).expect("the INT table's lines").clone();
        let bools = tables.iter().find(|l| l.len() == 1).expect("the BOOL table's line").clone();
        let outside = ints.end; // the line just past the INT table's prefix
        for line in [ints.start, ints.end - 1, bools.start, outside] {
            snap.changed[line / 64] |= 1 << (line % 64);
        }
        let mut dst: std::boxed::Box<InputImage> = bytemuck::zeroed_box();
        snap.copy_changed_lines(&mut dst, &sizes);
        let bytes = bytemuck::bytes_of(&*dst);
        let line = |i: usize| &bytes[i * INPUT_LINE_BYTES..(i + 1) * INPUT_LINE_BYTES];
        for copied in [ints.start, ints.end - 1, bools.start] {
            assert!(line(copied).iter().all(|&b| b == 0xAB), "line {copied} copied");
        }
        for kept in [ints.start + 1, outside] {
            assert!(line(kept).iter().all(|&b| b == 0), "line {kept} left alone");
        }
    }

    /// A reused snapshot reads what a fresh zeroed one reads, whichever way the program's
    /// tables changed between the two copies.
    #[test]
    fn a_reused_output_copy_equals_a_fresh_one() {
        use crate::sizes::Table;
        let layout = std::alloc::Layout::new::<SeqLock<OutputSnapshot>>();
        // SAFETY: a SeqLock is an atomic and a Pod value, both valid all-zero; the memory
        // has the type's layout, so the Box frees it as it was allocated.
        let lock = unsafe {
            let raw = std::alloc::alloc_zeroed(layout).cast::<SeqLock<OutputSnapshot>>();
            assert!(!raw.is_null());
            std::boxed::Box::from_raw(raw)
        };
        let publish = |lock: &SeqLock<OutputSnapshot>, sizes: ImageSizes, fill: u8| {
            // SAFETY: this test is the lock's only writer.
            unsafe {
                lock.write(|snap| {
                    snap.sizes = sizes;
                    bytemuck::bytes_of_mut(&mut snap.image).fill(fill);
                })
            }
        };
        let sized = |n: usize| {
            let mut sizes = ImageSizes::ZERO;
            for table in [Table::IntOutput, Table::BoolMemory, Table::LintMemory] {
                sizes.set(table, n);
            }
            sizes
        };
        let mut reused: std::boxed::Box<OutputSnapshot> = bytemuck::zeroed_box();
        for (n, fill) in [(300, 0x11), (40, 0x22), (40, 0x33), (900, 0x44), (0, 0x55)] {
            publish(&lock, sized(n), fill);
            reread_outputs(&lock, &mut reused, 1).unwrap();
            let mut fresh: std::boxed::Box<OutputSnapshot> = bytemuck::zeroed_box();
            read_outputs(&lock, &mut fresh, 1).unwrap();
            assert!(bytemuck::bytes_of(&*reused) == bytemuck::bytes_of(&*fresh), "tables of {n} after the others");
        }
    }
}
