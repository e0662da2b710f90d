//! Durable events, for services: [`Events`] publishes and consumes in the service's namespace;
//! [`RemoteEvents`] is the events trait over the server's `micro.events.Events` service.
//!
//! ```no_run
//! # async fn f() -> Result<(), micro::Error> {
//! use futures::StreamExt;
//! use micro::core::events::ConsumeOptions;
//! let events = micro::events::Events::from_env()?;
//! events.publish("signups", br#"{"user":"ada"}"#.to_vec()).await?;
//! let options = ConsumeOptions { group: Some("mailer".into()), auto_ack: false, ..Default::default() };
//! let mut consumer = events.consume("signups", options).await?;
//! while let Some(Ok(event)) = consumer.events.next().await {
//!     events.ack(&consumer, &event).await?;
//! }
//! # Ok(()) }
//! ```

use std::{collections::BTreeMap, sync::Arc};

use async_trait::async_trait;
use futures::StreamExt;
use micro_core::{
    Error,
    events::{self as core, ConsumeOptions, Consumer, Event},
};
use micro_proto::events::{self as pb, events_client::EventsClient};
use tonic::transport::Channel;

use crate::{
    convert::events::{event_from_pb, options_to_pb},
    env::Env,
    namespaced::Namespaced,
    remote::Connection,
};

const ID: &str = "micro.events";

/// Durable events in one namespace.
pub type Events = Namespaced<dyn core::Events>;

impl Events {
    /// The events of the server of `MICRO_SERVER_ADDRESS`, in `MICRO_NAMESPACE`.
    pub fn from_env() -> Result<Self, Error> {
        let env = Env::read();
        Ok(Self::new(
            Arc::new(RemoteEvents::new(&env.server_address)?),
            &env.namespace,
        ))
    }

    /// Events in memory, for tests.
    pub fn memory() -> Self {
        Self::new(Arc::new(core::memory()), "micro")
    }

    /// Appends `payload` to `topic`; stored durably when this returns.
    pub async fn publish(&self, topic: &str, payload: Vec<u8>) -> Result<Event, Error> {
        self.publish_with(topic, payload, BTreeMap::new()).await
    }

    /// Appends `payload` with `metadata` to `topic`; the metadata carries the current trace
    /// (`traceparent`, see [`crate::trace`]), which a consumer continues with
    /// [`crate::trace::consumer_span`].
    pub async fn publish_with(
        &self,
        topic: &str,
        payload: Vec<u8>,
        mut metadata: BTreeMap<String, String>,
    ) -> Result<Event, Error> {
        crate::trace::inject_message(&mut metadata);
        self.backend()
            .publish(self.namespace(), topic, payload, metadata)
            .await
    }

    /// Consumes `topic`.
    pub async fn consume(&self, topic: &str, options: ConsumeOptions) -> Result<Consumer, Error> {
        self.backend()
            .consume(self.namespace(), topic, options)
            .await
    }

    /// Acks `event`, delivered to `consumer`.
    pub async fn ack(&self, consumer: &Consumer, event: &Event) -> Result<(), Error> {
        self.backend()
            .ack(self.namespace(), &event.topic, &consumer.group, &event.id)
            .await
    }

    /// Nacks `event`: it is delivered again at once.
    pub async fn nack(&self, consumer: &Consumer, event: &Event) -> Result<(), Error> {
        self.backend()
            .nack(self.namespace(), &event.topic, &consumer.group, &event.id)
            .await
    }
}

/// The events service of a micro server.
#[derive(Debug, Clone)]
pub struct RemoteEvents {
    conn: Connection,
    client: EventsClient<Channel>,
}

impl RemoteEvents {
    /// The events of the server at `address`; connects on first use.
    pub fn new(address: &str) -> Result<Self, Error> {
        Ok(Self::over(Connection::lazy(address)?))
    }

    /// The events over an existing connection.
    pub fn over(conn: Connection) -> Self {
        Self {
            client: EventsClient::new(conn.channel())
                .max_decoding_message_size(micro_core::limits::MAX_MESSAGE),
            conn,
        }
    }
}

impl RemoteEvents {
    /// Acks (or nacks) event `id` of `group`.
    async fn settle(
        &self,
        namespace: &str,
        topic: &str,
        group: &str,
        id: &str,
        ack: bool,
    ) -> Result<(), Error> {
        let mut client = self.client.clone();
        let msg = pb::AckRequest {
            topic: topic.to_owned(),
            group: group.to_owned(),
            id: id.to_owned(),
        };
        self.conn
            .call(ID, namespace, msg, |req| async move {
                if ack {
                    client.ack(req).await
                } else {
                    client.nack(req).await
                }
            })
            .await
            .map(drop)
    }
}

