//! The platform's other pages: the namespace's config as a tree (secrets masked), a topic's
//! events (tailed live), the runtime's status and a service's logs (followed live), and auth — accounts and rules, listed, made and
//! deleted. Each reads and writes by calling the platform service through the pipeline as the
//! visitor, so a page is refused exactly when the same call from `micro` would be (the runtime
//! to anyone but an admin of `micro`, accounts and rules to anyone but an admin).

use std::fmt::Write;

use axum::{
    body::Bytes,
    extract::{Path, Query, State},
    http::StatusCode,
    response::Response,
};
use futures::StreamExt;
use micro_core::Error;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    Dashboard,
    form::field,
    html::{csrf_field, error_box, escape, table, url},
    live,
    session::Visit,
};

const ID: &str = "micro.web";
/// How deep the config tree is drawn.
const TREE_DEPTH: usize = 32;
/// Log lines shown before following.
const LOG_LINES: u32 = 100;

/// `GET /config`: the namespace's config document as a tree, secrets shown as `[secret]`.
pub(crate) async fn config(State(dashboard): State<Dashboard>, visit: Visit) -> Response {
    let answer = dashboard
        .call(
            &visit.caller,
            "config",
            "Config.Get",
            &json!({ "path": "" }),
        )
        .await;
    let document = match answer {
        Ok(answer) => serde_json::from_str::<Value>(answer["value"].as_str().unwrap_or("null"))
            .unwrap_or(Value::Null),
        Err(e) if e.code == 404 => Value::Null,
        Err(e) => return visit.failure(&e),
    };
    let mut body = String::from("<h1>Config</h1>");
    if document.is_null() {
        body.push_str(
            "<p class=\"note\">This namespace has no config yet (micro config set PATH VALUE).</p>",
        );
    } else {
        body.push_str("<div id=\"config\">");
        tree(&mut body, &document, 0);
        body.push_str("</div>");
    }
    visit.page(StatusCode::OK, "Config", &body)
}

