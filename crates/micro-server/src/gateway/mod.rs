//! The HTTP API gateway: any HTTP client calls any registered endpoint with JSON.
//!
//! `rules` routes `google.api.http` annotations first, `route` maps paths to endpoints by
//! convention, `request` builds the JSON request, `http` dispatches
//! by endpoint kind and content type, `stream` carries streams (NDJSON, server-sent events,
//! WebSocket), and `openapi` describes it all.

mod http;
mod openapi;
pub(crate) mod request;
pub(crate) mod route;
mod rules;
mod stream;

pub(crate) use http::http_caller;
pub use http::{DEFAULT_MAX_BODY, GatewayOptions, router};
