//! One module per command; `run` dispatches.

mod call;
mod dynamic;
mod env;
mod new;
mod server;
mod services;

use crate::{
    cli::{Cli, Command, GetCommand},
    context::Context,
    failure::Failure,
};

/// Runs the parsed command line.
pub(crate) async fn run(cli: Cli) -> Result<(), Failure> {
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
        Command::Stream(args) => call::run_stream(&Context::new(&cli)?, args).await,
        Command::New(args) => new::run(args),
        Command::Env { action } => env::run(Context::new(&cli)?, action.as_ref()),
        Command::External(words) => dynamic::run(&Context::new(&cli)?, words).await,
    }
}
