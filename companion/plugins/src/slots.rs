//! Plugin slots: the functions in `plugin_runtime_args_t` take no context argument, yet the
//! host must know which plugin (and so which host, mirror and log prefix) is calling. Each
//! loaded plugin gets a slot, and each slot its own copies of every function: the Rust ones
//! are monomorphised per slot from `Thunk<S>`, the printf-style log functions come from the
//! C shim. A call through a slot that has since been released does nothing (returns -1 or
//! 0), so a plugin thread that outlives its plugin cannot reach another plugin's state by
//! accident through stale data; it can only reach the slot's next owner.

use crate::core::{Core, DebugRefusal, lock};
use shared_abi::debug::ProgramInfo;
use shared_abi::image::{IecAddress, Width};
use shared_abi::msg::LogLevel;
use shared_abi::plugin::{
    DEBUG_STATUS_OK, DEBUG_STATUS_OUT_OF_BOUNDS, DEBUG_STATUS_OUT_OF_MEMORY, JournalType, LogFn, PLUGIN_PLC_ERROR,
    PLUGIN_PLC_RUNNING, PLUGIN_PLC_STOPPED, PluginRuntimeArgs,
};
use std::cell::UnsafeCell;
use std::ffi::{CStr, c_char, c_int, c_uint, c_ulonglong};
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once, OnceLock, RwLock};

/// Plugins loaded at once in this process, across every host (plugins.conf allows 16 per
/// host; tests run several hosts side by side).
pub(crate) const SLOTS: usize = 64;

/// One plugin's `plugin_runtime_args_t`, at a fixed address for as long as anyone holds
/// it (the host, the plugin's Python capsule). It also holds its host's `Core`, whose
/// mirror the tables point into, so a capsule kept by a Python plugin never outlives them.
#[repr(C)]
pub(crate) struct ArgsCell {
    /// First, so a pointer to the cell is a pointer to the struct.
    args: UnsafeCell<PluginRuntimeArgs>,
    _core: Arc<Core>,
}

// SAFETY: the host writes the struct once, before any plugin sees its address; afterwards
// only plugins read it (upstream's contract has them read it, or copy it, never write it).
unsafe impl Send for ArgsCell {}
// SAFETY: as for `Send`.
unsafe impl Sync for ArgsCell {}

impl ArgsCell {
    pub fn get(&self) -> *mut PluginRuntimeArgs {
        self.args.get()
    }
}

const _: () = assert!(std::mem::offset_of!(ArgsCell, args) == 0);

/// What a slot knows about its plugin.
pub(crate) struct PluginCtx {
    pub slot: usize,
    /// Distinguishes successive owners of the same slot.
    pub generation: u64,
    pub name: String,
    pub core: Arc<Core>,
    pub args: Arc<ArgsCell>,
    /// For Python plugins: the directory of the module, to tell whose thread raised.
    pub dir: Option<PathBuf>,
    /// For Python plugins: the name its module was imported under (unique while loaded).
    pub module: OnceLock<String>,
    pub config_path: String,
    /// Set when the plugin misbehaved; it is not called again (see `PluginHost`).
    pub degraded: Mutex<Option<String>>,
    debug_write_warned: AtomicBool,
}

impl PluginCtx {
    pub fn log(&self, level: LogLevel, text: &str) {
        self.core.plc.log(level, &format!("[{}] {text}", self.name));
    }

    pub fn degrade(&self, reason: &str) {
        let mut d = lock(&self.degraded);
        if d.is_none() {
            *d = Some(reason.to_string());
        }
    }

    pub fn degraded(&self) -> Option<String> {
        lock(&self.degraded).clone()
    }
}

static REGISTRY: [RwLock<Option<Arc<PluginCtx>>>; SLOTS] = [const { RwLock::new(None) }; SLOTS];
static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);
static GENERATION: AtomicU64 = AtomicU64::new(1);

