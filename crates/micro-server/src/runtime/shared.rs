//! Deployments of every server sharing a store: each server publishes what it runs as records
//! (store database `runtime`, table `deployments`, key `NS/NAME`) that live a few seconds and
//! are written again while it runs them, naming the server. `micro status` through any server
//! then lists every server's services; the services of a server that died drop out once their
//! records expire. A name run by one server is a conflict on the others.
//!
//! The processes themselves stay with the server that built them: nothing is rescheduled when
//! a server dies (run services on each server, or point them at the list of servers). Logs are
//! kept by the server that runs the service; a server asked for another's logs forwards the
//! call to the address its record names ([`SharedRecords::owner`]).

use std::{
    sync::Arc,
    time::{Duration, UNIX_EPOCH},
};

use micro_core::{
    Error,
    runtime::{Deployment, Spec, Status},
    store::{Query, Record, Store},
};
use serde::{Deserialize, Serialize};

const DATABASE: &str = "runtime";
const TABLE: &str = "deployments";

/// How often a server publishes its deployments.
pub(crate) const PUBLISH_EVERY: Duration = Duration::from_secs(2);

/// How long a published deployment outlives its server.
const LIVES: Duration = Duration::from_secs(10);

/// Where other servers' deployments are read from and this one's are published.
#[derive(Clone)]
pub(crate) struct SharedRecords {
    store: Arc<dyn Store>,
    /// This server's id, kept across its restarts: which records are its own.
    id: String,
    /// This server, as its records name it to people: its address and id.
    server: String,
    /// This server's gRPC address, where other servers forward calls for its services.
    address: String,
}

/// A deployment as published.
#[derive(Serialize, Deserialize)]
struct Published {
    /// Absent from records of servers that predate ids: they are told by `server`.
    #[serde(default)]
    id: String,
    server: String,
    /// Absent from records of servers that predate forwarding.
    #[serde(default)]
    address: String,
    spec: Spec,
    status: Status,
    build: String,
    updated_ms: u64,
    restarts: u32,
    running: u32,
    error: Option<String>,
}

fn key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

impl SharedRecords {
    /// The records of the server `id` at `address` (its gRPC address) on `store`.
    pub(crate) fn new(store: Arc<dyn Store>, id: String, address: String) -> Self {
        Self {
            store,
            server: format!("{address} ({id})"),
            id,
            address,
        }
    }

    /// Whether `published` is this server's own — also from before it restarted, on another
    /// port.
    fn mine(&self, published: &Published) -> bool {
        if published.id.is_empty() {
            published.server == self.server
        } else {
            published.id == self.id
        }
    }

