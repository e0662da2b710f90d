//! `micro server`: runs the platform in the foreground until Ctrl-C or SIGTERM.

use micro::Strategy;

use crate::{
    cli::{ServerAction, ServerArgs},
    failure::Failure,
};

/// `micro server recover`: resets an admin of `micro` in the stopped server's files.
async fn recover(username: &str, password: Option<&str>) -> Result<(), Failure> {
    let password = match password {
        Some(p) => p.to_owned(),
        None => rpassword::prompt_password(format!("New password for {username}: "))
            .map_err(|e| Failure::new(format!("cannot read the password: {e}")))?,
    };
    let home = crate::config::home();
    micro_server::recover_admin(&home, username, &password).await?;
    println!(
        "{username} (namespace micro, scope admin) can log in with the new password; its older tokens no longer work"
    );
    Ok(())
}

pub(crate) async fn run(args: &ServerArgs) -> Result<(), Failure> {
    if let Some(ServerAction::Recover { username, password }) = &args.action {
        return recover(username, password.as_deref()).await;
    }
    micro::init_tracing_as("micro-server");
    let strategy: Strategy = args.selector.parse().map_err(Failure::new)?;
    let engine = |concern: &str, kind: &str, address: &Option<String>| {
        micro_server::Engine::parse(concern, kind, address.as_deref())
    };
    let engines = micro_server::Engines {
        registry: engine("registry", &args.registry, &args.registry_address)?,
        broker: engine("broker", &args.broker, &args.broker_address)?,
        events: engine("events", &args.events, &args.events_address)?,
        store: engine("store", &args.store, &args.store_address)?,
    };
    let platform = micro_server::start(micro_server::Options {
        address: args.address.clone(),
        api_address: Some(args.api_address.clone()),
        web_address: Some(args.web_address.clone()),
        strategy,
        gateway: micro_server::gateway::GatewayOptions {
            max_body: args.api_max_body,
            cors: !args.no_cors,
        },
        home: Some(crate::config::home()),
        build_dir: args.build_dir.clone(),
        auth: micro_server::AuthOptions {
            enabled: args.auth == "on",
            default_account: !args.no_default_account,
            token_ttl: args.token_ttl,
        },
        tls: match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => Some(micro_server::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                ca: args.tls_ca.clone(),
            }),
            _ => None,
        },
        limits: micro_server::listener::ListenerLimits {
            max_connections: args.max_connections.map(|n| n as usize),
            idle_timeout: args.idle_timeout,
            ..Default::default()
        },
        engines,
        keys: micro_server::KeyFiles {
            token: args.token_key.clone(),
            secret: args.secret_key.clone(),
        },
        ..Default::default()
    })
    .await?;
    println!("grpc listening on {}", platform.grpc_address());
    if let Some(address) = platform.api_address() {
        println!("api listening on {address}");
    }
    if let Some(address) = platform.web_address() {
        println!("web listening on {address}");
    }
    micro::service::shutdown_signal().await;
    tracing::info!("stopping");
    platform.stop().await;
    micro::trace::shutdown().await;
    Ok(())
}
