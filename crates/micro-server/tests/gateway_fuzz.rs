//! Fuzzes the gateway end to end: random paths, query strings and bodies, sent over real HTTP to
//! a running platform whose `registry` service is the target. Whatever a client sends, the
//! answer is a response (never a dropped connection or a panic) and a client mistake is a 4xx.

use std::{
    io::{Read, Write},
    net::TcpStream,
};

use proptest::prelude::*;

fn platform() -> (tokio::runtime::Runtime, micro_server::Platform) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let platform = runtime
        .block_on(micro_server::start(micro_server::Options {
            address: "127.0.0.1:0".into(),
            api_address: Some("127.0.0.1:0".into()),
            web_address: None,
            ..Default::default()
        }))
        .unwrap();
    (runtime, platform)
}

/// The status of one HTTP/1.1 request.
fn status(address: &str, method: &str, target: &str, body: &[u8]) -> u16 {
    let mut stream = TcpStream::connect(address).unwrap();
    let head = format!(
        "{method} {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let line = String::from_utf8_lossy(&raw);
    line.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP response to {method} {target}: {line:?}"))
}

fn target() -> impl Strategy<Value = String> {
    let path = prop_oneof![
        Just("/registry/getService".to_owned()),
        Just("/registry/listServices".to_owned()),
        Just("/registry/register".to_owned()),
        Just("/registry/deregister".to_owned()),
        Just("/registry".to_owned()),
        "/[a-zA-Z0-9._~%-]{0,12}(/[a-zA-Z0-9._-]{0,8}){0,4}",
    ];
    let query = proptest::option::of(
        "[a-z_.\\[\\]]{1,10}=[a-zA-Z0-9%.-]{0,8}(&[a-z_\\[\\]]{1,6}=[0-9a-z]{0,4}){0,3}",
    );
    (path, query).prop_map(|(p, q)| match q {
        Some(q) => format!("{p}?{q}"),
        None => p,
    })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..48),
        "[{}\\[\\]\":,a-z0-9 .-]{0,40}".prop_map(String::into_bytes),
        ("[a-z]{0,8}", "[a-z0-9\":{}]{0,12}").prop_map(|(name, junk)| {
            format!(r#"{{"name":"{name}","service":{{"name":"{name}","nodes":{junk}}}}}"#)
                .into_bytes()
        }),
    ]
}

#[test]
fn every_request_gets_an_answer_and_client_mistakes_are_4xx() {
    let (runtime, platform) = platform();
    let api = platform.api_address().unwrap().to_string();
    let config = ProptestConfig {
        cases: 200,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(method in prop_oneof![Just("GET"), Just("POST"), Just("PUT"), Just("DELETE")],
                        target in target(),
                        body in body())| {
        let code = status(&api, method, &target, &body);
        prop_assert!((200..500).contains(&code), "{} {} {:?} → {}", method, target, String::from_utf8_lossy(&body), code);
    });
    runtime.block_on(platform.stop());
}
