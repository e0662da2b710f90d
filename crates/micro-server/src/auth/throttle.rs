//! Failed logins are throttled, per account and per peer address, with exponential back-off.
//!
//! Each check of a secret costs an argon2 hash, so guessing is slow already; the throttle makes
//! it slower still and keeps one attacker from spending the server's CPU. A key (an account,
//! or a peer) has a few free failures; after those, each failure closes it for twice as long
//! as the last, up to [`Throttle::max`]; a success opens the account's key again. Pure logic:
//! the caller passes `now`.
//!
//! Keys are kept as 64-bit hashes (keyed per throttle, so a caller cannot aim at a collision):
//! what a caller sends costs the throttle the same few bytes however long it is.

use std::{
    collections::HashMap,
    hash::BuildHasher,
    sync::Mutex,
    time::{Duration, Instant},
};

/// The most keys remembered; past it, keys idle for longer than the longest back-off go.
const CAP: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    /// Closed until then.
    until: Instant,
    last: Instant,
}

/// Failure counts and back-off per key.
#[derive(Debug)]
pub(crate) struct Throttle {
    entries: Mutex<HashMap<u64, Entry>>,
    /// Turns a key into the hash it is kept by.
    hasher: std::hash::RandomState,
    /// Failures allowed before back-off starts.
    free: u32,
    base: Duration,
    max: Duration,
}

impl Throttle {
    /// A throttle that lets `free` failures through, then waits `base`, doubling up to `max`.
    pub(crate) fn new(free: u32, base: Duration, max: Duration) -> Self {
        Self {
            entries: Mutex::default(),
            hasher: std::hash::RandomState::new(),
            free,
            base,
            max,
        }
    }

    /// How long `key` stays closed from `now`; `None` when it is open.
    pub(crate) fn closed_for(&self, key: &str, now: Instant) -> Option<Duration> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let entry = entries.get(&self.hasher.hash_one(key))?;
        (entry.until > now).then(|| entry.until - now)
    }

    /// Counts a failure of `key` at `now`.
    pub(crate) fn failed(&self, key: &str, now: Instant) {
        let key = self.hasher.hash_one(key);
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= CAP && !entries.contains_key(&key) {
            let max = self.max;
            entries.retain(|_, e| now.saturating_duration_since(e.last) < max);
            if entries.len() >= CAP {
                entries.clear();
            }
        }
        let entry = entries.entry(key).or_insert(Entry {
            failures: 0,
            until: now,
            last: now,
        });
        // A key left alone for the longest back-off after its door reopened starts over (a
        // key that keeps failing never gets its free failures back).
        if now.saturating_duration_since(entry.last.max(entry.until)) >= self.max {
            entry.failures = 0;
        }
        entry.failures = entry.failures.saturating_add(1);
        entry.last = now;
        if entry.failures > self.free {
            let doublings = (entry.failures - self.free - 1).min(30);
            let wait = self.base.saturating_mul(1 << doublings).min(self.max);
            entry.until = now + wait;
        }
    }

    /// Takes back one failure of `key`, counted before the attempt was judged, when it
    /// turned out to succeed.
    pub(crate) fn forgive(&self, key: &str, now: Instant) {
        let key = self.hasher.hash_one(key);
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = entries.get_mut(&key) {
            entry.failures = entry.failures.saturating_sub(1);
            if entry.failures == 0 {
                // Nothing against it: nothing to remember.
                entries.remove(&key);
            } else if entry.failures <= self.free {
                entry.until = entry.until.min(now);
            }
        }
    }

    /// Forgets the failures of `key` (after a success).
    pub(crate) fn succeeded(&self, key: &str) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.hasher.hash_one(key));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_back_off_doubling_and_a_success_reopens() {
        let t = Throttle::new(2, Duration::from_secs(1), Duration::from_secs(8));
        let t0 = Instant::now();
        t.failed("a", t0);
        t.failed("a", t0);
        assert_eq!(t.closed_for("a", t0), None, "two free failures");
        t.failed("a", t0);
        assert_eq!(t.closed_for("a", t0), Some(Duration::from_secs(1)));
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(t.closed_for("a", t1), None);
        t.failed("a", t1);
        assert_eq!(t.closed_for("a", t1), Some(Duration::from_secs(2)));
        for _ in 0..10 {
            t.failed("a", t1);
        }
        assert_eq!(
            t.closed_for("a", t1),
            Some(Duration::from_secs(8)),
            "capped"
        );
        assert_eq!(t.closed_for("b", t1), None, "keys are apart");
        t.succeeded("a");
        assert_eq!(t.closed_for("a", t1), None);
        // Left alone for the longest back-off after reopening: starts over.
        for _ in 0..3 {
            t.failed("c", t0);
        }
        let later = t0 + Duration::from_secs(10);
        t.failed("c", later);
        assert_eq!(t.closed_for("c", later), None);
        // Failing right as the door reopens does not: the count goes on.
        for _ in 0..12 {
            t.failed("d", t0);
        }
        let reopened = t0 + Duration::from_secs(8);
        t.failed("d", reopened);
        assert_eq!(t.closed_for("d", reopened), Some(Duration::from_secs(8)));
        // An attempt counted up front and then forgiven leaves the door as it was.
        t.failed("e", t0);
        t.forgive("e", t0);
        t.failed("e", t0);
        t.failed("e", t0);
        assert_eq!(
            t.closed_for("e", t0),
            None,
            "still within the free failures"
        );
    }

    #[test]
    fn a_forgiven_key_is_forgotten_and_any_key_costs_a_hash() {
        let t = Throttle::new(2, Duration::from_secs(1), Duration::from_secs(8));
        let t0 = Instant::now();
        let long = "x".repeat(1 << 20);
        t.failed(&long, t0);
        t.forgive(&long, t0);
        assert!(
            t.entries.lock().unwrap().is_empty(),
            "nothing held against it"
        );
        for _ in 0..3 {
            t.failed(&long, t0);
        }
        assert_eq!(t.entries.lock().unwrap().len(), 1);
        assert_eq!(t.closed_for(&long, t0), Some(Duration::from_secs(1)));
        assert_eq!(t.closed_for(&long[1..], t0), None, "another key");
    }
}
