//! [`Registration`]: the records a process keeps in the registry while it serves — registered
//! at start (a 5xx retried with backoff), registered again every interval so they outlive their
//! TTL only while the process lives, and deregistered first on a clean stop so callers stop
//! picking its nodes at once. A service keeps its one record so, and `micro server` the
//! records of its platform services.

use std::{sync::Arc, time::Duration};

use micro_core::{Error, Registry, Service as ServiceRecord};
use tokio::task::JoinHandle;

/// How long a stop waits for the registry to take the records off.
const DEREGISTER_WITHIN: Duration = Duration::from_secs(5);

/// Records registered in a namespace, kept alive until [`Registration::stop`].
pub struct Registration {
    registry: Arc<dyn Registry>,
    namespace: String,
    records: Vec<ServiceRecord>,
    heartbeats: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("namespace", &self.namespace)
            .field(
                "records",
                &self.records.iter().map(|r| &r.name).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Registration {
    /// Registers `records` in `namespace` with `ttl`, and again every `interval` until stopped.
    pub async fn start(
        registry: Arc<dyn Registry>,
        namespace: &str,
        records: Vec<ServiceRecord>,
        ttl: Duration,
        interval: Duration,
    ) -> Result<Self, Error> {
        let mut heartbeats = Vec::with_capacity(records.len());
        for record in &records {
            if let Err(e) = register_with_retry(&*registry, namespace, record, ttl).await {
                for heartbeat in heartbeats {
                    JoinHandle::abort(&heartbeat);
                }
                return Err(e);
            }
            heartbeats.push(tokio::spawn(heartbeat(
                registry.clone(),
                namespace.to_owned(),
                record.clone(),
                ttl,
                interval,
            )));
        }
        Ok(Self {
            registry,
            namespace: namespace.to_owned(),
            records,
            heartbeats,
        })
    }

    /// What is registered.
    pub fn records(&self) -> &[ServiceRecord] {
        &self.records
    }

    /// Stops the heartbeats and deregisters every record (waiting at most 5 s; a failure is
    /// logged, and the records then lapse at their TTL).
    pub async fn stop(mut self) {
        // Ended before the records go: a heartbeat under way must not bring one back.
        for heartbeat in std::mem::take(&mut self.heartbeats) {
            heartbeat.abort();
            let _ = heartbeat.await;
        }
        let deregistered = tokio::time::timeout(DEREGISTER_WITHIN, async {
            for record in &self.records {
                if let Err(e) = self.registry.deregister(&self.namespace, record).await {
                    tracing::warn!(service = %record.name, "failed to deregister: {e}");
                }
            }
        })
        .await;
        if deregistered.is_err() {
            tracing::warn!("failed to deregister within {DEREGISTER_WITHIN:?}");
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        for heartbeat in &self.heartbeats {
            heartbeat.abort();
        }
    }
}

async fn register_with_retry(
    registry: &dyn Registry,
    namespace: &str,
    record: &ServiceRecord,
    ttl: Duration,
) -> Result<(), Error> {
    let mut delay = Duration::from_millis(100);
    let mut attempt = 1;
    loop {
        match registry.register(namespace, record, ttl).await {
            Ok(()) => return Ok(()),
            Err(e) if attempt < 5 && e.code >= 500 => {
                tracing::warn!("registration attempt {attempt} failed: {e}; retrying in {delay:?}");
                tokio::time::sleep(delay).await;
                delay *= 2;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Re-registers `record` every `every`, starting one interval from now: call it after the
/// first registration. Runs until aborted; a failed heartbeat is logged and tried again next tick.
pub async fn heartbeat(
    registry: Arc<dyn Registry>,
    namespace: String,
    record: ServiceRecord,
    ttl: Duration,
    every: Duration,
) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        if let Err(e) = registry.register(&namespace, &record, ttl).await {
            tracing::warn!(service = %record.name, "heartbeat failed: {e}");
        }
    }
}
