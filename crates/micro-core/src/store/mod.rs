//! The key-value store: records `{key, value, metadata, expiry}` in databases and tables
//! (BEHAVIOR.md §3).
//!
//! [`Store`] is the trait every backend implements; [`Query`] and [`select`] are the filtering
//! rules they share (prefix, suffix, order, offset, limit — in that order); [`MemoryStore`] keeps
//! records in memory on tokio's clock; `contract` is the suite every backend passes.

#[cfg(feature = "contract")]
pub mod contract;
mod memory;
mod query;
mod traits;
mod types;

pub use memory::MemoryStore;
pub use query::select;
pub use traits::{Store, check_names, check_record};
pub use types::{Order, Query, Record};
