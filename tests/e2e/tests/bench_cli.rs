//! `micro bench` against a running platform: counts, errors by code, fixed rate, and the
//! refusals of bad arguments.

use micro_e2e::Sandbox;

fn json(out: &micro_e2e::Output) -> serde_json::Value {
    assert_eq!(out.code, 0, "{out:?}");
    serde_json::from_str(&out.stdout).expect("a JSON report")
}

#[test]
fn micro_bench_loads_an_endpoint_and_reports() {
    let sb = Sandbox::with_server();
    let hello = sb.helloworld(&[]);
    let report = json(&sb.micro(&[
        "bench",
        "helloworld",
        "Helloworld.Call",
        r#"{"name":"bench"}"#,
        "--requests",
        "200",
        "--concurrency",
        "4",
        "--output",
        "json",
    ]));
    assert_eq!(report["requests"], 200, "{report}");
    assert_eq!(report["ok"], 200, "{report}");
    let latency = &report["latency_ms"];
    let p50 = latency["p50"].as_f64().unwrap();
    let max = latency["max"].as_f64().unwrap();
    assert!(p50 > 0.0 && p50 <= max, "{report}");
    assert!(hello.proc.count("Helloworld.Call") >= 200);

    // A fixed rate: 40 calls due in a second, each counted from when it was due.
    let paced = json(&sb.micro(&[
        "bench",
        "helloworld",
        "Helloworld.Call",
        "--rate",
        "40",
        "--duration",
        "1s",
        "--output",
        "json",
    ]));
    let n = paced["requests"].as_u64().unwrap();
    assert!((35..=41).contains(&n), "{paced}");

    // Errors are counted by code, and the run still reports.
    let missing = json(&sb.micro(&[
        "bench",
        "nothere",
        "X.Y",
        "--requests",
        "5",
        "--output",
        "json",
    ]));
    assert_eq!(missing["errors"]["NOT_FOUND"], 5, "{missing}");
    assert_eq!(missing["ok"], 0, "{missing}");

    // The text report, and a progress line on stderr.
    let text = sb.micro(&[
        "bench",
        "helloworld",
        "Helloworld.Call",
        "--duration",
        "1500ms",
    ]);
    assert_eq!(text.code, 0, "{text:?}");
    assert!(
        text.stdout
            .starts_with("helloworld Helloworld.Call\nrequests  "),
        "{text:?}"
    );
    assert!(text.stderr.contains("req/s"), "{text:?}");

    for bad in [
        &["--concurrency", "0"][..],
        &["--rate", "-1"],
        &["--requests", "0"],
        &["--duration", "soon"],
    ] {
        let mut args = vec!["bench", "helloworld", "Helloworld.Call"];
        args.extend_from_slice(bad);
        let out = sb.micro(&args);
        assert_eq!(out.code, 2, "{bad:?}: {out:?}");
    }
    let invalid = sb.micro(&["bench", "helloworld", "Helloworld.Call", "{nope"]);
    assert_eq!(invalid.code, 1, "{invalid:?}");
    assert!(invalid.stderr.contains("not valid JSON"), "{invalid:?}");
}

/// `--direct` calls the nodes from the CLI's own process: every call reaches helloworld, and
/// none goes through the server's proxy (whose call count stays where it was).
#[test]
fn micro_bench_direct_calls_the_nodes_not_the_proxy() {
    let sb = Sandbox::with_server();
    let hello = sb.helloworld(&[]);
    let proxied = || {
        let token = sb.token();
        let metrics = micro_e2e::http(
            sb.web.as_deref().unwrap(),
            "GET",
            "/metrics",
            &[("Authorization", &format!("Bearer {token}"))],
            "",
        );
        assert_eq!(metrics.status, 200, "{}", metrics.body);
        metrics
            .body
            .lines()
            .filter(|l| {
                l.starts_with("rpc_client_call_duration_seconds_count")
                    && l.contains("rpc_service=\"helloworld\"")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    let before = proxied();
    let report = json(&sb.micro(&[
        "bench",
        "helloworld",
        "Helloworld.Call",
        r#"{"name":"direct"}"#,
        "--requests",
        "100",
        "--concurrency",
        "4",
        "--direct",
        "--output",
        "json",
    ]));
    assert_eq!(report["ok"], 100, "{report}");
    assert!(hello.proc.count("Helloworld.Call request for direct") >= 100);
    assert_eq!(proxied(), before, "no call went through the proxy");

    let streaming = sb.micro(&["bench", "helloworld", "Helloworld.Stream", "--direct"]);
    assert_eq!(streaming.code, 1, "{streaming:?}");
    assert!(streaming.stderr.contains("streaming"), "{streaming:?}");
    let missing = sb.micro(&["bench", "nothere", "X.Y", "--direct", "--requests", "1"]);
    assert_ne!(missing.code, 0, "{missing:?}");
    assert!(missing.stderr.contains("not found"), "{missing:?}");
}
