//! The companion's link to rt-core: the [`PlcPort`] every part of the companion reaches
//! rt-core through, and what only the companion knows about it: whether the supervisor is
//! restarting rt-core or holds it in safe mode, which transitions (loads, deploys) are under
//! way, where RETAIN values are kept, and rt-core's events fanned out to subscribers and
//! into the runtime log.

use crate::logs::{Level, LogHub};
use crate::program::online::{Matched, OnlineChange};
use crate::retain::RetainBackend;
use crate::retain::status::{LastStart, Layout};
use openplc_port::{LoadKind, LogSink, PlcPort, PortError};
use shared_abi::client::{Observer, RtClient};
use shared_abi::debug::LoadResult;
use shared_abi::layout::PlcState;
use shared_abi::msg::{Command, CommandStatus, Event};
use shared_abi::sizes::{ImageRequest, ImageSizes};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

/// The least a command waits for rt-core's answer (longer for a slow task period).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(3);

pub use crate::retain::status::RetainStart;

/// A program load: which library, whether it runs, how RETAIN values are treated, and the
/// program's MD5 (the identity a RETAIN store keeps values under).
#[derive(Clone, Copy, Debug)]
pub struct LoadRequest<'a> {
    pub path: &'a Path,
    pub start: bool,
    pub retain: RetainStart,
    pub md5: Option<&'a str>,
    /// An online change: the running program's values carried into the new one at the swap
    /// as matched (`retain` is then `Cold`: what is not carried starts at its initial value).
    pub online: Option<&'a Matched>,
    /// The table sizes the program's `image.conf` configured (zero without one): rt-core
    /// never sizes a table below what the program's located variables reach.
    pub image: ImageSizes,
}

/// Where the link to rt-core stands, as the supervisor drives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// No rt-core yet (the supervisor has not started or attached one).
    Detached,
    /// The supervisor is replacing an rt-core that died (and restoring its program).
    Restarting,
    /// rt-core was restarted without its program after repeated crashes: the PLC reports
    /// ERROR until a program is uploaded or started again.
    SafeMode,
    /// Attached to a live rt-core.
    Up,
}

/// The link's state, read and changed as one value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkState {
    pub phase: Phase,
    /// Transitions under way (a load, a deploy around it).
    pub busy: u32,
}

impl LinkState {
    pub fn is_busy(&self) -> bool {
        self.busy > 0
    }
}

struct Inner {
    state: LinkState,
    /// Why no rt-core is attached, when the supervisor knows (a running rt-core it refused
    /// to adopt, a lease another client holds).
    unavailable: Option<String>,
    /// When a program was last deployed or safe mode left: crashes before it no longer
    /// count towards safe mode.
    fresh_start: Instant,
}

pub struct RtLink {
    port: Arc<PlcPort>,
    inner: Mutex<Inner>,
    events: broadcast::Sender<Event>,
    logs: Arc<LogHub>,
    retain: Mutex<Stores>,
    /// What the last load did with RETAIN values.
    last_start: Mutex<Option<LastStart>>,
    /// Loaded native plugins that cannot be told per-table sizes (`set_image_sizes`): while
    /// there are any, every table of a program is as long as its longest (upstream's rule).
    plugins_without_image_sizes: Mutex<Vec<String>>,
}

/// Where RETAIN values are kept: a plugin store outranks the file store, as upstream.
#[derive(Default)]
struct Stores {
    file: Option<Arc<dyn RetainBackend>>,
    plugin: Option<Arc<dyn RetainBackend>>,
}

/// Marks a transition under way while alive.
pub struct BusyGuard<'a>(&'a RtLink);

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        let mut inner = self.0.inner();
        inner.state.busy = inner.state.busy.saturating_sub(1);
    }
}

