//! Traces end to end: `micro call relay Helloworld.Call` crosses four processes — the CLI,
//! `micro server` (its proxy), `relay` and `helloworld` — and each exports its spans with
//! OTLP/gRPC to a receiver this test serves (the published OpenTelemetry trace service). They
//! must share one trace id, each hop a child of the one before, and the services' log lines
//! inside the call must carry that id. A broker message relay publishes inside the call is
//! consumed in a span of the same trace.

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use micro_e2e::{Sandbox, bin};
use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    common::v1::any_value::Value,
};
use tonic::{Request, Response, Status};

/// A span as the receiver saw it.
#[derive(Clone)]
struct Seen {
    service: String,
    name: String,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent: Vec<u8>,
}

impl std::fmt::Debug for Seen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {:?} span {} parent {} trace {}",
            self.service,
            self.name,
            hex(&self.span_id),
            hex(&self.parent),
            hex(&self.trace_id)
        )
    }
}

#[derive(Clone, Default)]
struct Receiver {
    spans: Arc<Mutex<Vec<Seen>>>,
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let mut spans = self.spans.lock().unwrap();
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|a| a.key == "service.name")
                .and_then(|a| a.value.as_ref()?.value.as_ref())
                .map(|v| match v {
                    Value::StringValue(s) => s.clone(),
                    other => format!("{other:?}"),
                })
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    spans.push(Seen {
                        service: service.clone(),
                        name: span.name,
                        trace_id: span.trace_id,
                        span_id: span.span_id,
                        parent: span.parent_span_id,
                    });
                }
            }
        }
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}

/// The trace of the CLI's call, hop by hop, each span the child of the one before:
/// the CLI's root → the server's span for the proxy call → its call to relay → relay's server
/// span → relay's call to helloworld → helloworld's server span. Its trace id and spans, or
/// what is missing so far.
fn chain(all: &[Seen], known: &[Vec<u8>]) -> Result<(Vec<u8>, Vec<Seen>), String> {
    let root = all
        .iter()
        .find(|s| s.service == "micro-cli" && s.parent.is_empty() && !known.contains(&s.trace_id))
        .ok_or("no root span from the CLI yet")?;
    let spans: Vec<Seen> = all
        .iter()
        .filter(|s| s.trace_id == root.trace_id)
        .cloned()
        .collect();
    let child = |parent: &Seen, service: &str, name: &str| {
        spans
            .iter()
            .find(|s| s.service == service && s.name == name && s.parent == parent.span_id)
            .ok_or_else(|| format!("no {name:?} from {service} under {parent:?} in {spans:#?}"))
    };
    let call = "helloworld.Helloworld/Call";
    let proxy = child(root, "micro-server", "micro.proxy.Proxy/Call")?;
    let to_relay = child(proxy, "micro-server", call)?;
    let relay = child(to_relay, "relay", call)?;
    let to_helloworld = child(relay, "relay", call)?;
    child(to_helloworld, "helloworld", call)?;
    // The message relay published inside its handler, consumed by relay's subscription.
    child(relay, "relay", "relayed process")?;
    let services: BTreeSet<&str> = spans.iter().map(|s| s.service.as_str()).collect();
    assert_eq!(services.len(), 4, "{services:?}");
    Ok((root.trace_id.clone(), spans))
}

