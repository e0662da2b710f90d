//! Where a command talks to: the server address and namespace, from flags, environment variables
//! and the CLI config, in that order of precedence (`MICRO_SERVER_ADDRESS` wins over the env).

use std::time::Duration;

use micro_core::metadata::{DEFAULT_NAMESPACE, ENV_SERVER_ADDRESS};
use tonic::transport::{Channel, Endpoint};

use crate::{cli::Cli, config::Config, failure::Failure};

/// The resolved target of a command.
pub(crate) struct Context {
    pub(crate) config: Config,
    pub(crate) address: String,
    pub(crate) namespace: String,
}

impl Context {
    pub(crate) fn new(cli: &Cli) -> Result<Self, Failure> {
        let config = Config::load(cli.config.as_deref())?;
        let env_name = cli.env.clone().unwrap_or_else(|| config.env.clone());
        let env = config.get(&env_name).ok_or_else(|| {
            Failure::new(format!(
                "Env \"{env_name}\" not found. See 'micro env' for the envs there are"
            ))
        })?;
        let address = std::env::var(ENV_SERVER_ADDRESS)
            .ok()
            .filter(|a| !a.trim().is_empty())
            .unwrap_or(env.address);
        let namespace = cli
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
        Ok(Self {
            config,
            address,
            namespace,
        })
    }

    /// A connection to the server, made now so that an unreachable server is reported as such.
    pub(crate) async fn connect(&self) -> Result<Channel, Failure> {
        let unreachable = || {
            Failure::with_code(
                4,
                format!("Failed to connect to micro server at {}", self.address),
            )
        };
        let endpoint = Endpoint::from_shared(format!("http://{}", self.address))
            .map_err(|_| {
                Failure::new(format!(
                    "Invalid server address {:?}: write it as host:port",
                    self.address
                ))
            })?
            .connect_timeout(Duration::from_secs(3))
            .tcp_nodelay(true);
        endpoint.connect().await.map_err(|_| unreachable())
    }

    /// A request carrying the namespace.
    pub(crate) fn request<T>(&self, msg: T) -> Result<tonic::Request<T>, Failure> {
        micro::remote::namespaced(&self.namespace, msg)
            .map_err(|_| Failure::new(format!("Invalid namespace {:?}", self.namespace)))
    }

    /// The registry of the server.
    pub(crate) async fn registry(&self) -> Result<micro::registry::RemoteRegistry, Failure> {
        let channel = self.connect().await?;
        Ok(micro::registry::RemoteRegistry::from_channel(
            channel,
            &self.address,
        ))
    }
}
