//! The `registry` platform service: `micro.registry.Registry` over any [`Registry`] backend.

use std::{pin::Pin, sync::Arc};

use futures::{Stream, StreamExt};
use micro::{convert::registry as convert, status::into_status};
use micro_core::{Error, Registry, limits, metadata::ALL_NAMESPACES};
use micro_proto::registry::{self as pb, registry_server};
use tonic::{Request, Response, Status};

use super::answer::{answer, answer_stream};
use crate::namespace;

const ID: &str = "micro.registry";

/// Serves a registry backend over gRPC.
#[derive(Clone)]
pub struct RegistryService {
    registry: Arc<dyn Registry>,
}

impl RegistryService {
    /// Serves `registry`.
    pub fn new(registry: Arc<dyn Registry>) -> Self {
        Self { registry }
    }

    /// The tonic server for this service.
    pub fn into_server(self) -> registry_server::RegistryServer<Self> {
        registry_server::RegistryServer::new(self)
    }
}

/// Namespaces other than `list` must name one namespace.
fn one_ns<T>(req: &Request<T>) -> Result<String, Error> {
    let ns = namespace::of(req)?;
    if ns == ALL_NAMESPACES {
        return Err(Error::bad_request(
            ID,
            "`*` is only for listing services; name one namespace",
        ));
    }
    Ok(ns)
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl registry_server::Registry for RegistryService {
    async fn get_service(
        &self,
        req: Request<pb::GetServiceRequest>,
    ) -> Result<Response<pb::GetServiceResponse>, Status> {
        answer(req, one_ns, |ns, body| async move {
            if body.service.is_empty() {
                return Err(Error::bad_request(ID, "name the service to get"));
            }
            let services = self.registry.get_service(&ns, &body.service).await?;
            Ok(pb::GetServiceResponse {
                services: services.iter().map(convert::service_to_pb).collect(),
            })
        })
        .await
    }

    async fn register(
        &self,
        req: Request<pb::RegisterRequest>,
    ) -> Result<Response<pb::EmptyResponse>, Status> {
        answer(req, one_ns, |ns, body| async move {
            let service = body
                .service
                .map(convert::service_from_pb)
                .ok_or_else(|| Error::bad_request(ID, "register needs a service"))?;
            not_the_platforms(&service.name)?;
            let ttl = match body.ttl_ms {
                0 => micro::service::DEFAULT_TTL,
                ms => limits::duration_ms(ID, "ttl", ms, limits::MAX_DURATION)?,
            };
            self.registry.register(&ns, &service, ttl).await?;
            Ok(pb::EmptyResponse {})
        })
        .await
    }

    async fn deregister(
        &self,
        req: Request<pb::DeregisterRequest>,
    ) -> Result<Response<pb::EmptyResponse>, Status> {
        answer(req, one_ns, |ns, body| async move {
            let service = body
                .service
                .map(convert::service_from_pb)
                .ok_or_else(|| Error::bad_request(ID, "deregister needs a service"))?;
            not_the_platforms(&service.name)?;
            self.registry.deregister(&ns, &service).await?;
            Ok(pb::EmptyResponse {})
        })
        .await
    }

    async fn list_services(
        &self,
        req: Request<pb::ListServicesRequest>,
    ) -> Result<Response<pb::ListServicesResponse>, Status> {
        answer(req, namespace::of, |ns, _| async move {
            let services = self.registry.list_services(&ns).await?;
            Ok(pb::ListServicesResponse {
                services: services.iter().map(convert::service_to_pb).collect(),
            })
        })
        .await
    }

    type WatchStream = WatchStream;

    async fn watch(&self, req: Request<pb::WatchRequest>) -> Result<Response<WatchStream>, Status> {
        answer_stream(req, namespace::of, |ns, body| async move {
            let filter = (!body.service.is_empty()).then_some(body.service.as_str());
            let events = self.registry.watch(&ns, filter).await?;
            let stream: WatchStream = Box::pin(events.map(|item| match item {
                Ok(event) => Ok(pb::WatchResponse {
                    action: convert::action_to_str(event.action).to_owned(),
                    service: Some(convert::service_to_pb(&event.service)),
                }),
                Err(e) => Err(into_status(e)),
            }));
            Ok(stream)
        })
        .await
    }
}

/// Refuses the names of the platform's own services (`auth`, `store`, ...): a node registered
/// under one would be sent the platform's calls (and the secrets sent to `auth`).
fn not_the_platforms(name: &str) -> Result<(), Error> {
    if crate::services::names::is_platform_service(name) {
        return Err(Error::forbidden(
            ID,
            format!("the name {name:?} belongs to a platform service; choose another name"),
        ));
    }
    Ok(())
}
