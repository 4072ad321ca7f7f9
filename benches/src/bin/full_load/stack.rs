//! The system under load: a real companion (`openplc-runtime`) on its own data directory,
//! port and shared-memory file, the rt-core it starts (pinned, SCHED_FIFO), a first user,
//! and the demo program uploaded and built as the Editor would have it, running.
//!
//! Dropping the stack stops the companion and then rt-core, which outlives the companion by
//! design (signalled by pid, and only if its command line names our shared memory).

use crate::bundle;
use crate::https::{Api, Body};
use anyhow::{Context, Result, bail};
use hyper::Method;
use openplc_benches::process::{self, ChildGuard, wait_for};
use shared_abi::client::{Observer, Reader};
use shared_abi::layout::{RT_FIFO, RT_PINNED};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

pub struct StackConfig {
    pub companion: PathBuf,
    pub rt_binary: PathBuf,
    pub cpu: usize,
    pub priority: i32,
    pub period_ms: u32,
    pub modbus_max_connections: usize,
    /// Connections the S7 server takes; 0 configures none.
    pub s7_max_connections: usize,
    /// Variables and publishing interval of the OPC-UA server, when the OPC-UA load is on.
    pub opcua: Option<(u32, u32)>,
}

pub struct Stack {
    pub api: Api,
    pub token: String,
    pub shm: String,
    pub modbus_port: u16,
    pub s7_port: u16,
    pub opcua_port: Option<u16>,
    pub var_count: u32,
    pub rt_pid: u32,
    companion: Option<ChildGuard>,
    rt_pids: Vec<u32>,
    dir: PathBuf,
}

const USER: &str = "bench";
const PASSWORD: &str = "bench-pass-123";

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("binding an ephemeral port")?;
    Ok(l.local_addr()?.port())
}

