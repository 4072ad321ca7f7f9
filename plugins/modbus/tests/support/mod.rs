//! Shared by the Modbus plugin's integration tests: a real `openplc-rt` on a private
//! shared-memory file running rt-core's test program, an in-memory PLC for protocol edge
//! cases, and guards that kill every process a test starts.
#![allow(dead_code)]

use openplc_modbus::{PlcImage, PlcWriteError, RtClientImage};
use shared_abi::client::{Observer, Reader, RtClient};
use shared_abi::image::{Area, IecAddress, InputImage};
use shared_abi::layout::OutputSnapshot;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn py(script: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py").join(script)
}

/// `openplc-rt`, built by `cargo build -p rt-core` into the same target directory.
pub fn rt_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> → target/<profile>/openplc-rt
    let bin = exe.parent().and_then(Path::parent).map(|d| d.join("openplc-rt")).expect("target directory");
    assert!(bin.exists(), "{} is missing: run `cargo build -p rt-core` (same CARGO_TARGET_DIR) first", bin.display());
    bin
}

/// Compiles rt-core's test program with `defines` into `dir/name`.
pub fn build_fixture(dir: &Path, name: &str, defines: &[&str]) -> PathBuf {
    let out = dir.join(name);
    let mut cmd = Command::new("cc");
    cmd.args(["-shared", "-fPIC", "-O2", "-o"]).arg(&out);
    cmd.arg("-I").arg(repo_root().join("shared-abi/include"));
    for d in defines {
        cmd.arg(format!("-D{d}"));
    }
    cmd.arg(repo_root().join("rt-core/tests/fixtures/abi_program.c"));
    assert!(cmd.status().expect("cc must be installed").success(), "fixture build failed");
    out
}

/// Polls `cond` until it holds; panics naming `what` after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut cond: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = cond() {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The async twin of [`wait_for`].
pub async fn until<T>(what: &str, timeout: Duration, mut cond: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = cond() {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Kills (and reaps) a child process on drop.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running `openplc-rt` on a private shared-memory file, with rt-core's test program
/// loaded and running; killed on drop.
pub struct Rt {
    pub proc: Proc,
    pub shm: String,
    pub dir: tempfile::TempDir,
}

impl Rt {
    /// Starts openplc-rt and runs the test program built with `defines`.
    pub fn start(defines: &[&str]) -> (Rt, Arc<RtClientImage>) {
        let dir = tempfile::tempdir().expect("temp dir");
        let shm = dir.path().join("shm").to_string_lossy().to_string();
        let log = std::fs::File::create(dir.path().join("rt.log")).expect("rt log");
        let child = Command::new(rt_bin())
            .args(["--shm", &shm, "run", "--cpu", "none", "--priority", "10", "--idle-period-us", "2000"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn openplc-rt");
        let pid = child.id();
        let rt = Rt { proc: Proc(child), shm, dir };
        wait_for("openplc-rt to come up", Duration::from_secs(10), || {
            let o = Observer::open(&rt.shm).ok()?;
            let s = o.status();
            (s.rt_alive && s.rt_pid == pid && s.heartbeat > 2).then_some(())
        });
        let so = build_fixture(rt.dir.path(), "prog.so", defines);
        let mut client = RtClient::open(&rt.shm).expect("client lease");
        client.load(&so.to_string_lossy(), true, Duration::from_secs(10)).expect("load the test program");
        (rt, Arc::new(RtClientImage::new(client)))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("rt.log")).unwrap_or_default()
    }
}

/// Starts a Python script (stdout piped) and waits for it to print `ready`.
pub fn spawn_ready(script: &Path, args: &[&str]) -> Proc {
    let mut child = Command::new("python3")
        .arg(script)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3");
    let stdout = child.stdout.take().expect("stdout");
    let proc = Proc(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.trim() == "ready" {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(20)).unwrap_or_else(|_| panic!("{} never printed ready", script.display()));
    proc
}

/// A port free right now on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// Runs a command to completion (killed if it outlives `timeout`); returns its output.
pub async fn run(cmd: &mut tokio::process::Command, timeout: Duration) -> std::process::Output {
    cmd.kill_on_drop(true).stdin(Stdio::null());
    let what = format!("{cmd:?}");
    match tokio::time::timeout(timeout, cmd.output()).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => panic!("{what}: {e}"),
        Err(_) => panic!("{what} did not finish within {timeout:?}"),
    }
}

pub fn text(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// A PLC in memory for protocol tests: writes land at once and the cycle counter moves
/// past them, unless `busy` (the write queue refuses) or `stalled` (writes are queued but
/// no cycle ever applies them) is set.
pub struct MemImage {
    state: Mutex<(Box<OutputSnapshot>, Box<InputImage>)>,
    cycle: AtomicU64,
    pub busy: AtomicBool,
    pub stalled: AtomicBool,
    pub writes: AtomicU64,
}

impl MemImage {
    pub fn new() -> Arc<MemImage> {
        Arc::new(MemImage {
            state: Mutex::new((bytemuck::zeroed_box(), bytemuck::zeroed_box())),
            cycle: AtomicU64::new(1),
            busy: AtomicBool::new(false),
            stalled: AtomicBool::new(false),
            writes: AtomicU64::new(0),
        })
    }

    pub fn get(&self, addr: &str) -> u64 {
        let a = IecAddress::parse(addr).expect("address");
        let s = self.state.lock().unwrap();
        if a.area() == Area::Input { s.1.get(a) } else { s.0.image.get(a) }.expect("point")
    }

    pub fn set(&self, addr: &str, value: u64) {
        let a = IecAddress::parse(addr).expect("address");
        let mut s = self.state.lock().unwrap();
        if a.area() == Area::Input {
            s.1.set(a, value);
        } else {
            s.0.image.set(a, value);
        }
    }
}

impl PlcImage for MemImage {
    fn cycle(&self) -> u64 {
        self.cycle.load(Ordering::SeqCst)
    }

    fn period_ns(&self) -> u64 {
        1_000_000
    }

    fn outputs(&self) -> Arc<OutputSnapshot> {
        Arc::new(*self.state.lock().unwrap().0)
    }

    fn read_inputs(&self, f: &mut dyn FnMut(&InputImage)) {
        f(&self.state.lock().unwrap().1)
    }

    fn update_inputs(&self, f: &mut dyn FnMut(&mut InputImage)) {
        f(&mut self.state.lock().unwrap().1)
    }

    fn write(&self, writes: &[(IecAddress, u64)]) -> Result<u64, PlcWriteError> {
        if self.busy.load(Ordering::SeqCst) {
            return Err(PlcWriteError::Busy);
        }
        self.writes.fetch_add(writes.len() as u64, Ordering::SeqCst);
        let now = self.cycle.load(Ordering::SeqCst);
        if self.stalled.load(Ordering::SeqCst) {
            return Ok(now);
        }
        let mut s = self.state.lock().unwrap();
        for &(a, v) in writes {
            s.0.image.set(a, v);
        }
        s.0.cycle = now;
        self.cycle.store(now + 1, Ordering::SeqCst);
        Ok(now)
    }
}
