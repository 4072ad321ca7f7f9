//! Python plugins in one embedded CPython (pyo3), shared by every Python plugin of the
//! process, as upstream does.
//!
//! Per plugin: its directory goes to the front of `sys.path`, its venv's
//! `lib/pythonX.Y/site-packages` after it, and its file is executed as a fresh module named
//! after the file stem (or a unique name when another loaded plugin already uses that stem).
//! `init(capsule)` is required; `start_loop`, `stop_loop` and `cleanup` are optional. Every
//! call holds the GIL only for its own duration; everything the helper module does in Rust
//! runs with the GIL released.
//!
//! The helper module `openplc` (src/python/openplc.py) wraps the native `_openplc_host`
//! defined here. It also installs a `threading.excepthook` that reports an exception in a
//! plugin's own thread, with its traceback, and marks that plugin degraded.

use crate::slots::{self, ArgsCell, PluginCtx};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyCapsule, PyList, PyTuple};
use shared_abi::image::{IecAddress, Width};
use shared_abi::msg::LogLevel;
use shared_abi::plugin::ARGS_CAPSULE_NAME;
use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

const HELPER_SOURCE: &str = include_str!("python/openplc.py");

/// A handle the helper module keeps per `Runtime`: `(slot, generation)`.
type Handle = (usize, u64);

/// One imported Python plugin.
pub(crate) struct PyPlugin {
    module_name: String,
    init: Py<PyAny>,
    start_loop: Option<Py<PyAny>>,
    stop_loop: Option<Py<PyAny>>,
    cleanup: Option<Py<PyAny>>,
}

/// Starts the interpreter once and installs the helper modules.
pub(crate) fn ensure_interpreter() -> Result<(), String> {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    READY
        .get_or_init(|| {
            Python::initialize();
            Python::attach(|py| install_helpers(py).map_err(|e| format_error(py, e)))
        })
        .clone()
}

fn install_helpers(py: Python<'_>) -> PyResult<()> {
    let core = pyo3::types::PyModule::new(py, "_openplc_host")?;
    core.add_function(wrap_pyfunction!(attach, &core)?)?;
    core.add_function(wrap_pyfunction!(read, &core)?)?;
    core.add_function(wrap_pyfunction!(write, &core)?)?;
    core.add_function(wrap_pyfunction!(log, &core)?)?;
    core.add_function(wrap_pyfunction!(info, &core)?)?;
    core.add_function(wrap_pyfunction!(scan, &core)?)?;
    core.add_function(wrap_pyfunction!(wait_scan, &core)?)?;
    core.add_function(wrap_pyfunction!(request, &core)?)?;
    core.add_function(wrap_pyfunction!(set_switch, &core)?)?;
    core.add_function(wrap_pyfunction!(thread_exception, &core)?)?;
    py.import("sys")?.getattr("modules")?.set_item("_openplc_host", &core)?;
    let source = CString::new(HELPER_SOURCE).map_err(|_| PyRuntimeError::new_err("helper source has a NUL"))?;
    pyo3::types::PyModule::from_code(py, &source, c"openplc.py", c"openplc")?;
    Ok(())
}

/// The full traceback of `err`, as Python prints it.
pub(crate) fn format_error(py: Python<'_>, err: PyErr) -> String {
    let value = err.clone_ref(py).into_value(py);
    let formatted = py
        .import("traceback")
        .and_then(|tb| tb.call_method1("format_exception", (value,)))
        .and_then(|lines| lines.extract::<Vec<String>>());
    match formatted {
        Ok(lines) => lines.concat().trim_end().to_string(),
        Err(_) => err.to_string(),
    }
}

