//! Loading a program: the steps from the library file to a program ready to swap in, each
//! that runs program code behind the crash guard. A failure at any step leaves nothing of
//! the library behind but, after a fault, its mapping (a faulted library is never unloaded).

use super::{
    Entry, Library, LoadedProgram, MAX_PERIOD_NS, MAX_VARS, MIN_PERIOD_NS, RetainSource, Retained, VarMeta, WarmStart,
};
use crate::extents::OutputExtents;
use crate::guard::{self, CodeRange, Fault};
use crate::restart::{self, RestartKind};
use crate::sys;
use shared_abi::debug::{
    ForcedValue, Generator, INFO_PATH_BYTES, MAX_GROUPS, ProgramInfo, WatchedValue, fill_text, vars_hash,
};
use shared_abi::image::Image;
use shared_abi::program::{
    PROGRAM_ABI_BASE_SIZE, PROGRAM_ABI_VERSION, PROGRAM_ENTRY_SYMBOL, ProgramAbi, ProgramEntry, VarKind,
};
use shared_abi::retain::{self, RETAIN_BYTES, RetainImage};
use shared_abi::sizes::{ImageRequest, ImageSizes};
use std::ffi::{CString, c_void};
use std::path::Path;

/// Located variables read at load.
const MAX_LOCATED: u32 = 1 << 16;

/// The load step during which program code ended a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadStage {
    Constructors,
    Entry,
    Binding,
    Init,
    Describing,
    RestoringRetain,
    RestoringForces,
    Destructors,
}

impl LoadStage {
    fn as_str(self) -> &'static str {
        match self {
            LoadStage::Constructors => "in its constructors (while being loaded)",
            LoadStage::Entry => "in oplc_program_entry",
            LoadStage::Binding => "while binding its image",
            LoadStage::Init => "in init",
            LoadStage::Describing => "while describing itself (period, variables, located variables)",
            LoadStage::RestoringRetain => "while restoring its RETAIN values",
            LoadStage::RestoringForces => "while restoring its forced values",
            LoadStage::Destructors => "in its destructors (while being unloaded)",
        }
    }
}

/// Why a program was not loaded.
#[derive(Debug)]
pub enum LoadError {
    /// The library cannot be used as it is (not a program, a bad ABI table, init refused).
    Refused(String),
    /// Program code ended a call its own way.
    Crashed { stage: LoadStage, fault: Fault },
}

impl LoadError {
    /// A crash that may have left a lock held (outside the program's code, or inside the
    /// dynamic loader): rt-core must restart before trusting its process again.
    pub fn needs_restart(&self) -> bool {
        matches!(self, LoadError::Crashed { fault, .. } if fault.needs_restart())
    }

    /// The fault, for a crash.
    pub fn fault(&self) -> Option<Fault> {
        match self {
            LoadError::Crashed { fault, .. } => Some(*fault),
            LoadError::Refused(_) => None,
        }
    }
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Refused(m) => f.write_str(m),
            LoadError::Crashed { stage, fault } => {
                write!(f, "the program ended {} with {}: its code is faulty", stage.as_str(), fault.cause)
            }
        }
    }
}

impl std::error::Error for LoadError {}

fn refused(msg: impl Into<String>) -> LoadError {
    LoadError::Refused(msg.into())
}

fn required<T>(f: Option<T>, name: &str) -> Result<T, LoadError> {
    f.ok_or_else(|| refused(format!("the program's ABI table has no {name} function")))
}

/// What `openplc-rt check` learnt about a library.
pub struct Checked {
    pub info: ProgramInfo,
    /// The adapter's generator name ("matiec", "strucpp"), if it gives one.
    pub generator: Option<String>,
}

/// A load in progress: owns the library and knows whether a failure must restart rt-core.
struct Loading {
    library: Option<Library>,
    code: CodeRange,
    faulted: bool,
}

