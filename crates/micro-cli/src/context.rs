//! Where a command talks to, and as whom: the server address and namespace, from flags,
//! environment variables and the CLI config, in that order of precedence
//! (`MICRO_SERVER_ADDRESS` wins over the env); and the saved login of that env and namespace,
//! refreshed when it is about to expire.

use std::time::Duration;

use micro::{auth::Login, remote::Connection};
use micro_core::metadata::{DEFAULT_NAMESPACE, ENV_SERVER_ADDRESS};
use tonic::transport::Channel;

use crate::{
    cli::Cli,
    config::Config,
    failure::Failure,
    tokens::{Saved, TokenFile},
};

/// The resolved target of a command.
pub(crate) struct Context {
    pub(crate) config: Config,
    /// The env's name.
    pub(crate) env: String,
    pub(crate) address: String,
    /// Over TLS, verifying the server as this says (the env's `--tls`/`--ca`, or `MICRO_TLS`).
    tls: Option<micro::tls::Tls>,
    /// `--insecure`: tokens and passwords may cross the network in plaintext.
    insecure: bool,
    pub(crate) namespace: String,
    /// The namespace the env is set to (`micro user namespace set`), whose login serves when
    /// `--namespace` names one with no login of its own.
    home_namespace: String,
    /// Set once the saved login is loaded (and refreshed).
    authenticated: tokio::sync::OnceCell<()>,
}

/// A token this close to expiry is refreshed before use.
const REFRESH_MARGIN: Duration = Duration::from_secs(60);

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
        let home_namespace = config
            .namespaces
            .get(&env_name)
            .cloned()
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
        let namespace = cli
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| home_namespace.clone());
        let tls = match micro::tls::Tls::from_env().map_err(|e| Failure::new(e.detail))? {
            Some(tls) => Some(tls),
            None if env.tls => Some(micro::tls::Tls {
                ca: env
                    .ca
                    .as_ref()
                    .map(|path| {
                        std::fs::read(path).map_err(|e| {
                            Failure::new(format!(
                                "cannot read the CA {} of env {env_name}: {e}",
                                path.display()
                            ))
                        })
                    })
                    .transpose()?,
            }),
            None => None,
        };
        // The framework's own connections (the typed platform clients) follow the same rules.
        micro::tls::configure(tls.clone());
        micro::tls::allow_insecure(cli.insecure || micro::tls::insecure_allowed());
        Ok(Self {
            config,
            env: env_name,
            tls,
            insecure: cli.insecure,
            address,
            namespace,
            home_namespace,
            authenticated: tokio::sync::OnceCell::new(),
        })
    }

    /// A connection to the server as the saved login (made now, so that an unreachable server is
    /// reported as such).
    pub(crate) async fn connect(&self) -> Result<Channel, Failure> {
        // Requests may carry a token, and bodies secrets (`auth create account --secret`).
        self.may_send_secrets()?;
        let channel = self.connect_anonymous().await?;
        self.authenticated
            .get_or_try_init(|| self.authenticate(&channel))
            .await?;
        Ok(channel)
    }

    /// Which saved login serves this namespace: its own, else the env's namespace's (a `micro`
    /// admin may act in any namespace).
    pub(crate) fn login_namespace(&self, tokens: &TokenFile) -> Option<String> {
        [&self.namespace, &self.home_namespace]
            .into_iter()
            .find(|ns| tokens.get(&self.env, ns).is_some())
            .cloned()
    }

    /// Loads the saved login into this process's identity, refreshing it first when it has
    /// expired or is about to.
    async fn authenticate(&self, channel: &Channel) -> Result<(), Failure> {
        let mut tokens = TokenFile::load()?;
        let Some(ns) = self.login_namespace(&tokens) else {
            micro::auth::set_token(None);
            return Ok(());
        };
        let Some(saved) = tokens.get(&self.env, &ns).cloned() else {
            return Ok(());
        };
        if !saved.tokens.stale(REFRESH_MARGIN) {
            micro::auth::set_token(Some(saved.tokens.access_token));
            return Ok(());
        }
        let conn = Connection::from_channel(channel.clone(), &self.address);
        let refresh = Login::Refresh(saved.tokens.refresh_token.clone());
        match micro::auth::login(&conn, &ns, &refresh).await {
            Ok(fresh) => {
                micro::auth::set_token(Some(fresh.access_token.clone()));
                tokens.set(
                    &self.env,
                    &ns,
                    Saved {
                        tokens: fresh,
                        ..saved
                    },
                );
                tokens.save()
            }
            Err(e) if e.code == 401 => {
                tokens.remove(&self.env, &ns);
                tokens.save()?;
                Err(Failure::with_code(
                    2,
                    format!(
                        "Your login to {} (namespace {ns}) has expired; log in again with: micro login",
                        self.env
                    ),
                ))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Refuses to send a token or password to the server in plaintext, unless it is on this
    /// machine or `--insecure` says the network is trusted.
    pub(crate) fn may_send_secrets(&self) -> Result<(), Failure> {
        micro::tls::check_token_transport(&self.address, self.tls.is_some(), self.insecure)
            .map_err(|e| Failure::new(e.detail))
    }

    /// A connection to the server with no login.
    pub(crate) async fn connect_anonymous(&self) -> Result<Channel, Failure> {
        let unreachable = || {
            Failure::with_code(
                4,
                format!("Failed to connect to micro server at {}", self.address),
            )
        };
        let invalid = |detail: &str| {
            Failure::new(format!(
                "Invalid server address {:?} (write it as host:port, or several as a,b): {detail}",
                self.address
            ))
        };
        // Several servers sharing engines: the first that answers serves this command.
        let addresses =
            micro::failover::addresses(&self.address).map_err(|e| invalid(&e.detail))?;
        for address in &addresses {
            let endpoint = micro::tls::endpoint_with(address, self.tls.as_ref())
                .map_err(|e| invalid(&e.detail))?
                .connect_timeout(Duration::from_secs(3))
                .tcp_nodelay(true);
            if let Ok(channel) = endpoint.connect().await {
                return Ok(channel);
            }
        }
        Err(unreachable())
    }

    /// A request carrying the namespace, and the login once [`Self::connect`] has loaded it.
    pub(crate) fn request<T>(&self, msg: T) -> Result<tonic::Request<T>, Failure> {
        micro::remote::namespaced(&self.namespace, msg, &micro::auth::Credentials::process())
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
