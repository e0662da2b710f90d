//! [`RedbStore`]: the store in one redb file.
//!
//! `records` maps `database\0table\0key` to the encoded record (value, metadata and the
//! absolute expiry deadline in Unix milliseconds, so expiry survives restarts). `expiries` maps
//! `deadline ++ record key` to nothing, so the sweeper finds what has expired without a scan.
//! Reads never show an expired record, swept or not. Every write is durable when acknowledged;
//! writes in flight together share one commit (group commit, see [`super::commit`]).

use std::{collections::BTreeMap, path::Path, sync::Arc, time::Duration};

use async_trait::async_trait;

use crate::successor;
use micro_core::{
    Error,
    store::{Order, Query, Record, Store, check_names},
};
use prost::Message as _;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

use super::{blocking, commit::Committer, prefix, storage, table, unix_ms};

const ID: &str = "micro.store";
const RECORDS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("records");
const EXPIRIES: TableDefinition<&[u8], ()> = TableDefinition::new("expiries");

/// A record as stored.
#[derive(Clone, PartialEq, prost::Message)]
struct Stored {
    #[prost(bytes = "vec", tag = "1")]
    value: Vec<u8>,
    #[prost(btree_map = "string, string", tag = "2")]
    metadata: BTreeMap<String, String>,
    /// Unix milliseconds after which the record is gone; 0: never.
    #[prost(uint64, tag = "3")]
    deadline_ms: u64,
}

impl Stored {
    fn live(&self, now_ms: u64) -> bool {
        self.deadline_ms == 0 || self.deadline_ms > now_ms
    }

    fn into_record(self, key: String, now_ms: u64) -> Record {
        Record {
            key,
            value: self.value,
            metadata: self.metadata,
            expiry: (self.deadline_ms != 0)
                .then(|| Duration::from_millis(self.deadline_ms.saturating_sub(now_ms))),
        }
    }
}

fn decode(bytes: &[u8]) -> Result<Stored, Error> {
    Stored::decode(bytes)
        .map_err(|e| Error::internal(ID, format!("a stored record is damaged: {e}")))
}

fn now_ms() -> u64 {
    unix_ms(std::time::SystemTime::now())
}

fn expiry_key(deadline_ms: u64, key: &[u8]) -> Vec<u8> {
    let mut out = deadline_ms.to_be_bytes().to_vec();
    out.extend_from_slice(key);
    out
}

/// Splits a record key into its names.
fn names(key: &[u8]) -> Option<(&str, &str, &str)> {
    let mut parts = key.splitn(3, |b| *b == 0);
    let db = std::str::from_utf8(parts.next()?).ok()?;
    let table = std::str::from_utf8(parts.next()?).ok()?;
    let key = std::str::from_utf8(parts.next()?).ok()?;
    Some((db, table, key))
}

/// The stored key of `key` in `database`.`table`, the names checked.
fn record_key(database: &str, table: &str, key: &str) -> Result<Vec<u8>, Error> {
    check_names(database, table, Some(key))?;
    let mut full = prefix(ID, &[database, table])?;
    full.extend_from_slice(key.as_bytes());
    Ok(full)
}

/// The store in a redb file.
#[derive(Clone)]
pub struct RedbStore {
    db: Arc<Database>,
    /// Writes share transactions (see [`super::commit`]).
    committer: Committer,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedbStore")
    }
}

impl RedbStore {
    /// Opens (or creates) the store file at `path`.
    pub fn open(path: &Path) -> Result<Self, Error> {
        let db = super::open(path, ID)?;
        Ok(Self {
            committer: Committer::start(ID, &db),
            db,
        })
    }

