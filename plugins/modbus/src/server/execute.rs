//! Executing one request: reads from one snapshot, writes queued for rt-core and answered
//! once it has applied them, and the exception a request that cannot be served gets.

use super::{MBAP, Shared};
use crate::map::{AddressMap, Holding};
use crate::pdu::{self, Exception, Request};
use openplc_port::PortError;
use shared_abi::image::{IecAddress, Width};
use shared_abi::layout::OutputSnapshot;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::time::Instant;

/// Our own writes to `%MD`/`%ML` values that the published outputs may not show yet:
/// value and the cycle by which rt-core applies it.
#[derive(Default)]
pub(super) struct Pending(HashMap<IecAddress, (u64, u64)>);

impl Pending {
    /// The value a partial write builds on.
    fn base(&self, snap: &OutputSnapshot, addr: IecAddress) -> u64 {
        match self.0.get(&addr) {
            Some(&(value, applied_by)) if snap.cycle < applied_by => value,
            _ => snap.image.get(addr).unwrap_or(0),
        }
    }

    fn record(&mut self, snap: &OutputSnapshot, writes: &[(IecAddress, u64)], applied_by: u64) {
        if self.0.len() > 256 {
            self.0.retain(|_, &mut (_, by)| snap.cycle < by);
        }
        for &(addr, value) in writes {
            if matches!(addr.width(), Width::DWord | Width::LWord) {
                self.0.insert(addr, (value, applied_by));
            }
        }
    }
}

/// Appends the reply PDU for `pdu` to `out` (which holds the MBAP header).
pub(super) async fn handle(s: &Shared, unit: u8, pdu: &[u8], out: &mut Vec<u8>) {
    let fc = pdu[0];
    let result = match s.cfg.unit_id {
        Some(id) if id != unit => Err(Exception::GatewayTargetFailedToRespond),
        _ => match pdu::parse(pdu) {
            Ok(req) => execute(s, req, out).await,
            Err(e) => Err(e),
        },
    };
    if let Err(e) = result {
        s.n.exceptions.fetch_add(1, Ordering::Relaxed);
        out.truncate(MBAP);
        pdu::encode_exception(out, fc, e);
    }
}

/// The latest published outputs, once they show every write answered so far. A write is
/// answered as soon as rt-core has applied it, at the start of a cycle, and that cycle's
/// scan publishes a few microseconds later (a long scan: later still): a read in between
/// waits for the end of that cycle, so a client always reads back what it was told was
/// written (or what the program made of it). If rt-core stalls meanwhile, the read serves
/// the latest snapshot after `write_timeout`, as it would without the write.
async fn settled_outputs(s: &Shared) -> Arc<OutputSnapshot> {
    let answered_in = s.answered_in.load(Ordering::Acquire);
    if s.plc.cycle() <= answered_in {
        let _ = s.plc.wait_cycle_after(answered_in, s.cfg.write_timeout).await;
    }
    s.plc.outputs()
}

fn check(ok: bool) -> Result<(), Exception> {
    if ok { Ok(()) } else { Err(Exception::IllegalDataAddress) }
}

/// Every point `addr..addr+qty` must be inside the running program's image tables: the
/// map is the configured one, the tables are the program's, and a point past them answers
/// Illegal Data Address as a point past the map does.
fn inside(addr: u16, qty: u16, point_inside: impl Fn(u32) -> bool) -> Result<(), Exception> {
    check((0..qty as u32).all(|i| point_inside(addr as u32 + i)))
}

