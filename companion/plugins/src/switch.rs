//! The run/stop mode switch: where a plugin (upstream's `set_switch_position`, or the Python
//! helper's `Runtime.set_switch_position`) or the REST API says the device's RUN/STOP switch
//! stands. One per companion, shared by the plugin host and the API.
//!
//! As upstream: the switch reads RUN until someone reports otherwise (a device with no
//! switch-aware plugin always runs), a start is refused while it reads STOP, and only edges
//! count as movement (a plugin sampling a GPIO on a timer may report the same position on
//! every sample). Who acts on a movement is told through [`RunSwitch::on_move`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

/// Where the switch stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SwitchPosition {
    Run,
    Stop,
}

impl SwitchPosition {
    /// The position as upstream's `/api/switch` and `switchPosition` spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            SwitchPosition::Run => "run",
            SwitchPosition::Stop => "stop",
        }
    }

    /// `"run"` or `"stop"`, in any case; anything else is not a position.
    pub fn parse(text: &str) -> Option<SwitchPosition> {
        match text.trim().to_ascii_lowercase().as_str() {
            "run" => Some(SwitchPosition::Run),
            "stop" => Some(SwitchPosition::Stop),
            _ => None,
        }
    }

    /// The C ABI's `OPLC_PLUGIN_SWITCH_*` value: STOP is 0, anything else RUN (as upstream
    /// normalises it).
    pub fn from_abi(value: std::ffi::c_int) -> SwitchPosition {
        if value == shared_abi::plugin::PLUGIN_SWITCH_STOP { SwitchPosition::Stop } else { SwitchPosition::Run }
    }
}

type MoveHandler = Box<dyn Fn(SwitchPosition, &str) + Send + Sync>;

/// The switch. Reading it is one atomic load.
pub struct RunSwitch {
    run: AtomicBool,
    /// Serialises edges, so two reporters moving it at once each see the other's edge.
    edge: Mutex<()>,
    on_move: OnceLock<MoveHandler>,
}

impl Default for RunSwitch {
    fn default() -> Self {
        RunSwitch { run: AtomicBool::new(true), edge: Mutex::new(()), on_move: OnceLock::new() }
    }
}

impl RunSwitch {
    pub fn new() -> RunSwitch {
        RunSwitch::default()
    }

    pub fn position(&self) -> SwitchPosition {
        if self.run.load(Ordering::Acquire) { SwitchPosition::Run } else { SwitchPosition::Stop }
    }

    /// Whether a start is allowed.
    pub fn allows_run(&self) -> bool {
        self.position() == SwitchPosition::Run
    }

    /// Sets the position; `by` names who moved it (a plugin, a user) for the handler's log.
    /// Returns whether it moved. The movement handler runs on the caller's thread, after the
    /// new position is visible.
    pub fn set(&self, position: SwitchPosition, by: &str) -> bool {
        let _edge = self.edge.lock().unwrap_or_else(|p| p.into_inner());
        let previous = self.run.swap(position == SwitchPosition::Run, Ordering::AcqRel);
        let moved = previous != (position == SwitchPosition::Run);
        if moved && let Some(handler) = self.on_move.get() {
            handler(position, by);
        }
        moved
    }

    /// Who hears about movements (set once; later calls are ignored). The handler must not
    /// block: it runs inside a plugin's call or a request.
    pub fn on_move(&self, handler: impl Fn(SwitchPosition, &str) + Send + Sync + 'static) {
        let _ = self.on_move.set(Box::new(handler));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn runs_until_told_otherwise_and_reports_edges_only() {
        let switch = RunSwitch::new();
        assert!(switch.allows_run());
        let moves = Arc::new(AtomicUsize::new(0));
        let seen = moves.clone();
        switch.on_move(move |p, by| {
            assert_eq!(by, "gpio");
            assert!(matches!(p, SwitchPosition::Run | SwitchPosition::Stop));
            seen.fetch_add(1, Ordering::SeqCst);
        });
        assert!(!switch.set(SwitchPosition::Run, "gpio"), "already RUN: no movement");
        assert!(switch.set(SwitchPosition::Stop, "gpio"));
        assert!(!switch.set(SwitchPosition::Stop, "gpio"), "the same sample again");
        assert_eq!(switch.position(), SwitchPosition::Stop);
        assert!(!switch.allows_run());
        assert!(switch.set(SwitchPosition::Run, "gpio"));
        assert_eq!(moves.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn positions_parse_and_map_from_the_abi() {
        assert_eq!(SwitchPosition::parse(" STOP "), Some(SwitchPosition::Stop));
        assert_eq!(SwitchPosition::parse("run"), Some(SwitchPosition::Run));
        assert_eq!(SwitchPosition::parse("unknown"), None);
        assert_eq!(SwitchPosition::from_abi(0), SwitchPosition::Stop);
        assert_eq!(SwitchPosition::from_abi(1), SwitchPosition::Run);
        assert_eq!(SwitchPosition::from_abi(7), SwitchPosition::Run, "upstream normalises anything else to RUN");
        assert_eq!(SwitchPosition::Stop.as_str(), "stop");
    }
}
