//! S7 clients no one here wrote against our server over real TCP, on the in-memory
//! image: python-snap7 2.x (the Snap7 C library its wheel ships, which HMIs, Node-RED and
//! historians use) connects with the configured rack/slot, reads identity and state,
//! reads and writes every area, bits and multi-item requests, and sees the errors; then
//! python-snap7 3.x (pure Python) and nodes7 (pure JavaScript). Against a running rt-core:
//! `e2e_rt.rs`; through the companion with uploaded programs: `companion/tests/s7_e2e.rs`.

mod support;

use openplc_port::MemoryImage;
use openplc_s7::Handle;
use serde_json::Value;
use shared_abi::image::{Area, IecAddress, Width};
use shared_abi::layout::PlcState;
use std::sync::Arc;
use std::time::Duration;
use tokio::process::Command;

const CONFIG: &str = r#"{
  "server": { "enabled": true, "bind_address": "127.0.0.1", "port": 102, "max_clients": 8,
              "work_interval_ms": 100, "send_timeout_ms": 3000, "recv_timeout_ms": 3000,
              "ping_timeout_ms": 10000, "pdu_size": 480, "rack": 0, "slot": 2 },
  "plc_identity": { "name": "Line 4 Packer", "module_type": "CPU 315-2 PN/DP", "serial_number": "S C-TEST0001",
                    "copyright": "OpenPLC Project", "module_name": "Packer PLC" },
  "data_blocks": [
    { "db_number": 1, "description": "bits", "size_bytes": 8, "mapping": { "type": "bool_output", "start_buffer": 8, "bit_addressing": true } },
    { "db_number": 2, "description": "words", "size_bytes": 20, "mapping": { "type": "int_memory", "start_buffer": 0 } },
    { "db_number": 3, "description": "dwords", "size_bytes": 8, "mapping": { "type": "dint_output", "start_buffer": 0 } },
    { "db_number": 4, "description": "big", "size_bytes": 2048, "mapping": { "type": "int_memory", "start_buffer": 0 } }
  ],
  "system_areas": {
    "pe_area": { "enabled": true, "size_bytes": 16 },
    "pa_area": { "enabled": true, "size_bytes": 16 },
    "mk_area": { "enabled": true, "size_bytes": 16, "mapping": { "type": "int_memory", "start_buffer": 100 } }
  },
  "logging": { "log_connections": true, "log_data_access": false, "log_errors": true }
}"#;

fn a(area: Area, width: Width, index: u16, bit: u8) -> IecAddress {
    IecAddress::new(area, width, index, bit).unwrap()
}

async fn start(image: Arc<MemoryImage>) -> (Handle, u16, tempfile::TempDir) {
    // Through the file, as the companion will read it.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s7comm.json"), CONFIG).unwrap();
    let mut cfg = openplc_s7::load(dir.path()).unwrap().expect("s7comm.json present");
    cfg.port = 0;
    let handle = openplc_s7::start(cfg, image).await.unwrap();
    let port = handle.local_addr().unwrap().port();
    (handle, port, dir)
}