impl Loading {
    /// Turns a fault at `stage` into an error, and marks the instance as not to be unloaded.
    /// (Whether rt-core must restart is the caller's call: `LoadError::needs_restart`.)
    fn crashed(&mut self, stage: LoadStage, fault: Fault) -> LoadError {
        self.faulted = true;
        LoadError::Crashed { stage, fault }
    }
}

impl Drop for Loading {
    fn drop(&mut self) {
        // A refused (not crashed) library is unloaded; a crashed one stays mapped.
        if let Some(library) = self.library.take() {
            if self.faulted {
                library.leak();
            } else if let Err(fault) = library.close() {
                restart::request(RestartKind::UnloadFault, Some(fault.cause), 0);
            }
        }
    }
}

impl LoadedProgram {
    /// Loads `path` in this (throwaway) process exactly as rt-core would, then unloads it:
    /// what `openplc-rt check` runs before a program reaches the real-time process.
    pub fn check(path: &Path) -> Result<Checked, LoadError> {
        let program = Self::load(path, 1, None, ImageRequest::FROM_PROGRAM)?;
        let info = *program.info();
        let generator = program.generator_name();
        program.unload().map_err(|fault| LoadError::Crashed { stage: LoadStage::Destructors, fault })?;
        Ok(Checked { info, generator })
    }

    fn generator_name(&self) -> Option<String> {
        match Generator::from_u32(self.info.generator) {
            Generator::Matiec => Some("matiec".into()),
            Generator::Strucpp => Some("strucpp".into()),
            Generator::Other => Some("other".into()),
            Generator::None => None,
        }
    }

    /// Loads, binds and initialises the program at `path` as generation `program_gen`;
    /// `warm`: give back RETAIN values and forces when they are this program's.
    pub fn load(
        path: &Path,
        program_gen: u32,
        warm: Option<WarmStart<'_>>,
        image: ImageRequest,
    ) -> Result<Box<LoadedProgram>, LoadError> {
        // No program code may run before the fault handlers are in place.
        guard::install();
        let mut loading = Loading { library: None, code: CodeRange::default(), faulted: false };
        let abi = Self::open(path, &mut loading)?;
        let program = Self::start(path, program_gen, warm, image, &abi, &mut loading)?;
        Ok(program)
    }

