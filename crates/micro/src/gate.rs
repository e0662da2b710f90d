//! The service's own door: before a handler runs, the platform says whether the caller may call
//! `service:NAME:Service.Method` in the service's namespace (`micro.auth.Auth/Check`). So a
//! client that dials a node directly meets the same rules as one that comes through the proxy or
//! the gateway, and the handler finds the caller's account in the request
//! ([`crate::auth::account`]).
//!
//! Why ask the server instead of deciding here: the rules of a namespace are for its admins to
//! read, and a service started by hand (`cargo run`) has no account to read them with. The
//! answer is remembered per endpoint and token for [`REMEMBER`], never past the token's expiry:
//! after a client's first call, the check is a map lookup, and a rule change reaches every
//! service within that time.
//!
//! When the platform cannot answer, the call is refused with 503 (fail closed): a service never
//! runs a handler for a caller nobody checked. Health and reflection are open to all.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    task::{Context, Poll},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use futures::future::BoxFuture;
use micro_core::{
    Error,
    auth::{Account, AccountType, bearer},
    metadata::AUTHORIZATION_HEADER,
};
use micro_proto::auth::{self as pb, auth_client::AuthClient};
use tonic::body::Body;

use crate::{remote::Connection, status::to_status};

/// How long an answer is reused: the longest a rule change takes to reach a service.
pub const REMEMBER: Duration = Duration::from_secs(10);

/// At most this many answers are remembered (then the memory starts over).
const CAP: usize = 4096;

/// What the platform said about one endpoint and token.
#[derive(Clone)]
struct Answer {
    verdict: Result<Option<Account>, Error>,
    until: Instant,
}

/// gRPC path → token ("" for none) → answer.
type Answers = HashMap<String, HashMap<String, Answer>>;

struct Gate {
    service: String,
    namespace: String,
    server: Connection,
    answers: RwLock<Answers>,
}

/// Puts the [`Gate`] in front of a service's handlers.
#[derive(Clone)]
pub(crate) struct GateLayer {
    gate: Arc<Gate>,
}

impl GateLayer {
    /// A gate for service `service` of `namespace`, asking the server at `server`.
    pub(crate) fn new(service: &str, namespace: &str, server: Connection) -> Self {
        Self {
            gate: Arc::new(Gate {
                service: service.to_owned(),
                namespace: namespace.to_owned(),
                server,
                answers: RwLock::new(HashMap::new()),
            }),
        }
    }
}

impl<S> tower::Layer<S> for GateLayer {
    type Service = Guarded<S>;

    fn layer(&self, inner: S) -> Guarded<S> {
        Guarded {
            inner,
            gate: self.gate.clone(),
        }
    }
}

/// A handler behind the gate.
#[derive(Clone)]
pub(crate) struct Guarded<S> {
    inner: S,
    gate: Arc<Gate>,
}

impl<S> tower::Service<http::Request<Body>> for Guarded<S>
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
        let gate = self.gate.clone();
        Box::pin(async move {
            let path = req.uri().path();
            let Some(endpoint) = endpoint(path) else {
                return inner.call(req).await;
            };
            let token = req
                .headers()
                .get(AUTHORIZATION_HEADER)
                .and_then(|v| v.to_str().ok())
                .map_or("", bearer);
            let verdict = match gate.remembered(path, token) {
                Some(verdict) => verdict,
                None => gate.ask(path, token, &endpoint).await,
            };
            match verdict {
                Ok(account) => {
                    if let Some(account) = account {
                        req.extensions_mut().insert(account);
                    }
                    inner.call(req).await
                }
                Err(e) => Ok(to_status(&e).into_http()),
            }
        })
    }
}

/// `Service.Method` of a gRPC path `/package.Service/Method`; `None` for what is open to all
/// (health, reflection) and for paths that are no call (tonic answers those).
fn endpoint(path: &str) -> Option<String> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    if service.starts_with("grpc.") {
        return None;
    }
    let short = service.rsplit('.').next().unwrap_or(service);
    Some(format!("{short}.{method}"))
}

impl Gate {
    /// The answer remembered for `path` and `token`, if it is still good.
    fn remembered(&self, path: &str, token: &str) -> Option<Result<Option<Account>, Error>> {
        let answers = self.answers.read().unwrap_or_else(|p| p.into_inner());
        let answer = answers.get(path)?.get(token)?;
        (Instant::now() < answer.until).then(|| answer.verdict.clone())
    }

    /// Asks the platform, and remembers its answer (not a failure to get one).
    async fn ask(&self, path: &str, token: &str, endpoint: &str) -> Result<Option<Account>, Error> {
        let request = pb::CheckRequest {
            token: token.to_owned(),
            namespace: self.namespace.clone(),
            service: self.service.clone(),
            endpoint: endpoint.to_owned(),
        };
        let answer = match AuthClient::new(self.server.channel()).check(request).await {
            Ok(answer) => answer.into_inner(),
            Err(status) => {
                let e = self.server.error("micro.auth", &status);
                tracing::warn!(service = %self.service, "cannot check a caller: {e}");
                return Err(Error::unavailable(
                    self.service.as_str(),
                    format!(
                        "{} cannot check its caller, so it refuses the call: {}",
                        self.service, e.detail
                    ),
                ));
            }
        };
        let verdict = if answer.allowed {
            Ok(answer.account.map(account_of))
        } else {
            let code = u16::try_from(answer.code).unwrap_or(403);
            Err(Error::new("micro.auth", code, answer.detail))
        };
        let mut until = Instant::now() + REMEMBER;
        if answer.expiry > 0 {
            until = until.min(Instant::now() + left(answer.expiry));
        }
        let mut answers = self.answers.write().unwrap_or_else(|p| p.into_inner());
        if answers.values().map(HashMap::len).sum::<usize>() >= CAP {
            answers.clear();
        }
        answers.entry(path.to_owned()).or_default().insert(
            token.to_owned(),
            Answer {
                verdict: verdict.clone(),
                until,
            },
        );
        verdict
    }
}

/// Time from now until `unix` seconds (zero if past).
fn left(unix: i64) -> Duration {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Duration::from_secs(u64::try_from(unix).unwrap_or(0).saturating_sub(now))
}

fn account_of(a: pb::Account) -> Account {
    Account {
        id: a.id,
        name: a.name,
        kind: AccountType::parse(&a.r#type).unwrap_or_default(),
        issuer: a.issuer,
        scopes: a.scopes,
        metadata: a.metadata.into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::endpoint;

    #[test]
    fn endpoints_of_paths() {
        assert_eq!(
            endpoint("/helloworld.Helloworld/Call").as_deref(),
            Some("Helloworld.Call")
        );
        assert_eq!(endpoint("/Plain/Call").as_deref(), Some("Plain.Call"));
        assert_eq!(endpoint("/grpc.health.v1.Health/Check"), None);
        assert_eq!(
            endpoint("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"),
            None
        );
        assert_eq!(endpoint("/nothing"), None);
    }
}
