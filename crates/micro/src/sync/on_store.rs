//! Locks on the platform store's conditional writes ([`Store::write_if`]), so on every store
//! backend and through the server, with expiry judged by the store's own clock.
//!
//! Acquiring is three steps, each a conditional write or a read of the store:
//! 1. create `lock/NAME` (only if there is none live), holding this holder's id, living for
//!    the TTL;
//! 2. add one to `fence/NAME` (compare-and-set; this record never expires) — the new value is
//!    the holder's token;
//! 3. read `lock/NAME` again: still ours means no later holder can have a smaller token, since
//!    any later one adds to the counter only after it holds the lock. If the lock expired in
//!    between, the token is thrown away and acquiring starts over.

use std::time::Duration;

use async_trait::async_trait;
use micro_core::{Error, store::Record};

use super::{
    Store,
    backend::{Grant, LockBackend},
};

const ID: &str = "micro.sync";

/// The store-backed [`LockBackend`].
#[derive(Debug)]
pub(super) struct OnStore(pub(super) Store);

fn key(name: &str) -> String {
    format!("lock/{name}")
}

fn fence_key(name: &str) -> String {
    format!("fence/{name}")
}

impl OnStore {
    /// Adds one to the fencing counter, whatever others do at once; the new value.
    async fn next_token(&self, name: &str) -> Result<u64, Error> {
        loop {
            let current = match self.0.read(&fence_key(name)).await {
                Ok(value) => Some(value),
                Err(e) if e.code == 404 => None,
                Err(e) => return Err(e),
            };
            let last = match &current {
                Some(value) => std::str::from_utf8(value)
                    .ok()
                    .and_then(|v| v.parse::<u64>().ok())
                    .ok_or_else(|| {
                        Error::internal(ID, format!("the fence of lock {name:?} is damaged"))
                    })?,
                None => 0,
            };
            let next = last + 1;
            let record = Record::new(fence_key(name), next.to_string());
            if self.0.write_if(record, current.as_deref()).await? {
                return Ok(next);
            }
        }
    }
}

#[async_trait]
impl LockBackend for OnStore {
    async fn try_acquire(&self, name: &str, ttl: Duration) -> Result<Option<Grant>, Error> {
        let holder = uuid::Uuid::new_v4().to_string();
        let record = Record::new(key(name), holder.clone()).with_expiry(ttl);
        if !self.0.write_if(record, None).await? {
            return Ok(None);
        }
        let token = self.next_token(name).await?;
        match self.0.read(&key(name)).await {
            Ok(value) if value == holder.as_bytes() => Ok(Some(Grant { holder, token })),
            Ok(_) => Ok(None),
            Err(e) if e.code == 404 => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn renew(&self, name: &str, ttl: Duration, holder: &str) -> Result<bool, Error> {
        let record = Record::new(key(name), holder.to_owned()).with_expiry(ttl);
        self.0.write_if(record, Some(holder.as_bytes())).await
    }

    async fn release(&self, name: &str, holder: &str) -> Result<(), Error> {
        // The store has no conditional delete: the record is rewritten, only if still ours,
        // to expire at once.
        let record = Record::new(key(name), Vec::new()).with_expiry(Duration::from_millis(1));
        self.0
            .write_if(record, Some(holder.as_bytes()))
            .await
            .map(drop)
    }
}
