//! A program library, loaded and checked off the scan thread, then handed to it whole.
//!
//! Loading reads the file into a memfd and dlopens that (a fresh instance every time),
//! resolves `oplc_program_entry`, copies and checks the ABI table, allocates the program's
//! own image, binds the located variables into it, cold-starts the program, reads its
//! description (period, MD5, groups, every variable's size and kind, RETAIN variables,
//! located variables) and, on a warm start, gives back its RETAIN values and forces. Every
//! one of those steps that runs program code goes through the crash guard; any failure
//! leaves the running program untouched. `openplc-rt check` runs exactly this, then the
//! unload, in a throwaway process.
//!
//! A program that faulted is never called again and never unloaded (see `guard`): its
//! mapping stays until rt-core restarts.

mod load;
mod migrate;
pub mod tasks;

pub use load::{Checked, LoadError, LoadStage};
pub use migrate::Migration;

use crate::extents::OutputExtents;
use crate::guard::{self, CodeRange, Fault};
use crate::restart::{self, RestartKind};
use shared_abi::debug::{ForceTable, ForcedValue, ProgramInfo, WatchedValue};
use shared_abi::image::Image;
use shared_abi::program::VarKind;
use shared_abi::retain::RetainImage;
use std::ffi::{CString, c_void};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// Scan periods outside this range are refused.
pub const MIN_PERIOD_NS: u64 = 50_000;
pub const MAX_PERIOD_NS: u64 = 60_000_000_000;
/// Debug variables a program may have (the cached table takes 8 bytes each).
pub const MAX_VARS: u32 = 1 << 20;

/// The function pointers rt-core calls, checked non-null once at load.
#[derive(Clone, Copy)]
struct Entry {
    run_tick: unsafe extern "C" fn(u64),
    var_addr: unsafe extern "C" fn(u32) -> *mut c_void,
    var_force: unsafe extern "C" fn(u32, *const c_void, u32) -> i32,
    var_unforce: unsafe extern "C" fn(u32) -> i32,
    var_write: Option<unsafe extern "C" fn(u32, *const c_void, u32) -> i32>,
    retain_set: Option<unsafe extern "C" fn(u32, *const c_void, u32) -> i32>,
}

/// A debug variable's size and kind, read once at load (never asked again on the scan
/// thread).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VarMeta {
    pub size: u32,
    pub kind: VarKind,
}

/// The program's RETAIN variables, laid out one after the other as in a `RetainImage`
/// (`offset` into its data; `var` the debug index).
struct Retained {
    vars: Vec<WatchedValue>,
    /// Where each one's value is now (refreshed after a swap, force or release).
    addresses: Vec<usize>,
    bytes: u32,
    layout_hash: u64,
}

/// Where a warm start's values came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetainSource {
    /// Nothing given back: initial values.
    Initial,
    /// The copy the previous rt-core (or program instance) left in the shared memory.
    Live,
    /// The values the client staged (from its file, after a power cut).
    Staged,
}

/// What a warm start may give back, in order of preference.
#[derive(Clone, Copy, Default)]
pub struct WarmStart<'a> {
    /// The running (or last) instance's RETAIN values, from the shared memory.
    pub live_retain: Option<&'a RetainImage>,
    /// RETAIN values the client staged for this load.
    pub staged_retain: Option<&'a RetainImage>,
    /// The forces of the running (or last) instance, from the shared memory.
    pub live_forces: Option<&'a ForceTable>,
}

/// The opened library: unloaded explicitly (`close`), or leaked when its program faulted.
struct Library {
    handle: *mut c_void,
    /// The memfd the library was opened through. dlopen recognises an already-loaded
    /// library by the path string (`/proc/self/fd/N`), so N must not be reused while the
    /// library is mapped: the fd stays open until the library is really gone.
    memfd: OwnedFd,
    path: CString,
}

impl Library {
    /// dlcloses (the library's destructors run, guarded) and closes the memfd unless
    /// glibc keeps the library mapped.
    fn close(self) -> Result<(), Fault> {
        // SAFETY: a live handle from dlopen, consumed here.
        unsafe { guard::dlclose(self.handle) }?;
        // A library that glibc keeps mapped after dlclose (GNU unique symbols, a NODELETE
        // dependency) still answers to its path: then keep the fd, so that path never names
        // another program.
        // SAFETY: RTLD_NOLOAD only looks the name up (no code runs); the handle it may
        // return is closed again at once to drop the reference it took.
        let still_loaded = unsafe {
            let handle = libc::dlopen(self.path.as_ptr(), libc::RTLD_NOW | libc::RTLD_NOLOAD);
            if !handle.is_null() {
                libc::dlclose(handle);
            }
            !handle.is_null()
        };
        if still_loaded {
            std::mem::forget(self.memfd);
        }
        Ok(())
    }

