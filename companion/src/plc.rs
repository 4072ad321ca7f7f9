//! The bridge to rt-core: owns the client lease (`RtClient`) and a read-only `Observer` of
//! the same shared memory, and exposes what handlers, the debugger and plugins need.
//!
//! How to use it without slowing anyone down:
//! - Reads (status, statistics, histogram, outputs, debug values, load results) go through
//!   [`PlcBridge::observer`]: lock-free seqlock copies, fine to call from async code.
//! - Writes (commands, inputs, image writes, the watch list, draining rings) need the lease:
//!   [`PlcBridge::with_client`] runs a closure on the blocking pool under a mutex held
//!   only for that closure, or [`PlcBridge::with_client_blocking`] from a plugin's own
//!   thread. Closures must be short: never wait for a scan inside one (send, then poll the
//!   observer, as [`PlcBridge::command`] and [`PlcBridge::load`] do).

use crate::logs::{Level, LogHub};
use crate::retain::RetainStore;
use shared_abi::client::{ClientError, Observer, Reader, RtClient, Status};
use shared_abi::debug::{DebugValues, LoadOutcome, LoadResult};
use shared_abi::layout::PlcState;
use shared_abi::msg::{Command, CommandStatus, Event, LogLevel, MAX_PATH};
use shared_abi::stats::{HistogramSnapshot, Stats};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