    /// dlopens `path` through a memfd and returns a copy of its checked ABI table. A table
    /// from before functions were appended reads as one without them.
    fn open(path: &Path, loading: &mut Loading) -> Result<ProgramAbi, LoadError> {
        let unreadable = |e: std::io::Error| refused(format!("cannot read {}: {e}", path.display()));
        let mut file = std::fs::File::open(path).map_err(unreadable)?;
        let mut magic = [0u8; 4];
        let is_elf = match std::io::Read::read_exact(&mut file, &mut magic) {
            Ok(()) => &magic == b"\x7fELF",
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => false,
            Err(e) => return Err(unreadable(e)),
        };
        if !is_elf {
            return Err(refused(format!("{} is not a shared library (no ELF header)", path.display())));
        }
        std::io::Seek::rewind(&mut file).map_err(unreadable)?;
        let memfd = sys::memfd_copy_of(&mut file).map_err(|e| refused(format!("memfd: {e}")))?;
        let fd_path = CString::new(sys::fd_path(&memfd)).map_err(|_| refused("memfd path"))?;
        // SAFETY: loading a library runs its constructors: this is the point where user code
        // enters the process, by design, off the scan thread and guarded. RTLD_NOW makes a
        // missing symbol fail here rather than in the middle of a scan.
        let handle = match unsafe { guard::dlopen(&fd_path, libc::RTLD_NOW | libc::RTLD_LOCAL) } {
            Ok(Ok(handle)) => handle,
            Ok(Err(text)) => return Err(refused(format!("cannot load {}: {text}", path.display()))),
            Err(fault) => {
                // The jump left dlopen half done: the library may or may not be mapped.
                std::mem::forget(memfd);
                return Err(loading.crashed(LoadStage::Constructors, Fault { clean: false, ..fault }));
            }
        };
        loading.library = Some(Library { handle, memfd, path: fd_path });
        // SAFETY: a live handle just returned by dlopen.
        loading.code = unsafe { guard::code_range(handle) };
        guard::set_code(loading.code);
        // SAFETY: dlsym looks a name up; no program code runs.
        let symbol = unsafe { libc::dlsym(handle, c"oplc_program_entry".as_ptr()) };
        if symbol.is_null() {
            return Err(refused(format!(
                "{} exports no {PROGRAM_ENTRY_SYMBOL}: it was not built with a runtime adapter",
                path.display()
            )));
        }
        // SAFETY: the symbol's type is fixed by the program ABI (openplc_abi.h).
        let entry_fn: ProgramEntry = unsafe { std::mem::transmute::<*mut c_void, ProgramEntry>(symbol) };
        // SAFETY: the adapter's entry function, which returns a pointer to static data.
        let abi_ptr = unsafe { guard::entry(entry_fn) }.map_err(|f| loading.crashed(LoadStage::Entry, f))?;
        if abi_ptr.is_null() {
            return Err(refused("oplc_program_entry returned no ABI table"));
        }
        let mut head = [0u8; 8];
        // SAFETY: program memory the program vouches for; a bad pointer faults, guarded.
        unsafe { guard::copy_from(abi_ptr.cast(), &mut head) }.map_err(|f| loading.crashed(LoadStage::Entry, f))?;
        let version = u32::from_ne_bytes([head[0], head[1], head[2], head[3]]);
        let size = u32::from_ne_bytes([head[4], head[5], head[6], head[7]]);
        if version != PROGRAM_ABI_VERSION {
            return Err(refused(format!(
                "program ABI version {version}, this runtime needs {PROGRAM_ABI_VERSION}: rebuild the program"
            )));
        }
        if (size as usize) < PROGRAM_ABI_BASE_SIZE {
            return Err(refused(format!(
                "program ABI table is {size} bytes, expected at least {PROGRAM_ABI_BASE_SIZE}"
            )));
        }
        let copied = (size as usize).min(std::mem::size_of::<ProgramAbi>());
        let mut abi = std::mem::MaybeUninit::<ProgramAbi>::zeroed();
        // SAFETY: the destination is a whole ProgramAbi, `copied` bytes of which are
        // written; the source is the adapter's table of at least that size (struct_size).
        let dst = unsafe { std::slice::from_raw_parts_mut(abi.as_mut_ptr().cast::<u8>(), copied) };
        // SAFETY: as above; guarded.
        unsafe { guard::copy_from(abi_ptr.cast(), dst) }.map_err(|f| loading.crashed(LoadStage::Entry, f))?;
        // SAFETY: all-zero bytes are a valid ProgramAbi (null pointers, `None` functions), so
        // the copy of a shorter table leaves the appended functions absent.
        Ok(unsafe { abi.assume_init() })
    }

