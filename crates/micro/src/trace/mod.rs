//! Traces: OpenTelemetry spans for every hop, W3C `traceparent` carried between them, exported
//! with OTLP/gRPC when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`)
//! is set — the standard variables, so any collector (Jaeger, Tempo, the OpenTelemetry
//! Collector) takes them as they are.
//!
//! - A server — every [`Service`](crate::Service), `micro server`'s gRPC port and its HTTP
//!   gateway — opens a span per request ([`TraceLayer`]), continuing the caller's trace from
//!   the request's `traceparent` header.
//! - A client — [`Client`](crate::Client) calls, and calls of the platform's services
//!   (store, events, broker, the proxy) — opens a span per call and sends its `traceparent`.
//! - A message published on the broker or as an event carries the publisher's `traceparent`
//!   in its headers; the subscriber's handler runs in a span that continues it.
//! - Log lines written inside a request's span carry its `trace_id`.
//!
//! When no endpoint is set nothing is exported, no span is made, and no header is added: the
//! layers cost a flag's read. Each process exports its own spans; `OTEL_SERVICE_NAME` names it
//! (else the service's name), and the batch exporter's standard `OTEL_BSP_*` variables apply.

mod layer;
mod sampler;
mod service;
mod traceparent;

use std::{
    collections::BTreeMap,
    sync::{
        OnceLock,
        atomic::{AtomicBool, Ordering},
    },
};

use opentelemetry::{
    Context,
    propagation::{Extractor, Injector},
    trace::{TraceContextExt, TracerProvider as _},
};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer as _;

pub use layer::TraceLayer;
pub use sampler::Sampling;
pub use service::Trace;

/// The W3C trace-context header.
pub const TRACEPARENT: &str = "traceparent";

static ENABLED: AtomicBool = AtomicBool::new(false);
static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();
static SAMPLING: OnceLock<Sampling> = OnceLock::new();

/// For a trace that begins here: its context, unsampled, when the sampler does not keep it;
/// `None` when it does (a span is made, and records).
fn begin_unsampled() -> Option<opentelemetry::trace::SpanContext> {
    let sampling = SAMPLING.get()?;
    let trace_id = Sampling::new_trace_id();
    (!sampling.samples(trace_id)).then(|| Sampling::unsampled(trace_id))
}

tokio::task_local! {
    /// The trace context of the call this task serves when the trace is not sampled: no span
    /// was made for it, the calls it makes carry this context on, still unsampled, and a span
    /// the handler opens itself records nothing (see `sampler::FollowTheStart`).
    static UNSAMPLED: opentelemetry::trace::SpanContext;
}

/// Runs `f` with `context`, an unsampled trace's, as the one its calls pass on.
fn unsampled<F: Future>(
    context: opentelemetry::trace::SpanContext,
    f: F,
) -> tokio::task::futures::TaskLocalFuture<opentelemetry::trace::SpanContext, F> {
    UNSAMPLED.scope(context, f)
}

/// Whether this task serves the call of a trace not kept.
fn in_unsampled_call() -> bool {
    UNSAMPLED.try_with(|_| ()).is_ok()
}

/// Runs `f`, work that begins a trace (a CLI command, a job outside any request), in the root
/// span `span` makes — or, when the sampler does not keep the trace, in no span, its calls
/// passing the unsampled context on.
pub fn root<F: Future>(
    span: impl FnOnce() -> tracing::Span,
    f: F,
) -> futures::future::Either<
    tracing::instrument::Instrumented<F>,
    tokio::task::futures::TaskLocalFuture<opentelemetry::trace::SpanContext, F>,
> {
    use tracing::Instrument as _;
    if enabled()
        && let Some(context) = begin_unsampled()
    {
        return futures::future::Either::Right(unsampled(context, f));
    }
    futures::future::Either::Left(f.instrument(span()))
}

/// The trace context a call made now passes on when `span` is none: an unsampled caller's
/// (see [`unsampled`]), or the current span's.
fn context_of(span: &tracing::Span) -> Context {
    if !span.is_none() {
        return span.context();
    }
    match UNSAMPLED.try_with(Clone::clone) {
        Ok(unsampled) => Context::new().with_remote_span_context(unsampled),
        Err(_) => tracing::Span::current().context(),
    }
}