impl PyPlugin {
    /// Imports the plugin's file. Errors carry the traceback.
    pub fn load(ctx: &PluginCtx, path: &Path, venv: Option<&Path>) -> Result<PyPlugin, String> {
        ensure_interpreter()?;
        if path.extension().and_then(|e| e.to_str()) != Some("py") || !path.is_file() {
            return Err(format!("{} is not a Python file", path.display()));
        }
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
        let stem = path.file_stem().and_then(|s| s.to_str()).ok_or("the file name is not UTF-8")?.to_string();
        Python::attach(|py| {
            let result = (|| -> PyResult<PyPlugin> {
                let sys = py.import("sys")?;
                let sys_path = sys.getattr("path")?;
                let dir_text = dir.to_string_lossy().into_owned();
                if !sys_path.contains(&dir_text)? {
                    sys_path.call_method1("insert", (0, &dir_text))?;
                }
                if let Some(venv) = venv {
                    add_venv(py, venv)?;
                }
                let modules = sys.getattr("modules")?;
                let module_name = if modules.contains(&stem)? {
                    format!("{stem}__{}_{}", sanitize(&ctx.name), ctx.slot)
                } else {
                    stem.clone()
                };
                let _ = ctx.module.set(module_name.clone());
                let util = py.import("importlib.util")?;
                let spec =
                    util.call_method1("spec_from_file_location", (&module_name, path.to_string_lossy().as_ref()))?;
                if spec.is_none() {
                    return Err(PyRuntimeError::new_err("cannot make an import spec for this file"));
                }
                let module = util.call_method1("module_from_spec", (&spec,))?;
                modules.set_item(&module_name, &module)?;
                if let Err(e) = spec.getattr("loader")?.call_method1("exec_module", (&module,)) {
                    let _ = modules.del_item(&module_name);
                    return Err(e);
                }
                let func = |name: &str| -> PyResult<Option<Py<PyAny>>> {
                    match module.getattr(name) {
                        Ok(f) if f.is_callable() => Ok(Some(f.unbind())),
                        _ => Ok(None),
                    }
                };
                let Some(init) = func("init")? else {
                    let _ = modules.del_item(&module_name);
                    return Err(PyRuntimeError::new_err("the module has no init(capsule) function"));
                };
                Ok(PyPlugin {
                    module_name,
                    init,
                    start_loop: func("start_loop")?,
                    stop_loop: func("stop_loop")?,
                    cleanup: func("cleanup")?,
                })
            })();
            result.map_err(|e| format_error(py, e))
        })
    }

    /// `init(capsule)`, with a capsule over this plugin's args struct.
    pub fn init(&self, args: &Arc<ArgsCell>) -> Result<(), String> {
        Python::attach(|py| {
            let capsule = new_capsule(py, args).map_err(|e| format_error(py, e))?;
            self.init.call1(py, (capsule,)).map(drop).map_err(|e| format_error(py, e))
        })
    }

    /// Calls an optional hook; `Ok(None)` when the plugin does not define it, otherwise
    /// whether the hook returned something true (upstream logs a false `stop_loop`).
    pub fn call(&self, hook: Hook) -> Result<Option<bool>, String> {
        let f = match hook {
            Hook::StartLoop => &self.start_loop,
            Hook::StopLoop => &self.stop_loop,
            Hook::Cleanup => &self.cleanup,
        };
        let Some(f) = f else { return Ok(None) };
        Python::attach(|py| {
            let result = f.call0(py).map_err(|e| format_error(py, e))?;
            let bound = result.bind(py);
            Ok(Some(bound.is_none() || bound.is_truthy().unwrap_or(false)))
        })
    }

