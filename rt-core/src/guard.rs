//! Calls into program code through `guard.c`, so that a fault, a watchdog abort, or a call
//! of exit/abort/raise inside the program ends the call with a [`Fault`] instead of ending
//! rt-core. Every call rt-core makes into a program library goes through here, on the
//! loader thread (dlopen, the ABI table, bind, init, the variable table, dlclose) as on the
//! scan thread (scans, forces, writes, debug values, RETAIN values).
//!
//! A fault is *clean* when it stopped in the program's own code (and not inside the dynamic
//! loader): nothing outside the program can be holding a lock, so the PLC goes to ERROR and
//! rt-core carries on. Any other fault may have interrupted libc (malloc, the loader) with a
//! lock held; rt-core then restarts itself in place (`restart`).
//!
//! Why the jump is sound for C++ programs too: it skips the destructors of the program's
//! frames, so rt-core never runs that instance again (state ERROR; a new load is a new
//! instance from a fresh copy of the library) and never unloads it (its static destructors
//! never run): nothing ever depends on what the skipped destructors would have done. An
//! exception that escapes the adapter is caught there first (the STruC++ adapter turns it
//! into `raise(SIGILL)` after the catch, when no C++ frame is left to unwind).

use shared_abi::debug::{ForcedValue, WatchedValue};
use shared_abi::image::Image;
use shared_abi::msg::FaultCause;
use shared_abi::program::{LocatedInfo, ProgramAbi, TaskInfo};
use std::ffi::{CStr, c_char, c_int, c_void};
use std::sync::Once;

const _: () = assert!(std::mem::size_of::<ForcedValue>() == 264);
const _: () = assert!(std::mem::size_of::<WatchedValue>() == 12);

/// `oplc_fault_t` in guard.c.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct RawFault {
    cause: i32,
    signal: i32,
    status: i32,
    clean: u32,
    pc: u64,
}

unsafe extern "C" {
    fn oplc_guard_install() -> c_int;
    fn oplc_guard_stop_requested() -> c_int;
    fn oplc_guard_ignored_signals() -> c_int;
    fn oplc_guard_set_watch_stamp(stamp: *const u64);
    fn oplc_guard_set_code(lo: usize, hi: usize);
    fn oplc_guard_signal_watchdog(tid: libc::pid_t, stamp: u64) -> c_int;
    fn oplc_code_range(handle: *mut c_void, lo: *mut usize, hi: *mut usize) -> c_int;
    fn oplc_guarded_dlopen(
        path: *const c_char,
        flags: c_int,
        handle: *mut *mut c_void,
        error: *mut *const c_char,
        fault: *mut RawFault,
    ) -> c_int;
    fn oplc_guarded_dlclose(handle: *mut c_void, rc: *mut c_int, fault: *mut RawFault) -> c_int;
    fn oplc_guarded_entry(
        entry: unsafe extern "C" fn() -> *const ProgramAbi,
        abi: *mut *const ProgramAbi,
        fault: *mut RawFault,
    ) -> c_int;
    fn oplc_guarded_copy(dst: *mut c_void, src: *const c_void, n: usize, fault: *mut RawFault) -> c_int;
    fn oplc_guarded_cstr(
        src: *const c_char,
        dst: *mut c_char,
        cap: usize,
        len: *mut usize,
        fault: *mut RawFault,
    ) -> c_int;
    fn oplc_guarded_u64(f: unsafe extern "C" fn() -> u64, out: *mut u64, fault: *mut RawFault) -> c_int;
    fn oplc_guarded_u32(f: unsafe extern "C" fn() -> u32, out: *mut u32, fault: *mut RawFault) -> c_int;
    fn oplc_guarded_u32_u32(
        f: unsafe extern "C" fn(u32) -> u32,
        arg: u32,
        out: *mut u32,
        fault: *mut RawFault,
    ) -> c_int;
    fn oplc_guarded_cstr_fn(
        f: unsafe extern "C" fn() -> *const c_char,
        out: *mut *const c_char,
        fault: *mut RawFault,
    ) -> c_int;
    fn oplc_guarded_var_table(
        var_size: unsafe extern "C" fn(u32) -> u32,
        var_kind: unsafe extern "C" fn(u32) -> u32,
        count: u32,
        sizes: *mut u32,
        kinds: *mut u32,
        fault: *mut RawFault,
    ) -> c_int;
    fn oplc_guarded_located(
        at: unsafe extern "C" fn(u32, *mut LocatedInfo) -> i32,
        i: u32,
        out: *mut LocatedInfo,
        rc: *mut i32,
        fault: *mut RawFault,
    ) -> c_int;
    fn oplc_guarded_tick(run_tick: unsafe extern "C" fn(u64), tick: u64, fault: *mut RawFault) -> c_int;
    fn oplc_guarded_task_run(run: unsafe extern "C" fn(u32, u64), task: u32, tick: u64, fault: *mut RawFault) -> c_int;
    fn oplc_guarded_task_info(
        info: unsafe extern "C" fn(u32, *mut TaskInfo) -> i32,
        task: u32,
        out: *mut TaskInfo,
        rc: *mut i32,
        fault: *mut RawFault,
    ) -> c_int;
    fn oplc_guarded_init(init: unsafe extern "C" fn() -> i32, result: *mut i32, fault: *mut RawFault) -> c_int;
    fn oplc_guarded_bind(
        bind: unsafe extern "C" fn(*mut Image) -> i32,
        image: *mut Image,
        result: *mut i32,
        fault: *mut RawFault,
    ) -> c_int;
    fn oplc_guarded_apply_forces(
        set: unsafe extern "C" fn(u32, *const c_void, u32) -> i32,
        forced: *const ForcedValue,
        count: usize,
        fault: *mut RawFault,
    ) -> c_int;
    fn oplc_guarded_value_call(
        f: unsafe extern "C" fn(u32, *const c_void, u32) -> i32,
        index: u32,
        value: *const c_void,
        len: u32,
        result: *mut i32,
        fault: *mut RawFault,
    ) -> c_int;
    fn oplc_guarded_addresses(
        addr_of: unsafe extern "C" fn(u32) -> *mut c_void,
        watched: *const WatchedValue,
        count: usize,
        addresses: *mut usize,
        fault: *mut RawFault,
    ) -> c_int;
    fn oplc_guarded_copy_watched(
        addresses: *const usize,
        watched: *const WatchedValue,
        count: usize,
        data: *mut u8,
        fault: *mut RawFault,
    ) -> c_int;
    fn oplc_guarded_index_call(
        f: unsafe extern "C" fn(u32) -> i32,
        index: u32,
        result: *mut i32,
        fault: *mut RawFault,
    ) -> c_int;
}

