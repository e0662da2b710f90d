//! Malformed gRPC frames sent straight to a service built with `micro` and to the platform's own
//! gRPC port: the caller's mistake is answered `INVALID_ARGUMENT` (a 400 to the gateway's
//! callers), never `INTERNAL`, except where the gRPC specification asks for `INTERNAL` (a frame
//! flagged compressed with no `grpc-encoding`).

use http_body_util::BodyExt;
use micro_e2e::in_process;

/// The gRPC status (code and message) the server at `address` answers `body` at `path` with,
/// from the head of a trailers-only answer or from the trailers.
async fn status_of(address: &str, path: &str, body: &'static [u8]) -> (String, String) {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    let request = http::Request::post(path)
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(tonic::body::Body::new(http_body_util::Full::new(
            bytes::Bytes::from_static(body),
        )))
        .expect("request");
    let answer = tower::ServiceExt::oneshot(channel, request)
        .await
        .expect("an answer");
    let (head, body) = answer.into_parts();
    let trailers = if head.headers.contains_key("grpc-status") {
        head.headers
    } else {
        body.collect()
            .await
            .expect("the body")
            .trailers()
            .cloned()
            .expect("trailers")
    };
    let status = tonic::Status::from_header_map(&trailers).expect("a gRPC status");
    (
        trailers["grpc-status"].to_str().unwrap().to_owned(),
        status.message().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_frames_are_the_callers_mistake() {
    let platform = in_process::platform(true).await;
    let service = in_process::helloworld(&platform).await;
    let node = service.address().to_string();
    let call = "/helloworld.Helloworld/Call";
    for (body, what) in [
        (&[0u8, 0, 0][..], "a frame shorter than its 5-byte prefix"),
        (&[0, 0, 0, 1, 0, 0x0a][..], "a length prefix past the body"),
        (&[][..], "no message at all"),
        (&[0x80, 0, 0, 0, 0][..], "a flag that is neither 0 nor 1"),
        (
            &[0, 0, 0, 0, 2, 0xff, 0xff][..],
            "bytes that are no protobuf",
        ),
    ] {
        let (code, message) = status_of(&node, call, body).await;
        assert_eq!(code, "3", "{what}: {message}");
    }
    let (code, message) = status_of(&node, call, &[1, 0, 0, 0, 1, 0]).await;
    assert_eq!(code, "13", "compressed without grpc-encoding: {message}");
    // The platform's own door, before any account: the same.
    let platform_address = platform.grpc_address().to_string();
    let (code, message) = status_of(&platform_address, "/micro.auth.Auth/Token", &[0, 0, 0]).await;
    assert_eq!(code, "3", "{message}");
    // And both still serve.
    let (code, message) = status_of(&node, call, &[0, 0, 0, 0, 3, 0x0a, 1, b'x']).await;
    assert_eq!(code, "0", "{message}");

    service.stop().await.expect("stop helloworld");
    platform.stop().await;
}