    /// Forgets the module, so the next start imports the file afresh.
    pub fn unload(self) {
        Python::attach(|py| {
            if let Ok(modules) = py.import("sys").and_then(|s| s.getattr("modules")) {
                let _ = modules.del_item(&self.module_name);
            }
            drop(self);
        })
    }
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum Hook {
    StartLoop,
    StopLoop,
    Cleanup,
}

fn sanitize(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect()
}

/// Adds `<venv>/lib/pythonX.Y/site-packages` (X.Y of this interpreter) right after the
/// plugin's directory, honouring its `.pth` files.
fn add_venv(py: Python<'_>, venv: &Path) -> PyResult<()> {
    let version = py.version_info();
    let site_packages =
        venv.join("lib").join(format!("python{}.{}", version.major, version.minor)).join("site-packages");
    let text = site_packages.to_string_lossy().into_owned();
    let sys_path = py.import("sys")?.getattr("path")?;
    if sys_path.contains(&text)? {
        return Ok(());
    }
    py.import("site")?.call_method1("addsitedir", (&text,))?;
    // addsitedir appends; move the venv ahead of the system's packages.
    sys_path.call_method1("remove", (&text,))?;
    sys_path.call_method1("insert", (1, &text))?;
    Ok(())
}

/// A `PyCapsule` named `openplc_runtime_args` over `args`. The capsule owns one reference
/// to the args struct, so the struct outlives every Python object that can reach it.
fn new_capsule<'py>(py: Python<'py>, args: &Arc<ArgsCell>) -> PyResult<Bound<'py, PyCapsule>> {
    let raw = Arc::into_raw(args.clone());
    let Some(ptr) = std::ptr::NonNull::new(raw as *mut std::ffi::c_void) else {
        return Err(PyRuntimeError::new_err("null args"));
    };
    // SAFETY: `ptr` points at the `PluginRuntimeArgs` at offset 0 of a live `ArgsCell`; the
    // reference taken by `into_raw` keeps it alive until `release_args` gives it back.
    let capsule = unsafe { PyCapsule::new_with_pointer_and_destructor(py, ptr, ARGS_CAPSULE_NAME, Some(release_args)) };
    if capsule.is_err() {
        // SAFETY: the capsule was not made, so the reference from `into_raw` is still ours.
        drop(unsafe { Arc::from_raw(raw) });
    }
    capsule
}

/// The capsule's destructor: gives back the reference `new_capsule` took.
unsafe extern "C" fn release_args(capsule: *mut pyo3::ffi::PyObject) {
    // SAFETY: called by CPython with our capsule, whose name is `ARGS_CAPSULE_NAME`.
    let ptr = unsafe { pyo3::ffi::PyCapsule_GetPointer(capsule, ARGS_CAPSULE_NAME.as_ptr()) };
    if !ptr.is_null() {
        // SAFETY: the pointer came from `Arc::into_raw` in `new_capsule`, once per capsule.
        drop(unsafe { Arc::from_raw(ptr as *const ArgsCell) });
    }
}

// ---- the native half of the helper module (`_openplc_host`) ----

fn ctx_of(h: Handle) -> PyResult<Arc<PluginCtx>> {
    slots::get(h.0)
        .filter(|c| c.generation == h.1)
        .ok_or_else(|| PyRuntimeError::new_err("this plugin has been unloaded; its Runtime object is no longer usable"))
}

fn parse(addr: &str) -> PyResult<IecAddress> {
    IecAddress::parse(addr).map_err(|e| PyValueError::new_err(format!("{addr:?}: {e}")))
}

/// `attach(capsule) -> handle`: finds the plugin whose args struct the capsule holds.
#[pyfunction]
fn attach(capsule: &Bound<'_, PyAny>) -> PyResult<Handle> {
    let capsule =
        capsule.cast::<PyCapsule>().map_err(|_| PyValueError::new_err("expected the capsule passed to init()"))?;
    let ptr = capsule.pointer_checked(Some(ARGS_CAPSULE_NAME))?;
    let ctx = slots::find_by_args(ptr.as_ptr() as *const _)
        .ok_or_else(|| PyRuntimeError::new_err("this capsule belongs to no loaded plugin"))?;
    Ok((ctx.slot, ctx.generation))
}

/// `read(handle, [addresses]) -> [values]`: from the latest scan (outputs, memory) and the
/// published inputs; bits come back as `bool`.
#[pyfunction]
fn read(py: Python<'_>, h: Handle, addresses: Vec<String>) -> PyResult<Py<PyList>> {
    let ctx = ctx_of(h)?;
    let addrs = addresses.iter().map(|a| parse(a)).collect::<PyResult<Vec<_>>>()?;
    let values = py.detach(|| ctx.core.read_view(&addrs));
    let items: Vec<Py<PyAny>> = addrs
        .iter()
        .zip(values)
        .map(|(a, v)| -> PyResult<Py<PyAny>> {
            Ok(if a.width() == Width::Bit {
                (v != 0).into_pyobject(py)?.to_owned().into_any().unbind()
            } else {
                v.into_pyobject(py)?.into_any().unbind()
            })
        })
        .collect::<PyResult<_>>()?;
    Ok(PyList::new(py, items)?.unbind())
}

