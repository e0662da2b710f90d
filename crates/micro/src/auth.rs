//! This process's identity on the platform: the access token every call to the server (and to
//! other services) carries as `authorization: Bearer TOKEN`.
//!
//! One process, one identity: a service started by `micro run` logs in with the account the
//! runtime made for it (`MICRO_AUTH_ID` / `MICRO_AUTH_SECRET`) and keeps its token fresh on its
//! own (`keep_fresh`); the CLI sets the token it saved at `micro login`. Every remote client
//! of this crate ([`Connection`], [`Client`](crate::Client)) reads it
//! from here, so none of them needs to be told.

use std::{
    sync::RwLock,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use micro_core::{
    Error,
    metadata::{AUTHORIZATION_HEADER, NAMESPACE_HEADER},
};
use micro_proto::auth::{self as pb, auth_client::AuthClient};

use crate::remote::Connection;

static TOKEN: RwLock<Option<String>> = RwLock::new(None);

/// Sets (or clears) the access token this process's calls carry.
pub fn set_token(token: Option<String>) {
    *TOKEN.write().unwrap_or_else(|p| p.into_inner()) = token;
}

/// The access token this process's calls carry, if any.
pub fn token() -> Option<String> {
    TOKEN.read().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Adds `authorization: Bearer TOKEN` to `headers` when this process has a token.
pub fn authorize(headers: &mut http::HeaderMap) {
    if let Some(token) = token()
        && let Ok(value) = http::HeaderValue::try_from(format!("Bearer {token}"))
    {
        headers.insert(AUTHORIZATION_HEADER, value);
    }
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
/// sets the token, and returns the task that keeps it fresh until aborted.
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
    set_token(Some(first.access_token.clone()));
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
                    set_token(Some(t.access_token.clone()));
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
