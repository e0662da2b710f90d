//! Auth end to end (issue 6's acceptance): lockdown, tokens, passwords, namespaces, refresh and
//! forged tokens, through the CLI and the HTTP gateway of a real `micro server`.

use micro_e2e::{
    Output, Sandbox,
    helloworld::{self, helloworld_client},
    http,
};

fn ok(out: &Output, what: &str) {
    assert_eq!(out.code, 0, "{what}: {out:?}");
}

fn refused(out: &Output, what: &str, says: &str) {
    assert_ne!(out.code, 0, "{what} should fail: {out:?}");
    assert!(out.stderr.contains(says), "{what}: {out:?}");
}

fn post(
    sb: &Sandbox,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, serde_json::Value) {
    let mut all = vec![("Content-Type", "application/json")];
    all.extend_from_slice(headers);
    let rsp = http(
        sb.api.as_deref().expect("gateway"),
        "POST",
        path,
        &all,
        body,
    );
    let json =
        serde_json::from_str(&rsp.body).unwrap_or_else(|_| panic!("JSON from {path}: {rsp:?}"));
    (rsp.status, json)
}

/// Calls helloworld's node at `address` with a plain tonic client (no proxy, no gateway):
/// `Helloworld.Call`, or with `stream` the first message of `Helloworld.Stream`.
fn direct(address: &str, token: Option<&str>, stream: bool) -> Result<String, tonic::Status> {
    let authorize = |metadata: &mut tonic::metadata::MetadataMap| {
        if let Some(token) = token {
            let value = format!("Bearer {token}").parse().expect("a header value");
            metadata.insert("authorization", value);
        }
    };
    let url = format!("http://{address}");
    tokio::runtime::Runtime::new()
        .expect("a runtime")
        .block_on(async move {
            let mut client = helloworld_client::HelloworldClient::connect(url)
                .await
                .expect("connect to helloworld");
            if stream {
                let mut req = tonic::Request::new(helloworld::StreamingRequest { count: 1 });
                authorize(req.metadata_mut());
                let mut answers = client.stream(req).await?.into_inner();
                let first = answers.message().await?;
                return Ok(format!("{first:?}"));
            }
            let mut req = tonic::Request::new(helloworld::Request {
                name: "Direct".into(),
            });
            authorize(req.metadata_mut());
            Ok(client.call(req).await?.into_inner().msg)
        })
}