    /// Keeps the code mapped for good: for a faulted program, whose destructors must not run.
    fn leak(self) {
        std::mem::forget(self);
    }
}

pub struct LoadedProgram {
    entry: Entry,
    /// The parts of the output image the program writes.
    extents: OutputExtents,
    image: Box<Image>,
    info: ProgramInfo,
    vars: Box<[VarMeta]>,
    vars_hash: u64,
    code: CodeRange,
    /// `None` once unloaded or leaked.
    library: Option<Library>,
    retained: Retained,
    retain_source: RetainSource,
    /// Forces given back at load, for the engine to keep applying.
    restored_forces: Vec<ForcedValue>,
    /// An online change's migration (see `migrate`), kept until the program is unloaded.
    migration: Option<Box<Migration>>,
    /// A guarded call into it faulted: never call it again, never unload it.
    faulted: bool,
    /// Its tasks, when they run on threads of their own.
    tasks: Option<tasks::ProgramTasks>,
    /// Those threads (started by the loader, stopped before the library is unloaded).
    threads: Option<crate::tasks::TaskSet>,
}

// SAFETY: a LoadedProgram is used by one thread at a time (the loader builds it, then
// moves it to the scan thread, which moves it back to the loader to drop). The raw code
// and data pointers inside stay valid wherever the value moves, because the library and
// the boxed image move with it.
unsafe impl Send for LoadedProgram {}

impl LoadedProgram {
    /// Unloads the program (its destructors run, guarded). A program that faulted is not
    /// unloaded but left mapped: its destructors must not run.
    pub fn unload(mut self: Box<Self>) -> Result<(), Fault> {
        // A task thread that does not leave the program keeps its code mapped for good.
        if let Some(threads) = self.threads.take()
            && !threads.stop()
        {
            self.faulted = true;
        }
        match self.library.take() {
            Some(library) if self.faulted => {
                library.leak();
                Ok(())
            }
            Some(library) => library.close(),
            None => Ok(()),
        }
    }

    pub fn info(&self) -> &ProgramInfo {
        &self.info
    }

    pub fn period_ns(&self) -> u64 {
        self.info.period_ns
    }

    pub fn var_count(&self) -> u32 {
        self.info.var_count
    }

    /// Hash of the variable table (every variable's size and kind).
    pub fn vars_hash(&self) -> u64 {
        self.vars_hash
    }

    /// The program's executable segments (faults inside them are clean).
    pub fn code(&self) -> CodeRange {
        self.code
    }

    /// The descriptor of the library's copy, for a restart that reloads this program.
    pub fn library_fd(&self) -> Option<RawFd> {
        self.library.as_ref().map(|l| l.memfd.as_raw_fd())
    }

    pub fn extents(&self) -> &OutputExtents {
        &self.extents
    }

    /// Publishes `addr` from now on (an image write reached it).
    pub fn widen_extents(&mut self, addr: shared_abi::image::IecAddress) {
        self.extents.widen(addr);
    }

    pub fn image(&self) -> &Image {
        &self.image
    }

    pub fn image_mut(&mut self) -> &mut Image {
        &mut self.image
    }

    /// Marks the program as faulted: never to be called or unloaded again.
    pub fn mark_faulted(&mut self) {
        self.faulted = true;
    }

    pub fn is_faulted(&self) -> bool {
        self.faulted
    }

    /// Runs one scan.
    pub fn run_tick(&mut self, tick: u64) -> Result<(), Fault> {
        // SAFETY: `run_tick` comes from the checked table of the library we keep loaded.
        unsafe { guard::tick(self.entry.run_tick, tick) }
    }

    /// Size of debug variable `var` as the program reported it at load, 0 when it does not
    /// exist.
    pub fn var_size(&self, var: u32) -> u32 {
        self.vars.get(var as usize).map_or(0, |v| v.size)
    }

    pub fn var_kind(&self, var: u32) -> VarKind {
        self.vars.get(var as usize).map_or(VarKind::Opaque, |v| v.kind)
    }

    /// Applies forced values.
    pub fn apply_forces(&mut self, forced: &[ForcedValue]) -> Result<(), Fault> {
        if forced.is_empty() {
            return Ok(());
        }
        // SAFETY: checked table function; indices were range-checked when forced.
        unsafe { guard::apply_forces(self.entry.var_force, forced) }
    }

