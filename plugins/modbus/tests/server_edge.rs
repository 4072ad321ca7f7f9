//! The server's protocol edges and defences, byte-exact over real sockets, against a real
//! rt-core running its test program: exception codes for every kind of bad request,
//! impossible MBAP headers, half frames, idle connections, the connection cap, a full write
//! queue, a stalled rt-core, and a stream of random PDUs that must each get an answer.

mod support;

use openplc_modbus::map::AddressMap;
use openplc_modbus::{Server, ServerConfig};
use openplc_port::WriteRing;
use shared_abi::image::IecAddress;
use std::time::{Duration, Instant};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn config() -> ServerConfig {
    ServerConfig {
        host: "127.0.0.1".into(),
        port: 0,
        map: AddressMap {
            qx_bits: 80,
            mx_bits: 16,
            ix_bits: 40,
            iw_count: 10,
            qw_count: 10,
            mw_count: 10,
            md_count: 2,
            ml_count: 1,
            ..AddressMap::default()
        },
        idle_timeout: Duration::from_millis(600),
        frame_timeout: Duration::from_millis(300),
        write_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    }
}

fn frame(tid: u16, unit: u8, pdu: &[u8]) -> Vec<u8> {
    let mut f = tid.to_be_bytes().to_vec();
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(&((pdu.len() + 1) as u16).to_be_bytes());
    f.push(unit);
    f.extend_from_slice(pdu);
    f
}

/// Reads one reply; returns (transaction id, unit, PDU).
async fn reply(s: &mut TcpStream) -> (u16, u8, Vec<u8>) {
    let mut head = [0u8; 7];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut head))
        .await
        .expect("a reply in time")
        .expect("reply");
    assert_eq!(&head[2..4], &[0, 0], "protocol id");
    let len = u16::from_be_bytes([head[4], head[5]]) as usize;
    let mut pdu = vec![0u8; len - 1];
    s.read_exact(&mut pdu).await.expect("reply body");
    (u16::from_be_bytes([head[0], head[1]]), head[6], pdu)
}

async fn ask(s: &mut TcpStream, pdu: &[u8]) -> Vec<u8> {
    s.write_all(&frame(0x4242, 1, pdu)).await.expect("send");
    let (tid, unit, rsp) = reply(s).await;
    assert_eq!((tid, unit), (0x4242, 1));
    rsp
}

/// Waits for the server to close `s`; returns how long that took.
async fn closed_within(s: &mut TcpStream, limit: Duration) -> Duration {
    let start = Instant::now();
    let mut buf = [0u8; 16];
    match tokio::time::timeout(limit, s.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => start.elapsed(),
        Ok(Ok(n)) => panic!("expected the connection closed, got {n} bytes"),
        Err(_) => panic!("connection still open after {limit:?}"),
    }
}

/// rt-core running its test program at 2 ms, and the port the server reaches it through.
fn plc() -> (Rt, std::sync::Arc<openplc_port::PlcPort>) {
    start_rt(&["PERIOD_NS=2000000ULL"])
}

