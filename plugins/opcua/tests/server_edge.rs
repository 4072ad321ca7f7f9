//! The server's defences over real sockets: connection caps per source, silent and
//! malformed connections, a client that stops asking for publish responses.

mod support;

use serde_json::json;
use std::time::{Duration, Instant};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Whether the server closes `s` within `within` (EOF or reset), reading whatever it sends.
async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_capped_per_source_and_silent_ones_dropped() {
    let r = start_with(None, |c| {
        c["limits"] = json!({ "max_connections_per_source": 3, "hello_timeout_s": 1 });
    })
    .await;
    let addr = r.handle.server().expect("server").local_addr();
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(addr).await.expect("connect"));
    }
    let mut fourth = TcpStream::connect(addr).await.expect("the TCP handshake itself succeeds");
    let closed = closed_within(&mut fourth, Duration::from_secs(2)).await;
    assert!(closed, "a fourth connection from one source is closed: {:?}", r.handle.status());
    assert!(r.handle.status().server.expect("status").connections_refused >= 1);
    // The three silent ones are closed after the hello timeout, freeing their places.
    for s in &mut held {
        assert!(closed_within(s, Duration::from_secs(10)).await, "a connection that never says Hello is closed");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while r.handle.status().server.expect("status").connections > 0 {
        assert!(Instant::now() < deadline, "places are given back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = py(&["read", &r.url, NS, "PLC.INT"]).await;
    assert_eq!(got["PLC.INT"], json!(["Int16", -31000]), "and a real client gets in");
    r.handle.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_close_the_connection_and_nothing_else() {
    // A connection must open its secure channel within hello_timeout_s: the random tails
    // below that look like the start of a frame are closed by that.
    let r = start_with(None, |c| {
        c["limits"] = json!({ "hello_timeout_s": 1, "max_connections_per_source": 32 });
    })
    .await;
    let addr = r.handle.server().expect("server").local_addr();
    let url = r.url.as_bytes();
    let hello = |size: u32, recv: u32| {
        let mut m = b"HELF".to_vec();
        m.extend_from_slice(&size.to_le_bytes());
        for v in [0u32, recv, 65536, 0, 0] {
            m.extend_from_slice(&v.to_le_bytes());
        }
        m.extend_from_slice(&(url.len() as i32).to_le_bytes());
        m.extend_from_slice(url);
        m
    };
    let mut garbage: Vec<Vec<u8>> = vec![
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        hello(u32::MAX, 65536),                                           // a size no one can send
        hello((32 + url.len()) as u32, 0),                                // a receive buffer of 0
        hello((32 + url.len()) as u32 - 9, 65536),                        // a size shorter than its own fields
        b"MSGF\x10\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00".to_vec(), // a message before Hello
        b"OPNF\xff\xff\xff\x7f".to_vec(),
    ];
    let mut seed = 42u64;
    for _ in 0..20 {
        let mut m = hello((32 + url.len()) as u32, 65536);
        for _ in 0..64 {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            m.push((seed >> 33) as u8);
        }
        garbage.push(m);
    }
    // All at once (each may wait out the hello timeout), within the per-source cap, so
    // none is closed for being one too many.
    let cases: Vec<_> = garbage
        .iter()
        .cloned()
        .map(|bytes| {
            tokio::spawn(async move {
                let mut s = TcpStream::connect(addr).await.expect("connect");
                let _ = s.write_all(&bytes).await;
                closed_within(&mut s, Duration::from_secs(10)).await
            })
        })
        .collect();
    for (i, case) in cases.into_iter().enumerate() {
        assert!(case.await.expect("case task"), "case {i} leaves the connection open");
    }
    assert_eq!(r.handle.status().server.expect("status").connections_refused, 0, "every case was served");
    let got = py(&["read", &r.url, NS, "PLC.DINT"]).await;
    assert_eq!(got["PLC.DINT"], json!(["Int32", -2000000000]), "the server still serves");
    r.handle.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_publishing_loses_its_subscription() {
    let r = start_with(None, |c| {
        c["limits"] = json!({ "subscription_lifetime_ms": 1500, "session_timeout_ms": 3000 });
    })
    .await;
    let mut child = tokio::process::Command::new("python3")
        .arg(script("ua_client.py"))
        .args(["subscribe", &r.url, NS, "PLC.Counter", "60"])
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 runs");
    let monitored = || r.handle.status().server.expect("status").monitored_items;
    let deadline = Instant::now() + Duration::from_secs(30);
    while monitored() == 0 {
        assert!(Instant::now() < deadline, "the client subscribed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Freeze the client: its connection stays open, it sends nothing more.
    let pid = child.id().expect("pid").to_string();
    assert!(std::process::Command::new("kill").args(["-STOP", &pid]).status().expect("kill").success());
    let deadline = Instant::now() + Duration::from_secs(20);
    while monitored() != 0 {
        assert!(Instant::now() < deadline, "the stalled subscription was dropped: {:?}", r.handle.status());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill().await;
    r.handle.stop().await;
}
