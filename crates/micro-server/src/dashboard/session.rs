//! Who is looking at the dashboard: the visitor's session, and the caller it stands for.
//!
//! - Logging in runs `Auth.Token` through the platform's call pipeline (the throttle on failed
//!   logins counts the browser's address). The tokens stay in the server ([`super::sessions`]);
//!   the browser gets an opaque session id in cookie `micro-session`, `HttpOnly` (no script
//!   reads it) and `SameSite=Strict` (no other site's page sends it), `Secure` when the
//!   dashboard serves TLS. A new id at every login; logging out forgets the session.
//! - A visit whose access token has lived two thirds of its life first trades the refresh token
//!   for new tokens, so a session lasts as long as its refresh token while the access token
//!   stays short-lived. A refresh token the platform no longer honours (the account was deleted,
//!   its secret changed) ends the session, and so does a visit from another address than the
//!   one that logged in.
//! - Every form carries a CSRF token, a random value also kept in the `micro-csrf` cookie; a
//!   post whose field does not match the cookie, or that a browser says came from another
//!   origin, is refused before anything runs.
//! - A request may instead say `Authorization: Bearer TOKEN`, as on the gateway.
//!
//! The caller is decided by the same [`Authority::caller`](crate::Authority::caller) as on every
//! door: the token's namespace, or `?namespace=` for an admin of `micro`.

use std::{
    net::IpAddr,
    sync::{Arc, Mutex},
};

use axum::{
    extract::FromRequestParts,
    http::{HeaderValue, StatusCode, header, request::Parts},
    response::{Html, IntoResponse, Response},
};
use micro_core::{Error, metadata::DEFAULT_NAMESPACE};

use super::{
    Dashboard,
    html::{self, Who},
    sessions::{Session, Sessions},
};
use crate::{
    auth::Caller,
    browser::{self, cookie},
    listener::Peer,
};

const ID: &str = "micro.web";

/// The session id's cookie.
const SESSION_COOKIE: &str = "micro-session";
const CSRF_COOKIE: &str = "micro-csrf";
/// How long the browser keeps its cookies (seconds).
const KEPT: i64 = super::sessions::IDLE;

/// One visit: the caller it stands for, the visitor's CSRF token, and the cookies the answer
/// must set.
pub(crate) struct Visit {
    /// Who calls the platform for this visit.
    pub(crate) caller: Caller,
    /// The signed-in account's name.
    pub(crate) name: Option<String>,
    /// The token forms carry back.
    pub(crate) csrf: String,
    /// Whether the platform checks callers.
    pub(crate) auth: bool,
    /// Where the visit came from.
    pub(crate) peer: Option<IpAddr>,
    /// `Set-Cookie` values for the answer.
    cookies: Vec<String>,
    /// Whether the browser says the request came from another origin.
    cross_origin: bool,
    secure: bool,
    /// The session this visit holds, if any.
    session: Option<String>,
    sessions: Arc<Mutex<Sessions>>,
}

