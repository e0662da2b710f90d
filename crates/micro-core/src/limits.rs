//! Every bound the platform puts on what a caller sends, in one place.
//!
//! Any byte a caller controls may be deep, huge or odd. Each door (gateway, gRPC services,
//! proxy, CLI) checks input against these bounds *before* it recurses or allocates in
//! proportion to it, and answers a 400 / `INVALID_ARGUMENT` that names the bound. Keeping the
//! numbers here means two doors can never disagree about what is too much.
//!
//! | bound | value | where it applies |
//! |---|---|---|
//! | [`MAX_PATH_PARTS`] | 32 | query keys (`a[b][c]`, `a.b.c`), config paths, `google.api.http` body fields |
//! | [`MAX_JSON_DEPTH`] | 64 | config documents (path and value together), schemas |
//! | [`MAX_NAME`] | 256 bytes | service, node, endpoint, topic, table, database, metadata keys |
//! | [`MAX_KEY`] | 1024 bytes | store keys, config paths |
//! | [`MAX_VALUE`] | 4 MiB | store values, config values, event and message bodies |
//! | [`MAX_METADATA`] | 64 entries of up to [`MAX_METADATA_VALUE`] | every metadata map |
//! | [`MAX_QUERY_PARAMS`] | 256 | parameters in one query string |
//! | [`MAX_DURATION`] | 24 h | timeouts, TTLs, `ack_wait` a caller asks for |
//! | [`MAX_EXPIRY`] | 10 years | a store record's expiry |
//! | [`MAX_NODES`], [`MAX_VERSIONS`], [`MAX_ENDPOINTS`], [`MAX_SCHEMA_FIELDS`] | 256, 10,000, 1,024, 16,384 | nodes per service version, versions per namespace, endpoints and schema fields per registration |

use std::time::Duration;

use crate::Error;

/// The most parts a dotted or bracketed path may have.
pub const MAX_PATH_PARTS: usize = 32;
/// The deepest a JSON document the platform keeps (config) or a schema may nest.
pub const MAX_JSON_DEPTH: usize = 64;
/// The longest name (service, node id, endpoint, topic, table, metadata key), in bytes.
pub const MAX_NAME: usize = 256;
/// The longest store key or config path, in bytes.
pub const MAX_KEY: usize = 1024;
/// The largest value (store record, config value, event payload, message body), in bytes.
pub const MAX_VALUE: usize = 4 * 1024 * 1024;
/// The most entries in one metadata map.
pub const MAX_METADATA: usize = 64;
/// The largest gRPC message a platform service takes: a value at [`MAX_VALUE`], escaped or
/// encoded twice over in the worst case (JSON through the proxy), with room for the rest.
pub const MAX_MESSAGE: usize = 2 * MAX_VALUE + 64 * 1024;
/// The longest metadata value, in bytes.
pub const MAX_METADATA_VALUE: usize = 4096;
/// The most parameters one query string may carry.
pub const MAX_QUERY_PARAMS: usize = 256;
/// The longest timeout, TTL or redelivery wait a caller may ask for.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);
/// The furthest a store record's expiry may lie.
pub const MAX_EXPIRY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// The most endpoints one registered service version may have.
pub const MAX_ENDPOINTS: usize = 1024;
/// The most nodes one service version may have.
pub const MAX_NODES: usize = 256;
/// The most service versions one namespace may hold.
pub const MAX_VERSIONS: usize = 10_000;
/// The most fields a registered schema may hold in total.
pub const MAX_SCHEMA_FIELDS: usize = 16 * 1024;

