//! `micro bot` over both inputs: a local stand-in for Slack's API (the real one cannot be reached
//! from here) speaking Slack's documented requests — signed Events API callbacks, the
//! `url_verification` challenge, `chat.postMessage` — and the plain webhook. Each chat user runs
//! commands as the account the users file maps them to: nobody sees another namespace's
//! services, and nobody unmapped runs anything.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpListener,
    process::Command,
    sync::{Arc, Mutex},
    time::Duration,
};

use micro_e2e::{Proc, Sandbox, bin, http, wait_for};

/// Slack's Web API, as far as the bot uses it: records each `chat.postMessage` and answers
/// `{"ok": true}`.
struct SlackStandIn {
    address: String,
    posted: Arc<Mutex<Vec<(String, serde_json::Value)>>>,
}

impl SlackStandIn {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let posted = Arc::new(Mutex::new(Vec::new()));
        let into = posted.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                reader.read_line(&mut request_line).unwrap();
                let (mut length, mut authorization) = (0, String::new());
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    let line = line.trim_end();
                    if line.is_empty() {
                        break;
                    }
                    let (name, value) = line.split_once(':').unwrap();
                    match name.to_ascii_lowercase().as_str() {
                        "content-length" => length = value.trim().parse().unwrap(),
                        "authorization" => authorization = value.trim().to_owned(),
                        _ => {}
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                let ok = request_line.starts_with("POST /api/chat.postMessage ");
                if ok {
                    into.lock()
                        .unwrap()
                        .push((authorization, serde_json::from_slice(&body).unwrap()));
                }
                let answer = if ok {
                    r#"{"ok":true}"#
                } else {
                    r#"{"ok":false,"error":"unknown_method"}"#
                };
                let mut stream = stream;
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                    answer.len()
                );
            }
        });
        Self { address, posted }
    }
}

const SIGNING_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";

/// Slack's signature of `body` sent at `timestamp`.
fn sign(timestamp: &str, body: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SIGNING_SECRET.as_bytes());
    let tag = ring::hmac::sign(&key, format!("v0:{timestamp}:{body}").as_bytes());
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("v0={hex}")
}

fn now() -> String {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string()
}

fn slack_event(bot: &str, body: &str, timestamp: &str, signature: &str) -> micro_e2e::HttpResponse {
    http(
        bot,
        "POST",
        "/slack/events",
        &[
            ("Content-Type", "application/json"),
            ("X-Slack-Request-Timestamp", timestamp),
            ("X-Slack-Signature", signature),
        ],
        body,
    )
}

/// `body` sent to the Slack input now, signed as Slack signs it.
fn signed_event(bot: &str, body: &str) -> micro_e2e::HttpResponse {
    let ts = now();
    slack_event(bot, body, &ts, &sign(&ts, body))
}

fn webhook(bot: &str, user: &str, text: &str) -> String {
    let body = serde_json::json!({ "user": user, "text": text }).to_string();
    let rsp = http(
        bot,
        "POST",
        "/webhook",
        &[
            ("Content-Type", "application/json"),
            ("Authorization", "Bearer hook-token"),
        ],
        &body,
    );
    assert_eq!(rsp.status, 200, "{rsp:?}");
    let answer: serde_json::Value = serde_json::from_str(&rsp.body).unwrap();
    answer["text"].as_str().unwrap().to_owned()
}

