//! [`NatsBroker`]: pub/sub on core NATS subjects `micro.broker.NAMESPACE.TOPIC` (each name one
//! escaped token), queue groups for shared subscriptions.

use async_trait::async_trait;
use futures::StreamExt;
use micro_core::{
    Error,
    broker::{Broker, Message, Subscription, check_topic},
};
use prost::Message as _;

use super::{Envelope, connect, token};

const ID: &str = "micro.broker";

/// The broker on a nats-server.
#[derive(Clone, Debug)]
pub struct NatsBroker {
    client: async_nats::Client,
}

fn subject(namespace: &str, topic: &str) -> String {
    format!("micro.broker.{}.{}", token(namespace), token(topic))
}

fn unavailable(e: impl std::fmt::Display) -> Error {
    Error::unavailable(ID, format!("NATS: {e}"))
}

impl NatsBroker {
    /// Connects to the comma-separated `addresses`.
    pub async fn connect(addresses: &str) -> Result<Self, Error> {
        Ok(Self {
            client: connect(ID, addresses).await?,
        })
    }

    /// A broker on a connection already made.
    pub fn new(client: async_nats::Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl Broker for NatsBroker {
    async fn publish(&self, namespace: &str, topic: &str, message: Message) -> Result<(), Error> {
        check_topic(ID, topic)?;
        let envelope = Envelope {
            header: message.header,
            body: message.body,
            ..Envelope::default()
        }
        .encode_to_vec();
        let limit = self.client.server_info().max_payload;
        if envelope.len() > limit {
            return Err(Error::bad_request(
                ID,
                format!(
                    "the message is {} bytes; this NATS server takes at most {limit}",
                    envelope.len()
                ),
            ));
        }
        // Core NATS is at most once: a message is handed to the connection, not confirmed.
        // While the connection is down, say so rather than queue it unseen.
        if self.client.connection_state() != async_nats::connection::State::Connected {
            return Err(Error::unavailable(ID, "NATS is unreachable: reconnecting"));
        }
        self.client
            .publish(subject(namespace, topic), envelope.into())
            .await
            .map_err(unavailable)
    }

    async fn subscribe(
        &self,
        namespace: &str,
        topic: &str,
        queue: Option<&str>,
    ) -> Result<Subscription, Error> {
        check_topic(ID, topic)?;
        let subject = subject(namespace, topic);
        let subscriber = match queue {
            Some(queue) => self.client.queue_subscribe(subject, token(queue)).await,
            None => self.client.subscribe(subject).await,
        }
        .map_err(unavailable)?;
        // The server has the subscription once it answers a ping sent after it.
        self.client.flush().await.map_err(unavailable)?;
        Ok(Box::pin(subscriber.filter_map(|m| async move {
            let envelope = Envelope::decode(m.payload).ok()?;
            Some(Message {
                header: envelope.header,
                body: envelope.body,
            })
        })))
    }
}
