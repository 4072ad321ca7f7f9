//! [`PluginHost`]: the lifecycle of the plugins listed in `plugins.conf`.
//!
//! - `start()` (on program start): reads `plugins.conf` again, loads every enabled plugin,
//!   calls `init` on each, then `start_loop` on each, then starts the cycle thread.
//! - `stop()` (on program stop): stops the cycle thread, calls `stop_loop` on the started
//!   plugins, flushes the journal, calls `cleanup` on the initialised ones and unloads them.
//! - A plugin that fails to load, lacks `init`, fails `init` or `start_loop` (non-zero, or a
//!   Python exception) is logged, marked degraded and skipped; the others go on.
//!
//! Every method blocks while plugins run their hooks: call them from a blocking thread
//! (`tokio::task::spawn_blocking`), never from an async task.

use crate::conf::{self, ConfError, PluginEntry, PluginKind, PluginsConf, UploadedConfig};
use crate::core::{Core, lock};
use crate::native::NativeLib;
use crate::python::{Hook, PyPlugin};
use crate::slots::{self, PluginCtx};
use crate::switch::RunSwitch;
use serde::Serialize;
use shared_abi::msg::LogLevel;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long the cycle thread waits for a scan before flushing the journal anyway (the PLC
/// may be stopped while plugins still write inputs).
const IDLE_FLUSH: Duration = Duration::from_millis(20);

/// What a plugin is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginState {
    /// `enabled` is 0 in `plugins.conf`.
    Disabled,
    /// Enabled, not loaded (the host is not started).
    Stopped,
    /// Initialised, not started.
    Loaded,
    Running,
    /// Failed to load, to init or to start, or raised in one of its threads; see `reason`.
    Degraded,
}

#[derive(Clone, Debug, Serialize)]
pub struct PluginStatus {
    pub name: String,
    pub kind: PluginKind,
    pub enabled: bool,
    pub state: PluginState,
    /// Why the plugin is degraded.
    pub reason: Option<String>,
    pub path: PathBuf,
    pub config_path: Option<PathBuf>,
}

/// Why `execute_command` did not run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandError {
    NoSuchPlugin,
    NotRunning,
    /// The plugin exports no `execute_command` (or is a Python plugin).
    Unsupported,
    /// The command cannot be passed to a C function (an embedded NUL).
    InvalidCommand(String),
    /// The plugin returned `code` (non-zero) and `reply`.
    Failed {
        code: i32,
        reply: String,
    },
}

impl std::fmt::Display for CommandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CommandError::NoSuchPlugin => f.write_str("no such plugin"),
            CommandError::NotRunning => f.write_str("the plugin is not running"),
            CommandError::Unsupported => f.write_str("the plugin does not take commands"),
            CommandError::InvalidCommand(why) => f.write_str(why),
            CommandError::Failed { code, reply } => write!(f, "execute_command returned {code}: {reply}"),
        }
    }
}

impl std::error::Error for CommandError {}

enum Body {
    Absent,
    Native(NativeLib),
    Python(PyPlugin),
}

struct Instance {
    entry: PluginEntry,
    path: PathBuf,
    config_path: Option<PathBuf>,
    ctx: Option<Arc<PluginCtx>>,
    body: Body,
    initialized: bool,
    running: bool,
    /// Why it failed before it had a slot (or after it gave the slot back).
    failure: Option<String>,
}

impl Instance {
    fn new(entry: PluginEntry, data_dir: &Path) -> Self {
        let path = conf::resolve(data_dir, &entry.path);
        let config_path = (!entry.config_path.is_empty()).then(|| conf::resolve(data_dir, &entry.config_path));
        Instance {
            entry,
            path,
            config_path,
            ctx: None,
            body: Body::Absent,
            initialized: false,
            running: false,
            failure: None,
        }
    }

    fn reason(&self) -> Option<String> {
        self.ctx.as_ref().and_then(|c| c.degraded()).or_else(|| self.failure.clone())
    }

    fn status(&self) -> PluginStatus {
        let reason = self.reason();
        let state = if !self.entry.enabled {
            PluginState::Disabled
        } else if reason.is_some() {
            PluginState::Degraded
        } else if self.running {
            PluginState::Running
        } else if self.initialized {
            PluginState::Loaded
        } else {
            PluginState::Stopped
        };
        PluginStatus {
            name: self.entry.name.clone(),
            kind: self.entry.kind,
            enabled: self.entry.enabled,
            state,
            reason,
            path: self.path.clone(),
            config_path: self.config_path.clone(),
        }
    }