impl RtLink {
    pub fn new(logs: Arc<LogHub>) -> RtLink {
        let hub = logs.clone();
        let port = PlcPort::detached(LogSink::new(move |level, text| hub.log(level.into(), text.to_string())));
        RtLink {
            port,
            inner: Mutex::new(Inner {
                state: LinkState { phase: Phase::Detached, busy: 0 },
                unavailable: None,
                fresh_start: Instant::now(),
            }),
            events: broadcast::channel(256).0,
            logs,
            retain: Mutex::new(Stores::default()),
            last_start: Mutex::new(None),
            plugins_without_image_sizes: Mutex::new(Vec::new()),
        }
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The port to rt-core, for everything that reads, writes or commands.
    pub fn port(&self) -> &Arc<PlcPort> {
        &self.port
    }

    pub fn state(&self) -> LinkState {
        self.inner().state
    }

    fn stores(&self) -> MutexGuard<'_, Stores> {
        self.retain.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Turns the built-in file store on: warm loads give the program its saved values.
    pub fn set_file_store(&self, store: Arc<dyn RetainBackend>) {
        self.stores().file = Some(store);
    }

    /// The plugin acting as the RETAIN store, if any (it outranks the file store).
    pub fn set_plugin_store(&self, store: Option<Arc<dyn RetainBackend>>) {
        self.stores().plugin = store;
    }

    /// Where RETAIN values are kept now, if anywhere.
    pub fn retain_store(&self) -> Option<Arc<dyn RetainBackend>> {
        let stores = self.stores();
        stores.plugin.clone().or_else(|| stores.file.clone())
    }

    /// What the last load did with RETAIN values, when it loaded the program now running.
    pub fn last_start(&self) -> Option<LastStart> {
        let current = self.port.status().map(|s| s.program_gen)?;
        self.last_start.lock().unwrap_or_else(|p| p.into_inner()).clone().filter(|l| l.program_gen == current)
    }

    /// Installs a freshly opened lease and observer (the supervisor does this). A link
    /// that is restarting stays so until [`RtLink::end_restart`].
    pub fn attach(&self, client: RtClient, observer: Observer) {
        self.port.attach(client, observer);
        let mut inner = self.inner();
        inner.unavailable = None;
        if inner.state.phase == Phase::Detached {
            inner.state.phase = Phase::Up;
        }
    }

    /// Records why rt-core cannot be attached (`None`: no known reason).
    pub fn set_unavailable(&self, why: Option<String>) {
        self.inner().unavailable = why;
    }

    /// Why rt-core is not attached, when known: for `/api/status` and the build log.
    pub fn unavailable(&self) -> Option<String> {
        let inner = self.inner();
        (inner.state.phase == Phase::Detached).then(|| inner.unavailable.clone()).flatten()
    }

    /// rt-core died: drops the lease while the supervisor replaces it.
    pub fn begin_restart(&self) {
        self.inner().state.phase = Phase::Restarting;
        self.port.detach();
    }

    /// The replacement is attached (and its program restored, unless `safe_mode`).
    pub fn end_restart(&self, safe_mode: bool) {
        self.inner().state.phase = if safe_mode { Phase::SafeMode } else { Phase::Up };
    }

    /// A program was deployed or started on request: leaves safe mode and forgets earlier
    /// crashes.
    pub fn leave_safe_mode(&self) {
        let mut inner = self.inner();
        inner.fresh_start = Instant::now();
        if inner.state.phase == Phase::SafeMode {
            inner.state.phase = Phase::Up;
        }
    }

    /// Since when crashes count towards safe mode.
    pub fn fresh_start(&self) -> Instant {
        self.inner().fresh_start
    }

    pub fn busy_guard(&self) -> BusyGuard<'_> {
        self.inner().state.busy += 1;
        BusyGuard(self)
    }

    /// The PLC state rt-core reports, while attached.
    pub fn plc_state(&self) -> Option<PlcState> {
        self.port.state()
    }

