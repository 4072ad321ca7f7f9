//! The Modbus TCP server.
//!
//! Framing and decoding are ours rather than tokio-modbus's server, because a PLC's
//! server must answer malformed-but-framed requests with the right exception and keep the
//! connection, bound every wait, and survive any input; tokio-modbus 0.17's server closes
//! the connection on byte-count or coil-value errors (which are exception 3), computes
//! `quantity * 2` in u16 (a debug-build panic for quantities past 32767), accepts any
//! MBAP length up to 64 KiB, and stops serving on the first `accept` error.
//!
//! - [`admission`]: who may hold a connection. A global cap and a per-source cap (an IPv4
//!   address or an IPv6 /64); at either, the longest-idle connection (of the heaviest
//!   source first) is closed to make room rather than a newcomer refused, so idle sockets
//!   cannot lock live clients out. Only when every candidate is in the middle of a request
//!   is a newcomer closed at once.
//! - [`conn`]: per connection, an idle timeout between requests, a frame timeout once a
//!   frame has begun (a half frame followed by silence is closed when it runs out) and for
//!   sending the reply. A frame whose MBAP header is impossible (protocol id not 0, length
//!   outside 2..=254) closes the connection at once, since the stream can no longer be
//!   trusted to be in step. No path sleeps: an error is answered or the connection closed
//!   immediately.
//! - [`execute`]: reads take one snapshot per request (the port's shared copy of the
//!   latest scan), once it shows every write answered so far. Writes are queued for rt-core,
//!   all or nothing, and answered as soon as rt-core has applied them, at the start of the
//!   next cycle (writes from every connection in one batch); FC 23 reads after its write is
//!   applied. A write of part of a `%MD`
//!   or `%ML` value keeps the other words as they were in the latest published value (or as
//!   the latest still-unpublished write of ours left them).

mod admission;
mod conn;
mod execute;

use crate::config::ServerConfig;
use admission::{Admission, Refusal};
use execute::Pending;
use openplc_port::ImagePort;
use serde::Serialize;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

const MBAP: usize = 7;

/// Counters of a running server.
#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    refused: AtomicU64,
    evicted: AtomicU64,
    open: AtomicU64,
    requests: AtomicU64,
    exceptions: AtomicU64,
    closed_idle: AtomicU64,
    closed_evicted: AtomicU64,
    closed_frame_timeout: AtomicU64,
    closed_malformed: AtomicU64,
    write_busy: AtomicU64,
    write_timeouts: AtomicU64,
    writes_applied: AtomicU64,
    write_scans: AtomicU64,
    accept_errors: AtomicU64,
}

/// What the server has done so far.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ServerStatus {
    pub local_addr: String,
    /// Connections being served now.
    pub connections: u64,
    pub accepted: u64,
    /// Connections closed at once because a cap was reached and every connection that
    /// could have made room was in the middle of a request.
    pub refused: u64,
    /// Idle connections chosen to make room for a new one (closed as soon as they notice,
    /// counted again in `closed_evicted`).
    pub evicted: u64,
    pub requests: u64,
    /// Requests answered with an exception.
    pub exceptions: u64,
    pub closed_idle: u64,
    /// Connections closed because they were evicted.
    pub closed_evicted: u64,
    pub closed_frame_timeout: u64,
    /// Connections closed for an impossible MBAP header.
    pub closed_malformed: u64,
    /// Writes that found rt-core's queue full (retried until `write_timeout`).
    pub write_busy: u64,
    /// Writes rt-core did not apply within `write_timeout` (answered with exception 4).
    pub write_timeouts: u64,
    /// Write requests answered once rt-core had applied them.
    pub writes_applied: u64,
    /// Scans that applied those writes: counted each time the latest cycle in which an
    /// answered write was applied moves on, so `writes_applied / write_scans` is how many
    /// requests, from every connection, one scan took at once.
    pub write_scans: u64,
    pub accept_errors: u64,
}

struct Shared {
    cfg: ServerConfig,
    plc: Arc<dyn ImagePort>,
    pending: Mutex<Pending>,
    /// The latest loop cycle in which a write we answered was applied.
    answered_in: AtomicU64,
    admission: Arc<Admission>,
    n: Counters,
    local_addr: SocketAddr,
}

impl Shared {
    fn new(cfg: ServerConfig, plc: Arc<dyn ImagePort>, local_addr: SocketAddr) -> Shared {
        let admission = Admission::new(cfg.max_connections, cfg.max_connections_per_source);
        Shared {
            cfg,
            plc,
            pending: Mutex::new(Pending::default()),
            answered_in: AtomicU64::new(0),
            admission,
            n: Counters::default(),
            local_addr,
        }
    }
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
        let shared = Arc::new(Shared::new(cfg, plc, local_addr));
        let (shutdown, rx) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, shared.clone(), rx));
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
            evicted: g(&n.evicted),
            requests: g(&n.requests),
            exceptions: g(&n.exceptions),
            closed_idle: g(&n.closed_idle),
            closed_evicted: g(&n.closed_evicted),
            closed_frame_timeout: g(&n.closed_frame_timeout),
            closed_malformed: g(&n.closed_malformed),
            write_busy: g(&n.write_busy),
            write_timeouts: g(&n.write_timeouts),
            writes_applied: g(&n.writes_applied),
            write_scans: g(&n.write_scans),
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

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => match shared.admission.admit(peer.ip()) {
                    Ok((slot, admitted)) => {
                        shared.n.accepted.fetch_add(1, Ordering::Relaxed);
                        if let Some(source) = admitted.evicted {
                            shared.n.evicted.fetch_add(1, Ordering::Relaxed);
                            tracing::debug!(%peer, %source, "Modbus connection admitted in place of an idle one");
                        }
                        let s = shared.clone();
                        conns.spawn(async move { conn::serve(stream, peer, &s, slot).await });
                    }
                    Err(refusal) => {
                        shared.n.refused.fetch_add(1, Ordering::Relaxed);
                        let why = match refusal {
                            Refusal::SourceFull => "its source holds max_connections_per_source busy connections",
                            Refusal::Full => "max_connections busy connections are held",
                        };
                        tracing::debug!(%peer, "Modbus connection refused: {why}");
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

/// A server without a listener, for the fuzz target and its replay test
/// (`fuzz/entries`): what a client sends in, what it would receive out, through the same
/// framing, decoding and execution as a TCP connection.
#[doc(hidden)]
pub struct Detached(Shared);

impl Detached {
    pub fn new(cfg: ServerConfig, plc: Arc<dyn ImagePort>) -> Detached {
        let local_addr = SocketAddr::from(([127, 0, 0, 1], cfg.port));
        Detached(Shared::new(cfg, plc, local_addr))
    }

    /// Serves `input` as one connection's bytes (inside a tokio runtime with time enabled).
    /// Each call starts with no pending `%MD`/`%ML` writes nor answered ones, so equal input
    /// gives equal output.
    pub async fn serve_bytes(&self, input: &[u8]) -> Vec<u8> {
        *self.0.pending.lock().unwrap_or_else(|p| p.into_inner()) = Pending::default();
        self.0.answered_in.store(0, Ordering::Release);
        let mut out = Vec::new();
        // The only connection: admitted whatever the caps.
        if let Ok((slot, _)) = self.0.admission.admit(self.0.local_addr.ip()) {
            conn::serve_io(input, &mut out, self.0.local_addr, &self.0, &slot).await;
        }
        out
    }
}
