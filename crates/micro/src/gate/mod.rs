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
//!
//! The tower plumbing is [`AdmitLayer`] (`layer`) and [`Admitted`] (`service`), around anything
//! that can [`Admit`] a call: the server puts its own guard in front of the platform services
//! with it too. What is remembered, and for how long, is `answers`: logic that takes `now`.

mod answers;
mod layer;
mod service;

pub use layer::AdmitLayer;
pub use service::Admitted;

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use futures::future::BoxFuture;
use micro_core::{
    Error,
    auth::{Account, bearer},
    metadata::AUTHORIZATION_HEADER,
};
use micro_proto::auth::{self as pb, auth_client::AuthClient};
use tonic::body::Body;

use answers::Answers;

use crate::remote::Connection;

/// How long an answer is reused: the longest a rule change, a deleted account or a changed
/// secret takes to reach a service (a second, as on the platform's own doors).
pub const REMEMBER: Duration = Duration::from_secs(1);

/// How long the platform has to answer before the call is refused with 503.
const ASK_TIMEOUT: Duration = Duration::from_secs(5);

/// Longer tokens are refused without asking (ours are well under 1 KiB).
const TOKEN_MAX: usize = 8 * 1024;

/// Decides, before a handler runs, whether a call goes in: the part that differs between a
/// service's gate and the platform's own guard in front of its services. It may leave what it
/// learnt (the caller) in the request's extensions.
pub trait Admit: Send + Sync + 'static {
    /// `Ok` lets the call in; an error is the answer the caller gets instead, as a gRPC status.
    fn admit<'a>(&'a self, req: &'a mut http::Request<Body>) -> BoxFuture<'a, Result<(), Error>>;
}

/// A service's check of its callers (see the module docs).
pub(crate) struct Gate {
    service: String,
    namespace: String,
    /// The gRPC services (`helloworld.Helloworld`) whose calls are checked: the handlers'.
    /// Anything else is health, reflection, or a path tonic answers as unimplemented.
    handlers: Vec<&'static str>,
    /// The platform that answers; none lets every call in (a service without a platform).
    server: Option<Connection>,
    answers: Mutex<Answers>,
}

impl Gate {
    /// The gate of service `service` of `namespace`, in front of `handlers`, asking the server
    /// at `server` (none: letting everyone in).
    pub(crate) fn new(
        service: &str,
        namespace: &str,
        handlers: Vec<&'static str>,
        server: Option<Connection>,
    ) -> Self {
        Self {
            service: service.to_owned(),
            namespace: namespace.to_owned(),
            handlers,
            server,
            answers: Mutex::new(Answers::default()),
        }
    }
}

/// The caller's token from `headers`: `None` without one; refused (401) when it cannot be one
/// of the platform's (unreadable, too long, not three parts, or sent twice) — never ignored.
pub fn caller_token(headers: &http::HeaderMap) -> Result<Option<&str>, Error> {
    let mut values = headers.get_all(AUTHORIZATION_HEADER).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let refuse = |why: &str| {
        Err(Error::unauthorized(
            "micro.auth",
            format!(
                "{why}: send one `authorization: Bearer TOKEN` (micro user token prints yours)"
            ),
        ))
    };
    if values.next().is_some() {
        return refuse("more than one authorization header");
    }
    let Ok(value) = value.to_str() else {
        return refuse("the authorization header is not readable text");
    };
    let token = bearer(value);
    if token.is_empty() {
        return Ok(None);
    }
    if token.len() > TOKEN_MAX || token.split('.').count() != 3 {
        return refuse("the token is not one the platform issued");
    }
    Ok(Some(token))
}

impl Admit for Gate {
    fn admit<'a>(&'a self, req: &'a mut http::Request<Body>) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let path = req.uri().path();
            let (Some(server), Some(endpoint)) = (&self.server, endpoint(path, &self.handlers))
            else {
                return Ok(());
            };
            let token = caller_token(req.headers())?.unwrap_or("");
            let remembered = self.answers.lock().unwrap_or_else(|p| p.into_inner()).get(
                Instant::now(),
                path,
                token,
            );
            let account = match remembered {
                Some(verdict) => verdict,
                None => self.ask(server, path, token, endpoint).await,
            }?;
            if let Some(account) = account {
                req.extensions_mut().insert(account);
            }
            Ok(())
        })
    }
}

