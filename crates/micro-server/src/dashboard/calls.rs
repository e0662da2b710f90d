//! How the dashboard reaches the platform: every read and write is a call through the
//! platform's call pipeline as the visitor — resolve, the rules, the call — the same steps as
//! `micro call` and the gateway take, so no page can do more than its visitor may.

use std::net::IpAddr;

use micro_core::Error;
use serde_json::Value;

use super::{Dashboard, session::Tokens};
use crate::{
    auth::Caller,
    proxy::{Fallback, JsonStream, Target},
};

impl Dashboard {
    /// The endpoint `endpoint` of `service` as `caller` may call it.
    pub(crate) async fn target(
        &self,
        caller: &Caller,
        service: &str,
        endpoint: &str,
    ) -> Result<Target, Error> {
        self.proxy
            .target(caller.clone(), service, endpoint, Fallback::Exact)
            .await
    }

    /// Calls a unary endpoint with a JSON request, as `caller`.
    pub(crate) async fn call(
        &self,
        caller: &Caller,
        service: &str,
        endpoint: &str,
        request: &Value,
    ) -> Result<Value, Error> {
        let target = self.target(caller, service, endpoint).await?;
        self.proxy.call_json(&target, &request.to_string()).await
    }

    /// Opens a server stream of `endpoint` of `service` with a JSON request, as `caller`: its
    /// answers as they arrive.
    pub(crate) async fn stream(
        &self,
        caller: &Caller,
        service: &str,
        endpoint: &str,
        request: &Value,
    ) -> Result<JsonStream, Error> {
        let target = self.target(caller, service, endpoint).await?;
        self.stream_to(&target, request).await
    }

    /// [`Self::stream`] to a target already resolved (the call form has one).
    pub(crate) async fn stream_to(
        &self,
        target: &Target,
        request: &Value,
    ) -> Result<JsonStream, Error> {
        let message = micro::transcode::json_to_protobuf(
            &target.resolved.method.input(),
            &request.to_string(),
        )?;
        self.proxy
            .stream(target, futures::stream::iter([message]))
            .await
    }

    /// Fresh tokens for a session's refresh token (`Auth.Token`, as nobody).
    pub(crate) async fn refresh(
        &self,
        refresh: &str,
        peer: Option<IpAddr>,
    ) -> Result<Tokens, Error> {
        let caller = self.nobody(None, peer).await?;
        let answer = self
            .call(
                &caller,
                "auth",
                "Auth.Token",
                &serde_json::json!({ "refresh_token": refresh }),
            )
            .await?;
        Tokens::from_answer(&answer)
    }

    /// A caller without a token in `namespace` (the default one when `None`).
    pub(crate) async fn nobody(
        &self,
        namespace: Option<&str>,
        peer: Option<IpAddr>,
    ) -> Result<Caller, Error> {
        let mut caller = match self.proxy.authority() {
            Some(authority) => authority.caller(None, namespace).await?,
            None => Caller::unchecked(namespace.unwrap_or(micro_core::metadata::DEFAULT_NAMESPACE)),
        };
        caller.peer = peer;
        Ok(caller)
    }
}
