//! The web dashboard, on `micro server`'s web address: server-rendered HTML, no script, one
//! more door to the platform.
//!
//! Every page and every action is a call through the platform's one call pipeline
//! ([`ProxyService::target`] and its invocation), as the visitor: the list of services is what
//! the rules let them call, the store page calls `Store.List`, the call form calls the
//! endpoint, the runtime page `Runtime.Read`, the auth page `Accounts.List` — so the dashboard
//! can show nothing and do nothing the same visitor could not through `micro` or the gateway,
//! in their namespace only. Who the visitor is comes from `session`: a session kept in the
//! server (`sessions`) behind an HttpOnly, SameSite cookie, and CSRF-checked forms.
//!
//! `/metrics` and `/metrics/targets` serve the platform's metrics to Prometheus
//! (`prometheus`).

mod call;
mod calls;
mod charts;
mod form;
mod html;
mod live;
mod login;
mod pages;
mod prometheus;
mod services;
mod session;
mod sessions;
mod store;

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use axum::{
    Router,
    routing::{get, post},
};

use crate::proxy::ProxyService;

/// What every page reaches the platform through.
#[derive(Clone)]
pub(crate) struct Dashboard {
    proxy: ProxyService,
    /// Whether the dashboard serves TLS (its cookies are then `Secure`).
    secure: bool,
    /// Where the platform's HTTP gateway listens, if it serves one.
    gateway: Option<SocketAddr>,
    /// The logged-in browsers' sessions.
    sessions: Arc<Mutex<sessions::Sessions>>,
}

/// The dashboard's router over `proxy`; `secure` when it is served over TLS, `gateway` the
/// gateway's address (the call form shows a `curl` line to it).
pub fn router(proxy: ProxyService, secure: bool, gateway: Option<SocketAddr>) -> Router {
    Router::new()
        .route("/", get(services::index))
        .route("/service/{name}", get(services::service))
        .route(
            "/service/{name}/call/{endpoint}",
            get(call::form).post(call::run),
        )
        .route("/login", get(login::form).post(login::login))
        .route("/logout", post(login::logout))
        .route("/store", get(store::browse))
        .route("/store/write", post(store::write))
        .route("/store/delete", post(store::delete))
        .route("/config", get(pages::config))
        .route("/events", get(pages::events))
        .route("/runtime", get(pages::runtime))
        .route("/runtime/{name}/logs", get(pages::logs))
        .route("/auth", get(pages::auth))
        .route("/auth/{action}", post(pages::auth_action))
        .route("/metrics", get(prometheus::metrics))
        .route("/metrics/targets", get(prometheus::targets))
        // Every form is read whole, within its limit and deadline, before any page sees it: the
        // forms are small, and a trickled one must not hold a connection (the login form is
        // open to anyone).
        .layer(axum::middleware::from_fn(|request, next| {
            crate::request_body::buffered(request, next, MAX_FORM, "micro.web", plain_failure)
        }))
        .with_state(Dashboard {
            proxy,
            secure,
            gateway,
            sessions: Arc::default(),
        })
}

/// The most a dashboard form may send (axum's own limit for a body read whole).
const MAX_FORM: usize = 2 * 1024 * 1024;

/// An error as plain text, `status: detail`, its texts cut as every door cuts them: where no
/// page is at hand (a form's body refused before any page runs, the metrics a scraper reads).
pub(crate) fn plain_failure(e: &micro_core::Error) -> axum::response::Response {
    use axum::response::IntoResponse;
    use micro_core::error::bounded;
    (
        axum::http::StatusCode::from_u16(e.http_status())
            .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR),
        format!("{}: {}\n", bounded(&e.status), bounded(&e.detail)),
    )
        .into_response()
}
