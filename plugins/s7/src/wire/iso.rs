//! ISO-on-TCP (RFC 1006): TPKT frames carrying ISO 8073 class 0 TPDUs (COTP).
//!
//! Only what an S7 CPU speaks: connection request / confirm with the TSAPs, data
//! transfer (with the end-of-TSDU bit for fragmented PDUs) and disconnect. Parsing is
//! strict: every length is checked against the bytes actually present, and anything
//! else is an error the session answers by closing the connection.

/// TPKT header: version 3, reserved 0, big-endian length of the whole frame.
pub const TPKT_HEADER: usize = 4;
const TPKT_VERSION: u8 = 3;

/// COTP TPDU codes (high nibble of the second byte).
pub const CR: u8 = 0xE0;
pub const CC: u8 = 0xD0;
pub const DR: u8 = 0x80;
pub const DC: u8 = 0xC0;
pub const DT: u8 = 0xF0;

/// Parameter codes of a connection request.
const PARAM_TPDU_SIZE: u8 = 0xC0;
const PARAM_CALLING_TSAP: u8 = 0xC1;
const PARAM_CALLED_TSAP: u8 = 0xC2;

/// The DT header: length indicator 2, code, end-of-TSDU bit + sequence number 0.
pub const DT_HEADER: usize = 3;
const EOT: u8 = 0x80;

/// Longest TSAP we echo in a connection confirm (S7 TSAPs are 2 bytes).
pub const MAX_TSAP: usize = 32;

/// Largest TPDU we agree to (the size code 0x0A); an S7 PDU of 960 bytes fits one.
pub const MAX_TPDU: usize = 1024;
/// What ISO 8073 assumes when a connection request names no TPDU size.
pub const DEFAULT_TPDU: usize = 128;

/// Why a frame or TPDU cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IsoError {
    #[error("TPKT version {0} (not 3) or non-zero reserved byte")]
    TpktVersion(u8),
    #[error("TPKT length {0} outside the allowed range")]
    TpktLength(usize),
    #[error("COTP length indicator does not fit the TPDU")]
    LengthIndicator,
    #[error("COTP parameter runs past the header")]
    Parameter,
    #[error("COTP TPDU code {0:#04x} not expected here")]
    Unexpected(u8),
    #[error("COTP class {0} is not class 0")]
    Class(u8),
}

/// The length of the frame a TPKT header announces, if it is a TPKT header for a frame of
/// at least a DT header and at most `max` bytes.
pub fn frame_len(header: [u8; TPKT_HEADER], max: usize) -> Result<usize, IsoError> {
    if header[0] != TPKT_VERSION || header[1] != 0 {
        return Err(IsoError::TpktVersion(header[0]));
    }
    let len = u16::from_be_bytes([header[2], header[3]]) as usize;
    if len < TPKT_HEADER + DT_HEADER || len > max {
        return Err(IsoError::TpktLength(len));
    }
    Ok(len)
}

fn push_tpkt_header(out: &mut Vec<u8>, len: usize) {
    out.extend_from_slice(&[TPKT_VERSION, 0]);
    out.extend_from_slice(&(len as u16).to_be_bytes());
}

/// A connection request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectRequest<'a> {
    pub src_ref: u16,
    /// The TPDU size the client proposes, in bytes (the default when it names none).
    pub tpdu_size: usize,
    /// The size code exactly as sent, to echo.
    pub tpdu_code: Option<u8>,
    pub calling_tsap: &'a [u8],
    pub called_tsap: &'a [u8],
}

/// A TPDU from the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tpdu<'a> {
    Connect(ConnectRequest<'a>),
    /// A data TPDU: `last` when this ends the S7 PDU.
    Data {
        last: bool,
        payload: &'a [u8],
    },
    Disconnect,
}

