//! One source floods the HTTPS port; another source is still served and the Editor's debug
//! session keeps working.
//!
//! The attacker is 127.0.0.2 (every flood socket is bound to it), the engineer 127.0.0.1.
//! Each flood is one the runtime once fell to: sockets that never send a byte, sockets that
//! finish TLS and then send half a header block, and Engine.IO WebSockets that never join
//! a namespace; each is reopened as soon as the server closes it. While a flood runs, the
//! engineer sends `GET /api/version` on fresh TLS connections at a steady rate, the Editor's
//! open debug session polls, and a new debug session connects.
//!
//! Needs `cargo build --workspace --bins` first, node and scripts/test-deps.

#[path = "../debugger/tests/support/mod.rs"]
mod clients;
mod common;
mod net;

use clients::{Client, Kind};
use common::{Runtime, wait_for};
use net::{ATTACKER, ENGINEER, Outcomes};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;

/// The engineer's requests per flood: one every `LEGIT_SPACING`.
const LEGIT_REQUESTS: usize = 80;
const LEGIT_SPACING: Duration = Duration::from_millis(50);
/// Longest the engineer waits for one answer before counting it as not answered.
const LEGIT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, Debug)]
enum Flood {
    /// TCP connections that never send a byte.
    SilentTcp,
    /// TLS completed, then half a request head, then nothing.
    HalfHeaders,
    /// An Engine.IO WebSocket opened, then never a namespace CONNECT.
    IdleWebSockets,
}

impl Flood {
    fn sockets(self) -> usize {
        match self {
            Flood::SilentTcp => 520,
            Flood::HalfHeaders => 600,
            Flood::IdleWebSockets => 1500,
        }
    }
}

/// What the attacker did: connections tried and opened, and the most it held at once.
#[derive(Default)]
struct AttackStats {
    attempts: AtomicUsize,
    opened: AtomicUsize,
    holding: AtomicUsize,
    peak: AtomicUsize,
}

/// One socket held by the attacker, counted while it lives.
struct Held(Arc<AttackStats>);

