//! The platform on shared engines against the same engines driven directly from Rust, same run.
//!
//! Run: `cargo bench -p micro-e2e --bench engines` (add `-- 5` for 5-second rounds). Needs
//! etcd, nats-server, PostgreSQL and Redis as `scripts/test` installs them (see
//! `micro_e2e::engines`); each is started on a free port for the run.
//!
//! 16 callers in flight for every figure, and 256 for the broker's second round:
//! - broker, publish → deliver: `RemoteBroker` through `micro server` (its broker on NATS)
//!   against `async-nats` publishing to the same nats-server, each publish awaited until the
//!   server has it (a flush), one subscriber counting deliveries;
//! - store writes and reads: `RemoteStore` through the server against `PostgresStore` and
//!   `RedisStore` opened in this process on the same engine.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use micro::{broker::RemoteBroker, remote::Connection, store::RemoteStore};
use micro_backends::{postgres::PostgresStore, redis::RedisStore};
use micro_core::{
    broker::{Broker, Message},
    store::{Record, Store},
};
use micro_e2e::{
    engines,
    load::{Figures, closed_loop},
};

const IN_FLIGHT: usize = 16;

/// The publishers of the broker's second round.
const BROKER_IN_FLIGHT: usize = 256;

type Call<'a> = std::pin::Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

struct StoreCaller {
    store: Arc<dyn Store>,
    id: usize,
    n: u64,
}

fn write(c: &mut StoreCaller) -> Call<'_> {
    Box::pin(async move {
        c.n += 1;
        let key = format!("k-{}-{}", c.id, c.n % 100);
        c.store
            .write("bench", "t", Record::new(key, vec![b'x'; 100]))
            .await
            .expect("write");
    })
}

fn read(c: &mut StoreCaller) -> Call<'_> {
    Box::pin(async move {
        c.n += 1;
        let key = format!("k-{}-{}", c.id, c.n % 100);
        c.store.read("bench", "t", &key).await.expect("read");
    })
}

fn callers(store: &Arc<dyn Store>) -> Vec<StoreCaller> {
    (0..IN_FLIGHT)
        .map(|id| StoreCaller {
            store: store.clone(),
            id,
            n: 0,
        })
        .collect()
}

fn row(what: &str, path: &str, f: &Figures) {
    println!(
        "| {what} | {path} | {:.0} | {:.2} ms | {:.2} ms |",
        f.per_sec,
        f.p50.as_secs_f64() * 1e3,
        f.p99.as_secs_f64() * 1e3
    );
}

/// Messages delivered per second to one subscriber while `publish` runs closed-loop.
async fn deliveries<T: Send + 'static>(
    mut subscription: std::pin::Pin<Box<dyn futures::Stream<Item = ()> + Send>>,
    publishers: Vec<T>,
    round: Duration,
    publish: micro_e2e::load::Call<T>,
) -> (Figures, f64) {
    let counter = tokio::spawn(async move {
        let mut n = 0u64;
        while tokio::time::timeout(Duration::from_secs(2), subscription.next())
            .await
            .ok()
            .flatten()
            .is_some()
        {
            n += 1;
        }
        n
    });
    let (figures, _) = closed_loop(publishers, round, publish).await;
    let delivered = counter.await.expect("counter");
    let per_sec = delivered as f64 / round.as_secs_f64();
    (figures, per_sec)
}

struct ServerPublisher {
    broker: RemoteBroker,
}

fn server_publish(p: &mut ServerPublisher) -> Call<'_> {
    Box::pin(async move {
        p.broker
            .publish("micro", "bench", Message::new(vec![b'x'; 100]))
            .await
            .expect("publish");
    })
}

struct RawPublisher {
    client: async_nats::Client,
}

fn raw_publish(p: &mut RawPublisher) -> Call<'_> {
    Box::pin(async move {
        p.client
            .publish("raw.bench", vec![b'x'; 100].into())
            .await
            .expect("publish");
        p.client.flush().await.expect("flush");
    })
}

