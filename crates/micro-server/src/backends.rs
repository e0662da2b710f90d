//! Which backends the platform services run on: the embedded defaults (an in-memory registry
//! and broker, redb files and keys under `MICRO_HOME/server/`; or memory alone, for tests), or
//! distributed engines chosen by flag — etcd for the registry, NATS for the broker, JetStream
//! for events, PostgreSQL or Redis for the store — which several servers share.
//!
//! With shared engines a server keeps nothing of its own: its keys are on the shared store
//! (made by the first server, with a conditional write) unless the operator gives every server
//! the same key files (`--token-key`, `--secret-key`), config watchers hear of changes on the
//! shared broker, and everything else is read from the engines. A mix of shared and embedded
//! engines could not be shared by several servers, so it is refused with the flags missing.

use std::{path::Path, sync::Arc, time::Duration};

use micro_backends::{
    ServerFiles,
    redb::{RedbLog, RedbStore},
    sealer::KeySealer,
};
use micro_core::{
    Error, MemoryRegistry, Registry,
    broker::{Broker, MemoryBroker},
    config::{Config, Plain, StoreConfig},
    events::{Events, LogEvents, MemoryLog},
    store::{MemoryStore, Store},
};
use tokio::task::JoinHandle;

const ID: &str = "micro.server";

/// How often expired store records are deleted (reads never show them either way).
const SWEEP_INTERVAL: Duration = Duration::from_secs(10);

/// Where one concern's data lives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Engine {
    /// The embedded default: in this server (memory, or redb files under `MICRO_HOME`).
    #[default]
    Embedded,
    /// etcd at these client endpoints (comma-separated): the registry.
    Etcd(String),
    /// NATS at these servers (comma-separated): the broker, or events on JetStream.
    Nats(String),
    /// PostgreSQL at this URL (`postgres://USER@HOST:PORT/DB`): the store.
    Postgres(String),
    /// Redis at this URL (`redis://HOST:PORT`): the store.
    Redis(String),
}

/// The engine of each concern (`--registry`, `--broker`, `--events`, `--store`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Engines {
    /// `--registry memory|etcd`.
    pub registry: Engine,
    /// `--broker memory|nats`.
    pub broker: Engine,
    /// `--events redb|nats`.
    pub events: Engine,
    /// `--store redb|postgres|redis`.
    pub store: Engine,
}

impl Engine {
    /// The engine `kind` of `concern` at `address`, as the flags name them (`memory`, `redb`
    /// and an empty kind are the embedded default).
    pub fn parse(concern: &str, kind: &str, address: Option<&str>) -> Result<Self, Error> {
        let kinds: &[&str] = match concern {
            "registry" => &["memory", "etcd"],
            "broker" => &["memory", "nats"],
            "events" => &["redb", "memory", "nats"],
            "store" => &["redb", "memory", "postgres", "redis"],
            _ => &[],
        };
        let kind = kind.trim().to_ascii_lowercase();
        if !kind.is_empty() && !kinds.contains(&kind.as_str()) {
            return Err(Error::bad_request(
                ID,
                format!(
                    "--{concern} {kind:?} is not an engine for the {concern}: choose one of {}",
                    kinds.join(", ")
                ),
            ));
        }
        let address = || {
            address
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| {
                    Error::bad_request(
                        ID,
                        format!(
                            "--{concern} {kind} needs --{concern}-address (or MICRO_{}_ADDRESS)",
                            concern.to_ascii_uppercase()
                        ),
                    )
                })
        };
        Ok(match kind.as_str() {
            "etcd" => Self::Etcd(address()?),
            "nats" => Self::Nats(address()?),
            "postgres" => Self::Postgres(address()?),
            "redis" => Self::Redis(address()?),
            _ => Self::Embedded,
        })
    }

    /// Whether several servers can share it.
    pub fn shared(&self) -> bool {
        *self != Self::Embedded
    }
}

