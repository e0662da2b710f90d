//! A real Prometheus scrapes a running platform: the calls made through the CLI's proxy and the
//! gateway show up in its queries, by service, method and status code — as the platform made
//! them, and as helloworld itself answered them (found through the server's HTTP service
//! discovery).

use std::time::Duration;

use micro_e2e::{Sandbox, engines, http, wait_for};

/// The value of the instant query `query` in Prometheus at `address` (its first series), if
/// there is one.
fn query(address: &str, query: &str) -> Option<f64> {
    let encoded: String = query
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let rsp = http(
        address,
        "GET",
        &format!("/api/v1/query?query={encoded}"),
        &[],
        "",
    );
    assert_eq!(rsp.status, 200, "{rsp:?}");
    let body: serde_json::Value = serde_json::from_str(&rsp.body).expect("json");
    body["data"]["result"][0]["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
}

#[test]
fn prometheus_scrapes_the_platform() {
    let sb = Sandbox::with_server();
    let _hello = sb.helloworld(&[]);
    for i in 0..5 {
        let out = sb.micro(&[
            "call",
            "helloworld",
            "Helloworld.Call",
            &format!(r#"{{"name":"{i}"}}"#),
        ]);
        assert_eq!(out.code, 0, "{out:?}");
    }
    let api = sb.api.clone().expect("gateway");
    let token = sb.token();
    let bearer = format!("Bearer {token}");
    for i in 0..3 {
        let rsp = http(
            &api,
            "POST",
            "/helloworld/call",
            &[
                ("Content-Type", "application/json"),
                ("Authorization", &bearer),
            ],
            &format!(r#"{{"name":"g{i}"}}"#),
        );
        assert_eq!(rsp.status, 200, "{rsp:?}");
    }
    // An endpoint that does not exist: a 404 at the gateway, and no service call.
    let rsp = http(
        &api,
        "POST",
        "/helloworld/Nothing/Here",
        &[("Authorization", &bearer)],
        "{}",
    );
    assert_eq!(rsp.status, 404, "{rsp:?}");

    // With auth on, /metrics is a platform admin's: nobody else reads it, and Prometheus
    // scrapes with an admin's token.
    let web = sb.web.clone().expect("web");
    assert_eq!(http(&web, "GET", "/metrics", &[], "").status, 401);
    let scrape = http(&web, "GET", "/metrics", &[("Authorization", &bearer)], "");
    assert_eq!(scrape.status, 200);
    assert!(
        scrape.body.ends_with("# EOF\n"),
        "OpenMetrics: {}",
        scrape.body
    );
    // Service discovery: helloworld's own metrics address, an admin's to read.
    assert_eq!(http(&web, "GET", "/metrics/targets", &[], "").status, 401);
    let found = http(
        &web,
        "GET",
        "/metrics/targets",
        &[("Authorization", &bearer)],
        "",
    );
    assert_eq!(found.status, 200, "{found:?}");
    let groups: serde_json::Value = serde_json::from_str(&found.body).unwrap();
    let hello = groups
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["labels"]["micro_service"] == "helloworld")
        .unwrap_or_else(|| panic!("helloworld among {groups}"));
    assert_eq!(hello["labels"]["__metrics_path__"], "/metrics");
    assert!(
        groups
            .as_array()
            .unwrap()
            .iter()
            .all(|g| g["labels"]["micro_service"] != "store"),
        "the platform's own services are scraped at /metrics: {groups}"
    );
    let node = hello["targets"][0].as_str().unwrap().to_owned();
    let own = http(&node, "GET", "/metrics", &[], "");
    assert_eq!(own.status, 200, "{own:?}");
    assert!(
        own.body.contains("rpc_server_call_duration_seconds_count"),
        "{}",
        own.body
    );
    // HTTP/1.1 reaches that page and nothing else: no browser can send a handler a call.
    let call = http(
        &node,
        "POST",
        "/helloworld.Helloworld/Call",
        &[("Content-Type", "application/grpc")],
        "",
    );
    assert_eq!(call.status, 505, "{call:?}");
    let discovery = format!("http://{web}/metrics/targets");
    let prometheus = engines::prometheus_with_discovery(&[&web], Some(&token), Some(&discovery));
    let calls = r#"sum(rpc_client_call_duration_seconds_count{job="micro",rpc_service="helloworld",rpc_method="Helloworld.Call",rpc_grpc_status_code="0"})"#;
    let seen = wait_for(
        Duration::from_secs(30),
        "Prometheus to scrape the calls",
        || query(&prometheus.address, calls).filter(|n| *n >= 8.0),
    );
    assert_eq!(seen, 8.0, "5 through the proxy, 3 through the gateway");
    let ok = r#"sum(http_server_request_duration_seconds_count{http_request_method="POST",http_response_status_code="200"})"#;
    assert_eq!(query(&prometheus.address, ok), Some(3.0));
    let missing =
        r#"sum(http_server_request_duration_seconds_count{http_response_status_code="404"})"#;
    assert_eq!(query(&prometheus.address, missing), Some(1.0));
    // The client's view of the node: known, not ejected.
    let ejected = r#"max(micro_client_node_ejected{namespace="micro"})"#;
    assert_eq!(query(&prometheus.address, ejected), Some(0.0));
    assert_eq!(query(&prometheus.address, "up{job=\"micro\"}"), Some(1.0));

    // What helloworld itself answered, scraped from its own address.
    let answered = r#"sum(rpc_server_call_duration_seconds_count{job="services",micro_service="helloworld",rpc_service="helloworld",rpc_method="Helloworld.Call",rpc_grpc_status_code="0"})"#;
    let seen = wait_for(
        Duration::from_secs(30),
        "Prometheus to scrape helloworld",
        || query(&prometheus.address, answered).filter(|n| *n >= 8.0),
    );
    assert_eq!(seen, 8.0, "helloworld answered the same 8 calls");
    assert_eq!(
        query(&prometheus.address, "up{job=\"services\"}"),
        Some(1.0)
    );

    // Process and runtime gauges, from the server and from the service alike.
    for job in ["micro", "services"] {
        for gauge in [
            "process_resident_memory_bytes",
            "process_cpu_seconds_total",
            "tokio_runtime_workers",
        ] {
            let value = query(
                &prometheus.address,
                &format!("max({gauge}{{job=\"{job}\"}})"),
            );
            // A light process may not have used a whole clock tick of CPU yet.
            assert!(
                value.is_some_and(|v| v > 0.0 || gauge == "process_cpu_seconds_total"),
                "{gauge} of {job}: {value:?}"
            );
        }
    }
}
