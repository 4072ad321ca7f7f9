//! Child processes that are always stopped, waits with a deadline, and Ctrl-C.
//!
//! A bench starts servers and clients; whatever happens (an error, a panic, Ctrl-C or
//! SIGTERM) it stops every one of them by pid, never by name. Children get their own process
//! group, so a Ctrl-C at the terminal reaches only the bench, which then stops them in order
//! (clients, then the companion, then rt-core, which outlives the companion by design).

use crate::Error;
use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Turns Ctrl-C and SIGTERM into a flag every wait here checks, so the bench unwinds and its
/// guards stop what it started.
pub fn install_interrupt_handler() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: `on_signal` has the handler signature and only stores to a static atomic,
        // which is async-signal-safe; the previous disposition is not needed.
        unsafe { libc::signal(sig, on_signal as *const () as libc::sighandler_t) };
    }
}

pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Returns `Err(Interrupted)` once Ctrl-C was pressed.
pub fn check_interrupt() -> Result<(), Error> {
    if interrupted() { Err(Error::Interrupted) } else { Ok(()) }
}

/// Sleeps `d` in short steps, returning early on Ctrl-C.
pub fn pause(d: Duration) -> Result<(), Error> {
    pause_until(Instant::now() + d)
}

pub fn pause_until(t: Instant) -> Result<(), Error> {
    loop {
        check_interrupt()?;
        let now = Instant::now();
        if now >= t {
            return Ok(());
        }
        std::thread::sleep((t - now).min(Duration::from_millis(50)));
    }
}

/// Sleeps until the CLOCK_MONOTONIC time `t_ns` (the clock rt-core and cyclictest use).
pub fn pause_until_monotonic(t_ns: u64) -> Result<(), Error> {
    loop {
        check_interrupt()?;
        let now = shared_abi::shm::monotonic_ns();
        if now >= t_ns {
            return Ok(());
        }
        std::thread::sleep(Duration::from_nanos(t_ns - now).min(Duration::from_millis(50)));
    }
}

/// Polls `f` until it returns `Some`, the deadline passes or Ctrl-C.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Result<T, Error> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        check_interrupt()?;
        if start.elapsed() > timeout {
            return Err(Error::Timeout { what: what.to_string(), after: timeout });
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Sends `signal` to `pid`.
pub fn signal(pid: u32, signal: libc::c_int) -> std::io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: kill(2) takes any pid and signal number and reports errors through errno; a
    // positive pid names one process (never a group: 0 and negatives are not built above).
    if pid > 0 && unsafe { libc::kill(pid, signal) } == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

/// Whether `pid` is a live process whose command line contains `marker` (a zombie or a
/// recycled pid of another program does not count).
pub fn alive_with(pid: u32, marker: &str) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else { return false };
    let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| rest.starts_with('Z')))
        .unwrap_or(true);
    !zombie && String::from_utf8_lossy(&cmdline).replace('\0', " ").contains(marker)
}

/// Stops a process we did not spawn (rt-core, started by the companion in its own session):
/// SIGTERM, then SIGKILL after `grace`. Only if its command line contains `marker`, so a pid
/// that was recycled by another program is never signalled.
pub fn stop_foreign(pid: u32, marker: &str, grace: Duration) {
    if !alive_with(pid, marker) {
        return;
    }
    let _ = signal(pid, libc::SIGTERM);
    let end = Instant::now() + grace;
    while Instant::now() < end {
        if !alive_with(pid, marker) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = signal(pid, libc::SIGKILL);
}

/// A child that is stopped (SIGTERM, then SIGKILL) and reaped when dropped.
pub struct ChildGuard {
    name: String,
    child: Option<Child>,
}

impl ChildGuard {
    /// Spawns `cmd` in its own process group (Ctrl-C goes to the bench, which stops it).
    pub fn spawn(name: impl Into<String>, cmd: &mut Command) -> Result<ChildGuard, Error> {
        use std::os::unix::process::CommandExt;
        let name = name.into();
        let child = cmd.process_group(0).spawn().map_err(Error::io(format!("starting {name}")))?;
        Ok(ChildGuard { name, child: Some(child) })
    }

    /// Spawns with stdin closed, stdout captured and stderr to `stderr`.
    pub fn spawn_captured(name: impl Into<String>, cmd: &mut Command, stderr: Stdio) -> Result<ChildGuard, Error> {
        ChildGuard::spawn(name, cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(stderr))
    }

    pub fn id(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The exit status if it has exited.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// Waits for the child to exit by itself (up to `timeout`, or Ctrl-C) and returns its
    /// status and standard output.
    pub fn finish(mut self, timeout: Duration) -> Result<(ExitStatus, String), Error> {
        let what = format!("{} to finish", self.name);
        let status = wait_for(&what, timeout, || self.try_status())?;
        let mut out = String::new();
        if let Some(mut stdout) = self.child.as_mut().and_then(|c| c.stdout.take()) {
            stdout.read_to_string(&mut out).map_err(Error::io(format!("reading {}'s output", self.name)))?;
        }
        Ok((status, out))
    }

    /// SIGTERM, up to `grace` to exit, then SIGKILL; always reaped.
    pub fn stop(&mut self, grace: Duration) {
        let Some(mut child) = self.child.take() else { return };
        if child.try_wait().ok().flatten().is_none() {
            let _ = signal(child.id(), libc::SIGTERM);
            let end = Instant::now() + grace;
            while Instant::now() < end && child.try_wait().ok().flatten().is_none() {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
        }
        let _ = child.wait();
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(2));
    }
}