impl Visit {
    /// What the layout says about the visitor.
    pub(crate) fn who(&self) -> Who<'_> {
        Who {
            name: self.name.as_deref(),
            namespace: &self.caller.namespace,
            csrf: &self.csrf,
            auth: self.auth,
        }
    }

    /// A page with `body`, answered with `status` and the visit's cookies.
    pub(crate) fn page(&self, status: StatusCode, title: &str, body: &str) -> Response {
        self.respond((status, Html(html::page(title, &self.who(), body))).into_response())
    }

    /// The page that says why `e` stopped the visit, with the HTTP status of its code.
    pub(crate) fn failure(&self, e: &Error) -> Response {
        let status =
            StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut body = format!("<h1>{}</h1>", html::escape(&e.status));
        body.push_str(&html::error_box(&e.status, &e.detail));
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            body.push_str("<p><a href=\"/login\">Log in</a> as an account that may see this.</p>");
        }
        self.page(status, &e.status, &body)
    }

    /// `response` with the visit's cookies set.
    pub(crate) fn respond(&self, mut response: Response) -> Response {
        for cookie in &self.cookies {
            if let Ok(value) = HeaderValue::from_str(cookie) {
                response.headers_mut().append(header::SET_COOKIE, value);
            }
        }
        response
    }

    /// A redirect (303, so the browser follows with a GET) to `to`, with the visit's cookies.
    pub(crate) fn redirect(&self, to: &str) -> Response {
        let mut response = StatusCode::SEE_OTHER.into_response();
        if let Ok(to) = HeaderValue::from_str(to) {
            response.headers_mut().insert(header::LOCATION, to);
        }
        self.respond(response)
    }

    /// A posted form's action, the one way every form runs: its fields read and checked
    /// ([`Self::check_form`]), then `act` on them; answered with a redirect to the page `act`
    /// names, or the page of its error.
    pub(crate) async fn act<F, Fut>(&self, body: &[u8], act: F) -> Response
    where
        F: FnOnce(Vec<(String, String)>) -> Fut,
        Fut: Future<Output = Result<String, Error>>,
    {
        let outcome = async {
            let fields = super::form::posted(body)?;
            self.check_form(&fields)?;
            act(fields).await
        }
        .await;
        match outcome {
            Ok(to) => self.redirect(&to),
            Err(e) => self.failure(&e),
        }
    }

    /// Checks a posted form's CSRF field against the visitor's cookie, and that the browser
    /// did not send it from another origin.
    pub(crate) fn check_form(&self, fields: &[(String, String)]) -> Result<(), Error> {
        let posted = fields
            .iter()
            .find(|(k, _)| k == "_csrf")
            .map(|(_, v)| v.as_str());
        if self.cross_origin {
            return Err(Error::forbidden(
                ID,
                "the form was sent from another site's page",
            ));
        }
        match posted {
            Some(posted)
                if micro_core::auth::same_secret(posted.as_bytes(), self.csrf.as_bytes()) =>
            {
                Ok(())
            }
            _ => Err(Error::forbidden(
                ID,
                "the form's CSRF token does not match this browser's session: reload the page and send it again",
            )),
        }
    }

    /// Begins a session with `tokens` (from `Auth.Token`), under a new id; the caller is
    /// unchanged until the next visit.
    pub(crate) fn keep(&mut self, tokens: &Tokens) {
        self.forget();
        let id = random_token();
        let now = now();
        lock(&self.sessions).insert(
            id.clone(),
            Session {
                access: tokens.access.clone(),
                refresh: tokens.refresh.clone(),
                issued: now,
                expiry: tokens.expiry,
                peer: self.peer,
                owner: tokens.owner.clone(),
                seen: now,
            },
        );
        self.cookies.push(self.cookie(SESSION_COOKIE, &id, KEPT));
        self.session = Some(id);
    }

    /// Ends the session: forgotten by the server, its cookie cleared.
    pub(crate) fn forget(&mut self) {
        if let Some(id) = self.session.take() {
            lock(&self.sessions).remove(&id);
        }
        self.cookies.push(self.cookie(SESSION_COOKIE, "", 0));
    }

    fn cookie(&self, name: &str, value: &str, max_age: i64) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!(
            "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            max_age.max(0)
        )
    }
}

/// Tokens `Auth.Token` answered.
pub(crate) struct Tokens {
    pub(crate) access: String,
    pub(crate) refresh: String,
    /// Unix seconds.
    pub(crate) expiry: i64,
    /// Whose they are: `NAMESPACE/ACCOUNT` as the login named it.
    pub(crate) owner: String,
}

impl Tokens {
    /// Reads `Auth.Token`'s JSON answer.
    pub(crate) fn from_answer(answer: &serde_json::Value) -> Result<Self, Error> {
        let token = &answer["token"];
        let text = |k: &str| token[k].as_str().unwrap_or_default().to_owned();
        let expiry = humantime::parse_rfc3339(&text("expiry"))
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .and_then(|d| i64::try_from(d.as_secs()).ok())
            .unwrap_or_else(now);
        let tokens = Self {
            access: text("access_token"),
            refresh: text("refresh_token"),
            expiry,
            owner: String::new(),
        };
        if tokens.access.is_empty() {
            return Err(Error::internal(ID, "Auth.Token answered no token"));
        }
        Ok(tokens)
    }
}

impl FromRequestParts<Dashboard> for Visit {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        dashboard: &Dashboard,
    ) -> Result<Self, Self::Rejection> {
        visit(dashboard, parts).await
    }
}

