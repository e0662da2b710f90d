//! The gRPC door: a tower layer in front of every service on the server's gRPC port. It reads
//! the caller's token and namespace, refuses a bad token (401) or a namespace the token does not
//! allow (403), checks the rules for `service:NAME:Service.Method`, and leaves the [`Caller`] in
//! the request's extensions for the handler (which checks admin rights where it needs them).
//!
//! The proxies' own rule checks are for the service they call, so the layer only authenticates
//! calls to `micro.proxy.Proxy` and to services the server does not serve itself (the
//! transparent proxy's). Health, reflection and `Auth.Check` are open to all, and so are
//! logging in (`Auth.Token`, guarded by the secret and the failed-login throttle) and
//! `Auth.Inspect`: no rule can take logging in away. Admins of the namespace (and of `micro`)
//! manage accounts and rules whatever the rules say, so no rule change locks a namespace.

use std::{
    collections::HashMap,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use futures::{Stream, future::BoxFuture};
use micro::gate::Admit;
use micro_core::{Error, auth::Resource, metadata::NAMESPACE_HEADER};
use tonic::body::Body;

use super::{Authority, Caller};

/// Open to everyone: `Auth.Check` tells no more than making the call would; `Auth.Token` is
/// logging in (the secret is the check); `Auth.Inspect` reads a token the caller holds.
const OPEN_PATHS: &[&str] = &[
    "/micro.auth.Auth/Check",
    "/micro.auth.Auth/Token",
    "/micro.auth.Auth/Inspect",
];

/// The platform's door (see the module docs); served behind [`micro::gate::AdmitLayer`].
pub(crate) struct Guard {
    authority: Authority,
    /// gRPC service (`micro.store.Store`) → registered name (`store`).
    names: HashMap<String, String>,
    /// The platform's stop, left on the long calls it admits.
    stopping: crate::stopping::Stopping,
}

impl Guard {
    pub(crate) fn new(
        authority: Authority,
        names: HashMap<String, String>,
        stopping: crate::stopping::Stopping,
    ) -> Self {
        Self {
            authority,
            names,
            stopping,
        }
    }

    fn check(&self, path: &str, names_a_service: bool) -> Check {
        let Some((service, method)) = crate::grpc_path(path) else {
            return Check::Authenticate;
        };
        // A service's reflection through the transparent proxy: as any call of that service.
        if service.starts_with("grpc.reflection.") && names_a_service {
            return Check::Authenticate;
        }
        // Health and reflection; and Auth.Check, which services ask about their callers.
        if service.starts_with("grpc.") || OPEN_PATHS.contains(&path) {
            return Check::Open;
        }
        // The JSON proxy, and the transparent proxy (any service the server does not serve
        // itself): each checks the rules for the service it calls.
        let Some(name) = self.names.get(service) else {
            return Check::Authenticate;
        };
        let short = service.rsplit('.').next().unwrap_or(service);
        // Publishing over a stream is publishing: the rules for `Broker.Publish` decide it.
        let method = match (service, method) {
            ("micro.broker.Broker", "PublishStream") => "Publish",
            (_, method) => method,
        };
        Check::Rules(Resource::service(name, &format!("{short}.{method}")))
    }
}

/// The calls that live long enough to be checked again while they run (see [`Recheck`]): the
/// platform's streams.
const RECHECKED: &[&str] = &[
    "/micro.broker.Broker/PublishStream",
    "/micro.broker.Broker/Subscribe",
    "/micro.events.Events/Consume",
    "/micro.config.Config/Watch",
    "/micro.registry.Registry/Watch",
    "/micro.runtime.Runtime/Logs",
];

/// What the guard does with a call to `path`.
enum Check {
    /// Health, reflection: nothing.
    Open,
    /// The proxy: authenticate only.
    Authenticate,
    /// A platform service: authenticate and check the rules for this resource.
    Rules(Resource),
}

/// The text of header `name`; a value that is not text is refused rather than taken as absent
/// (an odd `micro-namespace` must not mean `micro`).
pub(crate) fn header<'a>(
    req: &'a http::Request<Body>,
    name: &str,
) -> Result<Option<&'a str>, Error> {
    one_header(req.headers(), name)
}

/// The value of header `name` in `headers`, if sent, as text. A header sent twice is refused:
/// which of two namespaces (or tokens) a caller meant is not for a door to guess.
pub(crate) fn one_header<'a>(
    headers: &'a http::HeaderMap,
    name: &str,
) -> Result<Option<&'a str>, Error> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Error::bad_request(
            "micro.auth",
            format!("the {name} header is sent more than once"),
        ));
    }
    value
        .to_str()
        .map(Some)
        .map_err(|_| Error::bad_request("micro.auth", format!("the {name} header is not text")))
}

