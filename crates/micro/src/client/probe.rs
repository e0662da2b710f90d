//! The probe of an ejected node: one `grpc.health.v1.Health/Check` on a fresh connection (the
//! old one may be the one that hung), which later calls share if the node answers. What the
//! node answers does not matter (a service that does not serve health checks, or refuses this
//! caller, still answers); that it answers in time does.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use tonic::body::Body;

use super::connection::Connection;

/// How long a probe waits for an answer.
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// An empty `HealthCheckRequest`: an uncompressed gRPC frame of length 0.
const EMPTY_MESSAGE: [u8; 5] = [0; 5];

/// Whether the node behind `connection` answers a health check within [`PROBE_TIMEOUT`].
pub(crate) async fn answers(connection: &Connection) -> bool {
    let Ok(mut request) = http::Request::builder()
        .method(http::Method::POST)
        .uri("/grpc.health.v1.Health/Check")
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .header(http::header::TE, "trailers")
        .body(Body::new(Full::new(Bytes::from_static(&EMPTY_MESSAGE))))
    else {
        return false;
    };
    if let Ok(v) = crate::deadline::format_grpc_timeout(PROBE_TIMEOUT).parse() {
        request.headers_mut().insert("grpc-timeout", v);
    }
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, connection.send(request)).await,
        Ok(Ok(_))
    )
}
