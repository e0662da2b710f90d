//! The [`Events`] trait.

use std::{collections::BTreeMap, pin::Pin};

use async_trait::async_trait;
use futures::Stream;

use super::{ConsumeOptions, Event};
use crate::Error;

/// The events of one consumer, as they are delivered.
pub type Deliveries = Pin<Box<dyn Stream<Item = Result<Event, Error>> + Send>>;

/// One consumer: its group (to ack in) and its events.
pub struct Consumer {
    /// The group the consumer reads in (generated when none was asked for).
    pub group: String,
    /// The events delivered to this consumer; dropping it leaves the group (on an engine, a
    /// moment later: an event sent to it meanwhile comes back after `ack_wait`).
    pub events: Deliveries,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

/// A durable, ordered event log per topic and namespace, consumed in groups.
#[async_trait]
pub trait Events: Send + Sync + 'static {
    /// Appends an event to `topic`; when this returns, the event is stored durably.
    /// An empty topic name is refused (400).
    async fn publish(
        &self,
        namespace: &str,
        topic: &str,
        payload: Vec<u8>,
        metadata: BTreeMap<String, String>,
    ) -> Result<Event, Error>;

    /// Joins (or creates) a consumer group on `topic`. The consumer is registered when this
    /// returns: an event published afterwards reaches the group.
    async fn consume(
        &self,
        namespace: &str,
        topic: &str,
        options: ConsumeOptions,
    ) -> Result<Consumer, Error>;

    /// Acks event `id` in `group`: it will not be delivered again.
    async fn ack(&self, namespace: &str, topic: &str, group: &str, id: &str) -> Result<(), Error>;

    /// Nacks event `id` in `group`: it is delivered again at once (a retry).
    async fn nack(&self, namespace: &str, topic: &str, group: &str, id: &str) -> Result<(), Error>;

    /// The topics of `namespace` that hold events, sorted; at most [`MAX_TOPICS`].
    async fn topics(&self, namespace: &str) -> Result<Vec<String>, Error>;
}

/// The most events a consumer group holds delivered and unacked (consumers that ack by hand):
/// past it, new events wait until one is acked or runs out of retries (a nack or a lapsed
/// `ack_wait` delivers the same event again, still held), so a slow consumer is not handed more
/// than it can ack in time. Every engine keeps it.
pub const MAX_UNACKED: usize = 1024;

/// The most topics [`Events::topics`] answers.
pub const MAX_TOPICS: usize = 1000;
