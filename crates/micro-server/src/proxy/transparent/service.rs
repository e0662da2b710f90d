//! [`Transparent`]: the service that forwards a call to a node or hands it to the server's
//! own services. Its future is boxed; a refusal is answered as a gRPC status, so it has no
//! error of its own.

use std::{
    sync::Arc,
    task::{Context, Poll},
    time::Instant,
};

use futures::StreamExt;
use futures::future::BoxFuture;
use micro::status::{into_status, to_status};
use micro_core::{Error, metadata::ENDPOINT_STREAM};
use tonic::body::Body;
use tower::ServiceExt;

use super::{
    ID, Local, Registrants, Resolutions, SERVICE_HEADER, none_registers, registrants,
    several_register,
};
use crate::{auth::Caller, long_call::LongCall, proxy::ProxyService};

/// See [`super::TransparentLayer`].
#[derive(Clone)]
pub struct Transparent<S> {
    pub(super) inner: S,
    pub(super) proxy: ProxyService,
    pub(super) local: Arc<Local>,
    pub(super) resolutions: Arc<Resolutions>,
}

impl<S> tower::Service<http::Request<Body>> for Transparent<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let named = req.headers().contains_key(SERVICE_HEADER);
        let local = crate::grpc_path(req.uri().path())
            .is_none_or(|(grpc_service, _)| self.local.serves(grpc_service, named));
        // The clone is the ready one's twin; keep the ready one for this call (tower's rule).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        if local {
            return Box::pin(inner.call(req));
        }
        let proxy = self.proxy.clone();
        let resolutions = self.resolutions.clone();
        Box::pin(async move {
            Ok(match forward(&proxy, &resolutions, req).await {
                Ok(response) => response,
                Err(e) => to_status(&e).into_http(),
            })
        })
    }
}

/// The one service in the caller's namespace that registers `grpc_service`.
async fn resolve(
    proxy: &ProxyService,
    resolutions: &Resolutions,
    caller: &Caller,
    grpc_service: &str,
) -> Result<String, Error> {
    let ns = &caller.namespace;
    if let Some(service) = resolutions.get(ns, grpc_service, Instant::now()) {
        return Ok(service);
    }
    let services = proxy.registry().list_services(ns).await?;
    match registrants(&services, grpc_service) {
        Registrants::One(service) => {
            resolutions.put(ns, grpc_service, &service, Instant::now());
            Ok(service)
        }
        Registrants::None => Err(none_registers(grpc_service, ns)),
        Registrants::Several(names) => {
            // Only the services the caller may call are named to it.
            let mut shown = Vec::new();
            for name in names {
                if proxy.authorize(caller, &name, "*").await.is_ok() {
                    shown.push(name);
                }
            }
            Err(several_register(grpc_service, ns, &shown))
        }
    }
}

