//! Revocation: deleting an account or changing its secret voids every access token issued to it
//! before that moment — judged by a counter, never by comparing two servers' clocks.
//!
//! An access token carries its whole account, so checking a call needs no lookup; that is why
//! a deleted account's token would otherwise live until it expires. Each account that was
//! revoked has a record `NS/ID → g:N` on the platform's store (backend database `auth`, table
//! `revoked`): its *generation*, counted up by a compare-and-set at each revocation. A token
//! carries the generation its account had when it was issued (read from the store, so every
//! server agrees), and is void when that is below the account's current one. A server whose
//! clock runs ahead can therefore not issue a token that outlives a revocation made through
//! another (which a time stamp compared with a time stamp would allow).
//!
//! A generation record never expires (one small record per account ever revoked), so the count
//! never starts again and no earlier token can match a later generation. The table is held in
//! memory, so the check on every call is one map read, and read again every second
//! ([`REFRESH`]), so a revocation made through another server takes effect here within a
//! second. Records written by servers before generations (a unix-ms time, living as long as a
//! token) are still honoured until they lapse.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, RwLock},
    time::{Duration, Instant},
};

use micro_core::{
    Error,
    store::{Query, Record, Store},
};

use super::accounts::DATABASE;

const TABLE: &str = "revoked";

/// How often the table is read again.
pub(crate) const REFRESH: Duration = Duration::from_secs(1);

/// What voids an account's tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Voided {
    /// Tokens of a generation below this one.
    Below(u64),
    /// Tokens issued before this unix-ms time (records of servers before generations).
    Before(i64),
}

fn parse(value: &[u8]) -> Option<Voided> {
    let text = std::str::from_utf8(value).ok()?;
    match text.strip_prefix("g:") {
        Some(generation) => generation.parse().ok().map(Voided::Below),
        None => text.parse().ok().map(Voided::Before),
    }
}

/// How long a revocation made here is kept in memory over a table read that may have begun
/// before it was written.
const RECENT: Duration = Duration::from_secs(5);

/// Revoked accounts: `NS/ID` → what voids their tokens.
pub(crate) struct Revocations {
    store: Arc<dyn Store>,
    voided: RwLock<HashMap<String, Voided>>,
    /// Revocations made here lately, and when.
    recent: Mutex<HashMap<String, (u64, Instant)>>,
}

fn key(ns: &str, id: &str) -> String {
    format!("{ns}/{id}")
}

