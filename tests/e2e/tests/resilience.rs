//! Faults injected into real processes and real sockets on loopback, and what callers see: a
//! frozen node, a slow node, every node down, and a deadline that must reach two services deep.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use micro_e2e::{
    Sandbox, call_only,
    helloworld::{self, DESCRIPTORS, helloworld_client::HelloworldClient, helloworld_server},
    http,
    in_process::platform,
};

/// The p99 of `latencies`.
fn p99(latencies: &mut [Duration]) -> Duration {
    latencies.sort_unstable();
    latencies[(latencies.len() * 99).div_ceil(100) - 1]
}

/// Successes and latencies of `n` calls made one after another by `call`.
fn calls(n: usize, mut call: impl FnMut(usize) -> bool) -> (usize, Vec<Duration>) {
    let mut ok = 0;
    let mut latencies = Vec::with_capacity(n);
    for i in 0..n {
        let started = Instant::now();
        ok += usize::from(call(i));
        latencies.push(started.elapsed());
    }
    (ok, latencies)
}

/// One of two helloworld nodes frozen with SIGSTOP (what a hung process or a dead VM looks
/// like: its socket accepts, nothing answers). Callers through the CLI proxy and the gateway, at
/// the same time, lose at most the calls that were on the node when it froze, and after the
/// first few calls the frozen node costs nobody any time.
#[test]
fn a_frozen_node_costs_at_most_a_call_per_door() {
    let sb = Sandbox::with_server();
    let a = sb.helloworld(&[]);
    let b = sb.helloworld(&[]);
    for i in 0..4 {
        let out = sb.micro(&[
            "call",
            "helloworld",
            "Helloworld.Call",
            &format!(r#"{{"name":"warm{i}"}}"#),
        ]);
        assert_eq!(out.code, 0, "{out:?}");
    }
    b.proc.send("-STOP");

    const N: usize = 200;
    let api = sb.api.clone().expect("gateway");
    let gateway = std::thread::spawn(move || {
        calls(N, |i| {
            let rsp = http(
                &api,
                "POST",
                "/helloworld/call",
                &[("Content-Type", "application/json")],
                &format!(r#"{{"name":"g{i}"}}"#),
            );
            rsp.status == 200 && rsp.body.contains(&format!("Hello g{i}"))
        })
    });
    let proxy = calls(N, |i| {
        let out = sb.micro(&[
            "call",
            "helloworld",
            "Helloworld.Call",
            &format!(r#"{{"name":"p{i}"}}"#),
            "--output",
            "raw",
        ]);
        out.code == 0 && out.stdout.contains(&format!("Hello p{i}"))
    });
    let gateway = gateway.join().expect("gateway calls");
    b.proc.send("-CONT");

    for (door, (ok, mut latencies)) in [("proxy", proxy), ("gateway", gateway)] {
        assert!(ok * 100 >= N * 99, "{door}: {ok} of {N} calls succeeded");
        let tail = p99(&mut latencies[5..]);
        assert!(
            tail <= Duration::from_millis(500),
            "{door}: p99 after the first five calls is {tail:?}"
        );
    }
    assert!(a.proc.count("Helloworld.Call") > N, "the live node served");
}

/// An in-process `hello` node whose `Call` takes `delay` and counts its calls.
async fn hello_node(
    server: &str,
    delay: Duration,
    count: Arc<AtomicUsize>,
) -> micro::service::Running {
    micro::Service::new("hello")
        .descriptors(DESCRIPTORS)
        .handle(helloworld_server::HelloworldServer::new(call_only(
            move |r: tonic::Request<helloworld::Request>| {
                let count = count.clone();
                async move {
                    tokio::time::sleep(delay).await;
                    count.fetch_add(1, Ordering::Relaxed);
                    Ok(tonic::Response::new(helloworld::Response {
                        msg: format!("Hello {}", r.into_inner().name),
                    }))
                }
            },
        )))
        .server(server)
        .start()
        .await
        .expect("a hello node")
}

/// One of three nodes 50 ms slower than the others gets little of the traffic the default
/// balancer sends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_node_gets_little_traffic() {
    let platform = platform(false).await;
    let server = platform.grpc_address().to_string();
    let counts: Vec<Arc<AtomicUsize>> = (0..3).map(|_| Arc::default()).collect();
    let mut nodes = Vec::new();
    for (i, count) in counts.iter().enumerate() {
        let delay = Duration::from_millis(if i == 0 { 51 } else { 1 });
        nodes.push(hello_node(&server, delay, count.clone()).await);
    }
    let api = platform.api_address().expect("gateway").to_string();
    const N: usize = 200;
    let (ok, _) = tokio::task::spawn_blocking(move || {
        calls(N, |i| {
            let rsp = http(
                &api,
                "POST",
                "/hello/call",
                &[("Content-Type", "application/json")],
                &format!(r#"{{"name":"{i}"}}"#),
            );
            rsp.status == 200
        })
    })
    .await
    .expect("calls");
    assert_eq!(ok, N);
    let served: Vec<usize> = counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    assert_eq!(served.iter().sum::<usize>(), N, "{served:?}");
    assert!(
        served[0] * 100 <= N * 15,
        "the slow node got {} of {N} calls: {served:?}",
        served[0]
    );
    for node in nodes {
        let _ = node.stop().await;
    }
    platform.stop().await;
}

/// Every node of a service down — two refuse connections, one accepts them and never answers —
/// and 300 calls from 10 callers: each is a clear `UNAVAILABLE`, after the first few at once
/// rather than after a timeout, and the retries stay within the retry budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_down_fails_fast_within_the_retry_budget() {
    let platform = platform(false).await;
    let server = platform.grpc_address().to_string();
    // A node that accepts connections and never says a word.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let silent_address = silent.local_addr().expect("address").to_string();
    let held = tokio::spawn(async move {
        let mut sockets = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            sockets.push(socket);
        }
    });
    let refused: Vec<String> = (0..2)
        .map(|_| format!("127.0.0.1:{}", micro_e2e::engines::free_port()))
        .collect();
    let registry = Arc::new(micro::registry::RemoteRegistry::new(&server).expect("registry"));
    // A real node's record (endpoints, schemas) under another name, at the dead addresses.
    let model = hello_node(&server, Duration::ZERO, Arc::default()).await;
    let mut record = model.record().clone();
    record.name = "down".into();
    let template = record.nodes[0].clone();
    record.nodes = refused
        .iter()
        .chain([&silent_address])
        .enumerate()
        .map(|(i, address)| micro_core::Node {
            id: format!("down-{i}"),
            address: address.clone(),
            ..template.clone()
        })
        .collect();
    micro::Registry::register(registry.as_ref(), "micro", &record, Duration::from_secs(60))
        .await
        .expect("register");

    let client = micro::Client::builder(registry).build();
    const CALLERS: usize = 10;
    const EACH: usize = 30;
    let mut tasks = Vec::new();
    for c in 0..CALLERS {
        let channel = client.service("down");
        tasks.push(tokio::spawn(async move {
            let mut hello = HelloworldClient::new(channel);
            let mut seen = Vec::new();
            for i in 0..EACH {
                let started = Instant::now();
                let err = hello
                    .call(helloworld::Request {
                        name: format!("{c}-{i}"),
                    })
                    .await
                    .expect_err("no node can answer");
                seen.push((err.code(), started.elapsed()));
            }
            seen
        }));
    }
    let mut seen = Vec::new();
    for task in tasks {
        seen.extend(task.await.expect("caller"));
    }
    let calls = (CALLERS * EACH) as u64;
    assert!(
        seen.iter()
            .all(|(code, _)| *code == tonic::Code::Unavailable),
        "{:?}",
        seen.iter().map(|s| s.0).collect::<Vec<_>>()
    );
    let slow = seen
        .iter()
        .filter(|(_, took)| *took > Duration::from_millis(100))
        .count();
    assert!(slow <= CALLERS, "{slow} calls waited: {seen:?}");
    let stats = client.stats();
    assert_eq!(stats.calls, calls);
    // tower's TpsBudget: ten retries a second for its ten-second window, plus a fifth of calls.
    assert!(
        stats.retries <= 100 + calls / 5,
        "{} retries for {calls} calls",
        stats.retries
    );
    assert!(stats.refused >= calls - CALLERS as u64 * 3, "{stats:?}");
    assert!(
        stats.nodes.iter().all(|n| n.breaker != "closed"),
        "{stats:?}"
    );

    // The gateway says the same, at once.
    let api = platform.api_address().expect("gateway").to_string();
    let answers = tokio::task::spawn_blocking(move || {
        (0..5)
            .map(|_| {
                let started = Instant::now();
                let rsp = http(&api, "POST", "/down/Helloworld/Call", &[], "{}");
                (rsp.status, started.elapsed(), rsp.body)
            })
            .collect::<Vec<_>>()
    })
    .await
    .expect("gateway calls");
    assert!(
        answers.iter().all(|(status, _, _)| *status == 503),
        "{answers:?}"
    );
    assert!(
        answers[1..]
            .iter()
            .all(|(_, took, _)| *took < Duration::from_millis(100)),
        "{answers:?}"
    );
    held.abort();
    drop(client);
    let _ = model.stop().await;
    platform.stop().await;
}

/// A 200 ms `Timeout` given at the gateway reaches a handler two services deep (the gateway
/// calls `front`, which calls `back`): `back` sees at most 200 ms left, and is cancelled when
/// the time is up instead of running on for the five seconds it would take.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_set_at_the_gateway_cancels_a_call_two_services_deep() {
    let platform = platform(false).await;
    let server = platform.grpc_address().to_string();
    let left = Arc::new(std::sync::Mutex::new(None::<Duration>));
    let cancelled = Arc::new(tokio::sync::Notify::new());

    /// Notifies when dropped before it is disarmed.
    struct Tripwire(Arc<tokio::sync::Notify>, bool);
    impl Drop for Tripwire {
        fn drop(&mut self) {
            if !self.1 {
                self.0.notify_one();
            }
        }
    }

    let back = micro::Service::new("back")
        .descriptors(DESCRIPTORS)
        .handle(helloworld_server::HelloworldServer::new(call_only({
            let left = left.clone();
            let cancelled = cancelled.clone();
            move |_| {
                let left = left.clone();
                let cancelled = cancelled.clone();
                async move {
                    *left.lock().unwrap() = micro::deadline::remaining();
                    let mut wire = Tripwire(cancelled, false);
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    wire.1 = true;
                    Ok(tonic::Response::new(helloworld::Response {
                        msg: "late".into(),
                    }))
                }
            }
        })))
        .server(server.clone())
        .start()
        .await
        .expect("back");
    let registry = Arc::new(micro::registry::RemoteRegistry::new(&server).expect("registry"));
    let client = micro::Client::builder(registry).build();
    let front = micro::Service::new("front")
        .descriptors(DESCRIPTORS)
        .handle(helloworld_server::HelloworldServer::new(call_only(
            move |r: tonic::Request<helloworld::Request>| {
                let channel = client.service("back");
                async move { HelloworldClient::new(channel).call(r.into_inner()).await }
            },
        )))
        .server(server)
        .start()
        .await
        .expect("front");

    let api = platform.api_address().expect("gateway").to_string();
    let started = Instant::now();
    let rsp = tokio::task::spawn_blocking(move || {
        http(
            &api,
            "POST",
            "/front/call",
            &[("Content-Type", "application/json"), ("Timeout", "200ms")],
            r#"{"name":"x"}"#,
        )
    })
    .await
    .expect("gateway call");
    let took = started.elapsed();
    assert!(
        matches!(rsp.status, 408 | 504),
        "a deadline answer: {rsp:?}"
    );
    assert!(took < Duration::from_secs(1), "answered after {took:?}");
    let seen = left.lock().unwrap().expect("back saw a deadline");
    assert!(seen <= Duration::from_millis(200), "back had {seen:?} left");
    tokio::time::timeout(Duration::from_secs(2), cancelled.notified())
        .await
        .expect("back's handler ran on past the deadline");
    let _ = front.stop().await;
    let _ = back.stop().await;
    platform.stop().await;
}