    /// This server's record of `deployment`.
    fn record_of(&self, deployment: &Deployment) -> Published {
        Published {
            id: self.id.clone(),
            server: self.server.clone(),
            address: self.address.clone(),
            spec: deployment.spec.clone(),
            status: deployment.status,
            build: deployment.build.clone(),
            updated_ms: deployment
                .updated
                .duration_since(UNIX_EPOCH)
                .map_or(0, |t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
            restarts: deployment.restarts,
            running: deployment.running,
            error: deployment.error.clone(),
        }
    }

    /// The record at `key`, as stored and as read; `None` when there is none (or it is not one
    /// of ours to read).
    async fn read(&self, key: &str) -> Result<Option<(Vec<u8>, Published)>, Error> {
        match self.store.read(DATABASE, TABLE, key).await {
            Ok(r) => Ok(serde_json::from_slice(&r.value).ok().map(|p| (r.value, p))),
            Err(e) if e.code == 404 => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Publishes this server's deployments of `namespace`. Each record is written only over
    /// this server's own (or none): a name another server holds is never taken over, and is
    /// reported instead — two servers then run it (say, one resumed its services after the
    /// other claimed the name), which `micro kill` on either resolves.
    pub(crate) async fn publish(&self, namespace: &str, deployments: &[Deployment]) {
        for d in deployments {
            let key = key(namespace, &d.spec.name);
            let Ok(value) = serde_json::to_vec(&self.record_of(d)) else {
                continue;
            };
            let current = match self.read(&key).await {
                Ok(current) => current,
                Err(e) => {
                    tracing::warn!(error = %e, service = %d.spec.name, "cannot publish a deployment");
                    continue;
                }
            };
            if let Some((_, holder)) = &current
                && !self.mine(holder)
            {
                tracing::warn!(
                    service = %d.spec.name,
                    namespace,
                    other = %holder.server,
                    "this service also runs on another server, which holds its name; this copy is not listed there"
                );
                continue;
            }
            let record = Record::new(key, value).with_expiry(LIVES);
            let expected = current.as_ref().map(|(raw, _)| raw.as_slice());
            if let Err(e) = self.store.write_if(DATABASE, TABLE, record, expected).await {
                tracing::warn!(error = %e, service = %d.spec.name, "cannot publish a deployment");
            }
        }
    }

    /// Forgets a deployment this server no longer runs — only this server's own record.
    pub(crate) async fn forget(&self, namespace: &str, name: &str) {
        let key = key(namespace, name);
        if let Ok(Some((raw, holder))) = self.read(&key).await
            && self.mine(&holder)
        {
            // The store has no conditional delete: the record is rewritten, only if still ours,
            // to expire at once.
            let gone = Record::new(key, Vec::new()).with_expiry(Duration::from_millis(1));
            let _ = self.store.write_if(DATABASE, TABLE, gone, Some(&raw)).await;
        }
    }

    /// The gRPC address of the other server that runs `name` in `namespace`, if one does.
    pub(crate) async fn owner(&self, namespace: &str, name: &str) -> Result<Option<String>, Error> {
        Ok(self
            .published(namespace, Some(name))
            .await?
            .into_iter()
            .map(|p| p.address)
            .find(|a| !a.is_empty()))
    }

    /// The deployments of `namespace` (or the one named) that other servers run.
    pub(crate) async fn others(
        &self,
        namespace: &str,
        name: Option<&str>,
    ) -> Result<Vec<(String, Deployment)>, Error> {
        Ok(self
            .published(namespace, name)
            .await?
            .into_iter()
            .map(|p| {
                let deployment = Deployment {
                    spec: p.spec,
                    status: p.status,
                    build: p.build,
                    updated: UNIX_EPOCH + Duration::from_millis(p.updated_ms),
                    restarts: p.restarts,
                    running: p.running,
                    error: p.error,
                    stage: None,
                };
                (p.server, deployment)
            })
            .collect())
    }

    /// The records of `namespace` (or the one named) that other servers published.
    async fn published(
        &self,
        namespace: &str,
        name: Option<&str>,
    ) -> Result<Vec<Published>, Error> {
        let records = match name {
            Some(name) => match self
                .store
                .read(DATABASE, TABLE, &key(namespace, name))
                .await
            {
                Ok(r) => vec![r],
                Err(e) if e.code == 404 => Vec::new(),
                Err(e) => return Err(e),
            },
            None => {
                let query = Query {
                    prefix: Some(format!("{namespace}/")),
                    ..Query::default()
                };
                self.store.find(DATABASE, TABLE, &query).await?
            }
        };
        Ok(records
            .into_iter()
            .filter_map(|r| serde_json::from_slice::<Published>(&r.value).ok())
            .filter(|p| !self.mine(p))
            .collect())
    }

    /// Claims `name` in `namespace` for this server before it runs it: the record is created
    /// only if none is live (a conditional write), so two servers creating the same name at
    /// once yield one deployment and one conflict. A live record of this server's own (a
    /// service it runs again) is its claim already.
    pub(crate) async fn claim(&self, namespace: &str, spec: &Spec) -> Result<(), Error> {
        let pending = Deployment {
            spec: spec.clone(),
            status: Status::Pending,
            build: String::new(),
            updated: UNIX_EPOCH,
            restarts: 0,
            running: 0,
            error: None,
            stage: None,
        };
        let value = serde_json::to_vec(&self.record_of(&pending))
            .map_err(|e| Error::internal("micro.runtime", format!("encoding a claim: {e}")))?;
        let key = key(namespace, &spec.name);
        // A record that expires between the refused claim and the read is claimed again.
        for _ in 0..3 {
            let record = Record::new(key.clone(), value.clone()).with_expiry(LIVES);
            if self.store.write_if(DATABASE, TABLE, record, None).await? {
                return Ok(());
            }
            let holder = match self.store.read(DATABASE, TABLE, &key).await {
                Ok(r) => serde_json::from_slice::<Published>(&r.value).ok(),
                Err(e) if e.code == 404 => continue,
                Err(e) => return Err(e),
            };
            return match holder {
                Some(p) if self.mine(&p) => Ok(()),
                Some(p) => Err(Error::conflict(
                    "micro.runtime",
                    format!(
                        "service {:?} already runs on server {}; update it there, or kill it first",
                        spec.name, p.server
                    ),
                )),
                // A record being let go (rewritten empty, to expire at once).
                None => {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    continue;
                }
            };
        }
        Err(Error::unavailable(
            "micro.runtime",
            format!("could not claim service {:?}; try again", spec.name),
        ))
    }
}

#[cfg(test)]
mod tests {
    use micro_core::store::MemoryStore;

    use super::*;

    fn server(store: &Arc<dyn Store>, name: &str) -> SharedRecords {
        SharedRecords::new(store.clone(), format!("{name}-id"), name.to_owned())
    }

    #[tokio::test(start_paused = true)]
    async fn one_of_two_servers_claiming_a_name_at_once_gets_it() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let (a, b) = (server(&store, "a:8081"), server(&store, "b:8081"));
        let spec = Spec::new("hello", "./hello");
        let (ra, rb) = tokio::join!(a.claim("micro", &spec), b.claim("micro", &spec));
        let (won, lost) = match (ra, rb) {
            (Ok(()), Err(e)) => (&a, e),
            (Err(e), Ok(())) => (&b, e),
            other => panic!("one claim wins, one is refused: {other:?}"),
        };
        assert_eq!(lost.code, 409, "{lost}");
        assert!(lost.detail.contains("already runs on server"), "{lost}");
        // The winner may claim its own name again; the other sees it as the owner.
        won.claim("micro", &spec).await.expect("its own claim");
        let other = if std::ptr::eq(won, &a) { &b } else { &a };
        assert_eq!(
            other.owner("micro", "hello").await.unwrap().as_deref(),
            Some(won.address.as_str())
        );
        // Another namespace is another name.
        other.claim("team", &spec).await.expect("another namespace");
        // The other publishing the same name (it runs a copy) or forgetting it takes nothing
        // from the holder.
        let copy = Deployment {
            spec: spec.clone(),
            status: Status::Running,
            build: String::new(),
            updated: UNIX_EPOCH,
            restarts: 0,
            running: 1,
            error: None,
            stage: None,
        };
        other.publish("micro", std::slice::from_ref(&copy)).await;
        other.forget("micro", "hello").await;
        assert_eq!(
            other.owner("micro", "hello").await.unwrap().as_deref(),
            Some(won.address.as_str()),
            "still the holder's"
        );
        won.publish("micro", &[copy]).await;
        assert_eq!(
            other.others("micro", Some("hello")).await.unwrap()[0]
                .1
                .status,
            Status::Running,
            "the holder publishes over its own claim"
        );
        // Once the owner forgets it (or its records expire), the other may claim it.
        won.forget("micro", "hello").await;
        other.claim("micro", &spec).await.expect("free again");
        tokio::time::advance(LIVES + Duration::from_secs(1)).await;
        won.claim("micro", &spec).await.expect("the claim expired");
    }
}
