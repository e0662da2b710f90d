//! The web dashboard: server-rendered HTML of what is registered, per namespace
//! (`?namespace=`), with each service's nodes and endpoint schemas. No JavaScript.

use std::{fmt::Write, sync::Arc};

use axum::{
    Router,
    extract::{Path, Query, State},
    http::StatusCode,
    response::{Html, IntoResponse, Response},
    routing::get,
};
use micro_core::{Registry, Value, metadata::DEFAULT_NAMESPACE};
use serde::Deserialize;

#[derive(Deserialize)]
struct Ns {
    namespace: Option<String>,
}

impl Ns {
    fn get(&self) -> &str {
        self.namespace
            .as_deref()
            .filter(|n| !n.is_empty())
            .unwrap_or(DEFAULT_NAMESPACE)
    }
}

/// The dashboard's router over `registry`.
pub fn router(registry: Arc<dyn Registry>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/service/{name}", get(service))
        .with_state(registry)
}

async fn index(State(registry): State<Arc<dyn Registry>>, Query(ns): Query<Ns>) -> Response {
    let namespace = ns.get();
    let services = match registry.list_services(namespace).await {
        Ok(s) => s,
        Err(e) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                page("Error", &escape(&e.detail)),
            )
                .into_response();
        }
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
    State(registry): State<Arc<dyn Registry>>,
    Path(name): Path<String>,
    Query(ns): Query<Ns>,
) -> Response {
    let namespace = ns.get();
    let versions = match registry.get_service(namespace, &name).await {
        Ok(v) => v,
        Err(e) => {
            let status =
                StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return (status, Html(page("Not found", &escape(&e.detail)))).into_response();
        }
    };
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
