//! The TCP side: accept, limits, timeouts; the protocol is [`Session`]'s.
//!
//! Limits: `max_clients` connections at once and `max_clients_per_source` from one
//! address (one past either is closed as soon as it is accepted). Timeouts: the
//! connection request must arrive within `recv_timeout` of the TCP connect; between
//! requests a connection may be silent for `ping_timeout`; a frame once begun must be
//! complete within `recv_timeout`, and a reply taken by the client within
//! `send_timeout`. A TPKT header announcing a frame longer than the agreed TPDU size (or
//! shorter than any TPDU) closes the connection at once. No path sleeps.

use crate::config::S7Config;
use crate::session::{Close, Service, Session};
use crate::stats::{ServerStatus, Stats};
use crate::wire::iso;
use openplc_port::ImagePort;
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::{Instant, timeout, timeout_at};

struct Shared {
    svc: Service,
    local_addr: SocketAddr,
    per_source: Mutex<HashMap<IpAddr, usize>>,
    next_ref: AtomicU16,
}

/// A running S7 server.
pub struct Server {
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Binds `bind_address:port` and starts serving (inside a tokio runtime).
    pub async fn start(cfg: S7Config, image: Arc<dyn ImagePort>) -> io::Result<Server> {
        let listener = TcpListener::bind((cfg.bind_address.as_str(), cfg.port)).await.map_err(|e| {
            io::Error::new(e.kind(), format!("S7 server cannot listen on {}:{}: {e}", cfg.bind_address, cfg.port))
        })?;
        let local_addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            svc: Service::new(cfg, image),
            local_addr,
            per_source: Mutex::new(HashMap::new()),
            next_ref: AtomicU16::new(1),
        });
        let (shutdown, rx) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, shared.clone(), rx));
        tracing::info!(addr = %local_addr, "S7 server listening");
        Ok(Server { shared, shutdown, task })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    pub fn status(&self) -> ServerStatus {
        self.shared.svc.stats.snapshot(self.shared.local_addr.to_string())
    }

    /// Stops listening and closes every connection.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
        tracing::info!(addr = %self.shared.local_addr, "S7 server stopped");
    }
}

/// Holds one connection's places in the global and per-source counts.
struct Slot {
    shared: Arc<Shared>,
    peer: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.shared.svc.stats.open.fetch_sub(1, Ordering::Relaxed);
        let mut map = self.shared.per_source.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.peer);
            }
        }
    }
}

impl Shared {
    /// Takes a place for a connection from `peer`, or says which limit refused it.
    fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Slot, &'static str> {
        let cfg = &self.svc.cfg;
        let stats = &self.svc.stats;
        let mut map = self.per_source.lock().unwrap_or_else(|p| p.into_inner());
        if stats.open.load(Ordering::Relaxed) as usize >= cfg.max_clients {
            Stats::bump(&stats.refused_max_clients);
            return Err("max_clients");
        }
        let n = map.entry(peer).or_insert(0);
        if *n >= cfg.max_clients_per_source {
            Stats::bump(&stats.refused_per_source);
            return Err("max_clients_per_source");
        }
        *n += 1;
        stats.open.fetch_add(1, Ordering::Relaxed);
        Stats::bump(&stats.accepted);
        Ok(Slot { shared: self.clone(), peer })
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => match shared.admit(peer.ip()) {
                    Ok(slot) => {
                        conns.spawn(async move {
                            let shared = slot.shared.clone();
                            serve(stream, peer, &shared).await;
                            drop(slot);
                        });
                    }
                    Err(limit) => {
                        if shared.svc.cfg.logging.connections {
                            tracing::info!(%peer, "S7 connection refused: {limit} reached");
                        }
                        drop(stream);
                    }
                },
                Err(e) => {
                    Stats::bump(&shared.svc.stats.accept_errors);
                    tracing::warn!("S7 accept failed: {e}");
                    // Out of file descriptors: accept would fail again at once, so give the
                    // connections being closed a moment instead of spinning. This pauses the
                    // listener, never a reply.
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

enum Ended {
    Closed(Close),
    Eof,
    Idle,
    Timeout,
}

async fn serve(stream: TcpStream, peer: SocketAddr, shared: &Shared) {
    let svc = &shared.svc;
    let log = svc.cfg.logging;
    if log.connections {
        tracing::info!(%peer, "S7 client connected");
    }
    let _ = stream.set_nodelay(true);
    let local_ref = shared.next_ref.fetch_add(1, Ordering::Relaxed).max(1);
    let ended = run(stream, svc, local_ref).await;
    let stats = &svc.stats;
    match &ended {
        Ended::Closed(Close::Disconnect) | Ended::Eof => {}
        Ended::Closed(Close::Refused(tsap)) => {
            Stats::bump(&stats.refused_tsap);
            if log.connections {
                tracing::info!(%peer, "S7 connection refused: called TSAP {tsap:04x} names no rack/slot served here");
            }
        }
        Ended::Closed(e) => {
            Stats::bump(&stats.closed_malformed);
            if log.errors {
                tracing::warn!(%peer, "S7 connection closed: {e}");
            }
        }
        Ended::Idle => Stats::bump(&stats.closed_idle),
        Ended::Timeout => Stats::bump(&stats.closed_timeout),
    }
    if log.connections {
        let why = match ended {
            Ended::Idle => "idle",
            Ended::Timeout => "timed out",
            _ => "closed",
        };
        tracing::info!(%peer, "S7 client disconnected ({why})");
    }
}

async fn run(stream: TcpStream, svc: &Service, local_ref: u16) -> Ended {
    let cfg = &svc.cfg;
    let (mut rd, mut wr) = stream.into_split();
    let mut session = Session::new(local_ref);
    let mut frame = vec![0u8; iso::TPKT_HEADER + iso::MAX_TPDU];
    let mut out = Vec::with_capacity(2 * (iso::TPKT_HEADER + iso::MAX_TPDU));
    loop {
        // The connection request is due within recv_timeout; later requests may be
        // ping_timeout apart.
        let idle = if session.connected() { cfg.ping_timeout } else { cfg.recv_timeout };
        match timeout(idle, rd.read_exact(&mut frame[..1])).await {
            Err(_) => return if session.connected() { Ended::Idle } else { Ended::Timeout },
            Ok(Err(_)) => return Ended::Eof,
            Ok(Ok(_)) => {}
        }
        let deadline = Instant::now() + cfg.recv_timeout;
        match timeout_at(deadline, rd.read_exact(&mut frame[1..iso::TPKT_HEADER])).await {
            Err(_) => return Ended::Timeout,
            Ok(Err(_)) => return Ended::Eof,
            Ok(Ok(_)) => {}
        }
        let header = [frame[0], frame[1], frame[2], frame[3]];
        let len = match iso::frame_len(header, session.max_frame()) {
            Ok(len) => len,
            Err(e) => return Ended::Closed(Close::Iso(e)),
        };
        match timeout_at(deadline, rd.read_exact(&mut frame[iso::TPKT_HEADER..len])).await {
            Err(_) => return Ended::Timeout,
            Ok(Err(_)) => return Ended::Eof,
            Ok(Ok(_)) => {}
        }
        out.clear();
        let result = session.on_frame(svc, &frame[iso::TPKT_HEADER..len], &mut out).await;
        if !out.is_empty() {
            match timeout(cfg.send_timeout, wr.write_all(&out)).await {
                Err(_) => return Ended::Timeout,
                Ok(Err(_)) => return Ended::Eof,
                Ok(Ok(())) => {}
            }
        }
        if let Err(close) = result {
            let _ = wr.shutdown().await;
            return Ended::Closed(close);
        }
    }
}