async fn visit(dashboard: &Dashboard, parts: &Parts) -> Result<Visit, Response> {
    let headers = &parts.headers;
    let asked = parts.uri.query().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "namespace")
            .map(|(_, v)| v.into_owned())
            .filter(|v| !v.is_empty())
    });
    let mut visit = Visit {
        caller: Caller::unchecked(asked.as_deref().unwrap_or(DEFAULT_NAMESPACE)),
        name: None,
        csrf: String::new(),
        auth: dashboard.proxy.authority().is_some(),
        peer: parts.extensions.get::<Peer>().map(|p| p.0.ip()),
        cookies: Vec::new(),
        cross_origin: !browser::same_origin(headers, parts.uri.authority().map(|a| a.as_str())),
        secure: dashboard.secure,
        session: None,
        sessions: dashboard.sessions.clone(),
    };
    visit.csrf = match cookie(headers, CSRF_COOKIE) {
        Some(csrf) if csrf.len() >= 16 && csrf.bytes().all(|b| b.is_ascii_alphanumeric()) => {
            csrf.to_owned()
        }
        _ => {
            let csrf = random_token();
            visit.cookies.push(visit.cookie(CSRF_COOKIE, &csrf, KEPT));
            csrf
        }
    };
    // Cookies earlier dashboards set: the tokens now stay in the server, so the browser drops them.
    for old in ["micro-token", "micro-refresh"] {
        if cookie(headers, old).is_some() {
            visit.cookies.push(visit.cookie(old, "", 0));
        }
    }
    let Some(authority) = dashboard.proxy.authority() else {
        return Ok(visit);
    };
    let authorization =
        match crate::auth::guard::one_header(headers, header::AUTHORIZATION.as_str()) {
            Ok(authorization) => authorization.map(str::to_owned),
            Err(e) => return Err(visit.failure(&e)),
        };
    let mut token = None;
    if authorization.is_none()
        && let Some(id) = cookie(headers, SESSION_COOKIE)
    {
        let now = now();
        let found = lock(&dashboard.sessions).get(id, visit.peer, now);
        match found {
            None => visit.cookies.push(visit.cookie(SESSION_COOKIE, "", 0)),
            Some(session) if session.due(now) => {
                visit.session = Some(id.to_owned());
                match dashboard.refresh(&session.refresh, visit.peer).await {
                    Ok(tokens) => {
                        let fresh = Session {
                            access: tokens.access.clone(),
                            refresh: tokens.refresh,
                            issued: now,
                            expiry: tokens.expiry,
                            ..session.clone()
                        };
                        // Ended meanwhile (a logout in another tab): it stays ended.
                        if lock(&dashboard.sessions).refreshed(id, &session.refresh, fresh) {
                            token = Some(tokens.access);
                        } else {
                            visit.forget();
                        }
                    }
                    // The platform no longer honours the login: the session ends.
                    Err(e) if e.code == 401 => visit.forget(),
                    // It could not say (busy, unreachable): the access token serves while it
                    // holds, and the next visit tries again.
                    Err(_) if session.expiry > now => token = Some(session.access),
                    Err(_) => visit.forget(),
                }
            }
            Some(session) => {
                visit.session = Some(id.to_owned());
                token = Some(session.access);
            }
        }
    }
    let from_session = authorization.is_none() && token.is_some();
    let bearer = authorization.or_else(|| token.map(|t| format!("Bearer {t}")));
    let caller = match authority.caller(bearer.as_deref(), asked.as_deref()).await {
        // A session the platform no longer honours ends; the visitor goes on as nobody.
        Err(e) if from_session && e.code == 401 => {
            visit.forget();
            authority.caller(None, asked.as_deref()).await
        }
        caller => caller,
    };
    match caller {
        Ok(mut caller) => {
            caller.peer = visit.peer;
            visit.name = caller.account.as_ref().map(|a| a.name.clone());
            visit.caller = caller;
            Ok(visit)
        }
        Err(e) => Err(visit.failure(&e)),
    }
}

fn lock(sessions: &Mutex<Sessions>) -> std::sync::MutexGuard<'_, Sessions> {
    sessions.lock().unwrap_or_else(|p| p.into_inner())
}

/// 32 random letters and digits.
fn random_token() -> String {
    use ring::rand::SecureRandom;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = [0u8; 32];
    // The system's randomness does not fail on the platforms the server runs on; if it did,
    // the token would be all `A`s and every form would still need the cookie it came with.
    let _ = ring::rand::SystemRandom::new().fill(&mut bytes);
    bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_tokens_are_random_and_compared_whole() {
        let (a, b) = (random_token(), random_token());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        let same = micro_core::auth::same_secret;
        assert!(same(a.as_bytes(), a.as_bytes()));
        assert!(!same(a.as_bytes(), b.as_bytes()));
        assert!(!same(a.as_bytes(), &a.as_bytes()[..31]));
    }
}