fn borrow(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn one_trace_crosses_the_cli_the_server_and_two_services() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let receiver = Receiver::default();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    runtime.spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(receiver.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let otel = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ];

    let mut sb = Sandbox::new();
    sb.start_server_with_env(&[], &otel);
    sb.login("admin", "micro");
    let with = |account: [(&'static str, String); 2]| -> Vec<(String, String)> {
        account
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .chain(otel.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())))
            .collect()
    };
    let hello_env = with(sb.service_account("helloworld"));
    let relay_env = with(sb.service_account("relay"));
    let _helloworld = sb.helloworld(&borrow(&hello_env));
    let mut relay = sb.service(&bin("relay"), &borrow(&relay_env));

    let mut call = sb.micro_command(&["call", "relay", "Helloworld.Call", r#"{"name":"trace"}"#]);
    call.envs(otel);
    let out = micro_e2e::run(call);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("Hello trace"), "{out:?}");

    // Each process exports every 100 ms; the spans of a call arrive within a few batches.
    let started = std::time::Instant::now();
    let (trace_id, _spans) = loop {
        match chain(&receiver.spans.lock().unwrap(), &[]) {
            Ok(found) => break found,
            Err(missing) if started.elapsed() > Duration::from_secs(15) => {
                panic!("one trace through the four processes: {missing}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    };

    // The log line relay writes inside the call carries the trace id.
    let trace_hex = hex(&trace_id);
    let line = relay.proc.wait_line("relaying a call to helloworld");
    assert!(line.contains(&trace_hex), "{line} has trace_id {trace_hex}");
    let line = relay.proc.wait_line("consumed a relayed message");
    assert!(line.contains(&trace_hex), "{line} has trace_id {trace_hex}");

    // A trace its caller does not sample (`traceparent` flags 00) gets no span anywhere, and
    // every hop passes it on as it came, so no hop starts a trace of its own for the call.
    // A call to relay through the gateway, as `name`, with `traceparent` as the caller sent it.
    let relay_call = |name: &str, traceparent: &str| {
        micro_e2e::http(
            sb.api.as_deref().expect("gateway"),
            "POST",
            "/relay/call",
            &[
                ("Content-Type", "application/json"),
                ("Authorization", &format!("Bearer {}", sb.token())),
                ("traceparent", traceparent),
            ],
            &format!(r#"{{"name":"{name}"}}"#),
        )
    };
    let unsampled = "4bf92f3577b34da6a3ce929d0e0e4736";
    let answer = relay_call("quiet", &format!("00-{unsampled}-00f067aa0ba902b7-00"));
    assert_eq!(answer.status, 200, "{answer:?}");
    assert!(answer.body.contains("Hello quiet"), "{answer:?}");
    // Then a sampled call: once its spans are in, the unsampled call's would be too.
    let mut call = sb.micro_command(&["call", "relay", "Helloworld.Call", r#"{"name":"again"}"#]);
    call.envs(otel);
    assert_eq!(micro_e2e::run(call).code, 0);
    let started = std::time::Instant::now();
    let (second, _) = loop {
        match chain(
            &receiver.spans.lock().unwrap(),
            std::slice::from_ref(&trace_id),
        ) {
            Ok(found) => break found,
            Err(missing) if started.elapsed() > Duration::from_secs(15) => {
                panic!("the second sampled trace: {missing}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    let spans = receiver.spans.lock().unwrap();
    assert!(
        !spans.iter().any(|s| hex(&s.trace_id) == unsampled),
        "a span of the unsampled trace was exported"
    );
    // Every span the two services made belongs to one of the two kept traces: none of them,
    // a handler's own span included, began a trace of its own during the unsampled call.
    let strays: Vec<&Seen> = spans
        .iter()
        .filter(|s| s.service == "relay" || s.service == "helloworld")
        .filter(|s| s.trace_id != trace_id && s.trace_id != second)
        .collect();
    assert!(
        strays.is_empty(),
        "a hop started a trace of its own for the unsampled call: {strays:#?}"
    );
    assert!(
        spans
            .iter()
            .any(|s| s.name == "relay.note" && s.trace_id == second),
        "the handler's own span is in the kept trace"
    );
    drop(spans);

    // A caller's `traceparent` is only read, never trusted: one that does not parse, odd
    // flags, or one far too long, is taken as none (a trace begins here), and the call goes
    // through.
    let long = format!("00-{}-00f067aa0ba902b7-01", "a".repeat(8_000));
    for odd in [
        "not a traceparent",
        "00-00000000000000000000000000000000-0000000000000000-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-7f",
        long.as_str(),
    ] {
        let answer = relay_call("odd", odd);
        assert_eq!(answer.status, 200, "{odd:.60}: {answer:?}");
        assert!(answer.body.contains("Hello odd"), "{answer:?}");
    }
}
