//! Saved logins: `MICRO_HOME/tokens`, a JSON file (mode 0600) holding the tokens of each env and
//! namespace the user logged in to. Written atomically, like the config.

use std::{collections::BTreeMap, path::PathBuf};

use micro::auth::Tokens;
use serde::{Deserialize, Serialize};

use crate::{failure::Failure, files::Readers};

const FORMAT_VERSION: u32 = 1;

/// One login.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Saved {
    /// The account's id.
    pub(crate) id: String,
    /// The account's name.
    pub(crate) name: String,
    #[serde(flatten)]
    pub(crate) tokens: Tokens,
}

#[derive(Debug, Serialize, Deserialize)]
struct Contents {
    version: u32,
    /// By `ENV/NAMESPACE`.
    #[serde(default)]
    logins: BTreeMap<String, Saved>,
}

/// The tokens file.
#[derive(Debug)]
pub(crate) struct TokenFile {
    path: PathBuf,
    contents: Contents,
}

fn key(env: &str, namespace: &str) -> String {
    format!("{env}/{namespace}")
}

impl TokenFile {
    /// Reads `MICRO_HOME/tokens`; a missing file holds no logins.
    pub(crate) fn load() -> Result<Self, Failure> {
        let path = crate::config::home().join("tokens");
        let contents = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                Failure::new(format!(
                    "{} is damaged ({e}); remove it and log in again",
                    path.display()
                ))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Contents {
                version: FORMAT_VERSION,
                logins: BTreeMap::new(),
            },
            Err(e) => {
                return Err(Failure::new(format!(
                    "Failed to read {}: {e}",
                    path.display()
                )));
            }
        };
        if contents.version > FORMAT_VERSION {
            return Err(Failure::new(format!(
                "{} was written by a newer micro; upgrade micro",
                path.display()
            )));
        }
        Ok(Self { path, contents })
    }

    /// The login for `env` and `namespace`.
    pub(crate) fn get(&self, env: &str, namespace: &str) -> Option<&Saved> {
        self.contents.logins.get(&key(env, namespace))
    }

    /// Records a login.
    pub(crate) fn set(&mut self, env: &str, namespace: &str, saved: Saved) {
        self.contents.logins.insert(key(env, namespace), saved);
    }

    /// Forgets a login; whether there was one.
    pub(crate) fn remove(&mut self, env: &str, namespace: &str) -> bool {
        self.contents.logins.remove(&key(env, namespace)).is_some()
    }

    /// Forgets every login to `env`.
    pub(crate) fn remove_env(&mut self, env: &str) {
        let prefix = format!("{env}/");
        self.contents.logins.retain(|k, _| !k.starts_with(&prefix));
    }

    /// Writes the file (mode 0600), atomically.
    pub(crate) fn save(&self) -> Result<(), Failure> {
        crate::files::write_json(&self.path, &self.contents, Readers::Owner, "tokens")
    }
}