    /// Logs `what` as the reason this plugin is out, and remembers it.
    fn fail(&mut self, core: &Core, what: String) {
        let text = format!("[{}] {what}; the plugin is disabled until the next start", self.entry.name);
        tracing::error!("{text}");
        core.plc.log(LogLevel::Error, &text);
        match &self.ctx {
            Some(ctx) => ctx.degrade(&what),
            None => self.failure = Some(what),
        }
    }

    fn info(&self, core: &Core, what: &str) {
        let text = format!("[{}] {what}", self.entry.name);
        tracing::info!("{text}");
        core.plc.log(LogLevel::Info, &text);
    }

    /// Drops the library or module and gives the slot back, keeping the failure reason.
    fn unload(&mut self) {
        match std::mem::replace(&mut self.body, Body::Absent) {
            Body::Absent => {}
            Body::Native(lib) => drop(lib),
            Body::Python(py) => py.unload(),
        }
        if let Some(ctx) = self.ctx.take() {
            if let Some(reason) = ctx.degraded() {
                self.failure = Some(reason);
            }
            slots::release(ctx.slot);
        }
        self.initialized = false;
        self.running = false;
    }
}

struct CycleHook {
    ctx: Arc<PluginCtx>,
    cycle_start: Option<unsafe extern "C" fn()>,
    cycle_end: Option<unsafe extern "C" fn()>,
    /// Keeps the library mapped while this thread may call into it.
    _lib: Arc<libloading::os::unix::Library>,
}

struct CycleThread {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<()>,
}

struct HostState {
    started: bool,
    plugins: Vec<Instance>,
    cycle: Option<CycleThread>,
}

/// The plugin host. One per companion (tests run several side by side).
pub struct PluginHost {
    conf_path: PathBuf,
    data_dir: PathBuf,
    core: Arc<Core>,
    state: Mutex<HostState>,
}

impl PluginHost {
    /// A host for the plugins listed in `conf_path` (`<data dir>/plugins.conf`; a missing
    /// file is an empty list). Nothing is loaded until `start`.
    pub fn new(conf_path: impl Into<PathBuf>, plc: Arc<openplc_port::PlcPort>) -> Result<Self, ConfError> {
        PluginHost::with_switch(conf_path, plc, Arc::new(RunSwitch::new()))
    }

    /// As [`PluginHost::new`], with the run/stop switch the plugins report to (the
    /// companion shares one with its API).
    pub fn with_switch(
        conf_path: impl Into<PathBuf>,
        plc: Arc<openplc_port::PlcPort>,
        switch: Arc<RunSwitch>,
    ) -> Result<Self, ConfError> {
        let conf_path = std::path::absolute(conf_path.into()).map_err(|e| ConfError {
            file: PathBuf::new(),
            line: None,
            message: e.to_string(),
        })?;
        let data_dir = conf_path.parent().unwrap_or(Path::new("/")).to_path_buf();
        let conf = PluginsConf::load(&conf_path)?;
        let plugins = conf.entries().map(|e| Instance::new(e.clone(), &data_dir)).collect();
        Ok(PluginHost {
            conf_path,
            data_dir,
            core: Core::new(plc, switch),
            state: Mutex::new(HostState { started: false, plugins, cycle: None }),
        })
    }

    pub fn conf_path(&self) -> &Path {
        &self.conf_path
    }

    /// The run/stop switch this host's plugins report to.
    pub fn switch(&self) -> &Arc<RunSwitch> {
        &self.core.switch
    }

    /// The per-upload rule (see [`conf::apply_upload`]): enables exactly the plugins with a
    /// `conf/<name>.json` in the bundle rooted at `bundle_root`, with that file as their
    /// configuration. Takes effect at the next `start`. Returns every uploaded
    /// configuration, so the companion can start its built-in plugins the same way.
    pub fn apply_upload(&self, bundle_root: &Path) -> Result<Vec<UploadedConfig>, ConfError> {
        let mut st = lock(&self.state);
        let uploaded = conf::apply_upload(&self.conf_path, bundle_root)?;
        if !st.started {
            let conf = PluginsConf::load(&self.conf_path)?;
            st.plugins = conf.entries().map(|e| Instance::new(e.clone(), &self.data_dir)).collect();
        }
        Ok(uploaded)
    }

