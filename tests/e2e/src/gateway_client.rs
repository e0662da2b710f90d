//! The benches' HTTP client for the gateway: one keep-alive HTTP/1.1 connection (hyper, no
//! pooling, no redirects) that POSTs helloworld's `Call` and checks the answer, so a bench
//! measures the gateway and not the client.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;

/// A keep-alive HTTP/1.1 connection to a gateway, with the `Authorization` its calls carry.
pub struct GatewayClient {
    sender: SendRequest<Full<Bytes>>,
    host: String,
    authorization: Option<String>,
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
            sender,
            host: address.to_owned(),
            authorization,
        }
    }

    /// `POST /helloworld/call {"name":"bench"}`; panics unless the answer is 200 with
    /// `{"msg":"Hello bench"}`.
    pub async fn call_hello(&mut self) {
        let mut request = hyper::Request::post("/helloworld/call")
            .header("host", &self.host)
            .header("content-type", "application/json");
        if let Some(authorization) = &self.authorization {
            request = request.header("authorization", authorization);
        }
        let request = request
            .body(Full::new(Bytes::from_static(br#"{"name":"bench"}"#)))
            .expect("request");
        self.sender.ready().await.expect("connection ready");
        let response = self.sender.send_request(request).await.expect("send");
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
