//! `micro config get|set|del`.

use micro::{config::RemoteConfig, remote::Connection};
use micro_core::config::Config;
use serde_json::Value;

use crate::{cli::ConfigCommand, context::Context, failure::Failure};

pub(crate) async fn run(ctx: &Context, action: Option<&ConfigCommand>) -> Result<(), Failure> {
    let action = match action {
        None | Some(ConfigCommand::Unknown(_)) => {
            return Err(Failure::new("Unrecognized subcommand for micro config"));
        }
        Some(a) => a,
    };
    let conn = Connection::from_channel(ctx.connect().await?, &ctx.address);
    let config = RemoteConfig::over(conn);
    let ns = &ctx.namespace;
    match action {
        ConfigCommand::Get { path, secret } => match config.get(ns, path, *secret).await {
            Ok(Value::String(s)) => println!("{s}"),
            Ok(value) => println!("{value}"),
            Err(e) if e.code == 404 => return Err(Failure::new("Not found")),
            Err(e) => return Err(e.into()),
        },
        ConfigCommand::Set {
            path,
            value,
            secret,
        } => {
            let value =
                serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.clone()));
            config.set(ns, path, value, *secret).await?;
        }
        ConfigCommand::Del { path } => config.delete(ns, path).await?,
        ConfigCommand::Unknown(_) => unreachable!("refused above"),
    }
    Ok(())
}
