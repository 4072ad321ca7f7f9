//! Supervision of rt-core (`openplc-rt`).
//!
//! - At start: if an rt-core already holds the shared memory (the companion was restarted
//!   or upgraded), attach to it as it is: the PLC keeps running, nothing is reloaded.
//!   Otherwise start `openplc-rt run` in its own session, so that it outlives the companion,
//!   and load the last good program (started if it was running).
//! - While running: if rt-core dies, log it, start it again and reload the program. Three
//!   deaths within 30 s mean the program itself is the likely cause: rt-core is restarted
//!   empty and the PLC reports ERROR (upstream's safe mode) until a program is uploaded or
//!   started again.
//!
//! The companion never stops rt-core, not even when it exits itself.
//!
//! With `rt_external` rt-core is started and restarted by its own service (on a device,
//! scripts/install's `openplc-rt.service`, as its own unprivileged account): the companion
//! never starts one, it waits for the service's and attaches to it, and recovers the
//! program after a restart as above. With `rt_user` (a companion running as root) it starts
//! `openplc-rt run --user NAME`, which drops root keeping what real time needs.

use crate::adoption::{self, OwnProgram};
use crate::logs::LogHub;
use crate::program::store::ProgramStore;
use crate::rt_link::{LoadRequest, Phase, RetainStart, RtLink};
use crate::settings::Settings;
use shared_abi::client::{ClientError, Observer, Reader, RtClient};
use shared_abi::layout::PlcState;
use shared_abi::shm::{ShmError, rt_alive, shm_path};
use std::collections::VecDeque;
use std::fs::OpenOptions;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

pub const CRASH_LIMIT: usize = 3;
pub const CRASH_WINDOW: Duration = Duration::from_secs(30);
const ATTACH_TIMEOUT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(100);
const PROGRAM_LOAD_TIMEOUT: Duration = Duration::from_secs(30);

/// How a child rt-core ended, from its reaper thread.
type ExitReport = (u32, std::io::Result<ExitStatus>);

pub struct Supervisor {
    settings: Settings,
    plc: Arc<RtLink>,
    logs: Arc<LogHub>,
    store: Arc<dyn CurrentProgram>,
    crashes: Mutex<VecDeque<Instant>>,
    exits: Mutex<Option<mpsc::UnboundedReceiver<ExitReport>>>,
    exit_tx: mpsc::UnboundedSender<ExitReport>,
}

/// What the supervisor needs to know about programs (kept narrow for tests).
pub trait CurrentProgram: Send + Sync {
    /// The last good program: its library, whether the PLC should run it, its MD5.
    fn current_program(&self) -> Option<Current>;
}

/// The last good program, as the supervisor restores it.
pub struct Current {
    pub library: std::path::PathBuf,
    pub run: bool,
    pub md5: Option<String>,
}

impl CurrentProgram for ProgramStore {
    fn current_program(&self) -> Option<Current> {
        let state = self.state();
        self.current().map(|r| Current { library: r.library(), run: state.run, md5: state.md5 })
    }
}

impl<T: CurrentProgram> CurrentProgram for Arc<T> {
    fn current_program(&self) -> Option<Current> {
        (**self).current_program()
    }
}

impl Supervisor {
    pub fn new(settings: Settings, plc: Arc<RtLink>, logs: Arc<LogHub>, store: Arc<dyn CurrentProgram>) -> Supervisor {
        let (exit_tx, exit_rx) = mpsc::unbounded_channel();
        Supervisor {
            settings,
            plc,
            logs,
            store,
            crashes: Mutex::new(VecDeque::new()),
            exits: Mutex::new(Some(exit_rx)),
            exit_tx,
        }
    }

