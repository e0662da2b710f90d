//! The registry contract: one suite every [`Registry`] backend runs.
//!
//! A backend's test calls [`run_all`] with its registry and a [`Clock`]: the in-memory registry
//! passes [`PausedClock`] (tokio's paused time), a backend on real sockets or a real engine
//! passes [`RealClock`]. Each check works in a namespace of its own, so a shared engine can run
//! the suite while holding other data.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;

use super::{Endpoint, Node, Registry, Service, Value, WatchAction, Watcher};

use crate::contract::unique;
pub use crate::contract::{Clock, PausedClock, RealClock};

/// Runs every check of the contract.
pub async fn run_all(registry: Arc<dyn Registry>, clock: impl Clock) {
    versions_are_separate_entries(&*registry).await;
    schemas_and_metadata_round_trip(&*registry).await;
    namespaces_are_isolated(&*registry).await;
    deregistering_the_last_node_removes_the_service(&*registry).await;
    watch_reports_create_update_delete(&*registry).await;
    watch_filters_by_service(&*registry).await;
    ttl_expires_nodes_that_stop_heartbeating(&*registry, &clock).await;
    bad_registrations_are_refused(&*registry).await;
}

fn service(name: &str, version: &str, nodes: &[&str]) -> Service {
    let mut s = Service::new(name, version);
    for (i, id) in nodes.iter().enumerate() {
        s.nodes
            .push(Node::new(*id, format!("127.0.0.1:{}", 10_000 + i)));
    }
    s
}

const TTL: Duration = Duration::from_secs(30);

async fn next(watch: &mut Watcher) -> super::WatchEvent {
    tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .expect("a watch event within 10s")
        .expect("the watch stream stays open")
        .expect("the watch reports no error")
}

/// Two versions of one name are two entries; `list` shows both, sorted.
pub async fn versions_are_separate_entries(registry: &dyn Registry) {
    let ns = unique("versions");
    registry
        .register(&ns, &service("svc", "v2", &["b"]), TTL)
        .await
        .unwrap();
    registry
        .register(&ns, &service("svc", "v1", &["a"]), TTL)
        .await
        .unwrap();
    let mut got = registry.get_service(&ns, "svc").await.unwrap();
    got.sort_by(|a, b| a.version.cmp(&b.version));
    assert_eq!(
        got.iter().map(|s| s.version.as_str()).collect::<Vec<_>>(),
        ["v1", "v2"]
    );
    assert_eq!(got[0].nodes[0].id, "a");
    assert_eq!(got[1].nodes[0].id, "b");
    let listed = registry.list_services(&ns).await.unwrap();
    let pairs: Vec<_> = listed
        .iter()
        .map(|s| (s.name.as_str(), s.version.as_str()))
        .collect();
    assert_eq!(pairs, [("svc", "v1"), ("svc", "v2")]);
}

/// Endpoints with nested schemas, service and node metadata come back as registered.
pub async fn schemas_and_metadata_round_trip(registry: &dyn Registry) {
    let ns = unique("schemas");
    let mut svc = service("svc", "latest", &["a"]);
    svc.metadata.insert("team".into(), "core".into());
    svc.nodes[0].metadata.insert("package".into(), "svc".into());
    let mut endpoint = Endpoint::new("Svc.Call");
    endpoint.request = Some(Value {
        name: "Request".into(),
        r#type: "svc.Request".into(),
        values: vec![
            Value {
                name: "name".into(),
                r#type: "string".into(),
                values: vec![],
            },
            Value {
                name: "inner".into(),
                r#type: "svc.Inner".into(),
                values: vec![Value {
                    name: "n".into(),
                    r#type: "int64".into(),
                    values: vec![],
                }],
            },
        ],
    });
    endpoint.metadata.insert("stream".into(), "server".into());
    svc.endpoints.push(endpoint);
    registry.register(&ns, &svc, TTL).await.unwrap();
    let got = registry.get_service(&ns, "svc").await.unwrap();
    assert_eq!(got, vec![svc]);
}

/// Nothing registered in one namespace is visible from another.
pub async fn namespaces_are_isolated(registry: &dyn Registry) {
    let a = unique("ns-a");
    let b = unique("ns-b");
    let mut watch_b = registry.watch(&b, None).await.unwrap();
    registry
        .register(&a, &service("svc", "latest", &["a"]), TTL)
        .await
        .unwrap();
    let err = registry.get_service(&b, "svc").await.unwrap_err();
    assert_eq!(err.code, 404);
    assert!(registry.list_services(&b).await.unwrap().is_empty());
    // The first event namespace b sees is its own, not a's.
    registry
        .register(&b, &service("other", "latest", &["o"]), TTL)
        .await
        .unwrap();
    assert_eq!(next(&mut watch_b).await.service.name, "other");
    // `*` lists both.
    let all = registry.list_services("*").await.unwrap();
    assert!(all.iter().any(|s| s.name == "svc") && all.iter().any(|s| s.name == "other"));
}

