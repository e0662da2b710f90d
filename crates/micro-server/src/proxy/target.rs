//! [`Target`]: the first steps every door takes with a call — resolve the endpoint, then ask the
//! rules whether the caller may call it — in one place. The `micro.proxy.Proxy` service, the
//! gateway's HTTP, stream and WebSocket paths and `micro bench --direct` each get a target here
//! and then invoke it (see `invoke`).

use std::time::Duration;

use micro_core::Error;

use super::{Fallback, ProxyService, Resolved};
use crate::auth::Caller;

/// A resolved endpoint the caller may call, and how to call it.
#[derive(Clone)]
pub struct Target {
    /// Who calls: namespace, token (passed on), peer.
    pub caller: Caller,
    /// The service name.
    pub service: String,
    /// The endpoint and its descriptors.
    pub resolved: Resolved,
    /// The call's deadline, passed on hop by hop; `None` is the client's default.
    pub timeout: Option<Duration>,
    /// A node to call instead of selecting one (it must be one the service registered).
    pub address: Option<String>,
    /// Metadata for the service (never what only the platform sets).
    pub metadata: Vec<(String, String)>,
    /// Which nodes may take the call (a version, node metadata); `None` admits all.
    pub filter: Option<micro::client::Filter>,
}

impl Target {
    /// The endpoint called (`Service.Method`).
    pub fn endpoint(&self) -> &str {
        &self.resolved.endpoint
    }

    /// The caller's namespace.
    pub fn namespace(&self) -> &str {
        &self.caller.namespace
    }
}

impl ProxyService {
    /// Resolves `endpoint` of `service` for `caller` (trying `fallback`), and checks the rules
    /// for the endpoint called. An exact name is checked before anything is looked up, so a
    /// caller the rules refuse costs no lookup and learns nothing of what exists. A name the
    /// fallback may change is checked once resolved, for the endpoint found — or, when nothing
    /// was found, for the one the resolution got to, before its error is told.
    pub async fn target(
        &self,
        caller: Caller,
        service: &str,
        endpoint: &str,
        fallback: Fallback,
    ) -> Result<Target, Error> {
        if fallback == Fallback::Exact {
            self.authorize(&caller, service, endpoint).await?;
        }
        let resolved = self
            .resolve(&caller.namespace, service, endpoint, fallback)
            .await;
        if fallback != Fallback::Exact {
            let reached = match &resolved {
                Ok(resolved) => resolved.endpoint.as_str(),
                Err(unresolved) => unresolved.endpoint().unwrap_or(endpoint),
            };
            self.authorize(&caller, service, reached).await?;
        }
        Ok(Target {
            caller,
            service: service.to_owned(),
            resolved: resolved?,
            timeout: None,
            address: None,
            metadata: Vec::new(),
            filter: None,
        })
    }
}
