//! `modbus_conf`: `conf/modbus_slave.json` and `conf/modbus_master.json` as an upload brings
//! them (`openplc_modbus::{ServerConfig, MasterConfig}::from_json`). The same text goes to
//! both parsers. A server configuration that is accepted must also be servable: a few
//! requests at the edges of its map go through the real server code.

use crate::modbus_tcp::serve_once;
use openplc_modbus::config::{MasterConfig, ServerConfig};
use openplc_modbus::map::{MAX_BITS, MAX_WORDS};
use shared_abi::image::{BITS_PER_BYTE, TABLE_CAPACITY, Width};

pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match ServerConfig::from_json(text) {
        Ok(cfg) => check_server(cfg),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
    match MasterConfig::from_json(text) {
        Ok(cfg) => check_master(&cfg),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

pub fn check_server(cfg: ServerConfig) {
    let m = cfg.map;
    for (bits, name) in [(m.qx_bits, "qx"), (m.mx_bits, "mx"), (m.ix_bits, "ix")] {
        assert!(bits <= MAX_BITS, "{name} {bits}");
    }
    for (words, name) in
        [(m.iw_count, "iw"), (m.qw_count, "qw"), (m.mw_count, "mw"), (m.md_count, "md"), (m.ml_count, "ml")]
    {
        assert!(words <= MAX_WORDS, "{name} {words}");
    }
    assert!(cfg.max_connections >= 1);
    for t in [cfg.idle_timeout, cfg.frame_timeout, cfg.write_timeout] {
        assert!(!t.is_zero());
    }
    serve_once(&cfg, &edge_requests(&cfg));
}

/// Reads and writes of the first and last point of every table, and one past the end.
fn edge_requests(cfg: &ServerConfig) -> Vec<u8> {
    let m = &cfg.map;
    let unit = cfg.unit_id.unwrap_or(1);
    let mut out = Vec::new();
    let mut tid = 0u16;
    let mut frame = |pdu: &[u8]| {
        tid += 1;
        out.extend_from_slice(&tid.to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&(pdu.len() as u16 + 1).to_be_bytes());
        out.push(unit);
        out.extend_from_slice(pdu);
    };
    let last = |n: u32| n.saturating_sub(1).min(u16::MAX as u32) as u16;
    let edge = |n: u32| [0, last(n), n.min(u16::MAX as u32) as u16];
    for a in edge(m.coils()) {
        let [h, l] = a.to_be_bytes();
        frame(&[1, h, l, 0, 1]);
        frame(&[5, h, l, 0xFF, 0]);
        frame(&[15, h, l, 0, 1, 1, 1]);
    }
    for a in edge(m.discrete_inputs()) {
        let [h, l] = a.to_be_bytes();
        frame(&[2, h, l, 0, 1]);
    }
    for a in edge(m.input_registers()) {
        let [h, l] = a.to_be_bytes();
        frame(&[4, h, l, 0, 1]);
    }
    let holding = m.holding_registers();
    for a in edge(holding).into_iter().chain([last(holding).saturating_sub(3)]) {
        let [h, l] = a.to_be_bytes();
        frame(&[3, h, l, 0, 1]);
        frame(&[6, h, l, 0x12, 0x34]);
        frame(&[16, h, l, 0, 2, 4, 0xAB, 0xCD, 0xEF, 0x01]);
        frame(&[23, h, l, 0, 1, h, l, 0, 1, 2, 0x55, 0xAA]);
    }
    out
}

pub fn check_master(cfg: &MasterConfig) {
    for dev in &cfg.devices {
        assert!(!dev.timeout.is_zero());
        assert!(!dev.name.trim().is_empty());
        for p in &dev.points {
            assert!(p.len >= 1);
            assert!(!p.period.is_zero());
            assert!(p.offset as u32 + p.wire_count() <= 65_536, "{p:?} runs past the last Modbus address");
            assert_eq!(p.function.is_bits(), p.location.width() == Width::Bit);
            let (first, room) = if p.location.width() == Width::Bit {
                (p.location.index() as u32 * BITS_PER_BYTE as u32 + p.location.bit() as u32, MAX_BITS)
            } else {
                (p.location.index() as u32, TABLE_CAPACITY as u32)
            };
            assert!(first + p.len as u32 <= room, "{p:?} runs past the image");
        }
    }
}
