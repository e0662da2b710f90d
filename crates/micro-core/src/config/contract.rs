//! The config contract: one suite every [`Config`] implementation runs (BEHAVIOR.md §3, Config).

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use serde_json::{Value, json};

use super::Config;
use crate::contract::unique;

/// Runs every check of the contract.
pub async fn run_all(config: Arc<dyn Config>) {
    missing_paths_are_not_found(&*config).await;
    values_round_trip(&*config).await;
    objects_merge_leaf_by_leaf(&*config).await;
    secrets_are_masked_unless_revealed(&*config).await;
    delete_removes(&*config).await;
    namespaces_are_separate(&*config).await;
    watchers_see_changes(&*config).await;
}

async fn get(config: &dyn Config, ns: &str, path: &str) -> Value {
    config.get(ns, path, false).await.expect("get")
}

async fn missing_paths_are_not_found(config: &dyn Config) {
    let ns = unique("missing");
    let err = config.get(&ns, "nope", false).await.expect_err("missing");
    assert_eq!(err.code, 404, "{err:?}");
    let err = config.get(&ns, "a..b", false).await.expect_err("bad path");
    assert_eq!(err.code, 400, "{err:?}");
}

async fn values_round_trip(config: &dyn Config) {
    let ns = unique("values");
    for value in [
        json!("Value with <> signs"),
        json!(42),
        json!(true),
        json!([1, "two"]),
        json!(null),
    ] {
        config
            .set(&ns, "key", value.clone(), false)
            .await
            .expect("set");
        assert_eq!(get(config, &ns, "key").await, value);
    }
}

async fn objects_merge_leaf_by_leaf(config: &dyn Config) {
    let ns = unique("merge");
    config
        .set(&ns, "app", json!({"a": 1}), false)
        .await
        .expect("set");
    config
        .set(&ns, "app", json!({"b": 2}), false)
        .await
        .expect("set");
    assert_eq!(get(config, &ns, "app").await, json!({"a": 1, "b": 2}));
    config
        .set(&ns, "app", json!({"n": {"x": 1}}), false)
        .await
        .expect("set");
    config
        .set(&ns, "app", json!({"n": {"y": 2}}), false)
        .await
        .expect("set");
    assert_eq!(
        get(config, &ns, "app.n").await,
        json!({"x": 1, "y": 2}),
        "nested merges recurse"
    );
    config
        .set(&ns, "app.a", json!({"deep": true}), false)
        .await
        .expect("set");
    assert_eq!(
        get(config, &ns, "app.a.deep").await,
        json!(true),
        "a scalar is replaced by an object"
    );
    config
        .set(&ns, "app.n", json!(7), false)
        .await
        .expect("set");
    assert_eq!(
        get(config, &ns, "app").await,
        json!({"a": {"deep": true}, "b": 2, "n": 7})
    );
}

async fn secrets_are_masked_unless_revealed(config: &dyn Config) {
    let ns = unique("secret");
    config
        .set(&ns, "db.password", json!("hunter2"), true)
        .await
        .expect("set");
    config
        .set(&ns, "db.host", json!("localhost"), false)
        .await
        .expect("set");
    assert_eq!(get(config, &ns, "db.password").await, json!("[secret]"));
    assert_eq!(
        get(config, &ns, "db").await,
        json!({"password": "[secret]", "host": "localhost"})
    );
    assert_eq!(
        config.get(&ns, "db.password", true).await.expect("get"),
        json!("hunter2")
    );
}

async fn delete_removes(config: &dyn Config) {
    let ns = unique("delete");
    config
        .set(&ns, "a", json!({"b": 1, "c": 2}), false)
        .await
        .expect("set");
    config.delete(&ns, "a.b").await.expect("delete");
    assert_eq!(get(config, &ns, "a").await, json!({"c": 2}));
    config
        .delete(&ns, "a.missing")
        .await
        .expect("deleting a missing path succeeds");
}

async fn namespaces_are_separate(config: &dyn Config) {
    let (a, b) = (unique("ns-a"), unique("ns-b"));
    config
        .set(&a, "k", json!("in a"), false)
        .await
        .expect("set");
    assert_eq!(
        config
            .get(&b, "k", false)
            .await
            .expect_err("other namespace")
            .code,
        404
    );
}

async fn watchers_see_changes(config: &dyn Config) {
    let ns = unique("watch");
    let mut watcher = config.watch(&ns, "greeting", false).await.expect("watch");
    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(5), watcher.next())
            .await
            .expect("a value within 5 s")
            .expect("open")
            .expect("no error")
    };
    assert_eq!(next().await, None, "first the current value: missing");
    config
        .set(&ns, "greeting", json!("hi"), false)
        .await
        .expect("set");
    assert_eq!(next().await, Some(json!("hi")));
    config
        .set(&ns, "other", json!(1), false)
        .await
        .expect("set");
    config
        .set(&unique("elsewhere"), "greeting", json!("no"), false)
        .await
        .expect("set");
    config
        .set(&ns, "greeting", json!("hello"), false)
        .await
        .expect("set");
    assert_eq!(
        next().await,
        Some(json!("hello")),
        "only changes of the path, in the namespace"
    );
}