/// How a guarded call into program code ended early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    pub cause: FaultCause,
    /// Stopped in the program's own code, outside the dynamic loader: nothing else can be
    /// holding a lock, so rt-core can carry on without the program.
    pub clean: bool,
    /// The faulting instruction, or the caller of exit/abort/raise.
    pub pc: usize,
}

impl Fault {
    /// Whether rt-core must restart itself before it can trust its own process again.
    pub fn needs_restart(&self) -> bool {
        !self.clean
    }

    fn from_raw(raw: RawFault) -> Fault {
        let cause = match raw.cause {
            2 => FaultCause::Watchdog,
            3 => FaultCause::Exit(raw.status),
            4 => FaultCause::Abort,
            5 => FaultCause::Raise(raw.signal),
            6 => FaultCause::ThreadExit,
            _ => FaultCause::Signal(raw.signal),
        };
        Fault { cause, clean: raw.clean != 0, pc: raw.pc as usize }
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.cause)?;
        if !self.clean {
            f.write_str(" outside the program's own code")?;
        }
        Ok(())
    }
}

/// Runs `call` (a guarded C entry point) with a fault record; `Err` when it faulted.
fn run(call: impl FnOnce(*mut RawFault) -> c_int) -> Result<(), Fault> {
    let mut raw = RawFault::default();
    if call(&mut raw) == 0 { Ok(()) } else { Err(Fault::from_raw(raw)) }
}

/// Installs the signal handlers (once per process). Terminating signals from another
/// process become a shutdown request ([`stop_requested`]).
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: sigaction on the fault and terminating signals; the handlers are
        // async-signal-safe (they jump, store a flag, or chain to the previous handler).
        if unsafe { oplc_guard_install() } != 0 {
            eprintln!(
                "openplc-rt: could not install the program fault handlers; a crashing program will end the process"
            );
        }
    });
}

/// Whether SIGTERM, SIGINT, SIGHUP (or another terminating signal) came from another
/// process or a terminal: a request to shut down.
pub fn stop_requested() -> bool {
    // SAFETY: reads a sig_atomic_t flag.
    unsafe { oplc_guard_stop_requested() != 0 }
}