/// The context of `slot`, if a plugin holds it.
pub(crate) fn get(slot: usize) -> Option<Arc<PluginCtx>> {
    REGISTRY.get(slot)?.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Every plugin currently holding a slot.
pub(crate) fn all() -> Vec<Arc<PluginCtx>> {
    (0..SLOTS).filter_map(get).collect()
}

/// The slot whose args struct lives at `args`.
pub(crate) fn find_by_args(args: *const PluginRuntimeArgs) -> Option<Arc<PluginCtx>> {
    all().into_iter().find(|c| std::ptr::eq(c.args.get(), args))
}

/// Claims a free slot for a plugin and fills its args struct: tables, thunks, config path,
/// base tick. Slots are handed out round-robin so a just-released one is reused last.
pub(crate) fn claim(name: &str, core: &Arc<Core>, config_path: &str, dir: Option<PathBuf>) -> Option<Arc<PluginCtx>> {
    install_log_sink();
    let start = NEXT_SLOT.fetch_add(1, Ordering::Relaxed);
    for k in 0..SLOTS {
        let slot = (start + k) % SLOTS;
        let mut entry = REGISTRY[slot].write().unwrap_or_else(|e| e.into_inner());
        if entry.is_some() {
            continue;
        }
        // SAFETY: all-zero bytes are a valid `PluginRuntimeArgs`: null raw pointers, `None`
        // function pointers, integers and a byte array.
        let zeroed: PluginRuntimeArgs = unsafe { std::mem::zeroed() };
        let args = Arc::new(ArgsCell { args: UnsafeCell::new(zeroed), _core: core.clone() });
        // SAFETY: no one else has seen `args` yet, so this is the only reference.
        let a = unsafe { &mut *args.get() };
        core.fill_tables(a);
        fill_functions(slot, a);
        let bytes = config_path.as_bytes();
        let n = bytes.len().min(a.plugin_specific_config_file_path.len() - 1);
        for (dst, &src) in a.plugin_specific_config_file_path.iter_mut().zip(&bytes[..n]) {
            *dst = src as c_char;
        }
        a.base_tick_ns = core.plc.program_info().map_or(0, |p| p.period_ns);
        let ctx = Arc::new(PluginCtx {
            slot,
            generation: GENERATION.fetch_add(1, Ordering::Relaxed),
            name: name.to_string(),
            core: core.clone(),
            args,
            dir,
            module: OnceLock::new(),
            config_path: config_path.to_string(),
            degraded: Mutex::new(None),
            debug_write_warned: AtomicBool::new(false),
        });
        *entry = Some(ctx.clone());
        return Some(ctx);
    }
    None
}

/// Frees a slot; calls through its functions do nothing from now on.
pub(crate) fn release(slot: usize) {
    if let Some(entry) = REGISTRY.get(slot) {
        *entry.write().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

// ---- the C shim ----

type LogSink = unsafe extern "C" fn(slot: c_uint, level: c_uint, text: *const c_char);

unsafe extern "C" {
    fn oplc_plugin_host_set_log_sink(sink: LogSink);
    fn oplc_plugin_host_log_fn(slot: c_uint, level: c_uint) -> Option<LogFn>;
    fn oplc_plugin_host_log_slots() -> c_uint;
}

fn install_log_sink() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: plain C functions of our shim; the sink is a valid `extern "C"` function
        // for the life of the process.
        unsafe {
            assert_eq!(oplc_plugin_host_log_slots() as usize, SLOTS, "log shim and host disagree on slots");
            oplc_plugin_host_set_log_sink(log_sink);
        }
    });
}

/// Receives a plugin's formatted log text from the C shim.
unsafe extern "C" fn log_sink(slot: c_uint, level: c_uint, text: *const c_char) {
    guard((), || {
        if text.is_null() {
            return;
        }
        // SAFETY: the shim passes a NUL-terminated buffer that lives for this call.
        let text = unsafe { CStr::from_ptr(text) }.to_string_lossy();
        let level = match level {
            0 => LogLevel::Debug,
            1 => LogLevel::Info,
            2 => LogLevel::Warning,
            _ => LogLevel::Error,
        };
        match get(slot as usize) {
            Some(ctx) => ctx.log(level, &text),
            None => tracing::warn!("log from a released plugin slot {slot}: {text}"),
        }
    })
}

