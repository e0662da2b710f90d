//! Names every layer agrees on: metadata keys, defaults, environment variables.
//!
//! They live in one place so that the CLI, the server and the framework can never disagree on
//! the spelling of a header.

/// The namespace every operation happens in unless the caller says otherwise.
pub const DEFAULT_NAMESPACE: &str = "micro";

/// Request metadata (gRPC header) carrying the caller's namespace.
pub const NAMESPACE_HEADER: &str = "micro-namespace";

/// Request metadata (gRPC header) carrying the caller's token: `Bearer TOKEN`.
pub const AUTHORIZATION_HEADER: &str = "authorization";

/// A namespace argument meaning "every namespace" (registry `list` only).
pub const ALL_NAMESPACES: &str = "*";

/// Node metadata key: the proto package the node serves (`helloworld`).
pub const NODE_PACKAGE: &str = "package";

/// Node metadata key: the transport the node speaks (always `grpc`).
pub const NODE_PROTOCOL: &str = "protocol";

/// Node metadata key: when the node started serving, in Unix seconds (the dashboard shows a
/// node's age from it).
pub const NODE_STARTED: &str = "started";

/// Endpoint metadata key: the fully-qualified proto service (`helloworld.Helloworld`), so the gRPC
/// path `/<package>.<Service>/<Method>` is exact.
pub const ENDPOINT_GRPC_SERVICE: &str = "grpc_service";

/// Endpoint metadata key: `server`, `client` or `bidi` for streaming endpoints; absent for unary.
pub const ENDPOINT_STREAM: &str = "stream";

/// Endpoint metadata key: `true` for a method the proto marks safe to repeat
/// (`option idempotency_level = IDEMPOTENT` or `NO_SIDE_EFFECTS`); a client may send such a
/// call again on another node when a connection breaks under it.
pub const ENDPOINT_IDEMPOTENT: &str = "idempotent";

/// Endpoint metadata: the method's `google.api.http` rules, one per line as
/// `METHOD /path/{template} [BODY]` (BODY is `*`, a field name, or absent for none).
pub const ENDPOINT_HTTP: &str = "http";

/// The default address of the micro server's gRPC port.
pub const DEFAULT_SERVER_ADDRESS: &str = "127.0.0.1:8081";

/// Environment variable: where a service or the CLI finds the server.
pub const ENV_SERVER_ADDRESS: &str = "MICRO_SERVER_ADDRESS";
/// Environment variable: the namespace a service registers in.
pub const ENV_NAMESPACE: &str = "MICRO_NAMESPACE";
/// Environment variable: the address a service binds.
pub const ENV_SERVICE_ADDRESS: &str = "MICRO_SERVICE_ADDRESS";
/// Environment variable: overrides the service name given in code.
pub const ENV_SERVICE_NAME: &str = "MICRO_SERVICE_NAME";
/// Environment variable: overrides the service version given in code.
pub const ENV_SERVICE_VERSION: &str = "MICRO_SERVICE_VERSION";
/// Environment variable: the node id a service registers with (the runtime sets it, to know
/// its processes in the registry).
pub const ENV_SERVICE_ID: &str = "MICRO_SERVICE_ID";
/// Environment variable: how long a registration lives without a heartbeat (`90s`).
pub const ENV_REGISTER_TTL: &str = "MICRO_REGISTER_TTL";
/// Environment variable: how often a service re-registers (`30s`).
pub const ENV_REGISTER_INTERVAL: &str = "MICRO_REGISTER_INTERVAL";
/// Environment variable: the id of the account a service authenticates as (the runtime sets it).
pub const ENV_AUTH_ID: &str = "MICRO_AUTH_ID";
/// Environment variable: the secret of that account.
pub const ENV_AUTH_SECRET: &str = "MICRO_AUTH_SECRET";
/// Environment variable: relocates `~/.micro`.
pub const ENV_HOME: &str = "MICRO_HOME";
