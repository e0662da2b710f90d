//! [`RedbLog`]: the event log in one redb file.
//!
//! `events` maps `namespace\0topic\0` + big-endian sequence to the encoded event, so a topic is
//! one key range in publish order. `groups` maps `namespace\0topic\0group` to the group's
//! position. An append is durable when acknowledged; a group's position is committed without
//! waiting for the disk (the next durable append carries it), so a crash may replay a few events
//! to a group — at-least-once, never lost.

use std::{
    collections::BTreeMap,
    path::Path,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use async_trait::async_trait;
use micro_core::{
    Error,
    events::{Event, EventLog, GroupState, new_id},
};
use prost::Message as _;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

use super::{blocking, prefix, storage, table, unix_ms};

const ID: &str = "micro.events";
const EVENTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("events");
const GROUPS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("groups");

#[derive(Clone, PartialEq, prost::Message)]
struct StoredEvent {
    #[prost(string, tag = "1")]
    id: String,
    #[prost(uint64, tag = "2")]
    timestamp_ms: u64,
    #[prost(btree_map = "string, string", tag = "3")]
    metadata: BTreeMap<String, String>,
    #[prost(bytes = "vec", tag = "4")]
    payload: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct StoredGroup {
    #[prost(uint64, tag = "1")]
    cursor: u64,
    #[prost(btree_map = "uint64, uint32", tag = "2")]
    pending: BTreeMap<u64, u32>,
}

/// The event log in a redb file.
#[derive(Clone)]
pub struct RedbLog {
    db: Arc<Database>,
    /// Appends share transactions (see [`super::commit`]).
    committer: super::commit::Committer,
}

impl std::fmt::Debug for RedbLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedbLog")
    }
}

impl RedbLog {
    /// Opens (or creates) the log file at `path`.
    pub fn open(path: &Path) -> Result<Self, Error> {
        let db = super::open(path, ID)?;
        Ok(Self {
            committer: super::commit::Committer::start(ID, &db),
            db,
        })
    }
}

fn event(topic: &str, sequence: u64, stored: StoredEvent) -> Event {
    Event {
        id: stored.id,
        topic: topic.to_owned(),
        sequence,
        timestamp: UNIX_EPOCH + Duration::from_millis(stored.timestamp_ms),
        metadata: stored.metadata,
        payload: stored.payload,
    }
}

fn decode_event(bytes: &[u8]) -> Result<StoredEvent, Error> {
    StoredEvent::decode(bytes)
        .map_err(|e| Error::internal(ID, format!("a stored event is damaged: {e}")))
}

fn sequence_of(key: &[u8]) -> u64 {
    key.len()
        .checked_sub(8)
        .and_then(|start| key[start..].try_into().ok())
        .map_or(0, u64::from_be_bytes)
}

/// Hands the topic's events from `from` on to `visit`, in order, while it answers `true`.
fn scan(
    db: &Database,
    base: &[u8],
    from: u64,
    mut visit: impl FnMut(u64, StoredEvent) -> bool,
) -> Result<(), Error> {
    let read = db.begin_read().map_err(|e| storage(ID, e))?;
    let Some(events) = table(ID, &read, EVENTS)? else {
        return Ok(());
    };
    let mut start = base.to_vec();
    start.extend_from_slice(&from.to_be_bytes());
    for entry in events
        .range::<&[u8]>(start.as_slice()..)
        .map_err(|e| storage(ID, e))?
    {
        let (key, value) = entry.map_err(|e| storage(ID, e))?;
        let key = key.value();
        if !key.starts_with(base) || key.len() != base.len() + 8 {
            break;
        }
        if !visit(sequence_of(key), decode_event(value.value())?) {
            break;
        }
    }
    Ok(())
}