    /// Binds, initialises, describes and (warm) restores the opened program.
    fn start(
        path: &Path,
        program_gen: u32,
        warm: Option<WarmStart<'_>>,
        image_request: ImageRequest,
        abi: &ProgramAbi,
        loading: &mut Loading,
    ) -> Result<Box<LoadedProgram>, LoadError> {
        let entry = Entry {
            run_tick: required(abi.run_tick, "run_tick")?,
            var_addr: required(abi.var_addr, "var_addr")?,
            var_force: required(abi.var_force, "var_force")?,
            var_unforce: required(abi.var_unforce, "var_unforce")?,
            var_write: abi.var_write.filter(|_| ProgramAbi::has_var_write(abi.struct_size)),
            retain_set: abi.retain_set.filter(|_| ProgramAbi::has_retain(abi.struct_size)),
        };
        let var_size = required(abi.var_size, "var_size")?;
        let var_kind = required(abi.var_kind, "var_kind")?;
        let bind_image = required(abi.bind_image, "bind_image")?;
        let init = required(abi.init, "init")?;
        let tick_period_ns = required(abi.tick_period_ns, "tick_period_ns")?;
        let var_count = required(abi.var_count, "var_count")?;

        let mut image: Box<Image> = bytemuck::zeroed_box();
        // Fault the image's pages in now, not on the scan thread's first access.
        bytemuck::bytes_of_mut(&mut *image).iter_mut().step_by(4096).for_each(|b| *b = 0);
        let image_ptr: *mut Image = &mut *image;
        // SAFETY: the boxed image never moves or is freed while the library is loaded
        // (both live in the program); bind/init come from the checked ABI table.
        match unsafe { guard::bind(bind_image, image_ptr) } {
            Ok(0) => {}
            Ok(code) => return Err(refused(format!("the program refused its image (bind_image returned {code})"))),
            Err(fault) => return Err(loading.crashed(LoadStage::Binding, fault)),
        }
        // SAFETY: as above.
        match unsafe { guard::init(init) } {
            Ok(0) => {}
            Ok(code) => return Err(refused(format!("the program's init failed (returned {code})"))),
            Err(fault) => return Err(loading.crashed(LoadStage::Init, fault)),
        }

        let describing = |loading: &mut Loading, f: Fault| loading.crashed(LoadStage::Describing, f);
        let mut info: ProgramInfo = bytemuck::Zeroable::zeroed();
        info.program_gen = program_gen;
        // SAFETY: a function (or string) of the checked table, called (copied) through the guard.
        info.period_ns = unsafe { guard::call_u64(tick_period_ns) }.map_err(|f| describing(loading, f))?;
        // SAFETY: a function (or string) of the checked table, called (copied) through the guard.
        info.var_count = unsafe { guard::call_u32(var_count) }.map_err(|f| describing(loading, f))?;
        if info.var_count > MAX_VARS {
            return Err(refused(format!("the program has {} debug variables (at most {MAX_VARS})", info.var_count)));
        }
        if !abi.generator.is_null() {
            let mut buf = [0u8; 32];
            // SAFETY: a function (or string) of the checked table, called (copied) through the guard.
            let name = unsafe { guard::cstr(abi.generator, &mut buf) }.map_err(|f| describing(loading, f))?;
            info.generator = Generator::from_name(&String::from_utf8_lossy(name)) as u32;
        }
        if let Some(md5) = abi.program_md5 {
            // SAFETY: a function (or string) of the checked table, called (copied) through the guard.
            let p = unsafe { guard::call_cstr(md5) }.map_err(|f| describing(loading, f))?;
            if !p.is_null() {
                let mut buf = [0u8; 33];
                // SAFETY: a function (or string) of the checked table, called (copied) through the guard.
                let text = unsafe { guard::cstr(p, &mut buf) }.map_err(|f| describing(loading, f))?;
                if text.len() == 32 && text.iter().all(u8::is_ascii_hexdigit) {
                    info.md5.copy_from_slice(text);
                    info.has_md5 = 1;
                }
            }
        }
        match (abi.group_count, abi.group_len) {
            (Some(count), Some(len)) => {
                // SAFETY: a function (or string) of the checked table, called (copied) through the guard.
                let n =
                    (unsafe { guard::call_u32(count) }.map_err(|f| describing(loading, f))? as usize).min(MAX_GROUPS);
                info.group_count = n as u32;
                for g in 0..n {
                    // SAFETY: a function (or string) of the checked table, called (copied) through the guard.
                    info.group_len[g] =
                        unsafe { guard::call_u32_u32(len, g as u32) }.map_err(|f| describing(loading, f))?;
                }
            }
            _ => {
                info.group_count = 1;
                info.group_len[0] = info.var_count;
            }
        }
        if !(MIN_PERIOD_NS..=MAX_PERIOD_NS).contains(&info.period_ns) {
            return Err(refused(format!(
                "the program's scan period is {} ns; it must be between {MIN_PERIOD_NS} ns and {MAX_PERIOD_NS} ns",
                info.period_ns
            )));
        }
        let path_text = path.to_string_lossy();
        info.path_len = fill_text(&mut info.path[..INFO_PATH_BYTES], &path_text);

        let n = info.var_count as usize;
        let (mut sizes, mut kinds) = (vec![0u32; n], vec![0u32; n]);
        // SAFETY: a function (or string) of the checked table, called (copied) through the guard.
        unsafe { guard::var_table(var_size, var_kind, &mut sizes, &mut kinds) }.map_err(|f| describing(loading, f))?;
        let vars: Box<[VarMeta]> =
            sizes.iter().zip(&kinds).map(|(&size, &kind)| VarMeta { size, kind: VarKind::from_u32(kind) }).collect();
        let vars_hash = vars_hash(vars.iter().map(|v| (v.size, v.kind as u32)));
        let retained = Self::retained(abi, &vars, loading)?;
        let located = match (abi.located_count, abi.located_at) {
            (Some(count), Some(at)) => {
                // SAFETY: a function (or string) of the checked table, called (copied) through the guard.
                let n = unsafe { guard::call_u32(count) }.map_err(|f| describing(loading, f))?.min(MAX_LOCATED);
                let mut all = Vec::with_capacity(n as usize);
                for i in 0..n {
                    // SAFETY: a function (or string) of the checked table, called (copied) through the guard.
                    if let Some(l) = unsafe { guard::located(at, i) }.map_err(|f| describing(loading, f))? {
                        all.push(l);
                    }
                }
                Some(all)
            }
            _ => None,
        };

        // Each table as long as `image.conf` asked and never shorter than the program's
        // located variables reach; a program that lists none gets the former fixed size.
        let floor = match &located {
            Some(list) => located_floor(list),
            None => ImageSizes::LEGACY,
        };
        info.image_sizes = image_request.resolve(&floor);

        let tasks = match super::tasks::describe(abi, info.period_ns) {
            Ok(tasks) => tasks,
            Err(super::tasks::Refusal::Fault(f)) => return Err(describing(loading, f)),
            Err(super::tasks::Refusal::Bad(why)) => return Err(refused(why)),
        };
        let mut program = LoadedProgram {
            entry,
            extents: OutputExtents::of_program(located.as_deref(), &info.image_sizes),
            image,
            info,
            vars,
            vars_hash,
            code: loading.code,
            library: None,
            retained,
            retain_source: RetainSource::Initial,
            restored_forces: Vec::new(),
            migration: None,
            faulted: false,
            tasks,
            threads: None,
        };
        if let Some(warm) = warm {
            program.restore_retain(warm).map_err(|f| loading.crashed(LoadStage::RestoringRetain, f))?;
            program.restore_forces(warm).map_err(|f| loading.crashed(LoadStage::RestoringForces, f))?;
        }
        program.refresh_retain_addresses().map_err(|f| loading.crashed(LoadStage::RestoringRetain, f))?;
        program.library = loading.library.take();
        Ok(Box::new(program))
    }

