//! The program the full-load bench uploads: the demo bundle zipped as the Editor zips it
//! (`scripts/make-demo-bundle`), its task at the bench's period, and its Modbus server
//! configuration (`conf/modbus_slave.json`) moved to a port of the bench's own.

use anyhow::{Context, Result, bail};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use zip::write::SimpleFileOptions;

pub fn demo_zip(dir: &Path, period_ms: u32, modbus_port: u16, modbus_max_connections: usize) -> Result<PathBuf> {
    let root = openplc_benches::repo_root();
    let zip_path = dir.join("demo.zip");
    let out = Command::new(root.join("scripts/make-demo-bundle"))
        .arg(&zip_path)
        .args(["--period-ms", &period_ms.to_string(), "--no-conf"])
        .output()
        .context("running scripts/make-demo-bundle")?;
    if !out.status.success() {
        bail!("scripts/make-demo-bundle failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    // The demo's own Modbus configuration, on our port.
    let conf_path = root.join("scripts/demo-bundle/conf/modbus_slave.json");
    let mut conf: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&conf_path).with_context(|| conf_path.display().to_string())?)
            .with_context(|| format!("{} is not JSON", conf_path.display()))?;
    let net = &mut conf["network_configuration"];
    net["host"] = "127.0.0.1".into();
    net["port"] = modbus_port.into();
    net["max_connections"] = modbus_max_connections.into();
    // Every bench client connects from 127.0.0.1: one source.
    net["max_connections_per_source"] = modbus_max_connections.into();

    let file = std::fs::OpenOptions::new().read(true).write(true).open(&zip_path).context("opening demo.zip")?;
    let mut zip = zip::ZipWriter::new_append(file).context("reading demo.zip")?;
    let stored = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.add_directory("conf/", stored)?;
    zip.start_file("conf/modbus_slave.json", stored)?;
    zip.write_all(serde_json::to_string_pretty(&conf)?.as_bytes())?;
    zip.finish().context("writing demo.zip")?;
    Ok(zip_path)
}
