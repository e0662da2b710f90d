//! The greeter: a service that uses the platform, not just the network.
//!
//! - **config**: the greeting is `greeting` in the namespace's config (default `Hello`); a
//!   watcher picks up `micro config set greeting hi` without a restart and logs it.
//! - **store**: greetings per name are counted in the service's table.
//! - **events**: each greeting is published, durably, on topic `greetings`.
//! - **broker**: it logs every message on topic `announcements` (queue `greeter`, so several
//!   instances share them).

use std::sync::{Arc, RwLock};

use futures::StreamExt;
use tonic::{Request, Response, Status};

/// Code generated from `proto/greeter.proto`.
pub mod pb {
    #![expect(missing_docs, reason = "generated code")]
    micro::include_proto!("greeter");
}

const NAME: &str = "greeter";

/// The handler: the platform clients and the current greeting.
struct Greeter {
    greeting: Arc<RwLock<String>>,
    store: micro::store::Store,
    events: micro::events::Events,
}

#[tonic::async_trait]
impl pb::greeter_server::Greeter for Greeter {
    async fn greet(
        &self,
        req: Request<pb::GreetRequest>,
    ) -> Result<Response<pb::GreetResponse>, Status> {
        let name = req.into_inner().name;
        if name.is_empty() {
            return Err(Status::invalid_argument("name is required"));
        }
        let key = format!("count/{name}");
        let count = match self.store.read(&key).await {
            Ok(bytes) => String::from_utf8_lossy(&bytes).parse::<u64>().unwrap_or(0),
            Err(e) if e.code == 404 => 0,
            Err(e) => return Err(micro::status::into_status(e)),
        } + 1;
        self.store
            .write(&key, count.to_string().into_bytes())
            .await
            .map_err(micro::status::into_status)?;
        let greeting = self.greeting.read().map(|g| g.clone()).unwrap_or_default();
        let event = serde_json::json!({"name": name, "count": count}).to_string();
        self.events
            .publish("greetings", event.into_bytes())
            .await
            .map_err(micro::status::into_status)?;
        Ok(Response::new(pb::GreetResponse {
            msg: format!("{greeting} {name}"),
            count,
        }))
    }
}

/// Keeps `greeting` in step with the config, logging each change.
async fn watch_greeting(config: micro::config::Config, greeting: Arc<RwLock<String>>) {
    let mut changes = match config.watch("greeting").await {
        Ok(changes) => changes,
        Err(e) => {
            tracing::warn!("cannot watch the greeting: {e}");
            return;
        }
    };
    while let Some(change) = changes.next().await {
        let value = match change {
            Ok(Some(serde_json::Value::String(s))) => s,
            Ok(Some(other)) => other.to_string(),
            Ok(None) => "Hello".to_owned(),
            Err(e) => {
                tracing::warn!("config watch failed: {e}");
                return;
            }
        };
        tracing::info!("greeting is now {value:?}");
        if let Ok(mut g) = greeting.write() {
            *g = value;
        }
    }
}

async fn run() -> Result<(), micro::Error> {
    micro::init_tracing();
    let config = micro::config::Config::from_env()?;
    let greeting = Arc::new(RwLock::new(
        config.get("greeting", "Hello".to_owned()).await,
    ));
    tokio::spawn(watch_greeting(config, greeting.clone()));
    let handler = Greeter {
        greeting,
        store: micro::store::Store::from_env(NAME)?,
        events: micro::events::Events::from_env()?,
    };
    micro::Service::new(NAME)
        .descriptors(micro::include_descriptors!())
        .handle(pb::greeter_server::GreeterServer::new(handler))
        .subscribe("announcements", Some(NAME), |message| async move {
            tracing::info!("announcement: {}", String::from_utf8_lossy(&message.body));
        })
        .run()
        .await
}

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("greeter: {e}");
        std::process::exit(1);
    }
}
