//! Calls for the sidecar's service, forwarded to its app: a gRPC request for
//! `/sidecar.NAME.Service/Method` (a `google.protobuf.Struct`) becomes an HTTP POST of its JSON
//! to the app's path for that endpoint, and the app's JSON answer the gRPC response. An app's
//! 4xx or 5xx becomes the gRPC status of the same meaning, with the app's words as its message.

use std::{
    collections::HashMap,
    convert::Infallible,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use micro::codec::BytesCodec;
use prost_reflect::{DescriptorPool, MessageDescriptor};
use tonic::{Status, body::Body, server::Grpc};

use super::app_client::App;

/// How long the app may take when the caller set no deadline.
const DEFAULT_DEADLINE: Duration = Duration::from_secs(30);
/// How much of an app's error body becomes the status message.
const MAX_MESSAGE: usize = 1024;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The tower service every proto service of the sidecar is served by.
#[derive(Clone)]
pub(crate) struct Forward {
    inner: Arc<Inner>,
}

struct Inner {
    app: App,
    routes: HashMap<String, String>,
    structure: MessageDescriptor,
}

impl Forward {
    /// Forwards the gRPC paths of `routes` to their app paths on `app`.
    pub(crate) fn new(app: App, routes: HashMap<String, String>) -> Self {
        let structure = DescriptorPool::global()
            .get_message_by_name("google.protobuf.Struct")
            .expect("the global pool holds the well-known types");
        Self {
            inner: Arc::new(Inner {
                app,
                routes,
                structure,
            }),
        }
    }
}

impl tower::Service<http::Request<Body>> for Forward {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let inner = self.inner.clone();
        Box::pin(async move {
            let Some(path) = inner.routes.get(request.uri().path()).cloned() else {
                return Ok(Status::unimplemented(format!(
                    "no endpoint at {}",
                    request.uri().path()
                ))
                .into_http());
            };
            let mut grpc = Grpc::new(BytesCodec);
            Ok(grpc.unary(Endpoint { inner, path }, request).await)
        })
    }
}

/// One endpoint's handler: the app path its calls go to.
struct Endpoint {
    inner: Arc<Inner>,
    path: String,
}

impl tonic::server::UnaryService<Bytes> for Endpoint {
    type Response = Bytes;
    type Future = BoxFuture<Result<tonic::Response<Bytes>, Status>>;

    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        let inner = self.inner.clone();
        let path = self.path.clone();
        Box::pin(async move {
            let deadline = micro::deadline::remaining()
                .unwrap_or(DEFAULT_DEADLINE)
                .min(DEFAULT_DEADLINE);
            let json = micro::transcode::protobuf_to_json(&inner.structure, request.get_ref())
                .map_err(|e| Status::invalid_argument(e.detail))?;
            let body = serde_json::to_vec(&json).map_err(|e| Status::internal(e.to_string()))?;
            let (status, answer) = inner
                .app
                .send(http::Method::POST, &path, Some(body), deadline)
                .await
                .map_err(|e| micro::status::to_status(&e))?;
            if !(200..300).contains(&status) {
                let text = String::from_utf8_lossy(&answer);
                let message: String = text.trim().chars().take(MAX_MESSAGE).collect();
                return Err(Status::new(code_of(status), message));
            }
            let text = std::str::from_utf8(&answer).map_err(|_| {
                Status::internal("the app answered something other than UTF-8 JSON")
            })?;
            let message =
                micro::transcode::json_to_protobuf(&inner.structure, text).map_err(|e| {
                    Status::internal(format!(
                        "the app's answer is not a JSON object: {}",
                        e.detail
                    ))
                })?;
            Ok(tonic::Response::new(message))
        })
    }
}

/// The gRPC code of an app's HTTP status.
fn code_of(status: u16) -> tonic::Code {
    use tonic::Code;
    match status {
        400 | 422 => Code::InvalidArgument,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::NotFound,
        409 => Code::AlreadyExists,
        412 => Code::FailedPrecondition,
        429 => Code::ResourceExhausted,
        499 => Code::Cancelled,
        501 => Code::Unimplemented,
        503 => Code::Unavailable,
        504 => Code::DeadlineExceeded,
        _ => Code::Internal,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn http_statuses_keep_their_meaning() {
        use tonic::Code;
        assert_eq!(super::code_of(404), Code::NotFound);
        assert_eq!(super::code_of(400), Code::InvalidArgument);
        assert_eq!(super::code_of(503), Code::Unavailable);
        assert_eq!(super::code_of(500), Code::Internal);
        assert_eq!(super::code_of(418), Code::Internal);
    }
}