/// Callers who allow next to no time cannot get a healthy node ejected for everyone: their
/// timeouts say nothing of the node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_caller_deadlines_never_eject_a_node() {
    let platform = platform(false).await;
    let server = platform.grpc_address().to_string();
    let node = hello_node(&server, Duration::from_millis(50), Arc::default()).await;
    let registry = Arc::new(micro::registry::RemoteRegistry::new(&server).expect("registry"));
    let client = micro::Client::builder(registry).build();
    for i in 0..20 {
        let mut hello = HelloworldClient::new(
            client
                .service("hello")
                .with_timeout(Duration::from_millis(1 + i % 3)),
        );
        let err = hello
            .call(helloworld::Request { name: "x".into() })
            .await
            .expect_err("no time to answer");
        assert!(
            matches!(
                err.code(),
                tonic::Code::DeadlineExceeded | tonic::Code::Cancelled
            ),
            "{err:?}"
        );
    }
    let stats = client.stats();
    assert_eq!(stats.ejections, 0, "{stats:?}");
    let mut hello = HelloworldClient::new(client.service("hello"));
    let rsp = hello
        .call(helloworld::Request { name: "y".into() })
        .await
        .expect("the node still serves");
    assert_eq!(rsp.get_ref().msg, "Hello y");
    drop(hello);
    drop(client);
    let _ = node.stop().await;
    platform.stop().await;
}

