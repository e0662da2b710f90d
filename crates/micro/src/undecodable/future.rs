//! [`ResponseFuture`]: the inner server's answer, its decode failure relabelled.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use http::HeaderValue;

/// What tonic's prost codec says (percent-encoded, as `grpc-message` travels) when a request
/// is not the method's message.
const DECODE_FAILURE: &str = "failed%20to%20decode%20Protobuf%20message";

/// The answer of an [`Undecodable`](super::Undecodable) server.
#[derive(Debug)]
pub struct ResponseFuture<F> {
    inner: Pin<Box<F>>,
}

impl<F> ResponseFuture<F> {
    pub(super) fn new(inner: F) -> Self {
        Self {
            inner: Box::pin(inner),
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<http::Response<B>, E>>,
{
    type Output = Result<http::Response<B>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut response = match self.inner.as_mut().poll(cx) {
            Poll::Ready(Ok(response)) => response,
            other => return other,
        };
        let headers = response.headers_mut();
        let undecodable = headers.get("grpc-status").is_some_and(|s| s == "13")
            && headers
                .get("grpc-message")
                .and_then(|m| m.to_str().ok())
                .is_some_and(|m| m.starts_with(DECODE_FAILURE));
        if undecodable {
            // INVALID_ARGUMENT
            headers.insert("grpc-status", HeaderValue::from_static("3"));
        }
        Poll::Ready(Ok(response))
    }
}