/// The shim's log function for `(slot, level)`, exposed for tests of the shim.
pub(crate) fn log_fn(slot: usize, level: u32) -> Option<LogFn> {
    // SAFETY: a pure lookup in the shim's static table.
    unsafe { oplc_plugin_host_log_fn(slot as c_uint, level) }
}

/// Runs `f`, turning a panic into `default`: a panic must not unwind into a plugin's C frames.
fn guard<R>(default: R, f: impl FnOnce() -> R) -> R {
    std::panic::catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| {
        tracing::error!("internal error in a plugin callback (panic caught)");
        default
    })
}

// ---- the Rust thunks, one copy per slot ----

struct Thunk<const S: usize>;

#[derive(Clone, Copy)]
struct Functions {
    image_lock: unsafe extern "C" fn(),
    image_unlock: unsafe extern "C" fn(),
    debug_array_count: unsafe extern "C" fn() -> u8,
    debug_elem_count: unsafe extern "C" fn(u8) -> u16,
    debug_size: unsafe extern "C" fn(u8, u16) -> u16,
    debug_read: unsafe extern "C" fn(u8, u16, *mut u8) -> u16,
    debug_set: unsafe extern "C" fn(u8, u16, bool, *const u8, u16) -> u8,
    debug_write: unsafe extern "C" fn(u8, u16, *const u8, u16) -> u8,
    journal_write_bool: unsafe extern "C" fn(c_int, c_int, c_int, c_int) -> c_int,
    journal_write_byte: unsafe extern "C" fn(c_int, c_int, c_int) -> c_int,
    journal_write_int: unsafe extern "C" fn(c_int, c_int, c_int) -> c_int,
    journal_write_dint: unsafe extern "C" fn(c_int, c_int, c_uint) -> c_int,
    journal_write_lint: unsafe extern "C" fn(c_int, c_int, c_ulonglong) -> c_int,
    request_plc_stop: unsafe extern "C" fn(*const c_char),
    request_plc_start: unsafe extern "C" fn(*const c_char),
    set_switch_position: unsafe extern "C" fn(c_int),
    get_plc_state: unsafe extern "C" fn() -> c_int,
}

impl<const S: usize> Thunk<S> {
    const FUNCTIONS: Functions = Functions {
        image_lock: Self::image_lock,
        image_unlock: Self::image_unlock,
        debug_array_count: Self::debug_array_count,
        debug_elem_count: Self::debug_elem_count,
        debug_size: Self::debug_size,
        debug_read: Self::debug_read,
        debug_set: Self::debug_set,
        debug_write: Self::debug_write,
        journal_write_bool: Self::journal_write_bool,
        journal_write_byte: Self::journal_write_byte,
        journal_write_int: Self::journal_write_int,
        journal_write_dint: Self::journal_write_dint,
        journal_write_lint: Self::journal_write_lint,
        request_plc_stop: Self::request_plc_stop,
        request_plc_start: Self::request_plc_start,
        set_switch_position: Self::set_switch_position,
        get_plc_state: Self::get_plc_state,
    };

    unsafe extern "C" fn image_lock() {
        guard((), || {
            if let Some(c) = get(S) {
                c.core.image_lock()
            }
        })
    }

    unsafe extern "C" fn image_unlock() {
        guard((), || {
            if let Some(c) = get(S) {
                c.core.image_unlock()
            }
        })
    }

    unsafe extern "C" fn debug_array_count() -> u8 {
        guard(0, || with_program(S, |_, info| Core::debug_array_count(info)).unwrap_or(0))
    }

    unsafe extern "C" fn debug_elem_count(arr: u8) -> u16 {
        guard(0, || with_program(S, |_, info| Core::debug_elem_count(info, arr)).unwrap_or(0))
    }

