//! A request that does not decode is the caller's mistake: `INVALID_ARGUMENT`, not `INTERNAL`.
//!
//! tonic answers a request body that is not the method's protobuf message with
//! `INTERNAL: failed to decode Protobuf message`, before any handler runs — and so a frame cut
//! short, a unary call with no message and a frame flag that is neither 0 nor 1 — so every gRPC
//! server would report a client's garbage as its own fault (a 500 at the gateway, an alarm in
//! every dashboard). This layer, in front of the platform's and every service's server, turns
//! exactly those answers into `INVALID_ARGUMENT` with the same message. It reads only the
//! response head: tonic sends such an answer as a trailers-only response, so the status is in
//! the headers, and nothing else is touched. (A stream whose later message fails to decode
//! ends with the status in its trailers, which this layer does not rewrite: that would cost a
//! wrapped body on every answer.)
//!
//! | file | holds |
//! |---|---|
//! | `layer.rs` | [`UndecodableLayer`] |
//! | `future.rs` | [`ResponseFuture`], which rewrites the status |
//! | `mod.rs` | [`Undecodable`], the service |

mod future;
mod layer;

use std::task::{Context, Poll};

pub use future::ResponseFuture;
pub use layer::UndecodableLayer;

/// A gRPC server behind [`UndecodableLayer`].
#[derive(Debug, Clone)]
pub struct Undecodable<S> {
    inner: S,
}

impl<S> Undecodable<S> {
    /// `inner`, its decode failures answered as `INVALID_ARGUMENT`.
    pub fn new(inner: S) -> Self {
        Self { inner }
    }
}

impl<S, Req, B> tower::Service<Req> for Undecodable<S>
where
    S: tower::Service<Req, Response = http::Response<B>>,
{
    type Response = http::Response<B>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        ResponseFuture::new(self.inner.call(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::{Service, ServiceExt};

    fn answer(status: &str, message: &str) -> http::Response<()> {
        http::Response::builder()
            .header("grpc-status", status)
            .header("grpc-message", message)
            .body(())
            .unwrap()
    }

    #[tokio::test]
    async fn an_answer_with_details_is_left_as_it_is_however_malformed() {
        let mut svc = Undecodable::new(tower::service_fn(|_: ()| async {
            let mut rsp = answer("13", "Unexpected%20EOF%20decoding%20stream.");
            rsp.headers_mut().insert(
                "grpc-status-details-bin",
                http::HeaderValue::from_static("!!!"),
            );
            Ok::<_, std::convert::Infallible>(rsp)
        }));
        let rsp = svc.ready().await.unwrap().call(()).await.unwrap();
        assert_eq!(rsp.headers()["grpc-status"], "13");
    }

    #[tokio::test]
    async fn only_decode_failures_become_invalid_argument() {
        for (status, message, want) in [
            (
                "13",
                "failed%20to%20decode%20Protobuf%20message%3A%20x",
                "3",
            ),
            ("13", "something%20broke", "13"),
            ("13", "Unexpected%20EOF%20decoding%20stream.", "3"),
            ("13", "Missing%20request%20message.", "3"),
            (
                "13",
                "protocol%20error:%20received%20message%20with%20invalid%20compression%20flag:%20128%20(valid%20flags%20are%200%20and%201),%20while%20sending%20request",
                "3",
            ),
            (
                "13",
                "Error%20decompressing:%20invalid%20gzip%20header,%20while%20sending%20request",
                "3",
            ),
            // A response further down had the bad flag: not the caller's doing.
            (
                "13",
                "protocol%20error:%20received%20message%20with%20invalid%20compression%20flag:%20128%20(valid%20flags%20are%200%20and%201)%20while%20receiving%20response%20with%20status:%20200",
                "13",
            ),
            (
                "13",
                "protocol%20error:%20received%20message%20with%20compressed-flag%20but%20no%20grpc-encoding%20was%20specified",
                "13",
            ),
            ("3", "failed%20to%20decode%20Protobuf%20message", "3"),
            ("0", "", "0"),
        ] {
            let mut svc = Undecodable::new(tower::service_fn(move |_: ()| async move {
                Ok::<_, std::convert::Infallible>(answer(status, message))
            }));
            let rsp = svc.ready().await.unwrap().call(()).await.unwrap();
            assert_eq!(rsp.headers()["grpc-status"], want, "{status} {message}");
        }
    }
}
