//! [`Trace`]: the service that runs each request's handler in a server span — or, when the
//! trace is not sampled, in no span, with its trace context in scope so the calls the handler
//! makes pass it on, still unsampled. Its future is either of those; there
//! is no error of its own. With tracing off the span is a disabled one, which costs next to
//! nothing.

use std::task::{Context, Poll};

use futures::future::Either;
use opentelemetry::trace::TraceContextExt;
use tokio::task::futures::TaskLocalFuture;
use tracing::{Instrument, instrument::Instrumented};

use super::{layer::Kind, traceparent::Incoming};

/// The longest path a span's name keeps (a path is the caller's to choose).
const NAME_LIMIT: usize = 128;

/// See [`super::TraceLayer`].
#[derive(Debug, Clone)]
pub struct Trace<S> {
    pub(super) inner: S,
    pub(super) kind: Kind,
}

fn clip(path: &str) -> &str {
    match path.char_indices().nth(NAME_LIMIT) {
        Some((at, _)) => &path[..at],
        None => path,
    }
}

fn span_for<B>(
    kind: Kind,
    request: &http::Request<B>,
    parent: opentelemetry::Context,
) -> tracing::Span {
    let path = clip(request.uri().path());
    let span = match kind {
        Kind::Grpc => {
            let (service, method) = super::split_path(path);
            tracing::info_span!(
                "rpc.server",
                otel.name = %path.trim_start_matches('/'),
                otel.kind = "server",
                rpc.system = "grpc",
                rpc.service = %service,
                rpc.method = %method,
                trace_id = tracing::field::Empty,
            )
        }
        Kind::Http => tracing::info_span!(
            "http.server",
            otel.name = %format!("{} {path}", request.method()),
            otel.kind = "server",
            http.request.method = %request.method(),
            url.path = %path,
            trace_id = tracing::field::Empty,
        ),
    };
    super::continue_trace(&span, parent);
    span
}

impl<S, B> tower::Service<http::Request<B>> for Trace<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Either<
        Instrumented<S::Future>,
        TaskLocalFuture<opentelemetry::trace::SpanContext, S::Future>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if !super::enabled() {
            return Either::Left(self.inner.call(request).instrument(tracing::Span::none()));
        }
        let (parent, unsampled) = match super::traceparent::read(request.headers()) {
            // The trace begins here: the sampler decides, once, for every hop.
            Incoming::Absent => (opentelemetry::Context::new(), super::begin_unsampled()),
            Incoming::Unsampled(caller) => (opentelemetry::Context::new(), Some(caller)),
            Incoming::Other => {
                let parent = super::extract(request.headers());
                let caller = parent.span().span_context().clone();
                let unsampled = if caller.is_valid() {
                    (!caller.is_sampled()).then_some(caller)
                } else {
                    super::begin_unsampled()
                };
                (parent, unsampled)
            }
        };
        if let Some(context) = unsampled {
            // Nobody records this trace: make no span, pass the context on.
            return Either::Right(super::unsampled(context, self.inner.call(request)));
        }
        let span = span_for(self.kind, &request, parent);
        Either::Left(self.inner.call(request).instrument(span))
    }
}
