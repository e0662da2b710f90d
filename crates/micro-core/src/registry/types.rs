//! The registry's domain types, serialisable as the JSON the CLI and gateway show.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A service version and the nodes serving it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    /// The service name (`helloworld`).
    pub name: String,
    /// The version (`latest` unless the service says otherwise).
    pub version: String,
    /// Free-form service metadata.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// What the service serves, as `Service.Method` endpoints.
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
    /// Where it is served.
    #[serde(default)]
    pub nodes: Vec<Node>,
}

/// One running instance of a service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// Unique id, `<service>-<uuid>` by convention.
    pub id: String,
    /// `host:port` of its gRPC server.
    pub address: String,
    /// Node metadata (`package`, `protocol`, ...).
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

/// One callable method, named `Service.Method`, with its request and response schemas.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// `Service.Method`, e.g. `Helloworld.Call`.
    pub name: String,
    /// Schema of the request message.
    pub request: Option<Value>,
    /// Schema of the response message.
    pub response: Option<Value>,
    /// Endpoint metadata (`grpc_service`, `stream`).
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

/// A recursive field schema: a message is a `Value` whose `values` are its fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Value {
    /// Field name (or message name at the top level).
    pub name: String,
    /// Type: `string`, `int64`, `bool`, ..., or a message's full name; `repeated ` prefixed for lists.
    #[serde(rename = "type")]
    pub r#type: String,
    /// Fields of a message type.
    #[serde(default)]
    pub values: Vec<Value>,
}

/// What happened to a service in a [`WatchEvent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WatchAction {
    /// A version appeared.
    Create,
    /// A version changed (a node joined or left, or its endpoints changed).
    Update,
    /// A version disappeared (its last node left or expired).
    Delete,
}

/// A change in the registry, as seen by a watcher.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchEvent {
    /// What happened.
    pub action: WatchAction,
    /// The service version after the change (for `Delete`, as it was last seen).
    pub service: Service,
}

// === impl Service ===

impl Service {
    /// A service with no endpoints or nodes yet.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
            ..Self::default()
        }
    }

    /// Adds a node.
    pub fn with_node(mut self, node: Node) -> Self {
        self.nodes.push(node);
        self
    }

    /// Adds an endpoint.
    pub fn with_endpoint(mut self, endpoint: Endpoint) -> Self {
        self.endpoints.push(endpoint);
        self
    }

    /// Finds an endpoint by its `Service.Method` name.
    pub fn endpoint(&self, name: &str) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| e.name == name)
    }
}

// === impl Node ===

impl Node {
    /// A node with no metadata.
    pub fn new(id: impl Into<String>, address: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            address: address.into(),
            metadata: BTreeMap::new(),
        }
    }
}

// === impl Endpoint ===

impl Endpoint {
    /// An endpoint without schemas.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }
}
