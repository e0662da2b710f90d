//! The HTTP gateway against calling helloworld directly over gRPC, same run.
//!
//! Run: `cargo bench -p micro-e2e --bench gateway` (add `-- 5` for 5-second rounds, and
//! `--observability` for the cost of metrics and tracing alone). With
//! `MICRO_BENCH_ALONE=gateway` (or `floor`, `direct`, `gateway-http2`, `floor-http2`) it runs
//! that path alone for one round and stops, for a profiler (`perf record --call-graph dwarf`) to
//! see only it; `MICRO_BENCH_TRACED=1` as well runs it with tracing on.
//!
//! In one process: the platform (`micro_server::start`, gateway on 127.0.0.1:0) and helloworld
//! as a Micro service registered with it. Two figures:
//! - throughput at 64 calls in flight: 64 HTTP/1.1 keep-alive connections POSTing
//!   `{"name":"bench"}` to `/helloworld/call`, against 64 tasks calling `Helloworld.Call` over
//!   one gRPC channel; target gateway ≥ 0.8× direct. And a third path, the floor: the least an
//!   HTTP gateway can be ([`floor`]: HTTP/1.1 in, the same call out with `micro::Client`, a
//!   fixed answer back), to separate what the two hops cost from what the gateway's own work
//!   does. Two rounds each, in the order direct, gateway, floor, floor, gateway, direct; then
//!   the same again with the gateway's and the floor's 64 callers sharing one HTTP/2 connection
//!   (prior knowledge), as the direct ones share one gRPC channel;
//! - added latency at a fixed 1,000 calls/s, one at a time: gateway p50 − direct p50; target
//!   ≤ 0.3 ms;
//! - what metrics and tracing cost: gateway throughput at 64 in flight with both on (every
//!   span of every hop exported with OTLP/gRPC to a receiver) against both off
//!   (`micro::metrics::set_recording`, `micro::trace::set_enabled`), alternating rounds;
//!   target on ≥ 0.95× off.
//!
//! The bench runs itself again as a child with `OTEL_EXPORTER_OTLP_ENDPOINT` pointing at an
//! OTLP receiver the parent serves (a collector is another process in production too), and
//! large `OTEL_BSP_*` batches, so that spans are exported rather than dropped; the parent
//! reports what it received. The first two figures are taken with tracing paused, metrics on.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
    trace_service_server::{TraceService, TraceServiceServer},
};

use micro_e2e::{
    call_hello,
    gateway_client::GatewayClient,
    helloworld::helloworld_client::HelloworldClient,
    load::{Counting, Figures, allocations_per_call, closed_loop, fixed_rate},
};

/// The system allocator, counting allocations: what each path allocates per call is exact,
/// where its calls/s on a shared machine are not.
#[global_allocator]
static GLOBAL: &Counting = &stats_alloc::INSTRUMENTED_SYSTEM;

const IN_FLIGHT: usize = 64;
const RATE: u32 = 1000;

fn via_gateway(
    client: &mut GatewayClient,
) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + '_>> {
    Box::pin(client.call_hello())
}

/// The least an HTTP gateway can be: HTTP/1.1 (or, with `http2`, HTTP/2) in, the same gRPC call
/// out over HTTP/2 with `micro::Client`, a fixed answer back; no routing, no auth, no JSON, no
/// metrics. What it costs against direct gRPC is what the two hops cost on this machine, before
/// any gateway logic.
async fn floor(node: &str, http2: bool) -> String {
    use http_body_util::BodyExt;
    /// `Helloworld.Call{name: "bench"}` as a gRPC frame.
    const CALL: &[u8] = &[0, 0, 0, 0, 7, 0x0a, 5, b'b', b'e', b'n', b'c', b'h'];
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    let registry = Arc::new(micro_core::MemoryRegistry::new());
    let channel = micro::Client::builder(registry).build().node(node);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tcp.set_nodelay(true).expect("nodelay");
            let channel = channel.clone();
            let service = hyper::service::service_fn(move |request: hyper::Request<_>| {
                let channel = channel.clone();
                async move {
                    let _ = BodyExt::collect(request.into_body()).await?;
                    let call = http::Request::post("/helloworld.Helloworld/Call")
                        .header("content-type", "application/grpc")
                        .header("te", "trailers")
                        .body(tonic::body::Body::new(http_body_util::Full::new(
                            bytes::Bytes::from_static(CALL),
                        )))?;
                    let answer = tower::ServiceExt::oneshot(channel, call).await?;
                    let answer = BodyExt::collect(answer.into_body()).await?;
                    let ok = answer
                        .trailers()
                        .and_then(|t| t.get("grpc-status"))
                        .is_some_and(|s| s == "0");
                    assert!(ok, "helloworld answered");
                    Ok::<_, Box<dyn std::error::Error + Send + Sync>>(hyper::Response::new(
                        http_body_util::Full::new(bytes::Bytes::from_static(
                            br#"{"msg":"Hello bench"}"#,
                        )),
                    ))
                }
            });
            let io = hyper_util::rt::TokioIo::new(tcp);
            if http2 {
                tokio::spawn(
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(io, service),
                );
            } else {
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new().serve_connection(io, service),
                );
            }
        }
    });
    address
}