/// Resolves, checks and forwards one call; its answer, whatever the node said.
async fn forward(
    proxy: &ProxyService,
    resolutions: &Resolutions,
    mut req: http::Request<Body>,
) -> Result<http::Response<Body>, Error> {
    let caller = match req.extensions().get::<Caller>() {
        Some(caller) => caller.clone(),
        // Only without the guard (a test's server): nothing was checked, and nothing is.
        None => Caller::unchecked(&crate::namespace::of_headers(req.headers())?),
    };
    let path = req.uri().path().to_owned();
    let (grpc_service, method) = crate::grpc_path(&path)
        .ok_or_else(|| Error::bad_request(ID, format!("{path:?} is not a gRPC method path")))?;
    let service = match crate::auth::guard::header(&req, SERVICE_HEADER)? {
        Some(name) => {
            micro_core::limits::name(ID, "service name", name)?;
            if crate::services::names::is_platform_service(name) {
                return Err(Error::bad_request(
                    ID,
                    format!(
                        "{name} is a platform service: call it by its own methods, which this server serves"
                    ),
                ));
            }
            name.to_owned()
        }
        None => resolve(proxy, resolutions, &caller, grpc_service).await?,
    };
    let short = grpc_service.rsplit('.').next().unwrap_or(grpc_service);
    let endpoint = format!("{short}.{method}");
    proxy.authorize(&caller, &service, &endpoint).await?;
    // The nodes the caller asks for, as at the gateway: `micro-version`, `micro-select`.
    let filter = crate::proxy::node_filter(req.headers())?;

    // What the service sees: the caller's metadata, less anything only the platform or the
    // proxy sets, and the platform's own for this caller (the same as every door's).
    let headers = req.headers_mut();
    for name in
        crate::proxy::PLATFORM_HEADERS
            .iter()
            .chain(&["cookie", "micro-version", "micro-select"])
    {
        headers.remove(*name);
    }
    // The caller's own metadata within the platform's limits, as at every door: a node would
    // otherwise refuse it with a bare HTTP status (its header list is smaller than this
    // server's).
    check_metadata(headers)?;
    proxy.platform_metadata(&caller, &service, headers)?;
    req.extensions_mut().clear();

    // What the service registered for the method: whether it answers with a stream, and
    // whether it is one at all. A service or a method that is not registered is counted under
    // one label, so no caller can grow the metrics' series by making names up.
    let registered = registered(proxy, &caller, &service, grpc_service, &endpoint).await;
    let channel = proxy
        .channel(&caller.namespace, &service, None, filter.as_ref())
        .await?;
    let started = Instant::now();
    let answer = channel
        .oneshot(req)
        .await
        .and_then(|response| grpc_answer(response, &service));
    let code = match &answer {
        Ok(response) => response
            .headers()
            .get("grpc-status")
            .and_then(|s| s.to_str().ok()?.parse::<i32>().ok())
            .map_or(tonic::Code::Ok, tonic::Code::from_i32),
        Err(status) => status.code(),
    };
    let (service_label, endpoint_label) = match registered {
        Registered::NoService => (crate::metrics::UNREGISTERED, crate::metrics::UNREGISTERED),
        Registered::Unresolved => (crate::metrics::UNRESOLVED, crate::metrics::UNREGISTERED),
        Registered::NoMethod => (service.as_str(), crate::metrics::UNREGISTERED),
        Registered::Unary | Registered::Stream => (service.as_str(), endpoint.as_str()),
    };
    proxy.metrics().call(
        &caller.namespace,
        service_label,
        endpoint_label,
        code,
        started.elapsed(),
    );
    let streams = answer.is_ok() && registered == Registered::Stream;
    Ok(match answer {
        Ok(response) if streams => watched(proxy, &caller, &service, &endpoint, response),
        Ok(response) => response,
        Err(status) => status.into_http(),
    })
}

/// Refuses metadata past [`micro_core::limits::MAX_METADATA`] entries or a value past
/// [`micro_core::limits::MAX_METADATA_VALUE`] bytes, naming what was too big.
fn check_metadata(headers: &http::HeaderMap) -> Result<(), Error> {
    use micro_core::limits::{MAX_METADATA, MAX_METADATA_VALUE};
    // What gRPC and HTTP/2 send on every call does not count as the caller's metadata; every
    // value is held to the limit.
    // (Every value counts: a key sent many times is many entries.)
    let entries = headers
        .iter()
        .filter(|(key, _)| {
            !matches!(
                key.as_str(),
                "content-type"
                    | "te"
                    | "user-agent"
                    | "content-length"
                    | "grpc-timeout"
                    | "grpc-encoding"
                    | "grpc-accept-encoding"
            )
        })
        .count();
    if entries > MAX_METADATA {
        return Err(Error::bad_request(
            ID,
            format!("the call has {entries} metadata entries; the limit is {MAX_METADATA}"),
        ));
    }
    match headers
        .iter()
        .find(|(_, value)| value.len() > MAX_METADATA_VALUE)
    {
        Some((key, value)) => Err(Error::bad_request(
            ID,
            format!(
                "the metadata value of {:?} is {} bytes; the limit is {MAX_METADATA_VALUE}",
                key.as_str(),
                value.len()
            ),
        )),
        None => Ok(()),
    }
}

