//! A program library, loaded and checked off the scan thread, then handed to it whole.
//!
//! Loading reads the file into a memfd and dlopens that (a fresh instance every time),
//! resolves `oplc_program_entry`, checks the ABI, allocates the program's own image, binds
//! the located variables into it and cold-starts the program, all under the crash guard.
//! Any failure leaves the running program untouched.

use crate::extents::OutputExtents;
use crate::guard::{self, Fault, ForcedVar};
use crate::sys;
use shared_abi::debug::{Generator, INFO_PATH_BYTES, MAX_GROUPS, ProgramInfo, WatchedValue, fill_text};
use shared_abi::image::Image;
use shared_abi::program::{
    LocatedInfo, PROGRAM_ABI_BASE_SIZE, PROGRAM_ABI_VERSION, PROGRAM_ENTRY_SYMBOL, ProgramAbi, ProgramEntry, VarKind,
};
use shared_abi::retain::{self, RETAIN_BYTES, RetainImage};
use std::ffi::{CStr, c_void};
use std::os::fd::OwnedFd;
use std::path::Path;

/// Scan periods outside this range are refused.
pub const MIN_PERIOD_NS: u64 = 50_000;
pub const MAX_PERIOD_NS: u64 = 60_000_000_000;

/// The function pointers rt-core calls, checked non-null once at load.
#[derive(Clone, Copy)]
struct Entry {
    run_tick: unsafe extern "C" fn(u64),
    var_size: unsafe extern "C" fn(u32) -> u32,
    var_kind: unsafe extern "C" fn(u32) -> u32,
    var_addr: unsafe extern "C" fn(u32) -> *mut c_void,
    var_force: unsafe extern "C" fn(u32, *const c_void, u32) -> i32,
    var_unforce: unsafe extern "C" fn(u32) -> i32,
    located_count: Option<unsafe extern "C" fn() -> u32>,
    located_at: Option<unsafe extern "C" fn(u32, *mut LocatedInfo) -> i32>,
    retain_set: Option<unsafe extern "C" fn(u32, *const c_void, u32) -> i32>,
}

/// The program's RETAIN variables, laid out one after the other as in a `RetainImage`
/// (`offset` into its data; `var` the debug index).
struct Retained {
    vars: Vec<WatchedValue>,
    /// Where each one's value is now (refreshed after a swap, force or release).
    addresses: Vec<usize>,
    bytes: u32,
    layout_hash: u64,
    /// Whether saved values were put back at load.
    restored: bool,
}

pub struct LoadedProgram {
    entry: Entry,
    /// The parts of the output image the program writes.
    extents: OutputExtents,
    image: Box<Image>,
    info: ProgramInfo,
    /// Keeps the code mapped. An `Option` so `Drop` can close it before the memfd.
    library: Option<libloading::Library>,
    /// The memfd the library was opened through. dlopen recognises an already-loaded
    /// library by the path string (`/proc/self/fd/N`), so N must not be reused while the
    /// library is mapped: the fd stays open until the library is really gone.
    memfd: Option<OwnedFd>,
    path: String,
    retained: Retained,
}

// SAFETY: a LoadedProgram is used by one thread at a time (the loader builds it, then
// moves it to the scan thread, which moves it back to the loader to drop). The raw code
// and data pointers inside stay valid wherever the value moves, because the library and
// the boxed image move with it.
unsafe impl Send for LoadedProgram {}

#[derive(Debug)]
pub struct LoadError(pub String);

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn err(msg: impl Into<String>) -> LoadError {
    LoadError(msg.into())
}

fn required<T>(f: Option<T>, name: &str) -> Result<T, LoadError> {
    f.ok_or_else(|| err(format!("the program's ABI table has no {name} function")))
}

impl Drop for LoadedProgram {
    fn drop(&mut self) {
        drop(self.library.take());
        // A library that glibc keeps mapped after dlclose (GNU unique symbols, a
        // NODELETE dependency) still answers to its path: then keep the fd, so that path
        // never names another program.
        let path = std::ffi::CString::new(self.path.as_str()).unwrap_or_default();
        // SAFETY: RTLD_NOLOAD only looks the name up; the handle it may return is closed
        // again at once to drop the reference it took.
        let still_loaded = unsafe {
            let handle = libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_NOLOAD);
            if !handle.is_null() {
                libc::dlclose(handle);
            }
            !handle.is_null()
        };
        if still_loaded {
            std::mem::forget(self.memfd.take());
        }
    }
}

/// What `LoadedProgram::check` learnt about a library.
#[derive(Debug)]
pub struct Checked {
    /// The adapter's generator name ("matiec", "strucpp"), if it gives one.
    pub generator: Option<String>,
}