#[derive(Debug, thiserror::Error)]
pub enum PlcError {
    #[error("openplc-rt is not attached")]
    NotAttached,
    #[error("{0}")]
    Client(#[from] ClientError),
    #[error("rt-core answered: {}", .0.as_str())]
    Refused(CommandStatus),
    #[error("program load failed: {0}")]
    LoadFailed(String),
    #[error("no answer from rt-core within {0:?}")]
    Timeout(Duration),
    #[error("program path longer than {MAX_PATH} bytes: {0}")]
    PathTooLong(String),
    #[error("internal: {0}")]
    Internal(String),
}

pub struct PlcBridge {
    client: Arc<Mutex<Option<RtClient>>>,
    observer: RwLock<Option<Arc<Observer>>>,
    busy: AtomicU32,
    /// Set by the supervisor while it restarts rt-core.
    restarting: AtomicBool,
    /// Set after repeated rt-core crashes: the program stays unloaded and the PLC reports
    /// ERROR until a program is uploaded or started again.
    safe_mode: AtomicBool,
    /// When a program was last deployed or safe mode left: crashes before it no longer
    /// count towards safe mode.
    fresh_start: Mutex<Instant>,
    events: broadcast::Sender<Event>,
    logs: Arc<LogHub>,
    /// Where RETAIN values are kept, when retain is on.
    retain: OnceLock<Arc<RetainStore>>,
}

/// Marks a transition (a load) under way while alive.
pub struct BusyGuard<'a>(&'a AtomicU32);

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl PlcBridge {
    pub fn new(logs: Arc<LogHub>) -> PlcBridge {
        PlcBridge {
            client: Arc::new(Mutex::new(None)),
            observer: RwLock::new(None),
            busy: AtomicU32::new(0),
            restarting: AtomicBool::new(false),
            safe_mode: AtomicBool::new(false),
            fresh_start: Mutex::new(Instant::now()),
            events: broadcast::channel(256).0,
            logs,
            retain: OnceLock::new(),
        }
    }

    /// Turns retain on: warm loads give the program its saved RETAIN values.
    pub fn set_retain_store(&self, store: Arc<RetainStore>) {
        let _ = self.retain.set(store);
    }

    pub fn retain_store(&self) -> Option<&Arc<RetainStore>> {
        self.retain.get()
    }

    /// Installs a freshly opened client and observer (the supervisor does this).
    pub fn attach(&self, client: RtClient, observer: Observer) {
        *self.client.lock().unwrap_or_else(|p| p.into_inner()) = Some(client);
        *self.observer.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(observer));
    }

    /// Drops the client (and with it the lease) and the observer.
    pub fn detach(&self) {
        *self.observer.write().unwrap_or_else(|p| p.into_inner()) = None;
        *self.client.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    pub fn is_attached(&self) -> bool {
        self.observer.read().unwrap_or_else(|p| p.into_inner()).is_some()
    }

    /// The read-only view of the shared memory, while attached.
    pub fn observer(&self) -> Result<Arc<Observer>, PlcError> {
        self.observer.read().unwrap_or_else(|p| p.into_inner()).clone().ok_or(PlcError::NotAttached)
    }

    pub fn status(&self) -> Option<Status> {
        self.observer().ok().map(|o| o.status())
    }

    pub fn state(&self) -> Option<PlcState> {
        self.status().map(|s| s.state)
    }

    pub fn stats(&self) -> Option<Stats> {
        self.observer().ok().and_then(|o| o.stats().ok())
    }

    pub fn histogram(&self) -> Option<Box<HistogramSnapshot>> {
        self.observer().ok().map(|o| o.histogram())
    }

    /// rt-core's events as they are drained (state changes, faults, forces, …).
    pub fn subscribe_events(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Whether a load is under way.
    pub fn is_busy(&self) -> bool {
        self.busy.load(Ordering::Acquire) > 0
    }

    pub fn is_restarting(&self) -> bool {
        self.restarting.load(Ordering::Acquire)
    }

    pub fn set_restarting(&self, on: bool) {
        self.restarting.store(on, Ordering::Release);
    }

    pub fn in_safe_mode(&self) -> bool {
        self.safe_mode.load(Ordering::Acquire)
    }

    /// Enters safe mode, or leaves it (a program was deployed or started on request),
    /// which also forgets earlier crashes.
    pub fn set_safe_mode(&self, on: bool) {
        if !on {
            *self.fresh_start.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        }
        self.safe_mode.store(on, Ordering::Release);
    }

    /// Since when crashes count towards safe mode.
    pub fn fresh_start(&self) -> Instant {
        *self.fresh_start.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until attached (the supervisor may be restarting rt-core).
    pub async fn wait_attached(&self, timeout: Duration) -> bool {
        let start = Instant::now();
        while !self.is_attached() {
            if start.elapsed() > timeout {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    pub fn busy_guard(&self) -> BusyGuard<'_> {
        self.busy.fetch_add(1, Ordering::AcqRel);
        BusyGuard(&self.busy)
    }

    /// Runs `f` with the client on the blocking pool.
    pub async fn with_client<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut RtClient) -> R + Send + 'static,
    ) -> Result<R, PlcError> {
        let client = self.client.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = client.lock().unwrap_or_else(|p| p.into_inner());
            guard.as_mut().map(f).ok_or(PlcError::NotAttached)
        })
        .await
        .map_err(|e| PlcError::Internal(e.to_string()))?
    }

    /// Runs `f` with the client on the calling thread (plugins' own threads).
    pub fn with_client_blocking<R>(&self, f: impl FnOnce(&mut RtClient) -> R) -> Result<R, PlcError> {
        let mut guard = self.client.lock().unwrap_or_else(|p| p.into_inner());
        guard.as_mut().map(f).ok_or(PlcError::NotAttached)
    }

    /// How long to wait for the scan thread: commands are applied at cycle start, so a
    /// slow task period needs a longer wait.
    pub fn command_timeout(&self) -> Duration {
        let period = self.status().map(|s| s.period_ns).unwrap_or(0);
        Duration::from_secs(3).max(Duration::from_nanos(period.saturating_mul(3)))
    }

    /// Sends `command` and waits for the scan thread's answer without holding the lease.
    pub async fn command(&self, command: Command) -> Result<CommandStatus, PlcError> {
        let timeout = self.command_timeout();
        let seq = self.with_client(move |c| c.send(command)).await??;
        self.wait_result(seq, timeout).await
    }

    async fn wait_result(&self, seq: u32, timeout: Duration) -> Result<CommandStatus, PlcError> {
        self.poll(timeout, Duration::from_millis(1), |obs| match obs.shm().control.result_of(seq) {
            Some(code) => {
                CommandStatus::from_u32(code).map(Some).ok_or(PlcError::Client(ClientError::Torn("command result")))
            }
            None => Ok(None),
        })
        .await
    }

    /// Polls `check` against the observer every `every` until it answers, rt-core dies, or
    /// `timeout` passes. Holds no lock between polls.
    async fn poll<T>(
        &self,
        timeout: Duration,
        every: Duration,
        mut check: impl FnMut(&Observer) -> Result<Option<T>, PlcError>,
    ) -> Result<T, PlcError> {
        let obs = self.observer()?;
        let start = Instant::now();
        let mut alive_checked = start;
        loop {
            if let Some(v) = check(&obs)? {
                return Ok(v);
            }
            if alive_checked.elapsed() > Duration::from_millis(100) {
                if !obs.rt_alive() {
                    return Err(PlcError::Client(ClientError::RtGone));
                }
                alive_checked = Instant::now();
            }
            if start.elapsed() > timeout {
                return Err(PlcError::Timeout(timeout));
            }
            tokio::time::sleep(every).await;
        }
    }

    /// Sends `command` and waits for the answer on the calling thread (a blocking-pool or
    /// plugin thread, never a tokio worker), holding the lease only to send.
    pub fn command_blocking(&self, command: Command) -> Result<CommandStatus, PlcError> {
        let timeout = self.command_timeout();
        let seq = self.with_client_blocking(move |c| c.send(command))??;
        let obs = self.observer()?;
        let start = Instant::now();
        loop {
            if let Some(code) = obs.shm().control.result_of(seq) {
                return CommandStatus::from_u32(code).ok_or(PlcError::Client(ClientError::Torn("command result")));
            }
            if start.elapsed() > timeout {
                return Err(if obs.rt_alive() {
                    PlcError::Timeout(timeout)
                } else {
                    PlcError::Client(ClientError::RtGone)
                });
            }
            std::thread::sleep(Duration::from_micros(500));
        }
    }

    /// rt-core's loop counter, 0 while not attached (one atomic load).
    pub fn heartbeat(&self) -> u64 {
        self.observer().map(|o| o.shm().header.heartbeat.load(Ordering::Acquire)).unwrap_or(0)
    }

    /// Replaces the watch list; returns its generation (for [`Self::wait_debug_values`]).
    pub async fn set_watch(&self, vars: Vec<u32>) -> Result<u32, PlcError> {
        self.with_client(move |c| c.set_watch(&vars)).await
    }

    /// Waits, without holding the lease, for debug values that answer watch generation
    /// `generation` and were taken in a cycle after `after_cycle`.
    pub async fn wait_debug_values(
        &self,
        generation: u32,
        after_cycle: u64,
        timeout: Duration,
    ) -> Result<Box<DebugValues>, PlcError> {
        self.poll(timeout, Duration::from_millis(1), |obs| {
            let values = obs.debug_values()?;
            Ok((values.watch_generation == generation && values.cycle > after_cycle).then_some(values))
        })
        .await
    }

    /// Loads a program library and waits until it is swapped in at a cycle boundary (the
    /// previous program keeps running if the load fails). rt-core copies the file before
    /// loading it, so it may be replaced afterwards. `warm`: the program gets its saved
    /// RETAIN values (when retain is on and they are its own); otherwise it starts cold.
    pub async fn load(&self, path: &Path, start: bool, warm: bool, timeout: Duration) -> Result<LoadResult, PlcError> {
        let _busy = self.busy_guard();
        let path = path.to_str().ok_or_else(|| PlcError::PathTooLong(path.display().to_string()))?;
        if path.len() > MAX_PATH {
            return Err(PlcError::PathTooLong(path.to_string()));
        }
        let bounded = shared_abi::msg::bounded::<MAX_PATH>(path);
        let saved = match (warm, self.retain.get().cloned()) {
            (true, Some(store)) => {
                let logs = self.logs.clone();
                tokio::task::spawn_blocking(move || store.saved(&logs)).await.ok().flatten()
            }
            _ => None,
        };
        // Warm even without saved values: rt-core then gives back what its live copy in the
        // shared memory holds for this program (RETAIN values and forces after rt-core was
        // restarted), and the staged file values only when there is no live copy.
        let seq = self
            .with_client(move |c| {
                c.stage_retain(saved.as_deref());
                c.send(Command::Load { path: bounded, start, warm })
            })
            .await??;
        match self.wait_result(seq, timeout).await? {
            CommandStatus::Accepted => {}
            other => return Err(PlcError::Refused(other)),
        }
        self.poll(timeout, Duration::from_millis(2), |obs| {
            let result = obs.load_result()?;
            if result.request_seq != seq || result.outcome() == LoadOutcome::Pending {
                return Ok(None);
            }
            if result.outcome() == LoadOutcome::Failed {
                return Err(PlcError::LoadFailed(result.message_str().to_string()));
            }
            // Loaded: done once it is swapped in at a cycle boundary.
            Ok((obs.shm().header.program_gen.load(Ordering::Acquire) == result.program_gen).then_some(result))
        })
        .await
    }

    /// Moves rt-core's queued events and log lines into the runtime log (and to event
    /// subscribers). Returns false when not attached.
    pub async fn pump(&self) -> bool {
        let drained = self
            .with_client(|c| {
                let mut events = Vec::new();
                let mut lines = Vec::new();
                c.drain_events(|e| events.push(e));
                c.drain_logs(|l| lines.push(l));
                (events, lines)
            })
            .await;
        let Ok((events, lines)) = drained else { return false };
        for line in lines {
            let level = match line.level {
                LogLevel::Debug => Level::Debug,
                LogLevel::Info => Level::Info,
                LogLevel::Warning => Level::Warning,
                LogLevel::Error => Level::Error,
            };
            self.logs.log(level, format!("[rt-core] {}", line.text.as_str()));
        }
        for event in events {
            let (level, text) = describe_event(&event);
            self.logs.log(level, text);
            let _ = self.events.send(event);
        }
        true
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

pub fn signal_name(signal: i32) -> String {
    shared_abi::msg::signal_name(signal).to_string()
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
    async fn detached_bridge_answers_not_attached() {
        let bridge = PlcBridge::new(Arc::new(LogHub::in_memory()));
        assert!(!bridge.is_attached());
        assert!(matches!(bridge.command(Command::Start).await, Err(PlcError::NotAttached)));
        assert!(bridge.status().is_none());
        assert!(!bridge.pump().await);
        {
            let _g = bridge.busy_guard();
            assert!(bridge.is_busy());
        }
        assert!(!bridge.is_busy());
    }
}
