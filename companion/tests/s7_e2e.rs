//! The S7comm server through the real companion, with programs of both Editor generations:
//! a MatIEC bundle (Editor ≤ 4.1.4, `scripts/make-demo-bundle`) and a STruC++ bundle
//! (Editor ≥ 4.2, `companion/builder/tests/fixtures/strucpp-demo`), each uploaded over
//! HTTPS with a `conf/s7comm.json` on a free port. python-snap7 (the Snap7 C library, a
//! client no one here wrote) connects with the configured rack and slot and reads the
//! running program: its scan counter (`%MW0`) in a data block and in MK, a write it then
//! counts on from, the inputs a native plugin drives (`%IW0` = scans it saw) in PE and the
//! outputs the program computes from them (`%QW0` = 2 × `%IW0`) in PA; a multi-item read
//! from one scan, bit writes and reads, a PA write; a read beyond a mapping gets the CPU's
//! error; a stopped PLC shows as STOP; `/api/plugins` reports the
//! server; the build log names a configuration that cannot be used; a new upload with
//! another port moves the server.

mod common;

use common::{Runtime, rewrite_zip, wait_for};
use serde_json::Value;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

/// DB1 is `%MW0..%MW9` (the counter first), DB2 `%QW0..%QW1`; PE is `%IW0..%IW1`, PA
/// `%QW0..%QW1`, MK `%MW0..%MW3`. Rack 0 slot 1, as an S7-1200 is addressed.
fn s7comm_json(port: u16) -> String {
    format!(
        r#"{{
  "server": {{ "enabled": true, "bind_address": "127.0.0.1", "port": {port}, "max_clients": 8,
              "pdu_size": 480, "rack": 0, "slot": 1 }},
  "plc_identity": {{ "name": "E2E Line", "module_type": "CPU 1214C" }},
  "data_blocks": [
    {{ "db_number": 1, "size_bytes": 20, "mapping": {{ "type": "int_memory", "start_buffer": 0 }} }},
    {{ "db_number": 2, "size_bytes": 4, "mapping": {{ "type": "int_output", "start_buffer": 0 }} }}
  ],
  "system_areas": {{
    "pe_area": {{ "enabled": true, "size_bytes": 4, "mapping": {{ "type": "int_input", "start_buffer": 0 }} }},
    "pa_area": {{ "enabled": true, "size_bytes": 4, "mapping": {{ "type": "int_output", "start_buffer": 0 }} }},
    "mk_area": {{ "enabled": true, "size_bytes": 8, "mapping": {{ "type": "int_memory", "start_buffer": 0 }} }}
  }}
}}"#
    )
}

/// `plugins/examples/native_counter` (counts the scans it sees into `%IW0`, copies `%QW0`
/// into `%IW1`) built and listed in `plugins.conf`, so that PE has inputs that move.
fn install_native_counter(rt: &Runtime) {
    let root = common::repo_root();
    let so = rt.dir.path().join("libnative_counter.so");
    let built = Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-I"])
        .arg(root.join("shared-abi/include"))
        .arg("-o")
        .arg(&so)
        .arg(root.join("plugins/examples/native_counter/native_counter.c"))
        .status()
        .expect("cc");
    assert!(built.success());
    std::fs::create_dir_all(rt.data_dir()).unwrap();
    std::fs::write(rt.data_dir().join("plugins.conf"), format!("native_counter,{},0,1\n", so.display())).unwrap();
}

/// Every table the S7 mappings above reach, sized to it.
const IMAGE_CONF: &str = "format_version=2\nint_input=2 words\nint_output=2 words\nint_memory=10 words\n";

/// `zip` with `conf/s7comm.json` = `s7comm`, `conf/native_counter.json` and `image.conf`
/// added.
fn with_conf(rt: &Runtime, zip: &Path, name: &str, s7comm: &str) -> PathBuf {
    let out = rt.dir.path().join(format!("{name}.zip"));
    let stored = zip::CompressionMethod::Stored;
    let extra = [
        ("conf/s7comm.json", s7comm.as_bytes().to_vec(), stored),
        ("conf/native_counter.json", b"{}".to_vec(), stored),
        // The tables the mappings reach (the programs alone locate fewer of them).
        ("image.conf", IMAGE_CONF.as_bytes().to_vec(), stored),
    ];
    rewrite_zip(zip, &out, |_, data| Some(data), &extra);
    out
}

fn matiec_bundle(rt: &Runtime) -> PathBuf {
    let plain = rt.dir.path().join("matiec-plain.zip");
    common::demo_bundle(&plain, &["--no-conf"]);
    plain
}

