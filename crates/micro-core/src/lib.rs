//! # micro-core
//!
//! The stable heart of Micro for Rust: the traits every platform concern is built on, the domain
//! types they exchange, the one error model that travels across gRPC and HTTP, and an in-memory
//! implementation next to each trait.
//!
//! This crate is deliberately thin — no gRPC, no storage engine — so that a backend author (etcd,
//! NATS, PostgreSQL, ...) depends on it alone, the way `tower-service` holds only `Service`.
//!
//! | module | what it holds |
//! |---|---|
//! | [`error`] | [`Error`] `{id, code, detail, status}` and its mapping to gRPC codes and HTTP |
//! | [`registry`] | the [`Registry`] trait, [`Service`]/[`Node`]/[`Endpoint`]/[`Value`], and [`MemoryRegistry`] |
//! | [`store`] | the [`Store`](store::Store) trait, queries, and `MemoryStore` |
//! | [`config`] | the [`Config`](config::Config) trait: one JSON document per namespace, on any store |
//! | [`broker`] | the [`Broker`](broker::Broker) trait and `MemoryBroker` |
//! | [`events`] | the [`Events`](events::Events) trait, the [`EventLog`](events::EventLog) engines store, and `LogEvents` |
//! | [`runtime`] | the [`Runtime`](runtime::Runtime) trait: build and run services from source |
//! | [`auth`] | accounts, rules, and the pure decision a rule set makes about a call |
//! | [`limits`] | every bound on what a caller sends (depth, size, count, duration) |
//! | [`metadata`] | metadata keys and defaults shared by every layer |
//!
//! ```
//! use micro_core::{MemoryRegistry, Node, Registry, Service};
//! use std::time::Duration;
//!
//! # tokio_test();
//! # fn tokio_test() { tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let registry = MemoryRegistry::new();
//! let service = Service::new("helloworld", "latest").with_node(Node::new("hw-1", "127.0.0.1:9000"));
//! registry.register("micro", &service, Duration::from_secs(90)).await?;
//! let found = registry.get_service("micro", "helloworld").await?;
//! assert_eq!(found[0].nodes[0].address, "127.0.0.1:9000");
//! # Ok::<(), micro_core::Error>(()) }).unwrap() }
//! ```

pub mod auth;
pub mod broker;
pub mod config;
#[cfg(feature = "contract")]
pub mod contract;
pub mod error;
pub mod events;
pub mod limits;
pub mod metadata;
pub mod naming;
pub mod registry;
pub mod runtime;
pub mod store;
pub mod sync;

pub use error::Error;
pub use registry::{
    Endpoint, MemoryRegistry, Node, Registry, Service, Value, WatchAction, WatchEvent, Watcher,
};
