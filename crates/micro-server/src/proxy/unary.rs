//! A unary call with a message already encoded: one gRPC frame out, one back, on the client's
//! channel as it is.
//!
//! Why not tonic's client: for a message that is already bytes, its codec machinery (a
//! streaming encoder and decoder, each with its own buffer, per call) was a measurable part of
//! what a gateway call cost over the floor of the gateway bench. The frame is five bytes of
//! prefix; the answer's status is read as tonic reads it (`Status::from_header_map`).

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, uri::PathAndQuery};
use http_body_util::BodyExt;
use micro::client::{InMemory, ServiceChannel};
use tonic::{Code, Status};

use super::frame::{self, Unframed};

/// The largest answer a call takes, as tonic's client allows by default.
const MAX_ANSWER: usize = 4 * 1024 * 1024;

/// Calls `path` with `message` and `metadata`; answers the response message.
pub(crate) async fn call(
    channel: ServiceChannel,
    path: &PathAndQuery,
    metadata: HeaderMap,
    message: Bytes,
) -> Result<Bytes, Status> {
    let frame = frame::frame(&message)
        .ok_or_else(|| Status::out_of_range("the request is larger than a gRPC message may be"))?;
    let mut request = http::Request::new(tonic::body::Body::new(http_body_util::Full::new(frame)));
    *request.method_mut() = http::Method::POST;
    *request.uri_mut() = http::Uri::from(path.clone());
    let headers = request.headers_mut();
    *headers = metadata;
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert(http::header::TE, HeaderValue::from_static("trailers"));
    // The message is here, whole: the client may keep it to send again.
    request.extensions_mut().insert(InMemory);
    let answer = tower::ServiceExt::oneshot(channel, request).await?;
    let (head, body) = answer.into_parts();
    // An error answered with the head alone; its grpc-status counts before the HTTP status,
    // as a proxy in between may answer 429 or 503 with the service's own status.
    if let Some(Err(status)) = status_of(&head.headers) {
        return Err(status);
    }
    if head.status != StatusCode::OK {
        return Err(from_http(head.status));
    }
    let body = http_body_util::Limited::new(body, MAX_ANSWER + 5)
        .collect()
        .await
        .map_err(|e| match e.downcast::<Status>() {
            Ok(status) => *status,
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                Status::out_of_range(format!("the answer is larger than {MAX_ANSWER} bytes"))
            }
            Err(e) => Status::unavailable(format!("the answer was cut off: {e}")),
        })?;
    body.trailers()
        .and_then(status_of)
        .or_else(|| status_of(&head.headers))
        .ok_or_else(|| Status::unknown("the service's answer carries no grpc-status"))??;
    one_message(body.to_bytes())
}

/// The message of a body holding exactly one uncompressed gRPC frame.
fn one_message(data: Bytes) -> Result<Bytes, Status> {
    frame::unframe(data).map_err(|why| {
        Status::internal(match why {
            Unframed::Short => "the service answered OK without a message".to_owned(),
            Unframed::Flag(1) => {
                "the service compressed its answer, which the proxy did not ask for".to_owned()
            }
            Unframed::Flag(flag) => {
                format!("the service's answer has an invalid compression flag {flag}")
            }
            Unframed::Length => {
                "the service's answer to a unary call is not exactly one message".to_owned()
            }
        })
    })
}

/// The status in `headers` (`None` without one): OK, or the error, read as tonic reads it;
/// details that are not base64 are dropped (tonic would panic on them, and they come from the
/// node). The common answer, `0`, is taken as it is, without building a `Status`.
fn status_of(headers: &HeaderMap) -> Option<Result<(), Status>> {
    const DETAILS: &str = "grpc-status-details-bin";
    match headers.get("grpc-status") {
        None => return None,
        Some(code) if code == "0" => return Some(Ok(())),
        Some(_) => {}
    }
    use base64::{
        Engine,
        alphabet::STANDARD,
        engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig},
    };
    // As tonic decodes them: padded or not.
    const ENGINE: GeneralPurpose = GeneralPurpose::new(
        &STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let valid = |v: &HeaderValue| ENGINE.decode(v.as_bytes()).is_ok();
    let status = match headers.get(DETAILS) {
        Some(details) if !valid(details) => {
            let mut headers = headers.clone();
            headers.remove(DETAILS);
            Status::from_header_map(&headers)
        }
        _ => Status::from_header_map(headers),
    }?;
    Some(if status.code() == Code::Ok {
        Ok(())
    } else {
        Err(status)
    })
}