/// The last sequence under `base` in an open table.
fn last(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    base: &[u8],
) -> Result<u64, Error> {
    let mut end = base.to_vec();
    end.extend_from_slice(&u64::MAX.to_be_bytes());
    let found = table
        .range::<&[u8]>(base..=end.as_slice())
        .map_err(|e| storage(ID, e))?
        .next_back()
        .transpose()
        .map_err(|e| storage(ID, e))?;
    Ok(found.map_or(0, |(k, _)| sequence_of(k.value())))
}

#[async_trait]
impl EventLog for RedbLog {
    async fn append(
        &self,
        namespace: &str,
        topic: &str,
        payload: Vec<u8>,
        metadata: BTreeMap<String, String>,
        timestamp: SystemTime,
    ) -> Result<Event, Error> {
        let base = prefix(ID, &[namespace, topic])?;
        let topic = topic.to_owned();
        let stored = StoredEvent {
            id: new_id(),
            timestamp_ms: unix_ms(timestamp),
            metadata,
            payload,
        };
        let encoded = stored.encode_to_vec();
        let sequence = self
            .committer
            .write(move |write| {
                let mut events = write.open_table(EVENTS).map_err(|e| storage(ID, e))?;
                let sequence = last(&events, &base)? + 1;
                let mut key = base.clone();
                key.extend_from_slice(&sequence.to_be_bytes());
                events
                    .insert(key.as_slice(), encoded.as_slice())
                    .map_err(|e| storage(ID, e))?;
                Ok(sequence)
            })
            .await?;
        Ok(event(&topic, sequence, stored))
    }

