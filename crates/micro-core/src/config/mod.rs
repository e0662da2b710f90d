//! Dynamic config: one JSON document per namespace, addressed by dot paths (BEHAVIOR.md §3).
//!
//! [`Document`] holds the rules every backend shares (merge, secrets, paths) as pure logic;
//! [`Config`] is the trait services use; [`StoreConfig`] keeps the documents in any
//! [`Store`](crate::store::Store), with secrets sealed by a [`Sealer`] (the server's key), and
//! tells watchers of every change. `contract` is the suite every implementation passes.

#[cfg(feature = "contract")]
pub mod contract;
mod document;
mod on_store;
mod traits;

pub use document::{Document, SECRET_MASK, parts};
pub use on_store::{DATABASE as CONFIG_DATABASE, Plain, Sealer, StoreConfig};
pub use traits::{Config, ConfigWatcher};

/// Config kept in memory only, for tests and for services run without a server.
pub fn memory() -> StoreConfig {
    StoreConfig::new(
        std::sync::Arc::new(crate::store::MemoryStore::new()),
        std::sync::Arc::new(Plain),
    )
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn memory_config_passes_the_contract() {
        super::contract::run_all(std::sync::Arc::new(super::memory())).await;
    }
}
