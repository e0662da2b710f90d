//! [`JetStreamEvents`]: the durable event log on NATS JetStream.
//!
//! One stream per (namespace, topic), bound to the subject `micro.events.NAMESPACE.TOPIC`, so
//! an event's stream sequence is its offset. A consumer group is a durable pull consumer: every
//! server consuming in the group pulls from the same consumer, and JetStream keeps the group's
//! position, redelivers after `ack_wait` and stops after `max_deliver`. A consumer without a
//! group is an ephemeral consumer deleted when it stops.
//!
//! Acks by id may arrive at any server, while only the server that delivered an event holds
//! what JetStream needs to ack it. So every server delivering in a group answers requests on
//! the core subject `micro.evack.STREAM.CONSUMER`; an ack or nack is such a request, answered
//! by whichever server holds that event (the one that received the ack, or another).

use std::{
    collections::{BTreeMap, HashMap, HashSet, VecDeque},
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use async_nats::{
    HeaderMap,
    jetstream::{
        self, AckKind,
        consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull},
        stream,
    },
};
use async_trait::async_trait;
use futures::{FutureExt, StreamExt};
use micro_core::{
    Error,
    broker::check_topic,
    events::{ConsumeOptions, Consumer, Event, Events, MAX_UNACKED, Offset},
};
use prost::Message as _;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::{Envelope, connect, digest_name, token};

const ID: &str = "micro.events";

/// Events a consumer may hold before it stops pulling.
const BUFFER: usize = 64;

/// Events a consumer acking by hand may hold before it stops pulling.
const MANUAL_WINDOW: usize = 8;

/// [`MAX_UNACKED`] as JetStream's `max_ack_pending`.
const MAX_ACK_PENDING: i64 = MAX_UNACKED as i64;

/// The most delivered, unacked events one consumer remembers for acks: the group's bound, and
/// room for events JetStream has since delivered again elsewhere.
const MAX_HELD: usize = 4 * MAX_UNACKED;

/// How long deliveries may keep failing before a consumer is taken to be gone.
const GIVE_UP_AFTER: Duration = Duration::from_secs(15 * 60);

/// Failures further apart than this are not one outage (with NATS away, a missed heartbeat
/// comes every two seconds).
const FAILURE_GAP: Duration = Duration::from_secs(10);

/// The most streams one listing of topics reads (JetStream cannot filter the list by subject;
/// past this many, the topics are those of the first streams).
const MAX_STREAMS_LISTED: usize = 10_000;

/// How often JetStream says a waiting pull is still there (the stream reports a miss after two).
const HEARTBEAT: Duration = Duration::from_secs(1);

/// How long one pull waits at JetStream before it is renewed.
const PULL_EXPIRES: Duration = Duration::from_secs(30);

/// How long an ephemeral consumer outlives a server that stopped pulling (a crash).
const EPHEMERAL_IDLE: Duration = Duration::from_secs(30);

/// The events of one delivering consumer, by id, until acked.
type Held = Arc<Mutex<HashMap<String, (Instant, jetstream::Message)>>>;

/// The event log on a nats-server with JetStream.
#[derive(Clone)]
pub struct JetStreamEvents {
    client: async_nats::Client,
    js: jetstream::Context,
    /// Streams known to exist, so a publish costs one round trip.
    streams: Arc<Mutex<HashSet<String>>>,
}

impl std::fmt::Debug for JetStreamEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JetStreamEvents")
    }
}

fn unavailable(e: impl std::fmt::Display) -> Error {
    Error::unavailable(ID, format!("JetStream: {e}"))
}

fn subject(namespace: &str, topic: &str) -> String {
    format!("micro.events.{}.{}", token(namespace), token(topic))
}

fn stream_name(namespace: &str, topic: &str) -> String {
    digest_name("MICRO", &[namespace, topic])
}

fn consumer_name(group: &str) -> String {
    digest_name("G", &[group])
}

