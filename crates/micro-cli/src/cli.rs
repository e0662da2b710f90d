//! The command-line grammar (clap). Each command's `about` starts `micro <cmd> - `.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// micro - a platform for building and running microservices
#[derive(Debug, Parser)]
#[command(
    name = "micro",
    version,
    about = "micro - a platform for building and running microservices"
)]
#[command(allow_external_subcommands = true, disable_help_subcommand = true)]
pub(crate) struct Cli {
    /// The environment to use (see `micro env`)
    #[arg(short = 'e', long = "env", global = true, env = "MICRO_ENV")]
    pub(crate) env: Option<String>,
    /// The namespace to act in (default `micro`)
    #[arg(long, global = true, env = "MICRO_NAMESPACE")]
    pub(crate) namespace: Option<String>,
    /// The CLI config file (default `~/.micro/config.json`)
    #[arg(short = 'c', long = "config", global = true, env = "MICRO_CONFIG_FILE")]
    pub(crate) config: Option<PathBuf>,
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// micro server - run the platform: registry, gRPC proxy, API gateway and dashboard
    #[command(
        about = "micro server - run the platform: registry, gRPC proxy, API gateway and dashboard"
    )]
    Server(ServerArgs),
    /// micro services - list the services registered in the namespace
    #[command(about = "micro services - list the services registered in the namespace")]
    Services,
    /// micro get - show a resource
    #[command(about = "micro get - show a resource")]
    Get {
        #[command(subcommand)]
        what: GetCommand,
    },
    /// micro call - call a service endpoint with JSON
    #[command(about = "micro call - call a service endpoint with JSON")]
    Call(CallArgs),
    /// micro stream - call a server-streaming endpoint, printing each response as it arrives
    #[command(
        about = "micro stream - call a server-streaming endpoint, printing each response as it arrives"
    )]
    Stream(CallArgs),
    /// micro new - scaffold a service crate that builds with cargo alone
    #[command(about = "micro new - scaffold a service crate that builds with cargo alone")]
    New(NewArgs),
    /// micro env - list, add, switch and remove environments
    #[command(about = "micro env - list, add, switch and remove environments")]
    Env {
        #[command(subcommand)]
        action: Option<EnvCommand>,
    },
    /// A service name: a dynamic command
    #[command(external_subcommand)]
    External(Vec<String>),
}

#[derive(Debug, Args)]
pub(crate) struct ServerArgs {
    /// gRPC address for the platform services and the proxy (`:port`, `host:port`; port 0 picks one)
    #[arg(long, default_value = ":8081")]
    pub(crate) address: String,
    /// HTTP API gateway address
    #[arg(long = "api-address", default_value = ":8080")]
    pub(crate) api_address: String,
    /// Web dashboard address
    #[arg(long = "web-address", default_value = ":8082")]
    pub(crate) web_address: String,
    /// How the proxy picks a node: roundrobin or random
    #[arg(long, default_value = "roundrobin")]
    pub(crate) selector: String,
    /// Largest request body the gateway accepts, in bytes (bigger ones get 413)
    #[arg(long = "api-max-body", default_value_t = micro_server::gateway::DEFAULT_MAX_BODY)]
    pub(crate) api_max_body: usize,
    /// Do not answer CORS requests at the gateway
    #[arg(long = "no-cors")]
    pub(crate) no_cors: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum GetCommand {
    /// micro get service - show a service's versions, nodes and endpoints
    #[command(about = "micro get service - show a service's versions, nodes and endpoints")]
    Service {
        /// The service name
        name: String,
    },
}

#[derive(Debug, Args)]
pub(crate) struct CallArgs {
    /// The service name, e.g. helloworld
    pub(crate) service: String,
    /// The endpoint, Service.Method, e.g. Helloworld.Call
    pub(crate) endpoint: String,
    /// The request as JSON
    #[arg(default_value = "{}")]
    pub(crate) request: String,
    /// Call this node (host:port) instead of selecting one
    #[arg(long)]
    pub(crate) address: Option<String>,
    /// Request metadata, k=v (repeatable)
    #[arg(long = "metadata", value_name = "K=V")]
    pub(crate) metadata: Vec<String>,
    /// How long to wait for the answer
    #[arg(long = "request-timeout", default_value = "5s", value_parser = humantime::parse_duration)]
    pub(crate) request_timeout: std::time::Duration,
    /// json (indented) or raw (as received)
    #[arg(long, default_value = "json", value_parser = ["json", "raw"])]
    pub(crate) output: String,
}

#[derive(Debug, Args)]
pub(crate) struct NewArgs {
    /// The service name (lower-case, dashes allowed: foo-bar); the directory to create
    pub(crate) name: String,
    /// A Micro for Rust checkout to depend on (default: the one this CLI was built from)
    #[arg(long = "micro-path", value_name = "DIR")]
    pub(crate) micro_path: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum EnvCommand {
    /// micro env add - add an environment
    #[command(about = "micro env add - add an environment")]
    Add {
        /// The environment's name
        name: String,
        /// The server's gRPC address, host:port
        address: String,
        /// What the environment is
        #[arg(long, default_value = "")]
        description: String,
    },
    /// micro env set - switch to an environment
    #[command(about = "micro env set - switch to an environment")]
    Set {
        /// The environment's name
        name: String,
    },
    /// micro env del - remove an environment
    #[command(about = "micro env del - remove an environment")]
    Del {
        /// The environment's name
        name: String,
    },
}
