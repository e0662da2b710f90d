//! The `runtime` platform service: `micro.runtime.Runtime` over the [`LocalRuntime`].
//!
//! Code arrives by `Upload` (a client stream of archive chunks written to the runtime's uploads
//! directory), so the CLI never assumes it shares a filesystem with the server; `Create` and
//! `Update` then name the upload.

use std::{path::PathBuf, pin::Pin};

use futures::{Stream, StreamExt};
use micro::status::into_status;
use micro_core::{
    Error,
    runtime::{Code, LogOptions, Runtime},
};
use micro_proto::runtime::{self as pb, runtime_server};
use tokio::io::AsyncWriteExt;
use tonic::{Request, Response, Status, Streaming};

use micro::convert::runtime::{deployment_to_pb, spec_from_pb};

use super::answer::answer;
use crate::{long_call::LongCall, namespace, runtime::LocalRuntime};

const ID: &str = "micro.runtime";

/// Marks a call one server forwarded to another, so it is never forwarded again (two servers'
/// stale records naming each other cannot bounce a call between them).
pub(crate) const FORWARDED_HEADER: &str = "micro-forwarded";

/// `micro logs` of a service another server runs: the same call, with the caller's token and
/// namespace, to that server, whose answer streams back as it comes.
async fn forward_logs(
    owner: &str,
    req: Request<pb::LogsRequest>,
) -> Result<Response<LogsStream>, Status> {
    use micro_core::metadata::{AUTHORIZATION_HEADER, NAMESPACE_HEADER};
    let connection = micro::remote::Connection::lazy(owner).map_err(into_status)?;
    let mut forwarded = Request::new(req.get_ref().clone());
    for header in [AUTHORIZATION_HEADER, NAMESPACE_HEADER] {
        if let Some(value) = req.metadata().get(header) {
            if header == AUTHORIZATION_HEADER {
                // The caller's token goes on only as safely as the CLI would send it.
                connection.check_secrets_transport().map_err(into_status)?;
            }
            forwarded.metadata_mut().insert(header, value.clone());
        }
    }
    forwarded.metadata_mut().insert(
        FORWARDED_HEADER,
        tonic::metadata::MetadataValue::from_static("1"),
    );
    let lines = pb::runtime_client::RuntimeClient::new(connection.channel())
        .logs(forwarded)
        .await
        .map_err(|s| into_status(connection.error(ID, &s)))?
        .into_inner();
    Ok(Response::new(Box::pin(lines)))
}

/// The largest archive `micro run` may upload.
const MAX_UPLOAD: u64 = 512 << 20;

/// Serves a runtime over gRPC.
#[derive(Clone)]
pub struct RuntimeService {
    runtime: LocalRuntime,
}

impl RuntimeService {
    /// Serves `runtime`.
    pub fn new(runtime: LocalRuntime) -> Self {
        Self { runtime }
    }

    /// The tonic server for this service.
    pub fn into_server(self) -> runtime_server::RuntimeServer<Self> {
        runtime_server::RuntimeServer::new(self).max_decoding_message_size(8 << 20)
    }

    fn code(&self, upload: &str, path: String) -> Result<Code, Error> {
        let id = uuid::Uuid::try_parse(upload).map_err(|_| {
            Error::bad_request(
                ID,
                format!("unknown upload {upload:?}: send the source with Upload first"),
            )
        })?;
        let archive = self.runtime.upload_path(&id.simple().to_string());
        if !archive.is_file() {
            return Err(Error::not_found(
                ID,
                format!(
                    "upload {upload} is gone (each upload is used once); upload the source again"
                ),
            ));
        }
        // The path is checked where it is used, when the runtime unpacks the upload.
        Ok(Code { archive, path })
    }
}

/// Runs `change` to the end even if the caller goes away (a half-done kill or update would
/// leave the service stuck), then removes the upload `archive` if the change did not use it.
async fn detached(
    archive: PathBuf,
    change: impl Future<Output = Result<(), Error>> + Send + 'static,
) -> Result<(), Error> {
    let result = match tokio::spawn(change).await {
        Ok(result) => result,
        Err(e) => Err(Error::internal(ID, format!("the runtime failed: {e}"))),
    };
    if result.is_err() && !archive.as_os_str().is_empty() {
        let _ = tokio::fs::remove_file(&archive).await;
    }
    result
}

/// Only an admin of `micro` may use the runtime.
fn admin<T>(req: &Request<T>) -> Result<String, Error> {
    namespace::platform_admin(req, "the runtime")
}

type LogsStream = Pin<Box<dyn Stream<Item = Result<pb::LogRecord, Status>> + Send>>;

