//! Job requests: setup communication (PDU size negotiation), read-var and write-var.
//!
//! Each item is answered on its own, with the return code an S7 CPU gives: an area or
//! data block the configuration does not serve is 0x0A (object does not exist), a range
//! past its end (or past the running program's table: its `image.conf` sizes), a
//! misaligned or empty one 0x05 (address out of range), an unknown
//! transport size 0x06, write data of the wrong length 0x07, a write to an input 0x03.
//! A read whose reply would not fit the negotiated PDU is refused whole with header
//! error 0x8500, as a CPU does, before anything is read or allocated for it; a request
//! that does not parse gets 0x8500 too, a function we do not serve 0x8104.

use crate::config::{MIN_PDU_SIZE, Region};
use crate::image;
use crate::map::{AreaMap, area};
use crate::session::Service;
use crate::wire::s7::{self, DataItems, ItemSpec, Items, data_ts, error, function, item, ts};
use shared_abi::image::IecAddress;

/// Parallel jobs we accept per connection (requests are served in order).
pub const MAX_PARALLEL_JOBS: u16 = 8;

/// What setup communication agreed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Negotiated {
    pub pdu_size: u16,
}

/// Answers setup communication; `None` when the parameters are malformed (the reply is
/// then an error already).
pub fn setup(pdu_ref: u16, params: &[u8], max_pdu: u16, out: &mut Vec<u8>) -> Option<Negotiated> {
    let &[function::SETUP_COMMUNICATION, _, c0, c1, d0, d1, p0, p1] = params else {
        s7::push_job_error(out, pdu_ref, function::SETUP_COMMUNICATION, error::WRONG_FRAMES);
        return None;
    };
    let calling = u16::from_be_bytes([c0, c1]).clamp(1, MAX_PARALLEL_JOBS);
    let called = u16::from_be_bytes([d0, d1]).clamp(1, MAX_PARALLEL_JOBS);
    let pdu_size = u16::from_be_bytes([p0, p1]).min(max_pdu).max(MIN_PDU_SIZE);
    s7::begin_ack(out, pdu_ref, 0);
    out.extend_from_slice(&[function::SETUP_COMMUNICATION, 0]);
    out.extend_from_slice(&calling.to_be_bytes());
    out.extend_from_slice(&called.to_be_bytes());
    out.extend_from_slice(&pdu_size.to_be_bytes());
    s7::finish(out, 8);
    Some(Negotiated { pdu_size })
}

/// A resolved item address.
#[derive(Clone, Copy, Debug)]
struct Access {
    region: Region,
    byte: usize,
    len: usize,
    /// For a bit access, the bit.
    bit: Option<u8>,
    transport_size: u8,
}

/// Bytes per element of a transport size, if we serve it.
fn element_size(transport_size: u8) -> Option<usize> {
    match transport_size {
        ts::BIT | ts::BYTE | ts::CHAR => Some(1),
        ts::WORD | ts::INT | ts::COUNTER | ts::TIMER => Some(2),
        ts::DWORD | ts::DINT | ts::REAL => Some(4),
        _ => None,
    }
}

/// Resolves an item against the configured areas, or the item return code.
fn resolve(map: &AreaMap, spec: ItemSpec) -> Result<Access, u8> {
    let ItemSpec::Any(a) = spec else { return Err(item::ADDRESS_OUT_OF_RANGE) };
    // Counters and timers have no place in OpenPLC's image: no configuration maps them.
    let region = *map.region(a.area, a.db).ok_or(item::OBJECT_DOES_NOT_EXIST)?;
    let size = element_size(a.transport_size).ok_or(item::TYPE_NOT_SUPPORTED)?;
    if matches!(a.transport_size, ts::COUNTER | ts::TIMER) && !matches!(a.area, area::COUNTERS | area::TIMERS) {
        return Err(item::ADDRESS_OUT_OF_RANGE);
    }
    if a.count == 0 {
        return Err(item::ADDRESS_OUT_OF_RANGE);
    }
    let bit = if a.transport_size == ts::BIT {
        if a.count != 1 {
            return Err(item::ADDRESS_OUT_OF_RANGE);
        }
        Some(a.bit())
    } else {
        if a.bit() != 0 {
            return Err(item::ADDRESS_OUT_OF_RANGE);
        }
        None
    };
    let len = a.count as usize * size;
    if !region.contains(a.byte(), len) {
        return Err(item::ADDRESS_OUT_OF_RANGE);
    }
    Ok(Access { region, byte: a.byte(), len, bit, transport_size: a.transport_size })
}

/// The data transport size and length field of a read reply item.
fn reply_size(access: &Access) -> (u8, u16) {
    let bits = (access.len * 8) as u16;
    let bytes = access.len as u16;
    match access.transport_size {
        ts::BIT => (data_ts::BIT, 1),
        ts::INT | ts::DINT => (data_ts::INT, bits),
        ts::REAL => (data_ts::REAL, bytes),
        ts::CHAR | ts::COUNTER | ts::TIMER => (data_ts::OCTET, bytes),
        _ => (data_ts::BYTE, bits),
    }
}

