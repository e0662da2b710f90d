//! The broker, for services: [`Broker`] publishes and subscribes in the service's namespace;
//! [`RemoteBroker`] is the broker trait over the server's `micro.broker.Broker` service.
//! Subscriptions that live as long as the service are declared on the builder with
//! [`Service::subscribe`](crate::Service::subscribe).

use std::sync::Arc;

use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use futures::StreamExt;
use micro_core::{
    Error,
    broker::{self as core, Message, Subscription},
};
use micro_proto::broker::{self as pb, broker_client::BrokerClient};
use tonic::transport::Channel;

use crate::{
    convert::broker::{message_from_pb, message_to_pb},
    env::Env,
    namespaced::Namespaced,
    remote::Connection,
};

mod pipe;

const ID: &str = "micro.broker";

/// Pub/sub in one namespace.
pub type Broker = Namespaced<dyn core::Broker>;

impl Broker {
    /// The broker of the server of `MICRO_SERVER_ADDRESS`, in `MICRO_NAMESPACE`.
    pub fn from_env() -> Result<Self, Error> {
        let env = Env::read();
        Ok(Self::new(
            Arc::new(RemoteBroker::new(&env.server_address)?),
            &env.namespace,
        ))
    }

    /// A broker in memory, for tests.
    pub fn memory() -> Self {
        Self::new(Arc::new(core::MemoryBroker::new()), "micro")
    }

    /// Publishes `message` to `topic`, carrying the current trace (see [`crate::trace`]).
    pub async fn publish(&self, topic: &str, mut message: Message) -> Result<(), Error> {
        crate::trace::inject_message(&mut message.header);
        self.backend()
            .publish(self.namespace(), topic, message)
            .await
    }

    /// Publishes `value` as JSON to `topic`.
    pub async fn publish_json<T: serde::Serialize>(
        &self,
        topic: &str,
        value: &T,
    ) -> Result<(), Error> {
        let body = serde_json::to_vec(value)
            .map_err(|e| Error::bad_request(ID, format!("cannot encode the message: {e}")))?;
        let mut message = Message::new(body);
        message
            .header
            .insert("content-type".into(), "application/json".into());
        self.publish(topic, message).await
    }

    /// Subscribes to `topic`, sharing its messages with the other members of `queue` if given.
    pub async fn subscribe(&self, topic: &str, queue: Option<&str>) -> Result<Subscription, Error> {
        self.backend()
            .subscribe(self.namespace(), topic, queue)
            .await
    }
}

/// The broker of a micro server.
#[derive(Debug, Clone)]
pub struct RemoteBroker {
    conn: Connection,
    client: BrokerClient<Channel>,
    pipes: pipe::Pipes,
}

impl RemoteBroker {
    /// The broker of the server at `address`; connects on first use.
    pub fn new(address: &str) -> Result<Self, Error> {
        Ok(Self::over(Connection::lazy(address)?))
    }

    /// The broker over an existing connection.
    pub fn over(conn: Connection) -> Self {
        Self {
            client: BrokerClient::new(conn.channel())
                .max_decoding_message_size(micro_core::limits::MAX_MESSAGE),
            conn,
            pipes: pipe::Pipes::default(),
        }
    }
}

#[async_trait]
impl core::Broker for RemoteBroker {
    /// Through the namespace's publish stream (see `pipe`), or one call when the server has
    /// none.
    async fn publish(&self, namespace: &str, topic: &str, message: Message) -> Result<(), Error> {
        let msg = pb::PublishRequest {
            topic: topic.to_owned(),
            message: Some(message_to_pb(message)),
        };
        // A large message gains nothing from sharing a stream, and one the server cannot take
        // at all must fail alone rather than break the stream under everyone's messages.
        let msg = if prost::Message::encoded_len(&msg) > pipe::LARGEST {
            msg
        } else {
            match self
                .pipes
                .publish(&self.conn, &self.client, namespace, msg)
                .await
            {
                pipe::Sent::Answered(result) => return result,
                pipe::Sent::Unsupported(msg) => msg,
            }
        };
        let mut client = self.client.clone();
        self.conn
            .call(ID, namespace, msg, |req| client.publish(req))
            .await?;
        Ok(())
    }

    async fn subscribe(
        &self,
        namespace: &str,
        topic: &str,
        queue: Option<&str>,
    ) -> Result<Subscription, Error> {
        let queue = queue.unwrap_or_default().to_owned();
        let first = self.open(namespace, topic, &queue).await?;
        let refused = Arc::new(AtomicBool::new(false));
        if !self.conn.address().contains(',') {
            return Ok(Box::pin(messages(first, refused)));
        }
        // Several servers: when the one serving the subscription goes, subscribe again through
        // another (messages published in between are lost, as a broker's are). A refusal (the
        // token revoked, say) ends the subscription instead.
        let (broker, namespace, topic) = (self.clone(), namespace.to_owned(), topic.to_owned());
        let again = {
            let refused = refused.clone();
            futures::stream::unfold((), move |()| {
                let (broker, namespace, topic, queue, refused) = (
                    broker.clone(),
                    namespace.clone(),
                    topic.clone(),
                    queue.clone(),
                    refused.clone(),
                );
                async move {
                    loop {
                        if refused.load(Ordering::SeqCst) {
                            return None;
                        }
                        tokio::time::sleep(crate::failover::PROBE_INTERVAL * 2).await;
                        match broker.open(&namespace, &topic, &queue).await {
                            Ok(stream) => {
                                return Some((messages(stream, refused.clone()), ()));
                            }
                            Err(e) if e.code == 503 => {
                                tracing::warn!("subscribing again to {topic:?}: {e}");
                            }
                            Err(e) => {
                                tracing::warn!("subscription to {topic:?} refused: {e}");
                                return None;
                            }
                        }
                    }
                }
            })
        };
        Ok(Box::pin(
            futures::stream::once(async move { messages(first, refused) })
                .chain(again)
                .flatten(),
        ))
    }
}

impl RemoteBroker {
    /// One subscription stream from the server.
    async fn open(
        &self,
        namespace: &str,
        topic: &str,
        queue: &str,
    ) -> Result<tonic::Streaming<pb::Message>, Error> {
        let mut client = self.client.clone();
        let msg = pb::SubscribeRequest {
            topic: topic.to_owned(),
            queue: queue.to_owned(),
        };
        self.conn
            .call(ID, namespace, msg, |req| client.subscribe(req))
            .await
    }
}

/// The messages of one subscription stream, until it ends or fails; `refused` is set when the
/// server ended it for a reason other than going away.
fn messages(
    stream: tonic::Streaming<pb::Message>,
    refused: Arc<AtomicBool>,
) -> impl futures::Stream<Item = Message> + Send {
    stream
        .take_while(move |item| {
            if let Err(status) = item {
                tracing::warn!("subscription ended: {}", status.message());
                if !matches!(
                    status.code(),
                    tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Internal
                ) {
                    refused.store(true, Ordering::SeqCst);
                }
            }
            futures::future::ready(item.is_ok())
        })
        .filter_map(|item| async move { item.ok().map(message_from_pb) })
}
