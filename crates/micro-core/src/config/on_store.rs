//! [`StoreConfig`]: config documents as records of a [`Store`], one per namespace.
//!
//! A document is stored as `{"version":1,"values":{…},"secrets":{"a.b":"<hex>"}}`: plain values
//! in `values`, and each secret path's value, as JSON, sealed by the [`Sealer`] and hex-encoded,
//! so a secret never reaches the store in clear.
//!
//! Servers sharing a store share the documents, so nothing here relies on this process alone:
//! a write reads the document and writes it back only if it is still what was read (the
//! store's conditional write), reading again when another writer came first. Watchers learn
//! of a change from this process's writes at once, from other servers' through the change
//! feed ([`StoreConfig::follow`], a topic on the shared broker), and in any case by reading
//! the document again every [`REREAD`].

use std::{
    sync::{Arc, OnceLock},
    time::Duration,
};

use async_trait::async_trait;
use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

use super::{Config, ConfigWatcher, Document};
use crate::{
    Error,
    broker::{Broker, Message},
    store::{Record, Store},
};

/// How often a watcher reads its document again, whatever it heard: the longest a change made
/// through another server goes unseen if the change feed lost it.
const REREAD: Duration = Duration::from_secs(1);

/// How many times a write reads again after losing to another writer before it gives up.
const WRITE_TRIES: usize = 32;

/// The broker namespace and topic of the change feed: the namespace whose document changed.
const FEED_NAMESPACE: &str = "~platform";
const FEED_TOPIC: &str = "config-changes";

const ID: &str = "micro.config";
/// The store database holding config documents (store-service databases always contain `/`).
pub const DATABASE: &str = "config";
const TABLE: &str = "documents";
const VERSION: u64 = 1;

/// Seals secret values at rest.
pub trait Sealer: Send + Sync + 'static {
    /// Encrypts `plain`.
    fn seal(&self, plain: &[u8]) -> Result<Vec<u8>, Error>;
    /// Decrypts what [`seal`](Self::seal) produced.
    fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, Error>;
}

/// No sealing: for in-memory config, which never reaches a disk.
#[derive(Debug, Clone, Copy)]
pub struct Plain;

impl Sealer for Plain {
    fn seal(&self, plain: &[u8]) -> Result<Vec<u8>, Error> {
        Ok(plain.to_vec())
    }
    fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, Error> {
        Ok(sealed.to_vec())
    }
}

/// [`Config`] on a [`Store`].
#[derive(Clone)]
pub struct StoreConfig {
    store: Arc<dyn Store>,
    sealer: Arc<dyn Sealer>,
    changes: broadcast::Sender<String>,
    /// Where changes are announced to other servers, once [`follow`](Self::follow)ed.
    feed: Arc<OnceLock<Arc<dyn Broker>>>,
}

impl StoreConfig {
    /// Config documents in `store`, secrets sealed by `sealer`.
    pub fn new(store: Arc<dyn Store>, sealer: Arc<dyn Sealer>) -> Self {
        Self {
            store,
            sealer,
            changes: broadcast::channel(256).0,
            feed: Arc::default(),
        }
    }

    /// Announces this process's changes on `broker` and tells this process's watchers of the
    /// changes others announce there, until the returned task is aborted: the change feed
    /// between servers sharing a store.
    pub async fn follow(
        &self,
        broker: Arc<dyn Broker>,
    ) -> Result<tokio::task::JoinHandle<()>, Error> {
        let mut heard = broker.subscribe(FEED_NAMESPACE, FEED_TOPIC, None).await?;
        let _ = self.feed.set(broker);
        let changes = self.changes.clone();
        Ok(tokio::spawn(async move {
            while let Some(message) = futures::StreamExt::next(&mut heard).await {
                if let Ok(namespace) = String::from_utf8(message.body) {
                    let _ = changes.send(namespace);
                }
            }
        }))
    }

    /// The namespace's document, secrets opened.
    pub async fn load(&self, namespace: &str) -> Result<Document, Error> {
        let stored = self.load_stored(namespace).await?;
        self.open(namespace, stored.as_deref())
    }