#[test]
fn the_bot_answers_services_over_slack_and_the_webhook_as_each_users_account() {
    let sb = Sandbox::with_server();
    let _hw = sb.helloworld(&[]);
    for args in [
        &["auth", "create", "account", "ada", "--secret", "ada-secret"][..],
        &[
            "--namespace",
            "team",
            "auth",
            "create",
            "account",
            "bob",
            "--secret",
            "bob-secret",
            "--scopes",
            "admin",
        ],
    ] {
        let out = sb.micro(args);
        assert_eq!(out.code, 0, "{out:?}");
    }
    let users = sb.home.path().join("bot-users.json");
    std::fs::write(
        &users,
        r#"{
            "slack:U0ADA": {"account": "ada", "secret": "ada-secret"},
            "webhook:ada": {"account": "ada", "secret": "ada-secret"},
            "webhook:bob": {"account": "bob", "secret": "bob-secret", "namespace": "team"}
        }"#,
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&users, std::fs::Permissions::from_mode(0o600)).unwrap();

    let slack = SlackStandIn::start();
    let mut cmd = Command::new(bin("micro"));
    cmd.args(["bot", "--address", "127.0.0.1:0", "--users"])
        .arg(&users)
        .env("MICRO_HOME", sb.home.path())
        .env("MICRO_SERVER_ADDRESS", sb.address())
        .env("SLACK_SIGNING_SECRET", SIGNING_SECRET)
        .env("SLACK_BOT_TOKEN", "xoxb-test-token")
        .env("SLACK_API_URL", format!("http://{}/api", slack.address))
        .env("MICRO_BOT_WEBHOOK_TOKEN", "hook-token");
    let mut bot_proc = Proc::spawn(cmd);
    let line = bot_proc.wait_line("bot listening on ");
    let bot = line.split_whitespace().nth(3).unwrap().to_owned();

    // Slack: the URL verification challenge, signed; unsigned or stale requests are refused.
    let challenge = r#"{"token":"x","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
    let rsp = signed_event(&bot, challenge);
    assert_eq!(rsp.status, 200, "{rsp:?}");
    assert!(
        rsp.body
            .contains("3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P")
    );
    let rsp = slack_event(&bot, challenge, &now(), "v0=00");
    assert_eq!(rsp.status, 401, "{rsp:?}");
    let stale = "1531420618";
    let rsp = slack_event(&bot, challenge, stale, &sign(stale, challenge));
    assert_eq!(rsp.status, 401, "{rsp:?}");

    // A message: acknowledged at once, answered with chat.postMessage in the channel.
    let event = serde_json::json!({
        "type": "event_callback",
        "event_id": "Ev0001",
        "event": {"type": "app_mention", "user": "U0ADA", "text": "<@U0BOT> services", "channel": "C0OPS"}
    })
    .to_string();
    let rsp = signed_event(&bot, &event);
    assert_eq!(rsp.status, 200, "{rsp:?}");
    let (authorization, posted) = wait_for(Duration::from_secs(30), "chat.postMessage", || {
        slack.posted.lock().unwrap().first().cloned()
    });
    assert_eq!(authorization, "Bearer xoxb-test-token");
    assert_eq!(posted["channel"], "C0OPS");
    let text = posted["text"].as_str().unwrap();
    assert!(
        text.starts_with("```") && text.contains("helloworld"),
        "{text}"
    );
    // Slack's retry of the same event, a channel's plain message (the mention's echo), and a
    // bot's own message are not commands; a direct message is.
    assert_eq!(signed_event(&bot, &event).status, 200);
    let chatter = serde_json::json!({
        "type": "event_callback",
        "event_id": "Ev0002",
        "event": {"type": "message", "channel_type": "channel", "user": "U0ADA", "text": "<@U0BOT> services", "channel": "C0OPS"}
    })
    .to_string();
    assert_eq!(signed_event(&bot, &chatter).status, 200);
    let direct = serde_json::json!({
        "type": "event_callback",
        "event_id": "Ev0003",
        "event": {"type": "message", "channel_type": "im", "user": "U0ADA", "text": "services", "channel": "D0ADA"}
    })
    .to_string();
    assert_eq!(signed_event(&bot, &direct).status, 200);
    wait_for(
        Duration::from_secs(30),
        "the direct message's answer",
        || {
            let posted = slack.posted.lock().unwrap();
            posted
                .iter()
                .any(|(_, p)| p["channel"] == "D0ADA")
                .then_some(())
        },
    );
    assert_eq!(
        slack.posted.lock().unwrap().len(),
        2,
        "one answer to the mention, one to the direct message"
    );
    // Its own messages (a bot's) are not commands.
    let echo = serde_json::json!({
        "type": "event_callback",
        "event": {"type": "message", "bot_id": "B1", "user": "U0ADA", "text": "services", "channel": "C0OPS"}
    })
    .to_string();
    assert_eq!(signed_event(&bot, &echo).status, 200);

    // The webhook: answers in the response.
    let answer = webhook(&bot, "ada", "services");
    assert!(answer.contains("helloworld"), "{answer}");
    let answer = webhook(
        &bot,
        "ada",
        r#"call helloworld Helloworld.Call {"name":"Ada"}"#,
    );
    assert!(answer.contains("Hello Ada"), "{answer}");
    let answer = webhook(&bot, "ada", "helloworld call --name=Bo");
    assert!(answer.contains("Hello Bo"), "{answer}");
    let answer = webhook(&bot, "ada", "help");
    assert!(answer.contains("get service NAME"), "{answer}");
    // What chat may not run, and who may not run anything.
    let answer = webhook(&bot, "ada", "auth list accounts");
    assert!(answer.starts_with("Not run"), "{answer}");
    let answer = webhook(&bot, "ada", "services --namespace team");
    assert!(answer.starts_with("Not run"), "{answer}");
    let answer = webhook(&bot, "eve", "services");
    assert!(answer.contains("not mapped"), "{answer}");
    // The runtime is for admins of micro: ada's account is refused by the platform itself.
    let answer = webhook(&bot, "ada", "status");
    assert!(answer.to_lowercase().contains("admin"), "{answer}");
    // Another namespace's account sees nothing of micro's.
    let answer = webhook(&bot, "bob", "services");
    assert!(!answer.contains("helloworld"), "{answer}");
    let rsp = http(
        &bot,
        "POST",
        "/webhook",
        &[("Authorization", "Bearer wrong")],
        r#"{"user":"ada","text":"services"}"#,
    );
    assert_eq!(rsp.status, 401, "{rsp:?}");
    // Odd, long and malformed requests are refused with a reason, and run nothing.
    let answer = webhook(&bot, "ada", &"services ".repeat(1000));
    assert!(answer.starts_with("Not run"), "{answer:.80}");
    let long_user = "u".repeat(300);
    let huge = "x".repeat(100 * 1024);
    for (body, status) in [
        ("{\"user\":", 400),
        (r#"{"user":"ada"}"#, 400),
        (
            &*format!(r#"{{"user":"{long_user}","text":"services"}}"#),
            400,
        ),
        (&*huge, 413),
    ] {
        let rsp = http(
            &bot,
            "POST",
            "/webhook",
            &[("Authorization", "Bearer hook-token")],
            body,
        );
        assert_eq!(rsp.status, status, "{body:.60}: {rsp:?}");
    }
    assert_eq!(slack_event(&bot, challenge, "", "").status, 401);
    bot_proc.signal("-TERM");
}