impl Engines {
    /// Whether the servers on these engines share everything (`false`: one server, embedded).
    /// A mix is refused, naming the flags that are missing.
    pub fn check(&self) -> Result<bool, Error> {
        let concerns = [
            ("registry", &self.registry, "--registry etcd"),
            ("broker", &self.broker, "--broker nats"),
            ("events", &self.events, "--events nats"),
            ("store", &self.store, "--store postgres (or redis)"),
        ];
        let shared = concerns.iter().filter(|(_, e, _)| e.shared()).count();
        if shared == 0 {
            return Ok(false);
        }
        if shared == concerns.len() {
            return Ok(true);
        }
        let missing: Vec<_> = concerns
            .iter()
            .filter(|(_, e, _)| !e.shared())
            .map(|(_, _, flag)| *flag)
            .collect();
        Err(Error::bad_request(
            ID,
            format!(
                "servers share their state only when every engine is shared; this set-up keeps \
                 part of it in this server alone, so a second server would see another \
                 platform. Add {} — or drop the other engine flags for a single server",
                missing.join(", ")
            ),
        ))
    }
}

/// The backends of one platform.
pub(crate) struct Backends {
    pub(crate) registry: Arc<dyn Registry>,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) config: Arc<dyn Config>,
    pub(crate) broker: Arc<dyn Broker>,
    pub(crate) events: Arc<dyn Events>,
    /// The servers share the engines: keys live on the store, not in files.
    pub(crate) shared: bool,
    /// Background work to abort on stop.
    pub(crate) tasks: Vec<JoinHandle<()>>,
}

impl Backends {
    /// Opens the engines; the embedded ones keep their files under `home/server/` (in memory
    /// without a home).
    pub(crate) async fn open(
        engines: &Engines,
        home: Option<&Path>,
        secret_key: Option<&Path>,
        reap_interval: Duration,
    ) -> Result<Self, Error> {
        let shared = engines.check()?;
        if !shared {
            return Ok(match home {
                Some(home) => Self::embedded(home, secret_key, reap_interval)?,
                None => Self::memory(reap_interval),
            });
        }
        let mut tasks = Vec::new();
        let store = shared_store(&engines.store, &mut tasks).await?;
        let registry = shared_registry(&engines.registry).await?;
        let broker = shared_broker(&engines.broker).await?;
        let events = shared_events(&engines.events).await?;
        let sealer = match secret_key {
            Some(path) => {
                let sealer = KeySealer::load_or_create(path)?;
                micro_backends::agree_on_key_file(&*store, "secret-key-file", path).await?;
                sealer
            }
            None => KeySealer::shared(&*store).await?,
        };
        let config = StoreConfig::new(store.clone(), Arc::new(sealer));
        tasks.push(config.follow(broker.clone()).await?);
        Ok(Self {
            registry,
            config: Arc::new(config),
            store,
            broker,
            events,
            shared: true,
            tasks,
        })
    }

    /// redb files and the config key under `home/server/`.
    fn embedded(
        home: &Path,
        secret_key: Option<&Path>,
        reap_interval: Duration,
    ) -> Result<Self, Error> {
        let files = ServerFiles::new(home);
        let store = RedbStore::open(&files.store())?;
        let sweeper = store.spawn_sweeper(SWEEP_INTERVAL);
        let sealer = KeySealer::load_or_create(secret_key.unwrap_or(&files.secret_key()))?;
        let events = RedbLog::open(&files.events())?;
        let store: Arc<dyn Store> = Arc::new(store);
        let (registry, reaper) = memory_registry(reap_interval);
        Ok(Self {
            registry,
            config: Arc::new(StoreConfig::new(store.clone(), Arc::new(sealer))),
            store,
            broker: Arc::new(MemoryBroker::new()),
            events: Arc::new(LogEvents::new(events)),
            shared: false,
            tasks: vec![sweeper, reaper],
        })
    }

    /// Everything in memory: nothing survives the process.
    fn memory(reap_interval: Duration) -> Self {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let (registry, reaper) = memory_registry(reap_interval);
        Self {
            registry,
            config: Arc::new(StoreConfig::new(store.clone(), Arc::new(Plain))),
            store,
            broker: Arc::new(MemoryBroker::new()),
            events: Arc::new(LogEvents::new(MemoryLog::default())),
            shared: false,
            tasks: vec![reaper],
        }
    }
}

fn memory_registry(reap_interval: Duration) -> (Arc<dyn Registry>, JoinHandle<()>) {
    let memory = Arc::new(MemoryRegistry::new());
    let reaper = memory.spawn_reaper(reap_interval);
    (memory, reaper)
}

