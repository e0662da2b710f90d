//! Config, for services: [`Config`] reads the namespace's document with typed getters that take
//! a default, and watches paths; [`RemoteConfig`] is the config trait over the server's
//! `micro.config.Config` service. For tests, [`Config::memory`] needs no server.
//!
//! ```no_run
//! # async fn f() -> Result<(), micro::Error> {
//! use futures::StreamExt;
//! let config = micro::config::Config::from_env()?;
//! let greeting: String = config.get("greeting", "hello".to_owned()).await;
//! let mut changes = config.watch("greeting").await?;
//! while let Some(Ok(value)) = changes.next().await {
//!     println!("greeting is now {value:?}");
//! }
//! # Ok(()) }
//! ```

use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use micro_core::{
    Error,
    config::{self as core, ConfigWatcher},
};
use micro_proto::config::{self as pb, config_client::ConfigClient};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tonic::transport::Channel;

use crate::{env::Env, namespaced::Namespaced, remote::Connection};

const ID: &str = "micro.config";

/// The config of one namespace.
pub type Config = Namespaced<dyn core::Config>;

impl Config {
    /// The config of `MICRO_NAMESPACE` on the server of `MICRO_SERVER_ADDRESS`.
    pub fn from_env() -> Result<Self, Error> {
        let env = Env::read();
        let remote = RemoteConfig::new(&env.server_address)?;
        Ok(Self::new(Arc::new(remote), &env.namespace))
    }

    /// Config in memory, for tests.
    pub fn memory() -> Self {
        Self::new(Arc::new(core::memory()), "micro")
    }

    /// The value at `path` as a `T`, or `default` when it is missing, does not fit `T`, or the
    /// server cannot be reached (logged).
    pub async fn get<T: DeserializeOwned>(&self, path: &str, default: T) -> T {
        match self.value(path).await {
            Ok(Some(value)) => serde_json::from_value(value).unwrap_or_else(|e| {
                tracing::warn!(
                    "config {path:?} does not fit the type asked for: {e}; using the default"
                );
                default
            }),
            Ok(None) => default,
            Err(e) => {
                tracing::warn!("config {path:?} unavailable: {e}; using the default");
                default
            }
        }
    }

    /// The value at `path` (secrets revealed); `None` when missing.
    pub async fn value(&self, path: &str) -> Result<Option<Value>, Error> {
        match self.backend().get(self.namespace(), path, true).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.code == 404 => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Sets `path` (objects merge leaf by leaf).
    pub async fn set(&self, path: &str, value: Value) -> Result<(), Error> {
        self.backend()
            .set(self.namespace(), path, value, false)
            .await
    }

    /// Removes `path`.
    pub async fn delete(&self, path: &str) -> Result<(), Error> {
        self.backend().delete(self.namespace(), path).await
    }

    /// The value at `path` now, then after each change (secrets revealed).
    pub async fn watch(&self, path: &str) -> Result<ConfigWatcher, Error> {
        self.backend().watch(self.namespace(), path, true).await
    }
}

/// The config service of a micro server.
#[derive(Debug, Clone)]
pub struct RemoteConfig {
    conn: Connection,
    client: ConfigClient<Channel>,
}

impl RemoteConfig {
    /// The config of the server at `address`; connects on first use.
    pub fn new(address: &str) -> Result<Self, Error> {
        Ok(Self::over(Connection::lazy(address)?))
    }

    /// The config over an existing connection.
    pub fn over(conn: Connection) -> Self {
        Self {
            client: ConfigClient::new(conn.channel())
                .max_decoding_message_size(micro_core::limits::MAX_MESSAGE),
            conn,
        }
    }
}

/// JSON text from the wire as a value.
pub fn parse_value(text: &str) -> Result<Value, Error> {
    serde_json::from_str(text)
        .map_err(|e| Error::bad_request(ID, format!("the value is not JSON: {e}")))
}

#[async_trait]
impl core::Config for RemoteConfig {
    async fn get(&self, namespace: &str, path: &str, reveal: bool) -> Result<Value, Error> {
        let mut client = self.client.clone();
        let msg = pb::GetRequest {
            path: path.to_owned(),
            secret: reveal,
        };
        let rsp = self
            .conn
            .call(ID, namespace, msg, |req| client.get(req))
            .await?;
        parse_value(&rsp.value)
    }

    async fn set(
        &self,
        namespace: &str,
        path: &str,
        value: Value,
        secret: bool,
    ) -> Result<(), Error> {
        let mut client = self.client.clone();
        let msg = pb::SetRequest {
            path: path.to_owned(),
            value: value.to_string(),
            secret,
        };
        self.conn
            .call(ID, namespace, msg, |req| client.set(req))
            .await
            .map(drop)
    }

    async fn delete(&self, namespace: &str, path: &str) -> Result<(), Error> {
        let mut client = self.client.clone();
        let msg = pb::DeleteRequest {
            path: path.to_owned(),
        };
        self.conn
            .call(ID, namespace, msg, |req| client.delete(req))
            .await
            .map(drop)
    }

    async fn watch(
        &self,
        namespace: &str,
        path: &str,
        reveal: bool,
    ) -> Result<ConfigWatcher, Error> {
        let mut client = self.client.clone();
        let msg = pb::WatchRequest {
            path: path.to_owned(),
            secret: reveal,
        };
        let stream = self
            .conn
            .call(ID, namespace, msg, |req| client.watch(req))
            .await?;
        let conn = self.conn.clone();
        Ok(Box::pin(stream.map(move |item| match item {
            Ok(rsp) if rsp.exists => parse_value(&rsp.value).map(Some),
            Ok(_) => Ok(None),
            Err(status) => Err(conn.error(ID, &status)),
        })))
    }
}