#[tokio::test]
async fn exception_codes_for_every_kind_of_bad_request() {
    let (_rt, plc) = plc();
    let server = Server::start(config(), plc.clone()).await.unwrap();
    let mut s = TcpStream::connect(server.local_addr()).await.unwrap();
    // (request, expected reply). Tables: 96 coils, 40 DI, 10 IR, 10+10+4+4 = 28 HR.
    let cases: &[(&[u8], &[u8])] = &[
        // Reads at the last address work; one past is 0x02; quantities 0 and too many 0x03.
        (&[1, 0, 95, 0, 1], &[1, 1, 0]),
        (&[1, 0, 95, 0, 2], &[0x81, 2]),
        (&[1, 0, 0, 0, 0], &[0x81, 3]),
        (&[1, 0, 0, 0x07, 0xD1], &[0x81, 3]),
        (&[2, 0, 39, 0, 1], &[2, 1, 0]),
        (&[2, 0, 40, 0, 1], &[0x82, 2]),
        (&[3, 0, 27, 0, 1], &[3, 2, 0, 0]),
        (&[3, 0, 27, 0, 2], &[0x83, 2]),
        (&[3, 0xFF, 0xFF, 0, 1], &[0x83, 2]),
        (&[3, 0, 0, 0, 126], &[0x83, 3]),
        (&[3, 0, 0, 0, 0], &[0x83, 3]),
        (&[4, 0, 9, 0, 1], &[4, 2, 0, 0]),
        (&[4, 0, 10, 0, 1], &[0x84, 2]),
        // Writes: out of range 0x02, bad values and byte counts 0x03.
        (&[5, 0, 96, 0xFF, 0], &[0x85, 2]),
        (&[5, 0, 1, 0x12, 0x34], &[0x85, 3]),
        (&[6, 0, 28, 0, 1], &[0x86, 2]),
        (&[0x0F, 0, 90, 0, 8, 1, 0xFF], &[0x8F, 2]),
        (&[0x0F, 0, 0, 0, 8, 2, 0xFF, 0], &[0x8F, 3]),
        (&[0x0F, 0, 0, 0, 0, 0], &[0x8F, 3]),
        (&[0x10, 0, 27, 0, 2, 4, 0, 1, 0, 2], &[0x90, 2]),
        (&[0x10, 0, 0, 0, 2, 3, 0, 1, 0], &[0x90, 3]),
        (&[0x10, 0, 0, 0, 124, 248], &[0x90, 3]),
        (&[0x10, 0, 0, 0x80, 0, 0], &[0x90, 3]),
        (&[0x17, 0, 0, 0, 1, 0, 27, 0, 2, 4, 0, 1, 0, 2], &[0x97, 2]),
        (&[0x17, 0, 0, 0, 126, 0, 0, 0, 1, 2, 0, 1], &[0x97, 3]),
        // A PDU too short or too long for its function: 0x03, and the connection lives.
        (&[3, 0, 0, 0], &[0x83, 3]),
        (&[3, 0, 0, 0, 1, 0], &[0x83, 3]),
        // Functions we do not serve: 0x01.
        (&[7], &[0x87, 1]),
        (&[0x08, 0, 0, 0, 0], &[0x88, 1]),
        (&[0x2B, 0x0E, 1, 0], &[0xAB, 1]),
        (&[0x16, 0, 0, 0xFF, 0xFF, 0, 0], &[0x96, 1]),
        (&[0x41], &[0xC1, 1]),
        (&[0x85, 0, 0], &[0x85, 1]),
    ];
    for (req, want) in cases {
        assert_eq!(ask(&mut s, req).await, *want, "request {req:02X?}");
    }
    assert_eq!(plc.stats().unwrap().writes_applied, 0, "no refused request wrote anything");
    // Still answering on the same connection.
    assert_eq!(ask(&mut s, &[6, 0, 27, 0x12, 0x34]).await, [6, 0, 27, 0x12, 0x34]);
    assert_eq!(settled(&plc).await.image.lint_memory[0] & 0xFFFF, 0x1234, "register 27 is the low word of %ML0");
    let st = server.status();
    assert_eq!(st.exceptions, cases.iter().filter(|(_, w)| w[0] & 0x80 != 0).count() as u64);
    assert_eq!(st.closed_malformed, 0);
    server.stop().await;
}

#[tokio::test]
async fn unit_id_policy() {
    let (_rt, plc) = plc();
    let server = Server::start(config(), plc.clone()).await.unwrap();
    let mut s = TcpStream::connect(server.local_addr()).await.unwrap();
    for unit in [0u8, 1, 17, 255] {
        s.write_all(&frame(7, unit, &[3, 0, 0, 0, 1])).await.unwrap();
        assert_eq!(reply(&mut s).await, (7, unit, vec![3, 2, 0, 0]), "any unit id is answered by default");
    }
    server.stop().await;
    let server = Server::start(ServerConfig { unit_id: Some(5), ..config() }, plc).await.unwrap();
    let mut s = TcpStream::connect(server.local_addr()).await.unwrap();
    s.write_all(&frame(8, 5, &[3, 0, 0, 0, 1])).await.unwrap();
    assert_eq!(reply(&mut s).await, (8, 5, vec![3, 2, 0, 0]));
    s.write_all(&frame(9, 6, &[3, 0, 0, 0, 1])).await.unwrap();
    assert_eq!(reply(&mut s).await, (9, 6, vec![0x83, 0x0B]), "another unit: gateway target failed to respond");
    server.stop().await;
}

