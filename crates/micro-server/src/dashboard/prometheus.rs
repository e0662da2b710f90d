//! The platform's metrics on the web address: `/metrics` serves them to Prometheus (see
//! [`crate::metrics`]), and `/metrics/targets` every service node's own metrics address
//! (Prometheus HTTP service discovery). With auth on, only a platform admin's token
//! (`Authorization: Bearer`) reads either: they name every namespace's services and nodes.

use axum::{
    extract::State,
    http::HeaderMap,
    response::{IntoResponse, Response},
};

use super::Dashboard;
use crate::{gateway::http_caller, proxy::ProxyService};

/// The platform's metrics (see [`crate::metrics`]), in the OpenMetrics text format. With auth
/// on, only a platform admin's token reads them: they name every namespace's services and
/// nodes.
pub(crate) async fn metrics(State(dashboard): State<Dashboard>, headers: HeaderMap) -> Response {
    let proxy = &dashboard.proxy;
    if let Err(refused) = platform_admin(proxy, &headers).await {
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
pub(crate) async fn targets(State(dashboard): State<Dashboard>, headers: HeaderMap) -> Response {
    let proxy = &dashboard.proxy;
    if let Err(refused) = platform_admin(proxy, &headers).await {
        return refused;
    }
    let services = match proxy
        .registry()
        .list_services(micro_core::metadata::ALL_NAMESPACES)
        .await
    {
        Ok(services) => services,
        Err(e) => return super::plain_failure(&e),
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
        .map_err(|e| super::plain_failure(&e))
}
