//! The Modbus TCP server.
//!
//! Framing and decoding are ours rather than tokio-modbus's server, because a PLC's
//! server must answer malformed-but-framed requests with the right exception and keep the
//! connection, bound every wait, and survive any input; tokio-modbus 0.17's server closes
//! the connection on byte-count or coil-value errors (which are exception 3), computes
//! `quantity * 2` in u16 (a debug-build panic for quantities past 32767), accepts any
//! MBAP length up to 64 KiB, and stops serving on the first `accept` error.
//!
//! Per connection: an idle timeout between requests, a frame timeout once a frame has
//! begun (a half frame followed by silence is closed when it runs out) and for sending the
//! reply. A cap on connections: one past it is closed as soon as it is accepted. A frame
//! whose MBAP header is impossible (protocol id not 0, length outside 2..=254) closes the
//! connection at once, since the stream can no longer be trusted to be in step. No path
//! sleeps: an error is answered or the connection closed immediately.
//!
//! Reads take one snapshot per request (the port's shared copy of the latest scan). Writes
//! are queued for rt-core, all or nothing, and answered once rt-core has applied them (at
//! the start of the next scan, so at most about two scan periods later: the port wakes
//! its waiters within a tenth of a period); FC 23 reads after its write is applied. A write of part of a `%MD` or
//! `%ML` value keeps the other words as they were in the latest published value (or as
//! the latest still-unpublished write of ours left them).

use crate::config::ServerConfig;
use crate::map::{AddressMap, Holding};
use crate::pdu::{self, Exception, Request};
use openplc_port::{ImagePort, PortError};
use serde::Serialize;
use shared_abi::image::{IecAddress, Width};
use shared_abi::layout::OutputSnapshot;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, timeout, timeout_at};

const MBAP: usize = 7;

/// Counters of a running server.
#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    refused: AtomicU64,
    open: AtomicU64,
    requests: AtomicU64,
    exceptions: AtomicU64,
    closed_idle: AtomicU64,
    closed_frame_timeout: AtomicU64,
    closed_malformed: AtomicU64,
    write_busy: AtomicU64,
    write_timeouts: AtomicU64,
    accept_errors: AtomicU64,
}

/// What the server has done so far.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ServerStatus {
    pub local_addr: String,
    /// Connections being served now.
    pub connections: u64,
    pub accepted: u64,
    /// Connections closed at once because `max_connections` were being served.
    pub refused: u64,
    pub requests: u64,
    /// Requests answered with an exception.
    pub exceptions: u64,
    pub closed_idle: u64,
    pub closed_frame_timeout: u64,
    /// Connections closed for an impossible MBAP header.
    pub closed_malformed: u64,
    /// Writes that found rt-core's queue full (retried until `write_timeout`).
    pub write_busy: u64,
    /// Writes rt-core did not apply within `write_timeout` (answered with exception 4).
    pub write_timeouts: u64,
    pub accept_errors: u64,
}

/// Our own writes to `%MD`/`%ML` values that the published outputs may not show yet:
/// value and the cycle by which rt-core applies it.
#[derive(Default)]
struct Pending(HashMap<IecAddress, (u64, u64)>);

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

struct Shared {
    cfg: ServerConfig,
    plc: Arc<dyn ImagePort>,
    pending: Mutex<Pending>,
    n: Counters,
    local_addr: SocketAddr,
}

/// A running server.
pub struct Server {
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Binds `cfg.host:cfg.port` and starts serving (inside a tokio runtime).
    pub async fn start(cfg: ServerConfig, plc: Arc<dyn ImagePort>) -> io::Result<Server> {
        let listener = TcpListener::bind((cfg.host.as_str(), cfg.port)).await.map_err(|e| {
            io::Error::new(e.kind(), format!("Modbus server cannot listen on {}:{}: {e}", cfg.host, cfg.port))
        })?;
        let local_addr = listener.local_addr()?;
        let slots = Arc::new(Semaphore::new(cfg.max_connections));
        let shared =
            Arc::new(Shared { cfg, plc, pending: Mutex::new(Pending::default()), n: Counters::default(), local_addr });
        let (shutdown, rx) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, shared.clone(), slots, rx));
        tracing::info!(addr = %local_addr, "Modbus TCP server listening");
        Ok(Server { shared, shutdown, task })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    pub fn status(&self) -> ServerStatus {
        let n = &self.shared.n;
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ServerStatus {
            local_addr: self.shared.local_addr.to_string(),
            connections: g(&n.open),
            accepted: g(&n.accepted),
            refused: g(&n.refused),
            requests: g(&n.requests),
            exceptions: g(&n.exceptions),
            closed_idle: g(&n.closed_idle),
            closed_frame_timeout: g(&n.closed_frame_timeout),
            closed_malformed: g(&n.closed_malformed),
            write_busy: g(&n.write_busy),
            write_timeouts: g(&n.write_timeouts),
            accept_errors: g(&n.accept_errors),
        }
    }

    /// Stops listening and closes every connection.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
        tracing::info!(addr = %self.shared.local_addr, "Modbus TCP server stopped");
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    slots: Arc<Semaphore>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => match slots.clone().try_acquire_owned() {
                    Ok(permit) => {
                        shared.n.accepted.fetch_add(1, Ordering::Relaxed);
                        let s = shared.clone();
                        conns.spawn(async move {
                            let _permit = permit;
                            serve(stream, peer, &s).await;
                        });
                    }
                    Err(_) => {
                        shared.n.refused.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(%peer, "Modbus connection refused: at max_connections");
                        drop(stream);
                    }
                },
                Err(e) => {
                    shared.n.accept_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!("Modbus accept failed: {e}");
                    // Out of file descriptors: accept would fail again at once, so give the
                    // connections being closed a moment instead of spinning. This is the
                    // listener's pause, not a reply to any client's request.
                    if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
        }
    }
    conns.abort_all();
    while conns.join_next().await.is_some() {}
}

