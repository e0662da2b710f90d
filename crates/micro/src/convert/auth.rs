//! `micro.auth`: accounts and rules.

use micro_core::{
    Error,
    auth::{Access, Account, AccountType, Resource, Rule},
};
use micro_proto::auth as pb;

/// An account on the wire, with `secret` (empty unless it is shown once, as made).
pub fn account_to_pb(a: Account, secret: String) -> pb::Account {
    pb::Account {
        id: a.id,
        name: a.name,
        r#type: a.kind.as_str().to_owned(),
        issuer: a.issuer,
        scopes: a.scopes,
        metadata: a.metadata.into_iter().collect(),
        secret,
    }
}

/// An account from the wire (an unknown type read as the default).
pub fn account_from_pb(a: pb::Account) -> Account {
    Account {
        id: a.id,
        name: a.name,
        kind: AccountType::parse(&a.r#type).unwrap_or_default(),
        issuer: a.issuer,
        scopes: a.scopes,
        metadata: a.metadata.into_iter().collect(),
    }
}

/// A rule on the wire.
pub fn rule_to_pb(r: Rule) -> pb::Rule {
    pb::Rule {
        id: r.id,
        scope: r.scope,
        resource: Some(pb::Resource {
            r#type: r.resource.kind,
            name: r.resource.name,
            endpoint: r.resource.endpoint,
        }),
        access: r.access.as_str().to_owned(),
        priority: r.priority,
    }
}

/// A rule from the wire: it needs a resource; an empty access is `granted`.
pub fn rule_from_pb(r: pb::Rule) -> Result<Rule, Error> {
    let resource = r.resource.ok_or_else(|| {
        Error::bad_request(
            "micro.auth",
            "a rule needs a resource {type, name, endpoint} (*:*:* for all)",
        )
    })?;
    let resource = Resource::parse(&format!(
        "{}:{}:{}",
        resource.r#type, resource.name, resource.endpoint
    ))?;
    Ok(Rule {
        id: r.id,
        scope: r.scope,
        resource,
        access: Access::parse(if r.access.is_empty() {
            "granted"
        } else {
            &r.access
        })?,
        priority: r.priority,
    })
}
