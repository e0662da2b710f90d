//! The [`Store`] trait.

use async_trait::async_trait;

use super::{Query, Record};
use crate::Error;

/// A key-value store of records in databases and tables.
///
/// Every operation names its database and table (the framework defaults them to the namespace
/// and the service name). Expired records are invisible to every read and list, to the
/// millisecond.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The record at exactly `key`; a missing or expired key is a not-found error.
    async fn read(&self, database: &str, table: &str, key: &str) -> Result<Record, Error>;

    /// The records whose keys `query` selects, in its order; none is an empty list, not an error.
    async fn find(&self, database: &str, table: &str, query: &Query) -> Result<Vec<Record>, Error>;

    /// Writes `record`, replacing any record at its key. Acknowledged means durable for
    /// backends that persist.
    async fn write(&self, database: &str, table: &str, record: Record) -> Result<(), Error>;

    /// Writes `record` only if the live record at its key holds `expected` now (`None`: only if
    /// there is none), as one atomic step; `true` when it wrote. Servers sharing a store decide
    /// uniqueness (an account name) and ordering (a config document) this way, never with a
    /// lock of their own. Acknowledged means durable, as for [`write`](Self::write).
    async fn write_if(
        &self,
        database: &str,
        table: &str,
        record: Record,
        expected: Option<&[u8]>,
    ) -> Result<bool, Error>;

    /// Deletes the record at `key`; deleting a missing key succeeds.
    async fn delete(&self, database: &str, table: &str, key: &str) -> Result<(), Error>;

    /// The keys `query` selects.
    async fn list(&self, database: &str, table: &str, query: &Query) -> Result<Vec<String>, Error>;

    /// Databases holding at least one live record, sorted.
    async fn databases(&self) -> Result<Vec<String>, Error>;

    /// Tables of `database` holding at least one live record, sorted.
    async fn tables(&self, database: &str) -> Result<Vec<String>, Error>;
}

/// Checks the names every operation takes: none may be empty.
pub fn check_names(database: &str, table: &str, key: Option<&str>) -> Result<(), Error> {
    const ID: &str = "micro.store";
    if database.is_empty() {
        return Err(Error::bad_request(ID, "a database name is required"));
    }
    if table.is_empty() {
        return Err(Error::bad_request(ID, "a table name is required"));
    }
    if key.is_some_and(str::is_empty) {
        return Err(Error::bad_request(ID, "a key is required"));
    }
    for (what, name) in [("database name", database), ("table name", table)]
        .into_iter()
        .chain(key.map(|k| ("key", k)))
    {
        if name.contains('\0') {
            return Err(Error::bad_request(
                ID,
                format!("the {what} contains a NUL character"),
            ));
        }
    }
    crate::limits::key(ID, "database name", database)?;
    crate::limits::key(ID, "table name", table)?;
    if let Some(key) = key {
        crate::limits::key(ID, "key", key)?;
    }
    Ok(())
}

/// Checks a record a caller writes against the [`limits`](crate::limits): its key, value size,
/// metadata and expiry.
pub fn check_record(record: &super::Record) -> Result<(), Error> {
    const ID: &str = "micro.store";
    if record.key.is_empty() {
        return Err(Error::bad_request(ID, "a key is required"));
    }
    crate::limits::key(ID, "key", &record.key)?;
    crate::limits::value(ID, "value", record.value.len())?;
    crate::limits::metadata(ID, record.metadata.iter())?;
    if record.expiry.is_some_and(|e| e > crate::limits::MAX_EXPIRY) {
        return Err(Error::bad_request(
            ID,
            format!(
                "the expiry is further than the limit of {} days",
                crate::limits::MAX_EXPIRY.as_secs() / 86_400
            ),
        ));
    }
    Ok(())
}