/// A node registered with an address no connection can be made to (not `host:port`) is
/// passed over like a node that is down: every call reaches the good node, and the bad one is
/// out of rotation after its first pick.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_no_call_can_use_is_passed_over() {
    use micro_core::Registry;
    let platform = platform(false).await;
    let server = platform.grpc_address().to_string();
    let node = hello_node(&server, Duration::ZERO, Arc::default()).await;
    let registry = Arc::new(micro::registry::RemoteRegistry::new(&server).expect("registry"));
    let bogus = micro_core::Service::new("hello", "latest")
        .with_node(micro_core::Node::new("hello-bogus", "not an address/x"));
    registry
        .register("micro", &bogus, Duration::from_secs(60))
        .await
        .expect("the registry takes it");
    let client = micro::Client::builder(registry).build();
    let mut hello = HelloworldClient::new(client.service("hello"));
    for i in 0..20 {
        let rsp = hello
            .call(helloworld::Request {
                name: i.to_string(),
            })
            .await
            .expect("the good node answers");
        assert_eq!(rsp.get_ref().msg, format!("Hello {i}"));
    }
    let stats = client.stats();
    let bad = stats
        .nodes
        .iter()
        .find(|n| n.address == "not an address/x")
        .expect("the bogus node was tried");
    assert_eq!(bad.breaker, "open", "{stats:?}");
    assert_eq!(stats.ejections, 1, "{stats:?}");
    drop(hello);
    drop(client);
    let _ = node.stop().await;
    platform.stop().await;
}

