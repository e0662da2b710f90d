//! The store, for services: [`Store`] is a table of the platform store — by default database =
//! the namespace, table = the service name — and [`RemoteStore`] the store trait over the
//! server's `micro.store.Store` service. For tests, [`Store::memory`] needs no server.
//!
//! ```no_run
//! # async fn f() -> Result<(), micro::Error> {
//! let store = micro::store::Store::from_env("greeter")?;
//! store.write("visits", b"1".to_vec()).await?;
//! let visits = store.read("visits").await?;
//! # Ok(()) }
//! ```

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use micro_core::{
    Error,
    store::{self as core, Query, Record},
};
use micro_proto::store::{self as pb, store_client::StoreClient};
use tonic::transport::Channel;

use crate::{
    convert::store::{order_to_str, record_from_pb, record_to_pb},
    env::Env,
    remote::Connection,
};

const ID: &str = "micro.store";

/// One table of a store.
#[derive(Clone)]
pub struct Store {
    store: Arc<dyn core::Store>,
    database: String,
    table: String,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("database", &self.database)
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Table `table` of database `database` in `store`.
    pub fn new(store: Arc<dyn core::Store>, database: &str, table: &str) -> Self {
        Self {
            store,
            database: database.to_owned(),
            table: table.to_owned(),
        }
    }

    /// The service's table on the server of `MICRO_SERVER_ADDRESS`: database = the namespace,
    /// table = `service` (or `MICRO_SERVICE_NAME`).
    pub fn from_env(service: &str) -> Result<Self, Error> {
        let env = Env::read();
        let table = env
            .service_name
            .clone()
            .unwrap_or_else(|| service.to_owned());
        let remote = RemoteStore::new(&env.server_address, &env.namespace)?;
        Ok(Self::new(Arc::new(remote), &env.namespace, &table))
    }

    /// A table in memory, for tests.
    pub fn memory(table: &str) -> Self {
        Self::new(Arc::new(core::MemoryStore::new()), "micro", table)
    }

    /// The same store, another table.
    pub fn table(&self, table: &str) -> Self {
        Self::new(self.store.clone(), &self.database, table)
    }

    /// The value at `key`; a missing or expired key is a 404.
    pub async fn read(&self, key: &str) -> Result<Vec<u8>, Error> {
        Ok(self.read_record(key).await?.value)
    }

    /// The record at `key`, with metadata and the time it has left.
    pub async fn read_record(&self, key: &str) -> Result<Record, Error> {
        self.store.read(&self.database, &self.table, key).await
    }

    /// The records `query` selects.
    pub async fn find(&self, query: &Query) -> Result<Vec<Record>, Error> {
        self.store.find(&self.database, &self.table, query).await
    }

    /// Writes `value` at `key`, for good.
    pub async fn write(&self, key: &str, value: Vec<u8>) -> Result<(), Error> {
        self.write_record(Record::new(key, value)).await
    }

    /// Writes `value` at `key`, gone after `ttl`.
    pub async fn write_expiring(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Duration,
    ) -> Result<(), Error> {
        self.write_record(Record::new(key, value).with_expiry(ttl))
            .await
    }

    /// Writes a record.
    pub async fn write_record(&self, record: Record) -> Result<(), Error> {
        self.store.write(&self.database, &self.table, record).await
    }

    /// Writes `record` only if the live record at its key holds `expected` now (`None`: only
    /// if there is none), as one step on the server's store; whether it wrote. Several
    /// processes decide who goes first this way (see [`crate::sync`]).
    pub async fn write_if(&self, record: Record, expected: Option<&[u8]>) -> Result<bool, Error> {
        self.store
            .write_if(&self.database, &self.table, record, expected)
            .await
    }

    /// Deletes `key`.
    pub async fn delete(&self, key: &str) -> Result<(), Error> {
        self.store.delete(&self.database, &self.table, key).await
    }

    /// The keys `query` selects.
    pub async fn list(&self, query: &Query) -> Result<Vec<String>, Error> {
        self.store.list(&self.database, &self.table, query).await
    }
}

/// The store of a micro server, in one namespace.
#[derive(Debug, Clone)]
pub struct RemoteStore {
    conn: Connection,
    client: StoreClient<Channel>,
    namespace: String,
}

impl RemoteStore {
    /// The store of the server at `address`, in `namespace`; connects on first use.
    pub fn new(address: &str, namespace: &str) -> Result<Self, Error> {
        Ok(Self::over(Connection::lazy(address)?, namespace))
    }

    /// The store over an existing connection.
    pub fn over(conn: Connection, namespace: &str) -> Self {
        Self {
            client: StoreClient::new(conn.channel())
                .max_decoding_message_size(micro_core::limits::MAX_MESSAGE),
            conn,
            namespace: namespace.to_owned(),
        }
    }
}

