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
