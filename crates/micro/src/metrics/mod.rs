//! A service's own metrics: every [`Service`](crate::Service) counts the calls its handlers
//! answer and serves them to Prometheus at `GET /metrics` on its own address (HTTP/1.1 or
//! HTTP/2, OpenMetrics text), which it registers as node metadata `metrics`, so `micro
//! server`'s service discovery (`/metrics/targets`) lists it and one Prometheus job scrapes
//! every service.
//!
//! - `rpc_server_call_duration_seconds` (histogram), by `rpc_service` (the registered name),
//!   `rpc_method` (`Helloworld.Call`) and `rpc_grpc_status_code`, named after OpenTelemetry's
//!   RPC conventions: requests, errors and duration (RED). A call counts when its answer
//!   begins — for a stream, when it opens. Health checks and reflection are not counted.
//! - `rpc_server_calls_in_flight` (gauge): calls being handled.
//! - the process's CPU, memory, open files and start time, and the tokio runtime's workers,
//!   tasks and queue (see [`Process`]).
//!
//! A method label only takes a method the service serves (from its descriptors): any other
//! path counts as `_OTHER`, whatever the answer, so no caller can grow the series. Reading the
//! metrics is open to whoever reaches the node (as health checks are): they name methods and
//! count calls, nothing else. HTTP/1.1 reaches nothing but this page: any other HTTP/1.1
//! request is answered 505, so a browser cannot send a handler a call.

mod by_code;
mod layer;
mod process;
mod service;

pub use by_code::ByCode;
pub use layer::MetricsLayer;
pub use process::Process;
pub use service::Measured;

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicI64, Ordering},
    },
    time::Duration,
};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

static RECORDING: AtomicBool = AtomicBool::new(true);

/// Whether this process counts calls (on unless [`set_recording`] turned it off).
pub fn recording() -> bool {
    RECORDING.load(Ordering::Relaxed)
}

/// Turns this process's counting of calls on or off — every service's, the gateway's and the
/// proxy's — to measure what it costs (the gateway bench does). Off, the pages still serve
/// the process gauges and what was counted before.
pub fn set_recording(on: bool) {
    RECORDING.store(on, Ordering::Relaxed);
}

/// Where a service serves its metrics, and the node metadata key that says so.
pub const METRICS_PATH: &str = "/metrics";

/// Node metadata: the path a node serves its metrics at.
pub const NODE_METRICS: &str = "metrics";

/// What a method label says for a path the service does not serve.
const OTHER: &str = "_OTHER";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    rpc_system: &'static str,
    rpc_service: String,
    rpc_method: String,
    rpc_grpc_status_code: i32,
}

type Histograms = Family<CallLabels, Histogram, fn() -> Histogram>;

/// The latency histogram every micro metric uses: buckets from 0.5 ms to about 16 s, doubling.
pub fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// One service's metrics (cheap to clone; clones record into the same series).
#[derive(Clone)]
pub struct ServiceMetrics {
    inner: Arc<Inner>,
}

struct Inner {
    service: String,
    /// The methods it serves, proto service then method (`helloworld.Helloworld`, `Call`), by
    /// their place in `series`; the last place is every other method's.
    methods: HashMap<String, HashMap<String, usize>>,
    series: Vec<MethodSeries>,
    registry: Registry,
    calls: Histograms,
    in_flight: Gauge<i64, AtomicI64>,
}

/// A method's label, and its histograms.
struct MethodSeries {
    label: String,
    by_code: ByCode,
}

impl MethodSeries {
    fn new(label: String) -> Self {
        Self {
            label,
            by_code: ByCode::default(),
        }
    }
}

impl std::fmt::Debug for ServiceMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceMetrics")
            .field("service", &self.inner.service)
            .finish_non_exhaustive()
    }
}

