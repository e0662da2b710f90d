//! Registry implementations the framework brings: the remote registry (the server's registry
//! service over gRPC) and the conversions between the wire and domain types.

mod remote;

pub use remote::RemoteRegistry;