    /// rt-core's events as they are drained (state changes, faults, forces, …).
    pub fn subscribe_events(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Waits until attached (the supervisor may be restarting rt-core).
    pub async fn wait_attached(&self, timeout: Duration) -> bool {
        let start = Instant::now();
        while !self.port.is_attached() {
            if start.elapsed() > timeout {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// Sends `command` and waits for rt-core's answer (the lease is held only to send).
    pub async fn command(&self, command: Command) -> Result<CommandStatus, PortError> {
        self.port.command(command, self.port.command_timeout(COMMAND_TIMEOUT)).await
    }

    /// Loads a program library and waits until it is swapped in at a cycle boundary (the
    /// previous program keeps running if the load fails). Warm: the program gets its saved
    /// RETAIN values (when a store holds values of its own); cold: it starts with its initial
    /// values, and once it is in, the store is reset so the old values never come back.
    /// Busy meanwhile.
    pub async fn load(&self, request: LoadRequest<'_>, timeout: Duration) -> Result<LoadResult, PortError> {
        let _busy = self.busy_guard();
        let path = request.path;
        let path = path.to_str().ok_or_else(|| PortError::LoadFailed(format!("{} is not UTF-8", path.display())))?;
        let store = self.retain_store();
        let md5 = request.md5.map(str::to_string);
        let saved = match (request.retain, store.clone()) {
            (RetainStart::Warm, Some(store)) => {
                let logs = self.logs.clone();
                tokio::task::spawn_blocking(move || store.load(md5.as_deref(), &logs)).await.ok().flatten()
            }
            _ => None,
        };
        let live = self.port.retain_saved().filter(|r| r.program_gen != 0).map(|r| Layout::of(&r));
        // Warm even without saved values: rt-core then gives back what its live copy in the
        // shared memory holds for this program (RETAIN values and forces after rt-core was
        // restarted), and the staged file values only when there is no live copy.
        let kind = match (request.online, request.retain) {
            (Some(matched), _) => LoadKind::Online { plan: &matched.plan },
            (None, RetainStart::Warm) => LoadKind::Warm { staged: saved.as_deref() },
            (None, RetainStart::Cold) => LoadKind::Cold,
        };
        let without = self.plugins_without_image_sizes.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if !without.is_empty() {
            self.logs.info(format!(
                "Every image table gets the longest table's length: plugin(s) {} cannot be told per-table sizes (no set_image_sizes)",
                without.join(", ")
            ));
        }
        let image = ImageRequest { configured: request.image, square: !without.is_empty() };
        let loaded = self.port.load(path, request.start, kind, image, timeout).await?;
        let online = request.online.map(|matched| OnlineChange {
            summary: matched.summary.clone(),
            report: self.port.swap_report().filter(|r| r.program_gen == loaded.program_gen).unwrap_or_default(),
        });
        if let Some(change) = &online {
            self.logs.log(if change.done() { Level::Info } else { Level::Warning }, change.describe());
        }
        *self.last_start.lock().unwrap_or_else(|p| p.into_inner()) = Some(LastStart {
            kind: request.retain,
            program_gen: loaded.program_gen,
            stored: saved.as_deref().map(Layout::of),
            live,
            online,
        });
        if let (RetainStart::Cold, Some(store)) = (request.retain, store) {
            let md5 = request.md5.map(str::to_string);
            match tokio::task::spawn_blocking(move || store.reset(md5.as_deref())).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => self.logs.warn(format!("Could not reset the stored RETAIN values: {e}")),
                Err(e) => self.logs.warn(format!("Could not reset the stored RETAIN values: {e}")),
            }
        }
        Ok(loaded)
    }

    /// Records the loaded native plugins that lack `set_image_sizes` (the plugin host says
    /// after it started them); the next load follows.
    pub fn set_plugins_without_image_sizes(&self, names: Vec<String>) {
        *self.plugins_without_image_sizes.lock().unwrap_or_else(|p| p.into_inner()) = names;
    }

    /// Moves rt-core's queued events and log lines into the runtime log (and to event
    /// subscribers). Returns false when not attached.
    pub fn pump(&self) -> bool {
        self.port.drain(
            |event| {
                let (level, text) = describe_event(&event);
                self.logs.log(level, text);
                let _ = self.events.send(event);
            },
            |line| self.logs.log(line.level.into(), format!("[rt-core] {}", line.text.as_str())),
        )
    }
}

/// A log line for an rt-core event.
pub fn describe_event(event: &Event) -> (Level, String) {
    match event {
        Event::StateChanged { state, cycle } => {
            (Level::Info, format!("PLC state changed to {} (cycle {cycle})", state.as_str()))
        }
        Event::ProgramSwapped { program_gen, cycle } => {
            (Level::Info, format!("Program #{program_gen} swapped in at cycle {cycle}"))
        }
        Event::Overruns { new, total, worst_latency_ns } => (
            Level::Warning,
            format!("{new} scan overrun(s), {total} in total; worst wake-up latency {} µs", worst_latency_ns / 1000),
        ),
        Event::ProgramFault { cause, cycle, restart } => (
            Level::Error,
            format!(
                "The program ended with {cause} at cycle {cycle}; the PLC is in ERROR{}",
                if *restart { " (outside its own code: openplc-rt restarts itself in place)" } else { "" }
            ),
        ),
        Event::WatchdogAbort { ran_ns, cycle, restart } => (
            Level::Error,
            format!(
                "Watchdog: a scan ran {:.1} ms at cycle {cycle} and was aborted; the PLC is in ERROR{}",
                *ran_ns as f64 / 1e6,
                if *restart { " (outside the program's code: openplc-rt restarts itself in place)" } else { "" }
            ),
        ),
        Event::Forced { var, forced } => {
            (Level::Info, format!("Debug variable {var} {}", if *forced { "forced" } else { "released" }))
        }
        Event::BadMessage { ring } => {
            (Level::Warning, format!("rt-core discarded an invalid {} message", ring.as_str()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_read_well() {
        let (l, t) = describe_event(&Event::StateChanged { state: PlcState::Running, cycle: 3 });
        assert_eq!(l, Level::Info);
        assert!(t.contains("RUNNING"));
        let cause = shared_abi::msg::FaultCause::Signal(libc::SIGFPE);
        let (l, t) = describe_event(&Event::ProgramFault { cause, cycle: 9, restart: false });
        assert_eq!(l, Level::Error);
        assert!(t.contains("SIGFPE"));
    }

    #[tokio::test]
    async fn a_detached_link_answers_not_attached_and_counts_transitions() {
        let link = RtLink::new(Arc::new(LogHub::in_memory()));
        assert_eq!(link.state(), LinkState { phase: Phase::Detached, busy: 0 });
        assert!(matches!(link.command(Command::Start).await, Err(PortError::NotAttached)));
        assert!(link.port().status().is_none());
        assert!(!link.pump());
        link.set_unavailable(Some("another client holds the lease".into()));
        assert_eq!(link.unavailable().as_deref(), Some("another client holds the lease"));
        {
            let _outer = link.busy_guard();
            let _inner = link.busy_guard();
            assert_eq!(link.state().busy, 2);
        }
        assert!(!link.state().is_busy());
        link.begin_restart();
        assert_eq!(link.state().phase, Phase::Restarting);
        link.end_restart(true);
        assert_eq!(link.state().phase, Phase::SafeMode);
        link.leave_safe_mode();
        assert_eq!(link.state().phase, Phase::Up);
    }
}