    /// Deletes every expired record now; returns how many.
    pub async fn sweep(&self) -> Result<usize, Error> {
        blocking(ID, &self.db, |db| {
            let now = now_ms();
            let mut write = db.begin_write().map_err(|e| storage(ID, e))?;
            write
                .set_durability(Durability::None)
                .map_err(|e| storage(ID, e))?;
            let mut swept = 0;
            {
                let mut expiries = write.open_table(EXPIRIES).map_err(|e| storage(ID, e))?;
                let mut records = write.open_table(RECORDS).map_err(|e| storage(ID, e))?;
                let bound = (now + 1).to_be_bytes();
                let due: Vec<Vec<u8>> = expiries
                    .range::<&[u8]>(..&bound[..])
                    .map_err(|e| storage(ID, e))?
                    .map(|entry| entry.map(|(k, _)| k.value().to_vec()))
                    .collect::<Result<_, _>>()
                    .map_err(|e| storage(ID, e))?;
                for entry in due {
                    expiries
                        .remove(entry.as_slice())
                        .map_err(|e| storage(ID, e))?;
                    let key = &entry[8..];
                    let expired = match records.get(key).map_err(|e| storage(ID, e))? {
                        Some(value) => !decode(value.value())?.live(now),
                        None => false,
                    };
                    if expired {
                        records.remove(key).map_err(|e| storage(ID, e))?;
                        swept += 1;
                    }
                }
            }
            write.commit().map_err(|e| storage(ID, e))?;
            Ok(swept)
        })
        .await
    }

    /// Sweeps expired records every `interval` until the returned task is aborted.
    pub fn spawn_sweeper(&self, interval: Duration) -> tokio::task::JoinHandle<()> {
        let store = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            loop {
                tick.tick().await;
                if let Err(e) = store.sweep().await {
                    tracing::warn!("sweeping expired records failed: {e}");
                }
            }
        })
    }

    /// The live records under `base` (`database\0table\0`) that `query` selects, in its order:
    /// keys are filtered before their values are decoded, and the scan stops once `offset +
    /// limit` records are found, so a `limit` costs what it returns, not the whole table.
    fn scan(db: &Database, base: &[u8], query: &Query) -> Result<Vec<(String, Stored)>, Error> {
        let now = now_ms();
        let read = db.begin_read().map_err(|e| storage(ID, e))?;
        let Some(table) = table(ID, &read, RECORDS)? else {
            return Ok(Vec::new());
        };
        let mut from = base.to_vec();
        from.extend_from_slice(query.prefix.as_deref().unwrap_or("").as_bytes());
        let range = match successor(&from) {
            Some(to) => table.range::<&[u8]>(from.as_slice()..to.as_slice()),
            None => table.range::<&[u8]>(from.as_slice()..),
        }
        .map_err(|e| storage(ID, e))?;
        let entries: Box<dyn Iterator<Item = _>> = match query.order {
            Order::Asc => Box::new(range),
            Order::Desc => Box::new(range.rev()),
        };
        let wanted = query
            .offset
            .saturating_add(query.limit.unwrap_or(usize::MAX));
        let mut out = Vec::new();
        for entry in entries {
            if out.len() >= wanted {
                break;
            }
            let (key, value) = entry.map_err(|e| storage(ID, e))?;
            let name = String::from_utf8_lossy(&key.value()[base.len()..]).into_owned();
            if query.suffix.as_deref().is_some_and(|s| !name.ends_with(s)) {
                continue;
            }
            let stored = decode(value.value())?;
            if stored.live(now) {
                out.push((name, stored));
            }
        }
        Ok(out.into_iter().skip(query.offset).collect())
    }

    /// Every live record's (database, table), in key order.
    fn names(db: &Database) -> Result<Vec<(String, String)>, Error> {
        let now = now_ms();
        let read = db.begin_read().map_err(|e| storage(ID, e))?;
        let Some(table) = table(ID, &read, RECORDS)? else {
            return Ok(Vec::new());
        };
        let mut out: Vec<(String, String)> = Vec::new();
        for entry in table.iter().map_err(|e| storage(ID, e))? {
            let (key, value) = entry.map_err(|e| storage(ID, e))?;
            let Some((database, table, _)) = names(key.value()) else {
                continue;
            };
            if out.last().is_some_and(|(d, t)| d == database && t == table) {
                continue;
            }
            if decode(value.value())?.live(now) {
                out.push((database.to_owned(), table.to_owned()));
            }
        }
        Ok(out)
    }
}