/// [`IN_FLIGHT`] keep-alive connections to the HTTP server at `address`.
async fn connections(address: &str) -> Vec<GatewayClient> {
    let mut conns = Vec::with_capacity(IN_FLIGHT);
    for _ in 0..IN_FLIGHT {
        conns.push(GatewayClient::connect(address, None).await);
    }
    conns
}

fn row(name: &str, f: Figures) {
    println!(
        "{name:<22} {:>10.0} {:>10.3?} {:>10.3?}",
        f.per_sec, f.p50, f.p99
    );
}

/// Set to `gateway`, `floor`, `direct`, `gateway-http2` or `floor-http2`, runs that path alone
/// at 64 in flight.
const ALONE: &str = "MICRO_BENCH_ALONE";

/// Set (to anything) with [`ALONE`], the path runs with tracing on (the child's sampler).
const ALONE_TRACED: &str = "MICRO_BENCH_TRACED";

/// Marks the child run (the one with an exporter).
const CHILD: &str = "--traced-child";
/// Marks a child run that measures metrics and tracing alone.
const ONLY_OBSERVABILITY: &str = "--only-observability";

/// Counts the spans exported to it.
#[derive(Clone, Default)]
struct Receiver(Arc<AtomicU64>);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let spans: usize = request
            .get_ref()
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        self.0.fetch_add(spans as u64, Ordering::Relaxed);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let seconds: u64 = args.iter().find_map(|a| a.parse().ok()).unwrap_or(3);
    if args.iter().any(|a| a == CHILD) {
        return bench(seconds, args.iter().any(|a| a == ONLY_OBSERVABILITY));
    }
    // The parent: an OTLP receiver, and the bench run as a child that exports to it.
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let receiver = Receiver::default();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("address"));
    rt.spawn(
        tonic::transport::Server::builder()
            .add_service(
                TraceServiceServer::new(receiver.clone())
                    .max_decoding_message_size(256 * 1024 * 1024),
            )
            .serve_with_incoming(
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            ),
    );
    // Every span exported, then one trace in a hundred (the standard sampler variables).
    for (sampler, only) in [(None, false), (Some("0.01"), true)] {
        let mut child = std::process::Command::new(std::env::current_exe().expect("this bench"));
        child
            .arg(CHILD)
            .arg(seconds.to_string())
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
            .env("OTEL_BSP_MAX_QUEUE_SIZE", "262144")
            .env("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "8192")
            .env("OTEL_BSP_SCHEDULE_DELAY", "100");
        if let Some(ratio) = sampler {
            child
                .env("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
                .env("OTEL_TRACES_SAMPLER_ARG", ratio);
        }
        if only || args.iter().any(|a| a == "--observability") {
            child.arg(ONLY_OBSERVABILITY);
        }
        receiver.0.store(0, Ordering::Relaxed);
        let status = child.status().expect("the bench's child");
        assert!(status.success(), "the bench failed: {status}");
        println!(
            "{:<22} {:>10}   (spans the OTLP receiver got)",
            "spans exported",
            receiver.0.load(Ordering::Relaxed)
        );
    }
}

fn bench(seconds: u64, only_observability: bool) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async move {
        assert!(
            micro::trace::init_exporter_only("gateway-bench"),
            "no OTLP exporter: run the bench itself, not its child"
        );
        micro::trace::set_enabled(false);
        let platform = micro_e2e::in_process::platform(true).await;
        let service = micro_e2e::in_process::helloworld(&platform).await;
        let api = platform.api_address().expect("gateway").to_string();

        let channel =
            tonic::transport::Endpoint::from_shared(format!("http://{}", service.address()))
                .expect("endpoint")
                .tcp_nodelay(true)
                .connect()
                .await
                .expect("connect");
        let grpc = HelloworldClient::new(channel);
        let conns = connections(&api).await;
        let callers = |n: usize| vec![grpc.clone(); n];
        let node = service.address().to_string();
        let floor_conns = connections(&floor(&node, false).await).await;
        let http2 = (
            GatewayClient::connect_http2(&api, None, IN_FLIGHT).await,
            GatewayClient::connect_http2(&floor(&node, true).await, None, IN_FLIGHT).await,
        );

        // Warm every path (connections, descriptor cache, registry cache).
        let warm = Duration::from_millis(300);
        closed_loop(callers(8), warm, call_hello).await;
        let (_, conns) = closed_loop(conns, warm, via_gateway).await;
        let (_, floor_conns) = closed_loop(floor_conns, warm, via_gateway).await;
        let http2 = (
            closed_loop(http2.0, warm, via_gateway).await.1,
            closed_loop(http2.1, warm, via_gateway).await.1,
        );
        if let Ok(alone) = std::env::var(ALONE) {
            // One path alone, for a profiler to watch; with tracing on if asked.
            micro::trace::set_enabled(std::env::var_os(ALONE_TRACED).is_some());
            let round = Duration::from_secs(seconds);
            let figures = match alone.as_str() {
                "direct" => closed_loop(callers(IN_FLIGHT), round, call_hello).await.0,
                "floor" => closed_loop(floor_conns, round, via_gateway).await.0,
                "gateway-http2" => closed_loop(http2.0, round, via_gateway).await.0,
                "floor-http2" => closed_loop(http2.1, round, via_gateway).await.0,
                "gateway" => closed_loop(conns, round, via_gateway).await.0,
                other => panic!("{ALONE}={other:?}: no such path"),
            };
            row(&alone, figures);
            return;
        }
        let conns = if only_observability {
            conns
        } else {
            compare(&grpc, conns, floor_conns, http2, seconds).await
        };
        observability(conns, seconds).await;
        micro::trace::shutdown().await;
        drop(grpc);
        service.stop().await.expect("stop helloworld");
        platform.stop().await;
    });
}

