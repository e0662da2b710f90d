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
    /// Send tokens in plaintext to a server that is not on this machine (a trusted network)
    #[arg(long, global = true, env = "MICRO_INSECURE", value_parser = clap::builder::FalseyValueParser::new())]
    pub(crate) insecure: bool,
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// micro server - run the platform: registry, gRPC proxy, API gateway and dashboard
    #[command(
        about = "micro server - run the platform: registry, gRPC proxy, API gateway and dashboard"
    )]
    Server(Box<ServerArgs>),
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
    /// micro bench - load a service endpoint and report throughput, errors and latency
    #[command(
        about = "micro bench - load a service endpoint and report throughput, errors and latency"
    )]
    Bench(BenchArgs),
    /// micro cli - the interactive CLI: a prompt running the same commands, with completion
    #[command(
        about = "micro cli - the interactive CLI: a prompt running the same commands, with completion"
    )]
    Cli,
    /// micro completion - print a shell's completion script (bash, zsh or fish)
    #[command(
        about = "micro completion - print a shell's completion script (bash, zsh or fish)",
        long_about = "micro completion - print a shell's completion script (bash, zsh or fish)\n\n\
            bash: source <(micro completion bash)\n\
            zsh:  source <(micro completion zsh)\n\
            fish: micro completion fish | source\n\n\
            Commands and flags complete, and service names and endpoint words from the registry."
    )]
    Completion(CompletionArgs),
    /// The candidates for the last of WORDS (what the completion scripts ask)
    #[command(name = "__complete", hide = true)]
    Complete {
        /// The words typed after `micro`, the last one being completed
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        words: Vec<String>,
    },
    /// micro bot - run CLI commands from chat (Slack, or any chat system's webhook)
    #[command(
        about = "micro bot - run CLI commands from chat (Slack, or any chat system's webhook)",
        long_about = "micro bot - run CLI commands from chat (Slack, or any chat system's webhook)\n\n\
            Inputs: Slack's Events API at /slack/events when SLACK_SIGNING_SECRET and \
            SLACK_BOT_TOKEN are set (SLACK_API_URL moves the API), and POST /webhook when \
            MICRO_BOT_WEBHOOK_TOKEN is set. Each chat user runs commands as the account the \
            users file maps them to."
    )]
    Bot(BotArgs),
    /// micro sidecar - join a service written in any language to the platform
    #[command(
        about = "micro sidecar - join a service written in any language to the platform",
        long_about = "micro sidecar - join a service written in any language to the platform\n\n\
            Registers NAME with the given endpoints while the app answers its health check, \
            forwards each call to the app as an HTTP POST of its JSON, and serves the app the \
            platform on its own HTTP address (POST /SERVICE/ENDPOINT, POST /publish/TOPIC, \
            WebSocket /subscribe/TOPIC). It reads a service's environment: \
            MICRO_SERVER_ADDRESS, MICRO_NAMESPACE, MICRO_AUTH_ID and MICRO_AUTH_SECRET."
    )]
    Sidecar(SidecarArgs),
    /// micro new - scaffold a service crate that builds with cargo alone
    #[command(about = "micro new - scaffold a service crate that builds with cargo alone")]
    New(NewArgs),
    /// micro env - list, add, switch and remove environments
    #[command(about = "micro env - list, add, switch and remove environments")]
    Env {
        #[command(subcommand)]
        action: Option<EnvCommand>,
    },
    /// micro store - read and write records in the platform store
    #[command(about = "micro store - read and write records in the platform store")]
    #[command(allow_external_subcommands = true)]
    Store {
        #[command(subcommand)]
        action: Option<StoreCommand>,
    },
    /// micro config - get and set the namespace's dynamic config
    #[command(about = "micro config - get and set the namespace's dynamic config")]
    #[command(allow_external_subcommands = true)]
    Config {
        #[command(subcommand)]
        action: Option<ConfigCommand>,
    },
    /// micro publish - publish a message on the broker
    #[command(about = "micro publish - publish a message on the broker")]
    Publish {
        /// The topic
        topic: String,
        /// The message, as JSON (or any text)
        message: String,
    },
    /// micro subscribe - print the broker's messages on a topic as they arrive
    #[command(about = "micro subscribe - print the broker's messages on a topic as they arrive")]
    Subscribe {
        /// The topic
        topic: String,
        /// Share the messages with the other subscribers of this queue
        #[arg(long)]
        queue: Option<String>,
    },
    /// micro events - publish and consume durable events
    #[command(about = "micro events - publish and consume durable events")]
    #[command(allow_external_subcommands = true)]
    Events {
        #[command(subcommand)]
        action: Option<EventsCommand>,
    },
    /// micro run - build and run a service from its source directory on the server
    #[command(
        about = "micro run - build and run a service from its source directory on the server"
    )]
    Run(RunArgs),
    /// micro update - rebuild a running service and replace it with no downtime
    #[command(about = "micro update - rebuild a running service and replace it with no downtime")]
    Update(RunArgs),
    /// micro kill - stop a service started with micro run and remove it
    #[command(about = "micro kill - stop a service started with micro run and remove it")]
    Kill {
        /// The service name
        name: String,
    },
    /// micro status - show the services started with micro run
    #[command(about = "micro status - show the services started with micro run")]
    Status {
        /// Only this service
        name: Option<String>,
    },
    /// micro logs - print a service's output
    #[command(about = "micro logs - print a service's output")]
    Logs(LogsArgs),
    /// micro login - log in to the current env and namespace
    #[command(about = "micro login - log in to the current env and namespace")]
    Login {
        /// The account's id or name (prompted for when missing)
        #[arg(long, visible_alias = "email")]
        username: Option<String>,
        /// The secret (prompted for, without echo, when missing)
        #[arg(long, env = "MICRO_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
    /// micro logout - forget the login of the current env and namespace
    #[command(about = "micro logout - forget the login of the current env and namespace")]
    Logout,
    /// micro user - show who you are logged in as
    #[command(about = "micro user - show who you are logged in as")]
    User {
        #[command(subcommand)]
        action: Option<UserCommand>,
    },
    /// micro auth - manage accounts and rules, and ask what the rules decide
    #[command(about = "micro auth - manage accounts and rules, and ask what the rules decide")]
    Auth {
        #[command(subcommand)]
        action: AuthCommand,
    },
    /// A service name: a dynamic command
    #[command(external_subcommand)]
    External(Vec<String>),
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The service's source directory (`.` for this one); for `update`, or its name
    pub(crate) source: String,
    /// The service name (default: the directory's name)
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// Environment for the service, KEY=value (repeat, or separate with commas)
    #[arg(long = "env-vars", value_delimiter = ',')]
    pub(crate) env_vars: Vec<String>,
    /// How many copies to run (default 1)
    #[arg(long)]
    pub(crate) instances: Option<u32>,
    /// Arguments for the service's binary, as one string
    #[arg(long, allow_hyphen_values = true)]
    pub(crate) args: Option<String>,
    /// Return once the server has the source, without waiting for the build
    #[arg(long, short = 'd')]
    pub(crate) detach: bool,
}

