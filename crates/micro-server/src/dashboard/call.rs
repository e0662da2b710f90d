//! The call form: every endpoint the visitor may call gets a form generated from its request
//! message. Posting it calls the endpoint through the platform's pipeline and shows the answer
//! or the error; a server-streaming endpoint's messages are shown as they arrive. Beside the
//! answer, the same request as a `micro call` line and a `curl` line to the gateway.

use std::{collections::HashMap, fmt::Write};

use axum::{
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header},
    response::Response,
};
use futures::StreamExt;
use serde_json::Value;

use super::{
    Dashboard,
    form::{self, RAW},
    html::{csrf_field, error_box, escape, url},
    live,
    session::Visit,
};
use crate::proxy::Target;

/// The most messages of a server stream one page shows.
const MAX_MESSAGES: usize = 10_000;

/// `GET /service/NAME/call/ENDPOINT`: the empty form.
pub(crate) async fn form(
    State(dashboard): State<Dashboard>,
    visit: Visit,
    Path((name, endpoint)): Path<(String, String)>,
) -> Response {
    let target = match dashboard.target(&visit.caller, &name, &endpoint).await {
        Ok(t) => t,
        Err(e) => return visit.failure(&e),
    };
    let body = form_html(&visit, &target, &HashMap::new(), "");
    visit.page(StatusCode::OK, &format!("Call {endpoint}"), &body)
}

/// `POST /service/NAME/call/ENDPOINT`: the call, and the form again with its answer.
pub(crate) async fn run(
    State(dashboard): State<Dashboard>,
    visit: Visit,
    Path((name, endpoint)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fields = match form::posted(&body).and_then(|f| visit.check_form(&f).map(|()| f)) {
        Ok(f) => f,
        Err(e) => return visit.failure(&e),
    };
    let target = match dashboard.target(&visit.caller, &name, &endpoint).await {
        Ok(t) => t,
        Err(e) => return visit.failure(&e),
    };
    let values = form::values(&fields);
    let raw = form::field(&fields, RAW).to_owned();
    let title = format!("Call {endpoint}");
    let request = match form::request(&target.resolved.method.input(), &fields) {
        Ok(r) => r,
        Err(e) => {
            let mut body = form_html(&visit, &target, &values, &raw);
            body.push_str(&error_box(&e.status, &e.detail));
            return visit.page(StatusCode::BAD_REQUEST, &title, &body);
        }
    };
    let mut head = form_html(&visit, &target, &values, &raw);
    head.push_str(&copyable(&target, &request, &headers, dashboard.gateway));
    let method = &target.resolved.method;
    if method.is_server_streaming() && !method.is_client_streaming() {
        head.push_str("<h2>Messages</h2><ol id=\"messages\">");
        let opened = dashboard.stream_to(&target, &request).await;
        let pieces =
            match opened {
                Ok(answers) => answers
                    .take(MAX_MESSAGES)
                    .map(|answer| match answer {
                        Ok(message) => format!(
                            "<li><pre class=\"message\">{}</pre></li>",
                            escape(&pretty(&message))
                        ),
                        Err(e) => format!("</ol>{}<ol>", error_box(&e.status, &e.detail)),
                    })
                    .chain(futures::stream::once(async {
                        "</ol><p id=\"stream-end\">The stream ended.</p>".to_owned()
                    }))
                    .boxed(),
                Err(e) => futures::stream::once(async move {
                    format!("</ol>{}", error_box(&e.status, &e.detail))
                })
                .boxed(),
            };
        return live::page(&visit, &title, head, pieces);
    }
    let (status, answer) = match dashboard
        .proxy
        .call_json(&target, &request.to_string())
        .await
    {
        Ok(response) => (
            StatusCode::OK,
            format!(
                "<h2>Response</h2><pre id=\"response\">{}</pre>",
                escape(&pretty(&response))
            ),
        ),
        Err(e) => (
            StatusCode::OK,
            format!("<h2>Error</h2>{}", error_box(&e.status, &e.detail)),
        ),
    };
    head.push_str(&answer);
    visit.page(status, &title, &head)
}

/// The form for `target`, filled with what was posted.
fn form_html(
    visit: &Visit,
    target: &Target,
    values: &HashMap<String, String>,
    raw: &str,
) -> String {
    let method = &target.resolved.method;
    let ns = url(&visit.caller.namespace);
    let service = &target.service;
    let endpoint = target.endpoint();
    let mut out = format!(
        "<h1>Call {}</h1><p><a href=\"/service/{}?namespace={ns}\">{}</a> · request <code>{}</code> → response <code>{}{}</code></p>",
        escape(endpoint),
        url(service),
        escape(service),
        escape(method.input().full_name()),
        if method.is_server_streaming() {
            "stream "
        } else {
            ""
        },
        escape(method.output().full_name()),
    );
    if method.is_client_streaming() {
        out.push_str(
            "<p class=\"note\">This endpoint takes a stream of requests: call it through the \
             gateway's WebSocket or with micro stream.</p>",
        );
        return out;
    }
    let _ = write!(
        out,
        "<form method=\"post\" action=\"/service/{}/call/{}?namespace={ns}\">{}",
        url(service),
        url(endpoint),
        csrf_field(&visit.csrf)
    );
    out.push_str(&form::inputs(&method.input(), values));
    let _ = write!(
        out,
        "<label for=\"raw\">Request as JSON <span class=\"note\">(the fields above are set over it)</span></label>\
         <textarea id=\"raw\" name=\"{RAW}\">{}</textarea>\
         <p><button type=\"submit\">Call</button></p></form>",
        escape(raw)
    );
    out
}

/// The same request as a `micro call` line and, when the platform serves its gateway, a
/// `curl` line to it.
fn copyable(
    target: &Target,
    request: &Value,
    headers: &HeaderMap,
    gateway: Option<std::net::SocketAddr>,
) -> String {
    let json = request.to_string();
    let verb = if target.resolved.method.is_server_streaming() {
        "stream"
    } else {
        "call"
    };
    let micro = format!(
        "micro {verb} {} {} {}",
        shell(&target.service),
        shell(target.endpoint()),
        shell(&json)
    );
    let mut out = format!(
        "<h2>The same from a shell</h2><pre id=\"micro-line\">{}</pre>",
        escape(&micro)
    );
    if let Some(gateway) = gateway {
        // The gateway's host as the browser reaches the dashboard, unless it listens on one
        // address only; its path names the proto service exactly.
        let host = if gateway.ip().is_unspecified() {
            headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map_or("127.0.0.1", |h| {
                    h.rsplit_once(':').map_or(h, |(host, _)| host)
                })
                .to_owned()
        } else {
            gateway.ip().to_string()
        };
        let (proto, method) = target
            .endpoint()
            .split_once('.')
            .unwrap_or((target.endpoint(), ""));
        let curl = format!(
            "curl -X POST http://{host}:{}/{}/{proto}/{method} -H 'Content-Type: application/json' -d {}",
            gateway.port(),
            target.service.replace('.', "/"),
            shell(&json)
        );
        let _ = write!(out, "<pre id=\"curl-line\">{}</pre>", escape(&curl));
    }
    out
}

/// `s` quoted for a POSIX shell.
fn shell(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/:@".contains(&b))
    {
        return s.to_owned();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn shell_quoting_survives_quotes() {
        assert_eq!(super::shell("helloworld"), "helloworld");
        assert_eq!(super::shell(r#"{"name":"Ada"}"#), r#"'{"name":"Ada"}'"#);
        assert_eq!(super::shell("it's"), r"'it'\''s'");
    }
}
