//! Issue 14's defects, each as the attacker (or the unlucky user) met it, against a real
//! `micro server`: one anonymous request must not take the platform down, no account may climb
//! out of its scope, and a client's mistake is a 4xx that says what was wrong.

use std::{io::Read, net::TcpStream, time::Duration};

use micro_e2e::{Output, Sandbox, http};

fn ok(out: &Output, what: &str) {
    assert_eq!(out.code, 0, "{what}: {out:?}");
}

fn post(sb: &Sandbox, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    let mut all = vec![("Content-Type", "application/json")];
    all.extend_from_slice(headers);
    let rsp = http(
        sb.api.as_deref().expect("gateway"),
        "POST",
        path,
        &all,
        body,
    );
    (rsp.status, rsp.body)
}

fn alive(sb: &Sandbox) {
    let rsp = http(sb.api.as_deref().expect("gateway"), "GET", "/", &[], "");
    assert_eq!(rsp.status, 200, "the gateway still answers: {rsp:?}");
    ok(&sb.micro(&["services"]), "the gRPC door still answers");
}

/// An access token for `id`/`secret`, through `micro call` (the CLI's saved login stays).
fn token_of(sb: &Sandbox, id: &str, secret: &str) -> String {
    let out = sb.micro(&[
        "call",
        "auth",
        "Auth.Token",
        &format!(r#"{{"id":"{id}","secret":"{secret}"}}"#),
    ]);
    ok(&out, "Auth.Token");
    let json: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
    json["token"]["access_token"]
        .as_str()
        .expect("a token")
        .to_owned()
}

/// A POST from local address `from` (another loopback address is another peer).
fn post_from(from: &str, to: &str, path: &str, body: &str) -> String {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let socket = tokio::net::TcpSocket::new_v4().expect("socket");
            socket
                .bind(format!("{from}:0").parse().expect("address"))
                .expect("bind");
            let mut stream = socket.connect(to.parse().expect("address")).await.expect("connect");
            let request = format!(
                "POST {path} HTTP/1.1\r\nHost: {to}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(request.as_bytes()).await.expect("write");
            let mut answer = String::new();
            stream.read_to_string(&mut answer).await.expect("read");
            answer
        })
}