async fn execute(s: &Shared, req: Request<'_>, out: &mut Vec<u8>) -> Result<(), Exception> {
    let map = &s.cfg.map;
    let fc = req.function_code();
    match req {
        Request::ReadCoils { addr, qty } => {
            check(pdu::in_range(addr, qty, map.coils()))?;
            let snap = settled_outputs(s).await;
            inside(addr, qty, |n| map.coil_inside(&snap.sizes, n))?;
            pdu::encode_bits(out, fc, qty, |i| map.read_coil(&snap.image, addr as u32 + i));
        }
        Request::ReadDiscreteInputs { addr, qty } => {
            check(pdu::in_range(addr, qty, map.discrete_inputs()))?;
            let sizes = s.plc.sizes();
            inside(addr, qty, |n| AddressMap::discrete_inside(&sizes, n))?;
            s.plc
                .inputs(|img| pdu::encode_bits(out, fc, qty, |i| AddressMap::read_discrete(img, addr as u32 + i)))
                .ok_or(Exception::ServerDeviceFailure)?;
        }
        Request::ReadHoldingRegisters { addr, qty } => {
            check(pdu::in_range(addr, qty, map.holding_registers()))?;
            let snap = settled_outputs(s).await;
            inside(addr, qty, |n| map.holding_inside(&snap.sizes, n))?;
            pdu::encode_registers(out, fc, qty, |i| map.read_holding(&snap.image, addr as u32 + i));
        }
        Request::ReadInputRegisters { addr, qty } => {
            check(pdu::in_range(addr, qty, map.input_registers()))?;
            let sizes = s.plc.sizes();
            inside(addr, qty, |n| AddressMap::input_register_inside(&sizes, n))?;
            s.plc
                .inputs(|img| {
                    pdu::encode_registers(out, fc, qty, |i| AddressMap::read_input_register(img, addr as u32 + i))
                })
                .ok_or(Exception::ServerDeviceFailure)?;
        }
        Request::WriteSingleCoil { addr, value } => {
            check(pdu::in_range(addr, 1, map.coils()))?;
            let sizes = s.plc.sizes();
            inside(addr, 1, |n| map.coil_inside(&sizes, n))?;
            write(s, &|_, _, w| w.push((map.coil(addr as u32), value as u64))).await?;
            pdu::encode_echo(out, fc, addr, if value { 0xFF00 } else { 0 });
        }
        Request::WriteSingleRegister { addr, value } => {
            check(pdu::in_range(addr, 1, map.holding_registers()))?;
            let sizes = s.plc.sizes();
            inside(addr, 1, |n| map.holding_inside(&sizes, n))?;
            write(s, &|p, snap, w| holding_writes(map, p, snap, addr, 1, |_| value, w)).await?;
            pdu::encode_echo(out, fc, addr, value);
        }
        Request::WriteMultipleCoils { addr, qty, bits } => {
            check(pdu::in_range(addr, qty, map.coils()))?;
            let sizes = s.plc.sizes();
            inside(addr, qty, |n| map.coil_inside(&sizes, n))?;
            write(s, &|_, _, w| {
                w.extend((0..qty as u32).map(|i| (map.coil(addr as u32 + i), pdu::bit(bits, i as usize) as u64)))
            })
            .await?;
            pdu::encode_echo(out, fc, addr, qty);
        }
        Request::WriteMultipleRegisters { addr, qty, data } => {
            check(pdu::in_range(addr, qty, map.holding_registers()))?;
            let sizes = s.plc.sizes();
            inside(addr, qty, |n| map.holding_inside(&sizes, n))?;
            write(s, &|p, snap, w| holding_writes(map, p, snap, addr, qty, |i| pdu::register(data, i), w)).await?;
            pdu::encode_echo(out, fc, addr, qty);
        }
        Request::ReadWriteMultipleRegisters { read_addr, read_qty, write_addr, write_qty, data } => {
            let size = map.holding_registers();
            check(pdu::in_range(read_addr, read_qty, size) && pdu::in_range(write_addr, write_qty, size))?;
            let sizes = s.plc.sizes();
            inside(read_addr, read_qty, |n| map.holding_inside(&sizes, n))?;
            inside(write_addr, write_qty, |n| map.holding_inside(&sizes, n))?;
            // The specification has the write happen before the read.
            write(s, &|p, snap, w| holding_writes(map, p, snap, write_addr, write_qty, |i| pdu::register(data, i), w))
                .await?;
            let snap = settled_outputs(s).await;
            pdu::encode_registers(out, fc, read_qty, |i| map.read_holding(&snap.image, read_addr as u32 + i));
        }
    }
    Ok(())
}

/// The image writes for holding registers `addr..addr+qty` taking the values `value(i)`.
/// Consecutive words of one `%MD`/`%ML` value become one write of the whole value, the
/// words not written kept from `pending`/`snap`.
fn holding_writes(
    map: &AddressMap,
    pending: &Pending,
    snap: &OutputSnapshot,
    addr: u16,
    qty: u16,
    value: impl Fn(usize) -> u16,
    out: &mut Vec<(IecAddress, u64)>,
) {
    for i in 0..qty as usize {
        let word = value(i);
        match map.holding(addr as u32 + i as u32) {
            Holding::Word(a) => out.push((a, word as u64)),
            Holding::Part { addr: a, pos, words } => match out.last_mut() {
                Some((last, v)) if *last == a => *v = map.word_order.with_word(*v, pos, words, word),
                _ => {
                    let base = pending.base(snap, a);
                    out.push((a, map.word_order.with_word(base, pos, words, word)));
                }
            },
        }
    }
}

type Build<'a> = dyn Fn(&Pending, &OutputSnapshot, &mut Vec<(IecAddress, u64)>) + Sync + 'a;

/// Queues the writes `build` makes and waits until rt-core has applied them, at the start
/// of the next cycle, with the writes every other connection queued meanwhile. A full
/// queue is retried each cycle until `write_timeout` (exception 6 after it); a write not
/// applied within `write_timeout` is exception 4.
async fn write(s: &Shared, build: &Build<'_>) -> Result<(), Exception> {
    let deadline = Instant::now() + s.cfg.write_timeout;
    let mut writes = Vec::new();
    let ticket = loop {
        let attempt = {
            let snap = s.plc.outputs();
            let mut pending = s.pending.lock().unwrap_or_else(|p| p.into_inner());
            writes.clear();
            build(&pending, &snap, &mut writes);
            let r = s.plc.write(&writes);
            if let Ok(ticket) = &r {
                pending.record(&snap, &writes, ticket.applied_by());
            }
            r
        };
        match attempt {
            Ok(ticket) => break ticket,
            Err(PortError::WriteQueueFull) => {
                s.n.write_busy.fetch_add(1, Ordering::Relaxed);
                let now = s.plc.cycle();
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() || s.plc.wait_cycle_after(now, left).await.is_err() {
                    return Err(Exception::ServerDeviceBusy);
                }
            }
            Err(e) => {
                tracing::warn!("Modbus write refused: {e}");
                return Err(Exception::ServerDeviceFailure);
            }
        }
    };
    let left = deadline.saturating_duration_since(Instant::now());
    match s.plc.wait_applied(ticket, left).await {
        Ok(cycle) => {
            // Answered before that cycle's scan has published: reads wait for it.
            let before = s.answered_in.fetch_max(cycle, Ordering::AcqRel);
            s.n.writes_applied.fetch_add(1, Ordering::Relaxed);
            if before < cycle {
                s.n.write_scans.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        }
        Err(e) => {
            if matches!(e, PortError::Timeout { .. }) {
                s.n.write_timeouts.fetch_add(1, Ordering::Relaxed);
            }
            tracing::warn!("Modbus write not applied by rt-core within {:?}: {e}", s.cfg.write_timeout);
            Err(Exception::ServerDeviceFailure)
        }
    }
}