impl Held {
    fn new(stats: &Arc<AttackStats>) -> Held {
        stats.opened.fetch_add(1, Ordering::Relaxed);
        let now = stats.holding.fetch_add(1, Ordering::Relaxed) + 1;
        stats.peak.fetch_max(now, Ordering::Relaxed);
        Held(stats.clone())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.0.holding.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Opens one attacker socket and holds it until the server closes it.
async fn hold_one(flood: Flood, dst: SocketAddr, tls: &TlsConnector, stats: &Arc<AttackStats>) -> std::io::Result<()> {
    let mut buf = [0u8; 1024];
    stats.attempts.fetch_add(1, Ordering::Relaxed);
    match flood {
        Flood::SilentTcp => {
            let mut s = net::tcp_from(ATTACKER, dst).await?;
            let _held = Held::new(stats);
            while s.read(&mut buf).await? > 0 {}
        }
        Flood::HalfHeaders => {
            let mut s = net::tls_from(ATTACKER, dst, tls).await?;
            let _held = Held::new(stats);
            s.write_all(b"GET /api/version HTTP/1.1\r\nHost: localhost\r\n").await?;
            while s.read(&mut buf).await? > 0 {}
        }
        Flood::IdleWebSockets => {
            let mut s = net::tls_from(ATTACKER, dst, tls).await?;
            let _held = Held::new(stats);
            s.write_all(
                b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
                  Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            )
            .await?;
            while s.read(&mut buf).await? > 0 {}
        }
    }
    Ok(())
}

/// `flood.sockets()` attacker sockets, each reopened as soon as the server closes it,
/// until `stop` (or until the task is aborted).
async fn attack(flood: Flood, dst: SocketAddr, stop: Arc<AtomicBool>, stats: Arc<AttackStats>) {
    let tls = net::connector();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..flood.sockets() {
        let (tls, stop, stats) = (tls.clone(), stop.clone(), stats.clone());
        tasks.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if hold_one(flood, dst, &tls, &stats).await.is_err() {
                    // Refused or reset: again at once, as a flood would (yielding to the others).
                    tokio::task::yield_now().await;
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// The engineer: `LEGIT_REQUESTS` requests, one every `LEGIT_SPACING`, each on a fresh
/// TLS connection from 127.0.0.1.
async fn engineer(dst: SocketAddr) -> Outcomes {
    let tls = net::connector();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..LEGIT_REQUESTS {
        let tls = tls.clone();
        tasks.spawn(async move {
            tokio::time::sleep(LEGIT_SPACING * i as u32).await;
            let call = net::one_request(ENGINEER, dst, &tls, "GET", "/api/version", "");
            match tokio::time::timeout(LEGIT_TIMEOUT, call).await {
                Ok(Ok((r, t))) if r.status == 200 => Ok(t),
                Ok(Ok((r, _))) => Err(format!("status {}", r.status)),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("no answer within {LEGIT_TIMEOUT:?}")),
            }
        });
    }
    let mut out = Outcomes::default();
    while let Some(r) = tasks.join_next().await {
        out.record(r.unwrap_or_else(|e| Err(e.to_string())));
    }
    out
}

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

/// One poll of the demo's counter through an open debug session.
fn polls(c: &mut Client) -> bool {
    c.poll(&[0], &["UINT"])["success"] == true
}

#[test]
fn a_flooding_source_does_not_starve_another() {
    let (rt, token) = running_demo();
    let dst = SocketAddr::from(([127, 0, 0, 1], rt.port));
    let url = format!("https://127.0.0.1:{}", rt.port);
    // The attacker and the engineer each get their own thread: the engineer's timings must
    // measure the server, not a queue behind the attacker's tasks in one runtime.
    let attacker_rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let engineer_rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    // The Editor's session, open before the floods start.
    let mut editor = Client::connected(Kind::Node, &url, &token);
    assert!(polls(&mut editor));

    let mut failures = Vec::new();
    for flood in [Flood::SilentTcp, Flood::HalfHeaders, Flood::IdleWebSockets] {
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(AttackStats::default());
        let flooding = attacker_rt.spawn(attack(flood, dst, stop.clone(), stats.clone()));
        // The flood is on once every attacker socket has been tried at least once.
        wait_for(&format!("the {flood:?} flood to start"), Duration::from_secs(30), || {
            (stats.attempts.load(Ordering::Relaxed) >= flood.sockets()).then_some(())
        });
        let started = Instant::now();
        let legit = engineer_rt.block_on(engineer(dst));
        let session_polls = (0..3).filter(|_| polls(&mut editor)).count();
        let mut fresh = Client::spawn(Kind::Node);
        let fresh_connect = fresh.call(json!({"op": "connect", "url": url, "token": token}));
        let fresh_polls = fresh_connect["ok"] == true && polls(&mut fresh);
        drop(fresh);
        let peak = stats.peak.load(Ordering::Relaxed);
        let opened = stats.opened.load(Ordering::Relaxed);
        let attempts = stats.attempts.load(Ordering::Relaxed);
        stop.store(true, Ordering::Relaxed);
        flooding.abort();
        let _ = attacker_rt.block_on(flooding);
        let p99 = legit.percentile(99.0);
        eprintln!(
            "{flood:?}: attacker tried {attempts} connections, opened {opened}, held at most {peak}; engineer over {:?}: {}; open \
             debug session {session_polls}/3 polls; new debug session connect {} polls {fresh_polls}",
            started.elapsed(),
            legit.summary(),
            fresh_connect["ok"],
        );
        if legit.answered_ratio() < 0.95 {
            failures.push(format!("{flood:?}: only {:.0} % answered", legit.answered_ratio() * 100.0));
        }
        if p99.is_none_or(|p| p > Duration::from_secs(1)) {
            failures.push(format!("{flood:?}: p99 {p99:?} > 1 s"));
        }
        if session_polls != 3 {
            failures.push(format!("{flood:?}: the open debug session answered {session_polls}/3 polls"));
        }
        if !fresh_polls {
            failures.push(format!("{flood:?}: a new debug session did not work: {fresh_connect}"));
        }
    }
    drop(editor);
    assert!(failures.is_empty(), "{failures:#?}");
}

/// How long the server keeps an Engine.IO socket that `join` set up: until the server
/// closes it (a close frame or the end of the stream).
async fn kept_open(dst: SocketAddr, join: Option<&str>) -> Duration {
    let tls = net::connector();
    let mut s = net::tls_from(ENGINEER, dst, &tls).await.expect("TLS");
    let r = net::ws_upgrade(&mut s, "/socket.io/?EIO=4&transport=websocket").await.expect("upgrade");
    assert_eq!(r.status, 101, "{r:?}");
    let opened = Instant::now();
    if let Some(packet) = join {
        net::ws_send_text(&mut s, packet).await.expect("send");
    }
    loop {
        match tokio::time::timeout(Duration::from_secs(30), net::ws_next_frame(&mut s)).await {
            Ok(Ok(Some((0x8, _)))) | Ok(Ok(None)) | Ok(Err(_)) => return opened.elapsed(),
            Ok(Ok(Some(_))) => {}
            Err(_) => panic!("the socket ({join:?}) was still open after 30 s"),
        }
    }
}

#[test]
fn engine_io_sockets_that_never_join_the_debugger_are_closed() {
    let rt = Runtime::start(&[]);
    let dst = SocketAddr::from(([127, 0, 0, 1], rt.port));
    let tokio = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let limit = openplc_debugger::socketio::CONNECT_TIMEOUT + Duration::from_secs(2);
    for join in [None, Some(r#"40/api/debug,{"token":"not-a-token"}"#), Some("40/elsewhere,")] {
        let open = tokio.block_on(kept_open(dst, join));
        assert!(open <= limit, "{join:?}: closed after {open:?}, more than {limit:?}");
        eprintln!("{join:?}: closed after {open:?}");
    }
}
