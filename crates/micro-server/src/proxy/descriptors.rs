//! Service descriptors, fetched from the service itself over gRPC reflection and cached per
//! (namespace, service, version).
//!
//! Reflection answers one file per request; dependencies are asked for by file name until the
//! set is complete, then the files go into one `DescriptorPool`. Requests that miss the cache
//! together share one fetch: a service deployed under load is asked once, not once per request
//! in flight.

use std::{
    collections::{HashMap, HashSet},
    sync::Mutex,
};

use futures::{
    FutureExt,
    future::{BoxFuture, Shared},
};
use micro::Client;
use micro_core::{Endpoint, Error, Service};
use prost::Message;
use prost_reflect::DescriptorPool;
use prost_types::FileDescriptorProto;
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
};

const ID: &str = "micro.proxy";

type Key = (String, String, String);

/// Descriptor pools per (namespace, service, version), each kept with the endpoints the
/// version registered when it was fetched: a version re-registered with other endpoints
/// (`micro update` of `latest`) is fetched again.
#[derive(Default)]
pub struct DescriptorCache {
    pools: Mutex<HashMap<Key, (Vec<Endpoint>, DescriptorPool)>>,
    /// The fetch under way per key and gRPC service, which every request missing them awaits.
    fetching: Mutex<HashMap<(Key, String), Fetch>>,
}

type Fetch = Shared<BoxFuture<'static, Result<DescriptorPool, Error>>>;

