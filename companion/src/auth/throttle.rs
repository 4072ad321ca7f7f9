//! Password-guessing limits. An attempt is *reserved* before its password is hashed, and a
//! reservation counts as a failure until it turns out right, so concurrent guesses cannot
//! all slip in before the first one fails. Two keys are counted:
//!
//! - the source and the username: [`ACCOUNT_FAILURES`] failures within [`WINDOW`] lock
//!   that pair out for [`FIRST_LOCKOUT`], doubling with each further lockout up to
//!   [`MAX_LOCKOUT`]; someone else guessing one account from a shared (NAT) address does
//!   not lock out the right password of another account from that address;
//! - the source alone, more loosely: [`SOURCE_FAILURES`] failures within the window lock
//!   the whole source out the same way (spraying many usernames), and only
//!   [`SOURCE_IN_FLIGHT`] of its attempts is evaluated at a time (the others are refused
//!   at once), so one source never has more than one hash running or waiting: a login
//!   from elsewhere waits for at most one of its hashes.
//!
//! A source is an IPv4 address or an IPv6 /64 ([`crate::server::Source`]). A right
//! password clears its pair; the tables are bounded, so a scan from many addresses cannot
//! grow them without limit.

use crate::server::Source;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const ACCOUNT_FAILURES: u32 = 5;
pub const SOURCE_FAILURES: u32 = 20;
pub const SOURCE_IN_FLIGHT: u32 = 1;
pub const WINDOW: Duration = Duration::from_secs(60);
pub const FIRST_LOCKOUT: Duration = Duration::from_secs(60);
pub const MAX_LOCKOUT: Duration = Duration::from_secs(15 * 60);
const MAX_TRACKED: usize = 4096;
/// Usernames are at most 64 characters; a longer "name" is keyed as one, so a guesser
/// cannot make each attempt a fresh key.
const MAX_KEY_CHARS: usize = 64;

/// Why an attempt is not evaluated now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Locked out (the pair or the source) for this long.
    LockedOut(Duration),
    /// The source already has [`SOURCE_IN_FLIGHT`] attempt(s) being evaluated.
    Busy,
}

/// Failures of one key within the current window, and its lockout.
#[derive(Clone, Copy)]
struct Counter {
    failures: u32,
    /// Reserved attempts not yet known to be right or wrong (they count as failures).
    pending: u32,
    window_start: Instant,
    locked_until: Option<Instant>,
    lockouts: u32,
}

impl Counter {
    fn new(now: Instant) -> Counter {
        Counter { failures: 0, pending: 0, window_start: now, locked_until: None, lockouts: 0 }
    }

    fn roll(&mut self, now: Instant) {
        if now - self.window_start >= WINDOW {
            self.failures = 0;
            self.window_start = now;
        }
    }

    fn locked(&self, now: Instant) -> Option<Duration> {
        self.locked_until.filter(|u| *u > now).map(|u| u - now)
    }

    fn fail(&mut self, now: Instant, limit: u32) {
        self.roll(now);
        self.failures += 1;
        if self.failures >= limit {
            let lockout = FIRST_LOCKOUT.saturating_mul(1 << self.lockouts.min(4)).min(MAX_LOCKOUT);
            self.locked_until = Some(now + lockout);
            self.lockouts += 1;
            self.failures = 0;
            self.window_start = now;
        }
    }

    fn idle(&self, now: Instant) -> bool {
        self.pending == 0 && self.locked(now).is_none() && now - self.window_start >= WINDOW
    }
}

#[derive(Default)]
struct Tables {
    accounts: HashMap<(Source, String), Counter>,
    sources: HashMap<Source, (Counter, u32)>,
}

