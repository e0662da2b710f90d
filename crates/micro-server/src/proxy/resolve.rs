//! Resolution: (namespace, service, endpoint) → the gRPC path and the request and response
//! descriptors. The registry (through the namespace's [`micro::Client`] and its cache) says
//! which versions exist and which endpoints they registered; the service's own reflection
//! (cached) supplies the descriptors to transcode with.
//!
//! What can go wrong is an [`Unresolved`], mapped to the platform's error in one place, so a
//! door that treats one case apart (the gateway's path convention, on an unknown endpoint)
//! matches a variant instead of an error's text.

use std::str::FromStr;

use http::uri::PathAndQuery;
use micro_core::{Error, Service, metadata::ENDPOINT_GRPC_SERVICE, naming};
use prost_reflect::MethodDescriptor;

use super::ProxyService;

const ID: &str = "micro.proxy";

/// An endpoint ready to call.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The endpoint resolved (`Service.Method`): the one asked for, or the one the
    /// [`Fallback`] found.
    pub endpoint: String,
    /// `/<package>.<Service>/<Method>`.
    pub path: PathAndQuery,
    /// Request and response descriptors.
    pub method: MethodDescriptor,
}

/// What to try when the service has no endpoint of the name asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// Nothing: the name is exact (the proxy, `google.api.http` rules).
    Exact,
    /// The service's only proto service, with the method asked for: the gateway's
    /// `/helloworld/call` reaches `Greeter.Call` when `Greeter` is all helloworld serves.
    OnlyProtoService,
}

/// Why an endpoint did not resolve.
#[derive(Debug)]
pub enum Unresolved {
    /// No service of that name is registered in the namespace.
    NoService {
        /// The service asked for.
        service: String,
    },
    /// The service registered no such endpoint.
    NoEndpoint {
        /// The service.
        service: String,
        /// The endpoint asked for.
        endpoint: String,
        /// The endpoints it has, sorted.
        offered: Vec<String>,
    },
    /// The service's reflection has no such method (it registered more than it serves).
    NoMethod {
        /// The service.
        service: String,
        /// The endpoint registered for it (`Service.Method`).
        endpoint: String,
        /// `pkg.Service/Method`.
        method: String,
    },
    /// The endpoint's name makes no gRPC path.
    BadName {
        /// The endpoint asked for.
        endpoint: String,
        /// Why.
        why: String,
    },
    /// The registry or the service's reflection failed.
    Failed(Error),
}

impl Unresolved {
    /// The endpoint the resolution got to before it failed, when it found one registered.
    pub fn endpoint(&self) -> Option<&str> {
        match self {
            Self::NoMethod { endpoint, .. } | Self::BadName { endpoint, .. } => Some(endpoint),
            _ => None,
        }
    }
}

impl From<Unresolved> for Error {
    fn from(unresolved: Unresolved) -> Self {
        match unresolved {
            Unresolved::NoService { service } => {
                Error::not_found(ID, format!("Service \"{service}\" not found"))
            }
            Unresolved::NoEndpoint {
                service,
                endpoint,
                offered,
            } => Error::not_found(
                ID,
                format!(
                    "Endpoint \"{endpoint}\" not found on service \"{service}\"; it has: {}",
                    if offered.is_empty() {
                        "no endpoints".to_owned()
                    } else {
                        offered.join(", ")
                    }
                ),
            ),
            Unresolved::NoMethod {
                service, method, ..
            } => Error::not_found(
                ID,
                format!("service \"{service}\" serves no method {method}"),
            ),
            Unresolved::BadName { endpoint, why } => Error::bad_request(
                ID,
                format!("endpoint {endpoint:?} does not make a gRPC path: {why}"),
            ),
            Unresolved::Failed(e) => e,
        }
    }
}

impl ProxyService {
    /// Finds `endpoint` (`Service.Method`) of `service` in `namespace` and its descriptors,
    /// trying `fallback` when the service has no endpoint of that name. The registry is asked
    /// once, whichever name is found.
    pub async fn resolve(
        &self,
        namespace: &str,
        service: &str,
        endpoint: &str,
        fallback: Fallback,
    ) -> Result<Resolved, Unresolved> {
        let client = self.client_for(namespace, service);
        let versions = client.lookup(service).await.map_err(|e| {
            if e.code == 404 {
                Unresolved::NoService {
                    service: service.to_owned(),
                }
            } else {
                Unresolved::Failed(e)
            }
        })?;
        let found = registered(&versions, endpoint).or_else(|| match fallback {
            Fallback::Exact => None,
            Fallback::OnlyProtoService => only_proto_service(&versions, endpoint)
                .and_then(|other| registered(&versions, &other)),
        });
        let Some((version, endpoint, grpc_service)) = found else {
            let mut offered: Vec<String> = versions
                .iter()
                .flat_map(|v| v.endpoints.iter().map(|e| e.name.clone()))
                .collect();
            offered.sort_unstable();
            offered.dedup();
            return Err(Unresolved::NoEndpoint {
                service: service.to_owned(),
                endpoint: endpoint.to_owned(),
                offered,
            });
        };
        let (_, method_name) = endpoint.split_once('.').unwrap_or(("", &endpoint));
        let pool = self
            .descriptors()
            .get(&client, namespace, version, &grpc_service)
            .await
            .map_err(Unresolved::Failed)?;
        let method = pool
            .get_service_by_name(&grpc_service)
            .and_then(|s| s.methods().find(|m| m.name() == method_name))
            .ok_or_else(|| Unresolved::NoMethod {
                service: service.to_owned(),
                endpoint: endpoint.clone(),
                method: format!("{grpc_service}/{method_name}"),
            })?;
        let path =
            PathAndQuery::from_str(&format!("/{grpc_service}/{method_name}")).map_err(|e| {
                Unresolved::BadName {
                    endpoint: endpoint.clone(),
                    why: e.to_string(),
                }
            })?;
        Ok(Resolved {
            endpoint,
            path,
            method,
        })
    }
}

/// The version registering `endpoint`, the endpoint's name, and its gRPC service (`pkg.Svc`).
pub(crate) fn registered<'a>(
    versions: &'a [Service],
    endpoint: &str,
) -> Option<(&'a Service, String, String)> {
    let (version, registered) = versions
        .iter()
        .find_map(|v| v.endpoint(endpoint).map(|e| (v, e)))?;
    let grpc_service = match registered.metadata.get(ENDPOINT_GRPC_SERVICE) {
        Some(s) => s.clone(),
        None => {
            // Registered without our metadata: the package from node metadata, else none.
            let package = version
                .nodes
                .iter()
                .find_map(|n| n.metadata.get(micro_core::metadata::NODE_PACKAGE))
                .map(|p| format!("{p}."))
                .unwrap_or_default();
            format!(
                "{package}{}",
                endpoint.split_once('.').map_or(endpoint, |(s, _)| s)
            )
        }
    };
    Some((version, endpoint.to_owned(), grpc_service))
}

/// `X.Method` for the service's only proto service `X`, if it registers exactly one.
fn only_proto_service(versions: &[Service], endpoint: &str) -> Option<String> {
    let (_, method) = endpoint.split_once('.')?;
    match naming::proto_services(versions.iter().flat_map(|v| &v.endpoints)).as_slice() {
        [only] => Some(format!("{only}.{}", naming::title(method))),
        _ => None,
    }
}