/// `response` if it is a gRPC answer (a gRPC status in its head, or HTTP 200 with a gRPC
/// content type); a node that
/// answers with a bare HTTP status is not speaking gRPC to this call, and the caller gets a
/// status that says so: `INVALID_ARGUMENT` for headers it found too large, else `UNAVAILABLE`.
fn grpc_answer(
    response: http::Response<Body>,
    service: &str,
) -> Result<http::Response<Body>, tonic::Status> {
    let status = response.status();
    let grpc = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes().starts_with(b"application/grpc"));
    if (status == http::StatusCode::OK && grpc) || response.headers().contains_key("grpc-status") {
        return Ok(response);
    }
    Err(
        if status == http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE {
            tonic::Status::invalid_argument(format!(
                "a node of {service} refused the call's metadata as too large (HTTP 431)"
            ))
        } else {
            tonic::Status::unavailable(format!(
                "a node of {service} answered HTTP {}, not gRPC: it is not the gRPC server it registered",
                status.as_u16()
            ))
        },
    )
}

/// What a service registered of a method a caller names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Registered {
    /// No service of that name is registered.
    NoService,
    /// The registry could not be asked (an outage).
    Unresolved,
    /// The service is there, without the method.
    NoMethod,
    /// The method, answering with one message.
    Unary,
    /// The method, answering with a stream (`server` or `bidi`): only such an answer lives long
    /// enough to be checked again, or cut at the stop. A unary answer under way when the server
    /// stops is let finish, as its grace allows.
    Stream,
}

/// What `service` registered of `endpoint` (of `grpc_service`).
async fn registered(
    proxy: &ProxyService,
    caller: &Caller,
    service: &str,
    grpc_service: &str,
    endpoint: &str,
) -> Registered {
    let versions = match proxy
        .client_for(&caller.namespace, service)
        .lookup(service)
        .await
    {
        Ok(versions) if !versions.is_empty() => versions,
        Ok(_) => return Registered::NoService,
        Err(e) if e.code == 404 => return Registered::NoService,
        Err(_) => return Registered::Unresolved,
    };
    // The gRPC service as resolution names it (from node metadata when the endpoint does not
    // say), so the same services count as registered here as reach a node there.
    let Some((version, _, registered_as)) = crate::proxy::resolve::registered(&versions, endpoint)
    else {
        return Registered::NoMethod;
    };
    if registered_as != grpc_service {
        return Registered::NoMethod;
    }
    let streams = version
        .endpoint(endpoint)
        .and_then(|e| e.metadata.get(ENDPOINT_STREAM))
        .is_some_and(|kind| kind == "server" || kind == "bidi");
    if streams {
        Registered::Stream
    } else {
        Registered::Unary
    }
}

/// The node's answer, its body ended with a gRPC status in trailers once the caller could no
/// longer make the call (a token revoked, a rule changed) or the server stops — what every
/// door does with the streams it passes on. A unary answer ends long before either is asked.
fn watched(
    proxy: &ProxyService,
    caller: &Caller,
    service: &str,
    endpoint: &str,
    response: http::Response<Body>,
) -> http::Response<Body> {
    let long = LongCall::passed_on(proxy, caller, service, endpoint);
    // An answer that is all headers (an error at once) stays so: it has no stream to watch.
    if long.is_unwatched() || http_body::Body::is_end_stream(response.body()) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let frames: Frames = Box::pin(http_body_util::BodyStream::new(body));
    let frames = long.end(frames, into_status);
    // An error — a refusal, the stop, or the node's stream breaking — is told the gRPC way,
    // in trailers, and is the body's last frame.
    let frames = frames.scan(false, |ended, item| {
        let frame = match item {
            _ if *ended => None,
            Ok(frame) => Some(Ok::<_, tonic::Status>(frame)),
            Err(status) => {
                *ended = true;
                let mut trailers = http::HeaderMap::new();
                if status.add_header(&mut trailers).is_err() {
                    // A message that makes no header: the code alone.
                    let _ = tonic::Status::new(status.code(), "").add_header(&mut trailers);
                }
                Some(Ok(http_body::Frame::trailers(trailers)))
            }
        };
        futures::future::ready(frame)
    });
    http::Response::from_parts(parts, Body::new(http_body_util::StreamBody::new(frames)))
}

/// A body's frames, as a stream.
type Frames = std::pin::Pin<
    Box<dyn futures::Stream<Item = Result<http_body::Frame<bytes::Bytes>, tonic::Status>> + Send>,
>;
