//! [`MemoryBroker`]: fan-out and queue groups in process.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicUsize, Ordering},
    },
};

use async_trait::async_trait;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::{Broker, Message, Subscription, check_topic};
use crate::Error;

const ID: &str = "micro.broker";

/// How many messages may wait for one slow subscriber before newer ones are dropped for it.
const BUFFER: usize = 4096;
/// How many bytes of bodies may wait for one slow subscriber (messages are up to 4 MiB each,
/// so the count alone would let one reader hold gigabytes).
const BUFFER_BYTES: usize = 64 * 1024 * 1024;

struct Subscriber {
    queue: Option<String>,
    tx: mpsc::Sender<Message>,
    /// Body bytes sent and not yet read.
    waiting: Arc<AtomicUsize>,
}

impl Subscriber {
    /// Hands `message` over unless the subscriber is too far behind (by count or by bytes).
    fn offer(&self, message: &Message) -> bool {
        let size = message.body.len();
        if self.waiting.load(Ordering::Relaxed).saturating_add(size) > BUFFER_BYTES {
            return false;
        }
        if self.tx.try_send(message.clone()).is_err() {
            return false;
        }
        self.waiting.fetch_add(size, Ordering::Relaxed);
        true
    }
}

#[derive(Default)]
struct Topic {
    subscribers: Vec<Subscriber>,
    /// Per queue, which member gets the next message.
    turns: HashMap<String, usize>,
}

type Topics = HashMap<(String, String), Topic>;

/// An in-process [`Broker`]. A subscriber that falls `BUFFER` messages (or `BUFFER_BYTES`
/// of bodies) behind loses the newest ones (logged): the broker promises no persistence, and one slow reader must not stall
/// every publisher.
#[derive(Default, Clone)]
pub struct MemoryBroker {
    topics: Arc<Mutex<Topics>>,
}

impl MemoryBroker {
    /// A broker with no subscribers.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Topics> {
        self.topics.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl Broker for MemoryBroker {
    async fn publish(&self, namespace: &str, topic: &str, message: Message) -> Result<(), Error> {
        check_topic(ID, topic)?;
        let mut topics = self.lock();
        let key = (namespace.to_owned(), topic.to_owned());
        let Some(entry) = topics.get_mut(&key) else {
            return Ok(());
        };
        entry.subscribers.retain(|s| !s.tx.is_closed());
        // Everyone without a queue, and one member per queue (in turn, skipping full ones).
        let mut queues: BTreeMap<&str, Vec<&Subscriber>> = BTreeMap::new();
        for subscriber in &entry.subscribers {
            match &subscriber.queue {
                None => {
                    if !subscriber.offer(&message) {
                        tracing::warn!(
                            topic,
                            "a subscriber is {BUFFER} messages behind; dropped one"
                        );
                    }
                }
                Some(queue) => queues.entry(queue).or_default().push(subscriber),
            }
        }
        for (queue, members) in queues {
            let turn = entry.turns.entry(queue.to_owned()).or_default();
            let delivered = (0..members.len()).any(|i| {
                let member = members[(*turn + i) % members.len()];
                if member.offer(&message) {
                    *turn = (*turn + i + 1) % members.len();
                    true
                } else {
                    false
                }
            });
            if !delivered {
                tracing::warn!(
                    topic,
                    queue,
                    "every member of the queue is {BUFFER} messages behind; dropped one"
                );
            }
        }
        if entry.subscribers.is_empty() {
            topics.remove(&key);
        }
        Ok(())
    }

    async fn subscribe(
        &self,
        namespace: &str,
        topic: &str,
        queue: Option<&str>,
    ) -> Result<Subscription, Error> {
        check_topic(ID, topic)?;
        let (tx, rx) = mpsc::channel(BUFFER);
        let waiting = Arc::new(AtomicUsize::new(0));
        self.lock()
            .entry((namespace.to_owned(), topic.to_owned()))
            .or_default()
            .subscribers
            .push(Subscriber {
                queue: queue.filter(|q| !q.is_empty()).map(str::to_owned),
                tx,
                waiting: waiting.clone(),
            });
        Ok(Box::pin(futures::StreamExt::map(
            ReceiverStream::new(rx),
            move |message: Message| {
                waiting.fetch_sub(message.body.len(), Ordering::Relaxed);
                message
            },
        )))
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn memory_broker_passes_the_contract() {
        super::super::contract::run_all(std::sync::Arc::new(super::MemoryBroker::new())).await;
    }
}
