//! Editor-like debugger clients: socket.io-client sessions on `/api/debug` over wss with the
//! bench user's token, each polling its own V variables every I ms with `0x44` (a poll is
//! skipped while the previous one is in flight, as the Editor does). The driver is
//! `companion/debugger/bench/load.js`; it prints one JSON summary line.

use super::{Load, Report, Running, Target};
use anyhow::{Context, Result, bail};
use openplc_benches::process::ChildGuard;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

pub struct DebuggerLoad {
    pub clients: u32,
    pub vars: u32,
    pub interval_ms: u32,
    pub node: String,
    pub script: PathBuf,
    pub node_modules: PathBuf,
}

struct Started {
    child: ChildGuard,
    clients: u32,
    vars: u32,
    interval_ms: u32,
    run_for: Duration,
}

impl Load for DebuggerLoad {
    fn start(&self, target: &Target, run_for: Duration) -> Result<Box<dyn Running>> {
        if target.var_count == 0 {
            bail!("the program has no debug variables");
        }
        let log = std::fs::File::create(target.dir.join("debugger-load.log")).context("debugger-load.log")?;
        let mut cmd = Command::new(&self.node);
        cmd.arg(&self.script)
            .arg(format!("https://127.0.0.1:{}", target.api.port()))
            .arg(&target.token)
            .args([self.clients, self.vars, self.interval_ms].map(|n| n.to_string()))
            .arg(format!("{:.3}", run_for.as_secs_f64()))
            .arg(target.var_count.to_string())
            .env("NODE_PATH", &self.node_modules)
            .env("NODE_NO_WARNINGS", "1");
        let child = ChildGuard::spawn_captured("node (debugger load)", &mut cmd, Stdio::from(log))?;
        Ok(Box::new(Started { child, clients: self.clients, vars: self.vars, interval_ms: self.interval_ms, run_for }))
    }
}

impl Running for Started {
    fn finish(self: Box<Self>) -> Result<Vec<Report>> {
        let (status, out) = self.child.finish(self.run_for + Duration::from_secs(30))?;
        let line = out.lines().last().unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("the debugger load ({status}) printed {out:?}; see debugger-load.log"))?;
        let f = |p: &str| v.pointer(p).and_then(serde_json::Value::as_f64);
        let mut note = format!("{} vars every {} ms", self.vars, self.interval_ms);
        if let Some(skipped) = v["skipped"].as_u64().filter(|&s| s > 0) {
            note += &format!("; {skipped} polls skipped (previous in flight)");
        }
        if let Some(e) = v["first_error"].as_str() {
            note += &format!("; first error: {e}");
        }
        Ok(vec![Report {
            key: "debugger".into(),
            interface: "debugger (socket.io, wss)".into(),
            clients: self.clients.to_string(),
            count: v["replies"].as_u64().unwrap_or(0),
            seconds: f("/seconds").unwrap_or(self.run_for.as_secs_f64()),
            errors: v["errors"].as_u64().unwrap_or(0),
            p50_ms: f("/latency_ms/p50"),
            p99_ms: f("/latency_ms/p99"),
            note,
        }])
    }
}
