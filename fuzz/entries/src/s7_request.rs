//! The fuzz target's entry point, shared with the test that replays the kept corpus: the
//! bytes a malicious client could send, framed exactly as the server frames them, through
//! the same session over an in-memory image, with every reply checked for shape.
//!
//! Input: the first byte is a mode: bit 0, the session starts already connected
//! (connection confirmed, PDU 240 negotiated), so the fuzzer need not rediscover the
//! handshake; bit 1, every write fails as if rt-core did not apply it; bit 2, the PLC is
//! stopped. The rest is the TCP byte stream.

use crate::config::S7Config;
use crate::image::{MemoryImage, WriteError};
use crate::session::{Service, Session};
use crate::wire::{iso, s7};
use shared_abi::layout::PlcState;
use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};

/// The configuration the fuzzer serves: every mapping type, every system area.
pub const CONFIG: &str = r#"{
  "server": { "enabled": true, "port": 0, "pdu_size": 480 },
  "data_blocks": [
    { "db_number": 1, "size_bytes": 64, "mapping": { "type": "bool_output", "start_buffer": 0, "bit_addressing": true } },
    { "db_number": 2, "size_bytes": 64, "mapping": { "type": "int_memory", "start_buffer": 10 } },
    { "db_number": 3, "size_bytes": 64, "mapping": { "type": "dint_output", "start_buffer": 0 } },
    { "db_number": 4, "size_bytes": 64, "mapping": { "type": "lint_memory", "start_buffer": 1016 } },
    { "db_number": 5, "size_bytes": 33, "mapping": { "type": "int_input", "start_buffer": 0 } },
    { "db_number": 6, "size_bytes": 16, "mapping": { "type": "byte_output", "start_buffer": 1020 } },
    { "db_number": 7, "size_bytes": 65536, "mapping": { "type": "bool_memory", "start_buffer": 0 } },
    { "db_number": 65535, "size_bytes": 8, "mapping": { "type": "dint_input", "start_buffer": 1023 } }
  ],
  "system_areas": {
    "pe_area": { "enabled": true, "size_bytes": 32 },
    "pa_area": { "enabled": true, "size_bytes": 32, "mapping": { "type": "byte_output", "start_buffer": 0 } },
    "mk_area": { "enabled": true, "size_bytes": 128, "mapping": { "type": "int_memory", "start_buffer": 0 } }
  }
}"#;

/// A connection request for rack 0, slot 2 and setup communication asking for PDU 240.
pub const HANDSHAKE: &[u8] = &[
    3, 0, 0, 22, 17, 0xE0, 0, 0, 0, 1, 0, 0xC0, 1, 0x0A, 0xC1, 2, 1, 0, 0xC2, 2, 1, 2, //
    3, 0, 0, 25, 2, 0xF0, 0x80, 0x32, 1, 0, 0, 0, 0, 0, 8, 0, 0, 0xF0, 0, 0, 1, 0, 1, 0, 240,
];

fn service() -> &'static (Service, Arc<MemoryImage>) {
    static SERVICE: OnceLock<(Service, Arc<MemoryImage>)> = OnceLock::new();
    SERVICE.get_or_init(|| {
        let cfg = S7Config::from_json(CONFIG).unwrap_or_default();
        let image = Arc::new(MemoryImage::new());
        (Service::new(cfg, image.clone()), image)
    })
}

/// Polls a future that must not wait (the in-memory image never does).
fn now<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the session waited on an in-memory image"),
    }
}

/// Feeds `stream` to a fresh session as the server would; panics only on a broken
/// invariant (a reply that is not whole TPKT frames, an S7 reply longer than the PDU).
pub fn run(input: &[u8]) {
    let Some((&mode, stream)) = input.split_first() else { return };
    let (svc, image) = service();
    image.fail_writes((mode & 2 != 0).then_some(WriteError::Timeout));
    image.set_state(if mode & 4 != 0 { PlcState::Stopped } else { PlcState::Running });
    let mut session = Session::new(1);
    let mut out = Vec::new();
    if mode & 1 == 1 {
        feed(svc, &mut session, HANDSHAKE, &mut out);
        assert!(session.connected(), "the canned handshake connects");
    }
    feed(svc, &mut session, stream, &mut out);
}

fn feed(svc: &Service, session: &mut Session, mut stream: &[u8], out: &mut Vec<u8>) {
    while stream.len() >= iso::TPKT_HEADER {
        let header = [stream[0], stream[1], stream[2], stream[3]];
        let Ok(len) = iso::frame_len(header, session.max_frame()) else { return };
        if stream.len() < len {
            return;
        }
        out.clear();
        let result = now(session.on_frame(svc, &stream[iso::TPKT_HEADER..len], out));
        check_replies(out, session.pdu_size());
        if result.is_err() {
            return;
        }
        stream = &stream[len..];
    }
}

/// Every reply is whole TPKT frames; the S7 PDUs they carry fit the negotiated size and
/// their header lengths add up.
fn check_replies(out: &[u8], pdu_size: u16) {
    let mut rest = out;
    let mut pdu = Vec::new();
    while !rest.is_empty() {
        let header: [u8; 4] = rest[..4].try_into().expect("a reply frame has a whole TPKT header");
        let len =
            iso::frame_len(header, iso::TPKT_HEADER + iso::MAX_TPDU).expect("a reply frame's TPKT header is valid");
        assert!(len <= rest.len(), "a reply frame is whole");
        let tpdu = &rest[iso::TPKT_HEADER..len];
        assert!(tpdu.len() >= 3 && (tpdu[0] as usize) < tpdu.len(), "a reply COTP header fits its frame");
        if matches!(tpdu[1], iso::CC | iso::DR) {
            assert_eq!(tpdu[0] as usize + 1, tpdu.len(), "a CC/DR length indicator covers the TPDU");
            rest = &rest[len..];
            continue;
        }
        let Ok(iso::Tpdu::Data { last, payload }) = iso::parse(tpdu) else { panic!("a reply TPDU is CC, DR or DT") };
        pdu.extend_from_slice(payload);
        if last {
            assert!(pdu.len() <= pdu_size as usize, "reply of {} bytes over PDU {pdu_size}", pdu.len());
            let header = if pdu[1] == s7::rosctr::ACK_DATA { s7::ACK_HEADER } else { s7::HEADER };
            assert!(pdu.len() >= header && pdu[0] == s7::PROTOCOL_ID, "S7 reply header");
            let p = u16::from_be_bytes([pdu[6], pdu[7]]) as usize;
            let d = u16::from_be_bytes([pdu[8], pdu[9]]) as usize;
            assert_eq!(header + p + d, pdu.len(), "S7 reply lengths");
            pdu.clear();
        }
        rest = &rest[len..];
    }
}
