//! One client connection as a state machine over whole TPKT frames, with no I/O of its
//! own: the server feeds it the frames it reads and sends what it appends; the fuzzer and
//! the tests drive exactly the same code with bytes in memory.
//!
//! Before the connection request is confirmed only a connection request is accepted: its
//! called TSAP must name a connection type an S7 CPU serves (PG 1, OP 2, S7 basic 3) and
//! the configured rack and slot, otherwise it is refused with a disconnect request, as a
//! CPU does. After it, data TPDUs carry S7 PDUs (fragments are joined up to the
//! negotiated PDU size), a disconnect request ends the connection, and anything else,
//! or a PDU that is not S7, closes it.

use crate::config::{MIN_PDU_SIZE, S7Config};
use crate::image;
use crate::job;
use crate::map::AreaMap;
use crate::stats::Stats;
use crate::userdata::UserdataState;
use crate::wire::iso::{self, IsoError, Tpdu};
use crate::wire::s7::{self, PduError, error, function, rosctr};
use openplc_port::ImagePort;
use shared_abi::layout::PlcState;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// What every connection of one server shares.
pub struct Service {
    pub cfg: S7Config,
    pub map: AreaMap,
    pub image: Arc<dyn ImagePort>,
    pub stats: Stats,
    /// The PLC state last seen and since when (for SZL 0x0424).
    seen: Mutex<(PlcState, SystemTime)>,
}

impl Service {
    pub fn new(cfg: S7Config, image: Arc<dyn ImagePort>) -> Service {
        let state = image::state(&*image);
        Service {
            map: AreaMap::new(&cfg),
            cfg,
            image,
            stats: Stats::default(),
            seen: Mutex::new((state, SystemTime::now())),
        }
    }

    /// When the PLC entered its current state, as far as this server has seen.
    pub fn state_since(&self) -> SystemTime {
        let now = image::state(&*self.image);
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.0 != now {
            *seen = (now, SystemTime::now());
        }
        seen.1
    }
}