/// A service at its limit of calls in flight answers the next one at once with
/// `RESOURCE_EXHAUSTED` (429 at the gateway) instead of queueing it, and serves again once
/// calls finish; the refusals never eject the node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_at_its_limit_sheds_calls_with_resource_exhausted() {
    let platform = platform(false).await;
    let server = platform.grpc_address().to_string();
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let entered = Arc::new(tokio::sync::Semaphore::new(0));
    let node = micro::Service::new("busy")
        .descriptors(DESCRIPTORS)
        .max_in_flight(2)
        .handle(helloworld_server::HelloworldServer::new(call_only({
            let release = release.clone();
            let entered = entered.clone();
            move |_| {
                let release = release.clone();
                let entered = entered.clone();
                async move {
                    entered.add_permits(1);
                    release.acquire().await.expect("open").forget();
                    Ok(tonic::Response::new(helloworld::Response {
                        msg: "done".into(),
                    }))
                }
            }
        })))
        .server(server.clone())
        .start()
        .await
        .expect("service");
    let registry = Arc::new(micro::registry::RemoteRegistry::new(&server).expect("registry"));
    let client = micro::Client::builder(registry).build();
    let held: Vec<_> = (0..2)
        .map(|_| {
            let mut hello = HelloworldClient::new(client.service("busy"));
            tokio::spawn(async move { hello.call(helloworld::Request::default()).await })
        })
        .collect();
    tokio::time::timeout(Duration::from_secs(5), entered.acquire_many(2))
        .await
        .expect("the calls never arrived")
        .expect("open")
        .forget();
    let mut hello = HelloworldClient::new(client.service("busy"));
    let started = Instant::now();
    let shed = hello
        .call(helloworld::Request::default())
        .await
        .expect_err("over the limit");
    assert_eq!(shed.code(), tonic::Code::ResourceExhausted, "{shed:?}");
    assert!(shed.message().contains("limit of 2"), "{shed:?}");
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "refused at once"
    );

    let api = platform.api_address().expect("gateway").to_string();
    let rsp = tokio::task::spawn_blocking(move || {
        http(
            &api,
            "POST",
            "/busy/call",
            &[("Content-Type", "application/json")],
            "{}",
        )
    })
    .await
    .expect("gateway call");
    assert_eq!(rsp.status, 429, "{rsp:?}");

    release.add_permits(2);
    for call in held {
        assert_eq!(
            call.await.expect("task").expect("served").get_ref().msg,
            "done"
        );
    }
    release.add_permits(1);
    let again = hello
        .call(helloworld::Request::default())
        .await
        .expect("served again once calls finished");
    assert_eq!(again.get_ref().msg, "done");
    assert_eq!(client.stats().ejections, 0);
    drop((hello, client));
    let _ = node.stop().await;
    platform.stop().await;
}

