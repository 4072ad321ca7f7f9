//! The PLC's lifecycle as the newest Editor drives it, through the real companion and rt-core
//! over HTTPS: the run/stop switch refusing starts, cold start with a real program of each
//! generation (a RETAIN variable back to its initial value, the store reset), what
//! `retain-status` reports, per-task statistics of a two-task STruC++ program, and the
//! routes that describe the device (device info, EtherCAT, unknown routes, license codes).

#[path = "../debugger/tests/support/mod.rs"]
mod clients;
mod common;

use common::{Runtime, rewrite_zip, wait_for};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

fn deploy(rt: &Runtime, token: &str, zip: &Path) {
    assert_eq!(rt.upload(zip, token).status, 200);
    let build = rt.wait_build(token);
    assert_eq!(build["status"], "SUCCESS", "{build:#}");
    rt.wait_status(token, "STATUS:RUNNING");
}

fn reply(rt: &Runtime, token: &str, path: &str) -> String {
    rt.get(path, token).json()["status"].as_str().unwrap_or_default().to_string()
}

fn switch(rt: &Runtime, token: &str, position: &str) -> common::Reply {
    rt.curl("POST", "/switch", Some(token), Some(&format!(r#"{{"position":"{position}"}}"#)))
}

fn demo(rt: &Runtime) -> PathBuf {
    let zip = rt.dir.path().join("demo.zip");
    common::demo_bundle(&zip, &["--period-ms", "10"]);
    zip
}

#[test]
fn the_run_stop_switch_refuses_start_and_stops_the_plc() {
    let rt = Runtime::start(&[]);
    let token = rt.bootstrap("admin", "admin-pass");
    assert_eq!(
        rt.curl(
            "POST",
            "/create-user",
            Some(&token),
            Some(r#"{"username":"eve","password":"eve-pass","role":"viewer"}"#)
        )
        .status,
        201
    );
    let viewer = rt.login("eve", "eve-pass");
    let zip = demo(&rt);
    deploy(&rt, &token, &zip);
    assert_eq!(rt.get("/switch", &viewer).json(), serde_json::json!({ "switchPosition": "run" }));
    assert_eq!(rt.get("/status", &viewer).json()["switchPosition"], "run");
    assert_eq!(switch(&rt, &viewer, "stop").status, 403, "a viewer may not move the switch");

    // To STOP: the running PLC stops, and starts are refused with upstream's words.
    let r = switch(&rt, &token, "stop");
    assert_eq!((r.status, r.json()["switchPosition"].as_str()), (200, Some("stop")));
    rt.wait_status(&token, "STATUS:STOPPED");
    assert_eq!(rt.get("/status", &token).json()["switchPosition"], "stop");
    assert_eq!(rt.get("/switch", &token).json()["switchPosition"], "stop");
    assert_eq!(reply(&rt, &token, "/start-plc"), "START:ERROR_SWITCH_STOP");
    assert_eq!(reply(&rt, &token, "/cold-start-plc"), "COLD_START:ERROR_SWITCH_STOP");
    assert_eq!(rt.status(&token), "STATUS:STOPPED");
    let logs = rt.get("/runtime-logs", &token).json()["runtime-logs"].clone();
    let said =
        |text: &str| logs.as_array().unwrap().iter().any(|e| e["message"].as_str().is_some_and(|m| m.contains(text)));
    assert!(said("Run/stop switch moved to STOP by user \"admin\""), "{logs:#}");
    assert!(said("PLC stopped by the run/stop switch"), "{logs:#}");

    // A program uploaded meanwhile is loaded, not started.
    assert_eq!(rt.upload(&zip, &token).status, 200);
    let build = rt.wait_build(&token);
    assert_eq!(build["status"], "SUCCESS");
    assert!(build["logs"].to_string().contains("not started: the run/stop switch is at STOP"), "{build}");
    assert_eq!(rt.status(&token), "STATUS:STOPPED");

    assert_eq!(switch(&rt, &token, "sideways").status, 400);
    assert_eq!(switch(&rt, &token, "run").json()["switchPosition"], "run");
    assert_eq!(reply(&rt, &token, "/start-plc"), "START:OK");
    rt.wait_status(&token, "STATUS:RUNNING");
}

/// A RETAIN variable's value over REST.
fn value(rt: &Runtime, token: &str, name: &str) -> u64 {
    let r = rt.get(&format!("/variables/values?names={name}"), token);
    assert_eq!(r.status, 200, "{r:?}");
    r.json()["values"][0]["value"].as_u64().unwrap_or_else(|| panic!("{r:?}"))
}

fn retain(rt: &Runtime, token: &str) -> Value {
    rt.get("/retain-status", token).json()["retain"].clone()
}

/// The MatIEC demo with V_UDINT (+100 000 every scan) declared RETAIN.
fn matiec_retain(rt: &Runtime) -> PathBuf {
    const V: &str = "CONFIG0.RES0.INSTANCE0.V_UDINT";
    let out = rt.dir.path().join("matiec-retain.zip");
    rewrite_zip(
        &demo(rt),
        &out,
        |name, data| {
            let text = String::from_utf8(data.clone()).ok();
            Some(match (name, text) {
                ("POUS.c", Some(t)) => {
                    t.replace("__INIT_VAR(data__->V_UDINT,0,retain)", "__INIT_VAR(data__->V_UDINT,0,1)").into_bytes()
                }
                ("VARIABLES.csv", Some(t)) => {
                    t.replace(&format!("{V};{V};UDINT;UDINT;0;"), &format!("{V};{V};UDINT;UDINT;1;")).into_bytes()
                }
                _ => data,
            })
        },
        &[],
    );
    out
}

/// The STruC++ fixture with COUNTER, V_UDINT and TEXT RETAIN.
fn strucpp_retain(rt: &Runtime) -> PathBuf {
    let retain = common::strucpp_retain(&[("COUNTER", "UINT"), ("V_UDINT", "UDINT"), ("TEXT", "STRING")]);
    common::strucpp_bundle(rt.dir.path(), "strucpp-retain", &common::edits(&retain))
}

/// A cold start of a running program with RETAIN variables: refused while running, then
/// (stopped) every variable back at its initial value, the store reset, and `retain-status`
/// saying so; a killed rt-core before that comes back warm with the values.
fn cold_start_resets(rt: &Runtime, token: &str, zip: &Path, var: &str, blob_bytes: u64, offset: usize) {
    // The variable in the RETAIN file: after the file's 64-byte header, at `offset`.
    let store = rt.data_dir().join("retain/retain.bin");
    let stored = || {
        let bytes = std::fs::read(&store).ok()?;
        let at = 64 + offset;
        Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?) as u64)
    };
    deploy(rt, token, zip);
    // The program's RETAIN layout is known once rt-core has published its values.
    let status = wait_for("the program's RETAIN layout", T, || {
        Some(retain(rt, token)).filter(|s| s["blob_bytes"] == blob_bytes)
    });
    assert_eq!((status["start"].as_str(), status["restored"].as_bool()), (Some("cold"), Some(false)), "{status}");
    assert_eq!(status["format"], 1, "{status}");
    assert_eq!(status["store"].as_str(), Some(store.to_str().unwrap()), "{status}");
    let high =
        wait_for("the variable to pass 3 000 000", T, || Some(value(rt, token, var)).filter(|&v| v >= 3_000_000));
    wait_for("RETAIN values to be written", T, || stored().filter(|&v| v >= 3_000_000));

    // rt-core killed: back warm, the values restored (from its live copy).
    let pid = rt.rt_pid();
    // SAFETY: kill() touches no memory; the pid is the rt-core of this test.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    wait_for("rt-core to come back", T, || (shared_abi::shm::rt_alive(&rt.shm) && rt.rt_pid() != pid).then_some(()));
    rt.wait_status(token, "STATUS:RUNNING");
    assert!(value(rt, token, var) >= high, "warm: carried on");
    let status =
        wait_for("the warm start's report", T, || Some(retain(rt, token)).filter(|s| s["blob_bytes"] == blob_bytes));
    assert_eq!(
        (status["start"].as_str(), status["restored"].as_bool(), status["result_name"].as_str()),
        (Some("warm"), Some(true), Some("ok")),
        "{status}"
    );
    for count in ["kept", "converted", "truncated", "added", "dropped", "refused"] {
        assert_eq!(status[count], 0, "{status}");
    }

    assert_eq!(reply(rt, token, "/cold-start-plc"), "COLD_START:ERROR_ALREADY_RUNNING");
    assert_eq!(reply(rt, token, "/stop-plc"), "STOP:OK");
    let stopped = value(rt, token, var);
    let cold_at = std::time::SystemTime::now();
    assert_eq!(reply(rt, token, "/cold-start-plc"), "COLD_START:OK");
    rt.wait_status(token, "STATUS:RUNNING");
    let fresh = value(rt, token, var);
    let scans = rt.scan_count(token);
    assert!(
        fresh <= 100_000 * (scans + 1) && fresh < stopped,
        "initial value again: {fresh} after {scans} scans (was {stopped})"
    );
    let status =
        wait_for("the cold start's report", T, || Some(retain(rt, token)).filter(|s| s["blob_bytes"] == blob_bytes));
    assert_eq!((status["start"].as_str(), status["stored_bytes"].as_u64()), (Some("cold"), Some(0)), "{status}");
    assert!(status["result"].is_null(), "{status}");
    // The store no longer holds the old values: it holds the new run's.
    // (The new run's counter may pass the old value before the next flush, so "new" is: the
    // file rewritten since the cold start, holding no more than the live value.)
    wait_for("the store to hold the new values", T, || {
        let rewritten = std::fs::metadata(&store).and_then(|m| m.modified()).is_ok_and(|t| t >= cold_at);
        let v = stored()?;
        (rewritten && v <= value(rt, token, var)).then_some(v)
    });
}

#[test]
fn cold_start_of_a_matiec_program_resets_its_retain_variable() {
    let rt = Runtime::start(&["--retain-flush-s", "1"]);
    let token = rt.bootstrap("admin", "admin-pass");
    let zip = matiec_retain(&rt);
    cold_start_resets(&rt, &token, &zip, "CONFIG0.RES0.INSTANCE0.V_UDINT", 4, 0);
}

#[test]
fn cold_start_of_a_strucpp_program_resets_its_retain_variables() {
    let rt = Runtime::start(&["--retain-flush-s", "1"]);
    let token = rt.bootstrap("admin", "admin-pass");
    let zip = strucpp_retain(&rt);
    // COUNTER (2 bytes), V_UDINT (4), TEXT (127), in that order.
    cold_start_resets(&rt, &token, &zip, "INSTANCE0.V_UDINT", 2 + 4 + 127, 2);
    // Without RETAIN storage, nothing is kept and the status says so.
    drop(rt);
    let rt = Runtime::start(&[]);
    let token = rt.bootstrap("admin", "admin-pass");
    deploy(&rt, &token, &strucpp_retain(&rt));
    let status = retain(&rt, &token);
    assert_eq!(
        (status["start"].as_str(), status["format"].as_u64(), status["store"].as_str()),
        (Some("none"), Some(0), Some(""))
    );
    assert_eq!(reply(&rt, &token, "/stop-plc"), "STOP:OK");
    assert_eq!(reply(&rt, &token, "/cold-start-plc"), "COLD_START:OK");
    rt.wait_status(&token, "STATUS:RUNNING");
}

#[test]
fn a_two_task_strucpp_program_reports_each_task() {
    let rt = Runtime::start(&[]);
    let token = rt.bootstrap("admin", "admin-pass");
    // The fixture with a second task FAST every 25 ms at priority 1 (STruC++'s tables and
    // the program.st declaration the Editor compiled them from).
    let zip = common::strucpp_bundle(
        rt.dir.path(),
        "two-tasks",
        &[
            ("generated.hpp", "TaskInstance tasks_storage[1];", "TaskInstance tasks_storage[2];"),
            ("generated.hpp", "ProgramBase *task_programs_storage[1];", "ProgramBase *task_programs_storage[2];"),
            (
                "configuration.cpp",
                "    resources_storage[0] = ResourceInstance(\"RES0\", \"PLC\", &tasks_storage[0], 1);",
                "    task_programs_storage[1] = &INSTANCE0;\n    tasks_storage[1] = TaskInstance(\"FAST\", 25000000LL, 1, \
                 &task_programs_storage[1], 1);\n    resources_storage[0] = ResourceInstance(\"RES0\", \"PLC\", &tasks_storage[0], 2);",
            ),
            (
                "program.st",
                "    TASK task0(INTERVAL := T#10ms,PRIORITY := 0);",
                "    TASK task0(INTERVAL := T#10ms,PRIORITY := 0);\n    TASK fast(INTERVAL := T#25ms,PRIORITY := 1);",
            ),
        ],
    );
    deploy(&rt, &token, &zip);
    wait_for("scans", T, || (rt.scan_count(&token) > 3).then_some(()));
    let stats = rt.get("/status?include_stats=true", &token).json()["timing_stats"].clone();
    assert!(stats["scan_count"].as_u64().unwrap() > 3, "the flat fields stay: {stats}");
    let tasks = stats["tasks"].as_array().unwrap_or_else(|| panic!("{stats}"));
    let described: Vec<(&str, u64, i64)> = tasks
        .iter()
        .map(|t| (t["name"].as_str().unwrap(), t["period_us"].as_u64().unwrap(), t["priority"].as_i64().unwrap()))
        .collect();
    assert_eq!(described, [("TASK0", 10_000, 0), ("FAST", 25_000, 1)]);
    for task in tasks {
        assert!(task["scan_count"].as_u64().unwrap() > 0, "{task}");
        for k in ["scan_time", "cycle_time", "cycle_latency"] {
            for s in ["min", "max", "avg"] {
                assert!(task[format!("{k}_{s}")].is_u64(), "{k}_{s} measured: {task}");
            }
        }
        assert!(task["overruns"].is_u64());
        assert_eq!(task["stats_scope"], "task", "each task runs on its own thread and is measured alone: {task}");
    }
    assert_eq!(rt.get("/status?include_stats=true", &token).json()["status"], "STATUS:RUNNING");
}

#[test]
fn the_device_describes_itself_and_answers_what_it_does_not_have() {
    let rt = Runtime::start(&[]);
    let token = rt.bootstrap("admin", "admin-pass");

    let info = rt.get("/device-info", &token).json();
    let uname = |flag: &str| {
        let out = std::process::Command::new("uname").arg(flag).output().expect("uname");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    assert_eq!(info["hostname"].as_str(), Some(uname("-n").as_str()), "{info}");
    assert_eq!(info["architecture"].as_str(), Some(uname("-m").as_str()));
    assert_eq!(info["kernel"].as_str(), Some(uname("-r").as_str()));
    assert_eq!(info["system"], "Linux");
    assert!(info["containerized"].is_boolean());
    assert!(["manual", "managed"].contains(&info["updatePolicy"].as_str().unwrap()), "{info}");
    assert!(info["bootloaderPort"].is_null() && info["sidecarPort"].is_null(), "no update sidecar here: {info}");
    assert_eq!(rt.curl("GET", "/device-info", None, None).status, 401);
    let caps = rt.curl("GET", "/capabilities", None, None).json();
    assert_eq!(caps["updatePolicy"], info["updatePolicy"]);

    // EtherCAT: no master, said in the shapes the Editor reads.
    let status = rt.get("/discovery/ethercat/status", &token).json();
    assert_eq!(
        (status["available"].as_bool(), status["message"].as_str()),
        (Some(false), Some("No EtherCAT master on this runtime"))
    );
    assert_eq!(rt.get("/discovery/interfaces", &token).json()["interfaces"], serde_json::json!([]));
    let scan =
        rt.curl("POST", "/discovery/ethercat/scan", Some(&token), Some(r#"{"interface":"eth0","timeout_ms":5000}"#));
    assert_eq!(
        (scan.status, scan.json()["status"].as_str(), scan.json()["interface"].as_str()),
        (200, Some("not_available"), Some("eth0"))
    );
    assert_eq!(
        rt.curl("POST", "/discovery/ethercat/test", Some(&token), Some(r#"{"interface":"eth0","position":1}"#)).json()
            ["connected"],
        false
    );
    assert_eq!(rt.curl("POST", "/discovery/ethercat/validate", Some(&token), Some("{}")).json()["valid"], false);
    assert_eq!(rt.get("/discovery/ethercat/runtime-status", &token).status, 503);
    assert_eq!(rt.get("/discovery/ethercat/diagnostics", &token).status, 503);
    // The newest Editor scans through a plugin named `ethercat`: none here, said as such.
    let r = rt.curl("POST", "/plugin-command", Some(&token), Some(r#"{"plugin":"ethercat","command":"scan"}"#));
    assert_eq!((r.status, r.json()["error"].as_str()), (404, Some("No EtherCAT master on this runtime")));

    // An unknown route: a 404 with a JSON error (after authentication).
    assert_eq!(rt.curl("GET", "/no-such-thing", None, None).status, 401);
    for (method, path) in [("GET", "/no-such-thing"), ("POST", "/no-such-thing"), ("GET", "/a/b/c")] {
        let r = rt.curl(method, path, Some(&token), None);
        assert_eq!((r.status, r.json()["error"].as_str()), (404, Some("Unknown argument")), "{method} {path}: {r:?}");
    }

    // License codes on the debug channel: "not supported", with or without a program.
    let url = format!("https://127.0.0.1:{}", rt.port);
    for kind in clients::KINDS {
        let mut c = clients::Client::connected(kind, &url, &token);
        for (command, answer) in [("48", "48 85"), ("49 00 02 AB CD", "49 85"), ("4A", "4A 85")] {
            let r = c.cmd(command);
            assert_eq!(
                (r["success"].as_bool(), r["data"].as_str()),
                (Some(true), Some(answer)),
                "{kind:?} {command}: {r}"
            );
        }
    }
}

#[test]
fn legacy_mode_keeps_upstreams_catch_all() {
    let rt = Runtime::start(&["--editor-compat", "legacy"]);
    let token = rt.bootstrap("admin", "admin-pass");
    let r = rt.get("/no-such-thing", &token);
    assert_eq!((r.status, r.json()), (200, serde_json::json!({ "error": "Unknown argument" })));
    let r = rt.curl("POST", "/no-such-thing", Some(&token), Some("{}"));
    assert_eq!((r.status, r.json()), (200, serde_json::json!({ "PostRequestError": "Unknown argument" })));
    assert_eq!(rt.get("/a/b", &token).status, 404, "upstream's catch-all is one path segment");
}
