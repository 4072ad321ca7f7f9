//! A real `openplc-rt`, a program, the debugger served by a small axum server, and client
//! processes (Node socket.io-client, python-socketio) driven line by line.
#![allow(dead_code)]

use openplc_debugger::{Config, Debugger, Family, Identity, socketio};
use openplc_port::{LogSink, PlcPort};
use serde_json::{Value, json};
use shared_abi::client::Reader;
use shared_abi::msg::LogLevel;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const ADMIN: &str = "admin-token";
pub const VIEWER: &str = "viewer-token";
/// The fixture's MD5 (rt-core/tests/fixtures/abi_program.c).
pub const FIXTURE_MD5: &str = "0123456789abcdef0123456789abcdef";
/// The fixture's period in these tests.
pub const FIXTURE_PERIOD_NS: u64 = 2_000_000;
/// The fixture's debug variables (index = position).
pub const FIXTURE_TYPES: [&str; 7] = ["UINT", "BOOL", "BOOL", "REAL", "LINT", "TIME", "STRING"];

pub fn repo_root() -> PathBuf {
    // This module is also compiled into the companion's tests: find the root by its
    // contents rather than by a fixed depth below the crate.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .find(|p| p.join("scripts/demo-bundle").is_dir())
        .expect("the repository root is above the crate")
        .to_path_buf()
}

#[allow(unused_imports)]
pub use openplc_port::testkit::{Rt, wait_for};

/// rt-core's ABI test program at `period_ns`.
pub fn build_fixture(dir: &Path, period_ns: u64) -> PathBuf {
    let period = format!("PERIOD_NS={period_ns}ULL");
    openplc_port::testkit::build_fixture(dir, &format!("fixture-{period_ns}.so"), &[&period])
}

/// The MatIEC demo bundle (scripts/demo-bundle), built with the companion's builder.
pub fn build_demo(dir: &Path) -> PathBuf {
    let out = dir.join("demo.so");
    let bundle = repo_root().join("scripts/demo-bundle");
    openplc_builder::build(&bundle, &out, &openplc_builder::BuildOptions::default(), &mut |_| {})
        .unwrap_or_else(|e| panic!("building the demo bundle: {e}"));
    out
}

/// The demo bundle's debug variables as the Editor reads them from debug.c: the entry's
/// position is its index, the type is the enum name without `_ENUM` / `_O_ENUM` / `_P_ENUM`.
pub fn demo_types() -> Vec<String> {
    let text = std::fs::read_to_string(repo_root().join("scripts/demo-bundle/debug.c")).expect("debug.c");
    let table = text.split("debug_vars[] = {").nth(1).and_then(|t| t.split("};").next()).expect("debug_vars table");
    table
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let ty = l.strip_prefix("{&(")?.rsplit_once("),")?.1.trim().trim_end_matches("},").trim_end_matches('}');
            let ty = ty.trim();
            Some(
                ty.strip_suffix("_O_ENUM")
                    .or_else(|| ty.strip_suffix("_P_ENUM"))
                    .or_else(|| ty.strip_suffix("_ENUM"))
                    .unwrap_or(ty)
                    .to_string(),
            )
        })
        .collect()
}

/// The MD5 the Editor would compare with: the `(*DBG:char md5[] = "…";*)` line of program.st.
pub fn demo_md5() -> String {
    let text = std::fs::read_to_string(repo_root().join("scripts/demo-bundle/program.st")).expect("program.st");
    let line = text.lines().find(|l| l.starts_with("(*DBG:char md5[] = \"")).expect("DBG md5 line");
    line["(*DBG:char md5[] = \"".len()..][..32].to_string()
}

/// rt-core + the debugger on a free port.
pub struct Server {
    pub rt: Rt,
    pub port: Arc<PlcPort>,
    pub debugger: Arc<Debugger>,
    pub url: String,
    pub logs: Arc<Mutex<Vec<(LogLevel, String)>>>,
    pub runtime: tokio::runtime::Runtime,
}

