//! Native plugins: shared libraries with upstream's entry points, opened with
//! `dlopen(RTLD_NOW | RTLD_LOCAL)` so every symbol is resolved up front (a missing
//! dependency fails the load, not a later call) and nothing leaks into other plugins.

use crate::host::CommandError;
use std::ffi::{CStr, c_char, c_int, c_void};
use std::path::Path;
use std::sync::Arc;

type InitFn = unsafe extern "C" fn(args: *mut c_void) -> c_int;
type IntFn = unsafe extern "C" fn() -> c_int;
type VoidFn = unsafe extern "C" fn();
type CommandFn = unsafe extern "C" fn(json: *const c_char, resp: *mut c_char, resp_size: usize) -> c_int;
type StatsFn = unsafe extern "C" fn(out: *mut c_char, n: usize) -> c_int;
/// `int set_image_sizes(const uint32_t *sizes, uint32_t count)` (upstream's optional export).
type SizesFn = unsafe extern "C" fn(sizes: *const u32, count: u32) -> c_int;

/// Bytes offered to `execute_command` for its answer and to `get_stats`.
const REPLY_BYTES: usize = 64 * 1024;

/// A loaded library and its entry points. The function pointers are valid while `lib` is
/// alive; everything that copies one also keeps a clone of `lib`.
pub(crate) struct NativeLib {
    pub lib: Arc<libloading::os::unix::Library>,
    pub init: InitFn,
    pub start_loop: Option<IntFn>,
    pub stop_loop: Option<VoidFn>,
    pub cycle_start: Option<VoidFn>,
    pub cycle_end: Option<VoidFn>,
    pub cleanup: Option<VoidFn>,
    pub execute_command: Option<CommandFn>,
    pub get_stats: Option<StatsFn>,
    pub set_image_sizes: Option<SizesFn>,
}

impl NativeLib {
    /// Opens `path` and resolves the entry points. Errors say what is wrong in words.
    pub fn open(path: &Path) -> Result<NativeLib, String> {
        if !path.exists() {
            return Err(format!("{} does not exist", path.display()));
        }
        // SAFETY: loading a plugin runs its constructors; that is the trust the operator
        // gave it by listing it in plugins.conf (upstream runs them the same way).
        let lib = unsafe { libloading::os::unix::Library::open(Some(path), libc::RTLD_NOW | libc::RTLD_LOCAL) }
            .map_err(|e| format!("cannot load {}: {e}", path.display()))?;
        // SAFETY: every type below is the one the plugin ABI declares for that name; a
        // library exporting one of these names with another type breaks the ABI.
        unsafe {
            let init =
                sym::<InitFn>(&lib, c"init").ok_or_else(|| format!("{} does not export init()", path.display()))?;
            Ok(NativeLib {
                init,
                start_loop: sym(&lib, c"start_loop"),
                stop_loop: sym(&lib, c"stop_loop"),
                cycle_start: sym(&lib, c"cycle_start"),
                cycle_end: sym(&lib, c"cycle_end"),
                cleanup: sym(&lib, c"cleanup"),
                execute_command: sym(&lib, c"execute_command"),
                get_stats: sym(&lib, c"get_stats"),
                set_image_sizes: sym(&lib, c"set_image_sizes"),
                lib: Arc::new(lib),
            })
        }
    }

    /// Tells the plugin each table's length (upstream's order, in elements), before `init`.
    /// `None` when it does not export `set_image_sizes`; `Some(rc)` with its answer.
    pub fn set_image_sizes(&self, sizes: &[u32; shared_abi::sizes::TABLE_COUNT]) -> Option<c_int> {
        let f = self.set_image_sizes?;
        // SAFETY: resolved by name with the ABI's signature; `sizes` holds `TABLE_COUNT`
        // readable `u32`s for the call; the library is alive (`self.lib`).
        Some(unsafe { f(sizes.as_ptr(), sizes.len() as u32) })
    }

    /// Calls `execute_command`; `Ok` with the reply when it returns 0.
    pub fn execute_command(&self, json: &str) -> Result<String, CommandError> {
        let f = self.execute_command.ok_or(CommandError::Unsupported)?;
        let json = std::ffi::CString::new(json)
            .map_err(|_| CommandError::InvalidCommand("the command contains a NUL byte".into()))?;
        let mut reply = vec![0 as c_char; REPLY_BYTES];
        // SAFETY: `json` is NUL-terminated; `reply` has `REPLY_BYTES` writable bytes, the
        // size passed; the library is alive (`self.lib`).
        let rc = unsafe { f(json.as_ptr(), reply.as_mut_ptr(), reply.len()) };
        let text = reply_text(&mut reply);
        if rc == 0 { Ok(text) } else { Err(CommandError::Failed { code: rc, reply: text }) }
    }

    /// Calls `get_stats`: `Some(text)` when it returns 0.
    pub fn get_stats(&self) -> Option<String> {
        let f = self.get_stats?;
        let mut out = vec![0 as c_char; REPLY_BYTES];
        // SAFETY: `out` has `REPLY_BYTES` writable bytes, the size passed; the library is
        // alive (`self.lib`).
        let rc = unsafe { f(out.as_mut_ptr(), out.len()) };
        (rc == 0).then(|| reply_text(&mut out))
    }
}

/// The text a plugin left in `buf`, even if it forgot the terminating NUL.
fn reply_text(buf: &mut [c_char]) -> String {
    if let Some(last) = buf.last_mut() {
        *last = 0;
    }
    // SAFETY: the buffer is NUL-terminated (its last byte was just set to 0) and lives for
    // this call.
    unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy().into_owned()
}

/// Looks up `name`, or `None` when the library does not export it.
///
/// # Safety
/// `T` must be the function pointer type the symbol actually has.
unsafe fn sym<T: Copy>(lib: &libloading::os::unix::Library, name: &CStr) -> Option<T> {
    // SAFETY: forwarded to the caller.
    unsafe { lib.get::<T>(name) }.ok().map(|s| *s)
}
