//! The handler: plain tonic, nothing Micro-specific.

use std::pin::Pin;

use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use crate::pb::{self, helloworld_server};

/// Most responses one `Stream` call may ask for.
const MAX_STREAM: i64 = 1000;

/// Implements `helloworld.Helloworld`.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Helloworld;

#[tonic::async_trait]
impl helloworld_server::Helloworld for Helloworld {
    async fn call(&self, request: Request<pb::Request>) -> Result<Response<pb::Response>, Status> {
        let name = request.into_inner().name;
        tracing::info!("Received Helloworld.Call request for {name}");
        Ok(Response::new(pb::Response {
            msg: format!("Hello {name}"),
        }))
    }

    type StreamStream = Pin<Box<dyn Stream<Item = Result<pb::StreamingResponse, Status>> + Send>>;

    async fn stream(
        &self,
        request: Request<pb::StreamingRequest>,
    ) -> Result<Response<Self::StreamStream>, Status> {
        let count = request.into_inner().count;
        if !(0..=MAX_STREAM).contains(&count) {
            return Err(Status::invalid_argument(format!(
                "count must be between 0 and {MAX_STREAM}, got {count}"
            )));
        }
        tracing::info!("Received Helloworld.Stream request for {count} responses");
        let items = (0..count).map(|count| Ok(pb::StreamingResponse { count }));
        Ok(Response::new(Box::pin(tokio_stream::iter(items))))
    }

    type PingPongStream = Pin<Box<dyn Stream<Item = Result<pb::Pong, Status>> + Send>>;

    async fn ping_pong(
        &self,
        request: Request<Streaming<pb::Ping>>,
    ) -> Result<Response<Self::PingPongStream>, Status> {
        let pings = request.into_inner();
        let pongs = pings.map(|ping| ping.map(|p| pb::Pong { stroke: p.stroke }));
        Ok(Response::new(Box::pin(pongs)))
    }
}