/// Why a session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Close {
    #[error("client disconnected")]
    Disconnect,
    #[error("connection request refused: called TSAP {0:04x}")]
    Refused(u16),
    #[error("{0}")]
    Iso(#[from] IsoError),
    #[error("{0}")]
    Pdu(#[from] PduError),
    #[error("TPDU {0:#04x} not expected in this state")]
    Unexpected(u8),
    #[error("PDU larger than negotiated")]
    Oversized,
    #[error("PDU type {0:#04x} is not a request")]
    NotARequest(u8),
}

struct Link {
    tpdu: usize,
}

/// One connection's protocol state.
pub struct Session {
    link: Option<Link>,
    pdu_size: u16,
    /// Fragments of an S7 PDU not yet complete (at most the PDU size).
    partial: Vec<u8>,
    userdata: UserdataState,
    reply: Vec<u8>,
    local_ref: u16,
}

/// Longest frame before the connection is confirmed (a connection request's header is
/// at most 255 bytes).
const CONNECT_FRAME_MAX: usize = iso::TPKT_HEADER + 1 + 255;

impl Session {
    /// `local_ref` is our COTP reference for this connection.
    pub fn new(local_ref: u16) -> Session {
        Session {
            link: None,
            pdu_size: MIN_PDU_SIZE,
            partial: Vec::new(),
            userdata: UserdataState::default(),
            reply: Vec::new(),
            local_ref,
        }
    }

    /// The longest TPKT frame the client may send now (whole frame, header included).
    pub fn max_frame(&self) -> usize {
        match &self.link {
            None => CONNECT_FRAME_MAX,
            Some(l) => iso::TPKT_HEADER + l.tpdu,
        }
    }

    pub fn connected(&self) -> bool {
        self.link.is_some()
    }

    pub fn pdu_size(&self) -> u16 {
        self.pdu_size
    }

    /// Handles one frame's TPDU (the bytes after the TPKT header), appending whole reply
    /// frames to `out`. `Err` means: send what `out` holds, then close.
    pub async fn on_frame(&mut self, svc: &Service, tpdu: &[u8], out: &mut Vec<u8>) -> Result<(), Close> {
        let parsed = iso::parse(tpdu)?;
        let Some(link) = &self.link else {
            let Tpdu::Connect(req) = parsed else { return Err(Close::Unexpected(tpdu.get(1).copied().unwrap_or(0))) };
            let called = match req.called_tsap {
                &[a, b] => u16::from_be_bytes([a, b]),
                _ => 0,
            };
            let (kind, rack, slot) = ((called >> 8) as u8, (called >> 5) as u8 & 0x07, called as u8 & 0x1F);
            if req.called_tsap.len() != 2 || !(1..=3).contains(&kind) || !svc.cfg.placement.accepts(rack, slot) {
                iso::push_disconnect(out, req.src_ref, self.local_ref, iso::reason::NOT_ATTACHED);
                return Err(Close::Refused(called));
            }
            // The confirm echoes the calling TSAP; real ones are 2 bytes, and a long one
            // would not fit the confirm's one-byte length indicator.
            if req.calling_tsap.len() > iso::MAX_TSAP {
                iso::push_disconnect(out, req.src_ref, self.local_ref, iso::reason::NEGOTIATION_FAILED);
                return Err(Close::Iso(IsoError::Parameter));
            }
            let tpdu = req.tpdu_size.min(iso::MAX_TPDU);
            let code = req.tpdu_code.map_or(7, |c| c.min(0x0A));
            iso::push_connect_confirm(out, &req, self.local_ref, code);
            self.link = Some(Link { tpdu });
            return Ok(());
        };
        let tpdu_size = link.tpdu;
        match parsed {
            Tpdu::Connect(_) => Err(Close::Unexpected(iso::CR)),
            Tpdu::Disconnect => Err(Close::Disconnect),
            Tpdu::Data { last, payload } => {
                if self.partial.len() + payload.len() > self.pdu_size.max(svc.cfg.pdu_size) as usize {
                    return Err(Close::Oversized);
                }
                if !last {
                    self.partial.extend_from_slice(payload);
                    return Ok(());
                }
                let mut pdu = std::mem::take(&mut self.partial);
                pdu.extend_from_slice(payload);
                let mut reply = std::mem::take(&mut self.reply);
                let r = if pdu.is_empty() { Ok(()) } else { self.on_pdu(svc, &pdu, &mut reply).await };
                if r.is_ok() && !reply.is_empty() {
                    iso::push_data(out, &reply, tpdu_size);
                }
                reply.clear();
                pdu.clear();
                self.reply = reply;
                self.partial = pdu;
                r
            }
        }
    }

    /// Answers one whole S7 PDU into `reply`.
    async fn on_pdu(&mut self, svc: &Service, bytes: &[u8], reply: &mut Vec<u8>) -> Result<(), Close> {
        let pdu = s7::parse(bytes)?;
        svc.stats.request();
        let data_access = svc.cfg.logging.data_access;
        match pdu.rosctr {
            rosctr::JOB => {
                let func = pdu.params.first().copied().unwrap_or(0);
                if data_access {
                    tracing::debug!(function = func, len = bytes.len(), "S7 job");
                }
                match func {
                    function::SETUP_COMMUNICATION => {
                        if let Some(n) = job::setup(pdu.pdu_ref, pdu.params, svc.cfg.pdu_size, reply) {
                            self.pdu_size = n.pdu_size;
                        }
                    }
                    function::READ_VAR => job::read(svc, pdu.pdu_ref, self.pdu_size, pdu.params, pdu.data, reply),
                    function::WRITE_VAR => job::write(svc, pdu.pdu_ref, pdu.params, pdu.data, reply).await,
                    // PLC stop/start (PI service), block up/download, anything else: not served.
                    other => {
                        svc.stats.refused_function();
                        s7::push_job_error(reply, pdu.pdu_ref, other, error::FUNCTION_NOT_AVAILABLE);
                    }
                }
                Ok(())
            }
            rosctr::USERDATA => {
                if data_access {
                    tracing::debug!(len = bytes.len(), "S7 userdata");
                }
                if self.userdata.handle(svc, pdu.pdu_ref, self.pdu_size, pdu.params, pdu.data, reply) {
                    Ok(())
                } else {
                    Err(Close::Pdu(PduError::Params))
                }
            }
            other => Err(Close::NotARequest(other)),
        }
    }
}
