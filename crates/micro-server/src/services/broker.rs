//! The `broker` platform service: `micro.broker.Broker` over any [`Broker`].

use std::{pin::Pin, sync::Arc};

use futures::{Stream, StreamExt};
use micro::{
    broker::{message_from_pb, message_to_pb},
    status::into_status,
};
use micro_core::{broker::Broker, limits};

const ID: &str = "micro.broker";
use micro_proto::broker::{self as pb, broker_server};
use tonic::{Request, Response, Status};

use crate::namespace;

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
    }
}

type MessageStream = Pin<Box<dyn Stream<Item = Result<pb::Message, Status>> + Send>>;

#[tonic::async_trait]
impl broker_server::Broker for BrokerService {
    async fn publish(
        &self,
        req: Request<pb::PublishRequest>,
    ) -> Result<Response<pb::PublishResponse>, Status> {
        let ns = namespace::of(&req).map_err(into_status)?;
        let body = req.into_inner();
        let message = message_from_pb(body.message.unwrap_or_default());
        limits::value(ID, "message body", message.body.len()).map_err(into_status)?;
        limits::metadata(ID, message.header.iter()).map_err(into_status)?;
        self.broker
            .publish(&ns, &body.topic, message)
            .await
            .map_err(into_status)?;
        Ok(Response::new(pb::PublishResponse {}))
    }

    type SubscribeStream = MessageStream;

    async fn subscribe(
        &self,
        req: Request<pb::SubscribeRequest>,
    ) -> Result<Response<MessageStream>, Status> {
        let ns = namespace::of(&req).map_err(into_status)?;
        let body = req.into_inner();
        let queue = (!body.queue.is_empty()).then_some(body.queue.as_str());
        if let Some(queue) = queue {
            limits::name(ID, "queue name", queue).map_err(into_status)?;
        }
        let messages = self
            .broker
            .subscribe(&ns, &body.topic, queue)
            .await
            .map_err(into_status)?;
        Ok(Response::new(Box::pin(
            messages.map(|m| Ok(message_to_pb(m))),
        )))
    }
}
