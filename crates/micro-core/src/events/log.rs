//! [`EventLog`]: what an engine must store for [`LogEvents`](super::LogEvents) to consume from it.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::SystemTime,
};

use async_trait::async_trait;

use super::Event;
use crate::Error;

/// A group's place in a topic: the next sequence to deliver, and what was delivered but not yet
/// acked (sequence → deliveries so far).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupState {
    /// The next sequence to deliver for the first time.
    pub cursor: u64,
    /// Delivered, not acked: sequence → how many times delivered.
    pub pending: BTreeMap<u64, u32>,
}

impl GroupState {
    /// Sequences delivered and not acked.
    pub fn unacked(&self) -> BTreeSet<u64> {
        self.pending.keys().copied().collect()
    }
}

/// Append-only storage of events per (namespace, topic), plus consumer group positions.
#[async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// Stores a new event with the next sequence of its topic and a fresh id, durably.
    async fn append(
        &self,
        namespace: &str,
        topic: &str,
        payload: Vec<u8>,
        metadata: BTreeMap<String, String>,
        timestamp: SystemTime,
    ) -> Result<Event, Error>;

    /// Up to `limit` events of `topic` from sequence `from` on, in order.
    async fn read(
        &self,
        namespace: &str,
        topic: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<Event>, Error>;

    /// The last sequence of `topic` (0 when it has none).
    async fn last_sequence(&self, namespace: &str, topic: &str) -> Result<u64, Error>;

    /// The first sequence published at or after `time` (last + 1 when none was).
    async fn seek_time(&self, namespace: &str, topic: &str, time: SystemTime)
    -> Result<u64, Error>;

    /// The topics of `namespace` that hold events, sorted; at most
    /// [`MAX_TOPICS`](super::MAX_TOPICS).
    async fn topics(&self, namespace: &str) -> Result<Vec<String>, Error>;

    /// A group's stored state, if it has one.
    async fn load_group(
        &self,
        namespace: &str,
        topic: &str,
        group: &str,
    ) -> Result<Option<GroupState>, Error>;

    /// Stores a group's state.
    async fn save_group(
        &self,
        namespace: &str,
        topic: &str,
        group: &str,
        state: &GroupState,
    ) -> Result<(), Error>;
}

/// A new event id: a random UUID.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}