    async fn read(
        &self,
        namespace: &str,
        topic: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<Event>, Error> {
        let base = prefix(ID, &[namespace, topic])?;
        let topic = topic.to_owned();
        blocking(ID, &self.db, move |db| {
            let mut found = Vec::new();
            if limit > 0 {
                scan(db, &base, from.max(1), |seq, stored| {
                    found.push(event(&topic, seq, stored));
                    found.len() < limit
                })?;
            }
            Ok(found)
        })
        .await
    }

    async fn topics(&self, namespace: &str) -> Result<Vec<String>, Error> {
        let base = prefix(ID, &[namespace])?;
        blocking(ID, &self.db, move |db| {
            let read = db.begin_read().map_err(|e| storage(ID, e))?;
            let Some(events) = table(ID, &read, EVENTS)? else {
                return Ok(Vec::new());
            };
            // Keys are `NAMESPACE\0TOPIC\0SEQUENCE`: one look per topic, then past its events
            // (`TOPIC\x01` sorts after every `TOPIC\0...`).
            let mut topics = Vec::new();
            let mut from = base.clone();
            while topics.len() < micro_core::events::MAX_TOPICS {
                let next = events
                    .range::<&[u8]>(from.as_slice()..)
                    .map_err(|e| storage(ID, e))?
                    .next()
                    .transpose()
                    .map_err(|e| storage(ID, e))?;
                let Some((key, _)) = next else { break };
                let key = key.value();
                let Some(rest) = key.strip_prefix(base.as_slice()) else {
                    break;
                };
                let Some(end) = rest.iter().position(|b| *b == 0) else {
                    break;
                };
                topics.push(String::from_utf8_lossy(&rest[..end]).into_owned());
                from = [base.as_slice(), &rest[..end], &[1]].concat();
            }
            Ok(topics)
        })
        .await
    }

    async fn last_sequence(&self, namespace: &str, topic: &str) -> Result<u64, Error> {
        let base = prefix(ID, &[namespace, topic])?;
        blocking(ID, &self.db, move |db| {
            let read = db.begin_read().map_err(|e| storage(ID, e))?;
            match table(ID, &read, EVENTS)? {
                Some(events) => last(&events, &base),
                None => Ok(0),
            }
        })
        .await
    }

    async fn seek_time(
        &self,
        namespace: &str,
        topic: &str,
        time: SystemTime,
    ) -> Result<u64, Error> {
        let base = prefix(ID, &[namespace, topic])?;
        let wanted = unix_ms(time);
        blocking(ID, &self.db, move |db| {
            // Timestamps follow publish order, so the first at or after `time` ends the scan.
            let mut last = 0;
            let mut found = None;
            scan(db, &base, 1, |seq, stored| {
                last = seq;
                if stored.timestamp_ms >= wanted {
                    found = Some(seq);
                    return false;
                }
                true
            })?;
            Ok(found.unwrap_or(last + 1))
        })
        .await
    }

    async fn load_group(
        &self,
        namespace: &str,
        topic: &str,
        group: &str,
    ) -> Result<Option<GroupState>, Error> {
        let key = prefix(ID, &[namespace, topic, group])?;
        blocking(ID, &self.db, move |db| {
            let read = db.begin_read().map_err(|e| storage(ID, e))?;
            let Some(groups) = table(ID, &read, GROUPS)? else {
                return Ok(None);
            };
            let Some(value) = groups.get(key.as_slice()).map_err(|e| storage(ID, e))? else {
                return Ok(None);
            };
            let stored = StoredGroup::decode(value.value()).map_err(|e| {
                Error::internal(ID, format!("a stored consumer group is damaged: {e}"))
            })?;
            Ok(Some(GroupState {
                cursor: stored.cursor,
                pending: stored.pending,
            }))
        })
        .await
    }

    async fn save_group(
        &self,
        namespace: &str,
        topic: &str,
        group: &str,
        state: &GroupState,
    ) -> Result<(), Error> {
        let key = prefix(ID, &[namespace, topic, group])?;
        let stored = StoredGroup {
            cursor: state.cursor,
            pending: state.pending.clone(),
        };
        blocking(ID, &self.db, move |db| {
            let mut write = db.begin_write().map_err(|e| storage(ID, e))?;
            write
                .set_durability(Durability::None)
                .map_err(|e| storage(ID, e))?;
            write
                .open_table(GROUPS)
                .map_err(|e| storage(ID, e))?
                .insert(key.as_slice(), stored.encode_to_vec().as_slice())
                .map_err(|e| storage(ID, e))?;
            write.commit().map_err(|e| storage(ID, e))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;
    use micro_core::events::{
        ConsumeOptions, Events, LogEvents, Offset,
        contract::{RealClock, run_all},
    };

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redb_log_passes_the_events_contract() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = RedbLog::open(&dir.path().join("events.redb")).expect("open");
        run_all(Arc::new(LogEvents::new(log)), RealClock).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn events_and_group_positions_survive_reopening() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("events.redb");
        let options = ConsumeOptions {
            group: Some("g".into()),
            offset: Offset::Sequence(1),
            auto_ack: false,
            ..ConsumeOptions::default()
        };
        {
            let events = LogEvents::new(RedbLog::open(&path).expect("open"));
            for payload in ["a", "b"] {
                events
                    .publish("ns", "t", payload.into(), BTreeMap::new())
                    .await
                    .expect("publish");
            }
            let mut consumer = events
                .consume("ns", "t", options.clone())
                .await
                .expect("consume");
            let first = consumer.events.next().await.expect("open").expect("event");
            assert_eq!(first.payload, b"a");
            events.ack("ns", "t", "g", &first.id).await.expect("ack");
        }
        // The old group actors hold the file until they notice their log is gone: reopen as
        // soon as they have let go.
        let mut reopened = RedbLog::open(&path);
        for _ in 0..200 {
            if reopened.is_ok() {
                break;
            }
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(5)).await;
            reopened = RedbLog::open(&path);
        }
        let events = LogEvents::new(reopened.expect("reopen"));
        let third = events
            .publish("ns", "t", b"c".to_vec(), BTreeMap::new())
            .await
            .expect("publish");
        assert_eq!(third.sequence, 3, "sequences continue after a restart");
        let mut consumer = events.consume("ns", "t", options).await.expect("consume");
        let next = consumer.events.next().await.expect("open").expect("event");
        assert_eq!(next.payload, b"b", "the unacked event comes back first");
        let next = consumer.events.next().await.expect("open").expect("event");
        assert_eq!(next.payload, b"c", "then the group resumes where it was");
    }
}
