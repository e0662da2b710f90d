//! Every distributed backend passes the same contract suite as the embedded one, against a real
//! engine server started for the test (etcd, nats-server with JetStream, PostgreSQL, Redis).

use std::{sync::Arc, time::Duration};

use micro_backends::{
    etcd::EtcdRegistry,
    nats::{JetStreamEvents, NatsBroker},
    postgres::PostgresStore,
    redis::RedisStore,
};
use micro_core::{
    broker, config,
    config::{Plain, StoreConfig},
    contract::{Clock, RealClock},
    events, registry, store,
    store::Store,
};
use micro_e2e::engines;

/// etcd expires a lease up to about half a second late and counts TTLs in whole seconds, so
/// each wait of the registry suite is given that much more.
struct LeaseClock;

impl Clock for LeaseClock {
    async fn pass(&self, d: Duration) {
        tokio::time::sleep(d + Duration::from_millis(600)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn etcd_registry_passes_the_registry_contract() {
    let etcd = engines::etcd();
    let registry = EtcdRegistry::connect(&etcd.address).await.expect("connect");
    registry::contract::run_all(Arc::new(registry), LeaseClock).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn etcd_locks_and_leaders_pass_the_sync_contract() {
    let etcd = engines::etcd();
    let locks = micro::sync::Locks::etcd(&etcd.address, "sync", "locks").expect("address");
    micro::sync::contract::run_all(locks, RealClock).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn nats_broker_passes_the_broker_contract() {
    let nats = engines::nats();
    let broker = NatsBroker::connect(&nats.address).await.expect("connect");
    broker::contract::run_all(Arc::new(broker)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn jetstream_events_pass_the_events_contract() {
    let nats = engines::nats();
    let events = JetStreamEvents::connect(&nats.address)
        .await
        .expect("connect");
    events::contract::run_all(Arc::new(events), RealClock).await;
}

/// A group made before the bound on unacked events (with JetStream's default of 1,000) is raised
/// to [`events::MAX_UNACKED`] when it is consumed again.
#[tokio::test(flavor = "multi_thread")]
async fn jetstream_groups_made_before_the_unacked_bound_are_raised_to_it() {
    use async_nats::jetstream::consumer::{FromConsumer, PullConsumer, pull};
    use micro_backends::nats::digest_name;
    use micro_core::events::{ConsumeOptions, Events};
    let nats = engines::nats();
    let events = JetStreamEvents::connect(&nats.address)
        .await
        .expect("connect");
    let options = || ConsumeOptions {
        auto_ack: false,
        group: Some("old".to_owned()),
        ..ConsumeOptions::default()
    };
    drop(
        events
            .consume("raised", "t", options())
            .await
            .expect("consume"),
    );

    let js = async_nats::jetstream::new(
        async_nats::connect(nats.address.as_str())
            .await
            .expect("connect"),
    );
    let stream = js
        .get_stream(digest_name("MICRO", &["raised", "t"]))
        .await
        .expect("the topic's stream");
    let name = digest_name("G", &["old"]);
    let made: PullConsumer = stream.get_consumer(&name).await.expect("the group");
    let mut config =
        pull::Config::try_from_consumer_config(made.cached_info().config.clone()).unwrap();
    assert_eq!(config.max_ack_pending, events::MAX_UNACKED as i64);
    config.max_ack_pending = 1000;
    stream
        .update_consumer(config)
        .await
        .expect("the group as an older build made it");

    let _again = events
        .consume("raised", "t", options())
        .await
        .expect("consume");
    let info = stream.consumer_info(&name).await.expect("the group");
    assert_eq!(info.config.max_ack_pending, events::MAX_UNACKED as i64);
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_store_config_and_locks_pass_their_contracts() {
    let pg = engines::postgres();
    let store: Arc<dyn Store> =
        Arc::new(PostgresStore::connect(&pg.address).await.expect("connect"));
    store::contract::run_all(store.clone(), RealClock).await;
    config::contract::run_all(Arc::new(StoreConfig::new(store.clone(), Arc::new(Plain)))).await;
    micro::sync::contract::run_all(
        micro::store::Store::new(store, "sync", "locks").into(),
        RealClock,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_store_config_and_locks_pass_their_contracts() {
    let redis = engines::redis();
    let store: Arc<dyn Store> =
        Arc::new(RedisStore::connect(&redis.address).await.expect("connect"));
    store::contract::run_all(store.clone(), RealClock).await;
    config::contract::run_all(Arc::new(StoreConfig::new(store.clone(), Arc::new(Plain)))).await;
    micro::sync::contract::run_all(
        micro::store::Store::new(store, "sync", "locks").into(),
        RealClock,
    )
    .await;
}

/// Two stores on one PostgreSQL (two servers) see each other's writes, and a conditional write
/// decides between them.
#[tokio::test(flavor = "multi_thread")]
async fn two_postgres_stores_share_one_table() {
    let pg = engines::postgres();
    let (a, b) = tokio::join!(
        PostgresStore::connect(&pg.address),
        PostgresStore::connect(&pg.address)
    );
    let (a, b) = (a.expect("a"), b.expect("b"));
    a.write("db", "t", store::Record::new("k", "from a"))
        .await
        .unwrap();
    assert_eq!(b.read("db", "t", "k").await.unwrap().value, b"from a");
    let (won_a, won_b) = tokio::join!(
        a.write_if("db", "t", store::Record::new("name", "a"), None),
        b.write_if("db", "t", store::Record::new("name", "b"), None)
    );
    assert!(
        won_a.unwrap() ^ won_b.unwrap(),
        "exactly one creates the key"
    );
}
