//! Which nodes a call may go to — go-micro's selector filters, as logic without I/O: a version,
//! and metadata that must match (a canary's `track=canary`, a zone), the node's own or else its
//! version's (`Service::metadata`). Balancing, ejection and retries then work among the nodes
//! that pass.

use micro_core::{Node, Service};

/// Conditions every node of a call must meet; the default admits every node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    version: Option<String>,
    metadata: Vec<(String, String)>,
}

impl Filter {
    /// Only nodes of `version`.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into());
        self
    }

    /// Only nodes whose metadata (or their version's) has `key` = `value` (each added
    /// condition must hold).
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.push((key.into(), value.into()));
        self
    }

    /// Whether `node`, of `service` (one version's record), passes.
    pub fn admits(&self, service: &Service, node: &Node) -> bool {
        self.version.as_deref().is_none_or(|v| v == service.version)
            && self.metadata.iter().all(|(k, v)| {
                node.metadata
                    .get(k)
                    .or_else(|| service.metadata.get(k))
                    .is_some_and(|have| have == v)
            })
    }

    /// What the filter asks for, for an error that says why no node passed.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        if let Some(v) = &self.version {
            parts.push(format!("version {v:?}"));
        }
        parts.extend(self.metadata.iter().map(|(k, v)| format!("{k}={v:?}")));
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(meta: &[(&str, &str)]) -> Node {
        Node {
            metadata: meta
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..Default::default()
        }
    }

    fn service(version: &str, meta: &[(&str, &str)]) -> Service {
        Service {
            version: version.to_owned(),
            metadata: node(meta).metadata,
            ..Default::default()
        }
    }

    #[test]
    fn versions_and_metadata_must_all_match() {
        let (v1, v2) = (service("1", &[]), service("2", &[]));
        let any = Filter::default();
        assert!(any.admits(&v1, &node(&[])));
        let only2 = Filter::default().version("2");
        assert!(only2.admits(&v2, &node(&[])));
        assert!(!only2.admits(&v1, &node(&[])));
        let canary = Filter::default().version("2").metadata("track", "canary");
        assert!(canary.admits(&v2, &node(&[("track", "canary"), ("zone", "a")])));
        assert!(!canary.admits(&v2, &node(&[("track", "stable")])));
        assert!(!canary.admits(&v2, &node(&[])));
        // The version's metadata counts when the node says nothing; the node's wins.
        let v2_canary = service("2", &[("track", "canary")]);
        assert!(canary.admits(&v2_canary, &node(&[])));
        assert!(!canary.admits(&v2_canary, &node(&[("track", "stable")])));
        assert_eq!(canary.describe(), "version \"2\", track=\"canary\"");
    }
}
