//! Least privilege, table-tested: every scope (`admin` of `micro`, `admin`, `service`, a custom
//! scope, nobody) × every kind of platform operation × the caller's own namespace, another
//! namespace and `*` — through two doors, the proxy (`micro call`) and the HTTP gateway, which
//! must agree cell by cell. The table is the policy written down (README, "Security").

use std::collections::BTreeMap;

use micro_e2e::in_process::{admin_token, platform};
use micro_proto::proxy::{CallRequest, proxy_client::ProxyClient};
use tonic::metadata::MetadataValue;

/// What a door answered, as far as auth is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cell {
    /// Let through (the operation ran, or failed for a reason that is not auth's).
    Y,
    /// 401: nobody is allowed this.
    U,
    /// 403: this account is not allowed this.
    F,
}
use Cell::{F, U, Y};

impl Cell {
    fn of(code: u16) -> Self {
        match code {
            401 => U,
            403 => F,
            _ => Y,
        }
    }
}

/// The operations: (label, service, endpoint, JSON request).
const OPERATIONS: &[(&str, &str, &str, &str)] = &[
    (
        "registry register",
        "registry",
        "Registry.Register",
        r#"{"service":{"name":"mx","version":"1","nodes":[{"id":"mx-1","address":"127.0.0.1:9"}]}}"#,
    ),
    ("registry list", "registry", "Registry.ListServices", "{}"),
    (
        "store write",
        "store",
        "Store.Write",
        r#"{"record":{"key":"k","value":"dg=="}}"#,
    ),
    ("store list", "store", "Store.List", "{}"),
    (
        "config set",
        "config",
        "Config.Set",
        r#"{"path":"k","value":"1"}"#,
    ),
    (
        "broker publish",
        "broker",
        "Broker.Publish",
        r#"{"topic":"t","message":{"body":"dg=="}}"#,
    ),
    (
        "events publish",
        "events",
        "Events.Publish",
        r#"{"topic":"t","payload":"dg=="}"#,
    ),
    ("auth list accounts", "auth", "Accounts.List", "{}"),
    (
        "auth create account",
        "auth",
        "Auth.Generate",
        r#"{"id":"made-by-matrix","secret":"s"}"#,
    ),
    (
        "auth create rule",
        "auth",
        "Rules.Create",
        r#"{"rule":{"id":"r","scope":"*","resource":{"type":"service","name":"nothing","endpoint":"*"}}}"#,
    ),
    ("runtime status", "runtime", "Runtime.Read", "{}"),
];

/// The policy: for each caller, each operation's cells in its own namespace, another, and `*`.
/// (The `micro` admin's own namespace is `micro`; nobody's "own" is `a`.)
fn expected() -> BTreeMap<&'static str, [[Cell; 3]; 11]> {
    BTreeMap::from([
        // The admin of micro: everything, everywhere.
        ("admin@micro", [[Y, Y, Y]; 11]),
        // An admin of `a`: everything in `a` but the runtime (which runs code as the
        // server's user: admins of micro only), nothing elsewhere.
        (
            "admin@a",
            [
                [Y, F, F],
                [Y, F, F],
                [Y, F, F],
                [Y, F, F],
                [Y, F, F],
                [Y, F, F],
                [Y, F, F],
                [Y, F, F],
                [Y, F, F],
                [Y, F, F],
                [F, F, F],
            ],
        ),
        // A service of `a`: register, store, config, broker and events of `a`; never accounts,
        // rules or the runtime.
        (
            "service@a",
            [
                [Y, F, F],
                [Y, F, F],
                [Y, F, F],
                [Y, F, F],
                [Y, F, F],
                [Y, F, F],
                [Y, F, F],
                [F, F, F],
                [F, F, F],
                [F, F, F],
                [F, F, F],
            ],
        ),
        // An account with a scope of its own: what the rules grant (here, the default rule:
        // calls), and none of the platform's admin operations.
        (
            "reader@a",
            [
                [Y, F, F],
                [Y, F, F],
                [F, F, F],
                [F, F, F],
                [F, F, F],
                [Y, F, F],
                [Y, F, F],
                [F, F, F],
                [F, F, F],
                [F, F, F],
                [F, F, F],
            ],
        ),
        // Nobody: what the rules grant, in a namespace that exists; never `*`.
        (
            "nobody",
            [
                [Y, Y, U],
                [Y, Y, U],
                [U, U, U],
                [U, U, U],
                [U, U, U],
                [Y, Y, U],
                [Y, Y, U],
                [U, U, U],
                [U, U, U],
                [U, U, U],
                [U, U, U],
            ],
        ),
    ])
}

/// A door: answers the HTTP-style code of one call.
#[derive(Clone)]
enum Door {
    Proxy(String),
    Gateway(String),
}

