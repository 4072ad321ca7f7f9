//! python-snap7 against the S7 server over a real rt-core running the test program: the
//! counter the program keeps moves, a write is applied by a scan and read back, an input
//! the program copies shows in the outputs, stop and start show in the CPU state.

mod support;

use serde_json::Value;
use shared_abi::client::Reader;
use shared_abi::image::{Area, IecAddress, Width};
use shared_abi::msg::Command as RtCommand;
use std::sync::Arc;
use std::time::Duration;
use support::rt::start_rt;

const CONFIG: &str = r#"{
  "server": { "enabled": true, "bind_address": "127.0.0.1", "port": 0, "pdu_size": 480 },
  "data_blocks": [
    { "db_number": 2, "size_bytes": 40, "mapping": { "type": "int_memory", "start_buffer": 0 } },
    { "db_number": 5, "size_bytes": 4, "mapping": { "type": "int_output", "start_buffer": 0 } }
  ],
  "system_areas": { "pa_area": { "enabled": true, "size_bytes": 4 } }
}"#;

async fn python(port: u16, code: &str) -> Value {
    let script = format!(
        "import json, time, snap7\nc = snap7.client.Client()\nc.connect('127.0.0.1', 0, 2, {port})\nout = {{}}\n{code}\nprint(json.dumps(out))\n"
    );
    let run = tokio::process::Command::new("python3").arg("-c").arg(script).kill_on_drop(true).output();
    let out = tokio::time::timeout(Duration::from_secs(60), run).await.expect("python finished").expect("python3 runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_snap7_over_a_running_program() {
    let (_rt, image) = start_rt();
    let image = Arc::new(image);
    let cfg = openplc_s7::S7Config::from_json(CONFIG).unwrap();
    let handle = openplc_s7::start(cfg, image.clone()).await.unwrap();
    let port = handle.local_addr().unwrap().port();

    // The program's scan counter (%MW0 = DB2.DBW0) moves between two reads.
    let r = python(
        port,
        "a = int.from_bytes(c.db_read(2, 0, 2), 'big')\n\
         deadline = time.time() + 5\n\
         while time.time() < deadline:\n    b = int.from_bytes(c.db_read(2, 0, 2), 'big')\n    if b != a: break\n    time.sleep(0.01)\n\
         out['counter'] = [a, b]\n\
         c.db_write(2, 20, bytearray([0x12, 0x34]))\n\
         out['written'] = list(c.db_read(2, 20, 2))\n\
         out['state'] = c.get_cpu_state()",
    )
    .await;
    let counter: Vec<u64> = r["counter"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    assert_ne!(counter[0], counter[1], "the counter moved");
    assert_eq!(r["written"], serde_json::json!([0x12, 0x34]), "read back after rt-core applied it");
    assert_eq!(r["state"], "S7CpuStatusRun");
    let mw10 = IecAddress::new(Area::Memory, Width::Word, 10, 0).unwrap();
    let published = image.lock().outputs().unwrap().image.get(mw10);
    assert_eq!(published, Some(0x1234), "%MW10 in rt-core's published outputs");

    // %QW0 = 2 × %IW0 and %QX0.0 = %IX0.0: set inputs, read the outputs the program computes.
    {
        let mut c = image.lock();
        c.set_input(IecAddress::new(Area::Input, Width::Word, 0, 0).unwrap(), 21).unwrap();
        c.set_input(IecAddress::new(Area::Input, Width::Bit, 0, 0).unwrap(), 1).unwrap();
    }
    let r = python(
        port,
        "deadline = time.time() + 5\n\
         while time.time() < deadline:\n    q = list(c.db_read(5, 0, 2)); pa = c.ab_read(0, 1)[0]\n    if q == [0, 42] and pa & 1: break\n    time.sleep(0.01)\n\
         out['qw0'] = q\nout['qb0'] = pa",
    )
    .await;
    assert_eq!((r["qw0"].clone(), r["qb0"].as_u64().unwrap() & 1), (serde_json::json!([0, 42]), 1));

    // Stop shows as STOP.
    image.lock().command(RtCommand::Stop, Duration::from_secs(5)).unwrap();
    let r = python(port, "out['state'] = c.get_cpu_state()").await;
    assert_eq!(r["state"], "S7CpuStatusStop");
    handle.stop().await;
}
