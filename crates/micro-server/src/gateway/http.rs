//! The gateway's HTTP handling (axum): CORS, namespace, path routing, JSON in and out, and
//! errors as lower-case `{id, code, detail, status}` JSON with the HTTP status of `code`.
//!
//! A request body is the JSON request (merged with query parameters); a GET sends the query
//! parameters, typed by the endpoint's schema. Calls go through [`ProxyService::call_json`],
//! the same path as `micro call`.

use axum::{
    Router,
    body::Bytes,
    extract::{Query, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use micro_core::{Error, metadata::DEFAULT_NAMESPACE};
use prost_reflect::Kind;
use serde_json::{Map, Value};

use super::route::{route, title};
use crate::proxy::{JsonCall, ProxyService};

const ID: &str = "micro.api";
const ALLOW_METHODS: &str = "POST, PATCH, GET, OPTIONS, PUT, DELETE";
const ALLOW_HEADERS: &str = "Accept, Content-Type, Content-Length, Accept-Encoding, X-CSRF-Token, Authorization, Micro-Namespace";

/// The gateway's router over `proxy`.
pub fn router(proxy: ProxyService) -> Router {
    Router::new().fallback(handle).with_state(proxy)
}

async fn handle(
    State(proxy): State<ProxyService>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
    body: Bytes,
) -> Response {
    let mut response = if method == Method::OPTIONS {
        StatusCode::OK.into_response()
    } else if uri.path() == "/" && method == Method::GET {
        axum::Json(serde_json::json!({ "version": env!("CARGO_PKG_VERSION") })).into_response()
    } else {
        match call(&proxy, &uri, &headers, query, &body).await {
            Ok(json) => axum::Json(json).into_response(),
            Err(err) => error_response(&err),
        }
    };
    cors(&headers, response.headers_mut());
    response
}

async fn call(
    proxy: &ProxyService,
    uri: &Uri,
    headers: &HeaderMap,
    query: Vec<(String, String)>,
    body: &Bytes,
) -> Result<Value, Error> {
    let route = route(uri.path())
        .ok_or_else(|| Error::not_found(ID, format!("no service at {}", uri.path())))?;
    let namespace = headers
        .get("micro-namespace")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .unwrap_or(DEFAULT_NAMESPACE)
        .to_owned();
    let mut endpoint = route.endpoint.clone();
    let resolved = match proxy.resolve(&namespace, &route.service, &endpoint).await {
        Ok(r) => r,
        Err(e) if e.code == 404 && !e.detail.starts_with("Service") => {
            // `/helloworld/call` reaches the service's only proto service, whatever its name.
            let fallback = single_proto_service(proxy, &namespace, &route.service, &endpoint)
                .await
                .ok_or(e)?;
            endpoint = fallback;
            proxy.resolve(&namespace, &route.service, &endpoint).await?
        }
        Err(e) => return Err(e),
    };

    let mut request = if body.iter().all(u8::is_ascii_whitespace) {
        Map::new()
    } else {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(map)) => map,
            Ok(_) => {
                return Err(Error::bad_request(
                    ID,
                    "the request body must be a JSON object",
                ));
            }
            Err(e) => {
                return Err(Error::bad_request(
                    ID,
                    format!("malformed JSON in request body: {e}"),
                ));
            }
        }
    };
    let input = resolved.method.input();
    for (key, raw) in query {
        let kind = input
            .get_field_by_name(&key)
            .map(|f| (f.kind(), f.is_list()));
        let value = match kind {
            Some((kind, false)) => typed(&kind, &raw),
            _ => Value::String(raw),
        };
        request.insert(key, value);
    }
    let json = Value::Object(request).to_string();
    proxy
        .call_json(JsonCall {
            namespace: &namespace,
            service: &route.service,
            endpoint: &endpoint,
            json: &json,
            address: None,
            metadata: Vec::new(),
            timeout: None,
        })
        .await
}

/// A query parameter as the JSON value its field's type wants; left a string when it does not
/// parse, so the transcoder reports the field.
fn typed(kind: &Kind, raw: &str) -> Value {
    match kind {
        Kind::Bool => raw
            .parse::<bool>()
            .map(Value::Bool)
            .unwrap_or_else(|_| Value::String(raw.to_owned())),
        Kind::Double | Kind::Float => raw
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(raw.to_owned())),
        Kind::Int32
        | Kind::Sint32
        | Kind::Sfixed32
        | Kind::Int64
        | Kind::Sint64
        | Kind::Sfixed64 => raw
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(raw.to_owned())),
        Kind::Uint32 | Kind::Fixed32 | Kind::Uint64 | Kind::Fixed64 => raw
            .parse::<u64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(raw.to_owned())),
        _ => Value::String(raw.to_owned()),
    }
}

/// `X.Method` for the service's only proto service `X`, if it has exactly one.
async fn single_proto_service(
    proxy: &ProxyService,
    ns: &str,
    service: &str,
    endpoint: &str,
) -> Option<String> {
    let (_, method) = endpoint.split_once('.')?;
    let versions = proxy.client(ns).lookup(service).await.ok()?;
    let mut prefixes: Vec<&str> = versions
        .iter()
        .flat_map(|v| {
            v.endpoints
                .iter()
                .filter_map(|e| e.name.split_once('.').map(|(s, _)| s))
        })
        .collect();
    prefixes.sort_unstable();
    prefixes.dedup();
    match prefixes.as_slice() {
        [only] => Some(format!("{only}.{}", title(method))),
        _ => None,
    }
}

fn error_response(err: &Error) -> Response {
    let status =
        StatusCode::from_u16(err.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        err.to_json(),
    )
        .into_response()
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