/// Removing nodes one by one: the service stays while a node does, and is gone after the last.
pub async fn deregistering_the_last_node_removes_the_service(registry: &dyn Registry) {
    let ns = unique("dereg");
    registry
        .register(&ns, &service("svc", "latest", &["a", "b"]), TTL)
        .await
        .unwrap();
    registry
        .deregister(&ns, &service("svc", "latest", &["a"]))
        .await
        .unwrap();
    let got = registry.get_service(&ns, "svc").await.unwrap();
    assert_eq!(
        got[0]
            .nodes
            .iter()
            .map(|n| n.id.as_str())
            .collect::<Vec<_>>(),
        ["b"]
    );
    registry
        .deregister(&ns, &service("svc", "latest", &["b"]))
        .await
        .unwrap();
    assert_eq!(
        registry.get_service(&ns, "svc").await.unwrap_err().code,
        404
    );
    assert!(registry.list_services(&ns).await.unwrap().is_empty());
    // Deregistering what is not there is not an error.
    registry
        .deregister(&ns, &service("svc", "latest", &["b"]))
        .await
        .unwrap();
}

/// A watcher sees a version appear, change and disappear.
pub async fn watch_reports_create_update_delete(registry: &dyn Registry) {
    let ns = unique("watch");
    let mut watch = registry.watch(&ns, None).await.unwrap();
    registry
        .register(&ns, &service("svc", "latest", &["a"]), TTL)
        .await
        .unwrap();
    let created = next(&mut watch).await;
    assert_eq!(
        (created.action, created.service.name.as_str()),
        (WatchAction::Create, "svc")
    );
    registry
        .register(&ns, &service("svc", "latest", &["b"]), TTL)
        .await
        .unwrap();
    let updated = next(&mut watch).await;
    assert_eq!(updated.action, WatchAction::Update);
    assert_eq!(updated.service.nodes.len(), 2);
    registry
        .deregister(&ns, &service("svc", "latest", &["a", "b"]))
        .await
        .unwrap();
    let deleted = next(&mut watch).await;
    assert_eq!(
        (deleted.action, deleted.service.name.as_str()),
        (WatchAction::Delete, "svc")
    );
}

/// A watch on one service ignores the others.
pub async fn watch_filters_by_service(registry: &dyn Registry) {
    let ns = unique("watch-one");
    let mut watch = registry.watch(&ns, Some("wanted")).await.unwrap();
    registry
        .register(&ns, &service("unwanted", "latest", &["u"]), TTL)
        .await
        .unwrap();
    registry
        .register(&ns, &service("wanted", "latest", &["w"]), TTL)
        .await
        .unwrap();
    assert_eq!(next(&mut watch).await.service.name, "wanted");
}

/// A node that stops heartbeating is gone once its TTL passes; heartbeats keep it alive.
pub async fn ttl_expires_nodes_that_stop_heartbeating(registry: &dyn Registry, clock: &impl Clock) {
    let ns = unique("ttl");
    let ttl = Duration::from_secs(2);
    registry
        .register(&ns, &service("svc", "latest", &["beating", "silent"]), ttl)
        .await
        .unwrap();
    clock.pass(Duration::from_millis(1200)).await;
    registry
        .register(&ns, &service("svc", "latest", &["beating"]), ttl)
        .await
        .unwrap();
    clock.pass(Duration::from_millis(1300)).await;
    let got = registry.get_service(&ns, "svc").await.unwrap();
    assert_eq!(
        got[0]
            .nodes
            .iter()
            .map(|n| n.id.as_str())
            .collect::<Vec<_>>(),
        ["beating"]
    );
    clock.pass(Duration::from_millis(1500)).await;
    assert_eq!(
        registry.get_service(&ns, "svc").await.unwrap_err().code,
        404
    );
    assert!(registry.list_services(&ns).await.unwrap().is_empty());
}

/// Registrations that could never be found again are refused with a 400.
pub async fn bad_registrations_are_refused(registry: &dyn Registry) {
    let ns = unique("bad");
    let no_nodes = Service::new("svc", "latest");
    assert_eq!(
        registry
            .register(&ns, &no_nodes, TTL)
            .await
            .unwrap_err()
            .code,
        400
    );
    let no_name = service("", "latest", &["a"]);
    assert_eq!(
        registry
            .register(&ns, &no_name, TTL)
            .await
            .unwrap_err()
            .code,
        400
    );
}
