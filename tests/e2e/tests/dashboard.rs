//! The dashboard as its users meet it: in a real browser (headless Chromium driven by
//! Playwright, `tests/e2e/browser/dashboard.py`) — log in, find helloworld, call it from its
//! form, stream, write and read the store, follow a deployed service's logs, manage accounts,
//! and be refused another namespace's pages — and over plain HTTP for what a browser hides: the
//! session refreshed before its token expires, forms from another origin or without the CSRF
//! token refused, hostile input answered with a 4xx.
//!
//! `scripts/test` installs Debian's `chromium` and Playwright for Python (into the target
//! directory) and names them in `MICRO_CHROMIUM` and `MICRO_PLAYWRIGHT_PYTHON`; without them the
//! browser test fails (it is never skipped) and says how to get them.

use std::{path::Path, process::Command, time::Duration};

use micro_e2e::{HttpResponse, Sandbox, http, run, wait_for};

/// A build from cold can take minutes on two cores.
const BUILD: Duration = Duration::from_secs(900);

fn playwright_python() -> String {
    std::env::var("MICRO_PLAYWRIGHT_PYTHON").unwrap_or_else(|_| {
        panic!(
            "Playwright is not installed: run ./scripts/test, or `pip install playwright` and set MICRO_PLAYWRIGHT_PYTHON to that Python (and MICRO_CHROMIUM to a Chromium)"
        )
    })
}

fn ok(out: &micro_e2e::Output, what: &str) {
    assert_eq!(out.code, 0, "{what}: {out:?}");
}

