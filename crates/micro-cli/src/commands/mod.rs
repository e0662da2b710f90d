//! One module per command; `run` dispatches.

mod auth;
mod bench;
mod broker;
mod call;
mod completion;
mod config;
pub(crate) mod dynamic;
mod env;
mod events;
mod interactive;
mod new;
mod runtime;
mod server;
pub(crate) mod services;
mod sidecar;
mod store;

use crate::{
    cli::{Cli, Command, GetCommand},
    context::Context,
    failure::Failure,
};

/// Runs the parsed command line. Every command but `server` runs in one span, the root of the
/// trace its calls continue, exported when an OTLP endpoint is set (see `micro::trace`).
pub(crate) async fn run(cli: Cli) -> Result<(), Failure> {
    if matches!(cli.command, Some(Command::Server(_))) {
        return dispatch(cli).await;
    }
    if !micro::trace::init_exporter_only("micro-cli") {
        return dispatch(cli).await;
    }
    // The command's name as clap parsed it (a flag's value never names the span); a
    // service's own command is `micro SERVICE`, named by the service.
    let word: String = match &cli.command {
        Some(Command::External(words)) => words.first().cloned().unwrap_or_default(),
        _ => <Cli as clap::CommandFactory>::command()
            .try_get_matches_from(std::env::args_os())
            .ok()
            .and_then(|m| m.subcommand_name().map(str::to_owned))
            .unwrap_or_default(),
    }
    .chars()
    .take(64)
    .collect();
    let span = || {
        tracing::info_span!(
            "micro",
            otel.name = %format!("micro {word}"),
            otel.kind = "client",
        )
    };
    // The command begins a trace: kept as the sampler says.
    let result = micro::trace::root(span, dispatch(cli)).await;
    micro::trace::shutdown().await;
    result
}

pub(crate) async fn dispatch(cli: Cli) -> Result<(), Failure> {
    let Some(command) = &cli.command else {
        return Err(Failure::new(
            "No command provided to micro. Please refer to 'micro --help'",
        ));
    };
    match command {
        Command::Server(args) => server::run(args).await,
        Command::Services => services::list(&Context::new(&cli)?).await,
        Command::Get {
            what: GetCommand::Service { name },
        } => services::get(&Context::new(&cli)?, name).await,
        Command::Call(args) => call::run(&Context::new(&cli)?, args).await,
        Command::Bench(args) => bench::run(&Context::new(&cli)?, args).await,
        Command::Stream(args) => call::run_stream(&Context::new(&cli)?, args).await,
        Command::New(args) => new::run(args),
        Command::Sidecar(args) => sidecar::run(args).await,
        Command::Cli => interactive::run(&cli).await,
        Command::Bot(args) => crate::bot::run(args).await,
        Command::Completion(args) => completion::script(args),
        Command::Complete { words } => completion::candidates_of(&cli, words).await,
        Command::Env { action } => env::run(Context::new(&cli)?, action.as_ref()),
        Command::Store { action } => store::run(&Context::new(&cli)?, action.as_ref()).await,
        Command::Config { action } => config::run(&Context::new(&cli)?, action.as_ref()).await,
        Command::Publish { topic, message } => {
            broker::publish(&Context::new(&cli)?, topic, message).await
        }
        Command::Subscribe { topic, queue } => {
            broker::subscribe(&Context::new(&cli)?, topic, queue.as_deref()).await
        }
        Command::Events { action } => events::run(&Context::new(&cli)?, action.as_ref()).await,
        Command::Run(args) => runtime::run(&Context::new(&cli)?, args).await,
        Command::Update(args) => runtime::update(&Context::new(&cli)?, args).await,
        Command::Kill { name } => runtime::kill(&Context::new(&cli)?, name).await,
        Command::Status { name } => runtime::status(&Context::new(&cli)?, name.as_deref()).await,
        Command::Logs(args) => runtime::logs(&Context::new(&cli)?, args).await,
        Command::Login { username, password } => {
            auth::login(&Context::new(&cli)?, username.clone(), password.clone()).await
        }
        Command::Logout => auth::logout(&Context::new(&cli)?),
        Command::User { action } => auth::user(&Context::new(&cli)?, action.as_ref()).await,
        Command::Auth { action } => auth::run(&Context::new(&cli)?, action).await,
        Command::External(words) => dynamic::run(&Context::new(&cli)?, words).await,
    }
}