#[derive(Debug, Args)]
pub(crate) struct LogsArgs {
    /// The service name
    pub(crate) name: String,
    /// How many of the last lines to print
    #[arg(short = 'n', long = "lines", default_value_t = 15)]
    pub(crate) lines: u32,
    /// Keep printing new lines as they are written (until Ctrl-C)
    #[arg(short = 'f', long)]
    pub(crate) follow: bool,
    /// The build's output instead of the service's
    #[arg(long)]
    pub(crate) build: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ServerAction {
    /// micro server recover - with the server stopped, reset an admin of micro (for an operator with the server's files)
    #[command(
        about = "micro server recover - with the server stopped, reset an admin of micro (for an operator with the server's files)"
    )]
    Recover {
        /// The admin account of namespace micro (made if it is gone)
        #[arg(long, default_value = "admin")]
        username: String,
        /// Its new password (prompted for when missing)
        #[arg(long)]
        password: Option<String>,
    },
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct ServerArgs {
    #[command(subcommand)]
    pub(crate) action: Option<ServerAction>,
    /// gRPC address for the platform services and the proxy (`:port`, `host:port`; port 0 picks one)
    #[arg(long, default_value = ":8081")]
    pub(crate) address: String,
    /// HTTP API gateway address
    #[arg(long = "api-address", default_value = ":8080")]
    pub(crate) api_address: String,
    /// Web dashboard address
    #[arg(long = "web-address", default_value = ":8082")]
    pub(crate) web_address: String,
    /// How the proxy and gateway pick a node: p2c (the cheaper of two by peak-EWMA latency and
    /// calls in flight), roundrobin or random
    #[arg(long, default_value = "p2c")]
    pub(crate) selector: String,
    /// Largest request body the gateway accepts, in bytes (bigger ones get 413)
    #[arg(long = "api-max-body", default_value_t = micro_server::gateway::DEFAULT_MAX_BODY)]
    pub(crate) api_max_body: usize,
    /// Do not answer CORS requests at the gateway
    #[arg(long = "no-cors")]
    pub(crate) no_cors: bool,
    /// The Cargo target directory the runtime's builds share (default MICRO_HOME/server/runtime/target)
    #[arg(long = "build-dir", env = "MICRO_BUILD_DIR")]
    pub(crate) build_dir: Option<PathBuf>,
    /// Check tokens and rules: on, or off (trusted networks and benchmarks only)
    #[arg(long, default_value = "on", value_parser = ["on", "off"])]
    pub(crate) auth: String,
    /// Do not create the default account admin/micro in namespace micro
    #[arg(long = "no-default-account")]
    pub(crate) no_default_account: bool,
    /// How long access tokens last (refresh tokens last 30 days)
    #[arg(long = "token-ttl", default_value = "15m", value_parser = bounded_duration)]
    pub(crate) token_ttl: std::time::Duration,
    /// Serve TLS on every listener with this certificate chain (PEM; needs --tls-key)
    #[arg(long = "tls-cert", requires = "tls_key")]
    pub(crate) tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM)
    #[arg(long = "tls-key", requires = "tls_cert")]
    pub(crate) tls_key: Option<PathBuf>,
    /// The CA that signed the certificate, for the server's own calls and its services (default: the system's roots)
    #[arg(long = "tls-ca", requires = "tls_cert")]
    pub(crate) tls_ca: Option<PathBuf>,
    /// The most connections each listener holds at once (default: from the open-file limit,
    /// at most 10000); past it, new ones are refused at once
    #[arg(long = "max-connections", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) max_connections: Option<u32>,
    /// How long a connection may carry nothing before it is closed
    #[arg(long = "idle-timeout", default_value = "5m", value_parser = bounded_duration)]
    pub(crate) idle_timeout: std::time::Duration,
    /// Where services register: memory (this server) or etcd (shared)
    #[arg(long, env = "MICRO_REGISTRY", default_value = "memory", value_parser = ["memory", "etcd"])]
    pub(crate) registry: String,
    /// The etcd client endpoints, comma-separated (host:port)
    #[arg(long = "registry-address", env = "MICRO_REGISTRY_ADDRESS")]
    pub(crate) registry_address: Option<String>,
    /// Pub/sub: memory (this server) or nats (shared)
    #[arg(long, env = "MICRO_BROKER", default_value = "memory", value_parser = ["memory", "nats"])]
    pub(crate) broker: String,
    /// The NATS servers, comma-separated (nats://host:port)
    #[arg(long = "broker-address", env = "MICRO_BROKER_ADDRESS")]
    pub(crate) broker_address: Option<String>,
    /// The event log: redb (files of this server) or nats (JetStream, shared)
    #[arg(long, env = "MICRO_EVENTS", default_value = "redb", value_parser = ["redb", "nats"])]
    pub(crate) events: String,
    /// The NATS servers with JetStream, comma-separated (nats://host:port)
    #[arg(long = "events-address", env = "MICRO_EVENTS_ADDRESS")]
    pub(crate) events_address: Option<String>,
    /// The store (config, accounts and rules live on it too): redb (files of this server),
    /// postgres or redis (shared)
    #[arg(long, env = "MICRO_STORE", default_value = "redb", value_parser = ["redb", "postgres", "redis"])]
    pub(crate) store: String,
    /// The store's engine: postgres://USER@HOST:PORT/DB or redis://HOST:PORT
    #[arg(long = "store-address", env = "MICRO_STORE_ADDRESS")]
    pub(crate) store_address: Option<String>,
    /// The key signing tokens, from this file (made if missing) instead of MICRO_HOME — or,
    /// on shared engines, instead of the shared store (give every server the same file)
    #[arg(long = "token-key", env = "MICRO_TOKEN_KEY")]
    pub(crate) token_key: Option<PathBuf>,
    /// The key sealing config secrets, likewise
    #[arg(long = "secret-key", env = "MICRO_SECRET_KEY")]
    pub(crate) secret_key: Option<PathBuf>,
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
    /// Only nodes of this version
    #[arg(long)]
    pub(crate) version: Option<String>,
    /// Only nodes whose metadata has k=v, e.g. track=canary (repeatable)
    #[arg(long = "select", value_name = "K=V")]
    pub(crate) select: Vec<String>,
    /// How long to wait for the answer
    #[arg(long = "request-timeout", default_value = "5s", value_parser = bounded_duration)]
    pub(crate) request_timeout: std::time::Duration,
    /// json (indented) or raw (as received)
    #[arg(long, default_value = "json", value_parser = ["json", "raw"])]
    pub(crate) output: String,
}

