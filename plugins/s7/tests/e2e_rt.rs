//! python-snap7 against the S7 server over a real rt-core (the port's `testkit`) running
//! its test program through the one port, as the companion runs it: the counter the
//! program keeps moves, a write is applied by a scan and read back, a write larger than
//! rt-core's write queue lands whole, an input the program copies shows in the outputs,
//! stop and start show in the CPU state. Through the companion with uploaded programs:
//! `companion/tests/s7_e2e.rs`.

use openplc_port::testkit::Rt;
use serde_json::Value;
use shared_abi::image::{Area, IecAddress, Width};
use shared_abi::msg::Command as RtCommand;
use std::time::Duration;

const CONFIG: &str = r#"{
  "server": { "enabled": true, "bind_address": "127.0.0.1", "port": 0, "pdu_size": 960 },
  "data_blocks": [
    { "db_number": 2, "size_bytes": 40, "mapping": { "type": "int_memory", "start_buffer": 0 } },
    { "db_number": 5, "size_bytes": 4, "mapping": { "type": "int_output", "start_buffer": 0 } },
    { "db_number": 9, "size_bytes": 1024, "mapping": { "type": "bool_memory", "start_buffer": 0 } }
  ],
  "system_areas": { "pa_area": { "enabled": true, "size_bytes": 4 } }
}"#;

async fn python(port: u16, code: &str) -> Value {
    let script = format!(
        "import json, time, snap7\nc = snap7.client.Client()\nc.set_param(snap7.type.Parameter.PDURequest, 960)\n\
         c.connect('127.0.0.1', 0, 2, {port})\nout = {{}}\n{code}\nprint(json.dumps(out))\n"
    );
    let run = tokio::process::Command::new("python3").arg("-c").arg(script).kill_on_drop(true).output();
    let out = tokio::time::timeout(Duration::from_secs(60), run).await.expect("python finished").expect("python3 runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_snap7_over_a_running_program() {
    let rt = Rt::with_fixture(&[]);
    let port = rt.port();
    let cfg = openplc_s7::S7Config::from_json(CONFIG).unwrap();
    let handle = openplc_s7::start(cfg, port.clone()).await.unwrap();
    let tcp = handle.local_addr().unwrap().port();

    // The program's scan counter (%MW0 = DB2.DBW0) moves between two reads.
    let r = python(
        tcp,
        "a = int.from_bytes(c.db_read(2, 0, 2), 'big')\n\
         deadline = time.time() + 5\n\
         while time.time() < deadline:\n    b = int.from_bytes(c.db_read(2, 0, 2), 'big')\n    if b != a: break\n    time.sleep(0.01)\n\
         out['counter'] = [a, b]\n\
         c.db_write(2, 20, bytearray([0x12, 0x34]))\n\
         out['written'] = list(c.db_read(2, 20, 2))\n\
         out['pdu'] = c.get_pdu_length()\n\
         out['state'] = c.get_cpu_state()",
    )
    .await;
    let counter: Vec<u64> = r["counter"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    assert_ne!(counter[0], counter[1], "the counter moved");
    assert_eq!(r["written"], serde_json::json!([0x12, 0x34]), "read back after rt-core applied it");
    assert_eq!(r["state"], "S7CpuStatusRun");
    let mw10 = IecAddress::new(Area::Memory, Width::Word, 10, 0).unwrap();
    assert_eq!(port.outputs().image.get(mw10), Some(0x1234), "%MW10 in rt-core's published outputs");

    // 900 bytes onto %MX: 7 200 bit writes, more than rt-core's write queue holds at once.
    assert_eq!(r["pdu"], 960);
    let r = python(
        tcp,
        "data = bytearray((i * 7 + 1) & 0xFF for i in range(900))\n\
         c.db_write(9, 0, data)\n\
         out['same'] = bytes(c.db_read(9, 0, 900)) == bytes(data)",
    )
    .await;
    assert_eq!(r["same"], true, "the whole write landed and reads back");
    let byte = (899 * 7 + 1) as u8;
    let mx899 = port.outputs().image.bool_memory[899];
    assert_eq!(mx899, std::array::from_fn(|b| (byte >> b) & 1), "%MX899.0-7 as written");

    // %QW0 = 2 × %IW0 and %QX0.0 = %IX0.0: set inputs, read the outputs the program computes.
    port.update_inputs(|i| {
        i.set(IecAddress::new(Area::Input, Width::Word, 0, 0).unwrap(), 21);
        i.set(IecAddress::new(Area::Input, Width::Bit, 0, 0).unwrap(), 1);
    })
    .unwrap();
    let r = python(
        tcp,
        "deadline = time.time() + 5\n\
         while time.time() < deadline:\n    q = list(c.db_read(5, 0, 2)); pa = c.ab_read(0, 1)[0]\n    if q == [0, 42] and pa & 1: break\n    time.sleep(0.01)\n\
         out['qw0'] = q\nout['qb0'] = pa",
    )
    .await;
    assert_eq!((r["qw0"].clone(), r["qb0"].as_u64().unwrap() & 1), (serde_json::json!([0, 42]), 1));

    // Stop shows as STOP, start as RUN.
    port.command(RtCommand::Stop, Duration::from_secs(5)).await.unwrap();
    let r = python(tcp, "out['state'] = c.get_cpu_state()").await;
    assert_eq!(r["state"], "S7CpuStatusStop");
    port.command(RtCommand::Start, Duration::from_secs(5)).await.unwrap();
    let r = python(tcp, "out['state'] = c.get_cpu_state()").await;
    assert_eq!(r["state"], "S7CpuStatusRun");
    handle.stop().await;
}