    unsafe extern "C" fn debug_size(arr: u8, elem: u16) -> u16 {
        guard(0, || {
            with_program(S, |c, info| Core::debug_var(info, arr, elem).map_or(0, |v| c.core.debug_size(info, v)))
                .unwrap_or(0)
        })
    }

    unsafe extern "C" fn debug_read(arr: u8, elem: u16, dest: *mut u8) -> u16 {
        guard(0, || {
            if dest.is_null() {
                return 0;
            }
            with_program(S, |c, info| {
                let Some(var) = Core::debug_var(info, arr, elem) else { return 0 };
                let Some(bytes) = c.core.debug_read(var, Core::debug_timeout(info)) else { return 0 };
                let n = bytes.len().min(u16::MAX as usize);
                // SAFETY: the ABI makes the caller provide `debug_size(arr, elem)` bytes at
                // `dest`, which is the variable's size, `bytes.len()`.
                unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), dest, n) };
                n as u16
            })
            .unwrap_or(0)
        })
    }

    unsafe extern "C" fn debug_set(arr: u8, elem: u16, forcing: bool, bytes: *const u8, len: u16) -> u8 {
        guard(DEBUG_STATUS_OUT_OF_BOUNDS, || {
            with_program(S, |c, info| {
                let Some(var) = Core::debug_var(info, arr, elem) else { return DEBUG_STATUS_OUT_OF_BOUNDS };
                let result = if forcing {
                    if bytes.is_null() {
                        return DEBUG_STATUS_OUT_OF_BOUNDS;
                    }
                    // SAFETY: the caller passes `len` readable bytes at `bytes`.
                    let value = unsafe { std::slice::from_raw_parts(bytes, len as usize) };
                    c.core.debug_force(var, Some(value))
                } else {
                    c.core.debug_force(var, None)
                };
                debug_status(result)
            })
            .unwrap_or(DEBUG_STATUS_OUT_OF_BOUNDS)
        })
    }

    unsafe extern "C" fn debug_write(arr: u8, elem: u16, bytes: *const u8, len: u16) -> u8 {
        guard(DEBUG_STATUS_OUT_OF_BOUNDS, || {
            with_program(S, |c, info| {
                let Some(var) = Core::debug_var(info, arr, elem) else { return DEBUG_STATUS_OUT_OF_BOUNDS };
                if bytes.is_null() {
                    return DEBUG_STATUS_OUT_OF_BOUNDS;
                }
                // SAFETY: the caller passes `len` readable bytes at `bytes`.
                let value = unsafe { std::slice::from_raw_parts(bytes, len as usize) };
                let result = c.core.debug_write(var, value);
                if result == Err(DebugRefusal::Unsupported) && !c.debug_write_warned.swap(true, Ordering::Relaxed) {
                    c.log(
                        LogLevel::Warning,
                        "debug_write is not supported by this runtime; use debug_set or the journal",
                    );
                }
                debug_status(result)
            })
            .unwrap_or(DEBUG_STATUS_OUT_OF_BOUNDS)
        })
    }

    unsafe extern "C" fn journal_write_bool(kind: c_int, index: c_int, bit: c_int, value: c_int) -> c_int {
        guard(-1, || journal(S, kind, index, bit, (value != 0) as u64, Width::Bit))
    }

    unsafe extern "C" fn journal_write_byte(kind: c_int, index: c_int, value: c_int) -> c_int {
        guard(-1, || journal(S, kind, index, 0, value as u8 as u64, Width::Byte))
    }

    unsafe extern "C" fn journal_write_int(kind: c_int, index: c_int, value: c_int) -> c_int {
        guard(-1, || journal(S, kind, index, 0, value as u16 as u64, Width::Word))
    }

    unsafe extern "C" fn journal_write_dint(kind: c_int, index: c_int, value: c_uint) -> c_int {
        guard(-1, || journal(S, kind, index, 0, value as u64, Width::DWord))
    }

    unsafe extern "C" fn journal_write_lint(kind: c_int, index: c_int, value: c_ulonglong) -> c_int {
        guard(-1, || journal(S, kind, index, 0, value, Width::LWord))
    }

    unsafe extern "C" fn request_plc_stop(reason: *const c_char) {
        guard((), || {
            if let Some(c) = get(S) {
                let reason = reason_text(reason);
                c.log(LogLevel::Warning, &format!("requests a PLC stop: {reason}"));
                c.core.request(shared_abi::msg::Command::Stop);
            }
        })
    }

    unsafe extern "C" fn request_plc_start(reason: *const c_char) {
        guard((), || {
            if let Some(c) = get(S) {
                let reason = reason_text(reason);
                if !c.core.switch.allows_run() {
                    c.log(LogLevel::Warning, &format!("PLC start refused, the run/stop switch is at STOP: {reason}"));
                    return;
                }
                c.log(LogLevel::Info, &format!("requests a PLC start: {reason}"));
                c.core.request(shared_abi::msg::Command::Start);
            }
        })
    }

    unsafe extern "C" fn set_switch_position(position: c_int) {
        guard((), || {
            if let Some(c) = get(S) {
                c.core.switch.set(crate::switch::SwitchPosition::from_abi(position), &format!("plugin {}", c.name));
            }
        })
    }

    unsafe extern "C" fn get_plc_state() -> c_int {
        guard(PLUGIN_PLC_STOPPED, || get(S).map_or(PLUGIN_PLC_STOPPED, |c| plc_state_code(c.core.plc_state())))
    }
}

