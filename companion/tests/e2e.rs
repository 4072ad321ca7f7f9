//! End to end: the real `openplc-runtime` and `openplc-rt` binaries, over real HTTPS,
//! driven by curl and by Node's `https` module (as the Editor drives a runtime).
//!
//! Needs `cargo build --workspace --bins` first (for `openplc-rt`), python3, curl and node.

mod common;

use common::{Runtime, demo_bundle, rewrite_zip, wait_for};
use std::process::Command;
use std::time::Duration;

fn bundle(rt: &Runtime, name: &str, args: &[&str]) -> std::path::PathBuf {
    let path = rt.dir.path().join(name);
    demo_bundle(&path, args);
    path
}

/// Deploys the demo program and waits until it runs; returns the token.
fn deployed(rt: &Runtime) -> String {
    let token = rt.bootstrap("admin", "admin-pass");
    let zip = bundle(rt, "good.zip", &["--period-ms", "10"]);
    assert_eq!(rt.upload(&zip, &token).status, 200);
    let build = rt.wait_build(&token);
    assert_eq!(build["status"], "SUCCESS", "{build:#}");
    rt.wait_status(&token, "STATUS:RUNNING");
    token
}

#[test]
fn editor_flow_over_node_https() {
    let rt = Runtime::start(&[]);
    let zip = bundle(&rt, "program.zip", &["--backslash", "--period-ms", "10"]);
    let out = Command::new("node")
        .arg(common::repo_root().join("companion/tests/editor_flow.mjs"))
        .arg(rt.port.to_string())
        .arg(&zip)
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "editor flow failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("editor-flow: OK"), "{stdout}");
}

#[test]
fn curl_flow_with_forward_slash_bundle() {
    let rt = Runtime::start(&[]);
    let r = rt.curl("GET", "/get-users-info", None, None);
    assert_eq!(r.status, 404);
    assert_eq!(r.header("x-openplc-runtime-version"), Some("v4"));
    let token = rt.bootstrap("admin", "admin-pass");
    let zip = bundle(&rt, "fwd.zip", &[]);
    let up = rt.upload(&zip, &token);
    assert_eq!(up.status, 200, "{up:?}");
    assert_eq!(up.json()["CompilationStatus"], "COMPILING");
    let build = rt.wait_build(&token);
    assert_eq!(build["status"], "SUCCESS", "{build:#}");
    let logs: Vec<&str> = build["logs"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
    assert!(logs.iter().any(|l| l.starts_with("[INFO] Compiling")), "{logs:?}");
    rt.wait_status(&token, "STATUS:RUNNING");
    let first = rt.scan_count(&token);
    wait_for("scan_count to advance", Duration::from_secs(10), || (rt.scan_count(&token) > first).then_some(()));
    // A start while running answers as upstream does (Editor >= 4.2 accepts it as started).
    assert_eq!(rt.get("/start-plc", &token).json()["status"], "START:ERROR_ALREADY_RUNNING");
    // Exactly one STATUS:<STATE> right after a stop.
    assert_eq!(rt.get("/stop-plc", &token).json()["status"], "STOP:OK");
    assert_eq!(rt.get("/status", &token).json()["status"], "STATUS:STOPPED");
    assert_eq!(rt.get("/stop-plc", &token).json()["status"], "STOP:ERROR");
    assert_eq!(rt.get("/start-plc", &token).json()["status"], "START:OK");
    rt.wait_status(&token, "STATUS:RUNNING");
    let h = rt.get("/stats/histogram", &token);
    assert_eq!(h.status, 200);
    assert!(h.body.contains("# Total: "), "{}", h.body);
    let hj = rt.get("/stats/histogram?format=json", &token).json();
    assert!(hj["count"].as_u64().unwrap() > 0, "{hj}");
    let health = rt.curl("GET", "/health", None, None);
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["plc"], "RUNNING");
    // Every /api answer carries the version header, errors included.
    for r in
        [rt.curl("GET", "/status", None, None), rt.curl("GET", "/nothing-here", None, None), rt.get("/status", &token)]
    {
        assert_eq!(r.header("x-openplc-runtime-version"), Some("v4"), "{r:?}");
    }
    // HTTP/1.1 keep-alive: curl reuses one TLS connection for two requests.
    let out = Command::new("curl")
        .args(["-sk", "-v", "-o", "/dev/null", "-o", "/dev/null", "-H"])
        .arg(format!("Authorization: Bearer {token}"))
        .arg(format!("{}/status", rt.base()))
        .arg(format!("{}/runtime-logs", rt.base()))
        .output()
        .unwrap();
    let verbose = String::from_utf8_lossy(&out.stderr);
    assert!(verbose.contains("Re-using existing connection"), "{verbose}");
}