#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// The service name, e.g. helloworld
    pub(crate) service: String,
    /// The endpoint, Service.Method, e.g. Helloworld.Call
    pub(crate) endpoint: String,
    /// The request as JSON, sent every time
    #[arg(default_value = "{}")]
    pub(crate) request: String,
    /// Calls in flight at once
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub(crate) concurrency: u32,
    /// How long to run (default 10s unless --requests is given)
    #[arg(long, value_parser = bounded_duration)]
    pub(crate) duration: Option<std::time::Duration>,
    /// How many calls to make in all
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
    pub(crate) requests: Option<u64>,
    /// Start calls at this fixed rate (calls/s) instead of as fast as they finish; latency is
    /// then measured from when each call was due
    #[arg(long, value_parser = rate)]
    pub(crate) rate: Option<f64>,
    /// How long each call may take
    #[arg(long = "request-timeout", default_value = "5s", value_parser = bounded_duration)]
    pub(crate) request_timeout: std::time::Duration,
    /// text or json
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub(crate) output: String,
    /// Call the service's nodes from here with micro::Client (balanced, with its resilience),
    /// not through the server's proxy: the nodes must be reachable from this machine
    #[arg(long)]
    pub(crate) direct: bool,
}

/// A call rate: a positive number of calls a second, at most a million.
fn rate(text: &str) -> Result<f64, String> {
    let r: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of calls a second"))?;
    if !(r > 0.0 && r <= 1_000_000.0) {
        return Err(format!(
            "the rate must be above 0 and at most 1000000, not {text}"
        ));
    }
    Ok(r)
}

