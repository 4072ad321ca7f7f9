//! The S7comm PDU: header, the S7ANY item addresses of read-var/write-var, the data
//! items of a write, and the replies. Every length is checked against the bytes present;
//! parsing allocates nothing.

/// Protocol id, first byte of every S7 PDU.
pub const PROTOCOL_ID: u8 = 0x32;

/// Header length of a job or userdata PDU; an ack-data PDU adds the error class and code.
pub const HEADER: usize = 10;
pub const ACK_HEADER: usize = 12;

/// PDU types (ROSCTR).
pub mod rosctr {
    pub const JOB: u8 = 0x01;
    pub const ACK_DATA: u8 = 0x03;
    pub const USERDATA: u8 = 0x07;
}

/// Job functions.
pub mod function {
    pub const READ_VAR: u8 = 0x04;
    pub const WRITE_VAR: u8 = 0x05;
    pub const SETUP_COMMUNICATION: u8 = 0xF0;
}

/// Return codes of a read or write item.
pub mod item {
    pub const HARDWARE_FAULT: u8 = 0x01;
    pub const ACCESS_DENIED: u8 = 0x03;
    pub const ADDRESS_OUT_OF_RANGE: u8 = 0x05;
    pub const TYPE_NOT_SUPPORTED: u8 = 0x06;
    pub const SIZE_MISMATCH: u8 = 0x07;
    pub const OBJECT_DOES_NOT_EXIST: u8 = 0x0A;
    pub const SUCCESS: u8 = 0xFF;
}

/// Header errors (class << 8 | code) of an ack-data reply.
pub mod error {
    /// "Service not implemented on the module or a frame error was reported".
    pub const FUNCTION_NOT_AVAILABLE: u16 = 0x8104;
    /// "S7 protocol error: wrong frames" (also a reply that would not fit the PDU).
    pub const WRONG_FRAMES: u16 = 0x8500;
}

/// Transport sizes of an item address (what the client asks for).
pub mod ts {
    pub const BIT: u8 = 0x01;
    pub const BYTE: u8 = 0x02;
    pub const CHAR: u8 = 0x03;
    pub const WORD: u8 = 0x04;
    pub const INT: u8 = 0x05;
    pub const DWORD: u8 = 0x06;
    pub const DINT: u8 = 0x07;
    pub const REAL: u8 = 0x08;
    pub const COUNTER: u8 = 0x1C;
    pub const TIMER: u8 = 0x1D;
}

/// Transport sizes of a data item (how its length is counted).
pub mod data_ts {
    pub const BIT: u8 = 0x03;
    pub const BYTE: u8 = 0x04;
    pub const INT: u8 = 0x05;
    pub const DINT: u8 = 0x06;
    pub const REAL: u8 = 0x07;
    pub const OCTET: u8 = 0x09;
}

/// A PDU that is not well formed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PduError {
    #[error("not an S7 PDU (protocol id {0:#04x})")]
    ProtocolId(u8),
    #[error("S7 header lengths do not match the PDU")]
    Lengths,
    #[error("malformed parameters")]
    Params,
    #[error("malformed data")]
    Data,
}

/// A parsed PDU header with its parameter and data parts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pdu<'a> {
    pub rosctr: u8,
    pub pdu_ref: u16,
    pub params: &'a [u8],
    pub data: &'a [u8],
}

/// Parses a job or userdata PDU (the only ones a client sends); the two length fields
/// must account for every byte.
pub fn parse(pdu: &[u8]) -> Result<Pdu<'_>, PduError> {
    if pdu.len() < HEADER {
        return Err(pdu.first().map_or(PduError::Lengths, |&p| {
            if p == PROTOCOL_ID { PduError::Lengths } else { PduError::ProtocolId(p) }
        }));
    }
    if pdu[0] != PROTOCOL_ID {
        return Err(PduError::ProtocolId(pdu[0]));
    }
    let plen = u16::from_be_bytes([pdu[6], pdu[7]]) as usize;
    let dlen = u16::from_be_bytes([pdu[8], pdu[9]]) as usize;
    if HEADER + plen + dlen != pdu.len() {
        return Err(PduError::Lengths);
    }
    Ok(Pdu {
        rosctr: pdu[1],
        pdu_ref: u16::from_be_bytes([pdu[4], pdu[5]]),
        params: &pdu[HEADER..HEADER + plen],
        data: &pdu[HEADER + plen..],
    })
}

