//! The server against a second independent stack, node-opcua (npm, installed by
//! scripts/test-deps into target/node-deps): browse, read, write, subscribe.

mod support;

use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;
use support::*;

fn node_modules() -> std::path::PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let modules = root.join("target/node-deps/node_modules");
    assert!(
        modules.join("node-opcua-client").exists(),
        "{} has no node-opcua-client: run scripts/test-deps",
        modules.display()
    );
    modules
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_opcua_browses_reads_writes_and_subscribes() {
    let r = start(None).await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js/ua_node.js");
    let out = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::process::Command::new("node")
            .arg(script)
            .arg(&r.url)
            .arg(NS)
            .env("NODE_PATH", node_modules())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("node-opcua finished in time")
    .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let got: Value = serde_json::from_str(stdout.lines().rfind(|l| l.starts_with('{')).unwrap_or(""))
        .unwrap_or_else(|e| panic!("{e}: {stdout}"));

    let browse: Vec<&str> = got["browse"].as_array().expect("browse").iter().filter_map(Value::as_str).collect();
    for name in ["BOOL", "Counter", "Levels", "Motor", "WSTRING"] {
        assert!(browse.contains(&name), "{name} not browsed: {browse:?}");
    }
    assert_eq!(got["read"]["PLC.INT"], json!(["Int16", -31000]));
    assert_eq!(got["read"]["PLC.REAL"][0], "Float");
    assert!((got["read"]["PLC.REAL"][1].as_f64().unwrap_or(0.0) - f64::from(std::f32::consts::PI)).abs() < 1e-6);
    assert_eq!(got["read"]["PLC.STRING"], json!(["String", "Grüße, 1 €"]));
    assert_eq!(got["read"]["PLC.WSTRING"], json!(["String", "Ωmega 𝄞"]));
    assert_eq!(got["read"]["PLC.TIME"], json!(["Double", 90061500]));
    assert_eq!(got["read"]["PLC.Levels"], json!(["Int16", [10, -20, 30, -40]]));
    assert_eq!(got["write"], "Good");
    assert_eq!(got["read_back"], -4321);
    assert_eq!(i32::from_le_bytes(r.plc.var(SETPOINT).expect("var").bytes[..4].try_into().expect("4")), -4321);
    let seen: Vec<u64> =
        got["subscription"].as_array().expect("subscription").iter().filter_map(Value::as_u64).collect();
    assert!(seen.len() >= 8, "the counter changes about every 100 ms: {seen:?}");
    assert!(seen.windows(2).all(|w| w[1] > w[0]), "{seen:?}");
    r.handle.stop().await;
}
