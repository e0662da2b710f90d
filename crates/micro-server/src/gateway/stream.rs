//! Streaming endpoints over HTTP.
//!
//! A server-streaming endpoint answers a plain request with one JSON message per line
//! (`application/x-ndjson`), or with server-sent events when the client asks for
//! `text/event-stream`. An error after the stream started is the last line (or an `error`
//! event): `{"error": {id, code, detail, status}}`.
//!
//! A WebSocket upgrade carries any kind of endpoint, bidirectional ones included: each text (or
//! binary) frame from the client is one JSON request message — only the first counts for an
//! endpoint that takes a single request — and each response is one text frame. Closing the
//! socket ends the request stream; the service's end or error closes the socket. A frame that
//! breaks the WebSocket protocol closes it with the code that says how — 1002 (an unmasked
//! frame, a reserved bit or opcode), 1007 (text that is not UTF-8), 1009 (too big) — and why.

use std::convert::Infallible;

use axum::{
    body::{Body, Bytes},
    extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade},
    http::{HeaderMap, HeaderValue, header},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use futures::{SinkExt, StreamExt};
use micro::transcode;
use micro_core::Error;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::proxy::{JsonStream, ProxyService, Target};

/// How many client messages may wait for the service before the socket stops reading.
const WS_BUFFER: usize = 16;

/// Whether the client asked for server-sent events.
pub(crate) fn wants_sse(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"))
}

/// The `{"error": …}` wrapper a stream ends with when the service fails mid-way.
fn error_line(err: &Error) -> String {
    format!("{{\"error\":{}}}", err.to_json())
}

/// Streams `responses` as server-sent events.
pub(crate) fn sse(responses: JsonStream) -> Response {
    let events = responses.map(|item| {
        Ok::<_, Infallible>(match item {
            Ok(json) => Event::default().data(json.to_string()),
            Err(err) => Event::default().event("error").data(err.to_json()),
        })
    });
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// Streams `responses` as newline-delimited JSON.
pub(crate) fn ndjson(responses: JsonStream) -> Response {
    let lines = responses.map(|item| {
        let mut line = match item {
            Ok(json) => json.to_string(),
            Err(err) => error_line(&err),
        };
        line.push('\n');
        Ok::<_, Infallible>(Bytes::from(line))
    });
    let mut response = Body::from_stream(lines).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    response
}

/// Accepts the upgrade and bridges the socket to the endpoint.
/// Frames and messages larger than `max` bytes (the gateway's body limit) close the socket.
pub(crate) fn websocket(
    upgrade: WebSocketUpgrade,
    proxy: ProxyService,
    target: Target,
    max: usize,
) -> Response {
    upgrade
        .max_message_size(max)
        .max_frame_size(max)
        .on_failed_upgrade(|e| tracing::debug!("websocket upgrade failed: {e}"))
        .on_upgrade(move |socket| bridge(socket, proxy, target))
}

/// Why the client's side of a socket ended a stream early.
enum Ended {
    /// A request that did not transcode: said in an error line, then a normal close.
    Bad(Error),
    /// A frame that broke the WebSocket protocol: said in the close frame, with its code.
    Violation(CloseFrame),
}

async fn bridge(socket: WebSocket, proxy: ProxyService, target: Target) {
    let (mut sink, mut source) = socket.split();
    let (requests, inbound) = mpsc::channel::<Bytes>(WS_BUFFER);
    let (errors, mut reader_errors) = mpsc::channel::<Ended>(1);
    let input = target.resolved.method.input();
    let single = !target.resolved.method.is_client_streaming();
    let reader = tokio::spawn(async move {
        while let Some(frame) = source.next().await {
            let frame = match frame {
                Ok(frame) => frame,
                Err(e) => {
                    if let Some(close) = crate::ws_close::for_error(e) {
                        let _ = errors.send(Ended::Violation(close)).await;
                    }
                    break;
                }
            };
            let text = match frame {
                Message::Text(text) => text.as_str().to_owned(),
                Message::Binary(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                Message::Close(_) => break,
                Message::Ping(_) | Message::Pong(_) => continue,
            };
            match transcode::json_to_protobuf(&input, &text) {
                Ok(message) => {
                    if requests.send(message).await.is_err() || single {
                        break;
                    }
                }
                Err(err) => {
                    let _ = errors.send(Ended::Bad(err)).await;
                    break;
                }
            }
        }
    });

    let outcome = match proxy.stream(&target, ReceiverStream::new(inbound)).await {
        Ok(mut responses) => loop {
            tokio::select! {
                // A request that did not transcode first: it is why the stream ends.
                biased;
                Some(err) = reader_errors.recv() => break Err(err),
                item = responses.next() => match item {
                    Some(Ok(json)) => {
                        if sink.send(Message::Text(json.to_string().into())).await.is_err() {
                            break Ok(());
                        }
                    }
                    Some(Err(err)) => break Err(Ended::Bad(err)),
                    // The reader reports a bad request before it ends the request stream, so
                    // a service that ended because of it has its reason waiting here.
                    None => break reader_errors.try_recv().map_or(Ok(()), Err),
                },
            }
        },
        // A request that did not transcode ended the request stream: report it, not the
        // service's complaint about the missing message.
        Err(err) => Err(reader_errors.try_recv().unwrap_or(Ended::Bad(err))),
    };
    reader.abort();
    let close = match outcome {
        Ok(()) => None,
        Err(Ended::Bad(err)) => {
            let _ = sink.send(Message::Text(error_line(&err).into())).await;
            None
        }
        Err(Ended::Violation(close)) => Some(close),
    };
    let _ = sink.send(Message::Close(close)).await;
}
