//! The monitor's live socket (`/api/monitor/live`) spoken by hand over TLS, as a program
//! rather than a browser would: ten pages share one watch list, a session needs its token
//! first, a cross-origin browser socket is refused, and logging out ends a session at once.

use super::Plant;
use super::net::{self, ENGINEER};
use serde_json::{Value, json};
use shared_abi::client::{Observer, Reader};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

type Socket = TlsStream<TcpStream>;

/// Opens the socket; `origin` as a browser would send it.
async fn open(port: u16, origin: Option<&str>) -> (Socket, net::Response) {
    use tokio::io::AsyncWriteExt;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut s = net::tls_from(ENGINEER, addr, &net::connector()).await.expect("TLS");
    let origin = origin.map(|o| format!("Origin: {o}\r\n")).unwrap_or_default();
    let req = format!(
        "GET /api/monitor/live HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{origin}Upgrade: websocket\r\nConnection: \
         Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let r = net::receive(&mut s).await.expect("an answer to the upgrade");
    (s, r)
}

/// The next JSON message, `None` once the server closed.
async fn next(s: &mut Socket, within: Duration) -> Option<Value> {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let frame = tokio::time::timeout(left, net::ws_next_frame(s)).await.expect("a message in time").ok()??;
        match frame {
            (1, payload) => return Some(serde_json::from_slice(&payload).expect("JSON")),
            (8, _) => return None,
            _ => continue,
        }
    }
}

/// The next message of type `t` (others skipped).
async fn next_of(s: &mut Socket, t: &str) -> Value {
    loop {
        match next(s, Duration::from_secs(10)).await {
            Some(m) if m["t"] == t => return m,
            Some(_) => continue,
            None => panic!("closed while waiting for {t}"),
        }
    }
}

async fn signed_in(port: u16, token: &str, watch: Value) -> Socket {
    let (mut s, r) = open(port, None).await;
    assert_eq!(r.status, 101, "{r:?}");
    net::ws_send_text(&mut s, &json!({ "t": "auth", "token": token }).to_string()).await.unwrap();
    let hello = next_of(&mut s, "hello").await;
    assert!(hello["role"].is_string(), "{hello}");
    net::ws_send_text(&mut s, &watch.to_string()).await.unwrap();
    s
}

/// The variables in rt-core's watch list now.
fn watch_list(plant: &Plant) -> Vec<u32> {
    let obs = Observer::open(plant.rt.shm.to_str().unwrap()).unwrap();
    let mut w: shared_abi::debug::WatchList = bytemuck::Zeroable::zeroed();
    obs.shm().watch.read(&mut w, 1000).unwrap();
    let mut list = w.vars[..w.count as usize].to_vec();
    list.sort_unstable();
    list
}

#[test]
fn ten_pages_share_one_watch_list_and_sessions_end_when_their_token_does() {
    let plant = Plant::start();
    let port = plant.rt.port;
    let op = plant.rt.login("op", "op-pass");
    super::runtime().block_on(async {
        // Ten pages, each showing every variable of the demo.
        let all: Vec<u32> = (0..33).collect();
        let watch = json!({ "t": "watch", "vars": all, "histogram": true, "logs_from": 0 });
        let mut pages = Vec::new();
        for _ in 0..10 {
            pages.push(signed_in(port, &op, watch.clone()).await);
        }
        // Each gets ticks with all 33 values a few times a second, the histogram and the log.
        let started = Instant::now();
        let mut counters = Vec::new();
        for page in pages.iter_mut() {
            let mut seqs = Vec::new();
            let mut values = 0;
            let (mut histogram, mut logs) = (None, None);
            while seqs.len() < 5 || histogram.is_none() || logs.is_none() {
                let m = next(page, Duration::from_secs(10)).await.expect("the socket stays open");
                match m["t"].as_str() {
                    Some("histogram") => histogram = Some(m),
                    Some("logs") => logs = Some(m),
                    Some("tick") => {
                        assert_eq!(m["status"], "RUNNING");
                        seqs.push(m["seq"].as_u64().unwrap());
                        values = values.max(m["values"].as_array().unwrap().len());
                        if let Some(v) = m["values"].as_array().unwrap().iter().find(|p| p[0] == 0) {
                            counters.push(v[1].as_u64().unwrap());
                        }
                    }
                    _ => panic!("unexpected {m}"),
                }
            }
            assert_eq!(values, 33, "every variable the page shows");
            assert!(seqs.windows(2).all(|w| w[1] > w[0]), "{seqs:?}");
            let h = histogram.unwrap();
            assert!(h["count"].as_u64().unwrap() > 0 && h["p50_us"].is_u64(), "{h}");
            assert!(h["buckets"].as_array().unwrap().iter().all(|p| p[1].as_u64().unwrap() > 0), "sparse");
            let logs = logs.unwrap();
            assert!(logs["entries"].as_array().is_some_and(|e| !e.is_empty()), "the log's tail");
        }
        assert!(started.elapsed() < Duration::from_secs(15), "ticks come a few times a second");
        assert!(counters.iter().max() > counters.iter().min(), "live values: {counters:?}");
        // …and all of it is one watch list of 33 variables in rt-core, not ten.
        assert_eq!(watch_list(&plant), all, "the pages' union, once");

        // Logging out ends the session on the socket at once.
        let r = plant.rt.curl("POST", "/logout", Some(&op), Some("{}"));
        assert_eq!(r.status, 200, "{r:?}");
        let end = next_of(&mut pages[1], "end").await;
        assert!(end["reason"].as_str().unwrap().contains("revoked"), "{end}");
        assert_eq!(next(&mut pages[1], Duration::from_secs(5)).await, None, "then closed");
        drop(pages);
        // A socket opened by another site's page is refused before any token is read.
        let (_, r) = open(port, Some("https://evil.example")).await;
        assert_eq!(r.status, 403, "{r:?}");
        let (_, r) = open(port, Some(&format!("https://127.0.0.1:{port}"))).await;
        assert_eq!(r.status, 101, "the page's own origin");

        // A bad token is told so and closed; so is a socket that never sends one.
        let (mut s, _) = open(port, None).await;
        net::ws_send_text(&mut s, r#"{"t":"auth","token":"not.a.jwt"}"#).await.unwrap();
        assert_eq!(next(&mut s, Duration::from_secs(5)).await.unwrap()["reason"], "Invalid token");
        let (mut s, _) = open(port, None).await;
        let opened = Instant::now();
        let end = next(&mut s, Duration::from_secs(15)).await.expect("an end message");
        assert_eq!(end["t"], "end");
        assert!(opened.elapsed() >= Duration::from_secs(4), "{:?}", opened.elapsed());
        // A bad message is answered, and the session goes on.
        let admin = signed_in(port, &plant.admin, json!({ "t": "watch" })).await;
        let mut admin = admin;
        net::ws_send_text(&mut admin, &json!({ "t": "watch", "vars": (0..300).collect::<Vec<u32>>() }).to_string())
            .await
            .unwrap();
        let err = next_of(&mut admin, "error").await;
        assert!(err["msg"].as_str().unwrap().contains("at most 256"), "{err}");
        next_of(&mut admin, "tick").await;
    });
    // With every page gone, the monitor's variables leave the shared list (unused for 5 s).
    common::wait_for("the watch list to empty", Duration::from_secs(15), || {
        watch_list(&plant).is_empty().then_some(())
    });
}

use super::common;
