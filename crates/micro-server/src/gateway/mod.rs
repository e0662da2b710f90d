//! The HTTP API gateway: any HTTP client calls any registered endpoint with JSON.

mod http;
mod route;

pub use http::router;
