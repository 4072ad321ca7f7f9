//! The server's TCP front: it accepts the connections, enforces the connection caps (in
//! all and per source address) before a byte of OPC-UA is parsed, and relays each accepted
//! connection to async-opcua, which listens on a loopback port of its own. (async-opcua
//! accepts whatever connects; this is the one place a source address is known.)

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

#[derive(Default)]
struct Counts {
    total: usize,
    per_source: HashMap<IpAddr, usize>,
}

pub struct FrontStats {
    counts: Mutex<Counts>,
    pub refused: AtomicU64,
    pub accepted: AtomicU64,
}

impl FrontStats {
    fn counts(&self) -> MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn open(&self) -> usize {
        self.counts().total
    }
}

/// One accepted connection's place in the counts, given back when it ends.
struct Slot {
    stats: Arc<FrontStats>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.stats.counts();
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_source.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                c.per_source.remove(&self.ip);
            }
        }
    }
}

pub struct Front {
    pub stats: Arc<FrontStats>,
    stop: CancellationToken,
    accept: tokio::task::JoinHandle<()>,
}

impl Front {
    /// Relays connections accepted on `listener` to `inner`.
    pub fn start(listener: TcpListener, inner: SocketAddr, max_total: usize, max_per_source: usize) -> Front {
        let stats =
            Arc::new(FrontStats { counts: Mutex::default(), refused: AtomicU64::new(0), accepted: AtomicU64::new(0) });
        let stop = CancellationToken::new();
        let (s, token) = (stats.clone(), stop.clone());
        let accept = tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = token.cancelled() => return,
                    a = listener.accept() => a,
                };
                let Ok((socket, peer)) = accepted else {
                    // Out of descriptors and the like: a short pause instead of a hot loop.
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                };
                let ip = peer.ip();
                let slot = {
                    let mut c = s.counts();
                    let mine = c.per_source.get(&ip).copied().unwrap_or(0);
                    if c.total >= max_total || mine >= max_per_source {
                        None
                    } else {
                        c.total += 1;
                        *c.per_source.entry(ip).or_default() += 1;
                        Some(Slot { stats: s.clone(), ip })
                    }
                };
                let Some(slot) = slot else {
                    s.refused.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!("OPC-UA: refused a connection from {peer}: connection limit");
                    drop(socket);
                    continue;
                };
                s.accepted.fetch_add(1, Ordering::Relaxed);
                let token = token.clone();
                tokio::spawn(async move {
                    let _slot = slot;
                    relay(socket, inner, token).await;
                });
            }
        });
        Front { stats, stop, accept }
    }

    /// Closes every relayed connection and the listening socket; returns once the socket
    /// is closed (a restart may bind the same port at once).
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.accept.await;
    }
}

async fn relay(outer: TcpStream, inner: SocketAddr, stop: CancellationToken) {
    let Ok(upstream) = TcpStream::connect(inner).await else { return };
    let _ = outer.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (mut outer_rx, mut outer_tx) = outer.into_split();
    let (mut up_rx, mut up_tx) = upstream.into_split();
    // Either side ending ends the connection: the server closing it (an error, a hello
    // timeout, a session closed) must close the client's socket too, and a client gone
    // must free the server's.
    tokio::select! {
        _ = stop.cancelled() => {}
        _ = tokio::io::copy(&mut outer_rx, &mut up_tx) => {}
        _ = tokio::io::copy(&mut up_rx, &mut outer_tx) => {}
    }
}