/// One item of a read-var or write-var request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ItemSpec {
    /// An S7ANY address.
    Any(AnyAddress),
    /// Another addressing syntax (symbolic, NCK, DBREAD …): not served.
    Unsupported,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnyAddress {
    pub transport_size: u8,
    pub count: u16,
    pub db: u16,
    pub area: u8,
    /// Bit address: byte * 8 + bit (for timers and counters, their number).
    pub address: u32,
}

impl AnyAddress {
    pub fn byte(&self) -> usize {
        (self.address >> 3) as usize
    }

    pub fn bit(&self) -> u8 {
        (self.address & 7) as u8
    }
}

/// Iterates over the items of read-var/write-var parameters after checking them whole:
/// `[function][count]` then `count` times `[0x12][len][len bytes]`, nothing after.
#[derive(Clone)]
pub struct Items<'a> {
    rest: &'a [u8],
    left: u8,
}

impl<'a> Items<'a> {
    pub fn parse(params: &'a [u8]) -> Result<Items<'a>, PduError> {
        let [_function, count, rest @ ..] = params else { return Err(PduError::Params) };
        if *count == 0 {
            return Err(PduError::Params);
        }
        // Check the whole list first, so a bad tail never half-executes a request.
        let mut check = rest;
        for _ in 0..*count {
            let [0x12, len, tail @ ..] = check else { return Err(PduError::Params) };
            let len = *len as usize;
            if len == 0 || len > tail.len() {
                return Err(PduError::Params);
            }
            check = &tail[len..];
        }
        if !check.is_empty() {
            return Err(PduError::Params);
        }
        Ok(Items { rest, left: *count })
    }

    pub fn item_count(&self) -> usize {
        self.left as usize
    }
}

impl Iterator for Items<'_> {
    type Item = ItemSpec;

    fn next(&mut self) -> Option<ItemSpec> {
        if self.left == 0 {
            return None;
        }
        let [0x12, len, tail @ ..] = self.rest else { return None };
        let (spec, rest) = tail.split_at((*len as usize).min(tail.len()));
        self.rest = rest;
        self.left -= 1;
        Some(match spec {
            [0x10, ts, c0, c1, d0, d1, area, a0, a1, a2] => ItemSpec::Any(AnyAddress {
                transport_size: *ts,
                count: u16::from_be_bytes([*c0, *c1]),
                db: u16::from_be_bytes([*d0, *d1]),
                area: *area,
                address: u32::from_be_bytes([0, *a0, *a1, *a2]),
            }),
            _ => ItemSpec::Unsupported,
        })
    }
}

/// One data item of a write-var request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataItem<'a> {
    pub transport_size: u8,
    pub bytes: &'a [u8],
}

/// Iterates over the `count` data items of a write-var request after checking them
/// whole: `[0x00][ts][length][bytes]`, the length in bits for bit/byte/int sizes and in
/// bytes otherwise, a fill byte after an odd length except after the last item.
#[derive(Clone)]
pub struct DataItems<'a> {
    rest: &'a [u8],
    left: usize,
}

fn data_len_bytes(ts: u8, len: u16) -> Option<usize> {
    let len = len as usize;
    match ts {
        data_ts::BIT => Some(len.div_ceil(8)),
        data_ts::BYTE | data_ts::INT => len.is_multiple_of(8).then_some(len / 8),
        data_ts::DINT | data_ts::REAL | data_ts::OCTET => Some(len),
        _ => None,
    }
}

impl<'a> DataItems<'a> {
    pub fn parse(data: &'a [u8], count: usize) -> Result<DataItems<'a>, PduError> {
        let mut check = data;
        for i in 0..count {
            let [_rc, ts, l0, l1, tail @ ..] = check else { return Err(PduError::Data) };
            let n = data_len_bytes(*ts, u16::from_be_bytes([*l0, *l1])).ok_or(PduError::Data)?;
            let fill = usize::from(n % 2 == 1 && i + 1 < count);
            if n + fill > tail.len() {
                return Err(PduError::Data);
            }
            check = &tail[n + fill..];
        }
        if !check.is_empty() {
            return Err(PduError::Data);
        }
        Ok(DataItems { rest: data, left: count })
    }
}

impl<'a> Iterator for DataItems<'a> {
    type Item = DataItem<'a>;

