//! What auth costs a gateway call: calls/s with auth on against auth off, same run.
//!
//! Run: `cargo bench -p micro-e2e --bench auth` (add `-- 5` for 5-second rounds).
//!
//! Two platforms in one process, each with helloworld registered: one with auth off
//! (`--auth off`), one with auth on, where every call carries the admin's access token, so each
//! one is authenticated (Ed25519 signature, claims) and checked against the namespace's rules at
//! the gateway, then again by helloworld's own server (`micro::gate`: the platform's answer,
//! remembered per token). 64 HTTP/1.1 keep-alive connections POST `{"name":"bench"}` to
//! `/helloworld/call` on each; two alternating rounds each. Target: on ≥ 0.9× off.

use std::time::Duration;

use micro_e2e::{
    gateway_client::GatewayClient,
    load::{Figures, closed_loop},
};

const IN_FLIGHT: usize = 64;

fn call(client: &mut GatewayClient) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + '_>> {
    Box::pin(client.call_hello())
}

/// A platform (auth on or off) with helloworld registered; its gateway's address.
async fn platform(auth: bool) -> (micro_server::Platform, micro::service::Running, String) {
    let platform = micro_e2e::in_process::platform(auth).await;
    let service = micro_e2e::in_process::helloworld(&platform).await;
    let api = platform.api_address().expect("gateway").to_string();
    (platform, service, api)
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
        let (on, on_service, on_api) = platform(true).await;
        let (off, off_service, off_api) = platform(false).await;
        let token = micro_e2e::in_process::admin_token(&on).await;
        let bearer = format!("Bearer {token}");

        let mut with_auth = Vec::with_capacity(IN_FLIGHT);
        let mut without = Vec::with_capacity(IN_FLIGHT);
        for _ in 0..IN_FLIGHT {
            with_auth.push(GatewayClient::connect(&on_api, Some(bearer.clone())).await);
            without.push(GatewayClient::connect(&off_api, None).await);
        }
        let warm = Duration::from_millis(300);
        let (_, with_auth) = closed_loop(with_auth, warm, call).await;
        let (_, without) = closed_loop(without, warm, call).await;

        println!("gateway POST /helloworld/call, {seconds}s per round, 2 rounds each, alternating");
        println!(
            "{:<22} {:>10} {:>10} {:>10}",
            format!("{IN_FLIGHT} in flight"),
            "calls/s",
            "p50",
            "p99"
        );
        let (a1, with_auth) = closed_loop(with_auth, round, call).await;
        let (o1, without) = closed_loop(without, round, call).await;
        let (o2, _) = closed_loop(without, round, call).await;
        let (a2, _) = closed_loop(with_auth, round, call).await;
        let (a, o) = (a1.merge(a2), o1.merge(o2));
        row("auth off", o);
        row("auth on (token, rules)", a);
        println!(
            "{:<22} {:>10.3}   (target >= 0.9)",
            "ratio on/off",
            a.per_sec / o.per_sec
        );

        on_service.stop().await.expect("stop helloworld");
        off_service.stop().await.expect("stop helloworld");
        on.stop().await;
        off.stop().await;
    });
}
