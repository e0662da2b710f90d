//! The gRPC proxy: JSON in, a standard gRPC call to the service, JSON out.

mod descriptors;
mod service;
pub mod transparent;

pub use descriptors::DescriptorCache;
pub use service::{JsonCall, JsonStream, MAX_CLIENTS, PLATFORM_HEADERS, ProxyService, Resolved};
