//! The [`Config`] trait.

use std::pin::Pin;

use async_trait::async_trait;
use futures::Stream;
use serde_json::Value;

use crate::Error;

/// The value at a watched path: first as it is, then after each change (`None`: missing).
pub type ConfigWatcher = Pin<Box<dyn Stream<Item = Result<Option<Value>, Error>> + Send>>;

/// One JSON document per namespace, read and written by dot path.
#[async_trait]
pub trait Config: Send + Sync + 'static {
    /// The value at `path` (the empty path is the whole document); secrets show as
    /// `[secret]` unless `reveal`. A missing path is not found (404).
    async fn get(&self, namespace: &str, path: &str, reveal: bool) -> Result<Value, Error>;

    /// Sets `path`: an object merges leaf by leaf, anything else replaces. `secret` stores the
    /// value sealed and masks it on reads that do not reveal.
    async fn set(
        &self,
        namespace: &str,
        path: &str,
        value: Value,
        secret: bool,
    ) -> Result<(), Error>;

    /// Removes `path`; removing a missing path succeeds.
    async fn delete(&self, namespace: &str, path: &str) -> Result<(), Error>;

    /// The value at `path` now, then each time it changes.
    async fn watch(
        &self,
        namespace: &str,
        path: &str,
        reveal: bool,
    ) -> Result<ConfigWatcher, Error>;
}
