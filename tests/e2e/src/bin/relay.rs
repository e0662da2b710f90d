//! `relay`: a helloworld that asks helloworld. `Helloworld.Call` publishes the name on broker
//! topic `relayed` (which relay itself subscribes to, logging each message), then passes the
//! request to the `helloworld` service through `micro::Client` and answers what it said; the
//! other methods are not served. The trace test runs it as the third process of one call
//! (`micro call` → `micro server` → relay → helloworld, and relay → broker → relay).

use std::pin::Pin;

use micro_e2e::helloworld::{self as pb, helloworld_client::HelloworldClient, helloworld_server};
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

struct Relay {
    client: micro::Client,
    broker: micro::broker::Broker,
}

type Boxed<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl helloworld_server::Helloworld for Relay {
    async fn call(&self, request: Request<pb::Request>) -> Result<Response<pb::Response>, Status> {
        {
            // A span of the handler's own, as a user's `#[instrument]` makes: a child of the
            // call's, kept or not with it.
            let _note = tracing::info_span!("relay.note").entered();
            tracing::info!("relaying a call to helloworld");
        }
        let name = request.get_ref().name.clone();
        self.broker
            .publish("relayed", micro::core::broker::Message::new(name))
            .await
            .map_err(micro::status::into_status)?;
        HelloworldClient::new(self.client.service("helloworld"))
            .call(request.into_inner())
            .await
    }

    type StreamStream = Boxed<pb::StreamingResponse>;

    async fn stream(
        &self,
        _: Request<pb::StreamingRequest>,
    ) -> Result<Response<Self::StreamStream>, Status> {
        Err(Status::unimplemented("relay relays Call only"))
    }

    type PingPongStream = Boxed<pb::Pong>;

    async fn ping_pong(
        &self,
        _: Request<Streaming<pb::Ping>>,
    ) -> Result<Response<Self::PingPongStream>, Status> {
        Err(Status::unimplemented("relay relays Call only"))
    }
}

#[tokio::main]
async fn main() {
    let run = async {
        let relay = Relay {
            client: micro::Client::from_env()?,
            broker: micro::broker::Broker::from_env()?,
        };
        micro::Service::new("relay")
            .descriptors(pb::DESCRIPTORS)
            .handle(helloworld_server::HelloworldServer::new(relay))
            .subscribe("relayed", None, |message| async move {
                tracing::info!(
                    "consumed a relayed message: {}",
                    String::from_utf8_lossy(&message.body)
                );
            })
            .run()
            .await
    };
    if let Err(e) = run.await {
        eprintln!("relay: {e}");
        std::process::exit(1);
    }
}
