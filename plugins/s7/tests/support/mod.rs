//! Frame builders and an in-memory session driver shared by the S7 plugin's tests.
#![allow(dead_code)]

use openplc_port::{ImagePort, MemoryImage};
use openplc_s7::S7Config;
use openplc_s7::session::{Close, Service, Session};
use openplc_s7::wire::iso;
use shared_abi::image::{Area, IecAddress};
use shared_abi::layout::OutputSnapshot;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const DB: u8 = 0x84;
pub const PE: u8 = 0x81;
pub const PA: u8 = 0x82;
pub const MK: u8 = 0x83;

pub fn crate_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// Sets any cell of the in-memory image: an input as a driver publishes it, an output or
/// a marker as a scan publishes it.
pub fn set(image: &MemoryImage, addr: IecAddress, value: u64) {
    if addr.area() == Area::Input {
        image.update_inputs(&mut |i| assert!(i.set(addr, value), "{addr} in the image")).expect("in-memory inputs");
    } else {
        let mut next: Box<OutputSnapshot> = bytemuck::zeroed_box();
        bytemuck::bytes_of_mut(&mut *next).copy_from_slice(bytemuck::bytes_of(&*image.outputs()));
        assert!(next.image.set(addr, value), "{addr} in the image");
        image.publish(next);
    }
}

/// A cell of the in-memory image as last published.
pub fn get(image: &MemoryImage, addr: IecAddress) -> u64 {
    let value = if addr.area() == Area::Input { image.inputs().get(addr) } else { image.outputs().image.get(addr) };
    value.expect("an address inside the image")
}

pub fn tpkt(tpdu: &[u8]) -> Vec<u8> {
    let mut f = vec![3, 0];
    f.extend_from_slice(&((4 + tpdu.len()) as u16).to_be_bytes());
    f.extend_from_slice(tpdu);
    f
}

pub fn dt(pdu: &[u8]) -> Vec<u8> {
    let mut t = vec![2, 0xF0, 0x80];
    t.extend_from_slice(pdu);
    tpkt(&t)
}

pub fn cr(called: u16, tpdu_code: u8) -> Vec<u8> {
    let mut body = vec![0xE0, 0, 0, 0, 7, 0, 0xC0, 1, tpdu_code, 0xC1, 2, 1, 0, 0xC2, 2];
    body.extend_from_slice(&called.to_be_bytes());
    let mut t = vec![body.len() as u8];
    t.extend_from_slice(&body);
    tpkt(&t)
}

pub fn job(params: &[u8], data: &[u8]) -> Vec<u8> {
    let mut p = vec![0x32, 1, 0, 0, 0, 9];
    p.extend_from_slice(&(params.len() as u16).to_be_bytes());
    p.extend_from_slice(&(data.len() as u16).to_be_bytes());
    p.extend_from_slice(params);
    p.extend_from_slice(data);
    p
}

pub fn setup(pdu: u16) -> Vec<u8> {
    let mut params = vec![0xF0, 0, 0, 1, 0, 1];
    params.extend_from_slice(&pdu.to_be_bytes());
    job(&params, &[])
}

pub fn item(ts: u8, count: u16, db: u16, area: u8, bit_address: u32) -> Vec<u8> {
    let mut i = vec![0x12, 0x0A, 0x10, ts];
    i.extend_from_slice(&count.to_be_bytes());
    i.extend_from_slice(&db.to_be_bytes());
    i.push(area);
    i.extend_from_slice(&bit_address.to_be_bytes()[1..]);
    i
}

pub fn read(items: &[Vec<u8>]) -> Vec<u8> {
    let mut params = vec![4, items.len() as u8];
    items.iter().for_each(|i| params.extend_from_slice(i));
    job(&params, &[])
}

/// `(address item, data transport size, length field, bytes)` per item.
pub fn write(items: &[(Vec<u8>, u8, u16, Vec<u8>)]) -> Vec<u8> {
    let mut params = vec![5, items.len() as u8];
    let mut data = Vec::new();
    for (n, (i, ts, len, bytes)) in items.iter().enumerate() {
        params.extend_from_slice(i);
        data.extend_from_slice(&[0, *ts]);
        data.extend_from_slice(&len.to_be_bytes());
        data.extend_from_slice(bytes);
        if bytes.len() % 2 == 1 && n + 1 < items.len() {
            data.push(0);
        }
    }
    job(&params, &data)
}

