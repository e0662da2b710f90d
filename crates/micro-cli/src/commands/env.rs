//! `micro env`, `env add`, `env set`, `env del`.

use crate::{cli::EnvCommand, config::EnvEntry, config::LOCAL, context::Context, failure::Failure};

pub(crate) fn run(ctx: Context, action: Option<&EnvCommand>) -> Result<(), Failure> {
    let mut config = ctx.config;
    match action {
        None => {
            let rows: Vec<[String; 3]> = config
                .all()
                .into_iter()
                .map(|(name, env)| {
                    let mark = if name == config.env { "* " } else { "  " };
                    [format!("{mark}{name}"), env.address, env.description]
                })
                .collect();
            for row in rows.iter() {
                let w0 = rows.iter().map(|r| r[0].len()).max().unwrap_or(0);
                let w1 = rows.iter().map(|r| r[1].len()).max().unwrap_or(0);
                let line = format!("{:<w0$}  {:<w1$}  {}", row[0], row[1], row[2]);
                println!("{}", line.trim_end());
            }
            Ok(())
        }
        Some(EnvCommand::Add {
            name,
            address,
            description,
            tls,
            ca,
        }) => {
            if name.is_empty() || name.contains(char::is_whitespace) {
                return Err(Failure::new(format!(
                    "Invalid env name {name:?}: use letters, digits and dashes"
                )));
            }
            if config.get(name).is_some() {
                return Err(Failure::new(format!(
                    "Env \"{name}\" already exists; remove it first with 'micro env del {name}'"
                )));
            }
            // Several servers sharing engines are a comma-separated list.
            if address.split(',').map(str::trim).any(|one| {
                one.rsplit_once(':')
                    .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
            }) {
                return Err(Failure::new(format!(
                    "Invalid address {address:?}: write it as host:port, or several as host:port,host:port"
                )));
            }
            config.envs.insert(
                name.clone(),
                EnvEntry {
                    address: address.clone(),
                    description: description.clone(),
                    tls: *tls || ca.is_some(),
                    ca: ca.clone(),
                },
            );
            config.save()
        }
        Some(EnvCommand::Set { name }) => {
            if config.get(name).is_none() {
                return Err(Failure::new(format!(
                    "Env \"{name}\" not found. See 'micro env' for the envs there are"
                )));
            }
            config.env = name.clone();
            config.save()
        }
        Some(EnvCommand::Del { name }) => {
            if name == LOCAL {
                return Err(Failure::new(format!(
                    "Env \"{name}\" is built in and cannot be removed"
                )));
            }
            if name == &config.env {
                return Err(Failure::new(format!(
                    "Env \"{name}\" is the current env; switch first with 'micro env set local'"
                )));
            }
            if config.envs.remove(name).is_none() {
                return Err(Failure::new(format!("Env \"{name}\" not found")));
            }
            config.namespaces.remove(name);
            config.save()?;
            // Its logins go with it: a new env of the same name is another server.
            let mut tokens = crate::tokens::TokenFile::load()?;
            tokens.remove_env(name);
            tokens.save()
        }
    }
}