#[tokio::main]
async fn main() {
    let secs: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(2);
    let round = Duration::from_secs(secs);
    let (etcd, nats, pg, redis) = (
        engines::etcd(),
        engines::nats(),
        engines::postgres(),
        engines::redis(),
    );
    let shared = |store: micro_server::Engine| micro_server::Engines {
        registry: micro_server::Engine::Etcd(etcd.address.clone()),
        broker: micro_server::Engine::Nats(nats.address.clone()),
        events: micro_server::Engine::Nats(nats.address.clone()),
        store,
    };
    let start = |engines: micro_server::Engines| {
        micro_server::start(micro_server::Options {
            address: "127.0.0.1:0".into(),
            api_address: None,
            web_address: None,
            auth: micro_server::AuthOptions {
                enabled: false,
                ..Default::default()
            },
            engines,
            ..Default::default()
        })
    };
    let on_pg = start(shared(micro_server::Engine::Postgres(pg.address.clone())))
        .await
        .expect("platform on PostgreSQL");
    let on_redis = start(shared(micro_server::Engine::Redis(redis.address.clone())))
        .await
        .expect("platform on Redis");

    println!("| operation | path | per s | p50 | p99 |\n|---|---|---|---|---|");

    // Broker, at the callers' 16 in flight and at 256 (where the server's acknowledgement
    // round trip no longer bounds the publishers).
    let conn = Connection::lazy(&on_pg.grpc_address().to_string()).expect("connection");
    let broker = RemoteBroker::over(conn.clone());
    let raw = async_nats::connect(nats.address.as_str())
        .await
        .expect("nats");
    let mut broker_ratios = Vec::new();
    for in_flight in [IN_FLIGHT, BROKER_IN_FLIGHT] {
        let subscription = broker
            .subscribe("micro", "bench", None)
            .await
            .expect("subscribe");
        let publishers = (0..in_flight)
            .map(|_| ServerPublisher {
                broker: broker.clone(),
            })
            .collect();
        let (through, through_delivered) = deliveries(
            Box::pin(subscription.map(drop)),
            publishers,
            round,
            server_publish,
        )
        .await;
        let raw_subscription = raw.subscribe("raw.bench").await.expect("subscribe");
        raw.flush().await.expect("flush");
        let publishers = (0..in_flight)
            .map(|_| RawPublisher {
                client: raw.clone(),
            })
            .collect();
        let (direct, direct_delivered) = deliveries(
            Box::pin(raw_subscription.map(drop)),
            publishers,
            round,
            raw_publish,
        )
        .await;
        row(
            &format!("broker publish, {in_flight} in flight"),
            "server (gRPC) → NATS",
            &through,
        );
        row(
            &format!("broker publish, {in_flight} in flight"),
            "async-nats direct",
            &direct,
        );
        println!(
            "| broker delivered, {in_flight} in flight | server / direct | {through_delivered:.0} / {direct_delivered:.0} | | |"
        );
        broker_ratios.push(format!(
            "{in_flight} in flight {:.2}",
            through_delivered / direct_delivered
        ));
    }

    // Stores.
    let mut ratios = Vec::new();
    for (name, platform, direct) in [
        (
            "PostgreSQL",
            &on_pg,
            Arc::new(PostgresStore::connect(&pg.address).await.expect("pg")) as Arc<dyn Store>,
        ),
        (
            "Redis",
            &on_redis,
            Arc::new(RedisStore::connect(&redis.address).await.expect("redis")) as Arc<dyn Store>,
        ),
    ] {
        let conn = Connection::lazy(&platform.grpc_address().to_string()).expect("connection");
        let remote: Arc<dyn Store> = Arc::new(RemoteStore::over(conn, "micro"));
        let (rw, _) = closed_loop(callers(&remote), round, write).await;
        let (dw, _) = closed_loop(callers(&direct), round, write).await;
        let (rr, _) = closed_loop(callers(&remote), round, read).await;
        let (dr, _) = closed_loop(callers(&direct), round, read).await;
        row("store write", &format!("server (gRPC) → {name}"), &rw);
        row("store write", &format!("{name} direct"), &dw);
        row("store read", &format!("server (gRPC) → {name}"), &rr);
        row("store read", &format!("{name} direct"), &dr);
        ratios.push(format!(
            "{name}: writes {:.2}, reads {:.2}",
            rw.per_sec / dw.per_sec,
            rr.per_sec / dr.per_sec
        ));
    }
    println!(
        "\nbroker deliveries server/direct: {}; store server/direct {}",
        broker_ratios.join(", "),
        ratios.join("; ")
    );
    on_pg.stop().await;
    on_redis.stop().await;
}
