//! Saved logins: `MICRO_HOME/tokens`, a JSON file (mode 0600) holding the tokens of each env and
//! namespace the user logged in to. Written atomically, like the config.

use std::{collections::BTreeMap, io::Write, path::PathBuf};

use micro::auth::Tokens;
use serde::{Deserialize, Serialize};

use crate::failure::Failure;

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
        let fail = |e: std::io::Error| {
            Failure::new(format!("Failed to write {}: {e}", self.path.display()))
        };
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(fail)?;
        }
        let tmp = self.path.with_extension("tmp");
        let json = serde_json::to_vec_pretty(&self.contents)
            .map_err(|e| Failure::new(format!("Failed to encode the tokens: {e}")))?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp).map_err(fail)?;
        file.write_all(&json).map_err(fail)?;
        file.sync_all().map_err(fail)?;
        std::fs::rename(&tmp, &self.path).map_err(fail)
    }
}
