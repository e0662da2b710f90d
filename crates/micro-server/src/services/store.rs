//! The `store` platform service: `micro.store.Store` over any [`Store`] backend.
//!
//! Namespaces isolate completely: database `d` of namespace `ns` is the backend's database
//! `ns/d`, so a database name may not contain `/`, and `Databases` lists only the caller's.
//! The database defaults to the namespace and the table to `micro` (the CLI's; services name
//! their own).

use std::sync::Arc;

use micro::convert::store::{order_from_str, record_from_pb, record_to_pb};
use micro_core::{
    Error,
    store::{Query, Store},
};
use micro_proto::store::{self as pb, store_server};
use tonic::{Request, Response, Status};

use super::answer::answer;
use crate::namespace;

const ID: &str = "micro.store";
/// The table of requests that name none.
pub(crate) const DEFAULT_TABLE: &str = "micro";

/// Serves a store backend over gRPC.
#[derive(Clone)]
pub struct StoreService {
    store: Arc<dyn Store>,
}

impl StoreService {
    /// Serves `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// The tonic server for this service.
    pub fn into_server(self) -> store_server::StoreServer<Self> {
        store_server::StoreServer::new(self)
            .max_decoding_message_size(micro_core::limits::MAX_MESSAGE)
    }
}

/// The backend database of `requested` (default: the namespace) in `ns`.
fn database(ns: &str, requested: &str) -> Result<String, Error> {
    let db = if requested.is_empty() { ns } else { requested };
    if db.contains('/') {
        return Err(Error::bad_request(
            ID,
            format!("invalid database {db:?}: names may not contain /"),
        ));
    }
    Ok(format!("{ns}/{db}"))
}

/// The table `requested` (default: `micro`).
fn table(requested: &str) -> &str {
    if requested.is_empty() {
        DEFAULT_TABLE
    } else {
        requested
    }
}

/// Refuses to make a database or table whose name breaks the name rules (no control
/// characters, at most 256 bytes). Checked on writes only: what an older server let be written
/// stays readable, listable and deletable.
fn check_new_names(database: &str, table: &str) -> Result<(), Error> {
    if !database.is_empty() {
        micro_core::limits::name(ID, "database name", database)?;
    }
    if !table.is_empty() {
        micro_core::limits::name(ID, "table name", table)?;
    }
    Ok(())
}

fn query(
    prefix: String,
    suffix: String,
    limit: u32,
    offset: u32,
    order: &str,
) -> Result<Query, Error> {
    Ok(Query {
        prefix: (!prefix.is_empty()).then_some(prefix),
        suffix: (!suffix.is_empty()).then_some(suffix),
        offset: offset as usize,
        limit: (limit > 0).then_some(limit as usize),
        order: order_from_str(order)?,
    })
}

/// Who may use the store: an admin or a service of the namespace.
fn user<T>(req: &Request<T>) -> Result<String, Error> {
    namespace::user(req, "the store")
}

#[tonic::async_trait]
impl store_server::Store for StoreService {
    async fn read(
        &self,
        req: Request<pb::ReadRequest>,
    ) -> Result<Response<pb::ReadResponse>, Status> {
        answer(req, user, |ns, body| async move {
            let db = database(&ns, &body.database)?;
            let table = table(&body.table);
            let records = if body.key.is_empty() {
                let query = query(
                    body.prefix,
                    body.suffix,
                    body.limit,
                    body.offset,
                    &body.order,
                )?;
                self.store.find(&db, table, &query).await?
            } else {
                vec![self.store.read(&db, table, &body.key).await?]
            };
            Ok(pb::ReadResponse {
                records: records.into_iter().map(record_to_pb).collect(),
            })
        })
        .await
    }

    async fn write(
        &self,
        req: Request<pb::WriteRequest>,
    ) -> Result<Response<pb::WriteResponse>, Status> {
        answer(req, user, |ns, body| async move {
            check_new_names(&body.database, &body.table)?;
            let db = database(&ns, &body.database)?;
            let record = body
                .record
                .ok_or_else(|| Error::bad_request(ID, "write needs a record {key, value}"))?;
            if record.expiry_ms < 0 {
                return Err(Error::bad_request(ID, "expiry_ms may not be negative"));
            }
            let record = record_from_pb(record);
            micro_core::store::check_record(&record)?;
            let table = table(&body.table);
            let conditional = body.if_absent || body.if_value.is_some();
            let written = match (body.if_absent, body.if_value) {
                (true, Some(_)) => {
                    return Err(Error::bad_request(
                        ID,
                        "a write is conditional on if_absent or on if_value, not both",
                    ));
                }
                (true, None) => self.store.write_if(&db, table, record, None).await?,
                (false, Some(old)) => self.store.write_if(&db, table, record, Some(&old)).await?,
                (false, None) => {
                    self.store.write(&db, table, record).await?;
                    true
                }
            };
            Ok(pb::WriteResponse {
                written,
                conditional,
            })
        })
        .await
    }

    async fn delete(
        &self,
        req: Request<pb::DeleteRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        answer(req, user, |ns, body| async move {
            let db = database(&ns, &body.database)?;
            self.store
                .delete(&db, table(&body.table), &body.key)
                .await?;
            Ok(pb::DeleteResponse {})
        })
        .await
    }

    async fn list(
        &self,
        req: Request<pb::ListRequest>,
    ) -> Result<Response<pb::ListResponse>, Status> {
        answer(req, user, |ns, body| async move {
            let db = database(&ns, &body.database)?;
            let query = query(
                body.prefix,
                body.suffix,
                body.limit,
                body.offset,
                &body.order,
            )?;
            let keys = self.store.list(&db, table(&body.table), &query).await?;
            Ok(pb::ListResponse { keys })
        })
        .await
    }

    async fn databases(
        &self,
        req: Request<pb::DatabasesRequest>,
    ) -> Result<Response<pb::DatabasesResponse>, Status> {
        answer(req, user, |ns, _| async move {
            let mine = format!("{ns}/");
            let databases = self
                .store
                .databases()
                .await?
                .into_iter()
                .filter_map(|d| d.strip_prefix(&mine).map(str::to_owned))
                .collect();
            Ok(pb::DatabasesResponse { databases })
        })
        .await
    }

    async fn tables(
        &self,
        req: Request<pb::TablesRequest>,
    ) -> Result<Response<pb::TablesResponse>, Status> {
        answer(req, user, |ns, body| async move {
            let db = database(&ns, &body.database)?;
            let tables = self.store.tables(&db).await?;
            Ok(pb::TablesResponse { tables })
        })
        .await
    }
}