/// Rate limits on both sides. A service limited to 5 calls a second answers the calls of a
/// burst beyond its tokens at once with `RESOURCE_EXHAUSTED` saying when to try again (429
/// with `Retry-After` at the gateway); a client limited to 1 call in flight and 2 a second
/// refuses the calls beyond on its own, and the node never sees them. A bucket refills while
/// the test runs, so the counts are bounded by the time taken, not fixed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_and_client_limits_refuse_at_once_with_resource_exhausted() {
    let platform = platform(false).await;
    let server = platform.grpc_address().to_string();
    let seen = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let handler = || {
        let seen = seen.clone();
        let release = release.clone();
        helloworld_server::HelloworldServer::new(call_only(
            move |req: tonic::Request<helloworld::Request>| {
                let seen = seen.clone();
                let release = release.clone();
                async move {
                    seen.fetch_add(1, Ordering::SeqCst);
                    if req.get_ref().name == "hold" {
                        release.acquire().await.expect("open").forget();
                    }
                    Ok(tonic::Response::new(helloworld::Response {
                        msg: "ok".into(),
                    }))
                }
            },
        ))
    };
    let mut nodes = Vec::new();
    for (name, rate) in [("metered", Some(5)), ("open", None)] {
        let service = micro::Service::new(name).descriptors(DESCRIPTORS);
        let service = match rate {
            Some(rate) => service.max_rate(rate),
            None => service,
        };
        nodes.push(
            service
                .handle(handler())
                .server(server.clone())
                .start()
                .await
                .expect("service"),
        );
    }
    let registry = Arc::new(micro::registry::RemoteRegistry::new(&server).expect("registry"));
    // At most what a bucket of `per_second` holds, plus what `elapsed` refilled.
    let most = |per_second: f64, elapsed: Duration| {
        (per_second + (elapsed.as_secs_f64() * per_second).ceil()) as usize
    };

    // The service's rate.
    let client = micro::Client::builder(registry.clone()).build();
    let mut hello = HelloworldClient::new(client.service("metered"));
    let started = Instant::now();
    let mut refused = Vec::new();
    for _ in 0..20 {
        if let Err(status) = hello.call(helloworld::Request::default()).await {
            refused.push(status);
        }
    }
    let served = 20 - refused.len();
    assert!(
        (5..=most(5.0, started.elapsed())).contains(&served),
        "{served} served"
    );
    assert!(
        !refused.is_empty(),
        "a burst of 20 met no limit of 5 a second"
    );
    for status in &refused {
        assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
        assert!(
            status
                .message()
                .contains("the service is at its limit of 5 calls a second; try again in"),
            "{status:?}"
        );
    }
    let api = platform.api_address().expect("gateway").to_string();
    let answers = tokio::task::spawn_blocking(move || {
        (0..10)
            .map(|_| {
                http(
                    &api,
                    "POST",
                    "/metered/call",
                    &[("Content-Type", "application/json")],
                    "{}",
                )
            })
            .collect::<Vec<_>>()
    })
    .await
    .expect("gateway calls");
    let limited = answers
        .iter()
        .find(|rsp| rsp.status == 429)
        .expect("the gateway met the limit");
    assert!(
        limited
            .headers
            .iter()
            .any(|(name, value)| name == "retry-after" && value == "1"),
        "{limited:?}"
    );
    assert!(limited.body.contains("calls a second"), "{limited:?}");
    drop((hello, client));

    // The client's own limits, met before anything is sent, on a service with none.
    let limited = micro::Client::builder(registry)
        .max_in_flight(1)
        .max_rate(2)
        .build();
    let started = Instant::now();
    let before = seen.load(Ordering::SeqCst);
    let mut holder = HelloworldClient::new(limited.service("open"));
    let held = tokio::spawn(async move {
        holder
            .call(helloworld::Request {
                name: "hold".into(),
            })
            .await
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while seen.load(Ordering::SeqCst) == before {
        assert!(Instant::now() < deadline, "the held call never arrived");
        tokio::task::yield_now().await;
    }
    let mut hello = HelloworldClient::new(limited.service("open"));
    let status = hello
        .call(helloworld::Request::default())
        .await
        .expect_err("one in flight already");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert!(
        status
            .message()
            .contains("this client is at its limit of 1 calls in flight"),
        "{status:?}"
    );
    release.add_permits(1);
    held.await.expect("task").expect("the held call is served");
    let mut served = 1;
    let mut refused = Vec::new();
    for _ in 0..6 {
        match hello.call(helloworld::Request::default()).await {
            Ok(_) => served += 1,
            Err(status) => refused.push(status),
        }
    }
    assert!(served <= most(2.0, started.elapsed()), "{served} served");
    assert!(!refused.is_empty(), "7 calls met no limit of 2 a second");
    for status in &refused {
        assert!(
            status
                .message()
                .contains("this client is at its limit of 2 calls a second"),
            "{status:?}"
        );
    }
    assert_eq!(
        seen.load(Ordering::SeqCst),
        before + served,
        "the client's refusals reached the node"
    );
    drop((hello, limited));
    for node in nodes {
        let _ = node.stop().await;
    }
    platform.stop().await;
}

/// go-micro's selector filters: a call can be held to a version, or to nodes with given
/// metadata, and balancing works among the nodes that pass; none passing is a clear not-found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_hold_calls_to_a_version_or_node_metadata() {
    let platform = platform(false).await;
    let server = platform.grpc_address().to_string();
    let mut nodes = Vec::new();
    for (version, track) in [("1", "stable"), ("1", "stable"), ("2", "canary")] {
        let answer = format!("{version}-{track}");
        nodes.push(
            micro::Service::new("versioned")
                .version(version)
                .metadata("track", track)
                .descriptors(DESCRIPTORS)
                .handle(helloworld_server::HelloworldServer::new(call_only(
                    move |_| {
                        let msg = answer.clone();
                        async move { Ok(tonic::Response::new(helloworld::Response { msg })) }
                    },
                )))
                .server(server.clone())
                .start()
                .await
                .expect("node"),
        );
    }
    let registry = Arc::new(micro::registry::RemoteRegistry::new(&server).expect("registry"));
    let client = micro::Client::builder(registry).build();
    let answers = |filter: micro::client::Filter| {
        let channel = client.service("versioned").with_filter(filter);
        async move {
            let mut hello = HelloworldClient::new(channel);
            let mut seen = std::collections::BTreeSet::new();
            for _ in 0..20 {
                let rsp = hello
                    .call(helloworld::Request::default())
                    .await
                    .map(|r| r.into_inner().msg);
                seen.insert(rsp.map_err(|s| (s.code() as i32, s.message().to_owned())));
            }
            seen
        }
    };
    use micro::client::Filter;
    let v2 = answers(Filter::default().version("2")).await;
    assert_eq!(v2, [Ok("2-canary".to_owned())].into());
    let stable = answers(Filter::default().metadata("track", "stable")).await;
    assert_eq!(stable, [Ok("1-stable".to_owned())].into());
    let none: Vec<_> = answers(Filter::default().version("3"))
        .await
        .into_iter()
        .collect();
    assert_eq!(none.len(), 1, "{none:?}");
    let Err((code, message)) = &none[0] else {
        panic!("no node passes: {none:?}")
    };
    assert_eq!(*code, tonic::Code::NotFound as i32);
    assert!(message.contains("version \"3\""), "{message}");
    drop(client);
    for node in nodes {
        let _ = node.stop().await;
    }
    platform.stop().await;
}
