//! Shared by the plugin host's integration tests: a real `openplc-rt` on a private shared
//! memory file with rt-core's test program loaded, C plugins built with the system compiler,
//! plugins.conf files in temporary data directories, and waits with deadlines.
#![allow(dead_code)]

use openplc_plugin_host::{PluginHost, PluginState, PluginStatus};
use openplc_port::testkit::Rt;
use openplc_port::{LogSink, PlcPort};
use shared_abi::image::IecAddress;
use shared_abi::msg::LogLevel;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const DEADLINE: Duration = Duration::from_secs(20);

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// Polls `cond` until it gives a value, failing the test after `DEADLINE`.
pub fn wait_for<T>(what: &str, mut cond: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = cond() {
            return v;
        }
        assert!(start.elapsed() < DEADLINE, "timed out after {DEADLINE:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Compiles C sources into a shared library `dir/name` with the ABI header on the path.
pub fn build_so(dir: &Path, name: &str, sources: &[PathBuf]) -> PathBuf {
    let out = dir.join(name);
    let status = Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-Wall", "-Werror", "-o"])
        .arg(&out)
        .arg("-I")
        .arg(repo_root().join("shared-abi/include"))
        .args(sources)
        .status()
        .expect("cc must be installed");
    assert!(status.success(), "building {name} failed");
    out
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

pub fn example(rel: &str) -> PathBuf {
    repo_root().join("plugins/examples").join(rel)
}

/// A running `openplc-rt` with rt-core's test program (%MW0 counts scans, %QX0.0 = %IX0.0,
/// %QW0 = 2 * %IW0) loaded and started, and a port holding its client lease whose log lines
/// are kept. rt-core is killed on drop.
pub struct Plc {
    pub rt: Rt,
    pub port: Arc<PlcPort>,
    logs: Arc<Mutex<Vec<(LogLevel, String)>>>,
}

impl Plc {
    pub fn start() -> Plc {
        let rt = Rt::start();
        rt.load(&build_program(rt.dir.path()));
        let logs: Arc<Mutex<Vec<(LogLevel, String)>>> = Arc::default();
        let sink = logs.clone();
        let port =
            rt.port_with_log(LogSink::new(move |level, text| sink.lock().unwrap().push((level, text.to_string()))));
        Plc { rt, port, logs }
    }

    /// Where test files go (removed with rt-core's temporary directory).
    pub fn dir(&self) -> &Path {
        self.rt.dir.path()
    }

    /// The value of an output or memory point in the latest published scan.
    pub fn output(&self, addr: &str) -> u64 {
        let a = IecAddress::parse(addr).unwrap();
        self.port.outputs().image.get(a).unwrap()
    }

    /// The value of an input point as the companion publishes it.
    pub fn input(&self, addr: &str) -> u64 {
        let a = IecAddress::parse(addr).unwrap();
        self.port.inputs(|i| i.get(a).unwrap()).unwrap()
    }

    pub fn set_input(&self, addr: &str, value: u64) {
        let a = IecAddress::parse(addr).unwrap();
        self.port.update_inputs(|i| assert!(i.set(a, value), "{addr} is an input")).unwrap();
    }

    pub fn tick(&self) -> u64 {
        self.port.outputs().tick
    }

    /// Waits until the program has completed `n` more scans.
    pub fn wait_scans(&self, n: u64) {
        let target = self.tick() + n;
        wait_for("scans", || (self.tick() >= target).then_some(()));
    }

    pub fn logs(&self) -> Vec<(LogLevel, String)> {
        self.logs.lock().unwrap().clone()
    }

    /// The log lines, one string, for assertions and failure messages.
    pub fn log_text(&self) -> String {
        self.logs().iter().map(|(l, t)| format!("{}: {t}\n", l.as_str())).collect()
    }
}

/// rt-core's own test program.
pub fn build_program(dir: &Path) -> PathBuf {
    build_so(dir, "program.so", &[repo_root().join("rt-core/tests/fixtures/abi_program.c")])
}

/// A data directory with `plugins.conf` holding `lines`.
pub fn data_dir(lines: &[String]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("plugins.conf");
    let mut text = String::from("# written by the test\n");
    for l in lines {
        text.push_str(l);
        text.push('\n');
    }
    std::fs::write(&conf, text).unwrap();
    (dir, conf)
}

pub fn status_of<'a>(status: &'a [PluginStatus], name: &str) -> &'a PluginStatus {
    status.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("no plugin {name} in {status:?}"))
}

pub fn assert_state(host: &PluginHost, name: &str, state: PluginState) {
    let all = host.status();
    let s = status_of(&all, name);
    assert_eq!(s.state, state, "{name}: {s:?}");
}