    /// The RETAIN variables the adapter declares, checked and laid out.
    fn retained(abi: &ProgramAbi, vars: &[VarMeta], loading: &mut Loading) -> Result<Retained, LoadError> {
        let mut list = Vec::new();
        let has = ProgramAbi::has_retain(abi.struct_size);
        if let (true, Some(count), Some(var_of), Some(_)) = (has, abi.retain_count, abi.retain_var, abi.retain_set) {
            let crashed = |loading: &mut Loading, f: Fault| loading.crashed(LoadStage::Describing, f);
            let mut offset = 0u32;
            // SAFETY: functions from the checked table of the library being loaded, guarded.
            let n = unsafe { guard::call_u32(count) }.map_err(|f| crashed(loading, f))?;
            for i in 0..n {
                // SAFETY: as above.
                let var = unsafe { guard::call_u32_u32(var_of, i) }.map_err(|f| crashed(loading, f))?;
                let Some(meta) = vars.get(var as usize) else {
                    return Err(refused(format!(
                        "RETAIN variable {i} names debug variable {var}, which does not exist"
                    )));
                };
                if meta.size == 0 || meta.size > 256 {
                    return Err(refused(format!("RETAIN variable {i} has an unsupported size ({} bytes)", meta.size)));
                }
                list.push(WatchedValue { var, offset, size: meta.size as u16, kind: meta.kind as u8, valid: 1 });
                offset += meta.size;
                if offset as usize > RETAIN_BYTES {
                    return Err(refused(format!("the program's RETAIN variables take more than {RETAIN_BYTES} bytes")));
                }
            }
        }
        let layout_hash = retain::layout_hash(list.iter().map(|v| (v.var, v.size as u32, v.kind as u32)));
        let bytes = list.iter().map(|v| v.size as u32).sum();
        Ok(Retained { addresses: vec![0; list.len()], vars: list, bytes, layout_hash })
    }