impl RedbStore {
    /// Writes `record` in one transaction, when `expected` is given only if the live record at
    /// its key holds that value (`Some(None)`: only if there is none); `true` when it wrote.
    async fn put(
        &self,
        database: &str,
        table: &str,
        record: Record,
        expected: Option<Option<Vec<u8>>>,
    ) -> Result<bool, Error> {
        let full = record_key(database, table, &record.key)?;
        let Record {
            value,
            metadata,
            expiry,
            ..
        } = record;
        self.committer
            .write(move |write| {
                let now = now_ms();
                let deadline_ms = match expiry {
                    Some(ttl) => now
                        .saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX))
                        .max(1),
                    None => 0,
                };
                let mut records = write.open_table(RECORDS).map_err(|e| storage(ID, e))?;
                let mut expiries = write.open_table(EXPIRIES).map_err(|e| storage(ID, e))?;
                if let Some(expected) = &expected {
                    let current = records
                        .get(full.as_slice())
                        .map_err(|e| storage(ID, e))?
                        .map(|v| decode(v.value()))
                        .transpose()?
                        .filter(|s| s.live(now))
                        .map(|s| s.value);
                    if current != *expected {
                        return Ok(false);
                    }
                }
                let stored = Stored {
                    value: value.clone(),
                    metadata: metadata.clone(),
                    deadline_ms,
                };
                let old = records
                    .insert(full.as_slice(), stored.encode_to_vec().as_slice())
                    .map_err(|e| storage(ID, e))?
                    .map(|v| decode(v.value()))
                    .transpose()?;
                if let Some(old) = old.filter(|o| o.deadline_ms != 0) {
                    expiries
                        .remove(expiry_key(old.deadline_ms, &full).as_slice())
                        .map_err(|e| storage(ID, e))?;
                }
                if deadline_ms != 0 {
                    expiries
                        .insert(expiry_key(deadline_ms, &full).as_slice(), ())
                        .map_err(|e| storage(ID, e))?;
                }
                Ok(true)
            })
            .await
    }
}

#[async_trait]
impl Store for RedbStore {
    async fn read(&self, database: &str, table: &str, key: &str) -> Result<Record, Error> {
        let full = record_key(database, table, key)?;
        let key = key.to_owned();
        blocking(ID, &self.db, move |db| {
            let now = now_ms();
            let read = db.begin_read().map_err(|e| storage(ID, e))?;
            let stored = super::table(ID, &read, RECORDS)?
                .ok_or_else(|| missing(&key))?
                .get(full.as_slice())
                .map_err(|e| storage(ID, e))?
                .map(|v| decode(v.value()))
                .transpose()?
                .filter(|s| s.live(now))
                .ok_or_else(|| missing(&key))?;
            Ok(stored.into_record(key, now))
        })
        .await
    }

    async fn find(&self, database: &str, table: &str, query: &Query) -> Result<Vec<Record>, Error> {
        check_names(database, table, None)?;
        let base = prefix(ID, &[database, table])?;
        let query = query.clone();
        blocking(ID, &self.db, move |db| {
            let now = now_ms();
            Ok(Self::scan(db, &base, &query)?
                .into_iter()
                .map(|(key, stored)| stored.into_record(key, now))
                .collect())
        })
        .await
    }

    async fn write(&self, database: &str, table: &str, record: Record) -> Result<(), Error> {
        self.put(database, table, record, None).await.map(drop)
    }

    async fn write_if(
        &self,
        database: &str,
        table: &str,
        record: Record,
        expected: Option<&[u8]>,
    ) -> Result<bool, Error> {
        let expected = Some(expected.map(<[u8]>::to_vec));
        self.put(database, table, record, expected).await
    }

    async fn delete(&self, database: &str, table: &str, key: &str) -> Result<(), Error> {
        let full = record_key(database, table, key)?;
        self.committer
            .write(move |write| {
                let mut records = write.open_table(RECORDS).map_err(|e| storage(ID, e))?;
                let old = records
                    .remove(full.as_slice())
                    .map_err(|e| storage(ID, e))?
                    .map(|v| decode(v.value()))
                    .transpose()?;
                if let Some(old) = old.filter(|o| o.deadline_ms != 0) {
                    write
                        .open_table(EXPIRIES)
                        .map_err(|e| storage(ID, e))?
                        .remove(expiry_key(old.deadline_ms, &full).as_slice())
                        .map_err(|e| storage(ID, e))?;
                }
                Ok(())
            })
            .await
    }

