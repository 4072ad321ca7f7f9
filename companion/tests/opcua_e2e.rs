//! OPC-UA against the running program of each Editor generation, through the real
//! companion: a MatIEC bundle and then a STruC++ bundle, each uploaded over HTTPS with a
//! `conf/opcua.json` whose variables point at the program's debug variables (MatIEC by flat
//! index, STruC++ by (array, element)), built, run by rt-core, and served by the OPC-UA
//! server the companion starts with the PLC. Python asyncua (a client no one here wrote)
//! browses, reads every variable in one request, subscribes to the counter, writes as
//! engineer and is refused as viewer and anonymous; every value it reads, and every value
//! the REST monitor reads through the debugger's watch list, is the one the program's
//! formulas give for the counter read in the same request (the demo program's README).
//! Then uploads whose OPC-UA server cannot start (a port taken, a bad configuration) show
//! why in `/api/plugins` and the runtime log, and the PLC runs on.

mod common;

use common::{Runtime, wait_for};
use openplc_opcua::server::auth::PasswordHash;
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);
const NS: &str = "urn:openplc:e2e";
/// The demo program's task period (both generations).
const PERIOD_MS: u64 = 10;

/// A debug variable of the demo program: its name after `INSTANCE0.`, its IEC type, its
/// MatIEC index and its STruC++ element (array 0).
struct Var {
    key: &'static str,
    ty: &'static str,
    matiec: u32,
    strucpp: u32,
}

const fn v(key: &'static str, ty: &'static str, matiec: u32, strucpp: u32) -> Var {
    Var { key, ty, matiec, strucpp }
}

/// Served as plain variables `PLC.<key>`. (DIN0 and DOUT0, two BOOLs at consecutive debug
/// indices in both generations, are served as the array `PLC.Bits`.)
const VARIABLES: [Var; 21] = [
    v("COUNTER", "UINT", 0, 0),
    v("AIN0", "UINT", 3, 3),
    v("AOUT0", "UINT", 4, 4),
    v("V_BOOL", "BOOL", 5, 5),
    v("V_SINT", "SINT", 6, 6),
    v("V_INT", "INT", 7, 7),
    v("V_DINT", "DINT", 8, 8),
    v("V_LINT", "LINT", 9, 9),
    v("V_USINT", "USINT", 10, 10),
    v("V_UINT", "UINT", 11, 11),
    v("V_UDINT", "UDINT", 12, 12),
    v("V_ULINT", "ULINT", 13, 13),
    v("V_REAL", "REAL", 14, 14),
    v("V_LREAL", "LREAL", 15, 15),
    v("V_BYTE", "BYTE", 16, 16),
    v("V_WORD", "WORD", 17, 17),
    v("V_DWORD", "DWORD", 18, 18),
    v("V_LWORD", "LWORD", 19, 19),
    v("ELAPSED", "TIME", 30, 24),
    v("PRESET", "TIME", 31, 25),
    v("TEXT", "STRING", 32, 26),
];

/// The TON instance, served as a structure `PLC.Uptime` (node ids `PLC.Uptime.<field>`).
const UPTIME: [Var; 4] = [
    v("UPTIME.IN", "BOOL", 22, 20),
    v("UPTIME.PT", "TIME", 23, 21),
    v("UPTIME.Q", "BOOL", 24, 22),
    v("UPTIME.ET", "TIME", 25, 23),
];

#[derive(Clone, Copy, PartialEq)]
enum Generation {
    Matiec,
    Strucpp,
}

fn node_id(var: &Var) -> String {
    match var.key.strip_prefix("UPTIME.") {
        Some(field) => format!("PLC.Uptime.{field}"),
        None => format!("PLC.{}", var.key),
    }
}

fn perms(viewer: &str, operator: &str, engineer: &str) -> Value {
    json!({ "viewer": viewer, "operator": operator, "engineer": engineer })
}

fn hash(password: &str) -> String {
    // The Editor's format; fewer rounds than its 600 000 keep the test quick.
    PasswordHash::create(password, b"e2e-salt-16bytes", 1000)
}

/// Where a leaf is, as the Editor of `generation` writes it.
fn address(generation: Generation, var: &Var) -> Value {
    match generation {
        Generation::Matiec => json!({ "index": var.matiec }),
        Generation::Strucpp => json!({ "arr": 0, "elem": var.strucpp, "size": null }),
    }
}

