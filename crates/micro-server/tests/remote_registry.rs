//! The registry contract, run through the server's gRPC registry service on a real socket:
//! `RemoteRegistry` → `micro.registry.Registry` → the embedded registry.

use std::sync::Arc;

use micro::registry::RemoteRegistry;
use micro_core::registry::contract;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_registry_passes_the_contract() {
    let platform = micro_server::start(micro_server::Options {
        address: "127.0.0.1:0".into(),
        api_address: None,
        web_address: None,
        reap_interval: std::time::Duration::from_millis(100),
        // The contract makes namespaces of its own; with auth on, strangers may not.
        auth: micro_server::AuthOptions {
            enabled: false,
            ..Default::default()
        },
        ..Default::default()
    })
    .await
    .unwrap();
    let registry = RemoteRegistry::new(&platform.grpc_address().to_string()).unwrap();
    contract::run_all(Arc::new(registry), contract::RealClock).await;
    platform.stop().await;
}

#[tokio::test]
async fn an_unreachable_server_is_named_in_the_error() {
    // Bind then drop a listener: nothing listens on that port now.
    let address = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let registry = RemoteRegistry::new(&address).unwrap();
    let err = micro_core::Registry::list_services(&registry, "micro")
        .await
        .unwrap_err();
    assert_eq!(
        err.detail,
        format!("Failed to connect to micro server at {address}")
    );
}