#[derive(Debug, Args)]
pub(crate) struct BotArgs {
    /// Where the inputs listen (port 0 picks one)
    #[arg(long, default_value = "127.0.0.1:8083", value_name = "ADDR")]
    pub(crate) address: String,
    /// The JSON file mapping chat users (`slack:U0123`, `webhook:ID`) to accounts: {"slack:U0123": {"account": "ada", "secret": "...", "namespace": "micro"}}
    #[arg(long, value_name = "FILE")]
    pub(crate) users: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct CompletionArgs {
    /// bash, zsh or fish
    pub(crate) shell: String,
}

#[derive(Debug, Args)]
pub(crate) struct SidecarArgs {
    /// The service name to register
    #[arg(long)]
    pub(crate) name: String,
    /// The app's address: http://127.0.0.1:PORT
    #[arg(long, value_name = "URL")]
    pub(crate) app: String,
    /// The app's health path; any 2xx answer is healthy
    #[arg(long, default_value = "/health", value_name = "PATH")]
    pub(crate) health: String,
    /// An endpoint, and the app's path its calls are POSTed to (repeatable)
    #[arg(long = "endpoint", value_name = "Name.Method=/path", required = true)]
    pub(crate) endpoints: Vec<String>,
    /// Where the service's gRPC server listens (port 0 picks one)
    #[arg(long, default_value = "127.0.0.1:0", value_name = "ADDR")]
    pub(crate) address: String,
    /// Where the app reaches the platform (port 0 picks one)
    #[arg(
        long = "http-address",
        default_value = "127.0.0.1:0",
        value_name = "ADDR"
    )]
    pub(crate) http_address: String,
    /// The version to register
    #[arg(long, default_value = "latest")]
    pub(crate) version: String,
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
        /// Reach the server over TLS, verifying its certificate
        #[arg(long)]
        tls: bool,
        /// The CA (PEM file) to verify the server with (implies --tls; default: the system's roots)
        #[arg(long)]
        ca: Option<PathBuf>,
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

