//! The TCP side's limits over real sockets: connection caps (global and per source
//! address), the timeouts, and strict framing.

mod support;

use openplc_port::MemoryImage;
use openplc_s7::{Handle, S7Config};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

async fn server(cfg: S7Config) -> (Handle, SocketAddr) {
    let h = openplc_s7::start(cfg, Arc::new(MemoryImage::zeroed())).await.unwrap();
    let addr = h.local_addr().unwrap();
    (h, addr)
}

fn config() -> S7Config {
    let mut cfg = S7Config::from_json(
        r#"{"data_blocks": [{"db_number": 1, "size_bytes": 8, "mapping": {"type": "int_memory"}}]}"#,
    )
    .unwrap();
    cfg.bind_address = "127.0.0.1".into();
    cfg.port = 0;
    cfg
}

async fn connect_from(source: &str, to: SocketAddr) -> TcpStream {
    let s = TcpSocket::new_v4().unwrap();
    s.bind(format!("{source}:0").parse().unwrap()).unwrap();
    s.connect(to).await.unwrap()
}

/// Connection request, setup, one read: true if the server answered all three.
async fn works(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    for frame in [cr(0x0102, 0x0A), dt(&setup(480)), dt(&read(&[item(2, 2, 1, DB, 0)]))] {
        if s.write_all(&frame).await.is_err() {
            return false;
        }
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => return false,
        }
    }
    true
}

/// Waits for the server to close `s` (EOF or reset); how long it took.
async fn closed_within(s: &mut TcpStream, limit: Duration) -> Duration {
    let start = Instant::now();
    let mut buf = [0u8; 256];
    loop {
        match tokio::time::timeout(limit.saturating_sub(start.elapsed()), s.read(&mut buf)).await {
            Err(_) => panic!("still open after {limit:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return start.elapsed(),
            Ok(Ok(_)) => {}
        }
    }
}

async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < Duration::from_secs(5), "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn connections_are_capped_per_source_and_in_all() {
    let mut cfg = config();
    cfg.max_clients = 3;
    cfg.max_clients_per_source = 2;
    let (h, addr) = server(cfg).await;
    let mut a1 = connect_from("127.0.0.1", addr).await;
    let mut a2 = connect_from("127.0.0.1", addr).await;
    assert!(works(&mut a1).await && works(&mut a2).await);
    let mut a3 = connect_from("127.0.0.1", addr).await;
    closed_within(&mut a3, Duration::from_secs(5)).await;
    let mut b1 = connect_from("127.0.0.2", addr).await;
    assert!(works(&mut b1).await, "another source still gets in");
    let mut c1 = connect_from("127.0.0.3", addr).await;
    closed_within(&mut c1, Duration::from_secs(5)).await;
    let st = h.status().server.unwrap();
    assert_eq!((st.refused_per_source, st.refused_max_clients, st.connections), (1, 1, 3));
    drop(a1);
    until("a place to free up", || h.status().server.unwrap().connections == 2).await;
    let mut a4 = connect_from("127.0.0.1", addr).await;
    assert!(works(&mut a4).await);
    h.stop().await;
}

#[tokio::test]
async fn silence_and_half_frames_are_closed_after_their_timeouts() {
    let mut cfg = config();
    cfg.ping_timeout = Duration::from_millis(300);
    cfg.recv_timeout = Duration::from_millis(200);
    let (h, addr) = server(cfg).await;

    let mut idle = TcpStream::connect(addr).await.unwrap();
    assert!(works(&mut idle).await);
    let took = closed_within(&mut idle, Duration::from_secs(5)).await;
    assert!(took >= Duration::from_millis(250), "closed after {took:?}, before the ping timeout");

    let mut no_request = TcpStream::connect(addr).await.unwrap();
    closed_within(&mut no_request, Duration::from_secs(5)).await;

    let mut half = TcpStream::connect(addr).await.unwrap();
    half.write_all(&cr(0x0102, 0x0A)[..2]).await.unwrap();
    closed_within(&mut half, Duration::from_secs(5)).await;

    let st = h.status().server.unwrap();
    assert_eq!((st.closed_idle, st.closed_timeout), (1, 2), "{st:?}");
    let mut fresh = TcpStream::connect(addr).await.unwrap();
    assert!(works(&mut fresh).await, "the server goes on serving");
    h.stop().await;
}

#[tokio::test]
async fn an_impossible_tpkt_header_closes_at_once() {
    let mut cfg = config();
    cfg.recv_timeout = Duration::from_secs(30);
    cfg.ping_timeout = Duration::from_secs(30);
    let (h, addr) = server(cfg).await;
    for header in [[3u8, 0, 0x07, 0xD0], [3, 0, 0, 3], [0x16, 3, 1, 0]] {
        let mut s = TcpStream::connect(addr).await.unwrap();
        assert!(works(&mut s).await);
        s.write_all(&header).await.unwrap();
        // Long before any timeout: the header alone condemns the frame.
        closed_within(&mut s, Duration::from_secs(5)).await;
    }
    assert_eq!(h.status().server.unwrap().closed_malformed, 3);
    h.stop().await;
}

#[tokio::test]
async fn a_disabled_configuration_starts_nothing() {
    let mut cfg = config();
    cfg.enabled = false;
    let h = openplc_s7::start(cfg, Arc::new(MemoryImage::zeroed())).await.unwrap();
    assert_eq!(h.status(), openplc_s7::Status { enabled: false, server: None });
    assert!(h.local_addr().is_none());
}