pub(crate) fn plc_state_code(state: shared_abi::layout::PlcState) -> c_int {
    use shared_abi::layout::PlcState;
    match state {
        PlcState::Running => PLUGIN_PLC_RUNNING,
        PlcState::Error => PLUGIN_PLC_ERROR,
        PlcState::Stopped | PlcState::Empty => PLUGIN_PLC_STOPPED,
    }
}

fn reason_text(reason: *const c_char) -> String {
    if reason.is_null() {
        return "(no reason given)".into();
    }
    // SAFETY: the ABI passes a NUL-terminated string valid for the call.
    unsafe { CStr::from_ptr(reason) }.to_string_lossy().chars().take(500).collect()
}

fn debug_status(result: Result<(), DebugRefusal>) -> u8 {
    match result {
        Ok(()) => DEBUG_STATUS_OK,
        Err(DebugRefusal::QueueFull) => DEBUG_STATUS_OUT_OF_MEMORY,
        Err(DebugRefusal::Refused | DebugRefusal::Unsupported) => DEBUG_STATUS_OUT_OF_BOUNDS,
    }
}

fn with_program<R>(slot: usize, f: impl FnOnce(&PluginCtx, &ProgramInfo) -> R) -> Option<R> {
    let ctx = get(slot)?;
    let info = ctx.core.plc.program_info()?;
    Some(f(&ctx, &info))
}

/// `journal_write_*`: checks the type code against the function's width and the index and
/// bit against the image, then queues. 0 when queued, -1 otherwise.
fn journal(slot: usize, kind: c_int, index: c_int, bit: c_int, value: u64, width: Width) -> c_int {
    let Some(ctx) = get(slot) else { return -1 };
    // Inside the program's table, as upstream bounds a journal write by the table's length.
    match journal_address(kind, index, bit, width).filter(|&a| ctx.core.known_sizes().contains(a)) {
        Some(addr) => {
            ctx.core.journal_write(addr, value);
            0
        }
        None => -1,
    }
}

/// The address a `journal_write_*` call names; `None` for a bad type code, a type of
/// another width than the function's, or an index or bit out of range.
pub(crate) fn journal_address(kind: c_int, index: c_int, bit: c_int, function_width: Width) -> Option<IecAddress> {
    let (area, width) = JournalType::from_code(kind)?.location();
    if width != function_width {
        return None;
    }
    let index = u16::try_from(index).ok()?;
    let bit = if width == Width::Bit { u8::try_from(bit).ok()? } else { 0 };
    IecAddress::new(area, width, index, bit).ok()
}

