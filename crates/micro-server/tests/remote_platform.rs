//! The store, config, broker and events contracts, run through a real server on a real socket
//! with the embedded backends (redb files in a temporary MICRO_HOME): each remote client of
//! `micro` → the platform service → the backend.

use std::sync::Arc;

use micro::{
    broker::RemoteBroker, config::RemoteConfig, events::RemoteEvents, remote::Connection,
    store::RemoteStore,
};
use micro_core::contract::RealClock;

async fn platform(home: &std::path::Path) -> micro_server::Platform {
    micro_server::start(micro_server::Options {
        address: "127.0.0.1:0".into(),
        api_address: None,
        web_address: None,
        home: Some(home.to_owned()),
        // These check the store and config contracts over gRPC; auth has tests of its own.
        auth: micro_server::AuthOptions {
            enabled: false,
            ..Default::default()
        },
        ..Default::default()
    })
    .await
    .expect("start")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_store_passes_the_contract() {
    let home = tempfile::tempdir().expect("tempdir");
    let platform = platform(home.path()).await;
    let conn = Connection::lazy(&platform.grpc_address().to_string()).expect("connection");
    micro_core::store::contract::run_all(Arc::new(RemoteStore::over(conn, "micro")), RealClock)
        .await;
    platform.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_config_passes_the_contract() {
    let home = tempfile::tempdir().expect("tempdir");
    let platform = platform(home.path()).await;
    let conn = Connection::lazy(&platform.grpc_address().to_string()).expect("connection");
    micro_core::config::contract::run_all(Arc::new(RemoteConfig::over(conn))).await;
    platform.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_broker_passes_the_contract() {
    let home = tempfile::tempdir().expect("tempdir");
    let platform = platform(home.path()).await;
    let conn = Connection::lazy(&platform.grpc_address().to_string()).expect("connection");
    micro_core::broker::contract::run_all(Arc::new(RemoteBroker::over(conn))).await;
    platform.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_events_pass_the_contract() {
    let home = tempfile::tempdir().expect("tempdir");
    let platform = platform(home.path()).await;
    let conn = Connection::lazy(&platform.grpc_address().to_string()).expect("connection");
    micro_core::events::contract::run_all(Arc::new(RemoteEvents::over(conn)), RealClock).await;
    platform.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_namespaces_are_invisible_to_each_other() {
    use micro_core::store::{Query, Record, Store};
    let home = tempfile::tempdir().expect("tempdir");
    let platform = platform(home.path()).await;
    let conn = Connection::lazy(&platform.grpc_address().to_string()).expect("connection");
    let a = RemoteStore::over(conn.clone(), "team-a");
    let b = RemoteStore::over(conn, "team-b");
    a.write("shared", "t", Record::new("k", "a's"))
        .await
        .expect("write");
    assert_eq!(
        b.read("shared", "t", "k")
            .await
            .expect_err("invisible")
            .code,
        404
    );
    assert!(
        b.list("shared", "t", &Query::default())
            .await
            .expect("list")
            .is_empty()
    );
    assert_eq!(a.databases().await.expect("databases"), ["shared"]);
    assert!(b.databases().await.expect("databases").is_empty());
    let err = a
        .write("a/b", "t", Record::new("k", "v"))
        .await
        .expect_err("slash");
    assert_eq!(err.code, 400, "{err:?}");
    platform.stop().await;
}