#[test]
fn a_user_logs_in_calls_streams_edits_the_store_and_follows_logs_in_chromium() {
    let sb = Sandbox::with_server();
    let _hw = sb.helloworld(&[]);
    // A service deployed by the runtime, whose logs the browser follows.
    let work = tempfile::tempdir().unwrap();
    let mut new = sb.micro_command(&["new", "hello-rt"]);
    new.current_dir(work.path());
    ok(&run(new), "micro new");
    let mut deploy = sb.micro_command(&["run", "./hello-rt"]);
    deploy.current_dir(work.path());
    let deployed = run(deploy);
    ok(&deployed, "micro run");
    wait_for(BUILD, "hello-rt registered", || {
        sb.micro(&["services"])
            .stdout
            .lines()
            .any(|l| l == "hello-rt")
            .then_some(())
    });
    ok(
        &sb.micro(&["config", "set", "app.greeting", "\"hi\""]),
        "config set",
    );
    ok(
        &sb.micro(&["config", "set", "app.password", "hunter2", "--secret"]),
        "config set --secret",
    );
    ok(
        &sb.micro(&["events", "publish", "orders", r#"{"order":1}"#]),
        "events publish",
    );
    // Another namespace, and its admin.
    ok(
        &sb.micro(&[
            "--namespace",
            "team",
            "auth",
            "create",
            "account",
            "ada",
            "--secret",
            "ada-secret",
            "--scopes",
            "admin",
        ]),
        "create ada in team",
    );

    let mut browser = Command::new(playwright_python());
    browser
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("browser/dashboard.py"))
        .env("MICRO_WEB", sb.web.as_deref().expect("dashboard"));
    if let Ok(chromium) = std::env::var("MICRO_CHROMIUM") {
        browser.env("MICRO_CHROMIUM", chromium);
    }
    let out = run(browser);
    assert_eq!(
        out.code, 0,
        "the browser's steps failed:\n{}\n{}",
        out.stdout, out.stderr
    );
    assert!(out.stdout.contains("every step passed"), "{out:?}");

    // What the browser wrote is in the store for every other door.
    let read = sb.micro(&["store", "read", "dash-key"]);
    assert_eq!(read.stdout.trim(), "written from a browser", "{read:?}");
}

/// The `Set-Cookie` values of `rsp` by cookie name.
fn set_cookies(rsp: &HttpResponse) -> Vec<(String, String)> {
    rsp.headers
        .iter()
        .filter(|(k, _)| k == "set-cookie")
        .filter_map(|(_, v)| {
            let pair = v.split(';').next()?;
            let (name, value) = pair.split_once('=')?;
            Some((name.to_owned(), value.to_owned()))
        })
        .collect()
}

/// A browser's cookie jar, as small as this test needs.
#[derive(Default)]
struct Jar(Vec<(String, String)>);

impl Jar {
    fn take(&mut self, rsp: &HttpResponse) {
        for (name, value) in set_cookies(rsp) {
            self.0.retain(|(n, _)| *n != name);
            if !value.is_empty() {
                self.0.push((name, value));
            }
        }
    }

    fn header(&self) -> String {
        self.0
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn form(web: &str, path: &str, jar: &Jar, body: &str, extra: &[(&str, &str)]) -> HttpResponse {
    let cookie = jar.header();
    let mut headers = vec![
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("Cookie", cookie.as_str()),
    ];
    headers.extend_from_slice(extra);
    http(web, "POST", path, &headers, body)
}

#[test]
fn a_session_outlives_its_access_token_and_forms_need_their_token() {
    let mut sb = Sandbox::new();
    sb.start_server_with(&["--token-ttl", "3s"]);
    let web = sb.web.clone().expect("dashboard");

    // The first visit gets its CSRF cookie; logging in needs it.
    let mut jar = Jar::default();
    let first = http(&web, "GET", "/login", &[], "");
    assert_eq!(first.status, 200, "{first:?}");
    jar.take(&first);
    let csrf = jar.get("micro-csrf").expect("a CSRF cookie").to_owned();
    let rsp = form(
        &web,
        "/login",
        &jar,
        "username=admin&password=micro&_csrf=wrong",
        &[],
    );
    assert_eq!(rsp.status, 403, "{rsp:?}");
    let rsp = form(
        &web,
        "/login",
        &jar,
        &format!("username=admin&password=wrong&_csrf={csrf}"),
        &[],
    );
    assert_eq!(rsp.status, 401, "{rsp:?}");
    assert!(rsp.body.contains("Log in"), "the form again: {rsp:?}");
    let rsp = form(
        &web,
        "/login",
        &jar,
        &format!("username=admin&password=micro&_csrf={csrf}"),
        &[],
    );
    assert_eq!(rsp.status, 303, "{rsp:?}");
    for (name, _) in set_cookies(&rsp) {
        let line = rsp
            .headers
            .iter()
            .find(|(k, v)| k == "set-cookie" && v.starts_with(&format!("{name}=")))
            .unwrap();
        assert!(
            line.1.contains("HttpOnly") && line.1.contains("SameSite=Strict"),
            "{line:?}"
        );
    }
    jar.take(&rsp);
    // The browser holds a session id; the tokens stay in the server.
    let session = jar
        .get("micro-session")
        .expect("a session cookie")
        .to_owned();
    assert_eq!(jar.get("micro-token"), None);
    assert_eq!(jar.get("micro-refresh"), None);

    // Visits keep the session going past the access token's 3 s: the server refreshes it in
    // the last third of its life.
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        let rsp = http(&web, "GET", "/auth", &[("Cookie", &jar.header())], "");
        assert_eq!(rsp.status, 200, "after {:?}: {rsp:?}", started.elapsed());
        assert!(rsp.body.contains("signed in as"), "{}", rsp.body);
        jar.take(&rsp);
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(jar.get("micro-session"), Some(session.as_str()));

    // A form from another origin, or without the token, changes nothing.
    let rsp = form(
        &web,
        "/store/write",
        &jar,
        &format!("key=k&value=v&_csrf={csrf}"),
        &[("Origin", "http://evil.example")],
    );
    assert_eq!(rsp.status, 403, "{rsp:?}");
    let rsp = form(
        &web,
        "/store/write",
        &jar,
        &format!("key=k&value=v&_csrf={csrf}"),
        &[("Sec-Fetch-Site", "same-site")],
    );
    assert_eq!(rsp.status, 403, "{rsp:?}");
    let rsp = form(&web, "/store/write", &jar, "key=k&value=v", &[]);
    assert_eq!(rsp.status, 403, "{rsp:?}");
    let read = http(
        &web,
        "GET",
        "/store?key=k",
        &[("Cookie", &jar.header())],
        "",
    );
    assert_eq!(read.status, 404, "nothing was written: {read:?}");
    let rsp = form(
        &web,
        "/store/write",
        &jar,
        &format!("key=k&value=v&_csrf={csrf}"),
        &[],
    );
    assert_eq!(rsp.status, 303, "{rsp:?}");

    // Logging out ends the session in the server: the old id, replayed, is nobody's.
    let rsp = form(&web, "/logout", &jar, &format!("_csrf={csrf}"), &[]);
    assert_eq!(rsp.status, 303, "{rsp:?}");
    jar.take(&rsp);
    assert_eq!(jar.get("micro-session"), None);
    let replayed = http(
        &web,
        "GET",
        "/auth",
        &[(
            "Cookie",
            &format!("micro-session={session}; micro-csrf={csrf}"),
        )],
        "",
    );
    assert_eq!(replayed.status, 401, "{replayed:?}");
}

#[test]
fn hostile_input_to_the_dashboard_is_a_4xx() {
    let sb = Sandbox::with_server();
    let _hw = sb.helloworld(&[]);
    let web = sb.web.clone().expect("dashboard");
    let token = sb.token();
    let bearer = format!("Bearer {token}");
    let auth = [("Authorization", bearer.as_str())];
    let get = |path: &str| http(&web, "GET", path, &auth, "");

    // Odd names, namespaces, searches and paths.
    for (path, status) in [
        ("/service/%00%ff", 400),
        ("/service/helloworld/call/No.Such", 404),
        ("/service/helloworld/call/%3Cscript%3E", 404),
        // Any name but `/`, spaces and control characters is a namespace's; shown escaped.
        ("/?namespace=%3Cscript%3E", 200),
        ("/?namespace=a%2Fb", 400),
        ("/store?offset=-1", 400),
        ("/runtime/nosuch/logs?follow=false", 404),
    ] {
        let rsp = get(path);
        assert_eq!(rsp.status, status, "{path}: {rsp:?}");
        assert!(!rsp.body.contains("<script>"), "{path}: {}", rsp.body);
    }
    let long = format!("/?q={}", "a".repeat(10_000));
    assert_eq!(get(&long).status, 400);

    // A form that is all fields, nested a thousand deep, or not a form.
    let csrf_page = get("/login");
    let csrf = set_cookies(&csrf_page)
        .into_iter()
        .find(|(n, _)| n == "micro-csrf")
        .map(|(_, v)| v)
        .expect("a CSRF cookie");
    let cookie = format!("micro-csrf={csrf}");
    let post = |body: String| {
        http(
            &web,
            "POST",
            "/service/helloworld/call/Helloworld.Call",
            &[
                ("Authorization", bearer.as_str()),
                ("Cookie", cookie.as_str()),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            &body,
        )
    };
    let many = (0..5000).map(|i| format!("f-x{i}=1")).collect::<Vec<_>>();
    let rsp = post(format!("_csrf={csrf}&{}", many.join("&")));
    assert_eq!(rsp.status, 400, "{rsp:?}");
    let deep = format!("_csrf={csrf}&f-{}=1", "a.".repeat(1000) + "b");
    let rsp = post(deep);
    assert_eq!(rsp.status, 400, "{rsp:?}");
    let rsp = post(format!("_csrf={csrf}&_json=%7B%7B%7B"));
    assert_eq!(rsp.status, 400, "{rsp:?}");
    let rsp = post(format!("_csrf={csrf}&_json={}", "%5B".repeat(100_000)));
    assert_eq!(rsp.status, 400, "{rsp:?}");
    let rsp = post(format!("_csrf={csrf}&f-name=Ada"));
    assert_eq!(rsp.status, 200, "{rsp:?}");
    assert!(rsp.body.contains("Hello Ada"), "{}", rsp.body);
}
