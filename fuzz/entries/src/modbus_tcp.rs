//! `modbus_tcp`: what a Modbus TCP client sends, through the server's own MBAP framing, PDU
//! decoding (`openplc_modbus::pdu::parse`) and execution against the address map
//! (`openplc_modbus::server::Detached`, the TCP connection's code over a byte slice), with
//! a model PLC that refuses any write rt-core would refuse.
//!
//! Input: one byte choosing one of a few real `modbus_slave.json` files, then the bytes of
//! one connection. Checked: one well-formed reply per complete request, in order, with the
//! request's transaction and unit, its function code or that code's exception, a byte count
//! that matches the quantity asked for; nothing after a frame the server must refuse.

use crate::support::block_on;
use openplc_modbus::ServerConfig;
use openplc_modbus::server::Detached;
use openplc_port::{ImagePort, MemoryImage, PortError, PortFuture, WriteRing, WriteTicket};
use shared_abi::image::{Area, IecAddress, InputImage};
use shared_abi::layout::{OutputSnapshot, PlcState};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The Editor's file (small segments, every memory area), its defaults, upstream's legacy
/// shape, and one with a unit id and the other word order.
const CONFIGS: &[&str] = &[
    r#"{"network_configuration":{"host":"0.0.0.0","port":5020},"buffer_mapping":{"holding_registers":{"qw_count":100,"mw_count":50,"md_count":10,"ml_count":5},"coils":{"qx_bits":64,"mx_bits":16},"discrete_inputs":{"ix_bits":32},"input_registers":{"iw_count":8}}}"#,
    r#"{"network_configuration":{"host":"0.0.0.0","port":502},"buffer_mapping":{"holding_registers":{"qw_count":1024,"mw_count":1024,"md_count":1024,"ml_count":1024},"coils":{"qx_bits":8192,"mx_bits":8192},"discrete_inputs":{"ix_bits":8192},"input_registers":{"iw_count":1024}}}"#,
    r#"{"network_configuration":{"port":502},"buffer_mapping":{"max_coils":8000,"max_discrete_inputs":8000,"max_holding_registers":1000,"max_input_registers":1000}}"#,
    r#"{"network_configuration":{"port":502,"unit_id":1},"word_order":"low_word_first","buffer_mapping":{"holding_registers":{"qw_count":2,"mw_count":1,"md_count":2,"ml_count":2},"coils":{"qx_bits":3,"mx_bits":5},"discrete_inputs":{"ix_bits":9},"input_registers":{"iw_count":1}}}"#,
];

pub fn run(data: &[u8]) {
    let Some((&pick, stream)) = data.split_first() else { return };
    let servers = SERVERS.get_or_init(|| {
        CONFIGS
            .iter()
            .map(|text| {
                let cfg = ServerConfig::from_json(text).unwrap_or_else(|e| panic!("a canned configuration: {e}"));
                let plc = Arc::new(ModelPlc::new());
                let server = Detached::new(cfg.clone(), plc.clone());
                (cfg, plc, server)
            })
            .collect()
    });
    let (cfg, plc, server) = &servers[pick as usize % servers.len()];
    plc.reset();
    let replies = block_on(server.serve_bytes(stream));
    check_exchange(cfg, stream, &replies);
}

type Server = (ServerConfig, Arc<ModelPlc>, Detached);

static SERVERS: OnceLock<Vec<Server>> = OnceLock::new();

/// Serves `requests` on a fresh server with `cfg` and checks the replies.
pub fn serve_once(cfg: &ServerConfig, requests: &[u8]) {
    let plc = Arc::new(ModelPlc::new());
    let server = Detached::new(cfg.clone(), plc);
    let replies = block_on(server.serve_bytes(requests));
    check_exchange(cfg, requests, &replies);
}

const MBAP: usize = 7;
const MAX_PDU: usize = 253;

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// The replies a client gets for `input` from a server with `cfg`.
pub fn check_exchange(cfg: &ServerConfig, mut input: &[u8], mut output: &[u8]) {
    loop {
        if input.len() < MBAP {
            break;
        }
        let length = be16(input, 4) as usize;
        if be16(input, 2) != 0 || !(2..=MAX_PDU + 1).contains(&length) || input.len() < 6 + length {
            // An impossible header closes the connection; a partial frame gets no reply.
            break;
        }
        let (request, rest) = input.split_at(6 + length);
        input = rest;
        assert!(output.len() >= MBAP + 2, "a complete request {request:02X?} got no reply");
        let reply_len = be16(output, 4) as usize;
        assert!((3..=MAX_PDU + 1).contains(&reply_len), "reply length field {reply_len}");
        assert!(output.len() >= 6 + reply_len, "the reply is as long as it says");
        let (reply, rest) = output.split_at(6 + reply_len);
        output = rest;
        check_reply(cfg, request, reply);
    }
    assert!(output.is_empty(), "{} bytes answer nothing that was asked", output.len());
}

