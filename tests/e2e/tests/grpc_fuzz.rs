//! Fuzzes the gRPC door: every method of every platform service (and the proxy) is sent
//! arbitrary messages — random bytes, and messages of the right type whose fields hold odd
//! values (huge numbers, long, empty or control-laden strings, deep dotted paths) — as the
//! `micro` admin, who gets furthest into the handlers. Whatever arrives, the answer is a status
//! that is not a server fault (`INTERNAL`, `UNKNOWN`, `DATA_LOSS`), and the platform keeps
//! answering. Bounded: a fixed number of cases per method.

use std::{str::FromStr, time::Duration};

use bytes::Bytes;
use futures::StreamExt;
use http::uri::PathAndQuery;
use micro::codec::BytesCodec;
use micro_e2e::in_process::{admin_token, platform};
use proptest::{prelude::*, strategy::ValueTree, test_runner::TestRunner};
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, Kind, MessageDescriptor, Value};
use tonic::{Code, metadata::MetadataValue, transport::Channel};

/// One odd value for a field.
#[derive(Debug, Clone)]
enum Odd {
    Text(String),
    Number(i64),
    Flag(bool),
}

fn odd() -> impl Strategy<Value = Odd> {
    prop_oneof![
        "[a-z./*]{0,12}".prop_map(Odd::Text),
        "\\PC{0,40}".prop_map(Odd::Text),
        (1usize..4000).prop_map(|n| Odd::Text("a.".repeat(n))),
        Just(Odd::Text("*".into())),
        Just(Odd::Text("x".repeat(70_000))),
        any::<i64>().prop_map(Odd::Number),
        Just(Odd::Number(i64::MAX)),
        Just(Odd::Number(-1)),
        any::<bool>().prop_map(Odd::Flag),
    ]
}

/// A message of `descriptor` with each `(field, value)` set where the types allow.
fn fill(descriptor: &MessageDescriptor, values: &[(usize, Odd)], depth: usize) -> DynamicMessage {
    let mut message = DynamicMessage::new(descriptor.clone());
    let fields: Vec<_> = descriptor.fields().collect();
    if fields.is_empty() {
        return message;
    }
    for (index, odd) in values {
        let field = &fields[index % fields.len()];
        let value = match (field.kind(), odd) {
            (Kind::String, Odd::Text(t)) => Value::String(t.clone()),
            (Kind::Bytes, Odd::Text(t)) => Value::Bytes(Bytes::from(t.clone().into_bytes())),
            (Kind::Int64 | Kind::Sint64 | Kind::Sfixed64, Odd::Number(n)) => Value::I64(*n),
            (Kind::Uint64 | Kind::Fixed64, Odd::Number(n)) => Value::U64(n.unsigned_abs()),
            (Kind::Int32 | Kind::Sint32 | Kind::Sfixed32, Odd::Number(n)) => Value::I32(*n as i32),
            (Kind::Uint32 | Kind::Fixed32, Odd::Number(n)) => Value::U32(n.unsigned_abs() as u32),
            (Kind::Bool, Odd::Flag(b)) => Value::Bool(*b),
            (Kind::Message(inner), _) if depth < 3 && !field.is_map() => {
                Value::Message(fill(&inner, values, depth + 1))
            }
            _ => continue,
        };
        let value = if field.is_list() {
            Value::List(vec![value])
        } else {
            value
        };
        message.set_field(field, value);
    }
    message
}

#[derive(Debug, Clone)]
enum Case {
    Bytes(Vec<u8>),
    Fields(Vec<(usize, Odd)>),
}

fn case() -> impl Strategy<Value = Case> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(Case::Bytes),
        proptest::collection::vec((0usize..16, odd()), 0..6).prop_map(Case::Fields),
    ]
}

/// Sends `body` to `path`; answers the status (OK when it answered).
async fn send(channel: Channel, token: &str, path: &str, body: Bytes) -> tonic::Status {
    let mut grpc = tonic::client::Grpc::new(channel);
    if grpc.ready().await.is_err() {
        return tonic::Status::unavailable("not ready");
    }
    let mut request = tonic::Request::new(futures::stream::iter([body]));
    request.metadata_mut().insert(
        "authorization",
        MetadataValue::try_from(format!("Bearer {token}")).expect("token"),
    );
    let path = PathAndQuery::from_str(path).expect("path");
    let answer = tokio::time::timeout(
        Duration::from_secs(5),
        grpc.streaming(request, path, BytesCodec),
    )
    .await;
    match answer {
        // A stream that keeps going (a watch) answered; its first item says how.
        Err(_) => tonic::Status::ok(""),
        Ok(Err(status)) => status,
        Ok(Ok(response)) => {
            let mut items = response.into_inner();
            match tokio::time::timeout(Duration::from_millis(200), items.next()).await {
                Ok(Some(Err(status))) => status,
                _ => tonic::Status::ok(""),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_message_to_any_platform_method_is_a_server_fault() {
    let platform = platform(true).await;
    let token = admin_token(&platform).await;
    let channel = Channel::from_shared(format!("http://{}", platform.grpc_address()))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let pool = DescriptorPool::decode(micro_proto::FILE_DESCRIPTOR_SET).expect("descriptors");
    let mut faults = Vec::new();
    for service in pool.services() {
        for method in service.methods() {
            let path = format!("/{}/{}", service.full_name(), method.name());
            // The runtime builds what it is given; its messages are fuzzed anonymously
            // elsewhere, not as an admin who could start builds.
            if service.full_name() == "micro.runtime.Runtime" && method.name() != "Read" {
                continue;
            }
            let input = method.input();
            let mut runner = TestRunner::new(ProptestConfig {
                cases: 24,
                failure_persistence: None,
                ..ProptestConfig::default()
            });
            let mut cases = Vec::new();
            for _ in 0..24 {
                cases.push(case().new_tree(&mut runner).expect("a case").current());
            }
            for case in cases {
                let body = match &case {
                    Case::Bytes(bytes) => Bytes::from(bytes.clone()),
                    Case::Fields(values) => Bytes::from(fill(&input, values, 0).encode_to_vec()),
                };
                let status = send(channel.clone(), &token, &path, body).await;
                if matches!(
                    status.code(),
                    Code::Internal | Code::Unknown | Code::DataLoss
                ) {
                    let case: String = format!("{case:?}").chars().take(120).collect();
                    faults.push(format!(
                        "{path} → {:?} {:?} for {case}",
                        status.code(),
                        status.message()
                    ));
                }
            }
        }
    }
    // Still answering.
    let status = send(
        channel,
        &token,
        "/micro.registry.Registry/ListServices",
        Bytes::new(),
    )
    .await;
    assert_eq!(status.code(), Code::Ok, "{status:?}");
    let shown: Vec<String> = faults
        .iter()
        .take(20)
        .map(|f| f.chars().take(400).collect())
        .collect();
    assert!(
        faults.is_empty(),
        "{} server faults:\n{}",
        faults.len(),
        shown.join("\n")
    );
    platform.stop().await;
}
