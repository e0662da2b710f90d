//! One call's HTTP/2 stream, driven from the caller's task: the request's body sent as the
//! node's flow control allows, the answer's head awaited, the answer's body read and its
//! window handed back.
//!
//! Why not hyper's HTTP/2 client: it hands each request to its connection's dispatch task
//! through a channel, and spawns a task per request that waits for the answer and passes it
//! back through another; a unary call woke three tasks on the way out and back. Here the
//! caller's task opens the stream on the shared connection state itself and is woken by the
//! connection's task when the answer arrives. A request body that is still being sent when the
//! answer's head arrives (a client stream) goes on in a task of its own.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll, ready},
};

use bytes::{Buf, Bytes};
use futures::{FutureExt, channel::oneshot};
use h2::{Reason, RecvStream, SendStream, client::ResponseFuture};
use http_body::{Body as _, Frame};
use tonic::{Status, body::Body};

/// Why an exchange failed.
#[derive(Debug)]
pub(crate) enum Failed {
    /// The request's own body failed (a message too large to encode, a stream that errored):
    /// the caller's doing, not the node's. The stream is reset.
    Request(Status),
    /// The stream, or the connection under it, failed.
    Stream(h2::Error),
}

/// Sends `head` and `body` on `sender` (ready: see [`h2::client::SendRequest::poll_ready`])
/// and waits for the answer's head. `in_flight` counts the call until its answer's body is read
/// to the end or dropped, and its request's body is sent.
pub(crate) async fn exchange(
    sender: &mut h2::client::SendRequest<Bytes>,
    mut head: http::request::Parts,
    body: Body,
    in_flight: &Arc<AtomicUsize>,
) -> Result<http::Response<Body>, Failed> {
    let guard = InFlight::new(in_flight);
    strip_connection_headers(&mut head.headers);
    let end = body.is_end_stream();
    let (answer, stream) = sender
        .send_request(http::Request::from_parts(head, ()), end)
        .map_err(Failed::Stream)?;
    let mut pump = (!end).then(|| SendBody::new(body, stream));
    let response = AwaitAnswer {
        answer,
        pump: &mut pump,
    }
    .await?;
    let mut cancel = None;
    if let Some(mut pump) = pump {
        // The node answered before the request's body was all sent: a client stream. The rest
        // is sent from a task of its own, counted in flight while it lasts, and reset if the
        // caller drops the answer before its end.
        let (tx, rx) = oneshot::channel();
        cancel = Some(tx);
        pump.cancel = Some(rx);
        let counted = InFlight::new(in_flight);
        tokio::spawn(async move {
            if let Err(e) = pump.await {
                tracing::debug!(error = %e, "request stream ended early");
            }
            drop(counted);
        });
    }
    Ok(response.map(|stream| {
        Body::new(Answer {
            stream,
            state: Reading::Data,
            in_flight: Some(guard),
            cancel,
        })
    }))
}

/// The head of the answer, while the request's body goes out.
struct AwaitAnswer<'a> {
    answer: ResponseFuture,
    pump: &'a mut Option<SendBody>,
}

impl Future for AwaitAnswer<'_> {
    type Output = Result<http::Response<RecvStream>, Failed>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(pump) = self.pump.as_mut() {
            match Pin::new(pump).poll(cx) {
                Poll::Ready(Ok(())) => *self.pump = None,
                Poll::Ready(Err(Failed::Request(status))) => {
                    *self.pump = None;
                    return Poll::Ready(Err(Failed::Request(status)));
                }
                // The stream failed: the answer (an error) says why.
                Poll::Ready(Err(Failed::Stream(_))) => *self.pump = None,
                Poll::Pending => {}
            }
        }
        Pin::new(&mut self.answer).poll(cx).map_err(Failed::Stream)
    }
}

/// Copies a request body onto its stream. A chunk read from the body waits for the node's
/// window before the next is read, so a slow node slows the sender; no window is claimed
/// before there is a chunk to send, so an idle stream holds none of the connection's.
struct SendBody {
    body: Body,
    stream: SendStream<Bytes>,
    /// A chunk read and not yet sent, and whether it ends the body.
    held: Option<(Bytes, bool)>,
    /// Fires if the caller drops the answer before its end (only once the pump is on its own).
    cancel: Option<oneshot::Receiver<()>>,
}

impl SendBody {
    fn new(body: Body, stream: SendStream<Bytes>) -> Self {
        Self {
            body,
            stream,
            held: None,
            cancel: None,
        }
    }
}