/// Where a store command reads or writes.
#[derive(Debug, Args)]
pub(crate) struct StoreTarget {
    /// The database (default: the namespace)
    #[arg(short = 'd', long)]
    pub(crate) database: Option<String>,
    /// The table (default: micro)
    #[arg(short = 't', long)]
    pub(crate) table: Option<String>,
}

/// Paging of store reads and lists.
#[derive(Debug, Args)]
pub(crate) struct Paging {
    /// Return at most this many
    #[arg(long)]
    pub(crate) limit: Option<usize>,
    /// Skip this many first
    #[arg(long, default_value_t = 0)]
    pub(crate) offset: usize,
    /// Key order: asc or desc
    #[arg(long, default_value = "asc", value_parser = ["asc", "desc"])]
    pub(crate) order: String,
}

#[derive(Debug, Subcommand)]
pub(crate) enum StoreCommand {
    /// micro store read - print the value at a key (or of the keys a prefix/suffix selects)
    #[command(
        about = "micro store read - print the value at a key (or of the keys a prefix/suffix selects)"
    )]
    Read {
        /// The key (with --prefix or --suffix: what keys start or end with)
        key: String,
        /// Read every record whose key starts with KEY
        #[arg(long)]
        prefix: bool,
        /// Read every record whose key ends with KEY
        #[arg(long)]
        suffix: bool,
        #[command(flatten)]
        paging: Paging,
        /// Print a table of KEY VALUE EXPIRY
        #[arg(short = 'v', long)]
        verbose: bool,
        /// text (values) or json (records)
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        output: String,
        #[command(flatten)]
        target: StoreTarget,
    },
    /// micro store write - write a value at a key
    #[command(about = "micro store write - write a value at a key")]
    Write {
        /// The key
        key: String,
        /// The value (stored as given)
        value: String,
        /// Delete the record after this long (10s, 1h30m, 500ms)
        #[arg(long, value_parser = humantime::parse_duration)]
        expiry: Option<std::time::Duration>,
        #[command(flatten)]
        target: StoreTarget,
    },
    /// micro store list - list keys, one per line, in order
    #[command(about = "micro store list - list keys, one per line, in order")]
    List {
        /// Only keys starting with this
        #[arg(long)]
        prefix: Option<String>,
        /// Only keys ending with this
        #[arg(long)]
        suffix: Option<String>,
        #[command(flatten)]
        paging: Paging,
        /// text (keys) or json
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        output: String,
        #[command(flatten)]
        target: StoreTarget,
    },
    /// micro store delete - delete the record at a key
    #[command(about = "micro store delete - delete the record at a key")]
    Delete {
        /// The key
        key: String,
        #[command(flatten)]
        target: StoreTarget,
    },
    /// micro store databases - list the namespace's databases
    #[command(about = "micro store databases - list the namespace's databases")]
    Databases,
    /// micro store tables - list the tables of a database
    #[command(about = "micro store tables - list the tables of a database")]
    Tables {
        /// The database (default: the namespace)
        #[arg(short = 'd', long)]
        database: Option<String>,
    },
    /// Anything else: refused with a message
    #[command(external_subcommand)]
    Unknown(#[expect(dead_code, reason = "any word is refused the same way")] Vec<String>),
}

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// micro config get - print the value at a path (strings unquoted, the rest as JSON)
    #[command(
        about = "micro config get - print the value at a path (strings unquoted, the rest as JSON)"
    )]
    Get {
        /// A dot path, e.g. db.host ("" for everything)
        path: String,
        /// Reveal secret values
        #[arg(long)]
        secret: bool,
    },
    /// micro config set - set a path to a value (JSON, else a string)
    #[command(about = "micro config set - set a path to a value (JSON, else a string)")]
    Set {
        /// A dot path, e.g. db.host
        path: String,
        /// The value: JSON if it parses, else the text as a string
        value: String,
        /// Store the value as a secret
        #[arg(long)]
        secret: bool,
    },
    /// micro config del - remove a path
    #[command(about = "micro config del - remove a path")]
    Del {
        /// A dot path
        path: String,
    },
    /// Anything else: refused with a message
    #[command(external_subcommand)]
    Unknown(#[expect(dead_code, reason = "any word is refused the same way")] Vec<String>),
}