#[tokio::test]
async fn impossible_mbap_headers_close_the_connection_at_once() {
    let (_rt, plc) = plc();
    // Timeouts far longer than the wait below: a close within it can only be the header's.
    let slow = Duration::from_secs(60);
    let server =
        Server::start(ServerConfig { idle_timeout: slow, frame_timeout: slow, ..config() }, plc).await.unwrap();
    let bad_headers: &[&[u8]] = &[
        &[0, 1, 0, 1, 0, 6, 1, 3, 0, 0, 0, 1], // protocol id 1
        &[0, 1, 0, 0, 0, 0, 1],                // length 0
        &[0, 1, 0, 0, 0, 1, 1],                // length 1: a unit id and no function
        &[0, 1, 0, 0, 0, 255, 1],              // length 255: a PDU past 253 bytes
        &[0, 1, 0, 0, 0xFF, 0xFF, 1],          // length 65535
    ];
    for bad in bad_headers {
        let mut s = TcpStream::connect(server.local_addr()).await.unwrap();
        s.write_all(bad).await.unwrap();
        closed_within(&mut s, Duration::from_secs(10)).await;
    }
    let st = server.status();
    assert_eq!(st.closed_malformed, bad_headers.len() as u64, "{st:?}");
    assert_eq!((st.closed_frame_timeout, st.closed_idle, st.requests), (0, 0, 0), "{st:?}");
    server.stop().await;
}

