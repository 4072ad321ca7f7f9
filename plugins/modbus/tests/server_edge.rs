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
    assert_eq!(plc.outputs().image.lint_memory[0] & 0xFFFF, 0x1234, "register 27 is the low word of %ML0");
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
    let server = Server::start(config(), plc).await.unwrap();
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
        let took = closed_within(&mut s, Duration::from_secs(2)).await;
        assert!(took < Duration::from_millis(250), "{bad:02X?} closed after {took:?}, not at once");
    }
    assert_eq!(server.status().closed_malformed, bad_headers.len() as u64);
    server.stop().await;
}

#[tokio::test]
async fn half_frames_and_idle_connections_are_closed_by_their_timeouts() {
    let (_rt, plc) = plc();
    let server = Server::start(config(), plc).await.unwrap();
    // Half an MBAP header, then silence: the 300 ms frame timeout closes it.
    let mut s = TcpStream::connect(server.local_addr()).await.unwrap();
    s.write_all(&[0, 1, 0, 0]).await.unwrap();
    let took = closed_within(&mut s, Duration::from_secs(3)).await;
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_millis(1500),
        "half header closed after {took:?}"
    );
    // A whole header promising 5 bytes, 2 sent.
    let mut s = TcpStream::connect(server.local_addr()).await.unwrap();
    s.write_all(&[0, 1, 0, 0, 0, 6, 1, 3, 0]).await.unwrap();
    let took = closed_within(&mut s, Duration::from_secs(3)).await;
    assert!(took >= Duration::from_millis(250) && took < Duration::from_millis(1500), "half PDU closed after {took:?}");
    // Dribbling one byte at a time does not extend the frame's deadline.
    let mut s = TcpStream::connect(server.local_addr()).await.unwrap();
    let start = Instant::now();
    for b in frame(1, 1, &[3, 0, 0, 0, 1]).iter().take(10) {
        if s.write_all(&[*b]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    closed_within(&mut s, Duration::from_secs(3)).await;
    assert!(start.elapsed() < Duration::from_millis(1500), "slow frame survived {:?}", start.elapsed());
    // An idle connection: closed after the 600 ms idle timeout, not before.
    let mut s = TcpStream::connect(server.local_addr()).await.unwrap();
    assert_eq!(ask(&mut s, &[3, 0, 0, 0, 1]).await, [3, 2, 0, 0]);
    let took = closed_within(&mut s, Duration::from_secs(3)).await;
    assert!(took >= Duration::from_millis(550) && took < Duration::from_millis(2000), "idle closed after {took:?}");
    let st = server.status();
    assert_eq!((st.closed_frame_timeout, st.closed_idle), (3, 1), "{st:?}");
    server.stop().await;
}

#[tokio::test]
async fn connections_past_the_cap_are_closed_at_once() {
    let (_rt, plc) = plc();
    let server = Server::start(ServerConfig { max_connections: 4, ..config() }, plc).await.unwrap();
    let mut served = Vec::new();
    for _ in 0..4 {
        let mut s = TcpStream::connect(server.local_addr()).await.unwrap();
        assert_eq!(ask(&mut s, &[3, 0, 0, 0, 1]).await, [3, 2, 0, 0]);
        served.push(s);
    }
    // A burst of 200 more: every one is closed straight away, none is served.
    let mut extra = Vec::new();
    for _ in 0..200 {
        extra.push(TcpStream::connect(server.local_addr()).await.unwrap());
    }
    for s in &mut extra {
        let _ = s.write_all(&frame(1, 1, &[3, 0, 0, 0, 1])).await;
        let took = closed_within(s, Duration::from_secs(2)).await;
        assert!(took < Duration::from_millis(500), "an extra connection lived {took:?}");
    }
    assert_eq!(server.status().refused, 200);
    assert_eq!(server.status().connections, 4);
    // The served ones still work; closing one makes room for a new one.
    for s in &mut served {
        assert_eq!(ask(s, &[3, 0, 0, 0, 1]).await, [3, 2, 0, 0]);
    }
    drop(served.pop());
    until("the closed connection to be released", Duration::from_secs(2), || {
        (server.status().connections == 3).then_some(())
    })
    .await;
    let mut s = TcpStream::connect(server.local_addr()).await.unwrap();
    assert_eq!(ask(&mut s, &[3, 0, 0, 0, 1]).await, [3, 2, 0, 0]);
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
    assert!(start.elapsed() < Duration::from_secs(2));
    // Drained, then frozen again: the next write is queued but never applied.
    rt.resume();
    plc.wait_applied(filled, Duration::from_secs(10)).await.unwrap();
    rt.pause();
    assert_eq!(ask(&mut s, &[6, 0, 1, 0, 1]).await, [0x86, 4], "queued but never applied: device failure");
    rt.resume();
    assert_eq!(ask(&mut s, &[6, 0, 1, 0, 9]).await, [6, 0, 1, 0, 9]);
    assert_eq!(plc.outputs().image.int_output[1], 9);
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
