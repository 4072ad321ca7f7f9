//! Userdata requests: SZL reads (function group 4, subfunction 1), with replies longer
//! than the PDU sent in parts the client fetches one by one. Every other group or
//! subfunction (programmer commands, cyclic data, block functions, security, clock) is
//! answered "function not available" (0x8104).

use crate::session::Service;
use crate::szl::{self, Facts};
use crate::wire::s7::{self, error};

/// The rest of an SZL reply that did not fit one PDU.
#[derive(Debug, Default)]
pub struct Pending {
    seq: u8,
    /// At most a few hundred bytes (the longest list is 0x001C).
    data: Vec<u8>,
    sent: usize,
}

/// Per-connection userdata state.
#[derive(Debug, Default)]
pub struct UserdataState {
    pending: Option<Pending>,
    last_seq: u8,
}

const GROUP_CPU: u8 = 0x4;
const SUBFUNCTION_READ_SZL: u8 = 0x01;
const TYPE_REQUEST: u8 = 0x4;
const TYPE_RESPONSE: u8 = 0x8;
/// Userdata header plus the 12-byte response parameters.
const OVERHEAD: usize = s7::HEADER + 12;

struct Request {
    group: u8,
    subfunction: u8,
    seq: u8,
}

fn begin(out: &mut Vec<u8>, pdu_ref: u16, req: &Request, seq: u8, durn: u8, more: bool, err: u16) {
    s7::begin_userdata(out, pdu_ref);
    out.extend_from_slice(&[0x00, 0x01, 0x12, 0x08, 0x12, (TYPE_RESPONSE << 4) | req.group, req.subfunction, seq]);
    out.extend_from_slice(&[durn, more as u8]);
    out.extend_from_slice(&err.to_be_bytes());
}

fn push_error(out: &mut Vec<u8>, pdu_ref: u16, req: &Request, err: u16) {
    begin(out, pdu_ref, req, req.seq, 0, false, err);
    out.extend_from_slice(&[0x0A, 0x00, 0x00, 0x00]);
    s7::finish(out, 12);
}

impl UserdataState {
    /// Answers a userdata PDU into `out`; false if it is malformed beyond an answer.
    pub fn handle(
        &mut self,
        svc: &Service,
        pdu_ref: u16,
        pdu_size: u16,
        params: &[u8],
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> bool {
        // [0x00 0x01 0x12][len][method][type|group][subfunction][seq] (+ [durn][last][error] when len is 8).
        let [0x00, 0x01, 0x12, plen, _method, type_group, subfunction, seq, ..] = *params else { return false };
        if !matches!(plen, 4 | 8) || params.len() != 4 + plen as usize {
            return false;
        }
        let req = Request { group: type_group & 0x0F, subfunction, seq };
        if type_group >> 4 != TYPE_REQUEST {
            return false;
        }
        // [return code][transport size][length][payload]: the length must cover the rest.
        let payload = match data {
            [_rc, _ts, l0, l1, rest @ ..] if u16::from_be_bytes([*l0, *l1]) as usize == rest.len() => rest,
            _ => return false,
        };
        if req.group != GROUP_CPU || req.subfunction != SUBFUNCTION_READ_SZL {
            push_error(out, pdu_ref, &req, error::FUNCTION_NOT_AVAILABLE);
            return true;
        }
        let room_first = pdu_size as usize - OVERHEAD - 8;
        let room_next = pdu_size as usize - OVERHEAD - 4;
        if plen == 8 && seq != 0 {
            // A continuation: the next part of the list this sequence number began.
            let Some(p) = self.pending.as_mut().filter(|p| p.seq == seq) else {
                push_error(out, pdu_ref, &req, szl::SzlError::UnknownId.code());
                return true;
            };
            let chunk = &p.data[p.sent..(p.sent + room_next).min(p.data.len())];
            let more = p.sent + chunk.len() < p.data.len();
            begin(out, pdu_ref, &req, seq, seq, more, 0);
            out.extend_from_slice(&[0xFF, 0x09]);
            out.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
            out.extend_from_slice(chunk);
            s7::finish(out, 12);
            p.sent += chunk.len();
            if !more {
                self.pending = None;
            }
            return true;
        }
        let &[i0, i1, x0, x1] = payload else {
            push_error(out, pdu_ref, &req, szl::SzlError::UnknownId.code());
            return true;
        };
        let (id, index) = (u16::from_be_bytes([i0, i1]), u16::from_be_bytes([x0, x1]));
        let facts = Facts {
            identity: &svc.cfg.identity,
            max_pdu: svc.cfg.pdu_size,
            max_connections: svc.cfg.max_clients as u16,
            state: crate::image::state(&*svc.image),
            state_since: svc.state_since(),
        };
        let mut list = Vec::new();
        if let Err(e) = szl::build(id, index, &facts, &mut list) {
            push_error(out, pdu_ref, &req, e.code());
            return true;
        }
        let more = list.len() > room_first;
        let (seq, durn) = if more {
            // A new sequence number (never 0) for the client's continuation requests.
            self.last_seq = self.last_seq.wrapping_add(1).max(1);
            (self.last_seq, self.last_seq)
        } else {
            (seq, 0)
        };
        let first = list.len().min(room_first);
        begin(out, pdu_ref, &req, seq, durn, more, 0);
        out.extend_from_slice(&[0xFF, 0x09]);
        out.extend_from_slice(&((first + 4) as u16).to_be_bytes());
        out.extend_from_slice(&[i0, i1, x0, x1]);
        out.extend_from_slice(&list[..first]);
        s7::finish(out, 12);
        self.pending = more.then_some(Pending { seq, sent: first, data: list });
        true
    }
}
