//! [`ResponseFuture`]: the inner server's answer, its decode failure relabelled.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use http::HeaderValue;

/// How tonic's `INTERNAL` answers begin when the request, not the server, is at fault: a body
/// that is not the method's message, a frame cut short, a unary call with no message, a frame
/// flag that is neither 0 nor 1, a compressed frame that does not decompress. (A frame flagged compressed without a `grpc-encoding` stays
/// `INTERNAL`: the gRPC specification says so in as many words.)
const CLIENT_MISTAKES: [(&str, bool); 5] = [
    // (how the message begins, whether it must also end saying the request had it)
    ("failed to decode Protobuf message", false),
    ("Unexpected EOF decoding stream", false),
    ("Missing request message", false),
    (
        "protocol error: received message with invalid compression flag",
        true,
    ),
    ("Error decompressing", true),
];

/// How tonic ends the message of a bad frame flag or a failed decompression when the request,
/// not a response it read from further down, had it.
const IN_THE_REQUEST: &str = "while sending request";

/// Whether tonic's INTERNAL `message` says the request was at fault.
fn client_mistake(message: &str) -> bool {
    CLIENT_MISTAKES.iter().any(|(begins, in_the_request)| {
        message.starts_with(begins) && (!in_the_request || message.ends_with(IN_THE_REQUEST))
    })
}

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
        // Only tonic's own INTERNAL answers: they carry no details (a Micro error always does,
        // and one passed on from further down keeps its code). Only their message is read.
        let undecodable = headers.get("grpc-status").is_some_and(|s| s == "13")
            && !headers.contains_key("grpc-status-details-bin")
            && headers
                .get("grpc-message")
                .and_then(|m| {
                    percent_encoding::percent_decode(m.as_bytes())
                        .decode_utf8()
                        .ok()
                })
                .is_some_and(|message| client_mistake(&message));
        if undecodable {
            // INVALID_ARGUMENT
            headers.insert("grpc-status", HeaderValue::from_static("3"));
        }
        Poll::Ready(Ok(response))
    }
}