/// `write(handle, [(address, value)])`: queued through the journal. Negative values are
/// stored in two's complement when they fit the width as signed numbers.
#[pyfunction]
fn write(py: Python<'_>, h: Handle, items: Vec<(String, Bound<'_, PyAny>)>) -> PyResult<()> {
    let ctx = ctx_of(h)?;
    let mut writes = Vec::with_capacity(items.len());
    for (text, value) in &items {
        let addr = parse(text)?;
        let v: i128 = value
            .extract()
            .map_err(|_| PyValueError::new_err(format!("{text}: the value must be an int or a bool")))?;
        writes
            .push((addr, to_cell(addr, v).ok_or_else(|| PyValueError::new_err(format!("{text}: {v} does not fit")))?));
    }
    py.detach(|| {
        for (addr, v) in writes {
            ctx.core.journal_write(addr, v);
        }
    });
    Ok(())
}

/// The cell bits of `v` at `addr`'s width, accepting the unsigned and signed ranges.
fn to_cell(addr: IecAddress, v: i128) -> Option<u64> {
    let bits = match addr.width() {
        Width::Bit => return (v == 0 || v == 1).then_some(v as u64),
        Width::Byte => 8,
        Width::Word => 16,
        Width::DWord => 32,
        Width::LWord => 64,
    };
    let max = (1i128 << bits) - 1;
    let min = -(1i128 << (bits - 1));
    (min..=max).contains(&v).then_some((v as u128 & max as u128) as u64)
}

/// `log(handle, level, text)`: level 0 debug … 3 error. The text is data, never a format.
#[pyfunction]
fn log(py: Python<'_>, h: Handle, level: u8, text: String) -> PyResult<()> {
    let ctx = ctx_of(h)?;
    let level = match level {
        0 => LogLevel::Debug,
        1 => LogLevel::Info,
        2 => LogLevel::Warning,
        _ => LogLevel::Error,
    };
    py.detach(|| ctx.log(level, &text));
    Ok(())
}

/// `info(handle) -> (name, config_path, plc_state, base_tick_ns)`.
#[pyfunction]
fn info(py: Python<'_>, h: Handle) -> PyResult<(String, String, String, u64)> {
    let ctx = ctx_of(h)?;
    let (state, period) = py
        .detach(|| (ctx.core.plc_state().as_str().to_string(), ctx.core.plc.program_info().map_or(0, |p| p.period_ns)));
    Ok((ctx.name.clone(), ctx.config_path.clone(), state, period))
}

/// `scan(handle) -> (cycle, tick)` of the latest scan the host has seen.
#[pyfunction]
fn scan(py: Python<'_>, h: Handle) -> PyResult<(u64, u64)> {
    let ctx = ctx_of(h)?;
    Ok(py.detach(|| ctx.core.view_scan()))
}

/// `wait_scan(handle, after_tick, timeout_s) -> tick | None`.
#[pyfunction]
fn wait_scan(py: Python<'_>, h: Handle, after_tick: u64, timeout: f64) -> PyResult<Option<u64>> {
    let ctx = ctx_of(h)?;
    let timeout = Duration::try_from_secs_f64(timeout.max(0.0)).unwrap_or(Duration::from_secs(3600));
    Ok(py.detach(|| ctx.core.wait_view_tick_after(after_tick, timeout)))
}