    /// Releases one forced variable.
    pub fn unforce(&mut self, var: u32) -> Result<i32, Fault> {
        // SAFETY: checked table function; the adapter range-checks `var` too.
        unsafe { guard::index_call(self.entry.var_unforce, var) }
    }

    /// Whether the program can write a variable once (`var_write`).
    pub fn can_write_vars(&self) -> bool {
        self.entry.var_write.is_some()
    }

    /// Writes each value once (`var_write`); `Ok(false)` when the program has no
    /// `var_write`.
    pub fn write_vars(&mut self, values: &[ForcedValue]) -> Result<bool, Fault> {
        let Some(write) = self.entry.var_write else { return Ok(false) };
        for v in values {
            // SAFETY: checked table function; the index was range-checked and the value
            // sized when the command was taken.
            unsafe { guard::value_call(write, v.var, v.value()) }?;
        }
        Ok(true)
    }

    /// Where the watched variables' current values are (as many as both slices hold). The
    /// ABI lets an address change only when its variable is forced or released, so callers
    /// keep them until then.
    pub fn watched_addresses(&self, watched: &[WatchedValue], out: &mut [usize]) -> Result<(), Fault> {
        // SAFETY: checked table function; the guard takes the shorter of the two slices.
        unsafe { guard::addresses(self.entry.var_addr, watched, out) }
    }

    /// Whether `watched` is a layout [`copy_watched`](Self::copy_watched) may copy into a
    /// data area of `data_len` bytes: every valid entry inside it, and no larger than the
    /// variable the program reported.
    pub fn layout_fits(&self, watched: &[WatchedValue], data_len: usize) -> bool {
        watched.iter().all(|w| {
            w.valid == 0 || (w.offset as usize + w.size as usize <= data_len && w.size as u32 <= self.var_size(w.var))
        })
    }

    /// Copies the watched variables' current values from `addresses` into `data`.
    ///
    /// # Safety
    /// `watched` must have passed [`layout_fits`](Self::layout_fits) for `data.len()` and
    /// this program, and `addresses` must come from
    /// [`watched_addresses`](Self::watched_addresses) for the same entries with no force
    /// or release since, at least as many as `watched`.
    pub unsafe fn copy_watched(
        &self,
        addresses: &[usize],
        watched: &[WatchedValue],
        data: &mut [u8],
    ) -> Result<(), Fault> {
        let n = watched.len().min(addresses.len());
        // SAFETY: the caller's promise covers the layout and the addresses.
        unsafe { guard::copy_watched(&addresses[..n], &watched[..n], data) }
    }

    /// How many RETAIN variables, how many bytes they take, and where their values came
    /// from at load.
    pub fn retain_summary(&self) -> (usize, u32, RetainSource) {
        (self.retained.vars.len(), self.retained.bytes, self.retain_source)
    }

    /// The forces given back at load (a warm start with a live copy).
    pub fn restored_forces(&self) -> &[ForcedValue] {
        &self.restored_forces
    }

    /// Asks the program where its RETAIN variables are (after a swap, force or release).
    pub fn refresh_retain_addresses(&mut self) -> Result<(), Fault> {
        let r = &mut self.retained;
        if r.vars.is_empty() {
            return Ok(());
        }
        // SAFETY: checked table function; `addresses` has one slot per variable.
        unsafe { guard::addresses(self.entry.var_addr, &r.vars, &mut r.addresses) }
    }

    /// Copies the RETAIN variables' current values into `out` (header and data).
    pub fn save_retain(&self, out: &mut RetainImage) -> Result<(), Fault> {
        let r = &self.retained;
        out.count = r.vars.len() as u32;
        out.layout_hash = r.layout_hash;
        out.md5 = self.info.md5;
        out.len = r.bytes;
        if r.vars.is_empty() {
            return Ok(());
        }
        // SAFETY: the variables were laid out within RETAIN_BYTES (checked in `retained`)
        // with the sizes the program reported, and the addresses are current (refreshed
        // after every swap, force and release).
        unsafe { guard::copy_watched(&r.addresses, &r.vars, &mut out.data) }
    }
}

impl Drop for LoadedProgram {
    fn drop(&mut self) {
        // Normally unloaded explicitly; this is the fallback (a program dropped with its
        // engine, say), with the same rules.
        if let Some(threads) = self.threads.take()
            && !threads.stop()
        {
            self.faulted = true;
        }
        if let Some(library) = self.library.take() {
            if self.faulted {
                library.leak();
            } else if let Err(fault) = library.close() {
                restart::request(RestartKind::UnloadFault, Some(fault.cause), 0);
            }
        }
    }
}
