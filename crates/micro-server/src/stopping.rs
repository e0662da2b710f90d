//! [`Stopping`]: the server stopping, as its long calls see it. A stream a caller holds open —
//! a subscription, a watch, `micro logs -f`, a service's stream through the proxy — ends at
//! once with `UNAVAILABLE` when the server stops, instead of holding the stop for its whole
//! grace period; the caller reconnects, to another server when there is one.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use futures::{Stream, future::BoxFuture};
use micro_core::Error;
use tokio::sync::watch;

/// The platform's stop signal (true once stopping).
#[derive(Clone, Debug)]
pub(crate) struct Stopping(watch::Receiver<bool>);

impl Stopping {
    pub(crate) fn new(signal: watch::Receiver<bool>) -> Self {
        Self(signal)
    }

    /// The signal the server's guard left on `req` (none without a guard).
    pub(crate) fn of<T>(req: &tonic::Request<T>) -> Option<Self> {
        req.extensions().get::<Self>().cloned()
    }

    /// `stream`, ended with `UNAVAILABLE` (made an `E` by `refuse`) once the server stops.
    pub(crate) fn end<T: Send + 'static, E: Send + 'static>(
        this: Option<Self>,
        stream: Pin<Box<dyn Stream<Item = Result<T, E>> + Send>>,
        refuse: fn(Error) -> E,
    ) -> Pin<Box<dyn Stream<Item = Result<T, E>> + Send>> {
        let Some(Stopping(mut signal)) = this else {
            return stream;
        };
        Box::pin(Ended {
            stream,
            // A dropped sender is a server gone: stopped too.
            stopped: Some(Box::pin(async move {
                let _ = signal.wait_for(|stopping| *stopping).await;
            })),
            refuse,
        })
    }
}

struct Ended<T, E> {
    stream: Pin<Box<dyn Stream<Item = Result<T, E>> + Send>>,
    /// Taken once it fires, or once the stream ended on its own.
    stopped: Option<BoxFuture<'static, ()>>,
    refuse: fn(Error) -> E,
}

impl<T, E> Stream for Ended<T, E> {
    type Item = Result<T, E>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let Some(stopped) = &mut this.stopped else {
            return Poll::Ready(None);
        };
        if stopped.as_mut().poll(cx).is_ready() {
            this.stopped = None;
            return Poll::Ready(Some(Err((this.refuse)(Error::unavailable(
                "micro.server",
                "the server is stopping: reconnect (to another server, if there is one)",
            )))));
        }
        match this.stream.as_mut().poll_next(cx) {
            Poll::Ready(None) => {
                this.stopped = None;
                Poll::Ready(None)
            }
            other => other,
        }
    }
}
