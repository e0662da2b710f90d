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
}

/// The encoded `FileDescriptorSet` of every platform proto.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/micro_descriptors.bin"));
