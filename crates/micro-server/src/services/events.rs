//! The `events` platform service: `micro.events.Events` over any [`Events`] engine.
//!
//! A consumer's stream opens with one message that carries only the group's name (generated for
//! a consumer without a group), which also says the consumer has joined; events follow.

use std::{pin::Pin, sync::Arc};

use futures::{Stream, StreamExt};
use micro::{
    events::{event_to_pb, options_from_pb},
    status::into_status,
};
use micro_core::{events::Events, limits};

const ID: &str = "micro.events";
use micro_proto::events::{self as pb, events_server};
use tonic::{Request, Response, Status};

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
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::Event, Status>> + Send>>;

#[tonic::async_trait]
impl events_server::Events for EventsService {
    async fn publish(
        &self,
        req: Request<pb::PublishRequest>,
    ) -> Result<Response<pb::PublishResponse>, Status> {
        let ns = namespace::of(&req).map_err(into_status)?;
        let body = req.into_inner();
        limits::value(ID, "payload", body.payload.len()).map_err(into_status)?;
        limits::metadata(ID, body.metadata.iter()).map_err(into_status)?;
        let event = self
            .events
            .publish(
                &ns,
                &body.topic,
                body.payload,
                body.metadata.into_iter().collect(),
            )
            .await
            .map_err(into_status)?;
        Ok(Response::new(pb::PublishResponse {
            event: Some(event_to_pb(event, "")),
        }))
    }

    type ConsumeStream = EventStream;

    async fn consume(
        &self,
        req: Request<pb::ConsumeRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let ns = namespace::of(&req).map_err(into_status)?;
        let body = req.into_inner();
        limits::duration_ms(ID, "ack_wait", body.ack_wait_ms, limits::MAX_DURATION)
            .map_err(into_status)?;
        if let Some(group) = (!body.group.is_empty()).then_some(&body.group) {
            limits::name(ID, "group name", group).map_err(into_status)?;
        }
        let consumer = self
            .events
            .consume(&ns, &body.topic, options_from_pb(&body))
            .await
            .map_err(into_status)?;
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
        Ok(Response::new(Box::pin(
            futures::stream::once(async { Ok(hello) }).chain(events),
        )))
    }

    async fn ack(&self, req: Request<pb::AckRequest>) -> Result<Response<pb::AckResponse>, Status> {
        let ns = namespace::of(&req).map_err(into_status)?;
        let body = req.into_inner();
        self.events
            .ack(&ns, &body.topic, &body.group, &body.id)
            .await
            .map_err(into_status)?;
        Ok(Response::new(pb::AckResponse {}))
    }

    async fn nack(
        &self,
        req: Request<pb::AckRequest>,
    ) -> Result<Response<pb::AckResponse>, Status> {
        let ns = namespace::of(&req).map_err(into_status)?;
        let body = req.into_inner();
        self.events
            .nack(&ns, &body.topic, &body.group, &body.id)
            .await
            .map_err(into_status)?;
        Ok(Response::new(pb::AckResponse {}))
    }
}
