//! The `config` platform service: `micro.config.Config` over any [`Config`], one document per
//! namespace. Values travel as JSON text.

use std::{pin::Pin, sync::Arc};

use futures::{Stream, StreamExt};
use micro::{config::parse_value, status::into_status};
use micro_core::{Error, config::Config};
use micro_proto::config::{self as pb, config_server};
use tonic::{Request, Response, Status};

use super::answer::{answer, answer_stream};
use crate::namespace;

/// Serves a config implementation over gRPC.
#[derive(Clone)]
pub struct ConfigService {
    config: Arc<dyn Config>,
}

impl ConfigService {
    /// Serves `config`.
    pub fn new(config: Arc<dyn Config>) -> Self {
        Self { config }
    }

    /// The tonic server for this service.
    pub fn into_server(self) -> config_server::ConfigServer<Self> {
        config_server::ConfigServer::new(self)
            .max_decoding_message_size(micro_core::limits::MAX_MESSAGE)
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchResponse, Status>> + Send>>;

/// Who may use config: an admin or a service of the namespace.
fn user<T>(req: &Request<T>) -> Result<String, Error> {
    namespace::user(req, "config")
}

#[tonic::async_trait]
impl config_server::Config for ConfigService {
    async fn get(&self, req: Request<pb::GetRequest>) -> Result<Response<pb::GetResponse>, Status> {
        answer(req, user, |ns, body| async move {
            let value = self.config.get(&ns, &body.path, body.secret).await?;
            Ok(pb::GetResponse {
                value: value.to_string(),
            })
        })
        .await
    }

    async fn set(&self, req: Request<pb::SetRequest>) -> Result<Response<pb::SetResponse>, Status> {
        answer(req, user, |ns, body| async move {
            let value = parse_value(&body.value)?;
            self.config.set(&ns, &body.path, value, body.secret).await?;
            Ok(pb::SetResponse {})
        })
        .await
    }

    async fn delete(
        &self,
        req: Request<pb::DeleteRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        answer(req, user, |ns, body| async move {
            self.config.delete(&ns, &body.path).await?;
            Ok(pb::DeleteResponse {})
        })
        .await
    }

    type WatchStream = WatchStream;

    async fn watch(&self, req: Request<pb::WatchRequest>) -> Result<Response<WatchStream>, Status> {
        answer_stream(req, user, |ns, body| async move {
            let changes = self.config.watch(&ns, &body.path, body.secret).await?;
            let changes: WatchStream = Box::pin(changes.map(|item| match item {
                Ok(Some(value)) => Ok(pb::WatchResponse {
                    value: value.to_string(),
                    exists: true,
                }),
                Ok(None) => Ok(pb::WatchResponse::default()),
                Err(e) => Err(into_status(e)),
            }));
            Ok(changes)
        })
        .await
    }
}