    /// Loads, initialises and starts the enabled plugins. Failures are logged and reported
    /// in the returned status; they never fail the call. Does nothing when already started.
    /// An unreadable `plugins.conf` is an error (and nothing is started).
    pub fn start(&self) -> Result<Vec<PluginStatus>, ConfError> {
        let mut st = lock(&self.state);
        if st.started {
            return Ok(st.plugins.iter().map(Instance::status).collect());
        }
        let conf = match PluginsConf::load(&self.conf_path) {
            Ok(c) => c,
            Err(e) => {
                self.core.plc.log(LogLevel::Error, &format!("plugins not started: {e}"));
                return Err(e);
            }
        };
        st.plugins = conf.entries().map(|e| Instance::new(e.clone(), &self.data_dir)).collect();

        for inst in st.plugins.iter_mut().filter(|i| i.entry.enabled) {
            self.load_and_init(inst);
        }
        // Plugins' threads read the view from their first line on.
        self.core.refresh_view();
        for inst in st.plugins.iter_mut().filter(|i| i.initialized) {
            self.start_loop(inst);
        }

        let hooks: Vec<CycleHook> = st
            .plugins
            .iter()
            .filter(|i| i.running)
            .filter_map(|i| match (&i.body, &i.ctx) {
                (Body::Native(lib), Some(ctx)) if lib.cycle_start.is_some() || lib.cycle_end.is_some() => {
                    Some(CycleHook {
                        ctx: ctx.clone(),
                        cycle_start: lib.cycle_start,
                        cycle_end: lib.cycle_end,
                        _lib: lib.lib.clone(),
                    })
                }
                _ => None,
            })
            .collect();
        // No plugin running, nothing to flush or call: no thread.
        if st.plugins.iter().any(|i| i.running) {
            let stop = Arc::new(AtomicBool::new(false));
            let core = self.core.clone();
            let flag = stop.clone();
            match std::thread::Builder::new()
                .name("plugin-cycle".into())
                .spawn(move || cycle_loop(&core, &hooks, &flag))
            {
                Ok(handle) => st.cycle = Some(CycleThread { stop, handle }),
                Err(e) => {
                    let text = format!(
                        "cannot start the plugin cycle thread ({e}): cycle hooks will not run and writes are flushed only at image_lock/unlock"
                    );
                    self.core.plc.log(LogLevel::Error, &text);
                }
            }
        }
        st.started = true;
        Ok(st.plugins.iter().map(Instance::status).collect())
    }

    fn load_and_init(&self, inst: &mut Instance) {
        let config = inst.config_path.as_ref().map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
        if config.len() >= shared_abi::plugin::CONFIG_PATH_BYTES {
            return inst.fail(&self.core, format!("its config path is longer than {} bytes", conf::MAX_PATH));
        }
        let dir = match inst.entry.kind {
            PluginKind::Python => {
                inst.path.parent().map(|d| std::path::absolute(d).unwrap_or_else(|_| d.to_path_buf()))
            }
            PluginKind::Native => None,
        };
        let Some(ctx) = slots::claim(&inst.entry.name, &self.core, &config, dir) else {
            return inst.fail(&self.core, format!("no free plugin slot (at most {} plugins at once)", slots::SLOTS));
        };
        inst.ctx = Some(ctx.clone());
        match inst.entry.kind {
            PluginKind::Native => match NativeLib::open(&inst.path) {
                Ok(lib) => {
                    // Upstream's rule: told the sizes before init when it can be; a plugin
                    // that cannot bounds every table by buffer_size, so the image must be
                    // square (every table as long as the longest) while it is loaded.
                    let sizes = self.core.image_sizes();
                    match lib.set_image_sizes(&sizes.as_array()) {
                        Some(0) => self.core.note_image_sizes(&inst.entry.name, true),
                        Some(rc) => {
                            inst.body = Body::Native(lib);
                            inst.fail(&self.core, format!("set_image_sizes() returned {rc}"));
                            return inst.unload();
                        }
                        None => {
                            self.core.note_image_sizes(&inst.entry.name, false);
                            if sizes.square() != sizes {
                                inst.info(
                                    &self.core,
                                    "does not export set_image_sizes(): every image table will be as long as the longest from the next program load",
                                );
                            }
                        }
                    }
                    // SAFETY: `init` has the ABI's signature (resolved by name in
                    // `NativeLib::open`); the args struct is fully filled and stays alive
                    // (and at the same address) for as long as the plugin is loaded.
                    let rc = unsafe { (lib.init)(ctx.args.get().cast()) };
                    inst.body = Body::Native(lib);
                    if rc != 0 {
                        inst.fail(&self.core, format!("init() returned {rc}"));
                        return inst.unload();
                    }
                }
                Err(e) => {
                    inst.fail(&self.core, format!("not loaded: {e}"));
                    return inst.unload();
                }
            },
            PluginKind::Python => {
                let venv =
                    (!inst.entry.venv_path.is_empty()).then(|| conf::resolve(&self.data_dir, &inst.entry.venv_path));
                match PyPlugin::load(&ctx, &inst.path, venv.as_deref()) {
                    Ok(py) => {
                        let result = py.init(&ctx.args);
                        inst.body = Body::Python(py);
                        if let Err(tb) = result {
                            inst.fail(&self.core, format!("init() raised:\n{tb}"));
                            return inst.unload();
                        }
                    }
                    Err(tb) => {
                        inst.fail(&self.core, format!("not loaded:\n{tb}"));
                        return inst.unload();
                    }
                }
            }
        }
        inst.initialized = true;
        inst.info(&self.core, "initialised");
    }

