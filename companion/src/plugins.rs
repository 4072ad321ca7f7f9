//! Plugins in the companion: the upstream-compatible native and Python plugins
//! (`openplc-plugin-host`) and the first-party protocol servers ([`crate::protocols`]),
//! all reaching the PLC through the companion's one port to rt-core.
//!
//! Which plugins run is decided by each upload (the bundle's `conf/<name>.json`, copied to
//! `<data dir>/conf/`) and when by the PLC: they start when it runs and stop when it stops,
//! as upstream; a protocol that [serves while stopped](Protocol::serves_while_stopped)
//! (S7: clients read the CPU's STOP from it) runs while a program is loaded, running or
//! not. A watcher follows the PLC state rather than every code path that can start or stop
//! it (the API, a build, the supervisor, a fault). A new program or configuration restarts
//! them all.

use crate::logs::LogHub;
use crate::protocols::{self, Protocol, ProtocolState, StartContext};
use crate::retain::RetainBackend;
use crate::retain::plugin::PluginStore;
use crate::rt_link::RtLink;
use openplc_builder::Level;
use openplc_plugin_host::{CommandError, PluginHost, RetainPlugin, RunSwitch};
use shared_abi::layout::PlcState;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often the watcher looks at the PLC state.
const WATCH_PERIOD: Duration = Duration::from_millis(100);

/// What the PLC is doing, as far as plugins care.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// No rt-core, or no program.
    Off,
    /// A program loaded, not running (stopped, or stopped by a fault).
    Stopped,
    Running,
}

/// What runs, and since which program and upload.
struct Active {
    program_gen: u32,
    config_gen: u64,
    phase: Phase,
    /// The native and Python plugins run (started by the plugin host).
    host_started: bool,
    protocols: Vec<(&'static str, ProtocolState)>,
}

/// The plugins of this companion.
pub struct Plugins {
    plc: Arc<RtLink>,
    switch: Arc<RunSwitch>,
    logs: Arc<LogHub>,
    conf_path: PathBuf,
    data_dir: PathBuf,
    conf_dir: PathBuf,
    protocols: Vec<Box<dyn Protocol>>,
    host: Mutex<Option<Arc<PluginHost>>>,
    /// Bumped by every upload that changed which plugins run with which configuration.
    config_gen: AtomicU64,
    active: tokio::sync::Mutex<Option<Active>>,
}

impl Plugins {
    pub fn new(data_dir: &Path, plc: Arc<RtLink>, switch: Arc<RunSwitch>, logs: Arc<LogHub>) -> Arc<Plugins> {
        let plugins = Arc::new(Plugins {
            plc,
            switch,
            logs,
            conf_path: data_dir.join("plugins.conf"),
            data_dir: data_dir.to_path_buf(),
            conf_dir: data_dir.join("conf"),
            protocols: protocols::all(),
            host: Mutex::new(None),
            config_gen: AtomicU64::new(0),
            active: tokio::sync::Mutex::new(None),
        });
        plugins.find_retain_store();
        plugins
    }

    /// Looks for a native plugin that is the RETAIN store (its `retain_save`/`retain_load`
    /// exports) among the enabled ones, and makes it the store (or drops the previous one).
    /// Blocking (opens libraries).
    pub fn find_retain_store(&self) {
        let found = RetainPlugin::find(&self.conf_path);
        let name = found.as_ref().map(|p| p.name().to_string());
        let current = self.plc.retain_store().map(|s| s.describe());
        if let Some(name) = &name
            && current.as_deref() != Some(name.as_str())
        {
            self.logs.info(format!("RETAIN values are kept by plugin {name} (its retain_save/retain_load)"));
        }
        let store = found.map(|p| Arc::new(PluginStore::new(p)) as Arc<dyn RetainBackend>);
        self.plc.set_plugin_store(store);
    }