    /// Attaches to a running rt-core or starts one, restores the program, then keeps
    /// watching in the background.
    pub async fn start(self: &Arc<Self>) -> anyhow::Result<()> {
        let path = shm_path(&self.settings.shm);
        if rt_alive(&path) {
            self.check_adoption(&path)?;
            self.attach().await?;
            let st = self.plc.port().status();
            let (state, pid) = st.map(|s| (s.state, s.rt_pid)).unwrap_or((PlcState::Empty, 0));
            self.logs.info(format!(
                "Attached to the running openplc-rt (pid {pid}); the PLC is {} and was left as it is",
                state.as_str()
            ));
            if state == PlcState::Empty {
                self.restore_program(false).await;
            }
        } else {
            self.spawn_and_attach().await?;
            self.restore_program(false).await;
        }
        let this = self.clone();
        tokio::spawn(async move { this.watch().await });
        Ok(())
    }

    /// Refuses an rt-core that runs another installation's program (see `adoption`).
    fn check_adoption(&self, path: &std::path::Path) -> anyhow::Result<()> {
        let Ok(observer) = Observer::open(&self.settings.shm) else {
            // Not readable yet (or gone): attaching says why.
            return Ok(());
        };
        let Ok(info) = observer.program_info() else { return Ok(()) };
        let own = OwnProgram {
            data_dir: self.settings.data_dir.clone(),
            md5: self.store.current_program().and_then(|c| c.md5),
        };
        match adoption::judge(&info, &own).refusal(path, observer.status().rt_pid) {
            Some(refusal) => {
                self.plc.set_unavailable(Some(refusal.clone()));
                Err(anyhow::anyhow!(refusal))
            }
            None => Ok(()),
        }
    }

