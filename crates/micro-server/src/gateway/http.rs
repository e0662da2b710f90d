//! The gateway's HTTP handling (axum): CORS, namespace, path routing, the body limit, and
//! errors as lower-case `{id, code, detail, status}` JSON with the HTTP status of `code`.
//!
//! A call goes: path → (service, endpoint) by [`route`], resolved against the registry by the
//! proxy (the same path as `micro call`), then by the endpoint's kind and the request's headers:
//! a WebSocket upgrade bridges any stream ([`stream::websocket`]); a protobuf or gRPC body passes
//! through untouched; otherwise a JSON request built by [`request::build`] goes to a unary call
//! (JSON response) or a server stream (NDJSON or server-sent events).

use axum::{
    Router,
    body::{Body, Bytes},
    extract::{FromRequestParts, Request, State, ws::WebSocketUpgrade},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use micro_core::{Error, metadata::DEFAULT_NAMESPACE};

use std::sync::Arc;

use super::{
    openapi,
    request::{self, BodyInto},
    route::route,
    rules::RuleTables,
    stream,
};
use crate::{
    auth::Caller,
    proxy::{
        Fallback, ProxyService, Target,
        frame::{self, Unframed},
    },
};

const ID: &str = "micro.api";
const ALLOW_METHODS: &str = "POST, PATCH, GET, OPTIONS, PUT, DELETE";
const ALLOW_HEADERS: &str = "Accept, Content-Type, Content-Length, Accept-Encoding, X-CSRF-Token, Authorization, Micro-Namespace";

/// The default largest request body, 4 MiB.
pub const DEFAULT_MAX_BODY: usize = 4 * 1024 * 1024;

/// How the gateway behaves.
#[derive(Debug, Clone)]
pub struct GatewayOptions {
    /// The largest request body in bytes; a bigger one is refused with 413.
    pub max_body: usize,
    /// Answer CORS requests (echo `Origin`, allow credentials).
    pub cors: bool,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        Self {
            max_body: DEFAULT_MAX_BODY,
            cors: true,
        }
    }
}

#[derive(Clone)]
struct Gateway {
    proxy: ProxyService,
    options: GatewayOptions,
    rules: Arc<RuleTables>,
}

/// The gateway's router over `proxy`.
pub fn router(proxy: ProxyService, options: GatewayOptions) -> Router {
    Router::new()
        .fallback(handle)
        .with_state(Gateway {
            proxy,
            options,
            rules: Arc::default(),
        })
        // A span per request, continuing the caller's trace (see `micro::trace`).
        .layer(micro::trace::TraceLayer::http())
}

async fn handle(State(gateway): State<Gateway>, request: Request) -> Response {
    let started = std::time::Instant::now();
    let (mut parts, body) = request.into_parts();
    let mut response = match (&parts.method, parts.uri.path()) {
        (&Method::OPTIONS, _) => StatusCode::OK.into_response(),
        (&Method::GET, "/") => {
            axum::Json(serde_json::json!({ "version": env!("CARGO_PKG_VERSION") })).into_response()
        }
        _ => match caller(&gateway, &parts).await.map(|mut c| {
            c.peer = parts
                .extensions
                .get::<crate::listener::Peer>()
                .map(|p| p.0.ip());
            c
        }) {
            Err(e) => error_response(&e),
            Ok(caller) if parts.method == Method::GET && parts.uri.path() == "/openapi.json" => {
                axum::Json(openapi::document(&gateway.proxy, &caller).await).into_response()
            }
            Ok(caller) => dispatch(&gateway, &mut parts, body, caller)
                .await
                .unwrap_or_else(|e| error_response(&e)),
        },
    };
    if gateway.options.cors {
        cors(&parts.headers, response.headers_mut());
    }
    gateway
        .proxy
        .metrics()
        .http(&parts.method, response.status().as_u16(), started.elapsed());
    response
}

