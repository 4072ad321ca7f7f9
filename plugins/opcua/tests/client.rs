//! The client half against a remote server the test starts (Python asyncua): values flow
//! in both directions, a dead server is reported without holding up the live one, and a
//! restarted server is reconnected to (its inputs subscribed again, every output sent again).

use openplc_opcua::{Config, MemVar, MemoryPlc, Plc, RemoteState};
use openplc_port::MemoryImage;
use serde_json::{Value, json};
use shared_abi::image::IecAddress;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

struct Remote {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Remote {
    /// A remote server process: listening at once, or (`standby`) with its address space
    /// built, waiting for [`Remote::listen`].
    async fn spawn(port: u16, standby: bool) -> Remote {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/ua_server.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(port.to_string())
            .args(standby.then_some("--standby"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 runs");
        let stdin = child.stdin.take().expect("stdin");
        let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        Remote { child, stdin, lines }
    }

    async fn expect(&mut self, line: &str) {
        let got = tokio::time::timeout(Duration::from_secs(60), self.lines.next_line())
            .await
            .expect("the server starts in time");
        assert_eq!(got.ok().flatten().as_deref(), Some(line));
    }

    async fn start(port: u16) -> Remote {
        let mut remote = Remote::spawn(port, false).await;
        remote.expect("ready").await;
        remote
    }

    /// Lets a standby server listen.
    async fn listen(&mut self) {
        self.expect("initialized").await;
        self.stdin.write_all(b"listen\n").await.expect("write");
        self.expect("ready").await;
    }

    async fn ask(&mut self, line: &str) -> String {
        self.stdin.write_all(format!("{line}\n").as_bytes()).await.expect("write");
        let answer =
            tokio::time::timeout(Duration::from_secs(10), self.lines.next_line()).await.expect("an answer in time");
        answer.ok().flatten().expect("a line")
    }

    async fn get(&mut self, node: &str) -> Value {
        serde_json::from_str(&self.ask(&format!("get {node}")).await).expect("json")
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// Polls `cond` (which may await) until it holds, for at most 20 s.
macro_rules! until {
    ($what:expr, $cond:expr) => {{
        let deadline = Instant::now() + Duration::from_secs(20);
        while !$cond {
            assert!(Instant::now() < deadline, "timed out waiting for {}", $what);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }};
}

fn config(port: u16, dead_port: u16) -> Value {
    json!([{ "name": "opcua_client", "protocol": "OPC-UA-Client", "config": { "format_version": 1, "servers": [
        { "name": "dead", "endpoint_url": format!("opc.tcp://127.0.0.1:{dead_port}/nobody/"),
          "security": { "security_policy": "None", "security_mode": "None", "auth_mode": "anonymous" },
          "mappings": [ { "remote_node_id": "ns=2;s=Level", "index": 2, "datatype": "INT", "size": 2, "direction": "remote_to_plc", "cycle_time_ms": 100 } ] },
        { "name": "remote", "endpoint_url": format!("opc.tcp://127.0.0.1:{port}/test/"),
          "security": { "security_policy": "None", "security_mode": "None", "auth_mode": "anonymous",
                        "username": null, "password": null, "client_cert_pem": null, "client_key_pem": null, "server_cert_pem": null },
          "session_timeout_ms": 30000, "reconnect": true,
          "mappings": [
            { "remote_node_id": "ns=2;s=Level", "arr": 0, "elem": 0, "datatype": "INT", "size": 2, "direction": "remote_to_plc", "cycle_time_ms": 100 },
            { "remote_node_id": "ns=2;s=Raw", "iec_location": "%IW3", "datatype": "UINT", "direction": "remote_to_plc", "cycle_time_ms": 100 },
            { "remote_node_id": "ns=2;s=Setpoint", "arr": 0, "elem": 1, "datatype": "DINT", "size": 4, "direction": "plc_to_remote", "cycle_time_ms": 100 },
            { "remote_node_id": "ns=2;s=Lamp", "iec_location": "%QX0.1", "datatype": "BOOL", "direction": "plc_to_remote", "cycle_time_ms": 100 },
            { "remote_node_id": "ns=2;s=Ratio", "arr": 0, "elem": 3, "datatype": "LREAL", "size": 8, "direction": "plc_to_remote", "cycle_time_ms": 100 }
          ] } ] } }])
}

fn int(plc: &MemoryPlc, var: u32) -> i64 {
    let b = plc.var(var).expect("var").bytes;
    let mut w = [0u8; 8];
    w[..b.len().min(8)].copy_from_slice(&b[..b.len().min(8)]);
    let v = i64::from_le_bytes(w);
    match b.len() {
        2 => v as i16 as i64,
        4 => v as i32 as i64,
        _ => v,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_flow_both_ways_and_survive_a_server_restart() {
    let _ = tracing_subscriber::fmt().with_env_filter("openplc_opcua=debug").with_test_writer().try_init();
    let port = free_port();
    let dead = free_port();
    let mut remote = Remote::start(port).await;
    // The server that comes back later builds its address space meanwhile.
    let mut standby = Remote::spawn(port, true).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("conf");
    std::fs::create_dir_all(&conf).expect("conf");
    std::fs::write(conf.join("opcua_client.json"), config(port, dead).to_string()).expect("write");
    let plc = MemoryPlc::new(
        vec![
            MemVar::scalar(&0i16.to_le_bytes()),
            MemVar::scalar(&4242i32.to_le_bytes()),
            MemVar::scalar(&0i16.to_le_bytes()),
            MemVar::scalar(&0.25f64.to_le_bytes()),
        ],
        Duration::from_millis(10),
    );
    let lamp = IecAddress::parse("%QX0.1").expect("address");
    let raw = IecAddress::parse("%IW3").expect("address");
    let image = Arc::new(MemoryImage::zeroed());
    let mut outputs: Box<shared_abi::layout::OutputSnapshot> = bytemuck::zeroed_box();
    outputs.image.set(lamp, 1);
    image.publish(outputs);
    let cfg = Config::from_conf_dir(&conf).expect("config");
    assert!(cfg.server.is_none());
    let shared = Plc { vars: Arc::new(plc.clone()), image: image.clone() };
    let handle = openplc_opcua::start(cfg, shared, &dir.path().join("opcua")).await.expect("client starts");

    // Remote → PLC, into a debug variable and into the input image.
    assert_eq!(remote.ask("set Level Int16 123").await, "ok");
    assert_eq!(remote.ask("set Raw UInt16 777").await, "ok");
    until!("Level in the PLC", int(&plc, 0) == 123);
    until!("Raw in %IW3", image.inputs().get(raw) == Some(777));
    // PLC → remote, from a debug variable and from an output.
    until!("Setpoint on the remote", remote_get(&mut remote, "Setpoint").await == json!(4242));
    until!("Lamp on the remote", remote_get(&mut remote, "Lamp").await == json!(true));
    until!("Ratio on the remote", remote_get(&mut remote, "Ratio").await == json!(0.25));
    plc.set_var(1, &(-17i32).to_le_bytes());
    until!("a changed Setpoint on the remote", remote_get(&mut remote, "Setpoint").await == json!(-17));

    // The dead server is reported, and did not hold up the live one.
    until!(
        "the dead server reported",
        handle.status().client.iter().any(|s| s.name == "dead" && s.state == RemoteState::Failing)
    );
    let status = handle.status().client;
    let dead_status = status.iter().find(|s| s.name == "dead").expect("dead listed");
    assert_eq!(dead_status.state, RemoteState::Failing, "{status:?}");
    assert!(dead_status.failures >= 1 && dead_status.last_error.is_some(), "{status:?}");
    let live = status.iter().find(|s| s.name == "remote").expect("remote listed");
    assert_eq!(live.state, RemoteState::Connected);
    assert!(live.values_in >= 2 && live.values_out >= 3, "{live:?}");

    // The remote server goes away ...
    remote.stop().await;
    until!(
        "the loss reported",
        handle.status().client.iter().any(|s| s.name == "remote" && s.state != RemoteState::Connected)
    );
    // ... and comes back empty: inputs flow again, and outputs are sent again unchanged.
    standby.listen().await;
    let mut remote = standby;
    until!(
        "reconnected",
        handle.status().client.iter().any(|s| s.name == "remote" && s.state == RemoteState::Connected)
    );
    until!("Setpoint sent again", remote_get(&mut remote, "Setpoint").await == json!(-17));
    until!("Lamp sent again", remote_get(&mut remote, "Lamp").await == json!(true));
    assert_eq!(remote.ask("set Level Int16 -55").await, "ok");
    until!("the new Level in the PLC", int(&plc, 0) == -55);
    handle.stop().await;
    remote.stop().await;
}

async fn remote_get(remote: &mut Remote, node: &str) -> Value {
    remote.get(node).await
}
