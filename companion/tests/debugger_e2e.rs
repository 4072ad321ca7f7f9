//! The debugger through the real companion: HTTPS (wss) on the API port, a token from
//! `/api/login`, the uploaded demo bundle, and the clients the Editor uses (socket.io-client
//! on Node) and python-socketio. Exactly the Editor's debug session: MD5 check, polls of
//! every base type, forcing an output and a REAL, release, pipelining.

#[path = "../debugger/tests/support/mod.rs"]
mod clients;
mod common;

use clients::{Client, KINDS, demo_md5, demo_types};
use common::{Runtime, wait_for};
use serde_json::json;
use std::process::Command;
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

fn running_demo() -> (Runtime, String) {
    let rt = Runtime::start(&[]);
    let token = rt.bootstrap("admin", "admin-pass");
    let zip = rt.dir.path().join("program.zip");
    common::demo_bundle(&zip, &["--period-ms", "10"]);
    assert_eq!(rt.upload(&zip, &token).status, 200);
    assert_eq!(rt.wait_build(&token)["status"], "SUCCESS");
    rt.wait_status(&token, "STATUS:RUNNING");
    (rt, token)
}

/// Reads an output point with the control tool, as an observer beside the companion.
fn output(rt: &Runtime, addr: &str) -> String {
    let out = Command::new(common::rt_binary()).arg("--shm").arg(&rt.shm).args(["read", addr]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn the_editors_debug_session_over_https_with_both_client_libraries() {
    let (rt, token) = running_demo();
    let url = format!("https://127.0.0.1:{}", rt.port);
    let types = demo_types();
    let all: Vec<u16> = (0..types.len() as u16).collect();
    let type_refs: Vec<&str> = types.iter().map(String::as_str).collect();
    for kind in KINDS {
        // Without a token, or with a bad one: refused at connect.
        for bad in [json!({"op": "connect", "url": url}), json!({"op": "connect", "url": url, "token": "nope"})] {
            let mut c = Client::spawn(kind);
            let r = c.call(bad);
            assert_eq!(r["ok"], false, "{kind:?}: {r}");
        }
        let mut c = Client::connected(kind, &url, &token);
        let md5 = c.call(json!({"op": "md5"}));
        assert_eq!(md5["md5"], demo_md5(), "{kind:?}: {md5}");

        // Every base type, decoded as the Editor decodes it; the counter advances.
        let a = c.poll(&all, &type_refs);
        assert_eq!(a["success"], true, "{kind:?}: {a}");
        assert_eq!(a["consumed"], a["size"], "{kind:?}: every byte decoded, TIME aligned: {a}");
        assert_eq!(a["values"]["31"], "500ms", "{kind:?}: PRESET as the Editor shows it: {a}");
        assert_eq!(a["values"]["32"], "\"OpenPLC\"", "{kind:?}: {a}");
        let b = wait_for("the tick to advance", T, || {
            let b = c.poll(&all, &type_refs);
            (b["tick"].as_u64() > a["tick"].as_u64()).then_some(b)
        });
        let counter = |v: &serde_json::Value| v["values"]["0"].as_str().and_then(|s| s.parse::<u64>().ok()).unwrap();
        let (ca, cb) = (counter(&a), counter(&b));
        assert!(cb > ca, "{kind:?}: the counter advanced between polls ({ca} -> {cb})");

        // Force %QX0.0 (debug 2) and V_REAL (debug 14); both show in reads, %QX0.0 in the outputs.
        let r = c.call(json!({"op": "force", "index": 2, "type": "BOOL", "value": "TRUE"}));
        assert_eq!(r["success"], true, "{kind:?}: {r}");
        let r = c.call(json!({"op": "force", "index": 14, "type": "REAL", "value": "1234.5"}));
        assert_eq!(r["success"], true, "{kind:?}: {r}");
        wait_for("forced %QX0.0 in the output image", T, || (output(&rt, "%QX0.0") == "%QX0.0 = 1").then_some(()));
        for _ in 0..3 {
            let p = c.poll(&[2, 14], &["BOOL", "REAL"]);
            assert_eq!(p["values"]["2"], "TRUE", "{kind:?}: {p}");
            assert_eq!(p["values"]["14"], "1234.500000", "{kind:?}: the force holds against the program: {p}");
        }
        for index in [2, 14] {
            let r = c.call(json!({"op": "release", "index": index}));
            assert_eq!(r["success"], true, "{kind:?}: {r}");
        }
        wait_for("%QX0.0 released", T, || (output(&rt, "%QX0.0") == "%QX0.0 = 0").then_some(()));

        // 200 pipelined commands: one reply each, in order.
        let hexes: Vec<String> =
            (0..200u16).map(|i| format!("44 00 01 {:02X} {:02X}", (i % 33) >> 8, (i % 33) & 0xFF)).collect();
        let r = c.call(json!({"op": "pipeline", "hexes": hexes}));
        assert_eq!(r["extra"], 0, "{kind:?}: no duplicate replies");
        let replies = r["replies"].as_array().unwrap();
        assert_eq!(replies.len(), 200, "{kind:?}");
        for (i, reply) in replies.iter().enumerate() {
            let data = reply["data"].as_str().unwrap_or_else(|| panic!("{kind:?} reply {i}: {reply}"));
            // `44 7E <last index u16>`: the last index tells which request this answers.
            let last =
                u16::from_str_radix(&data[6..8], 16).unwrap() << 8 | u16::from_str_radix(&data[9..11], 16).unwrap();
            assert_eq!(last, (i % 33) as u16, "{kind:?}: reply {i} out of order");
        }
    }
    let log = rt.log();
    assert!(log.contains("debugger: user 'admin' forced debug variable 2"), "forces are logged with the user's name");
    assert!(log.contains("debugger: user 'admin' released debug variable 14"));
}

#[test]
fn a_viewer_monitors_but_cannot_force() {
    let (rt, token) = running_demo();
    let created = rt.curl(
        "POST",
        "/create-user",
        Some(&token),
        Some(r#"{"username":"watcher","password":"watcher-pass","role":"viewer"}"#),
    );
    assert_eq!(created.status, 201, "{created:?}");
    let viewer = rt.login("watcher", "watcher-pass");
    let url = format!("https://127.0.0.1:{}", rt.port);
    let mut c = Client::connected(clients::Kind::Node, &url, &viewer);
    assert_eq!(c.poll(&[0], &["UINT"])["success"], true, "viewers may monitor");
    let r = c.call(json!({"op": "force", "index": 2, "type": "BOOL", "value": "TRUE"}));
    assert_eq!(r["success"], false, "{r}");
    assert!(rt.log().contains("user 'watcher' may not force"));
}

/// python-socketio's threaded client, 500 short sessions (connect, `connected`, three
/// round trips, disconnect), four clients at a time: every session connects and every
/// reply arrives. The client's own race (its reader and writer threads share one
/// `ssl.SSLSocket`, which OpenSSL does not allow; the cause of the lost replies reported
/// against this runtime, see the README's debugger section) is kept out with the client's
/// public `websocket_extra_options` hook, so what is counted is what the server does.
#[test]
fn python_socketio_threaded_client_500_short_sessions_lose_nothing() {
    let (rt, token) = running_demo();
    let url = format!("https://127.0.0.1:{}", rt.port);
    let script = common::repo_root().join("companion/debugger/tests/clients/sessions.py");
    let runs: Vec<_> = (0..4)
        .map(|_| {
            Command::new("python3")
                .arg(&script)
                .args([&url, &token, "125"])
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("python3")
        })
        .collect();
    let mut totals = json!({"sessions": 0, "connect": 0, "lost": 0, "failed": 0});
    for run in runs {
        let out = run.wait_with_output().unwrap();
        assert!(out.status.success(), "sessions.py failed");
        let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        eprintln!("{r}");
        for k in ["sessions", "connect", "lost", "failed"] {
            totals[k] = json!(totals[k].as_u64().unwrap() + r[k].as_u64().unwrap());
        }
    }
    assert_eq!(totals, json!({"sessions": 500, "connect": 0, "lost": 0, "failed": 0}));
}