    async fn list(&self, database: &str, table: &str, query: &Query) -> Result<Vec<String>, Error> {
        Ok(self
            .find(database, table, query)
            .await?
            .into_iter()
            .map(|r| r.key)
            .collect())
    }

    async fn databases(&self) -> Result<Vec<String>, Error> {
        blocking(ID, &self.db, |db| {
            let mut out: Vec<String> = Self::names(db)?.into_iter().map(|(d, _)| d).collect();
            out.dedup();
            Ok(out)
        })
        .await
    }

    async fn tables(&self, database: &str) -> Result<Vec<String>, Error> {
        let database = database.to_owned();
        blocking(ID, &self.db, move |db| {
            Ok(Self::names(db)?
                .into_iter()
                .filter(|(d, _)| *d == database)
                .map(|(_, t)| t)
                .collect())
        })
        .await
    }
}

fn missing(key: &str) -> Error {
    Error::not_found(ID, format!("no record at key {key:?}"))
}

#[cfg(test)]
mod tests {
    use micro_core::store::contract::{RealClock, run_all};

    use super::*;

    #[test]
    fn the_successor_of_a_prefix_bounds_its_range() {
        assert_eq!(successor(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(successor(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(successor(b"\xff\xff"), None);
    }

    #[tokio::test]
    async fn queries_match_the_pure_selection_in_every_combination() {
        use micro_core::store::{MemoryStore, Order};
        let dir = tempfile::tempdir().expect("tempdir");
        let redb = RedbStore::open(&dir.path().join("store.redb")).expect("open");
        let memory = MemoryStore::new();
        for key in ["a", "a1", "a2", "ab1", "b", "b1", "b\u{ff}", "c2"] {
            for store in [&redb as &dyn Store, &memory] {
                store
                    .write("db", "t", Record::new(key, "v"))
                    .await
                    .expect("write");
            }
        }
        // Another table's records sit next to these and must never show.
        redb.write("db", "u", Record::new("a9", "v"))
            .await
            .expect("write");
        for prefix in [None, Some("a"), Some("b"), Some("z")] {
            for suffix in [None, Some("1"), Some("2")] {
                for order in [Order::Asc, Order::Desc] {
                    for (offset, limit) in [(0, None), (1, Some(2)), (0, Some(1)), (5, None)] {
                        let query = Query {
                            prefix: prefix.map(str::to_owned),
                            suffix: suffix.map(str::to_owned),
                            offset,
                            limit,
                            order,
                        };
                        assert_eq!(
                            redb.list("db", "t", &query).await.expect("redb"),
                            memory.list("db", "t", &query).await.expect("memory"),
                            "{query:?}"
                        );
                    }
                }
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redb_store_passes_the_contract() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = RedbStore::open(&dir.path().join("store.redb")).expect("open");
        run_all(Arc::new(store), RealClock).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn records_survive_reopening_and_expired_ones_are_swept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("store.redb");
        {
            let store = RedbStore::open(&path).expect("open");
            store
                .write("d", "t", Record::new("kept", "v"))
                .await
                .expect("write");
            store
                .write(
                    "d",
                    "t",
                    Record::new("brief", "v").with_expiry(Duration::from_millis(50)),
                )
                .await
                .expect("write");
        }
        let store = RedbStore::open(&path).expect("reopen");
        assert_eq!(
            store.read("d", "t", "kept").await.expect("read").value,
            b"v"
        );
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert_eq!(
            store.sweep().await.expect("sweep"),
            1,
            "the expired record is swept"
        );
        assert_eq!(
            store.list("d", "t", &Query::default()).await.expect("list"),
            ["kept"]
        );
        let err = store.read("d\0x", "t", "k").await.expect_err("NUL");
        assert_eq!(err.code, 400);
    }
}
