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

use std::{
    collections::{BTreeSet, HashMap},
    sync::Mutex,
    time::{Duration, Instant},
};

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

/// How long a path's service, found by its proto service, is remembered.
const RESOLVED_FOR: Duration = Duration::from_secs(1);

/// The most resolutions remembered (then the memory starts over).
const RESOLVED_CAP: usize = 1024;

/// Recent answers to "which service registers this proto service in this namespace", so a
/// stream of calls without a `micro-service` header reads the registry once a second, not once
/// a call. Errors are not remembered.
#[derive(Default)]
pub(crate) struct Resolutions {
    recent: Mutex<HashMap<(String, String), (Instant, String)>>,
}

impl Resolutions {
    /// The remembered service for `grpc_service` in `namespace`, if still fresh at `now`.
    pub(crate) fn get(&self, namespace: &str, grpc_service: &str, now: Instant) -> Option<String> {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent
            .get(&(namespace.to_owned(), grpc_service.to_owned()))
            .filter(|(at, _)| now.saturating_duration_since(*at) < RESOLVED_FOR)
            .map(|(_, service)| service.clone())
    }

    /// Remembers `service` for `grpc_service` in `namespace`, as of `now`.
    pub(crate) fn put(&self, namespace: &str, grpc_service: &str, service: &str, now: Instant) {
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if recent.len() >= RESOLVED_CAP {
            recent.clear();
        }
        recent.insert(
            (namespace.to_owned(), grpc_service.to_owned()),
            (now, service.to_owned()),
        );
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

/// Who registers a proto service in a namespace.
#[derive(Debug, PartialEq, Eq)]
enum Registrants {
    /// Nobody.
    None,
    /// Exactly this service.
    One(String),
    /// These services (more than one).
    Several(Vec<String>),
}

fn registrants(services: &[micro_core::Service], grpc_service: &str) -> Registrants {
    let names: BTreeSet<&str> = services
        .iter()
        .filter(|s| registers(s, grpc_service))
        .map(|s| s.name.as_str())
        .collect();
    let mut names: Vec<String> = names.into_iter().map(str::to_owned).collect();
    match names.len() {
        0 => Registrants::None,
        1 => Registrants::One(names.remove(0)),
        _ => Registrants::Several(names),
    }
}

fn none_registers(grpc_service: &str, namespace: &str) -> Error {
    Error::not_found(
        ID,
        format!(
            "no service in namespace {namespace:?} registers {grpc_service}; name one with the {SERVICE_HEADER} header"
        ),
    )
}

/// Several services register `grpc_service`; `shown` are those the caller may call (the rest
/// are not named to it).
fn several_register(grpc_service: &str, namespace: &str, shown: &[String]) -> Error {
    let which = if shown.is_empty() {
        String::new()
    } else {
        format!(" ({}, ...)", shown.join(", "))
    };
    Error::bad_request(
        ID,
        format!(
            "several services register {grpc_service} in namespace {namespace:?}{which}; name one with the {SERVICE_HEADER} header"
        ),
    )
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
            registrants(&one, "helloworld.Helloworld"),
            Registrants::One("helloworld".into())
        );
        assert_eq!(registrants(&one, "other.Other"), Registrants::None);
        let two = [
            service("helloworld", "helloworld.Helloworld"),
            service("relay", "helloworld.Helloworld"),
            service("helloworld", "helloworld.Helloworld"),
        ];
        assert_eq!(
            registrants(&two, "helloworld.Helloworld"),
            Registrants::Several(vec!["helloworld".into(), "relay".into()])
        );
        let err = several_register("helloworld.Helloworld", "micro", &[]);
        assert!(
            !err.detail.contains("relay"),
            "names nothing the caller may not call"
        );
    }

    #[test]
    fn resolutions_are_remembered_for_a_second() {
        let resolutions = Resolutions::default();
        let now = Instant::now();
        resolutions.put("micro", "helloworld.Helloworld", "helloworld", now);
        assert_eq!(
            resolutions.get(
                "micro",
                "helloworld.Helloworld",
                now + Duration::from_millis(999)
            ),
            Some("helloworld".into())
        );
        assert_eq!(
            resolutions.get("micro", "helloworld.Helloworld", now + RESOLVED_FOR),
            None
        );
        assert_eq!(resolutions.get("team", "helloworld.Helloworld", now), None);
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