/// Whether this process exports spans (an OTLP endpoint was set when tracing started, and
/// [`set_enabled`] did not pause it).
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Pauses (`false`) or resumes making and exporting spans, once an exporter is set up; no
/// effect without one. For measuring what tracing costs (the gateway bench does).
pub fn set_enabled(on: bool) {
    ENABLED.store(on && PROVIDER.get().is_some(), Ordering::Relaxed);
}

fn configured() -> bool {
    [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|name| std::env::var(name).is_ok_and(|v| !v.trim().is_empty()))
}

/// The `tracing` layer that turns spans into OpenTelemetry spans and exports them, when an
/// OTLP endpoint is set; `None` otherwise. `service` names this process unless
/// `OTEL_SERVICE_NAME` does. Call it inside a tokio runtime (the exporter's channel lives on
/// it), once; [`shutdown`] sends what is left before the process ends.
pub fn otel_layer<S>(service: &str) -> Option<impl tracing_subscriber::Layer<S>>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    if !configured() || PROVIDER.get().is_some() {
        return None;
    }
    let exporter = match opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()
    {
        Ok(exporter) => exporter,
        Err(e) => {
            eprintln!("traces are off: cannot set up the OTLP exporter: {e}");
            return None;
        }
    };
    let name = std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| service.to_owned());
    // New traces are sampled where they begin (see `sampler`); a span is only ever made for
    // one that is kept, or for a caller's that was.
    let _ = SAMPLING.set(Sampling::from_env());
    let provider = SdkTracerProvider::builder()
        .with_sampler(sampler::FollowTheStart)
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(name)
                .build(),
        )
        .build();
    let tracer = provider.tracer("micro");
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    opentelemetry::global::set_tracer_provider(provider.clone());
    let _ = PROVIDER.set(provider);
    ENABLED.store(true, Ordering::Relaxed);
    // Spans of info and above: every hop's own, never a library's internals (h2's frames).
    // A span says what the call was (its `rpc.*` attributes), not where in our code it was
    // made, on which thread, or how long it was polled: those cost a clock read on every poll
    // and a string per attribute, on every call. Our own propagation reads each span's
    // context where it needs it, so no context is activated on every poll either.
    Some(
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_location(false)
            .with_target(false)
            .with_threads(false)
            .with_tracked_inactivity(false)
            .with_context_activation(false)
            .with_filter(tracing_subscriber::filter::LevelFilter::INFO),
    )
}

/// For a process that logs nothing (the CLI): installs a subscriber that only exports spans,
/// when an OTLP endpoint is set; whether it did.
pub fn init_exporter_only(service: &str) -> bool {
    use tracing_subscriber::{layer::SubscriberExt, util::SubscriberInitExt};
    match otel_layer(service) {
        Some(layer) => tracing_subscriber::registry()
            .with(layer)
            .try_init()
            .is_ok(),
        None => false,
    }
}

/// Sends the spans not yet exported and stops the exporter; call it before the process ends
/// (a [`Service`](crate::Service) does when it stops).
pub async fn shutdown() {
    if let Some(provider) = PROVIDER.get() {
        let provider = provider.clone();
        let _ = tokio::task::spawn_blocking(move || provider.shutdown()).await;
    }
}

/// A process's name, for [`otel_layer`]: its executable's name.
pub fn process_name() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "micro-service".to_owned())
}

struct HeaderInjector<'a>(&'a mut http::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(mut value)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            // New on every call: not for HPACK's tables (see `deadline::grpc_timeout_header`).
            value.set_sensitive(true);
            self.0.insert(name, value);
        }
    }
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct MapCarrier<'a>(&'a mut BTreeMap<String, String>);

impl Injector for MapCarrier<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), value);
    }
}

struct MapReader<'a>(&'a BTreeMap<String, String>);

impl Extractor for MapReader<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

