//! The platform's services by name: the name each registers under (`store`, `auth`, ...) and
//! the gRPC services it serves. The one table every part that treats the platform's services
//! apart reads — the records `micro server` registers, the guard's resources, the registry
//! refusing the names to others, the proxy's choice of namespace and token, the gateway's
//! routes.

/// The platform services: registry name and gRPC services.
pub(crate) const PLATFORM_SERVICES: &[(&str, &[&str])] = &[
    ("registry", &["micro.registry.Registry"]),
    ("store", &["micro.store.Store"]),
    ("config", &["micro.config.Config"]),
    ("broker", &["micro.broker.Broker"]),
    ("events", &["micro.events.Events"]),
    ("runtime", &["micro.runtime.Runtime"]),
    (
        "auth",
        &["micro.auth.Auth", "micro.auth.Accounts", "micro.auth.Rules"],
    ),
];

/// Whether `name` is one of the platform's services.
pub(crate) fn is_platform_service(name: &str) -> bool {
    PLATFORM_SERVICES
        .iter()
        .any(|(platform, _)| *platform == name)
}

/// gRPC service → registered name, for the auth guard's resources.
pub(crate) fn grpc_names() -> std::collections::HashMap<String, String> {
    PLATFORM_SERVICES
        .iter()
        .flat_map(|(name, services)| {
            services
                .iter()
                .map(|s| ((*s).to_owned(), (*name).to_owned()))
        })
        .collect()
}
