//! # micro
//!
//! The framework of Micro for Rust. Write a `.proto`, implement the tonic-generated trait, and
//! [`Service`] does the rest: it serves gRPC with health and reflection, registers every
//! endpoint with its schema in the platform's registry, heartbeats, and leaves cleanly on
//! SIGINT/SIGTERM. [`Client`] calls other services by name with discovery, load balancing,
//! timeouts and retries, in-process — no proxy hop.
//!
//! ```ignore
//! pub mod pb {
//!     micro::include_proto!("helloworld");
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), micro::Error> {
//!     micro::Service::new("helloworld")
//!         .descriptors(micro::include_descriptors!())
//!         .handle(pb::helloworld_server::HelloworldServer::new(Handler))
//!         .run()
//!         .await
//! }
//! ```
//!
//! | module | what it does |
//! |---|---|
//! | [`service`] | the [`Service`] builder and its lifecycle |
//! | [`client`] | [`Client`]: discovery, balancing, outlier ejection, retries within a budget |
//! | [`deadline`] | a call's remaining time, passed on to the calls its handler makes |
//! | [`registry`] | [`RemoteRegistry`](registry::RemoteRegistry), the server's registry over gRPC |
//! | [`store`] | [`store::Store`]: the service's table of the platform store |
//! | [`config`] | [`config::Config`]: typed getters with defaults, and watch |
//! | [`broker`] | [`broker::Broker`]: publish, subscribe (with a queue) |
//! | [`events`] | [`events::Events`]: durable publish, consume in groups, ack |
//! | [`gate`] | the rules' check before every handler runs |
//! | [`schema`] | endpoint schemas from descriptors |
//! | [`transcode`] | JSON ↔ protobuf with descriptors |
//! | [`status`] | [`Error`] ↔ `tonic::Status` |
//! | [`env`](mod@env) | the `MICRO_*` environment |
//!
//! A service reads `MICRO_SERVER_ADDRESS` (default `127.0.0.1:8081`), `MICRO_NAMESPACE`
//! (`micro`), `MICRO_SERVICE_ADDRESS` (bind address; default an ephemeral port on 127.0.0.1),
//! `MICRO_SERVICE_NAME` and `MICRO_SERVICE_VERSION`, and `MICRO_REGISTER_TTL` /
//! `MICRO_REGISTER_INTERVAL` (`90s` / `30s`).

pub mod auth;
pub mod broker;
pub mod client;
pub mod codec;
pub mod config;
pub mod convert;
pub mod deadline;
pub mod env;
pub mod events;
pub mod failover;
pub mod gate;
pub mod limit;
pub mod metrics;
pub mod namespaced;
pub mod registry;
pub mod remote;
pub mod schema;
pub mod service;
pub mod status;
pub mod store;
pub mod sync;
pub mod text;
pub mod tls;
pub mod trace;
pub mod transcode;
pub mod undecodable;
pub mod wrap;

pub use client::{Client, ServiceChannel, Strategy};
pub use micro_core::{self as core, Endpoint, Error, Node, Registry, Value};
pub use service::Service;

#[doc(hidden)]
pub use tonic as __tonic;

/// Includes the code `micro-build` generated for a proto package (as `tonic::include_proto!`).
#[macro_export]
macro_rules! include_proto {
    ($package:tt) => {
        $crate::__tonic::include_proto!($package);
    };
}

/// The encoded descriptor set `micro-build` wrote, as `&'static [u8]`.
#[macro_export]
macro_rules! include_descriptors {
    () => {
        include_bytes!(concat!(env!("OUT_DIR"), "/micro_descriptors.bin"))
    };
}

/// Installs a `tracing` subscriber that prints to stdout, filtered by `RUST_LOG` (default
/// `info`), and exports spans when an OTLP endpoint is set (see [`trace`]), naming this
/// process by `MICRO_SERVICE_NAME`, else its executable. Does nothing if one is installed
/// already. Call it inside the tokio runtime.
pub fn init_tracing() {
    let name = std::env::var(micro_core::metadata::ENV_SERVICE_NAME)
        .ok()
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(trace::process_name);
    init_tracing_as(&name);
}

/// [`init_tracing`], naming this process `service` in its spans (unless `OTEL_SERVICE_NAME`
/// does).
pub fn init_tracing_as(service: &str) {
    use tracing_subscriber::{Layer, layer::SubscriberExt, util::SubscriberInitExt};
    // `RUST_LOG` chooses what is printed; spans are exported whatever it says (see `trace`).
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_target(false)
                .with_ansi(ansi)
                .with_filter(filter),
        )
        .with(trace::otel_layer(service))
        .try_init();
}