/// A consumer's events from the server's stream, its failures as platform errors.
fn deliveries(conn: Connection, stream: tonic::Streaming<pb::Event>) -> core::Deliveries {
    Box::pin(stream.map(move |item| match item {
        Ok(event) => Ok(event_from_pb(event)),
        Err(status) => Err(conn.error(ID, &status)),
    }))
}

impl RemoteEvents {
    /// Joins the group on the server: the group's name and its stream of events.
    async fn join(
        &self,
        namespace: &str,
        topic: &str,
        options: &ConsumeOptions,
    ) -> Result<(String, tonic::Streaming<pb::Event>), Error> {
        let mut client = self.client.clone();
        let msg = options_to_pb(topic, options);
        let mut stream = self
            .conn
            .call(ID, namespace, msg, |req| client.consume(req))
            .await?;
        // The server's first message names the group and says the consumer has joined.
        match stream
            .message()
            .await
            .map_err(|s| self.conn.error(ID, &s))?
        {
            Some(hello) => Ok((hello.group, stream)),
            None => Err(Error::unavailable(
                ID,
                "the server ended the consumer at once",
            )),
        }
    }
}

#[async_trait]
impl core::Events for RemoteEvents {
    async fn publish(
        &self,
        namespace: &str,
        topic: &str,
        payload: Vec<u8>,
        metadata: BTreeMap<String, String>,
    ) -> Result<Event, Error> {
        let mut client = self.client.clone();
        let msg = pb::PublishRequest {
            topic: topic.to_owned(),
            payload,
            metadata: metadata.into_iter().collect(),
        };
        let rsp = self
            .conn
            .call(ID, namespace, msg, |req| client.publish(req))
            .await?;
        rsp.event
            .map(event_from_pb)
            .ok_or_else(|| Error::internal(ID, "the server answered without the event"))
    }

    async fn consume(
        &self,
        namespace: &str,
        topic: &str,
        options: ConsumeOptions,
    ) -> Result<Consumer, Error> {
        let (group, first) = self.join(namespace, topic, &options).await?;
        let first = deliveries(self.conn.clone(), first);
        if !self.conn.address().contains(',') || options.group.is_none() {
            return Ok(Consumer {
                group,
                events: first,
            });
        }
        // Several servers and a durable group: when the server serving the consumer goes, join
        // the group again through another; the group's position (and its unacked events, after
        // ack_wait) are kept by the engine.
        let (events, namespace, topic) = (self.clone(), namespace.to_owned(), topic.to_owned());
        let again = futures::stream::unfold(options, move |options| {
            let (events, namespace, topic) = (events.clone(), namespace.clone(), topic.clone());
            async move {
                loop {
                    tokio::time::sleep(crate::failover::PROBE_INTERVAL * 2).await;
                    match events.join(&namespace, &topic, &options).await {
                        Ok((_, stream)) => {
                            return Some((deliveries(events.conn.clone(), stream), options));
                        }
                        Err(e) if e.code == 503 => {
                            tracing::warn!("consuming {topic:?} again: {e}");
                        }
                        Err(e) => {
                            tracing::warn!("consuming {topic:?} refused: {e}");
                            return None;
                        }
                    }
                }
            }
        });
        let events = futures::stream::once(async move { first })
            .chain(again)
            .flatten()
            // A server going away is not the consumer's end here: it joins again.
            .filter(|item| futures::future::ready(!matches!(item, Err(e) if e.code == 503)));
        Ok(Consumer {
            group,
            events: Box::pin(events),
        })
    }

    async fn ack(&self, namespace: &str, topic: &str, group: &str, id: &str) -> Result<(), Error> {
        self.settle(namespace, topic, group, id, true).await
    }

    async fn nack(&self, namespace: &str, topic: &str, group: &str, id: &str) -> Result<(), Error> {
        self.settle(namespace, topic, group, id, false).await
    }

    async fn topics(&self, namespace: &str) -> Result<Vec<String>, Error> {
        let mut client = self.client.clone();
        self.conn
            .call(ID, namespace, pb::TopicsRequest {}, |req| async move {
                client.topics(req).await
            })
            .await
            .map(|answer: pb::TopicsResponse| answer.topics)
    }
}
