//! Fuzzes two more doors against a real server and helloworld: WebSocket frames at the gateway
//! (any frames, to a bidirectional, a server-streaming and a unary endpoint), and the `micro`
//! CLI's arguments. Whatever arrives, the server keeps answering, a socket ends with an error
//! frame or a close (never a hang), and the CLI exits with a message, never a panic. Bounded: a
//! fixed number of cases, each with a time limit.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use micro_e2e::{Sandbox, http};
use proptest::{prelude::*, strategy::ValueTree, test_runner::TestRunner};
use tokio_tungstenite::tungstenite::{Message, protocol::WebSocketConfig};

fn cases<T: std::fmt::Debug>(strategy: impl Strategy<Value = T>, count: usize) -> Vec<T> {
    let mut runner = TestRunner::new(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    (0..count)
        .map(|_| strategy.new_tree(&mut runner).expect("a case").current())
        .collect()
}

fn frame() -> impl Strategy<Value = Message> {
    prop_oneof![
        "\\PC{0,40}".prop_map(Message::text),
        "[{}\\[\\]\":,a-z0-9 .-]{0,40}".prop_map(Message::text),
        (0i64..2000).prop_map(|n| Message::text(format!(r#"{{"stroke":{n},"count":{n}}}"#))),
        Just(Message::text(format!(
            "{}1{}",
            "[".repeat(5000),
            "]".repeat(5000)
        ))),
        Just(Message::text(format!(
            r#"{{"name":"{}"}}"#,
            "x".repeat(100_000)
        ))),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(Message::binary),
        Just(Message::Ping(vec![1, 2, 3].into())),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_websocket_frames_end_in_an_answer_and_the_gateway_lives() {
    let sb = Sandbox::with_server();
    let _hello = sb.helloworld(&[]);
    let api = sb.api.clone().expect("gateway");
    let config = WebSocketConfig::default().max_message_size(Some(1 << 20));
    for (path, frames) in cases(
        (
            prop_oneof![
                Just("/helloworld/pingPong"),
                Just("/helloworld/stream"),
                Just("/helloworld/call"),
                Just("/registry/getService"),
            ],
            proptest::collection::vec(frame(), 1..4),
        ),
        48,
    ) {
        let url = format!("ws://{api}{path}");
        let (mut socket, _) =
            tokio_tungstenite::connect_async_with_config(url, Some(config), false)
                .await
                .expect("websocket handshake");
        for frame in frames.clone() {
            if socket.send(frame).await.is_err() {
                break;
            }
        }
        // The endpoint answers and ends, or keeps a bidirectional stream open for more:
        // either way, nothing the client sent kills the server.
        let ended = tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(Ok(message)) = socket.next().await {
                if let Message::Text(text) = message {
                    assert!(
                        !text.contains("\"code\":500"),
                        "{path} {frames:?}: a server fault: {text}"
                    );
                }
            }
        })
        .await;
        // Still open: fine for a bidirectional stream, and for any endpoint that has not been
        // sent a request yet (pings only); anything else is a hang.
        let sent_a_request = frames
            .iter()
            .any(|f| matches!(f, Message::Text(_) | Message::Binary(_)));
        if ended.is_err() {
            assert!(
                path == "/helloworld/pingPong" || !sent_a_request,
                "{path} hung on {frames:?}"
            );
        }
    }
    // Frames no WebSocket client may send end the socket with a close frame that says how and
    // why: unmasked is a protocol error (1002), text that is not UTF-8 invalid data (1007).
    for (frame, code) in [
        (&b"\x81\x02hi"[..], [0x03, 0xea]),
        (&b"\x81\x82\0\0\0\0\xff\xfe"[..], [0x03, 0xef]),
    ] {
        let close = violation_close(&api, frame).await;
        assert_eq!(close[0], 0x88, "a close frame: {close:02x?}");
        assert_eq!(close[2..4], code, "the close code: {close:02x?}");
        assert!(close.len() > 4, "with a reason: {close:02x?}");
    }
    let api = api.clone();
    let rsp = tokio::task::spawn_blocking(move || http(&api, "GET", "/", &[], ""))
        .await
        .expect("http");
    assert_eq!(rsp.status, 200);
}

/// The frame the gateway closes a raw WebSocket to `/helloworld/pingPong` with after `frame`.
async fn violation_close(api: &str, frame: &[u8]) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(api).await.expect("connect");
    let upgrade = format!(
        "GET /helloworld/pingPong HTTP/1.1\r\nHost: {api}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n"
    );
    tcp.write_all(upgrade.as_bytes()).await.expect("upgrade");
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        tcp.read_exact(&mut byte)
            .await
            .expect("the upgrade's answer");
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    tcp.write_all(frame).await.expect("the frame");
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut rest))
        .await
        .expect("the socket ends")
        .expect("read");
    rest
}

fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("--".to_owned()),
        Just("-".to_owned()),
        Just("--namespace".to_owned()),
        Just("--namespace=*".to_owned()),
        Just("--output".to_owned()),
        Just("--request-timeout=99999999999999999s".to_owned()),
        Just("--expiry=18446744073709551615ms".to_owned()),
        Just("--limit=-1".to_owned()),
        Just("--offset=99999999999999999999".to_owned()),
        Just("{".to_owned()),
        Just(r#"{"name":{"a":[[[[[]]]]]}}"#.to_owned()),
        (1usize..5000).prop_map(|n| "a.".repeat(n)),
        "[a-zA-Z.*/_-]{0,12}",
        "\\PC{0,16}",
        "--[a-z-]{1,12}(=[a-z0-9.*]{0,8})?",
    ]
}

#[test]
fn any_cli_arguments_end_in_a_message_not_a_panic() {
    let sb = Sandbox::with_server();
    let _hello = sb.helloworld(&[]);
    // Commands that return on their own (not server, subscribe, logs -f, run, login prompts).
    let command = prop_oneof![
        Just(vec!["call", "helloworld"]),
        Just(vec!["helloworld"]),
        Just(vec!["store", "read"]),
        Just(vec!["store", "write"]),
        Just(vec!["store", "list"]),
        Just(vec!["config", "set"]),
        Just(vec!["config", "get"]),
        Just(vec!["auth", "create", "rule"]),
        Just(vec!["auth", "verify"]),
        Just(vec!["get", "service"]),
        Just(vec!["events", "publish"]),
        Just(vec!["publish"]),
        Just(vec!["services"]),
        Just(vec!["status"]),
        Just(vec![]),
    ];
    for (command, words) in cases((command, proptest::collection::vec(word(), 0..4)), 40) {
        let mut args: Vec<String> = command.iter().map(|w| (*w).to_owned()).collect();
        args.extend(words);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut child = sb
            .micro_command(&args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("micro");
        let done = micro_e2e::wait_for(Duration::from_secs(20), "micro to exit", || {
            child.try_wait().expect("wait")
        });
        let mut stderr = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().expect("stderr"), &mut stderr)
            .expect("stderr");
        assert_ne!(done.code(), Some(101), "micro {args:?} panicked: {stderr}");
        assert!(
            !stderr.contains("panicked"),
            "micro {args:?} panicked: {stderr}"
        );
    }
    let rsp = http(sb.api.as_deref().expect("gateway"), "GET", "/", &[], "");
    assert_eq!(rsp.status, 200, "the server still answers");
}
