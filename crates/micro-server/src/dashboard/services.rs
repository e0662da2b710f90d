//! The services pages: the list the visitor may call (searchable), and one service — its
//! versions, nodes (address, metadata, age) and endpoints with their request and response
//! schemas, each endpoint linked to its call form.

use std::fmt::Write;

use axum::{
    extract::{Path, Query, State},
    http::StatusCode,
    response::Response,
};
use micro_core::{Error, Value, metadata::NODE_STARTED};
use serde::Deserialize;

use super::{
    Dashboard, charts,
    html::{escape, table, url},
    session::Visit,
};

/// How deep a schema is drawn (registered schemas are bounded deeper than this).
const SCHEMA_DEPTH: usize = 16;
/// The longest search text read.
const MAX_SEARCH: usize = 256;

#[derive(Deserialize)]
pub(crate) struct Search {
    #[serde(default)]
    q: String,
}

/// `/`: the services the visitor may call in their namespace, filtered by `?q=`.
pub(crate) async fn index(
    State(dashboard): State<Dashboard>,
    visit: Visit,
    Query(search): Query<Search>,
) -> Response {
    if search.q.len() > MAX_SEARCH {
        return visit.failure(&Error::bad_request(
            "micro.web",
            format!("the search is longer than {MAX_SEARCH} bytes"),
        ));
    }
    let namespace = visit.caller.namespace.clone();
    let services = match dashboard.proxy.registry().list_services(&namespace).await {
        Ok(s) => dashboard.proxy.callable(&visit.caller, s).await,
        Err(e) => return visit.failure(&e),
    };
    let needle = search.q.trim().to_lowercase();
    let mut names: Vec<&str> = services
        .iter()
        .map(|s| s.name.as_str())
        .filter(|n| n.to_lowercase().contains(&needle))
        .collect();
    names.sort_unstable();
    names.dedup();
    let ns = url(&namespace);
    let mut body = format!(
        "<h1>Services in {}</h1>\
         <form method=\"get\" action=\"/\" role=\"search\">\
         <input type=\"hidden\" name=\"namespace\" value=\"{}\">\
         <label for=\"q\">Find a service</label>\
         <input id=\"q\" name=\"q\" type=\"search\" value=\"{}\"> <button type=\"submit\">Search</button></form>",
        escape(&namespace),
        escape(&namespace),
        escape(&search.q)
    );
    if names.is_empty() {
        body.push_str("<p class=\"note\">No service you may call matches.</p>");
    }
    body.push_str("<ul class=\"services\">");
    for name in names {
        let _ = write!(
            body,
            "<li><a href=\"/service/{}?namespace={ns}\">{}</a></li>",
            url(name),
            escape(name)
        );
    }
    body.push_str("</ul>");
    visit.page(StatusCode::OK, "Services", &body)
}

/// `/service/NAME`: one service as the visitor may see it.
pub(crate) async fn service(
    State(dashboard): State<Dashboard>,
    visit: Visit,
    Path(name): Path<String>,
) -> Response {
    let namespace = visit.caller.namespace.clone();
    let not_found = || {
        visit.failure(&Error::not_found(
            "micro.web",
            format!("no service {name:?} in namespace {namespace:?}"),
        ))
    };
    let versions = match dashboard
        .proxy
        .registry()
        .get_service(&namespace, &name)
        .await
    {
        // What the visitor may not call is not there, as far as they can tell.
        Ok(v) => dashboard.proxy.callable(&visit.caller, v).await,
        Err(e) if e.code == 404 => return not_found(),
        Err(e) => return visit.failure(&e),
    };
    if versions.is_empty() {
        return not_found();
    }
    let ns = url(&namespace);
    let mut body = format!(
        "<h1>{}</h1><p><a href=\"/?namespace={ns}\">All services</a></p>",
        escape(&name)
    );
    let now = now();
    for v in &versions {
        let _ = write!(body, "<h2>Version {}</h2>", escape(&v.version));
        let rows: Vec<Vec<String>> = v
            .nodes
            .iter()
            .map(|n| {
                let meta: Vec<String> =
                    n.metadata.iter().map(|(k, v)| format!("{k}={v}")).collect();
                let age = n
                    .metadata
                    .get(NODE_STARTED)
                    .and_then(|s| s.parse::<u64>().ok())
                    .map_or_else(|| "-".to_owned(), |s| age(now.saturating_sub(s)));
                vec![n.id.clone(), n.address.clone(), meta.join(", "), age]
            })
            .collect();
        body.push_str(&table(
            "Nodes",
            &["id", "address", "metadata", "age"],
            &rows,
        ));
        body.push_str(
            "<h3>Endpoints</h3><table><caption class=\"note\">Endpoints, with their request and response fields</caption>\
             <tr><th scope=\"col\">endpoint</th><th scope=\"col\">request</th><th scope=\"col\">response</th></tr>",
        );
        for e in &v.endpoints {
            let _ = write!(
                body,
                "<tr><td><strong>{0}</strong><br><a href=\"/service/{1}/call/{2}?namespace={ns}\">Call {0}</a></td>",
                escape(&e.name),
                url(&name),
                url(&e.name)
            );
            for value in [&e.request, &e.response] {
                body.push_str("<td><pre>");
                if let Some(value) = value {
                    schema(&mut body, value, 0);
                }
                body.push_str("</pre></td>");
            }
            body.push_str("</tr>");
        }
        body.push_str("</table>");
    }
    body.push_str(&charts_section(&dashboard, &namespace, &name, &versions));
    visit.page(StatusCode::OK, &name, &body)
}

/// The last five minutes of the service, and of each endpoint, as charts.
fn charts_section(
    dashboard: &Dashboard,
    namespace: &str,
    name: &str,
    versions: &[micro_core::Service],
) -> String {
    let metrics = dashboard.proxy.metrics();
    let mut out = String::from("<h2>Last 5 minutes</h2>");
    let Some(all) = metrics.recent(namespace, name, None) else {
        out.push_str(
            "<p class=\"note\">No calls through the platform (proxy, gateway, dashboard) in the last 5 minutes.</p>",
        );
        return out;
    };
    out.push_str("<h3>All endpoints</h3>");
    out.push_str(&charts::row(&all));
    let mut endpoints: Vec<&str> = versions
        .iter()
        .flat_map(|v| v.endpoints.iter().map(|e| e.name.as_str()))
        .collect();
    endpoints.sort_unstable();
    endpoints.dedup();
    for endpoint in endpoints {
        if let Some(points) = metrics
            .recent(namespace, name, Some(endpoint))
            .filter(|p| p.iter().any(|p| p.rate > 0.0))
        {
            let _ = write!(out, "<h3>{}</h3>", escape(endpoint));
            out.push_str(&charts::row(&points));
        }
    }
    out
}

/// A schema as an indented list of `name type` lines.
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

/// `secs` as a short age: `42s`, `5m`, `3h`, `2d`.
fn age(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    #[test]
    fn ages_read_short() {
        assert_eq!(super::age(5), "5s");
        assert_eq!(super::age(125), "2m");
        assert_eq!(super::age(7300), "2h");
        assert_eq!(super::age(200_000), "2d");
    }
}
