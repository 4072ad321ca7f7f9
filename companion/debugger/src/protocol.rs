//! The Editor's debug PDUs, as a pure codec: hex text in and out, requests parsed for each
//! addressing family, replies built byte for byte. Nothing here touches the PLC.
//!
//! Two families share the function codes 0x41–0x45 and the status bytes:
//!
//! - [`Family::FlatIndex`] (Editor ≤ 4.1.4, MatIEC programs): variables are a flat u16 debug
//!   index (the position in the bundle's `debug.c` table).
//! - [`Family::ArrayElement`] (Editor ≥ 4.2, STruC++ programs): variables are `(array u8,
//!   element u16)` pairs (the bundle's `debug-map.json`).
//!
//! Every multi-byte header field is big-endian; variable values are little-endian (native).
//!
//! # What malformed input gets
//!
//! A request never panics and never goes unanswered. Where the PDU names a function code we
//! know, the answer is that code with an error status, so the Editor's own status handling
//! applies (it halves its batch on 0x82, reports 0x81):
//!
//! | input | flat index | (array, element) |
//! |---|---|---|
//! | not hex (odd digit count, other characters) | `success:false` | same |
//! | empty command | `success:false` (`Empty command`) | same |
//! | unknown function code `FC` | `FC\|0x80 01` (Modbus "illegal function" exception, which the newer Editor reads as "not supported") | same |
//! | request longer than 4096 bytes | `FC 82` | same |
//! | 0x42 shorter than its header (6 / 7 bytes) | `42 81` | `42 81` |
//! | 0x42 value length > 4089 or past the end of the PDU | `42 81` | `42 81` |
//! | 0x42 value longer than a forced value can be (256 bytes) | `42 82` | `42 82` |
//! | 0x42 variable that does not exist | `42 81` | `42 81` |
//! | 0x43 shorter than 5 / 6 bytes, start > end, or out of range | `43 81` | `43 81` |
//! | 0x43 range of more than 256 variables | served in part (≤ 256 values); `last` says where it stopped | same |
//! | 0x44 shorter than 3 bytes, or a count of 0 | `44 81` | `44 81` |
//! | 0x44 count above 256 / 1024 | `44 82` | `44 82` |
//! | 0x44 entries running past the end of the PDU | `44 81` | `44 81` |
//! | 0x44 index ≥ variable count | `44 81` | entry skipped (as upstream), `last` moves past it |
//! | 0x45 shorter than 3 bytes | `45 81` | `45 81` |
//! | 0x45 probe other than `DE AD` / `AD DE` | `45 81` | probe ignored |
//! | no program loaded | `success:false` (the family has no status for it) | `FC 83` |
//! | license codes 0x48 (board id), 0x49 (write license), 0x4A (read license) | `FC 85` (`LIC_UNSUPPORTED`: no license store on this runtime), with or without a program | same |
//!
//! Bytes after a complete request are ignored (the Editor's MD5 request carries two).

use std::fmt::Write as _;

/// Largest frame, request or reply.
pub const MAX_FRAME: usize = 4096;

pub const FC_INFO: u8 = 0x41;
pub const FC_SET: u8 = 0x42;
pub const FC_GET: u8 = 0x43;
pub const FC_GET_LIST: u8 = 0x44;
pub const FC_MD5: u8 = 0x45;
/// The license function codes of vendor plugin packages: board id, write, read. Upstream's
/// webserver answers them itself, never the core.
pub const FC_GET_DEVICE_ID: u8 = 0x48;
pub const FC_WRITE_LICENSE: u8 = 0x49;
pub const FC_READ_LICENSE: u8 = 0x4A;

pub const SUCCESS: u8 = 0x7E;
pub const OUT_OF_BOUNDS: u8 = 0x81;
pub const OUT_OF_MEMORY: u8 = 0x82;
/// (array, element) family only.
pub const NOT_LOADED: u8 = 0x83;
/// License codes: the target has no license store at all (a valid state, not a transport
/// failure: the newest Editor reports "not supported" for it).
pub const LIC_UNSUPPORTED: u8 = 0x85;
/// Modbus exception code for a function code the server does not implement.
pub const ILLEGAL_FUNCTION: u8 = 0x01;