impl Door {
    async fn code(
        &self,
        token: Option<&str>,
        namespace: &str,
        (service, endpoint, json): (&str, &str, &str),
    ) -> u16 {
        match self {
            Door::Proxy(address) => {
                let mut client = ProxyClient::connect(format!("http://{address}"))
                    .await
                    .expect("proxy");
                let mut req = tonic::Request::new(CallRequest {
                    service: service.into(),
                    endpoint: endpoint.into(),
                    json: json.into(),
                    ..Default::default()
                });
                req.metadata_mut().insert(
                    "micro-namespace",
                    MetadataValue::try_from(namespace).expect("namespace"),
                );
                if let Some(token) = token {
                    req.metadata_mut().insert(
                        "authorization",
                        MetadataValue::try_from(format!("Bearer {token}")).expect("token"),
                    );
                }
                match client.call(req).await {
                    Ok(_) => 200,
                    Err(status) => micro::status::from_status("matrix", &status).code,
                }
            }
            Door::Gateway(address) => {
                let (group, method) = endpoint.split_once('.').expect("Svc.Method");
                let path = format!(
                    "/{service}/{}/{}",
                    group.to_lowercase(),
                    lower_camel(method)
                );
                let bearer = token.map(|t| format!("Bearer {t}"));
                let mut headers = vec![
                    ("Content-Type", "application/json"),
                    ("Micro-Namespace", namespace),
                ];
                if let Some(b) = &bearer {
                    headers.push(("Authorization", b));
                }
                let address = address.clone();
                let headers: Vec<(String, String)> = headers
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect();
                let json = json.to_owned();
                tokio::task::spawn_blocking(move || {
                    let headers: Vec<(&str, &str)> = headers
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect();
                    micro_e2e::http(&address, "POST", &path, &headers, &json).status
                })
                .await
                .expect("http")
            }
        }
    }
}

fn lower_camel(method: &str) -> String {
    let mut chars = method.chars();
    chars
        .next()
        .map(|c| c.to_ascii_lowercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

/// An account of `ns` with `scopes`, made by the micro admin; answers its token.
async fn account(door: &Door, admin: &str, ns: &str, id: &str, scopes: &str) -> String {
    let json = format!(r#"{{"id":"{id}","secret":"pw-{id}","scopes":["{scopes}"]}}"#);
    let code = door
        .code(Some(admin), ns, ("auth", "Auth.Generate", &json))
        .await;
    assert_eq!(code, 200, "create {id} in {ns}");
    let Door::Proxy(address) = door else {
        unreachable!("accounts are made through the proxy")
    };
    let mut auth = micro_proto::auth::auth_client::AuthClient::connect(format!("http://{address}"))
        .await
        .expect("auth");
    let mut req = tonic::Request::new(micro_proto::auth::TokenRequest {
        id: id.into(),
        secret: format!("pw-{id}"),
        refresh_token: String::new(),
    });
    req.metadata_mut()
        .insert("micro-namespace", MetadataValue::try_from(ns).expect("ns"));
    auth.token(req)
        .await
        .expect("token")
        .into_inner()
        .token
        .expect("a token")
        .access_token
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scope_gets_exactly_what_the_policy_says_on_every_door() {
    let platform = platform(true).await;
    let proxy = Door::Proxy(platform.grpc_address().to_string());
    let gateway = Door::Gateway(platform.api_address().expect("gateway").to_string());
    let admin = admin_token(&platform).await;
    // Two namespaces, made by the micro admin (each by its first account).
    let callers: Vec<(&str, Option<String>, &str)> = vec![
        ("admin@micro", Some(admin.clone()), "micro"),
        (
            "admin@a",
            Some(account(&proxy, &admin, "a", "boss", "admin").await),
            "a",
        ),
        (
            "service@a",
            Some(account(&proxy, &admin, "a", "svc", "service").await),
            "a",
        ),
        (
            "reader@a",
            Some(account(&proxy, &admin, "a", "reader", "reader").await),
            "a",
        ),
        ("nobody", None, "a"),
    ];
    account(&proxy, &admin, "b", "someone", "admin").await;

    let policy = expected();
    let mut wrong = Vec::new();
    for door in [&proxy, &gateway] {
        for (who, token, own) in &callers {
            let other = if *own == "b" { "a" } else { "b" };
            for (i, (label, service, endpoint, json)) in OPERATIONS.iter().enumerate() {
                for (j, ns) in [*own, other, "*"].into_iter().enumerate() {
                    let code = door
                        .code(token.as_deref(), ns, (service, endpoint, json))
                        .await;
                    let want = policy[who][i][j];
                    if Cell::of(code) != want {
                        let door = match door {
                            Door::Proxy(_) => "proxy",
                            Door::Gateway(_) => "gateway",
                        };
                        wrong.push(format!(
                            "{door}: {who} {label} in {ns:?}: got {code}, want {want:?}"
                        ));
                    }
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "cells that differ from the policy:\n{}",
        wrong.join("\n")
    );
    platform.stop().await;
}
