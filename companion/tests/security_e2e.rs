//! Rights, names and password guessing, end to end: a debugger socket loses what its user
//! loses (demotion, deletion, logout, password change) at once; usernames that could pass
//! for another are refused; concurrent guesses are throttled before they are hashed.
//!
//! Needs `cargo build --workspace --bins` first, node and scripts/test-deps.

#[path = "../debugger/tests/support/mod.rs"]
mod clients;
mod common;
mod net;

use clients::{Client, Kind};
use common::{Runtime, wait_for};
use serde_json::json;
use std::process::Command;
use std::time::{Duration, Instant};

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

fn force_qx0(c: &mut Client) -> serde_json::Value {
    // Debug variable 2 of the demo is %QX0.0.
    c.call(json!({"op": "force", "index": 2, "type": "BOOL", "value": "TRUE"}))
}

fn connected(c: &mut Client) -> bool {
    c.call(json!({"op": "state"}))["connected"] == true
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Change {
    Demote,
    Delete,
    Logout,
    NewPassword,
}

#[test]
fn revoked_rights_end_live_debug_sessions() {
    let (rt, admin) = running_demo();
    let url = format!("https://127.0.0.1:{}", rt.port);
    for (n, change) in [Change::Demote, Change::Delete, Change::Logout, Change::NewPassword].into_iter().enumerate() {
        let name = format!("operator{n}");
        let body = json!({"username": name, "password": "op-pass", "role": "user"}).to_string();
        assert_eq!(rt.curl("POST", "/create-user", Some(&admin), Some(&body)).status, 201);
        let token = rt.login(&name, "op-pass");
        let id = rt.get("/whoami", &token).json()["id"].as_u64().unwrap();

        // Two sockets of the operator: one keeps forcing, one stays idle.
        let mut active = Client::connected(Kind::Node, &url, &token);
        let mut idle = Client::connected(Kind::Node, &url, &token);
        assert_eq!(force_qx0(&mut active)["success"], true, "{change:?}: a user may force");
        assert_eq!(active.call(json!({"op": "release", "index": 2}))["success"], true);
        wait_for("%QX0.0 released", Duration::from_secs(10), || (output(&rt, "%QX0.0") == "%QX0.0 = 0").then_some(()));

        let r = match change {
            Change::Demote => rt.curl("PUT", &format!("/update-user/{id}"), Some(&admin), Some(r#"{"role":"viewer"}"#)),
            Change::Delete => rt.curl("DELETE", &format!("/delete-user/{id}"), Some(&admin), None),
            Change::Logout => rt.curl("POST", "/logout", Some(&token), None),
            Change::NewPassword => rt.curl(
                "PUT",
                &format!("/password-change/{id}"),
                Some(&token),
                Some(r#"{"old_password":"op-pass","new_password":"other-pass"}"#),
            ),
        };
        assert_eq!(r.status, 200, "{change:?}: {r:?}");
        let changed = Instant::now();
        if change == Change::Demote {
            // The user's rights shrink at once; a viewer still monitors, on both sockets.
            let forced = force_qx0(&mut active);
            assert_eq!(forced["success"], false, "the force after the demotion was refused: {forced}");
            assert!(forced["error"].as_str().unwrap_or("").contains("may monitor but not force"), "{forced}");
            assert_eq!(active.poll(&[0], &["UINT"])["success"], true, "a demoted user keeps monitoring");
            assert_eq!(idle.poll(&[0], &["UINT"])["success"], true);
        } else {
            // The token no longer counts: both sockets are closed, the idle one too.
            wait_for(&format!("{change:?}: both sockets closed"), Duration::from_secs(5), || {
                (!connected(&mut active) && !connected(&mut idle)).then_some(())
            });
            let took = changed.elapsed();
            assert!(took < Duration::from_secs(1), "{change:?}: closed after {took:?}");
            assert_eq!(force_qx0(&mut active)["success"], false);
            assert!(rt.log().contains(&format!("the session of user '{name}' ended")), "{change:?}");
        }
        assert_eq!(output(&rt, "%QX0.0"), "%QX0.0 = 0", "{change:?}: nothing was forced");
    }
    // The admin's own session is untouched by the others' changes.
    let mut c = Client::connected(Kind::Node, &url, &admin);
    assert_eq!(force_qx0(&mut c)["success"], true);
    assert_eq!(c.call(json!({"op": "release", "index": 2}))["success"], true);
}

#[test]
fn usernames_that_could_pass_for_another_are_refused() {
    let rt = Runtime::start(&[]);
    // Even the first user.
    let body = json!({"username": "adm\u{202e}nimda", "password": "pass-word"}).to_string();
    let r = rt.curl("POST", "/create-user", None, Some(&body));
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.json()["msg"].as_str().unwrap().contains("U+202E"), "{r:?}");
    let admin = rt.bootstrap("admin", "admin-pass");
    for bad in ["\u{2066}admin\u{2069}", "ad\u{200b}min", "ad\u{2028}min", "ad\u{feff}min", "a\u{7}b", "adm\u{fe0f}in"]
    {
        let body = json!({"username": bad, "password": "pass-word"}).to_string();
        let r = rt.curl("POST", "/create-user", Some(&admin), Some(&body));
        assert_eq!(r.status, 400, "{bad:?}: {r:?}");
        assert!(r.json()["msg"].as_str().unwrap().starts_with("Invalid username"), "{r:?}");
    }
    let r = rt.curl("POST", "/create-user", Some(&admin), Some(r#"{"username":"Jürgen","password":"pass-word"}"#));
    assert_eq!(r.status, 201, "letters of any script are fine: {r:?}");
    let id = r.json()["id"].as_u64().unwrap();
    let body = json!({"username": "J\u{202e}negrüj"}).to_string();
    let r = rt.curl("PUT", &format!("/update-user/{id}"), Some(&admin), Some(&body));
    assert_eq!(r.status, 400, "a rename too: {r:?}");
    let names: Vec<String> = rt
        .get("/get-users-info", &admin)
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["admin", "Jürgen"]);
}

/// Guessing connections of the attacker (127.0.0.2) and the guesses sent on each, one
/// after the other (HTTP/1.1): 200 guesses, 100 at a time (one source may hold at most
/// 128 connections).
const GUESS_CONNECTIONS: usize = 100;
const GUESSES_PER_CONNECTION: usize = 2;
/// The engineer's logins from 127.0.0.1 while the guesses run.
const ENGINEER_LOGINS: usize = 5;

async fn guesses(dst: std::net::SocketAddr, go: std::sync::Arc<tokio::sync::Barrier>) -> Vec<u16> {
    let tls = net::connector();
    let mut conns = Vec::new();
    for _ in 0..GUESS_CONNECTIONS {
        // Each connection sends one request first, so it is established (past the
        // handshake phase the per-source caps count) before the guesses start together.
        let mut s = net::tls_from(net::ATTACKER, dst, &tls).await.expect("attacker TLS");
        net::send(&mut s, "GET", "/api/version", "", "", false).await.unwrap();
        assert_eq!(net::receive(&mut s).await.unwrap().status, 200);
        conns.push(s);
    }
    go.wait().await;
    let body = r#"{"username":"admin","password":"guess"}"#;
    let mut tasks = tokio::task::JoinSet::new();
    for mut s in conns {
        tasks.spawn(async move {
            let mut statuses = Vec::new();
            for _ in 0..GUESSES_PER_CONNECTION {
                net::send(&mut s, "POST", "/api/login", "", body, false).await.unwrap();
                statuses.push(net::receive(&mut s).await.map(|r| r.status).unwrap_or(0));
            }
            statuses
        });
    }
    let mut all = Vec::new();
    while let Some(r) = tasks.join_next().await {
        all.extend(r.unwrap());
    }
    all
}

async fn engineer_logins(dst: std::net::SocketAddr, go: std::sync::Arc<tokio::sync::Barrier>) -> Vec<Duration> {
    let tls = net::connector();
    // A keep-alive connection made beforehand: the timing is the login's, not TLS's.
    let mut s = net::tls_from(net::ENGINEER, dst, &tls).await.expect("engineer TLS");
    net::send(&mut s, "GET", "/api/version", "", "", false).await.unwrap();
    net::receive(&mut s).await.unwrap();
    go.wait().await;
    let mut times = Vec::new();
    for _ in 0..ENGINEER_LOGINS {
        let start = Instant::now();
        net::send(&mut s, "POST", "/api/login", "", r#"{"username":"admin","password":"admin-pass"}"#, false)
            .await
            .unwrap();
        let r = net::receive(&mut s).await.unwrap();
        assert_eq!(r.status, 200, "the engineer's login: {r:?}");
        times.push(start.elapsed());
    }
    times
}

#[test]
fn concurrent_wrong_guesses_are_throttled_and_a_login_elsewhere_stays_fast() {
    let rt = Runtime::start(&[]);
    rt.bootstrap("admin", "admin-pass");
    let dst = std::net::SocketAddr::from(([127, 0, 0, 1], rt.port));
    // The attacker and the engineer on threads of their own (timings of the server, not
    // of one runtime's queue).
    let attacker = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let engineer = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let go = std::sync::Arc::new(tokio::sync::Barrier::new(2));
    let attack = attacker.spawn(guesses(dst, go.clone()));
    let times = engineer.block_on(engineer_logins(dst, go));
    let statuses = attacker.block_on(attack).unwrap();
    let count = |code| statuses.iter().filter(|s| **s == code).count();
    let (evaluated, throttled, busy) = (count(401), count(429), count(503));
    let mut sorted = times.clone();
    sorted.sort();
    let median = sorted[sorted.len() / 2];
    eprintln!(
        "{} guesses: {evaluated} evaluated (401), {throttled} refused (429), {busy} busy (503); engineer's logins \
         meanwhile {times:?}, median {median:?}",
        statuses.len()
    );
    assert_eq!(evaluated + throttled + busy, GUESS_CONNECTIONS * GUESSES_PER_CONNECTION, "{statuses:?}");
    assert!(evaluated <= 5, "at most the 5 failures a (source, username) may make are evaluated: {evaluated}");
    // The issue's bound, on the median of five: one login may share the CPU with
    // something else on this busy test machine.
    assert!(median <= Duration::from_millis(200), "a legitimate login from elsewhere took {times:?}");
    // The right password from the attacker's address is locked out for that account only.
    let r = engineer.block_on(async {
        let tls = net::connector();
        net::one_request(net::ATTACKER, dst, &tls, "POST", "/api/login", r#"{"username":"nobody","password":"x"}"#)
            .await
            .unwrap()
            .0
    });
    assert_eq!(r.status, 401, "another username from the same address is still evaluated: {r:?}");
}