/// Most indices in one flat-index 0x44 request.
pub const FLAT_LIST_MAX: usize = 256;
/// Most pairs in one (array, element) 0x44 request.
pub const PAIR_LIST_MAX: usize = 1024;
/// `FC status last(u16) tick(u32) size(u16)` in front of read data.
pub const LIST_HEADER: usize = 10;
/// Longest forced value a command slot carries (`shared_abi::msg::MAX_FORCE_BYTES`).
pub const MAX_VALUE: usize = shared_abi::msg::MAX_FORCE_BYTES;
/// Longest value length field upstream accepts in 0x42 (the frame less its header).
const MAX_SET_LEN: usize = MAX_FRAME - 7;
/// The endianness probe the Editor sends with 0x45, and the sentinel the (array, element)
/// family appends to its answer in native byte order.
pub const ENDIAN_PROBE: u16 = 0xDEAD;

/// Which PDU family a session speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// Flat u16 debug indices (MatIEC programs, Editor ≤ 4.1.4).
    FlatIndex,
    /// (array u8, element u16) pairs (STruC++ programs, Editor ≥ 4.2).
    ArrayElement,
}

/// A variable as a request names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Addr {
    Flat(u16),
    Pair { array: u8, element: u16 },
}

/// A well-formed request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// 0x41.
    Info,
    /// 0x42: force (`value` in the sender's encoding) or release.
    Set { addr: Addr, force: bool, value: Vec<u8> },
    /// 0x43: `start..=end` (of one array in the pair family; `array` is 0 for flat).
    Range { array: u8, start: u16, end: u16 },
    /// 0x44.
    List(Vec<Addr>),
    /// 0x45 with its two probe bytes.
    Md5 { probe: [u8; 2] },
    /// 0x48, 0x49 or 0x4A: a license operation (its payload is not looked at).
    License { fc: u8 },
}

impl Request {
    pub fn function_code(&self) -> u8 {
        match self {
            Request::Info => FC_INFO,
            Request::Set { .. } => FC_SET,
            Request::Range { .. } => FC_GET,
            Request::List(_) => FC_GET_LIST,
            Request::Md5 { .. } => FC_MD5,
            Request::License { fc } => *fc,
        }
    }
}

/// Why a PDU is not a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rejected {
    /// Nothing at all: there is no function code to answer with.
    Empty,
    /// The protocol's answer to it, ready to send.
    Reply(Vec<u8>),
}

/// Why a command string is not hex.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HexError {
    OddDigits,
    NotHex(char),
}

impl std::fmt::Display for HexError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HexError::OddDigits => f.write_str("odd number of hex digits"),
            HexError::NotHex(c) => write!(f, "{c:?} is not a hex digit"),
        }
    }
}

/// Parses the command text. Whitespace is ignored and digits are read in pairs, as the
/// upstream runtime reads them, so `45 DE AD 00 00`, `45dead0000` and lower case all work.
pub fn decode_hex(text: &str) -> Result<Vec<u8>, HexError> {
    let mut out = Vec::with_capacity(text.len() / 3 + 1);
    let mut high: Option<u8> = None;
    for c in text.chars() {
        if c.is_ascii_whitespace() {
            continue;
        }
        let digit = c.to_digit(16).ok_or(HexError::NotHex(c))? as u8;
        match high.take() {
            None => high = Some(digit),
            Some(h) => out.push(h << 4 | digit),
        }
    }
    if high.is_some() {
        return Err(HexError::OddDigits);
    }
    Ok(out)
}

/// Upper-case two-digit bytes separated by single spaces: the Editor splits on `' '` and
/// would read an empty token as NaN.
pub fn encode_hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        // Writing to a String cannot fail.
        let _ = write!(s, "{b:02X}");
    }
    s
}