impl Stack {
    /// Starts everything in `dir` (which the caller removes afterwards).
    pub fn start(cfg: &StackConfig, dir: &Path, rt: &tokio::runtime::Runtime) -> Result<Stack> {
        let port = free_port()?;
        let modbus_port = free_port()?;
        let s7_port = free_port()?;
        let opcua_port = if cfg.opcua.is_some() { Some(free_port()?) } else { None };
        let shm = dir.join("shm").to_string_lossy().into_owned();
        let log = std::fs::File::create(dir.join("companion.log")).context("companion.log")?;
        let mut cmd = Command::new(&cfg.companion);
        cmd.arg("--data-dir")
            .arg(dir.join("data"))
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--shm", &shm])
            .arg("--rt-binary")
            .arg(&cfg.rt_binary)
            .args(["--rt-cpu", &cfg.cpu.to_string(), "--rt-priority", &cfg.priority.to_string()])
            .args(["--discovery-port", "0", "--first-user-from", "loopback"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let companion = ChildGuard::spawn("openplc-runtime", &mut cmd)?;
        let mut stack = Stack {
            api: Api::new(port)?,
            token: String::new(),
            shm,
            modbus_port,
            s7_port,
            opcua_port,
            var_count: 0,
            rt_pid: 0,
            companion: Some(companion),
            rt_pids: Vec::new(),
            dir: dir.to_path_buf(),
        };
        stack.bring_up(cfg, dir, rt).with_context(|| format!("starting the runtime (log: {})", stack.log_path()))?;
        Ok(stack)
    }

    fn log_path(&self) -> String {
        self.dir.join("companion.log").display().to_string()
    }

    fn bring_up(&mut self, cfg: &StackConfig, dir: &Path, rt: &tokio::runtime::Runtime) -> Result<()> {
        let api = self.api.clone();
        let get = |path: &str, token: Option<&str>| rt.block_on(api.once(Method::GET, path, token, None));
        wait_for("the companion to answer", Duration::from_secs(30), || {
            self.check_companion_alive().ok()?;
            get("/api/version", None).ok().filter(|r| r.status == 200)
        })?;
        let observer = wait_for("rt-core", Duration::from_secs(30), || {
            let o = Observer::open(&self.shm).ok()?;
            let s = o.status();
            (s.rt_alive && s.rt_pid != 0).then_some(o)
        })?;
        self.remember_rt_pid(&observer);

        let user = serde_json::json!({ "username": USER, "password": PASSWORD, "role": "user" });
        let r = rt.block_on(api.once(Method::POST, "/api/create-user", None, Some(Body::json(&user))))?;
        if r.status != 201 {
            bail!("create-user: HTTP {}: {}", r.status, r.text());
        }
        let login = serde_json::json!({ "username": USER, "password": PASSWORD });
        let r = rt.block_on(api.once(Method::POST, "/api/login", None, Some(Body::json(&login))))?;
        let token = r.ok_json("login")?["access_token"].as_str().context("login: no access_token")?.to_string();

        let opcua =
            cfg.opcua.zip(self.opcua_port).map(|((vars, cycle_ms), port)| bundle::OpcuaBundle { port, vars, cycle_ms });
        let servers = bundle::Servers {
            modbus_port: self.modbus_port,
            modbus_max_connections: cfg.modbus_max_connections,
            opcua,
            s7: (cfg.s7_max_connections > 0).then_some((self.s7_port, cfg.s7_max_connections)),
        };
        let zip = bundle::demo_zip(dir, cfg.period_ms, &servers)?;
        let data = std::fs::read(&zip).context("reading demo.zip")?;
        let upload = Body::multipart_file("file", "program.zip", "application/zip", &data);
        rt.block_on(api.once(Method::POST, "/api/upload-file", Some(&token), Some(upload)))?.ok_json("upload-file")?;
        let build = wait_for("the build", Duration::from_secs(180), || {
            let s = get("/api/compilation-status", Some(&token)).ok()?.ok_json("compilation-status").ok()?;
            (s["status"] != "COMPILING").then_some(s)
        })?;
        if build["status"] != "SUCCESS" {
            bail!("the demo program did not build: {build}");
        }
        wait_for("STATUS:RUNNING", Duration::from_secs(30), || {
            let s = get("/api/status", Some(&token)).ok()?.ok_json("status").ok()?;
            (s["status"] == "STATUS:RUNNING").then_some(())
        })?;

        let status = observer.status();
        if status.period_ns != u64::from(cfg.period_ms) * 1_000_000 {
            bail!("rt-core runs at {} ns, not {} ms", status.period_ns, cfg.period_ms);
        }
        if status.rt_flags & RT_FIFO == 0 || status.rt_flags & RT_PINNED == 0 || status.scan_cpu != cfg.cpu as i32 {
            bail!(
                "rt-core's scan thread did not get SCHED_FIFO on CPU {} (flags {:#x}, CPU {}): run as root",
                cfg.cpu,
                status.rt_flags,
                status.scan_cpu
            );
        }
        self.var_count = observer.program_info().context("program info")?.var_count;
        if self.opcua_port.is_some() {
            wait_for("the OPC-UA server", Duration::from_secs(30), || {
                let p = get("/api/plugins", Some(&token)).ok()?.ok_json("plugins").ok()?;
                let opcua = &p["protocols"]["opcua"];
                if opcua["state"] == "failed" {
                    eprintln!("full-load: the OPC-UA server did not start: {}", opcua["error"]);
                }
                (opcua["state"] == "running").then_some(())
            })?;
        }
        self.token = token;
        self.rt_pid = status.rt_pid;
        Ok(())
    }

    fn remember_rt_pid(&mut self, o: &Observer) {
        let pid = o.status().rt_pid;
        if pid != 0 && !self.rt_pids.contains(&pid) {
            self.rt_pids.push(pid);
        }
    }

    fn check_companion_alive(&mut self) -> Result<()> {
        match self.companion.as_mut().and_then(ChildGuard::try_status) {
            Some(status) => bail!("the companion exited ({status}); see {}", self.log_path()),
            None => Ok(()),
        }
    }

    /// rt-core's pid now, remembered for the clean-up (a restarted core is a new pid).
    pub fn observe(&mut self) -> Result<Observer> {
        let o = Observer::open(&self.shm).context("opening the shared memory")?;
        self.remember_rt_pid(&o);
        Ok(o)
    }

    /// Whether the companion and the original rt-core are still the processes we started.
    pub fn health(&mut self) -> Result<()> {
        self.check_companion_alive()?;
        let o = self.observe()?;
        let s = o.status();
        if !s.rt_alive || s.rt_pid != self.rt_pid {
            bail!("rt-core (pid {}) died or was restarted during the run (now pid {})", self.rt_pid, s.rt_pid);
        }
        Ok(())
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if let Ok(o) = Observer::open(&self.shm) {
            self.remember_rt_pid(&o);
        }
        if let Some(mut c) = self.companion.take() {
            c.stop(Duration::from_secs(5));
        }
        for &pid in &self.rt_pids {
            process::stop_foreign(pid, &self.shm, Duration::from_secs(3));
        }
    }
}