/// `request(handle, "start" | "stop", reason)`: through the same checks as the C ABI.
#[pyfunction]
fn request(py: Python<'_>, h: Handle, what: &str, reason: String) -> PyResult<()> {
    let ctx = ctx_of(h)?;
    let reason = CString::new(reason.replace('\0', " ")).map_err(|_| PyValueError::new_err("bad reason"))?;
    // SAFETY: the args struct is alive (held by `ctx`), its functions were set by `claim`,
    // and `reason` is NUL-terminated for the duration of the call.
    let args = unsafe { &*ctx.args.get() };
    let f = match what {
        "start" => args.request_plc_start,
        "stop" => args.request_plc_stop,
        _ => return Err(PyValueError::new_err("expected 'start' or 'stop'")),
    };
    if let Some(f) = f {
        let reason_ptr = reason.as_ptr() as usize;
        // SAFETY: as above; the pointer is only used inside this call, while `reason` lives.
        py.detach(move || unsafe { f(reason_ptr as *const std::ffi::c_char) });
    }
    Ok(())
}

/// `set_switch(handle, run)`: the run/stop switch position, through the C ABI's
/// `set_switch_position` like a native plugin's report.
#[pyfunction]
fn set_switch(py: Python<'_>, h: Handle, run: bool) -> PyResult<()> {
    let ctx = ctx_of(h)?;
    // SAFETY: the args struct is alive (held by `ctx`) and its functions were set by `claim`.
    let args = unsafe { &*ctx.args.get() };
    if let Some(f) = args.set_switch_position {
        let position = if run { shared_abi::plugin::PLUGIN_SWITCH_RUN } else { shared_abi::plugin::PLUGIN_SWITCH_STOP };
        // SAFETY: as above; the function takes a plain int.
        py.detach(move || unsafe { f(position) });
    }
    Ok(())
}

/// Called by the helper's `threading.excepthook` with the traceback's frames, outermost
/// first: the file and the module (`__name__`) of each. The innermost frame that belongs to
/// a plugin's module names the plugin (two plugins may share a directory, never a module);
/// failing that, the innermost frame inside a plugin's directory. The traceback is logged
/// under that plugin's name and the plugin marked degraded. False when no plugin matches.
#[pyfunction]
fn thread_exception(
    py: Python<'_>,
    text: String,
    filenames: Bound<'_, PyTuple>,
    modules: Bound<'_, PyTuple>,
) -> PyResult<bool> {
    let files: Vec<String> = filenames.extract()?;
    let modules: Vec<String> = modules.extract()?;
    Ok(py.detach(|| {
        let plugins = slots::all();
        let by_module = modules.iter().rev().find_map(|m| plugins.iter().find(|c| c.module.get() == Some(m)));
        let by_dir = || {
            files
                .iter()
                .rev()
                .find_map(|f| plugins.iter().find(|c| c.dir.as_deref().is_some_and(|d| Path::new(f).starts_with(d))))
        };
        match by_module.or_else(by_dir) {
            Some(ctx) => {
                ctx.log(LogLevel::Error, &text);
                ctx.degrade("an exception in one of its threads (see the log for the traceback)");
                true
            }
            None => false,
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_checked_against_the_width() {
        let at = |s: &str| IecAddress::parse(s).unwrap();
        assert_eq!(to_cell(at("%QX0.0"), 1), Some(1));
        assert_eq!(to_cell(at("%QX0.0"), 2), None);
        assert_eq!(to_cell(at("%QW0"), 65535), Some(65535));
        assert_eq!(to_cell(at("%QW0"), -1), Some(0xFFFF));
        assert_eq!(to_cell(at("%QW0"), -32768), Some(0x8000));
        assert_eq!(to_cell(at("%QW0"), -32769), None);
        assert_eq!(to_cell(at("%QW0"), 65536), None);
        assert_eq!(to_cell(at("%ML0"), -1), Some(u64::MAX));
        assert_eq!(to_cell(at("%ML0"), u64::MAX as i128), Some(u64::MAX));
        assert_eq!(to_cell(at("%IB0"), 256), None);
    }

    #[test]
    fn module_names_are_made_safe() {
        assert_eq!(sanitize("my-plugin.v2"), "my_plugin_v2");
    }
}
