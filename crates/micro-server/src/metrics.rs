//! The platform's Prometheus metrics, served at `/metrics` on the web address in the
//! OpenMetrics text format.
//!
//! - `rpc_client_call_duration_seconds` (histogram): every call the platform makes to a service
//!   for a caller — `micro call` through the proxy, the gateway — by `rpc_service` (the
//!   registered service), `rpc_method` (`Helloworld.Call`) and `rpc_grpc_status_code`, named
//!   after OpenTelemetry's RPC conventions. Its `_count` by status code gives requests and
//!   errors, its buckets the latency: the RED metrics.
//! - `http_server_request_duration_seconds` (histogram): every HTTP request the gateway answers,
//!   by `http_request_method` and `http_response_status_code` (OpenTelemetry's HTTP names; a
//!   method other than the standard ones counts as `_OTHER`).
//! - `micro_client_*`: what each namespace's client knows — retries, retries the budget
//!   refused, ejections, calls refused at once because every node was ejected, and per node its
//!   breaker state, calls in flight and latency estimate.
//! - the process's CPU, memory, open files and start time, and the tokio runtime's workers,
//!   tasks and queue ([`micro::metrics::Process`], as every service has them).
//!
//! Labels only take values that exist on the platform (a resolved service and endpoint, a
//! known method, a status code, a namespace the proxy keeps a client for — at most
//! [`crate::proxy::MAX_CLIENTS`]), never raw caller input, so no caller can grow the series
//! without bound.

use std::{
    sync::{Arc, Mutex, RwLock},
    time::{Duration, Instant},
};

use hashbrown::HashMap;
use micro::metrics::ByCode;

use crate::recent::{Point, Recent, SLOTS};

use micro::client::{ClientStats, NodeHealth};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric},
    metrics::{counter::ConstCounter, family::Family, gauge::ConstGauge, histogram::Histogram},
    registry::Registry,
};

/// The label of a service or a method no service registered, for a call the transparent proxy
/// passed on anyway (the node answers `UNIMPLEMENTED`, the client `NOT_FOUND`): one label for
/// all of them, so made-up names do not make series.
pub const UNREGISTERED: &str = "_OTHER";

/// The service label of a call the transparent proxy passed on while the registry could not
/// say whether its service exists (an outage): its own label, so those failures show.
pub const UNRESOLVED: &str = "_UNRESOLVED";

/// Labels of a call to a service.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    rpc_system: &'static str,
    rpc_service: String,
    rpc_method: String,
    rpc_grpc_status_code: i32,
}

/// Labels of an HTTP request to the gateway.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    http_request_method: &'static str,
    http_response_status_code: u16,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// The most (service, endpoint) pairs whose histograms are kept at hand.
const MAX_CACHED_SERIES: usize = 4096;

/// A (service, endpoint) key, borrowed; it hashes as the owned pair does.
#[derive(Hash)]
struct CallKey<'a>(&'a str, &'a str);

impl hashbrown::Equivalent<(String, String)> for CallKey<'_> {
    fn equivalent(&self, key: &(String, String)) -> bool {
        self.0 == key.0 && self.1 == key.1
    }
}

/// The platform's metrics (cheap to clone; every clone records into the same series).
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    calls: Histograms<CallLabels>,
    http: Histograms<HttpLabels>,
    /// Each (service, endpoint)'s call histograms, found without building a label set.
    call_series: RwLock<HashMap<(String, String), Arc<ByCode>>>,
    /// The last minutes of calls per namespace, for the dashboard's charts.
    recent: Mutex<Recent>,
    /// Where `recent`'s clock starts.
    started: Instant,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// Where the client figures come from at each scrape.
pub trait ClientSource: Send + Sync + 'static {
    /// Each namespace's client stats.
    fn client_stats(&self) -> Vec<(String, ClientStats)>;
}

