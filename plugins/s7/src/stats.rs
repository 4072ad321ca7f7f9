//! What a running server has done, for logs and the companion's `/api/plugins`.

use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
pub struct Stats {
    pub(crate) accepted: AtomicU64,
    pub(crate) open: AtomicU64,
    pub(crate) refused_max_clients: AtomicU64,
    pub(crate) refused_per_source: AtomicU64,
    pub(crate) refused_tsap: AtomicU64,
    requests: AtomicU64,
    item_errors: AtomicU64,
    oversized: AtomicU64,
    refused_functions: AtomicU64,
    write_failures: AtomicU64,
    pub(crate) closed_idle: AtomicU64,
    pub(crate) closed_timeout: AtomicU64,
    pub(crate) closed_malformed: AtomicU64,
    pub(crate) accept_errors: AtomicU64,
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

impl Stats {
    pub(crate) fn request(&self) {
        add(&self.requests, 1);
    }
    pub(crate) fn item_errors(&self, n: usize) {
        add(&self.item_errors, n as u64);
    }
    pub(crate) fn oversized(&self) {
        add(&self.oversized, 1);
    }
    pub(crate) fn refused_function(&self) {
        add(&self.refused_functions, 1);
    }
    pub(crate) fn write_failed(&self) {
        add(&self.write_failures, 1);
    }
    pub(crate) fn bump(c: &AtomicU64) {
        add(c, 1);
    }

    pub fn snapshot(&self, local_addr: String) -> ServerStatus {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ServerStatus {
            local_addr,
            connections: g(&self.open),
            accepted: g(&self.accepted),
            refused_max_clients: g(&self.refused_max_clients),
            refused_per_source: g(&self.refused_per_source),
            refused_tsap: g(&self.refused_tsap),
            requests: g(&self.requests),
            item_errors: g(&self.item_errors),
            oversized_replies: g(&self.oversized),
            refused_functions: g(&self.refused_functions),
            write_failures: g(&self.write_failures),
            closed_idle: g(&self.closed_idle),
            closed_timeout: g(&self.closed_timeout),
            closed_malformed: g(&self.closed_malformed),
            accept_errors: g(&self.accept_errors),
        }
    }
}

/// Counters of a running server.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ServerStatus {
    pub local_addr: String,
    /// Connections being served now.
    pub connections: u64,
    pub accepted: u64,
    /// Closed at once: `max_clients` were being served.
    pub refused_max_clients: u64,
    /// Closed at once: that address already had `max_clients_per_source`.
    pub refused_per_source: u64,
    /// Connection requests refused for their rack/slot or connection type.
    pub refused_tsap: u64,
    /// S7 PDUs handled.
    pub requests: u64,
    /// Read/write items answered with an error code.
    pub item_errors: u64,
    /// Reads refused whole because the reply would not fit the PDU.
    pub oversized_replies: u64,
    /// Functions answered "not available" (PLC control, block transfer, …).
    pub refused_functions: u64,
    /// Write requests rt-core did not apply.
    pub write_failures: u64,
    pub closed_idle: u64,
    /// Closed because a frame or a reply did not complete in time.
    pub closed_timeout: u64,
    /// Closed for a frame or PDU that does not parse.
    pub closed_malformed: u64,
    pub accept_errors: u64,
}
