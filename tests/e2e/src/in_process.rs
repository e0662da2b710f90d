//! A platform in this process (`micro_server::start` on free ports, memory backends), for the
//! benches and for the tests that stop it at will.

use micro_proto::auth::{TokenRequest, auth_client::AuthClient};

/// A platform with its gRPC port and gateway on free ports, auth on or off.
pub async fn platform(auth: bool) -> micro_server::Platform {
    micro_server::start(micro_server::Options {
        address: "127.0.0.1:0".into(),
        api_address: Some("127.0.0.1:0".into()),
        web_address: None,
        auth: micro_server::AuthOptions {
            enabled: auth,
            ..Default::default()
        },
        ..Default::default()
    })
    .await
    .expect("an in-process platform")
}

/// A fresh access token of the default admin (`admin`/`micro`) of `platform`.
pub async fn admin_token(platform: &micro_server::Platform) -> String {
    AuthClient::connect(format!("http://{}", platform.grpc_address()))
        .await
        .expect("auth client")
        .token(TokenRequest {
            id: "admin".into(),
            secret: "micro".into(),
            refresh_token: String::new(),
        })
        .await
        .expect("admin token")
        .into_inner()
        .token
        .expect("a token")
        .access_token
}

/// helloworld as a Micro service (`micro::Service`, every default layer) on a free port,
/// registered with `platform`.
pub async fn helloworld(platform: &micro_server::Platform) -> micro::service::Running {
    use crate::helloworld::{DESCRIPTORS, helloworld_server::HelloworldServer};
    micro::Service::new("helloworld")
        .descriptors(DESCRIPTORS)
        .handle(HelloworldServer::new(crate::Hello))
        .server(platform.grpc_address().to_string())
        .address("127.0.0.1:0")
        .start()
        .await
        .expect("helloworld")
}
