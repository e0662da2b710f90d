//! The web dashboard: server-rendered HTML of what is registered, per namespace
//! (`?namespace=`), with each service's nodes and endpoint schemas. No JavaScript.
//!
//! `/metrics` serves the platform's metrics to Prometheus (see [`crate::metrics`]), and
//! `/metrics/targets` every service node's own metrics address (Prometheus HTTP service
//! discovery).
//!
//! It is a door like the gateway: the caller is read the same way (`Authorization: Bearer`, or
//! cookie `micro-token`), a namespace other than the token's (or `*`) is refused as there,
//! and a page shows only the services and endpoints the rules let the caller call.

use std::fmt::Write;

use axum::{
    Router,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{Html, IntoResponse, Response},
    routing::get,
};
use micro_core::{Error, Value};
use serde::Deserialize;

use crate::{auth::Caller, gateway::http_caller, proxy::ProxyService};

/// How deep a schema is drawn (registered schemas are bounded deeper than this).
const SCHEMA_DEPTH: usize = 16;

#[derive(Deserialize)]
struct Ns {
    namespace: Option<String>,
}

/// The dashboard's router: what `proxy`'s registry holds, as its auth lets each caller see.
pub fn router(proxy: ProxyService) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/service/{name}", get(service))
        .route("/metrics", get(metrics))
        .route("/metrics/targets", get(targets))
        .with_state(proxy)
}

/// The platform's metrics (see [`crate::metrics`]), in the OpenMetrics text format. With auth
/// on, only a platform admin's token reads them: they name every namespace's services and
/// nodes.
async fn metrics(State(proxy): State<ProxyService>, headers: HeaderMap) -> Response {
    if let Err(refused) = platform_admin(&proxy, &headers).await {
        return refused;
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        proxy.metrics().render(),
    )
        .into_response()
}

/// Prometheus HTTP service discovery: every node, in every namespace, that serves its own
/// metrics (every service built with the framework registers where: node metadata `metrics`),
/// labelled with its service, version and node id — so one `http_sd_configs` job scrapes every
/// service. Read by a platform admin only when auth is on, as `/metrics` is.
async fn targets(State(proxy): State<ProxyService>, headers: HeaderMap) -> Response {
    if let Err(refused) = platform_admin(&proxy, &headers).await {
        return refused;
    }
    let services = match proxy
        .registry()
        .list_services(micro_core::metadata::ALL_NAMESPACES)
        .await
    {
        Ok(services) => services,
        Err(e) => return failure(&e),
    };
    let groups: Vec<serde_json::Value> = services
        .iter()
        .flat_map(|service| {
            service.nodes.iter().filter_map(move |node| {
                // The metadata only says the node serves metrics; the path is always the
                // framework's own, never one a tenant wrote.
                node.metadata.get(micro::metrics::NODE_METRICS)?;
                Some(serde_json::json!({
                    "targets": [node.address],
                    "labels": {
                        "__metrics_path__": micro::metrics::METRICS_PATH,
                        "micro_service": service.name,
                        "micro_version": service.version,
                        "micro_node": node.id,
                    },
                }))
            })
        })
        .collect();
    axum::Json(groups).into_response()
}

/// With auth on, nothing but a platform admin's token reads the metrics pages: they name every
/// namespace's services and nodes.
async fn platform_admin(proxy: &ProxyService, headers: &HeaderMap) -> Result<(), Response> {
    if proxy.authority().is_none() {
        return Ok(());
    }
    http_caller(proxy.authority(), headers, None, None)
        .await
        .and_then(|caller| caller.require_platform_admin("read the platform's metrics"))
        .map(drop)
        .map_err(|e| failure(&e))
}

/// The caller, or the page that says why not.
async fn caller(proxy: &ProxyService, headers: &HeaderMap, ns: &Ns) -> Result<Caller, Response> {
    let asked = ns.namespace.as_deref().filter(|n| !n.is_empty());
    http_caller(proxy.authority(), headers, None, asked)
        .await
        .map_err(|e| failure(&e))
}

fn failure(e: &Error) -> Response {
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Html(page(&e.status, &escape(&e.detail)))).into_response()
}

async fn index(
    State(proxy): State<ProxyService>,
    headers: HeaderMap,
    Query(ns): Query<Ns>,
) -> Response {
    let caller = match caller(&proxy, &headers, &ns).await {
        Ok(c) => c,
        Err(page) => return page,
    };
    let namespace = caller.namespace.as_str();
    let services = match proxy.registry().list_services(namespace).await {
        Ok(s) => proxy.callable(&caller, s).await,
        Err(e) => return failure(&e),
    };
    let mut names: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let mut body = format!("<h1>Services in {}</h1><ul>", escape(namespace));
    for name in names {
        let _ = write!(
            body,
            "<li><a href=\"/service/{0}?namespace={1}\">{0}</a></li>",
            escape(name),
            escape(namespace)
        );
    }
    body.push_str("</ul>");
    Html(page("Micro", &body)).into_response()
}

async fn service(
    State(proxy): State<ProxyService>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(ns): Query<Ns>,
) -> Response {
    let caller = match caller(&proxy, &headers, &ns).await {
        Ok(c) => c,
        Err(page) => return page,
    };
    let namespace = caller.namespace.as_str();
    let not_found = || {
        failure(&Error::not_found(
            "micro.web",
            format!("no service {name:?} in namespace {namespace:?}"),
        ))
    };
    let versions = match proxy.registry().get_service(namespace, &name).await {
        // What the caller may not call is not there, as far as it can tell.
        Ok(v) => proxy.callable(&caller, v).await,
        Err(e) if e.code == 404 => return not_found(),
        Err(e) => return failure(&e),
    };
    if versions.is_empty() {
        return not_found();
    }
    let mut body = format!(
        "<h1>{}</h1><p><a href=\"/?namespace={}\">all services</a></p>",
        escape(&name),
        escape(namespace)
    );
    for v in &versions {
        let _ = write!(
            body,
            "<h2>version {}</h2><table><tr><th>id</th><th>address</th><th>metadata</th></tr>",
            escape(&v.version)
        );
        for n in &v.nodes {
            let meta: Vec<String> = n.metadata.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&n.id),
                escape(&n.address),
                escape(&meta.join(", "))
            );
        }
        body.push_str("</table>");
        for e in &v.endpoints {
            let _ = write!(body, "<h3>{}</h3>", escape(&e.name));
            for (label, value) in [("request", &e.request), ("response", &e.response)] {
                let _ = write!(body, "<p>{label}</p><pre>");
                if let Some(value) = value {
                    schema(&mut body, value, 0);
                }
                body.push_str("</pre>");
            }
        }
    }
    Html(page(&name, &body)).into_response()
}

fn schema(out: &mut String, value: &Value, depth: usize) {
    if depth > SCHEMA_DEPTH {
        out.push_str("  ...\n");
        return;
    }
    for field in &value.values {
        let _ = writeln!(
            out,
            "{}{} {}",
            "  ".repeat(depth),
            escape(&field.name),
            escape(&field.r#type)
        );
        if field.values.iter().all(|v| v.r#type != "enum value") {
            schema(out, field, depth + 1);
        }
    }
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{}</title>\
         <style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:.2em 1em;text-align:left}}</style>\
         </head><body>{body}</body></html>",
        escape(title)
    )
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}
