//! The transparent gRPC proxy (Micro's "remote first" proxy): a plain gRPC client pointed at
//! `micro server`'s gRPC address calls a service by the service's own method path, and the
//! server passes the call — unary or streaming, bytes untouched — to a node of that service.
//!
//! ```sh
//! grpcurl -plaintext -H 'micro-service: helloworld' -H "authorization: Bearer $TOKEN" \
//!     127.0.0.1:8081 helloworld.Helloworld/Call
//! ```
//!
//! - **Which service.** The `micro-service` header names it; without one, the service that
//!   registers the path's proto service (`helloworld.Helloworld`) in the caller's namespace,
//!   if exactly one does (none is a `NOT_FOUND`, several an `INVALID_ARGUMENT` naming them).
//! - **Who may.** The guard authenticated the caller; here the rules decide
//!   `service:NAME:Service.Method` in the caller's namespace, as for `micro call`. The service
//!   gets the caller's namespace and a token that opens it alone (never the caller's own), and
//!   no header a caller could use to pose as the platform.
//! - **What stays here.** The platform's own services, the JSON proxy and health are served by
//!   the server itself. Reflection is too, unless the call names a service: then it is the
//!   service's reflection, so `grpcurl` can list and describe it through the server.
//! - **Resilience.** The call goes through the proxy's `micro::Client` for the namespace:
//!   balancing, ejection, retries of calls never sent, deadlines from `grpc-timeout`.

mod layer;
mod service;

pub use layer::TransparentLayer;
pub use service::Transparent;

use std::collections::BTreeSet;

use micro_core::{
    Error,
    metadata::{ENDPOINT_GRPC_SERVICE, NODE_PACKAGE},
};

/// The header naming the service a transparent call is for.
pub const SERVICE_HEADER: &str = "micro-service";

const ID: &str = "micro.proxy";

/// The gRPC services the server answers itself, by full name.
#[derive(Debug, Clone, Default)]
pub struct Local(BTreeSet<String>);

impl Local {
    /// `services` (`micro.store.Store`, ...), and health and reflection.
    pub fn new(services: impl IntoIterator<Item = String>) -> Self {
        Self(services.into_iter().collect())
    }

    /// Whether a call of `grpc_service` stays here: a platform service, health, or
    /// reflection that names no service.
    pub fn serves(&self, grpc_service: &str, names_a_service: bool) -> bool {
        if grpc_service.starts_with("grpc.reflection.") {
            return !names_a_service;
        }
        grpc_service.starts_with("grpc.") || self.0.contains(grpc_service)
    }
}

/// Whether `service` registers the proto service `grpc_service`.
fn registers(service: &micro_core::Service, grpc_service: &str) -> bool {
    service.endpoints.iter().any(|e| {
        match e.metadata.get(ENDPOINT_GRPC_SERVICE) {
            Some(registered) => registered == grpc_service,
            // Registered without our metadata: the package from node metadata, else none.
            None => {
                let short = e.name.split_once('.').map_or(e.name.as_str(), |(s, _)| s);
                service.nodes.iter().any(|n| {
                    let package = n.metadata.get(NODE_PACKAGE).map(String::as_str);
                    match package {
                        Some(p) => format!("{p}.{short}") == grpc_service,
                        None => short == grpc_service,
                    }
                })
            }
        }
    })
}

/// The one service of `services` that registers `grpc_service`, or why there is none.
fn only_registrant(
    services: &[micro_core::Service],
    grpc_service: &str,
    namespace: &str,
) -> Result<String, Error> {
    let names: BTreeSet<&str> = services
        .iter()
        .filter(|s| registers(s, grpc_service))
        .map(|s| s.name.as_str())
        .collect();
    let mut names = names.into_iter();
    match (names.next(), names.next()) {
        (Some(one), None) => Ok(one.to_owned()),
        (None, _) => Err(Error::not_found(
            ID,
            format!(
                "no service in namespace {namespace:?} registers {grpc_service}; name one with the {SERVICE_HEADER} header"
            ),
        )),
        (Some(first), Some(second)) => {
            let all: Vec<&str> = [first, second].into_iter().chain(names).collect();
            Err(Error::bad_request(
                ID,
                format!(
                    "several services register {grpc_service} in namespace {namespace:?} ({}); name one with the {SERVICE_HEADER} header",
                    all.join(", ")
                ),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use micro_core::{Endpoint, Service};

    use super::*;

    fn service(name: &str, grpc_service: &str) -> Service {
        let mut s = Service::new(name, "latest");
        let mut endpoint = Endpoint::new("Helloworld.Call");
        endpoint
            .metadata
            .insert(ENDPOINT_GRPC_SERVICE.into(), grpc_service.into());
        s.endpoints.push(endpoint);
        s
    }

    #[test]
    fn the_path_names_a_service_only_when_exactly_one_registers_it() {
        let one = [service("helloworld", "helloworld.Helloworld")];
        assert_eq!(
            only_registrant(&one, "helloworld.Helloworld", "micro").unwrap(),
            "helloworld"
        );
        let none = only_registrant(&one, "other.Other", "micro").unwrap_err();
        assert_eq!(none.code, 404, "{none}");
        let two = [
            service("helloworld", "helloworld.Helloworld"),
            service("relay", "helloworld.Helloworld"),
            service("helloworld", "helloworld.Helloworld"),
        ];
        let err = only_registrant(&two, "helloworld.Helloworld", "micro").unwrap_err();
        assert_eq!(err.code, 400, "{err}");
        assert!(err.detail.contains("helloworld, relay"), "{err}");
    }

    #[test]
    fn platform_services_health_and_plain_reflection_stay_here() {
        let local = Local::new(["micro.store.Store".to_owned()]);
        assert!(local.serves("micro.store.Store", true));
        assert!(local.serves("grpc.health.v1.Health", true));
        assert!(local.serves("grpc.reflection.v1.ServerReflection", false));
        assert!(!local.serves("grpc.reflection.v1.ServerReflection", true));
        assert!(!local.serves("helloworld.Helloworld", false));
    }
}
