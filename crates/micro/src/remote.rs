//! [`Connection`]: what every remote client of a platform service shares — one lazily
//! connected channel to the server, the identity its calls carry ([`Credentials`]), the
//! namespace header, and the mapping of a failed call to
//! the platform error (an unreachable server reads `Failed to connect to micro server at …`).

use std::time::Duration;

use micro_core::{
    Error,
    metadata::{AUTHORIZATION_HEADER, NAMESPACE_HEADER},
};
use tonic::transport::{Channel, Endpoint};

use crate::{auth::Credentials, status::from_status};

/// A channel to a micro server, and the identity its calls carry.
#[derive(Debug, Clone)]
pub struct Connection {
    channel: Channel,
    address: String,
    /// Over TLS (see [`crate::tls`]).
    secure: bool,
    credentials: Credentials,
}

impl Connection {
    /// The server at `address` (`host:port`), connected on first use; over TLS when this
    /// process is configured for it (`MICRO_TLS`). Several servers sharing engines are a
    /// comma-separated list (`a:8081,b:8081`): calls are balanced over the ones that answer
    /// (see [`crate::failover`]), so a dead server costs at most the calls of its first second.
    pub fn lazy(address: &str) -> Result<Self, Error> {
        let addresses = crate::failover::addresses(address)?;
        let secure = crate::tls::enabled() || addresses.iter().all(|a| crate::tls::is_secure(a));
        let endpoints = addresses
            .iter()
            .map(|a| crate::tls::endpoint(a, secure).map(with_timeouts))
            .collect::<Result<Vec<_>, _>>()?;
        let channel = match endpoints.as_slice() {
            [one] => one.clone().connect_lazy(),
            _ => crate::failover::channel(&addresses, endpoints),
        };
        Ok(Self {
            channel,
            address: addresses.join(","),
            secure,
            credentials: Credentials::process(),
        })
    }

    /// An existing channel to the server at `address`, `secure` if it is TLS.
    pub fn from_channel(channel: Channel, address: &str) -> Self {
        Self {
            channel,
            address: address.to_owned(),
            secure: crate::tls::enabled(),
            credentials: Credentials::process(),
        }
    }

    /// The same connection, its calls carrying `credentials` instead of the process's own
    /// identity: one process, several identities (see [`crate::auth`]).
    pub fn with_credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = credentials;
        self
    }

    /// The identity this connection's calls carry.
    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// The channel.
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// The server address.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// `msg` as a request in `namespace`, carrying the connection's token (for the process's
    /// own identity, logging in first from `MICRO_AUTH_ID` and `MICRO_AUTH_SECRET` on the first
    /// call, see [`crate::auth`]).
    pub async fn request<T>(&self, namespace: &str, msg: T) -> Result<tonic::Request<T>, Error> {
        if self.credentials.is_process() {
            crate::auth::from_env().await?;
        }
        if self.credentials.token().is_some() {
            self.check_secrets_transport()?;
        }
        namespaced(namespace, msg, &self.credentials)
    }

    /// One call of a platform service `id`: `msg` as a request in `namespace` (with this
    /// process's token), sent by `send`, its failure as the platform error — the steps every
    /// remote client takes, in one place.
    pub async fn call<T, R, Fut>(
        &self,
        id: &str,
        namespace: &str,
        msg: T,
        send: impl FnOnce(tonic::Request<T>) -> Fut,
    ) -> Result<R, Error>
    where
        Fut: Future<Output = Result<tonic::Response<R>, tonic::Status>>,
    {
        let req = self.request(namespace, msg).await?;
        send(req)
            .await
            .map(tonic::Response::into_inner)
            .map_err(|s| self.error(id, &s))
    }

    /// Refuses to send a token or secret to this server in plaintext, unless it is on this
    /// machine or plaintext is allowed (see [`crate::tls`]).
    pub fn check_secrets_transport(&self) -> Result<(), Error> {
        crate::tls::check_token_transport(
            &self.address,
            self.secure,
            crate::tls::insecure_allowed(),
        )
    }

    /// A failed call to the platform service `id` (`micro.store`, ...) as a platform error;
    /// a server that cannot be reached reads `Failed to connect to micro server at ADDR`.
    pub fn error(&self, id: &str, status: &tonic::Status) -> Error {
        let err = from_status(id, status);
        // Only a status without the server's own error is the connection failing; a 503 the
        // server answered (an engine behind it is down) says so itself.
        if status.code() == tonic::Code::Unavailable && err.id == id && status.details().is_empty()
        {
            return Error::unavailable(
                id,
                format!("Failed to connect to micro server at {}", self.address),
            );
        }
        err
    }
}

/// `msg` as a request carrying `namespace` in `micro-namespace` metadata, and the token of
/// `credentials` (see [`crate::auth`]).
pub fn namespaced<T>(
    namespace: &str,
    msg: T,
    credentials: &Credentials,
) -> Result<tonic::Request<T>, Error> {
    let mut req = tonic::Request::new(msg);
    let ns = namespace.parse().map_err(|_| {
        Error::bad_request("micro.client", format!("invalid namespace {namespace:?}"))
    })?;
    req.metadata_mut().insert(NAMESPACE_HEADER, ns);
    if let Some(bearer) = credentials
        .bearer()
        .and_then(|v| tonic::metadata::MetadataValue::try_from(v.as_bytes()).ok())
    {
        req.metadata_mut().insert(AUTHORIZATION_HEADER, bearer);
    }
    // The caller's trace goes on to the platform service (nothing when tracing is off).
    if crate::trace::enabled() {
        let mut headers = http::HeaderMap::new();
        crate::trace::inject(&tracing::Span::current(), &mut headers);
        if let Some(mut traceparent) = headers
            .get(crate::trace::TRACEPARENT)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.parse::<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>()
                    .ok()
            })
        {
            traceparent.set_sensitive(true);
            req.metadata_mut()
                .insert(crate::trace::TRACEPARENT, traceparent);
        }
    }
    Ok(req)
}

fn with_timeouts(endpoint: Endpoint) -> Endpoint {
    endpoint
        .connect_timeout(Duration::from_secs(2))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true)
}
