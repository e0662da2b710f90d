//! Distributed locks and leader election (go-micro's `sync`), on the platform store or on
//! etcd.
//!
//! A [`Lock`] is held by one holder at a time across every process that shares the engine,
//! for a TTL that the holder renews; a holder that dies (`kill -9`) loses it when the TTL
//! passes. Each acquisition gets a fencing token larger than every earlier holder's, so a
//! resource can refuse a stale holder's writes. A [`Leader`] is a lock held for as long as the
//! process lives: it renews in the background and says when leadership is lost.
//!
//! Where locks live is a [`Locks`] value:
//! - a [`Store`] table (the default): only the store's conditional writes
//!   ([`Store::write_if`]) are needed, so every store backend works — the embedded redb
//!   store, PostgreSQL, Redis, memory for tests — and through the server, with expiry judged
//!   by the store's own clock;
//! - etcd ([`Locks::etcd`]): a key on a lease, fenced by etcd's revision. The platform does
//!   not stand between the service and etcd here: the namespace and table only name the keys,
//!   and any process that reaches etcd reaches every lock (and whatever else that etcd holds).
//!   Use it for services trusted with etcd, or give them an etcd user limited to
//!   `/micro/sync/`;
//! - [`Locks::from_env`] picks etcd when `MICRO_SYNC=etcd` (at `MICRO_SYNC_ADDRESS`), else
//!   the service's store table.
//!
//! ```no_run
//! # async fn f() -> Result<(), micro::Error> {
//! use std::time::Duration;
//! let locks = micro::sync::Locks::from_env("billing")?;
//! let lock = micro::sync::Lock::new(locks, "nightly-report", Duration::from_secs(10));
//! let held = lock.acquire().await?;
//! println!("fencing token {}", held.token());
//! held.release().await?;
//! # Ok(()) }
//! ```

mod backend;
#[cfg(any(test, feature = "contract"))]
pub mod contract;
mod leader;
mod lock;
mod on_etcd;
mod on_store;

pub use backend::{Grant, LockBackend, Locks};
pub use leader::{Leader, Term};
pub use lock::{Held, Lock};

use crate::store::Store;
use micro_core::Error;

/// `MICRO_SYNC`: where locks live, `store` (the default) or `etcd`.
pub const ENV_SYNC: &str = "MICRO_SYNC";
/// `MICRO_SYNC_ADDRESS`: etcd's client addresses, comma-separated.
pub const ENV_SYNC_ADDRESS: &str = "MICRO_SYNC_ADDRESS";

impl Locks {
    /// Where this process keeps locks, from its environment: etcd at `MICRO_SYNC_ADDRESS`
    /// when `MICRO_SYNC=etcd`, else `service`'s table of the platform store
    /// ([`Store::from_env`]). Either way, locks are named by namespace and service (on etcd a
    /// naming, not a wall: see the module docs).
    pub fn from_env(service: &str) -> Result<Self, Error> {
        let var = |name| {
            std::env::var(name)
                .ok()
                .filter(|v: &String| !v.trim().is_empty())
        };
        match var(ENV_SYNC).as_deref().map(str::trim) {
            None | Some("store") => Ok(Store::from_env(service)?.into()),
            Some("etcd") => {
                let address = var(ENV_SYNC_ADDRESS).ok_or_else(|| {
                    Error::bad_request(
                        "micro.sync",
                        format!("{ENV_SYNC}=etcd needs {ENV_SYNC_ADDRESS} (etcd's client address)"),
                    )
                })?;
                let env = crate::env::Env::read();
                let table = env.service_name.unwrap_or_else(|| service.to_owned());
                Self::etcd(&address, &env.namespace, &table)
            }
            Some(other) => Err(Error::bad_request(
                "micro.sync",
                format!("{ENV_SYNC}={other:?}: write store or etcd"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test(start_paused = true)]
    async fn locks_and_leaders_pass_the_contract_on_the_memory_store() {
        super::contract::run_all(
            crate::store::Store::memory("sync").into(),
            super::contract::PausedClock,
        )
        .await;
    }
}