#[test]
fn boot_restores_the_last_program_and_its_run_state() {
    let mut rt = Runtime::start(&[]);
    let token = deployed(&rt);
    // A power cut: both processes gone.
    rt.stop_companion(libc::SIGKILL);
    let pid = rt.rt_pid();
    // SAFETY: kill() touches no memory; the pid is the rt-core of this test.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    wait_for("rt-core to be gone", Duration::from_secs(5), || (!shared_abi::shm::rt_alive(&rt.shm)).then_some(()));
    rt.restart_companion();
    assert_ne!(rt.rt_pid(), pid);
    rt.wait_status(&token, "STATUS:RUNNING");
    // Stopped before the power cut: loaded again, but left stopped.
    assert_eq!(rt.get("/stop-plc", &token).json()["status"], "STOP:OK");
    rt.stop_companion(libc::SIGKILL);
    let pid = rt.rt_pid();
    // SAFETY: as above.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    wait_for("rt-core to be gone", Duration::from_secs(5), || (!shared_abi::shm::rt_alive(&rt.shm)).then_some(()));
    rt.restart_companion();
    rt.wait_status(&token, "STATUS:STOPPED");
    assert_eq!(rt.get("/start-plc", &token).json()["status"], "START:OK");
    rt.wait_status(&token, "STATUS:RUNNING");
}

