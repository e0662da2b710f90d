//! A service's own door (`micro::gate`), in one process with a real platform: the handler sees
//! the caller's account, and when the platform cannot be asked, a caller nobody checked is
//! refused with 503 rather than let in.

use micro_e2e::{
    call_only,
    helloworld::{self, DESCRIPTORS, helloworld_client::HelloworldClient, helloworld_server},
    in_process::{admin_token, platform},
};
use tonic::{Request, Response, Status};

/// Answers `Call` with the id of the caller's account, or `nobody`.
fn who_am_i() -> impl helloworld_server::Helloworld {
    call_only(|req: Request<helloworld::Request>| {
        let who = micro::auth::account(&req).map_or("nobody".to_owned(), |a| a.id.clone());
        async move { Ok(Response::new(helloworld::Response { msg: who })) }
    })
}

/// Answers `Call` with the bearer token it was sent.
fn spy() -> impl helloworld_server::Helloworld {
    call_only(|req: Request<helloworld::Request>| {
        let token = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .trim_start_matches("Bearer ")
            .to_owned();
        async move { Ok(Response::new(helloworld::Response { msg: token })) }
    })
}

async fn call(
    client: &mut HelloworldClient<tonic::transport::Channel>,
    token: Option<&str>,
) -> Result<String, Status> {
    let mut req = Request::new(helloworld::Request { name: "x".into() });
    if let Some(token) = token {
        let value = format!("Bearer {token}").parse().expect("a header value");
        req.metadata_mut().insert("authorization", value);
    }
    Ok(client.call(req).await?.into_inner().msg)
}

#[tokio::test]
async fn handlers_see_the_caller_and_an_unchecked_caller_is_refused() {
    let platform = platform(true).await;
    let service = micro::Service::new("whoami")
        .descriptors(DESCRIPTORS)
        .handle(helloworld_server::HelloworldServer::new(who_am_i()))
        .server(platform.grpc_address().to_string())
        .start()
        .await
        .expect("whoami");
    let first = admin_token(&platform).await;
    let second = admin_token(&platform).await;
    assert_ne!(first, second);
    let mut client = HelloworldClient::connect(format!("http://{}", service.address()))
        .await
        .expect("connect");

    // The default rule lets anyone in; the handler knows who came.
    assert_eq!(call(&mut client, Some(&first)).await.unwrap(), "admin");
    assert_eq!(call(&mut client, None).await.unwrap(), "nobody");
    let forged = call(&mut client, Some("not.a.token")).await.unwrap_err();
    assert_eq!(forged.code(), tonic::Code::Unauthenticated, "{forged:?}");

    // The platform goes away. Answers already given are reused for a while; a token never seen
    // cannot be checked, so its call is refused, not let in.
    platform.stop().await;
    assert_eq!(call(&mut client, Some(&first)).await.unwrap(), "admin");
    let unchecked = call(&mut client, Some(&second)).await.unwrap_err();
    assert_eq!(unchecked.code(), tonic::Code::Unavailable, "{unchecked:?}");
    assert!(
        unchecked.message().contains("cannot check its caller"),
        "{unchecked:?}"
    );
    // Health stays open: it asks nobody.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", service.address()))
        .expect("an endpoint")
        .connect()
        .await
        .expect("connect");
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health");
    assert_eq!(status.into_inner().status, 1, "SERVING");
    let _ = service.stop().await;
}