#[test]
fn lockdown_leaves_only_what_the_rules_allow() {
    let mut sb = Sandbox::new();
    sb.start_server();

    // Out of the box: anyone may call, but the store wants an admin.
    let (status, err) = post(&sb, "/store/list", &[], "{}");
    assert_eq!(status, 401, "{err}");
    assert_eq!(err["code"], 401);
    assert_eq!(err["status"], "Unauthorized");
    assert!(err["detail"].as_str().unwrap().contains("admin"), "{err}");

    let token = sb.micro(&[
        "call",
        "auth",
        "Auth.Token",
        r#"{"id":"admin","secret":"micro"}"#,
    ]);
    ok(&token, "Auth.Token");
    let token: serde_json::Value = serde_json::from_str(&token.stdout).unwrap();
    for field in ["access_token", "refresh_token", "expiry"] {
        assert!(
            token["token"][field].is_string(),
            "{field} is a string: {token}"
        );
    }

    sb.login("admin", "micro");
    let [(id_var, id), (secret_var, secret)] = sb.service_account("hello-account");
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
        &[
            "auth",
            "create",
            "rule",
            "authpublic",
            "--resource",
            "service:auth:Auth.Token",
        ],
        &[
            "auth",
            "create",
            "rule",
            "nostream",
            "--scope",
            "*",
            "--resource",
            "service:helloworld:Helloworld.Stream",
            "--access",
            "denied",
            "--priority",
            "1",
        ],
        &["auth", "delete", "rule", "default"],
    ] {
        ok(&sb.micro(args), &args.join(" "));
    }
    let rules = sb.micro(&["auth", "list", "rules"]);
    assert_eq!(
        rules.stdout,
        "ID            SCOPE     ACCESS   RESOURCE                              PRIORITY\n\
         nostream      *         denied   service:helloworld:Helloworld.Stream  1\n\
         authpublic    <public>  granted  service:auth:Auth.Token               0\n\
         onlyloggedin  *         granted  *:*:*                                 0\n",
        "{rules:?}"
    );
    // A service with an account of its own still gets in.
    let hello = sb.helloworld(&[(id_var, &id), (secret_var, &secret)]);

    // Why is a call allowed or not? The rule that decided, or that none did.
    // Logging in is beyond the rules: no rule change can lock anyone out.
    let verdict = sb.micro(&["auth", "verify", "--resource", "service:auth:Auth.Token"]);
    assert!(
        verdict
            .stdout
            .starts_with("granted\nrule: none matched\nwhy: no rule decides this"),
        "{verdict:?}"
    );
    let verdict = sb.micro(&[
        "auth",
        "verify",
        "--resource",
        "service:helloworld:Helloworld.Call",
    ]);
    assert_eq!(
        verdict.stdout,
        "denied\nrule: none matched\nwhy: no rule grants access without an account\n"
    );
    let verdict = sb.micro(&[
        "auth",
        "verify",
        "--account",
        "me@email.com",
        "--resource",
        "service:helloworld:Helloworld.Call",
    ]);
    assert!(
        verdict.stdout.starts_with("granted\nrule: onlyloggedin "),
        "{verdict:?}"
    );

    // Anonymous callers: 401 everywhere but Auth.Token.
    let (status, _) = post(&sb, "/helloworld/call", &[], r#"{"name":"x"}"#);
    assert_eq!(status, 401);
    let (status, _) = post(&sb, "/registry/listServices", &[], "{}");
    assert_eq!(status, 401);
    let (status, _) = post(&sb, "/nosuch/call", &[], "{}");
    assert_eq!(status, 401, "nothing is said of what exists");
    let (status, body) = post(
        &sb,
        "/auth/auth/token",
        &[],
        r#"{"id":"me@email.com","secret":"pass1"}"#,
    );
    assert_eq!(status, 200, "{body}");

    ok(&sb.micro(&["logout"]), "logout");
    refused(
        &sb.micro(&["auth", "list", "rules"]),
        "rules, logged out",
        "log in",
    );
    let call = sb.micro(&["call", "helloworld", "Helloworld.Call", r#"{"name":"x"}"#]);
    assert_eq!(call.code, 2, "unauthorized exits 2: {call:?}");

    // A plain account: what any account may do works; admin work is refused with 403.
    sb.login("me@email.com", "pass1");
    ok(&sb.micro(&["services"]), "services");
    let call = sb.micro(&["helloworld", "call", "--name=Me"]);
    assert!(call.stdout.contains("Hello Me"), "{call:?}");
    refused(&sb.micro(&["store", "list"]), "store list", "may not");
    refused(&sb.micro(&["auth", "list", "rules"]), "rules", "may not");
    let bearer = format!("Bearer {}", sb.token());
    let (status, err) = post(&sb, "/store/list", &[("Authorization", &bearer)], "{}");
    assert_eq!((status, err["code"].as_i64()), (403, Some(403)), "{err}");
    let (status, body) = post(
        &sb,
        "/helloworld/call",
        &[("Authorization", &bearer)],
        r#"{"name":"Web"}"#,
    );
    assert_eq!((status, body["msg"].as_str()), (200, Some("Hello Web")));
    // The cookie works as the header does.
    let cookie = format!("micro-token={}", sb.token());
    let (status, _) = post(&sb, "/helloworld/call", &[("Cookie", &cookie)], "{}");
    assert_eq!(status, 200);

    // A client that dials the service's node itself, past the proxy and the gateway, meets the
    // same rules: the service's own server checks every caller before its handler runs.
    let me = sb.token();
    let at = &hello.address;
    assert_eq!(direct(at, Some(&me), false).unwrap(), "Hello Direct");
    let anonymous = direct(at, None, false).unwrap_err();
    assert_eq!(
        anonymous.code(),
        tonic::Code::Unauthenticated,
        "{anonymous:?}"
    );
    assert!(anonymous.message().contains("log in"), "{anonymous:?}");
    let forged = direct(at, Some("not.a.token"), false).unwrap_err();
    assert_eq!(forged.code(), tonic::Code::Unauthenticated, "{forged:?}");
    let denied = direct(at, Some(&me), true).unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied, "{denied:?}");
    assert!(denied.message().contains("me@email.com"), "{denied:?}");
    drop(hello);
}

#[test]
fn passwords_names_refresh_and_forged_tokens() {
    let sb = Sandbox::with_server();
    ok(
        &sb.micro(&[
            "auth", "create", "account", "u1", "--name", "me@x.com", "--secret", "one",
        ]),
        "create",
    );
    refused(
        &sb.micro(&[
            "auth", "create", "account", "u2", "--name", "me@x.com", "--secret", "x",
        ]),
        "a taken name",
        "already exists",
    );
    refused(
        &sb.micro(&["auth", "create", "account", "me@x.com", "--secret", "x"]),
        "an id that is a name",
        "already exists",
    );
    sb.login("me@x.com", "one");
    assert_eq!(sb.micro(&["user"]).stdout, "me@x.com\n");
    sb.login("u1", "one");

    refused(
        &sb.micro(&[
            "user",
            "set",
            "password",
            "--old-password",
            "wrong",
            "--new-password",
            "two",
        ]),
        "a wrong old password",
        "old secret is wrong",
    );
    ok(
        &sb.micro(&[
            "user",
            "set",
            "password",
            "--old-password",
            "one",
            "--new-password",
            "two",
        ]),
        "change",
    );
    refused(
        &sb.micro(&["login", "--username", "u1", "--password", "one"]),
        "the old password",
        "wrong id, name or secret",
    );
    sb.login("u1", "two");

    // An expired login is refreshed without a new one: the saved expiry is moved to the past.
    let before = sb.token();
    let path = sb.home.path().join("tokens");
    let mut saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    saved["logins"]["local/micro"]["expiry"] = 0.into();
    std::fs::write(&path, serde_json::to_vec(&saved).unwrap()).unwrap();
    ok(&sb.micro(&["services"]), "services with a stale login");
    let after = sb.token();
    assert_ne!(before, after, "a new access token");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "only the owner reads the tokens");
    }

    // A token whose claims were edited is refused, as is one with a broken signature.
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let parts: Vec<&str> = after.split('.').collect();
    let claims = String::from_utf8(b64.decode(parts[1]).unwrap()).unwrap();
    let promoted = b64.encode(claims.replace(r#""scopes":[]"#, r#""scopes":["admin"]"#));
    assert_ne!(promoted, parts[1], "the claims changed: {claims}");
    let forged = format!("Bearer {}.{promoted}.{}", parts[0], parts[2]);
    let (status, err) = post(
        &sb,
        "/registry/listServices",
        &[("Authorization", &forged)],
        "{}",
    );
    assert_eq!(status, 401, "{err}");
    let broken = format!("Bearer {}.{}.{}x", parts[0], parts[1], parts[2]);
    let (status, _) = post(
        &sb,
        "/registry/listServices",
        &[("Authorization", &broken)],
        "{}",
    );
    assert_eq!(status, 401);
    let (status, _) = post(
        &sb,
        "/registry/listServices",
        &[("Authorization", &format!("Bearer {after}"))],
        "{}",
    );
    assert_eq!(status, 200);
}

#[test]
fn namespaces_are_walls() {
    let sb = Sandbox::with_server();
    ok(
        &sb.micro(&["config", "set", "somekey", "val1"]),
        "config set",
    );
    ok(
        &sb.micro(&["store", "write", "k", "in-micro"]),
        "store write",
    );

    // No admin in a new namespace until one is made (a micro admin may).
    let accounts = sb.micro(&["--namespace", "random", "auth", "list", "accounts"]);
    assert_eq!(accounts.stdout, "ID  NAME  TYPE  SCOPES\n", "{accounts:?}");
    refused(
        &sb.micro(&[
            "--namespace",
            "random",
            "login",
            "--username",
            "admin",
            "--password",
            "micro",
        ]),
        "micro's admin in random",
        "wrong id, name or secret",
    );
    ok(
        &sb.micro(&[
            "--namespace",
            "random",
            "auth",
            "create",
            "account",
            "admin",
            "--secret",
            "r",
            "--scopes",
            "admin",
        ]),
        "an admin for random",
    );
    ok(&sb.micro(&["user", "namespace", "set", "random"]), "switch");
    assert_eq!(sb.micro(&["user", "namespace"]).stdout, "random\n");
    sb.login("admin", "r");
    let got = sb.micro(&["config", "get", "somekey"]);
    assert_eq!(
        (got.code, got.stderr.as_str()),
        (1, "Not found\n"),
        "{got:?}"
    );
    let got = sb.micro(&["store", "read", "k"]);
    assert_eq!(
        (got.code, got.stderr.as_str()),
        (1, "Not found\n"),
        "{got:?}"
    );
    ok(
        &sb.micro(&["store", "write", "k", "in-random"]),
        "store write",
    );

    // random's admin cannot reach into micro, whatever the header says.
    let bearer = format!("Bearer {}", sb.token());
    let (status, err) = post(
        &sb,
        "/store/read",
        &[("Authorization", &bearer), ("Micro-Namespace", "micro")],
        r#"{"key":"k"}"#,
    );
    assert_eq!(status, 403, "{err}");

    // The platform's services, registered once in micro, serve every namespace: each caller in
    // its own, over the gateway and the proxy alike.
    let (status, body) = post(
        &sb,
        "/store/read",
        &[("Authorization", &bearer)],
        r#"{"key":"k","table":"micro"}"#,
    );
    assert_eq!(status, 200, "{body}");
    let in_random = "aW4tcmFuZG9t"; // "in-random", as JSON carries bytes
    assert!(body.to_string().contains(in_random), "{body}");
    let call = sb.micro(&[
        "call",
        "store",
        "Store.Read",
        r#"{"key":"k","table":"micro"}"#,
    ]);
    assert!(call.stdout.contains(in_random), "{call:?}");

    ok(&sb.micro(&["user", "namespace", "set", "micro"]), "back");
    assert_eq!(sb.micro(&["config", "get", "somekey"]).stdout, "val1\n");
    assert_eq!(sb.micro(&["store", "read", "k"]).stdout, "in-micro\n");
}

#[test]
fn logins_are_kept_per_env() {
    let mut one = Sandbox::new();
    one.start_server();
    let mut two = Sandbox::new();
    two.start_server();
    // The CLI of `one`'s home, told where to go by its envs alone.
    let cli = |args: &[&str]| {
        let mut cmd = one.micro_command(args);
        cmd.env_remove("MICRO_SERVER_ADDRESS");
        micro_e2e::run(cmd)
    };
    ok(&cli(&["env", "add", "one", one.address()]), "env add one");
    ok(&cli(&["env", "add", "two", two.address()]), "env add two");
    ok(&cli(&["env", "set", "one"]), "env set one");
    for env in ["one", "two"] {
        let login = [
            "-e",
            env,
            "login",
            "--username",
            "admin",
            "--password",
            "micro",
        ];
        ok(&cli(&login), &format!("login to {env}"));
        ok(
            &cli(&["-e", env, "config", "set", "where", env]),
            &format!("config set in {env}"),
        );
    }
    assert_eq!(cli(&["config", "get", "where"]).stdout, "one\n");
    assert_eq!(
        cli(&["-e", "two", "config", "get", "where"]).stdout,
        "two\n"
    );

    // Logging out of one env leaves the other's login alone.
    ok(&cli(&["-e", "two", "logout"]), "logout of two");
    refused(
        &cli(&["-e", "two", "config", "get", "where"]),
        "two, logged out",
        "log in",
    );
    assert_eq!(cli(&["config", "get", "where"]).stdout, "one\n");

    // Switching envs switches logins.
    ok(&cli(&["env", "set", "two"]), "env set two");
    refused(
        &cli(&["config", "get", "where"]),
        "two, logged out",
        "log in",
    );
    ok(
        &cli(&["login", "--username", "admin", "--password", "micro"]),
        "login to two",
    );
    assert_eq!(cli(&["config", "get", "where"]).stdout, "two\n");

    // Removing an env forgets its logins.
    ok(&cli(&["env", "del", "one"]), "env del one");
    let tokens = std::fs::read_to_string(one.home.path().join("tokens")).expect("tokens file");
    let tokens: serde_json::Value = serde_json::from_str(&tokens).expect("tokens JSON");
    let logins: Vec<&String> = tokens["logins"]
        .as_object()
        .expect("logins")
        .keys()
        .collect();
    assert_eq!(logins, ["two/micro"], "{tokens}");
}
