//! A native plugin as the device's RETAIN store: upstream's optional exports
//!
//! ```c
//! int retain_save(const uint8_t *blob, uint16_t len);
//! int retain_load(const char *program_md5, uint16_t md5_len,
//!                 uint8_t *out, uint16_t cap, uint16_t *out_len);
//! int retain_flush(void);                /* optional */
//! ```
//!
//! The first enabled native plugin of `plugins.conf` exporting both `retain_save` and
//! `retain_load` is the store (later ones are ignored, as upstream: two stores would
//! disagree on the next boot). `retain_load` receives the identity (the program's MD5, 32
//! characters, not NUL-terminated) and decides whether what it holds belongs to it; it must
//! not persist that identity, which travels with the next `retain_save`. All three return 0
//! on success.
//!
//! The library is opened on its own (`dlopen` hands back the same mapping the plugin host
//! uses, so both see the same statics), because values are read before the first scan and
//! written after the last: the hooks may be called while the plugin is not initialised
//! (before the PLC first starts, and between a stop and the next start). A store plugin
//! must work without `init` having run.

use crate::conf::{self, PluginKind, PluginsConf};
use std::ffi::{CStr, c_char, c_int};
use std::path::Path;
use std::sync::Arc;

type SaveFn = unsafe extern "C" fn(blob: *const u8, len: u16) -> c_int;
type LoadFn =
    unsafe extern "C" fn(md5: *const c_char, md5_len: u16, out: *mut u8, cap: u16, out_len: *mut u16) -> c_int;
type FlushFn = unsafe extern "C" fn() -> c_int;

/// The buffer `retain_load` gets: as large as its `uint16_t` lengths allow, so a blob an
/// older program left (larger than this one's) is still handed back whole, as upstream.
const MAX_CAP: u16 = u16::MAX;

/// Why a hook did not do its job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetainHookError {
    /// The hook returned this non-zero code.
    Failed { hook: &'static str, code: i32 },
    /// The blob is larger than a hook can carry (`uint16_t` length).
    TooLarge { len: usize },
}

impl std::fmt::Display for RetainHookError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RetainHookError::Failed { hook, code } => write!(f, "{hook}() returned {code}"),
            RetainHookError::TooLarge { len } => write!(f, "{len} bytes do not fit a retain hook (65535 at most)"),
        }
    }
}

impl std::error::Error for RetainHookError {}

/// The store plugin's three hooks.
pub struct RetainPlugin {
    name: String,
    save: SaveFn,
    load: LoadFn,
    flush: Option<FlushFn>,
    /// Keeps the hooks mapped.
    _lib: Arc<libloading::os::unix::Library>,
}

impl RetainPlugin {
    /// The store plugin of `plugins.conf`, if an enabled native plugin offers both hooks.
    /// A plugin that cannot be opened is skipped (the host reports it when it starts).
    pub fn find(conf_path: &Path) -> Option<RetainPlugin> {
        let conf = PluginsConf::load(conf_path).ok()?;
        let data_dir = conf_path.parent().unwrap_or(Path::new("/"));
        conf.entries()
            .filter(|e| e.enabled && e.kind == PluginKind::Native)
            .find_map(|e| RetainPlugin::open(&e.name, &conf::resolve(data_dir, &e.path)))
    }

    /// Opens `path` and resolves the hooks; `None` unless it exports both `retain_save` and
    /// `retain_load`.
    pub fn open(name: &str, path: &Path) -> Option<RetainPlugin> {
        // SAFETY: opening a library listed in plugins.conf runs its constructors, the trust
        // the operator gave it by listing it (the host opens it the same way).
        let lib = unsafe { libloading::os::unix::Library::open(Some(path), libc::RTLD_NOW | libc::RTLD_LOCAL) }.ok()?;
        // SAFETY: these names have these types in upstream's plugin ABI; a library exporting
        // one of them with another type breaks that ABI.
        let (save, load, flush) = unsafe {
            (
                sym::<SaveFn>(&lib, c"retain_save")?,
                sym::<LoadFn>(&lib, c"retain_load")?,
                sym::<FlushFn>(&lib, c"retain_flush"),
            )
        };
        Some(RetainPlugin { name: name.to_string(), save, load, flush, _lib: Arc::new(lib) })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the store holds for the program `md5` (empty: nothing for it).
    pub fn load(&self, md5: &[u8]) -> Result<Vec<u8>, RetainHookError> {
        let md5_len = u16::try_from(md5.len()).map_err(|_| RetainHookError::TooLarge { len: md5.len() })?;
        let mut out = vec![0u8; MAX_CAP as usize];
        let mut len: u16 = 0;
        // SAFETY: `md5` is readable for `md5_len` bytes, `out` writable for `MAX_CAP`, `len`
        // a valid u16; the library is mapped (`_lib`).
        let rc = unsafe { (self.load)(md5.as_ptr().cast(), md5_len, out.as_mut_ptr(), MAX_CAP, &mut len) };
        if rc != 0 {
            return Err(RetainHookError::Failed { hook: "retain_load", code: rc });
        }
        // The buffer is as large as a `uint16_t` length can say: `len` always fits it.
        out.truncate(len as usize);
        Ok(out)
    }

    /// Hands `blob` to the store, then asks it to commit (`retain_flush`, when exported).
    pub fn save(&self, blob: &[u8]) -> Result<(), RetainHookError> {
        let len = u16::try_from(blob.len()).map_err(|_| RetainHookError::TooLarge { len: blob.len() })?;
        // SAFETY: `blob` is readable for `len` bytes during the call; the library is mapped.
        let rc = unsafe { (self.save)(blob.as_ptr(), len) };
        if rc != 0 {
            return Err(RetainHookError::Failed { hook: "retain_save", code: rc });
        }
        if let Some(flush) = self.flush {
            // SAFETY: a plain call; the library is mapped.
            let rc = unsafe { flush() };
            if rc != 0 {
                return Err(RetainHookError::Failed { hook: "retain_flush", code: rc });
            }
        }
        Ok(())
    }
}

/// Looks up `name`, or `None` when the library does not export it.
///
/// # Safety
/// `T` must be the function pointer type the symbol actually has.
unsafe fn sym<T: Copy>(lib: &libloading::os::unix::Library, name: &CStr) -> Option<T> {
    // SAFETY: forwarded to the caller.
    unsafe { lib.get::<T>(name) }.ok().map(|s| *s)
}
