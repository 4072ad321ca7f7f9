//! Who may hold a connection: a global cap, per-source caps, and eviction of the heaviest
//! source when the global cap is full.
//!
//! A source is an IPv4 address or an IPv6 /64 (one subscriber's prefix: an attacker with
//! one IPv6 line owns a whole /64). Every accepted TCP connection holds a [`Ticket`] from
//! accept until its socket is closed, including after an upgrade to a WebSocket, so the caps
//! count everything that holds a descriptor. Each ticket is in one phase:
//!
//! - *pending*: TLS or the first request head not yet complete (the slowloris phase);
//! - *HTTP*: it has sent at least one complete request head;
//! - *WebSocket*: upgraded.
//!
//! The per-source caps mean that one address can exhaust nothing another address needs:
//! it holds at most [`Limits::per_source`] of the [`Limits::connections`] slots, and when
//! several heavy sources together fill them, a new connection from a lighter source evicts
//! one connection of the heaviest source (its oldest pending one first, then its oldest
//! HTTP one, then its oldest WebSocket) instead of being refused.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// The caps. [`Limits::default`] holds the values the README documents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Connections held at once, all sources together (WebSockets included).
    pub connections: usize,
    /// Connections one source may hold.
    pub per_source: usize,
    /// Connections one source may have in the pending phase (TLS or first head unfinished).
    pub pending_per_source: usize,
    /// WebSockets one source may hold.
    pub websockets_per_source: usize,
}

impl Default for Limits {
    fn default() -> Self {
        // 128 per source leaves room for the full-load bench (50 HTTPS + 10 debugger
        // clients from one machine) and for several engineers behind one NAT address.
        Limits { connections: 512, per_source: 128, pending_per_source: 32, websockets_per_source: 32 }
    }
}

/// The unit the per-source caps count: an IPv4 address, or the /64 of an IPv6 address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Source(IpAddr);

impl Source {
    pub fn of(peer: IpAddr) -> Source {
        match crate::settings::canonical_ip(peer) {
            IpAddr::V6(v6) => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                Source(IpAddr::V6(prefix.into()))
            }
            v4 => Source(v4),
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V6(_) => write!(f, "{}/64", self.0),
            IpAddr::V4(_) => write!(f, "{}", self.0),
        }
    }
}

/// Why a connection was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("too many unfinished handshakes from this source")]
    SourcePending,
    #[error("too many connections from this source")]
    SourceFull,
    #[error("the server is full and this source is among the heaviest")]
    Full,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Pending,
    Http,
    WebSocket,
}

/// The part of a ticket its socket shares: the switch an eviction throws.
#[derive(Default)]
pub struct Slot {
    killed: AtomicBool,
    notify: Notify,
    /// Wakers of the socket's reader and writer, so an evicted WebSocket (whose socket is
    /// owned by the WebSocket task, not by the connection task) notices at once.
    pub(super) read_waker: futures_util::task::AtomicWaker,
    pub(super) write_waker: futures_util::task::AtomicWaker,
}

impl Slot {
    pub fn is_killed(&self) -> bool {
        self.killed.load(Ordering::Acquire)
    }

    fn kill(&self) {
        self.killed.store(true, Ordering::Release);
        self.notify.notify_waiters();
        self.read_waker.wake();
        self.write_waker.wake();
    }

    /// Resolves once the connection has been evicted.
    pub async fn killed(&self) {
        loop {
            let notified = self.notify.notified();
            if self.is_killed() {
                return;
            }
            notified.await;
        }
    }
}

struct Entry {
    slot: Arc<Slot>,
    phase: Phase,
}

#[derive(Default)]
struct Held {
    /// By ticket id, which grows with time: the first entry of a phase is its oldest.
    entries: BTreeMap<u64, Entry>,
    pending: usize,
    websockets: usize,
}

impl Held {
    fn count(&mut self, phase: Phase, delta: isize) {
        let counter = match phase {
            Phase::Pending => &mut self.pending,
            Phase::WebSocket => &mut self.websockets,
            Phase::Http => return,
        };
        *counter = counter.saturating_add_signed(delta);
    }

    fn victim(&self) -> Option<u64> {
        [Phase::Pending, Phase::Http, Phase::WebSocket]
            .into_iter()
            .find_map(|p| self.entries.iter().find(|(_, e)| e.phase == p).map(|(id, _)| *id))
    }
}

#[derive(Default)]
struct Table {
    total: usize,
    sources: HashMap<Source, Held>,
}