/// Each close is told apart by the server's counters; the lower bounds hold because timers
/// never fire early, the upper ones are generous (host stalls run to hundreds of ms).
#[tokio::test]
async fn half_frames_and_idle_connections_are_closed_by_their_timeouts() {
    let (_rt, plc) = plc();
    let server = Server::start(config(), plc).await.unwrap();
    let counts = || {
        let st = server.status();
        (st.closed_frame_timeout, st.closed_idle)
    };
    // Half an MBAP header, then silence: the 300 ms frame timeout closes it (the 600 ms
    // idle timeout no longer applies once a frame has begun).
    let mut s = TcpStream::connect(server.local_addr()).await.unwrap();
    s.write_all(&[0, 1, 0, 0]).await.unwrap();
    let took = closed_within(&mut s, Duration::from_secs(10)).await;
    assert!(took >= Duration::from_millis(250), "half header closed after {took:?}");
    assert_eq!(counts(), (1, 0));
    // A whole header promising 5 bytes, 2 sent.
    let mut s = TcpStream::connect(server.local_addr()).await.unwrap();
    s.write_all(&[0, 1, 0, 0, 0, 6, 1, 3, 0]).await.unwrap();
    let took = closed_within(&mut s, Duration::from_secs(10)).await;
    assert!(took >= Duration::from_millis(250), "half PDU closed after {took:?}");
    assert_eq!(counts(), (2, 0));
    // Dribbling one byte every 100 ms (well inside the frame timeout each) does not extend
    // the frame's deadline: the connection closes while the 260-byte frame is still being
    // dribbled, long before its 60 bytes here are all sent (that would take 6 s).
    let s = TcpStream::connect(server.local_addr()).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    let closed = tokio::spawn(async move {
        let mut buf = [0u8; 16];
        matches!(tokio::time::timeout(Duration::from_secs(30), rd.read(&mut buf)).await, Ok(Ok(0) | Err(_)))
    });
    let long = frame(1, 1, &[0x10, 0, 0, 0, 125, 250]);
    let mut sent = 0;
    for b in long.iter().take(60) {
        if closed.is_finished() || wr.write_all(&[*b]).await.is_err() {
            break;
        }
        sent += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(closed.await.unwrap(), "the dribbling connection was closed");
    assert!(sent < 60, "the slow frame survived all {sent} bytes");
    assert_eq!(counts(), (3, 0));
    // An idle connection: closed by the 600 ms idle timeout, not before.
    let mut s = TcpStream::connect(server.local_addr()).await.unwrap();
    assert_eq!(ask(&mut s, &[3, 0, 0, 0, 1]).await, [3, 2, 0, 0]);
    let took = closed_within(&mut s, Duration::from_secs(10)).await;
    assert!(took >= Duration::from_millis(550), "idle closed after {took:?}");
    assert_eq!(counts(), (3, 1));
    assert_eq!(server.status().requests, 1, "{:?}", server.status());
    server.stop().await;
}

/// A TCP connection to `to` from source address `from` (any address of 127/8 is ours).
async fn connect_from(from: [u8; 4], to: std::net::SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind((std::net::Ipv4Addr::from(from), 0).into()).unwrap();
    socket.connect(to).await.unwrap()
}

#[tokio::test]
async fn a_full_server_closes_its_longest_idle_connection_for_a_newcomer() {
    let (_rt, plc) = plc();
    let slow = Duration::from_secs(60);
    let cfg = ServerConfig { max_connections: 4, idle_timeout: slow, frame_timeout: slow, ..config() };
    let server = Server::start(cfg, plc).await.unwrap();
    let mut served = Vec::new();
    for _ in 0..4 {
        let mut s = connect_from([127, 0, 0, 2], server.local_addr()).await;
        assert_eq!(ask(&mut s, &[3, 0, 0, 0, 1]).await, [3, 2, 0, 0]);
        served.push(s);
    }
    // Served in turn: the first has been idle longest.
    for s in &mut served[1..] {
        assert_eq!(ask(s, &[3, 0, 0, 0, 1]).await, [3, 2, 0, 0]);
    }
    let mut newcomer = connect_from([127, 0, 0, 3], server.local_addr()).await;
    assert_eq!(ask(&mut newcomer, &[3, 0, 0, 0, 1]).await, [3, 2, 0, 0], "the newcomer is served");
    closed_within(&mut served[0], Duration::from_secs(10)).await;
    for s in &mut served[1..] {
        assert_eq!(ask(s, &[3, 0, 0, 0, 1]).await, [3, 2, 0, 0], "the others still are");
    }
    let st = server.status();
    assert_eq!((st.evicted, st.closed_evicted, st.refused, st.connections), (1, 1, 0, 4), "{st:?}");
    server.stop().await;
}

#[tokio::test]
async fn connections_past_the_cap_are_refused_only_while_every_one_is_busy() {
    let (_rt, plc) = plc();
    let slow = Duration::from_secs(60);
    let cfg = ServerConfig { max_connections: 4, idle_timeout: slow, frame_timeout: slow, ..config() };
    let server = Server::start(cfg, plc).await.unwrap();
    // Four connections in the middle of a request (half a header sent): busy.
    let mut busy = Vec::new();
    for _ in 0..4 {
        let mut s = TcpStream::connect(server.local_addr()).await.unwrap();
        s.write_all(&[0, 7, 0, 0]).await.unwrap();
        busy.push(s);
    }
    until("the four to be served", Duration::from_secs(10), || (server.status().connections == 4).then_some(())).await;
    // A burst of 50 more: each is closed without being served, long before any timeout.
    let mut extra = Vec::new();
    for _ in 0..50 {
        extra.push(TcpStream::connect(server.local_addr()).await.unwrap());
    }
    for s in &mut extra {
        let _ = s.write_all(&frame(1, 1, &[3, 0, 0, 0, 1])).await;
        closed_within(s, Duration::from_secs(10)).await;
    }
    let st = server.status();
    assert_eq!((st.refused, st.evicted, st.connections, st.requests), (50, 0, 4, 0), "{st:?}");
    // The busy ones finish their requests undisturbed.
    for s in &mut busy {
        s.write_all(&[0, 6, 1, 3, 0, 0, 0, 1]).await.unwrap();
        assert_eq!(reply(s).await, (7, 1, vec![3, 2, 0, 0]));
    }
    // Idle now: a newcomer takes the place of one of them.
    let mut s = TcpStream::connect(server.local_addr()).await.unwrap();
    assert_eq!(ask(&mut s, &[3, 0, 0, 0, 1]).await, [3, 2, 0, 0]);
    assert_eq!(server.status().evicted, 1);
    server.stop().await;
}

#[tokio::test]
async fn full_write_queue_and_stalled_plc_get_exceptions_not_hangs() {
    let (rt, plc) = plc();
    let server = Server::start(config(), plc.clone()).await.unwrap();
    let mut s = TcpStream::connect(server.local_addr()).await.unwrap();
    // rt-core frozen with its write queue full.
    rt.pause();
    let filled = plc.write(&vec![(IecAddress::parse("%QW5").unwrap(), 1); WriteRing::CAPACITY]).unwrap();
    let start = Instant::now();
    assert_eq!(ask(&mut s, &[6, 0, 1, 0, 1]).await, [0x86, 6], "queue full until write_timeout: busy");
    assert!(start.elapsed() < Duration::from_secs(10), "answered, not left hanging");
    // Drained, then frozen again: the next write is queued but never applied.
    rt.resume();
    plc.wait_applied(filled, Duration::from_secs(10)).await.unwrap();
    rt.pause();
    assert_eq!(ask(&mut s, &[6, 0, 1, 0, 1]).await, [0x86, 4], "queued but never applied: device failure");
    rt.resume();
    assert_eq!(ask(&mut s, &[6, 0, 1, 0, 9]).await, [6, 0, 1, 0, 9]);
    assert_eq!(settled(&plc).await.image.int_output[1], 9);
    let st = server.status();
    assert!(st.write_busy >= 1 && st.write_timeouts == 1, "{st:?}");
    server.stop().await;
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let (_rt, plc) = plc();
    plc.update_inputs(|i| i.int_input[3] = 33).unwrap();
    let server = Server::start(config(), plc).await.unwrap();
    let mut s = TcpStream::connect(server.local_addr()).await.unwrap();
    let mut burst = frame(1, 1, &[6, 0, 2, 0, 5]);
    burst.extend(frame(2, 1, &[4, 0, 3, 0, 1]));
    burst.extend(frame(3, 1, &[3, 0, 2, 0, 1]));
    burst.extend(frame(4, 1, &[0x63]));
    s.write_all(&burst).await.unwrap();
    assert_eq!(reply(&mut s).await, (1, 1, vec![6, 0, 2, 0, 5]));
    assert_eq!(reply(&mut s).await, (2, 1, vec![4, 2, 0, 33]));
    assert_eq!(reply(&mut s).await, (3, 1, vec![3, 2, 0, 5]));
    assert_eq!(reply(&mut s).await, (4, 1, vec![0xE3, 1]));
    server.stop().await;
}

/// Thousands of well-framed requests with random PDUs, over a few connections: every one
/// gets a reply with its transaction id (a normal one or an exception), none closes the
/// connection, nothing panics, and the server answers a plain read afterwards.
#[tokio::test]
async fn random_pdus_always_get_an_answer() {
    let (_rt, plc) = plc();
    let server = Server::start(config(), plc).await.unwrap();
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let fcs = [1u8, 2, 3, 4, 5, 6, 0x0F, 0x10, 0x17, 0x2B, 0x07, 0x80, 0xFF];
    let mut answered = 0;
    for _conn in 0..4 {
        let mut s = TcpStream::connect(server.local_addr()).await.unwrap();
        for tid in 0..1500u16 {
            let r = next();
            let len = 1 + (r % 20) as usize;
            let mut pdu: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            pdu[0] = fcs[(r >> 8) as usize % fcs.len()];
            // Small addresses and quantities often enough to reach the handlers.
            if len >= 5 && r & 0x10000 != 0 {
                pdu[1] = 0;
                pdu[3] = 0;
            }
            s.write_all(&frame(tid, 1, &pdu)).await.unwrap();
            let (got, _, rsp) = reply(&mut s).await;
            assert_eq!(got, tid);
            assert!(!rsp.is_empty() && (rsp[0] & 0x7F) == (pdu[0] & 0x7F), "{pdu:02X?} → {rsp:02X?}");
            answered += 1;
        }
    }
    let mut s = TcpStream::connect(server.local_addr()).await.unwrap();
    assert_eq!(ask(&mut s, &[3, 0, 0, 0, 1]).await.len(), 4);
    let st = server.status();
    assert_eq!(st.requests, answered + 1);
    assert_eq!(st.closed_malformed + st.closed_frame_timeout, 0, "{st:?}");
    server.stop().await;
}
