//! Who may hold one of the server's connections: a global cap, a per-source cap, and
//! eviction of an idle connection instead of refusing a newcomer.
//!
//! A source is an IPv4 address or an IPv6 /64 (one subscriber's prefix: whoever has one
//! IPv6 line has a whole /64). A connection is *idle* while it waits for the first byte of
//! its next request (or of its first one) and *busy* from that byte until its reply is
//! sent, so a request that has begun is never cut short. When a newcomer arrives:
//!
//! - its source already holds `per_source` connections: that source's longest-idle
//!   connection is closed to make room (a client that reconnects after losing its link
//!   is not locked out by its own dead sockets until the idle timeout);
//! - all `max` connections are held: the longest-idle connection of the heaviest source
//!   (most connections held) is closed, so a source flooding the server with idle sockets
//!   pays first and a light source's live client is served at once;
//! - nothing can be evicted because every candidate is busy: the newcomer is refused.
//!
//! Marking idle and busy is one atomic store or compare-and-swap per request; the table
//! behind a mutex is touched only when a connection opens or closes.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;
use tokio::sync::Notify;

/// The unit the per-source cap counts: an IPv4 address (IPv4-mapped IPv6 included), or the
/// /64 of an IPv6 address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Source(IpAddr);

impl Source {
    pub fn of(peer: IpAddr) -> Source {
        match peer {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Source(IpAddr::V4(v4)),
                None => Source(IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into())),
            },
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

/// `Conn::state` while a request is being read, executed or answered.
const BUSY: u64 = 0;
/// `Conn::state` once the connection was chosen for eviction.
const EVICTED: u64 = u64::MAX;

/// What a connection shares with the table: its state and the switch an eviction throws.
struct Conn {
    /// [`BUSY`], [`EVICTED`], or the time it became idle (ns since the table's epoch, + 1).
    state: AtomicU64,
    evicted: Notify,
}

struct Entry {
    source: Source,
    conn: Arc<Conn>,
}

#[derive(Default)]
struct Table {
    next_id: u64,
    conns: HashMap<u64, Entry>,
    per_source: HashMap<Source, usize>,
}

impl Table {
    fn remove(&mut self, id: u64) -> Option<Entry> {
        let entry = self.conns.remove(&id)?;
        if let Some(n) = self.per_source.get_mut(&entry.source) {
            *n -= 1;
            if *n == 0 {
                self.per_source.remove(&entry.source);
            }
        }
        Some(entry)
    }

    /// The idle connection to close: among `only`'s connections if given, else the
    /// heaviest source's longest-idle one. `None` when every candidate is busy.
    fn victim(&self, only: Option<Source>) -> Option<(u64, u64)> {
        self.conns
            .iter()
            .filter(|(_, e)| only.is_none_or(|s| e.source == s))
            .filter_map(|(&id, e)| {
                let since = e.conn.state.load(Ordering::Acquire);
                (since != BUSY && since != EVICTED).then(|| {
                    let weight = self.per_source.get(&e.source).copied().unwrap_or(0);
                    (weight, std::cmp::Reverse(since), id)
                })
            })
            .max()
            .map(|(_, std::cmp::Reverse(since), id)| (id, since))
    }
}

/// Why a connection was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Its source holds `per_source` connections and every one of them is busy.
    SourceFull,
    /// The server holds `max` connections and every one of them is busy.
    Full,
}

/// What admitting a connection did.
#[derive(Debug, PartialEq, Eq)]
pub struct Admitted {
    /// The source of the connection closed to make room, if one was.
    pub evicted: Option<Source>,
}

/// The connection table of one server.
pub struct Admission {
    max: usize,
    per_source: usize,
    epoch: Instant,
    table: Mutex<Table>,
}

impl Admission {
    /// At most `max` connections, at most `per_source` from one source (both at least 1).
    pub fn new(max: usize, per_source: usize) -> Arc<Admission> {
        let max = max.max(1);
        Arc::new(Admission {
            max,
            per_source: per_source.clamp(1, max),
            epoch: Instant::now(),
            table: Mutex::default(),
        })
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        // Every critical section leaves the table whole, so a panic elsewhere must not
        // stop the server from admitting connections.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn now(&self) -> u64 {
        // + 1: never BUSY.
        self.epoch.elapsed().as_nanos().min(u128::from(EVICTED - 2)) as u64 + 1
    }

    /// Admits a connection from `peer`, idle from now, closing an idle one when a cap is
    /// reached (see the module documentation).
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<(Slot, Admitted), Refusal> {
        let source = Source::of(peer);
        let mut table = self.table();
        let mut evicted = None;
        loop {
            let held = table.per_source.get(&source).copied().unwrap_or(0);
            let (only, refusal) = if held >= self.per_source {
                (Some(source), Refusal::SourceFull)
            } else if table.conns.len() >= self.max {
                (None, Refusal::Full)
            } else {
                break;
            };
            let (id, since) = table.victim(only).ok_or(refusal)?;
            let conn = &table.conns[&id].conn;
            // Lost only to the connection's own request starting: choose again.
            if conn.state.compare_exchange(since, EVICTED, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                let entry = table.remove(id).ok_or(refusal)?;
                entry.conn.evicted.notify_one();
                evicted = Some(entry.source);
            }
        }
        let id = table.next_id;
        table.next_id += 1;
        let conn = Arc::new(Conn { state: AtomicU64::new(self.now()), evicted: Notify::new() });
        table.conns.insert(id, Entry { source, conn: conn.clone() });
        *table.per_source.entry(source).or_default() += 1;
        Ok((Slot { admission: self.clone(), id, conn }, Admitted { evicted }))
    }