/// Terminating signals the program sent the process outside a guarded call (ignored).
pub fn ignored_signals() -> u32 {
    // SAFETY: reads a sig_atomic_t counter.
    unsafe { oplc_guard_ignored_signals() as u32 }
}

/// Where the watchdog's stamp lives, so an abort request sent for one program run never
/// ends another (the handler compares the stamp it was sent with).
pub fn set_watch_stamp(stamp: &'static std::sync::atomic::AtomicU64) {
    // SAFETY: AtomicU64 has u64's layout; the pointer stays valid ('static).
    unsafe { oplc_guard_set_watch_stamp(stamp.as_ptr()) }
}

/// Asks the scan thread `tid` to abort the program run stamped `stamp`.
pub fn signal_watchdog(tid: u32, stamp: u64) -> std::io::Result<()> {
    // SAFETY: rt_tgsigqueueinfo to a thread of this process; no memory of ours is shared.
    if unsafe { oplc_guard_signal_watchdog(tid as libc::pid_t, stamp) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The executable segments of the program this thread calls from now on (clean faults
/// are the ones inside them).
pub fn set_code(range: CodeRange) {
    // SAFETY: stores two thread-local integers.
    unsafe { oplc_guard_set_code(range.lo, range.hi) }
}

/// A library's executable segments.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CodeRange {
    pub lo: usize,
    pub hi: usize,
}

/// A dlopen'ed library's executable segments (empty when the loader does not know them:
/// then no fault counts as clean).
///
/// # Safety
/// `handle` must be a live handle from [`dlopen`].
pub unsafe fn code_range(handle: *mut c_void) -> CodeRange {
    let (mut lo, mut hi) = (0, 0);
    // SAFETY: a live handle (caller); the out-pointers are valid.
    if unsafe { oplc_code_range(handle, &mut lo, &mut hi) } == 0 { CodeRange { lo, hi } } else { CodeRange::default() }
}

/// `dlopen`, with the library's constructors guarded. A fault there always needs a
/// restart (the loader's lock is held). `Ok(Err(message))` is dlopen's own refusal.
///
/// # Safety
/// Loading a library runs its constructors: the path must be one rt-core means to load.
pub unsafe fn dlopen(path: &CStr, flags: c_int) -> Result<Result<*mut c_void, String>, Fault> {
    let mut handle = std::ptr::null_mut();
    let mut error: *const c_char = std::ptr::null();
    // SAFETY: valid C string and out-pointers for the call.
    run(|f| unsafe { oplc_guarded_dlopen(path.as_ptr(), flags, &mut handle, &mut error, f) })?;
    if handle.is_null() {
        let text = if error.is_null() {
            "dlopen failed".to_string()
        } else {
            // SAFETY: dlerror's thread-local text, read before any other dl call.
            unsafe { CStr::from_ptr(error) }.to_string_lossy().into_owned()
        };
        return Ok(Err(text));
    }
    Ok(Ok(handle))
}

/// Runs task `task` of a program once (`task_run`), on the calling task thread.
///
/// # Safety
/// `run` must be `task_run` from the checked table of a loaded library.
pub unsafe fn task_run(task_fn: unsafe extern "C" fn(u32, u64), task: u32, tick: u64) -> Result<(), Fault> {
    // SAFETY: as above.
    run(|f| unsafe { oplc_guarded_task_run(task_fn, task, tick, f) })
}

/// Describes task `task` (`task_info`): `None` when the program says it is out of range.
///
/// # Safety
/// `info` must be `task_info` from the checked table of a loaded library.
pub unsafe fn task_info(
    info: unsafe extern "C" fn(u32, *mut TaskInfo) -> i32,
    task: u32,
) -> Result<Option<TaskInfo>, Fault> {
    let mut out = TaskInfo::empty();
    let mut rc = -1;
    // SAFETY: `out` is a whole TaskInfo the call may fill.
    run(|f| unsafe { oplc_guarded_task_info(info, task, &mut out, &mut rc, f) })?;
    Ok((rc == 0).then_some(out))
}

/// `dlclose`, with the library's destructors guarded (a fault needs a restart).
///
/// # Safety
/// `handle` must be a live handle from [`dlopen`], never used again.
pub unsafe fn dlclose(handle: *mut c_void) -> Result<(), Fault> {
    let mut rc = 0;
    // SAFETY: the caller hands over the handle.
    run(|f| unsafe { oplc_guarded_dlclose(handle, &mut rc, f) })
}

/// Calls the library's `oplc_program_entry`.
///
/// # Safety
/// `entry` must be the entry function of a loaded library.
pub unsafe fn entry(entry: unsafe extern "C" fn() -> *const ProgramAbi) -> Result<*const ProgramAbi, Fault> {
    let mut abi = std::ptr::null();
    // SAFETY: as above.
    run(|f| unsafe { oplc_guarded_entry(entry, &mut abi, f) })?;
    Ok(abi)
}

/// Copies `dst.len()` bytes from program memory at `src`.
///
/// # Safety
/// `src` is program memory the program vouches for (a bad pointer faults, guarded).
pub unsafe fn copy_from(src: *const u8, dst: &mut [u8]) -> Result<(), Fault> {
    // SAFETY: `dst` is valid for its length.
    run(|f| unsafe { oplc_guarded_copy(dst.as_mut_ptr().cast(), src.cast(), dst.len(), f) })
}

/// Copies a C string from program memory into `buf`; the bytes before its NUL (all of
/// `buf` when there is none within it).
///
/// # Safety
/// As for [`copy_from`].
pub unsafe fn cstr(src: *const c_char, buf: &mut [u8]) -> Result<&[u8], Fault> {
    let mut len = 0;
    // SAFETY: `buf` is valid for its length.
    run(|f| unsafe { oplc_guarded_cstr(src, buf.as_mut_ptr().cast(), buf.len(), &mut len, f) })?;
    Ok(&buf[..len.min(buf.len())])
}

/// Calls a `uint64_t f(void)` of the program.
///
/// # Safety
/// `f` must come from a loaded program's checked ABI table.
pub unsafe fn call_u64(f: unsafe extern "C" fn() -> u64) -> Result<u64, Fault> {
    let mut out = 0;
    // SAFETY: as above.
    run(|fault| unsafe { oplc_guarded_u64(f, &mut out, fault) })?;
    Ok(out)
}

/// Calls a `uint32_t f(void)` of the program.
///
/// # Safety
/// As for [`call_u64`].
pub unsafe fn call_u32(f: unsafe extern "C" fn() -> u32) -> Result<u32, Fault> {
    let mut out = 0;
    // SAFETY: as above.
    run(|fault| unsafe { oplc_guarded_u32(f, &mut out, fault) })?;
    Ok(out)
}

/// Calls a `uint32_t f(uint32_t)` of the program.
///
/// # Safety
/// As for [`call_u64`].
pub unsafe fn call_u32_u32(f: unsafe extern "C" fn(u32) -> u32, arg: u32) -> Result<u32, Fault> {
    let mut out = 0;
    // SAFETY: as above.
    run(|fault| unsafe { oplc_guarded_u32_u32(f, arg, &mut out, fault) })?;
    Ok(out)
}

/// Calls a `const char *f(void)` of the program.
///
/// # Safety
/// As for [`call_u64`].
pub unsafe fn call_cstr(f: unsafe extern "C" fn() -> *const c_char) -> Result<*const c_char, Fault> {
    let mut out = std::ptr::null();
    // SAFETY: as above.
    run(|fault| unsafe { oplc_guarded_cstr_fn(f, &mut out, fault) })?;
    Ok(out)
}

/// Every variable's size and kind (`sizes.len()` variables).
///
/// # Safety
/// As for [`call_u64`]; `kinds` as long as `sizes`.
pub unsafe fn var_table(
    var_size: unsafe extern "C" fn(u32) -> u32,
    var_kind: unsafe extern "C" fn(u32) -> u32,
    sizes: &mut [u32],
    kinds: &mut [u32],
) -> Result<(), Fault> {
    let n = sizes.len().min(kinds.len()).min(u32::MAX as usize) as u32;
    // SAFETY: both buffers hold at least `n` entries.
    run(|f| unsafe { oplc_guarded_var_table(var_size, var_kind, n, sizes.as_mut_ptr(), kinds.as_mut_ptr(), f) })
}

/// Calls `located_at(i, out)`.
///
/// # Safety
/// As for [`call_u64`].
pub unsafe fn located(
    at: unsafe extern "C" fn(u32, *mut LocatedInfo) -> i32,
    i: u32,
) -> Result<Option<LocatedInfo>, Fault> {
    let mut out = LocatedInfo::default();
    let mut rc = 0;
    // SAFETY: `out` is a valid LocatedInfo.
    run(|f| unsafe { oplc_guarded_located(at, i, &mut out, &mut rc, f) })?;
    Ok((rc == 0).then_some(out))
}

/// Runs one scan of the program.
///
/// # Safety
/// `run_tick` must be the program's entry point from a library that stays loaded.
pub unsafe fn tick(run_tick: unsafe extern "C" fn(u64), tick: u64) -> Result<(), Fault> {
    // SAFETY: guard.c calls `run_tick(tick)` and catches faults; the caller vouches for it.
    run(|f| unsafe { oplc_guarded_tick(run_tick, tick, f) })
}

/// Calls the program's `init`.
///
/// # Safety
/// As for `tick`.
pub unsafe fn init(init: unsafe extern "C" fn() -> i32) -> Result<i32, Fault> {
    let mut result = 0;
    // SAFETY: `result` outlives the call; the caller vouches for `init`.
    run(|f| unsafe { oplc_guarded_init(init, &mut result, f) })?;
    Ok(result)
}

/// Calls the program's `bind_image`.
///
/// # Safety
/// As for `tick`; `image` must stay allocated (and not move) for the program's lifetime.
pub unsafe fn bind(bind: unsafe extern "C" fn(*mut Image) -> i32, image: *mut Image) -> Result<i32, Fault> {
    let mut result = 0;
    // SAFETY: as above.
    run(|f| unsafe { oplc_guarded_bind(bind, image, &mut result, f) })?;
    Ok(result)
}

/// Hands every value to `set` (`var_force`, or `retain_set` for RETAIN restores).
///
/// # Safety
/// As for `tick`; `set` takes at most `len` bytes of each value.
pub unsafe fn apply_forces(
    set: unsafe extern "C" fn(u32, *const c_void, u32) -> i32,
    forced: &[ForcedValue],
) -> Result<(), Fault> {
    // SAFETY: `forced` is a valid slice for the call; the caller vouches for `set`.
    run(|f| unsafe { oplc_guarded_apply_forces(set, forced.as_ptr(), forced.len(), f) })
}

/// Calls `f(index, value, len)` (`var_write`) and returns its result.
///
/// # Safety
/// As for `tick`; `f` reads at most `value.len()` bytes.
pub unsafe fn value_call(
    f: unsafe extern "C" fn(u32, *const c_void, u32) -> i32,
    index: u32,
    value: &[u8],
) -> Result<i32, Fault> {
    let mut result = 0;
    // SAFETY: `value` is valid for its length during the call.
    run(|fault| unsafe {
        oplc_guarded_value_call(f, index, value.as_ptr().cast(), value.len() as u32, &mut result, fault)
    })?;
    Ok(result)
}

/// Asks the program for the address of every valid watched variable (0 for the others);
/// as many as both slices hold.
///
/// # Safety
/// As for `tick`.
pub unsafe fn addresses(
    addr_of: unsafe extern "C" fn(u32) -> *mut c_void,
    watched: &[WatchedValue],
    addresses: &mut [usize],
) -> Result<(), Fault> {
    let n = watched.len().min(addresses.len());
    // SAFETY: both slices hold at least `n` entries.
    run(|f| unsafe { oplc_guarded_addresses(addr_of, watched.as_ptr(), n, addresses.as_mut_ptr(), f) })
}

/// Copies every valid watched variable from its address into `data`.
///
/// # Safety
/// `addresses` must come from [`addresses`] for the same entries of a program still loaded
/// and not forced or released since, and be at least as long as `watched`; every valid
/// entry's `offset + size` must lie inside `data`, and its `size` must not exceed the
/// variable's real size.
pub unsafe fn copy_watched(addresses: &[usize], watched: &[WatchedValue], data: &mut [u8]) -> Result<(), Fault> {
    // SAFETY: the slices are valid for the call; the rest is the caller's promise.
    run(|f| unsafe {
        oplc_guarded_copy_watched(addresses.as_ptr(), watched.as_ptr(), watched.len(), data.as_mut_ptr(), f)
    })
}

/// Calls an `int32_t f(uint32_t)` program function (unforce).
///
/// # Safety
/// As for `tick`.
pub unsafe fn index_call(f: unsafe extern "C" fn(u32) -> i32, index: u32) -> Result<i32, Fault> {
    let mut result = 0;
    // SAFETY: as above.
    run(|fault| unsafe { oplc_guarded_index_call(f, index, &mut result, fault) })?;
    Ok(result)
}
