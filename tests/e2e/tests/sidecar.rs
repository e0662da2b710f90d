//! `micro sidecar` with a Python service (standard library only, `tests/e2e/sidecar/app.py`):
//! registered once the app answers, called by `micro call` and the gateway, calling helloworld
//! back through the sidecar, subscribed to a topic over the sidecar's WebSocket, deregistered
//! when the app dies and registered again when it is back, and gone when the sidecar is stopped.

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use micro_e2e::{Proc, Sandbox, bin, http, wait_for};

fn listed(sb: &Sandbox, name: &str) -> bool {
    sb.micro(&["services"]).stdout.lines().any(|l| l == name)
}

fn app(port: Option<u16>) -> (Proc, u16) {
    let mut cmd = Command::new("python3");
    cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("sidecar/app.py"));
    if let Some(port) = port {
        cmd.env("PORT", port.to_string());
    }
    let mut app = Proc::spawn(cmd);
    let line = app.wait_line("app listening on ");
    let port = line.rsplit(' ').next().unwrap().parse().unwrap();
    (app, port)
}

#[test]
fn a_python_app_behind_the_sidecar_is_called_calls_back_and_leaves_when_it_dies() {
    let sb = Sandbox::with_server();
    let _hw = sb.helloworld(&[]);
    let account = sb.service_account("py-greeter");
    let (mut python, port) = app(None);

    let mut cmd = Command::new(bin("micro"));
    cmd.args([
        "sidecar",
        "--name",
        "py-greeter",
        "--app",
        &format!("http://127.0.0.1:{port}"),
        "--endpoint",
        "Greeter.Hello=/greet",
        "--endpoint",
        "Greeter.Relay=/relay",
        "--endpoint",
        "Greeter.News=/news",
        "--endpoint",
        "Greeter.Fail=/fail",
    ])
    .env("MICRO_HOME", sb.home.path())
    .env("MICRO_SERVER_ADDRESS", sb.address())
    .envs(account.iter().map(|(k, v)| (*k, v.as_str())));
    let mut sidecar = Proc::spawn(cmd);
    sidecar.wait_line("sidecar http listening on ");
    sidecar.wait_line("py-greeter registered at ");
    assert!(listed(&sb, "py-greeter"));

    // Called like any service: the CLI, the gateway.
    let out = sb.micro(&["call", "py-greeter", "Greeter.Hello", r#"{"name":"Ada"}"#]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("Hello Ada from Python"), "{out:?}");
    let api = sb.api.as_deref().expect("gateway");
    let rsp = http(
        api,
        "POST",
        "/py-greeter/greeter/hello",
        &[("Content-Type", "application/json")],
        r#"{"name":"Bob"}"#,
    );
    assert_eq!(rsp.status, 200, "{rsp:?}");
    assert_eq!(rsp.body, r#"{"msg":"Hello Bob from Python"}"#);
    // An app's 409 is the caller's error, with the app's words.
    let out = sb.micro(&["call", "py-greeter", "Greeter.Fail"]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("already there"), "{out:?}");

    // The sidecar's address serves its app, not a web page in a browser on this machine.
    let sidecar_http = sidecar
        .lines()
        .iter()
        .find_map(|l| {
            l.strip_prefix("sidecar http listening on ")
                .map(str::to_owned)
        })
        .unwrap();
    let rsp = http(
        &sidecar_http,
        "POST",
        "/helloworld/call",
        &[("Origin", "http://evil.example")],
        "{}",
    );
    assert_eq!(rsp.status, 403, "{rsp:?}");
    // A DNS name rebound to 127.0.0.1: the request names another host.
    let mut stream = std::net::TcpStream::connect(&sidecar_http).unwrap();
    std::io::Write::write_all(
        &mut stream,
        b"POST /helloworld/call HTTP/1.1\r\nHost: rebound.example\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
    )
    .unwrap();
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut stream, &mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");

    // What the app sends it that makes no sense is a 4xx, and the sidecar lives on.
    let deep = format!("/{}", ["a"; 1000].join("/"));
    let huge = "x".repeat(9 * 1024 * 1024);
    // A 3 MiB request is within what the platform takes, and goes through; so does a store
    // value at the platform's limit (4 MiB, 5.6 MiB as base64 in JSON).
    let big = format!(r#"{{"name":"{}"}}"#, "x".repeat(3 * 1024 * 1024));
    let value = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(vec![0u8; 4 * 1024 * 1024])
    };
    let biggest = format!(r#"{{"record":{{"key":"big","value":"{value}"}}}}"#);
    for (path, body, status) in [
        // Routed as the gateway routes it: a service no one registered.
        (deep.as_str(), "{}", 404),
        ("/nosuch/call", "{}", 404),
        ("/helloworld/call", "{\"name\":", 400),
        ("/helloworld/call", huge.as_str(), 413),
        ("/helloworld/call", big.as_str(), 200),
        ("/store/store/write", biggest.as_str(), 200),
    ] {
        let rsp = http(&sidecar_http, "POST", path, &[], body);
        assert_eq!(rsp.status, status, "{:.60}: {:.300}", path, rsp.body);
        if status == 413 {
            assert!(
                rsp.body.contains("micro.sidecar"),
                "a Micro error: {:.300}",
                rsp.body
            );
        }
    }
    let rsp = http(&sidecar_http, "GET", "/helloworld/call", &[], "");
    assert_eq!(rsp.status, 405, "{rsp:?}");
    // An app speaking HTTP/2 (prior knowledge) names the host in :authority, and is served.
    let status = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let tcp = tokio::net::TcpStream::connect(&sidecar_http).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(tcp),
        )
        .await
        .expect("HTTP/2 handshake");
        tokio::spawn(conn);
        let request = hyper::Request::post(format!("http://{sidecar_http}/helloworld/call"))
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::from_static(
                br#"{"name":"h2"}"#,
            )))
            .unwrap();
        sender
            .send_request(request)
            .await
            .expect("answered")
            .status()
    });
    assert_eq!(status, 200, "HTTP/2 to the sidecar");

    // The app calls helloworld back through the sidecar.
    let out = sb.micro(&["call", "py-greeter", "Greeter.Relay", r#"{"name":"Cy"}"#]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("Hello Cy"), "{out:?}");

    // It subscribed over the sidecar's WebSocket, and hears what is published.
    python.wait_line("subscribed to news");
    let out = sb.micro(&["publish", "news", r#""rain at noon""#]);
    assert_eq!(out.code, 0, "{out:?}");
    wait_for(Duration::from_secs(10), "the app to hear the news", || {
        let out = sb.micro(&["call", "py-greeter", "Greeter.News"]);
        out.stdout.contains("rain at noon").then_some(())
    });

    // The app dies: the sidecar deregisters it within 3 s of its last answer.
    python.signal("-9");
    let died = Instant::now();
    wait_for(Duration::from_secs(10), "py-greeter deregistered", || {
        (!listed(&sb, "py-greeter")).then_some(())
    });
    let gone = died.elapsed();
    assert!(
        gone < Duration::from_secs(4),
        "deregistered {gone:?} after the app died"
    );
    sidecar.wait_line("py-greeter deregistered: the app stopped answering");

    // Back on the same port: registered again, and called.
    let (_python, _) = app(Some(port));
    wait_for(
        Duration::from_secs(10),
        "py-greeter registered again",
        || listed(&sb, "py-greeter").then_some(()),
    );
    let out = sb.micro(&["call", "py-greeter", "Greeter.Hello", r#"{"name":"Di"}"#]);
    assert!(out.stdout.contains("Hello Di from Python"), "{out:?}");

    // SIGTERM: the sidecar deregisters and exits.
    sidecar.signal("-TERM");
    assert!(!listed(&sb, "py-greeter"), "still registered after SIGTERM");
}

#[test]
fn a_sidecar_refuses_a_bad_command_line_with_a_reason() {
    let app = "http://127.0.0.1:1";
    for (args, why) in [
        (
            vec!["--app", app, "--endpoint", "Hello=/x"],
            "is not Name.Method",
        ),
        (
            vec!["--app", app, "--endpoint", "Greeter.Hello=x"],
            "must start with /",
        ),
        (
            vec!["--app", "ftp://x", "--endpoint", "Greeter.Hello=/x"],
            "http://host:port",
        ),
        (
            vec![
                "--app",
                app,
                "--endpoint",
                "Greeter.Hello=/x",
                "--health",
                "@evil.example/",
            ],
            "must be a path",
        ),
    ] {
        let mut cmd = Command::new(bin("micro"));
        cmd.args(["sidecar", "--name", "s"]);
        cmd.args(&args);
        let out = micro_e2e::run(cmd);
        assert_ne!(out.code, 0, "{args:?}: {out:?}");
        assert!(out.stderr.contains(why), "{args:?}: {out:?}");
    }
}
