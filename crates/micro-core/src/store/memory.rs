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
        let now = Instant::now();
        let dbs = self.lock();
        let Some(records) = dbs.get(database).and_then(|t| t.get(table)) else {
            return Ok(Vec::new());
        };
        let live = records.iter().filter(|(_, e)| e.live(now)).map(|(k, _)| k);
        Ok(select(live, query)
            .into_iter()
            .filter_map(|k| records.get(k).map(|e| e.view(now)))
            .collect())
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
        let now = Instant::now();
        let dbs = self.lock();
        let Some(records) = dbs.get(database).and_then(|t| t.get(table)) else {
            return Ok(Vec::new());
        };
        let live = records.iter().filter(|(_, e)| e.live(now)).map(|(k, _)| k);
        Ok(select(live, query).into_iter().cloned().collect())
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
