//! `micro sidecar`: a service written in any language joins the platform through a process
//! beside it (Micro's sidecar).
//!
//! - It registers `--name` with the endpoints given as `--endpoint Name.Method=/path`, serving
//!   them over gRPC like any service built with the framework (`descriptors` makes their
//!   protos: any JSON object in, any JSON object out), and forwards each call to the app as an
//!   HTTP POST of its JSON (`forward`). `micro call`, the gateway and the dashboard reach it
//!   like any service, through the same checks of the caller.
//! - It checks the app's health every second (`health`): it registers only once the app
//!   answers, deregisters within 3 s of the app going quiet, and registers again when it
//!   answers; on SIGTERM or Ctrl-C it deregisters and exits.
//! - The app reaches the platform through the sidecar's HTTP address (`app_api`): calls by
//!   the gateway's paths, the broker's publish and a WebSocket subscription — as the sidecar's
//!   account (`MICRO_AUTH_ID` / `MICRO_AUTH_SECRET`), in its namespace.

mod app_api;
mod app_client;
mod descriptors;
mod forward;
mod health;

use std::time::Duration;

use micro::remote::Connection;
use micro_core::Error;

use self::{
    app_client::App,
    forward::Forward,
    health::{Change, Health},
};

const ID: &str = "micro.sidecar";
/// How often the app's health is checked.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// How long a health check may take.
const CHECK_WITHIN: Duration = Duration::from_millis(800);

/// What `micro sidecar` runs.
#[derive(Debug, Clone)]
pub struct SidecarOptions {
    /// The service name to register.
    pub name: String,
    /// The version to register.
    pub version: String,
    /// The app's base URL, `http://127.0.0.1:PORT`.
    pub app: String,
    /// The app's health path; any 2xx answer is healthy.
    pub health: String,
    /// `Name.Method` → the app's path for it.
    pub endpoints: Vec<(String, String)>,
    /// Where the service's gRPC server listens (`127.0.0.1:0` picks a port).
    pub address: String,
    /// Where the app reaches the platform.
    pub http_address: String,
    /// The platform's gRPC address.
    pub server: String,
    /// The namespace to register in.
    pub namespace: String,
}

/// Runs the sidecar until `stop` resolves: registers the service while the app is healthy,
/// serves the app's HTTP address, and deregisters at the end. Prints
/// `sidecar http listening on ADDR` once the app's address is up, and `NAME registered at
/// ADDR` / `NAME deregistered: WHY` as the app comes and goes.
pub async fn run(options: SidecarOptions, stop: impl Future<Output = ()>) -> Result<(), Error> {
    let protos = descriptors::protos(&options.name, &options.endpoints)?;
    if !options.health.starts_with('/') || options.health.chars().any(char::is_whitespace) {
        return Err(Error::bad_request(
            ID,
            format!("--health {:?} must be a path: /health", options.health),
        ));
    }
    // The service is made again each time the app comes back; its protos live as long as the
    // process, made once.
    let set: &'static [u8] = Box::leak(protos.set.into_boxed_slice());
    let services: Vec<&'static str> = protos
        .services
        .into_iter()
        .map(|s| &*Box::leak(s.into_boxed_str()))
        .collect();

    let listener = tokio::net::TcpListener::bind(&options.http_address)
        .await
        .map_err(|e| {
            Error::bad_request(
                ID,
                format!("cannot listen on {}: {e}", options.http_address),
            )
        })?;
    let http_address = listener
        .local_addr()
        .map_err(|e| Error::internal(ID, e.to_string()))?;
    let conn = Connection::lazy(&options.server)?;
    let app = App::new(&options.app, &format!("http://{http_address}"))?;
    let forward = Forward::new(app.clone(), protos.routes);
    let api = app_api::router(conn, options.namespace.clone(), http_address);
    let serving = tokio::spawn(async move {
        let _ = axum::serve(listener, api).await;
    });
    println!("sidecar http listening on {http_address}");

    let mut health = Health::default();
    let mut running: Option<micro::service::Running> = None;
    let mut tick = tokio::time::interval(CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(stop);
    let outcome = loop {
        tokio::select! {
            () = &mut stop => break Ok(()),
            _ = tick.tick() => {}
        }
        let check = app
            .send(http::Method::GET, &options.health, None, CHECK_WITHIN)
            .await;
        let answered = matches!(&check, Ok((status, _)) if (200..300).contains(status));
        match health.observe(answered) {
            Some(Change::Register) => {
                let mut service = micro::Service::new(options.name.clone())
                    .version(options.version.clone())
                    .namespace(options.namespace.clone())
                    .server(options.server.clone())
                    .address(options.address.clone())
                    .metadata("sidecar", "true")
                    .descriptors(set);
                for name in &services {
                    service = service.handle_dynamic(name, forward.clone());
                }
                match service.start().await {
                    Ok(started) => {
                        println!("{} registered at {}", options.name, started.address());
                        running = Some(started);
                    }
                    // Tried again at the next check.
                    Err(e) => {
                        eprintln!("{} could not register: {e}", options.name);
                        health = Health::default();
                    }
                }
            }
            Some(Change::Deregister) => {
                let why = match check {
                    Ok((status, _)) => format!("its health check answered {status}"),
                    Err(e) => e.detail,
                };
                if let Some(started) = running.take() {
                    let _ = started.stop().await;
                }
                println!(
                    "{} deregistered: the app stopped answering ({why})",
                    options.name
                );
            }
            None => {}
        }
    };
    if let Some(started) = running.take() {
        started.stop().await?;
        println!("{} deregistered", options.name);
    }
    serving.abort();
    outcome
}