/// The endpoint (`Service`, `Method`) of a gRPC path `/package.Service/Method` to one of
/// `handlers`; `None` for the rest (health and reflection, open to all; and paths tonic answers
/// as unimplemented).
fn endpoint<'a>(path: &'a str, handlers: &[&str]) -> Option<(&'a str, &'a str)> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    if !handlers.contains(&service) {
        return None;
    }
    Some((service.rsplit('.').next().unwrap_or(service), method))
}

impl Gate {
    /// Asks the platform, and remembers its answer (not a failure to get one).
    async fn ask(
        &self,
        server: &Connection,
        path: &str,
        token: &str,
        (service, method): (&str, &str),
    ) -> Result<Option<Arc<Account>>, Error> {
        if !token.is_empty() {
            // The caller's token goes to the platform: encrypted, or on this machine.
            server.check_secrets_transport()?;
        }
        let request = pb::CheckRequest {
            token: token.to_owned(),
            namespace: self.namespace.clone(),
            service: self.service.clone(),
            endpoint: format!("{service}.{method}"),
        };
        let asked = tokio::time::timeout(
            ASK_TIMEOUT,
            AuthClient::new(server.channel()).check(request),
        )
        .await
        .unwrap_or_else(|_| {
            Err(tonic::Status::deadline_exceeded(format!(
                "the platform at {} did not answer within {ASK_TIMEOUT:?}",
                server.address()
            )))
        });
        let answer = match asked {
            Ok(answer) => answer.into_inner(),
            Err(status) => {
                let e = server.error("micro.auth", &status);
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
            Ok(answer
                .account
                .map(|a| Arc::new(crate::convert::auth::account_from_pb(a))))
        } else if answer.code == 401 {
            Err(Error::unauthorized("micro.auth", answer.detail))
        } else {
            Err(Error::forbidden("micro.auth", answer.detail))
        };
        let expires = (answer.expiry > 0).then(|| left(answer.expiry));
        self.answers.lock().unwrap_or_else(|p| p.into_inner()).put(
            Instant::now(),
            path,
            token,
            verdict.clone(),
            expires,
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

#[cfg(test)]
mod tests {
    use super::{TOKEN_MAX, caller_token, endpoint};

    #[test]
    fn endpoints_of_paths() {
        let handlers = ["helloworld.Helloworld", "Plain", "grpc.fake.Service"];
        let of = |path| endpoint(path, &handlers);
        assert_eq!(
            of("/helloworld.Helloworld/Call"),
            Some(("Helloworld", "Call"))
        );
        assert_eq!(of("/Plain/Call"), Some(("Plain", "Call")));
        assert_eq!(
            of("/grpc.fake.Service/Call"),
            Some(("Service", "Call")),
            "a handler is checked whatever its package"
        );
        assert_eq!(of("/grpc.health.v1.Health/Check"), None);
        assert_eq!(
            of("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"),
            None
        );
        assert_eq!(
            of("/other.Service/Call"),
            None,
            "tonic answers unimplemented"
        );
        assert_eq!(of("/nothing"), None);
    }

    #[test]
    fn tokens_that_cannot_be_ours_are_refused() {
        let headers = |values: &[&str]| {
            let mut h = http::HeaderMap::new();
            for v in values {
                h.append("authorization", v.parse().unwrap());
            }
            h
        };
        assert_eq!(caller_token(&headers(&[])).unwrap(), None);
        assert_eq!(caller_token(&headers(&[""])).unwrap(), None);
        assert_eq!(
            caller_token(&headers(&["Bearer a.b.c"])).unwrap(),
            Some("a.b.c")
        );
        assert_eq!(
            caller_token(&headers(&["BEARER a.b.c"])).unwrap(),
            Some("a.b.c")
        );
        for bad in [
            headers(&["Bearer a.b.c", "Bearer d.e.f"]),
            headers(&["Bearer garbage"]),
            headers(&["Bearer "]),
            headers(&[&format!("Bearer a.{}.c", "x".repeat(TOKEN_MAX))]),
        ] {
            assert_eq!(caller_token(&bad).unwrap_err().code, 401, "{bad:?}");
        }
        let mut unreadable = http::HeaderMap::new();
        unreadable.insert(
            "authorization",
            http::HeaderValue::from_bytes(b"Bearer \xff.a.b").unwrap(),
        );
        assert_eq!(caller_token(&unreadable).unwrap_err().code, 401);
    }
}
