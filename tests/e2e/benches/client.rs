//! `micro::Client` against a bare tonic client, same node, same payload, same run.
//!
//! Run: `cargo bench -p micro-e2e --bench client` (`-- 0.5 20`: 20 pairs of half-second
//! rounds; the default is 40 pairs of 0.25 s). `-- micro 10 64` (or `bare`, or `deadline`:
//! the bare client with a deadline) runs that client alone for 10 s with 64 calls in flight,
//! for a profiler to watch.
//!
//! A helloworld server runs in-process on 127.0.0.1; it is registered in an in-memory registry
//! so `micro::Client` resolves it as it would any service. For 1 and 64 calls in flight, the
//! two clients run in pairs of short alternating rounds ([`micro_e2e::load::paired`]), and the bench
//! prints calls/s, p50 and p99 latency, and the median of the pairs' ratios micro/bare, with
//! the lowest and highest (target: ≥ 0.95 at 1 and 64 in flight). Then the bare client with a
//! 5 s deadline on every call (`grpc-timeout`, as `micro::Client` sends by default) against
//! itself without: what deadlines alone cost.

use std::{sync::Arc, time::Duration};

use micro_core::{MemoryRegistry, Node, Registry, Service};
use micro_e2e::{
    Hello, call_hello, call_hello_with_deadline,
    helloworld::{helloworld_client::HelloworldClient, helloworld_server::HelloworldServer},
    load::{Counting, Paired, allocations_per_call, closed_loop, paired},
};
use tonic::transport::Channel;

/// The system allocator, counting allocations: how many each client makes per call is exact,
/// where its calls/s on a shared machine are not.
#[global_allocator]
static GLOBAL: &Counting = &stats_alloc::INSTRUMENTED_SYSTEM;

fn main() {
    let args: Vec<f64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let alone = std::env::args()
        .skip(1)
        .find(|a| ["bare", "micro", "deadline"].contains(&a.as_str()));
    let seconds = args.first().copied().unwrap_or(0.25);
    let pairs = args.get(1).map_or(PAIRS, |&p| p as usize);
    let round = Duration::from_secs_f64(seconds);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("addr").to_string();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(HelloworldServer::new(Hello))
                .serve_with_incoming(
                    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
                ),
        );
        let registry = Arc::new(MemoryRegistry::new());
        let record =
            Service::new("helloworld", "latest").with_node(Node::new("hw-1", address.clone()));
        registry
            .register("micro", &record, Duration::from_secs(3600))
            .await
            .expect("register");

        let channel: Channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
            .expect("endpoint")
            .tcp_nodelay(true)
            .connect()
            .await
            .expect("connect");
        let bare = HelloworldClient::new(channel);
        let micro = HelloworldClient::new(
            micro::Client::builder(registry)
                .build()
                .service("helloworld"),
        );
        // Warm both paths (connections, caches).
        closed_loop(
            vec![bare.clone(); 8],
            Duration::from_millis(300),
            call_hello,
        )
        .await;
        closed_loop(
            vec![micro.clone(); 8],
            Duration::from_millis(300),
            call_hello,
        )
        .await;

        if let Some(alone) = alone {
            // One client alone, for a profiler (`perf record`, `perf stat`) to see only it.
            let in_flight = args.get(1).map_or(1, |&n| n as usize);
            let figures = match alone.as_str() {
                "bare" => {
                    closed_loop(vec![bare; in_flight], round, call_hello)
                        .await
                        .0
                }
                "deadline" => {
                    closed_loop(vec![bare; in_flight], round, call_hello_with_deadline)
                        .await
                        .0
                }
                _ => {
                    closed_loop(vec![micro; in_flight], round, call_hello)
                        .await
                        .0
                }
            };
            println!(
                "{alone}, {in_flight} in flight: {:.0} calls/s, p50 {:.3?}, p99 {:.3?}",
                figures.per_sec, figures.p50, figures.p99
            );
            return;
        }
        let (mut b, mut m) = (bare.clone(), micro.clone());
        let (ab, am) = (
            allocations_per_call(&mut b, call_hello, 2000, GLOBAL).await,
            allocations_per_call(&mut m, call_hello, 2000, GLOBAL).await,
        );
        println!(
            "allocations per call (client and server): bare tonic {ab:.1}, micro::Client {am:.1}"
        );
        println!(
            "unary Helloworld.Call over loopback, {pairs} pairs of alternating {seconds}s rounds"
        );
        println!(
            "{:<10} {:<14} {:>12} {:>10} {:>10}",
            "in flight", "client", "calls/s", "p50", "p99"
        );
        for in_flight in [1usize, 64] {
            let (p, _, _) = paired(
                (vec![bare.clone(); in_flight], call_hello),
                (vec![micro.clone(); in_flight], call_hello),
                pairs,
                round,
            )
            .await;
            print(in_flight, ("bare tonic", "micro::Client"), &p);
            // What deadlines alone cost a bare client (a timer each side per call).
            let (p, _, _) = paired(
                (vec![bare.clone(); in_flight], call_hello),
                (vec![bare.clone(); in_flight], call_hello_with_deadline),
                pairs,
                round,
            )
            .await;
            print(in_flight, ("bare tonic", "bare+deadline"), &p);
        }
    });
}

/// Pairs of rounds per comparison, by default.
const PAIRS: usize = 40;

fn print(in_flight: usize, (a, b): (&str, &str), p: &Paired) {
    for (name, f) in [(a, p.a), (b, p.b)] {
        println!(
            "{in_flight:<10} {name:<14} {:>12.0} {:>10.3?} {:>10.3?}",
            f.per_sec, f.p50, f.p99
        );
    }
    println!(
        "{in_flight:<10} {:<14} {:>12.3}   (pairs {:.3}–{:.3})",
        "ratio", p.ratio, p.spread.0, p.spread.1
    );
}
