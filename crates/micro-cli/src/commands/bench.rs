//! `micro bench SERVICE ENDPOINT [JSON]`: load generation through the server's proxy, the same
//! path `micro call` takes — or, with `--direct`, from this process straight to the service's
//! nodes through `micro::Client` (found in the server's registry, the request transcoded once
//! here), which is what a service calling another sees.
//!
//! `--concurrency` workers share one connection. Without `--rate` each starts its next call
//! when the last one ends (a closed loop: the figures say how much the service can take); with
//! `--rate R` calls are due at fixed intervals and latency counts from when each was due, so a
//! service that falls behind shows it in its latency rather than hiding it in a slower rate.
//! It stops after `--requests` calls or `--duration` (default 10 s), prints a progress line a
//! second on stderr, then the requests, the errors by gRPC code, the rate, and the latency
//! percentiles (an HDR histogram, so memory stays flat however long it runs).

use std::{
    collections::BTreeMap,
    io::IsTerminal,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use hdrhistogram::Histogram;
use micro_proto::proxy::{CallRequest, proxy_client::ProxyClient};
use tokio::time::{Instant, MissedTickBehavior};
use tonic::transport::Channel;

use crate::{cli::BenchArgs, context::Context, failure::Failure};

/// How long a run lasts when neither `--duration` nor `--requests` says.
const DEFAULT_DURATION: Duration = Duration::from_secs(10);

/// The slowest latency the histogram holds, in microseconds (longer ones count as this).
const MAX_MICROS: u64 = 3_600_000_000;

/// Where the calls go.
enum Target {
    /// Through the server's proxy (`micro.proxy.Proxy/Call`).
    Proxy(ProxyClient<Channel>),
    /// To the nodes, from here: the endpoint resolved and the request encoded once.
    Direct {
        proxy: micro_server::proxy::ProxyService,
        target: Box<micro_server::proxy::Target>,
        body: bytes::Bytes,
    },
}

/// What the workers share.
struct Run {
    target: Target,
    call: CallRequest,
    timeout: Duration,
    /// Calls started so far, against `--requests`.
    started: AtomicU64,
    limit: Option<u64>,
    until: Option<Instant>,
    /// When the next call is due, with `--rate`.
    ticker: Option<tokio::sync::Mutex<tokio::time::Interval>>,
    done: AtomicU64,
    failed: AtomicU64,
}

/// One worker's figures.
struct Figures {
    latency: Histogram<u64>,
    errors: BTreeMap<String, u64>,
}

impl Figures {
    fn new() -> Result<Self, Failure> {
        Ok(Self {
            latency: Histogram::new_with_bounds(1, MAX_MICROS, 3)
                .map_err(|e| Failure::new(format!("histogram: {e}")))?,
            errors: BTreeMap::new(),
        })
    }
}

/// `micro bench`.
pub(crate) async fn run(ctx: &Context, args: &BenchArgs) -> Result<(), Failure> {
    let request: serde_json::Value = serde_json::from_str(&args.request)
        .map_err(|e| Failure::new(format!("The request is not valid JSON: {e}")))?;
    let duration = match (args.duration, args.requests) {
        (None, None) => Some(DEFAULT_DURATION),
        (d, _) => d,
    };
    let began = Instant::now();
    let ticker = args.rate.map(|rate| {
        let mut interval = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
        interval.set_missed_tick_behavior(MissedTickBehavior::Burst);
        tokio::sync::Mutex::new(interval)
    });
    let target = if args.direct {
        direct(ctx, args, &request).await?
    } else {
        Target::Proxy(ProxyClient::new(ctx.connect().await?))
    };
    let run = Arc::new(Run {
        target,
        call: CallRequest {
            service: args.service.clone(),
            endpoint: args.endpoint.clone(),
            json: request.to_string(),
            address: String::new(),
            metadata: Default::default(),
            timeout_ms: u64::try_from(args.request_timeout.as_millis())
                .unwrap_or(u64::MAX)
                .max(1),
            ..Default::default()
        },
        timeout: args.request_timeout,
        started: AtomicU64::new(0),
        limit: args.requests,
        until: duration.map(|d| began + d),
        ticker,
        done: AtomicU64::new(0),
        failed: AtomicU64::new(0),
    });
    // A bad namespace or request fails here once, not in every worker.
    ctx.request(run.call.clone())?;

    let progress = tokio::spawn(progress(run.clone(), began));
    let mut workers = Vec::new();
    for _ in 0..args.concurrency {
        workers.push(tokio::spawn(worker(run.clone(), ctx.namespace.clone())));
    }
    let mut total = Figures::new()?;
    for worker in workers {
        let figures = worker
            .await
            .map_err(|e| Failure::new(format!("a worker failed: {e}")))??;
        total
            .latency
            .add(&figures.latency)
            .map_err(|e| Failure::new(format!("histogram: {e}")))?;
        for (code, n) in figures.errors {
            *total.errors.entry(code).or_default() += n;
        }
    }
    progress.abort();
    let elapsed = began.elapsed();
    let report = Report::of(&total, elapsed);
    if args.output == "json" {
        println!("{}", report.json());
    } else {
        print!("{}", report.text(&args.service, &args.endpoint));
    }
    Ok(())
}

/// `--direct`: the endpoint resolved through the server's registry and the node's reflection,
/// and the request encoded, once.
async fn direct(
    ctx: &Context,
    args: &BenchArgs,
    request: &serde_json::Value,
) -> Result<Target, Failure> {
    let registry: Arc<dyn micro_core::Registry> = Arc::new(ctx.registry().await?);
    let proxy = micro_server::proxy::ProxyService::new(registry, micro::Strategy::default());
    let mut caller = micro_server::auth::Caller::unchecked(&ctx.namespace);
    caller.token = micro::auth::token();
    let mut target = proxy
        .target(
            caller,
            &args.service,
            &args.endpoint,
            micro_server::proxy::Fallback::Exact,
        )
        .await
        .map_err(crate::failure::call_failure)?;
    target.timeout = Some(args.request_timeout);
    let method = target.resolved.method.clone();
    if method.is_client_streaming() || method.is_server_streaming() {
        return Err(Failure::new(format!(
            "{} is a streaming endpoint; micro bench calls unary endpoints",
            args.endpoint
        )));
    }
    // The login goes to the nodes themselves: only as safely as the CLI sends it to a server.
    if micro::auth::token().is_some() {
        let client = proxy.client(&ctx.namespace);
        let versions = client
            .lookup(&args.service)
            .await
            .map_err(crate::failure::call_failure)?;
        for node in versions.iter().flat_map(|v| &v.nodes) {
            micro::tls::check_token_transport(
                &node.address,
                micro::tls::serves_tls(node),
                micro::tls::insecure_allowed(),
            )
            .map_err(|e| {
                Failure::new(format!("--direct to node {}: {}", node.address, e.detail))
            })?;
        }
    }
    let body = micro::transcode::json_to_protobuf(&method.input(), &request.to_string())
        .map_err(crate::failure::call_failure)?;
    Ok(Target::Direct {
        proxy,
        target: Box::new(target),
        body,
    })
}

/// One call to the target; its gRPC code when it failed.
async fn call_once(
    run: &Run,
    proxy: &mut Option<ProxyClient<Channel>>,
    namespace: &str,
) -> Result<Result<(), tonic::Code>, Failure> {
    match &run.target {
        Target::Proxy(_) => {
            let Some(proxy) = proxy else {
                return Err(Failure::new("no proxy client"));
            };
            let mut request = micro::remote::namespaced(
                namespace,
                run.call.clone(),
                &micro::auth::Credentials::process(),
            )
            .map_err(|e| Failure::new(e.detail))?;
            // The proxy enforces the timeout; give it a moment more to say so itself.
            request.set_timeout(run.timeout + Duration::from_secs(2));
            Ok(proxy.call(request).await.map(drop).map_err(|s| s.code()))
        }
        Target::Direct {
            proxy,
            target,
            body,
        } => Ok(proxy
            .call_protobuf(target, body.clone())
            .await
            .map(drop)
            .map_err(|e| micro::status::to_status(&e).code())),
    }
}

/// Calls until the run is over.
async fn worker(run: Arc<Run>, namespace: String) -> Result<Figures, Failure> {
    let mut figures = Figures::new()?;
    let mut proxy = match &run.target {
        Target::Proxy(client) => Some(client.clone()),
        Target::Direct { .. } => None,
    };
    loop {
        if let Some(limit) = run.limit
            && run.started.fetch_add(1, Ordering::Relaxed) >= limit
        {
            break;
        }
        let due = match &run.ticker {
            Some(ticker) => ticker.lock().await.tick().await,
            None => Instant::now(),
        };
        if run.until.is_some_and(|until| due >= until) {
            break;
        }
        let answer = call_once(&run, &mut proxy, &namespace).await?;
        let micros = u64::try_from(due.elapsed().as_micros()).unwrap_or(u64::MAX);
        figures
            .latency
            .saturating_record(micros.clamp(1, MAX_MICROS));
        run.done.fetch_add(1, Ordering::Relaxed);
        if let Err(code) = answer {
            run.failed.fetch_add(1, Ordering::Relaxed);
            *figures
                .errors
                .entry(code_name(code).to_owned())
                .or_default() += 1;
        }
    }
    Ok(figures)
}

/// A progress line a second on stderr.
async fn progress(run: Arc<Run>, began: Instant) {
    let terminal = std::io::stderr().is_terminal();
    let mut every =
        tokio::time::interval_at(began + Duration::from_secs(1), Duration::from_secs(1));
    loop {
        every.tick().await;
        let done = run.done.load(Ordering::Relaxed);
        let failed = run.failed.load(Ordering::Relaxed);
        let secs = began.elapsed().as_secs_f64();
        let line = format!(
            "{secs:>5.1}s  {done} requests  {failed} errors  {:.1} req/s",
            done as f64 / secs
        );
        if terminal {
            eprint!("\r{line}   ");
        } else {
            eprintln!("{line}");
        }
    }
}

/// gRPC's name for `code`.
fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code as C;
    match code {
        C::Ok => "OK",
        C::Cancelled => "CANCELLED",
        C::Unknown => "UNKNOWN",
        C::InvalidArgument => "INVALID_ARGUMENT",
        C::DeadlineExceeded => "DEADLINE_EXCEEDED",
        C::NotFound => "NOT_FOUND",
        C::AlreadyExists => "ALREADY_EXISTS",
        C::PermissionDenied => "PERMISSION_DENIED",
        C::ResourceExhausted => "RESOURCE_EXHAUSTED",
        C::FailedPrecondition => "FAILED_PRECONDITION",
        C::Aborted => "ABORTED",
        C::OutOfRange => "OUT_OF_RANGE",
        C::Unimplemented => "UNIMPLEMENTED",
        C::Internal => "INTERNAL",
        C::Unavailable => "UNAVAILABLE",
        C::DataLoss => "DATA_LOSS",
        C::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// The summary of a run.
struct Report {
    requests: u64,
    errors: BTreeMap<String, u64>,
    seconds: f64,
    /// p50, p90, p99 and max, in milliseconds.
    latency: [f64; 4],
}

impl Report {
    fn of(figures: &Figures, elapsed: Duration) -> Self {
        let ms = |micros: u64| micros as f64 / 1000.0;
        let h = &figures.latency;
        Self {
            requests: h.len(),
            errors: figures.errors.clone(),
            seconds: elapsed.as_secs_f64(),
            latency: [
                ms(h.value_at_quantile(0.5)),
                ms(h.value_at_quantile(0.9)),
                ms(h.value_at_quantile(0.99)),
                ms(h.max()),
            ],
        }
    }

    fn failed(&self) -> u64 {
        self.errors.values().sum()
    }

    fn rate(&self) -> f64 {
        if self.seconds > 0.0 {
            self.requests as f64 / self.seconds
        } else {
            0.0
        }
    }

    fn text(&self, service: &str, endpoint: &str) -> String {
        let [p50, p90, p99, max] = self.latency;
        let mut out = format!(
            "{service} {endpoint}\nrequests  {} ({} ok, {} errors) in {:.2}s\nrate      {:.1} req/s\nlatency   p50 {p50:.3}ms  p90 {p90:.3}ms  p99 {p99:.3}ms  max {max:.3}ms\n",
            self.requests,
            self.requests - self.failed(),
            self.failed(),
            self.seconds,
            self.rate(),
        );
        for (code, n) in &self.errors {
            out.push_str(&format!("errors    {code} {n}\n"));
        }
        out
    }

    fn json(&self) -> serde_json::Value {
        let [p50, p90, p99, max] = self.latency;
        serde_json::json!({
            "requests": self.requests,
            "ok": self.requests - self.failed(),
            "errors": self.errors,
            "seconds": self.seconds,
            "rate": self.rate(),
            "latency_ms": { "p50": p50, "p90": p90, "p99": p99, "max": max },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_counts_rates_and_percentiles() {
        let mut figures = Figures::new().unwrap();
        for micros in 1..=1000 {
            figures.latency.record(micros).unwrap();
        }
        figures.errors.insert("UNAVAILABLE".into(), 3);
        let report = Report::of(&figures, Duration::from_secs(2));
        let json = report.json();
        assert_eq!(json["requests"], 1000);
        assert_eq!(json["ok"], 997);
        assert_eq!(json["errors"]["UNAVAILABLE"], 3);
        assert_eq!(json["rate"], 500.0);
        let p50 = json["latency_ms"]["p50"].as_f64().unwrap();
        assert!((0.49..=0.51).contains(&p50), "{p50}");
        assert!(json["latency_ms"]["max"].as_f64().unwrap() >= 0.999);
        let text = report.text("helloworld", "Helloworld.Call");
        assert!(
            text.contains("requests  1000 (997 ok, 3 errors) in 2.00s"),
            "{text}"
        );
        assert!(text.contains("errors    UNAVAILABLE 3"), "{text}");
    }
}