fn check_reply(cfg: &ServerConfig, request: &[u8], reply: &[u8]) {
    assert_eq!(reply[..2], request[..2], "transaction id echoed");
    assert_eq!(reply[2..4], [0, 0], "protocol id");
    assert_eq!(reply[6], request[6], "unit id echoed");
    let (fc, rfc) = (request[7], reply[7]);
    let pdu = &request[7..];
    let exception = rfc == fc | 0x80 && reply.len() == MBAP + 2 && (fc & 0x80 != 0 || rfc != fc);
    if exception {
        assert!(matches!(reply[8], 1 | 2 | 3 | 4 | 6 | 0x0B), "exception code {:02X}", reply[8]);
        return;
    }
    assert_eq!(rfc, fc, "{pdu:02X?} answered with {:02X?}", &reply[7..]);
    if let Some(unit) = cfg.unit_id {
        assert_eq!(request[6], unit, "another unit's request is answered 0x0B");
    }
    let body = &reply[8..];
    match fc {
        1 | 2 => {
            let qty = be16(pdu, 3) as usize;
            assert_eq!(body[0] as usize, qty.div_ceil(8));
            assert_eq!(body.len(), 1 + qty.div_ceil(8));
        }
        3 | 4 => {
            let qty = be16(pdu, 3) as usize;
            assert_eq!((body[0] as usize, body.len()), (2 * qty, 1 + 2 * qty));
        }
        23 => {
            let qty = be16(pdu, 3) as usize;
            assert_eq!((body[0] as usize, body.len()), (2 * qty, 1 + 2 * qty));
        }
        5 | 6 | 15 | 16 => assert_eq!(body, &pdu[1..5], "write echo"),
        other => panic!("function {other:02X} answered without an exception"),
    }
}

/// The PLC as the server sees it: the port's in-memory image (writes applied at once, with
/// rt-core's rules), behind assertions that the server never asks for a write rt-core would
/// have to refuse.
pub struct ModelPlc(MemoryImage);

impl ModelPlc {
    pub fn new() -> ModelPlc {
        ModelPlc(MemoryImage::new(initial_outputs(), patterned()))
    }

    fn reset(&self) {
        self.0.publish(initial_outputs());
    }
}

impl Default for ModelPlc {
    fn default() -> Self {
        Self::new()
    }
}

/// Every byte of a zeroed `T` set to a pattern (bit cells hold 0 or 1, as in the image).
fn patterned<T: bytemuck::Pod>() -> Box<T> {
    let mut v: Box<T> = bytemuck::zeroed_box();
    for (i, b) in bytemuck::bytes_of_mut(&mut *v).iter_mut().enumerate() {
        *b = (i as u32).wrapping_mul(2_654_435_761).rotate_left(7) as u8 & 1;
    }
    v
}

fn initial_outputs() -> Box<OutputSnapshot> {
    let mut snap: Box<OutputSnapshot> = patterned();
    snap.cycle = 1;
    // A program with every table 1024 long (points past them answer 0x02).
    snap.sizes = shared_abi::sizes::ImageSizes::LEGACY;
    snap
}

impl ImagePort for ModelPlc {
    fn cycle(&self) -> u64 {
        self.0.cycle()
    }

    fn state(&self) -> Option<PlcState> {
        self.0.state()
    }

    fn outputs(&self) -> Arc<OutputSnapshot> {
        self.0.outputs()
    }

    fn read_inputs(&self, f: &mut dyn FnMut(&InputImage)) -> bool {
        self.0.read_inputs(f)
    }

    fn update_inputs(&self, _f: &mut dyn FnMut(&mut InputImage)) -> Result<(), PortError> {
        panic!("the Modbus server never changes inputs");
    }

    fn write(&self, writes: &[(IecAddress, u64)]) -> Result<WriteTicket, PortError> {
        assert!(writes.len() <= WriteRing::CAPACITY, "{} writes exceed rt-core's write queue", writes.len());
        for &(addr, value) in writes {
            assert!(addr.area() != Area::Input, "the server writes an input: {addr}");
            assert!(addr.check_value(value).is_ok(), "{addr} cannot hold {value}");
        }
        self.0.write(writes)
    }

    fn wait_applied(&self, ticket: WriteTicket, timeout: Duration) -> PortFuture<'_, u64> {
        self.0.wait_applied(ticket, timeout)
    }

    fn wait_cycle_after(&self, cycle: u64, timeout: Duration) -> PortFuture<'_, u64> {
        self.0.wait_cycle_after(cycle, timeout)
    }
}