/// Parses the TPDU of a frame (the bytes after the TPKT header).
pub fn parse(tpdu: &[u8]) -> Result<Tpdu<'_>, IsoError> {
    let (&li, rest) = tpdu.split_first().ok_or(IsoError::LengthIndicator)?;
    let li = li as usize;
    if li < 2 || li > rest.len() {
        return Err(IsoError::LengthIndicator);
    }
    let header = &rest[..li];
    let code = header[0] & 0xF0;
    match code {
        DT => {
            if li != 2 {
                return Err(IsoError::LengthIndicator);
            }
            Ok(Tpdu::Data { last: header[1] & EOT != 0, payload: &rest[li..] })
        }
        CR => {
            // code, dst-ref (2), src-ref (2), class/options, parameters.
            if li < 6 {
                return Err(IsoError::LengthIndicator);
            }
            let class = header[5] >> 4;
            if class != 0 {
                return Err(IsoError::Class(class));
            }
            let mut req = ConnectRequest {
                src_ref: u16::from_be_bytes([header[3], header[4]]),
                tpdu_size: DEFAULT_TPDU,
                tpdu_code: None,
                calling_tsap: &[],
                called_tsap: &[],
            };
            let mut params = &header[6..];
            while let [code, len, tail @ ..] = params {
                let len = *len as usize;
                if len > tail.len() {
                    return Err(IsoError::Parameter);
                }
                let value = &tail[..len];
                match *code {
                    PARAM_TPDU_SIZE => {
                        let &[size] = value else { return Err(IsoError::Parameter) };
                        // Codes 7..=13 are 128..=8192 bytes.
                        if !(7..=13).contains(&size) {
                            return Err(IsoError::Parameter);
                        }
                        req.tpdu_code = Some(size);
                        req.tpdu_size = 1 << size;
                    }
                    PARAM_CALLING_TSAP => req.calling_tsap = value,
                    PARAM_CALLED_TSAP => req.called_tsap = value,
                    // Others (checksum, version, …) mean nothing to class 0 over TCP.
                    _ => {}
                }
                params = &tail[len..];
            }
            if !params.is_empty() {
                return Err(IsoError::Parameter);
            }
            Ok(Tpdu::Connect(req))
        }
        DR => Ok(Tpdu::Disconnect),
        other => Err(IsoError::Unexpected(other)),
    }
}

/// Appends a connection confirm frame; both TSAPs at most [`MAX_TSAP`] bytes.
pub fn push_connect_confirm(out: &mut Vec<u8>, req: &ConnectRequest<'_>, local_ref: u16, tpdu_code: u8) {
    let params_len = 3 + 2 + req.calling_tsap.len() + 2 + req.called_tsap.len();
    let li = 6 + params_len;
    push_tpkt_header(out, TPKT_HEADER + 1 + li);
    out.push(li as u8);
    out.push(CC);
    out.extend_from_slice(&req.src_ref.to_be_bytes());
    out.extend_from_slice(&local_ref.to_be_bytes());
    out.push(0x00);
    out.extend_from_slice(&[PARAM_TPDU_SIZE, 1, tpdu_code]);
    out.extend_from_slice(&[PARAM_CALLING_TSAP, req.calling_tsap.len() as u8]);
    out.extend_from_slice(req.calling_tsap);
    out.extend_from_slice(&[PARAM_CALLED_TSAP, req.called_tsap.len() as u8]);
    out.extend_from_slice(req.called_tsap);
}

/// Disconnect reasons (ISO 8073 §13.5.3).
pub mod reason {
    /// The TSAP names no session entity here (a rack/slot or connection type we refuse).
    pub const NOT_ATTACHED: u8 = 0x02;
    /// Class or parameters we cannot honour.
    pub const NEGOTIATION_FAILED: u8 = 0x82;
}

/// Appends a disconnect request frame (how a CPU refuses a connection request).
pub fn push_disconnect(out: &mut Vec<u8>, dst_ref: u16, local_ref: u16, reason: u8) {
    push_tpkt_header(out, TPKT_HEADER + 7);
    out.push(6);
    out.push(DR);
    out.extend_from_slice(&dst_ref.to_be_bytes());
    out.extend_from_slice(&local_ref.to_be_bytes());
    out.push(reason);
}