    fn start_loop(&self, inst: &mut Instance) {
        let result: Result<(), String> = match &inst.body {
            Body::Native(lib) => match lib.start_loop {
                // SAFETY: resolved by name with the ABI's signature; the library is loaded.
                Some(f) => match unsafe { f() } {
                    0 => Ok(()),
                    rc => Err(format!("start_loop() returned {rc}")),
                },
                None => Ok(()),
            },
            Body::Python(py) => py.call(Hook::StartLoop).map(drop).map_err(|tb| format!("start_loop() raised:\n{tb}")),
            Body::Absent => return,
        };
        match result {
            Ok(()) => {
                inst.running = true;
                inst.info(&self.core, "started");
            }
            Err(what) => {
                inst.fail(&self.core, what);
                self.cleanup(inst);
                inst.unload();
            }
        }
    }

    fn cleanup(&self, inst: &mut Instance) {
        if !inst.initialized {
            return;
        }
        match &inst.body {
            Body::Native(lib) => {
                if let Some(f) = lib.cleanup {
                    // SAFETY: resolved by name with the ABI's signature; the library is loaded.
                    unsafe { f() }
                }
            }
            Body::Python(py) => {
                if let Err(tb) = py.call(Hook::Cleanup) {
                    let text = format!("[{}] cleanup() raised:\n{tb}", inst.entry.name);
                    self.core.plc.log(LogLevel::Error, &text);
                }
            }
            Body::Absent => {}
        }
        inst.initialized = false;
    }

    /// Stops and unloads every plugin (`stop_loop`, then `cleanup`). Does nothing when not
    /// started.
    pub fn stop(&self) {
        let mut st = lock(&self.state);
        if !st.started {
            return;
        }
        if let Some(cycle) = st.cycle.take() {
            cycle.stop.store(true, Ordering::Release);
            if cycle.handle.join().is_err() {
                tracing::error!("the plugin cycle thread panicked");
            }
        }
        for inst in st.plugins.iter_mut().filter(|i| i.running) {
            match &inst.body {
                Body::Native(lib) => {
                    if let Some(f) = lib.stop_loop {
                        // SAFETY: resolved by name with the ABI's signature; loaded.
                        unsafe { f() }
                    }
                }
                Body::Python(py) => match py.call(Hook::StopLoop) {
                    Ok(Some(false)) => inst.info(&self.core, "stop_loop() reported that it did not stop cleanly"),
                    Ok(_) => {}
                    Err(tb) => {
                        let text = format!("[{}] stop_loop() raised:\n{tb}", inst.entry.name);
                        self.core.plc.log(LogLevel::Error, &text);
                        if let Some(ctx) = &inst.ctx {
                            ctx.degrade("stop_loop() raised (see the log for the traceback)");
                        }
                    }
                },
                Body::Absent => {}
            }
            inst.running = false;
            inst.info(&self.core, "stopped");
        }
        self.core.flush_journal();
        for inst in st.plugins.iter_mut() {
            self.cleanup(inst);
            inst.unload();
        }
        st.started = false;
    }

