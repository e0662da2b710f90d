//! Auth's domain: accounts, rules and the decision a rule set makes about a call.
//!
//! The decision ([`rules::decide`]) is pure code with no I/O, so the server's gateway, its
//! proxy, its platform services, a service's own server and `micro auth verify` all answer the
//! same question the same way. Where accounts and rules are kept, and how tokens are signed, is
//! the server's business.

pub mod rules;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Error;

pub use rules::{Decision, decide};

/// The scope of a platform administrator (in its own namespace; in `micro`, everywhere).
pub const SCOPE_ADMIN: &str = "admin";
/// The scope the runtime gives the accounts of services it starts. It may register, and use the
/// store, config, broker and events of its own namespace; never accounts, rules or the runtime.
pub const SCOPE_SERVICE: &str = "service";
/// A rule scope: any account of the rule's namespace.
pub const SCOPE_ACCOUNT: &str = "*";
/// A rule scope: any account of any namespace.
pub const SCOPE_ANY_NAMESPACE: &str = "+";
/// A rule scope: anyone, with or without an account.
pub const SCOPE_PUBLIC: &str = "";

/// Whether an account is a person or a program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AccountType {
    /// A person who logs in.
    #[default]
    User,
    /// A service started by the runtime.
    Service,
}

impl AccountType {
    /// `user` or `service`.
    pub fn as_str(self) -> &'static str {
        match self {
            AccountType::User => "user",
            AccountType::Service => "service",
        }
    }

    /// Parses `user` or `service`.
    pub fn parse(s: &str) -> Result<Self, Error> {
        match s {
            "" | "user" => Ok(AccountType::User),
            "service" => Ok(AccountType::Service),
            other => Err(Error::bad_request(
                "micro.auth",
                format!("account type {other:?} is not user or service"),
            )),
        }
    }
}

/// Who is calling: an account of a namespace (its issuer) with scopes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Account {
    /// Unique in its namespace; what `Token` takes with the secret.
    pub id: String,
    /// A second unique handle (an email, say); `Token` takes it too. Defaults to the id.
    pub name: String,
    /// User or service.
    #[serde(rename = "type")]
    pub kind: AccountType,
    /// The namespace that issued the account.
    pub issuer: String,
    /// What the account may do, as rules see it (`admin`, `service`, anything).
    pub scopes: Vec<String>,
    /// Free-form details.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

impl Account {
    /// Whether the account holds `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// Whether the account may administer namespace `ns` (accounts, rules, the runtime, and
    /// everything [`uses`](Self::uses) allows): an `admin` of `ns`, or an `admin` of `micro`.
    pub fn administers(&self, ns: &str) -> bool {
        self.has_scope(SCOPE_ADMIN)
            && (self.issuer == ns || self.issuer == crate::metadata::DEFAULT_NAMESPACE)
    }

    /// Whether the account may use the store and config of namespace `ns`: whoever
    /// [`administers`](Self::administers) it, or a `service` of `ns` (least privilege: a service
    /// never manages accounts, rules or the runtime).
    pub fn uses(&self, ns: &str) -> bool {
        self.administers(ns) || (self.issuer == ns && self.has_scope(SCOPE_SERVICE))
    }

    /// Whether the account may act in every namespace at once (`*`): an `admin` of `micro`.
    pub fn sees_all(&self) -> bool {
        self.issuer == crate::metadata::DEFAULT_NAMESPACE && self.has_scope(SCOPE_ADMIN)
    }
}

/// Whether two secrets (tokens, CSRF values) are equal, compared without stopping at the first
/// difference, so the time taken tells nothing of how much of a guess was right.
pub fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// The token in an `Authorization` value: `Bearer TOKEN` (the scheme in any case), or the bare
/// token.
pub fn bearer(value: &str) -> &str {
    let value = value.trim();
    match value.split_at_checked(7) {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer ") => token.trim(),
        _ => value,
    }
}

/// What a rule is about: `type:name:endpoint`, e.g. `service:helloworld:Helloworld.Call`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    /// `service` for calls (anything else is the caller's own kind).
    #[serde(rename = "type")]
    pub kind: String,
    /// The service name.
    pub name: String,
    /// `Service.Method`, or a path (`/a/b`) for path rules.
    pub endpoint: String,
}

impl Resource {
    /// The resource of a call to `endpoint` of service `name`.
    pub fn service(name: &str, endpoint: &str) -> Self {
        Self {
            kind: "service".to_owned(),
            name: name.to_owned(),
            endpoint: endpoint.to_owned(),
        }
    }

    /// Parses `type:name:endpoint` (the endpoint may contain `:`). Every part must be given;
    /// `*` stands for any.
    pub fn parse(s: &str) -> Result<Self, Error> {
        let mut parts = s.splitn(3, ':');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(kind), Some(name), Some(endpoint))
                if !kind.is_empty() && !name.is_empty() && !endpoint.is_empty() =>
            {
                Ok(Self {
                    kind: kind.to_owned(),
                    name: name.to_owned(),
                    endpoint: endpoint.to_owned(),
                })
            }
            _ => Err(Error::bad_request(
                "micro.auth",
                format!(
                    "resource {s:?} is not type:name:endpoint (for example \
                     service:helloworld:Helloworld.Call, or *:*:* for everything)"
                ),
            )),
        }
    }
}

impl std::fmt::Display for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.kind, self.name, self.endpoint)
    }
}

/// Whether a rule lets the call through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// The call may proceed.
    Granted,
    /// The call is refused.
    Denied,
}

impl Access {
    /// `granted` or `denied`.
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Granted => "granted",
            Access::Denied => "denied",
        }
    }

    /// Parses `granted` or `denied`.
    pub fn parse(s: &str) -> Result<Self, Error> {
        match s {
            "granted" => Ok(Access::Granted),
            "denied" => Ok(Access::Denied),
            other => Err(Error::bad_request(
                "micro.auth",
                format!("access {other:?} is not granted or denied"),
            )),
        }
    }
}

/// One rule of a namespace: who (`scope`) may or may not (`access`) reach what (`resource`),
/// and how much it counts (`priority`, higher first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// Unique in its namespace.
    pub id: String,
    /// `""` anyone, `*` any account of the namespace, `+` any account at all, else a scope the
    /// account must hold.
    pub scope: String,
    /// What the rule is about; `*` parts match anything, a path endpoint `/a/*` matches `/a`
    /// and everything under it.
    pub resource: Resource,
    /// Granted or denied.
    pub access: Access,
    /// Higher is considered first.
    pub priority: i32,
}

impl Rule {
    /// The rule every namespace starts with: anyone may call anything.
    pub fn default_public() -> Self {
        Self {
            id: "default".to_owned(),
            scope: SCOPE_PUBLIC.to_owned(),
            resource: Resource {
                kind: "*".to_owned(),
                name: "*".to_owned(),
                endpoint: "*".to_owned(),
            },
            access: Access::Granted,
            priority: 0,
        }
    }
}

/// Checks an account or rule id: 1 to 256 characters, no control characters or spaces at the
/// ends.
pub fn check_id(what: &str, id: &str) -> Result<(), Error> {
    if id.len() > 256 {
        // Not echoed: the caller sent it, and it may be megabytes.
        return Err(Error::bad_request(
            "micro.auth",
            format!("{what} id is {} bytes long; the limit is 256", id.len()),
        ));
    }
    if id.is_empty() || id.trim() != id || id.chars().any(char::is_control) {
        return Err(Error::bad_request(
            "micro.auth",
            format!(
                "{what} id {id:?} must be 1 to 256 characters, without control characters or surrounding spaces"
            ),
        ));
    }
    Ok(())
}