/// `FC status`.
pub fn status(fc: u8, status: u8) -> Vec<u8> {
    vec![fc, status]
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Parses a PDU of `family`.
pub fn parse(family: Family, pdu: &[u8]) -> Result<Request, Rejected> {
    let Some(&fc) = pdu.first() else { return Err(Rejected::Empty) };
    let fail = |s: u8| Err(Rejected::Reply(status(fc, s)));
    let license = (FC_GET_DEVICE_ID..=FC_READ_LICENSE).contains(&fc);
    if !(FC_INFO..=FC_MD5).contains(&fc) && !license {
        return Err(Rejected::Reply(vec![fc | 0x80, ILLEGAL_FUNCTION]));
    }
    if pdu.len() > MAX_FRAME {
        return fail(OUT_OF_MEMORY);
    }
    if license {
        return Ok(Request::License { fc });
    }
    match (fc, family) {
        (FC_INFO, _) => Ok(Request::Info),
        (FC_SET, _) => {
            // flat: 42 II II FF LL LL v… ; pairs: 42 AA EE EE FF LL LL v…
            let (addr, at) = match family {
                Family::FlatIndex => match be16(pdu, 1) {
                    Some(i) => (Addr::Flat(i), 3),
                    None => return fail(OUT_OF_BOUNDS),
                },
                Family::ArrayElement => match (pdu.get(1), be16(pdu, 2)) {
                    (Some(&array), Some(element)) => (Addr::Pair { array, element }, 4),
                    _ => return fail(OUT_OF_BOUNDS),
                },
            };
            let (Some(&flag), Some(len)) = (pdu.get(at), be16(pdu, at + 1)) else {
                return fail(OUT_OF_BOUNDS);
            };
            let len = len as usize;
            let start = at + 3;
            if len > MAX_SET_LEN {
                return fail(OUT_OF_BOUNDS);
            }
            let Some(value) = pdu.get(start..start + len) else { return fail(OUT_OF_BOUNDS) };
            let force = flag != 0;
            if force && len > MAX_VALUE {
                return fail(OUT_OF_MEMORY);
            }
            Ok(Request::Set { addr, force, value: if force { value.to_vec() } else { Vec::new() } })
        }
        (FC_GET, Family::FlatIndex) => match (be16(pdu, 1), be16(pdu, 3)) {
            (Some(start), Some(end)) if start <= end => Ok(Request::Range { array: 0, start, end }),
            _ => fail(OUT_OF_BOUNDS),
        },
        (FC_GET, Family::ArrayElement) => match (pdu.get(1), be16(pdu, 2), be16(pdu, 4)) {
            (Some(&array), Some(start), Some(end)) if start <= end => Ok(Request::Range { array, start, end }),
            _ => fail(OUT_OF_BOUNDS),
        },
        (FC_GET_LIST, _) => {
            let Some(n) = be16(pdu, 1) else { return fail(OUT_OF_BOUNDS) };
            let n = n as usize;
            let (max, width) = match family {
                Family::FlatIndex => (FLAT_LIST_MAX, 2),
                Family::ArrayElement => (PAIR_LIST_MAX, 3),
            };
            if n == 0 {
                return fail(OUT_OF_BOUNDS);
            }
            if n > max {
                return fail(OUT_OF_MEMORY);
            }
            let Some(body) = pdu.get(3..3 + n * width) else { return fail(OUT_OF_BOUNDS) };
            let addrs = body
                .chunks_exact(width)
                .map(|c| match family {
                    Family::FlatIndex => Addr::Flat(u16::from_be_bytes([c[0], c[1]])),
                    Family::ArrayElement => Addr::Pair { array: c[0], element: u16::from_be_bytes([c[1], c[2]]) },
                })
                .collect();
            Ok(Request::List(addrs))
        }
        (FC_MD5, _) => match (pdu.get(1), pdu.get(2)) {
            (Some(&a), Some(&b)) => Ok(Request::Md5 { probe: [a, b] }),
            _ => fail(OUT_OF_BOUNDS),
        },
        _ => Err(Rejected::Reply(vec![fc | 0x80, ILLEGAL_FUNCTION])),
    }
}

/// How forced numeric values from this session are encoded, as the flat family's 0x45
/// probe says. `None` for a probe that is neither order (answered `45 81`).
///
/// The Editor writes `DE AD` big-endian; read as a little-endian u16 that is 0xADDE, i.e.
/// "the sender's order is the reverse of ours": its numbers arrive big-endian.
pub fn probe_says_big_endian(probe: [u8; 2]) -> Option<bool> {
    match u16::from_be_bytes(probe) {
        ENDIAN_PROBE => Some(true),
        0xADDE => Some(false),
        _ => None,
    }
}

/// The answer to every license code: `FC 85`, no license store here. The newest Editor
/// reads it as "unsupported" for all three (board id, write, read), the end of its flow.
pub fn license_not_supported(fc: u8) -> Vec<u8> {
    status(fc, LIC_UNSUPPORTED)
}

/// Flat 0x41 answer: `41 <count u16>`, no status byte (as the MatIEC-era runtime).
pub fn info_flat(var_count: u32) -> Vec<u8> {
    let n = var_count.min(u16::MAX as u32) as u16;
    let [h, l] = n.to_be_bytes();
    vec![FC_INFO, h, l]
}

/// (array, element) 0x41 answer: `41 <arrays u8> 7E` then each array's length (u16).
pub fn info_pairs(group_len: &[u32]) -> Vec<u8> {
    let groups = &group_len[..group_len.len().min(u8::MAX as usize)];
    let mut out = Vec::with_capacity(3 + 2 * groups.len());
    out.extend_from_slice(&[FC_INFO, groups.len() as u8, SUCCESS]);
    for &len in groups {
        out.extend_from_slice(&(len.min(u16::MAX as u32) as u16).to_be_bytes());
    }
    out
}

/// Flat 0x45 answer: `45 7E` + the MD5 text and nothing more — the Editor ≤ 4.1.4 decodes
/// everything after the status as the MD5.
pub fn md5_flat(md5: &[u8]) -> Vec<u8> {
    let mut out = vec![FC_MD5, SUCCESS];
    out.extend_from_slice(md5);
    out
}

/// (array, element) 0x45 answer: `45 7E` + MD5 + 0xDEAD in this host's byte order; the
/// Editor ≥ 4.2 strips the last two bytes and learns the target's byte order from them.
pub fn md5_pairs(md5: &[u8]) -> Vec<u8> {
    let mut out = md5_flat(md5);
    out.extend_from_slice(&ENDIAN_PROBE.to_ne_bytes());
    out
}

/// Builds a 0x43 / 0x44 answer: `FC 7E last tick size data`, never longer than
/// [`MAX_FRAME`]. `last` is whatever marker the caller gives the last item it included
/// (a debug index in the flat family, a request position in the pair family).
pub struct ListReply {
    buf: Vec<u8>,
    last: u16,
    full: bool,
}

impl ListReply {
    pub fn new(fc: u8, tick: u32, initial_last: u16) -> Self {
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(&[fc, SUCCESS, 0, 0]);
        buf.extend_from_slice(&tick.to_be_bytes());
        buf.extend_from_slice(&[0, 0]);
        ListReply { buf, last: initial_last, full: false }
    }

    /// Appends a value; false (and nothing appended, now or later) once it would not fit.
    pub fn push(&mut self, marker: u16, value: &[u8]) -> bool {
        if self.full || self.buf.len() + value.len() > MAX_FRAME {
            self.full = true;
            return false;
        }
        self.buf.extend_from_slice(value);
        self.last = marker;
        true
    }

    /// Passes over an item that has no value (pair family: unknown or empty variables),
    /// so the Editor resumes after it.
    pub fn skip(&mut self, marker: u16) {
        if !self.full {
            self.last = marker;
        }
    }

    pub fn is_full(&self) -> bool {
        self.full
    }

    pub fn finish(mut self) -> Vec<u8> {
        let size = (self.buf.len() - LIST_HEADER) as u16;
        self.buf[2..4].copy_from_slice(&self.last.to_be_bytes());
        self.buf[8..10].copy_from_slice(&size.to_be_bytes());
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        decode_hex(s).unwrap()
    }

    fn reply(family: Family, s: &str) -> Vec<u8> {
        match parse(family, &hex(s)) {
            Err(Rejected::Reply(r)) => r,
            other => panic!("{s}: expected an error reply, got {other:?}"),
        }
    }

    #[test]
    fn hex_round_trips_in_the_editors_format() {
        assert_eq!(encode_hex(&[0x45, 0x7E, 0x0a, 0xff]), "45 7E 0A FF");
        assert_eq!(encode_hex(&[]), "");
        assert_eq!(hex("45 DE AD 00 00"), [0x45, 0xDE, 0xAD, 0, 0]);
        assert_eq!(hex("45dead0000"), [0x45, 0xDE, 0xAD, 0, 0]);
        assert_eq!(hex("  44\t00 01\n00 05 "), [0x44, 0, 1, 0, 5]);
        assert_eq!(decode_hex("4"), Err(HexError::OddDigits));
        assert_eq!(decode_hex("4G"), Err(HexError::NotHex('G')));
        assert_eq!(decode_hex("45 DE AD 00 0"), Err(HexError::OddDigits));
        assert_eq!(decode_hex(""), Ok(vec![]));
    }

    #[test]
    fn md5_request_and_answers_are_byte_exact() {
        let req = parse(Family::FlatIndex, &hex("45 DE AD 00 00")).unwrap();
        assert_eq!(req, Request::Md5 { probe: [0xDE, 0xAD] });
        assert_eq!(probe_says_big_endian([0xDE, 0xAD]), Some(true));
        assert_eq!(probe_says_big_endian([0xAD, 0xDE]), Some(false));
        assert_eq!(probe_says_big_endian([0, 0]), None);
        let md5 = b"0123456789abcdef0123456789abcdef";
        assert_eq!(
            encode_hex(&md5_flat(md5)),
            "45 7E 30 31 32 33 34 35 36 37 38 39 61 62 63 64 65 66 30 31 32 33 34 35 36 37 38 39 61 62 63 64 65 66"
        );
        let b = md5_pairs(md5);
        assert_eq!(b.len(), 36);
        assert_eq!(&b[34..], &0xDEADu16.to_ne_bytes());
        #[cfg(target_endian = "little")]
        assert_eq!(&b[34..], &[0xAD, 0xDE]);
        assert_eq!(reply(Family::FlatIndex, "45 DE"), [0x45, 0x81]);
        assert_eq!(reply(Family::ArrayElement, "45"), [0x45, 0x81]);
    }

    #[test]
    fn set_requests_of_both_families() {
        // Release as the Editor sends it: length 1, one zero byte.
        assert_eq!(
            parse(Family::FlatIndex, &hex("42 00 05 00 00 01 00")).unwrap(),
            Request::Set { addr: Addr::Flat(5), force: false, value: vec![] }
        );
        // Force a REAL 1.5 (big-endian 3F C0 00 00).
        assert_eq!(
            parse(Family::FlatIndex, &hex("42 00 03 01 00 04 3F C0 00 00")).unwrap(),
            Request::Set { addr: Addr::Flat(3), force: true, value: vec![0x3F, 0xC0, 0, 0] }
        );
        assert_eq!(
            parse(Family::ArrayElement, &hex("42 01 00 02 01 00 01 01")).unwrap(),
            Request::Set { addr: Addr::Pair { array: 1, element: 2 }, force: true, value: vec![1] }
        );
        // A release without the pad byte is still a release.
        assert_eq!(
            parse(Family::FlatIndex, &hex("42 00 05 00 00 00")).unwrap(),
            Request::Set { addr: Addr::Flat(5), force: false, value: vec![] }
        );
        assert_eq!(reply(Family::FlatIndex, "42 00 05 01 00"), [0x42, 0x81], "short header");
        assert_eq!(reply(Family::FlatIndex, "42 00 05 01 00 04 01 02"), [0x42, 0x81], "value overruns");
        assert_eq!(reply(Family::ArrayElement, "42 00 00 05 01 00"), [0x42, 0x81], "short header");
        assert_eq!(reply(Family::FlatIndex, "42 00 05 01 0F FA"), [0x42, 0x81], "length above 4089");
        let mut long = hex("42 00 05 01 01 01");
        long.extend(std::iter::repeat_n(0u8, 257));
        assert_eq!(parse(Family::FlatIndex, &long), Err(Rejected::Reply(vec![0x42, 0x82])), "value too long");
    }

    #[test]
    fn list_requests_and_their_limits() {
        assert_eq!(
            parse(Family::FlatIndex, &hex("44 00 03 00 00 00 01 00 05")).unwrap(),
            Request::List(vec![Addr::Flat(0), Addr::Flat(1), Addr::Flat(5)])
        );
        assert_eq!(
            parse(Family::ArrayElement, &hex("44 00 02 00 00 01 01 00 00")).unwrap(),
            Request::List(vec![Addr::Pair { array: 0, element: 1 }, Addr::Pair { array: 1, element: 0 }])
        );
        assert_eq!(reply(Family::FlatIndex, "44 00"), [0x44, 0x81]);
        assert_eq!(reply(Family::FlatIndex, "44 00 00"), [0x44, 0x81], "empty list");
        assert_eq!(reply(Family::FlatIndex, "44 00 03 00 00 00 01"), [0x44, 0x81], "count overruns the frame");
        assert_eq!(reply(Family::ArrayElement, "44 00 02 00 00 01 01 00"), [0x44, 0x81]);
        let mut max = vec![0x44, 0x01, 0x00];
        max.extend(std::iter::repeat_n(0u8, 512));
        assert!(parse(Family::FlatIndex, &max).is_ok(), "256 indices are allowed");
        assert_eq!(reply(Family::FlatIndex, "44 01 01"), [0x44, 0x82], "257 indices");
        assert_eq!(reply(Family::ArrayElement, "44 04 01"), [0x44, 0x82], "1025 pairs");
    }

    #[test]
    fn range_requests() {
        assert_eq!(
            parse(Family::FlatIndex, &hex("43 00 01 00 04")).unwrap(),
            Request::Range { array: 0, start: 1, end: 4 }
        );
        assert_eq!(
            parse(Family::ArrayElement, &hex("43 02 00 01 00 04")).unwrap(),
            Request::Range { array: 2, start: 1, end: 4 }
        );
        assert_eq!(reply(Family::FlatIndex, "43 00 04 00 01"), [0x43, 0x81], "start > end");
        assert_eq!(reply(Family::FlatIndex, "43 00 04"), [0x43, 0x81]);
        assert_eq!(reply(Family::ArrayElement, "43 00 00 00 00"), [0x43, 0x81]);
    }

    #[test]
    fn license_codes_are_requests_answered_not_supported() {
        for (text, fc) in [("48", 0x48), ("49 00 62 AB", 0x49), ("4A", 0x4A)] {
            for family in [Family::FlatIndex, Family::ArrayElement] {
                let req = parse(family, &hex(text)).unwrap();
                assert_eq!(req, Request::License { fc });
                assert_eq!(req.function_code(), fc);
            }
            assert_eq!(license_not_supported(fc), [fc, 0x85]);
        }
        assert_eq!(encode_hex(&license_not_supported(FC_READ_LICENSE)), "4A 85");
    }

    #[test]
    fn unknown_codes_get_the_modbus_exception_and_oversized_frames_0x82() {
        assert_eq!(reply(Family::FlatIndex, "4B 01"), [0xCB, 0x01], "run/stop over the debug channel: not here");
        assert_eq!(reply(Family::FlatIndex, "46"), [0xC6, 0x01]);
        assert_eq!(reply(Family::ArrayElement, "03"), [0x83, 0x01]);
        assert_eq!(reply(Family::FlatIndex, "FF"), [0xFF, 0x01]);
        assert_eq!(parse(Family::FlatIndex, &[]), Err(Rejected::Empty));
        let mut big = vec![0x41];
        big.extend(std::iter::repeat_n(0u8, MAX_FRAME));
        assert_eq!(parse(Family::FlatIndex, &big), Err(Rejected::Reply(vec![0x41, 0x82])));
        assert_eq!(parse(Family::FlatIndex, &[0x41, 0x99]), Ok(Request::Info), "trailing bytes ignored");
    }

    #[test]
    fn info_answers() {
        assert_eq!(info_flat(7), [0x41, 0x00, 0x07]);
        assert_eq!(info_flat(70_000), [0x41, 0xFF, 0xFF]);
        assert_eq!(info_pairs(&[5, 10, 7]), [0x41, 3, 0x7E, 0, 5, 0, 10, 0, 7]);
    }

    #[test]
    fn list_reply_layout_and_frame_limit() {
        let mut r = ListReply::new(FC_GET_LIST, 0x0102_0304, 0);
        assert!(r.push(3, &[0xAA, 0xBB]));
        assert!(r.push(9, &[0xCC]));
        assert_eq!(encode_hex(&r.finish()), "44 7E 00 09 01 02 03 04 00 03 AA BB CC");

        // 40 STRINGs of 127 bytes: 10 + 32 * 127 = 4074 fits, a 33rd would not.
        let mut r = ListReply::new(FC_GET_LIST, 1, 0);
        let s = [0u8; 127];
        let mut included = 0;
        for i in 0..40u16 {
            if !r.push(100 + i, &s) {
                break;
            }
            included += 1;
        }
        assert_eq!(included, 32);
        assert!(r.is_full());
        assert!(!r.push(500, &[1]), "nothing more once full, even if it would fit");
        r.skip(600);
        let b = r.finish();
        assert!(b.len() <= MAX_FRAME);
        assert_eq!(b.len(), 10 + 32 * 127);
        assert_eq!(u16::from_be_bytes([b[2], b[3]]), 131, "last = marker of the last included value");
        assert_eq!(u16::from_be_bytes([b[8], b[9]]) as usize, 32 * 127);

        let mut r = ListReply::new(FC_GET_LIST, 1, 0);
        r.skip(0);
        r.push(1, &[7]);
        r.skip(2);
        let b = r.finish();
        assert_eq!(u16::from_be_bytes([b[2], b[3]]), 2, "skipped entries move `last` on");
    }

    /// A small deterministic generator, so the test needs no dependency.
    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn random_bytes_never_panic_and_always_get_an_answer() {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        for round in 0..200_000 {
            let len = (rng.next() % 24) as usize + if round % 100 == 0 { 4090 } else { 0 };
            let mut pdu: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            if let Some(first) = pdu.first_mut() {
                // Mostly known codes, so the parsers get exercised.
                if !rng.next().is_multiple_of(4) {
                    *first = 0x41 + (rng.next() % 10) as u8;
                }
            }
            for family in [Family::FlatIndex, Family::ArrayElement] {
                match parse(family, &pdu) {
                    Ok(req) => assert_eq!(req.function_code(), pdu[0]),
                    Err(Rejected::Empty) => assert!(pdu.is_empty()),
                    Err(Rejected::Reply(r)) => {
                        assert_eq!(r.len(), 2);
                        assert!(r[0] == pdu[0] || r[0] == pdu[0] | 0x80);
                    }
                }
            }
            let text: String = pdu.iter().map(|&b| (b % 96 + 32) as char).collect();
            let _ = decode_hex(&text);
        }
    }
}