impl ServiceMetrics {
    /// The metrics of `service`, which serves the methods `serves` (proto service, method).
    pub fn new(service: &str, serves: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut registry = registry();
        let calls: Histograms = Family::new_with_constructor(latency_histogram);
        registry.register_with_unit(
            "rpc_server_call_duration",
            "Calls the service answered, by method and gRPC status code",
            prometheus_client::registry::Unit::Seconds,
            calls.clone(),
        );
        let in_flight = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "rpc_server_calls_in_flight",
            "Calls being handled",
            in_flight.clone(),
        );
        let mut methods: HashMap<String, HashMap<String, usize>> = HashMap::new();
        let mut series = Vec::new();
        for (grpc_service, method) in serves {
            let short = grpc_service.rsplit('.').next().unwrap_or(&grpc_service);
            let label = format!("{short}.{method}");
            let slots = methods.entry(grpc_service.clone()).or_default();
            if let std::collections::hash_map::Entry::Vacant(slot) = slots.entry(method) {
                slot.insert(series.len());
                series.push(MethodSeries::new(label));
            }
        }
        series.push(MethodSeries::new(OTHER.to_owned()));
        Self {
            inner: Arc::new(Inner {
                service: service.to_owned(),
                methods,
                series,
                registry,
                calls,
                in_flight,
            }),
        }
    }

    /// Where the series of `grpc_service`/`method` are: the method's, if it is one the service
    /// serves, whatever the answer was (a refused call of a made-up method is still `_OTHER`).
    fn slot(&self, grpc_service: &str, method: &str) -> usize {
        self.inner
            .methods
            .get(grpc_service)
            .and_then(|methods| methods.get(method))
            .copied()
            .unwrap_or(self.inner.series.len() - 1)
    }

    /// Records a call of `grpc_service`/`method` answered with `code` after `took`.
    pub fn record(&self, grpc_service: &str, method: &str, code: tonic::Code, took: Duration) {
        self.record_slot(self.slot(grpc_service, method), code, took);
    }

    /// Records a call of the method at `slot` (see [`Self::slot`]).
    fn record_slot(&self, slot: usize, code: tonic::Code, took: Duration) {
        let Some(series) = self.inner.series.get(slot) else {
            return;
        };
        series.by_code.observe(code, took, || {
            self.inner
                .calls
                .get_or_create(&CallLabels {
                    rpc_system: "grpc",
                    rpc_service: self.inner.service.clone(),
                    rpc_method: series.label.clone(),
                    rpc_grpc_status_code: code as i32,
                })
                .clone()
        });
    }

    /// The metrics in the OpenMetrics text format.
    pub fn render(&self) -> String {
        render(&self.inner.registry)
    }
}

/// A registry for a process's metrics, holding the process and runtime gauges ([`Process`])
/// already: every metrics page of the platform starts from one.
pub fn registry() -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Process));
    registry
}

/// `registry` in the OpenMetrics text format (empty if a collector fails to encode).
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, registry).is_err() {
        out.clear();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_it_does_not_serve_are_one_label() {
        let metrics = ServiceMetrics::new(
            "helloworld",
            [("helloworld.Helloworld".to_owned(), "Call".to_owned())],
        );
        let ms = Duration::from_millis(2);
        metrics.record("helloworld.Helloworld", "Call", tonic::Code::Ok, ms);
        metrics.record("helloworld.Helloworld", "Call", tonic::Code::NotFound, ms);
        metrics.record(
            "helloworld.Helloworld",
            "Nope",
            tonic::Code::Unimplemented,
            ms,
        );
        for n in 0..100 {
            metrics.record(&format!("x{n}.Y"), "Z", tonic::Code::Unimplemented, ms);
        }
        // Refused before any handler (no token): a made-up method is still one label.
        for n in 0..50 {
            let method = format!("M{n}");
            metrics.record(
                "helloworld.Helloworld",
                &method,
                tonic::Code::Unauthenticated,
                ms,
            );
        }
        let text = metrics.render();
        assert!(text.contains(r#"rpc_server_call_duration_seconds_count{rpc_system="grpc",rpc_service="helloworld",rpc_method="Helloworld.Call",rpc_grpc_status_code="0"} 1"#), "{text}");
        assert!(
            text.contains(r#"rpc_method="Helloworld.Call",rpc_grpc_status_code="5"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"rpc_method="_OTHER",rpc_grpc_status_code="12"} 101"#),
            "{text}"
        );
        assert!(
            text.contains(r#"rpc_method="_OTHER",rpc_grpc_status_code="16"} 50"#),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
