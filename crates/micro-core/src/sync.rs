//! The `Sync` concern: what a distributed lock needs from the engine under it — take a named
//! lock for a TTL with a fencing token, renew it, let it go. The framework's `micro::sync`
//! builds `Lock` and `Leader` once over this trait; the store (conditional writes) and etcd
//! (leases) each implement it.

use std::{fmt, time::Duration};

use async_trait::async_trait;

use crate::Error;

/// A lock taken: who holds it (opaque to everyone but the backend) and its fencing token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The holder's proof, handed back to renew and release.
    pub holder: String,
    /// Larger than every earlier grant's token for the same name.
    pub token: u64,
}

/// An engine that can hold named locks for a TTL.
#[async_trait]
pub trait LockBackend: Send + Sync + fmt::Debug {
    /// Takes `name` for `ttl` if nobody holds it now; `None` if somebody does.
    async fn try_acquire(&self, name: &str, ttl: Duration) -> Result<Option<Grant>, Error>;
    /// Holds `name` for another `ttl` from now; `false` if `holder` no longer holds it.
    async fn renew(&self, name: &str, ttl: Duration, holder: &str) -> Result<bool, Error>;
    /// Lets `name` go if `holder` still holds it.
    async fn release(&self, name: &str, holder: &str) -> Result<(), Error>;
}