impl Server {
    /// Starts rt-core, loads `program` (if any, and starts it), and serves the debugger.
    pub fn start(program: Option<&Path>, default_family: Family) -> Server {
        let rt = Rt::start();
        let logs: Arc<Mutex<Vec<(LogLevel, String)>>> = Arc::default();
        let sink = logs.clone();
        let port =
            rt.port_with_log(LogSink::new(move |level, msg| sink.lock().unwrap().push((level, msg.to_string()))));
        if let Some(p) = program {
            port.load_blocking(
                p.to_str().expect("utf-8 path"),
                true,
                openplc_port::LoadKind::Cold,
                shared_abi::sizes::ImageRequest { configured: shared_abi::sizes::ImageSizes::LEGACY, square: false },
                Duration::from_secs(10),
            )
            .expect("program loads");
        }
        let auth = |token: &str| -> Result<Identity, String> {
            match token {
                ADMIN => Ok(Identity { name: "admin".into(), may_force: true }),
                VIEWER => Ok(Identity { name: "viewer".into(), may_force: false }),
                _ => Err("invalid or expired credentials".into()),
            }
        };
        let config = Config { default_family, ..Config::default() };
        let debugger = Debugger::new(port.clone(), Arc::new(auth), config);
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime");
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind");
        let tcp_port = listener.local_addr().expect("local addr").port();
        let d = debugger.clone();
        runtime.spawn(async move {
            let (layer, _io) = socketio::layer(d);
            let app = axum::Router::new()
                .route("/", axum::routing::get(|| async { "openplc debugger test server" }))
                .layer(layer);
            let _ = axum::serve(listener, app).await;
        });
        Server { rt, port, debugger, url: format!("http://127.0.0.1:{tcp_port}"), logs, runtime }
    }

    pub fn log_lines(&self) -> Vec<String> {
        self.logs.lock().unwrap().iter().map(|(_, m)| m.clone()).collect()
    }

    /// The program's scan count as rt-core last published its outputs.
    pub fn published_tick(&self) -> u64 {
        self.rt.observer().outputs().expect("outputs").tick
    }

    pub fn output(&self, addr: &str) -> u64 {
        let a = shared_abi::image::IecAddress::parse(addr).expect("address");
        self.rt.observer().outputs().expect("outputs").image.get(a).expect("output point")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Node,
    Python,
}

pub const KINDS: [Kind; 2] = [Kind::Node, Kind::Python];

/// A client process speaking the drivers' line protocol.
pub struct Client {
    pub kind: Kind,
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Client {
    pub fn spawn(kind: Kind) -> Client {
        let drivers = repo_root().join("companion/debugger/tests/clients");
        let mut cmd = match kind {
            Kind::Node => {
                let modules = repo_root().join("target/node-deps/node_modules");
                assert!(
                    modules.join("socket.io-client").exists(),
                    "{} has no socket.io-client: run scripts/test-deps",
                    modules.display()
                );
                let mut c = Command::new("node");
                c.arg(drivers.join("driver.js")).env("NODE_PATH", modules);
                c
            }
            Kind::Python => {
                let mut c = Command::new("python3");
                c.arg(drivers.join("driver.py"));
                c
            }
        };
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("starting the {kind:?} client: {e}"));
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        Client { kind, child, stdin, stdout }
    }

    /// Sends one request and returns its answer.
    pub fn call(&mut self, req: Value) -> Value {
        self.send(&req);
        self.receive()
    }

    pub fn send(&mut self, req: &Value) {
        writeln!(self.stdin, "{req}").expect("write to client");
        self.stdin.flush().expect("flush");
    }

    pub fn receive(&mut self) -> Value {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("read from client");
        assert!(!line.is_empty(), "{:?} client exited", self.kind);
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{:?} client said {line:?}: {e}", self.kind))
    }

    /// Spawns a client and connects it with `token`; panics unless accepted.
    pub fn connected(kind: Kind, url: &str, token: &str) -> Client {
        let mut c = Client::spawn(kind);
        let r = c.call(json!({"op": "connect", "url": url, "token": token}));
        assert_eq!(r["ok"], true, "{kind:?} connect: {r}");
        c
    }

    pub fn cmd(&mut self, hex: &str) -> Value {
        self.call(json!({"op": "cmd", "hex": hex}))["reply"].clone()
    }

    pub fn poll(&mut self, indices: &[u16], types: &[&str]) -> Value {
        self.call(json!({"op": "poll", "indices": indices, "types": types}))
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "{}", json!({"op": "close"}));
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
