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
//!   ≤ 0.3 ms.

use std::time::Duration;

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

fn main() {
    let seconds: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(3);
    let round = Duration::from_secs(seconds);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async move {
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

        service.stop().await.expect("stop helloworld");
        platform.stop().await;
    });
}