/// Direct gRPC against the gateway: throughput over HTTP/1.1 and over HTTP/2, then added
/// latency at a fixed rate.
async fn compare(
    grpc: &HelloworldClient<tonic::transport::Channel>,
    conns: Vec<GatewayClient>,
    floor_conns: Vec<GatewayClient>,
    http2: (Vec<GatewayClient>, Vec<GatewayClient>),
    seconds: u64,
) -> Vec<GatewayClient> {
    let round = Duration::from_secs(seconds);
    println!(
        "unary Helloworld.Call over loopback, {seconds}s per round, 2 rounds each, alternating"
    );
    let (conns, floor_conns) = throughput(
        "HTTP/1.1: one keep-alive connection per caller",
        grpc,
        conns,
        floor_conns,
        round,
    )
    .await;
    throughput(
        "HTTP/2: the callers share one connection, as the gRPC ones do",
        grpc,
        http2.0,
        http2.1,
        round,
    )
    .await;

    println!("\nfixed {RATE} calls/s, one at a time, {seconds}s each");
    let mut conns = conns;
    let mut one = conns.pop().expect("a connection");
    let mut floor_one = floor_conns.into_iter().next().expect("a connection");
    let mut client = grpc.clone();
    let d = fixed_rate(&mut client, RATE, round, call_hello).await;
    let g = fixed_rate(&mut one, RATE, round, via_gateway).await;
    row("direct gRPC", d);
    row("gateway HTTP/JSON", g);
    let added = g.p50.saturating_sub(d.p50);
    println!(
        "{:<22} {:>21.3?}   (target <= 300µs)",
        "added latency p50", added
    );

    // Everything in the process allocates here: load generator, gateway or floor, helloworld.
    let calls = 2000;
    let d = allocations_per_call(&mut client, call_hello, calls, GLOBAL).await;
    let f = allocations_per_call(&mut floor_one, via_gateway, calls, GLOBAL).await;
    let g = allocations_per_call(&mut one, via_gateway, calls, GLOBAL).await;
    println!(
        "\nallocations per call (the whole process): direct {d:.0}, floor {f:.0}, gateway {g:.0}"
    );

    conns.push(one);
    conns
}