pub fn szl(id: u16, index: u16) -> Vec<u8> {
    let params = [0, 1, 0x12, 4, 0x11, 0x44, 1, 0];
    let mut data = vec![0xFF, 0x09, 0, 4];
    data.extend_from_slice(&id.to_be_bytes());
    data.extend_from_slice(&index.to_be_bytes());
    userdata(&params, &data)
}

pub fn szl_next(seq: u8) -> Vec<u8> {
    userdata(&[0, 1, 0x12, 8, 0x12, 0x44, 1, seq, 0, 0, 0, 0], &[0x0A, 0, 0, 0])
}

pub fn userdata(params: &[u8], data: &[u8]) -> Vec<u8> {
    let mut p = vec![0x32, 7, 0, 0, 0, 3];
    p.extend_from_slice(&(params.len() as u16).to_be_bytes());
    p.extend_from_slice(&(data.len() as u16).to_be_bytes());
    p.extend_from_slice(params);
    p.extend_from_slice(data);
    p
}

/// A reply PDU, split.
#[derive(Debug)]
pub struct Reply {
    pub rosctr: u8,
    pub error: u16,
    pub params: Vec<u8>,
    pub data: Vec<u8>,
}

/// Splits reply frames into S7 PDUs (joining DT fragments); CC/DR frames give their
/// TPDU code as a `Reply` with rosctr 0 and the code in `error`.
pub fn replies(mut out: &[u8]) -> Vec<Reply> {
    let mut all = Vec::new();
    let mut pdu = Vec::new();
    while !out.is_empty() {
        let len = u16::from_be_bytes([out[2], out[3]]) as usize;
        let tpdu = &out[4..len];
        if tpdu[1] == 0xF0 {
            pdu.extend_from_slice(&tpdu[3..]);
            if tpdu[2] & 0x80 != 0 {
                let header = if pdu[1] == 3 { 12 } else { 10 };
                let p = u16::from_be_bytes([pdu[6], pdu[7]]) as usize;
                let error = if pdu[1] == 3 { u16::from_be_bytes([pdu[10], pdu[11]]) } else { 0 };
                assert_eq!(header + p + u16::from_be_bytes([pdu[8], pdu[9]]) as usize, pdu.len());
                all.push(Reply {
                    rosctr: pdu[1],
                    error,
                    params: pdu[header..header + p].to_vec(),
                    data: pdu[header + p..].to_vec(),
                });
                pdu.clear();
            }
        } else {
            all.push(Reply { rosctr: 0, error: tpdu[1] as u16, params: tpdu.to_vec(), data: Vec::new() });
        }
        out = &out[len..];
    }
    all
}

/// A session over an in-memory image, fed whole frames.
pub struct Harness {
    pub image: Arc<MemoryImage>,
    pub svc: Service,
    pub session: Session,
}

impl Harness {
    pub fn new(cfg: S7Config) -> Harness {
        let image = Arc::new(MemoryImage::zeroed());
        Harness { svc: Service::new(cfg, image.clone()), image, session: Session::new(1) }
    }

    pub fn from_json(json: &str) -> Harness {
        Harness::new(S7Config::from_json(json).expect("test configuration"))
    }

    /// Connects (rack 0 slot 2) and negotiates `pdu`.
    pub async fn connected(json: &str, pdu: u16) -> Harness {
        let mut h = Harness::from_json(json);
        let r = h.send(&cr(0x0102, 0x0A)).await.unwrap();
        assert_eq!(r[0].error, 0xD0, "connection confirmed");
        let r = h.send(&dt(&setup(pdu))).await.unwrap();
        assert_eq!(h.session.pdu_size(), u16::from_be_bytes([r[0].params[6], r[0].params[7]]));
        h
    }

    /// Feeds every frame in `frames`; the replies, or why the session closed.
    pub async fn send(&mut self, frames: &[u8]) -> Result<Vec<Reply>, Close> {
        let mut rest = frames;
        let mut out = Vec::new();
        while !rest.is_empty() {
            let header = [rest[0], rest[1], rest[2], rest[3]];
            let len = iso::frame_len(header, self.session.max_frame()).map_err(Close::Iso)?;
            self.session.on_frame(&self.svc, &rest[4..len], &mut out).await?;
            rest = &rest[len..];
        }
        Ok(replies(&out))
    }

    /// Sends one request PDU and returns its one reply.
    pub async fn request(&mut self, pdu: &[u8]) -> Reply {
        let mut r = self.send(&dt(pdu)).await.expect("session stays open");
        assert_eq!(r.len(), 1, "one reply per request");
        r.remove(0)
    }
}