    /// The namespace's document as stored (`None`: it has none).
    async fn load_stored(&self, namespace: &str) -> Result<Option<Vec<u8>>, Error> {
        match self.store.read(DATABASE, TABLE, namespace).await {
            Ok(r) => Ok(Some(r.value)),
            Err(e) if e.code == 404 => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A stored document, secrets opened.
    fn open(&self, namespace: &str, stored: Option<&[u8]>) -> Result<Document, Error> {
        let Some(stored) = stored else {
            return Ok(Document::default());
        };
        let stored: Value = serde_json::from_slice(stored).map_err(|e| {
            Error::internal(
                ID,
                format!("the stored config of {namespace:?} is not JSON: {e}"),
            )
        })?;
        let version = stored.get("version").and_then(Value::as_u64).unwrap_or(0);
        if version != VERSION {
            return Err(Error::internal(
                ID,
                format!(
                    "the stored config of {namespace:?} has format version {version}; this server reads version {VERSION}"
                ),
            ));
        }
        let mut doc = Document {
            root: stored
                .get("values")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
            ..Document::default()
        };
        if let Some(secrets) = stored.get("secrets").and_then(Value::as_object) {
            for (path, sealed) in secrets {
                let sealed = sealed.as_str().and_then(unhex).ok_or_else(|| {
                    Error::internal(ID, format!("the sealed secret at {path:?} is damaged"))
                })?;
                let plain = self.sealer.open(&sealed)?;
                let value: Value = serde_json::from_slice(&plain).map_err(|e| {
                    Error::internal(
                        ID,
                        format!("the secret at {path:?} does not open to JSON: {e}"),
                    )
                })?;
                doc.set(path, value, true)?;
            }
        }
        Ok(doc)
    }

    /// Applies `change` to the namespace's document and stores it, unless another writer stored
    /// a different one in between (then it starts over). `change` says whether it changed
    /// anything; nothing is written when it did not.
    async fn update(
        &self,
        namespace: &str,
        change: impl Fn(&mut Document) -> Result<bool, Error>,
    ) -> Result<(), Error> {
        for _ in 0..WRITE_TRIES {
            let stored = self.load_stored(namespace).await?;
            let mut doc = self.open(namespace, stored.as_deref())?;
            if !change(&mut doc)? {
                return Ok(());
            }
            let record = Record::new(namespace, self.seal(namespace, &doc)?);
            if self
                .store
                .write_if(DATABASE, TABLE, record, stored.as_deref())
                .await?
            {
                self.announce(namespace).await;
                return Ok(());
            }
        }
        Err(Error::conflict(
            ID,
            format!(
                "the config of {namespace:?} changed under this write {WRITE_TRIES} times; try again"
            ),
        ))
    }

    /// Tells this process's watchers, and the other servers, that `namespace` changed.
    async fn announce(&self, namespace: &str) {
        let _ = self.changes.send(namespace.to_owned());
        if let Some(feed) = self.feed.get()
            && let Err(e) = feed
                .publish(
                    FEED_NAMESPACE,
                    FEED_TOPIC,
                    Message::new(namespace.as_bytes()),
                )
                .await
        {
            // Watchers elsewhere still read again within REREAD.
            tracing::debug!(error = %e, "announcing a config change");
        }
    }

    /// The document as stored: values in clear, secrets sealed.
    fn seal(&self, namespace: &str, doc: &Document) -> Result<String, Error> {
        let mut plain = doc.clone();
        let mut secrets = Map::new();
        for path in &doc.secrets {
            if let Some(value) = doc.get(path, true)? {
                let sealed = self.sealer.seal(value.to_string().as_bytes())?;
                secrets.insert(path.clone(), Value::String(hex(&sealed)));
            }
            plain.delete(path)?;
        }
        let stored =
            json!({"version": VERSION, "values": plain.root, "secrets": secrets}).to_string();
        // Every read and watcher parses the whole document: keep it to one value's size.
        if stored.len() > crate::limits::MAX_VALUE {
            return Err(Error::bad_request(
                ID,
                format!(
                    "the config of {namespace:?} would grow to {} bytes; the limit is {}",
                    stored.len(),
                    crate::limits::MAX_VALUE
                ),
            ));
        }
        Ok(stored)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

fn not_found(path: &str) -> Error {
    Error::not_found(ID, format!("no config at {path:?}"))
}

#[async_trait]
impl Config for StoreConfig {
    async fn get(&self, namespace: &str, path: &str, reveal: bool) -> Result<Value, Error> {
        self.load(namespace)
            .await?
            .get(path, reveal)?
            .ok_or_else(|| not_found(path))
    }

    async fn set(
        &self,
        namespace: &str,
        path: &str,
        value: Value,
        secret: bool,
    ) -> Result<(), Error> {
        super::parts(path)?;
        self.update(namespace, |doc| {
            doc.set(path, value.clone(), secret)?;
            Ok(true)
        })
        .await
    }

    async fn delete(&self, namespace: &str, path: &str) -> Result<(), Error> {
        super::parts(path)?;
        self.update(namespace, |doc| doc.delete(path)).await
    }

    async fn watch(
        &self,
        namespace: &str,
        path: &str,
        reveal: bool,
    ) -> Result<ConfigWatcher, Error> {
        super::parts(path)?;
        let changes = self.changes.subscribe();
        let current = self.load(namespace).await?.get(path, reveal)?;
        let state = (
            self.clone(),
            changes,
            namespace.to_owned(),
            path.to_owned(),
            current.clone(),
        );
        let first = futures::stream::once(async move { Ok(current) });
        let rest = futures::stream::unfold(
            state,
            move |(config, mut changes, ns, path, last)| async move {
                loop {
                    // Read again on news of this namespace, or at the latest every REREAD,
                    // however much other namespaces change meanwhile.
                    let due = tokio::time::Instant::now() + REREAD;
                    loop {
                        match tokio::time::timeout_at(due, changes.recv()).await {
                            Ok(Ok(changed)) if changed != ns => continue,
                            Ok(Ok(_) | Err(broadcast::error::RecvError::Lagged(_))) | Err(_) => {
                                break;
                            }
                            Ok(Err(broadcast::error::RecvError::Closed)) => return None,
                        }
                    }
                    let now = match config.load(&ns).await.and_then(|d| d.get(&path, reveal)) {
                        Ok(now) => now,
                        Err(e) => return Some((Err(e), (config, changes, ns, path, last))),
                    };
                    if now != last {
                        return Some((Ok(now.clone()), (config, changes, ns, path, now)));
                    }
                }
            },
        );
        Ok(Box::pin(futures::StreamExt::chain(first, rest)))
    }
}
