//! Shared by rt-core's integration tests: building test programs with the system C compiler
//! and running a real `openplc-rt` process on a private shared-memory file.
#![allow(dead_code)]

use shared_abi::client::{Reader, RtClient};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const RT_BIN: &str = env!("CARGO_BIN_EXE_openplc-rt");

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Compiles `tests/fixtures/abi_program.c` with `defines` into `dir/name`.
pub fn build_fixture(dir: &Path, name: &str, defines: &[&str]) -> PathBuf {
    let out = dir.join(name);
    let mut cmd = Command::new("cc");
    cmd.args(["-shared", "-fPIC", "-O2", "-Wall", "-Werror", "-o"]).arg(&out);
    cmd.arg("-I").arg(repo_root().join("shared-abi/include"));
    for d in defines {
        cmd.arg(format!("-D{d}"));
    }
    cmd.arg(repo_root().join("rt-core/tests/fixtures/abi_program.c"));
    let status = cmd.status().expect("cc must be installed");
    assert!(status.success(), "fixture build failed");
    out
}

/// Polls `cond` until it holds or `timeout` passes.
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

/// A running `openplc-rt run` on a private shared-memory file; killed on drop.
pub struct Runtime {
    pub child: Child,
    pub shm: String,
    pub dir: tempfile::TempDir,
}

impl Runtime {
    pub fn start(extra: &[&str]) -> Runtime {
        let dir = tempfile::tempdir().unwrap();
        let shm = dir.path().join("shm").to_str().unwrap().to_string();
        Self::start_on(dir, shm, extra)
    }

    pub fn start_on(dir: tempfile::TempDir, shm: String, extra: &[&str]) -> Runtime {
        let log = std::fs::File::create(dir.path().join("rt.log")).unwrap();
        // Not pinned unless the test names a CPU itself.
        let cpu: &[&str] = if extra.contains(&"--cpu") { &[] } else { &["--cpu", "none"] };
        let child = Command::new(RT_BIN)
            .args(["--shm", &shm, "run", "--priority", "10", "--idle-period-us", "2000"])
            .args(cpu)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn openplc-rt");
        let pid = child.id();
        let rt = Runtime { child, shm, dir };
        let first = wait_for("openplc-rt to come up", Duration::from_secs(10), || {
            let c = shared_abi::client::Observer::open(&rt.shm).ok()?;
            let s = c.status();
            (s.rt_alive && s.rt_pid == pid).then_some(s.heartbeat)
        });
        wait_for("openplc-rt's loop to turn", Duration::from_secs(10), || {
            let c = shared_abi::client::Observer::open(&rt.shm).ok()?;
            (c.status().heartbeat > first + 1).then_some(())
        });
        rt
    }