/// Refuses a name (`what` says which) that is empty, longer than [`MAX_NAME`] or holds control
/// characters.
pub fn name(id: &str, what: &str, value: &str) -> Result<(), Error> {
    if value.is_empty() {
        return Err(Error::bad_request(id, format!("a {what} is required")));
    }
    if value.len() > MAX_NAME {
        return Err(Error::bad_request(
            id,
            format!(
                "the {what} is {} bytes long; the limit is {MAX_NAME}",
                value.len()
            ),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::bad_request(
            id,
            format!("the {what} {value:?} holds control characters"),
        ));
    }
    Ok(())
}

/// Refuses a key or path (`what` says which) longer than [`MAX_KEY`].
pub fn key(id: &str, what: &str, value: &str) -> Result<(), Error> {
    if value.len() > MAX_KEY {
        return Err(Error::bad_request(
            id,
            format!(
                "the {what} is {} bytes long; the limit is {MAX_KEY}",
                value.len()
            ),
        ));
    }
    Ok(())
}

/// Refuses a value (`what` says which) larger than [`MAX_VALUE`].
pub fn value(id: &str, what: &str, len: usize) -> Result<(), Error> {
    if len > MAX_VALUE {
        return Err(Error::bad_request(
            id,
            format!("the {what} is {len} bytes; the limit is {MAX_VALUE}"),
        ));
    }
    Ok(())
}

/// Refuses a path of more than [`MAX_PATH_PARTS`] parts.
pub fn path_parts(id: &str, what: &str, parts: usize) -> Result<(), Error> {
    if parts > MAX_PATH_PARTS {
        return Err(Error::bad_request(
            id,
            format!("the {what} has {parts} parts; the limit is {MAX_PATH_PARTS}"),
        ));
    }
    Ok(())
}

/// Refuses a metadata map with too many entries, or too long a key or value.
pub fn metadata<'a>(
    id: &str,
    entries: impl ExactSizeIterator<Item = (&'a String, &'a String)>,
) -> Result<(), Error> {
    if entries.len() > MAX_METADATA {
        return Err(Error::bad_request(
            id,
            format!(
                "the metadata has {} entries; the limit is {MAX_METADATA}",
                entries.len()
            ),
        ));
    }
    for (k, v) in entries {
        name(id, "metadata key", k)?;
        if v.len() > MAX_METADATA_VALUE {
            return Err(Error::bad_request(
                id,
                format!(
                    "the metadata value of {k:?} is {} bytes; the limit is {MAX_METADATA_VALUE}",
                    v.len()
                ),
            ));
        }
    }
    Ok(())
}

/// A duration a caller asked for in milliseconds (`what` says which), refused past `max`.
pub fn duration_ms(id: &str, what: &str, ms: u64, max: Duration) -> Result<Duration, Error> {
    let asked = Duration::from_millis(ms);
    if asked > max {
        return Err(Error::bad_request(
            id,
            format!(
                "the {what} of {ms} ms is longer than the limit of {} s",
                max.as_secs()
            ),
        ));
    }
    Ok(asked)
}

/// How deep a JSON value nests (a scalar is 0, `{}` and `[]` are 1), counted without
/// recursion, so any value can be measured. Stops counting at `limit + 1`.
pub fn json_depth(value: &serde_json::Value, limit: usize) -> usize {
    let mut deepest = 0;
    let mut stack: Vec<(&serde_json::Value, usize)> = vec![(value, 0)];
    while let Some((v, depth)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &serde_json::Value>> = match v {
            serde_json::Value::Object(map) => Box::new(map.values()),
            serde_json::Value::Array(items) => Box::new(items.iter()),
            _ => continue,
        };
        let depth = depth + 1;
        deepest = deepest.max(depth);
        if deepest > limit {
            return deepest;
        }
        stack.extend(children.map(|c| (c, depth)));
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn depth_is_counted_without_recursion() {
        assert_eq!(json_depth(&json!(1), 10), 0);
        assert_eq!(json_depth(&json!({}), 10), 1);
        assert_eq!(json_depth(&json!({"a": [1, {"b": 2}]}), 10), 3);
        assert_eq!(json_depth(&json!([[[[1]]]]), 2), 3, "stops past the limit");
    }

    #[test]
    fn bounds_name_what_they_refuse() {
        let err = name("t", "service name", &"x".repeat(MAX_NAME + 1)).unwrap_err();
        assert_eq!(err.code, 400);
        assert!(err.detail.contains("limit is 256"), "{}", err.detail);
        assert!(name("t", "topic", "a\u{0}b").is_err());
        assert!(name("t", "topic", "").is_err());
        assert!(path_parts("t", "query key", 33).is_err());
        assert!(path_parts("t", "query key", 32).is_ok());
        let err = duration_ms("t", "ttl", u64::MAX, MAX_DURATION).unwrap_err();
        assert!(err.detail.contains("limit"), "{}", err.detail);
        assert_eq!(
            duration_ms("t", "ttl", 1500, MAX_DURATION).unwrap(),
            Duration::from_millis(1500)
        );
    }
}
