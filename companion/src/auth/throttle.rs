//! Failed-login throttling per source address: 5 failures within a minute lock that
//! address out for a minute, doubling with each further lockout up to 15 minutes. A
//! successful login clears the address. The table is bounded so a scan from many addresses
//! cannot grow it without limit.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const MAX_FAILURES: u32 = 5;
pub const WINDOW: Duration = Duration::from_secs(60);
pub const FIRST_LOCKOUT: Duration = Duration::from_secs(60);
pub const MAX_LOCKOUT: Duration = Duration::from_secs(15 * 60);
const MAX_TRACKED: usize = 4096;

#[derive(Clone, Copy)]
struct Entry {
    failures: u32,
    window_start: Instant,
    locked_until: Option<Instant>,
    lockouts: u32,
}

pub struct LoginThrottle {
    entries: Mutex<HashMap<IpAddr, Entry>>,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        Self::new()
    }
}

impl LoginThrottle {
    pub fn new() -> LoginThrottle {
        LoginThrottle { entries: Mutex::new(HashMap::new()) }
    }

    /// `Err(wait)` while `ip` is locked out.
    pub fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        self.check_at(ip, Instant::now())
    }

    pub fn failure(&self, ip: IpAddr) {
        self.failure_at(ip, Instant::now())
    }

    pub fn success(&self, ip: IpAddr) {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).remove(&ip);
    }

    fn check_at(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        match entries.get(&ip).and_then(|e| e.locked_until) {
            Some(until) if until > now => Err(until - now),
            _ => Ok(()),
        }
    }

    fn failure_at(&self, ip: IpAddr, now: Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_TRACKED && !entries.contains_key(&ip) {
            entries.retain(|_, e| e.locked_until.is_some_and(|u| u > now) || now - e.window_start < WINDOW);
            if entries.len() >= MAX_TRACKED {
                // Still full of live entries: forget the oldest window rather than grow.
                if let Some(oldest) = entries.iter().min_by_key(|(_, e)| e.window_start).map(|(k, _)| *k) {
                    entries.remove(&oldest);
                }
            }
        }
        let e = entries.entry(ip).or_insert(Entry { failures: 0, window_start: now, locked_until: None, lockouts: 0 });
        if now - e.window_start >= WINDOW {
            e.failures = 0;
            e.window_start = now;
        }
        e.failures += 1;
        if e.failures >= MAX_FAILURES {
            let lockout = FIRST_LOCKOUT.saturating_mul(1 << e.lockouts.min(4)).min(MAX_LOCKOUT);
            e.locked_until = Some(now + lockout);
            e.lockouts += 1;
            e.failures = 0;
            e.window_start = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_five_failures_and_escalates() {
        let t = LoginThrottle::new();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..4 {
            t.failure_at(ip, t0);
            assert!(t.check_at(ip, t0).is_ok());
        }
        t.failure_at(ip, t0);
        assert_eq!(t.check_at(ip, t0), Err(FIRST_LOCKOUT));
        assert!(t.check_at(other, t0).is_ok(), "per address");
        let later = t0 + FIRST_LOCKOUT;
        assert!(t.check_at(ip, later).is_ok());
        for _ in 0..5 {
            t.failure_at(ip, later);
        }
        assert_eq!(t.check_at(ip, later), Err(FIRST_LOCKOUT * 2), "second lockout is longer");
        t.success(ip);
        assert!(t.check_at(ip, later).is_ok());
    }

    #[test]
    fn failures_spread_over_more_than_a_window_do_not_lock() {
        let t = LoginThrottle::new();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let t0 = Instant::now();
        for i in 0..10 {
            t.failure_at(ip, t0 + WINDOW / 3 * i);
        }
        assert!(t.check_at(ip, t0 + WINDOW / 3 * 10).is_ok());
    }
}