/// An HTTP status in place of a gRPC answer, as the gRPC spec maps it.
fn from_http(status: StatusCode) -> Status {
    let code = match status.as_u16() {
        400 => Code::Internal,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::Unimplemented,
        429 | 502 | 503 | 504 => Code::Unavailable,
        _ => Code::Unknown,
    };
    Status::new(code, format!("the service answered HTTP {status}"))
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::*;

    /// What a fake node answers: HTTP status, head headers, body, trailers.
    type Answer = (
        u16,
        Vec<(&'static str, &'static str)>,
        Bytes,
        Option<HeaderMap>,
    );

    /// A node answering every call with `answer`.
    async fn node(answer: fn() -> Answer) -> (ServiceChannel, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let server = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let service = hyper::service::service_fn(move |_: http::Request<_>| async move {
                    let (status, headers, data, trailers) = answer();
                    let mut frames = vec![Ok::<_, std::convert::Infallible>(
                        http_body::Frame::data(data),
                    )];
                    frames.extend(trailers.map(|t| Ok(http_body::Frame::trailers(t))));
                    let mut response = http::Response::new(http_body_util::StreamBody::new(
                        futures::stream::iter(frames),
                    ));
                    *response.status_mut() = StatusCode::from_u16(status).unwrap();
                    for (k, v) in headers {
                        response
                            .headers_mut()
                            .insert(k, HeaderValue::from_static(v));
                    }
                    Ok::<_, std::convert::Infallible>(response)
                });
                tokio::spawn(
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(hyper_util::rt::TokioIo::new(tcp), service),
                );
            }
        });
        let registry = std::sync::Arc::new(micro_core::MemoryRegistry::new());
        let channel = micro::Client::builder(registry).build().node(&address);
        (channel, server)
    }

    async fn ask(channel: ServiceChannel) -> Result<Bytes, Status> {
        let path = PathAndQuery::from_static("/x.Y/Z");
        call(channel, &path, HeaderMap::new(), Bytes::new()).await
    }

    fn ok() -> HeaderMap {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static("0"));
        trailers
    }

    #[tokio::test]
    async fn what_a_hostile_node_answers_is_refused_with_a_status() {
        // An answer past the limit.
        let (channel, server) = node(|| {
            let mut frame = BytesMut::from(&[0u8, 0, 0x50, 0, 0][..]);
            frame.resize(5 + 5 * 1024 * 1024, 7);
            (200, vec![], frame.freeze(), Some(ok()))
        })
        .await;
        assert_eq!(ask(channel).await.unwrap_err().code(), Code::OutOfRange);
        server.abort();
        // Two messages to a unary call.
        let (channel, server) = node(|| {
            let two = Bytes::from_static(&[0, 0, 0, 0, 1, 8, 0, 0, 0, 0, 1, 8]);
            (200, vec![], two, Some(ok()))
        })
        .await;
        assert_eq!(ask(channel).await.unwrap_err().code(), Code::Internal);
        server.abort();
        // No grpc-status at all.
        let (channel, server) = node(|| (200, vec![], Bytes::from_static(&[0; 5]), None)).await;
        assert_eq!(ask(channel).await.unwrap_err().code(), Code::Unknown);
        server.abort();
        // A proxy in between answering 429 with the service's own status: the status counts.
        let (channel, server) = node(|| {
            let head = vec![("grpc-status", "8"), ("grpc-message", "slow%20down")];
            (429, head, Bytes::new(), None)
        })
        .await;
        let status = ask(channel).await.unwrap_err();
        assert_eq!(
            (status.code(), status.message()),
            (Code::ResourceExhausted, "slow down")
        );
        server.abort();
        // A bare HTTP error.
        let (channel, server) = node(|| (404, vec![], Bytes::new(), None)).await;
        assert_eq!(ask(channel).await.unwrap_err().code(), Code::Unimplemented);
        server.abort();
        // And a well-formed answer.
        let (channel, server) = node(|| {
            (
                200,
                vec![],
                Bytes::from_static(&[0, 0, 0, 0, 2, 8, 1]),
                Some(ok()),
            )
        })
        .await;
        assert_eq!(ask(channel).await.unwrap(), Bytes::from_static(&[8, 1]));
        server.abort();
    }

    #[test]
    fn a_status_with_details_that_are_not_base64_is_read_without_them() {
        let mut headers = HeaderMap::new();
        headers.insert("grpc-status", HeaderValue::from_static("5"));
        headers.insert(
            "grpc-message",
            HeaderValue::from_static("no%20such%20thing"),
        );
        headers.insert(
            "grpc-status-details-bin",
            HeaderValue::from_static("*not base64*"),
        );
        let status = status_of(&headers)
            .expect("a status")
            .expect_err("an error");
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(status.message(), "no such thing");
        assert!(status.details().is_empty());
        // Unpadded, as gRPC servers send them: kept.
        headers.insert("grpc-status-details-bin", HeaderValue::from_static("AQI"));
        assert_eq!(
            status_of(&headers).unwrap().unwrap_err().details(),
            &[1, 2][..]
        );
        // OK taken as it comes; any other spelling is read as tonic reads it (not OK).
        headers.insert("grpc-status", HeaderValue::from_static("0"));
        assert!(matches!(status_of(&headers), Some(Ok(()))));
        headers.insert("grpc-status", HeaderValue::from_static("00"));
        let odd = status_of(&headers).unwrap().unwrap_err();
        assert_eq!(
            odd.code(),
            Status::from_header_map(&headers).unwrap().code()
        );
        assert!(status_of(&HeaderMap::new()).is_none());
    }

    #[test]
    fn an_answer_is_exactly_one_uncompressed_message() {
        assert_eq!(
            one_message(Bytes::from_static(&[0, 0, 0, 0, 2, 8, 1])).unwrap(),
            Bytes::from_static(&[8, 1])
        );
        assert_eq!(
            one_message(Bytes::from_static(&[0, 0, 0, 0, 0])).unwrap(),
            Bytes::new()
        );
        for bad in [
            &[][..],
            &[0, 0, 0][..],
            &[1, 0, 0, 0, 1, 8][..],
            &[0, 0, 0, 0, 3, 8][..],
            &[0, 0, 0, 0, 1, 8, 0, 0, 0, 0, 0][..],
        ] {
            assert_eq!(
                one_message(Bytes::copy_from_slice(bad)).unwrap_err().code(),
                Code::Internal
            );
        }
    }
}
