//! The benches' HTTP client for the gateway: one keep-alive HTTP/1.1 connection, or a share of
//! one HTTP/2 connection (hyper, no pooling, no redirects), that POSTs helloworld's `Call` and
//! checks the answer, so a bench measures the gateway and not the client.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};

/// A keep-alive HTTP/1.1 connection to a gateway, or a handle on a shared HTTP/2 one, with the
/// `Authorization` its calls carry.
pub struct GatewayClient {
    sender: Sender,
    host: String,
    /// Where calls go: HTTP/2 names the authority in the request (`:authority`), HTTP/1.1 in
    /// the `host` header.
    uri: hyper::Uri,
    authorization: Option<String>,
}

enum Sender {
    Http1(http1::SendRequest<Full<Bytes>>),
    Http2(http2::SendRequest<Full<Bytes>>),
}

impl GatewayClient {
    /// Connects to the gateway at `address`; every call carries `authorization` if given
    /// (`Bearer TOKEN`).
    pub async fn connect(address: &str, authorization: Option<String>) -> Self {
        let stream = tokio::net::TcpStream::connect(address)
            .await
            .expect("connect to the gateway");
        stream.set_nodelay(true).expect("nodelay");
        let (sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .expect("HTTP/1.1 handshake");
        tokio::spawn(conn);
        Self {
            sender: Sender::Http1(sender),
            host: address.to_owned(),
            uri: hyper::Uri::from_static("/helloworld/call"),
            authorization,
        }
    }

    /// `n` callers sharing one HTTP/2 connection (prior knowledge, no TLS) to the gateway at
    /// `address`, as `n` gRPC callers share one channel.
    pub async fn connect_http2(
        address: &str,
        authorization: Option<String>,
        n: usize,
    ) -> Vec<Self> {
        let stream = tokio::net::TcpStream::connect(address)
            .await
            .expect("connect to the gateway");
        stream.set_nodelay(true).expect("nodelay");
        let (sender, conn) = http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(stream),
        )
        .await
        .expect("HTTP/2 handshake");
        tokio::spawn(conn);
        let uri: hyper::Uri = format!("http://{address}/helloworld/call")
            .parse()
            .expect("a URI");
        (0..n)
            .map(|_| Self {
                sender: Sender::Http2(sender.clone()),
                host: address.to_owned(),
                uri: uri.clone(),
                authorization: authorization.clone(),
            })
            .collect()
    }

    /// `POST /helloworld/call {"name":"bench"}`; panics unless the answer is 200 with
    /// `{"msg":"Hello bench"}`.
    pub async fn call_hello(&mut self) {
        let mut request =
            hyper::Request::post(self.uri.clone()).header("content-type", "application/json");
        if let Sender::Http1(_) = self.sender {
            request = request.header("host", &self.host);
        }
        if let Some(authorization) = &self.authorization {
            request = request.header("authorization", authorization);
        }
        let request = request
            .body(Full::new(Bytes::from_static(br#"{"name":"bench"}"#)))
            .expect("request");
        let response = match &mut self.sender {
            Sender::Http1(sender) => {
                sender.ready().await.expect("connection ready");
                sender.send_request(request).await.expect("send")
            }
            Sender::Http2(sender) => {
                sender.ready().await.expect("connection ready");
                sender.send_request(request).await.expect("send")
            }
        };
        assert_eq!(response.status(), 200);
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        assert_eq!(&body[..], br#"{"msg":"Hello bench"}"#);
    }
}