fn merge(mut a: Value, b: Value) -> Value {
    if let (Some(a), Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
    a
}

/// `conf/opcua.json` for the demo program as the Editor of `generation` writes it.
fn opcua_json(generation: Generation, port: u16, path: &str, cycle_time_ms: u64) -> Value {
    let variables: Vec<Value> = VARIABLES
        .iter()
        .map(|var| {
            let writable = if matches!(var.key, "COUNTER" | "TEXT") { "rw" } else { "r" };
            merge(
                json!({ "node_id": node_id(var), "browse_name": var.key, "display_name": var.key, "datatype": var.ty,
                        "initial_value": 0, "description": "", "permissions": perms("r", "r", writable) }),
                address(generation, var),
            )
        })
        .collect();
    let fields: Vec<Value> = UPTIME
        .iter()
        .map(|var| {
            let name = var.key.trim_start_matches("UPTIME.");
            merge(
                json!({ "name": name, "datatype": var.ty, "initial_value": 0, "permissions": perms("r", "r", "r") }),
                address(generation, var),
            )
        })
        .collect();
    let bits = merge(
        json!({ "node_id": "PLC.Bits", "browse_name": "Bits", "display_name": "Bits", "datatype": "BOOL", "length": 2,
                "initial_value": false, "permissions": perms("r", "r", "r") }),
        address(generation, &v("DIN0", "BOOL", 1, 1)),
    );
    let mut config = json!({
        "server": {
            "name": "OpenPLC e2e", "application_uri": "urn:openplc:e2e:server", "product_uri": "urn:openplc:runtime",
            "endpoint_url": format!("opc.tcp://127.0.0.1:{port}{path}"),
            "security_profiles": [
                { "name": "insecure", "enabled": true, "security_policy": "None", "security_mode": "None",
                  "auth_methods": ["Anonymous", "Username"], "anonymous_role": "engineer" },
                { "name": "secure", "enabled": true, "security_policy": "Basic256Sha256", "security_mode": "SignAndEncrypt",
                  "auth_methods": ["Username"] }
            ]
        },
        "security": { "server_certificate_strategy": "auto_self_signed", "trusted_client_certificates": [] },
        "users": [
            { "type": "password", "username": "eng", "password_hash": hash("eng-pass"), "role": "engineer" },
            { "type": "password", "username": "op", "password_hash": hash("op-pass"), "role": "operator" },
            { "type": "password", "username": "view", "password_hash": hash("view-pass"), "role": "viewer" }
        ],
        "cycle_time_ms": cycle_time_ms,
        "address_space": {
            "namespace_uri": NS,
            "variables": variables,
            "structures": [{ "node_id": "PLC.Uptime", "browse_name": "Uptime", "display_name": "Uptime",
                             "description": "the TON instance", "fields": fields }],
            "arrays": [bits]
        }
    });
    if generation == Generation::Strucpp {
        config["format_version"] = json!(2);
    }
    json!([{ "name": "opcua_server", "protocol": "OPC-UA", "config": config }])
}

/// The bundle of `generation` zipped as its Editor zips it, with `conf/opcua.json`.
fn bundle(rt: &Runtime, generation: Generation, opcua: &Value, name: &str) -> std::path::PathBuf {
    let base = rt.dir.path().join(format!("{name}-base.zip"));
    match generation {
        Generation::Matiec => common::demo_bundle(&base, &["--no-conf"]),
        Generation::Strucpp => common::zip_bundle_dir(
            &common::repo_root().join("companion/builder/tests/fixtures/strucpp-demo"),
            &base,
            &["README.md"],
        ),
    }
    let out = rt.dir.path().join(format!("{name}.zip"));
    let conf = serde_json::to_vec_pretty(opcua).unwrap();
    common::rewrite_zip(
        &base,
        &out,
        |_, data| Some(data),
        &[("conf/opcua.json", conf, zip::CompressionMethod::Stored)],
    );
    out
}

fn deploy(rt: &Runtime, token: &str, zip: &Path) {
    assert_eq!(rt.upload(zip, token).status, 200);
    let build = rt.wait_build(token);
    assert_eq!(build["status"], "SUCCESS", "{build}");
    rt.wait_status(token, "STATUS:RUNNING");
}

/// `protocols.opcua` of `/api/plugins` once `ready` holds for it.
fn opcua_state(rt: &Runtime, token: &str, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
    wait_for(what, T, || {
        let state = rt.get("/plugins", token).json()["protocols"]["opcua"].clone();
        ready(&state).then_some(state)
    })
}

fn session(url: &str, interval_ms: u64) -> Value {
    let mut nodes: Vec<String> = VARIABLES.iter().chain(&UPTIME).map(node_id).collect();
    nodes.push("PLC.Bits".into());
    let spec = json!({ "ns": NS, "nodes": nodes, "counter": "PLC.COUNTER", "text": "PLC.TEXT",
                       "interval_ms": interval_ms, "seconds": 2.0,
                       "engineer": ["eng", "eng-pass"], "operator": ["op", "op-pass"], "viewer": ["view", "view-pass"] });
    let script = common::repo_root().join("companion/tests/py/opcua_session.py");
    let out = Command::new("python3").arg(script).arg(url).arg(spec.to_string()).output().expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "opcua_session.py failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// `T#…` as the REST monitor writes a TIME of `ms` milliseconds.
fn iec_time(ms: u64) -> String {
    if ms == 0 {
        return "T#0ms".into();
    }
    let mut rest = ms;
    let mut out = String::from("T#");
    for (unit, size) in [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)] {
        if rest >= size {
            out.push_str(&format!("{}{unit}", rest / size));
            rest %= size;
        }
    }
    out
}

/// What variable `key` holds after `n` scans (the demo program's README), as OPC-UA shows
/// it (`[VariantType, value]`) and as the REST monitor shows it.
fn expected(key: &str, n: u64) -> (Value, Value) {
    let odd = n % 2 == 1;
    let elapsed_ms = n.saturating_sub(1) * PERIOD_MS;
    let same = |t: &str, v: Value| (json!([t, v.clone()]), v);
    match key {
        "COUNTER" => same("UInt16", json!(n % 65_536)),
        "UPTIME.Q" => same("Boolean", json!(false)),
        "AIN0" | "AOUT0" => same("UInt16", json!(0)),
        "V_BOOL" => same("Boolean", json!(odd)),
        "V_SINT" => same("SByte", json!(n as u8 as i8)),
        "V_INT" => same("Int16", json!((n as i16).wrapping_neg())),
        "V_DINT" => same("Int32", json!((n as i32).wrapping_mul(1000))),
        "V_LINT" => same("Int64", json!((n as i64).wrapping_mul(1_000_000_000_000))),
        "V_USINT" => same("Byte", json!(n % 256)),
        "V_UINT" => same("UInt16", json!((2 * n) % 65_536)),
        "V_UDINT" => same("UInt32", json!((n as u32).wrapping_mul(100_000))),
        "V_ULINT" => same("UInt64", json!(n.wrapping_mul(5_000_000_000))),
        "V_REAL" => same("Float", json!(0.5 * n as f32)),
        "V_LREAL" => same("Double", json!(0.25 * n as f64)),
        "V_BYTE" => same("Byte", json!(if odd { 0xA5 } else { 0 })),
        "V_WORD" => same("UInt16", json!(if odd { 0xFFFF } else { 0 })),
        "V_DWORD" => same("UInt32", json!(if odd { 0xDEAD_BEEFu32 } else { 0 })),
        "V_LWORD" => same("UInt64", json!(if odd { 0x0123_4567_89AB_CDEFu64 } else { 0 })),
        "UPTIME.IN" => same("Boolean", json!(n > 0)),
        "UPTIME.PT" => (json!(["Double", 86_400_000.0]), json!("T#1d")),
        "ELAPSED" | "UPTIME.ET" => (json!(["Double", elapsed_ms as f64]), json!(iec_time(elapsed_ms))),
        "PRESET" => (json!(["Double", 500.0]), json!("T#500ms")),
        "TEXT" => same("String", json!("OpenPLC")),
        other => panic!("no formula for {other}"),
    }
}

/// The OPC-UA Read of every node: each value is the formula's for the counter of the same
/// Read (one scan).
fn check_opcua_read(read: &Value, label: &str) -> u64 {
    let n = read["PLC.COUNTER"][1].as_u64().unwrap_or_else(|| panic!("{label}: no counter in {read}"));
    assert!(n > 1, "{label}: the program runs ({read})");
    for var in VARIABLES.iter().chain(&UPTIME) {
        let (opc, _) = expected(var.key, n);
        assert_eq!(read[node_id(var)], opc, "{label}: {} after {n} scans", var.key);
    }
    assert_eq!(read["PLC.Bits"], json!(["Boolean", [false, false]]), "{label}");
    n
}

/// The REST monitor's values (the debugger's watch list, one scan): the same formulas.
fn check_rest_values(rt: &Runtime, token: &str, label: &str) {
    let values = rt.get("/variables/values", token).json();
    let by_key: std::collections::HashMap<String, Value> = values["values"]
        .as_array()
        .unwrap_or_else(|| panic!("{label}: {values}"))
        .iter()
        .filter_map(|v| {
            let name = v["name"].as_str()?;
            Some((name.rsplit_once("INSTANCE0.")?.1.to_string(), v["value"].clone()))
        })
        .collect();
    let n = by_key["COUNTER"].as_u64().unwrap_or_else(|| panic!("{label}: {values}"));
    for var in VARIABLES.iter().chain(&UPTIME) {
        let (_, rest) = expected(var.key, n);
        assert_eq!(by_key[var.key], rest, "{label}: REST {} after {n} scans", var.key);
    }
    assert_eq!((&by_key["DIN0"], &by_key["DOUT0"]), (&json!(false), &json!(false)), "{label}: the Bits");
}

/// What every session must show, for either generation.
fn check_session(rt: &Runtime, token: &str, got: &Value, interval_ms: u64, label: &str) {
    // Browse: the namespace with the right data types.
    let b = &got["browse"];
    let ty = |path: &str| b[path]["data_type"].as_str().unwrap_or_default().to_string();
    assert_eq!(ty("COUNTER"), "i=5", "{label}: UINT is UInt16 ({b})");
    assert_eq!(ty("V_SINT"), "i=2", "{label}");
    assert_eq!(ty("V_LWORD"), "i=9", "{label}");
    assert_eq!(ty("V_REAL"), "i=10", "{label}");
    assert_eq!(ty("ELAPSED"), "i=290", "{label}: TIME is a Duration");
    assert_eq!(ty("TEXT"), "i=12", "{label}");
    assert_eq!(b["Uptime"]["class"], "Object", "{label}");
    assert_eq!(ty("Uptime/ET"), "i=290", "{label}");
    assert_eq!(b["Bits"]["value_rank"], 1, "{label}");
    assert_eq!(b.as_object().map(|m| m.len()), Some(VARIABLES.len() + 1 + UPTIME.len() + 1), "{label}: {b}");

    let n = check_opcua_read(&got["read"], label);

    // The subscription: the counter, newer at every notification, about every interval.
    let seen = got["notifications"].as_array().expect("notifications");
    let times: Vec<f64> = seen.iter().filter_map(|s| s[0].as_f64()).collect();
    let values: Vec<u64> = seen.iter().filter_map(|s| s[1].as_u64()).collect();
    let expected_count = 2000 / interval_ms;
    assert!(values.len() as u64 >= expected_count / 2, "{label}: {} notifications in 2 s: {values:?}", values.len());
    assert!(values.len() as u64 <= expected_count * 2 + 2, "{label}: more than the interval allows: {values:?}");
    assert!(values.windows(2).all(|w| w[1] > w[0]), "{label}: each a newer counter: {values:?}");
    assert!(values[0] >= n, "{label}: the subscription starts from a later scan than the read");
    let mut gaps: Vec<f64> = times.windows(2).map(|w| (w[1] - w[0]) * 1000.0).collect();
    gaps.sort_by(f64::total_cmp);
    let median = gaps[gaps.len() / 2];
    let nominal = interval_ms as f64;
    assert!((nominal * 0.5..=nominal * 2.0).contains(&median), "{label}: median {median:.0} ms between notifications");
    let mut steps: Vec<u64> = values.windows(2).map(|w| w[1] - w[0]).collect();
    steps.sort_unstable();
    let scans = interval_ms / PERIOD_MS;
    assert!((scans / 2..=scans * 2).contains(&steps[steps.len() / 2]), "{label}: counter steps {steps:?}");

    // Writes: the engineer's reaches the program, which counts on from it; the others change nothing.
    let w = &got["writes"];
    assert_eq!(w["engineer"], "Good", "{label}: {w}");
    assert_eq!(w["operator"], "BadUserAccessDenied", "{label}: the counter is r for operators: {w}");
    assert_eq!(w["viewer"], "BadUserAccessDenied", "{label}: {w}");
    assert!(w["wrong_password"].as_str().is_some_and(|s| s.starts_with("session refused")), "{label}: {w}");
    assert_eq!(w["anonymous"], "BadUserAccessDenied", "{label}: anonymous is a viewer whatever anonymous_role says");
    assert_eq!(w["wrong_type"], "BadTypeMismatch", "{label}: {w}");
    assert_eq!(w["too_long"], "BadOutOfRange", "{label}: {w}");
    let back = &got["read_back"];
    let counter = back["PLC.COUNTER"][1].as_u64().expect("counter read back");
    assert!((40_000..45_000).contains(&counter), "{label}: the program counts on from the written 40000: {back}");
    assert_eq!(back["PLC.TEXT"], json!(["String", "OpenPLC"]), "{label}: the refused text changed nothing");
    // The program's %MW0 (the counter) shows it in the output image, as the debugger does.
    let mw0 = output(rt, "%MW0");
    assert!(mw0 >= 40_000, "{label}: %MW0 = {mw0}");
    let rest = rt.get("/variables/values?indices=0", token).json();
    assert!(rest["values"][0]["value"].as_u64().is_some_and(|c| c >= 40_000), "{label}: {rest}");
}

/// An output point read with the control tool, beside the companion.
fn output(rt: &Runtime, addr: &str) -> u64 {
    let out = Command::new(common::rt_binary()).arg("--shm").arg(&rt.shm).args(["read", addr]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    text.trim().rsplit_once("= ").and_then(|(_, v)| v.parse().ok()).unwrap_or_else(|| panic!("{text}"))
}

#[test]
fn asyncua_against_the_running_program_of_each_editor_generation() {
    let rt = Runtime::start(&["--editor-compat", "dual"]);
    let token = rt.bootstrap("admin", "admin-pass");
    let port = common::free_port();

    // MatIEC (Editor ≤ 4.1.4): flat indices, publishing every 100 ms.
    deploy(
        &rt,
        &token,
        &bundle(&rt, Generation::Matiec, &opcua_json(Generation::Matiec, port, "/matiec", 100), "matiec"),
    );
    let state = opcua_state(&rt, &token, "the MatIEC-era server", |s| {
        s["state"] == "running" && s["status"]["server"]["endpoint"].as_str().is_some_and(|e| e.ends_with("/matiec"))
    });
    let server = &state["status"]["server"];
    let data_dir = rt.data_dir().join("opcua/pki");
    assert_eq!(server["rejected_certificates"], json!([]), "{state}");
    assert_eq!(server["trusted_dir"].as_str(), data_dir.join("trusted").to_str(), "{state}");
    assert!(
        server["warnings"].to_string().contains("anonymous_role"),
        "the ignored anonymous_role is a warning: {state}"
    );
    assert!(rt.log().contains(&format!("OPC-UA server listening on 127.0.0.1:{port}")), "{}", rt.log());
    // The debugger's view first (the session below writes the counter).
    check_rest_values(&rt, &token, "MatIEC");
    let got = session(&format!("opc.tcp://127.0.0.1:{port}/matiec"), 100);
    check_session(&rt, &token, &got, 100, "MatIEC");

    // STruC++ (Editor ≥ 4.2): (array, element) leaves, a changed configuration on the same
    // port: the server is restarted with it.
    deploy(
        &rt,
        &token,
        &bundle(&rt, Generation::Strucpp, &opcua_json(Generation::Strucpp, port, "/strucpp", 50), "strucpp"),
    );
    opcua_state(&rt, &token, "the STruC++-era server", |s| {
        s["state"] == "running" && s["status"]["server"]["endpoint"].as_str().is_some_and(|e| e.ends_with("/strucpp"))
    });
    check_rest_values(&rt, &token, "STruC++");
    let got = session(&format!("opc.tcp://127.0.0.1:{port}/strucpp"), 50);
    check_session(&rt, &token, &got, 50, "STruC++");

    // A port someone else holds: the server does not start, says why, the PLC runs on.
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = holder.local_addr().unwrap().port();
    deploy(&rt, &token, &bundle(&rt, Generation::Matiec, &opcua_json(Generation::Matiec, taken, "/x", 100), "taken"));
    let failed = opcua_state(&rt, &token, "the port failure", |s| s["state"] == "failed");
    assert!(
        failed["error"].as_str().is_some_and(|e| e.contains(&format!("cannot listen on 127.0.0.1:{taken}"))),
        "{failed}"
    );
    wait_for("the failure in the runtime log", T, || {
        let logs = rt.get("/runtime-logs?level=ERROR", &token).body;
        logs.contains("opcua not started").then_some(())
    });

    // A configuration that cannot be served: refused with the place named.
    let mut bad = opcua_json(Generation::Matiec, port, "/bad", 100);
    bad[0]["config"]["address_space"]["variables"][1]["datatype"] = json!("TON");
    deploy(&rt, &token, &bundle(&rt, Generation::Matiec, &bad, "bad"));
    let failed = opcua_state(&rt, &token, "the configuration failure", |s| {
        s["state"] == "failed" && s["error"].as_str().is_some_and(|e| e.contains("TON"))
    });
    assert!(failed["error"].as_str().is_some_and(|e| e.contains("PLC.AIN0")), "{failed}");
    assert_eq!(rt.status(&token), "STATUS:RUNNING", "the PLC runs on without its OPC-UA server");
    drop(holder);
}