impl Table {
    fn remove(&mut self, source: Source, id: u64) -> Option<Entry> {
        let held = self.sources.get_mut(&source)?;
        let entry = held.entries.remove(&id)?;
        held.count(entry.phase, -1);
        if held.entries.is_empty() {
            self.sources.remove(&source);
        }
        self.total -= 1;
        Some(entry)
    }
}

/// Counters of refused and evicted connections, for the server's periodic warning.
#[derive(Default)]
pub struct Refused {
    pub source_pending: AtomicU64,
    pub source_full: AtomicU64,
    pub full: AtomicU64,
    pub evicted: AtomicU64,
}

pub struct Admission {
    limits: Limits,
    table: Mutex<Table>,
    next_id: AtomicU64,
    pub refused: Refused,
}

impl Admission {
    pub fn new(limits: Limits) -> Arc<Admission> {
        Arc::new(Admission { limits, table: Mutex::default(), next_id: AtomicU64::new(1), refused: Refused::default() })
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Connections held now.
    pub fn open(&self) -> usize {
        self.table().total
    }

    /// Admits a new connection from `peer`, evicting one of the heaviest source's when
    /// the server is full and `peer`'s source holds clearly fewer.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Arc<Ticket>, Refusal> {
        let source = Source::of(peer);
        let mut table = self.table();
        let (held, pending) = table.sources.get(&source).map_or((0, 0), |h| (h.entries.len(), h.pending));
        let refuse = |r: Refusal, counter: &AtomicU64| {
            counter.fetch_add(1, Ordering::Relaxed);
            Err(r)
        };
        if pending >= self.limits.pending_per_source {
            return refuse(Refusal::SourcePending, &self.refused.source_pending);
        }
        if held >= self.limits.per_source {
            return refuse(Refusal::SourceFull, &self.refused.source_full);
        }
        if table.total >= self.limits.connections {
            let heaviest = table
                .sources
                .iter()
                .filter(|(s, _)| **s != source)
                .max_by_key(|(_, h)| h.entries.len())
                .map(|(s, h)| (*s, h.entries.len(), h.victim()));
            match heaviest {
                Some((victim_source, count, Some(victim))) if count > held + 1 => {
                    if let Some(entry) = table.remove(victim_source, victim) {
                        entry.slot.kill();
                        self.refused.evicted.fetch_add(1, Ordering::Relaxed);
                    }
                }
                _ => return refuse(Refusal::Full, &self.refused.full),
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let slot = Arc::new(Slot::default());
        let entry = table.sources.entry(source).or_default();
        entry.entries.insert(id, Entry { slot: slot.clone(), phase: Phase::Pending });
        entry.pending += 1;
        table.total += 1;
        Ok(Arc::new(Ticket { admission: self.clone(), source, id, slot }))
    }

    /// Breaks every WebSocket (at shutdown: they have no graceful end of their own here).
    pub fn close_websockets(&self) {
        let table = self.table();
        for held in table.sources.values() {
            held.entries.values().filter(|e| e.phase == Phase::WebSocket).for_each(|e| e.slot.kill());
        }
    }

    /// Moves ticket `id` from phase `from` to `to`; false when it is not in `from` (or
    /// gone), or when `to` is WebSocket and the source already holds its share.
    fn transition(&self, source: Source, id: u64, from: Phase, to: Phase) -> bool {
        let mut table = self.table();
        let Some(held) = table.sources.get_mut(&source) else { return false };
        if to == Phase::WebSocket && held.websockets >= self.limits.websockets_per_source {
            return false;
        }
        let Some(entry) = held.entries.get_mut(&id).filter(|e| e.phase == from) else { return false };
        entry.phase = to;
        held.count(from, -1);
        held.count(to, 1);
        true
    }
}

/// A connection's place: held from accept until the socket is dropped (it travels with the
/// socket into a WebSocket), released on drop.
pub struct Ticket {
    admission: Arc<Admission>,
    source: Source,
    id: u64,
    slot: Arc<Slot>,
}

impl Ticket {
    pub fn slot(&self) -> &Arc<Slot> {
        &self.slot
    }

    pub fn source(&self) -> Source {
        self.source
    }

    /// A complete request head arrived: the connection is no longer pending.
    pub fn request_started(&self) {
        self.admission.transition(self.source, self.id, Phase::Pending, Phase::Http);
    }

    /// Reserves a WebSocket place for an upgrade request; false when the source holds its
    /// share already.
    pub fn reserve_websocket(&self) -> bool {
        self.admission.transition(self.source, self.id, Phase::Http, Phase::WebSocket)
    }

    /// Gives the place back when the upgrade did not happen.
    pub fn cancel_websocket(&self) {
        self.admission.transition(self.source, self.id, Phase::WebSocket, Phase::Http);
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.admission.table().remove(self.source, self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn small() -> Arc<Admission> {
        Admission::new(Limits { connections: 6, per_source: 4, pending_per_source: 2, websockets_per_source: 1 })
    }

    #[test]
    fn sources_are_addresses_and_ipv6_prefixes() {
        assert_eq!(Source::of(ip("::ffff:192.0.2.1")), Source::of(ip("192.0.2.1")));
        assert_eq!(Source::of(ip("2001:db8:1:2::1")), Source::of(ip("2001:db8:1:2:ffff::9")));
        assert_ne!(Source::of(ip("2001:db8:1:2::1")), Source::of(ip("2001:db8:1:3::1")));
        assert_eq!(Source::of(ip("2001:db8:1:2::1")).to_string(), "2001:db8:1:2::/64");
    }

    #[test]
    fn per_source_caps_on_pending_connections_and_websockets() {
        let a = small();
        let p = ip("192.0.2.1");
        let t1 = a.admit(p).unwrap();
        let t2 = a.admit(p).unwrap();
        assert_eq!(a.admit(p).err(), Some(Refusal::SourcePending), "two handshakes at a time");
        t1.request_started();
        let t3 = a.admit(p).unwrap();
        t2.request_started();
        t3.request_started();
        let _t4 = a.admit(p).unwrap();
        assert_eq!(a.admit(p).err(), Some(Refusal::SourceFull));
        assert!(a.admit(ip("192.0.2.2")).is_ok(), "another source is not affected");
        assert!(t1.reserve_websocket());
        assert!(!t2.reserve_websocket(), "one WebSocket per source");
        t1.cancel_websocket();
        assert!(t2.reserve_websocket());
        drop(t1);
        assert!(a.admit(p).is_ok(), "a closed connection frees its place");
    }

    #[test]
    fn a_full_server_evicts_from_the_heaviest_source() {
        let a = small();
        let heavy = ip("192.0.2.1");
        let mut heavy_tickets = Vec::new();
        for _ in 0..4 {
            let t = a.admit(heavy).unwrap();
            t.request_started();
            heavy_tickets.push(t);
        }
        let mid: Vec<_> = (0..2).map(|_| a.admit(ip("192.0.2.2")).unwrap()).collect();
        mid.iter().for_each(|t| t.request_started());
        assert_eq!(a.open(), 6);
        // A new source gets in by evicting the heavy source's oldest connection.
        let light = a.admit(ip("192.0.2.3")).unwrap();
        assert!(heavy_tickets[0].slot().is_killed());
        assert!(!heavy_tickets[1].slot().is_killed());
        assert_eq!(a.open(), 6);
        // The evicted ticket's drop does not free a second place.
        drop(heavy_tickets.remove(0));
        assert_eq!(a.open(), 6);
        // Sources now hold 3, 2, 1: the heaviest keeps what it has against a source of 2.
        assert_eq!(a.admit(ip("192.0.2.2")).err(), Some(Refusal::Full));
        assert_eq!(a.refused.evicted.load(Ordering::Relaxed), 1);
        drop((mid, light));
    }

    #[test]
    fn eviction_prefers_pending_connections() {
        let a =
            Admission::new(Limits { connections: 3, per_source: 3, pending_per_source: 3, websockets_per_source: 3 });
        let heavy = ip("192.0.2.1");
        let old = a.admit(heavy).unwrap();
        old.request_started();
        let pending = a.admit(heavy).unwrap();
        let _third = a.admit(heavy).unwrap();
        let _light = a.admit(ip("192.0.2.9")).unwrap();
        assert!(pending.slot().is_killed(), "the oldest pending one goes first");
        assert!(!old.slot().is_killed());
    }

    #[tokio::test]
    async fn killed_resolves_after_eviction() {
        let a =
            Admission::new(Limits { connections: 2, per_source: 2, pending_per_source: 2, websockets_per_source: 1 });
        let t1 = a.admit(ip("192.0.2.1")).unwrap();
        let _t2 = a.admit(ip("192.0.2.1")).unwrap();
        let slot = t1.slot().clone();
        let waiter = tokio::spawn(async move { slot.killed().await });
        tokio::task::yield_now().await;
        let _t3 = a.admit(ip("192.0.2.2")).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter).await.unwrap().unwrap();
    }
}