#[tokio::test]
async fn nobody_registers_under_a_platform_services_name() {
    let platform = platform(true).await;
    let registry = micro::registry::RemoteRegistry::new(&platform.grpc_address().to_string())
        .expect("registry client");
    for (namespace, name) in [("micro", "auth"), ("other", "store")] {
        let fake = micro::core::Service::new(name, "latest")
            .with_node(micro::Node::new("fake-1", "127.0.0.1:1"));
        let err = micro::Registry::register(
            &registry,
            namespace,
            &fake,
            std::time::Duration::from_secs(30),
        )
        .await
        .expect_err("a platform name is refused");
        if namespace != "micro" {
            // A stranger cannot register in a namespace nobody created, whatever the name.
            assert_eq!(err.code, 404, "{err:?}");
            assert!(err.detail.contains("does not exist"), "{err:?}");
            continue;
        }
        assert_eq!(err.code, 403, "{err:?}");
        assert!(err.detail.contains("platform service"), "{err:?}");
        let err = micro::Registry::deregister(&registry, namespace, &fake)
            .await
            .expect_err("and cannot be deregistered either");
        assert_eq!(err.code, 403, "{err:?}");
    }
    platform.stop().await;
}

#[tokio::test]
async fn a_service_without_a_platform_serves_everyone() {
    let registry = std::sync::Arc::new(micro::core::registry::MemoryRegistry::new());
    let service = micro::Service::new("whoami")
        .descriptors(DESCRIPTORS)
        .handle(helloworld_server::HelloworldServer::new(who_am_i()))
        .registry(registry)
        .start()
        .await
        .expect("whoami");
    let mut client = HelloworldClient::connect(format!("http://{}", service.address()))
        .await
        .expect("connect");
    assert_eq!(call(&mut client, None).await.unwrap(), "nobody");
    let _ = service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_called_service_gets_a_token_that_opens_it_alone() {
    let platform = platform(true).await;
    let admin = admin_token(&platform).await;
    let spy = micro::Service::new("spy")
        .descriptors(DESCRIPTORS)
        .handle(helloworld_server::HelloworldServer::new(spy()))
        .server(platform.grpc_address().to_string())
        .start()
        .await
        .expect("spy");
    let api = platform.api_address().expect("gateway").to_string();
    let bearer = format!("Bearer {admin}");
    let (api2, bearer2) = (api.clone(), bearer.clone());
    let rsp = tokio::task::spawn_blocking(move || {
        micro_e2e::http(
            &api2,
            "POST",
            "/spy/call",
            &[
                ("Content-Type", "application/json"),
                ("Authorization", &bearer2),
            ],
            "{}",
        )
    })
    .await
    .expect("http");
    assert_eq!(rsp.status, 200, "{rsp:?}");
    let passed: serde_json::Value = serde_json::from_str(&rsp.body).expect("JSON");
    let passed = passed["msg"].as_str().expect("a token").to_owned();
    assert!(!passed.is_empty());
    assert_ne!(
        passed, admin,
        "the service never sees the caller's own token"
    );

    // The service cannot replay it against the platform...
    let replay = format!("Bearer {passed}");
    let rsp = tokio::task::spawn_blocking(move || {
        micro_e2e::http(
            &api,
            "POST",
            "/store/store/list",
            &[
                ("Content-Type", "application/json"),
                ("Authorization", &replay),
            ],
            "{}",
        )
    })
    .await
    .expect("http");
    assert_eq!(rsp.status, 401, "{rsp:?}");
    assert!(rsp.body.contains("passed on"), "{}", rsp.body);
    // ...but its own door accepts it (it is the caller, for this service).
    let mut client = HelloworldClient::connect(format!("http://{}", spy.address()))
        .await
        .expect("connect");
    assert_eq!(
        call(&mut client, Some(&passed))
            .await
            .expect("its own door"),
        passed
    );
    // A service of the same name in another namespace does not take it either.
    let mut auth = micro_proto::auth::auth_client::AuthClient::connect(format!(
        "http://{}",
        platform.grpc_address()
    ))
    .await
    .expect("auth");
    let mut make = Request::new(micro_proto::auth::GenerateRequest {
        id: "someone".into(),
        secret: "pw".into(),
        ..Default::default()
    });
    make.metadata_mut()
        .insert("authorization", bearer.parse().expect("header"));
    make.metadata_mut()
        .insert("micro-namespace", "other".parse().expect("header"));
    auth.generate(make).await.expect("namespace other");
    let answer = auth
        .check(micro_proto::auth::CheckRequest {
            token: passed.clone(),
            namespace: "other".into(),
            service: "spy".into(),
            endpoint: "Helloworld.Call".into(),
        })
        .await
        .expect("check")
        .into_inner();
    assert!(!answer.allowed, "{answer:?}");
    assert!(answer.detail.contains("passed on"), "{answer:?}");
    let _ = spy.stop().await;
    platform.stop().await;
}

/// One process, several identities: each connection and each client carries its own
/// credentials, side by side, and the process's own identity is left alone. The platform and
/// the services judge each call by the identity it came with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_process_holds_several_identities_at_once() {
    use micro::{
        auth::{Credentials, Login},
        remote::Connection,
    };
    use micro_proto::auth::{
        GenerateRequest, ListAccountsRequest, accounts_client::AccountsClient,
        auth_client::AuthClient,
    };

    let platform = platform(true).await;
    let address = platform.grpc_address().to_string();
    let admin = Credentials::new(Some(admin_token(&platform).await));
    let as_admin = Connection::lazy(&address)
        .expect("connection")
        .with_credentials(admin.clone());
    let request = as_admin
        .request(
            "micro",
            GenerateRequest {
                id: "reader".into(),
                secret: "pw-reader".into(),
                scopes: vec!["reader".into()],
                ..Default::default()
            },
        )
        .await
        .expect("a request");
    AuthClient::new(as_admin.channel())
        .generate(request)
        .await
        .expect("the admin makes an account");
    let reader = Credentials::new(None);
    let as_reader = Connection::lazy(&address)
        .expect("connection")
        .with_credentials(reader.clone());
    let tokens = micro::auth::login(
        &as_reader,
        "micro",
        &Login::Secret {
            id: "reader".into(),
            secret: "pw-reader".into(),
        },
    )
    .await
    .expect("the reader logs in");
    reader.set(Some(tokens.access_token));

    // The platform: only the admin's connection may list accounts.
    let list = |conn: Connection| async move {
        let request = conn
            .request("micro", ListAccountsRequest::default())
            .await
            .expect("a request");
        AccountsClient::new(conn.channel()).list(request).await
    };
    let (listed, refused) = tokio::join!(list(as_admin.clone()), list(as_reader.clone()));
    assert!(listed.is_ok(), "{listed:?}");
    let refused = refused.expect_err("a reader lists no accounts");
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");

    // A service: each client's calls arrive as its own account, and the process's own
    // (anonymous) identity as nobody.
    let service = micro::Service::new("whoami")
        .descriptors(DESCRIPTORS)
        .handle(helloworld_server::HelloworldServer::new(who_am_i()))
        .server(address.clone())
        .start()
        .await
        .expect("whoami");
    let registry = std::sync::Arc::new(micro::registry::RemoteRegistry::over(as_admin.clone()));
    let who = |credentials: Option<Credentials>| {
        let builder = micro::Client::builder(registry.clone());
        let client = match credentials {
            Some(credentials) => builder.credentials(credentials),
            None => builder,
        }
        .build();
        async move {
            let mut hello = HelloworldClient::new(client.service("whoami"));
            hello
                .call(helloworld::Request { name: "x".into() })
                .await
                .expect("called")
                .into_inner()
                .msg
        }
    };
    let (a, r, p) = tokio::join!(
        who(Some(admin.clone())),
        who(Some(reader.clone())),
        who(None)
    );
    assert_eq!(
        (a.as_str(), r.as_str(), p.as_str()),
        ("admin", "reader", "nobody")
    );
    assert_eq!(
        micro::auth::token(),
        None,
        "the process's identity was touched"
    );

    // Credentials are a handle: a new token reaches every holder's next call.
    reader.set(admin.token());
    assert_eq!(who(Some(reader)).await, "admin");
    drop((registry, as_admin, as_reader));
    let _ = service.stop().await;
    platform.stop().await;
}
