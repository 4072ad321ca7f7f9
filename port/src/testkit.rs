//! A real rt-core for tests (feature `testkit`): `openplc-rt run` on a private shared-memory
//! file in a temporary directory, stopped when dropped, and rt-core's own test program.
//! Tests find `openplc-rt` next to their executable's directory, so build it first
//! (`cargo build -p rt-core`, same target directory).

use crate::{LogSink, PlcPort};
use shared_abi::client::{Observer, Reader};
use shared_abi::sizes::{ImageRequest, ImageSizes};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long start-up steps may take on a loaded machine.
pub const DEADLINE: Duration = Duration::from_secs(20);
/// The fixture's period in tests built with [`build_fixture`] (unless `PERIOD_NS` is given).
pub const FIXTURE_PERIOD_NS: u64 = 2_000_000;

/// The repository root (found by its contents, whatever the crate's depth).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .find(|p| p.join("rt-core/tests/fixtures").is_dir())
        .expect("the repository root is above the crate")
        .to_path_buf()
}

/// `openplc-rt` in the target directory the running test was built into.
pub fn rt_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let bin = exe.parent().and_then(Path::parent).expect("target directory").join("openplc-rt");
    assert!(bin.exists(), "{} is missing: run `cargo build -p rt-core` (same CARGO_TARGET_DIR) first", bin.display());
    bin
}

/// rt-core's test program (`rt-core/tests/fixtures/abi_program.c`: %MW0 counts scans,
/// %QX0.0 = %IX0.0, %QW0 = 2 × %IW0; seven debug variables) built with `defines` into
/// `dir/name`, at a 2 ms period unless a `PERIOD_NS=` define says otherwise.
pub fn build_fixture(dir: &Path, name: &str, defines: &[&str]) -> PathBuf {
    let period = format!("PERIOD_NS={FIXTURE_PERIOD_NS}ULL");
    let mut all: Vec<&str> = defines.to_vec();
    if !defines.iter().any(|d| d.starts_with("PERIOD_NS=")) {
        all.push(&period);
    }
    build_program(dir, name, &repo_root().join("rt-core/tests/fixtures/abi_program.c"), &all)
}

/// A program written in C against the program ABI (`source`), built with `-D` `defines`
/// into the shared library `dir/name`.
pub fn build_program(dir: &Path, name: &str, source: &Path, defines: &[&str]) -> PathBuf {
    let out = dir.join(name);
    let mut cmd = Command::new("cc");
    cmd.args(["-shared", "-fPIC", "-O2", "-o"]).arg(&out).arg("-I").arg(repo_root().join("shared-abi/include"));
    for d in defines {
        cmd.arg(format!("-D{d}"));
    }
    cmd.arg(source);
    assert!(cmd.status().expect("cc must be installed").success(), "building {} failed", source.display());
    out
}

/// Polls `f` until it gives a value; panics naming `what` after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A running `openplc-rt run` (idle period 2 ms, no CPU pinning, FIFO priority 10 when
/// permitted) on its own shared-memory file; killed when dropped.
pub struct Rt {
    child: Child,
    pub shm: String,
    pub dir: tempfile::TempDir,
}

impl Rt {
    /// An rt-core with no program.
    pub fn start() -> Rt {
        let dir = tempfile::tempdir().expect("temp dir");
        let shm = dir.path().join("shm").to_string_lossy().into_owned();
        let child = spawn(&shm, dir.path());
        let mut rt = Rt { child, shm, dir };
        rt.wait_up();
        rt
    }

    /// An rt-core running the test program built with `defines` (see [`build_fixture`]).
    pub fn with_fixture(defines: &[&str]) -> Rt {
        let rt = Rt::start();
        let program = build_fixture(rt.dir.path(), "fixture.so", defines);
        rt.load(&program);
        rt
    }

    /// Loads and starts `program` through a port that is dropped afterwards, so the lease
    /// is free for the test's own.
    /// Every table at 1024 elements (the size they all had before sizes were per
    /// program), so protocol tests can reach cells the fixture does not locate.
    pub fn load(&self, program: &Path) {
        let legacy = ImageRequest { configured: ImageSizes::LEGACY, square: false };
        self.load_sized(program, legacy);
    }

    /// `load` with the table sizes an upload's `image.conf` would configure.
    pub fn load_sized(&self, program: &Path, image: ImageRequest) {
        let port = self.port();
        port.load_blocking(&program.to_string_lossy(), true, crate::LoadKind::Cold, image, DEADLINE)
            .unwrap_or_else(|e| panic!("loading {}: {e}; rt-core said: {}", program.display(), self.log()));
    }

    /// A port holding this rt-core's client lease, its log lines dropped.
    pub fn port(&self) -> Arc<PlcPort> {
        self.port_with_log(LogSink::discard())
    }

    pub fn port_with_log(&self, log: LogSink) -> Arc<PlcPort> {
        // A lease just released may linger for a moment: a process that another test
        // thread forks holds a copy of every descriptor until it execs.
        wait_for("the client lease", DEADLINE, || PlcPort::open(&self.shm, log.clone()).ok())
    }

    pub fn observer(&self) -> Observer {
        Observer::open(&self.shm).expect("observer")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Freezes the process (SIGSTOP): its loop stops turning but it still holds the file.
    /// Returns once every thread has stopped (a signal is delivered asynchronously).
    pub fn pause(&self) {
        signal(self.pid(), "-STOP");
        let tasks = PathBuf::from(format!("/proc/{}/task", self.pid()));
        wait_for("every thread of openplc-rt to stop", DEADLINE, || {
            let all_stopped = std::fs::read_dir(&tasks).ok()?.flatten().all(|t| {
                let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
                // The state follows the parenthesised command name.
                matches!(stat.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next()), Some('T' | 't'))
            });
            all_stopped.then_some(())
        });
    }

    /// Lets a paused process run on (SIGCONT).
    pub fn resume(&self) {
        signal(self.pid(), "-CONT");
    }

    /// Kills the process (SIGKILL) and reaps it; the file stays behind.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether the process has ended (and reaps it).
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Kills this rt-core and starts another on the same file, which takes it over.
    pub fn replace(&mut self) {
        self.kill();
        self.child = spawn(&self.shm, self.dir.path());
        self.wait_up();
    }

    /// What rt-core wrote on stderr.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("rt.log")).unwrap_or_default()
    }

    fn wait_up(&mut self) {
        let pid = self.child.id();
        let first = wait_for("openplc-rt to come up", DEADLINE, || {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("openplc-rt exited at start ({status}): {}", self.log());
            }
            let s = Observer::open(&self.shm).ok()?.status();
            (s.rt_alive && s.rt_pid == pid).then_some(s.heartbeat)
        });
        // Its engine runs once the loop turns; commands sent before are not lost, but a
        // test should not race the start-up.
        wait_for("openplc-rt's loop to turn", DEADLINE, || {
            (self.observer().status().heartbeat > first + 1).then_some(())
        });
    }
}

impl Drop for Rt {
    fn drop(&mut self) {
        self.resume();
        self.kill();
    }
}

fn spawn(shm: &str, dir: &Path) -> Child {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("rt.log")).expect("rt.log");
    Command::new(rt_binary())
        .args(["--shm", shm, "run", "--cpu", "none", "--priority", "10", "--idle-period-us", "2000"])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn openplc-rt")
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill").arg(sig).arg(pid.to_string()).stderr(Stdio::null()).status();
}
