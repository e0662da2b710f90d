//! A request body that can be handed to another node if the first never read it.
//!
//! Retrying a call on another node is safe only if the first node never received the request.
//! When a connection cannot be made, or fails before the request went out, its body is never
//! polled; this wrapper notices that — the body is still in its shared slot — and lets the
//! retry take it. Once any node has started reading, the slot is empty and the call is not retried.
//! Streaming requests keep streaming: nothing is buffered.

use std::{
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tonic::body::Body as TonicBody;

/// The shared slot; `None` once a node started reading.
#[derive(Clone)]
pub(crate) struct Slot(Arc<Mutex<Option<TonicBody>>>);

impl Slot {
    pub(crate) fn new(body: TonicBody) -> Self {
        Self(Arc::new(Mutex::new(Some(body))))
    }

    /// Whether no node has started reading the body.
    pub(crate) fn untouched(&self) -> bool {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).is_some()
    }

    /// A body for one attempt.
    pub(crate) fn body(&self) -> TonicBody {
        TonicBody::new(ReplayBody {
            slot: self.clone(),
            taken: None,
        })
    }
}

struct ReplayBody {
    slot: Slot,
    taken: Option<TonicBody>,
}

impl Body for ReplayBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.taken.is_none() {
            let body = self.slot.0.lock().unwrap_or_else(|p| p.into_inner()).take();
            match body {
                Some(body) => self.taken = Some(body),
                // Another attempt owns the body; this one has nothing to send.
                None => return Poll::Ready(None),
            }
        }
        let inner = self.taken.as_mut().expect("set above");
        Pin::new(inner).poll_frame(cx)
    }

    // Both delegate to the real body, wherever it is, so the HTTP/2 client frames the request
    // exactly as it would without this wrapper (END_STREAM on the last DATA frame, no extra one).
    fn is_end_stream(&self) -> bool {
        match &self.taken {
            Some(body) => body.is_end_stream(),
            None => self
                .slot
                .0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
                .is_none_or(|b| b.is_end_stream()),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.taken {
            Some(body) => body.size_hint(),
            None => self
                .slot
                .0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
                .map(|b| b.size_hint())
                .unwrap_or_default(),
        }
    }
}
