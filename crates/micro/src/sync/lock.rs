//! [`Lock`]: a named lock on a [`Locks`] backend, taken for a TTL with a fencing token.

use std::time::Duration;

use micro_core::Error;

use super::Locks;

const ID: &str = "micro.sync";

/// How long [`Lock::acquire`] waits between tries while another holds the lock.
const RETRY: Duration = Duration::from_millis(100);

/// A lock named `name`, held for `ttl` at a time.
#[derive(Debug, Clone)]
pub struct Lock {
    locks: Locks,
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
    /// The lock `name` where `locks` keep locks (a [`Store`](super::Store)'s table, or
    /// [`Locks::etcd`]), held `ttl` at a time (at least 1 ms; etcd rounds up to whole seconds,
    /// and to its own minimum).
    pub fn new(locks: impl Into<Locks>, name: &str, ttl: Duration) -> Self {
        Self {
            locks: locks.into(),
            name: name.to_owned(),
            ttl: ttl.max(Duration::from_millis(1)),
        }
    }

    /// The lock's name.
    pub fn name(&self) -> &str {
        &self.name
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
        Ok(self
            .locks
            .0
            .try_acquire(&self.name, self.ttl)
            .await?
            .map(|grant| Held {
                lock: self.clone(),
                holder: grant.holder,
                token: grant.token,
            }))
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
        let lock = &self.lock;
        if lock
            .locks
            .0
            .renew(&lock.name, lock.ttl, &self.holder)
            .await?
        {
            Ok(())
        } else {
            Err(Error::conflict(
                ID,
                format!("lock {:?} was lost: its TTL passed", lock.name),
            ))
        }
    }

    /// Lets the lock go (if this holder still holds it).
    pub async fn release(self) -> Result<(), Error> {
        self.lock
            .locks
            .0
            .release(&self.lock.name, &self.holder)
            .await
    }
}