impl RemoteStore {
    /// Writes `record`, on the conditions given; whether it wrote.
    async fn put(
        &self,
        database: &str,
        table: &str,
        record: Record,
        if_absent: bool,
        if_value: Option<&[u8]>,
    ) -> Result<bool, Error> {
        core::check_names(database, table, Some(&record.key))?;
        let req = self
            .conn
            .request(
                &self.namespace,
                pb::WriteRequest {
                    record: Some(record_to_pb(record)),
                    database: database.to_owned(),
                    table: table.to_owned(),
                    if_absent,
                    if_value: if_value.map(<[u8]>::to_vec),
                },
            )
            .await?;
        let answer = self
            .client
            .clone()
            .write(req)
            .await
            .map_err(|s| self.conn.error(ID, &s))?
            .into_inner();
        if (if_absent || if_value.is_some()) && !answer.conditional {
            // An older server ignored the condition and wrote anyway: say so, never pretend.
            return Err(Error::internal(
                ID,
                format!(
                    "the server at {} does not support conditional writes; upgrade it",
                    self.conn.address()
                ),
            ));
        }
        Ok(answer.written)
    }
}

/// An optional filter as the wire has it: empty for none.
fn filter(s: &Option<String>) -> String {
    s.clone().unwrap_or_default()
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[async_trait]
impl core::Store for RemoteStore {
    async fn read(&self, database: &str, table: &str, key: &str) -> Result<Record, Error> {
        core::check_names(database, table, Some(key))?;
        let req = self
            .conn
            .request(
                &self.namespace,
                pb::ReadRequest {
                    key: key.to_owned(),
                    database: database.to_owned(),
                    table: table.to_owned(),
                    ..Default::default()
                },
            )
            .await?;
        let rsp = self
            .client
            .clone()
            .read(req)
            .await
            .map_err(|s| self.conn.error(ID, &s))?;
        rsp.into_inner()
            .records
            .into_iter()
            .next()
            .map(record_from_pb)
            .ok_or_else(|| Error::not_found(ID, format!("no record at key {key:?}")))
    }

    async fn find(&self, database: &str, table: &str, query: &Query) -> Result<Vec<Record>, Error> {
        core::check_names(database, table, None)?;
        let req = self
            .conn
            .request(
                &self.namespace,
                pb::ReadRequest {
                    key: String::new(),
                    database: database.to_owned(),
                    table: table.to_owned(),
                    prefix: filter(&query.prefix),
                    suffix: filter(&query.suffix),
                    limit: query.limit.map_or(0, count),
                    offset: count(query.offset),
                    order: order_to_str(query.order).to_owned(),
                },
            )
            .await?;
        let rsp = self
            .client
            .clone()
            .read(req)
            .await
            .map_err(|s| self.conn.error(ID, &s))?;
        Ok(rsp
            .into_inner()
            .records
            .into_iter()
            .map(record_from_pb)
            .collect())
    }

    async fn write(&self, database: &str, table: &str, record: Record) -> Result<(), Error> {
        self.put(database, table, record, false, None)
            .await
            .map(drop)
    }

    async fn write_if(
        &self,
        database: &str,
        table: &str,
        record: Record,
        expected: Option<&[u8]>,
    ) -> Result<bool, Error> {
        self.put(database, table, record, expected.is_none(), expected)
            .await
    }

    async fn delete(&self, database: &str, table: &str, key: &str) -> Result<(), Error> {
        core::check_names(database, table, Some(key))?;
        let mut client = self.client.clone();
        let msg = pb::DeleteRequest {
            key: key.to_owned(),
            database: database.to_owned(),
            table: table.to_owned(),
        };
        self.conn
            .call(ID, &self.namespace, msg, |req| client.delete(req))
            .await
            .map(drop)
    }

    async fn list(&self, database: &str, table: &str, query: &Query) -> Result<Vec<String>, Error> {
        core::check_names(database, table, None)?;
        let req = self
            .conn
            .request(
                &self.namespace,
                pb::ListRequest {
                    database: database.to_owned(),
                    table: table.to_owned(),
                    prefix: filter(&query.prefix),
                    suffix: filter(&query.suffix),
                    limit: query.limit.map_or(0, count),
                    offset: count(query.offset),
                    order: order_to_str(query.order).to_owned(),
                },
            )
            .await?;
        let rsp = self
            .client
            .clone()
            .list(req)
            .await
            .map_err(|s| self.conn.error(ID, &s))?;
        Ok(rsp.into_inner().keys)
    }

    async fn databases(&self) -> Result<Vec<String>, Error> {
        let mut client = self.client.clone();
        let msg = pb::DatabasesRequest {};
        let rsp = self
            .conn
            .call(ID, &self.namespace, msg, |req| client.databases(req))
            .await?;
        Ok(rsp.databases)
    }

    async fn tables(&self, database: &str) -> Result<Vec<String>, Error> {
        let mut client = self.client.clone();
        let msg = pb::TablesRequest {
            database: database.to_owned(),
        };
        let rsp = self
            .conn
            .call(ID, &self.namespace, msg, |req| client.tables(req))
            .await?;
        Ok(rsp.tables)
    }
}