impl Admit for Guard {
    fn admit<'a>(&'a self, req: &'a mut http::Request<Body>) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let names_a_service = req
                .headers()
                .contains_key(crate::proxy::transparent::SERVICE_HEADER);
            let check = self.check(req.uri().path(), names_a_service);
            if matches!(check, Check::Open) {
                return Ok(());
            }
            let token = micro::gate::caller_token(req.headers())?;
            let caller = self
                .authority
                .caller(token, header(req, NAMESPACE_HEADER)?)
                .await?;
            let resource = match check {
                Check::Rules(resource) => {
                    self.authority.authorize(&caller, &resource).await?;
                    Some(resource)
                }
                _ => None,
            };
            let recheck = RECHECKED
                .contains(&req.uri().path())
                .then(|| -> Result<Recheck, Error> {
                    Ok(Recheck {
                        opened: super::now(),
                        authority: self.authority.clone(),
                        authorization: token.map(str::to_owned),
                        namespace: header(req, NAMESPACE_HEADER)?.map(str::to_owned),
                        resource,
                    })
                })
                .transpose()?;
            req.extensions_mut().insert(caller);
            if let Some(recheck) = recheck {
                req.extensions_mut().insert(recheck);
                // A long call ends when the server stops, too.
                req.extensions_mut().insert(self.stopping.clone());
            }
            Ok(())
        })
    }
}

/// The guard's check of one call, to be made again: a stream that lives long (a publish
/// stream, a subscription, a watch) asks it again every [`RECHECK_EVERY`], so a token revoked,
/// or a rule changed, while the stream is open takes effect on it too.
#[derive(Clone)]
pub(crate) struct Recheck {
    /// When the call was let in (Unix seconds): the token's expiry is judged then, not again.
    opened: i64,
    authority: super::Authority,
    authorization: Option<String>,
    namespace: Option<String>,
    resource: Option<Resource>,
}

impl Recheck {
    /// The guard's check of `req`, if a guard admitted it (none without one).
    pub(crate) fn of<T>(req: &tonic::Request<T>) -> Option<Self> {
        req.extensions().get::<Self>().cloned()
    }

    /// The check of a call a door passes on to a service (the proxy's streams, the gateway's
    /// SSE and WebSocket streams): `caller`'s token, in its namespace, for `resource`, as of
    /// now; none for a caller nobody checked (auth off).
    pub(crate) fn passed_on(
        authority: &super::Authority,
        caller: &Caller,
        resource: Resource,
    ) -> Option<Self> {
        caller.enforced.then(|| Self {
            opened: super::now(),
            authority: authority.clone(),
            authorization: caller.token.clone(),
            namespace: Some(caller.namespace.clone()),
            resource: Some(resource),
        })
    }

    /// `stream`, ended with the refusal (made an `E` by `refuse`) once `recheck` (if any)
    /// would no longer admit its call; checked every [`RECHECK_EVERY`], the first time a
    /// period after it opened. Streams take it through [`crate::long_call::LongCall`].
    pub(crate) fn watch<T: Send + 'static, E: Send + 'static>(
        recheck: Option<Self>,
        stream: Pin<Box<dyn Stream<Item = Result<T, E>> + Send>>,
        refuse: fn(Error) -> E,
    ) -> Pin<Box<dyn Stream<Item = Result<T, E>> + Send>> {
        let Some(recheck) = recheck else {
            return stream;
        };
        let start = tokio::time::Instant::now() + RECHECK_EVERY;
        let mut due = tokio::time::interval_at(start, RECHECK_EVERY);
        due.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Box::pin(Rechecked {
            stream,
            recheck,
            due,
            asking: None,
            ended: false,
            refuse,
        })
    }

    /// Whether the call would still be admitted now: its token not revoked, the rules still
    /// letting it through. The token's own expiry is not judged again — a stream outlives the
    /// token it opened with — and neither is a failure to decide (a store that does not answer
    /// this second): only a refusal (401, 403) is an error here.
    pub(crate) async fn again(&self) -> Result<(), Error> {
        match self.decide().await {
            Err(e) if e.code == 401 || e.code == 403 => Err(e),
            Err(e) => {
                tracing::warn!("cannot check an open stream's caller again: {e}");
                Ok(())
            }
            Ok(()) => Ok(()),
        }
    }

    async fn decide(&self) -> Result<(), Error> {
        let caller = self
            .authority
            .caller_as_of(
                self.authorization.as_deref(),
                self.namespace.as_deref(),
                self.opened,
            )
            .await?;
        if let Some(resource) = &self.resource {
            self.authority.authorize(&caller, resource).await?;
        }
        Ok(())
    }
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

/// How often a long call is checked again.
pub(crate) const RECHECK_EVERY: Duration = Duration::from_secs(1);

/// A stream that ends with an error once its call is no longer admitted (see
/// [`Recheck::watch`]).
struct Rechecked<T, E> {
    stream: Pin<Box<dyn Stream<Item = Result<T, E>> + Send>>,
    recheck: Recheck,
    due: tokio::time::Interval,
    asking: Option<BoxFuture<'static, Result<(), Error>>>,
    ended: bool,
    refuse: fn(Error) -> E,
}

impl<T, E> Stream for Rechecked<T, E> {
    type Item = Result<T, E>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        loop {
            if let Some(asking) = &mut this.asking {
                match asking.as_mut().poll(cx) {
                    Poll::Ready(Err(e)) => {
                        this.ended = true;
                        return Poll::Ready(Some(Err((this.refuse)(e))));
                    }
                    Poll::Ready(Ok(())) => this.asking = None,
                    Poll::Pending => break,
                }
            }
            if this.due.poll_tick(cx).is_pending() {
                break;
            }
            let recheck = this.recheck.clone();
            this.asking = Some(Box::pin(async move { recheck.again().await }));
        }
        match this.stream.as_mut().poll_next(cx) {
            Poll::Ready(None) => {
                this.ended = true;
                Poll::Ready(None)
            }
            other => other,
        }
    }
}
