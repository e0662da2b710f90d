//! The store's domain types.

use std::{collections::BTreeMap, time::Duration};

/// One record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// The key, unique in its table.
    pub key: String,
    /// The value, any bytes.
    pub value: Vec<u8>,
    /// Free-form metadata.
    pub metadata: BTreeMap<String, String>,
    /// On write: how long the record lives (`None`: forever). On read: how long it has left.
    pub expiry: Option<Duration>,
}

impl Record {
    /// A record with no metadata that never expires.
    pub fn new(key: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        Self {
            key: key.into(),
            value: value.into(),
            ..Self::default()
        }
    }

    /// The same record, living for `ttl`.
    pub fn with_expiry(mut self, ttl: Duration) -> Self {
        self.expiry = Some(ttl);
        self
    }
}

/// Key order of results.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Order {
    /// Lexicographic, ascending.
    #[default]
    Asc,
    /// Lexicographic, descending.
    Desc,
}

/// Which keys a list or a prefix/suffix read selects. Filters apply first (prefix and suffix
/// both, when both are set), then order, then offset, then limit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// Keys starting with this.
    pub prefix: Option<String>,
    /// Keys ending with this.
    pub suffix: Option<String>,
    /// Skip this many selected keys.
    pub offset: usize,
    /// Return at most this many (`None`: all).
    pub limit: Option<usize>,
    /// Key order.
    pub order: Order,
}
