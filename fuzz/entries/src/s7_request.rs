//! `s7_request`: the bytes an S7 client sends, framed exactly as the server frames them
//! (TPKT, COTP), through the S7 PDU parser and the request handler of one session
//! (`openplc_s7::session`, what a TCP connection runs), over the port's in-memory image
//! behind assertions that the server never asks for a write rt-core would refuse. Every
//! reply is checked: whole TPKT frames, S7 PDUs within the negotiated size whose header
//! lengths add up.
//!
//! Input: the first byte is a mode: bit 0, the session starts already connected
//! (connection confirmed, PDU 240 negotiated), so the fuzzer need not rediscover the
//! handshake; bit 1, every write fails as if rt-core did not apply it in time; bit 2, the
//! PLC is stopped. The rest is the TCP byte stream.

use crate::support::block_on;
use openplc_port::{ImagePort, MemoryImage, PortError, PortFuture, WriteRing, WriteTicket};
use openplc_s7::S7Config;
use openplc_s7::session::{Service, Session};
use openplc_s7::wire::{iso, s7};
use shared_abi::image::{Area, IecAddress, InputImage};
use shared_abi::layout::{OutputSnapshot, PlcState};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The configuration the fuzzer serves: every mapping type, every system area.
pub const CONFIG: &str = r#"{
  "server": { "enabled": true, "port": 0, "pdu_size": 960 },
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

fn service() -> &'static (Service, Arc<ModelPlc>) {
    static SERVICE: OnceLock<(Service, Arc<ModelPlc>)> = OnceLock::new();
    SERVICE.get_or_init(|| {
        let cfg = S7Config::from_json(CONFIG).unwrap_or_else(|e| panic!("the canned configuration: {e}"));
        let plc = Arc::new(ModelPlc { image: MemoryImage::zeroed(), unapplied: AtomicBool::new(false) });
        (Service::new(cfg, plc.clone()), plc)
    })
}

/// Feeds `stream` to a fresh session as the server would; panics only on a broken
/// invariant (a reply that is not whole TPKT frames, an S7 reply longer than the PDU, a
/// write rt-core would refuse).
pub fn run(input: &[u8]) {
    let Some((&mode, stream)) = input.split_first() else { return };
    let (svc, plc) = service();
    // Every input starts from the same image, so equal input gives equal output.
    plc.image.publish(bytemuck::zeroed_box());
    plc.unapplied.store(mode & 2 != 0, Ordering::Release);
    plc.image.set_state(Some(if mode & 4 != 0 { PlcState::Stopped } else { PlcState::Running }));
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
        let result = block_on(session.on_frame(svc, &stream[iso::TPKT_HEADER..len], out));
        check_replies(out, session.pdu_size());
        if result.is_err() {
            return;
        }
        stream = &stream[len..];
    }
}

/// Every reply is whole TPKT frames; the S7 PDUs they carry fit the negotiated size and
/// their header lengths add up.
#[allow(clippy::expect_used, reason = "a fuzz invariant: failing it is the finding")]
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

/// The PLC as the server sees it: the port's in-memory image (writes applied at once, with
/// rt-core's rules), behind assertions that the server never asks for a write rt-core
/// would refuse; with `unapplied`, writes are queued but never applied, and the wait for
/// them fails at once (as it would after the write timeout) so that no input sleeps.
struct ModelPlc {
    image: MemoryImage,
    unapplied: AtomicBool,
}

impl ImagePort for ModelPlc {
    fn cycle(&self) -> u64 {
        self.image.cycle()
    }

    fn state(&self) -> Option<PlcState> {
        self.image.state()
    }

    fn outputs(&self) -> Arc<OutputSnapshot> {
        self.image.outputs()
    }

    fn read_inputs(&self, f: &mut dyn FnMut(&InputImage)) -> bool {
        self.image.read_inputs(f)
    }

    fn update_inputs(&self, _f: &mut dyn FnMut(&mut InputImage)) -> Result<(), PortError> {
        panic!("the S7 server never changes inputs");
    }

    fn write(&self, writes: &[(IecAddress, u64)]) -> Result<WriteTicket, PortError> {
        assert!(!writes.is_empty(), "an empty write batch");
        assert!(writes.len() <= WriteRing::CAPACITY, "{} writes exceed rt-core's write queue", writes.len());
        for &(addr, value) in writes {
            assert!(addr.area() != Area::Input, "the server writes an input: {addr}");
            assert!(addr.check_value(value).is_ok(), "{addr} cannot hold {value}");
        }
        self.image.stall.store(self.unapplied.load(Ordering::Acquire), Ordering::Release);
        self.image.write(writes)
    }

    fn wait_applied(&self, ticket: WriteTicket, timeout: Duration) -> PortFuture<'_, u64> {
        if self.unapplied.load(Ordering::Acquire) {
            return Box::pin(std::future::ready(Err(PortError::Timeout { what: "image writes", after: timeout })));
        }
        self.image.wait_applied(ticket, timeout)
    }

    fn wait_cycle_after(&self, cycle: u64, timeout: Duration) -> PortFuture<'_, u64> {
        self.image.wait_cycle_after(cycle, timeout)
    }
}
