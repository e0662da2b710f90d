//! # micro-proto
//!
//! The Micro platform's own gRPC APIs, generated from `proto/micro/**` with protox and
//! tonic-prost-build (no `protoc`), plus their encoded descriptor set, which the server uses to
//! register the platform services with endpoint schemas and to serve reflection.

#![expect(missing_docs, reason = "generated code")]

/// `micro.registry`: service discovery.
pub mod registry {
    tonic::include_proto!("micro.registry");
}

/// `micro.proxy`: JSON calls to any registered endpoint.
pub mod proxy {
    tonic::include_proto!("micro.proxy");
}

/// `micro.store`: records in databases and tables.
pub mod store {
    tonic::include_proto!("micro.store");
}

/// `micro.config`: one JSON document per namespace.
pub mod config {
    tonic::include_proto!("micro.config");
}

/// `micro.broker`: pub/sub.
pub mod broker {
    tonic::include_proto!("micro.broker");
}

/// `micro.events`: durable events in consumer groups.
pub mod events {
    tonic::include_proto!("micro.events");
}

/// `micro.runtime`: build and run services from uploaded source.
pub mod runtime {
    tonic::include_proto!("micro.runtime");
}

/// `micro.auth`: accounts, tokens and rules.
pub mod auth {
    tonic::include_proto!("micro.auth");
}

/// etcd's v3 API, as much as micro uses (KV, Watch, Lease), client only: the etcd registry
/// and locks on etcd. Not part of [`FILE_DESCRIPTOR_SET`].
pub mod etcd {
    #![allow(unreachable_pub, clippy::all)]
    tonic::include_proto!("etcdserverpb");

    /// What every etcd client of micro shares: how a list of addresses becomes a channel, how a
    /// name becomes one key segment, and how a TTL becomes a lease's whole seconds.
    pub mod client {
        use std::time::Duration;

        use tonic::transport::{Channel, Endpoint};

        /// How long a call may wait for etcd (connect, or answer) before it fails.
        pub const TIMEOUT: Duration = Duration::from_secs(3);

        /// A channel balanced over the comma-separated client `addresses` (`host:port` or
        /// URLs), connected on first use; an address that is not one, or none at all, is the
        /// error's text.
        pub fn channel(addresses: &str) -> Result<Channel, String> {
            let endpoints = addresses
                .split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(|a| {
                    let url = if a.contains("://") {
                        a.to_owned()
                    } else {
                        format!("http://{a}")
                    };
                    Endpoint::from_shared(url)
                        .map(|e| {
                            e.connect_timeout(TIMEOUT)
                                .timeout(TIMEOUT)
                                .tcp_nodelay(true)
                                .http2_keep_alive_interval(Duration::from_secs(10))
                                .keep_alive_timeout(Duration::from_secs(5))
                        })
                        .map_err(|e| format!("invalid etcd address {a:?}: {e}"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            if endpoints.is_empty() {
                return Err("an etcd address is required".to_owned());
            }
            Ok(Channel::balance_list(endpoints.into_iter()))
        }

        /// `name` with `%` and `/` escaped, so it is one key segment.
        pub fn segment(name: &str) -> String {
            name.replace('%', "%25").replace('/', "%2F")
        }

        /// A lease's TTL for `ttl`: whole seconds, rounded up, at least one.
        pub fn lease_seconds(ttl: Duration) -> i64 {
            i64::try_from(ttl.as_millis().div_ceil(1000))
                .unwrap_or(i64::MAX)
                .max(1)
        }
    }
}

/// The encoded `FileDescriptorSet` of every platform proto.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/micro_descriptors.bin"));
