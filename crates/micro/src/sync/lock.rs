//! [`Lock`]: a lock record with the store's expiry, and a fencing counter beside it.
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

use micro_core::{Error, store::Record};

use super::Store;

const ID: &str = "micro.sync";

/// How long [`Lock::acquire`] waits between tries while another holds the lock.
const RETRY: Duration = Duration::from_millis(100);

/// A lock named `name` on a store table, held for `ttl` at a time.
#[derive(Debug, Clone)]
pub struct Lock {
    store: Store,
    name: String,
    ttl: Duration,
}

/// The lock, held: renew it before its TTL passes, release it when done.
#[derive(Debug)]
pub struct Held {
    pub(super) lock: Lock,
    pub(super) holder: String,
    pub(super) token: u64,
}

impl Lock {
    /// The lock `name` in `store`'s table, held `ttl` at a time (at least 1 ms).
    pub fn new(store: Store, name: &str, ttl: Duration) -> Self {
        Self {
            store,
            name: name.to_owned(),
            ttl: ttl.max(Duration::from_millis(1)),
        }
    }

    /// The lock's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn key(&self) -> String {
        format!("lock/{}", self.name)
    }

    fn fence_key(&self) -> String {
        format!("fence/{}", self.name)
    }

    /// Waits until the lock is free and takes it.
    pub async fn acquire(&self) -> Result<Held, Error> {
        loop {
            if let Some(held) = self.try_acquire().await? {
                return Ok(held);
            }
            tokio::time::sleep(RETRY).await;
        }
    }

    /// Takes the lock if it is free now; `None` if another holds it.
    pub async fn try_acquire(&self) -> Result<Option<Held>, Error> {
        let holder = uuid::Uuid::new_v4().to_string();
        let record = Record::new(self.key(), holder.clone()).with_expiry(self.ttl);
        if !self.store.write_if(record, None).await? {
            return Ok(None);
        }
        let token = self.next_token().await?;
        match self.store.read(&self.key()).await {
            Ok(value) if value == holder.as_bytes() => Ok(Some(Held {
                lock: self.clone(),
                holder,
                token,
            })),
            Ok(_) => Ok(None),
            Err(e) if e.code == 404 => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Adds one to the fencing counter, whatever others do at once; the new value.
    async fn next_token(&self) -> Result<u64, Error> {
        loop {
            let current = match self.store.read(&self.fence_key()).await {
                Ok(value) => Some(value),
                Err(e) if e.code == 404 => None,
                Err(e) => return Err(e),
            };
            let last = match &current {
                Some(value) => std::str::from_utf8(value)
                    .ok()
                    .and_then(|v| v.parse::<u64>().ok())
                    .ok_or_else(|| {
                        Error::internal(ID, format!("the fence of lock {:?} is damaged", self.name))
                    })?,
                None => 0,
            };
            let next = last + 1;
            let record = Record::new(self.fence_key(), next.to_string());
            if self.store.write_if(record, current.as_deref()).await? {
                return Ok(next);
            }
        }
    }
}

impl Held {
    /// The fencing token: larger than every earlier holder's.
    pub fn token(&self) -> u64 {
        self.token
    }

    /// The lock held.
    pub fn lock(&self) -> &Lock {
        &self.lock
    }

    /// Holds the lock for another TTL from now. A holder whose TTL passed, and whose lock
    /// another took, gets a 409: it no longer holds the lock.
    pub async fn renew(&self) -> Result<(), Error> {
        let record = Record::new(self.lock.key(), self.holder.clone()).with_expiry(self.lock.ttl);
        if self
            .lock
            .store
            .write_if(record, Some(self.holder.as_bytes()))
            .await?
        {
            Ok(())
        } else {
            Err(Error::conflict(
                ID,
                format!("lock {:?} was lost: its TTL passed", self.lock.name),
            ))
        }
    }

    /// Lets the lock go (if this holder still holds it).
    pub async fn release(self) -> Result<(), Error> {
        // The store has no conditional delete: the record is rewritten, only if still ours,
        // to expire at once.
        let record = Record::new(self.lock.key(), Vec::new()).with_expiry(Duration::from_millis(1));
        self.lock
            .store
            .write_if(record, Some(self.holder.as_bytes()))
            .await
            .map(drop)
    }
}
