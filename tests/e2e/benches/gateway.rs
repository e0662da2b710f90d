//! The HTTP gateway against calling helloworld directly over gRPC, same run.
//!
//! Run: `cargo bench -p micro-e2e --bench gateway` (add `-- 5` for 5-second rounds).
//!
//! In one process: the platform (`micro_server::start`, gateway on 127.0.0.1:0) and helloworld
//! as a Micro service registered with it. Two figures:
//! - throughput at 64 calls in flight: 64 HTTP/1.1 keep-alive connections POSTing
//!   `{"name":"bench"}` to `/helloworld/call`, against 64 tasks calling `Helloworld.Call` over
//!   one gRPC channel; two alternating rounds each; target gateway ≥ 0.5× direct;
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
    Hello, call_hello,
    gateway_client::GatewayClient,
    helloworld::{
        DESCRIPTORS, helloworld_client::HelloworldClient, helloworld_server::HelloworldServer,
    },
    load::{Figures, closed_loop, fixed_rate},
};

const IN_FLIGHT: usize = 64;
const RATE: u32 = 1000;

fn via_gateway(
    client: &mut GatewayClient,
) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + '_>> {
    Box::pin(client.call_hello())
}

fn row(name: &str, f: Figures) {
    println!(
        "{name:<22} {:>10.0} {:>10.3?} {:>10.3?}",
        f.per_sec, f.p50, f.p99
    );
}

/// Marks the child run (the one with an exporter).
const CHILD: &str = "--traced-child";

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
        return bench(seconds);
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
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let status = std::process::Command::new(std::env::current_exe().expect("this bench"))
        .arg(CHILD)
        .arg(seconds.to_string())
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
        .env("OTEL_BSP_MAX_QUEUE_SIZE", "262144")
        .env("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "8192")
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .status()
        .expect("the bench's child");
    assert!(status.success(), "the bench failed: {status}");
    println!(
        "{:<22} {:>10}   (spans the OTLP receiver got from the traced rounds)",
        "spans exported",
        receiver.0.load(Ordering::Relaxed)
    );
}

fn bench(seconds: u64) {
    let round = Duration::from_secs(seconds);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async move {
        assert!(
            micro::trace::init_exporter_only("gateway-bench"),
            "no OTLP exporter: run the bench itself, not its child"
        );
        micro::trace::set_enabled(false);
        let platform = micro_e2e::in_process::platform(true).await;
        let service = micro::Service::new("helloworld")
            .descriptors(DESCRIPTORS)
            .handle(HelloworldServer::new(Hello))
            .server(platform.grpc_address().to_string())
            .address("127.0.0.1:0")
            .start()
            .await
            .expect("helloworld");
        let api = platform.api_address().expect("gateway").to_string();

        let channel =
            tonic::transport::Endpoint::from_shared(format!("http://{}", service.address()))
                .expect("endpoint")
                .tcp_nodelay(true)
                .connect()
                .await
                .expect("connect");
        let grpc = HelloworldClient::new(channel);
        let mut conns = Vec::with_capacity(IN_FLIGHT);
        for _ in 0..IN_FLIGHT {
            conns.push(GatewayClient::connect(&api, None).await);
        }
        let callers = |n: usize| vec![grpc.clone(); n];

        // Warm both paths (connections, descriptor cache, registry cache).
        let warm = Duration::from_millis(300);
        closed_loop(callers(8), warm, call_hello).await;
        let (_, conns) = closed_loop(conns, warm, via_gateway).await;

        println!(
            "unary Helloworld.Call over loopback, {seconds}s per round, 2 rounds each, alternating"
        );
        println!(
            "{:<22} {:>10} {:>10} {:>10}",
            format!("{IN_FLIGHT} in flight"),
            "calls/s",
            "p50",
            "p99"
        );
        let (d1, _) = closed_loop(callers(IN_FLIGHT), round, call_hello).await;
        let (g1, conns) = closed_loop(conns, round, via_gateway).await;
        let (g2, conns) = closed_loop(conns, round, via_gateway).await;
        let (d2, _) = closed_loop(callers(IN_FLIGHT), round, call_hello).await;
        let (d, g) = (d1.merge(d2), g1.merge(g2));
        row("direct gRPC", d);
        row("gateway HTTP/JSON", g);
        println!(
            "{:<22} {:>10.3}   (target >= 0.5)",
            "ratio gateway/direct",
            g.per_sec / d.per_sec
        );

        println!("\nfixed {RATE} calls/s, one at a time, {seconds}s each");
        let mut one = conns.into_iter().next().expect("a connection");
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

        println!("\nmetrics and tracing, gateway at {IN_FLIGHT} in flight, 2 rounds each");
        let observed = |on: bool| {
            micro::metrics::set_recording(on);
            micro::trace::set_enabled(on);
        };
        let mut conns = vec![one];
        for _ in 1..IN_FLIGHT {
            conns.push(GatewayClient::connect(&api, None).await);
        }
        observed(false);
        let (off1, conns) = closed_loop(conns, round, via_gateway).await;
        observed(true);
        let (on1, conns) = closed_loop(conns, round, via_gateway).await;
        observed(false);
        let (off2, conns) = closed_loop(conns, round, via_gateway).await;
        observed(true);
        let (on2, conns) = closed_loop(conns, round, via_gateway).await;
        observed(false);
        drop(conns);
        let (off, on) = (off1.merge(off2), on1.merge(on2));
        row("both off", off);
        row("both on", on);
        println!(
            "{:<22} {:>10.3}   (target >= 0.95; {:.0} traced calls)",
            "ratio on/off",
            on.per_sec / off.per_sec,
            (on1.per_sec + on2.per_sec) * seconds as f64
        );
        micro::trace::shutdown().await;

        service.stop().await.expect("stop helloworld");
        platform.stop().await;
    });
}
