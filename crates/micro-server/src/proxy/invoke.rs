//! Invoking a [`Target`]: the gRPC call to a node of the service, with the platform's metadata
//! (namespace, a passed-on token, the caller's peer for platform services) and the caller's
//! own, counted in the proxy's metrics. Unary with JSON or with an encoded message, or a stream
//! of any kind; the requests and answers are transcoded next to the call.

use std::{pin::Pin, str::FromStr, time::Instant};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use micro::{
    client::{Filter, ServiceChannel},
    codec::BytesCodec,
    status::from_status,
    transcode,
};
use micro_core::{
    Error,
    metadata::{AUTHORIZATION_HEADER, NAMESPACE_HEADER},
};
use tonic::{Request, Status, metadata::MetadataMap};

use super::{PLATFORM_HEADERS, ProxyService, Target};
use crate::{auth::Caller, long_call::LongCall};

const ID: &str = "micro.proxy";

/// Metadata the transport sets: a caller may not choose them either (besides the platform's
/// own, [`PLATFORM_HEADERS`]).
const TRANSPORT_HEADERS: &[&str] = &["content-type", "te", "host", "user-agent", "cookie"];

/// Responses of a streaming call, as JSON.
pub type JsonStream = Pin<Box<dyn Stream<Item = Result<serde_json::Value, Error>> + Send>>;

impl ProxyService {
    /// Calls a unary endpoint with a JSON request; answers the JSON response.
    pub async fn call_json(&self, target: &Target, json: &str) -> Result<serde_json::Value, Error> {
        let response = self.call_unary_json(target, json).await?;
        transcode::protobuf_to_json(&target.resolved.method.output(), &response)
    }

    /// [`Self::call_json`], answering the JSON response as text (what an HTTP door sends on).
    pub async fn call_json_text(&self, target: &Target, json: &str) -> Result<Bytes, Error> {
        let response = self.call_unary_json(target, json).await?;
        transcode::protobuf_to_json_text(&target.resolved.method.output(), &response)
    }

    /// Calls a unary endpoint with a JSON request; answers the encoded response.
    async fn call_unary_json(&self, target: &Target, json: &str) -> Result<Bytes, Error> {
        let method = &target.resolved.method;
        if method.is_client_streaming() || method.is_server_streaming() {
            return Err(Error::bad_request(
                ID,
                format!(
                    "{} is a streaming endpoint; use micro stream",
                    target.endpoint()
                ),
            ));
        }
        let body = transcode::json_to_protobuf(&method.input(), json)?;
        self.call_protobuf(target, body).await
    }

    /// Calls a unary endpoint with an encoded request message; answers the encoded response.
    pub async fn call_protobuf(&self, target: &Target, message: Bytes) -> Result<Bytes, Error> {
        let channel = self.target_channel(target).await?;
        let metadata = self.metadata(target)?;
        let started = Instant::now();
        let answer = super::unary::call(channel, &target.resolved.path, metadata, message).await;
        self.measure(target, &answer, started);
        answer.map_err(|s| from_status(&target.service, &s))
    }

    /// Opens a stream to any kind of endpoint: `requests` are the protobuf request messages
    /// (one for a server-streaming endpoint), and the answer yields each response as JSON as
    /// it arrives. The stream ends after the service's last message, or with its error.
    pub async fn stream<S>(&self, target: &Target, requests: S) -> Result<JsonStream, Error>
    where
        S: Stream<Item = Bytes> + Send + 'static,
    {
        let (mut grpc, request) = self.prepare(target, requests).await?;
        let service = target.service.clone();
        let output = target.resolved.method.output();
        // A stream counts once, when it opens (its length is the caller's business).
        let started = Instant::now();
        let opened = grpc
            .streaming(request, target.resolved.path.clone(), BytesCodec)
            .await;
        self.measure(target, &opened, started);
        let responses = opened.map_err(|s| from_status(&service, &s))?.into_inner();
        let json: JsonStream = Box::pin(responses.map(move |item| match item {
            Ok(bytes) => transcode::protobuf_to_json(&output, &bytes),
            Err(status) => Err(from_status(&service, &status)),
        }));
        // An answer stream lives long: it ends once the caller could no longer open it (a token
        // revoked, a rule changed), or the server stops, as the platform's own streams do. A
        // single answer (a unary endpoint over a WebSocket) is let finish.
        if !target.resolved.method.is_server_streaming() {
            return Ok(json);
        }
        let long = LongCall::passed_on(self, &target.caller, &target.service, target.endpoint());
        Ok(long.end(json, std::convert::identity))
    }

    /// Records a call that began at `started` and ended with `answer` in the metrics.
    fn measure<T>(&self, target: &Target, answer: &Result<T, Status>, started: Instant) {
        let code = answer
            .as_ref()
            .map_or_else(|s| s.code(), |_| tonic::Code::Ok);
        self.metrics().call(
            target.namespace(),
            &target.service,
            target.endpoint(),
            code,
            started.elapsed(),
        );
    }