    pub fn client(&self) -> RtClient {
        RtClient::open(&self.shm).expect("client lease")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("rt.log")).unwrap_or_default()
    }

    /// Runs the control tool against this runtime.
    pub fn ctl(&self, args: &[&str]) -> std::process::Output {
        Command::new(RT_BIN).args(["--shm", &self.shm]).args(args).output().expect("run openplc-rt")
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An engine driven in-process (no sleeping thread): the test calls `cycle()` itself.
pub struct InProcess {
    pub shm: &'static shared_abi::layout::SharedMemory,
    pub engine: Box<rt_core::engine::Engine>,
    pub client: RtClient,
    pub dir: tempfile::TempDir,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    loader: Option<std::thread::JoinHandle<()>>,
}

impl InProcess {
    pub fn new() -> InProcess {
        use rt_core::engine::{Engine, EngineConfig, EngineRings};
        use rt_core::queue::loader_queues;
        let dir = tempfile::tempdir().unwrap();
        let name = dir.path().join("shm").to_str().unwrap().to_string();
        let mapping: &'static shared_abi::shm::RtMapping =
            Box::leak(Box::new(shared_abi::shm::RtMapping::open(&name).unwrap()));
        let shm = mapping.shm();
        let (rings, logs) = EngineRings::split(mapping.take_ends().expect("the ring ends, once"));
        let (link, ends) = loader_queues();
        let engine = Engine::new(shm, rings, link, EngineConfig { idle_period_ns: 1_000_000 });
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let log = rt_core::loader::Log::new(logs);
        let s = stop.clone();
        let loader = std::thread::spawn(move || rt_core::loader::run(shm, ends, log, s));
        let client = RtClient::open(&name).unwrap();
        InProcess { shm, engine, client, dir, stop, loader: Some(loader) }
    }

    pub fn cycle(&mut self) -> rt_core::engine::CycleEnd {
        let now = rt_core::sys::now_ns();
        self.engine.run_cycle(now, now)
    }

    /// Loads and starts a fixture build, cycling until it is swapped in.
    pub fn load_fixture(&mut self, defines: &[&str]) {
        let so = build_fixture(self.dir.path(), "inproc.so", defines);
        self.load_library(&so);
    }

    /// Loads and starts a library, cycling until it is swapped in.
    pub fn load_library(&mut self, so: &Path) {
        self.load_library_sized(so, shared_abi::sizes::ImageRequest::FROM_PROGRAM);
    }

    /// Loads and starts a fixture build with configured image sizes.
    pub fn load_fixture_sized(&mut self, defines: &[&str], image: shared_abi::sizes::ImageRequest) {
        let so = build_fixture(self.dir.path(), "inproc.so", defines);
        self.load_library_sized(&so, image);
    }

    /// `load_library` with configured image sizes.
    pub fn load_library_sized(&mut self, so: &Path, image: shared_abi::sizes::ImageRequest) {
        let before = self.client.status().program_gen;
        let path = shared_abi::msg::bounded(so.to_str().unwrap());
        self.client
            .send(shared_abi::msg::Command::Load { path, start: true, warm: false, online: false, image })
            .unwrap();
        let start = Instant::now();
        while self.client.status().program_gen == before {
            assert!(start.elapsed() < Duration::from_secs(10), "program never swapped in");
            self.cycle();
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

/// The STruC++-shaped fixture bundle of the builder's tests, copied into `dir/name` and
/// changed by `edits` (file, [(from, to)]) , then built with the real STruC++ adapter.
pub fn build_strucpp(dir: &Path, name: &str, edits: &[(&str, &[(&str, &str)])]) -> PathBuf {
    build_edited("companion/builder/tests/fixtures/strucpp-demo", dir, name, edits)
}

/// The MatIEC-shaped demo bundle (scripts/demo-bundle), copied and changed by `edits` as
/// for [`build_strucpp`], then built with the real MatIEC adapter.
pub fn build_matiec(dir: &Path, name: &str, edits: &[(&str, &[(&str, &str)])]) -> PathBuf {
    build_edited("scripts/demo-bundle", dir, name, edits)
}

fn build_edited(bundle: &str, dir: &Path, name: &str, edits: &[(&str, &[(&str, &str)])]) -> PathBuf {
    let src = dir.join(format!("{name}-src"));
    copy_dir(&repo_root().join(bundle), &src);
    for (file, replacements) in edits {
        let path = src.join(file);
        let mut text = std::fs::read_to_string(&path).unwrap();
        for (from, to) in *replacements {
            assert!(text.contains(from), "{file} has no {from:?}");
            text = text.replace(from, to);
        }
        std::fs::write(&path, text).unwrap();
    }
    let out = dir.join(name);
    let mut lines = Vec::new();
    if let Err(e) = openplc_builder::build(&src, &out, &openplc_builder::BuildOptions::default(), &mut |l| {
        lines.push(l.to_string())
    }) {
        panic!(
            "the {bundle} fixture does not build: {e}
{lines:#?}"
        );
    }
    out
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        if let Some(l) = self.loader.take() {
            let _ = l.join();
        }
    }
}