/// Puts `span`'s trace context on outgoing `headers` (`traceparent`), when tracing is on; for
/// no span, the context of the call being served (an unsampled one passed on as it came).
pub fn inject(span: &tracing::Span, headers: &mut http::HeaderMap) {
    if !enabled() {
        return;
    }
    if span.is_none()
        && UNSAMPLED
            .try_with(|unsampled| traceparent::write(unsampled, headers))
            .unwrap_or(false)
    {
        return;
    }
    inject_context(&context_of(span), headers);
}

/// Puts the trace context `cx` on outgoing `headers` (`traceparent`; nothing for no context).
fn inject_context(cx: &Context, headers: &mut http::HeaderMap) {
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(cx, &mut HeaderInjector(headers));
    });
}

/// Puts the current span's trace context on a message's headers, unless they carry one.
pub fn inject_message(header: &mut BTreeMap<String, String>) {
    if !enabled() || header.contains_key(TRACEPARENT) {
        return;
    }
    let cx = context_of(&tracing::Span::none());
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(&cx, &mut MapCarrier(header))
    });
}

/// Makes `span` continue the trace of `parent` (a remote caller's, read from its headers), and
/// records the trace id on it, so log lines inside carry it.
fn continue_trace(span: &tracing::Span, parent: Context) {
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
    let trace_id = span.context().span().span_context().trace_id();
    span.record("trace_id", tracing::field::display(trace_id));
}

/// The trace context `headers` carry (none: an empty context).
pub fn extract(headers: &http::HeaderMap) -> Context {
    opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)))
}

/// A span for handling a message of `topic` (broker or events), continuing the publisher's
/// trace from the message's headers; a disabled span when tracing is off.
pub fn consumer_span(topic: &str, header: &BTreeMap<String, String>) -> tracing::Span {
    if !enabled() {
        return tracing::Span::none();
    }
    let mut parent =
        opentelemetry::global::get_text_map_propagator(|p| p.extract(&MapReader(header)));
    if !parent.span().span_context().is_valid()
        && let Some(unsampled) = begin_unsampled()
    {
        // A trace begins here, and is not kept: the span is made under its unsampled context,
        // so it records nothing and the handler's calls pass that context on. (A message is
        // rarer than a call; the span is cheap enough here.)
        parent = Context::new().with_remote_span_context(unsampled);
    }
    let span = tracing::info_span!(
        "consume",
        otel.name = %format!("{topic} process"),
        otel.kind = "consumer",
        messaging.destination.name = %topic,
        trace_id = tracing::field::Empty,
    );
    continue_trace(&span, parent);
    span
}

/// The span for one outgoing call, `request` (to `/pkg.Service/Method`), a child of the
/// current span, with its `traceparent` put on the request. A disabled span when tracing is
/// off, or when the trace is not sampled: then only the `traceparent` goes (flags `00`), so
/// the hops after make no span either.
pub fn client<B>(request: &mut http::Request<B>) -> tracing::Span {
    if !enabled() {
        return tracing::Span::none();
    }
    let none = tracing::Span::none();
    if in_unsampled_call() {
        // Inside the call of a trace not kept (see `unsampled`): no span, its context goes on.
        inject(&none, request.headers_mut());
        return none;
    }
    let (path, headers) = (request.uri().path().to_owned(), request.headers_mut());
    let span = client_span(&path, headers);
    inject(&span, headers);
    span
}

fn client_span(path: &str, headers: &mut http::HeaderMap) -> tracing::Span {
    let current = tracing::Span::current();
    if current.is_none() {
        // The trace begins with this call.
        if let Some(context) = begin_unsampled() {
            if !traceparent::write(&context, headers) {
                inject_context(&Context::new().with_remote_span_context(context), headers);
            }
            return tracing::Span::none();
        }
    } else if !current.context().span().span_context().is_sampled() {
        // A span of a trace nobody records (a caller's flag said so): no child either.
        return tracing::Span::none();
    }
    let (service, method) = split_path(path);
    tracing::info_span!(
        "rpc.client",
        otel.name = %path.trim_start_matches('/'),
        otel.kind = "client",
        rpc.system = "grpc",
        rpc.service = %service,
        rpc.method = %method,
    )
}

fn split_path(path: &str) -> (&str, &str) {
    path.trim_start_matches('/')
        .split_once('/')
        .unwrap_or((path, ""))
}
