//! The gRPC door: a tower layer in front of every service on the server's gRPC port. It reads
//! the caller's token and namespace, refuses a bad token (401) or a namespace the token does not
//! allow (403), checks the rules for `service:NAME:Service.Method`, and leaves the [`Caller`] in
//! the request's extensions for the handler (which checks admin rights where it needs them).
//!
//! The proxy's own rule check is for the service it calls, so the layer only authenticates calls
//! to `micro.proxy.Proxy`. Health, reflection and `Auth.Check` are open to all.

use std::{
    collections::HashMap,
    sync::Arc,
    task::{Context, Poll},
};

use futures::future::BoxFuture;
use micro::status::to_status;
use micro_core::{
    Error,
    auth::Resource,
    metadata::{AUTHORIZATION_HEADER, NAMESPACE_HEADER},
};
use tonic::body::Body;

use super::{Authority, Caller};

/// `Auth.Check`: open to everyone, as it tells no more than making the call would.
const CHECK_PATH: &str = "/micro.auth.Auth/Check";

/// Adds [`Guard`] in front of a service.
#[derive(Clone)]
pub(crate) struct GuardLayer {
    authority: Authority,
    /// gRPC service (`micro.store.Store`) → registered name (`store`).
    names: Arc<HashMap<String, String>>,
}

impl GuardLayer {
    pub(crate) fn new(authority: Authority, names: HashMap<String, String>) -> Self {
        Self {
            authority,
            names: Arc::new(names),
        }
    }
}

impl<S> tower::Layer<S> for GuardLayer {
    type Service = Guard<S>;

    fn layer(&self, inner: S) -> Guard<S> {
        Guard {
            inner,
            layer: self.clone(),
        }
    }
}

/// See the module docs.
#[derive(Clone)]
pub(crate) struct Guard<S> {
    inner: S,
    layer: GuardLayer,
}

/// What the guard does with a call to `path`.
enum Check {
    /// Health, reflection: nothing.
    Open,
    /// The proxy: authenticate only.
    Authenticate,
    /// A platform service: authenticate and check the rules for this resource.
    Rules(Resource),
}

impl GuardLayer {
    fn check(&self, path: &str) -> Check {
        let Some((service, method)) = path.trim_start_matches('/').split_once('/') else {
            return Check::Authenticate;
        };
        // Health and reflection; and Auth.Check, which services ask about their callers.
        if service.starts_with("grpc.") || path == CHECK_PATH {
            return Check::Open;
        }
        if service == "micro.proxy.Proxy" {
            return Check::Authenticate;
        }
        let short = service.rsplit('.').next().unwrap_or(service);
        let name = self.names.get(service).map_or(short, String::as_str);
        Check::Rules(Resource::service(name, &format!("{short}.{method}")))
    }
}

fn header<'a>(req: &'a http::Request<Body>, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

impl<S> tower::Service<http::Request<Body>> for Guard<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<Body>) -> Self::Future {
        // The clone is the ready one's twin; keep the ready one for this call (tower's rule).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move {
            let check = layer.check(req.uri().path());
            if matches!(check, Check::Open) {
                return inner.call(req).await;
            }
            let caller = match layer.authority.caller(
                header(&req, AUTHORIZATION_HEADER),
                header(&req, NAMESPACE_HEADER),
            ) {
                Ok(caller) => caller,
                Err(e) => return Ok(refuse(&e)),
            };
            if let Check::Rules(resource) = check
                && let Err(e) = layer.authority.authorize(&caller, &resource).await
            {
                return Ok(refuse(&e));
            }
            req.extensions_mut().insert(caller);
            inner.call(req).await
        })
    }
}

fn refuse(e: &Error) -> http::Response<Body> {
    to_status(e).into_http()
}

impl Caller {
    /// The caller the guard left in `req`; without a guard (a service served on its own, in
    /// tests), an unchecked caller in the namespace of the request's metadata.
    pub(crate) fn of<T>(req: &tonic::Request<T>) -> Result<Caller, Error> {
        if let Some(caller) = req.extensions().get::<Caller>() {
            return Ok(caller.clone());
        }
        Ok(Caller::unchecked(&crate::namespace::from_metadata(req)?))
    }
}