fn strucpp_bundle(rt: &Runtime) -> PathBuf {
    let plain = rt.dir.path().join("strucpp-plain.zip");
    let fixture = common::repo_root().join("companion/builder/tests/fixtures/strucpp-demo");
    common::zip_bundle_dir(&fixture, &plain, &["README.md"]);
    plain
}

/// Uploads `zip`, waits for the build and RUNNING; the build's log lines.
fn deploy(rt: &Runtime, token: &str, zip: &Path) -> String {
    assert_eq!(rt.upload(zip, token).status, 200);
    let build = rt.wait_build(token);
    assert_eq!(build["status"], "SUCCESS", "{build:#}");
    rt.wait_status(token, "STATUS:RUNNING");
    build["logs"].to_string()
}

/// Runs `code` after connecting python-snap7 to rack 0 slot 1 on `port`; `out` (a dict)
/// is printed as JSON. `err(f)` gives the text of the error `f` raises.
fn snap7(port: u16, code: &str) -> Value {
    let script = format!(
        "import json, time, snap7\n\
         def err(f):\n    try:\n        f()\n    except Exception as e:\n        t = e.args[0] if e.args else e\n        return t.decode() if isinstance(t, bytes) else str(t)\n    return None\n\
         def word(b, i=0): return int.from_bytes(b[i:i + 2], 'big')\n\
         c = snap7.client.Client()\nc.connect('127.0.0.1', 0, 1, {port})\nout = {{}}\n{code}\nprint(json.dumps(out))\n"
    );
    let out = Command::new("python3").arg("-c").arg(&script).output().expect("python3");
    assert!(out.status.success(), "python-snap7: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn listening(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

fn s7_status(rt: &Runtime, token: &str) -> Value {
    rt.get("/plugins", token).json()["protocols"]["s7"].clone()
}

/// What both Editor generations' programs must show through S7 (same program body:
/// `%MW0` counts scans, `%QW0` = 2 × `%IW0`).
fn serves_the_running_program(rt: &Runtime, token: &str, port: u16) {
    wait_for("the S7 server", T, || listening(port).then_some(()));

    // The counter moves (DB1.DBW0 and MW0 are %MW0); PE word 0 (%IW0, the plugin's count)
    // moves; PA word 0 is the program's %QW0 = 2 × %IW0: even, and not zero once it ran.
    let r = snap7(
        port,
        "a = word(c.db_read(1, 0, 2)); pe0 = word(c.eb_read(0, 4))\n\
         deadline = time.time() + 20\n\
         while time.time() < deadline:\n\
         \x20   b = word(c.mb_read(0, 2)); pe = c.eb_read(0, 4); pa = c.ab_read(0, 4)\n\
         \x20   if b != a and word(pe) != pe0 and word(pa) > 0: break\n\
         \x20   time.sleep(0.02)\n\
         out['counter'] = [a, b]; out['pe'] = [pe0, word(pe), word(pe, 2)]; out['pa'] = word(pa)\n\
         out['qw0'] = word(c.db_read(2, 0, 2))\n\
         out['state'] = c.get_cpu_state()\n\
         info = c.get_cpu_info(); out['as_name'] = info.ASName.decode(); out['module_type'] = info.ModuleTypeName.decode()",
    );
    let n = |v: &Value| v.as_u64().unwrap_or_else(|| panic!("{r}"));
    assert_ne!(n(&r["counter"][0]), n(&r["counter"][1]), "the program's counter moves: {r}");
    assert_ne!(n(&r["pe"][0]), n(&r["pe"][1]), "PE follows %IW0, which the plugin drives: {r}");
    assert!(n(&r["pa"]) > 0 && n(&r["pa"]) % 2 == 0, "PA is %QW0 = 2 x %IW0: {r}");
    assert_eq!(n(&r["pe"][2]) % 2, 0, "PE word 1 is %IW1, a %QW0 the plugin copied: {r}");
    assert_eq!(n(&r["qw0"]) % 2, 0, "DB2.DBW0 is %QW0 too: {r}");
    assert_eq!(r["state"], "S7CpuStatusRun");
    assert_eq!((r["as_name"].as_str(), r["module_type"].as_str()), (Some("E2E Line"), Some("CPU 1214C")));

    // A write the program counts on from: DB1.DBW0 := 30000, then MW0 (the same %MW0)
    // reads 30000 and more.
    let r = snap7(
        port,
        "out['before'] = word(c.mb_read(0, 2))\n\
         c.db_write(1, 0, bytearray((30000).to_bytes(2, 'big')))\n\
         deadline = time.time() + 20\n\
         while time.time() < deadline:\n\
         \x20   v = word(c.mb_read(0, 2))\n\
         \x20   if v > 30000: break\n\
         \x20   time.sleep(0.02)\n\
         out['after'] = v\n\
         out['past_end'] = err(lambda: c.db_read(1, 18, 4))\n\
         out['no_db'] = err(lambda: c.db_read(9, 0, 2))\n\
         out['input_write'] = err(lambda: c.eb_write(0, 2, bytearray(2)))",
    );
    assert!(r["before"].as_u64().is_some_and(|v| v < 30_000), "{r}");
    let after = r["after"].as_u64().unwrap();
    assert!((30_001..40_000).contains(&after), "the write landed, then the program counted on: {r}");
    assert_eq!(r["past_end"], "CPU : Address out of range", "a read past DB1's 20 bytes");
    assert_eq!(r["no_db"], "CPU : Item not available", "no DB9 configured");
    assert!(r["input_write"].as_str().is_some_and(|e| e.contains("refused")), "inputs are read-only: {r}");

    // Multi-item and bit requests, as HMIs batch them. One read of five items: DB1.DBW0
    // and MW0 (both %MW0) from the same scan, PE and PA words, and DB1 past its end. One
    // write of two bits: DB1.DBX5.1 (%MW2 bit 1) and M7.0 (%MW3 bit 0), and a PA word
    // the program leaves alone (%QW1); then the cells and a bit read back.
    let r = snap7(
        port,
        "from ctypes import c_uint8, cast, POINTER\n\
         from snap7.type import Area, WordLen, S7DataItem\n\
         def item(area, db, start, amount, wl, buf):\n\
         \x20   it = S7DataItem(); it.Area, it.WordLen, it.DBNumber, it.Start, it.Amount = area, wl, db, start, amount\n\
         \x20   it.pData = cast(buf, POINTER(c_uint8)); return it\n\
         bufs = [(c_uint8 * 4)() for _ in range(5)]\n\
         specs = [(Area.DB, 1, 0, 2), (Area.MK, 0, 0, 2), (Area.PE, 0, 0, 2), (Area.PA, 0, 0, 2), (Area.DB, 1, 18, 4)]\n\
         items = (S7DataItem * 5)(*[item(a, db, s, n, WordLen.Byte, b) for (a, db, s, n), b in zip(specs, bufs)])\n\
         c.read_multi_vars(items)\n\
         out['multi'] = [[it.Result, word(bytes(b))] for it, b in zip(items, bufs)]\n\
         c.mb_write(4, 4, bytearray(4))\n\
         one = (c_uint8 * 1)(1)\n\
         out['bit_write'] = c.write_multi_vars([item(Area.DB, 1, 5 * 8 + 1, 1, WordLen.Bit, one), item(Area.MK, 0, 7 * 8, 1, WordLen.Bit, one)])\n\
         c.ab_write(2, bytearray([0x12, 0x34]))\n\
         out['mw2_mw3'] = list(c.mb_read(4, 4)); out['qw1'] = list(c.ab_read(2, 2))\n\
         bits = [(c_uint8 * 1)() for _ in range(2)]\n\
         c.read_multi_vars((S7DataItem * 2)(item(Area.MK, 0, 7 * 8, 1, WordLen.Bit, bits[0]), item(Area.MK, 0, 7 * 8 + 1, 1, WordLen.Bit, bits[1])))\n\
         out['m7'] = [bits[0][0], bits[1][0]]",
    );
    let multi = r["multi"].as_array().unwrap_or_else(|| panic!("{r}"));
    let results: Vec<u64> = multi.iter().map(|m| m[0].as_u64().unwrap()).collect();
    assert_eq!(results, [0, 0, 0, 0, 0x0090_0000], "four items read, the fifth out of range: {r}");
    assert_eq!(multi[0][1], multi[1][1], "DB1.DBW0 and MW0 are %MW0 of one scan: {r}");
    assert_eq!(multi[3][1].as_u64().map(|v| v % 2), Some(0), "PA word 0 is %QW0 = 2 x %IW0: {r}");
    assert_eq!(r["bit_write"], 0, "{r}");
    assert_eq!(r["mw2_mw3"], serde_json::json!([0, 2, 0, 1]), "the bits landed in %MW2 and %MW3: {r}");
    assert_eq!(r["qw1"], serde_json::json!([0x12, 0x34]), "PA word 1 is %QW1: {r}");
    assert_eq!(r["m7"], serde_json::json!([1, 0]), "M7.0 and M7.1 read as bits: {r}");

    // /api/plugins reports the server and what it did.
    let s7 = s7_status(rt, token);
    assert_eq!(s7["state"], "running", "{s7}");
    assert_eq!(s7["status"]["server"]["local_addr"], format!("127.0.0.1:{port}"), "{s7}");
    assert!(s7["status"]["server"]["requests"].as_u64().is_some_and(|n| n > 10), "{s7}");

    // A stopped PLC shows as STOP (the server keeps answering, as a CPU in STOP does), and
    // RUN again once started.
    assert_eq!(rt.get("/stop-plc", token).json()["status"], "STOP:OK");
    let r = snap7(port, "out['state'] = c.get_cpu_state()");
    assert_eq!(r["state"], "S7CpuStatusStop");
    assert_eq!(rt.get("/start-plc", token).json()["status"], "START:OK");
    rt.wait_status(token, "STATUS:RUNNING");
    let r = snap7(port, "out['state'] = c.get_cpu_state()");
    assert_eq!(r["state"], "S7CpuStatusRun");
}

#[test]
fn a_matiec_upload_serves_s7_and_a_new_upload_moves_it() {
    let rt = Runtime::start(&[]);
    let token = rt.bootstrap("admin", "admin-pass");
    install_native_counter(&rt);
    let plain = matiec_bundle(&rt);
    let port = common::free_port();
    let logs = deploy(&rt, &token, &with_conf(&rt, &plain, "first", &s7comm_json(port)));
    assert!(!logs.contains("will not start"), "{logs}");
    serves_the_running_program(&rt, &token, port);
    let log = rt.get("/runtime-logs", &token).json()["runtime-logs"].to_string();
    assert_eq!(log.matches("S7 server listening on").count(), 1, "a stop and a start kept the server up: {log}");

    // A second upload with another port: the server moves there.
    let moved = common::free_port();
    deploy(&rt, &token, &with_conf(&rt, &plain, "moved", &s7comm_json(moved)));
    wait_for("the old port to close", T, || (!listening(port)).then_some(()));
    wait_for("the new port", T, || listening(moved).then_some(()));
    assert_eq!(snap7(moved, "out['state'] = c.get_cpu_state()")["state"], "S7CpuStatusRun");
    let s7 = s7_status(&rt, &token);
    assert_eq!(s7["status"]["server"]["local_addr"], format!("127.0.0.1:{moved}"), "{s7}");

    // A configuration that cannot be used: the program is deployed, the build log and
    // /api/plugins say why the server did not start.
    let broken = s7comm_json(moved).replace(r#""type": "int_output""#, r#""type": "real_output""#);
    let logs = deploy(&rt, &token, &with_conf(&rt, &plain, "broken", &broken));
    assert!(logs.contains("[ERROR] The s7 server will not start") && logs.contains("real_output"), "{logs}");
    let s7 = wait_for("the s7 failure in /api/plugins", T, || {
        let s7 = s7_status(&rt, &token);
        (s7["state"] == "failed").then_some(s7)
    });
    assert!(s7["error"].as_str().is_some_and(|e| e.contains("mapping.type")), "{s7}");
    wait_for("the server to be gone", T, || (!listening(moved)).then_some(()));
    let log = rt.get("/runtime-logs", &token).json()["runtime-logs"].to_string();
    assert!(log.contains("s7 not started"), "{log}");
}

#[test]
fn a_strucpp_upload_serves_s7() {
    let rt = Runtime::start(&[]);
    let token = rt.bootstrap("admin", "admin-pass");
    install_native_counter(&rt);
    let port = common::free_port();
    let logs = deploy(&rt, &token, &with_conf(&rt, &strucpp_bundle(&rt), "strucpp", &s7comm_json(port)));
    assert!(logs.contains("STruC++"), "{logs}");
    serves_the_running_program(&rt, &token, port);
}

#[test]
fn a_taken_port_is_reported() {
    let rt = Runtime::start(&[]);
    let token = rt.bootstrap("admin", "admin-pass");
    let taken = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let port = taken.local_addr().unwrap().port();
    deploy(&rt, &token, &with_conf(&rt, &matiec_bundle(&rt), "taken", &s7comm_json(port)));
    let s7 = wait_for("the s7 failure in /api/plugins", T, || {
        let s7 = s7_status(&rt, &token);
        (s7["state"] == "failed").then_some(s7)
    });
    assert!(s7["error"].as_str().is_some_and(|e| e.to_lowercase().contains("in use")), "{s7}");
    assert_eq!(rt.status(&token), "STATUS:RUNNING", "the PLC runs on");
}
