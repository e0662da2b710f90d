//! [`LogEvents`]: the consuming rules on top of any [`EventLog`].
//!
//! Each consumer group is one actor task that owns the group's state, so there is no lock
//! around delivery: consumers join, and acks and nacks arrive, as commands on its channel; new
//! events arrive as a bump of the topic's last sequence. The actor delivers redeliveries first
//! (oldest due first), then new events from its cursor, round-robin over the group's consumers,
//! and stores the group's position after each round (named groups only).

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex, MutexGuard},
    time::SystemTime,
};

use async_trait::async_trait;
use tokio::{
    sync::{mpsc, oneshot, watch},
    time::Instant,
};
use tokio_stream::wrappers::ReceiverStream;

use super::{ConsumeOptions, Consumer, Event, EventLog, Events, GroupState, MAX_UNACKED, Offset};
use crate::{Error, broker::check_topic};

const ID: &str = "micro.events";

/// Events read from the log per round.
const BATCH: usize = 64;
/// Events a consumer's channel holds before delivery to it waits.
const CONSUMER_BUFFER: usize = 16;

type Reply = oneshot::Sender<Result<(), Error>>;
type Sink = mpsc::Sender<Result<Event, Error>>;

enum Command {
    Join {
        sink: Sink,
        options: ConsumeOptions,
        reply: Reply,
    },
    Settle {
        id: String,
        ack: bool,
        reply: Reply,
    },
}

type GroupKey = (String, String, String);

/// The most consumer groups (of every namespace and topic) running at once.
const MAX_GROUPS: usize = 10_000;

