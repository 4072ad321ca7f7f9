//! `debug_pdu`: the debugger's `debug_command` text and the PDUs of both families
//! (`openplc_debugger::protocol::{decode_hex, parse}`), and the reply builders over sizes a
//! request or the loaded program can make up.
//!
//! The input is read twice: as the command text the Editor sends (hex) and as a raw PDU.

use openplc_debugger::protocol::{
    self, Addr, FLAT_LIST_MAX, Family, ILLEGAL_FUNCTION, LIC_UNSUPPORTED, LIST_HEADER, ListReply, MAX_FRAME, MAX_VALUE,
    OUT_OF_BOUNDS, OUT_OF_MEMORY, PAIR_LIST_MAX, Rejected, Request,
};

pub fn run(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(pdu) = protocol::decode_hex(text)
    {
        assert!(pdu.len() <= text.len() / 2, "two digits per byte");
        let hex = protocol::encode_hex(&pdu);
        assert_eq!(protocol::decode_hex(&hex).as_ref(), Ok(&pdu), "hex round trip");
        assert!(!hex.contains("  ") && !hex.starts_with(' ') && !hex.ends_with(' '), "single spaces only");
        check_pdu(&pdu);
    }
    check_pdu(data);
    replies(data);
}

fn check_pdu(pdu: &[u8]) {
    for family in [Family::FlatIndex, Family::ArrayElement] {
        match protocol::parse(family, pdu) {
            Ok(req) => check_request(family, pdu, &req),
            Err(Rejected::Empty) => assert!(pdu.is_empty()),
            Err(Rejected::Reply(reply)) => {
                let fc = pdu[0];
                match reply.as_slice() {
                    &[r, ILLEGAL_FUNCTION] if r == fc | 0x80 => {}
                    &[r, OUT_OF_BOUNDS | OUT_OF_MEMORY] if r == fc => {}
                    other => panic!("{family:?}: {pdu:02X?} answered {other:02X?}"),
                }
            }
        }
    }
}

fn check_request(family: Family, pdu: &[u8], req: &Request) {
    assert_eq!(req.function_code(), pdu[0]);
    assert!(pdu.len() <= MAX_FRAME);
    let addr_ok = |a: &Addr| {
        matches!((family, a), (Family::FlatIndex, Addr::Flat(_)) | (Family::ArrayElement, Addr::Pair { .. }))
    };
    match req {
        Request::Set { addr, force, value } => {
            assert!(addr_ok(addr));
            if *force {
                assert!(value.len() <= MAX_VALUE, "a forced value fits a command slot");
            } else {
                assert!(value.is_empty());
            }
        }
        Request::Range { array, start, end } => {
            assert!(start <= end);
            if family == Family::FlatIndex {
                assert_eq!(*array, 0);
            }
        }
        Request::List(addrs) => {
            let max = if family == Family::FlatIndex { FLAT_LIST_MAX } else { PAIR_LIST_MAX };
            assert!((1..=max).contains(&addrs.len()));
            assert!(addrs.iter().all(addr_ok));
        }
        Request::License { fc } => {
            assert!((0x48..=0x4A).contains(fc));
            assert_eq!(protocol::license_not_supported(*fc), [*fc, LIC_UNSUPPORTED], "one well-formed answer");
        }
        Request::Info | Request::Md5 { .. } => {}
    }
}

/// The reply builders with value sizes, counts and markers taken from the input.
fn replies(data: &[u8]) {
    let tick = data.iter().fold(0u32, |t, &b| t.rotate_left(5) ^ b as u32);
    let mut reply = ListReply::new(protocol::FC_GET_LIST, tick, 0);
    let mut pushed = 0usize;
    for (marker, chunk) in data.chunks(7).enumerate() {
        let len = (chunk[0] as usize) * 17 % 700;
        let value = vec![chunk[0]; len];
        if chunk.len() > 1 && chunk[1] & 1 == 1 {
            reply.skip(marker as u16);
        } else if reply.push(marker as u16, &value) {
            pushed += len;
        }
    }
    let out = reply.finish();
    assert!(out.len() <= MAX_FRAME);
    assert_eq!(out.len(), LIST_HEADER + pushed);
    assert_eq!(u16::from_be_bytes([out[8], out[9]]) as usize, pushed, "size field");

    let groups: Vec<u32> = data.chunks(4).map(|c| c.iter().fold(0u32, |v, &b| v << 8 | b as u32)).collect();
    let info = protocol::info_pairs(&groups);
    assert_eq!(info.len(), 3 + 2 * groups.len().min(255));
    assert_eq!(protocol::info_flat(groups.first().copied().unwrap_or(0)).len(), 3);
    let md5 = protocol::md5_pairs(data);
    assert_eq!(md5.len(), data.len() + 4);
}