    /// Connections held now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.table().conns.len()
    }
}

/// A connection's place in the table, from accept until it is closed.
pub struct Slot {
    admission: Arc<Admission>,
    id: u64,
    conn: Arc<Conn>,
}

impl Slot {
    /// A request has begun (its first byte arrived). False when the connection was evicted
    /// just before: it must close without serving.
    pub fn busy(&self) -> bool {
        let state = &self.conn.state;
        let since = state.load(Ordering::Acquire);
        since != EVICTED && state.compare_exchange(since, BUSY, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    /// The reply went out; the connection waits for its next request.
    pub fn idle(&self) {
        // Only the connection itself moves the state away from BUSY (eviction takes idle
        // connections only), so a plain store cannot undo an eviction.
        self.conn.state.store(self.admission.now(), Ordering::Release);
    }

    /// Resolves once the connection has been evicted.
    pub async fn evicted(&self) {
        self.conn.evicted.notified().await
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        // Gone already when it was evicted: its place went to the newcomer.
        self.admission.table().remove(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn v4(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
    }

    #[test]
    fn sources_are_addresses_and_ipv6_slash_64s() {
        assert_eq!(Source::of(v4(1)), Source::of(v4(1)));
        assert_ne!(Source::of(v4(1)), Source::of(v4(2)));
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:1:2:3".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(Source::of(a), Source::of(b), "one /64");
        assert_ne!(Source::of(a), Source::of(c));
        assert_eq!(Source::of(a).to_string(), "2001:db8:1:2::/64");
        let mapped = IpAddr::V6(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped());
        assert_eq!(Source::of(mapped), Source::of(v4(1)), "IPv4-mapped is the IPv4 source");
        assert_ne!(Source::of(IpAddr::V6(Ipv6Addr::LOCALHOST)), Source::of(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    }

    #[test]
    fn a_full_server_evicts_the_heaviest_sources_longest_idle_connection() {
        let adm = Admission::new(4, 4);
        let (a1, _) = adm.admit(v4(1)).unwrap();
        let (a2, _) = adm.admit(v4(1)).unwrap();
        let (a3, _) = adm.admit(v4(1)).unwrap();
        let (b1, _) = adm.admit(v4(2)).unwrap();
        // a1 is busy; a2 became idle before a3, so a2 has been idle longest among source 1.
        assert!(a1.busy());
        a2.idle();
        std::thread::sleep(std::time::Duration::from_millis(2));
        a3.idle();
        // b1 has been idle longest of all, but source 1 is the heaviest.
        let (c1, admitted) = adm.admit(v4(3)).unwrap();
        assert_eq!(admitted.evicted, Some(Source::of(v4(1))));
        assert!(!a2.busy(), "a2 was evicted");
        assert!(a3.busy() && a1.busy() && b1.busy(), "the others were not");
        assert_eq!(adm.len(), 4);
        // Every connection busy now: a newcomer is refused, nothing is cut short.
        assert!(c1.busy());
        assert_eq!(adm.admit(v4(4)).err(), Some(Refusal::Full));
        drop(a2);
        assert_eq!(adm.len(), 4, "an evicted slot was already given up");
        drop(a3);
        assert_eq!(adm.len(), 3);
        assert!(adm.admit(v4(4)).is_ok());
    }

    #[test]
    fn a_source_at_its_cap_makes_room_from_its_own_idle_connections() {
        let adm = Admission::new(10, 2);
        let (a1, _) = adm.admit(v4(1)).unwrap();
        let (b1, _) = adm.admit(v4(2)).unwrap();
        let (a2, _) = adm.admit(v4(1)).unwrap();
        let (a3, admitted) = adm.admit(v4(1)).unwrap();
        assert_eq!(admitted.evicted, Some(Source::of(v4(1))));
        assert!(!a1.busy(), "the source's longest-idle connection went");
        assert!(b1.busy(), "another source's connection did not, although it was idle longer");
        assert!(a2.busy() && a3.busy());
        assert_eq!(adm.admit(v4(1)).err(), Some(Refusal::SourceFull), "both busy: refused");
        assert!(adm.admit(v4(5)).is_ok(), "other sources still get in");
    }

    #[tokio::test]
    async fn an_evicted_connection_is_told() {
        let adm = Admission::new(1, 1);
        let (a, _) = adm.admit(v4(1)).unwrap();
        let (_b, _) = adm.admit(v4(2)).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), a.evicted()).await.expect("told at once");
    }
}