#[derive(Debug, Subcommand)]
pub(crate) enum EventsCommand {
    /// micro events publish - append an event to a topic
    #[command(about = "micro events publish - append an event to a topic")]
    Publish {
        /// The topic
        topic: String,
        /// The payload, as JSON (or any text)
        payload: String,
        /// Event metadata, k=v (repeatable)
        #[arg(long = "metadata", value_name = "K=V")]
        metadata: Vec<String>,
    },
    /// micro events topics - list the namespace's topics that hold events
    #[command(about = "micro events topics - list the namespace's topics that hold events")]
    Topics,
    /// micro events consume - print a topic's events as JSON lines, in order
    #[command(about = "micro events consume - print a topic's events as JSON lines, in order")]
    Consume {
        /// The topic
        topic: String,
        /// The consumer group (its position is kept; consumers of a group share events)
        #[arg(long)]
        group: Option<String>,
        /// Where a new group starts: a sequence number (1 = the first event) or an RFC 3339 time
        #[arg(long)]
        offset: Option<String>,
    },
    /// Anything else: refused with a message
    #[command(external_subcommand)]
    Unknown(#[expect(dead_code, reason = "any word is refused the same way")] Vec<String>),
}

#[derive(Debug, Subcommand)]
pub(crate) enum UserCommand {
    /// micro user token - print the access token (refreshed if it is about to expire)
    #[command(
        about = "micro user token - print the access token (refreshed if it is about to expire)"
    )]
    Token,
    /// micro user namespace - print the namespace, or switch it with `set NS`
    #[command(about = "micro user namespace - print the namespace, or switch it with `set NS`")]
    Namespace {
        #[command(subcommand)]
        action: Option<NamespaceCommand>,
    },
    /// micro user set - change your account
    #[command(about = "micro user set - change your account")]
    Set {
        #[command(subcommand)]
        what: UserSetCommand,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum NamespaceCommand {
    /// micro user namespace set - act in another namespace from now on (in this env)
    #[command(
        about = "micro user namespace set - act in another namespace from now on (in this env)"
    )]
    Set {
        /// The namespace
        namespace: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum UserSetCommand {
    /// micro user set password - change your password
    #[command(about = "micro user set password - change your password")]
    Password {
        /// The current password (prompted for when missing)
        #[arg(long = "old-password")]
        old_password: Option<String>,
        /// The new password (prompted for when missing)
        #[arg(long = "new-password")]
        new_password: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum AuthCommand {
    /// micro auth list - list accounts or rules
    #[command(about = "micro auth list - list accounts or rules")]
    List {
        #[command(subcommand)]
        what: AuthListCommand,
    },
    /// micro auth create - create an account or a rule
    #[command(about = "micro auth create - create an account or a rule")]
    Create {
        #[command(subcommand)]
        what: AuthCreateCommand,
    },
    /// micro auth delete - delete an account or a rule
    #[command(about = "micro auth delete - delete an account or a rule")]
    Delete {
        #[command(subcommand)]
        what: AuthDeleteCommand,
    },
    /// micro auth verify - say what the rules decide for an account calling a resource, and why
    #[command(
        about = "micro auth verify - say what the rules decide for an account calling a resource, and why"
    )]
    Verify {
        /// The account's id (leave out to ask about a caller with no account)
        #[arg(long)]
        account: Option<String>,
        /// type:name:endpoint, e.g. service:helloworld:Helloworld.Call
        #[arg(long)]
        resource: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum AuthListCommand {
    /// micro auth list accounts - the namespace's accounts
    #[command(about = "micro auth list accounts - the namespace's accounts")]
    Accounts,
    /// micro auth list rules - the namespace's rules, highest priority first
    #[command(about = "micro auth list rules - the namespace's rules, highest priority first")]
    Rules,
}

#[derive(Debug, Subcommand)]
pub(crate) enum AuthCreateCommand {
    /// micro auth create account - create an account (in --namespace, default the current one)
    #[command(
        about = "micro auth create account - create an account (in --namespace, default the current one)"
    )]
    Account {
        /// The account's id (what it logs in with)
        id: String,
        /// Its secret (default: a random one, printed)
        #[arg(long)]
        secret: Option<String>,
        /// Its scopes, comma separated (e.g. admin)
        #[arg(long, value_delimiter = ',')]
        scopes: Vec<String>,
        /// A second handle to log in with, e.g. an email (default: the id)
        #[arg(long)]
        name: Option<String>,
        /// user or service
        #[arg(long = "type", default_value = "user")]
        kind: String,
    },
    /// micro auth create rule - create or replace a rule
    #[command(about = "micro auth create rule - create or replace a rule")]
    Rule {
        /// The rule's id
        id: String,
        /// Who it is for: "" anyone, * any account of the namespace, + any account, or a scope
        #[arg(long, default_value = "")]
        scope: String,
        /// type:name:endpoint (* for any part; /path/* for paths)
        #[arg(long)]
        resource: String,
        /// granted or denied
        #[arg(long, default_value = "granted")]
        access: String,
        /// Higher counts first
        #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
        priority: i32,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum AuthDeleteCommand {
    /// micro auth delete account - delete an account
    #[command(about = "micro auth delete account - delete an account")]
    Account {
        /// The account's id
        id: String,
    },
    /// micro auth delete rule - delete a rule
    #[command(about = "micro auth delete rule - delete a rule")]
    Rule {
        /// The rule's id
        id: String,
    },
}

/// A duration flag (`5s`, `15m`), refused past the platform's limit of a day rather than
/// overflowing a deadline later.
fn bounded_duration(text: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    let max = micro_core::limits::MAX_DURATION;
    if d > max {
        return Err(format!(
            "{text} is longer than the limit of {}",
            humantime::format_duration(max)
        ));
    }
    Ok(d)
}
