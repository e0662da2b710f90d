//! The [`Broker`] trait and its [`Message`].

use std::{collections::BTreeMap, pin::Pin};

use async_trait::async_trait;
use futures::Stream;

use crate::Error;

/// One message: headers and a body of any bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    /// Free-form headers.
    pub header: BTreeMap<String, String>,
    /// The payload.
    pub body: Vec<u8>,
}

impl Message {
    /// A message with no headers.
    pub fn new(body: impl Into<Vec<u8>>) -> Self {
        Self {
            header: BTreeMap::new(),
            body: body.into(),
        }
    }
}

/// The messages of one subscription, as they arrive; dropping it unsubscribes.
pub type Subscription = Pin<Box<dyn Stream<Item = Message> + Send>>;

/// Pub/sub on topics, per namespace.
#[async_trait]
pub trait Broker: Send + Sync + 'static {
    /// Sends `message` to the current subscribers of `topic`.
    async fn publish(&self, namespace: &str, topic: &str, message: Message) -> Result<(), Error>;

    /// Subscribes to `topic`. With a `queue`, the subscribers sharing that queue name share the
    /// messages; without, this subscriber gets every message. The subscription is live when this
    /// returns: a message published afterwards reaches it.
    async fn subscribe(
        &self,
        namespace: &str,
        topic: &str,
        queue: Option<&str>,
    ) -> Result<Subscription, Error>;
}

/// Refuses an empty topic name.
pub fn check_topic(id: &str, topic: &str) -> Result<(), Error> {
    if topic.trim().is_empty() {
        return Err(Error::bad_request(id, "a topic name is required"));
    }
    crate::limits::name(id, "topic name", topic)
}
