//! [`TraceLayer`]: puts [`Trace`] in front of a server.

use super::Trace;

/// What a [`Trace`] serves, which names its spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// gRPC: `pkg.Service/Method`, with the `rpc.*` attributes.
    Grpc,
    /// HTTP (the gateway): `METHOD /path`, with the `http.*` attributes.
    Http,
}

/// Opens a server span for each request, continuing the caller's trace from its
/// `traceparent` header (see the module docs): `Server::builder().layer(TraceLayer::grpc())`.
#[derive(Debug, Clone, Copy)]
pub struct TraceLayer {
    kind: Kind,
}

impl TraceLayer {
    /// For a gRPC server.
    pub fn grpc() -> Self {
        Self { kind: Kind::Grpc }
    }

    /// For an HTTP server.
    pub fn http() -> Self {
        Self { kind: Kind::Http }
    }
}

impl<S> tower::Layer<S> for TraceLayer {
    type Service = Trace<S>;

    fn layer(&self, inner: S) -> Trace<S> {
        Trace {
            inner,
            kind: self.kind,
        }
    }
}
