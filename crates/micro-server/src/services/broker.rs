//! The `broker` platform service: `micro.broker.Broker` over any [`Broker`].

use std::{pin::Pin, sync::Arc};

use futures::{Stream, StreamExt};
use micro::{
    convert::broker::{message_from_pb, message_to_pb},
    status::into_status,
};
use micro_core::{Error, broker::Broker, limits};

const ID: &str = "micro.broker";
use micro_proto::broker::{self as pb, broker_server};
use tonic::{Request, Response, Status};

use super::answer::{answer, answer_stream};
use crate::{
    auth::guard::{RECHECK_EVERY, Recheck},
    namespace,
    stopping::Stopping,
};

/// The messages a publish stream may hold unanswered before it stops reading: enough to keep
/// a pipeline full, few enough to bound a caller's memory here.
const STREAM_WINDOW: usize = 1024;

/// Serves a broker over gRPC.
#[derive(Clone)]
pub struct BrokerService {
    broker: Arc<dyn Broker>,
}

impl BrokerService {
    /// Serves `broker`.
    pub fn new(broker: Arc<dyn Broker>) -> Self {
        Self { broker }
    }

    /// The tonic server for this service.
    pub fn into_server(self) -> broker_server::BrokerServer<Self> {
        broker_server::BrokerServer::new(self)
            .max_decoding_message_size(micro_core::limits::MAX_MESSAGE)
    }
}

type MessageStream = Pin<Box<dyn Stream<Item = Result<pb::Message, Status>> + Send>>;
type AckStream = Pin<Box<dyn Stream<Item = Result<pb::PublishAck, Status>> + Send>>;

impl BrokerService {
    /// Checks and publishes one message.
    async fn publish_one(&self, ns: &str, body: pb::PublishRequest) -> Result<(), Error> {
        let message = message_from_pb(body.message.unwrap_or_default());
        limits::value(ID, "message body", message.body.len())?;
        limits::metadata(ID, message.header.iter())?;
        self.broker.publish(ns, &body.topic, message).await
    }
}

#[tonic::async_trait]
impl broker_server::Broker for BrokerService {
    async fn publish(
        &self,
        req: Request<pb::PublishRequest>,
    ) -> Result<Response<pb::PublishResponse>, Status> {
        answer(req, namespace::of, |ns, body| async move {
            self.publish_one(&ns, body).await?;
            Ok(pb::PublishResponse {})
        })
        .await
    }

    type PublishStreamStream = AckStream;

    /// Each message is published in the order it came and answered in that order; one that
    /// fails is answered with its error and the stream goes on. The caller is checked again
    /// every second, busy or idle: once it may no longer publish, the stream ends with that
    /// error.
    async fn publish_stream(
        &self,
        req: Request<tonic::Streaming<pb::PublishRequest>>,
    ) -> Result<Response<AckStream>, Status> {
        // The caller is checked again by the stream's own loop (idle or not); the server's
        // stop ends its answers at once, as any long call's.
        let stopping = Stopping::of(&req);
        let admit = |req: &Request<_>| Ok((namespace::of(req)?, Recheck::of(req)));
        let acks = answer(req, admit, |(ns, recheck), requests| async move {
            Ok(self.publish_stream_of(ns, recheck, requests))
        })
        .await?
        .into_inner();
        Ok(Response::new(Stopping::end(stopping, acks, into_status)))
    }

    type SubscribeStream = MessageStream;

    async fn subscribe(
        &self,
        req: Request<pb::SubscribeRequest>,
    ) -> Result<Response<MessageStream>, Status> {
        answer_stream(req, namespace::of, |ns, body| async move {
            let queue = (!body.queue.is_empty()).then_some(body.queue.as_str());
            if let Some(queue) = queue {
                limits::name(ID, "queue name", queue)?;
            }
            let messages = self.broker.subscribe(&ns, &body.topic, queue).await?;
            let stream: MessageStream = Box::pin(messages.map(|m| Ok(message_to_pb(m))));
            Ok(stream)
        })
        .await
    }
}

impl BrokerService {
    /// Publishes what comes on `requests` in `ns` (see `publish_stream`), asking `recheck`
    /// again every second.
    fn publish_stream_of(
        &self,
        ns: String,
        recheck: Option<Recheck>,
        requests: tonic::Streaming<pb::PublishRequest>,
    ) -> AckStream {
        let service = self.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(STREAM_WINDOW);
        tokio::spawn(async move {
            let mut requests = requests;
            let mut recheck_due = tokio::time::interval(RECHECK_EVERY);
            recheck_due.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // The first tick is at once: the guard has just checked.
            recheck_due.tick().await;
            loop {
                let body = tokio::select! {
                    next = requests.next() => match next {
                        Some(Ok(body)) => body,
                        // The client is done, or gone.
                        Some(Err(_)) | None => return,
                    },
                    _ = recheck_due.tick(), if recheck.is_some() => {
                        if let Some(Err(e)) = match &recheck {
                            Some(recheck) => Some(recheck.again().await),
                            None => None,
                        } {
                            let _ = tx.send(Err(into_status(e))).await;
                            return;
                        }
                        continue;
                    }
                    () = tx.closed() => return,
                };
                let ack = match service.publish_one(&ns, body).await {
                    Ok(()) => pb::PublishAck::default(),
                    Err(e) => pb::PublishAck {
                        code: u32::from(e.code),
                        detail: e.detail,
                    },
                };
                if tx.send(Ok(ack)).await.is_err() {
                    return;
                }
            }
        });
        Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
    }
}