#[test]
fn udp_discovery_answers_the_editor_probe() {
    let port = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port()
    };
    let rt = Runtime::start(&["--discovery-port", &port.to_string()]);
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    sock.send_to(b"OPENPLC_DISCOVER_V1", ("127.0.0.1", port)).unwrap();
    let mut buf = [0u8; 1024];
    let n = sock.recv(&mut buf).expect("a discovery reply");
    let v: serde_json::Value = serde_json::from_slice(&buf[..n]).unwrap();
    assert_eq!(v["service"], "openplc-runtime");
    assert_eq!(v["api_port"], rt.port);
    let api_version = rt.curl("GET", "/version", None, None).json()["version"].clone();
    assert_eq!(v["runtime_version"], api_version, "discovery reports the API's version");
    sock.send_to(b"HELLO", ("127.0.0.1", port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    assert!(sock.recv(&mut buf).is_err(), "anything else is ignored");
}

#[test]
fn missing_bad_and_expired_tokens_are_401() {
    let rt = Runtime::start(&[]);
    let token = rt.bootstrap("admin", "admin-pass");
    for path in ["/status", "/start-plc", "/compilation-status", "/runtime-logs", "/whoami", "/unknown-thing"] {
        let r = rt.curl("GET", path, None, None);
        assert_eq!(r.status, 401, "no token on {path}: {r:?}");
        let r = rt.curl("GET", path, Some("not-a-jwt"), None);
        assert_eq!(r.status, 401, "garbage on {path}");
    }
    // Signed with another secret.
    let foreign = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &serde_json::json!({ "sub": "1", "exp": 4_000_000_000u64, "nbf": 0, "iat": 0, "jti": "x", "type": "access", "fresh": false, "epoch": 0 }),
        &jsonwebtoken::EncodingKey::from_secret(b"some other secret of 32 bytes!!!"),
    )
    .unwrap();
    assert_eq!(rt.get("/status", &foreign).status, 401);
    // Signed with ours, expired.
    let secret_hex = std::fs::read_to_string(rt.data_dir().join("secrets/jwt.key")).unwrap();
    let secret: Vec<u8> =
        (0..64).step_by(2).map(|i| u8::from_str_radix(&secret_hex.trim()[i..i + 2], 16).unwrap()).collect();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let expired = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &serde_json::json!({ "sub": "1", "exp": now - 60, "nbf": now - 960, "iat": now - 960, "jti": "y", "type": "access", "fresh": false, "epoch": 0 }),
        &jsonwebtoken::EncodingKey::from_secret(&secret),
    )
    .unwrap();
    let r = rt.get("/status", &expired);
    assert_eq!(r.status, 401, "{r:?}");
    assert!(r.body.contains("expired"), "{}", r.body);
    assert_eq!(rt.get("/status", &token).status, 200);
    // An unknown route once authenticated: 404 with upstream's error object.
    let r = rt.get("/unknown-thing", &token);
    assert_eq!((r.status, r.json()["error"].as_str()), (404, Some("Unknown argument")));
    // Unrelated errors never mention "token".
    for r in [
        rt.curl("POST", "/create-user", Some(&token), Some("not json")),
        rt.curl("POST", "/create-user", Some(&token), Some(r#"{"username":"admin","password":"x"}"#)),
        rt.curl("GET", "/runtime-logs?id=abc", Some(&token), None),
        rt.curl("POST", "/upload-file", Some(&token), Some("{}")),
    ] {
        assert!(r.status >= 400 && r.status != 401 && r.status != 422, "{r:?}");
        assert!(!r.body.to_ascii_lowercase().contains("token"), "{r:?}");
    }
}

#[test]
fn bad_bundles_fail_clearly_while_the_previous_program_keeps_running() {
    let rt = Runtime::start(&[]);
    let token = deployed(&rt);
    let good = rt.dir.path().join("good.zip");
    let program_md5 = |rt: &Runtime| -> String {
        let obs = shared_abi::client::Observer::open(rt.shm.to_str().unwrap()).unwrap();
        use shared_abi::client::Reader;
        obs.program_info().unwrap().md5_str().unwrap_or_default().to_string()
    };
    let md5_before = program_md5(&rt);
    assert_eq!(md5_before.len(), 32);

    let check_failed = |zip: &std::path::Path, expect: &str| {
        let before = rt.scan_count(&token);
        assert_eq!(rt.upload(zip, &token).status, 200);
        let build = rt.wait_build(&token);
        assert_eq!(build["status"], "FAILED", "{build:#}");
        assert_eq!(build["exit_code"], 1);
        let logs = build["logs"].to_string();
        assert!(logs.contains(expect), "expected {expect:?} in {logs}");
        assert!(logs.contains("previous program is still loaded"), "{logs}");
        assert_eq!(rt.status(&token), "STATUS:RUNNING");
        wait_for("the old program to keep scanning", Duration::from_secs(10), || {
            (rt.scan_count(&token) > before).then_some(())
        });
        assert_eq!(program_md5(&rt), md5_before, "the program did not change");
    };

    let slip = rt.dir.path().join("slip.zip");
    rewrite_zip(
        &good,
        &slip,
        |_, d| Some(d),
        &[("../../escaped.c", b"int x;".to_vec(), zip::CompressionMethod::Stored)],
    );
    check_failed(&slip, "failed safety checks");
    assert!(!rt.dir.path().join("escaped.c").exists());

    let bomb = rt.dir.path().join("bomb.zip");
    rewrite_zip(&good, &bomb, |_, d| Some(d), &[("lib/huge.h", vec![0u8; 12 << 20], zip::CompressionMethod::Deflated)]);
    check_failed(&bomb, "failed safety checks");

    let broken = rt.dir.path().join("broken.zip");
    rewrite_zip(
        &good,
        &broken,
        |name, mut d| {
            if name == "POUS.c" {
                d.extend_from_slice(b"\nthis is not C;\n");
            }
            Some(d)
        },
        &[],
    );
    check_failed(&broken, "[ERROR]");

    let strucpp = rt.dir.path().join("strucpp.zip");
    rewrite_zip(
        &good,
        &strucpp,
        |_, _| None,
        &[
            ("generated.hpp", b"#pragma once\n".to_vec(), zip::CompressionMethod::Stored),
            ("generated.cpp", b"#include \"generated.hpp\"\n".to_vec(), zip::CompressionMethod::Stored),
            (
                "defines.h",
                b"#define PROGRAM_MD5 \"0123456789abcdef0123456789abcdef\"\n".to_vec(),
                zip::CompressionMethod::Stored,
            ),
            ("strucpp_runtime/include/iec_types.hpp", b"#pragma once\n".to_vec(), zip::CompressionMethod::Stored),
        ],
    );
    check_failed(&strucpp, "STruC++");

    // A library whose start-up code crashes (a C++ static constructor in the C blocks runs
    // inside dlopen) is caught by the load check in a throwaway process: the real-time
    // process never opens it.
    let rt_pid = rt.rt_pid();
    let crashing = rt.dir.path().join("crashing.zip");
    rewrite_zip(
        &good,
        &crashing,
        |name, mut d| {
            if name == "c_blocks_code.cpp" {
                d.extend_from_slice(
                    b"\nnamespace { struct CrashOnLoad { CrashOnLoad() { volatile int *volatile p = nullptr; *p = 1; } } crash_on_load; }\n",
                );
            }
            Some(d)
        },
        &[],
    );
    check_failed(&crashing, "in its constructors (while being loaded) with SIGSEGV");
    assert_eq!(rt.rt_pid(), rt_pid, "rt-core never loaded it");

    // The same with exit(0), which used to pass the check (the checker ended with status 0)
    // and then end the real rt-core.
    let exiting = rt.dir.path().join("exiting.zip");
    rewrite_zip(
        &good,
        &exiting,
        |name, mut d| {
            if name == "c_blocks_code.cpp" {
                d.extend_from_slice(
                    b"\n#include <cstdlib>\nnamespace { struct ExitOnLoad { ExitOnLoad() { std::exit(0); } } exit_on_load; }\n",
                );
            }
            Some(d)
        },
        &[],
    );
    let started = std::time::Instant::now();
    check_failed(&exiting, "in its constructors (while being loaded) with a call of exit(0)");
    assert!(started.elapsed() < Duration::from_secs(20), "refused by the check, not by a timeout");
    assert_eq!(rt.rt_pid(), rt_pid, "rt-core never loaded it");

    // A new good build replaces the program and runs it.
    let other = rt.dir.path().join("other.zip");
    demo_bundle(&other, &["--period-ms", "20"]);
    assert_eq!(rt.upload(&other, &token).status, 200);
    assert_eq!(rt.wait_build(&token)["status"], "SUCCESS");
    rt.wait_status(&token, "STATUS:RUNNING");
    assert_ne!(program_md5(&rt), md5_before);
}

#[test]
fn companion_restart_does_not_stop_the_plc() {
    let mut rt = Runtime::start(&[]);
    let token = deployed(&rt);
    let rt_pid = rt.rt_pid();
    let count_before = rt.scan_count(&token);

    // Hard kill: no chance to clean up anything.
    rt.stop_companion(libc::SIGKILL);
    let beat = rt.heartbeat();
    wait_for("rt-core to keep cycling without a companion", Duration::from_secs(5), || {
        (rt.heartbeat() > beat + 10).then_some(())
    });
    rt.restart_companion();
    assert_eq!(rt.rt_pid(), rt_pid, "the same rt-core");
    assert_eq!(rt.status(&token), "STATUS:RUNNING", "the old token still works and the PLC runs");
    let count_after = rt.scan_count(&token);
    assert!(
        count_after > count_before,
        "scan count kept advancing across the restart: {count_before} -> {count_after}"
    );

    // A graceful stop too. The Editor's log poll (`?id=<last seen + 1>`) carries on across
    // it: the new process numbers its entries after the ones already served.
    let logs = rt.get("/runtime-logs", &token).json()["runtime-logs"].as_array().cloned().unwrap();
    let last_seen = logs.iter().filter_map(|e| e["id"].as_u64()).max().unwrap();
    rt.restart_companion();
    assert_eq!(rt.rt_pid(), rt_pid);
    assert!(rt.scan_count(&token) > count_after);
    let newer = rt.get(&format!("/runtime-logs?id={}", last_seen + 1), &token).json()["runtime-logs"].clone();
    let newer = newer.as_array().unwrap();
    assert!(newer.iter().all(|e| e["id"].as_u64().unwrap() > last_seen), "{newer:#?}");
    assert!(newer.iter().any(|e| e["message"].as_str().unwrap().contains("starting")), "{newer:#?}");
    let all = rt.get("/runtime-logs", &token).json()["runtime-logs"].as_array().cloned().unwrap();
    assert!(all.len() > newer.len(), "the history before the restart is still served");
    assert!(rt.log().contains("was left as it is"), "{}", rt.log());
}

#[test]
fn killed_rt_core_is_restarted_and_runs_again() {
    let mut rt = Runtime::start(&[]);
    let token = deployed(&rt);
    let old = rt.rt_pid();
    // SAFETY: kill() touches no memory; the pid is the rt-core of this test.
    unsafe { libc::kill(old as i32, libc::SIGKILL) };
    let new = wait_for("a new rt-core", Duration::from_secs(20), || {
        let pid = shared_abi::client::Observer::open(rt.shm.to_str().unwrap()).ok().map(|o| {
            use shared_abi::client::Reader;
            o.status().rt_pid
        })?;
        (pid != old && pid != 0).then_some(pid)
    });
    rt.remember_rt_pid();
    assert_ne!(new, old);
    rt.wait_status(&token, "STATUS:RUNNING");
    let logs = rt.get("/runtime-logs", &token).json()["runtime-logs"].to_string();
    assert!(logs.contains("killed by signal 9"), "{logs}");
    let c = rt.scan_count(&token);
    wait_for("the reloaded program to scan", Duration::from_secs(10), || (rt.scan_count(&token) > c).then_some(()));
}

#[test]
fn three_rt_core_crashes_in_30_s_mean_safe_mode() {
    let mut rt = Runtime::start(&[]);
    let token = deployed(&rt);
    for i in 0..3 {
        let pid = rt.rt_pid();
        // SAFETY: kill() touches no memory; the pid is the rt-core of this test.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        wait_for(&format!("restart {i}"), Duration::from_secs(20), || {
            let r = rt.curl("GET", "/health", None, None);
            let pid_now = shared_abi::client::Observer::open(rt.shm.to_str().unwrap()).ok().map(|o| {
                use shared_abi::client::Reader;
                o.status().rt_pid
            })?;
            (pid_now != pid && r.json()["rt_core"] == "up").then_some(())
        });
        rt.remember_rt_pid();
    }
    rt.wait_status(&token, "STATUS:ERROR");
    let health = rt.curl("GET", "/health", None, None);
    assert_eq!(health.status, 503);
    assert_eq!(health.json()["safe_mode"], true);
    let state = {
        use shared_abi::client::Reader;
        shared_abi::client::Observer::open(rt.shm.to_str().unwrap()).unwrap().status().state
    };
    assert_eq!(state, shared_abi::layout::PlcState::Empty, "the program stays unloaded");
    // An explicit start leaves safe mode.
    assert_eq!(rt.get("/start-plc", &token).json()["status"], "START:OK");
    rt.wait_status(&token, "STATUS:RUNNING");
}

