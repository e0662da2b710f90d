//! The `events` platform service: `micro.events.Events` over any [`Events`] engine.
//!
//! A consumer's stream opens with one message that carries only the group's name (generated for
//! a consumer without a group), which also says the consumer has joined; events follow.

use std::{pin::Pin, sync::Arc};

use futures::{Stream, StreamExt};
use micro::{
    convert::events::{event_to_pb, options_from_pb},
    status::into_status,
};
use micro_core::{events::Events, limits};

const ID: &str = "micro.events";
use micro_proto::events::{self as pb, events_server};
use tonic::{Request, Response, Status};

use super::answer::{answer, answer_stream};
use crate::namespace;

/// Serves an events engine over gRPC.
#[derive(Clone)]
pub struct EventsService {
    events: Arc<dyn Events>,
}

impl EventsService {
    /// Serves `events`.
    pub fn new(events: Arc<dyn Events>) -> Self {
        Self { events }
    }

    /// The tonic server for this service.
    pub fn into_server(self) -> events_server::EventsServer<Self> {
        events_server::EventsServer::new(self)
            .max_decoding_message_size(micro_core::limits::MAX_MESSAGE)
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::Event, Status>> + Send>>;

#[tonic::async_trait]
impl events_server::Events for EventsService {
    async fn publish(
        &self,
        req: Request<pb::PublishRequest>,
    ) -> Result<Response<pb::PublishResponse>, Status> {
        answer(req, namespace::of, |ns, body| async move {
            limits::value(ID, "payload", body.payload.len())?;
            limits::metadata(ID, body.metadata.iter())?;
            let metadata = body.metadata.into_iter().collect();
            let event = self
                .events
                .publish(&ns, &body.topic, body.payload, metadata)
                .await?;
            Ok(pb::PublishResponse {
                event: Some(event_to_pb(event, "")),
            })
        })
        .await
    }

    type ConsumeStream = EventStream;

    async fn consume(
        &self,
        req: Request<pb::ConsumeRequest>,
    ) -> Result<Response<EventStream>, Status> {
        answer_stream(req, namespace::of, |ns, body| async move {
            limits::duration_ms(ID, "ack_wait", body.ack_wait_ms, limits::MAX_DURATION)?;
            if let Some(group) = (!body.group.is_empty()).then_some(&body.group) {
                limits::name(ID, "group name", group)?;
            }
            let consumer = self
                .events
                .consume(&ns, &body.topic, options_from_pb(&body))
                .await?;
            let group = consumer.group.clone();
            let hello = pb::Event {
                topic: body.topic,
                group: group.clone(),
                ..Default::default()
            };
            let events = consumer.events.map(move |item| match item {
                Ok(event) => Ok(event_to_pb(event, &group)),
                Err(e) => Err(into_status(e)),
            });
            let stream: EventStream =
                Box::pin(futures::stream::once(async { Ok(hello) }).chain(events));
            Ok(stream)
        })
        .await
    }

    async fn ack(&self, req: Request<pb::AckRequest>) -> Result<Response<pb::AckResponse>, Status> {
        answer(req, namespace::of, |ns, body| async move {
            self.events
                .ack(&ns, &body.topic, &body.group, &body.id)
                .await?;
            Ok(pb::AckResponse {})
        })
        .await
    }

    async fn nack(
        &self,
        req: Request<pb::AckRequest>,
    ) -> Result<Response<pb::AckResponse>, Status> {
        answer(req, namespace::of, |ns, body| async move {
            self.events
                .nack(&ns, &body.topic, &body.group, &body.id)
                .await?;
            Ok(pb::AckResponse {})
        })
        .await
    }

    async fn topics(
        &self,
        req: Request<pb::TopicsRequest>,
    ) -> Result<Response<pb::TopicsResponse>, Status> {
        answer(req, namespace::of, |ns, _| async move {
            Ok(pb::TopicsResponse {
                topics: self.events.topics(&ns).await?,
            })
        })
        .await
    }
}
