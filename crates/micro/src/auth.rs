//! Identities on the platform: [`Credentials`], the access token a connection's calls carry as
//! `authorization: Bearer TOKEN`.
//!
//! Each [`Connection`] (and so each remote client over it) and each [`Client`](crate::Client)
//! carries a `Credentials` value, and adds its token to every call it makes; one process can
//! hold several identities at once, one per connection. By default they all share the
//! process's own, [`Credentials::process`]: a service started by `micro run` logs in with the
//! account the runtime made for it (`MICRO_AUTH_ID` / `MICRO_AUTH_SECRET`) and keeps that token
//! fresh (`keep_fresh`); the CLI sets the token it saved at `micro login`. A session started
//! with [`start_session`] keeps the credentials of the connection it was given fresh.

use std::{
    sync::{Arc, LazyLock, RwLock},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use micro_core::{
    Error,
    metadata::{AUTHORIZATION_HEADER, NAMESPACE_HEADER},
};
use micro_proto::auth::{self as pb, auth_client::AuthClient};

use crate::remote::Connection;

/// An identity: the access token the calls of whoever holds it carry (none: anonymous). A
/// handle — clones share the token, so the task that refreshes it reaches every holder.
///
/// ```no_run
/// # async fn f(admin_token: String) -> Result<(), micro::Error> {
/// use std::sync::Arc;
/// use micro::{auth::Credentials, registry::RemoteRegistry, remote::Connection, store::RemoteStore};
///
/// let admin = Credentials::new(Some(admin_token));
/// let conn = Connection::lazy("127.0.0.1:8081")?.with_credentials(admin.clone());
/// let store = RemoteStore::over(conn.clone(), "micro");
/// let client = micro::Client::builder(Arc::new(RemoteRegistry::over(conn)))
///     .credentials(admin)
///     .build();
/// # Ok(()) }
/// ```
#[derive(Clone, Default)]
pub struct Credentials(Arc<RwLock<Option<String>>>);

/// Never the token: a connection or client printed for debugging must not leak it.
impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = self.0.read().unwrap_or_else(|p| p.into_inner()).is_some();
        f.debug_tuple("Credentials")
            .field(&if set { "<token>" } else { "<none>" })
            .field(&if self.is_process() { "process" } else { "own" })
            .finish()
    }
}

static PROCESS: LazyLock<Credentials> = LazyLock::new(Credentials::default);

impl Credentials {
    /// An identity of its own, holding `token` (`None`: anonymous until [`set`](Self::set)).
    pub fn new(token: Option<String>) -> Self {
        Self(Arc::new(RwLock::new(token)))
    }

    /// The process's own identity, which every connection and client carries unless given
    /// another (see the module docs).
    pub fn process() -> Self {
        PROCESS.clone()
    }

    /// Whether this is the process's own identity.
    pub fn is_process(&self) -> bool {
        Arc::ptr_eq(&self.0, &PROCESS.0)
    }

    /// Sets (or clears) the token.
    pub fn set(&self, token: Option<String>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = token;
    }

    /// The token, if any.
    pub fn token(&self) -> Option<String> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Adds `authorization: Bearer TOKEN` to `headers` when there is a token.
    pub fn authorize(&self, headers: &mut http::HeaderMap) {
        if let Some(value) = self.bearer() {
            headers.insert(AUTHORIZATION_HEADER, value);
        }
    }

    /// `Bearer TOKEN` as a header value, when there is a token that makes one.
    pub fn bearer(&self) -> Option<http::HeaderValue> {
        let token = self.0.read().unwrap_or_else(|p| p.into_inner());
        http::HeaderValue::try_from(format!("Bearer {}", token.as_deref()?)).ok()
    }
}

/// Sets (or clears) the token of this process's own identity ([`Credentials::process`]).
pub fn set_token(token: Option<String>) {
    PROCESS.set(token);
}

/// The token of this process's own identity, if any.
pub fn token() -> Option<String> {
    PROCESS.token()
}

/// The account of the caller whose request a handler is serving, when the caller sent a valid
/// token and the platform's auth is on: the service's [gate](crate::gate) leaves it there after
/// the platform's check.
///
/// ```
/// # fn handler(req: tonic::Request<()>) {
/// match micro::auth::account(&req) {
///     Some(account) => tracing::info!("called by {} of {}", account.id, account.issuer),
///     None => tracing::info!("called without an account"),
/// }
/// # }
/// ```
pub fn account<T>(req: &tonic::Request<T>) -> Option<&micro_core::auth::Account> {
    req.extensions()
        .get::<std::sync::Arc<micro_core::auth::Account>>()
        .map(|account| &**account)
}

/// A pair of tokens, as `Auth.Token` answers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Tokens {
    /// The JWT calls carry.
    pub access_token: String,
    /// Exchanged for a new access token.
    pub refresh_token: String,
    /// Unix seconds: when the access token expires.
    pub expiry: i64,
}

