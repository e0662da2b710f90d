//! Service discovery: who serves what, where.
//!
//! A [`Service`] is a name and version with the [`Endpoint`]s it serves and the [`Node`]s that
//! serve it. Nodes register with a TTL and heartbeat by registering again; a node that stops
//! heartbeating disappears once its TTL passes, and deregistering the last node of a version
//! removes that version. Every call happens in a namespace, and namespaces never see each other.

mod memory;
mod state;
mod traits;
mod types;

#[cfg(feature = "contract")]
pub mod contract;

pub use memory::MemoryRegistry;
pub use state::RegistryState;
pub use traits::{Registry, Watcher};
pub use types::{Endpoint, Node, Service, Value, WatchAction, WatchEvent};
