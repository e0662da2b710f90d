//! Distributed locks and leader election (go-micro's `sync`), on the platform store.
//!
//! A [`Lock`] is held by one holder at a time across every process that shares the store,
//! for a TTL that the holder renews; a holder that dies (`kill -9`) loses it when the TTL
//! passes. Each acquisition gets a fencing token larger than every earlier holder's, so a
//! resource can refuse a stale holder's writes. A [`Leader`] is a lock held for as long as the
//! process lives: it renews in the background and says when leadership is lost.
//!
//! Both need nothing but the store's conditional writes ([`Store::write_if`]), so they work
//! on every store backend — the embedded redb store, PostgreSQL, Redis, memory for tests —
//! and through the server, with expiry judged by the store's own clock.
//!
//! ```no_run
//! # async fn f() -> Result<(), micro::Error> {
//! use std::time::Duration;
//! let store = micro::store::Store::from_env("billing")?;
//! let lock = micro::sync::Lock::new(store, "nightly-report", Duration::from_secs(10));
//! let held = lock.acquire().await?;
//! println!("fencing token {}", held.token());
//! held.release().await?;
//! # Ok(()) }
//! ```

#[cfg(any(test, feature = "contract"))]
pub mod contract;
mod leader;
mod lock;

pub use leader::{Leader, Term};
pub use lock::{Held, Lock};

use crate::store::Store;

#[cfg(test)]
mod tests {
    #[tokio::test(start_paused = true)]
    async fn locks_and_leaders_pass_the_contract_on_the_memory_store() {
        super::contract::run_all(
            crate::store::Store::memory("sync"),
            super::contract::PausedClock,
        )
        .await;
    }
}
