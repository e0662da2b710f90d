//! What every gRPC server of the platform answers besides its handlers: `grpc.health.v1`
//! (each handler and the server as a whole SERVING) and reflection, v1 and v1alpha (grpcurl and
//! older clients ask for the latter), over the server's descriptor sets. A service and `micro
//! server` add them with the same call.

use micro_core::Error;
use tonic::service::Routes;

use super::ID;

/// `routes` with health (every one of `handlers` SERVING, and the server) and reflection over
/// `sets`.
pub async fn introspected(
    routes: Routes,
    sets: &[&'static [u8]],
    handlers: &[&'static str],
) -> Result<Routes, Error> {
    let (reporter, health) = tonic_health::server::health_reporter();
    for handler in handlers {
        reporter
            .set_service_status(*handler, tonic_health::ServingStatus::Serving)
            .await;
    }
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let (v1, v1alpha) = reflection(sets)?;
    Ok(routes
        .add_service(health)
        .add_service(v1)
        .add_service(v1alpha))
}

/// gRPC reflection, v1 and v1alpha (grpcurl and older clients ask for the latter), over the
/// given encoded descriptor sets.
pub fn reflection(
    sets: &[&'static [u8]],
) -> Result<
    (
        tonic_reflection::server::v1::ServerReflectionServer<
            impl tonic_reflection::server::v1::ServerReflection,
        >,
        tonic_reflection::server::v1alpha::ServerReflectionServer<
            impl tonic_reflection::server::v1alpha::ServerReflection,
        >,
    ),
    Error,
> {
    let mut v1 = tonic_reflection::server::Builder::configure();
    let mut v1alpha = tonic_reflection::server::Builder::configure();
    for set in sets {
        v1 = v1.register_encoded_file_descriptor_set(set);
        v1alpha = v1alpha.register_encoded_file_descriptor_set(set);
    }
    let failed = |e: tonic_reflection::server::Error| {
        Error::internal(ID, format!("failed to build the reflection service: {e}"))
    };
    Ok((
        v1.build_v1().map_err(failed)?,
        v1alpha.build_v1alpha().map_err(failed)?,
    ))
}