/// Appends `pdu` as DT frames of at most `tpdu` bytes each (one frame unless the
/// client agreed to TPDUs smaller than the PDU).
pub fn push_data(out: &mut Vec<u8>, pdu: &[u8], tpdu: usize) {
    let room = tpdu.saturating_sub(DT_HEADER).max(1);
    let mut chunks = pdu.chunks(room).peekable();
    if pdu.is_empty() {
        push_tpkt_header(out, TPKT_HEADER + DT_HEADER);
        out.extend_from_slice(&[2, DT, EOT]);
        return;
    }
    while let Some(chunk) = chunks.next() {
        let eot = if chunks.peek().is_none() { EOT } else { 0 };
        push_tpkt_header(out, TPKT_HEADER + DT_HEADER + chunk.len());
        out.extend_from_slice(&[2, DT, eot]);
        out.extend_from_slice(chunk);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What snap7's client sends for rack 0, slot 2 (called TSAP 0x0102).
    const CR_FRAME: [u8; 22] =
        [3, 0, 0, 22, 17, 0xE0, 0, 0, 0, 1, 0, 0xC0, 1, 0x0A, 0xC1, 2, 0x01, 0x00, 0xC2, 2, 0x01, 0x02];

    #[test]
    fn parses_a_snap7_connection_request_and_confirms_it() {
        assert_eq!(frame_len(CR_FRAME[..4].try_into().unwrap(), 300), Ok(22));
        let Ok(Tpdu::Connect(req)) = parse(&CR_FRAME[4..]) else { panic!("not a CR") };
        assert_eq!(req.src_ref, 1);
        assert_eq!(req.tpdu_size, 1024);
        assert_eq!(req.calling_tsap, [1, 0]);
        assert_eq!(req.called_tsap, [1, 2]);
        let mut out = Vec::new();
        push_connect_confirm(&mut out, &req, 0x4401, 0x0A);
        assert_eq!(out.len(), 22);
        assert_eq!(&out[..10], &[3, 0, 0, 22, 17, 0xD0, 0, 1, 0x44, 0x01]);
    }

    #[test]
    fn strict_lengths() {
        assert_eq!(frame_len([3, 0, 0, 6], 300), Err(IsoError::TpktLength(6)));
        assert_eq!(frame_len([3, 0, 1, 0], 255), Err(IsoError::TpktLength(256)));
        assert_eq!(frame_len([4, 0, 0, 7], 300), Err(IsoError::TpktVersion(4)));
        assert_eq!(parse(&[]), Err(IsoError::LengthIndicator));
        assert_eq!(parse(&[5, 0xF0, 0x80]), Err(IsoError::LengthIndicator));
        assert_eq!(parse(&[3, 0xF0, 0x80, 0]), Err(IsoError::LengthIndicator), "a DT header is 2 long");
        // Every truncation of the connection request is refused, none panics.
        for n in 0..CR_FRAME.len() - 4 {
            assert!(parse(&CR_FRAME[4..4 + n]).is_err(), "{n} bytes");
        }
        let mut bad_param = CR_FRAME;
        bad_param[19] = 9;
        assert_eq!(parse(&bad_param[4..]), Err(IsoError::Parameter));
        let mut class4 = CR_FRAME;
        class4[10] = 0x40;
        assert_eq!(parse(&class4[4..]), Err(IsoError::Class(4)));
        assert_eq!(parse(&[2, 0x50, 0]), Err(IsoError::Unexpected(0x50)));
    }

    #[test]
    fn data_frames_split_at_the_tpdu_size() {
        let pdu: Vec<u8> = (0..300u16).map(|i| i as u8).collect();
        let mut out = Vec::new();
        push_data(&mut out, &pdu, 128);
        // 125 + 125 + 50 bytes.
        let mut rest = &out[..];
        let mut got = Vec::new();
        let mut lasts = Vec::new();
        while !rest.is_empty() {
            let len = frame_len(rest[..4].try_into().unwrap(), 1028).unwrap();
            let Ok(Tpdu::Data { last, payload }) = parse(&rest[4..len]) else { panic!() };
            got.extend_from_slice(payload);
            lasts.push(last);
            rest = &rest[len..];
        }
        assert_eq!(got, pdu);
        assert_eq!(lasts, [false, false, true]);
    }
}