async fn client(port: u16, rack: u8, slot: u8, command: &str) -> Value {
    let script = support::crate_dir().join("tests/py/snap7_client.py");
    let run = Command::new("python3")
        .arg(&script)
        .args([port.to_string(), rack.to_string(), slot.to_string(), command.to_string()])
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), run).await.expect("client finished").expect("python3 runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "snap7 client ({command}) failed: {stderr}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_snap7_reads_and_writes_every_area() {
    let image = Arc::new(MemoryImage::zeroed());
    let set = |addr, v| support::set(&image, addr, v);
    set(a(Area::Memory, Width::Word, 0, 0), 0x0102);
    set(a(Area::Memory, Width::Word, 1, 0), 0x0304);
    set(a(Area::Memory, Width::Word, 2, 0), 0xFFFE);
    set(a(Area::Memory, Width::Word, 4, 0), 0x00EE);
    set(a(Area::Output, Width::DWord, 0, 0), 0xDEAD_BEEF);
    set(a(Area::Input, Width::Bit, 0, 0), 1);
    set(a(Area::Input, Width::Bit, 0, 7), 1);
    set(a(Area::Input, Width::Bit, 1, 1), 1);
    set(a(Area::Output, Width::Bit, 0, 1), 1);
    set(a(Area::Memory, Width::Word, 100, 0), 0xA1B2);
    set(a(Area::Memory, Width::Word, 101, 0), 0x0C0D);
    let (handle, port, _dir) = start(image.clone()).await;

    let r = client(port, 0, 2, "tour").await;
    assert_eq!(r["connected"], true);
    assert_eq!(r["pdu"], 480);
    assert_eq!(r["cpu_info"]["ASName"], "Line 4 Packer");
    assert_eq!(r["cpu_info"]["ModuleName"], "Packer PLC");
    assert_eq!(r["cpu_info"]["ModuleTypeName"], "CPU 315-2 PN/DP");
    assert_eq!(r["cpu_info"]["SerialNumber"], "S C-TEST0001");
    assert_eq!(r["cpu_info"]["Copyright"], "OpenPLC Project");
    assert_eq!(r["order_code"], "OpenPLC-Runtime");
    let version: Vec<String> = r["version"].as_array().unwrap().iter().map(|v| v.to_string()).collect();
    assert_eq!(version.join("."), env!("CARGO_PKG_VERSION"));
    assert_eq!(r["cp_pdu"], 480);
    assert_eq!(r["state"], "S7CpuStatusRun");
    // INT and DINT cells big-endian in the blocks.
    assert_eq!(r["db2"], serde_json::json!([1, 2, 3, 4, 0xFF, 0xFE]));
    assert_eq!(r["db3"], serde_json::json!([0xDE, 0xAD, 0xBE, 0xEF]));
    assert_eq!(r["db4_len"], 1000, "a read longer than the PDU, split by the client");
    assert_eq!(r["pe"], serde_json::json!([0x81, 0x02]));
    assert_eq!(r["pa_before"], serde_json::json!([0x02]));
    assert_eq!(r["mk"], serde_json::json!([0xA1, 0xB2, 0x0C, 0x0D]));
    // Multi-item read: per-item results (0x00C00000 item not available, 0x00900000 out of range).
    let multi = r["multi"].as_array().unwrap();
    let results: Vec<i64> = multi.iter().map(|m| m["result"].as_i64().unwrap()).collect();
    assert_eq!(results, [0, 0, 0, 0x00C0_0000, 0x0090_0000]);
    assert_eq!(multi[0]["data"], serde_json::json!([1, 2]));
    assert_eq!(multi[1]["data"], serde_json::json!([1]));
    assert_eq!(multi[2]["data"], serde_json::json!([0xA1, 0xB2]));
    assert_eq!(r["bit_db1_0_2"], 1);
    assert_eq!(r["err_past_end"], "CPU : Address out of range");
    assert_eq!(r["err_no_db"], "CPU : Item not available");
    assert!(r["err_write_input"].as_str().is_some_and(|e| e.contains("refused")), "{}", r["err_write_input"]);
    assert_eq!(r["err_stop"], "CPU : Cannot stop PLC");
    assert_eq!(r["still_connected"], true);

    // The writes reached the image.
    let get = |addr| support::get(&image, addr);
    assert_eq!(get(a(Area::Memory, Width::Word, 3, 0)), 0x1234);
    assert_eq!(get(a(Area::Memory, Width::Word, 4, 0)), 0x56EE, "a partial word keeps its low byte");
    let db1: Vec<u64> = (0..8).map(|b| get(a(Area::Output, Width::Bit, 8, b))).collect();
    assert_eq!(db1, [1, 0, 1, 0, 0, 1, 0, 1]);
    assert_eq!(get(a(Area::Output, Width::Bit, 9, 6)), 1, "DB1.DBX1.6 written as a bit");
    let pa1: Vec<u64> = (0..8).map(|b| get(a(Area::Output, Width::Bit, 1, b))).collect();
    assert_eq!(pa1, [0, 0, 0, 0, 1, 1, 1, 1]);
    assert_eq!(get(a(Area::Output, Width::Bit, 2, 3)), 1, "Q2.3 written as a bit");
    assert_eq!(get(a(Area::Memory, Width::Word, 102, 0)), 0xCAFE);
    assert_eq!(get(a(Area::Input, Width::Bit, 0, 1)), 0, "inputs are not written");
    assert_eq!(openplc_port::ImagePort::state(&*image), Some(PlcState::Running), "plc_stop did not stop the PLC");

    let status = handle.status().server.unwrap();
    assert!(status.requests > 20 && status.item_errors >= 4 && status.refused_functions == 1, "{status:?}");
    handle.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_snap7_sees_the_state_and_the_values_change() {
    let image = Arc::new(MemoryImage::zeroed());
    let (handle, port, _dir) = start(image.clone()).await;
    assert_eq!(client(port, 0, 2, "state").await["state"], "S7CpuStatusRun");
    image.set_state(Some(PlcState::Stopped));
    assert_eq!(client(port, 0, 2, "state").await["state"], "S7CpuStatusStop");

    // %MW0 counts up while the client polls DB2.DBW0.
    let ticking = image.clone();
    let ticker = tokio::spawn(async move {
        for n in 1u64.. {
            support::set(&ticking, a(Area::Memory, Width::Word, 0, 0), n & 0xFFFF);
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
    let r = client(port, 0, 2, "watch").await;
    ticker.abort();
    let changed = r["changed"].as_array().expect("the client saw DB2.DBW0 change");
    assert!(changed[1].as_u64() > changed[0].as_u64());
    handle.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_snap7_cannot_connect_to_another_slot() {
    let image = Arc::new(MemoryImage::zeroed());
    let (handle, port, _dir) = start(image).await;
    let r = client(port, 0, 3, "refuse").await;
    assert!(r["error"].as_str().is_some_and(|e| e.contains("ISO")), "{}", r["error"]);
    assert_eq!(handle.status().server.unwrap().refused_tsap, 1);
    handle.stop().await;
}

/// nodes7 (Node-RED's S7 client, pure JavaScript) reads and writes too, when
/// `scripts/test-deps` installed it into `target/node-deps`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes7_reads_and_writes() {
    let node_path = support::crate_dir().join("../../target/node-deps/node_modules");
    assert!(
        node_path.join("nodes7").exists(),
        "nodes7 is missing: scripts/test-deps installs it into target/node-deps"
    );
    let image = Arc::new(MemoryImage::zeroed());
    support::set(&image, a(Area::Memory, Width::Word, 0, 0), 0xFFFE); // INT -2
    support::set(&image, a(Area::Memory, Width::Word, 1, 0), 0xBEEF);
    support::set(&image, a(Area::Output, Width::DWord, 0, 0), 0x0001_0002);
    support::set(&image, a(Area::Output, Width::Bit, 8, 2), 1);
    support::set(&image, a(Area::Input, Width::Bit, 0, 7), 1);
    support::set(&image, a(Area::Input, Width::Bit, 1, 0), 1);
    support::set(&image, a(Area::Output, Width::Bit, 0, 3), 1);
    support::set(&image, a(Area::Memory, Width::Word, 100, 0), 0x0102);
    let (handle, port, _dir) = start(image.clone()).await;
    let run = Command::new("node")
        .arg(support::crate_dir().join("tests/js/nodes7_client.js"))
        .arg(port.to_string())
        .env("NODE_PATH", &node_path)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), run).await.expect("node finished").expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "nodes7 failed: {stdout} {}", String::from_utf8_lossy(&out.stderr));
    let r: Value = serde_json::from_str(stdout.trim()).unwrap();
    let v = &r["values"];
    assert_eq!(v["DB2,INT0"], -2);
    assert_eq!(v["DB2,WORD2"], 0xBEEF);
    assert_eq!(v["DB3,DINT0"], 0x0001_0002);
    assert_eq!(v["DB1,X0.2"], true);
    assert_eq!(v["I0.7"], true);
    assert_eq!(v["IB1"], 1);
    assert_eq!(v["QB0"], 8);
    assert_eq!(v["MW0"], 0x0102);
    assert_eq!(support::get(&image, a(Area::Memory, Width::Word, 5, 0)), 4321, "DB2,INT10 is %MW5");
    handle.stop().await;
}

/// python-snap7 3.x, a pure-Python S7 stack (no libsnap7), installed by
/// `scripts/test-deps` into `target/py-snap7-3`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_snap7_3_pure_python_reads_and_writes() {
    let py_path = support::crate_dir().join("../../target/py-snap7-3");
    assert!(
        py_path.join("snap7").exists(),
        "python-snap7 3.x is missing: scripts/test-deps installs it into target/py-snap7-3"
    );
    let image = Arc::new(MemoryImage::zeroed());
    support::set(&image, a(Area::Memory, Width::Word, 0, 0), 0x0102);
    support::set(&image, a(Area::Memory, Width::Word, 100, 0), 0x0A0B);
    let (handle, port, _dir) = start(image.clone()).await;
    let run = Command::new("python3")
        .arg(support::crate_dir().join("tests/py/snap7_v3_client.py"))
        .arg(port.to_string())
        .env("PYTHONPATH", &py_path)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), run).await.expect("client finished").expect("python3 runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["pdu"], 480);
    assert_eq!(r["as_name"], "Line 4 Packer");
    assert_eq!(r["module_type"], "CPU 315-2 PN/DP");
    assert_eq!(r["db2"], serde_json::json!([1, 2, 0, 0, 0, 0, 0, 0, 0xAB, 0xCD]));
    assert_eq!(r["mk"], serde_json::json!([0x0A, 0x0B, 0, 0]));
    assert!(r["err_past_end"].as_str().is_some_and(|e| e.contains("(0x05)")), "{}", r["err_past_end"]);
    assert!(r["err_no_db"].as_str().is_some_and(|e| e.contains("(0x0a)")), "{}", r["err_no_db"]);
    assert_eq!(support::get(&image, a(Area::Memory, Width::Word, 4, 0)), 0xABCD);
    handle.stop().await;
}
