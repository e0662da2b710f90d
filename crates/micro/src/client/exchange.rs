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
use h2::{RecvStream, SendStream, client::ResponseFuture};
use http_body::{Body as _, Frame};
use tonic::body::Body;

/// Sends `request` on `sender` and waits for the answer's head. `in_flight` counts the call
/// until its answer's body is read to the end or dropped.
pub(crate) async fn exchange(
    sender: &mut h2::client::SendRequest<Bytes>,
    request: http::Request<Body>,
    in_flight: &Arc<AtomicUsize>,
) -> Result<http::Response<Body>, h2::Error> {
    let guard = InFlight::new(in_flight);
    let (mut head, body) = request.into_parts();
    strip_connection_headers(&mut head.headers);
    let end = body.is_end_stream();
    std::future::poll_fn(|cx| sender.poll_ready(cx)).await?;
    let (answer, stream) = sender.send_request(http::Request::from_parts(head, ()), end)?;
    let mut pump = (!end).then(|| SendBody::new(body, stream));
    let response = AwaitAnswer {
        answer,
        pump: &mut pump,
    }
    .await?;
    if let Some(pump) = pump {
        // The node answered before the request's body was all sent: a client stream.
        tokio::spawn(async move {
            if let Err(e) = pump.await {
                tracing::debug!(error = %e, "request stream ended early");
            }
        });
    }
    Ok(response.map(|stream| {
        Body::new(Answer {
            stream,
            state: Reading::Data,
            _in_flight: guard,
        })
    }))
}

/// The head of the answer, while the request's body goes out.
struct AwaitAnswer<'a> {
    answer: ResponseFuture,
    pump: &'a mut Option<SendBody>,
}

impl Future for AwaitAnswer<'_> {
    type Output = Result<http::Response<RecvStream>, h2::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(pump) = self.pump.as_mut() {
            match Pin::new(pump).poll(cx) {
                Poll::Ready(Ok(())) => *self.pump = None,
                // The request could not be sent whole: the stream is reset, and the answer
                // (an error) says why.
                Poll::Ready(Err(e)) => {
                    *self.pump = None;
                    tracing::debug!(error = %e, "request body not sent");
                }
                Poll::Pending => {}
            }
        }
        Pin::new(&mut self.answer).poll(cx)
    }
}

/// Copies a request body onto its stream. h2 buffers what the node's window does not yet
/// allow; the body is read only while the stream has room, so a slow node slows the sender.
struct SendBody {
    body: Body,
    stream: SendStream<Bytes>,
}

impl SendBody {
    fn new(body: Body, stream: SendStream<Bytes>) -> Self {
        Self { body, stream }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl Future for SendBody {
    type Output = Result<(), BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        loop {
            this.stream.reserve_capacity(1);
            if this.stream.capacity() == 0 {
                loop {
                    match ready!(this.stream.poll_capacity(cx)) {
                        Some(Ok(0)) => {}
                        Some(Ok(_)) => break,
                        Some(Err(e)) => return Poll::Ready(Err(e.into())),
                        // The node reset or closed the stream: nothing more to send.
                        None => return Poll::Ready(Ok(())),
                    }
                }
            } else if let Poll::Ready(reset) = this.stream.poll_reset(cx) {
                return Poll::Ready(reset.map(|_| ()).map_err(Into::into));
            }
            match ready!(Pin::new(&mut this.body).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(mut data) => {
                        let end = this.body.is_end_stream();
                        this.stream
                            .send_data(data.copy_to_bytes(data.remaining()), end)?;
                        if end {
                            return Poll::Ready(Ok(()));
                        }
                    }
                    Err(frame) => {
                        if let Ok(trailers) = frame.into_trailers() {
                            this.stream.send_trailers(trailers)?;
                            return Poll::Ready(Ok(()));
                        }
                    }
                },
                None => {
                    this.stream.send_data(Bytes::new(), true)?;
                    return Poll::Ready(Ok(()));
                }
                Some(Err(e)) => {
                    this.stream.send_reset(h2::Reason::CANCEL);
                    return Poll::Ready(Err(e.into()));
                }
            }
        }
    }
}

/// The answer's body.
struct Answer {
    stream: RecvStream,
    state: Reading,
    _in_flight: InFlight,
}

enum Reading {
    Data,
    Trailers,
    Done,
}

impl http_body::Body for Answer {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, h2::Error>>> {
        let this = &mut *self;
        if let Reading::Data = this.state {
            match ready!(this.stream.poll_data(cx)) {
                Some(Ok(data)) => {
                    // Read: the node may send as much again.
                    let _ = this.stream.flow_control().release_capacity(data.len());
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Some(Err(e)) => {
                    this.state = Reading::Done;
                    return Poll::Ready(Some(Err(e)));
                }
                None => this.state = Reading::Trailers,
            }
        }
        if let Reading::Done = this.state {
            return Poll::Ready(None);
        }
        let trailers = ready!(this.stream.poll_trailers(cx));
        this.state = Reading::Done;
        match trailers {
            Ok(Some(trailers)) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
            Ok(None) => Poll::Ready(None),
            Err(e) => Poll::Ready(Some(Err(e))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, Reading::Done)
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
