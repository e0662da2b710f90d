//! The sidecar's HTTP address, for its app: the platform reached with plain HTTP, as the
//! sidecar's service account, in its namespace.
//!
//! - `POST /SERVICE/ENDPOINT` with JSON calls any service, routed as the gateway routes paths
//!   (`/helloworld/call` → `helloworld` `Helloworld.Call`; `/store/read` reads the store,
//!   `/config/get` the config), through the platform's proxy.
//! - `POST /publish/TOPIC` publishes the body on the broker.
//! - `GET /subscribe/TOPIC` (WebSocket) sends each message of the topic as a frame (text when
//!   it is UTF-8); `?queue=Q` shares the topic with the other subscribers of `Q`.
//!
//! Errors are the gateway's: `{id, code, detail, status}` with `code` as the HTTP status. The
//! address is the app's alone to use: anything that reaches it acts as the sidecar's account,
//! so it listens on 127.0.0.1 unless told otherwise, and refuses what a browser's page could
//! send it (a request with `Origin` or `Sec-Fetch-Site`, or one naming another host).

use std::net::SocketAddr;

use axum::{
    Json, Router,
    body::Bytes,
    extract::{
        Path, Query, State,
        ws::{Message as Frame, WebSocket, WebSocketUpgrade},
    },
    http::{Method, StatusCode, Uri},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use futures::{SinkExt, StreamExt};
use micro::{broker::RemoteBroker, remote::Connection};
use micro_core::{
    Error,
    broker::{Broker as _, Message},
};
use micro_proto::proxy::{CallRequest, proxy_client::ProxyClient};
use serde::Deserialize;

use crate::gateway::route::route;

const ID: &str = "micro.sidecar";

/// The largest body the app may send: a store value at the platform's limit, escaped as JSON
/// text, with room for the rest of the request.
const MAX_BODY: usize = 2 * micro_core::limits::MAX_VALUE + 64 * 1024;

#[derive(Clone)]
struct Platform {
    conn: Connection,
    broker: RemoteBroker,
    namespace: String,
}

/// The app's router: the platform over `conn`, in `namespace`, for requests to `bound`.
pub(crate) fn router(conn: Connection, namespace: String, bound: SocketAddr) -> Router {
    Router::new()
        .route("/publish/{topic}", post(publish))
        .route("/subscribe/{topic}", get(subscribe))
        .fallback(call)
        // Bodies are read whole, within a limit that lets a value as big as the platform
        // takes through (JSON-escaped), and a deadline.
        .layer(axum::middleware::from_fn(|request, next| {
            crate::request_body::buffered(request, next, MAX_BODY, ID, failure)
        }))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn(move |request, next| {
            only_the_app(bound, request, next)
        }))
        .with_state(Platform {
            broker: RemoteBroker::over(conn.clone()),
            conn,
            namespace,
        })
}

/// Refuses what a web page in a browser on this machine could send: any request a browser
/// marks as coming from a page (`Origin`, `Sec-Fetch-Site`), and — on a loopback address — any
/// addressed to another host name (a DNS name rebound to 127.0.0.1).
async fn only_the_app(
    bound: SocketAddr,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let headers = request.headers();
    if headers.contains_key("origin") || headers.contains_key("sec-fetch-site") {
        return failure(&Error::forbidden(
            ID,
            "the sidecar serves its app, not web pages",
        ));
    }
    if bound.ip().is_loopback() {
        // HTTP/2 names the host in `:authority` (the URI), HTTP/1.1 in `Host`.
        let host = headers
            .get(axum::http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| {
                (request.version() == axum::http::Version::HTTP_2)
                    .then(|| request.uri().authority().map(|a| a.as_str()))
                    .flatten()
            })
            .unwrap_or_default();
        let port = bound.port();
        let local = [
            format!("127.0.0.1:{port}"),
            format!("localhost:{port}"),
            format!("[::1]:{port}"),
            bound.to_string(),
        ];
        if !local.iter().any(|l| l == host) {
            return failure(&Error::forbidden(
                ID,
                format!("the sidecar answers requests to {bound} only, not to {host:?}"),
            ));
        }
    }
    next.run(request).await
}

fn failure(e: &Error) -> Response {
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        e.to_json(),
    )
        .into_response()
}

/// `POST /SERVICE/ENDPOINT`: a call through the platform's proxy.
async fn call(State(platform): State<Platform>, method: Method, uri: Uri, body: Bytes) -> Response {
    if method != Method::POST {
        return failure(&Error::new(
            ID,
            405,
            "call services with POST /SERVICE/ENDPOINT and a JSON body",
        ));
    }
    let Some(route) = route(uri.path()) else {
        return failure(&Error::not_found(
            ID,
            format!("{:?} names no service and endpoint", uri.path()),
        ));
    };
    let json = match std::str::from_utf8(&body) {
        Ok(text) => text.to_owned(),
        Err(_) => return failure(&Error::bad_request(ID, "the body is not UTF-8 JSON")),
    };
    let conn = &platform.conn;
    let answer = conn
        .call(
            "micro.proxy",
            &platform.namespace,
            CallRequest {
                service: route.service,
                endpoint: route.endpoint,
                json,
                ..Default::default()
            },
            |req| async move { ProxyClient::new(conn.channel()).call(req).await },
        )
        .await;
    match answer {
        Ok(answer) => (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            answer.json,
        )
            .into_response(),
        Err(e) => failure(&e),
    }
}

/// `POST /publish/TOPIC`: the body, published.
async fn publish(
    State(platform): State<Platform>,
    Path(topic): Path<String>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Response {
    let mut message = Message::new(body.to_vec());
    if let Some(kind) = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    {
        message.header.insert("content-type".into(), kind.into());
    }
    match platform
        .broker
        .publish(&platform.namespace, &topic, message)
        .await
    {
        Ok(()) => Json(serde_json::json!({})).into_response(),
        Err(e) => failure(&e),
    }
}

#[derive(Deserialize)]
struct Queue {
    queue: Option<String>,
}

/// `GET /subscribe/TOPIC` (WebSocket): each message of the topic, as it comes.
async fn subscribe(
    State(platform): State<Platform>,
    Path(topic): Path<String>,
    Query(queue): Query<Queue>,
    upgrade: WebSocketUpgrade,
) -> Response {
    // Subscribed before the upgrade is answered: a message published once the app holds the
    // socket reaches it, and a refusal is an HTTP error the app can read.
    let subscription = match platform
        .broker
        .subscribe(
            &platform.namespace,
            &topic,
            queue.queue.as_deref().filter(|q| !q.is_empty()),
        )
        .await
    {
        Ok(s) => s,
        Err(e) => return failure(&e),
    };
    upgrade.on_upgrade(move |socket| relay(socket, subscription))
}

async fn relay(mut socket: WebSocket, mut subscription: micro_core::broker::Subscription) {
    loop {
        tokio::select! {
            message = subscription.next() => {
                let Some(message) = message else { break };
                let frame = match String::from_utf8(message.body) {
                    Ok(text) => Frame::Text(text.into()),
                    Err(e) => Frame::Binary(e.into_bytes().into()),
                };
                if socket.send(frame).await.is_err() {
                    break;
                }
            }
            incoming = socket.recv() => match incoming {
                // The app says nothing on this socket but pings and the close.
                Some(Ok(Frame::Close(_))) | None => break,
                // A broken frame: the close says how.
                Some(Err(e)) => {
                    let _ = socket.send(Frame::Close(crate::ws_close::for_error(e))).await;
                    return;
                }
                Some(Ok(_)) => {}
            },
        }
    }
    let _ = socket.close().await;
}