impl LoadedProgram {
    /// Opens the library at `path` and checks its ABI table without binding or
    /// initialising it: what `openplc-rt check` runs in a throwaway process before a
    /// program reaches the real-time process, because the library's constructors run
    /// inside dlopen, where no guard can catch them.
    pub fn check(path: &Path) -> Result<Checked, LoadError> {
        let (_library, _memfd, abi) = Self::open(path)?;
        let abi = &abi;
        // SAFETY: a table `open` checked; `generator` is a C string in the library's
        // static data (null allowed).
        let generator =
            unsafe { (!abi.generator.is_null()).then(|| CStr::from_ptr(abi.generator).to_string_lossy().into_owned()) };
        Ok(Checked { generator })
    }

    /// dlopens `path` through a memfd and returns a copy of its checked ABI table (the
    /// functions in it live as long as the returned library). A table from before the
    /// RETAIN functions were appended reads as one without them.
    fn open(path: &Path) -> Result<(libloading::Library, OwnedFd, ProgramAbi), LoadError> {
        // No program code may run before the fault handlers are in place.
        guard::install();
        let bytes = std::fs::read(path).map_err(|e| err(format!("cannot read {}: {e}", path.display())))?;
        if bytes.len() < 4 || &bytes[..4] != b"\x7fELF" {
            return Err(err(format!("{} is not a shared library (no ELF header)", path.display())));
        }
        let memfd = sys::memfd_with(&bytes).map_err(|e| err(format!("memfd: {e}")))?;
        // SAFETY: loading a library runs its constructors: this is the point where user code
        // enters the process, by design and off the scan thread. RTLD_NOW makes a missing
        // symbol fail here rather than in the middle of a scan.
        let library = unsafe {
            libloading::os::unix::Library::open(Some(sys::fd_path(&memfd)), libc::RTLD_NOW | libc::RTLD_LOCAL)
        }
        .map_err(|e| err(format!("cannot load {}: {e}", path.display())))?;
        let library = libloading::Library::from(library);
        // SAFETY: the symbol's type is fixed by the program ABI (openplc_abi.h).
        let entry_fn: ProgramEntry =
            unsafe { library.get::<ProgramEntry>(PROGRAM_ENTRY_SYMBOL.as_bytes()) }.map(|s| *s).map_err(|_| {
                err(format!(
                    "{} exports no {PROGRAM_ENTRY_SYMBOL}: it was not built with a runtime adapter",
                    path.display()
                ))
            })?;
        // SAFETY: calling the adapter's entry function, which returns a pointer to static data.
        let abi_ptr = unsafe { entry_fn() };
        if abi_ptr.is_null() {
            return Err(err("oplc_program_entry returned no ABI table"));
        }
        // SAFETY: non-null, points at the adapter's static table of at least the two header
        // words; checked for the full size before the rest is read.
        let (version, size) = unsafe { ((*abi_ptr).abi_version, (*abi_ptr).struct_size) };
        if version != PROGRAM_ABI_VERSION {
            return Err(err(format!(
                "program ABI version {version}, this runtime needs {PROGRAM_ABI_VERSION}: rebuild the program"
            )));
        }
        if (size as usize) < PROGRAM_ABI_BASE_SIZE {
            return Err(err(format!("program ABI table is {size} bytes, expected at least {PROGRAM_ABI_BASE_SIZE}")));
        }
        let copied = (size as usize).min(std::mem::size_of::<ProgramAbi>());
        let mut abi = std::mem::MaybeUninit::<ProgramAbi>::zeroed();
        // SAFETY: the adapter's table has at least `copied` readable bytes (its
        // struct_size, checked above); the destination is a whole ProgramAbi. All-zero
        // bytes are a valid ProgramAbi (null pointers, `None` functions), so the copy of a
        // shorter table leaves the appended functions absent.
        let abi = unsafe {
            std::ptr::copy_nonoverlapping(abi_ptr.cast::<u8>(), abi.as_mut_ptr().cast::<u8>(), copied);
            abi.assume_init()
        };
        Ok((library, memfd, abi))
    }

