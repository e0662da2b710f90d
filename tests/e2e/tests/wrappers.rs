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