impl Revocations {
    pub(crate) fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            voided: RwLock::default(),
            recent: Mutex::default(),
        }
    }

    /// The generation of account `id` of `ns` now, as the store has it: what a token issued
    /// now carries.
    pub(crate) async fn generation(&self, ns: &str, id: &str) -> Result<u64, Error> {
        Ok(match self.current(&key(ns, id)).await? {
            Some((_, Some(Voided::Below(generation)))) => generation,
            _ => 0,
        })
    }

    /// The record at `key`: its bytes as stored, and what they say (`None`: unreadable).
    async fn current(&self, key: &str) -> Result<Option<(Vec<u8>, Option<Voided>)>, Error> {
        match self.store.read(DATABASE, TABLE, key).await {
            Ok(record) => {
                let said = parse(&record.value);
                Ok(Some((record.value, said)))
            }
            Err(e) if e.code == 404 => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Voids every token of account `id` of `ns` issued so far: its generation goes up by one
    /// (a compare-and-set, so revocations through several servers at once all count).
    pub(crate) async fn revoke(&self, ns: &str, id: &str) -> Result<(), Error> {
        let key = key(ns, id);
        loop {
            let current = self.current(&key).await?;
            let next = match &current {
                Some((_, Some(Voided::Below(generation)))) => generation.saturating_add(1),
                // A record of the old kind, an unreadable one, or none: tokens so far have
                // generation 0.
                _ => 1,
            };
            // Kept for good: the count must never start again (see the module docs).
            let record = Record::new(key.clone(), format!("g:{next}"));
            let expected = current.as_ref().map(|(raw, _)| raw.as_slice());
            if self
                .store
                .write_if(DATABASE, TABLE, record, expected)
                .await?
            {
                self.voided
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(key.clone(), Voided::Below(next));
                self.recent
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(key, (next, Instant::now()));
                return Ok(());
            }
        }
    }

    /// Whether a token of account `id` of `ns`, of `generation` and issued at `issued_ms`, was
    /// revoked.
    pub(crate) fn voids(&self, ns: &str, id: &str, generation: u64, issued_ms: i64) -> bool {
        let voided = self.voided.read().unwrap_or_else(|p| p.into_inner());
        // Most platforms have revoked nothing: skip building the key.
        if voided.is_empty() {
            return false;
        }
        match voided.get(&key(ns, id)) {
            Some(Voided::Below(current)) => generation < *current,
            Some(Voided::Before(at)) => issued_ms < *at,
            None => false,
        }
    }

    /// Reads the table again (what other servers revoked, and what has lapsed).
    pub(crate) async fn reload(&self) -> Result<(), Error> {
        let records = self.store.find(DATABASE, TABLE, &Query::default()).await?;
        let mut fresh: HashMap<String, Voided> = records
            .into_iter()
            .filter_map(|r| Some((r.key, parse(&r.value)?)))
            .collect();
        // The store is the truth; only what was revoked here in the last moments (which the
        // read may have missed) is laid over it.
        let now = Instant::now();
        {
            let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
            recent.retain(|_, (_, at)| now.saturating_duration_since(*at) < RECENT);
            for (key, (generation, _)) in recent.iter() {
                match fresh.get(key) {
                    Some(Voided::Below(theirs)) if theirs >= generation => {}
                    _ => {
                        fresh.insert(key.clone(), Voided::Below(*generation));
                    }
                }
            }
        }
        let mut voided = self.voided.write().unwrap_or_else(|p| p.into_inner());
        *voided = fresh;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use micro_core::store::MemoryStore;

    #[tokio::test]
    async fn tokens_of_an_earlier_generation_are_void_on_every_reader() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let here = Revocations::new(store.clone());
        let there = Revocations::new(store);
        let before = here.generation("ns", "ann").await.unwrap();
        assert!(!here.voids("ns", "ann", before, 1_000));
        here.revoke("ns", "ann").await.unwrap();
        assert!(here.voids("ns", "ann", before, 1_000));
        let after = there.generation("ns", "ann").await.unwrap();
        assert!(after > before);
        assert!(
            !here.voids("ns", "ann", after, 1_000),
            "issued after: valid"
        );
        assert!(!here.voids("ns", "bob", before, 1_000));
        assert!(!here.voids("other", "ann", before, 1_000));
        assert!(!there.voids("ns", "ann", before, 1_000), "not read yet");
        there.reload().await.unwrap();
        assert!(
            there.voids("ns", "ann", before, 1_000),
            "seen after a reload"
        );
    }

    /// Times are not compared: a token stamped by a server whose clock runs an hour ahead,
    /// issued before the revocation, is void all the same.
    #[tokio::test]
    async fn a_clock_ahead_cannot_keep_a_revoked_token_alive() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let fast = Revocations::new(store.clone());
        let slow = Revocations::new(store);
        let issued_far_ahead = i64::MAX / 2;
        let generation = fast.generation("ns", "ann").await.unwrap();
        slow.revoke("ns", "ann").await.unwrap();
        fast.reload().await.unwrap();
        assert!(fast.voids("ns", "ann", generation, issued_far_ahead));
    }

    #[tokio::test]
    async fn revocations_through_two_servers_at_once_both_count() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let a = Revocations::new(store.clone());
        let b = Revocations::new(store);
        let (ra, rb) = tokio::join!(a.revoke("ns", "ann"), b.revoke("ns", "ann"));
        ra.unwrap();
        rb.unwrap();
        assert_eq!(a.generation("ns", "ann").await.unwrap(), 2);
    }

    #[tokio::test]
    async fn records_of_servers_before_generations_still_void_by_time() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        store
            .write(DATABASE, TABLE, Record::new("ns/ann", "5000"))
            .await
            .unwrap();
        let here = Revocations::new(store);
        here.reload().await.unwrap();
        assert!(here.voids("ns", "ann", 0, 4_999));
        assert!(!here.voids("ns", "ann", 0, 5_000));
        here.revoke("ns", "ann").await.unwrap();
        assert!(here.voids("ns", "ann", 0, 9_999), "now by generation");
        assert!(!here.voids("ns", "ann", 1, 0));
    }
}

#[cfg(test)]
mod more_tests {
    use super::*;
    use micro_core::store::MemoryStore;

    #[tokio::test]
    async fn an_unreadable_record_is_replaced_not_spun_on() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        store
            .write(DATABASE, TABLE, Record::new("ns/ann", "garbage"))
            .await
            .unwrap();
        let here = Revocations::new(store);
        here.revoke("ns", "ann").await.unwrap();
        assert_eq!(here.generation("ns", "ann").await.unwrap(), 1);
    }

    #[tokio::test]
    async fn a_record_gone_from_the_store_is_gone_here_after_a_moment() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let here = Revocations::new(store.clone());
        store
            .write(DATABASE, TABLE, Record::new("ns/bob", "g:3"))
            .await
            .unwrap();
        here.reload().await.unwrap();
        assert!(here.voids("ns", "bob", 2, 0));
        store.delete(DATABASE, TABLE, "ns/bob").await.unwrap();
        here.reload().await.unwrap();
        assert!(!here.voids("ns", "bob", 2, 0), "the table is the truth");
    }
}