#[derive(Default)]
struct Shared {
    groups: Mutex<HashMap<GroupKey, mpsc::UnboundedSender<Command>>>,
    topics: Mutex<HashMap<(String, String), watch::Sender<u64>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// [`Events`] over an [`EventLog`].
pub struct LogEvents<L> {
    log: Arc<L>,
    shared: Arc<Shared>,
}

impl<L> Clone for LogEvents<L> {
    fn clone(&self) -> Self {
        Self {
            log: self.log.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<L: EventLog> LogEvents<L> {
    /// Consumes from `log`.
    pub fn new(log: L) -> Self {
        Self {
            log: Arc::new(log),
            shared: Arc::default(),
        }
    }

    /// The log underneath.
    pub fn log(&self) -> &L {
        &self.log
    }

    fn published(&self, namespace: &str, topic: &str) -> watch::Sender<u64> {
        lock(&self.shared.topics)
            .entry((namespace.to_owned(), topic.to_owned()))
            .or_insert_with(|| watch::channel(0).0)
            .clone()
    }

    /// The command channel of a group's actor, starting the actor if none runs.
    fn group(
        &self,
        namespace: &str,
        topic: &str,
        group: &str,
        durable: bool,
    ) -> Result<mpsc::UnboundedSender<Command>, Error> {
        let published = self.published(namespace, topic).subscribe();
        let mut groups = lock(&self.shared.groups);
        groups.retain(|_, tx| !tx.is_closed());
        let key = (namespace.to_owned(), topic.to_owned(), group.to_owned());
        // A durable group's actor stays for the group's next consumer: bound how many there are.
        if groups.len() >= MAX_GROUPS && !groups.contains_key(&key) {
            return Err(Error::new(
                ID,
                429,
                format!(
                    "the platform runs {MAX_GROUPS} consumer groups, the most it may; reuse a group name"
                ),
            ));
        }
        Ok(groups
            .entry(key)
            .or_insert_with(|| {
                let (tx, commands) = mpsc::unbounded_channel();
                let actor = Group {
                    log: self.log.clone(),
                    namespace: namespace.to_owned(),
                    topic: topic.to_owned(),
                    name: group.to_owned(),
                    durable,
                    options: None,
                    cursor: 1,
                    pending: BTreeMap::new(),
                    consumers: Vec::new(),
                    turn: 0,
                    commands,
                    published,
                };
                tokio::spawn(actor.run());
                tx
            })
            .clone())
    }

    async fn settle(
        &self,
        namespace: &str,
        topic: &str,
        group: &str,
        id: &str,
        ack: bool,
    ) -> Result<(), Error> {
        let sender = lock(&self.shared.groups)
            .get(&(namespace.to_owned(), topic.to_owned(), group.to_owned()))
            .cloned();
        let Some(sender) = sender else {
            return Err(Error::not_found(
                ID,
                format!("no consumer of group {group:?} on topic {topic:?}: consume before acking"),
            ));
        };
        let (reply, answer) = oneshot::channel();
        sender
            .send(Command::Settle {
                id: id.to_owned(),
                ack,
                reply,
            })
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

fn gone() -> Error {
    Error::not_found(ID, "the consumer group stopped: consume again")
}

#[async_trait]
impl<L: EventLog> Events for LogEvents<L> {
    async fn publish(
        &self,
        namespace: &str,
        topic: &str,
        payload: Vec<u8>,
        metadata: BTreeMap<String, String>,
    ) -> Result<Event, Error> {
        check_topic(ID, topic)?;
        let event = self
            .log
            .append(namespace, topic, payload, metadata, SystemTime::now())
            .await?;
        self.published(namespace, topic)
            .send_replace(event.sequence);
        Ok(event)
    }

    async fn consume(
        &self,
        namespace: &str,
        topic: &str,
        options: ConsumeOptions,
    ) -> Result<Consumer, Error> {
        check_topic(ID, topic)?;
        let (name, durable) = options.group_name(ID)?;
        let (sink, events) = mpsc::channel(CONSUMER_BUFFER);
        let (reply, answer) = oneshot::channel();
        self.group(namespace, topic, &name, durable)?
            .send(Command::Join {
                sink,
                options,
                reply,
            })
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())??;
        Ok(Consumer {
            group: name,
            events: Box::pin(ReceiverStream::new(events)),
        })
    }

    async fn ack(&self, namespace: &str, topic: &str, group: &str, id: &str) -> Result<(), Error> {
        self.settle(namespace, topic, group, id, true).await
    }

    async fn nack(&self, namespace: &str, topic: &str, group: &str, id: &str) -> Result<(), Error> {
        self.settle(namespace, topic, group, id, false).await
    }

    async fn topics(&self, namespace: &str) -> Result<Vec<String>, Error> {
        self.log.topics(namespace).await
    }
}

/// A delivered, unacked event.
struct Pending {
    /// Known once delivered by this process (a position loaded from storage has none yet).
    id: Option<String>,
    deliveries: u32,
    due: Instant,
}

/// One consumer group's actor.
struct Group<L> {
    log: Arc<L>,
    namespace: String,
    topic: String,
    name: String,
    durable: bool,
    /// The first consumer's options; `None` until the group has its position.
    options: Option<ConsumeOptions>,
    cursor: u64,
    pending: BTreeMap<u64, Pending>,
    consumers: Vec<Sink>,
    turn: usize,
    commands: mpsc::UnboundedReceiver<Command>,
    published: watch::Receiver<u64>,
}

enum Wake {
    Command(Command),
    Stop,
    Work,
}

impl<L: EventLog> Group<L> {
    async fn run(mut self) {
        loop {
            if let Err(err) = self.pump().await {
                tracing::warn!(
                    topic = self.topic,
                    group = self.name,
                    "event delivery failed: {err}"
                );
                for consumer in self.consumers.drain(..) {
                    let _ = consumer.try_send(Err(err.clone()));
                }
            }
            let due = if self.consumers.is_empty() {
                None
            } else {
                self.pending.values().map(|p| p.due).min()
            };
            let alone = (!self.durable)
                .then(|| self.consumers.first().cloned())
                .flatten();
            let wake = tokio::select! {
                command = self.commands.recv() => command.map_or(Wake::Stop, Wake::Command),
                changed = self.published.changed() => if changed.is_ok() { Wake::Work } else { Wake::Stop },
                () = sleep_until(due), if due.is_some() => Wake::Work,
                () = closed(alone.as_ref()), if alone.is_some() => Wake::Stop,
            };
            match wake {
                Wake::Command(command) => self.handle(command).await,
                Wake::Work => {}
                Wake::Stop => return,
            }
        }
    }

    async fn handle(&mut self, command: Command) {
        match command {
            Command::Join {
                sink,
                options,
                reply,
            } => {
                let joined = match self.options {
                    Some(_) => Ok(()),
                    None => self.start(options).await,
                };
                if joined.is_ok() {
                    self.consumers.push(sink);
                }
                let _ = reply.send(joined);
            }
            Command::Settle { id, ack, reply } => {
                let seq = self
                    .pending
                    .iter()
                    .find(|(_, p)| p.id.as_deref() == Some(id.as_str()))
                    .map(|(seq, _)| *seq);
                let result = match seq {
                    None => Ok(()),
                    Some(seq) if ack => {
                        self.pending.remove(&seq);
                        self.save().await
                    }
                    Some(seq) => {
                        if let Some(p) = self.pending.get_mut(&seq) {
                            p.due = Instant::now();
                        }
                        Ok(())
                    }
                };
                let _ = reply.send(result);
            }
        }
    }

    /// Finds the group's position: stored, else from the first consumer's offset.
    async fn start(&mut self, options: ConsumeOptions) -> Result<(), Error> {
        let (ns, topic) = (&self.namespace, &self.topic);
        let stored = if self.durable {
            self.log.load_group(ns, topic, &self.name).await?
        } else {
            None
        };
        match stored {
            Some(state) => {
                self.cursor = state.cursor.max(1);
                let now = Instant::now();
                self.pending = state
                    .pending
                    .into_iter()
                    .map(|(seq, deliveries)| {
                        (
                            seq,
                            Pending {
                                id: None,
                                deliveries,
                                due: now,
                            },
                        )
                    })
                    .collect();
            }
            None => {
                self.cursor = match options.offset {
                    Offset::Latest => self.log.last_sequence(ns, topic).await? + 1,
                    Offset::Sequence(n) => n.max(1),
                    Offset::Time(t) => self.log.seek_time(ns, topic, t).await?,
                };
            }
        }
        self.options = Some(options);
        self.save().await
    }

    /// Delivers what is due and what is new, as far as consumers take it.
    async fn pump(&mut self) -> Result<(), Error> {
        let Some(options) = self.options.clone() else {
            return Ok(());
        };
        if self.consumers.is_empty() {
            return Ok(());
        }
        let mut changed = false;
        let now = Instant::now();
        let due: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.due <= now)
            .map(|(seq, _)| *seq)
            .collect();
        for seq in due {
            // Settled while an earlier delivery waited for room.
            let Some(deliveries) = self.pending.get(&seq).map(|p| p.deliveries) else {
                continue;
            };
            if options.retry_limit.is_some_and(|limit| deliveries > limit) {
                self.pending.remove(&seq);
                changed = true;
                continue;
            }
            let event = self.log.read(&self.namespace, &self.topic, seq, 1).await?;
            let Some(event) = event.into_iter().find(|e| e.sequence == seq) else {
                self.pending.remove(&seq);
                changed = true;
                continue;
            };
            let id = event.id.clone();
            if !self.deliver(event).await {
                break;
            }
            if let Some(p) = self.pending.get_mut(&seq) {
                p.id = Some(id);
                p.deliveries += 1;
                p.due = Instant::now() + options.ack_wait;
            }
            changed = true;
        }
        'fresh: while !self.consumers.is_empty() && self.pending.len() < MAX_UNACKED {
            // Never more unacked than the bound, not even by part of a batch.
            let room = BATCH.min(MAX_UNACKED - self.pending.len());
            let batch = self
                .log
                .read(&self.namespace, &self.topic, self.cursor, room)
                .await?;
            if batch.is_empty() {
                break;
            }
            for event in batch {
                let (seq, id) = (event.sequence, event.id.clone());
                if !self.deliver(event).await {
                    break 'fresh;
                }
                self.cursor = seq + 1;
                changed = true;
                if !options.auto_ack {
                    let due = Instant::now() + options.ack_wait;
                    self.pending.insert(
                        seq,
                        Pending {
                            id: Some(id),
                            deliveries: 1,
                            due,
                        },
                    );
                }
            }
        }
        if changed {
            self.save().await?;
        }
        Ok(())
    }

    /// Hands `event` to the next consumer in turn; `false` when none is left.
    ///
    /// While that consumer's channel is full, commands are still handled: a consumer that acks
    /// an event before it reads the next waits for the ack's answer, and would otherwise wait
    /// for this task while this task waits for it.
    async fn deliver(&mut self, event: Event) -> bool {
        let mut commands_open = true;
        while !self.consumers.is_empty() {
            let i = self.turn % self.consumers.len();
            let sink = self.consumers[i].clone();
            let room = loop {
                let wake = tokio::select! {
                    room = sink.reserve() => Ok(room),
                    command = self.commands.recv(), if commands_open => Err(command),
                };
                match wake {
                    Ok(room) => break room,
                    Err(Some(command)) => self.handle(command).await,
                    Err(None) => commands_open = false,
                }
            };
            if let Ok(room) = room {
                room.send(Ok(event));
                // Where the consumer was: commands may have changed the list meanwhile.
                self.turn = self
                    .consumers
                    .iter()
                    .position(|c| c.same_channel(&sink))
                    .map_or(i, |at| at + 1);
                return true;
            }
            self.consumers.retain(|c| !c.same_channel(&sink));
        }
        false
    }

    async fn save(&self) -> Result<(), Error> {
        if !self.durable {
            return Ok(());
        }
        let state = GroupState {
            cursor: self.cursor,
            pending: self
                .pending
                .iter()
                .map(|(seq, p)| (*seq, p.deliveries))
                .collect(),
        };
        self.log
            .save_group(&self.namespace, &self.topic, &self.name, &state)
            .await
    }
}

async fn sleep_until(due: Option<Instant>) {
    if let Some(due) = due {
        tokio::time::sleep_until(due).await;
    }
}

async fn closed(sink: Option<&Sink>) {
    match sink {
        Some(sink) => sink.closed().await,
        None => std::future::pending().await,
    }
}