/// A JSON value as nested lists.
fn tree(out: &mut String, value: &Value, depth: usize) {
    if depth > TREE_DEPTH {
        out.push('…');
        return;
    }
    match value {
        Value::Object(map) => {
            out.push_str("<ul>");
            for (k, v) in map {
                let _ = write!(out, "<li><strong>{}</strong>", escape(k));
                if v.is_object() || v.is_array() {
                    tree(out, v, depth + 1);
                } else {
                    let _ = write!(out, ": <code>{}</code>", escape(&v.to_string()));
                }
                out.push_str("</li>");
            }
            out.push_str("</ul>");
        }
        Value::Array(items) => {
            out.push_str("<ol start=\"0\">");
            for v in items {
                out.push_str("<li>");
                tree(out, v, depth + 1);
                out.push_str("</li>");
            }
            out.push_str("</ol>");
        }
        v => {
            let _ = write!(out, "<code>{}</code>", escape(&v.to_string()));
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct Tail {
    #[serde(default)]
    topic: String,
    /// How far back to start, in minutes.
    #[serde(default = "five")]
    minutes: u32,
}

fn five() -> u32 {
    5
}

/// `GET /events`: the namespace's topics; `?topic=T&minutes=M`: the topic's events of the last
/// `M` minutes, then each new one as it is published (a consumer of its own, which acknowledges
/// what it is shown).
pub(crate) async fn events(
    State(dashboard): State<Dashboard>,
    visit: Visit,
    Query(tail): Query<Tail>,
) -> Response {
    let ns = url(&visit.caller.namespace);
    let form = format!(
        "<h1>Events</h1><form method=\"get\" action=\"/events\">\
         <input type=\"hidden\" name=\"namespace\" value=\"{}\">\
         <label for=\"topic\">Topic</label><input id=\"topic\" name=\"topic\" value=\"{}\" required>\
         <label for=\"minutes\">From this many minutes ago</label><input id=\"minutes\" name=\"minutes\" type=\"number\" min=\"0\" value=\"{}\">\
         <p><button type=\"submit\">Tail</button></p></form>",
        escape(&visit.caller.namespace),
        escape(&tail.topic),
        tail.minutes
    );
    if tail.topic.is_empty() {
        let mut body = form;
        match dashboard
            .call(&visit.caller, "events", "Events.Topics", &json!({}))
            .await
        {
            Ok(answer) => {
                body.push_str("<h2>Topics</h2><ul id=\"topics\">");
                for topic in answer["topics"].as_array().into_iter().flatten() {
                    let topic = topic.as_str().unwrap_or_default();
                    let _ = write!(
                        body,
                        "<li><a href=\"/events?namespace={ns}&topic={}\">{}</a></li>",
                        url(topic),
                        escape(topic)
                    );
                }
                body.push_str("</ul>");
            }
            Err(e) => return visit.failure(&e),
        }
        return visit.page(StatusCode::OK, "Events", &body);
    }
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
        .saturating_sub(u128::from(tail.minutes) * 60_000);
    let request = json!({ "topic": tail.topic, "offset_time_ms": since.to_string() });
    let opened = dashboard
        .stream(&visit.caller, "events", "Events.Consume", &request)
        .await;
    let events = match opened {
        Ok(events) => events,
        Err(e) => return visit.failure(&e),
    };
    let head = format!(
        "{form}<h2>{}</h2><p class=\"note\">New events appear as they are published. <a href=\"/events?namespace={ns}\">Another topic</a></p><ol id=\"events\">",
        escape(&tail.topic)
    );
    // The service's first answer (no id) only says the consumer is in place.
    let pieces = events
        .filter(|event| {
            let ready = matches!(event, Ok(e) if e["id"].as_str().unwrap_or_default().is_empty());
            std::future::ready(!ready)
        })
        .map(|event| match event {
            Ok(event) => {
                let payload = event["payload"].as_str().unwrap_or_default();
                let payload =
                    base64::Engine::decode(&base64::engine::general_purpose::STANDARD, payload)
                        .ok()
                        .and_then(|b| String::from_utf8(b).ok())
                        .unwrap_or_else(|| format!("(binary, base64) {payload}"));
                format!(
                    "<li><span class=\"note\">#{} · {}</span><pre class=\"event\">{}</pre></li>",
                    escape(&event["sequence"].to_string().replace('"', "")),
                    escape(event["id"].as_str().unwrap_or_default()),
                    escape(&payload)
                )
            }
            Err(e) => format!("</ol>{}<ol>", error_box(&e.status, &e.detail)),
        })
        .chain(futures::stream::once(async { "</ol>".to_owned() }));
    live::page(&visit, &format!("Events of {}", tail.topic), head, pieces)
}

/// `GET /runtime`: what the runtime runs in the namespace.
pub(crate) async fn runtime(State(dashboard): State<Dashboard>, visit: Visit) -> Response {
    let answer = match dashboard
        .call(&visit.caller, "runtime", "Runtime.Read", &json!({}))
        .await
    {
        Ok(a) => a,
        Err(e) => return visit.failure(&e),
    };
    let ns = url(&visit.caller.namespace);
    let mut body = String::from("<h1>Runtime</h1>");
    let services = answer["services"].as_array().cloned().unwrap_or_default();
    if services.is_empty() {
        body.push_str("<p class=\"note\">Nothing runs here yet (micro run DIR).</p>");
    }
    let rows: Vec<Vec<String>> = services
        .iter()
        .map(|d| {
            let text = |v: &Value| match v {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                v => v.to_string(),
            };
            vec![
                text(&d["spec"]["name"]),
                text(&d["spec"]["version"]),
                text(&d["status"]),
                text(&d["build"]),
                text(&d["restarts"]),
                text(&d["error"]),
            ]
        })
        .collect();
    body.push_str(&table(
        "Services the runtime runs",
        &["name", "version", "status", "build", "restarts", "error"],
        &rows,
    ));
    body.push_str("<h2>Logs</h2><ul>");
    for d in &services {
        if let Some(name) = d["spec"]["name"].as_str() {
            let _ = write!(
                body,
                "<li><a href=\"/runtime/{}/logs?namespace={ns}\">Follow the logs of {}</a></li>",
                url(name),
                escape(name)
            );
        }
    }
    body.push_str("</ul>");
    visit.page(StatusCode::OK, "Runtime", &body)
}

#[derive(Deserialize)]
pub(crate) struct Follow {
    #[serde(default = "yes")]
    follow: bool,
}

fn yes() -> bool {
    true
}

/// `GET /runtime/NAME/logs`: the last lines of a service's log, then each new one as it is
/// written (`?follow=false` stops at the last).
pub(crate) async fn logs(
    State(dashboard): State<Dashboard>,
    visit: Visit,
    Path(name): Path<String>,
    Query(follow): Query<Follow>,
) -> Response {
    let title = format!("Logs of {name}");
    let request = json!({ "name": name, "count": LOG_LINES, "follow": follow.follow });
    let opened = dashboard
        .stream(&visit.caller, "runtime", "Runtime.Logs", &request)
        .await;
    let lines = match opened {
        Ok(lines) => lines,
        Err(e) => return visit.failure(&e),
    };
    let head = format!(
        "<h1>{}</h1><p><a href=\"/runtime?namespace={}\">Runtime</a>{}</p><pre id=\"logs\">",
        escape(&title),
        url(&visit.caller.namespace),
        if follow.follow {
            " · new lines appear as they are written"
        } else {
            ""
        }
    );
    let pieces = lines
        .map(|line| match line {
            Ok(record) => {
                let mut text = escape(record["text"].as_str().unwrap_or_default());
                text.push('\n');
                text
            }
            Err(e) => format!("</pre>{}<pre>", error_box(&e.status, &e.detail)),
        })
        .chain(futures::stream::once(async { "</pre>".to_owned() }));
    live::page(&visit, &title, head, pieces)
}

/// `GET /auth`: the namespace's accounts and rules, with forms to make and delete them.
pub(crate) async fn auth(State(dashboard): State<Dashboard>, visit: Visit) -> Response {
    let caller = &visit.caller;
    let accounts = dashboard
        .call(caller, "auth", "Accounts.List", &json!({}))
        .await;
    let rules = dashboard
        .call(caller, "auth", "Rules.List", &json!({}))
        .await;
    let (accounts, rules) = match (accounts, rules) {
        (Ok(a), Ok(r)) => (a, r),
        (Err(e), _) | (_, Err(e)) => return visit.failure(&e),
    };
    let csrf = csrf_field(&visit.csrf);
    let ns = url(&caller.namespace);
    let mut body = String::from(
        "<h1>Auth</h1><h2>Accounts</h2><table><caption class=\"note\">Accounts of this namespace</caption><tr><th scope=\"col\">id</th><th scope=\"col\">name</th><th scope=\"col\">type</th><th scope=\"col\">scopes</th><th scope=\"col\"></th></tr>",
    );
    for a in accounts["accounts"].as_array().into_iter().flatten() {
        let id = a["id"].as_str().unwrap_or_default();
        let scopes: Vec<&str> = a["scopes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let _ = write!(
            body,
            "<tr><td>{0}</td><td>{1}</td><td>{2}</td><td>{3}</td><td>\
             <form method=\"post\" action=\"/auth/delete-account?namespace={ns}\" class=\"inline\">{csrf}\
             <input type=\"hidden\" name=\"id\" value=\"{0}\"><button type=\"submit\">Delete account {0}</button></form></td></tr>",
            escape(id),
            escape(a["name"].as_str().unwrap_or_default()),
            escape(a["type"].as_str().unwrap_or_default()),
            escape(&scopes.join(", "))
        );
    }
    body.push_str("</table>");
    let _ = write!(
        body,
        "<form method=\"post\" action=\"/auth/create-account?namespace={ns}\">{csrf}\
         <fieldset><legend>Create an account</legend>\
         <label for=\"a-id\">Id</label><input id=\"a-id\" name=\"id\" required>\
         <label for=\"a-secret\">Secret</label><input id=\"a-secret\" name=\"secret\" type=\"password\" autocomplete=\"new-password\" required>\
         <label for=\"a-scopes\">Scopes <span class=\"note\">(comma-separated)</span></label><input id=\"a-scopes\" name=\"scopes\">\
         <label for=\"a-type\">Type</label><select id=\"a-type\" name=\"type\"><option>user</option><option>service</option></select>\
         <p><button type=\"submit\">Create account</button></p></fieldset></form>"
    );
    body.push_str("<h2>Rules</h2><table><caption class=\"note\">Rules of this namespace, highest priority first</caption><tr><th scope=\"col\">id</th><th scope=\"col\">scope</th><th scope=\"col\">resource</th><th scope=\"col\">access</th><th scope=\"col\">priority</th><th scope=\"col\"></th></tr>");
    for r in rules["rules"].as_array().into_iter().flatten() {
        let id = r["id"].as_str().unwrap_or_default();
        let resource = &r["resource"];
        let part = |k: &str| resource[k].as_str().unwrap_or_default().to_owned();
        let _ = write!(
            body,
            "<tr><td>{0}</td><td>{1}</td><td>{2}</td><td>{3}</td><td>{4}</td><td>\
             <form method=\"post\" action=\"/auth/delete-rule?namespace={ns}\" class=\"inline\">{csrf}\
             <input type=\"hidden\" name=\"id\" value=\"{0}\"><button type=\"submit\">Delete rule {0}</button></form></td></tr>",
            escape(id),
            escape(r["scope"].as_str().unwrap_or_default()),
            escape(&format!(
                "{}:{}:{}",
                part("type"),
                part("name"),
                part("endpoint")
            )),
            escape(r["access"].as_str().unwrap_or_default()),
            escape(&r["priority"].to_string()),
        );
    }
    body.push_str("</table>");
    let _ = write!(
        body,
        "<form method=\"post\" action=\"/auth/create-rule?namespace={ns}\">{csrf}\
         <fieldset><legend>Create a rule</legend>\
         <label for=\"r-id\">Id</label><input id=\"r-id\" name=\"id\" required>\
         <label for=\"r-scope\">Scope <span class=\"note\">(empty: anyone; * any account here)</span></label><input id=\"r-scope\" name=\"scope\">\
         <label for=\"r-resource\">Resource <span class=\"note\">(type:name:endpoint)</span></label><input id=\"r-resource\" name=\"resource\" value=\"service:*:*\" required>\
         <label for=\"r-access\">Access</label><select id=\"r-access\" name=\"access\"><option>granted</option><option>denied</option></select>\
         <label for=\"r-priority\">Priority</label><input id=\"r-priority\" name=\"priority\" type=\"number\" value=\"0\">\
         <p><button type=\"submit\">Create rule</button></p></fieldset></form>"
    );
    visit.page(StatusCode::OK, "Auth", &body)
}

/// `POST /auth/ACTION`: `create-account`, `delete-account`, `create-rule` or `delete-rule`.
pub(crate) async fn auth_action(
    State(dashboard): State<Dashboard>,
    visit: Visit,
    Path(action): Path<String>,
    body: Bytes,
) -> Response {
    let back = format!("/auth?namespace={}", url(&visit.caller.namespace));
    let (dashboard, caller) = (&dashboard, &visit.caller);
    visit.act(&body, |fields| async move {
        let get = |k| field(&fields, k);
        let (endpoint, request) = match action.as_str() {
            "create-account" => (
                "Auth.Generate",
                json!({
                    "id": get("id"),
                    "secret": get("secret"),
                    "type": get("type"),
                    "scopes": get("scopes").split(',').map(str::trim).filter(|s| !s.is_empty()).collect::<Vec<_>>(),
                }),
            ),
            "delete-account" => ("Accounts.Delete", json!({ "id": get("id") })),
            "create-rule" => {
                let resource = get("resource");
                let mut parts = resource.splitn(3, ':');
                let mut next = || parts.next().unwrap_or_default().to_owned();
                let (kind, name, endpoint) = (next(), next(), next());
                let priority: i32 = get("priority").trim().parse().map_err(|_| {
                    Error::bad_request(ID, "the rule's priority must be a whole number")
                })?;
                (
                    "Rules.Create",
                    json!({ "rule": {
                        "id": get("id"),
                        "scope": get("scope"),
                        "resource": { "type": kind, "name": name, "endpoint": endpoint },
                        "access": get("access"),
                        "priority": priority,
                    }}),
                )
            }
            "delete-rule" => ("Rules.Delete", json!({ "id": get("id") })),
            other => {
                return Err(Error::not_found(ID, format!("no auth action {other:?}")));
            }
        };
        dashboard.call(caller, "auth", endpoint, &request).await?;
        Ok(back)
    })
    .await
}
