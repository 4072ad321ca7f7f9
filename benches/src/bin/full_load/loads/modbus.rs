//! Modbus TCP clients: `modbus-load` (plugins/modbus; tokio-modbus's client, not our server
//! code), N connections in a closed loop mixing FC 1/2/3/4 reads with a share of FC 5/6/16
//! writes, against the server the companion runs for the uploaded bundle.

use super::{Load, Report, Running, Target};
use anyhow::{Context, Result};
use openplc_benches::process::ChildGuard;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

pub struct ModbusLoad {
    pub clients: u32,
    pub write_percent: u32,
    pub binary: PathBuf,
}

struct Started {
    child: ChildGuard,
    clients: u32,
    write_percent: u32,
    run_for: Duration,
}

impl Load for ModbusLoad {
    fn start(&self, target: &Target, run_for: Duration) -> Result<Box<dyn Running>> {
        let log = std::fs::File::create(target.dir.join("modbus-load.log")).context("modbus-load.log")?;
        let mut cmd = Command::new(&self.binary);
        cmd.args(["--addr", &format!("127.0.0.1:{}", target.modbus_port)])
            .args(["--clients", &self.clients.to_string()])
            .args(["--write-percent", &self.write_percent.to_string()])
            .args(["--seconds", &format!("{:.3}", run_for.as_secs_f64())]);
        let child = ChildGuard::spawn_captured("modbus-load", &mut cmd, Stdio::from(log))?;
        Ok(Box::new(Started { child, clients: self.clients, write_percent: self.write_percent, run_for }))
    }
}

impl Running for Started {
    fn finish(self: Box<Self>) -> Result<Vec<Report>> {
        // modbus-load exits 1 when a client failed, and still prints its summary.
        let (status, out) = self.child.finish(self.run_for + Duration::from_secs(30))?;
        let line = out.lines().last().unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("modbus-load ({status}) printed {out:?}; see modbus-load.log"))?;
        let ms = |k: &str| v[k].as_f64().map(|us| us / 1000.0);
        let exceptions = v["exceptions"].as_u64().unwrap_or(0);
        let failed_clients = v["errors"].as_u64().unwrap_or(0);
        Ok(vec![Report {
            key: "modbus".into(),
            interface: "Modbus TCP".into(),
            clients: self.clients.to_string(),
            count: v["replies"].as_u64().unwrap_or(0),
            seconds: v["seconds"].as_f64().unwrap_or(self.run_for.as_secs_f64()),
            errors: exceptions + failed_clients,
            p50_ms: ms("p50_us"),
            p99_ms: ms("p99_us"),
            note: format!(
                "{} % writes; reads p99 {} ms; writes (answered once rt-core applied them) p50 {} / p99 {} ms; \
                 {exceptions} exceptions, {failed_clients} clients failed",
                self.write_percent,
                ms("read_p99_us").map_or("-".into(), |x| format!("{x:.2}")),
                ms("write_p50_us").map_or("-".into(), |x| format!("{x:.2}")),
                ms("write_p99_us").map_or("-".into(), |x| format!("{x:.2}")),
            ),
        }])
    }
}
