//! Selector filters at the doors: `micro call --version V --select K=V` and the gateway's
//! `Micro-Version` and `Micro-Select` headers reach only the nodes that match — go-micro's
//! selector filters, for a canary or a pinned version — and no match is a clear error.

use micro_e2e::{
    Sandbox, call_only,
    helloworld::{DESCRIPTORS, Response, helloworld_server},
    in_process::platform,
};

async fn version(server: &str, version: &'static str, track: &str) -> micro::service::Running {
    micro::Service::new("pinned")
        .version(version)
        .metadata("track", track)
        .descriptors(DESCRIPTORS)
        .handle(helloworld_server::HelloworldServer::new(call_only(
            move |_| async move {
                Ok(tonic::Response::new(Response {
                    msg: format!("from {version}"),
                }))
            },
        )))
        .server(server)
        .start()
        .await
        .expect("service")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_and_the_gateway_call_only_the_nodes_asked_for() {
    let platform = platform(false).await;
    let server = platform.grpc_address().to_string();
    let v1 = version(&server, "v1", "stable").await;
    let v2 = version(&server, "v2", "canary").await;
    let api = platform.api_address().expect("gateway").to_string();

    let gateway = |headers: Vec<(&'static str, &'static str)>| {
        let api = api.clone();
        tokio::task::spawn_blocking(move || {
            let mut all = vec![("Content-Type", "application/json")];
            all.extend(headers);
            micro_e2e::http(&api, "POST", "/pinned/call", &all, r#"{"name":"x"}"#)
        })
    };
    for (headers, want) in [
        (vec![("Micro-Version", "v2")], "from v2"),
        (vec![("Micro-Version", "v1")], "from v1"),
        (vec![("Micro-Select", "track=canary")], "from v2"),
        (vec![("Micro-Select", "track=stable")], "from v1"),
    ] {
        for _ in 0..6 {
            let rsp = gateway(headers.clone()).await.unwrap();
            assert_eq!(rsp.status, 200, "{headers:?}: {rsp:?}");
            assert!(rsp.body.contains(want), "{headers:?}: {rsp:?}");
        }
    }
    let rsp = gateway(vec![("Micro-Version", "v3")]).await.unwrap();
    assert_eq!(rsp.status, 404, "{rsp:?}");
    assert!(
        rsp.body.contains("v3"),
        "says what matched nothing: {rsp:?}"
    );
    let rsp = gateway(vec![("Micro-Select", "no-equals-sign")])
        .await
        .unwrap();
    assert_eq!(rsp.status, 400, "{rsp:?}");
    // A stranger's longest and most numerous asks are refused, not searched for.
    let long: &'static str = "v".repeat(micro_core::limits::MAX_NAME + 1).leak();
    let rsp = gateway(vec![("Micro-Version", long)]).await.unwrap();
    assert_eq!(rsp.status, 400, "{rsp:?}");
    let many: &'static str = (0..=micro_core::limits::MAX_METADATA)
        .map(|n| format!("k{n}=v"))
        .collect::<Vec<_>>()
        .join(",")
        .leak();
    let rsp = gateway(vec![("Micro-Select", many)]).await.unwrap();
    assert_eq!(rsp.status, 400, "{rsp:?}");

    let mut cli = Sandbox::new();
    cli.address = Some(server.clone());
    let call = |args: &[&str]| {
        let mut all = vec!["call"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["pinned", "Helloworld.Call", r#"{"name":"x"}"#]);
        cli.micro(&all)
    };
    for _ in 0..6 {
        let out = call(&["--version", "v1"]);
        assert_eq!(out.code, 0, "{out:?}");
        assert!(out.stdout.contains("from v1"), "{out:?}");
        let out = call(&["--select", "track=canary"]);
        assert_eq!(out.code, 0, "{out:?}");
        assert!(out.stdout.contains("from v2"), "{out:?}");
    }
    let out = call(&["--version", "v3"]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("v3"), "{out:?}");

    let _ = v1.stop().await;
    let _ = v2.stop().await;
    platform.stop().await;
}
