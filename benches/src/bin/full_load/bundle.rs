//! The program the full-load bench uploads: the demo bundle zipped as the Editor zips it
//! (`scripts/make-demo-bundle`), its task at the bench's period, its Modbus server
//! configuration (`conf/modbus_slave.json`) moved to a port of the bench's own, when S7
//! clients are asked for a `conf/s7comm.json` on another, and with the OPC-UA load the demo
//! with more variables and its `conf/opcua.json` (`benches/make-opcua-bundle`).

use anyhow::{Context, Result, bail};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use zip::write::SimpleFileOptions;

/// What the OPC-UA load needs in the program: its server's port, the variables it serves
/// (beyond the demo's) and its publishing interval.
#[derive(Clone, Copy)]
pub struct OpcuaBundle {
    pub port: u16,
    pub vars: u32,
    pub cycle_ms: u32,
}

/// The S7 server the S7 load talks to: DB1 is `%MW0..%MW9` (the demo's counter first), MK
/// the same words, PE `%IX0.0..%IX1.7`, PA `%QX0.0..%QX1.7`.
fn s7comm_json(port: u16, max_clients: usize) -> String {
    format!(
        r#"{{"server": {{"enabled": true, "bind_address": "127.0.0.1", "port": {port}, "max_clients": {max_clients},
  "max_clients_per_source": {max_clients}, "pdu_size": 480}},
 "data_blocks": [{{"db_number": 1, "size_bytes": 20, "mapping": {{"type": "int_memory", "start_buffer": 0}}}}],
 "system_areas": {{"pe_area": {{"enabled": true, "size_bytes": 2}}, "pa_area": {{"enabled": true, "size_bytes": 2}},
  "mk_area": {{"enabled": true, "size_bytes": 20, "mapping": {{"type": "int_memory", "start_buffer": 0}}}}}}}}"#
    )
}

/// Room in every table for what the loads address (the Modbus clients' `%MW1000`… and coils
/// 200…, the S7 areas): the 1024 elements every table had before per-program sizes, in
/// upstream's `image.conf` form.
const IMAGE_CONF: &str = "format_version=2\n\
    bool_input=8192 bits\nbool_output=8192 bits\nbool_memory=8192 bits\n\
    byte_input=1024 bytes\nbyte_output=1024 bytes\n\
    int_input=1024 words\nint_output=1024 words\nint_memory=1024 words\n\
    dint_input=1024 dwords\ndint_output=1024 dwords\ndint_memory=1024 dwords\n\
    lint_input=1024 lwords\nlint_output=1024 lwords\nlint_memory=1024 lwords\n";

/// Where the bench's protocol servers listen.
pub struct Servers {
    pub modbus_port: u16,
    pub modbus_max_connections: usize,
    /// The S7 server's port and connection cap, when there is S7 load.
    pub s7: Option<(u16, usize)>,
    /// The OPC-UA server's port, variables and interval, when there is OPC-UA load.
    pub opcua: Option<OpcuaBundle>,
}

pub fn demo_zip(dir: &Path, period_ms: u32, servers: &Servers) -> Result<PathBuf> {
    let root = openplc_benches::repo_root();
    let zip_path = dir.join("demo.zip");
    let opcua = servers.opcua;
    let mut cmd = match opcua {
        None => {
            let mut c = Command::new(root.join("scripts/make-demo-bundle"));
            c.arg(&zip_path).arg("--no-conf");
            c
        }
        Some(o) => {
            let mut c = Command::new(root.join("benches/make-opcua-bundle"));
            c.arg(&zip_path).args(["--port", &o.port.to_string(), "--vars", &o.vars.to_string()]);
            c.args(["--cycle-ms", &o.cycle_ms.to_string()]);
            c
        }
    };
    let out = cmd.args(["--period-ms", &period_ms.to_string()]).output().context("making the bundle")?;
    if !out.status.success() {
        bail!("making the bundle failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    // The demo's own Modbus configuration, on our port.
    let conf_path = root.join("scripts/demo-bundle/conf/modbus_slave.json");
    let mut conf: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&conf_path).with_context(|| conf_path.display().to_string())?)
            .with_context(|| format!("{} is not JSON", conf_path.display()))?;
    let net = &mut conf["network_configuration"];
    net["host"] = "127.0.0.1".into();
    net["port"] = servers.modbus_port.into();
    net["max_connections"] = servers.modbus_max_connections.into();
    // Every bench client connects from 127.0.0.1: one source.
    net["max_connections_per_source"] = servers.modbus_max_connections.into();

    let file = std::fs::OpenOptions::new().read(true).write(true).open(&zip_path).context("opening demo.zip")?;
    let mut zip = zip::ZipWriter::new_append(file).context("reading demo.zip")?;
    let stored = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    if opcua.is_none() {
        zip.add_directory("conf/", stored)?;
    }
    zip.start_file("conf/modbus_slave.json", stored)?;
    zip.write_all(serde_json::to_string_pretty(&conf)?.as_bytes())?;
    zip.start_file("image.conf", stored)?;
    zip.write_all(IMAGE_CONF.as_bytes())?;
    if let Some((port, max_clients)) = servers.s7 {
        zip.start_file("conf/s7comm.json", stored)?;
        zip.write_all(s7comm_json(port, max_clients).as_bytes())?;
    }
    zip.finish().context("writing demo.zip")?;
    Ok(zip_path)
}
