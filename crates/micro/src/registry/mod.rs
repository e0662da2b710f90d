//! Registry implementations the framework brings: the remote registry (the server's registry
//! service over gRPC) and the conversions between the wire and domain types.

pub mod convert;
pub(crate) mod remote;

pub use remote::RemoteRegistry;
pub(crate) use remote::endpoint as remote_endpoint;
