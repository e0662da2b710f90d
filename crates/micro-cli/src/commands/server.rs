//! `micro server`: runs the platform in the foreground until Ctrl-C or SIGTERM.

use micro::Strategy;

use crate::{cli::ServerArgs, failure::Failure};

pub(crate) async fn run(args: &ServerArgs) -> Result<(), Failure> {
    micro::init_tracing();
    let strategy: Strategy = args.selector.parse().map_err(Failure::new)?;
    let platform = micro_server::start(micro_server::Options {
        address: args.address.clone(),
        strategy,
        ..Default::default()
    })
    .await?;
    println!("grpc listening on {}", platform.grpc_address());
    micro::service::shutdown_signal().await;
    tracing::info!("stopping");
    platform.stop().await;
    Ok(())
}
