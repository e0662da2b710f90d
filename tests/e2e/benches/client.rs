//! `micro::Client` against a bare tonic client, same node, same payload, same run.
//!
//! Run: `cargo bench -p micro-e2e --bench client` (add `-- 5` for 5-second rounds).
//!
//! A helloworld server runs in-process on 127.0.0.1; it is registered in an in-memory registry
//! so `micro::Client` resolves it as it would any service. For 1 and 64 calls in flight, each
//! client runs for the same time, twice, alternating, and the bench prints calls/s, p50 and p99
//! latency, and the ratio micro/bare (target: ≥ 0.95 at 1 and 64 in flight). Then the bare
//! client again with a 5 s deadline on every call (`grpc-timeout`, as `micro::Client` sends by
//! default) against itself without: the part of the gap that deadlines alone make.

use std::{sync::Arc, time::Duration};

use micro_core::{MemoryRegistry, Node, Registry, Service};
use micro_e2e::{
    Hello, call_hello, call_hello_with_deadline,
    helloworld::{helloworld_client::HelloworldClient, helloworld_server::HelloworldServer},
    load::closed_loop,
};
use tonic::transport::Channel;

fn main() {
    let seconds: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(3);
    let round = Duration::from_secs(seconds);
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
                    tonic::codegen::tokio_stream::wrappers::TcpListenerStream::new(listener),
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

        println!(
            "unary Helloworld.Call over loopback, {seconds}s per round, 2 rounds each, alternating"
        );
        println!(
            "{:<10} {:<14} {:>12} {:>10} {:>10}",
            "in flight", "client", "calls/s", "p50", "p99"
        );
        for in_flight in [1usize, 64] {
            let (b1, _) = closed_loop(vec![bare.clone(); in_flight], round, call_hello).await;
            let (m1, _) = closed_loop(vec![micro.clone(); in_flight], round, call_hello).await;
            let (m2, _) = closed_loop(vec![micro.clone(); in_flight], round, call_hello).await;
            let (b2, _) = closed_loop(vec![bare.clone(); in_flight], round, call_hello).await;
            let (b, m) = (b1.merge(b2), m1.merge(m2));
            for (name, f) in [("bare tonic", b), ("micro::Client", m)] {
                println!(
                    "{in_flight:<10} {name:<14} {:>12.0} {:>10.3?} {:>10.3?}",
                    f.per_sec, f.p50, f.p99
                );
            }
            println!(
                "{in_flight:<10} {:<14} {:>12.3}",
                "ratio",
                m.per_sec / b.per_sec
            );
            // What deadlines alone cost a bare client (a timer each side per call): the part
            // of the gap that is the deadline `micro::Client` gives every call.
            let (d1, _) = closed_loop(
                vec![bare.clone(); in_flight],
                round,
                call_hello_with_deadline,
            )
            .await;
            let (b3, _) = closed_loop(vec![bare.clone(); in_flight], round, call_hello).await;
            let (d2, _) = closed_loop(
                vec![bare.clone(); in_flight],
                round,
                call_hello_with_deadline,
            )
            .await;
            let (b4, _) = closed_loop(vec![bare.clone(); in_flight], round, call_hello).await;
            let (d, b) = (d1.merge(d2), b3.merge(b4));
            println!(
                "{in_flight:<10} {:<14} {:>12.0} {:>10.3?} {:>10.3?}",
                "bare+deadline", d.per_sec, d.p50, d.p99
            );
            println!(
                "{in_flight:<10} {:<14} {:>12.3}",
                "ratio d/bare",
                d.per_sec / b.per_sec
            );
        }
    });
}
