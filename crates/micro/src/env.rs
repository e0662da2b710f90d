//! What a service reads from its environment (BEHAVIOR.md §6). `micro run` sets these; a service
//! started by hand gets the defaults.

use std::time::Duration;

use micro_core::metadata::{
    DEFAULT_NAMESPACE, DEFAULT_SERVER_ADDRESS, ENV_AUTH_ID, ENV_AUTH_SECRET, ENV_NAMESPACE,
    ENV_REGISTER_INTERVAL, ENV_REGISTER_TTL, ENV_SERVER_ADDRESS, ENV_SERVICE_ADDRESS,
    ENV_SERVICE_ID, ENV_SERVICE_NAME, ENV_SERVICE_VERSION,
};

/// The `MICRO_*` settings of this process.
#[derive(Debug, Clone)]
pub struct Env {
    /// `MICRO_SERVER_ADDRESS`, default `127.0.0.1:8081`.
    pub server_address: String,
    /// `MICRO_NAMESPACE`, default `micro`.
    pub namespace: String,
    /// `MICRO_SERVICE_ADDRESS`: the address to bind.
    pub service_address: Option<String>,
    /// `MICRO_SERVICE_NAME`: overrides the name in code.
    pub service_name: Option<String>,
    /// `MICRO_SERVICE_VERSION`: overrides the version in code.
    pub service_version: Option<String>,
    /// `MICRO_SERVICE_ID`: the node id to register with (default `name-uuid`).
    pub service_id: Option<String>,
    /// `MICRO_REGISTER_TTL` (`90s`).
    pub register_ttl: Option<Duration>,
    /// `MICRO_REGISTER_INTERVAL` (`30s`).
    pub register_interval: Option<Duration>,
    /// `MICRO_AUTH_ID`: the account the service logs in as (the runtime makes one).
    pub auth_id: Option<String>,
    /// `MICRO_AUTH_SECRET`: its secret.
    pub auth_secret: Option<String>,
    /// `MICRO_MAX_IN_FLIGHT`: the most calls the service's handlers take at once (see
    /// [`crate::limit`]); default none.
    pub max_in_flight: Option<usize>,
    /// `MICRO_MAX_RATE`: the most calls a second the service's handlers take (see
    /// [`crate::limit`]); default none.
    pub max_rate: Option<u32>,
}

impl Env {
    /// Reads the environment. Empty variables count as unset.
    pub fn read() -> Self {
        Self {
            server_address: var(ENV_SERVER_ADDRESS)
                .unwrap_or_else(|| DEFAULT_SERVER_ADDRESS.to_owned()),
            namespace: var(ENV_NAMESPACE).unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned()),
            service_address: var(ENV_SERVICE_ADDRESS),
            service_name: var(ENV_SERVICE_NAME),
            service_version: var(ENV_SERVICE_VERSION),
            service_id: var(ENV_SERVICE_ID),
            register_ttl: duration(ENV_REGISTER_TTL),
            register_interval: duration(ENV_REGISTER_INTERVAL),
            auth_id: var(ENV_AUTH_ID),
            auth_secret: var(ENV_AUTH_SECRET),
            max_in_flight: count(ENV_MAX_IN_FLIGHT),
            max_rate: count(ENV_MAX_RATE).map(|r| u32::try_from(r).unwrap_or(u32::MAX)),
        }
    }
}

/// `MICRO_MAX_IN_FLIGHT`.
pub const ENV_MAX_IN_FLIGHT: &str = "MICRO_MAX_IN_FLIGHT";

/// `MICRO_MAX_RATE`.
pub const ENV_MAX_RATE: &str = "MICRO_MAX_RATE";

fn count(name: &str) -> Option<usize> {
    let raw = var(name)?;
    match raw.trim().parse::<usize>() {
        Ok(n) if n > 0 => Some(n),
        _ => {
            tracing::warn!("ignoring {name}={raw:?}: write a whole number above 0");
            None
        }
    }
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn duration(name: &str) -> Option<Duration> {
    let raw = var(name)?;
    match humantime::parse_duration(&raw) {
        Ok(d) => Some(d),
        Err(e) => {
            tracing::warn!("ignoring {name}={raw:?}: {e} (write it like 30s or 500ms)");
            None
        }
    }
}
