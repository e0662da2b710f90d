//! The broker: fire-and-forget pub/sub on topics (BEHAVIOR.md §3, Broker).
//!
//! Every subscriber of a topic gets every message, except that subscribers sharing a queue
//! name share the messages: each goes to one of them. Nothing is persisted — a message
//! published while nobody listens is gone (for durable messaging use [`crate::events`]).
//! [`Broker`] is the trait every backend implements; [`MemoryBroker`] fans out in process;
//! `contract` is the suite every backend passes.

#[cfg(feature = "contract")]
pub mod contract;
mod memory;
mod traits;

pub use memory::MemoryBroker;
pub use traits::{Broker, Message, Subscription, check_topic};
