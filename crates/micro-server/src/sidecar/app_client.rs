//! How the sidecar reaches its app: HTTP/1.1 on the address given with `--app`, JSON bodies,
//! bounded answers and deadlines. Every request says where the sidecar's own HTTP address is
//! (header `Micro-Sidecar`), so the app knows where to call the platform from its first health
//! check on.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Uri, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use micro_core::Error;

const ID: &str = "micro.sidecar";
/// The largest answer read from the app.
pub(crate) const MAX_ANSWER: usize = 4 * 1024 * 1024;
/// The header that tells the app where its sidecar listens.
pub(crate) const SIDECAR_HEADER: &str = "micro-sidecar";

/// The app behind the sidecar.
#[derive(Clone, Debug)]
pub(crate) struct App {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
    sidecar: String,
}

impl App {
    /// The app at `base` (`http://host:port`); `sidecar` is the sidecar's HTTP address.
    pub(crate) fn new(base: &str, sidecar: &str) -> Result<Self, Error> {
        let base = base.trim_end_matches('/');
        let uri: Uri = base
            .parse()
            .map_err(|e| Error::bad_request(ID, format!("--app {base:?} is not a URL: {e}")))?;
        if uri.scheme_str() != Some("http") || uri.authority().is_none() || uri.path().len() > 1 {
            return Err(Error::bad_request(
                ID,
                format!(
                    "--app {base:?} must be http://host:port (the app listens on this machine)"
                ),
            ));
        }
        Ok(Self {
            client: Client::builder(TokioExecutor::new()).build_http(),
            base: base.to_owned(),
            sidecar: sidecar.to_owned(),
        })
    }

    /// `method` `path` with `body` (JSON when given), answered within `deadline`: the status
    /// and the body (at most [`MAX_ANSWER`] bytes).
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        deadline: Duration,
    ) -> Result<(u16, Bytes), Error> {
        let unreachable = |e: &dyn std::fmt::Display| {
            Error::new(
                ID,
                503,
                format!("the app at {} did not answer: {e}", self.base),
            )
        };
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header(SIDECAR_HEADER, &self.sidecar);
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| Error::internal(ID, format!("cannot build the app's request: {e}")))?;
        let answer = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| unreachable(&e))?;
            let status = response.status().as_u16();
            let body = Limited::new(response.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| {
                    Error::new(
                        ID,
                        502,
                        format!(
                            "the app's answer could not be read (over {MAX_ANSWER} bytes?): {e}"
                        ),
                    )
                })?
                .to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout(deadline, answer).await.map_err(|_| {
            Error::new(
                ID,
                504,
                format!("the app did not answer within {deadline:?}"),
            )
        })?
    }
}
