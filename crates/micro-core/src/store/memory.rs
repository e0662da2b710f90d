//! [`MemoryStore`]: records in memory, expiry on tokio's clock (so tests can pause time).

use std::{
    collections::BTreeMap,
    sync::{Mutex, MutexGuard},
};

use async_trait::async_trait;
use tokio::time::Instant;

use super::{Query, Record, Store, select, traits::check_names};
use crate::Error;

struct Entry {
    record: Record,
    deadline: Option<Instant>,
}

impl Entry {
    fn live(&self, now: Instant) -> bool {
        self.deadline.is_none_or(|d| d > now)
    }

    /// The record as a reader sees it: expiry is the time left.
    fn view(&self, now: Instant) -> Record {
        Record {
            expiry: self.deadline.map(|d| d - now),
            ..self.record.clone()
        }
    }
}

/// An entry seen by its key, for [`select`].
struct Keyed<'a>(&'a Entry);

impl AsRef<str> for Keyed<'_> {
    fn as_ref(&self) -> &str {
        &self.0.record.key
    }
}

type Tables = BTreeMap<String, BTreeMap<String, Entry>>;

/// An in-memory [`Store`]; nothing survives the process.
#[derive(Default)]
pub struct MemoryStore {
    databases: Mutex<BTreeMap<String, Tables>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Tables>> {
        self.databases.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The live records `query` selects, each shown by `show`.
    fn selected<T>(
        &self,
        database: &str,
        table: &str,
        query: &Query,
        show: impl Fn(&Entry, Instant) -> T,
    ) -> Vec<T> {
        let now = Instant::now();
        let dbs = self.lock();
        let Some(records) = dbs.get(database).and_then(|t| t.get(table)) else {
            return Vec::new();
        };
        let live = records.values().filter(|e| e.live(now));
        select(live.map(Keyed), query)
            .into_iter()
            .map(|k| show(k.0, now))
            .collect()
    }
}

fn not_found(key: &str) -> Error {
    Error::not_found("micro.store", format!("Record \"{key}\" not found"))
}

#[async_trait]
impl Store for MemoryStore {
    async fn read(&self, database: &str, table: &str, key: &str) -> Result<Record, Error> {
        check_names(database, table, Some(key))?;
        let now = Instant::now();
        self.lock()
            .get(database)
            .and_then(|t| t.get(table))
            .and_then(|records| records.get(key))
            .filter(|e| e.live(now))
            .map(|e| e.view(now))
            .ok_or_else(|| not_found(key))
    }

    async fn find(&self, database: &str, table: &str, query: &Query) -> Result<Vec<Record>, Error> {
        check_names(database, table, None)?;
        Ok(self.selected(database, table, query, Entry::view))
    }

    async fn write(&self, database: &str, table: &str, record: Record) -> Result<(), Error> {
        check_names(database, table, Some(&record.key))?;
        let deadline = record.expiry.map(|ttl| Instant::now() + ttl);
        self.lock()
            .entry(database.to_owned())
            .or_default()
            .entry(table.to_owned())
            .or_default()
            .insert(record.key.clone(), Entry { record, deadline });
        Ok(())
    }

    async fn write_if(
        &self,
        database: &str,
        table: &str,
        record: Record,
        expected: Option<&[u8]>,
    ) -> Result<bool, Error> {
        check_names(database, table, Some(&record.key))?;
        let now = Instant::now();
        let deadline = record.expiry.map(|ttl| now + ttl);
        let mut dbs = self.lock();
        let records = dbs
            .entry(database.to_owned())
            .or_default()
            .entry(table.to_owned())
            .or_default();
        let current = records
            .get(&record.key)
            .filter(|e| e.live(now))
            .map(|e| e.record.value.as_slice());
        if current != expected {
            return Ok(false);
        }
        records.insert(record.key.clone(), Entry { record, deadline });
        Ok(true)
    }

    async fn delete(&self, database: &str, table: &str, key: &str) -> Result<(), Error> {
        check_names(database, table, Some(key))?;
        let mut dbs = self.lock();
        if let Some(records) = dbs.get_mut(database).and_then(|t| t.get_mut(table)) {
            records.remove(key);
        }
        Ok(())
    }

    async fn list(&self, database: &str, table: &str, query: &Query) -> Result<Vec<String>, Error> {
        check_names(database, table, None)?;
        Ok(self.selected(database, table, query, |e, _| e.record.key.clone()))
    }

    async fn databases(&self) -> Result<Vec<String>, Error> {
        let now = Instant::now();
        Ok(self
            .lock()
            .iter()
            .filter(|(_, tables)| {
                tables
                    .values()
                    .flat_map(|r| r.values())
                    .any(|e| e.live(now))
            })
            .map(|(name, _)| name.clone())
            .collect())
    }

    async fn tables(&self, database: &str) -> Result<Vec<String>, Error> {
        let now = Instant::now();
        Ok(self
            .lock()
            .get(database)
            .map(|tables| {
                tables
                    .iter()
                    .filter(|(_, records)| records.values().any(|e| e.live(now)))
                    .map(|(name, _)| name.clone())
                    .collect()
            })
            .unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{contract::PausedClock, store::contract};

    #[tokio::test(start_paused = true)]
    async fn memory_store_passes_the_contract() {
        contract::run_all(Arc::new(MemoryStore::new()), PausedClock).await;
    }
}
