//! The transparent gRPC proxy: a plain tonic client pointed at `micro server` calls helloworld
//! by its own method paths — unary, server streaming and bidirectional — with the caller's
//! token checked against the rules, and gets clear errors for what it cannot reach.

use micro_e2e::{
    Sandbox, bin,
    helloworld::{
        Ping, Request as HelloRequest, StreamingRequest, helloworld_client::HelloworldClient,
    },
};
use tokio_stream::StreamExt;
use tonic::{Code, Request, metadata::MetadataValue};
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
};

fn with<T>(token: Option<&str>, service: Option<&str>, mut req: Request<T>) -> Request<T> {
    if let Some(token) = token {
        req.metadata_mut().insert(
            "authorization",
            MetadataValue::try_from(format!("Bearer {token}")).unwrap(),
        );
    }
    if let Some(service) = service {
        req.metadata_mut()
            .insert("micro-service", MetadataValue::try_from(service).unwrap());
    }
    req
}

fn hello(name: &str) -> HelloRequest {
    HelloRequest {
        name: name.to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plain_grpc_client_reaches_services_through_the_server() {
    let sb = tokio::task::spawn_blocking(Sandbox::with_server)
        .await
        .unwrap();
    let token = sb.token();
    let account = sb.service_account("helloworld");
    let env: Vec<(&str, &str)> = account.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let helloworld = sb.helloworld(&env);
    let client_channel =
        tonic::transport::Endpoint::from_shared(format!("http://{}", sb.address()))
            .unwrap()
            .connect()
            .await
            .unwrap();
    let mut client = HelloworldClient::new(client_channel.clone());
    let t = Some(token.as_str());

    // Named by the header, and found by its proto service alone.
    let answer = client
        .call(with(t, Some("helloworld"), Request::new(hello("ada"))))
        .await
        .expect("named by micro-service");
    assert_eq!(answer.into_inner().msg, "Hello ada");
    let answer = client
        .call(with(t, None, Request::new(hello("bob"))))
        .await
        .expect("found by helloworld.Helloworld");
    assert_eq!(answer.into_inner().msg, "Hello bob");

    // The same node filters as the gateway's: a version nobody runs finds no node.
    let mut filtered = with(t, None, Request::new(hello("cy")));
    filtered
        .metadata_mut()
        .insert("micro-version", MetadataValue::from_static("no-such"));
    let err = client
        .call(filtered)
        .await
        .expect_err("no node of that version");
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert!(err.message().contains("no-such"), "{err:?}");

    // Streams pass through untouched: server streaming, and a bidirectional ping-pong.
    let mut responses = client
        .stream(with(t, None, Request::new(StreamingRequest { count: 5 })))
        .await
        .expect("a server stream")
        .into_inner();
    let mut counts = Vec::new();
    while let Some(item) = responses.next().await {
        counts.push(item.expect("a response").count);
    }
    assert_eq!(counts, vec![0, 1, 2, 3, 4]);
    let pings = tokio_stream::iter((0..3).map(|stroke| Ping { stroke }));
    let mut pongs = client
        .ping_pong(with(t, None, Request::new(pings)))
        .await
        .expect("a bidirectional stream")
        .into_inner();
    let mut strokes = Vec::new();
    while let Some(pong) = pongs.next().await {
        strokes.push(pong.expect("a pong").stroke);
    }
    assert_eq!(strokes, vec![0, 1, 2]);

    // Reflection naming the service is the service's own (what grpcurl asks first); without
    // a name, the server's.
    let listed = |named: Option<&'static str>| {
        let channel = client_channel.clone();
        let t = token.clone();
        async move {
            let request = ServerReflectionRequest {
                host: String::new(),
                message_request: Some(MessageRequest::ListServices(String::new())),
            };
            let mut answers = ServerReflectionClient::new(channel)
                .server_reflection_info(with(
                    Some(&t),
                    named,
                    Request::new(tokio_stream::iter([request])),
                ))
                .await
                .expect("reflection")
                .into_inner();
            let Some(MessageResponse::ListServicesResponse(list)) =
                answers.message().await.unwrap().unwrap().message_response
            else {
                panic!("a list of services");
            };
            list.service.into_iter().map(|s| s.name).collect::<Vec<_>>()
        }
    };
    let theirs = listed(Some("helloworld")).await;
    assert!(
        theirs.contains(&"helloworld.Helloworld".to_owned()),
        "{theirs:?}"
    );
    let ours = listed(None).await;
    assert!(ours.contains(&"micro.store.Store".to_owned()), "{ours:?}");
    assert!(
        !ours.contains(&"helloworld.Helloworld".to_owned()),
        "{ours:?}"
    );

    // The rules decide, as for `micro call`: PingPong denied to everyone, then only accounts
    // let in at all.
    let ok = |args: &[&str]| {
        let out = sb.micro(args);
        assert_eq!(out.code, 0, "micro {args:?}: {out:?}");
    };
    ok(&[
        "auth",
        "create",
        "rule",
        "noping",
        "--scope",
        "*",
        "--resource",
        "service:helloworld:Helloworld.PingPong",
        "--access",
        "denied",
        "--priority",
        "1",
    ]);
    let err = client
        .ping_pong(with(
            t,
            None,
            Request::new(tokio_stream::iter([Ping { stroke: 1 }])),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    ok(&[
        "auth",
        "create",
        "rule",
        "onlyloggedin",
        "--scope",
        "*",
        "--resource",
        "*:*:*",
    ]);
    ok(&["auth", "delete", "rule", "default"]);
    let refused = client
        .call(with(None, Some("helloworld"), Request::new(hello("eve"))))
        .await
        .unwrap_err();
    assert!(
        matches!(
            refused.code(),
            Code::Unauthenticated | Code::PermissionDenied
        ),
        "{refused:?}"
    );
    client
        .call(with(t, Some("helloworld"), Request::new(hello("ada"))))
        .await
        .expect("an account still gets in");
    let mut elsewhere = with(t, Some("helloworld"), Request::new(hello("eve")));
    elsewhere
        .metadata_mut()
        .insert("micro-namespace", MetadataValue::from_static("other"));
    let err = client.call(elsewhere).await.unwrap_err();
    assert_ne!(err.code(), Code::Ok);

    // What cannot be reached says so.
    let err = client
        .call(with(t, Some("nobody"), Request::new(hello("x"))))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    // ... and is counted under one label: no caller grows the metrics' series by making up
    // service names.
    let web = sb.web.clone().expect("the server's web address");
    let bearer = format!("Bearer {token}");
    let scrape = tokio::task::spawn_blocking(move || {
        micro_e2e::http(&web, "GET", "/metrics", &[("Authorization", &bearer)], "")
    })
    .await
    .unwrap();
    assert_eq!(scrape.status, 200, "{}", scrape.body);
    assert!(
        !scrape.body.contains("rpc_service=\"nobody\""),
        "{}",
        scrape.body
    );
    assert!(
        scrape
            .body
            .contains("rpc_service=\"_OTHER\",rpc_method=\"_OTHER\",rpc_grpc_status_code=\"5\""),
        "{}",
        scrape.body
    );
    // Metadata past the platform's limits is refused by the proxy, saying which.
    let mut big = with(t, Some("helloworld"), Request::new(hello("x")));
    big.metadata_mut().insert(
        "x-big",
        MetadataValue::try_from("v".repeat(17_000)).unwrap(),
    );
    let err = client.call(big).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("x-big"), "{err:?}");
    // A node registered at an address that does not speak gRPC (the gateway's) is unavailable,
    // not a bare HTTP status.
    let api = sb.api.clone().expect("the gateway's address");
    let bearer = format!("Bearer {token}");
    let registration = format!(
        r#"{{"service":{{"name":"impostor","version":"1","nodes":[{{"id":"i1","address":"{api}"}}]}}}}"#
    );
    let registered = tokio::task::spawn_blocking(move || {
        micro_e2e::http(
            &api,
            "POST",
            "/registry/register",
            &[
                ("Authorization", &bearer),
                ("Content-Type", "application/json"),
            ],
            &registration,
        )
    })
    .await
    .unwrap();
    assert_eq!(registered.status, 200, "{}", registered.body);
    let err = client
        .call(with(t, Some("impostor"), Request::new(hello("x"))))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.message().contains("not gRPC"), "{err:?}");
    let err = client
        .call(with(t, Some("store"), Request::new(hello("x"))))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("platform service"), "{err:?}");
    // A name no service could have (too long, odd characters) is a clear 400, not a lookup.
    for odd in ["a".repeat(4000), "..%2F..".to_owned(), "x y".to_owned()] {
        let err = client
            .call(with(t, Some(&odd), Request::new(hello("x"))))
            .await
            .unwrap_err();
        assert!(
            matches!(err.code(), Code::InvalidArgument | Code::NotFound),
            "{odd:?}: {err:?}"
        );
    }

    // A second service registering helloworld.Helloworld: the path alone is ambiguous.
    let relay_account = sb.service_account("relay");
    let relay_env: Vec<(&str, &str)> = relay_account
        .iter()
        .map(|(k, v)| (*k, v.as_str()))
        .collect();
    let relay = sb.service(&bin("relay"), &relay_env);
    // (A path's service is remembered for a second.)
    let started = std::time::Instant::now();
    let err = loop {
        match client.call(with(t, None, Request::new(hello("x")))).await {
            Err(err) => break err,
            Ok(_) if started.elapsed() < std::time::Duration::from_secs(5) => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Ok(answer) => panic!("still resolved alone: {answer:?}"),
        }
    };
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("helloworld, relay"), "{err:?}");
    let answer = client
        .call(with(t, Some("relay"), Request::new(hello("via relay"))))
        .await
        .expect("named, relay answers (by asking helloworld)");
    assert_eq!(answer.into_inner().msg, "Hello via relay");
    // The services go first, so the server has no stream of theirs to wait for.
    drop((client, client_channel, relay, helloworld));
    tokio::task::spawn_blocking(move || drop(sb)).await.unwrap();
}
