//! Logging in and out of the dashboard: a username and password form (and the namespace the
//! account belongs to), checked by `Auth.Token` through the platform's pipeline — the same
//! throttle on failed logins as `micro login`, counted for the browser's address.

use std::fmt::Write;

use axum::{body::Bytes, extract::State, http::StatusCode, response::Response};
use micro_core::{Error, metadata::DEFAULT_NAMESPACE};

use super::{
    Dashboard,
    form::{field, posted},
    html::{csrf_field, error_box, escape},
    session::{Tokens, Visit},
};

/// `GET /login`.
pub(crate) async fn form(visit: Visit) -> Response {
    visit.page(
        StatusCode::OK,
        "Log in",
        &login_form(&visit, DEFAULT_NAMESPACE, "", None),
    )
}

/// `POST /login`: on success, the session's cookies and a redirect to the services.
pub(crate) async fn login(
    State(dashboard): State<Dashboard>,
    mut visit: Visit,
    body: Bytes,
) -> Response {
    let fields = match posted(&body).and_then(|f| visit.check_form(&f).map(|()| f)) {
        Ok(f) => f,
        Err(e) => return visit.failure(&e),
    };
    let namespace = match field(&fields, "namespace") {
        "" => DEFAULT_NAMESPACE.to_owned(),
        ns => ns.to_owned(),
    };
    let username = field(&fields, "username").to_owned();
    let password = field(&fields, "password");
    if dashboard.proxy.authority().is_none() {
        return visit.redirect("/");
    }
    let tokens = async {
        let caller = dashboard.nobody(Some(&namespace), visit.peer).await?;
        let answer = dashboard
            .call(
                &caller,
                "auth",
                "Auth.Token",
                &serde_json::json!({ "id": username, "secret": password }),
            )
            .await?;
        let mut tokens = Tokens::from_answer(&answer)?;
        tokens.owner = format!("{namespace}/{username}");
        Ok::<_, Error>(tokens)
    }
    .await;
    match tokens {
        Ok(tokens) => {
            visit.keep(&tokens);
            visit.redirect(&format!("/?namespace={}", super::html::url(&namespace)))
        }
        Err(e) => {
            let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::UNAUTHORIZED);
            let body = login_form(&visit, &namespace, &username, Some(&e));
            visit.page(status, "Log in", &body)
        }
    }
}

/// `POST /logout`: the session ended.
pub(crate) async fn logout(mut visit: Visit, body: Bytes) -> Response {
    if let Err(e) = posted(&body).and_then(|f| visit.check_form(&f)) {
        return visit.failure(&e);
    }
    visit.forget();
    visit.redirect("/login")
}

fn login_form(visit: &Visit, namespace: &str, username: &str, failed: Option<&Error>) -> String {
    let mut out = String::from("<h1>Log in</h1>");
    if !visit.auth {
        out.push_str("<p class=\"note\">This platform runs with auth off: everyone may see everything, and there is nobody to log in as.</p>");
        return out;
    }
    if let Some(e) = failed {
        out.push_str(&error_box(&e.status, &e.detail));
    }
    let _ = write!(
        out,
        "<form method=\"post\" action=\"/login\">{}\
         <label for=\"username\">Username</label><input id=\"username\" name=\"username\" autocomplete=\"username\" value=\"{}\" required>\
         <label for=\"password\">Password</label><input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\
         <label for=\"namespace\">Namespace</label><input id=\"namespace\" name=\"namespace\" value=\"{}\">\
         <p><button type=\"submit\">Log in</button></p></form>",
        csrf_field(&visit.csrf),
        // Shown back to be corrected, not echoed whole: no name is longer than the limit.
        escape(&micro_core::error::bounded(username)),
        escape(&micro_core::error::bounded(namespace))
    );
    out
}