    /// Whether `saved` holds this program's RETAIN values (same MD5 and RETAIN layout).
    fn retain_matches(&self, saved: &RetainImage) -> bool {
        let r = &self.retained;
        saved.program_gen != 0
            && saved.layout_hash == r.layout_hash
            && saved.count as usize == r.vars.len()
            && saved.len == r.bytes
            && saved.md5 == self.info.md5
    }

    /// Puts saved RETAIN values back: the live copy when it is this program's, else the
    /// staged values when they are; otherwise the program keeps its initial values.
    fn restore_retain(&mut self, warm: WarmStart<'_>) -> Result<(), Fault> {
        let Some(set) = self.entry.retain_set.filter(|_| !self.retained.vars.is_empty()) else {
            return Ok(());
        };
        let (source, saved) = match (warm.live_retain, warm.staged_retain) {
            (Some(live), _) if self.retain_matches(live) => (RetainSource::Live, live),
            (_, Some(staged)) if self.retain_matches(staged) => (RetainSource::Staged, staged),
            _ => return Ok(()),
        };
        let values: Vec<ForcedValue> = self
            .retained
            .vars
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let mut f = ForcedValue { var: i as u32, len: v.size as u32, bytes: [0; 256] };
                let at = v.offset as usize;
                f.bytes[..v.size as usize].copy_from_slice(&saved.data[at..at + v.size as usize]);
                f
            })
            .collect();
        // SAFETY: checked table function (retain_set has var_force's signature and
        // contract); every index is one of the program's RETAIN variables.
        unsafe { guard::apply_forces(set, &values) }?;
        self.retain_source = source;
        Ok(())
    }

    /// Forces the variables the live copy says were forced in this same program (same MD5
    /// and variable table), each still of its size.
    fn restore_forces(&mut self, warm: WarmStart<'_>) -> Result<(), Fault> {
        let Some(table) = warm.live_forces else { return Ok(()) };
        if table.program_gen == 0 || table.md5 != self.info.md5 || table.vars_hash != self.vars_hash {
            return Ok(());
        }
        let forces: Vec<ForcedValue> =
            table.forced().iter().filter(|f| f.len != 0 && f.len == self.var_size(f.var)).copied().collect();
        if forces.is_empty() {
            return Ok(());
        }
        // SAFETY: checked table function; each index is in range and each value its size.
        unsafe { guard::apply_forces(self.entry.var_force, &forces) }?;
        self.restored_forces = forces;
        Ok(())
    }
}

/// The table sizes a program's located variables need: one past the highest index each
/// table is located at (every located variable counts, in the image or copied).
fn located_floor(located: &[shared_abi::program::LocatedInfo]) -> ImageSizes {
    let mut floor = ImageSizes::ZERO;
    for addr in located.iter().filter_map(shared_abi::program::LocatedInfo::address) {
        floor.widen(addr);
    }
    floor
}
