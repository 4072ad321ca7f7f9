//! Calls into program code through `guard.c`, so that a fault (or the watchdog's abort)
//! inside the program ends the call with the signal number instead of killing rt-core.

use shared_abi::debug::WatchedValue;
use shared_abi::image::Image;
use std::ffi::c_void;
use std::sync::Once;

/// A forced value as the guard applies it (`oplc_forced_t` in guard.c).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ForcedVar {
    pub var: u32,
    pub len: u32,
    pub bytes: [u8; 256],
}

const _: () = assert!(std::mem::size_of::<ForcedVar>() == 264);
const _: () = assert!(std::mem::size_of::<WatchedValue>() == 12);

unsafe extern "C" {
    fn oplc_guard_install() -> i32;
    fn oplc_guarded_tick(run_tick: unsafe extern "C" fn(u64), tick: u64) -> i32;
    fn oplc_guarded_init(init: unsafe extern "C" fn() -> i32, result: *mut i32) -> i32;
    fn oplc_guarded_bind(bind: unsafe extern "C" fn(*mut Image) -> i32, image: *mut Image, result: *mut i32) -> i32;
    fn oplc_guarded_apply_forces(
        force: unsafe extern "C" fn(u32, *const c_void, u32) -> i32,
        forced: *const ForcedVar,
        count: usize,
    ) -> i32;
    fn oplc_guarded_addresses(
        addr_of: unsafe extern "C" fn(u32) -> *mut c_void,
        watched: *const WatchedValue,
        count: usize,
        addresses: *mut usize,
    ) -> i32;
    fn oplc_guarded_copy_watched(
        addresses: *const usize,
        watched: *const WatchedValue,
        count: usize,
        data: *mut u8,
    ) -> i32;
    fn oplc_guarded_index_call(f: unsafe extern "C" fn(u32) -> i32, index: u32, result: *mut i32) -> i32;
}

/// A signal that aborted a guarded call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault(pub i32);

impl Fault {
    pub fn name(self) -> &'static str {
        match self.0 {
            libc::SIGSEGV => "SIGSEGV (invalid memory access)",
            libc::SIGBUS => "SIGBUS (bus error)",
            libc::SIGFPE => "SIGFPE (arithmetic error, e.g. division by zero)",
            libc::SIGILL => "SIGILL (illegal instruction)",
            libc::SIGUSR2 => "watchdog abort",
            _ => "signal",
        }
    }
}

fn outcome(signal: i32) -> Result<(), Fault> {
    if signal == 0 { Ok(()) } else { Err(Fault(signal)) }
}

/// Installs the signal handlers (once per process).
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: sigaction on signals rt-core does not otherwise use; the handler is
        // async-signal-safe (it only jumps or chains to the previous handler).
        if unsafe { oplc_guard_install() } != 0 {
            eprintln!(
                "openplc-rt: could not install the program fault handlers; a crashing program will end the process"
            );
        }
    });
}

/// Runs one scan of the program.
///
/// # Safety
/// `run_tick` must be the program's entry point from a library that stays loaded.
pub unsafe fn tick(run_tick: unsafe extern "C" fn(u64), tick: u64) -> Result<(), Fault> {
    // SAFETY: guard.c calls `run_tick(tick)` and catches faults; the caller vouches for it.
    outcome(unsafe { oplc_guarded_tick(run_tick, tick) })
}

/// Calls the program's `init`.
///
/// # Safety
/// As for `tick`.
pub unsafe fn init(init: unsafe extern "C" fn() -> i32) -> Result<i32, Fault> {
    let mut result = 0;
    // SAFETY: `result` outlives the call; the caller vouches for `init`.
    outcome(unsafe { oplc_guarded_init(init, &mut result) }).map(|()| result)
}

/// Calls the program's `bind_image`.
///
/// # Safety
/// As for `tick`; `image` must stay allocated (and not move) for the program's lifetime.
pub unsafe fn bind(bind: unsafe extern "C" fn(*mut Image) -> i32, image: *mut Image) -> Result<i32, Fault> {
    let mut result = 0;
    // SAFETY: as above.
    outcome(unsafe { oplc_guarded_bind(bind, image, &mut result) }).map(|()| result)
}

/// Applies every forced value.
///
/// # Safety
/// As for `tick`.
pub unsafe fn apply_forces(
    force: unsafe extern "C" fn(u32, *const c_void, u32) -> i32,
    forced: &[ForcedVar],
) -> Result<(), Fault> {
    // SAFETY: `forced` is a valid slice for the call; the caller vouches for `force`.
    outcome(unsafe { oplc_guarded_apply_forces(force, forced.as_ptr(), forced.len()) })
}

/// Asks the program for the address of every valid watched variable (0 for the others).
///
/// # Safety
/// As for `tick`; `addresses` must be at least as long as `watched`.
pub unsafe fn addresses(
    addr_of: unsafe extern "C" fn(u32) -> *mut c_void,
    watched: &[WatchedValue],
    addresses: &mut [usize],
) -> Result<(), Fault> {
    debug_assert!(addresses.len() >= watched.len());
    // SAFETY: both slices are valid for the call and `addresses` is long enough (caller).
    outcome(unsafe { oplc_guarded_addresses(addr_of, watched.as_ptr(), watched.len(), addresses.as_mut_ptr()) })
}

/// Copies every valid watched variable from its address into `data`.
///
/// # Safety
/// `addresses` must come from [`addresses`] for the same entries of a program still loaded
/// and not forced or released since; every valid entry's `offset + size` must lie inside
/// `data`, and its `size` must not exceed the variable's real size.
pub unsafe fn copy_watched(addresses: &[usize], watched: &[WatchedValue], data: &mut [u8]) -> Result<(), Fault> {
    debug_assert!(addresses.len() >= watched.len());
    // SAFETY: the slices are valid for the call; the rest is the caller's promise.
    outcome(unsafe {
        oplc_guarded_copy_watched(addresses.as_ptr(), watched.as_ptr(), watched.len(), data.as_mut_ptr())
    })
}

/// Calls an `int32_t f(uint32_t)` program function (unforce).
///
/// # Safety
/// As for `tick`.
pub unsafe fn index_call(f: unsafe extern "C" fn(u32) -> i32, index: u32) -> Result<i32, Fault> {
    let mut result = 0;
    // SAFETY: as above.
    outcome(unsafe { oplc_guarded_index_call(f, index, &mut result) }).map(|()| result)
}