#[test]
fn deep_query_strings_and_config_paths_are_400s_and_the_server_lives() {
    let sb = Sandbox::with_server();
    for key in [
        format!("b{}", "[c]".repeat(4000)),
        format!("b{}", ".c".repeat(4000)),
    ] {
        for path in ["/auth/auth/token", "/registry/registry/listServices"] {
            let (status, body) = post(&sb, &format!("{path}?{key}=1"), &[], "{}");
            assert_eq!(status, 400, "{path}: {body}");
            assert!(body.contains("limit is 32"), "{body}");
        }
    }
    alive(&sb);

    // A body nested past the JSON parser's depth, and a store key past its length.
    let deep = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
    let (status, body) = post(&sb, "/registry/registry/listServices", &[], &deep);
    assert_eq!(status, 400, "{body}");
    // An object body goes to the transcoder as sent: as deep, it is as much a 400.
    let deep = format!("{}1{}", r#"{"a":"#.repeat(100_000), "}".repeat(100_000));
    let (status, body) = post(&sb, "/registry/registry/listServices", &[], &deep);
    assert_eq!(status, 400, "{body}");
    let out = sb.micro(&["store", "write", &"k".repeat(5000), "v"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("the limit is 1024"), "{out:?}");
    alive(&sb);
    for (parts, says) in [(20_000, "the limit is 1024"), (200, "the limit is 32")] {
        let path = vec!["a"; parts].join(".");
        let out = sb.micro(&["config", "set", &path, "1"]);
        assert_eq!(out.code, 1, "{out:?}");
        assert!(out.stderr.contains(says), "{out:?}");
        alive(&sb);
    }
}

#[test]
fn a_config_document_cannot_be_nested_past_reading() {
    let sb = Sandbox::with_server();
    let path = vec!["p"; 30].join(".");
    let mut value = "1".to_owned();
    for _ in 0..100 {
        value = format!(r#"{{"d":{value}}}"#);
    }
    let out = sb.micro(&["config", "set", &path, &value]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("levels deep"), "{out:?}");
    // Nothing was stored; the document is as readable and writable as before.
    assert_eq!(sb.micro(&["config", "get", "p"]).code, 1);
    ok(&sb.micro(&["config", "set", "ok", "1"]), "set");
    assert_eq!(sb.micro(&["config", "get", "ok"]).stdout, "1\n");
}

#[test]
fn a_deleted_account_or_an_old_secret_loses_its_tokens_at_once() {
    let sb = Sandbox::with_server();
    for id in ["bob", "carol"] {
        ok(
            &sb.micro(&[
                "auth", "create", "account", id, "--secret", "pw-1", "--scopes", "admin",
            ]),
            "create",
        );
    }
    let bob = token_of(&sb, "bob", "pw-1");
    let carol = token_of(&sb, "carol", "pw-1");
    for token in [&bob, &carol] {
        let (status, body) = post(
            &sb,
            "/store/store/list",
            &[("Authorization", &format!("Bearer {token}"))],
            "{}",
        );
        assert_eq!(status, 200, "{body}");
    }

    ok(
        &sb.micro(&["auth", "delete", "account", "bob"]),
        "delete bob",
    );
    let (status, body) = post(
        &sb,
        "/auth/auth/generate",
        &[("Authorization", &format!("Bearer {bob}"))],
        r#"{"id":"bob2","secret":"x","scopes":["admin"]}"#,
    );
    assert_eq!(status, 401, "a deleted account mints nothing: {body}");
    assert!(body.contains("revoked"), "{body}");

    let out = sb.micro(&[
        "call",
        "auth",
        "Accounts.ChangeSecret",
        r#"{"id":"carol","new_secret":"pw-2"}"#,
    ]);
    ok(&out, "change carol's secret");
    let (status, body) = post(
        &sb,
        "/store/store/list",
        &[("Authorization", &format!("Bearer {carol}"))],
        "{}",
    );
    assert_eq!(status, 401, "{body}");
    let fresh = token_of(&sb, "carol", "pw-2");
    let (status, body) = post(
        &sb,
        "/store/store/list",
        &[("Authorization", &format!("Bearer {fresh}"))],
        "{}",
    );
    assert_eq!(status, 200, "a token issued after the change works: {body}");
}

/// Rules in `namespace` that deny everyone everything: a rule that denies all above the
/// default, and the default rule gone.
fn deny_everything(sb: &Sandbox, namespace: &str) {
    for args in [
        &[
            "--namespace",
            namespace,
            "auth",
            "create",
            "rule",
            "nothing",
            "--scope",
            "*",
            "--resource",
            "*:*:*",
            "--access",
            "denied",
            "--priority",
            "100",
        ][..],
        &[
            "--namespace",
            namespace,
            "auth",
            "delete",
            "rule",
            "default",
        ],
    ] {
        ok(&sb.micro(args), &args.join(" "));
    }
}

#[test]
fn no_rule_change_locks_the_platform() {
    let sb = Sandbox::with_server();
    deny_everything(&sb, "micro");
    // Logging in is beyond the rules, and so is an admin managing them.
    ok(&sb.micro(&["logout"]), "logout");
    sb.login("admin", "micro");
    ok(&sb.micro(&["auth", "list", "rules"]), "list rules");
    ok(&sb.micro(&["auth", "delete", "rule", "nothing"]), "undo");
    ok(
        &sb.micro(&["auth", "create", "rule", "default", "--resource", "*:*:*"]),
        "restore",
    );
    ok(&sb.micro(&["store", "list"]), "the store answers again");
    // Another namespace's rules do not lock the platform's admin out of that namespace's
    // runtime either (the runtime is for admins of micro; micro's own rules decide in micro).
    deny_everything(&sb, "team");
    ok(
        &sb.micro(&["--namespace", "team", "status"]),
        "the runtime of team answers micro's admin",
    );
}

#[test]
fn an_operator_with_the_servers_files_recovers_a_lost_admin() {
    let mut sb = Sandbox::with_server();
    ok(
        &sb.micro(&[
            "user",
            "set",
            "password",
            "--old-password",
            "micro",
            "--new-password",
            "forgotten",
        ]),
        "change the password",
    );
    sb.login("admin", "forgotten");
    let old = sb.token();
    // Not while the server holds the files.
    let busy = sb.micro(&["server", "recover", "--password", "x"]);
    assert_ne!(busy.code, 0, "{busy:?}");
    assert!(busy.stderr.contains("in use"), "{busy:?}");
    sb.kill_server();
    let out = sb.micro(&["server", "recover", "--password", "found"]);
    ok(&out, "recover");
    assert!(
        out.stdout.contains("can log in with the new password"),
        "{out:?}"
    );
    sb.start_server();
    sb.login("admin", "found");
    let (status, _) = post(
        &sb,
        "/store/store/list",
        &[("Authorization", &format!("Bearer {old}"))],
        "{}",
    );
    assert_eq!(status, 401, "tokens from before the recovery are void");
}

#[test]
fn failed_logins_are_throttled_per_account() {
    let sb = Sandbox::with_server();
    ok(
        &sb.micro(&["auth", "create", "account", "dave", "--secret", "right"]),
        "create",
    );
    let login = |secret: &str| {
        post(
            &sb,
            "/auth/auth/token",
            &[],
            &format!(r#"{{"id":"dave","secret":"{secret}"}}"#),
        )
    };
    for _ in 0..5 {
        assert_eq!(login("wrong").0, 401, "five free failures");
    }
    // Then each failure closes the account for longer (1 s, 2 s, 4 s, ...).
    let closed = (0..8).any(|_| login("wrong").0 == 429);
    assert!(closed, "guessing is throttled");
    let (status, body) = login("right");
    assert_eq!(status, 429, "even the right secret waits: {body}");
    assert!(body.contains("too many failed logins"), "{body}");
    // Other accounts are not held up, and neither is dave from elsewhere.
    assert!(!token_of(&sb, "admin", "micro").is_empty());
    let from_elsewhere = post_from(
        "127.0.0.2",
        sb.api.as_deref().expect("gateway"),
        "/auth/auth/token",
        r#"{"id":"dave","secret":"right"}"#,
    );
    assert!(
        from_elsewhere.starts_with("HTTP/1.1 200"),
        "{from_elsewhere}"
    );
    // An id no account could have is refused by auth, not echoed, and counted nowhere: a
    // caller cannot grow the throttle's memory with megabyte ids.
    let huge = "u".repeat(3_000_000);
    let (status, body) = post(
        &sb,
        "/auth/auth/token",
        &[],
        &format!(r#"{{"id":"{huge}","secret":"x"}}"#),
    );
    assert_eq!(status, 400, "{}", &body[..body.len().min(300)]);
    assert!(
        body.contains("micro.auth"),
        "{}",
        &body[..body.len().min(300)]
    );
    assert!(
        body.contains("the limit is 256"),
        "{}",
        &body[..body.len().min(300)]
    );
    assert!(
        body.len() < 1000,
        "the id is not echoed: {} bytes",
        body.len()
    );
    // A token sent under another scheme is told which one to use.
    let (status, body) = post(
        &sb,
        "/helloworld/call",
        &[("Authorization", "Basic YWRtaW46bWljcm8=")],
        "{}",
    );
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("send Bearer TOKEN"), "{body}");
    // Nor is any other error's quote of the request past 1 KiB: a 60,000-byte path is a short
    // 404.
    let (status, body) = post(&sb, &format!("/{}/call", "a".repeat(60_000)), &[], "{}");
    assert_eq!(status, 404, "{}", &body[..body.len().min(300)]);
    assert!(body.len() < 1300, "a bounded answer: {} bytes", body.len());
}

/// A header that says who is calling, or where, sent twice is refused at every door: the server
/// does not guess which one was meant.
#[test]
fn a_namespace_or_token_sent_twice_is_refused() {
    let sb = Sandbox::with_server();
    let token = format!("Bearer {}", token_of(&sb, "admin", "micro"));
    for headers in [
        [("Micro-Namespace", "micro"), ("Micro-Namespace", "other")],
        [
            ("Authorization", token.as_str()),
            ("Authorization", "Bearer x"),
        ],
    ] {
        let (status, body) = post(&sb, "/registry/registry/listServices", &headers, "{}");
        assert_eq!(status, 400, "{headers:?}: {body}");
        assert!(body.contains("more than once"), "{body}");
    }
    alive(&sb);
}

#[test]
fn strangers_see_and_write_nothing_outside_what_the_rules_give_them() {
    let sb = Sandbox::with_server();
    let _hello = sb.helloworld(&[]);
    for args in [
        &[
            "auth",
            "create",
            "account",
            "me@email.com",
            "--secret",
            "pass1",
        ][..],
        &[
            "auth",
            "create",
            "rule",
            "onlyloggedin",
            "--scope",
            "*",
            "--resource",
            "*:*:*",
        ],
        &["auth", "delete", "rule", "default"],
    ] {
        ok(&sb.micro(args), &args.join(" "));
    }
    let api = sb.api.as_deref().expect("gateway");
    let web = sb.web.as_deref().expect("dashboard");

    // `*` is for admins of micro only, on every door.
    let (status, body) = post(
        &sb,
        "/registry/registry/listServices",
        &[("Micro-Namespace", "*")],
        "{}",
    );
    assert_eq!(status, 401, "{body}");
    let rsp = http(web, "GET", "/?namespace=*", &[], "");
    assert_eq!(rsp.status, 401, "{rsp:?}");
    let me = token_of(&sb, "me@email.com", "pass1");
    let bearer = format!("Bearer {me}");
    let (status, body) = post(
        &sb,
        "/registry/registry/listServices",
        &[("Micro-Namespace", "*"), ("Authorization", &bearer)],
        "{}",
    );
    assert_eq!(status, 403, "{body}");

    // The dashboard and /openapi.json show only what the caller may call.
    let rsp = http(web, "GET", "/", &[], "");
    assert_eq!(rsp.status, 200);
    assert!(!rsp.body.contains("helloworld"), "{}", rsp.body);
    let rsp = http(web, "GET", "/service/helloworld", &[], "");
    assert_eq!(rsp.status, 404, "{rsp:?}");
    assert!(
        !rsp.body.contains("127.0.0.1"),
        "no node addresses: {}",
        rsp.body
    );
    let rsp = http(web, "GET", "/", &[("Authorization", &bearer)], "");
    assert!(rsp.body.contains("helloworld"), "{}", rsp.body);
    // The dashboard's sessions are its own (the tokens stay in the server): a token cookie,
    // as earlier dashboards set, is no session there, and the browser is told to drop it.
    let rsp = http(
        web,
        "GET",
        "/service/helloworld",
        &[("Cookie", &format!("micro-token={me}"))],
        "",
    );
    assert_eq!(rsp.status, 404, "{rsp:?}");
    assert!(
        rsp.headers.iter().any(|(k, v)| k == "set-cookie"
            && v.starts_with("micro-token=;")
            && v.contains("Max-Age=0")),
        "{rsp:?}"
    );
    // The cookie counts only from the door's own origin: another site's page gets nothing.
    let cookie = format!("micro-token={me}");
    let rsp = http(
        api,
        "POST",
        "/helloworld/call",
        &[("Cookie", &cookie)],
        "{}",
    );
    assert_eq!(rsp.status, 200, "{rsp:?}");
    let rsp = http(
        api,
        "POST",
        "/helloworld/call",
        &[("Cookie", &cookie), ("Origin", "https://evil.example")],
        "{}",
    );
    assert_eq!(rsp.status, 401, "{rsp:?}");
    // A link on another site is a GET with no Origin; the browser still says it is cross-site.
    let rsp = http(
        api,
        "GET",
        "/helloworld/call?name=x",
        &[("Cookie", &cookie), ("Sec-Fetch-Site", "cross-site")],
        "",
    );
    assert_eq!(rsp.status, 401, "{rsp:?}");
    let rsp = http(api, "GET", "/openapi.json", &[], "");
    assert!(!rsp.body.contains("helloworld"), "{}", rsp.body);
    let rsp = http(
        api,
        "GET",
        "/openapi.json",
        &[("Authorization", &bearer)],
        "",
    );
    assert!(rsp.body.contains("/helloworld/call"), "{}", rsp.body);

    // A namespace nobody created takes nothing from strangers.
    for (path, body) in [
        (
            "/registry/registry/register",
            r#"{"service":{"name":"evil","version":"1","nodes":[{"id":"e-1","address":"10.0.0.1:22"}]}}"#,
        ),
        (
            "/events/events/publish",
            r#"{"topic":"t","payload":"dg=="}"#,
        ),
        (
            "/broker/broker/publish",
            r#"{"topic":"t","message":{"body":"dg=="}}"#,
        ),
    ] {
        let (status, answer) = post(&sb, path, &[("Micro-Namespace", "nobody-made-this")], body);
        assert_eq!(status, 404, "{path}: {answer}");
        assert!(answer.contains("does not exist"), "{answer}");
    }
    let rsp = http(web, "GET", "/?namespace=nobody-made-this", &[], "");
    assert_eq!(rsp.status, 404, "{rsp:?}");

    // The proxy dials only registered nodes.
    let out = sb.micro(&[
        "call",
        "helloworld",
        "Helloworld.Call",
        "--address",
        "127.0.0.1:1",
    ]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("not a registered node"), "{out:?}");
}

#[test]
fn client_mistakes_are_4xx_and_the_cli_does_not_panic() {
    let sb = Sandbox::with_server();
    let _hello = sb.helloworld(&[]);
    let rsp = http(
        sb.api.as_deref().expect("gateway"),
        "POST",
        "/helloworld/call",
        &[("Content-Type", "application/protobuf")],
        "\u{7f}\u{7f}\u{7f}garbage",
    );
    assert_eq!(rsp.status, 400, "{rsp:?}");
    assert!(
        rsp.body.contains("not a valid helloworld.Request"),
        "{}",
        rsp.body
    );
    // A body the gateway would have to decompress first is refused, not read as it stands.
    let (status, body) = post(
        &sb,
        "/helloworld/call",
        &[("Content-Encoding", "gzip")],
        r#"{"name":"x"}"#,
    );
    assert_eq!(status, 415, "{body}");
    assert!(body.contains("Content-Encoding (gzip)"), "{body}");
    let (status, body) = post(
        &sb,
        "/helloworld/call",
        &[("Content-Encoding", "identity"), ("Content-Encoding", "br")],
        r#"{"name":"x"}"#,
    );
    assert_eq!(status, 415, "every field counts: {body}");
    // Store databases and tables are names like any other: no control characters, 256 bytes.
    let bearer = format!("Bearer {}", token_of(&sb, "admin", "micro"));
    for (field, name) in [("table", "a\\tb".to_owned()), ("database", "x".repeat(300))] {
        let (status, body) = post(
            &sb,
            "/store/store/write",
            &[("Authorization", &bearer)],
            &format!(r#"{{"record":{{"key":"k","value":"dg=="}},"{field}":"{name}"}}"#),
        );
        assert_eq!(status, 400, "{field}: {body}");
        assert!(body.contains(&format!("{field} name")), "{body}");
    }

    let out = sb.micro(&[
        "call",
        "helloworld",
        "Helloworld.Call",
        "--request-timeout=99999999999999999s",
    ]);
    assert_eq!(out.code, 2, "a usage error, not a panic: {out:?}");
    assert!(out.stderr.contains("limit"), "{out:?}");
    assert!(!out.stderr.contains("panicked"), "{out:?}");
}

#[test]
fn the_servers_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let sb = Sandbox::with_server();
    ok(&sb.micro(&["store", "write", "k", "v"]), "write");
    ok(
        &sb.micro(&["config", "set", "s", "x", "--secret"]),
        "secret",
    );
    let server = sb.home.path().join("server");
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("exists").permissions().mode() & 0o777;
    assert_eq!(mode(&server), 0o700);
    assert_eq!(mode(&server.join("runtime")), 0o700);
    for file in ["store.redb", "events.redb", "auth.key", "config.key"] {
        assert_eq!(mode(&server.join(file)), 0o600, "{file}");
    }
}

#[test]
fn idle_connections_cannot_take_the_doors() {
    let mut sb = Sandbox::new();
    sb.start_server_with(&["--max-connections", "8"]);
    let api = sb.api.clone().expect("gateway");
    let idle: Vec<TcpStream> = (0..8)
        .map(|_| TcpStream::connect(&api).expect("connect"))
        .collect();
    // Past the limit: answered at once with a 503, not left hanging.
    let mut refused = TcpStream::connect(&api).expect("connect");
    refused
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut answer = String::new();
    let _ = refused.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer:?}");
    drop(idle);
    // Room again once they are gone.
    micro_e2e::wait_for(Duration::from_secs(10), "the gateway answers again", || {
        let rsp = http(&api, "GET", "/", &[], "");
        (rsp.status == 200).then_some(())
    });
}