/// Who is calling: the token of `Authorization: Bearer` (or cookie `micro-token`) and the
/// `Micro-Namespace` asked for, as the server's auth sees them.
async fn caller(gateway: &Gateway, parts: &Parts) -> Result<Caller, Error> {
    let headers = &parts.headers;
    let asked = crate::auth::guard::one_header(headers, "micro-namespace")?;
    http_caller(
        gateway.proxy.authority(),
        headers,
        parts.uri.authority().map(|a| a.as_str()),
        asked,
    )
    .await
}

/// Who is calling an HTTP door (gateway or dashboard): the token of `Authorization: Bearer`,
/// else of cookie `micro-token`, in the namespace `asked` for.
pub(crate) async fn http_caller(
    auth: Option<&crate::Authority>,
    headers: &HeaderMap,
    authority: Option<&str>,
    asked: Option<&str>,
) -> Result<Caller, Error> {
    let Some(auth) = auth else {
        return Ok(Caller::unchecked(asked.unwrap_or(DEFAULT_NAMESPACE)));
    };
    // The cookie is sent by browsers on their own, so it counts only for a request from the
    // door's own origin: another site's page must not call (and, with CORS, read) as the user.
    let cookie = crate::browser::same_origin(headers, authority)
        .then(|| crate::browser::cookie(headers, "micro-token"))
        .flatten();
    let authorization = crate::auth::guard::one_header(headers, header::AUTHORIZATION.as_str())?;
    auth.caller(authorization.or(cookie), asked).await
}

/// How the request body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Json,
    /// A bare protobuf message.
    Protobuf,
    /// gRPC framing: a 5-byte prefix (compression flag, length) before the message.
    Grpc,
}

fn encoding(headers: &HeaderMap) -> Encoding {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.starts_with("application/grpc") {
        Encoding::Grpc
    } else if content_type.starts_with("application/protobuf")
        || content_type.starts_with("application/x-protobuf")
    {
        Encoding::Protobuf
    } else {
        Encoding::Json
    }
}

async fn dispatch(
    gateway: &Gateway,
    parts: &mut Parts,
    body: Body,
    caller: Caller,
) -> Result<Response, Error> {
    let proxy = &gateway.proxy;
    let namespace = caller.namespace.clone();
    // `google.api.http` rules first, then the path convention.
    let matched = gateway
        .rules
        .find(
            proxy.registry(),
            &namespace,
            &parts.method,
            parts.uri.path(),
        )
        .await;
    let timeout = request::timeout(&parts.headers)?;
    let (mut target, bindings, body_rule) = match matched {
        Some(m) => {
            let target = proxy
                .target(caller, &m.rule.service, &m.rule.endpoint, Fallback::Exact)
                .await?;
            (target, m.bindings, Some(m.rule.body))
        }
        None => {
            let path = parts.uri.path();
            let route =
                route(path).ok_or_else(|| Error::not_found(ID, format!("no service at {path}")))?;
            let target = proxy
                .target(
                    caller,
                    &route.service,
                    &route.endpoint,
                    Fallback::OnlyProtoService,
                )
                .await?;
            (target, Vec::new(), None)
        }
    };
    target.timeout = timeout;
    target.filter = crate::proxy::node_filter(&parts.headers)?;
    if parts.headers.contains_key(header::UPGRADE) {
        let upgrade = WebSocketUpgrade::from_request_parts(parts, &())
            .await
            .map_err(|e| Error::bad_request(ID, format!("WebSocket upgrade refused: {e}")))?;
        return Ok(stream::websocket(
            upgrade,
            proxy.clone(),
            target,
            gateway.options.max_body,
        ));
    }
    // Every coding named, in every Content-Encoding field, must be `identity`.
    if let Some(coding) = parts
        .headers
        .get_all(header::CONTENT_ENCODING)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(<[u8]>::trim_ascii)
        .find(|c| !c.is_empty() && !c.eq_ignore_ascii_case(b"identity"))
    {
        return Err(Error::new(
            ID,
            415,
            format!(
                "the gateway does not decode a body's Content-Encoding ({}); send it as it is",
                String::from_utf8_lossy(&coding[..coding.len().min(64)])
            ),
        ));
    }
    let body = crate::request_body::read_whole(body, gateway.options.max_body, ID).await?;
    let method = &target.resolved.method;
    if method.is_client_streaming() {
        return Err(Error::bad_request(
            ID,
            format!(
                "{} reads a stream of requests; connect with a WebSocket",
                target.endpoint()
            ),
        ));
    }
    let encoding = encoding(&parts.headers);
    if encoding != Encoding::Json {
        if method.is_server_streaming() {
            return Err(Error::bad_request(
                ID,
                format!(
                    "{} is a streaming endpoint; send JSON or connect with a WebSocket",
                    target.endpoint()
                ),
            ));
        }
        return passthrough(proxy, &target, encoding, body).await;
    }
    let query: Vec<(String, String)> =
        form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let into = match &body_rule {
        None => BodyInto::Whole,
        Some(None) => BodyInto::Nothing,
        Some(Some(field)) if field == "*" => BodyInto::Whole,
        Some(Some(field)) => BodyInto::Field(field),
    };
    let json = request::json_text(&method.input(), &body, into, &bindings, &query)?;
    if method.is_server_streaming() {
        let message = micro::transcode::json_to_protobuf(&method.input(), &json)?;
        let responses = proxy
            .stream(&target, futures::stream::iter([message]))
            .await?;
        return Ok(if stream::wants_sse(&parts.headers) {
            stream::sse(responses)
        } else {
            stream::ndjson(responses)
        });
    }
    let answer = proxy.call_json_text(&target, &json).await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], answer).into_response())
}