    /// Native plugins loaded so far that do not export `set_image_sizes` (empty: per-table
    /// sizes are fine).
    pub fn plugins_without_image_sizes(&self) -> Vec<String> {
        self.core.plugins_without_image_sizes()
    }

    pub fn is_started(&self) -> bool {
        lock(&self.state).started
    }

    /// Every plugin of `plugins.conf` with what it is doing.
    pub fn status(&self) -> Vec<PluginStatus> {
        lock(&self.state).plugins.iter().map(Instance::status).collect()
    }

    /// Passes a JSON command to a running native plugin's `execute_command`.
    pub fn execute_command(&self, name: &str, json: &str) -> Result<String, CommandError> {
        let st = lock(&self.state);
        let inst = st.plugins.iter().find(|i| i.entry.name == name).ok_or(CommandError::NoSuchPlugin)?;
        if !inst.running || inst.reason().is_some() {
            return Err(CommandError::NotRunning);
        }
        match &inst.body {
            Body::Native(lib) => lib.execute_command(json),
            _ => Err(CommandError::Unsupported),
        }
    }

    /// `get_stats` of every running native plugin that answers, by plugin name: the
    /// `plugin_stats` member of the `STATS` reply. Text that is not JSON is kept as a
    /// string.
    pub fn stats(&self) -> serde_json::Map<String, serde_json::Value> {
        let st = lock(&self.state);
        let mut out = serde_json::Map::new();
        for inst in st.plugins.iter().filter(|i| i.running && i.reason().is_none()) {
            if let Body::Native(lib) = &inst.body
                && let Some(text) = lib.get_stats()
            {
                let value = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
                out.insert(inst.entry.name.clone(), value);
            }
        }
        out
    }

    /// The host's own counters (journal traffic, dropped writes, image locks).
    pub fn counters(&self) -> serde_json::Value {
        let c = &self.core.counters;
        serde_json::json!({
            "journal_writes": c.journal_writes.load(Ordering::Relaxed),
            "journal_flushes": c.journal_flushes.load(Ordering::Relaxed),
            "writes_dropped": c.writes_dropped.load(Ordering::Relaxed),
            "image_locks": c.image_locks.load(Ordering::Relaxed),
        })
    }
}

impl Drop for PluginHost {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The cycle thread: once per published scan, `cycle_end` then `cycle_start` of every
/// running native plugin that has them, under the image lock; the journal is flushed after
/// every scan and at least every `IDLE_FLUSH`. It runs at normal priority in the companion:
/// a slow plugin delays this thread only, never rt-core's scan.
fn cycle_loop(core: &Core, hooks: &[CycleHook], stop: &AtomicBool) {
    let mut last = core.view_scan().0;
    while !stop.load(Ordering::Acquire) {
        let waited = std::time::Instant::now();
        let scan = core.plc.wait_scan_after_blocking(last, IDLE_FLUSH).ok();
        core.refresh_view();
        match scan {
            Some(cycle) => {
                last = cycle;
                run_cycle_hooks(core, hooks);
            }
            None => {
                // rt-core restarted: its cycle counter began again below ours.
                last = last.min(core.view_scan().0);
                // Without rt-core the wait returns at once; do not spin.
                if let Some(rest) = IDLE_FLUSH.checked_sub(waited.elapsed()) {
                    std::thread::sleep(rest);
                }
            }
        }
        core.flush_journal();
    }
}

fn run_cycle_hooks(core: &Core, hooks: &[CycleHook]) {
    let active: Vec<&CycleHook> = hooks.iter().filter(|h| h.ctx.degraded().is_none()).collect();
    if active.is_empty() {
        return;
    }
    core.image_lock();
    for h in &active {
        if let Some(f) = h.cycle_end {
            // SAFETY: resolved by name with the ABI's signature; `_lib` keeps the library
            // mapped.
            unsafe { f() }
        }
    }
    for h in &active {
        if let Some(f) = h.cycle_start {
            // SAFETY: as above.
            unsafe { f() }
        }
    }
    core.image_unlock();
}
