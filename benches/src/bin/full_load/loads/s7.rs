//! S7 clients: python-snap7 2.x (the Snap7 C library its wheel ships, as HMIs and
//! historians use it; not our code), N connections in a closed loop, each on its own
//! thread, mixing DB/MK/PE/PA reads with a share of DB writes, against the server the
//! companion runs for the uploaded bundle. The driver is `plugins/s7/bench/load.py`; it
//! prints one JSON summary line.

use super::{Load, Report, Running, Target};
use anyhow::{Context, Result};
use openplc_benches::process::ChildGuard;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

pub struct S7Load {
    pub clients: u32,
    pub write_percent: u32,
    pub python: String,
    pub script: PathBuf,
}

struct Started {
    child: ChildGuard,
    clients: u32,
    write_percent: u32,
    run_for: Duration,
}

impl Load for S7Load {
    fn start(&self, target: &Target, run_for: Duration) -> Result<Box<dyn Running>> {
        let log = std::fs::File::create(target.dir.join("s7-load.log")).context("s7-load.log")?;
        let mut cmd = Command::new(&self.python);
        cmd.arg(&self.script)
            .args(["--port", &target.s7_port.to_string()])
            .args(["--clients", &self.clients.to_string()])
            .args(["--write-percent", &self.write_percent.to_string()])
            .args(["--seconds", &format!("{:.3}", run_for.as_secs_f64())]);
        let child = ChildGuard::spawn_captured("python3 (S7 load)", &mut cmd, Stdio::from(log))?;
        Ok(Box::new(Started { child, clients: self.clients, write_percent: self.write_percent, run_for }))
    }
}

impl Running for Started {
    fn finish(self: Box<Self>) -> Result<Vec<Report>> {
        let (status, out) = self.child.finish(self.run_for + Duration::from_secs(30))?;
        let line = out.lines().last().unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("the S7 load ({status}) printed {out:?}; see s7-load.log"))?;
        let ms = |k: &str| v[k].as_f64().map(|us| us / 1000.0);
        let show = |k: &str| ms(k).map_or("-".into(), |x| format!("{x:.2}"));
        let mut note = format!(
            "{} % writes; reads p99 {} ms; writes (answered once rt-core applied them) p50 {} / p99 {} ms",
            self.write_percent,
            show("read_p99_us"),
            show("write_p50_us"),
            show("write_p99_us"),
        );
        if let Some(e) = v["first_error"].as_str() {
            note += &format!("; first error: {e}");
        }
        Ok(vec![Report {
            key: "s7".into(),
            interface: "S7comm (python-snap7)".into(),
            clients: self.clients.to_string(),
            count: v["replies"].as_u64().unwrap_or(0),
            seconds: v["seconds"].as_f64().unwrap_or(self.run_for.as_secs_f64()),
            errors: v["errors"].as_u64().unwrap_or(0),
            p50_ms: ms("p50_us"),
            p99_ms: ms("p99_us"),
            note,
        }])
    }
}