    /// A ready gRPC client for the target and the request with the call's metadata.
    async fn prepare<T>(
        &self,
        target: &Target,
        message: T,
    ) -> Result<(tonic::client::Grpc<ServiceChannel>, Request<T>), Error> {
        let service = target.service.as_str();
        let mut grpc = tonic::client::Grpc::new(self.target_channel(target).await?);
        let headers = self.metadata(target)?;
        let mut request = Request::new(message);
        *request.metadata_mut() = MetadataMap::from_headers(headers);
        grpc.ready().await.map_err(|e| {
            Error::unavailable(ID, format!("service \"{service}\" is not ready: {e}"))
        })?;
        Ok((grpc, request))
    }

    /// The channel to the target's node or nodes, with the target's timeout.
    async fn target_channel(&self, target: &Target) -> Result<ServiceChannel, Error> {
        let channel = self
            .channel(
                &target.caller.namespace,
                &target.service,
                target.address.as_deref(),
                target.filter.as_ref(),
            )
            .await?;
        Ok(match target.timeout {
            Some(t) => channel.with_timeout(t),
            None => channel,
        })
    }

    /// The call's metadata: the caller's own (none the platform or the transport sets) and the
    /// platform's.
    fn metadata(&self, target: &Target) -> Result<http::HeaderMap, Error> {
        let mut headers = http::HeaderMap::new();
        for (k, v) in &target.metadata {
            let lower = k.to_ascii_lowercase();
            if PLATFORM_HEADERS.contains(&lower.as_str())
                || TRANSPORT_HEADERS.contains(&lower.as_str())
                || lower.starts_with("grpc-")
                || lower.starts_with(':')
            {
                return Err(Error::bad_request(
                    ID,
                    format!("metadata {k:?} is set by the proxy, not by the caller"),
                ));
            }
            let key = http::HeaderName::from_str(&lower)
                .map_err(|_| Error::bad_request(ID, format!("invalid metadata key {k:?}")))?;
            let value = http::HeaderValue::from_str(v)
                .map_err(|_| Error::bad_request(ID, format!("invalid metadata value for {k:?}")))?;
            headers.insert(key, value);
        }
        self.platform_metadata(&target.caller, &target.service, &mut headers)?;
        Ok(headers)
    }

    /// The channel a call to `service` in `namespace` goes on: to the node at `address` (one
    /// the service registered, never another: the server dials nothing else for a caller), or
    /// balanced over the nodes that pass `filter`.
    pub(crate) async fn channel(
        &self,
        namespace: &str,
        service: &str,
        address: Option<&str>,
        filter: Option<&Filter>,
    ) -> Result<ServiceChannel, Error> {
        let client = self.client_for(namespace, service);
        Ok(match (address, filter) {
            (Some(address), _) => {
                let versions = client.lookup(service).await?;
                if !versions
                    .iter()
                    .flat_map(|v| &v.nodes)
                    .any(|n| n.address == address)
                {
                    return Err(Error::bad_request(
                        ID,
                        format!("{address:?} is not a registered node of service \"{service}\""),
                    ));
                }
                client.node(address)
            }
            (None, Some(filter)) => client.service(service).with_filter(filter.clone()),
            (None, None) => client.service(service),
        })
    }

    /// Sets what a service sees of the caller on a call passed on to it, in `headers` that
    /// hold none of the platform's own: the caller's namespace; the caller's token for the
    /// platform's own services, and for any other service one that opens it alone, which it
    /// cannot replay elsewhere (never the caller's own); and, for platform services only, the
    /// caller's address vouched for by this server.
    pub(crate) fn platform_metadata(
        &self,
        caller: &Caller,
        service: &str,
        headers: &mut http::HeaderMap,
    ) -> Result<(), Error> {
        let namespace = caller.namespace.as_str();
        let ns = http::HeaderValue::from_str(namespace)
            .map_err(|_| Error::bad_request(ID, "invalid namespace"))?;
        headers.insert(NAMESPACE_HEADER, ns);
        let platform = crate::services::names::is_platform_service(service);
        let token = match (caller.token.as_deref(), self.authority()) {
            (Some(token), Some(authority)) if !platform => {
                authority.pass_on(token, namespace, service)
            }
            (token, _) => token.map(str::to_owned),
        };
        if let Some(token) = token {
            let bearer = http::HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| Error::unauthorized(ID, "the token is not valid header text"))?;
            headers.insert(AUTHORIZATION_HEADER, bearer);
        }
        // Only to the platform's own services: a tenant's service must not collect proofs to
        // replay.
        if let (Some(peer), Some(authority)) = (caller.peer, self.authority())
            && platform
            && let (Ok(ip), Ok(proof)) = (
                http::HeaderValue::from_str(&peer.to_string()),
                http::HeaderValue::from_str(&authority.vouch(peer)),
            )
        {
            headers.insert(crate::auth::PEER_HEADER, ip);
            headers.insert(crate::auth::PEER_PROOF_HEADER, proof);
        }
        Ok(())
    }
}
