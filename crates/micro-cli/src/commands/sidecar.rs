//! `micro sidecar`: see [`micro_server::sidecar`].

use micro_server::sidecar::{self, SidecarOptions};

use crate::{cli::SidecarArgs, failure::Failure};

/// Runs the sidecar until SIGTERM or Ctrl-C.
pub(crate) async fn run(args: &SidecarArgs) -> Result<(), Failure> {
    let mut endpoints = Vec::with_capacity(args.endpoints.len());
    for spec in &args.endpoints {
        let (endpoint, path) = spec.split_once('=').ok_or_else(|| {
            Failure::new(format!(
                "--endpoint {spec:?} is not Name.Method=/path (the app's path for the endpoint)"
            ))
        })?;
        endpoints.push((endpoint.to_owned(), path.to_owned()));
    }
    // A sidecar is a service: it reads a service's environment, as the framework does.
    let env = micro::env::Env::read();
    let options = SidecarOptions {
        name: args.name.clone(),
        version: args.version.clone(),
        app: args.app.clone(),
        health: args.health.clone(),
        endpoints,
        address: args.address.clone(),
        http_address: args.http_address.clone(),
        server: env.server_address,
        namespace: env.namespace,
    };
    sidecar::run(options, micro::service::shutdown_signal())
        .await
        .map_err(|e| Failure::new(e.detail))
}
