//! A real `openplc-rt` running rt-core's test program (`%MW0` counts scans, `%QX0.0` =
//! `%IX0.0`, `%QW0` = 2 × `%IW0`), and a test-only [`S7Image`] over our own `RtClient`.
//! The companion implements the trait over its one port to rt-core; this stands in for
//! it until then.

use openplc_s7::{S7Image, WriteError, WriteFuture};
use shared_abi::client::{Observer, Reader, RtClient};
use shared_abi::image::{IecAddress, InputImage, OutputImage};
use shared_abi::layout::PlcState;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// `openplc-rt` from the same target directory (`cargo build -p rt-core` first).
fn rt_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let bin = exe.parent().and_then(Path::parent).map(|d| d.join("openplc-rt")).expect("target directory");
    assert!(bin.exists(), "{} is missing: run `cargo build -p rt-core` (same CARGO_TARGET_DIR) first", bin.display());
    bin
}

/// Kills and reaps the process on drop.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for<T>(what: &str, timeout: Duration, mut cond: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = cond() {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// openplc-rt on a private shared-memory file with the test program running.
pub struct Rt {
    pub proc: Proc,
    pub dir: tempfile::TempDir,
}

pub fn start_rt() -> (Rt, RtImage) {
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
    let rt = Rt { proc: Proc(child), dir };
    wait_for("openplc-rt to come up", Duration::from_secs(10), || {
        let s = Observer::open(&shm).ok()?.status();
        (s.rt_alive && s.rt_pid == pid && s.heartbeat > 2).then_some(())
    });
    let so = rt.dir.path().join("prog.so");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let status = Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&so)
        .arg("-I")
        .arg(root.join("shared-abi/include"))
        .arg(root.join("rt-core/tests/fixtures/abi_program.c"))
        .status()
        .expect("cc must be installed");
    assert!(status.success(), "test program build failed");
    let mut client = RtClient::open(&shm).expect("client lease");
    client.load(&so.to_string_lossy(), true, Duration::from_secs(10)).expect("load the test program");
    (rt, RtImage { client: Mutex::new(client) })
}

pub struct RtImage {
    client: Mutex<RtClient>,
}

impl RtImage {
    pub fn lock(&self) -> MutexGuard<'_, RtClient> {
        self.client.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl S7Image for RtImage {
    fn read(&self, f: &mut dyn FnMut(&InputImage, &OutputImage)) {
        let c = self.lock();
        let out = c.outputs().expect("outputs published");
        f(c.inputs(), &out.image)
    }

    fn write<'a>(&'a self, writes: &'a [(IecAddress, u64)], timeout: Duration) -> WriteFuture<'a> {
        Box::pin(async move {
            let deadline = Instant::now() + timeout;
            let target = {
                let mut c = self.lock();
                for &(a, v) in writes {
                    c.write(a, v).map_err(|e| WriteError::Rejected(e.to_string()))?;
                }
                // rt-core applies up to 256 writes at the start of each cycle.
                c.shm().header.heartbeat.load(Ordering::Acquire) + writes.len().div_ceil(256) as u64 + 1
            };
            while self.lock().shm().header.heartbeat.load(Ordering::Acquire) <= target {
                if Instant::now() > deadline {
                    return Err(WriteError::Timeout);
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Ok(())
        })
    }

    fn state(&self) -> PlcState {
        self.lock().shm().state()
    }
}