#[cfg_attr(
    all(
        feature = "etcd",
        feature = "nats",
        feature = "postgres",
        feature = "redis"
    ),
    expect(dead_code, reason = "every engine is built in")
)]
fn not_built(engine: &str, feature: &str) -> Error {
    Error::bad_request(
        ID,
        format!("this micro was built without {engine} (cargo feature {feature:?})"),
    )
}

async fn shared_store(
    engine: &Engine,
    tasks: &mut Vec<JoinHandle<()>>,
) -> Result<Arc<dyn Store>, Error> {
    match engine {
        #[cfg(feature = "postgres")]
        Engine::Postgres(url) => {
            let store = micro_backends::postgres::PostgresStore::connect(url).await?;
            tasks.push(store.spawn_sweeper(SWEEP_INTERVAL));
            Ok(Arc::new(store))
        }
        #[cfg(feature = "redis")]
        Engine::Redis(url) => Ok(Arc::new(
            micro_backends::redis::RedisStore::connect(url).await?,
        )),
        #[cfg(not(feature = "postgres"))]
        Engine::Postgres(_) => Err(not_built("PostgreSQL", "postgres")),
        #[cfg(not(feature = "redis"))]
        Engine::Redis(_) => Err(not_built("Redis", "redis")),
        _ => {
            let _ = tasks;
            Err(Error::bad_request(
                ID,
                "the store runs on redb, PostgreSQL or Redis",
            ))
        }
    }
}

async fn shared_registry(engine: &Engine) -> Result<Arc<dyn Registry>, Error> {
    match engine {
        #[cfg(feature = "etcd")]
        Engine::Etcd(addresses) => Ok(Arc::new(
            micro_backends::etcd::EtcdRegistry::connect(addresses).await?,
        )),
        #[cfg(not(feature = "etcd"))]
        Engine::Etcd(_) => Err(not_built("etcd", "etcd")),
        _ => Err(Error::bad_request(
            ID,
            "the registry runs in memory or on etcd",
        )),
    }
}

async fn shared_broker(engine: &Engine) -> Result<Arc<dyn Broker>, Error> {
    match engine {
        #[cfg(feature = "nats")]
        Engine::Nats(addresses) => Ok(Arc::new(
            micro_backends::nats::NatsBroker::connect(addresses).await?,
        )),
        #[cfg(not(feature = "nats"))]
        Engine::Nats(_) => Err(not_built("NATS", "nats")),
        _ => Err(Error::bad_request(
            ID,
            "the broker runs in memory or on NATS",
        )),
    }
}

async fn shared_events(engine: &Engine) -> Result<Arc<dyn Events>, Error> {
    match engine {
        #[cfg(feature = "nats")]
        Engine::Nats(addresses) => Ok(Arc::new(
            micro_backends::nats::JetStreamEvents::connect(addresses).await?,
        )),
        #[cfg(not(feature = "nats"))]
        Engine::Nats(_) => Err(not_built("NATS", "nats")),
        _ => Err(Error::bad_request(
            ID,
            "events run on redb or on NATS JetStream",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engines_parse_by_flag_and_need_an_address() {
        assert_eq!(
            Engine::parse("registry", "etcd", Some("127.0.0.1:2379")).unwrap(),
            Engine::Etcd("127.0.0.1:2379".into())
        );
        assert_eq!(Engine::parse("store", "", None).unwrap(), Engine::Embedded);
        let err = Engine::parse("store", "postgres", None).unwrap_err();
        assert!(err.detail.contains("--store-address"), "{err:?}");
        let err = Engine::parse("broker", "kafka", Some("x")).unwrap_err();
        assert!(err.detail.contains("memory, nats"), "{err:?}");
        let err = Engine::parse("registry", "postgres", Some("x")).unwrap_err();
        assert_eq!(err.code, 400);
    }

    #[test]
    fn a_mix_of_shared_and_embedded_engines_is_refused_naming_the_missing_flags() {
        assert!(!Engines::default().check().unwrap());
        let mixed = Engines {
            store: Engine::Postgres("postgres://x".into()),
            ..Engines::default()
        };
        let err = mixed.check().unwrap_err();
        for flag in ["--registry etcd", "--broker nats", "--events nats"] {
            assert!(err.detail.contains(flag), "{err:?}");
        }
        let all = Engines {
            registry: Engine::Etcd("e".into()),
            broker: Engine::Nats("n".into()),
            events: Engine::Nats("n".into()),
            store: Engine::Redis("r".into()),
        };
        assert!(all.check().unwrap());
    }
}