/// Direct gRPC, the gateway and the floor at [`IN_FLIGHT`] calls in flight, the gateway's and
/// the floor's callers speaking the HTTP `title` says; rounds in the order direct, gateway,
/// floor, floor, gateway, direct, so drift evens out.
async fn throughput(
    title: &str,
    grpc: &HelloworldClient<tonic::transport::Channel>,
    conns: Vec<GatewayClient>,
    floor_conns: Vec<GatewayClient>,
    round: Duration,
) -> (Vec<GatewayClient>, Vec<GatewayClient>) {
    let callers = |n: usize| vec![grpc.clone(); n];
    println!("\n{title}");
    println!(
        "{:<22} {:>10} {:>10} {:>10}",
        format!("{IN_FLIGHT} in flight"),
        "calls/s",
        "p50",
        "p99"
    );
    let (d1, _) = closed_loop(callers(IN_FLIGHT), round, call_hello).await;
    let (g1, conns) = closed_loop(conns, round, via_gateway).await;
    let (f1, floor_conns) = closed_loop(floor_conns, round, via_gateway).await;
    let (f2, floor_conns) = closed_loop(floor_conns, round, via_gateway).await;
    let (g2, conns) = closed_loop(conns, round, via_gateway).await;
    let (d2, _) = closed_loop(callers(IN_FLIGHT), round, call_hello).await;
    let (d, g, f) = (d1.merge(d2), g1.merge(g2), f1.merge(f2));
    row("direct gRPC", d);
    row("gateway HTTP/JSON", g);
    row("floor: two hops alone", f);
    println!(
        "{:<22} {:>10.3}   (issue 16's target >= 0.8)",
        "ratio gateway/direct",
        g.per_sec / d.per_sec
    );
    println!(
        "{:<22} {:>10.3}   (the most a gateway speaking this HTTP could read here)",
        "ratio floor/direct",
        f.per_sec / d.per_sec
    );
    println!(
        "{:<22} {:>10.3}   (what the gateway's own work costs)",
        "ratio gateway/floor",
        g.per_sec / f.per_sec
    );
    (conns, floor_conns)
}

/// The gateway's throughput with metrics and tracing off, metrics alone, and both; rounds in
/// the order A B C C B A, so drift evens out.
async fn observability(conns: Vec<GatewayClient>, seconds: u64) {
    let round = Duration::from_secs(seconds);
    let sampled = std::env::var("OTEL_TRACES_SAMPLER_ARG").unwrap_or_else(|_| "1".into());
    println!(
        "\nmetrics and tracing (sampling {sampled} of traces), gateway at {IN_FLIGHT} in flight, 2 rounds each"
    );
    let configure = |metrics: bool, traces: bool| {
        micro::metrics::set_recording(metrics);
        micro::trace::set_enabled(traces);
    };
    let settings = [(false, false), (true, false), (true, true)];
    let mut figures: Vec<Option<Figures>> = vec![None; settings.len()];
    let mut conns = conns;
    for i in [0, 1, 2, 2, 1, 0] {
        let (metrics, traces) = settings[i];
        configure(metrics, traces);
        let (f, back) = closed_loop(conns, round, via_gateway).await;
        conns = back;
        figures[i] = Some(figures[i].map_or(f, |g: Figures| g.merge(f)));
    }
    configure(true, false);
    let [off, metrics, both] = [figures[0], figures[1], figures[2]].map(|f| f.expect("measured"));
    row("both off", off);
    row("metrics", metrics);
    row("metrics and traces", both);
    println!(
        "{:<22} {:>10.3}   (metrics alone {:.3}; target >= 0.95)",
        "ratio on/off",
        both.per_sec / off.per_sec,
        metrics.per_sec / off.per_sec
    );
}
