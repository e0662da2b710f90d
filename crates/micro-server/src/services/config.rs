//! The `config` platform service: `micro.config.Config` over any [`Config`], one document per
//! namespace. Values travel as JSON text.

use std::{pin::Pin, sync::Arc};

use futures::{Stream, StreamExt};
use micro::{config::parse_value, status::into_status};
use micro_core::config::Config;
use micro_proto::config::{self as pb, config_server};
use tonic::{Request, Response, Status};

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
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl config_server::Config for ConfigService {
    async fn get(&self, req: Request<pb::GetRequest>) -> Result<Response<pb::GetResponse>, Status> {
        let ns = namespace::user(&req, "config").map_err(into_status)?;
        let body = req.into_inner();
        let value = self
            .config
            .get(&ns, &body.path, body.secret)
            .await
            .map_err(into_status)?;
        Ok(Response::new(pb::GetResponse {
            value: value.to_string(),
        }))
    }

    async fn set(&self, req: Request<pb::SetRequest>) -> Result<Response<pb::SetResponse>, Status> {
        let ns = namespace::user(&req, "config").map_err(into_status)?;
        let body = req.into_inner();
        let value = parse_value(&body.value).map_err(into_status)?;
        self.config
            .set(&ns, &body.path, value, body.secret)
            .await
            .map_err(into_status)?;
        Ok(Response::new(pb::SetResponse {}))
    }

    async fn delete(
        &self,
        req: Request<pb::DeleteRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let ns = namespace::user(&req, "config").map_err(into_status)?;
        self.config
            .delete(&ns, &req.into_inner().path)
            .await
            .map_err(into_status)?;
        Ok(Response::new(pb::DeleteResponse {}))
    }

    type WatchStream = WatchStream;

    async fn watch(&self, req: Request<pb::WatchRequest>) -> Result<Response<WatchStream>, Status> {
        let ns = namespace::user(&req, "config").map_err(into_status)?;
        let body = req.into_inner();
        let changes = self
            .config
            .watch(&ns, &body.path, body.secret)
            .await
            .map_err(into_status)?;
        Ok(Response::new(Box::pin(changes.map(|item| match item {
            Ok(Some(value)) => Ok(pb::WatchResponse {
                value: value.to_string(),
                exists: true,
            }),
            Ok(None) => Ok(pb::WatchResponse::default()),
            Err(e) => Err(into_status(e)),
        }))))
    }
}
