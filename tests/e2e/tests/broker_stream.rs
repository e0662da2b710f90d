//! Publishing over one stream per namespace (`micro.broker.Broker/PublishStream`): many
//! publishers share it and each is told about its own message, a bad message fails alone (also
//! among good ones in flight at once), and a token revoked while the stream is open stops it
//! within a second — and so does every other stream it holds open (a subscription, a watch).

use std::time::Duration;

use futures::StreamExt;
use micro::broker::RemoteBroker;
use micro_core::broker::{Broker, Message};
use micro_proto::auth::{
    DeleteAccountRequest, GenerateRequest, TokenRequest, accounts_client::AccountsClient,
    auth_client::AuthClient,
};
use micro_proto::broker::{PublishRequest, SubscribeRequest, broker_client::BrokerClient};
use micro_proto::config::{WatchRequest, config_client::ConfigClient};

/// Makes the account `id` (with `scopes`) as `admin` at the server `url`, and logs it in: its
/// access token.
async fn account_token(url: &str, admin: &str, id: &str, scopes: &[&str]) -> String {
    let secret = format!("pw-{id}");
    AuthClient::connect(url.to_owned())
        .await
        .unwrap()
        .generate(bearer(
            admin,
            GenerateRequest {
                id: id.into(),
                secret: secret.clone(),
                scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
                ..Default::default()
            },
        ))
        .await
        .expect("an account");
    AuthClient::connect(url.to_owned())
        .await
        .unwrap()
        .token(TokenRequest {
            id: id.into(),
            secret,
            refresh_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .token
        .unwrap()
        .access_token
}

fn bearer<T>(token: &str, msg: T) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    req.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    req
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_publishes_are_each_answered_and_a_bad_one_fails_alone() {
    let platform = micro_e2e::in_process::platform(false).await;
    let broker = RemoteBroker::new(&platform.grpc_address().to_string()).unwrap();
    let mut subscription = broker.subscribe("micro", "many", None).await.unwrap();

    let publishers = (0..32).map(|p| {
        let broker = broker.clone();
        async move {
            for n in 0..64 {
                broker
                    .publish("micro", "many", Message::new(format!("{p}-{n}")))
                    .await
                    .expect("publish");
                // Bad messages among good ones, likely in the same batch: each fails alone.
                if n % 7 == 0 {
                    let err = broker
                        .publish("micro", "", Message::new("no topic"))
                        .await
                        .unwrap_err();
                    assert_eq!(err.code, 400, "{err}");
                }
            }
        }
    });
    futures::future::join_all(publishers).await;
    let mut seen = std::collections::HashSet::new();
    while seen.len() < 32 * 64 {
        let message = tokio::time::timeout(Duration::from_secs(10), subscription.next())
            .await
            .expect("every message is delivered")
            .expect("the subscription lives");
        assert!(seen.insert(message.body), "delivered once");
    }

    // A message past the size limit fails alone; the next goes through.
    let huge = Message::new(vec![b'x'; micro_core::limits::MAX_VALUE + 1]);
    let err = broker.publish("micro", "many", huge).await.unwrap_err();
    assert!((400..500).contains(&err.code), "{err}");
    broker
        .publish("micro", "many", Message::new("after"))
        .await
        .expect("the stream goes on");
    // A message with too many headers fails alone on the stream, and so does an invalid topic.
    let mut crowded = Message::new("crowded");
    for n in 0..100 {
        crowded.header.insert(format!("h{n}"), "v".into());
    }
    let err = broker.publish("micro", "many", crowded).await.unwrap_err();
    assert_eq!(err.code, 400, "{err}");
    let err = broker
        .publish("micro", "", Message::new("no topic"))
        .await
        .unwrap_err();
    assert_eq!(err.code, 400, "{err}");
    broker
        .publish("micro", "many", Message::new("after again"))
        .await
        .expect("the stream goes on");
    drop((broker, subscription));
    platform.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_revoked_while_its_streams_are_open_stops_them_within_a_second() {
    let platform = micro_e2e::in_process::platform(true).await;
    let address = platform.grpc_address().to_string();
    let admin = micro_e2e::in_process::admin_token(&platform).await;
    let url = format!("http://{address}");
    let token = account_token(&url, &admin, "publisher", &["admin"]).await;
    let identity = micro::auth::Credentials::new(Some(token.clone()));
    // Streams the account holds open: a subscription and a config watch.
    let mut subscription = BrokerClient::connect(url.clone())
        .await
        .unwrap()
        .subscribe(bearer(
            &token,
            SubscribeRequest {
                topic: "t".into(),
                queue: String::new(),
            },
        ))
        .await
        .expect("subscribes while the account lives")
        .into_inner();
    let mut watch = ConfigClient::connect(url.clone())
        .await
        .unwrap()
        .watch(bearer(
            &token,
            WatchRequest {
                path: "anything".into(),
                secret: false,
            },
        ))
        .await
        .expect("watches while the account lives")
        .into_inner();
    watch.message().await.expect("the value now");
    let broker = RemoteBroker::over(
        micro::remote::Connection::lazy(&address)
            .unwrap()
            .with_credentials(identity.clone()),
    );
    broker
        .publish("micro", "t", Message::new("before"))
        .await
        .expect("publishes while the account lives");

    AccountsClient::connect(url)
        .await
        .unwrap()
        .delete(bearer(
            &admin,
            DeleteAccountRequest {
                id: "publisher".into(),
            },
        ))
        .await
        .expect("deleted");
    let started = tokio::time::Instant::now();
    let refused = loop {
        match broker.publish("micro", "t", Message::new("after")).await {
            Ok(()) => {
                assert!(
                    started.elapsed() < Duration::from_secs(3),
                    "the open stream still publishes for a revoked token"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => break e,
        }
    };
    assert_eq!(refused.code, 401, "{refused}");
    assert!(refused.detail.contains("revoked"), "{refused}");
    // The subscription and the watch end too, with the same refusal.
    let ended = tokio::time::timeout(Duration::from_secs(3), last_word(&mut subscription))
        .await
        .expect("the subscription of a revoked token ends");
    assert_eq!(ended.code(), tonic::Code::Unauthenticated, "{ended:?}");
    let ended = tokio::time::timeout(Duration::from_secs(3), watch.message())
        .await
        .expect("the watch of a revoked token ends")
        .unwrap_err();
    assert_eq!(ended.code(), tonic::Code::Unauthenticated, "{ended:?}");

    // With another token, the next publish opens a new stream.
    identity.set(Some(admin));
    broker
        .publish("micro", "t", Message::new("as admin"))
        .await
        .expect("a new stream with the new token");
    drop(broker);
    platform.stop().await;
}

/// A stream outlives the token it opened with: a subscription opened with a token that then
/// expires keeps delivering (revocation and rules still end it, see above).
#[tokio::test(flavor = "multi_thread")]
async fn a_subscription_outlives_the_expiry_of_the_token_it_opened_with() {
    let platform = micro_server::start(micro_server::Options {
        address: "127.0.0.1:0".into(),
        api_address: None,
        web_address: None,
        auth: micro_server::AuthOptions {
            enabled: true,
            token_ttl: Duration::from_secs(1),
            ..Default::default()
        },
        ..Default::default()
    })
    .await
    .expect("platform");
    let url = format!("http://{}", platform.grpc_address());
    let short_lived = micro_e2e::in_process::admin_token(&platform).await;
    let mut subscription = BrokerClient::connect(url.clone())
        .await
        .unwrap()
        .subscribe(bearer(
            &short_lived,
            SubscribeRequest {
                topic: "long".into(),
                queue: String::new(),
            },
        ))
        .await
        .expect("subscribed")
        .into_inner();
    // Until the token has expired (the server refuses it for a new call)...
    let mut publisher = BrokerClient::connect(url).await.unwrap();
    let message = |body: &str| PublishRequest {
        topic: "long".into(),
        message: Some(micro_proto::broker::Message {
            header: Default::default(),
            body: body.as_bytes().to_vec(),
        }),
    };
    let started = tokio::time::Instant::now();
    loop {
        match publisher
            .publish(bearer(&short_lived, message("probe")))
            .await
        {
            Ok(_) => {
                assert!(
                    started.elapsed() < Duration::from_secs(5),
                    "the token never expired"
                );
                // Drain what the probe delivered, so only the last message is waited for.
                let _ = subscription.message().await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(status) => {
                assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
                break;
            }
        }
    }
    // ...and for one recheck of the open stream after that (they come every second).
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let fresh = micro_e2e::in_process::admin_token(&platform).await;
    publisher
        .publish(bearer(&fresh, message("still here")))
        .await
        .expect("published");
    let message = tokio::time::timeout(Duration::from_secs(5), subscription.message())
        .await
        .expect("delivered in time")
        .expect("the stream lives")
        .expect("a message");
    assert_eq!(message.body, b"still here");
    drop((subscription, publisher));
    platform.stop().await;
}

/// A service's stream that never ends: one message every 50 ms; counts the streams opened.
struct Endless(std::sync::Arc<std::sync::atomic::AtomicUsize>);

type Responses<T> = std::pin::Pin<Box<dyn futures::Stream<Item = Result<T, tonic::Status>> + Send>>;

#[tonic::async_trait]
impl micro_e2e::helloworld::helloworld_server::Helloworld for Endless {
    async fn call(
        &self,
        _: tonic::Request<micro_e2e::helloworld::Request>,
    ) -> Result<tonic::Response<micro_e2e::helloworld::Response>, tonic::Status> {
        Err(tonic::Status::unimplemented("streams only"))
    }

    type StreamStream = Responses<micro_e2e::helloworld::StreamingResponse>;
    async fn stream(
        &self,
        _: tonic::Request<micro_e2e::helloworld::StreamingRequest>,
    ) -> Result<tonic::Response<Self::StreamStream>, tonic::Status> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let ticks = tokio_stream::wrappers::IntervalStream::new(tokio::time::interval(
            Duration::from_millis(50),
        ));
        Ok(tonic::Response::new(Box::pin(ticks.enumerate().map(
            |(count, _)| {
                Ok(micro_e2e::helloworld::StreamingResponse {
                    count: count as i64,
                })
            },
        ))))
    }

    type PingPongStream = Responses<micro_e2e::helloworld::Pong>;
    async fn ping_pong(
        &self,
        _: tonic::Request<tonic::Streaming<micro_e2e::helloworld::Ping>>,
    ) -> Result<tonic::Response<Self::PingPongStream>, tonic::Status> {
        Err(tonic::Status::unimplemented("streams only"))
    }
}

/// The streams a caller opens to a service through the platform's doors — the proxy's
/// `Stream` (`micro stream`) and the gateway's server-sent events — are checked again while
/// they run, as the platform's own streams are: revoking the caller's token ends them.
#[tokio::test(flavor = "multi_thread")]
async fn a_token_revoked_ends_the_service_streams_it_opened_through_the_doors() {
    use micro_proto::proxy::{CallRequest, proxy_client::ProxyClient};

    let platform = micro_e2e::in_process::platform(true).await;
    let address = platform.grpc_address().to_string();
    let api = platform.api_address().expect("gateway").to_string();
    let admin = micro_e2e::in_process::admin_token(&platform).await;
    let url = format!("http://{address}");
    let opened = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let service = micro::Service::new("endless")
        .descriptors(micro_e2e::helloworld::DESCRIPTORS)
        .handle(
            micro_e2e::helloworld::helloworld_server::HelloworldServer::new(Endless(
                opened.clone(),
            )),
        )
        .server(address.clone())
        .start()
        .await
        .expect("endless");
    let token = account_token(&url, &admin, "watcher", &[]).await;

    let mut proxied = ProxyClient::connect(url.clone())
        .await
        .unwrap()
        .stream(bearer(
            &token,
            CallRequest {
                service: "endless".into(),
                endpoint: "Helloworld.Stream".into(),
                json: "{}".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("streams while the account lives")
        .into_inner();
    proxied
        .message()
        .await
        .expect("a message")
        .expect("the stream is open");
    let mut transparent = transparent_stream(&address, Some(&token)).await;
    let sse = tokio::task::spawn_blocking({
        let token = token.clone();
        move || {
            micro_e2e::http(
                &api,
                "POST",
                "/endless/Helloworld/Stream",
                &[
                    ("Content-Type", "application/json"),
                    ("Accept", "text/event-stream"),
                    ("Authorization", &format!("Bearer {token}")),
                ],
                "{}",
            )
        }
    });
    let started = tokio::time::Instant::now();
    while opened.load(std::sync::atomic::Ordering::SeqCst) < 3 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the gateway's stream never opened"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    AccountsClient::connect(url)
        .await
        .unwrap()
        .delete(bearer(
            &admin,
            DeleteAccountRequest {
                id: "watcher".into(),
            },
        ))
        .await
        .expect("deleted");
    let ended = tokio::time::timeout(Duration::from_secs(3), last_word(&mut proxied))
        .await
        .expect("the proxied stream of a revoked token ends");
    assert_eq!(ended.code(), tonic::Code::Unauthenticated, "{ended:?}");
    assert!(ended.message().contains("revoked"), "{ended:?}");
    let ended = tokio::time::timeout(Duration::from_secs(3), last_word(&mut transparent))
        .await
        .expect("the transparent stream of a revoked token ends");
    assert_eq!(ended.code(), tonic::Code::Unauthenticated, "{ended:?}");
    assert!(ended.message().contains("revoked"), "{ended:?}");
    let sse = tokio::time::timeout(Duration::from_secs(3), sse)
        .await
        .expect("the gateway's stream of a revoked token ends")
        .expect("the request");
    assert_eq!(sse.status, 200, "{sse:?}");
    assert!(
        sse.body.contains("event: error") && sse.body.contains("revoked"),
        "{}",
        sse.body
    );
    drop(proxied);
    let _ = service.stop().await;
    platform.stop().await;
}

/// A server that stops ends the streams callers hold open through it — a subscription, a
/// config watch, a service's stream through the proxy — at once with `UNAVAILABLE`, so its
/// stop does not wait out the grace period and the callers reconnect elsewhere at once.
#[tokio::test(flavor = "multi_thread")]
async fn a_stopping_server_ends_the_streams_held_open_through_it_at_once() {
    use micro_proto::proxy::{CallRequest, proxy_client::ProxyClient};

    let platform = micro_e2e::in_process::platform(false).await;
    let address = platform.grpc_address().to_string();
    let url = format!("http://{address}");
    let service = micro::Service::new("endless")
        .descriptors(micro_e2e::helloworld::DESCRIPTORS)
        .handle(
            micro_e2e::helloworld::helloworld_server::HelloworldServer::new(Endless(
                Default::default(),
            )),
        )
        .server(address.clone())
        .start()
        .await
        .expect("endless");
    let mut subscription = BrokerClient::connect(url.clone())
        .await
        .unwrap()
        .subscribe(SubscribeRequest {
            topic: "t".into(),
            queue: String::new(),
        })
        .await
        .expect("subscribed")
        .into_inner();
    let mut watch = ConfigClient::connect(url.clone())
        .await
        .unwrap()
        .watch(WatchRequest {
            path: "anything".into(),
            secret: false,
        })
        .await
        .expect("watching")
        .into_inner();
    watch.message().await.expect("the value now");
    let mut proxied = ProxyClient::connect(url)
        .await
        .unwrap()
        .stream(CallRequest {
            service: "endless".into(),
            endpoint: "Helloworld.Stream".into(),
            json: "{}".into(),
            ..Default::default()
        })
        .await
        .expect("a service stream")
        .into_inner();
    proxied.message().await.expect("a message");
    let mut transparent = transparent_stream(&address, None).await;
    // A service's publishes share a stream it keeps open (`Broker.PublishStream`).
    let publisher = RemoteBroker::new(&address).unwrap();
    publisher
        .publish("micro", "elsewhere", Message::new("before the stop"))
        .await
        .expect("published");

    let started = std::time::Instant::now();
    platform.stop().await;
    let took = started.elapsed();
    assert!(
        took < micro_server::STOP_GRACE / 2,
        "the stop waited {took:?} for the open streams"
    );
    let ended = |status: tonic::Status| {
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
        assert!(status.message().contains("stopping"), "{status:?}");
    };
    ended(
        subscription
            .message()
            .await
            .expect_err("the subscription ends"),
    );
    ended(watch.message().await.expect_err("the watch ends"));
    ended(last_word(&mut proxied).await);
    ended(last_word(&mut transparent).await);
    let err = publisher
        .publish("micro", "elsewhere", Message::new("after the stop"))
        .await
        .expect_err("the server is gone");
    assert_eq!(err.code, 503, "{err}");
    drop((subscription, watch, proxied, transparent, publisher));
    let _ = service.stop().await;
}

/// `endless`'s stream through the server's transparent proxy (a plain gRPC client calling the
/// service's own method at the server's address), its first message read.
async fn transparent_stream(
    address: &str,
    token: Option<&str>,
) -> tonic::Streaming<micro_e2e::helloworld::StreamingResponse> {
    let mut client = micro_e2e::helloworld::helloworld_client::HelloworldClient::connect(format!(
        "http://{address}"
    ))
    .await
    .unwrap();
    let mut request = tonic::Request::new(micro_e2e::helloworld::StreamingRequest { count: 0 });
    request
        .metadata_mut()
        .insert("micro-service", "endless".parse().unwrap());
    if let Some(token) = token {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    let mut stream = client
        .stream(request)
        .await
        .expect("a stream through the transparent proxy")
        .into_inner();
    stream
        .message()
        .await
        .expect("a message")
        .expect("the stream is open");
    stream
}

/// How a stream ends: the status after its messages.
async fn last_word<T>(stream: &mut tonic::Streaming<T>) -> tonic::Status {
    loop {
        match stream.message().await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the stream ended without saying why"),
            Err(status) => break status,
        }
    }
}
