//! The HTTP gateway and the dashboard, end to end against helloworld.

use micro_e2e::{Sandbox, http};

#[test]
fn gateway_calls_services_with_json() {
    let sb = Sandbox::with_server();
    let hw = sb.helloworld(&[]);
    let api = sb.api.clone().unwrap();

    let rsp = http(
        &api,
        "POST",
        "/helloworld/call",
        &[("Content-Type", "application/json")],
        r#"{"name":"John"}"#,
    );
    assert_eq!(
        (rsp.status, rsp.body.as_str()),
        (200, r#"{"msg":"Hello John"}"#),
        "{rsp:?}"
    );

    let rsp = http(&api, "GET", "/helloworld/call?name=Jane", &[], "");
    assert_eq!(
        (rsp.status, rsp.body.as_str()),
        (200, r#"{"msg":"Hello Jane"}"#),
        "{rsp:?}"
    );

    // `/helloworld` alone is Helloworld.Call.
    let rsp = http(&api, "POST", "/helloworld", &[], r#"{"name":"Root"}"#);
    assert_eq!(rsp.body, r#"{"msg":"Hello Root"}"#);

    let rsp = http(&api, "POST", "/nosuch/call", &[], "{}");
    assert_eq!(rsp.status, 404);
    let err: serde_json::Value = serde_json::from_str(&rsp.body).unwrap();
    assert_eq!(
        (err["code"].as_u64(), err["status"].as_str()),
        (Some(404), Some("Not Found")),
        "{err}"
    );
    assert_eq!(err["detail"], "Service \"nosuch\" not found");
    assert_eq!(rsp.header("content-type"), Some("application/json"));

    let rsp = http(&api, "POST", "/helloworld/call", &[], r#"{"name":"#);
    assert_eq!(rsp.status, 400, "{rsp:?}");
    assert!(rsp.body.contains("malformed JSON"), "{}", rsp.body);

    let rsp = http(&api, "POST", "/helloworld/call", &[], r#"{"name":7}"#);
    assert_eq!(rsp.status, 400, "{rsp:?}");
    assert!(rsp.body.contains("\\\"name\\\""), "{}", rsp.body);

    let rsp = http(&api, "POST", "/helloworld/nope", &[], "{}");
    assert_eq!(rsp.status, 404, "{rsp:?}");

    let rsp = http(
        &api,
        "OPTIONS",
        "/helloworld/call",
        &[("Origin", "https://app.example")],
        "",
    );
    assert_eq!(rsp.status, 200);
    assert_eq!(
        rsp.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(rsp.header("access-control-allow-credentials"), Some("true"));

    let rsp = http(&api, "GET", "/", &[], "");
    let version: serde_json::Value = serde_json::from_str(&rsp.body).unwrap();
    assert!(version["version"].is_string(), "{}", rsp.body);

    // Another namespace sees nothing of this one.
    let rsp = http(
        &api,
        "POST",
        "/helloworld/call",
        &[("Micro-Namespace", "other")],
        "{}",
    );
    assert_eq!(rsp.status, 404, "{rsp:?}");

    // The dashboard lists the service and shows its node.
    let web = sb.web.clone().unwrap();
    let index = http(&web, "GET", "/", &[], "");
    assert!(index.body.contains(">helloworld</a>"), "{}", index.body);
    let page = http(&web, "GET", "/service/helloworld", &[], "");
    assert!(
        page.body.contains(&hw.address) && page.body.contains("Helloworld.Call"),
        "{}",
        page.body
    );
    assert_eq!(http(&web, "GET", "/service/nosuch", &[], "").status, 404);
}

#[test]
fn gateway_streams_server_streams_as_ndjson_or_server_sent_events() {
    let sb = Sandbox::with_server();
    let _hw = sb.helloworld(&[]);
    let api = sb.api.clone().unwrap();

    let rsp = http(&api, "POST", "/helloworld/stream", &[], r#"{"count":3}"#);
    assert_eq!(rsp.status, 200, "{rsp:?}");
    assert_eq!(rsp.header("content-type"), Some("application/x-ndjson"));
    let lines: Vec<&str> = rsp.body.lines().collect();
    assert_eq!(
        lines,
        [r#"{"count":0}"#, r#"{"count":1}"#, r#"{"count":2}"#]
    );

    let rsp = http(
        &api,
        "GET",
        "/helloworld/stream?count=2",
        &[("Accept", "text/event-stream")],
        "",
    );
    assert_eq!(rsp.header("content-type"), Some("text/event-stream"));
    let data: Vec<&str> = rsp
        .body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert_eq!(data, [r#"{"count":0}"#, r#"{"count":1}"#], "{}", rsp.body);

    // The service refusing the request before streaming is a plain error response.
    let rsp = http(&api, "POST", "/helloworld/stream", &[], r#"{"count":-1}"#);
    assert_eq!(rsp.status, 400, "{rsp:?}");
    assert!(rsp.body.contains("count must be between"), "{}", rsp.body);

    // A bidirectional endpoint needs a WebSocket, and says so.
    let rsp = http(&api, "POST", "/helloworld/pingPong", &[], r#"{"stroke":1}"#);
    assert_eq!(rsp.status, 400, "{rsp:?}");
    assert!(rsp.body.contains("WebSocket"), "{}", rsp.body);
}

#[tokio::test]
async fn gateway_carries_bidirectional_streams_over_websocket() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let sb = Sandbox::with_server();
    let _hw = sb.helloworld(&[]);
    let api = sb.api.clone().unwrap();

    let (mut socket, _) =
        tokio_tungstenite::connect_async(format!("ws://{api}/helloworld/pingPong"))
            .await
            .expect("websocket handshake");
    for stroke in 1..=3 {
        socket
            .send(Message::text(format!(r#"{{"stroke":{stroke}}}"#)))
            .await
            .unwrap();
        let answer = socket.next().await.expect("a pong").unwrap();
        assert_eq!(
            answer.to_text().unwrap(),
            format!(r#"{{"stroke":{stroke}}}"#)
        );
    }
    // A message that does not fit the schema ends the stream with an error naming the field.
    socket
        .send(Message::text(r#"{"stroke":"high"}"#))
        .await
        .unwrap();
    let answer = socket.next().await.expect("an error").unwrap();
    let text = answer.to_text().unwrap();
    assert!(
        text.contains(r#""code":400"#) && text.contains("stroke"),
        "{text}"
    );
    socket.close(None).await.ok();

    // A server stream over a WebSocket: the first frame is the request.
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{api}/helloworld/stream"))
        .await
        .unwrap();
    socket.send(Message::text(r#"{"count":2}"#)).await.unwrap();
    let mut got = Vec::new();
    while let Some(Ok(Message::Text(text))) = socket.next().await {
        got.push(text.to_string());
    }
    assert_eq!(got, [r#"{"count":0}"#, r#"{"count":1}"#]);
}

#[test]
fn gateway_passes_protobuf_through_and_limits_bodies() {
    let sb = Sandbox::with_server();
    let _hw = sb.helloworld(&[]);
    let api = sb.api.clone().unwrap();

    // helloworld.Request{name: "Bob"} encoded by hand: field 1, length 3.
    let rsp = http(
        &api,
        "POST",
        "/helloworld/call",
        &[("Content-Type", "application/protobuf")],
        "\x0a\x03Bob",
    );
    assert_eq!(rsp.status, 200, "{rsp:?}");
    assert_eq!(rsp.header("content-type"), Some("application/protobuf"));
    assert_eq!(rsp.body, "\x0a\x09Hello Bob");

    // The same message in a gRPC frame comes back framed.
    let rsp = http(
        &api,
        "POST",
        "/helloworld/call",
        &[("Content-Type", "application/grpc")],
        "\x00\x00\x00\x00\x05\x0a\x03Bob",
    );
    assert_eq!(rsp.body, "\x00\x00\x00\x00\x0b\x0a\x09Hello Bob", "{rsp:?}");
    // A frame that is not one uncompressed message is the caller's mistake, said as such.
    for (frame, why) in [
        ("\x00\x00", "shorter than the 5-byte prefix"),
        (
            "\x01\x00\x00\x00\x05\x0a\x03Bob",
            "compressed frames are not supported",
        ),
        (
            "\x00\x00\x00\x00\x09\x0a\x03Bob",
            "the length prefix does not match",
        ),
        (
            "\x00\x00\x00\x00\x01\x0a\x03Bob",
            "the length prefix does not match",
        ),
    ] {
        let rsp = http(
            &api,
            "POST",
            "/helloworld/call",
            &[("Content-Type", "application/grpc")],
            frame,
        );
        assert_eq!(rsp.status, 400, "{frame:?}: {rsp:?}");
        assert!(rsp.body.contains(why), "{frame:?}: {}", rsp.body);
    }

    let big = format!(r#"{{"name":"{}"}}"#, "x".repeat(5 * 1024 * 1024));
    let rsp = http(&api, "POST", "/helloworld/call", &[], &big);
    assert_eq!(rsp.status, 413, "{}", rsp.status);
    assert!(rsp.body.contains("limit"), "{}", rsp.body);
}

#[test]
fn openapi_lists_registered_endpoints_as_they_come_and_go() {
    let sb = Sandbox::with_server();
    let api = sb.api.clone().unwrap();
    let doc = |sb: &Sandbox| -> serde_json::Value {
        let _ = sb;
        let rsp = http(&api, "GET", "/openapi.json", &[], "");
        assert_eq!(rsp.status, 200);
        serde_json::from_str(&rsp.body).unwrap()
    };
    let before = doc(&sb);
    assert!(before["openapi"].as_str().unwrap().starts_with("3."));
    assert!(before["paths"].get("/helloworld/call").is_none());

    let mut hw = sb.helloworld(&[]);
    let during = doc(&sb);
    let call = &during["paths"]["/helloworld/call"]["post"];
    assert_eq!(
        call["requestBody"]["content"]["application/json"]["schema"]["properties"]["name"]["type"],
        "string",
        "{during}"
    );
    assert_eq!(
        call["responses"]["200"]["content"]["application/json"]["schema"]["properties"]["msg"]["type"],
        "string"
    );
    assert!(
        during["paths"]["/helloworld/stream"]["post"]["responses"]["200"]["content"]
            .get("application/x-ndjson")
            .is_some()
    );

    hw.proc.signal("-TERM");
    micro_e2e::wait_for(
        std::time::Duration::from_secs(10),
        "helloworld to leave the document",
        || {
            doc(&sb)["paths"]
                .get("/helloworld/call")
                .is_none()
                .then_some(())
        },
    );
}

#[test]
fn google_api_http_rules_route_first() {
    let sb = Sandbox::with_server();
    let _hw = sb.helloworld(&[]);
    let api = sb.api.clone().unwrap();

    let rsp = http(&api, "GET", "/v1/greet/Ada", &[], "");
    assert_eq!(
        (rsp.status, rsp.body.as_str()),
        (200, r#"{"msg":"Hello Ada"}"#),
        "{rsp:?}"
    );
    let rsp = http(&api, "POST", "/v1/greet", &[], r#"{"name":"Lin"}"#);
    assert_eq!(rsp.body, r#"{"msg":"Hello Lin"}"#, "{rsp:?}");
    // The rule's method matters: DELETE has no rule, and `/v1/greet/...` is no service either.
    let rsp = http(&api, "DELETE", "/v1/greet/Ada", &[], "");
    assert_eq!(rsp.status, 404, "{rsp:?}");
    // The convention still works alongside.
    let rsp = http(&api, "POST", "/helloworld/call", &[], r#"{"name":"Kay"}"#);
    assert_eq!(rsp.body, r#"{"msg":"Hello Kay"}"#);

    let doc = http(&api, "GET", "/openapi.json", &[], "");
    let doc: serde_json::Value = serde_json::from_str(&doc.body).unwrap();
    assert!(doc["paths"]["/v1/greet/{name}"]["get"].is_object(), "{doc}");
}