/// Answers read-var. Reads every item from one view of the image.
pub fn read(svc: &Service, pdu_ref: u16, pdu_size: u16, params: &[u8], data: &[u8], out: &mut Vec<u8>) {
    let items = match Items::parse(params) {
        Ok(items) if data.is_empty() => items,
        _ => return s7::push_job_error(out, pdu_ref, function::READ_VAR, error::WRONG_FRAMES),
    };
    let count = items.item_count();
    // At most 255 items: the parameter part bounds this list, not any count a client names.
    let resolved: Vec<Result<Access, u8>> = items.map(|spec| resolve(&svc.map, spec)).collect();
    let mut reply_len = s7::ACK_HEADER + 2;
    for (i, r) in resolved.iter().enumerate() {
        reply_len += 4;
        if let Ok(a) = r {
            let data_len = if a.bit.is_some() { 1 } else { a.len };
            reply_len += data_len + usize::from(data_len % 2 == 1 && i + 1 < count);
        }
        if reply_len > pdu_size as usize {
            svc.stats.oversized();
            return s7::push_job_error(out, pdu_ref, function::READ_VAR, error::WRONG_FRAMES);
        }
    }
    s7::begin_ack(out, pdu_ref, 0);
    out.extend_from_slice(&[function::READ_VAR, count as u8]);
    let items_start = out.len();
    let mut failed = 0;
    let viewed = image::read(&*svc.image, |inputs, outputs, sizes| {
        for (i, r) in resolved.iter().enumerate() {
            match r {
                Ok(a) if !a.region.inside(sizes, a.byte, a.len) => {
                    failed += 1;
                    out.extend_from_slice(&[item::ADDRESS_OUT_OF_RANGE, 0, 0, 0]);
                }
                Err(code) => {
                    failed += 1;
                    out.extend_from_slice(&[*code, 0, 0, 0]);
                }
                Ok(a) => {
                    let (reply_ts, len_field) = reply_size(a);
                    out.extend_from_slice(&[item::SUCCESS, reply_ts]);
                    out.extend_from_slice(&len_field.to_be_bytes());
                    let start = out.len();
                    match a.bit {
                        Some(bit) => {
                            let mut byte = [0u8];
                            a.region.read(inputs, outputs, a.byte, &mut byte);
                            out.push((byte[0] >> bit) & 1);
                        }
                        None => {
                            out.resize(start + a.len, 0);
                            a.region.read(inputs, outputs, a.byte, &mut out[start..]);
                        }
                    }
                    if (out.len() - start) % 2 == 1 && i + 1 < count {
                        out.push(0);
                    }
                }
            }
        }
    });
    if !viewed {
        // No rt-core attached (it is being restarted): nothing to read from.
        out.truncate(items_start);
        failed = count;
        for r in &resolved {
            out.extend_from_slice(&[*r.as_ref().err().unwrap_or(&item::HARDWARE_FAULT), 0, 0, 0]);
        }
    }
    s7::finish(out, 2);
    svc.stats.item_errors(failed);
}

/// Answers write-var: every item that checks out is written, all of an item in one
/// all-or-nothing batch (see [`image`] for requests larger than one batch), and answered
/// once rt-core has applied it.
pub async fn write(svc: &Service, pdu_ref: u16, params: &[u8], data: &[u8], out: &mut Vec<u8>) {
    let parsed = Items::parse(params).and_then(|items| Ok((DataItems::parse(data, items.item_count())?, items)));
    let Ok((data_items, items)) = parsed else {
        return s7::push_job_error(out, pdu_ref, function::WRITE_VAR, error::WRONG_FRAMES);
    };
    let count = items.item_count();
    // Bounded by the PDU: at most 8 bit writes per data byte.
    let mut codes: Vec<u8> = Vec::with_capacity(count);
    // After item i, `item_ends[i]` writes are listed.
    let mut item_ends: Vec<usize> = Vec::with_capacity(count);
    let mut writes: Vec<(IecAddress, u64)> = Vec::new();
    let viewed = image::read(&*svc.image, |inputs, outputs, sizes| {
        for (spec, d) in items.clone().zip(data_items.clone()) {
            let listed = writes.len();
            let code = match resolve(&svc.map, spec) {
                Err(code) => code,
                Ok(a) if !a.region.inside(sizes, a.byte, a.len) => item::ADDRESS_OUT_OF_RANGE,
                Ok(a) if !a.region.cell.writable() => item::ACCESS_DENIED,
                Ok(a) => match a.bit {
                    Some(bit) if d.bytes.len() == 1 => {
                        if a.region.bit_write(inputs, outputs, a.byte, bit, d.bytes[0] & 1 == 1, &mut writes) {
                            item::SUCCESS
                        } else {
                            item::ADDRESS_OUT_OF_RANGE
                        }
                    }
                    None if d.bytes.len() == a.len && d.transport_size != data_ts::BIT => {
                        if a.region.writes(inputs, outputs, a.byte, d.bytes, &mut writes) {
                            item::SUCCESS
                        } else {
                            item::ADDRESS_OUT_OF_RANGE
                        }
                    }
                    _ => item::SIZE_MISMATCH,
                },
            };
            if code != item::SUCCESS {
                writes.truncate(listed);
            }
            codes.push(code);
            item_ends.push(writes.len());
        }
    });
    if !viewed {
        // No rt-core attached (it is being restarted): nothing can be written.
        codes = items.map(|spec| resolve(&svc.map, spec).err().unwrap_or(item::HARDWARE_FAULT)).collect();
    } else if !writes.is_empty() {
        let ends = image::batch_ends(&item_ends);
        if let Err((applied, e)) = image::write(&*svc.image, &writes, &ends, svc.cfg.write_timeout).await {
            svc.stats.write_failed();
            if svc.cfg.logging.errors {
                tracing::warn!("S7 write: {} of {} image cells not applied: {e}", writes.len() - applied, writes.len());
            }
            for (c, &end) in codes.iter_mut().zip(&item_ends) {
                if *c == item::SUCCESS && end > applied {
                    *c = item::HARDWARE_FAULT;
                }
            }
        }
    }
    svc.stats.item_errors(codes.iter().filter(|&&c| c != item::SUCCESS).count());
    s7::begin_ack(out, pdu_ref, 0);
    out.extend_from_slice(&[function::WRITE_VAR, count as u8]);
    out.extend_from_slice(&codes);
    s7::finish(out, 2);
}