    /// The plugin host, made on first use (and again after a `plugins.conf` that did not
    /// parse was fixed).
    fn host(&self) -> Option<Arc<PluginHost>> {
        let mut host = self.host.lock().unwrap_or_else(|p| p.into_inner());
        if host.is_none() {
            match PluginHost::with_switch(&self.conf_path, self.plc.port().clone(), self.switch.clone()) {
                Ok(h) => *host = Some(Arc::new(h)),
                Err(e) => self.logs.error(format!("Plugins are off until plugins.conf is fixed: {e}")),
            }
        }
        host.clone()
    }

    /// The per-upload rule: `conf/<name>.json` in the bundle enables plugin `name` with that
    /// configuration; everything else is disabled. Blocking (file I/O). Says in `build_log`
    /// when the upload's configuration was not applied, and which protocol's configuration
    /// cannot be used (that protocol will report the same when it is started).
    pub fn apply_upload(&self, bundle_root: &Path, build_log: &mut dyn FnMut(Level, &str)) {
        let Some(host) = self.host() else {
            build_log(Level::Error, "The upload's plugin configuration was not applied: plugins.conf is unreadable");
            return;
        };
        match host.apply_upload(bundle_root) {
            Ok(uploaded) => {
                let names: Vec<&str> = uploaded.iter().map(|u| u.name.as_str()).collect();
                self.logs.info(if names.is_empty() {
                    "The upload has no conf/: every plugin is off".to_string()
                } else {
                    format!("Plugins enabled by the upload: {}", names.join(", "))
                });
                self.config_gen.fetch_add(1, Ordering::AcqRel);
                self.find_retain_store();
            }
            Err(e) => {
                let line = format!("The upload's plugin configuration was not applied: {e}");
                self.logs.error(&line);
                build_log(Level::Error, &line);
                return;
            }
        }
        for (name, e) in protocols::check_all(&self.protocols, &self.conf_dir) {
            build_log(Level::Error, &format!("The {name} server will not start: {e}"));
        }
    }
}

impl crate::program::DeployHook for Plugins {
    fn deployed(&self, bundle_root: &Path, build_log: &mut dyn FnMut(Level, &str)) {
        self.apply_upload(bundle_root, build_log);
    }
}

impl Plugins {
    /// Runs the watcher: plugins run while the PLC runs, and restart for a new program or
    /// a new configuration.
    pub fn spawn_lifecycle(self: Arc<Self>) {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(WATCH_PERIOD);
            loop {
                tick.tick().await;
                self.follow_plc().await;
            }
        });
    }

    async fn follow_plc(&self) {
        // A deploy is a load followed by the upload's configuration: act on the end state.
        if self.plc.state().is_busy() {
            return;
        }
        let status = self.plc.port().status();
        let phase = match &status {
            Some(s) if s.rt_alive && s.state == PlcState::Running => Phase::Running,
            Some(s) if s.rt_alive && matches!(s.state, PlcState::Stopped | PlcState::Error) => Phase::Stopped,
            _ => Phase::Off,
        };
        let program_gen = status.map(|s| s.program_gen).unwrap_or(0);
        let config_gen = self.config_gen.load(Ordering::Acquire);
        let mut active = self.active.lock().await;
        let same_set = active.as_ref().is_some_and(|a| (a.program_gen, a.config_gen) == (program_gen, config_gen));
        if same_set && active.as_ref().map(|a| a.phase) == Some(phase) {
            return;
        }
        // A new program or configuration, or no PLC: everything stops (and starts again).
        if (!same_set || phase == Phase::Off)
            && let Some(old) = active.take()
        {
            self.stop(old).await;
        }
        if phase == Phase::Off {
            return;
        }
        let mut current = active.take().unwrap_or(Active {
            program_gen,
            config_gen,
            phase: Phase::Off,
            host_started: false,
            protocols: Vec::new(),
        });
        self.follow(&mut current, phase).await;
        *active = Some(current);
    }

    /// Brings what runs in line with `phase`: the plugin host while the PLC runs, each
    /// protocol while the PLC runs or, if it serves while stopped, while it is stopped.
    async fn follow(&self, active: &mut Active, phase: Phase) {
        let running = phase == Phase::Running;
        let ctx = StartContext {
            conf_dir: self.conf_dir.clone(),
            data_dir: self.data_dir.clone(),
            plc: self.plc.clone(),
            logs: self.logs.clone(),
        };
        for p in &self.protocols {
            let wanted = running || p.serves_while_stopped();
            let at = active.protocols.iter().position(|(name, _)| *name == p.name());
            let up = at.is_some_and(|i| matches!(active.protocols[i].1, ProtocolState::Running(_)));
            if wanted == up {
                continue;
            }
            // Stop it, or forget why it failed before starting it again.
            if let Some(i) = at {
                protocols::stop(active.protocols.remove(i).1).await;
            }
            if wanted && let Some(state) = protocols::start(p.as_ref(), &ctx).await {
                active.protocols.push((p.name(), state));
            }
        }
        if running && !active.host_started {
            self.start_host().await;
            active.host_started = true;
        } else if !running && active.host_started {
            self.stop_host().await;
            active.host_started = false;
        }
        active.phase = phase;
    }

    async fn start_host(&self) {
        let Some(host) = self.host() else { return };
        match tokio::task::spawn_blocking(move || host.start()).await {
            Ok(Ok(statuses)) if !statuses.is_empty() => {
                if let Some(host) = self.host() {
                    self.plc.set_plugins_without_image_sizes(host.plugins_without_image_sizes());
                }
                let summary: Vec<String> =
                    statuses.iter().map(|s| format!("{} {:?}", s.name, s.state).to_lowercase()).collect();
                self.logs.info(format!("Plugins: {}", summary.join(", ")));
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => self.logs.error(format!("Plugins not started: {e}")),
            Err(e) => self.logs.error(format!("Plugins not started: {e}")),
        }
    }

    async fn stop_host(&self) {
        let host = self.host.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(host) = host
            && host.is_started()
        {
            let _ = tokio::task::spawn_blocking(move || host.stop()).await;
        }
    }

    async fn stop(&self, active: Active) {
        for (_, state) in active.protocols {
            protocols::stop(state).await;
        }
        if active.host_started {
            self.stop_host().await;
        }
    }

    /// Passes a command to a running native plugin's `execute_command`, off the async
    /// workers (a plugin may take its time).
    pub async fn execute_command(&self, plugin: &str, json: String) -> Result<String, CommandError> {
        let host = self.host.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let Some(host) = host else { return Err(CommandError::NoSuchPlugin) };
        let plugin = plugin.to_string();
        tokio::task::spawn_blocking(move || host.execute_command(&plugin, &json))
            .await
            .unwrap_or(Err(CommandError::NotRunning))
    }

    /// `get_stats` of the running native plugins, by name (empty when none answers).
    pub async fn stats(&self) -> serde_json::Map<String, serde_json::Value> {
        let host = self.host.lock().unwrap_or_else(|p| p.into_inner()).clone();
        match host {
            Some(host) => tokio::task::spawn_blocking(move || host.stats()).await.unwrap_or_default(),
            None => serde_json::Map::new(),
        }
    }

    /// What every plugin is doing, for `/api/plugins`.
    pub async fn status(&self) -> serde_json::Value {
        let host = self.host.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let plugins: Vec<serde_json::Value> = host
            .map(|h| {
                h.status()
                    .iter()
                    .map(|s| {
                        serde_json::json!({
                            "name": s.name,
                            "state": format!("{:?}", s.state).to_lowercase(),
                            "reason": s.reason,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let active = self.active.lock().await;
        let protocols: serde_json::Map<String, serde_json::Value> = active
            .iter()
            .flat_map(|a| a.protocols.iter())
            .map(|(name, state)| (name.to_string(), state.to_json()))
            .collect();
        serde_json::json!({ "plugins": plugins, "protocols": protocols })
    }
}
