//! Wrappers: any tower layer on a service's handlers and on a client's calls. A client wrapper
//! adds a header the service's wrapper reads; wrappers run in the order they were added.

use std::{
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

use futures::future::BoxFuture;
use micro_e2e::{
    call_only,
    helloworld::{self, DESCRIPTORS, helloworld_client::HelloworldClient, helloworld_server},
    in_process::platform,
};

/// Records `name` and the request's `x-trail` header in `log`, then adds `name` to the trail.
#[derive(Clone)]
struct Trail {
    name: &'static str,
    log: Arc<Mutex<Vec<String>>>,
}

impl<S> tower::Layer<S> for Trail {
    type Service = TrailService<S>;
    fn layer(&self, inner: S) -> TrailService<S> {
        TrailService {
            trail: self.clone(),
            inner,
        }
    }
}

#[derive(Clone)]
struct TrailService<S> {
    trail: Trail,
    inner: S,
}

impl<S, B> tower::Service<http::Request<B>> for TrailService<S>
where
    S: tower::Service<http::Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let seen = request
            .headers()
            .get("x-trail")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        self.trail.log.lock().unwrap().push(format!(
            "{} saw [{seen}] on {}",
            self.trail.name,
            request.uri().path()
        ));
        let trail = if seen.is_empty() {
            self.trail.name.to_owned()
        } else {
            format!("{seen},{}", self.trail.name)
        };
        request
            .headers_mut()
            .insert("x-trail", trail.parse().expect("header"));
        Box::pin(self.inner.call(request))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrappers_wrap_handlers_and_calls_in_order() {
    let platform = platform(false).await;
    let server = platform.grpc_address().to_string();
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    let trail = |name| Trail {
        name,
        log: log.clone(),
    };
    let node = micro::Service::new("wrapped")
        .descriptors(DESCRIPTORS)
        .layer(trail("server"))
        .handle(helloworld_server::HelloworldServer::new(call_only(
            |r: tonic::Request<helloworld::Request>| async move {
                let trail = r
                    .metadata()
                    .get("x-trail")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                Ok(tonic::Response::new(helloworld::Response { msg: trail }))
            },
        )))
        .server(server.clone())
        .start()
        .await
        .expect("service");
    let registry = Arc::new(micro::registry::RemoteRegistry::new(&server).expect("registry"));
    let client = micro::Client::builder(registry)
        .layer(trail("outer"))
        .layer(trail("inner"))
        .build();
    let mut hello = HelloworldClient::new(client.service("wrapped"));
    let answer = hello
        .call(helloworld::Request { name: "x".into() })
        .await
        .expect("call");
    // The handler sees the trail every wrapper added, in order.
    assert_eq!(answer.get_ref().msg, "outer,inner,server");
    let path = "/helloworld.Helloworld/Call";
    assert_eq!(
        *log.lock().unwrap(),
        [
            format!("outer saw [] on {path}"),
            format!("inner saw [outer] on {path}"),
            format!("server saw [outer,inner] on {path}"),
        ]
    );
    // A channel with another timeout keeps its wrappers.
    log.lock().unwrap().clear();
    let mut again = HelloworldClient::new(
        client
            .service("wrapped")
            .with_timeout(std::time::Duration::from_secs(2)),
    );
    let answer = again
        .call(helloworld::Request { name: "y".into() })
        .await
        .expect("call");
    assert_eq!(answer.get_ref().msg, "outer,inner,server");
    // Every channel holds the client, whose registry watch would keep the platform's graceful
    // stop waiting.
    drop((hello, again, client));
    let _ = node.stop().await;
    platform.stop().await;
}

/// Hands each call to a task of its own, as tower's `Buffer` does.
#[derive(Clone)]
struct Elsewhere;

impl<S> tower::Layer<S> for Elsewhere {
    type Service = ElsewhereService<S>;
    fn layer(&self, inner: S) -> ElsewhereService<S> {
        ElsewhereService(inner)
    }
}

#[derive(Clone)]
struct ElsewhereService<S>(S);

impl<S, B> tower::Service<http::Request<B>> for ElsewhereService<S>
where
    S: tower::Service<http::Request<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        use tower::ServiceExt;
        let inner = self.0.clone();
        Box::pin(async move {
            tokio::spawn(inner.oneshot(request))
                .await
                .expect("the call's task")
        })
    }
}

/// The deadline of the call being handled reaches the next hop even when a wrapper runs the
/// call in another task (where the handler's task-local deadline is not in scope).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deadline_survives_a_wrapper_that_calls_from_another_task() {
    let platform = platform(false).await;
    let server = platform.grpc_address().to_string();
    let left: Arc<Mutex<Option<std::time::Duration>>> = Arc::default();
    let node = micro::Service::new("timed")
        .descriptors(DESCRIPTORS)
        .handle(helloworld_server::HelloworldServer::new(call_only({
            let left = left.clone();
            move |_| {
                *left.lock().unwrap() = micro::deadline::remaining();
                async { Ok(tonic::Response::new(helloworld::Response::default())) }
            }
        })))
        .server(server.clone())
        .start()
        .await
        .expect("service");
    let registry = Arc::new(micro::registry::RemoteRegistry::new(&server).expect("registry"));
    let client = micro::Client::builder(registry).layer(Elsewhere).build();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(700);
    let mut hello = HelloworldClient::new(client.service("timed"));
    micro::deadline::scope(Some(deadline), async {
        hello
            .call(helloworld::Request::default())
            .await
            .expect("call");
    })
    .await;
    let seen = left
        .lock()
        .unwrap()
        .expect("a deadline reached the handler");
    assert!(
        seen <= std::time::Duration::from_millis(700),
        "the handler had {seen:?}, more than the caller's 700 ms"
    );
    drop((hello, client));
    let _ = node.stop().await;
    platform.stop().await;
}