fn settle_subject(stream: &str, consumer: &str) -> String {
    format!("micro.evack.{stream}.{consumer}")
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl JetStreamEvents {
    /// Connects to the comma-separated `addresses`.
    pub async fn connect(addresses: &str) -> Result<Self, Error> {
        Ok(Self::new(connect(ID, addresses).await?))
    }

    /// Events on a connection already made.
    pub fn new(client: async_nats::Client) -> Self {
        let js = jetstream::ContextBuilder::new()
            .timeout(super::TIMEOUT)
            .build(client.clone());
        Self {
            client,
            js,
            streams: Arc::default(),
        }
    }

    /// The stream of `topic`, created when missing.
    async fn stream(&self, namespace: &str, topic: &str) -> Result<stream::Stream, Error> {
        let name = stream_name(namespace, topic);
        let stream = self
            .js
            .get_or_create_stream(stream::Config {
                name: name.clone(),
                subjects: vec![subject(namespace, topic)],
                storage: stream::StorageType::File,
                ..stream::Config::default()
            })
            .await
            .map_err(unavailable)?;
        lock(&self.streams).insert(name);
        Ok(stream)
    }

    async fn append(
        &self,
        namespace: &str,
        topic: &str,
        envelope: &Envelope,
    ) -> Result<u64, Error> {
        let mut headers = HeaderMap::new();
        // JetStream drops a second publish of the same id: a retried publish stores one event.
        headers.insert("Nats-Msg-Id", envelope.id.as_str());
        let ack = self
            .js
            .publish_with_headers(
                subject(namespace, topic),
                headers,
                envelope.encode_to_vec().into(),
            )
            .await
            .map_err(unavailable)?
            .await
            .map_err(unavailable)?;
        Ok(ack.sequence)
    }

    async fn settle(
        &self,
        namespace: &str,
        topic: &str,
        group: &str,
        id: &str,
        ack: bool,
    ) -> Result<(), Error> {
        let stream = stream_name(namespace, topic);
        let consumer = consumer_name(group);
        let verb = if ack { "ack" } else { "nack" };
        match self
            .client
            .request(
                settle_subject(&stream, &consumer),
                format!("{verb} {id}").into(),
            )
            .await
        {
            Ok(reply) if reply.payload.as_ref() == b"ok" => Ok(()),
            Ok(reply) => Err(unavailable(format!(
                "JetStream refused the {verb}: {}",
                String::from_utf8_lossy(&reply.payload)
            ))),
            Err(e)
                if matches!(
                    e.kind(),
                    async_nats::RequestErrorKind::NoResponders
                        | async_nats::RequestErrorKind::TimedOut
                ) =>
            {
                Err(self.not_held(&stream, &consumer, group, id).await)
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Why no server took an ack: the group does not exist, or nobody holds that event.
    async fn not_held(&self, stream: &str, consumer: &str, group: &str, id: &str) -> Error {
        let exists = match self.js.get_stream(stream).await {
            Ok(s) => s.consumer_info(consumer).await.is_ok(),
            Err(_) => false,
        };
        if exists {
            Error::not_found(
                ID,
                format!("event {id:?} is not waiting for an ack in group {group:?}"),
            )
        } else {
            Error::not_found(
                ID,
                format!("no consumer of group {group:?} on this topic: consume before acking"),
            )
        }
    }
}

/// The event a JetStream message carries.
fn event(topic: &str, message: &jetstream::Message) -> Result<Event, Error> {
    let info = message.info().map_err(unavailable)?;
    let envelope = Envelope::decode(message.payload.clone())
        .map_err(|e| Error::internal(ID, format!("a stored event is damaged: {e}")))?;
    let nanos = u64::try_from(info.published.unix_timestamp_nanos()).unwrap_or(0);
    Ok(Event {
        id: envelope.id,
        topic: topic.to_owned(),
        sequence: info.stream_sequence,
        timestamp: UNIX_EPOCH + Duration::from_nanos(nanos),
        metadata: envelope.header,
        payload: envelope.body,
    })
}

fn deliver_policy(offset: Offset) -> DeliverPolicy {
    match offset {
        Offset::Latest => DeliverPolicy::New,
        Offset::Sequence(n) => DeliverPolicy::ByStartSequence {
            start_sequence: n.max(1),
        },
        Offset::Time(t) => {
            let nanos = t
                .duration_since(UNIX_EPOCH)
                .map(|d| i128::try_from(d.as_nanos()).unwrap_or(i128::MAX))
                .unwrap_or(0);
            match time::OffsetDateTime::from_unix_timestamp_nanos(nanos) {
                Ok(start_time) => DeliverPolicy::ByStartTime { start_time },
                Err(_) => DeliverPolicy::New,
            }
        }
    }
}

/// `consumer` with its group's bound set to [`MAX_ACK_PENDING`], the rest of its settings as
/// they were; `None` (and a warning) if JetStream refuses the change.
async fn raise_bound(stream: &stream::Stream, consumer: &PullConsumer) -> Option<PullConsumer> {
    use async_nats::jetstream::consumer::FromConsumer;
    let mut config = pull::Config::try_from_consumer_config(consumer.cached_info().config.clone())
        .map_err(|e| tracing::warn!(error = %e, "reading a JetStream consumer's settings"))
        .ok()?;
    config.max_ack_pending = MAX_ACK_PENDING;
    stream
        .update_consumer(config)
        .await
        .map_err(|e| tracing::warn!(error = %e, "raising a JetStream consumer's unacked bound"))
        .ok()
}

/// The deliveries of `consumer`, `window` at a time, with heartbeats to notice a lost pull.
async fn pull(consumer: &PullConsumer, window: usize) -> Result<pull::Stream, Error> {
    consumer
        .stream()
        .max_messages_per_batch(window)
        .heartbeat(HEARTBEAT)
        .expires(PULL_EXPIRES)
        .messages()
        .await
        .map_err(unavailable)
}

/// A fresh pull in place of `messages`, which missed JetStream's heartbeats: JetStream holds no
/// pull of ours, or this task was polled late. The stream's count of what it asked for can drift
/// (an answer counted before its request, under load), and then it would not ask again for
/// 35 s; a fresh stream asks at once. What the old one had already received goes to `drained`
/// first.
async fn renew(
    consumer: &PullConsumer,
    window: usize,
    messages: &mut pull::Stream,
    drained: &mut VecDeque<jetstream::Message>,
) {
    while let Some(Some(Ok(m))) = messages.next().now_or_never() {
        drained.push_back(m);
    }
    match pull(consumer, window).await {
        Ok(fresh) => *messages = fresh,
        Err(e) => tracing::debug!(error = %e, "JetStream re-pull"),
    }
}

/// Whether a consumer's deliveries have failed long enough to give up: failures less than
/// [`FAILURE_GAP`] apart are one outage, and one lasting [`GIVE_UP_AFTER`] ends the consumer.
/// Logic without I/O: the caller says when.
#[derive(Debug, Default)]
struct Outage {
    /// When the outage began, and when it last failed.
    failing: Option<(Instant, Instant)>,
}

impl Outage {
    /// A delivery came through: no outage.
    fn over(&mut self) {
        self.failing = None;
    }

    /// A delivery failed at `now`; whether to give up.
    fn failed(&mut self, now: Instant) -> bool {
        let since = match self.failing {
            Some((since, last)) if now.saturating_duration_since(last) < FAILURE_GAP => since,
            _ => now,
        };
        self.failing = Some((since, now));
        now.saturating_duration_since(since) >= GIVE_UP_AFTER
    }
}

/// Keeps `message` (event `id`, delivered `now`) for its ack. The map stays bounded: when full,
/// it lets go of what JetStream has redelivered by now (held past `ack_wait`), else of the
/// longest held (an event let go is redelivered after `ack_wait` anyway).
fn hold(
    held: &mut HashMap<String, (Instant, jetstream::Message)>,
    id: String,
    message: jetstream::Message,
    now: Instant,
    ack_wait: Duration,
) {
    if held.len() >= MAX_HELD {
        held.retain(|_, (at, _)| now.saturating_duration_since(*at) < ack_wait);
    }
    if held.len() >= MAX_HELD
        && let Some(oldest) = held
            .iter()
            .min_by_key(|(_, (at, _))| *at)
            .map(|(id, _)| id.clone())
    {
        held.remove(&oldest);
    }
    held.insert(id, (now, message));
}

/// Answers settle requests for the events `held` holds, until the consumer stops.
async fn answer_settles(
    mut requests: async_nats::Subscriber,
    client: async_nats::Client,
    held: Held,
) {
    while let Some(request) = requests.next().await {
        let Some(reply) = request.reply else { continue };
        let text = String::from_utf8_lossy(&request.payload);
        let Some((verb, id)) = text.split_once(' ') else {
            continue;
        };
        let message = lock(&held).get(id).map(|(_, message)| message.clone());
        // Only the holder answers; the others stay silent so the request waits for it.
        let Some(message) = message else { continue };
        let kind = if verb == "ack" {
            AckKind::Ack
        } else {
            AckKind::Nak(None)
        };
        // Confirmed by JetStream before the answer; kept for a retry when it fails.
        let answer = match message.double_ack_with(kind).await {
            Ok(()) => {
                lock(&held).remove(id);
                "ok".to_owned()
            }
            Err(e) => format!("error {e}"),
        };
        let _ = client.publish(reply, answer.into()).await;
    }
}

#[async_trait]
impl Events for JetStreamEvents {
    async fn publish(
        &self,
        namespace: &str,
        topic: &str,
        payload: Vec<u8>,
        metadata: BTreeMap<String, String>,
    ) -> Result<Event, Error> {
        check_topic(ID, topic)?;
        let name = stream_name(namespace, topic);
        if !lock(&self.streams).contains(&name) {
            self.stream(namespace, topic).await?;
        }
        let envelope = Envelope {
            header: metadata,
            body: payload,
            id: uuid::Uuid::new_v4().to_string(),
        };
        // JetStream stamps the event when it stores it, after this; an offset by this time
        // therefore includes the event (the servers' and the engine's clocks agreeing).
        let timestamp = SystemTime::now();
        let sequence = match self.append(namespace, topic, &envelope).await {
            Ok(sequence) => sequence,
            Err(_) => {
                // The stream may have been deleted behind the cache: make it and try once more.
                lock(&self.streams).remove(&name);
                self.stream(namespace, topic).await?;
                self.append(namespace, topic, &envelope).await?
            }
        };
        Ok(Event {
            id: envelope.id,
            topic: topic.to_owned(),
            sequence,
            timestamp,
            metadata: envelope.header,
            payload: envelope.body,
        })
    }

    async fn consume(
        &self,
        namespace: &str,
        topic: &str,
        options: ConsumeOptions,
    ) -> Result<Consumer, Error> {
        check_topic(ID, topic)?;
        let (group, durable) = options.group_name(ID)?;
        let stream = self.stream(namespace, topic).await?;
        let name = consumer_name(&group);
        let config = pull::Config {
            durable_name: durable.then(|| name.clone()),
            name: Some(name.clone()),
            description: Some(format!("micro group {group:?}")),
            deliver_policy: deliver_policy(options.offset),
            ack_policy: AckPolicy::Explicit,
            ack_wait: options.ack_wait,
            max_deliver: options
                .retry_limit
                .map_or(-1, |r| i64::from(r).saturating_add(1)),
            // JetStream holds back the group's deliveries past this many unacked.
            max_ack_pending: MAX_ACK_PENDING,
            inactive_threshold: if durable {
                Duration::ZERO
            } else {
                EPHEMERAL_IDLE
            },
            ..pull::Config::default()
        };
        // JetStream counts ack_wait from its delivery to this server, not to the consumer: with
        // manual acks, few events wait here, so none waits out its ack_wait unseen.
        let window = if options.auto_ack {
            BUFFER
        } else {
            MANUAL_WINDOW
        };
        let mut consumer: PullConsumer = stream
            .get_or_create_consumer(&name, config)
            .await
            .map_err(unavailable)?;
        if consumer.cached_info().config.max_ack_pending != MAX_ACK_PENDING {
            // A group made before the bound keeps the settings it was made with: raise it.
            consumer = raise_bound(&stream, &consumer).await.unwrap_or(consumer);
        }
        let mut messages = pull(&consumer, window).await?;
        let held: Held = Arc::default();
        let requests = self
            .client
            .subscribe(settle_subject(&stream_name(namespace, topic), &name))
            .await
            .map_err(unavailable)?;
        self.client.flush().await.map_err(unavailable)?;
        let settles = tokio::spawn(answer_settles(requests, self.client.clone(), held.clone()));

        let (sink, events) = mpsc::channel(window);
        let topic = topic.to_owned();
        let auto_ack = options.auto_ack;
        let ack_wait = options.ack_wait;
        let cleanup = (!durable).then(|| (stream.clone(), name.clone()));
        tokio::spawn(async move {
            let mut outage = Outage::default();
            // Events the stream had received when it was replaced: they go on first.
            let mut drained: VecDeque<jetstream::Message> = VecDeque::new();
            loop {
                let message = match drained.pop_front() {
                    Some(message) => message,
                    None => tokio::select! {
                        () = sink.closed() => break,
                        next = messages.next() => match next {
                            None => break,
                            Some(Ok(m)) => {
                                outage.over();
                                m
                            }
                            Some(Err(e)) => {
                                tracing::debug!(error = %e, "JetStream delivery");
                                if e.kind() == pull::MessagesErrorKind::MissingHeartbeat {
                                    renew(&consumer, window, &mut messages, &mut drained).await;
                                }
                                // Failing on and on, the consumer is gone: say so and end.
                                if outage.failed(Instant::now()) {
                                    let _ = sink
                                        .send(Err(unavailable(format!(
                                            "deliveries keep failing ({e}); consume again"
                                        ))))
                                        .await;
                                    break;
                                }
                                continue;
                            }
                        },
                    },
                };
                let delivered = match event(&topic, &message) {
                    Ok(event) => event,
                    Err(e) => {
                        tracing::warn!(error = %e, "skipping an undecodable event");
                        let _ = message.ack_with(AckKind::Term).await;
                        continue;
                    }
                };
                if auto_ack {
                    if let Err(e) = message.ack().await {
                        tracing::debug!(error = %e, "auto-ack");
                    }
                } else {
                    hold(
                        &mut lock(&held),
                        delivered.id.clone(),
                        message,
                        Instant::now(),
                        ack_wait,
                    );
                }
                if sink.send(Ok(delivered)).await.is_err() {
                    break;
                }
            }
            settles.abort();
            if let Some((stream, name)) = cleanup {
                let _ = stream.delete_consumer(&name).await;
            }
        });
        Ok(Consumer {
            group,
            events: Box::pin(ReceiverStream::new(events)),
        })
    }

    async fn ack(&self, namespace: &str, topic: &str, group: &str, id: &str) -> Result<(), Error> {
        self.settle(namespace, topic, group, id, true).await
    }

    async fn nack(&self, namespace: &str, topic: &str, group: &str, id: &str) -> Result<(), Error> {
        self.settle(namespace, topic, group, id, false).await
    }

    /// The streams bound to `micro.events.NAMESPACE.*` that ever held an event, their topics
    /// read back from the subject.
    async fn topics(&self, namespace: &str) -> Result<Vec<String>, Error> {
        let within = format!("micro.events.{}.", token(namespace));
        let mut topics = Vec::new();
        let mut streams = self.js.streams().take(MAX_STREAMS_LISTED);
        while let Some(info) = streams.next().await {
            let info = info.map_err(unavailable)?;
            if info.state.last_sequence == 0 {
                continue;
            }
            if let Some(topic) = info
                .config
                .subjects
                .iter()
                .find_map(|s| s.strip_prefix(&within))
                .and_then(untoken)
                // Only the streams this made: their names and subjects are what it would make.
                .filter(|topic| info.config.name == stream_name(namespace, topic))
            {
                topics.push(topic);
            }
        }
        topics.sort();
        topics.dedup();
        topics.truncate(micro_core::events::MAX_TOPICS);
        Ok(topics)
    }
}

/// The name [`token`] made `token` from; `None` for one it could not have made.
fn untoken(token: &str) -> Option<String> {
    let bytes = token.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let name = String::from_utf8(out).ok()?;
    (super::token(&name) == token).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_ends_the_consumer_only_once_it_has_lasted() {
        let start = Instant::now();
        let at = |secs: u64| start + Duration::from_secs(secs);
        let mut outage = Outage::default();
        // A miss every two seconds, as with NATS away: one outage, given up on at 15 minutes.
        let mut t = 0;
        while t < GIVE_UP_AFTER.as_secs() {
            assert!(!outage.failed(at(t)), "gave up at {t} s");
            t += 2;
        }
        assert!(outage.failed(at(t)));
        // Misses far apart (a quiet topic, a late poll) are never one outage.
        let mut outage = Outage::default();
        for n in 0..200 {
            assert!(!outage.failed(at(n * 60)));
        }
        // A delivery between failures ends the outage.
        let mut outage = Outage::default();
        assert!(!outage.failed(at(0)));
        outage.over();
        assert!(!outage.failed(at(GIVE_UP_AFTER.as_secs())));
    }
}