impl Metrics {
    /// Metrics whose client figures come from `clients`.
    pub fn new(clients: impl ClientSource) -> Self {
        let mut registry = micro::metrics::registry();
        let calls: Histograms<CallLabels> =
            Family::new_with_constructor(micro::metrics::latency_histogram);
        let http: Histograms<HttpLabels> =
            Family::new_with_constructor(micro::metrics::latency_histogram);
        registry.register(
            "rpc_client_call_duration_seconds",
            "Calls the platform made to services for its callers (proxy and gateway)",
            calls.clone(),
        );
        registry.register(
            "http_server_request_duration_seconds",
            "HTTP requests the gateway answered",
            http.clone(),
        );
        registry.register_collector(Box::new(Clients(Box::new(clients))));
        Self {
            inner: Arc::new(Inner {
                registry,
                calls,
                http,
                call_series: RwLock::default(),
                recent: Mutex::default(),
                started: Instant::now(),
            }),
        }
    }

    /// A call to `endpoint` of `service` in `namespace` that ended with gRPC status `code`
    /// after `took`.
    pub fn call(
        &self,
        namespace: &str,
        service: &str,
        endpoint: &str,
        code: tonic::Code,
        took: Duration,
    ) {
        if !micro::metrics::recording() {
            return;
        }
        let now = self.now();
        if let Ok(mut recent) = self.inner.recent.lock() {
            recent.record(
                now,
                (namespace, service, endpoint),
                code != tonic::Code::Ok,
                took,
            );
        }
        self.by_code(service, endpoint).observe(code, took, || {
            self.inner
                .calls
                .get_or_create(&CallLabels {
                    rpc_system: "grpc",
                    rpc_service: service.to_owned(),
                    rpc_method: endpoint.to_owned(),
                    rpc_grpc_status_code: code as i32,
                })
                .clone()
        });
    }

    /// The call histograms of `endpoint` of `service`.
    fn by_code(&self, service: &str, endpoint: &str) -> Arc<ByCode> {
        let key = CallKey(service, endpoint);
        let known = self
            .inner
            .call_series
            .read()
            .ok()
            .and_then(|series| series.get(&key).cloned());
        known.unwrap_or_else(|| {
            let mut series = self
                .inner
                .call_series
                .write()
                .unwrap_or_else(|p| p.into_inner());
            if let Some(known) = series.get(&key) {
                return known.clone();
            }
            let fresh = Arc::new(ByCode::default());
            // Past the bound, a call looks its series up in the family each time instead.
            if series.len() < MAX_CACHED_SERIES {
                series.insert((service.to_owned(), endpoint.to_owned()), fresh.clone());
            }
            fresh
        })
    }

    /// An HTTP request answered with `status` after `took`.
    pub fn http(&self, method: &http::Method, status: u16, took: Duration) {
        if !micro::metrics::recording() {
            return;
        }
        self.inner
            .http
            .get_or_create(&HttpLabels {
                http_request_method: known_method(method),
                http_response_status_code: status,
            })
            .observe(took.as_secs_f64());
    }

    /// The last minutes of `service` in `namespace` (of one endpoint, or all together), oldest
    /// first, one point per [`crate::recent::SLOT_SECS`]; `None` when it had no call.
    pub(crate) fn recent(
        &self,
        namespace: &str,
        service: &str,
        endpoint: Option<&str>,
    ) -> Option<Vec<Point>> {
        let now = self.now();
        let recent = self.inner.recent.lock().ok()?;
        recent
            .any(now, namespace, service)
            .then(|| recent.points(now, namespace, service, endpoint))
    }

    /// Seconds on `recent`'s clock (it starts a window's length in, so no slot is before 0).
    fn now(&self) -> u64 {
        self.inner.started.elapsed().as_secs() + crate::recent::SLOT_SECS * SLOTS as u64
    }

    /// Everything, in the Prometheus text format.
    pub fn render(&self) -> String {
        micro::metrics::render(&self.inner.registry)
    }
}

/// `method` if it is one of HTTP's, else `_OTHER` (a caller's made-up method is not a label).
fn known_method(method: &http::Method) -> &'static str {
    use http::Method as M;
    match *method {
        M::GET => "GET",
        M::POST => "POST",
        M::PUT => "PUT",
        M::DELETE => "DELETE",
        M::PATCH => "PATCH",
        M::HEAD => "HEAD",
        M::OPTIONS => "OPTIONS",
        M::CONNECT => "CONNECT",
        M::TRACE => "TRACE",
        _ => "_OTHER",
    }
}

/// The client figures, read at each scrape.
struct Clients(Box<dyn ClientSource>);

/// A metric's name, help, and how to read it.
type Described<F> = (&'static str, &'static str, F);
type ReadCount = fn(&ClientStats) -> u64;
type ReadNode = fn(&NodeHealth) -> f64;

