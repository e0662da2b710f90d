//! A namespace's config document as pure logic: dot paths into one JSON object, `set` merging
//! objects leaf by leaf, and which paths hold secrets.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::{Error, limits};

const ID: &str = "micro.config";

/// What a reader sees in place of a secret it did not ask to reveal.
pub const SECRET_MASK: &str = "[secret]";

/// The parts of a dot path; the empty path is the whole document. A path longer than
/// [`limits::MAX_KEY`] bytes or of more than [`limits::MAX_PATH_PARTS`] parts is refused before
/// it is split.
pub fn parts(path: &str) -> Result<Vec<&str>, Error> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    limits::key(ID, "config path", path)?;
    limits::path_parts(ID, "config path", path.split('.').count())?;
    let parts: Vec<&str> = path.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(Error::bad_request(
            ID,
            format!("invalid config path {path:?}: write it as a.b.c"),
        ));
    }
    Ok(parts)
}

/// One namespace's document and its secret paths.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Document {
    /// The whole document (always an object).
    pub root: Map<String, Value>,
    /// Dot paths whose values are secret.
    pub secrets: BTreeSet<String>,
}

impl Document {
    /// The value at `path`, with secrets under it masked unless `reveal`; `None` when missing.
    pub fn get(&self, path: &str, reveal: bool) -> Result<Option<Value>, Error> {
        let parts = parts(path)?;
        let mut node = &Value::Object(self.root.clone());
        for part in &parts {
            match node.get(part) {
                Some(next) => node = next,
                None => return Ok(None),
            }
        }
        let mut value = node.clone();
        if !reveal {
            for secret in &self.secrets {
                if secret == path {
                    return Ok(Some(Value::String(SECRET_MASK.to_owned())));
                }
                let inside = if path.is_empty() {
                    Some(secret.as_str())
                } else {
                    secret.strip_prefix(path).and_then(|r| r.strip_prefix('.'))
                };
                if let Some(rest) = inside {
                    mask(&mut value, &rest.split('.').collect::<Vec<_>>());
                }
                // A secret above the path hides everything under it.
                if path.starts_with(&format!("{secret}.")) {
                    return Ok(Some(Value::String(SECRET_MASK.to_owned())));
                }
            }
        }
        Ok(Some(value))
    }