impl Tokens {
    /// Whether the access token should be replaced: expired, or expiring within `margin`.
    pub fn stale(&self, margin: Duration) -> bool {
        self.left() <= margin
    }

    /// How long the access token has left (zero once expired).
    pub fn left(&self) -> Duration {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Duration::from_secs(u64::try_from(self.expiry).unwrap_or(0).saturating_sub(now))
    }
}

/// How a caller gets tokens.
#[derive(Debug, Clone)]
pub enum Login {
    /// An account's id (or name) and secret.
    Secret {
        /// Id or name.
        id: String,
        /// The secret.
        secret: String,
    },
    /// A refresh token.
    Refresh(String),
}

/// Asks the server at `conn` for tokens, in `namespace`.
pub async fn login(conn: &Connection, namespace: &str, how: &Login) -> Result<Tokens, Error> {
    let msg = match how {
        Login::Secret { id, secret } => pb::TokenRequest {
            id: id.clone(),
            secret: secret.clone(),
            refresh_token: String::new(),
        },
        Login::Refresh(refresh) => pb::TokenRequest {
            refresh_token: refresh.clone(),
            ..Default::default()
        },
    };
    // A secret or refresh token is worth as much as a token: never in plaintext off this
    // machine unless allowed.
    conn.check_secrets_transport()?;
    // No bearer token: an expired one would be refused before the exchange could happen.
    let mut req = tonic::Request::new(msg);
    if let Ok(ns) = namespace.parse() {
        req.metadata_mut().insert(NAMESPACE_HEADER, ns);
    }
    let token = AuthClient::new(conn.channel())
        .token(req)
        .await
        .map_err(|s| conn.error("micro.auth", &s))?
        .into_inner()
        .token
        .ok_or_else(|| Error::internal("micro.auth", "the server answered without a token"))?;
    let expiry = humantime::parse_rfc3339(&token.expiry)
        .ok()
        .and_then(|at| at.duration_since(UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_secs()).ok())
        .ok_or_else(|| {
            Error::internal(
                "micro.auth",
                format!("the server sent an unreadable expiry {:?}", token.expiry),
            )
        })?;
    Ok(Tokens {
        access_token: token.access_token,
        refresh_token: token.refresh_token,
        expiry,
    })
}

static SESSION: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();

/// Logs this process in from `MICRO_AUTH_ID` and `MICRO_AUTH_SECRET`, once, and keeps the token
/// fresh from then on; does nothing without them. Every remote client calls it before its first
/// call, so a service's config or store used before [`Service::run`](crate::Service::run) is
/// already logged in. A failed login is tried again on the next call.
pub async fn from_env() -> Result<(), Error> {
    SESSION
        .get_or_try_init(|| async {
            let env = crate::env::Env::read();
            if let (Some(id), Some(secret)) = (env.auth_id, env.auth_secret) {
                let conn = Connection::lazy(&env.server_address)?;
                // Lives as long as the process: one process, one identity.
                drop(start_session(conn, env.namespace, id, secret).await?);
            }
            Ok(())
        })
        .await
        .map(|_| ())
}

/// Logs in with `id` and `secret` (retrying for a few seconds while the server is not up yet),
/// sets the token on the connection's credentials, and returns the task that keeps it fresh
/// until aborted.
pub async fn start_session(
    conn: Connection,
    namespace: String,
    id: String,
    secret: String,
) -> Result<tokio::task::JoinHandle<()>, Error> {
    let by_secret = Login::Secret { id, secret };
    let mut delay = Duration::from_millis(100);
    let first = loop {
        match login(&conn, &namespace, &by_secret).await {
            Ok(tokens) => break tokens,
            Err(e) if e.code >= 500 && delay < Duration::from_secs(2) => {
                tracing::warn!("login failed: {e}; retrying in {delay:?}");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(e) => return Err(e),
        }
    };
    conn.credentials().set(Some(first.access_token.clone()));
    Ok(tokio::spawn(keep_fresh(conn, namespace, by_secret, first)))
}

/// Refreshes `tokens` when two thirds of their life are gone, logging in with the secret again
/// if the refresh token is refused, and retrying every few seconds while the server is away.
async fn keep_fresh(conn: Connection, namespace: String, by_secret: Login, mut tokens: Tokens) {
    loop {
        let left = tokens.left().as_secs();
        tokio::time::sleep(Duration::from_secs((left * 2 / 3).max(1))).await;
        loop {
            let fresh = match login(
                &conn,
                &namespace,
                &Login::Refresh(tokens.refresh_token.clone()),
            )
            .await
            {
                Err(e) if e.code == 401 => login(&conn, &namespace, &by_secret).await,
                other => other,
            };
            match fresh {
                Ok(t) => {
                    conn.credentials().set(Some(t.access_token.clone()));
                    tokens = t;
                    break;
                }
                Err(e) => {
                    tracing::warn!("cannot refresh the service's token (retrying in 5s): {e}");
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
            }
        }
    }
}