    /// Loads, binds and initialises the program at `path` as generation `program_gen`.
    pub fn load(path: &Path, program_gen: u32, staged: Option<&RetainImage>) -> Result<Box<LoadedProgram>, LoadError> {
        let (library, memfd, abi) = Self::open(path)?;
        let abi = &abi;
        let entry = Entry {
            run_tick: required(abi.run_tick, "run_tick")?,
            var_size: required(abi.var_size, "var_size")?,
            var_kind: required(abi.var_kind, "var_kind")?,
            var_addr: required(abi.var_addr, "var_addr")?,
            var_force: required(abi.var_force, "var_force")?,
            var_unforce: required(abi.var_unforce, "var_unforce")?,
            located_count: abi.located_count,
            located_at: abi.located_at.filter(|_| abi.located_count.is_some()),
            retain_set: abi.retain_set,
        };
        let bind_image = required(abi.bind_image, "bind_image")?;
        let init = required(abi.init, "init")?;
        let tick_period_ns = required(abi.tick_period_ns, "tick_period_ns")?;
        let var_count = required(abi.var_count, "var_count")?;

        let mut image: Box<Image> = bytemuck::zeroed_box();
        // Fault the image's pages in now, not on the scan thread's first access.
        bytemuck::bytes_of_mut(&mut *image).iter_mut().step_by(4096).for_each(|b| *b = 0);
        let image_ptr: *mut Image = &mut *image;
        // SAFETY: the boxed image never moves or is freed while the library is loaded
        // (both live in this struct); bind/init come from the checked ABI table.
        match unsafe { guard::bind(bind_image, image_ptr) } {
            Ok(0) => {}
            Ok(code) => return Err(err(format!("the program refused its image (bind_image returned {code})"))),
            Err(fault) => return Err(err(format!("the program crashed while binding its image: {}", fault.name()))),
        }
        // SAFETY: as above.
        match unsafe { guard::init(init) } {
            Ok(0) => {}
            Ok(code) => return Err(err(format!("the program's init failed (returned {code})"))),
            Err(fault) => return Err(err(format!("the program crashed in init: {}", fault.name()))),
        }

        let mut info: ProgramInfo = bytemuck::Zeroable::zeroed();
        info.program_gen = program_gen;
        // SAFETY: functions from the checked table; `generator` and the md5 are C strings
        // in the library's static data (null allowed and handled).
        unsafe {
            info.period_ns = tick_period_ns();
            info.var_count = var_count();
            if !abi.generator.is_null() {
                let name = CStr::from_ptr(abi.generator).to_string_lossy();
                info.generator = Generator::from_name(&name) as u32;
            }
            if let Some(md5) = abi.program_md5 {
                let p = md5();
                if !p.is_null() {
                    let text = CStr::from_ptr(p).to_bytes();
                    if text.len() == 32 && text.iter().all(u8::is_ascii_hexdigit) {
                        info.md5.copy_from_slice(text);
                        info.has_md5 = 1;
                    }
                }
            }
            match (abi.group_count, abi.group_len) {
                (Some(count), Some(len)) => {
                    let n = (count() as usize).min(MAX_GROUPS);
                    info.group_count = n as u32;
                    for g in 0..n {
                        info.group_len[g] = len(g as u32);
                    }
                }
                _ => {
                    info.group_count = 1;
                    info.group_len[0] = info.var_count;
                }
            }
        }
        if !(MIN_PERIOD_NS..=MAX_PERIOD_NS).contains(&info.period_ns) {
            return Err(err(format!(
                "the program's scan period is {} ns; it must be between {MIN_PERIOD_NS} ns and {MAX_PERIOD_NS} ns",
                info.period_ns
            )));
        }
        let path_text = path.to_string_lossy();
        info.path_len = fill_text(&mut info.path[..INFO_PATH_BYTES], &path_text);
        let retained = Self::retained(abi, &entry, info.var_count)?;
        let path = sys::fd_path(&memfd);
        let mut program = LoadedProgram {
            entry,
            extents: OutputExtents::FULL,
            image,
            info,
            library: Some(library),
            memfd: Some(memfd),
            path,
            retained,
        };
        let located = program.entry.located_count.is_some().then(|| program.located());
        program.extents = OutputExtents::of_program(located.as_deref());
        if let Some(staged) = staged {
            program.restore_retain(staged)?;
        }
        program.refresh_retain_addresses().map_err(|f| err(format!("the program crashed: {}", f.name())))?;
        Ok(Box::new(program))
    }

    /// The RETAIN variables the adapter declares, checked and laid out.
    fn retained(abi: &ProgramAbi, entry: &Entry, var_count: u32) -> Result<Retained, LoadError> {
        let mut vars = Vec::new();
        if let (Some(count), Some(var_of), Some(_)) = (abi.retain_count, abi.retain_var, abi.retain_set) {
            let mut offset = 0u32;
            // SAFETY: functions from the checked table of the library being loaded.
            for i in 0..unsafe { count() } {
                // SAFETY: as above.
                let var = unsafe { var_of(i) };
                if var >= var_count {
                    return Err(err(format!("RETAIN variable {i} names debug variable {var}, which does not exist")));
                }
                // SAFETY: as above; `var` is in range.
                let (size, kind) = unsafe { ((entry.var_size)(var), (entry.var_kind)(var)) };
                if size == 0 || size > 256 {
                    return Err(err(format!("RETAIN variable {i} has an unsupported size ({size} bytes)")));
                }
                vars.push(WatchedValue { var, offset, size: size as u16, kind: kind as u8, valid: 1 });
                offset += size;
                if offset as usize > RETAIN_BYTES {
                    return Err(err(format!("the program's RETAIN variables take more than {RETAIN_BYTES} bytes")));
                }
            }
        }
        let layout_hash = retain::layout_hash(vars.iter().map(|v| (v.var, v.size as u32, v.kind as u32)));
        let bytes = vars.iter().map(|v| v.size as u32).sum();
        Ok(Retained { addresses: vec![0; vars.len()], vars, bytes, layout_hash, restored: false })
    }

