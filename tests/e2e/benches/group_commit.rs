//! Group commit of the embedded store and event log: durable writes per second with 64 in
//! flight, against one commit (one `fsync`) per write on the same disk, same run.
//!
//! Run: `cargo bench -p micro-e2e --bench group_commit` (add `-- 5` for 5-second rounds).
//!
//! - "redb, one commit per write": redb driven directly, each write its own transaction (what
//!   the store did before group commit);
//! - `RedbStore` writes and `LogEvents<RedbLog>` publishes: writes in flight together share a
//!   commit, and each is on disk before its answer.

use std::{sync::Arc, time::Duration};

use micro_backends::redb::{RedbLog, RedbStore};
use micro_core::{
    events::{Events, LogEvents},
    store::{Record, Store},
};
use micro_e2e::load::{Figures, closed_loop};
use redb::{Database, TableDefinition};

const IN_FLIGHT: usize = 64;
const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("bench");

type Call<'a> = std::pin::Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

struct Raw {
    db: Arc<Database>,
    id: usize,
    n: u64,
}

fn raw_write(c: &mut Raw) -> Call<'_> {
    Box::pin(async move {
        c.n += 1;
        let key = format!("k-{}-{}", c.id, c.n % 1000);
        let db = c.db.clone();
        tokio::task::spawn_blocking(move || {
            let write = db.begin_write().expect("begin");
            write
                .open_table(TABLE)
                .expect("table")
                .insert(key.as_bytes(), [b'x'; 100].as_slice())
                .expect("insert");
            write.commit().expect("commit");
        })
        .await
        .expect("task");
    })
}

struct Writer {
    store: Arc<dyn Store>,
    id: usize,
    n: u64,
}

fn store_write(c: &mut Writer) -> Call<'_> {
    Box::pin(async move {
        c.n += 1;
        let key = format!("k-{}-{}", c.id, c.n % 1000);
        c.store
            .write("bench", "t", Record::new(key, vec![b'x'; 100]))
            .await
            .expect("write");
    })
}

struct Publisher {
    events: Arc<dyn Events>,
}

fn publish(c: &mut Publisher) -> Call<'_> {
    Box::pin(async move {
        c.events
            .publish("bench", "t", vec![b'x'; 100], Default::default())
            .await
            .expect("publish");
    })
}

fn row(what: &str, f: &Figures) {
    println!(
        "| {what} | {IN_FLIGHT} | {:.0} | {:.2} ms | {:.2} ms |",
        f.per_sec,
        f.p50.as_secs_f64() * 1e3,
        f.p99.as_secs_f64() * 1e3
    );
}

#[tokio::main]
async fn main() {
    let secs: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(2);
    let round = Duration::from_secs(secs);
    let dir = tempfile::tempdir().expect("tempdir");

    let db = Arc::new(Database::create(dir.path().join("raw.redb")).expect("redb"));
    let raw: Vec<_> = (0..IN_FLIGHT)
        .map(|id| Raw {
            db: db.clone(),
            id,
            n: 0,
        })
        .collect();
    let (baseline, _) = closed_loop(raw, round, raw_write).await;

    let store: Arc<dyn Store> =
        Arc::new(RedbStore::open(&dir.path().join("store.redb")).expect("store"));
    let writers: Vec<_> = (0..IN_FLIGHT)
        .map(|id| Writer {
            store: store.clone(),
            id,
            n: 0,
        })
        .collect();
    let (grouped, _) = closed_loop(writers, round, store_write).await;

    let events: Arc<dyn Events> = Arc::new(LogEvents::new(
        RedbLog::open(&dir.path().join("events.redb")).expect("log"),
    ));
    let publishers: Vec<_> = (0..IN_FLIGHT)
        .map(|_| Publisher {
            events: events.clone(),
        })
        .collect();
    let (published, _) = closed_loop(publishers, round, publish).await;

    println!("| durable writes | in flight | per s | p50 | p99 |\n|---|---|---|---|---|");
    row("redb, one commit per write (baseline)", &baseline);
    row("store write, group commit", &grouped);
    row("events publish, group commit", &published);
    println!(
        "\nstore/baseline {:.1}x, events/baseline {:.1}x",
        grouped.per_sec / baseline.per_sec,
        published.per_sec / baseline.per_sec
    );
}