impl std::fmt::Debug for Clients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clients")
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NamespaceLabels {
    namespace: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeLabels {
    namespace: String,
    address: String,
}

impl Collector for Clients {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = self.0.client_stats();
        let counters: [Described<ReadCount>; 4] = [
            (
                "micro_client_retries",
                "Calls tried again on another node after a node could not be reached",
                |s| s.retries,
            ),
            (
                "micro_client_retries_refused",
                "Retries the retry budget refused",
                |s| s.retries_refused,
            ),
            (
                "micro_client_ejections",
                "Times a node was ejected by its circuit breaker",
                |s| s.ejections,
            ),
            (
                "micro_client_refused",
                "Calls failed at once because every node of the service was ejected",
                |s| s.refused,
            ),
        ];
        for (name, help, value) in counters {
            let mut family = encoder.encode_descriptor(
                name,
                help,
                None,
                prometheus_client::metrics::MetricType::Counter,
            )?;
            for (namespace, s) in &stats {
                let labels = NamespaceLabels {
                    namespace: namespace.clone(),
                };
                ConstCounter::new(value(s)).encode(family.encode_family(&labels)?)?;
            }
        }
        let gauges: [Described<ReadNode>; 3] = [
            (
                "micro_client_node_ejected",
                "1 while the node's circuit breaker keeps calls away from it (ejected or probing)",
                |n| f64::from(u8::from(n.breaker != "closed")),
            ),
            (
                "micro_client_node_in_flight",
                "Calls in flight to the node",
                |n| n.pending as f64,
            ),
            (
                "micro_client_node_latency_seconds",
                "The node's peak-EWMA latency estimate",
                |n| n.latency.as_secs_f64(),
            ),
        ];
        for (name, help, value) in gauges {
            let mut family = encoder.encode_descriptor(
                name,
                help,
                None,
                prometheus_client::metrics::MetricType::Gauge,
            )?;
            for (namespace, s) in &stats {
                for node in &s.nodes {
                    let labels = NodeLabels {
                        namespace: namespace.clone(),
                        address: node.address.clone(),
                    };
                    ConstGauge::new(value(node)).encode(family.encode_family(&labels)?)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoClients;
    impl ClientSource for NoClients {
        fn client_stats(&self) -> Vec<(String, ClientStats)> {
            Vec::new()
        }
    }

    #[test]
    fn a_pair_is_found_by_borrowed_names_and_the_cache_is_bounded() {
        let metrics = Metrics::new(NoClients);
        let first = metrics.by_code("helloworld", "Helloworld.Call");
        assert!(Arc::ptr_eq(
            &first,
            &metrics.by_code("helloworld", "Helloworld.Call")
        ));
        assert!(!Arc::ptr_eq(
            &first,
            &metrics.by_code("helloworld", "Helloworld.Other")
        ));
        for n in 0..MAX_CACHED_SERIES + 10 {
            metrics.by_code("many", &n.to_string());
        }
        assert_eq!(
            metrics.inner.call_series.read().unwrap().len(),
            MAX_CACHED_SERIES
        );
    }

    #[test]
    fn renders_red_metrics_with_bounded_labels() {
        let metrics = Metrics::new(NoClients);
        metrics.call(
            "micro",
            "helloworld",
            "Helloworld.Call",
            tonic::Code::Ok,
            Duration::from_millis(3),
        );
        metrics.call(
            "micro",
            "helloworld",
            "Helloworld.Call",
            tonic::Code::NotFound,
            Duration::from_millis(1),
        );
        metrics.http(
            &http::Method::from_bytes(b"BREW").unwrap(),
            404,
            Duration::ZERO,
        );
        let text = metrics.render();
        assert!(
            text.contains(
                "rpc_client_call_duration_seconds_count{rpc_system=\"grpc\",rpc_service=\"helloworld\",rpc_method=\"Helloworld.Call\",rpc_grpc_status_code=\"0\"} 1"
            ),
            "{text}"
        );
        assert!(text.contains("rpc_grpc_status_code=\"5\"} 1"), "{text}");
        assert!(
            text.contains("http_request_method=\"_OTHER\",http_response_status_code=\"404\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE micro_client_retries counter"),
            "{text}"
        );
    }
}
