//! [`StoreConfig`]: config documents as records of a [`Store`], one per namespace.
//!
//! A document is stored as `{"version":1,"values":{…},"secrets":{"a.b":"<hex>"}}`: plain values
//! in `values`, and each secret path's value, as JSON, sealed by the [`Sealer`] and hex-encoded,
//! so a secret never reaches the store in clear. Writes of one process are serialised, and
//! every write tells this process's watchers.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Map, Value, json};
use tokio::sync::{Mutex, broadcast};

use super::{Config, ConfigWatcher, Document};
use crate::{
    Error,
    store::{Record, Store},
};

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
    writing: Arc<Mutex<()>>,
    changes: broadcast::Sender<String>,
}

impl StoreConfig {
    /// Config documents in `store`, secrets sealed by `sealer`.
    pub fn new(store: Arc<dyn Store>, sealer: Arc<dyn Sealer>) -> Self {
        Self {
            store,
            sealer,
            writing: Arc::default(),
            changes: broadcast::channel(256).0,
        }
    }

    /// The namespace's document, secrets opened.
    pub async fn load(&self, namespace: &str) -> Result<Document, Error> {
        let record = match self.store.read(DATABASE, TABLE, namespace).await {
            Ok(r) => r,
            Err(e) if e.code == 404 => return Ok(Document::default()),
            Err(e) => return Err(e),
        };
        let stored: Value = serde_json::from_slice(&record.value).map_err(|e| {
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

    async fn save(&self, namespace: &str, doc: &Document) -> Result<(), Error> {
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
        self.store
            .write(DATABASE, TABLE, Record::new(namespace, stored))
            .await?;
        let _ = self.changes.send(namespace.to_owned());
        Ok(())
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
        let _writing = self.writing.lock().await;
        let mut doc = self.load(namespace).await?;
        doc.set(path, value, secret)?;
        self.save(namespace, &doc).await
    }

    async fn delete(&self, namespace: &str, path: &str) -> Result<(), Error> {
        super::parts(path)?;
        let _writing = self.writing.lock().await;
        let mut doc = self.load(namespace).await?;
        if doc.delete(path)? {
            self.save(namespace, &doc).await?;
        }
        Ok(())
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
                    match changes.recv().await {
                        Ok(changed) if changed != ns => continue,
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Err(broadcast::error::RecvError::Closed) => return None,
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
