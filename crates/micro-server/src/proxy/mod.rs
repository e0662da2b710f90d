//! The gRPC proxy: JSON in, a standard gRPC call to the service, JSON out.

mod descriptors;
pub(crate) mod frame;
mod invoke;
mod resolve;
mod service;
mod target;
pub mod transparent;
mod unary;

pub use descriptors::DescriptorCache;
pub use invoke::JsonStream;
pub use resolve::{Fallback, Resolved, Unresolved};
pub use service::{MAX_CLIENTS, PLATFORM_HEADERS, ProxyService};
pub(crate) use service::{filter, node_filter};
pub use target::Target;
