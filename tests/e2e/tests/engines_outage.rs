//! Each engine killed and restarted under a steady trickle of calls through a server: the
//! server reconnects by itself, every call acknowledged before, during or after the outage is
//! still there, and the calls that fail during it fail fast with a 503 — no hang, no panic.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::{StreamExt, future::BoxFuture};
use micro_core::{
    Error, Node, Registry, Service,
    events::{ConsumeOptions, Events, Offset},
    store::{Query, Record, Store},
};
use micro_e2e::{Sandbox, engines};

/// Which engine goes down.
#[derive(Clone, Copy, PartialEq)]
enum Down {
    Etcd,
    Nats,
    Store,
}

struct Platform {
    etcd: engines::Engine,
    nats: engines::Engine,
    store: engines::Engine,
    server: Sandbox,
}

impl Platform {
    fn start(store: engines::Engine) -> Self {
        let (etcd, nats) = (engines::etcd(), engines::nats());
        let flags = engines::server_flags(&etcd, &nats, &store);
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let mut server = Sandbox::new();
        server.start_server_with(&flags);
        server.login("admin", "micro");
        micro::auth::set_token(Some(server.token()));
        Self {
            etcd,
            nats,
            store,
            server,
        }
    }

    fn engine(&mut self, down: Down) -> &mut engines::Engine {
        match down {
            Down::Etcd => &mut self.etcd,
            Down::Nats => &mut self.nats,
            Down::Store => &mut self.store,
        }
    }
}

/// What the trickle saw.
#[derive(Default)]
struct Seen {
    acked: Vec<u64>,
    errors: Vec<Error>,
    slowest: Duration,
    last_ok: Option<Instant>,
}

type Op = Arc<dyn Fn(u64) -> BoxFuture<'static, Result<(), Error>> + Send + Sync>;