impl Future for SendBody {
    type Output = Result<(), Failed>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if let Some(cancel) = this.cancel.as_mut()
            && let Poll::Ready(dropped) = cancel.poll_unpin(cx)
        {
            this.cancel = None;
            if dropped.is_ok() {
                this.stream.send_reset(Reason::CANCEL);
                return Poll::Ready(Ok(()));
            }
        }
        loop {
            // Registered while waiting on the body or the window: a reset by the node ends it.
            if let Poll::Ready(reset) = this.stream.poll_reset(cx) {
                return Poll::Ready(match reset {
                    Ok(reason) => Err(Failed::Stream(reason.into())),
                    Err(e) => Err(Failed::Stream(e)),
                });
            }
            if let Some((chunk, end)) = this.held.take() {
                while this.stream.capacity() == 0 {
                    match this.stream.poll_capacity(cx) {
                        Poll::Ready(Some(Ok(_))) => {}
                        Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(Failed::Stream(e))),
                        // The stream is over: the node closed or reset it.
                        Poll::Ready(None) => return Poll::Ready(Ok(())),
                        Poll::Pending => {
                            this.held = Some((chunk, end));
                            return Poll::Pending;
                        }
                    }
                }
                this.stream.send_data(chunk, end).map_err(Failed::Stream)?;
                if end {
                    return Poll::Ready(Ok(()));
                }
                continue;
            }
            match ready!(Pin::new(&mut this.body).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(mut data) => {
                        let chunk = data.copy_to_bytes(data.remaining());
                        let end = this.body.is_end_stream();
                        if chunk.is_empty() {
                            this.stream.send_data(chunk, end).map_err(Failed::Stream)?;
                            if end {
                                return Poll::Ready(Ok(()));
                            }
                        } else {
                            // h2 raises the claim to the chunk's length as it sends it.
                            this.stream.reserve_capacity(1);
                            this.held = Some((chunk, end));
                        }
                    }
                    Err(frame) => {
                        if let Ok(trailers) = frame.into_trailers() {
                            this.stream.reserve_capacity(0);
                            this.stream
                                .send_trailers(trailers)
                                .map_err(Failed::Stream)?;
                            return Poll::Ready(Ok(()));
                        }
                    }
                },
                None => {
                    this.stream
                        .send_data(Bytes::new(), true)
                        .map_err(Failed::Stream)?;
                    return Poll::Ready(Ok(()));
                }
                Some(Err(status)) => {
                    this.stream.send_reset(Reason::CANCEL);
                    return Poll::Ready(Err(Failed::Request(status)));
                }
            }
        }
    }
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Request(status) => write!(f, "the request failed: {}", status.message()),
            Self::Stream(e) => e.fmt(f),
        }
    }
}

/// The answer's body. Its errors are gRPC statuses, as the gRPC spec maps HTTP/2's.
struct Answer {
    stream: RecvStream,
    state: Reading,
    /// Released at the end of the answer (or when it is dropped).
    in_flight: Option<InFlight>,
    /// Dropped unsent once the answer is read to the end; sent if the answer is dropped before.
    cancel: Option<oneshot::Sender<()>>,
}

enum Reading {
    Data,
    Trailers,
    Done,
}

impl Answer {
    fn done(&mut self) {
        self.state = Reading::Done;
        self.in_flight = None;
        self.cancel = None;
    }
}

impl Drop for Answer {
    fn drop(&mut self) {
        if let Some(cancel) = self.cancel.take() {
            let _ = cancel.send(());
        }
    }
}

impl http_body::Body for Answer {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        if let Reading::Data = this.state {
            match ready!(this.stream.poll_data(cx)) {
                Some(Ok(data)) => {
                    // Read: the node may send as much again.
                    let _ = this.stream.flow_control().release_capacity(data.len());
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Some(Err(e)) => {
                    this.done();
                    return Poll::Ready(Some(Err(status_of(&e))));
                }
                None => this.state = Reading::Trailers,
            }
        }
        if let Reading::Done = this.state {
            return Poll::Ready(None);
        }
        let trailers = ready!(this.stream.poll_trailers(cx));
        this.done();
        match trailers {
            Ok(Some(trailers)) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
            Ok(None) => Poll::Ready(None),
            Err(e) => Poll::Ready(Some(Err(status_of(&e)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        // A trailers-only answer (an error with no message) is over as it arrives.
        matches!(self.state, Reading::Done) || self.stream.is_end_stream()
    }
}

/// The gRPC status of a stream that failed: the gRPC spec's mapping of HTTP/2 reset codes,
/// and `UNAVAILABLE` for a connection that broke or was dropped (a node that stopped answering).
fn status_of(e: &h2::Error) -> Status {
    let Some(reason) = e.reason() else {
        return Status::unavailable(format!("the connection to the node was lost: {e}"));
    };
    let text = format!("the node's HTTP/2 stream ended: {e}");
    match reason {
        Reason::REFUSED_STREAM => Status::unavailable(text),
        Reason::CANCEL => Status::cancelled(text),
        Reason::ENHANCE_YOUR_CALM => Status::resource_exhausted(text),
        Reason::INADEQUATE_SECURITY => Status::permission_denied(text),
        _ => Status::internal(text),
    }
}

/// One call counted on its connection while it lasts (the connection pings only then).
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// HTTP/2 has no connection-level headers; a request passed on from HTTP/1.1 may carry them.
fn strip_connection_headers(headers: &mut http::HeaderMap) {
    use http::header::{CONNECTION, TE, TRANSFER_ENCODING, UPGRADE};
    for name in [CONNECTION, TRANSFER_ENCODING, UPGRADE] {
        headers.remove(name);
    }
    for name in ["keep-alive", "proxy-connection"] {
        headers.remove(name);
    }
    if headers.get(TE).is_some_and(|te| te != "trailers") {
        headers.remove(TE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_headers_are_dropped_and_te_trailers_kept() {
        let mut headers = http::HeaderMap::new();
        headers.insert("connection", "keep-alive".parse().unwrap());
        headers.insert("keep-alive", "timeout=5".parse().unwrap());
        headers.insert("te", "trailers".parse().unwrap());
        headers.insert("content-type", "application/grpc".parse().unwrap());
        strip_connection_headers(&mut headers);
        assert_eq!(headers.len(), 2);
        assert_eq!(headers["te"], "trailers");
        headers.insert("te", "gzip".parse().unwrap());
        strip_connection_headers(&mut headers);
        assert!(headers.get("te").is_none());
    }
}
