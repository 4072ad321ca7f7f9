//! The state every handler shares (one `Arc<App>`), and the PLC state as the API reports it.

use crate::auth::Auth;
use crate::logs::LogHub;
use crate::program::Programs;
use crate::rt_link::{Phase, RtLink};
use crate::settings::{EditorCompat, Settings};
use crate::supervisor::Supervisor;
use shared_abi::layout::PlcState;
use std::sync::Arc;
use std::time::Instant;

pub struct App {
    pub settings: Settings,
    pub logs: Arc<LogHub>,
    pub auth: Arc<Auth>,
    pub debugger: Arc<openplc_debugger::Debugger>,
    pub plugins: Arc<crate::plugins::Plugins>,
    /// The link to rt-core (its port, and the supervisor's view of it).
    pub plc: Arc<RtLink>,
    pub programs: Arc<Programs>,
    pub supervisor: Option<Arc<Supervisor>>,
    /// Names of the running program's variables, for the REST monitor.
    pub variables: crate::variables::NameCache,
    /// The run/stop switch (plugins and the API move it).
    pub switch: Arc<openplc_plugin_host::RunSwitch>,
    /// Switch movements, for the watcher `serve` starts (taken once).
    pub switch_moves: std::sync::Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<SwitchMove>>>,
    /// The browser monitor's shared sampler (one watch-list lease per tick for every page).
    pub monitor: crate::monitor::Hub,
    pub started: Instant,
}

/// The switch moved to `0`, by `1` (who, for the log).
pub type SwitchMove = (openplc_plugin_host::SwitchPosition, String);

impl App {
    /// The one `STATUS:<STATE>` word for `/api/status`.
    pub fn status_word(&self) -> &'static str {
        // Editor ≤ 4.1.4 shows anything but INIT/RUNNING/STOPPED/ERROR/EMPTY as UNKNOWN,
        // so TRANSITIONING is only reported when no such Editor is expected.
        let transitions_shown = self.settings.editor_compat == EditorCompat::Current;
        let link = self.plc.state();
        match link.phase {
            Phase::SafeMode | Phase::Detached => return "ERROR",
            Phase::Restarting => return if transitions_shown { "TRANSITIONING" } else { "ERROR" },
            Phase::Up => {}
        }
        if transitions_shown && link.is_busy() {
            return "TRANSITIONING";
        }
        let Some(status) = self.plc.port().status() else { return "ERROR" };
        if !status.rt_alive {
            // The header of an rt-core that died (the file outlives it) is not the PLC's
            // state: nothing scans until the supervisor has started a new one.
            return if transitions_shown { "TRANSITIONING" } else { "ERROR" };
        }
        match status.state {
            PlcState::Empty => "EMPTY",
            PlcState::Stopped => "STOPPED",
            PlcState::Running => "RUNNING",
            PlcState::Error => "ERROR",
        }
    }
}