    /// Puts saved RETAIN values back, when they are this program's (same MD5 and RETAIN
    /// layout); otherwise the program keeps its initial values (a cold start).
    fn restore_retain(&mut self, staged: &RetainImage) -> Result<(), LoadError> {
        let r = &self.retained;
        let same_program = staged.program_gen != 0
            && staged.layout_hash == r.layout_hash
            && staged.count as usize == r.vars.len()
            && staged.len == r.bytes
            && staged.md5 == self.info.md5;
        let Some(set) = self.entry.retain_set.filter(|_| same_program && !r.vars.is_empty()) else {
            return Ok(());
        };
        let values: Vec<ForcedVar> = r
            .vars
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let mut f = ForcedVar { var: i as u32, len: v.size as u32, bytes: [0; 256] };
                let at = v.offset as usize;
                f.bytes[..v.size as usize].copy_from_slice(&staged.data[at..at + v.size as usize]);
                f
            })
            .collect();
        // SAFETY: checked table function (retain_set has var_force's signature and
        // contract); every index is one of the program's RETAIN variables.
        unsafe { guard::apply_forces(set, &values) }
            .map_err(|f| err(format!("the program crashed restoring its RETAIN values: {}", f.name())))?;
        self.retained.restored = true;
        Ok(())
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

    /// Runs one scan.
    pub fn run_tick(&mut self, tick: u64) -> Result<(), Fault> {
        // SAFETY: `run_tick` comes from the checked table of the library we keep loaded.
        unsafe { guard::tick(self.entry.run_tick, tick) }
    }

    /// Size of debug variable `var`, 0 when it does not exist.
    pub fn var_size(&self, var: u32) -> u32 {
        if var >= self.info.var_count {
            return 0;
        }
        // SAFETY: checked table function, index in range.
        unsafe { (self.entry.var_size)(var) }
    }

    pub fn var_kind(&self, var: u32) -> VarKind {
        if var >= self.info.var_count {
            return VarKind::Opaque;
        }
        // SAFETY: as above.
        VarKind::from_u32(unsafe { (self.entry.var_kind)(var) })
    }

    /// Applies forced values.
    pub fn apply_forces(&mut self, forced: &[ForcedVar]) -> Result<(), Fault> {
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

    /// Where the watched variables' current values are. The ABI lets an address change
    /// only when its variable is forced or released, so callers keep them until then.
    pub fn watched_addresses(&self, watched: &[WatchedValue], out: &mut [usize]) -> Result<(), Fault> {
        // SAFETY: checked table function; the guard checks `out` is long enough.
        unsafe { guard::addresses(self.entry.var_addr, watched, out) }
    }

    /// Copies the watched variables' current values from `addresses` (from
    /// `watched_addresses`, no force or release since) into `data`.
    pub fn copy_watched(&self, addresses: &[usize], watched: &[WatchedValue], data: &mut [u8]) -> Result<(), Fault> {
        debug_assert!(watched.iter().all(|w| w.valid == 0 || (w.offset as usize + w.size as usize) <= data.len()));
        // SAFETY: every valid entry was laid out by the engine within `data` with the size
        // the program reported for it, and the addresses are current for this program (the
        // engine refreshes them after every swap, force and release).
        unsafe { guard::copy_watched(addresses, watched, data) }
    }

    /// How many RETAIN variables, how many bytes they take, and whether saved values
    /// were put back at load.
    pub fn retain_summary(&self) -> (usize, u32, bool) {
        (self.retained.vars.len(), self.retained.bytes, self.retained.restored)
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
        // SAFETY: the variables were laid out within RETAIN_BYTES with the sizes the
        // program reported, and the addresses are current (refreshed after every swap,
        // force and release).
        unsafe { guard::copy_watched(&r.addresses, &r.vars, &mut out.data) }
    }

    /// The program's located variables, for diagnostics.
    pub fn located(&self) -> Vec<LocatedInfo> {
        let (Some(count), Some(at)) = (self.entry.located_count, self.entry.located_at) else {
            return Vec::new();
        };
        // SAFETY: checked table functions; `out` is a valid LocatedInfo.
        let n = unsafe { count() };
        (0..n)
            .filter_map(|i| {
                let mut out = LocatedInfo::default();
                // SAFETY: as above.
                (unsafe { at(i, &mut out) } == 0).then_some(out)
            })
            .collect()
    }
}
