//! [`Connection`]: what every remote client of a platform service shares — one lazily
//! connected channel to the server, the namespace header, and the mapping of a failed call to
//! the platform error (an unreachable server reads `Failed to connect to micro server at …`).

use micro_core::{Error, metadata::NAMESPACE_HEADER};
use tonic::transport::Channel;

use crate::registry::remote::{endpoint, server_error};

/// A channel to a micro server.
#[derive(Debug, Clone)]
pub struct Connection {
    channel: Channel,
    address: String,
}

impl Connection {
    /// The server at `address` (`host:port`), connected on first use.
    pub fn lazy(address: &str) -> Result<Self, Error> {
        Ok(Self {
            channel: endpoint(address)?.connect_lazy(),
            address: address.to_owned(),
        })
    }

    /// An existing channel to the server at `address`.
    pub fn from_channel(channel: Channel, address: &str) -> Self {
        Self {
            channel,
            address: address.to_owned(),
        }
    }

    /// The channel.
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// The server address.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// `msg` as a request in `namespace`.
    pub fn request<T>(&self, namespace: &str, msg: T) -> Result<tonic::Request<T>, Error> {
        let mut req = tonic::Request::new(msg);
        let ns = namespace.parse().map_err(|_| {
            Error::bad_request("micro.client", format!("invalid namespace {namespace:?}"))
        })?;
        req.metadata_mut().insert(NAMESPACE_HEADER, ns);
        Ok(req)
    }

    /// A failed call as a platform error.
    pub fn error(&self, status: &tonic::Status) -> Error {
        server_error(&self.address, status)
    }
}