impl DescriptorCache {
    /// The descriptors of `grpc_service` for `version`, fetched from one of its nodes unless
    /// cached for the same endpoints.
    pub async fn get(
        &self,
        client: &Client,
        namespace: &str,
        version: &Service,
        grpc_service: &str,
    ) -> Result<DescriptorPool, Error> {
        let key = (
            namespace.to_owned(),
            version.name.clone(),
            version.version.clone(),
        );
        if let Some((endpoints, pool)) = self.lock().get(&key)
            && *endpoints == version.endpoints
            && pool.get_service_by_name(grpc_service).is_some()
        {
            return Ok(pool.clone());
        }
        let asked = (key.clone(), grpc_service.to_owned());
        let fetch = {
            let mut fetching = self.fetching.lock().unwrap_or_else(|p| p.into_inner());
            fetching
                .entry(asked.clone())
                .or_insert_with(|| {
                    let (client, version) = (client.clone(), version.clone());
                    let grpc_service = grpc_service.to_owned();
                    async move { fetch_any(&client, &version, &grpc_service).await }
                        .boxed()
                        .shared()
                })
                .clone()
        };
        let fetched = fetch.clone().await;
        {
            let mut fetching = self.fetching.lock().unwrap_or_else(|p| p.into_inner());
            if fetching.get(&asked).is_some_and(|f| f.ptr_eq(&fetch)) {
                fetching.remove(&asked);
            }
        }
        if let Ok(pool) = &fetched {
            self.lock()
                .insert(key, (version.endpoints.clone(), pool.clone()));
        }
        fetched
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, (Vec<Endpoint>, DescriptorPool)>> {
        self.pools.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The descriptors of `grpc_service` from the first node of `version` that answers (not one
/// the client has ejected: it would only make the caller wait).
async fn fetch_any(
    client: &Client,
    version: &Service,
    grpc_service: &str,
) -> Result<DescriptorPool, Error> {
    let mut last = Error::unavailable(ID, format!("service {:?} has no nodes", version.name));
    let addresses: Vec<&str> = version.nodes.iter().map(|n| n.address.as_str()).collect();
    let usable = client.usable(&addresses);
    if !version.nodes.is_empty() && !usable.contains(&true) {
        return Err(Error::unavailable(
            ID,
            format!(
                "every node of service {:?} is failing ({} ejected; each is probed and comes \
                 back when it answers)",
                version.name,
                addresses.len()
            ),
        ));
    }
    for (node, _) in version.nodes.iter().zip(usable).filter(|(_, ok)| *ok) {
        match fetch(client, &node.address, grpc_service).await {
            Ok(pool) => return Ok(pool),
            Err(e) if e.code == 503 => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// The most files one service's descriptors may span, and the longest their fetch may take: a
/// node answers with what it likes, so it must not keep the proxy asking for ever.
const MAX_FILES: usize = 1024;
const FETCH_TIME: std::time::Duration = std::time::Duration::from_secs(10);

/// Asks the node for the file defining `symbol` and every file it depends on, within
/// [`FETCH_TIME`] and [`MAX_FILES`].
async fn fetch(client: &Client, address: &str, symbol: &str) -> Result<DescriptorPool, Error> {
    tokio::time::timeout(FETCH_TIME, fetch_files(client, address, symbol))
        .await
        .unwrap_or_else(|_| {
            Err(Error::new(
                ID,
                502,
                format!("node {address} took longer than {FETCH_TIME:?} to describe {symbol}"),
            ))
        })
}

async fn fetch_files(
    client: &Client,
    address: &str,
    symbol: &str,
) -> Result<DescriptorPool, Error> {
    let mut reflection = ServerReflectionClient::new(client.node(address));
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let mut responses = reflection
        .server_reflection_info(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .map_err(|s| reflection_error(address, &s))?
        .into_inner();

    let mut files: Vec<FileDescriptorProto> = Vec::new();
    let mut asked: HashSet<String> = HashSet::new();
    let mut pending = vec![MessageRequest::FileContainingSymbol(symbol.to_owned())];
    while let Some(request) = pending.pop() {
        let sent = tx
            .send(ServerReflectionRequest {
                host: String::new(),
                message_request: Some(request),
            })
            .await;
        if sent.is_err() {
            break;
        }
        let response = responses
            .message()
            .await
            .map_err(|s| reflection_error(address, &s))?
            .ok_or_else(|| {
                Error::unavailable(ID, format!("node {address} closed the reflection stream"))
            })?;
        match response.message_response {
            Some(MessageResponse::FileDescriptorResponse(found)) => {
                for bytes in found.file_descriptor_proto {
                    let file = FileDescriptorProto::decode(bytes.as_slice()).map_err(|e| {
                        Error::new(
                            ID,
                            502,
                            format!("node {address} sent an invalid descriptor: {e}"),
                        )
                    })?;
                    if files.len() >= MAX_FILES {
                        return Err(Error::new(
                            ID,
                            502,
                            format!(
                                "node {address} describes {symbol} with more than {MAX_FILES} files"
                            ),
                        ));
                    }
                    asked.insert(file.name().to_owned());
                    for dep in &file.dependency {
                        if asked.insert(dep.clone()) {
                            pending.push(MessageRequest::FileByFilename(dep.clone()));
                        }
                    }
                    files.push(file);
                }
            }
            Some(MessageResponse::ErrorResponse(e)) => {
                return Err(Error::not_found(
                    ID,
                    format!(
                        "node {address} has no descriptor for {symbol}: {}",
                        e.error_message
                    ),
                ));
            }
            _ => {
                return Err(Error::internal(
                    ID,
                    format!("node {address} answered reflection with something else"),
                ));
            }
        }
    }
    let mut pool = DescriptorPool::new();
    pool.add_file_descriptor_protos(files).map_err(|e| {
        Error::internal(
            ID,
            format!("descriptors from node {address} do not fit together: {e}"),
        )
    })?;
    Ok(pool)
}

fn reflection_error(address: &str, status: &tonic::Status) -> Error {
    if status.code() == tonic::Code::Unimplemented {
        return Error::new(
            ID,
            501,
            format!(
                "node {address} does not serve gRPC reflection, so its endpoints cannot be called with JSON"
            ),
        );
    }
    micro::status::from_status(ID, status)
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };

    use micro_core::{MemoryRegistry, Node};

    use super::*;

    #[tokio::test(flavor = "multi_thread")]
    async fn requests_missing_together_share_one_fetch() {
        // A node serving reflection of the platform's protos, counting the streams opened.
        let streams = Arc::new(AtomicUsize::new(0));
        let counted = streams.clone();
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(micro_proto::FILE_DESCRIPTOR_SET)
            .build_v1()
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let server = tokio::spawn(
            tonic::transport::Server::builder()
                .layer(tower::util::MapRequestLayer::new(
                    move |request: http::Request<tonic::body::Body>| {
                        counted.fetch_add(1, Ordering::SeqCst);
                        request
                    },
                ))
                .add_service(reflection)
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
        );
        let client = Client::builder(Arc::new(MemoryRegistry::new())).build();
        let version = Service::new("store", "latest").with_node(Node::new("s-1", address));
        let cache = Arc::new(DescriptorCache::default());
        let asks: Vec<_> = (0..16)
            .map(|_| {
                let (cache, client, version) = (cache.clone(), client.clone(), version.clone());
                tokio::spawn(async move {
                    cache
                        .get(&client, "micro", &version, "micro.store.Store")
                        .await
                })
            })
            .collect();
        for ask in asks {
            let pool = ask.await.unwrap().expect("described");
            assert!(pool.get_service_by_name("micro.store.Store").is_some());
        }
        assert_eq!(streams.load(Ordering::SeqCst), 1, "one fetch for all 16");
        // And once cached, none.
        cache
            .get(&client, "micro", &version, "micro.store.Store")
            .await
            .unwrap();
        assert_eq!(streams.load(Ordering::SeqCst), 1);
        server.abort();
    }
}