    fn next(&mut self) -> Option<DataItem<'a>> {
        if self.left == 0 {
            return None;
        }
        let [_rc, ts, l0, l1, tail @ ..] = self.rest else { return None };
        let n = data_len_bytes(*ts, u16::from_be_bytes([*l0, *l1]))?.min(tail.len());
        self.left -= 1;
        let fill = usize::from(n % 2 == 1 && self.left > 0).min(tail.len() - n);
        let item = DataItem { transport_size: *ts, bytes: &tail[..n] };
        self.rest = &tail[n + fill..];
        Some(item)
    }
}

/// Starts an ack-data reply to `pdu_ref` in `out`; [`finish`] fills in the lengths.
pub fn begin_ack(out: &mut Vec<u8>, pdu_ref: u16, error: u16) {
    out.clear();
    out.extend_from_slice(&[PROTOCOL_ID, rosctr::ACK_DATA, 0, 0]);
    out.extend_from_slice(&pdu_ref.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&error.to_be_bytes());
}

/// Starts a userdata reply to `pdu_ref` in `out`; [`finish`] fills in the lengths.
pub fn begin_userdata(out: &mut Vec<u8>, pdu_ref: u16) {
    out.clear();
    out.extend_from_slice(&[PROTOCOL_ID, rosctr::USERDATA, 0, 0]);
    out.extend_from_slice(&pdu_ref.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
}

/// Sets the parameter and data lengths of a reply begun with [`begin_ack`] or
/// [`begin_userdata`]: `params` bytes follow the header, the rest is data.
pub fn finish(out: &mut [u8], params: usize) {
    let header = if out[1] == rosctr::ACK_DATA { ACK_HEADER } else { HEADER };
    let data = out.len() - header - params;
    out[6..8].copy_from_slice(&(params as u16).to_be_bytes());
    out[8..10].copy_from_slice(&(data as u16).to_be_bytes());
}

/// A whole ack-data error reply: header error and `[function, 0]` as parameters.
pub fn push_job_error(out: &mut Vec<u8>, pdu_ref: u16, function: u8, error: u16) {
    begin_ack(out, pdu_ref, error);
    out.extend_from_slice(&[function, 0]);
    finish(out, 2);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// snap7's read of DB1.DBB0, 4 bytes.
    const READ: [u8; 24] = [0x32, 1, 0, 0, 0, 7, 0, 14, 0, 0, 4, 1, 0x12, 0x0A, 0x10, 2, 0, 4, 0, 1, 0x84, 0, 0, 0];

    #[test]
    fn parses_a_read_request() {
        let pdu = parse(&READ).unwrap();
        assert_eq!((pdu.rosctr, pdu.pdu_ref, pdu.params.len(), pdu.data.len()), (1, 7, 14, 0));
        let mut items = Items::parse(pdu.params).unwrap();
        assert_eq!(items.item_count(), 1);
        assert_eq!(
            items.next(),
            Some(ItemSpec::Any(AnyAddress { transport_size: 2, count: 4, db: 1, area: 0x84, address: 0 }))
        );
        assert_eq!(items.next(), None);
    }

    #[test]
    fn every_truncation_is_refused() {
        for n in 0..READ.len() {
            assert!(parse(&READ[..n]).is_err(), "{n} bytes");
        }
        // A header that agrees with a truncated parameter part.
        let mut short = READ[..23].to_vec();
        short[7] = 13;
        let pdu = parse(&short).unwrap();
        assert_eq!(Items::parse(pdu.params).err(), Some(PduError::Params));
        assert_eq!(Items::parse(&[4, 0]).err(), Some(PduError::Params), "no items");
    }

    #[test]
    fn data_items_with_fill_bytes() {
        // A 1-byte item (fill byte follows), then a 2-byte one (last: no fill).
        let data = [0, 4, 0, 8, 0xAA, 0, 0, 4, 0, 16, 1, 2];
        let items: Vec<_> = DataItems::parse(&data, 2).unwrap().collect();
        assert_eq!(
            items,
            [DataItem { transport_size: 4, bytes: &[0xAA] }, DataItem { transport_size: 4, bytes: &[1, 2] }]
        );
        assert_eq!(DataItems::parse(&data[..11], 2).err(), Some(PduError::Data));
        assert_eq!(DataItems::parse(&data, 1).err(), Some(PduError::Data), "bytes left over");
        assert_eq!(DataItems::parse(&[0, 4, 0, 7, 1], 1).err(), Some(PduError::Data), "bits not a whole byte");
        let bit = [0, 3, 0, 1, 1];
        assert_eq!(DataItems::parse(&bit, 1).unwrap().next(), Some(DataItem { transport_size: 3, bytes: &[1] }));
    }
}
