//! Idle sockets from one source cannot lock other clients out (issue 8, item 11): 32 idle
//! connections from 127.0.0.2, then pymodbus from 127.0.0.3 is served at once, and the
//! idle sockets that made room for it see their connection closed. Before the per-source
//! cap and eviction, the 33rd connection was refused until the idle timeout (60 s) freed a
//! place.

mod support;

use openplc_modbus::{Server, ServerConfig};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};
use support::*;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio::process::Command;

const FLOODER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const CLIENT: &str = "127.0.0.3";

async fn connect_from(from: Ipv4Addr, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind((from, 0).into()).unwrap();
    socket.connect(to).await.unwrap()
}

/// 32 connections from the flooder that never send a byte.
async fn flood(server: &Server) -> Vec<TcpStream> {
    let mut idle = Vec::new();
    for _ in 0..32 {
        idle.push(connect_from(FLOODER, server.local_addr()).await);
    }
    idle
}

/// Which of `socks` the server has closed (EOF or reset), looking for up to `wait`.
async fn closed(socks: &mut [TcpStream], wait: Duration) -> Vec<usize> {
    let mut out = Vec::new();
    for (i, s) in socks.iter_mut().enumerate() {
        let mut buf = [0u8; 1];
        if let Ok(Ok(0) | Err(_)) = tokio::time::timeout(wait, s.read(&mut buf)).await {
            out.push(i);
        }
    }
    out
}

/// pymodbus reading a register from 127.0.0.3; returns how long it took.
async fn pymodbus_read(server: &Server) -> Duration {
    let port = server.local_addr().port().to_string();
    let start = Instant::now();
    let out = run(
        Command::new("python3").arg(py("read_from.py")).args(["127.0.0.1", &port, CLIENT]),
        Duration::from_secs(30),
    )
    .await;
    let log = text(&out);
    assert!(out.status.success() && log.contains("PASS"), "pymodbus from {CLIENT} was not served:\n{log}");
    start.elapsed()
}

/// The default limits: 32 connections, 16 per source. The flooder's 17th to 32nd
/// connections each take the place of its own longest-idle one, so it never holds more
/// than 16 and the other source finds room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sockets_from_one_source_leave_room_for_another() {
    let (_rt, plc) = start_rt(&["PERIOD_NS=2000000ULL"]);
    let cfg = ServerConfig { host: "127.0.0.1".into(), port: 0, ..ServerConfig::default() };
    assert_eq!((cfg.max_connections, cfg.max_connections_per_source, cfg.idle_timeout.as_secs()), (32, 16, 60));
    let server = Server::start(cfg, plc).await.unwrap();
    let mut idle = flood(&server).await;
    until("the flooder's connections to be admitted", Duration::from_secs(10), || {
        (server.status().accepted == 32).then_some(())
    })
    .await;
    // Far sooner than the 60 s idle timeout.
    let took = pymodbus_read(&server).await;
    assert!(took < Duration::from_secs(20), "served after {took:?}");
    let gone = closed(&mut idle[..16], Duration::from_secs(10)).await;
    assert_eq!(gone, (0..16).collect::<Vec<_>>(), "the flooder's 16 oldest sockets were closed");
    assert!(closed(&mut idle[16..], Duration::from_millis(200)).await.is_empty(), "its 16 newest are open");
    let st = server.status();
    assert_eq!((st.evicted, st.closed_evicted, st.refused, st.closed_idle), (16, 16, 0, 0), "{st:?}");
    assert_eq!(st.requests, 1, "{st:?}");
    server.stop().await;
}

/// One source allowed the whole table: when it is full of that source's idle sockets, the
/// other source's client takes the place of the longest-idle one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_full_of_idle_sockets_gives_way_to_a_live_client() {
    let (_rt, plc) = start_rt(&["PERIOD_NS=2000000ULL"]);
    let cfg =
        ServerConfig { host: "127.0.0.1".into(), port: 0, max_connections_per_source: 32, ..ServerConfig::default() };
    let server = Server::start(cfg, plc).await.unwrap();
    let mut idle = flood(&server).await;
    until("the table to fill", Duration::from_secs(10), || (server.status().connections == 32).then_some(())).await;
    let took = pymodbus_read(&server).await;
    assert!(took < Duration::from_secs(20), "served after {took:?}");
    assert_eq!(closed(&mut idle[..1], Duration::from_secs(10)).await, [0], "the longest-idle socket was closed");
    assert!(closed(&mut idle[1..], Duration::from_millis(200)).await.is_empty(), "the other 31 are open");
    let st = server.status();
    assert_eq!((st.evicted, st.closed_evicted, st.refused), (1, 1, 0), "{st:?}");
    server.stop().await;
}