/// Forgets idle entries when `map` is full, then the oldest window if it still is.
fn make_room<K: Clone + Eq + std::hash::Hash, V>(
    map: &mut HashMap<K, V>,
    key: &K,
    now: Instant,
    counter: impl Fn(&V) -> &Counter,
) {
    if map.len() < MAX_TRACKED || map.contains_key(key) {
        return;
    }
    map.retain(|_, v| !counter(v).idle(now));
    if map.len() >= MAX_TRACKED
        && let Some(oldest) = map
            .iter()
            .filter(|(_, v)| counter(v).pending == 0)
            .min_by_key(|(_, v)| counter(v).window_start)
            .map(|(k, _)| k.clone())
    {
        map.remove(&oldest);
    }
}

#[derive(Clone, Default)]
pub struct LoginThrottle {
    tables: Arc<Mutex<Tables>>,
}

impl LoginThrottle {
    pub fn new() -> LoginThrottle {
        LoginThrottle::default()
    }

    fn tables(&self) -> std::sync::MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reserves an attempt of `peer` at `username`'s password, before any hashing.
    pub fn reserve(&self, peer: IpAddr, username: &str) -> Result<Attempt, Refused> {
        self.reserve_at(peer, username, Instant::now())
    }

    fn reserve_at(&self, peer: IpAddr, username: &str, now: Instant) -> Result<Attempt, Refused> {
        let source = Source::of(peer);
        let account = (source, username.chars().take(MAX_KEY_CHARS).collect::<String>());
        let mut t = self.tables();
        make_room(&mut t.sources, &source, now, |(c, _)| c);
        make_room(&mut t.accounts, &account, now, |c| c);
        let (src, in_flight) = t.sources.entry(source).or_insert((Counter::new(now), 0));
        src.roll(now);
        if let Some(wait) = src.locked(now) {
            return Err(Refused::LockedOut(wait));
        }
        if *in_flight >= SOURCE_IN_FLIGHT {
            return Err(Refused::Busy);
        }
        if src.failures + src.pending >= SOURCE_FAILURES {
            // The reservations in flight may still lock it: wait for them.
            return Err(Refused::LockedOut(Duration::from_secs(1)));
        }
        let acc = t.accounts.entry(account.clone()).or_insert(Counter::new(now));
        acc.roll(now);
        if let Some(wait) = acc.locked(now) {
            return Err(Refused::LockedOut(wait));
        }
        if acc.failures + acc.pending >= ACCOUNT_FAILURES {
            return Err(Refused::LockedOut(Duration::from_secs(1)));
        }
        acc.pending += 1;
        // Inserted above under the same lock, so always there.
        if let Some((src, in_flight)) = t.sources.get_mut(&source) {
            src.pending += 1;
            *in_flight += 1;
        }
        Ok(Attempt { throttle: self.clone(), account, decided: false })
    }

    fn settle(&self, account: &(Source, String), outcome: Option<bool>, now: Instant) {
        let mut t = self.tables();
        if let Some((src, in_flight)) = t.sources.get_mut(&account.0) {
            src.pending = src.pending.saturating_sub(1);
            *in_flight = in_flight.saturating_sub(1);
            if outcome == Some(false) {
                src.fail(now, SOURCE_FAILURES);
            }
        }
        match outcome {
            Some(true) => {
                t.accounts.remove(account);
            }
            right_or_unknown => {
                if let Some(acc) = t.accounts.get_mut(account) {
                    acc.pending = acc.pending.saturating_sub(1);
                    if right_or_unknown == Some(false) {
                        acc.fail(now, ACCOUNT_FAILURES);
                    }
                }
            }
        }
    }
}

/// A reserved attempt: settle it with [`Attempt::right`] or [`Attempt::wrong`]; dropped
/// unsettled (the hashing was refused or failed), it is given back.
pub struct Attempt {
    throttle: LoginThrottle,
    account: (Source, String),
    decided: bool,
}

impl Attempt {
    pub fn right(mut self) {
        self.decided = true;
        self.throttle.settle(&self.account, Some(true), Instant::now());
    }

    pub fn wrong(mut self) {
        self.decided = true;
        self.throttle.settle(&self.account, Some(false), Instant::now());
    }