/// A protobuf body goes to the service as it is; the answer comes back the same way.
async fn passthrough(
    proxy: &ProxyService,
    target: &Target,
    encoding: Encoding,
    body: Bytes,
) -> Result<Response, Error> {
    let message = match encoding {
        Encoding::Grpc => unframe(body)?,
        _ => body,
    };
    // Checked here, so a body the service could not decode is the caller's 400, not the
    // service's 500.
    let input = target.resolved.method.input();
    if let Err(e) = prost_reflect::DynamicMessage::decode(input.clone(), message.clone()) {
        return Err(Error::bad_request(
            ID,
            format!(
                "the request body is not a valid {} message: {e}",
                input.full_name()
            ),
        ));
    }
    let answer = proxy.call_protobuf(target, message).await?;
    let (content_type, bytes) = match encoding {
        Encoding::Grpc => {
            // The proxy takes answers of at most 4 MiB, which a frame always holds.
            let framed = frame::frame(&answer).ok_or_else(|| {
                Error::internal(ID, "the answer is larger than a gRPC frame can hold")
            })?;
            ("application/grpc+proto", framed)
        }
        _ => ("application/protobuf", answer),
    };
    Ok(([(header::CONTENT_TYPE, content_type)], bytes).into_response())
}

/// The message inside one uncompressed gRPC frame.
fn unframe(body: Bytes) -> Result<Bytes, Error> {
    frame::unframe(body).map_err(|why| {
        let why = match why {
            Unframed::Short => "shorter than the 5-byte prefix",
            Unframed::Flag(_) => "compressed frames are not supported",
            Unframed::Length => "the length prefix does not match the body",
        };
        Error::bad_request(ID, format!("invalid gRPC frame in request body: {why}"))
    })
}

fn error_response(err: &Error) -> Response {
    let status =
        StatusCode::from_u16(err.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        err.to_json(),
    )
        .into_response();
    // A service's limit: a rate refills within a second, and a place in flight frees sooner.
    // (The login throttle, `micro.auth`, says itself how long it holds.)
    if status == StatusCode::TOO_MANY_REQUESTS && err.id != "micro.auth" {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

fn cors(request: &HeaderMap, response: &mut HeaderMap) {
    if let Some(origin) = request.get(header::ORIGIN) {
        response.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        response.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    response.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(ALLOW_METHODS),
    );
    response.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(ALLOW_HEADERS),
    );
}
