//! A call in flight when its node dies: the gateway answers 503 and says whether it is safe to
//! try again, instead of a 500 "transport error" — unless the proto marks the call safe to
//! repeat, and then another node answers it. The node sits behind a TCP relay the test
//! cuts while the handler is running, as a `kill -9` of the node would.

use std::{sync::Arc, time::Duration};

use micro_e2e::{
    call_only,
    helloworld::{DESCRIPTORS, helloworld_server},
    in_process::platform,
};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{Mutex, Notify},
    task::JoinHandle,
};

/// Relays connections to `target` until the returned tasks are aborted.
async fn relay(target: String) -> (String, Arc<Mutex<Vec<JoinHandle<()>>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    let tasks: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
    let held = tasks.clone();
    let accept = tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let target = target.clone();
            let task = tokio::spawn(async move {
                if let Ok(mut outbound) = TcpStream::connect(&target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
            held.lock().await.push(task);
        }
    });
    tasks.lock().await.push(accept);
    (address, tasks)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_dies_mid_call_is_a_503_that_says_whether_to_retry() {
    let platform = platform(false).await;
    let entered = Arc::new(Notify::new());
    let service = micro::Service::new("stuck")
        .descriptors(DESCRIPTORS)
        // `Call` says it has started, then never answers.
        // `Call` says it has started, then never answers.
        .handle(helloworld_server::HelloworldServer::new(call_only({
            let entered = entered.clone();
            move |_| {
                let entered = entered.clone();
                async move {
                    entered.notify_one();
                    std::future::pending().await
                }
            }
        })))
        .server(platform.grpc_address().to_string())
        .start()
        .await
        .expect("service");
    // The same service, registered once more at the relay's address under another name.
    let (relayed, tasks) = relay(service.address().to_string()).await;
    let mut record = service.record().clone();
    record.name = "relayed".into();
    for node in &mut record.nodes {
        node.address = relayed.clone();
        node.id = format!("relayed-{}", node.id);
    }
    let registry = micro::registry::RemoteRegistry::new(&platform.grpc_address().to_string())
        .expect("registry");
    micro::Registry::register(&registry, "micro", &record, Duration::from_secs(60))
        .await
        .expect("register");

    let api = platform.api_address().expect("gateway").to_string();
    let call = tokio::task::spawn_blocking(move || {
        micro_e2e::http(
            &api,
            "POST",
            "/relayed/call",
            &[("Content-Type", "application/json")],
            r#"{"name":"x"}"#,
        )
    });
    entered.notified().await;
    for task in tasks.lock().await.drain(..) {
        task.abort();
    }
    let rsp = call.await.expect("answer");
    assert_eq!(rsp.status, 503, "{rsp:?}");
    assert!(
        rsp.body.contains("may or may not have run"),
        "says whether to retry: {}",
        rsp.body
    );
    let _ = service.stop().await;
    platform.stop().await;
}

/// A call the proto marks safe to repeat (`Helloworld.Call` has no side effects) that loses
/// its connection mid-call is sent again to another node: the caller gets the answer, not a 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_safe_to_repeat_goes_to_another_node_when_its_node_dies_mid_call() {
    let platform = platform(false).await;
    let server = platform.grpc_address().to_string();
    let entered = Arc::new(Notify::new());
    let stuck = micro::Service::new("stuck")
        .descriptors(DESCRIPTORS)
        .handle(helloworld_server::HelloworldServer::new(call_only({
            let entered = entered.clone();
            move |_| {
                let entered = entered.clone();
                async move {
                    entered.notify_one();
                    std::future::pending().await
                }
            }
        })))
        .server(server.clone())
        .start()
        .await
        .expect("stuck service");
    let healthy = micro::Service::new("healthy")
        .descriptors(DESCRIPTORS)
        .handle(helloworld_server::HelloworldServer::new(call_only(
            |_| async {
                Ok(tonic::Response::new(micro_e2e::helloworld::Response {
                    msg: "from the healthy node".into(),
                }))
            },
        )))
        .server(server.clone())
        .start()
        .await
        .expect("healthy service");
    // One service, two nodes: the stuck one behind a relay the test cuts, and the healthy one.
    let (relayed, tasks) = relay(stuck.address().to_string()).await;
    let mut record = stuck.record().clone();
    record.name = "mixed".into();
    record.nodes = vec![
        micro_core::Node::new("mixed-stuck", &relayed),
        micro_core::Node::new("mixed-healthy", healthy.address().to_string()),
    ];
    let registry = micro::registry::RemoteRegistry::new(&server).expect("registry");
    micro::Registry::register(&registry, "micro", &record, Duration::from_secs(60))
        .await
        .expect("register");

    let api = platform.api_address().expect("gateway").to_string();
    let mut cut = false;
    for _ in 0..40 {
        let api = api.clone();
        let mut call = tokio::task::spawn_blocking(move || {
            micro_e2e::http(
                &api,
                "POST",
                "/mixed/call",
                &[("Content-Type", "application/json")],
                r#"{"name":"x"}"#,
            )
        });
        let rsp = tokio::select! {
            rsp = &mut call => rsp.expect("answer"),
            () = entered.notified() => {
                // On the stuck node: the connection dies under the call.
                for task in tasks.lock().await.drain(..) {
                    task.abort();
                }
                cut = true;
                call.await.expect("answer")
            }
        };
        assert_eq!(rsp.status, 200, "{rsp:?}");
        assert!(rsp.body.contains("from the healthy node"), "{rsp:?}");
        if cut {
            break;
        }
    }
    assert!(cut, "no call went to the stuck node first");
    drop(registry);
    let _ = stuck.stop().await;
    let _ = healthy.stop().await;
    platform.stop().await;
}
