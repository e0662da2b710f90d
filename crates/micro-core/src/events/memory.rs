//! [`MemoryLog`]: an [`EventLog`] in memory; nothing survives the process.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Mutex, MutexGuard},
    time::SystemTime,
};

use async_trait::async_trait;

use super::{Event, EventLog, GroupState, log::new_id};
use crate::Error;

type Key = (String, String);

#[derive(Default)]
struct Inner {
    topics: HashMap<Key, Vec<Event>>,
    groups: HashMap<(String, String, String), GroupState>,
}

/// Events and group positions in memory.
#[derive(Default)]
pub struct MemoryLog {
    inner: Mutex<Inner>,
}

impl MemoryLog {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn key(namespace: &str, topic: &str) -> Key {
    (namespace.to_owned(), topic.to_owned())
}

#[async_trait]
impl EventLog for MemoryLog {
    async fn append(
        &self,
        namespace: &str,
        topic: &str,
        payload: Vec<u8>,
        metadata: BTreeMap<String, String>,
        timestamp: SystemTime,
    ) -> Result<Event, Error> {
        let mut inner = self.lock();
        let events = inner.topics.entry(key(namespace, topic)).or_default();
        let event = Event {
            id: new_id(),
            topic: topic.to_owned(),
            sequence: events.len() as u64 + 1,
            timestamp,
            metadata,
            payload,
        };
        events.push(event.clone());
        Ok(event)
    }

    async fn read(
        &self,
        namespace: &str,
        topic: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<Event>, Error> {
        let inner = self.lock();
        let Some(events) = inner.topics.get(&key(namespace, topic)) else {
            return Ok(Vec::new());
        };
        let start = usize::try_from(from.max(1) - 1).unwrap_or(usize::MAX);
        Ok(events.iter().skip(start).take(limit).cloned().collect())
    }

    async fn topics(&self, namespace: &str) -> Result<Vec<String>, Error> {
        let mut topics: Vec<String> = self
            .lock()
            .topics
            .iter()
            .filter(|((ns, _), events)| ns == namespace && !events.is_empty())
            .map(|((_, topic), _)| topic.clone())
            .collect();
        topics.sort();
        topics.truncate(super::MAX_TOPICS);
        Ok(topics)
    }

    async fn last_sequence(&self, namespace: &str, topic: &str) -> Result<u64, Error> {
        Ok(self
            .lock()
            .topics
            .get(&key(namespace, topic))
            .map_or(0, |e| e.len() as u64))
    }

    async fn seek_time(
        &self,
        namespace: &str,
        topic: &str,
        time: SystemTime,
    ) -> Result<u64, Error> {
        let inner = self.lock();
        let events = inner.topics.get(&key(namespace, topic));
        let events = events.map(Vec::as_slice).unwrap_or_default();
        Ok(events
            .iter()
            .find(|e| e.timestamp >= time)
            .map_or(events.len() as u64 + 1, |e| e.sequence))
    }

    async fn load_group(
        &self,
        namespace: &str,
        topic: &str,
        group: &str,
    ) -> Result<Option<GroupState>, Error> {
        Ok(self
            .lock()
            .groups
            .get(&(namespace.to_owned(), topic.to_owned(), group.to_owned()))
            .cloned())
    }

    async fn save_group(
        &self,
        namespace: &str,
        topic: &str,
        group: &str,
        state: &GroupState,
    ) -> Result<(), Error> {
        self.lock().groups.insert(
            (namespace.to_owned(), topic.to_owned(), group.to_owned()),
            state.clone(),
        );
        Ok(())
    }
}