#[tonic::async_trait]
impl runtime_server::Runtime for RuntimeService {
    async fn upload(
        &self,
        req: Request<Streaming<pb::UploadRequest>>,
    ) -> Result<Response<pb::UploadResponse>, Status> {
        admin(&req).map_err(into_status)?;
        let (id, path) = self.runtime.new_upload();
        let mut chunks = req.into_inner();
        let fail = |e: std::io::Error| {
            into_status(Error::internal(ID, format!("cannot store the upload: {e}")))
        };
        let mut file = tokio::fs::File::create(&path).await.map_err(fail)?;
        let mut size = 0u64;
        let received = async {
            while let Some(chunk) = chunks.message().await? {
                size += chunk.chunk.len() as u64;
                if size > MAX_UPLOAD {
                    return Err(into_status(Error::bad_request(
                        ID,
                        format!(
                            "the source is over {} MiB packed; add what is not source (build output, data) to .gitignore",
                            MAX_UPLOAD >> 20
                        ),
                    )));
                }
                file.write_all(&chunk.chunk).await.map_err(fail)?;
            }
            file.flush().await.map_err(fail)?;
            Ok(())
        }
        .await;
        if let Err(status) = received {
            let _ = tokio::fs::remove_file(&path).await;
            return Err(status);
        }
        Ok(Response::new(pb::UploadResponse { id }))
    }

    async fn create(
        &self,
        req: Request<pb::CreateRequest>,
    ) -> Result<Response<pb::CreateResponse>, Status> {
        answer(req, admin, |ns, body| async move {
            let spec = spec_from_pb(body.spec)?;
            let code = self.code(&body.upload, body.path)?;
            let runtime = self.runtime.clone();
            detached(code.archive.clone(), async move {
                runtime.create(&ns, spec, code).await
            })
            .await?;
            Ok(pb::CreateResponse {})
        })
        .await
    }

    async fn read(
        &self,
        req: Request<pb::ReadRequest>,
    ) -> Result<Response<pb::ReadResponse>, Status> {
        answer(req, admin, |ns, body| async move {
            let name = Some(body.name.as_str()).filter(|n| !n.is_empty());
            let found = self.runtime.read(&ns, name).await?;
            Ok(pb::ReadResponse {
                services: found.into_iter().map(deployment_to_pb).collect(),
            })
        })
        .await
    }

    async fn update(
        &self,
        req: Request<pb::UpdateRequest>,
    ) -> Result<Response<pb::UpdateResponse>, Status> {
        answer(req, admin, |ns, body| async move {
            let asked = body.spec.ok_or_else(|| {
                Error::bad_request(ID, "the request has no spec: name the service")
            })?;
            // What the update leaves empty keeps its current value.
            let mut current = self
                .runtime
                .read(&ns, Some(&asked.name))
                .await?
                .remove(0)
                .spec;
            if !asked.version.is_empty() {
                current.version = asked.version;
            }
            if !asked.source.is_empty() {
                current.source = asked.source;
            }
            if asked.instances > 0 {
                current.instances = asked.instances;
            }
            if !asked.env.is_empty() {
                current.env = asked.env.into_iter().collect();
            }
            if !asked.args.is_empty() {
                current.args = asked.args;
            }
            let code = if body.upload.is_empty() {
                None
            } else {
                Some(self.code(&body.upload, body.path)?)
            };
            let runtime = self.runtime.clone();
            let archive = code.as_ref().map(|c| c.archive.clone()).unwrap_or_default();
            detached(
                archive,
                async move { runtime.update(&ns, current, code).await },
            )
            .await?;
            Ok(pb::UpdateResponse {})
        })
        .await
    }

    async fn delete(
        &self,
        req: Request<pb::DeleteRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        answer(req, admin, |ns, body| async move {
            let runtime = self.runtime.clone();
            detached(PathBuf::new(), async move {
                runtime.delete(&ns, &body.name).await
            })
            .await?;
            Ok(pb::DeleteResponse {})
        })
        .await
    }

    type LogsStream = LogsStream;

    async fn logs(&self, req: Request<pb::LogsRequest>) -> Result<Response<LogsStream>, Status> {
        let ns = admin(&req).map_err(into_status)?;
        let long = LongCall::of(&req);
        if req.metadata().get(FORWARDED_HEADER).is_none()
            && let Some(owner) = self
                .runtime
                .owner(&ns, &req.get_ref().name)
                .await
                .map_err(into_status)?
        {
            let lines = forward_logs(&owner, req).await?.into_inner();
            return Ok(Response::new(long.end(lines, into_status)));
        }
        let body = req.into_inner();
        let lines = self
            .runtime
            .logs(
                &ns,
                &body.name,
                LogOptions {
                    count: body.count as usize,
                    follow: body.follow,
                    build: body.build,
                },
            )
            .await
            .map_err(into_status)?;
        let lines: LogsStream = Box::pin(lines.map(|line| {
            line.map(|l| pb::LogRecord {
                timestamp_ms: micro::convert::millis(l.timestamp),
                text: l.text,
            })
            .map_err(into_status)
        }));
        Ok(Response::new(long.end(lines, into_status)))
    }
}
