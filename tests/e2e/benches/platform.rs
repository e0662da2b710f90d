//! The platform services through the server against the same backends in-process, same run.
//!
//! Run: `cargo bench -p micro-e2e --bench platform` (add `-- 5` for 5-second rounds).
//!
//! In one process: the platform (`micro_server::start`, embedded redb backends in a temporary
//! MICRO_HOME) and, as the baseline, a second redb store and event log opened directly. 16
//! callers in flight for every figure:
//! - store writes/s and reads/s: `RemoteStore` → `micro.store.Store` → redb, against `RedbStore`
//!   called directly (every write is durable when acknowledged, in both);
//! - broker: 16 publishers of 100-byte messages to one subscriber over the server; messages/s
//!   delivered and the p99 publish → deliver latency;
//! - events publish/s with durable acknowledgement: `RemoteEvents` against `LogEvents<RedbLog>`.

use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use futures::StreamExt;
use micro::{broker::RemoteBroker, events::RemoteEvents, remote::Connection, store::RemoteStore};
use micro_backends::redb::{RedbLog, RedbStore};
use micro_core::{
    broker::{Broker, Message},
    events::{Events, LogEvents},
    store::{Record, Store},
};
use micro_e2e::load::{Figures, closed_loop};

const IN_FLIGHT: usize = 16;

struct StoreCaller {
    store: Arc<dyn Store>,
    id: usize,
    n: u64,
}

fn write(c: &mut StoreCaller) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + '_>> {
    Box::pin(async move {
        c.n += 1;
        let key = format!("k-{}-{}", c.id, c.n % 1000);
        c.store
            .write("bench", "t", Record::new(key, vec![b'x'; 100]))
            .await
            .expect("write");
    })
}

fn read(c: &mut StoreCaller) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + '_>> {
    Box::pin(async move {
        c.n += 1;
        let key = format!("k-{}-{}", c.id, c.n % 100);
        c.store.read("bench", "t", &key).await.expect("read");
    })
}

struct EventsCaller {
    events: Arc<dyn Events>,
}

fn publish(c: &mut EventsCaller) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + '_>> {
    Box::pin(async move {
        c.events
            .publish("bench", "t", vec![b'x'; 100], Default::default())
            .await
            .expect("publish");
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

fn row(what: &str, path: &str, f: Figures) {
    println!(
        "| {what} | {path} | {:.0} | {:.2} ms | {:.2} ms |",
        f.per_sec,
        f.p50.as_secs_f64() * 1e3,
        f.p99.as_secs_f64() * 1e3
    );
}

fn nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

#[tokio::main]
async fn main() {
    let secs: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(2);
    let round = Duration::from_secs(secs);
    let home = tempfile::tempdir().expect("tempdir");
    let platform = micro_server::start(micro_server::Options {
        address: "127.0.0.1:0".into(),
        api_address: None,
        web_address: None,
        home: Some(home.path().to_owned()),
        ..Default::default()
    })
    .await
    .expect("start");
    let conn = Connection::lazy(&platform.grpc_address().to_string()).expect("connection");
    let baseline_dir = tempfile::tempdir().expect("tempdir");

    let remote: Arc<dyn Store> = Arc::new(RemoteStore::over(conn.clone(), "micro"));
    let local: Arc<dyn Store> =
        Arc::new(RedbStore::open(&baseline_dir.path().join("store.redb")).expect("redb"));
    println!("| operation | path | per s | p50 | p99 |\n|---|---|---|---|---|");
    let (remote_writes, back) = closed_loop(callers(&remote), round, write).await;
    let (local_writes, _) = closed_loop(callers(&local), round, write).await;
    row("store write", "server (gRPC)", remote_writes);
    row("store write", "redb in-process", local_writes);
    for store in [&remote, &local] {
        for id in 0..IN_FLIGHT {
            for n in 0..100 {
                store
                    .write(
                        "bench",
                        "t",
                        Record::new(format!("k-{id}-{n}"), vec![b'x'; 100]),
                    )
                    .await
                    .expect("seed");
            }
        }
    }
    let (remote_reads, _) = closed_loop(back, round, read).await;
    let (local_reads, _) = closed_loop(callers(&local), round, read).await;
    row("store read", "server (gRPC)", remote_reads);
    row("store read", "redb in-process", local_reads);

    let events_remote: Arc<dyn Events> = Arc::new(RemoteEvents::over(conn.clone()));
    let events_local: Arc<dyn Events> = Arc::new(LogEvents::new(
        RedbLog::open(&baseline_dir.path().join("events.redb")).expect("redb"),
    ));
    let make = |e: &Arc<dyn Events>| {
        (0..IN_FLIGHT)
            .map(|_| EventsCaller { events: e.clone() })
            .collect::<Vec<_>>()
    };
    let (remote_events, _) = closed_loop(make(&events_remote), round, publish).await;
    let (local_events, _) = closed_loop(make(&events_local), round, publish).await;
    row("events publish", "server (gRPC)", remote_events);
    row("events publish", "redb in-process", local_events);

    // Broker: latency from publish to delivery, measured by the subscriber.
    let broker = RemoteBroker::over(conn.clone());
    let mut subscription = broker
        .subscribe("micro", "bench", None)
        .await
        .expect("subscribe");
    let receiver = tokio::spawn(async move {
        let mut latencies = Vec::new();
        let start = std::time::Instant::now();
        while let Some(message) = subscription.next().await {
            if message.body.is_empty() {
                break;
            }
            let sent: u128 = message
                .header
                .get("t")
                .and_then(|t| t.parse().ok())
                .unwrap_or(0);
            latencies.push(Duration::from_nanos(
                u64::try_from(nanos().saturating_sub(sent)).unwrap_or(u64::MAX),
            ));
        }
        Figures::of(latencies, start.elapsed())
    });
    struct Publisher {
        broker: RemoteBroker,
    }
    fn send(p: &mut Publisher) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            let mut message = Message::new(vec![b'x'; 100]);
            message.header.insert("t".into(), nanos().to_string());
            p.broker
                .publish("micro", "bench", message)
                .await
                .expect("publish");
        })
    }
    let publishers = (0..IN_FLIGHT)
        .map(|_| Publisher {
            broker: broker.clone(),
        })
        .collect();
    let (published, _) = closed_loop(publishers, round, send).await;
    broker
        .publish("micro", "bench", Message::new(Vec::new()))
        .await
        .expect("the end marker");
    let delivered = receiver.await.expect("receiver");
    row("broker publish", "server (gRPC)", published);
    row("broker deliver", "server (gRPC)", delivered);

    println!(
        "\nratios server/in-process: store write {:.2}, store read {:.2}, events publish {:.2}",
        remote_writes.per_sec / local_writes.per_sec,
        remote_reads.per_sec / local_reads.per_sec,
        remote_events.per_sec / local_events.per_sec
    );
    println!(
        "broker: {:.0} messages/s delivered, p99 publish → deliver {:.2} ms",
        delivered.per_sec,
        delivered.p99.as_secs_f64() * 1e3
    );
    platform.stop().await;
}