    #[cfg(test)]
    fn wrong_at(mut self, now: Instant) {
        self.decided = true;
        self.throttle.settle(&self.account, Some(false), now);
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if !self.decided {
            self.throttle.settle(&self.account, None, Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn reservations_count_before_their_outcome() {
        let t = LoginThrottle::new();
        let p = ip("192.0.2.1");
        // One attempt of a source is evaluated at a time; the next is refused at once.
        let a = t.reserve(p, "admin").unwrap();
        assert_eq!(t.reserve(p, "admin").err(), Some(Refused::Busy));
        assert!(t.reserve(ip("192.0.2.2"), "admin").is_ok(), "another source is not held up");
        a.wrong();
        for _ in 1..ACCOUNT_FAILURES - 1 {
            t.reserve(p, "admin").unwrap().wrong();
        }
        // 4 failures and one attempt in flight: no further attempt until it is decided.
        let last = t.reserve(p, "admin").unwrap();
        last.wrong();
        assert!(matches!(t.reserve(p, "admin"), Err(Refused::LockedOut(w)) if w > Duration::from_secs(50)));
    }

    #[test]
    fn a_locked_account_does_not_lock_another_account_of_the_same_source() {
        let t = LoginThrottle::new();
        let p = ip("192.0.2.1");
        for _ in 0..ACCOUNT_FAILURES {
            t.reserve(p, "admin").unwrap().wrong();
        }
        assert!(matches!(t.reserve(p, "admin"), Err(Refused::LockedOut(w)) if w > Duration::from_secs(50)));
        t.reserve(p, "bob").unwrap().right();
        assert!(t.reserve(ip("192.0.2.2"), "admin").is_ok(), "another source");
    }

    #[test]
    fn spraying_usernames_locks_the_source() {
        let t = LoginThrottle::new();
        let p = ip("2001:db8::1");
        for i in 0..SOURCE_FAILURES {
            t.reserve(p, &format!("user{i}")).unwrap().wrong();
        }
        assert!(matches!(t.reserve(p, "bob"), Err(Refused::LockedOut(_))));
        assert!(matches!(t.reserve(ip("2001:db8::2"), "bob"), Err(Refused::LockedOut(_))), "same /64");
        assert!(t.reserve(ip("2001:db8:0:1::1"), "bob").is_ok(), "another /64");
    }

    #[test]
    fn lockouts_expire_and_escalate_and_an_unsettled_attempt_is_given_back() {
        let t = LoginThrottle::new();
        let p = ip("192.0.2.1");
        let t0 = Instant::now();
        for _ in 0..ACCOUNT_FAILURES {
            t.reserve_at(p, "admin", t0).unwrap().wrong_at(t0);
        }
        assert!(matches!(t.reserve_at(p, "admin", t0), Err(Refused::LockedOut(w)) if w == FIRST_LOCKOUT));
        let later = t0 + FIRST_LOCKOUT;
        for _ in 0..ACCOUNT_FAILURES {
            t.reserve_at(p, "admin", later).unwrap().wrong_at(later);
        }
        assert_eq!(t.reserve_at(p, "admin", later).err(), Some(Refused::LockedOut(FIRST_LOCKOUT * 2)));
        let much_later = later + FIRST_LOCKOUT * 2;
        drop(t.reserve_at(p, "admin", much_later).unwrap());
        assert!(t.reserve_at(p, "admin", much_later).is_ok(), "dropped unsettled: not a failure");
    }

    #[test]
    fn failures_spread_over_more_than_a_window_do_not_lock() {
        let t = LoginThrottle::new();
        let p = ip("192.0.2.1");
        let t0 = Instant::now();
        for i in 0..10 {
            let at = t0 + WINDOW / 3 * i;
            t.reserve_at(p, "admin", at).unwrap().wrong_at(at);
        }
        assert!(t.reserve_at(p, "admin", t0 + WINDOW / 3 * 10).is_ok());
    }
}
