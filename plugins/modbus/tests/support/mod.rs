//! Shared by the Modbus plugin's integration tests: a real `openplc-rt` on a private
//! shared-memory file running rt-core's test program (the port's testkit), and guards that
//! kill every process a test starts.
#![allow(dead_code)]

use openplc_port::PlcPort;
use openplc_port::testkit::build_fixture;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use openplc_port::testkit::Rt;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn py(script: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py").join(script)
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

/// The outputs once the cycle under way has ended. A write is answered as soon as rt-core
/// has applied it, at the start of a cycle, a moment before that cycle's scan publishes:
/// a test that reads the port's outputs right after a write's reply waits for this first.
pub async fn settled(plc: &PlcPort) -> std::sync::Arc<shared_abi::layout::OutputSnapshot> {
    plc.wait_cycle_after(plc.cycle(), Duration::from_secs(5)).await.expect("rt-core ends its cycle");
    plc.outputs()
}

/// Kills (and reaps) a child process on drop.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running `openplc-rt` running rt-core's test program built with `defines` (%MW0 counts
/// scans, %QX0.0 = %IX0.0, %QW0 = 2 × %IW0), and a port holding its client lease.
pub fn start_rt(defines: &[&str]) -> (Rt, Arc<PlcPort>) {
    let rt = Rt::start();
    rt.load(&build_fixture(rt.dir.path(), "prog.so", defines));
    let port = rt.port();
    (rt, port)
}

/// A Python script started with its stdin and stdout piped, and what it printed.
pub struct Script {
    pub proc: Proc,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Script {
    pub fn spawn(script: &Path, args: &[&str]) -> Script {
        let mut child = Command::new("python3")
            .arg(script)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Script { proc: Proc(child), lines }
    }

    /// Waits for a line starting with the word `word`; returns the rest of it, trimmed.
    pub fn expect(&self, word: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).unwrap_or_else(|_| panic!("the script never printed {word:?}"));
            let mut parts = line.trim().splitn(2, ' ');
            if parts.next() == Some(word) {
                return parts.next().unwrap_or("").trim().to_string();
            }
        }
    }

    /// Sends a line to its stdin.
    pub fn send(&mut self, line: &str) {
        use std::io::Write;
        let stdin = self.proc.0.stdin.as_mut().expect("stdin");
        writeln!(stdin, "{line}").and_then(|()| stdin.flush()).expect("write to the script");
    }
}

/// Starts a Python script and waits for it to print `ready`; returns it and what followed
/// `ready` on that line.
pub fn spawn_ready(script: &Path, args: &[&str]) -> (Proc, String) {
    let s = Script::spawn(script, args);
    let rest = s.expect("ready");
    (s.proc, rest)
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