struct Open<'a>(&'a AtomicU64);

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves one connection until it closes, times out or sends an impossible frame.
async fn serve(stream: TcpStream, peer: SocketAddr, s: &Shared) {
    let _ = stream.set_nodelay(true);
    let (rd, wr) = stream.into_split();
    serve_io(rd, wr, peer, s).await;
}

/// [`serve`] over any byte stream (the fuzz target feeds it a slice).
async fn serve_io(rd: impl AsyncRead + Unpin, mut wr: impl AsyncWrite + Unpin, peer: SocketAddr, s: &Shared) {
    s.n.open.fetch_add(1, Ordering::Relaxed);
    let _open = Open(&s.n.open);
    let mut rd = BufReader::with_capacity(MBAP + pdu::MAX_PDU, rd);
    let mut head = [0u8; MBAP];
    let mut body = [0u8; pdu::MAX_PDU];
    let mut out = Vec::with_capacity(MBAP + pdu::MAX_PDU);
    let cfg = &s.cfg;
    loop {
        match timeout(cfg.idle_timeout, rd.read_exact(&mut head[..1])).await {
            Err(_) => {
                s.n.closed_idle.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%peer, "Modbus connection idle, closed");
                return;
            }
            Ok(Err(_)) => return,
            Ok(Ok(_)) => {}
        }
        let deadline = Instant::now() + cfg.frame_timeout;
        let frame_timed_out = || {
            s.n.closed_frame_timeout.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%peer, "Modbus frame incomplete within the frame timeout, closed");
        };
        match timeout_at(deadline, rd.read_exact(&mut head[1..])).await {
            Err(_) => return frame_timed_out(),
            Ok(Err(_)) => return,
            Ok(Ok(_)) => {}
        }
        let protocol = u16::from_be_bytes([head[2], head[3]]);
        let length = u16::from_be_bytes([head[4], head[5]]) as usize;
        if protocol != 0 || !(2..=pdu::MAX_PDU + 1).contains(&length) {
            s.n.closed_malformed.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%peer, protocol, length, "impossible MBAP header, connection closed");
            return;
        }
        let pdu_len = length - 1;
        match timeout_at(deadline, rd.read_exact(&mut body[..pdu_len])).await {
            Err(_) => return frame_timed_out(),
            Ok(Err(_)) => return,
            Ok(Ok(_)) => {}
        }
        s.n.requests.fetch_add(1, Ordering::Relaxed);
        out.clear();
        out.extend_from_slice(&head);
        handle(s, head[6], &body[..pdu_len], &mut out).await;
        let reply_len = (out.len() - 6) as u16;
        out[4..6].copy_from_slice(&reply_len.to_be_bytes());
        match timeout(cfg.frame_timeout, wr.write_all(&out)).await {
            Ok(Ok(())) => {}
            Err(_) => return frame_timed_out(),
            Ok(Err(_)) => return,
        }
    }
}

/// Appends the reply PDU for `pdu` to `out` (which holds the MBAP header).
async fn handle(s: &Shared, unit: u8, pdu: &[u8], out: &mut Vec<u8>) {
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
            let snap = s.plc.outputs();
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
            let snap = s.plc.outputs();
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
            let snap = s.plc.outputs();
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

/// A server without a listener, for the fuzz target and its replay test
/// (`fuzz/entries`): what a client sends in, what it would receive out, through the same
/// framing, decoding and execution as a TCP connection.
#[doc(hidden)]
pub struct Detached(Shared);

impl Detached {
    pub fn new(cfg: ServerConfig, plc: Arc<dyn ImagePort>) -> Detached {
        let local_addr = SocketAddr::from(([127, 0, 0, 1], cfg.port));
        Detached(Shared { cfg, plc, pending: Mutex::new(Pending::default()), n: Counters::default(), local_addr })
    }

    /// Serves `input` as one connection's bytes (inside a tokio runtime with time enabled).
    /// Each call starts with no pending `%MD`/`%ML` writes, so equal input gives equal output.
    pub async fn serve_bytes(&self, input: &[u8]) -> Vec<u8> {
        *self.0.pending.lock().unwrap_or_else(|p| p.into_inner()) = Pending::default();
        let mut out = Vec::new();
        serve_io(input, &mut out, self.0.local_addr, &self.0).await;
        out
    }
}

type Build<'a> = dyn Fn(&Pending, &OutputSnapshot, &mut Vec<(IecAddress, u64)>) + Sync + 'a;

/// Queues the writes `build` makes and waits until rt-core has applied them. A full
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
        Ok(()) => Ok(()),
        Err(e) => {
            if matches!(e, PortError::Timeout { .. }) {
                s.n.write_timeouts.fetch_add(1, Ordering::Relaxed);
            }
            tracing::warn!("Modbus write not applied by rt-core within {:?}: {e}", s.cfg.write_timeout);
            Err(Exception::ServerDeviceFailure)
        }
    }
}
