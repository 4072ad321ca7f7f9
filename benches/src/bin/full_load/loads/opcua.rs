//! OPC-UA clients: `opcua-load` (plugins/opcua; async-opcua's client, not our server code),
//! N sessions against the server the companion runs for the uploaded bundle, each
//! subscribing to V variables at an interval and reading V variables in a closed loop.
//!
//! With `compare_standin`, the same client mix then runs for the same time against an
//! asyncua (Python) server with the same variables (`benches/opcua-standin.py`): the server
//! stack upstream's OPC-UA plugin is built on, standing in for upstream's runtime, which
//! cannot be fetched here. It runs after rt-core's measured windows, so it does not disturb
//! them, on the same machine.

use super::{Load, Report, Running, Target};
use anyhow::{Context, Result, bail};
use openplc_benches::process::ChildGuard;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The bundle's namespace and node ids (`benches/make-opcua-bundle`).
pub const NS: &str = "urn:openplc:bench";
const PREFIX: &str = "PLC.X";

pub struct OpcuaLoad {
    pub clients: u32,
    pub vars: u32,
    pub interval_ms: u32,
    pub binary: PathBuf,
    pub compare_standin: bool,
}

struct Started {
    /// Taken by `finish`.
    child: Option<ChildGuard>,
    clients: u32,
    vars: u32,
    interval_ms: u32,
    run_for: Duration,
    binary: PathBuf,
    compare_standin: bool,
    dir: PathBuf,
}

fn load_command(binary: &PathBuf, url: &str, clients: u32, vars: u32, interval_ms: u32, run_for: Duration) -> Command {
    let mut cmd = Command::new(binary);
    cmd.args(["--url", url, "--ns", NS, "--prefix", PREFIX])
        .args(["--vars", &vars.to_string(), "--clients", &clients.to_string()])
        .args(["--interval-ms", &interval_ms.to_string()])
        .args(["--seconds", &format!("{:.3}", run_for.as_secs_f64())]);
    cmd
}

impl Load for OpcuaLoad {
    fn start(&self, target: &Target, run_for: Duration) -> Result<Box<dyn Running>> {
        let Some(port) = target.opcua_port else { bail!("the bundle has no OPC-UA server") };
        let log = std::fs::File::create(target.dir.join("opcua-load.log")).context("opcua-load.log")?;
        let url = format!("opc.tcp://127.0.0.1:{port}/bench");
        let mut cmd = load_command(&self.binary, &url, self.clients, self.vars, self.interval_ms, run_for);
        let child = ChildGuard::spawn_captured("opcua-load", &mut cmd, Stdio::from(log))?;
        Ok(Box::new(Started {
            child: Some(child),
            clients: self.clients,
            vars: self.vars,
            interval_ms: self.interval_ms,
            run_for,
            binary: self.binary.clone(),
            compare_standin: self.compare_standin,
            dir: target.dir.clone(),
        }))
    }
}

/// `opcua-load`'s summary as two report lines (`<key>_reads`, `<key>_notifications`).
fn reports(key: &str, who: &str, out: &str, status: &str, s: &Started) -> Result<Vec<Report>> {
    let line = out.lines().last().unwrap_or_default();
    let v: serde_json::Value =
        serde_json::from_str(line).with_context(|| format!("opcua-load ({status}) printed {out:?}; see the log"))?;
    let f = |k: &str| v[k].as_f64();
    let seconds = f("seconds").unwrap_or(s.run_for.as_secs_f64());
    let mut note = format!("{} variables per Read", s.vars);
    if let Some(e) = v["first_error"].as_str() {
        note += &format!("; first error: {e}");
    }
    let errors = v["read_errors"].as_u64().unwrap_or(0) + v["errors"].as_u64().unwrap_or(0);
    Ok(vec![
        Report {
            key: format!("{key}_reads"),
            interface: format!("OPC-UA Read ({who})"),
            clients: s.clients.to_string(),
            count: v["reads"].as_u64().unwrap_or(0),
            seconds,
            errors,
            p50_ms: f("read_p50_ms"),
            p99_ms: f("read_p99_ms"),
            note,
        },
        Report {
            key: format!("{key}_notifications"),
            interface: format!("OPC-UA data changes ({who})"),
            clients: s.clients.to_string(),
            count: v["notifications"].as_u64().unwrap_or(0),
            seconds,
            errors: 0,
            p50_ms: f("lateness_p50_ms"),
            p99_ms: f("lateness_p99_ms"),
            note: format!(
                "{} variables subscribed at {} ms; p50/p99 are the lateness (arrival minus source timestamp)",
                s.vars, s.interval_ms
            ),
        },
    ])
}

impl Started {
    /// The same clients against the asyncua stand-in.
    fn standin(&self) -> Result<Vec<Report>> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let script = openplc_benches::repo_root().join("benches/opcua-standin.py");
        let mut server = Command::new("python3")
            .arg(&script)
            .args([&port.to_string(), NS, PREFIX, &self.vars.to_string(), &self.interval_ms.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(self.dir.join("opcua-standin.log"))?))
            .spawn()
            .context("starting benches/opcua-standin.py (needs Python asyncua: scripts/test-deps)")?;
        let mut first = String::new();
        BufReader::new(server.stdout.take().context("stand-in stdout")?).read_line(&mut first)?;
        // Errors end up in `result`, so the stand-in is stopped on every path.
        let run = || -> Result<Vec<Report>> {
            eprintln!(
                "full-load: the same OPC-UA clients against the asyncua stand-in for {:.0} s",
                self.run_for.as_secs_f64()
            );
            let url = format!("opc.tcp://127.0.0.1:{port}/standin");
            let log = std::fs::File::create(self.dir.join("opcua-load-standin.log"))?;
            let mut cmd = load_command(&self.binary, &url, self.clients, self.vars, self.interval_ms, self.run_for);
            let child = ChildGuard::spawn_captured("opcua-load (stand-in)", &mut cmd, Stdio::from(log))?;
            let (status, out) = child.finish(self.run_for + Duration::from_secs(60))?;
            reports("opcua_standin", "asyncua stand-in", &out, &status.to_string(), self)
        };
        let result = if first.trim() == "ready" {
            run()
        } else {
            Err(anyhow::anyhow!("the stand-in did not start (see opcua-standin.log)"))
        };
        if let Some(mut stdin) = server.stdin.take() {
            let _ = stdin.flush();
        }
        let _ = server.kill();
        let _ = server.wait();
        result
    }
}

impl Running for Started {
    fn finish(mut self: Box<Self>) -> Result<Vec<Report>> {
        let child = self.child.take().context("opcua-load finished twice")?;
        let (status, out) = child.finish(self.run_for + Duration::from_secs(60))?;
        let mut out = reports("opcua", "runtime", &out, &status.to_string(), &self)?;
        if self.compare_standin {
            let standin = self.standin()?;
            let ratio = |a: &Report, b: &Report| if b.rate() > 0.0 { a.rate() / b.rate() } else { f64::INFINITY };
            let read_ratio = ratio(&out[0], &standin[0]);
            out[0].note += &format!("; {read_ratio:.1}× the asyncua stand-in's reads/s");
            out.extend(standin);
        }
        Ok(out)
    }
}