#[test]
fn users_roles_and_revocation() {
    let mut rt = Runtime::start(&[]);
    let admin = rt.bootstrap("admin", "admin-pass");
    let who = rt.get("/whoami", &admin).json();
    assert_eq!(who["role"], "admin", "the first user is an admin whatever the Editor asked");
    let r = rt.curl(
        "POST",
        "/create-user",
        Some(&admin),
        Some(r#"{"username":"eve","password":"eve-pass","role":"viewer"}"#),
    );
    assert_eq!(r.status, 201, "{r:?}");
    let viewer = rt.login("eve", "eve-pass");
    assert_eq!(rt.get("/status", &viewer).status, 200);
    assert_eq!(rt.get("/start-plc", &viewer).status, 403);
    let dummy = rt.dir.path().join("dummy.zip");
    std::fs::write(&dummy, b"PK").unwrap();
    assert_eq!(rt.upload(&dummy, &viewer).status, 403);
    let r = rt.curl("POST", "/create-user", Some(&viewer), Some(r#"{"username":"x","password":"y"}"#));
    assert_eq!(r.status, 403);
    let users = rt.get("/get-users-info", &admin).json();
    assert_eq!(users.as_array().unwrap().len(), 2);
    let admin_id = rt.get("/whoami", &admin).json()["id"].as_u64().unwrap();
    let eve_id = rt.get("/whoami", &viewer).json()["id"].as_u64().unwrap();
    // Last-admin guard and self-delete guard.
    let r = rt.curl("PUT", &format!("/update-user/{admin_id}"), Some(&admin), Some(r#"{"role":"user"}"#));
    assert_eq!(r.status, 409, "{r:?}");
    assert_eq!(rt.curl("DELETE", &format!("/delete-user/{admin_id}"), Some(&admin), None).status, 403);
    // A viewer cannot promote itself.
    let r = rt.curl("PUT", &format!("/update-user/{eve_id}"), Some(&viewer), Some(r#"{"role":"admin"}"#));
    assert_eq!(r.status, 403);
    // Own password change needs the current one and retires old tokens.
    let r = rt.curl("PUT", &format!("/update-user/{eve_id}"), Some(&viewer), Some(r#"{"password":"new-pass"}"#));
    assert_eq!(r.status, 400);
    let r = rt.curl(
        "PUT",
        &format!("/update-user/{eve_id}"),
        Some(&viewer),
        Some(r#"{"password":"new-pass","current_password":"eve-pass"}"#),
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(rt.get("/status", &viewer).status, 401);
    let viewer = rt.login("eve", "new-pass");
    // Logout revokes, and the revocation survives a restart.
    assert_eq!(rt.curl("POST", "/logout", Some(&viewer), None).status, 200);
    assert_eq!(rt.get("/status", &viewer).status, 401);
    rt.restart_companion();
    assert_eq!(rt.get("/status", &viewer).status, 401, "revoked stays revoked");
    assert_eq!(rt.get("/status", &admin).status, 200, "other tokens survive the restart");
    assert_eq!(rt.curl("DELETE", &format!("/delete-user/{eve_id}"), Some(&admin), None).status, 200);
    assert_eq!(rt.curl("POST", "/login", None, Some(r#"{"username":"eve","password":"new-pass"}"#)).status, 401);
    // Users are stored with argon2id hashes in a 0600 file.
    let file = rt.data_dir().join("users.json");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("$argon2id$") && !text.contains("admin-pass"));
}

#[test]
fn failed_logins_are_throttled_per_address() {
    let rt = Runtime::start(&[]);
    rt.bootstrap("admin", "admin-pass");
    for _ in 0..5 {
        let r = rt.curl("POST", "/login", None, Some(r#"{"username":"admin","password":"wrong"}"#));
        assert_eq!(r.status, 401);
        assert_eq!(r.json(), serde_json::json!("Wrong username or password"));
    }
    let r = rt.curl("POST", "/login", None, Some(r#"{"username":"admin","password":"admin-pass"}"#));
    assert_eq!(r.status, 429, "{r:?}");
    assert!(r.header("retry-after").is_some());
}

#[test]
fn first_user_policy_none_refuses_and_add_user_provisions() {
    let mut rt = Runtime::start(&["--first-user-from", "none"]);
    let r = rt.curl("POST", "/create-user", None, Some(r#"{"username":"a","password":"b","role":"user"}"#));
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(rt.curl("GET", "/get-users-info", None, None).status, 404);
    // add-user refuses while the runtime holds the data directory, works when stopped.
    let add = |rt: &Runtime| {
        let mut child = Command::new(common::companion_binary())
            .args(["add-user", "--username", "root", "--role", "admin", "--data-dir"])
            .arg(rt.data_dir())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(b"root-pass\n").unwrap();
        child.wait_with_output().unwrap()
    };
    let out = add(&rt);
    assert!(!out.status.success(), "refused while running");
    rt.stop_companion(libc::SIGTERM);
    let out = add(&rt);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    rt.restart_companion();
    assert_eq!(rt.curl("GET", "/get-users-info", None, None).status, 200);
    let token = rt.login("root", "root-pass");
    assert_eq!(rt.get("/whoami", &token).json()["role"], "admin");
}

#[test]
fn version_reports_follow_editor_compat() {
    let legacy = Runtime::start(&["--editor-compat", "legacy"]);
    assert_eq!(legacy.curl("GET", "/version", None, None).json()["version"], "v4");
    drop(legacy);

    let dual = Runtime::start(&[]);
    let r = dual.curl("GET", "/get-users-info", None, None);
    assert_eq!(r.header("x-openplc-runtime-version"), Some("v4"), "Editor <= 4.1.4 still connects");
    let v = dual.curl("GET", "/version", None, None);
    assert_eq!(v.json()["version"], "v4.1.10", "Editor >= 4.2 may upload");
    let caps = dual.curl("GET", "/capabilities", None, None).json();
    assert_eq!(caps["runtimeVersion"], "v4.1.10");
    assert_eq!(caps["minEditorVersion"], "4.0.0");
    drop(dual);

    let current = Runtime::start(&["--editor-compat", "current"]);
    let r = current.curl("GET", "/get-users-info", None, None);
    assert_eq!(r.header("x-openplc-runtime-version"), Some("v4.1.10"));
}

#[test]
fn user_certificate_replaces_the_generated_one() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    let mut params = rcgen::CertificateParams::new(vec!["plc.example".to_string()]).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, "plc.example");
    let key_pair = rcgen::KeyPair::generate().unwrap();
    let c = params.self_signed(&key_pair).unwrap().pem();
    let k = key_pair.serialize_pem();
    std::fs::write(&cert, c).unwrap();
    std::fs::write(&key, k).unwrap();
    let rt = Runtime::start(&["--cert", cert.to_str().unwrap(), "--key", key.to_str().unwrap()]);
    let out = Command::new("curl")
        .args(["-sk", "-v", "-o", "/dev/null", &format!("{}/version", rt.base())])
        .output()
        .unwrap();
    let verbose = String::from_utf8_lossy(&out.stderr);
    assert!(verbose.contains("plc.example"), "{verbose}");
    assert!(!rt.data_dir().join("tls/cert.pem").exists(), "nothing generated");
}

#[test]
fn variables_by_name_over_rest() {
    let rt = Runtime::start(&[]);
    let admin = rt.bootstrap("admin", "admin-pass");
    let r = rt.curl("GET", "/variables", Some(&admin), None);
    assert_eq!(r.status, 409, "no program yet: {r:?}");

    let zip = bundle(&rt, "good.zip", &["--period-ms", "10"]);
    assert_eq!(rt.upload(&zip, &admin).status, 200);
    assert_eq!(rt.wait_build(&admin)["status"], "SUCCESS");
    rt.wait_status(&admin, "STATUS:RUNNING");
    let r = rt.curl(
        "POST",
        "/create-user",
        Some(&admin),
        Some(r#"{"username":"eve","password":"eve-pass","role":"viewer"}"#),
    );
    assert_eq!(r.status, 201);
    let viewer = rt.login("eve", "eve-pass");

    // Names and types from the bundle's VARIABLES.csv, at their debug indices.
    let list = rt.get("/variables", &viewer).json();
    let vars = list["variables"].as_array().unwrap();
    assert_eq!(vars.len(), 33, "function-block instances have no debug index");
    assert_eq!(vars[0], serde_json::json!({"index": 0, "name": "CONFIG0.RES0.INSTANCE0.COUNTER", "type": "UINT"}));
    assert_eq!(vars[31]["name"], "CONFIG0.RES0.INSTANCE0.PRESET");
    assert_eq!(list["md5"].as_str().map(str::len), Some(32));

    // Values from a scan after the request, decoded as IEC values; names are case-insensitive.
    let read = |query: &str| rt.get(&format!("/variables/values?{query}"), &viewer);
    let counter = |reply: &common::Reply| reply.json()["values"][0]["value"].as_u64().unwrap();
    let first = read("names=config0.res0.instance0.counter,CONFIG0.RES0.INSTANCE0.PRESET&indices=32");
    assert_eq!(first.status, 200, "{first:?}");
    let values = first.json()["values"].clone();
    assert_eq!(
        values[1],
        serde_json::json!({"index": 31, "name": "CONFIG0.RES0.INSTANCE0.PRESET", "type": "TIME", "value": "T#500ms"})
    );
    assert_eq!(values[2]["value"], "OpenPLC");
    let before = counter(&first);
    wait_for("the counter to advance between reads", Duration::from_secs(10), || {
        (counter(&read("names=CONFIG0.RES0.INSTANCE0.COUNTER")) > before).then_some(())
    });
    let all = read("").json();
    assert_eq!(all["values"].as_array().unwrap().len(), 33, "no selection: every variable");
    assert_eq!(all["values"][5]["name"], "CONFIG0.RES0.INSTANCE0.V_BOOL");
    assert!(all["values"][5]["value"].is_boolean(), "{:#}", all["values"][5]);

    let unknown = read("names=NOPE,CONFIG0.RES0.INSTANCE0.COUNTER&indices=999");
    assert_eq!(unknown.status, 404);
    assert!(unknown.body.contains("NOPE") && unknown.body.contains("999"), "{unknown:?}");
    assert_eq!(rt.curl("GET", "/variables/values", None, None).status, 401);
}
