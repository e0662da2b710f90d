//! Revocation: deleting an account or changing its secret voids every access token issued to it
//! before that moment.
//!
//! An access token carries its whole account, so checking a call needs no lookup; that is why
//! a deleted account's token would otherwise live until it expires. Each revocation is a record
//! `NS/ID → unix ms` on the platform's store (backend database `auth`, table `revoked`), kept
//! as long as a token can live, and held in memory, so the check on every call is one map
//! read. The table is read again every second ([`REFRESH`]), so a revocation made through
//! another server that shares the store takes effect here within a second.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::Duration,
};

use micro_core::{
    Error,
    store::{Query, Record, Store},
};

use super::accounts::DATABASE;

const TABLE: &str = "revoked";

/// How often the table is read again.
pub(crate) const REFRESH: Duration = Duration::from_secs(1);

/// Revoked accounts: `NS/ID` → the unix ms before which their tokens are void.
pub(crate) struct Revocations {
    store: Arc<dyn Store>,
    /// How long a revocation is kept: the longest a token lives, and a minute.
    keep: Duration,
    voided: RwLock<HashMap<String, i64>>,
}

fn key(ns: &str, id: &str) -> String {
    format!("{ns}/{id}")
}

impl Revocations {
    pub(crate) fn new(store: Arc<dyn Store>, token_ttl: Duration) -> Self {
        Self {
            store,
            keep: token_ttl.saturating_add(Duration::from_secs(60)),
            voided: RwLock::default(),
        }
    }

    /// Voids the tokens of account `id` of `ns` issued before `now_ms`.
    pub(crate) async fn revoke(&self, ns: &str, id: &str, now_ms: i64) -> Result<(), Error> {
        let key = key(ns, id);
        self.store
            .write(
                DATABASE,
                TABLE,
                Record::new(key.clone(), now_ms.to_string()).with_expiry(self.keep),
            )
            .await?;
        self.voided
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, now_ms);
        Ok(())
    }

    /// Whether a token of account `id` of `ns` issued at `issued_ms` was revoked.
    pub(crate) fn voids(&self, ns: &str, id: &str, issued_ms: i64) -> bool {
        let voided = self.voided.read().unwrap_or_else(|p| p.into_inner());
        // Most platforms have revoked nothing: skip building the key.
        !voided.is_empty() && voided.get(&key(ns, id)).is_some_and(|at| issued_ms < *at)
    }

    /// Reads the table again (what other servers revoked, and what has lapsed).
    pub(crate) async fn reload(&self) -> Result<(), Error> {
        let records = self.store.find(DATABASE, TABLE, &Query::default()).await?;
        let mut fresh: HashMap<String, i64> = records
            .into_iter()
            .filter_map(|r| {
                let at = std::str::from_utf8(&r.value).ok()?.parse().ok()?;
                Some((r.key, at))
            })
            .collect();
        let mut voided = self.voided.write().unwrap_or_else(|p| p.into_inner());
        // Merged, not replaced: a revocation made here while the table was being read is kept
        // (until it lapses, when the store drops it too).
        let oldest = super::now_ms()
            .saturating_sub(i64::try_from(self.keep.as_millis()).unwrap_or(i64::MAX));
        for (key, at) in voided.drain() {
            if at > oldest {
                let kept = fresh.entry(key).or_insert(at);
                *kept = (*kept).max(at);
            }
        }
        *voided = fresh;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use micro_core::store::MemoryStore;

    #[tokio::test]
    async fn tokens_issued_before_a_revocation_are_void_on_every_reader() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let here = Revocations::new(store.clone(), Duration::from_secs(60));
        let there = Revocations::new(store, Duration::from_secs(60));
        assert!(!here.voids("ns", "ann", 1_000));
        here.revoke("ns", "ann", 5_000).await.unwrap();
        assert!(here.voids("ns", "ann", 4_999));
        assert!(!here.voids("ns", "ann", 5_000), "issued at or after: valid");
        assert!(!here.voids("ns", "bob", 1_000));
        assert!(!here.voids("other", "ann", 1_000));
        assert!(!there.voids("ns", "ann", 4_999), "not read yet");
        there.reload().await.unwrap();
        assert!(there.voids("ns", "ann", 4_999), "seen after a reload");
    }
}