    async fn watch(self: Arc<Self>) {
        let mut exits = self.exits.lock().unwrap_or_else(|p| p.into_inner()).take();
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut exit_info: Option<String> = None;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                Some((pid, status)) = async { match exits.as_mut() { Some(rx) => rx.recv().await, None => std::future::pending().await } } => {
                    exit_info = Some(describe_exit(pid, status));
                }
            }
            self.plc.pump();
            let alive = self.plc.port().rt_alive();
            if alive {
                continue;
            }
            // The reaper may report the exit a moment after the flock is gone.
            if exit_info.is_none()
                && let Some(rx) = exits.as_mut()
                && let Ok(Ok((pid, status))) =
                    tokio::time::timeout(Duration::from_millis(50), rx.recv()).await.map(|o| o.ok_or(()))
            {
                exit_info = Some(describe_exit(pid, status));
            }
            self.recover(exit_info.take()).await;
        }
    }

    /// rt-core is gone: restart it, reload the program unless it keeps crashing.
    async fn recover(&self, exit_info: Option<String>) {
        let was_safe = self.plc.state().phase == Phase::SafeMode;
        let pid = self.plc.port().status().map(|s| s.rt_pid).unwrap_or(0);
        self.plc.pump();
        self.plc.begin_restart();
        let how = exit_info.unwrap_or_else(|| format!("openplc-rt (pid {pid}) stopped"));
        let recent = {
            let mut crashes = self.crashes.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            let fresh = self.plc.fresh_start();
            crashes.push_back(now);
            while crashes.front().is_some_and(|t| now.duration_since(*t) > CRASH_WINDOW || *t < fresh) {
                crashes.pop_front();
            }
            crashes.len()
        };
        let next = if self.settings.rt_external { "waiting for its service to restart it" } else { "restarting it" };
        self.logs.error(format!("{how}; {next}"));
        let mut backoff = Duration::from_millis(200);
        loop {
            match self.spawn_and_attach().await {
                Ok(()) => break,
                Err(e) => {
                    self.logs.error(format!("Could not restart openplc-rt: {e:#}; retrying in {backoff:?}"));
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
        if recent >= CRASH_LIMIT {
            self.logs.error(format!(
                "openplc-rt stopped {recent} times within {} s: safe mode. The program was not reloaded and the PLC \
                 reports ERROR until a program is uploaded or the PLC is started again",
                CRASH_WINDOW.as_secs()
            ));
        } else if !was_safe {
            self.restore_program(true).await;
        }
        // Safe mode outlives a crash of the empty rt-core it holds.
        self.plc.end_restart(was_safe || recent >= CRASH_LIMIT);
    }

    /// Loads the last good program into an empty rt-core, started if it was running.
    async fn restore_program(&self, after_crash: bool) {
        let Some(Current { library, run, md5 }) = self.store.current_program() else {
            if !after_crash {
                self.logs.info("No program yet: upload one from the OpenPLC Editor");
            }
            return;
        };
        let image = crate::program::image_conf::configured_for_library(&library);
        let request = LoadRequest {
            path: &library,
            start: run,
            retain: RetainStart::Warm,
            md5: md5.as_deref(),
            online: None,
            image,
        };
        match self.plc.load(request, PROGRAM_LOAD_TIMEOUT).await {
            Ok(r) => self.logs.info(format!(
                "Loaded the last program (#{}){}",
                r.program_gen,
                if run { " and started it" } else { "; it stays stopped as it was" }
            )),
            Err(e) => self.logs.error(format!("Could not load the last program {}: {e}", library.display())),
        }
    }

    /// Starts `openplc-rt run` in its own session (or, with `rt_external`, waits for its
    /// service to start one) and attaches to it.
    async fn spawn_and_attach(&self) -> anyhow::Result<()> {
        let path = shm_path(&self.settings.shm);
        // rt-core drops commands queued before its engine exists; the engine's first cycle
        // moves the heartbeat, so wait for that before sending anything.
        let heartbeat_before = Observer::open(&self.settings.shm).map(|o| o.status().heartbeat).unwrap_or(0);
        let child_pid = if self.settings.rt_external { None } else { Some(self.spawn()?) };
        let start = Instant::now();
        let pid = loop {
            if rt_alive(&path)
                && let Ok(obs) = Observer::open(&self.settings.shm)
                && let status = obs.status()
                && status.rt_pid != 0
                && child_pid.is_none_or(|pid| status.rt_pid == pid)
                && status.heartbeat != heartbeat_before
            {
                break status.rt_pid;
            }
            if start.elapsed() > ATTACH_TIMEOUT {
                match child_pid {
                    Some(pid) => anyhow::bail!(
                        "openplc-rt (pid {pid}) did not set up {} within {ATTACH_TIMEOUT:?}; see logs/openplc-rt.log",
                        path.display()
                    ),
                    None => anyhow::bail!(
                        "no openplc-rt came up on {} within {ATTACH_TIMEOUT:?}; it is started by its own service \
                         (rt_external): see `systemctl status openplc-rt`",
                        path.display()
                    ),
                }
            }
            if let Some(pid) = child_pid
                && !process_exists(pid)
            {
                anyhow::bail!("openplc-rt (pid {pid}) exited at start; see logs/openplc-rt.log");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        if child_pid.is_some() {
            self.logs.info(format!("Started openplc-rt (pid {pid})"));
        } else {
            self.logs.info(format!("openplc-rt (pid {pid}) is up, started by its own service"));
        }
        self.attach().await
    }

    /// Opens the client lease and an observer.
    async fn attach(&self) -> anyhow::Result<()> {
        let name = self.settings.shm.clone();
        let start = Instant::now();
        loop {
            let n = name.clone();
            let opened = tokio::task::spawn_blocking(move || -> Result<(RtClient, Observer), ClientError> {
                let client = RtClient::open(&n)?;
                let observer = Observer::open(&n)?;
                Ok((client, observer))
            })
            .await?;
            match opened {
                Ok((client, observer)) => {
                    self.plc.attach(client, observer);
                    return Ok(());
                }
                Err(ClientError::Shm(e @ ShmError::ClientAttached { .. })) => {
                    let why = format!(
                        "openplc-rt is running, but another client holds its lease: {e} (another openplc-runtime on \
                         this shared memory, or the control tool)"
                    );
                    self.plc.set_unavailable(Some(why.clone()));
                    anyhow::bail!(why)
                }
                Err(ClientError::Shm(e @ ShmError::Attach(..)))
                | Err(ClientError::Shm(e @ ShmError::IncompatibleInUse(..)))
                    if start.elapsed() > ATTACH_TIMEOUT =>
                {
                    anyhow::bail!("{e}")
                }
                Err(e) if start.elapsed() > ATTACH_TIMEOUT => anyhow::bail!("cannot attach to openplc-rt: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }

    fn spawn(&self) -> anyhow::Result<u32> {
        let bin = &self.settings.rt_binary;
        if !bin.exists() {
            anyhow::bail!("{} not found (set --rt-binary)", bin.display());
        }
        let log_dir = self.settings.data_dir.join("logs");
        std::fs::create_dir_all(&log_dir)?;
        let log = OpenOptions::new().create(true).append(true).open(log_dir.join("openplc-rt.log"))?;
        let mut cmd = Command::new(bin);
        cmd.args(run_args(&self.settings));
        cmd.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
        // SAFETY: setsid is async-signal-safe and touches no memory of the parent; its own
        // session keeps rt-core alive when the companion (or its terminal) goes away.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|e| anyhow::anyhow!("cannot start {}: {e}", bin.display()))?;
        let pid = child.id();
        let tx = self.exit_tx.clone();
        // Reap it (no zombie while the companion lives) and report how it ended.
        std::thread::Builder::new().name("rt-reaper".into()).spawn(move || {
            let status = child.wait();
            let _ = tx.send((pid, status));
        })?;
        Ok(pid)
    }
}

/// `openplc-rt run` and its options, from the settings.
fn run_args(settings: &Settings) -> Vec<String> {
    let mut args =
        vec!["run".into(), "--shm".into(), settings.shm.clone(), "--cpu".into(), settings.rt_cpu.to_string()];
    if let Some(p) = settings.rt_priority {
        args.extend(["--priority".into(), p.to_string()]);
    }
    if let Some(w) = settings.rt_watchdog_ms {
        args.extend(["--watchdog-ms".into(), w.to_string()]);
    }
    if let Some(user) = &settings.rt_user {
        // rt-core drops root for this account, keeping CAP_SYS_NICE and CAP_IPC_LOCK.
        args.extend(["--user".into(), user.clone()]);
    }
    args
}

fn describe_exit(pid: u32, status: std::io::Result<ExitStatus>) -> String {
    match status {
        Ok(s) => match (s.code(), s.signal()) {
            (Some(code), _) => format!("openplc-rt (pid {pid}) exited with status {code}"),
            (_, Some(sig)) => format!("openplc-rt (pid {pid}) was killed by signal {sig}"),
            _ => format!("openplc-rt (pid {pid}) ended"),
        },
        Err(e) => format!("openplc-rt (pid {pid}) ended ({e})"),
    }
}

fn process_exists(pid: u32) -> bool {
    // SAFETY: kill with signal 0 only checks for existence and permission.
    let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Options;

    #[test]
    fn rt_core_is_asked_to_become_rt_user() {
        let dir = tempfile::tempdir().unwrap();
        let opts = Options { data_dir: Some(dir.path().into()), shm: Some("x".into()), ..Default::default() };
        let settings = Settings::resolve(&opts).unwrap();
        assert_eq!(run_args(&settings), ["run", "--shm", "x", "--cpu", "auto"]);
        let opts = Options { rt_user: Some("openplc-rt".into()), rt_priority: Some(40), ..opts };
        let settings = Settings::resolve(&opts).unwrap();
        assert_eq!(
            run_args(&settings),
            ["run", "--shm", "x", "--cpu", "auto", "--priority", "40", "--user", "openplc-rt"]
        );
    }
}
