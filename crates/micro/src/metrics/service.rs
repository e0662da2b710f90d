//! [`Measured`]: the service that times each call and serves the metrics page. Its future is
//! boxed; it has no error of its own.

use std::{
    task::{Context, Poll},
    time::Instant,
};

use futures::future::BoxFuture;
use tonic::body::Body;

use super::{METRICS_PATH, ServiceMetrics};

/// See [`super::MetricsLayer`].
#[derive(Debug, Clone)]
pub struct Measured<S> {
    pub(super) inner: S,
    pub(super) metrics: ServiceMetrics,
}

/// The gRPC status a response begins with: its `grpc-status` header when the answer is all
/// headers (an error), else OK (a stream's last word comes later).
fn status_of(response: &http::Response<Body>) -> tonic::Code {
    response
        .headers()
        .get("grpc-status")
        .and_then(|s| s.to_str().ok()?.parse::<i32>().ok())
        .map_or(tonic::Code::Ok, tonic::Code::from_i32)
}

/// What an HTTP/1.1 request for anything but the metrics page gets: gRPC is HTTP/2, and a
/// browser (which speaks HTTP/2 only over TLS) must not reach a handler.
fn http1_refused() -> http::Response<Body> {
    let mut response = http::Response::new(Body::new(http_body_util::Full::new(
        bytes::Bytes::from_static(
            b"gRPC needs HTTP/2; only GET /metrics is served over HTTP/1.1\n",
        ),
    )));
    *response.status_mut() = http::StatusCode::HTTP_VERSION_NOT_SUPPORTED;
    response
}

/// Counts a call in flight for as long as it lives, and records it as cancelled if it is
/// dropped unanswered (the caller went away).
struct InFlight {
    metrics: ServiceMetrics,
    /// The method's series (see `ServiceMetrics::slot`).
    slot: usize,
    started: Instant,
    answered: bool,
}

impl InFlight {
    fn begin(metrics: ServiceMetrics, slot: usize) -> Self {
        metrics.inner.in_flight.inc();
        Self {
            metrics,
            slot,
            started: Instant::now(),
            answered: false,
        }
    }

    fn end(mut self, code: tonic::Code) {
        self.answered = true;
        self.metrics
            .record_slot(self.slot, code, self.started.elapsed());
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.metrics.inner.in_flight.dec();
        if !self.answered {
            self.metrics
                .record_slot(self.slot, tonic::Code::Cancelled, self.started.elapsed());
        }
    }
}

/// The metrics page.
fn page(metrics: &ServiceMetrics) -> http::Response<Body> {
    let mut response = http::Response::new(Body::new(http_body_util::Full::new(
        bytes::Bytes::from(metrics.render()),
    )));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
    );
    response
}

impl<S> tower::Service<http::Request<Body>> for Measured<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let path = request.uri().path();
        if path == METRICS_PATH && request.method() == http::Method::GET {
            let page = page(&self.metrics);
            return Box::pin(async move { Ok(page) });
        }
        if request.version() < http::Version::HTTP_2 {
            return Box::pin(async move { Ok(http1_refused()) });
        }
        // The clone is the ready one's twin; keep the ready one for this call (tower's rule).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let measured = path
            .strip_prefix('/')
            .and_then(|p| p.split_once('/'))
            .filter(|(service, _)| !service.starts_with("grpc."))
            .map(|(service, method)| self.metrics.slot(service, method));
        let Some(slot) = measured.filter(|_| super::recording()) else {
            return Box::pin(inner.call(request));
        };
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let in_flight = InFlight::begin(metrics, slot);
            let answer = inner.call(request).await;
            in_flight.end(match &answer {
                Ok(response) => status_of(response),
                Err(_) => tonic::Code::Unknown,
            });
            answer
        })
    }
}
