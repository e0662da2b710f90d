//! A plain gRPC client, generated from the same proto and knowing nothing of Micro, reaches a
//! Micro service directly; reflection and health are served.

use micro_e2e::{Sandbox, helloworld};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
};

#[tokio::test]
async fn plain_tonic_client_reflection_and_health() {
    let sb = Sandbox::with_server();
    let hw = sb.helloworld(&[]);
    let url = format!("http://{}", hw.address);

    let mut client = helloworld::helloworld_client::HelloworldClient::connect(url.clone())
        .await
        .unwrap();
    let rsp = client
        .call(helloworld::Request {
            name: "Plain".into(),
        })
        .await
        .unwrap();
    assert_eq!(rsp.into_inner().msg, "Hello Plain");

    let mut stream = client
        .stream(helloworld::StreamingRequest { count: 3 })
        .await
        .unwrap()
        .into_inner();
    let mut counts = Vec::new();
    while let Some(item) = stream.message().await.unwrap() {
        counts.push(item.count);
    }
    assert_eq!(counts, [0, 1, 2]);

    let channel = tonic::transport::Endpoint::from_shared(url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut reflection = ServerReflectionClient::new(channel.clone());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = reflection
        .server_reflection_info(tokio_stream_once(request))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        answers.message().await.unwrap().unwrap().message_response
    else {
        panic!("expected a list of services");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"helloworld.Helloworld".to_owned()),
        "{names:?}"
    );

    let mut health = HealthClient::new(channel);
    for service in ["", "helloworld.Helloworld"] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(
            status,
            ServingStatus::Serving as i32,
            "health of {service:?}"
        );
    }
}

fn tokio_stream_once<T: Send + 'static>(
    item: T,
) -> impl tonic::codegen::tokio_stream::Stream<Item = T> {
    tonic::codegen::tokio_stream::iter([item])
}
