//! Which backends the platform services run on: the embedded defaults (redb files and the
//! sealing key under `MICRO_HOME/server/`), or memory for tests that need no disk.

use std::{path::Path, sync::Arc, time::Duration};

use micro_backends::{
    ServerFiles,
    redb::{RedbLog, RedbStore},
    sealer::KeySealer,
};
use micro_core::{
    Error,
    broker::{Broker, MemoryBroker},
    config::{Config, Plain, StoreConfig},
    events::{Events, LogEvents, MemoryLog},
    store::{MemoryStore, Store},
};
use tokio::task::JoinHandle;

/// How often expired store records are deleted from disk (reads never show them either way).
const SWEEP_INTERVAL: Duration = Duration::from_secs(10);

/// The backends of one platform.
pub(crate) struct Backends {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) config: Arc<dyn Config>,
    pub(crate) broker: Arc<dyn Broker>,
    pub(crate) events: Arc<dyn Events>,
    /// Background work to abort on stop.
    pub(crate) tasks: Vec<JoinHandle<()>>,
}

impl Backends {
    /// redb files and the config key under `home/server/`.
    pub(crate) fn embedded(home: &Path) -> Result<Self, Error> {
        let files = ServerFiles::new(home);
        let store = RedbStore::open(&files.store())?;
        let sweeper = store.spawn_sweeper(SWEEP_INTERVAL);
        let sealer = KeySealer::load_or_create(&files.secret_key())?;
        let events = RedbLog::open(&files.events())?;
        let store: Arc<dyn Store> = Arc::new(store);
        Ok(Self {
            config: Arc::new(StoreConfig::new(store.clone(), Arc::new(sealer))),
            store,
            broker: Arc::new(MemoryBroker::new()),
            events: Arc::new(LogEvents::new(events)),
            tasks: vec![sweeper],
        })
    }

    /// Everything in memory: nothing survives the process.
    pub(crate) fn memory() -> Self {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        Self {
            config: Arc::new(StoreConfig::new(store.clone(), Arc::new(Plain))),
            store,
            broker: Arc::new(MemoryBroker::new()),
            events: Arc::new(LogEvents::new(MemoryLog::default())),
            tasks: Vec::new(),
        }
    }
}
