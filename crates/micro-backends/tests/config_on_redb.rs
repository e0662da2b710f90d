//! Config on the redb store, secrets sealed by the server key: the config contract, and no
//! secret in clear on disk.

use std::sync::Arc;

use micro_backends::{ServerFiles, redb::RedbStore, sealer::KeySealer};
use micro_core::{
    config::{CONFIG_DATABASE, Config, StoreConfig, contract},
    store::{Query, Store},
};
use serde_json::json;

fn config(files: &ServerFiles) -> (StoreConfig, RedbStore) {
    let store = RedbStore::open(&files.store()).expect("store");
    let sealer = KeySealer::load_or_create(&files.secret_key()).expect("key");
    (
        StoreConfig::new(Arc::new(store.clone()), Arc::new(sealer)),
        store,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_on_redb_passes_the_contract() {
    let home = tempfile::tempdir().expect("tempdir");
    let (config, _) = config(&ServerFiles::new(home.path()));
    contract::run_all(Arc::new(config)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_sealed_at_rest_and_open_after_a_restart() {
    let home = tempfile::tempdir().expect("tempdir");
    let files = ServerFiles::new(home.path());
    {
        let (config, store) = config(&files);
        config
            .set("ns", "db.password", json!("hunter2-very-secret"), true)
            .await
            .expect("set");
        let stored = store
            .find(CONFIG_DATABASE, "documents", &Query::default())
            .await
            .expect("find");
        let raw: Vec<u8> = stored.into_iter().flat_map(|r| r.value).collect();
        assert!(!raw.is_empty(), "the document is stored");
        assert!(
            !String::from_utf8_lossy(&raw).contains("hunter2"),
            "no secret in clear: {}",
            String::from_utf8_lossy(&raw)
        );
    }
    let (config, _) = config(&files);
    assert_eq!(
        config.get("ns", "db.password", true).await.expect("get"),
        json!("hunter2-very-secret")
    );
    assert_eq!(
        config.get("ns", "db", false).await.expect("get"),
        json!({"password": "[secret]"})
    );
}