/// Runs `op` every 20 ms while `down`'s engine is killed for a few seconds and started again,
/// until calls succeed again; what it saw.
async fn outage(platform: &mut Platform, down: Down, op: Op) -> Seen {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let trickle = {
        let (seen, running) = (seen.clone(), running.clone());
        tokio::spawn(async move {
            let mut i = 0;
            while running.load(std::sync::atomic::Ordering::SeqCst) {
                i += 1;
                let started = Instant::now();
                let result = tokio::time::timeout(Duration::from_secs(30), op(i)).await;
                let took = started.elapsed();
                {
                    let mut seen = seen.lock().unwrap();
                    seen.slowest = seen.slowest.max(took);
                    match result {
                        Ok(Ok(())) => {
                            seen.acked.push(i);
                            seen.last_ok = Some(Instant::now());
                        }
                        Ok(Err(e)) => seen.errors.push(e),
                        Err(_) => seen.errors.push(Error::internal("test", "hung for 30 s")),
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    platform.engine(down).kill();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let restarted = Instant::now();
    // Blocking this worker while it starts; the trickle runs on the other.
    platform.engine(down).restart();
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let back = seen
            .lock()
            .unwrap()
            .last_ok
            .is_some_and(|at| at > restarted);
        if back {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "calls did not succeed again within 40 s of the restart; errors: {:?}",
            seen.lock().unwrap().errors.last()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    running.store(false, std::sync::atomic::Ordering::SeqCst);
    trickle.await.unwrap();
    Arc::try_unwrap(seen)
        .ok()
        .expect("the trickle stopped")
        .into_inner()
        .unwrap()
}

fn check(seen: &Seen, what: &str) {
    assert!(
        seen.slowest < Duration::from_secs(10),
        "{what}: a call took {:?} during the outage",
        seen.slowest
    );
    for e in &seen.errors {
        assert_eq!(
            e.code, 503,
            "{what}: an error during the outage is a 503: {e:?}"
        );
    }
    assert!(!seen.acked.is_empty(), "{what}: calls were acknowledged");
    // Calls during the outage either failed or waited for the engine to come back (a
    // publish JetStream acknowledges once NATS is back): either way the outage was met.
    assert!(
        !seen.errors.is_empty() || seen.slowest > Duration::from_secs(1),
        "{what}: calls met the outage (else this tested nothing)"
    );
    eprintln!(
        "{what}: {} acknowledged, {} refused with 503 ({:?}), slowest {:?}",
        seen.acked.len(),
        seen.errors.len(),
        seen.errors.first().map(|e| &e.detail),
        seen.slowest
    );
}

async fn store_outage(store_engine: engines::Engine) {
    let mut platform = Platform::start(store_engine);
    let store =
        Arc::new(micro::store::RemoteStore::new(platform.server.address(), "micro").unwrap());
    let op: Op = {
        let store = store.clone();
        Arc::new(move |i| {
            let store = store.clone();
            Box::pin(async move {
                store
                    .write("micro", "trickle", Record::new(format!("k{i:06}"), "v"))
                    .await
            })
        })
    };
    let seen = outage(&mut platform, Down::Store, op).await;
    check(&seen, "store");
    let keys = store
        .list("micro", "trickle", &Query::default())
        .await
        .unwrap();
    for i in &seen.acked {
        assert!(
            keys.contains(&format!("k{i:06}")),
            "acknowledged write {i} was lost"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_killed_and_restarted_under_writes_loses_no_acknowledged_write() {
    store_outage(engines::postgres()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_killed_and_restarted_under_writes_loses_no_acknowledged_write() {
    store_outage(engines::redis()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn nats_killed_and_restarted_under_publishes_loses_no_acknowledged_event() {
    let mut platform = Platform::start(engines::postgres());
    let events = Arc::new(micro::events::RemoteEvents::new(platform.server.address()).unwrap());
    let op: Op = {
        let events = events.clone();
        Arc::new(move |i| {
            let events = events.clone();
            Box::pin(async move {
                events
                    .publish(
                        "micro",
                        "trickle",
                        i.to_string().into_bytes(),
                        Default::default(),
                    )
                    .await
                    .map(drop)
            })
        })
    };
    let seen = outage(&mut platform, Down::Nats, op).await;
    check(&seen, "events");
    let mut consumer = events
        .consume(
            "micro",
            "trickle",
            ConsumeOptions {
                offset: Offset::Sequence(1),
                ..ConsumeOptions::default()
            },
        )
        .await
        .unwrap();
    let mut stored = std::collections::BTreeSet::new();
    let wanted: std::collections::BTreeSet<u64> = seen.acked.iter().copied().collect();
    while !wanted.is_subset(&stored) {
        let event = tokio::time::timeout(Duration::from_secs(10), consumer.events.next())
            .await
            .expect("every acknowledged event is stored")
            .expect("open")
            .expect("event");
        stored.insert(
            String::from_utf8(event.payload)
                .unwrap()
                .parse::<u64>()
                .unwrap(),
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn etcd_killed_and_restarted_under_registrations_loses_no_acknowledged_one() {
    let mut platform = Platform::start(engines::postgres());
    let registry =
        Arc::new(micro::registry::RemoteRegistry::new(platform.server.address()).unwrap());
    let op: Op = {
        let registry = registry.clone();
        Arc::new(move |i| {
            let registry = registry.clone();
            Box::pin(async move {
                let service = Service::new("trickle", "latest").with_node(Node::new(
                    format!("n{i}"),
                    format!("127.0.0.1:{}", 1000 + i),
                ));
                registry
                    .register("micro", &service, Duration::from_secs(120))
                    .await
            })
        })
    };
    let seen = outage(&mut platform, Down::Etcd, op).await;
    check(&seen, "registry");
    let found = registry.get_service("micro", "trickle").await.unwrap();
    let nodes: Vec<&str> = found
        .iter()
        .flat_map(|s| s.nodes.iter().map(|n| n.id.as_str()))
        .collect();
    for i in &seen.acked {
        assert!(
            nodes.contains(&format!("n{i}").as_str()),
            "registration {i} was lost"
        );
    }
}
