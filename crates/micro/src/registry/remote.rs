//! [`RemoteRegistry`]: the [`Registry`] trait over the server's `micro.registry.Registry` gRPC
//! service. Services and the CLI use it; the namespace rides as `micro-namespace` metadata.

use std::time::Duration;

use futures::StreamExt;
use micro_core::{Error, Registry, Service, Watcher};
use micro_proto::registry::{self as pb, registry_client::RegistryClient};
use tonic::transport::Channel;

use crate::convert::registry::{event_from_pb, service_from_pb, service_to_pb};
use crate::remote::Connection;

const ID: &str = "micro.registry";

/// A registry that lives in a micro server.
#[derive(Debug, Clone)]
pub struct RemoteRegistry {
    conn: Connection,
    client: RegistryClient<Channel>,
}

impl RemoteRegistry {
    /// A registry at `address` (`host:port`). The connection is made on first use, so a service
    /// may start before its server.
    pub fn new(address: &str) -> Result<Self, Error> {
        Ok(Self::over(Connection::lazy(address)?))
    }

    /// A registry over an existing channel to the server at `address`.
    pub fn from_channel(channel: Channel, address: &str) -> Self {
        Self::over(Connection::from_channel(channel, address))
    }

    /// A registry over an existing connection.
    pub fn over(conn: Connection) -> Self {
        Self {
            client: RegistryClient::new(conn.channel()),
            conn,
        }
    }

    /// The server address.
    pub fn address(&self) -> &str {
        self.conn.address()
    }

    async fn request<T>(&self, namespace: &str, msg: T) -> Result<tonic::Request<T>, Error> {
        self.conn.request(namespace, msg).await
    }

    fn error(&self, status: &tonic::Status) -> Error {
        self.conn.error(ID, status)
    }
}

#[async_trait::async_trait]
impl Registry for RemoteRegistry {
    async fn register(
        &self,
        namespace: &str,
        service: &Service,
        ttl: Duration,
    ) -> Result<(), Error> {
        let msg = pb::RegisterRequest {
            service: Some(service_to_pb(service)),
            ttl_ms: u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX),
        };
        let req = self.request(namespace, msg).await?;
        self.client
            .clone()
            .register(req)
            .await
            .map_err(|s| self.error(&s))?;
        Ok(())
    }

    async fn deregister(&self, namespace: &str, service: &Service) -> Result<(), Error> {
        let req = self
            .request(
                namespace,
                pb::DeregisterRequest {
                    service: Some(service_to_pb(service)),
                },
            )
            .await?;
        self.client
            .clone()
            .deregister(req)
            .await
            .map_err(|s| self.error(&s))?;
        Ok(())
    }

    async fn get_service(&self, namespace: &str, name: &str) -> Result<Vec<Service>, Error> {
        let req = self
            .request(
                namespace,
                pb::GetServiceRequest {
                    service: name.to_owned(),
                },
            )
            .await?;
        let rsp = self
            .client
            .clone()
            .get_service(req)
            .await
            .map_err(|s| self.error(&s))?;
        Ok(rsp
            .into_inner()
            .services
            .into_iter()
            .map(service_from_pb)
            .collect())
    }

    async fn list_services(&self, namespace: &str) -> Result<Vec<Service>, Error> {
        let req = self.request(namespace, pb::ListServicesRequest {}).await?;
        let rsp = self
            .client
            .clone()
            .list_services(req)
            .await
            .map_err(|s| self.error(&s))?;
        Ok(rsp
            .into_inner()
            .services
            .into_iter()
            .map(service_from_pb)
            .collect())
    }

    async fn watch(&self, namespace: &str, service: Option<&str>) -> Result<Watcher, Error> {
        let req = self
            .request(
                namespace,
                pb::WatchRequest {
                    service: service.unwrap_or_default().to_owned(),
                },
            )
            .await?;
        let stream = self
            .client
            .clone()
            .watch(req)
            .await
            .map_err(|s| self.error(&s))?
            .into_inner();
        let conn = self.conn.clone();
        Ok(Box::pin(stream.filter_map(move |item| {
            let out = match item {
                Ok(rsp) => event_from_pb(rsp).map(Ok),
                Err(status) => Some(Err(conn.error(ID, &status))),
            };
            futures::future::ready(out)
        })))
    }
}
