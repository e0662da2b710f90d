//! Locks and leader election through a real server: the sync contract on the store reached
//! over gRPC, and the leader example taking over when its leader is `kill -9`ed.

use std::time::Duration;

use micro_e2e::{Sandbox, bin, wait_for};

#[tokio::test(flavor = "multi_thread")]
async fn locks_and_leaders_pass_the_contract_through_the_server() {
    let platform = micro_e2e::in_process::platform(false).await;
    let remote =
        micro::store::RemoteStore::new(&platform.grpc_address().to_string(), "micro").unwrap();
    let store = micro::store::Store::new(std::sync::Arc::new(remote), "micro", "locks");
    micro::sync::contract::run_all(store.into(), micro::sync::contract::RealClock).await;
    platform.stop().await;
}

#[test]
fn a_killed_leader_is_replaced_within_its_ttl_with_a_larger_token() {
    killed_leader_is_replaced(&[]);
}

#[test]
fn a_killed_leader_on_etcd_is_replaced_within_its_ttl_with_a_larger_token() {
    let etcd = micro_e2e::engines::etcd();
    killed_leader_is_replaced(&[
        ("MICRO_SYNC", "etcd"),
        ("MICRO_SYNC_ADDRESS", etcd.address.as_str()),
    ]);
}

/// Two `leader` processes (with `extra` in their environment): one leads, is `kill -9`ed,
/// and the other leads after the TTL with a larger token.
fn killed_leader_is_replaced(extra: &[(&str, &str)]) {
    let sb = Sandbox::with_server();
    let account = sb.service_account("leader");
    let env: Vec<(&str, &str)> = account
        .iter()
        .map(|(k, v)| (*k, v.as_str()))
        .chain([("LEADER_TTL", "2s")])
        .chain(extra.iter().copied())
        .collect();
    let start = || {
        let mut cmd = std::process::Command::new(bin("leader"));
        cmd.env("MICRO_HOME", sb.home.path())
            .env("MICRO_SERVER_ADDRESS", sb.address());
        for (k, v) in &env {
            cmd.env(k, v);
        }
        micro_e2e::Proc::spawn(cmd)
    };
    let mut first = start();
    let line = first.wait_line("leading with token");
    let token: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    let mut second = start();
    second.wait_line("waiting to lead");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        second.count("leading"),
        0,
        "one leader while the first renews"
    );
    first.signal("-9");
    let took_over = wait_for(Duration::from_secs(10), "the second to lead", || {
        second
            .lines()
            .into_iter()
            .find(|l| l.contains("leading with token"))
    });
    let next: u64 = took_over.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(next > token, "{next} after {token}");
}