/// Points the functions of `a` at slot `slot`'s own copies.
fn fill_functions(slot: usize, a: &mut PluginRuntimeArgs) {
    let f = FUNCTIONS[slot];
    a.image_lock = Some(f.image_lock);
    a.image_unlock = Some(f.image_unlock);
    a.debug_array_count = Some(f.debug_array_count);
    a.debug_elem_count = Some(f.debug_elem_count);
    a.debug_size = Some(f.debug_size);
    a.debug_read = Some(f.debug_read);
    a.debug_set = Some(f.debug_set);
    a.debug_write = Some(f.debug_write);
    a.journal_write_bool = Some(f.journal_write_bool);
    a.journal_write_byte = Some(f.journal_write_byte);
    a.journal_write_int = Some(f.journal_write_int);
    a.journal_write_dint = Some(f.journal_write_dint);
    a.journal_write_lint = Some(f.journal_write_lint);
    a.request_plc_stop = Some(f.request_plc_stop);
    a.request_plc_start = Some(f.request_plc_start);
    a.set_switch_position = Some(f.set_switch_position);
    a.get_plc_state = Some(f.get_plc_state);
    a.log_debug = log_fn(slot, 0);
    a.log_info = log_fn(slot, 1);
    a.log_warn = log_fn(slot, 2);
    a.log_error = log_fn(slot, 3);
}

macro_rules! functions_table {
    ($($s:literal)*) => {
        const FUNCTIONS: [Functions; SLOTS] = [$(Thunk::<$s>::FUNCTIONS),*];
    };
}

functions_table!(
    0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31
    32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60 61 62 63
);

#[cfg(test)]
mod tests {
    use super::*;
    use shared_abi::plugin::JournalType as J;

    #[test]
    fn journal_arguments_are_checked() {
        let at = |kind: J, index, bit, w| journal_address(kind as c_int, index, bit, w).map(|a| a.to_string());
        assert_eq!(at(J::IntInput, 3, 0, Width::Word), Some("%IW3".into()));
        assert_eq!(at(J::BoolMemory, 2, 7, Width::Bit), Some("%MX2.7".into()));
        assert_eq!(at(J::LintOutput, 1023, 0, Width::LWord), Some("%QL1023".into()));
        assert_eq!(at(J::ByteOutput, 4, 0, Width::Byte), Some("%QB4".into()));
        assert_eq!(at(J::DintMemory, 5, 0, Width::DWord), Some("%MD5".into()));
        assert_eq!(at(J::IntInput, 65_535, 0, Width::Word), Some("%IW65535".into()), "inside a table's room");
        assert_eq!(at(J::IntInput, 65_536, 0, Width::Word), None, "index out of range");
        assert_eq!(at(J::IntInput, -1, 0, Width::Word), None);
        assert_eq!(at(J::BoolInput, 0, 8, Width::Bit), None, "bit out of range");
        assert_eq!(at(J::BoolInput, 0, 0, Width::Word), None, "a bool type through the int call");
        assert_eq!(at(J::DintInput, 0, 0, Width::Word), None, "a dint type through the int call");
        assert_eq!(journal_address(14, 0, 0, Width::Word), None);
    }

    #[test]
    fn every_slot_has_distinct_functions_and_log_entry_points() {
        let mut seen = std::collections::HashSet::new();
        for (slot, f) in FUNCTIONS.iter().enumerate() {
            assert!(seen.insert(f.journal_write_int as usize), "slot {slot} shares a thunk");
            for level in 0..4 {
                assert!(log_fn(slot, level).is_some());
            }
        }
        assert!(log_fn(SLOTS, 0).is_none());
        assert!(log_fn(0, 4).is_none());
    }
}