    /// Sets `path` to `value`: an object merges into an object leaf by leaf; anything else
    /// replaces. A secret set marks the path secret; a plain set clears secrets at and under it.
    pub fn set(&mut self, path: &str, value: Value, secret: bool) -> Result<(), Error> {
        let parts = parts(path)?;
        if parts.is_empty() && !value.is_object() {
            return Err(Error::bad_request(
                ID,
                "the whole config can only be set to a JSON object",
            ));
        }
        // The document must stay readable: bound its depth before it is stored.
        let depth = parts.len() + limits::json_depth(&value, limits::MAX_JSON_DEPTH);
        if depth > limits::MAX_JSON_DEPTH {
            return Err(Error::bad_request(
                ID,
                format!(
                    "setting {path:?} to this value would nest the config {depth} levels deep; the limit is {}",
                    limits::MAX_JSON_DEPTH
                ),
            ));
        }
        let mut slot = &mut self.root;
        for part in &parts[..parts.len().saturating_sub(1)] {
            let child = slot
                .entry((*part).to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if !child.is_object() {
                *child = Value::Object(Map::new());
            }
            let Value::Object(child) = child else {
                unreachable!("made an object above")
            };
            slot = child;
        }
        match parts.last() {
            Some(last) => merge_into(slot, last, value),
            None => {
                if let Value::Object(map) = value {
                    for (k, v) in map {
                        merge_into(slot, &k, v);
                    }
                }
            }
        }
        self.secrets
            .retain(|s| !(s == path || path.is_empty() || s.starts_with(&format!("{path}."))));
        if secret {
            self.secrets.insert(path.to_owned());
        }
        Ok(())
    }

    /// Removes `path`; `false` when it was not there.
    pub fn delete(&mut self, path: &str) -> Result<bool, Error> {
        let parts = parts(path)?;
        let Some((last, parents)) = parts.split_last() else {
            let had = !self.root.is_empty();
            self.root.clear();
            self.secrets.clear();
            return Ok(had);
        };
        let mut slot = &mut self.root;
        for part in parents {
            match slot.get_mut(*part) {
                Some(Value::Object(child)) => slot = child,
                _ => return Ok(false),
            }
        }
        let removed = slot.shift_remove(*last).is_some();
        self.secrets
            .retain(|s| !(s == path || s.starts_with(&format!("{path}."))));
        Ok(removed)
    }
}

fn merge_into(slot: &mut Map<String, Value>, key: &str, value: Value) {
    match (slot.get_mut(key), value) {
        (Some(Value::Object(existing)), Value::Object(incoming)) => {
            for (k, v) in incoming {
                merge_into(existing, &k, v);
            }
        }
        (_, value) => {
            slot.insert(key.to_owned(), value);
        }
    }
}

fn mask(value: &mut Value, parts: &[&str]) {
    match parts.split_first() {
        None => *value = Value::String(SECRET_MASK.to_owned()),
        Some((first, rest)) => {
            if let Some(child) = value.get_mut(first) {
                mask(child, rest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn objects_merge_leaf_by_leaf_and_scalars_replace() {
        let mut doc = Document::default();
        doc.set("a", json!({"x": 1}), false).unwrap();
        doc.set("a", json!({"y": 2}), false).unwrap();
        assert_eq!(doc.get("a", false).unwrap(), Some(json!({"x": 1, "y": 2})));
        doc.set("a", json!({"x": {"deep": true}}), false).unwrap();
        assert_eq!(
            doc.get("a.x.deep", false).unwrap(),
            Some(json!(true)),
            "a scalar replaced by an object"
        );
        doc.set("a.x", json!("flat"), false).unwrap();
        assert_eq!(
            doc.get("a", false).unwrap(),
            Some(json!({"x": "flat", "y": 2}))
        );
        assert_eq!(doc.get("nope.x", false).unwrap(), None);
    }

    #[test]
    fn secrets_are_masked_unless_revealed() {
        let mut doc = Document::default();
        doc.set("db.password", json!("hunter2"), true).unwrap();
        doc.set("db.host", json!("h"), false).unwrap();
        assert_eq!(
            doc.get("db.password", false).unwrap(),
            Some(json!(SECRET_MASK))
        );
        assert_eq!(
            doc.get("db", false).unwrap(),
            Some(json!({"password": SECRET_MASK, "host": "h"}))
        );
        assert_eq!(
            doc.get("db.password", true).unwrap(),
            Some(json!("hunter2"))
        );
        doc.set("db.password", json!("open"), false).unwrap();
        assert_eq!(
            doc.get("db.password", false).unwrap(),
            Some(json!("open")),
            "a plain set clears the secret"
        );
    }

    #[test]
    fn delete_and_bad_paths() {
        let mut doc = Document::default();
        doc.set("a.b", json!(1), false).unwrap();
        assert!(doc.delete("a.b").unwrap());
        assert!(!doc.delete("a.b").unwrap());
        assert_eq!(doc.get("a.b", false).unwrap(), None);
        assert_eq!(doc.set("a..b", json!(1), false).unwrap_err().code, 400);
    }

    #[test]
    fn deep_paths_and_values_are_refused_before_they_are_stored() {
        let mut doc = Document::default();
        let long = vec!["a"; 20_000].join(".");
        let err = doc.set(&long, json!(1), false).unwrap_err();
        assert_eq!(err.code, 400);
        assert!(err.detail.contains("limit"), "{}", err.detail);
        assert_eq!(doc.get(&long, false).unwrap_err().code, 400);
        assert_eq!(doc.delete(&long).unwrap_err().code, 400);
        let mut deep = json!(1);
        for _ in 0..120 {
            deep = json!({ "d": deep });
        }
        let err = doc.set("x.y", deep, false).unwrap_err();
        assert!(err.detail.contains("levels deep"), "{}", err.detail);
        let path = vec!["p"; 30].join(".");
        let mut value = json!(1);
        for _ in 0..40 {
            value = json!({ "d": value });
        }
        assert_eq!(
            doc.set(&path, value, false).unwrap_err().code,
            400,
            "path and value add up"
        );
        assert!(doc.set("ok", json!({"a": {"b": 1}}), false).is_ok());
        assert!(doc.root.get("x").is_none(), "nothing was stored");
    }
}
