//! The CLI's own settings: environments, in `~/.micro/config.json` (or `-c FILE`).
//!
//! An environment is a named server address. `local` (`127.0.0.1:8081`) is built in and cannot
//! be removed. The file carries a format version; it is written atomically (temp file + rename)
//! so an interrupted write never leaves a half-written config.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use crate::{failure::Failure, files::Readers};

/// The built-in environment.
pub(crate) const LOCAL: &str = "local";
const LOCAL_ADDRESS: &str = micro_core::metadata::DEFAULT_SERVER_ADDRESS;
const FORMAT_VERSION: u32 = 1;

/// One environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct EnvEntry {
    pub(crate) address: String,
    #[serde(default)]
    pub(crate) description: String,
    /// Reach the server over TLS.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) tls: bool,
    /// The CA (PEM file) to verify the server with; none: the system's roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) ca: Option<PathBuf>,
}

/// The config file's contents.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Config {
    version: u32,
    /// The current environment.
    pub(crate) env: String,
    /// User-added environments (`local` is implied).
    #[serde(default)]
    pub(crate) envs: BTreeMap<String, EnvEntry>,
    /// The namespace chosen per environment (`micro user namespace set`); `micro` if none.
    #[serde(default)]
    pub(crate) namespaces: BTreeMap<String, String>,
    #[serde(skip)]
    path: PathBuf,
}

/// `MICRO_HOME`, else `~/.micro`.
pub(crate) fn home() -> PathBuf {
    if let Some(dir) = std::env::var_os(micro_core::metadata::ENV_HOME).filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    base.join(".micro")
}

impl Config {
    /// Loads `path` (or the default file); a missing file is the default config.
    pub(crate) fn load(path: Option<&Path>) -> Result<Self, Failure> {
        let path = path
            .map(Path::to_path_buf)
            .unwrap_or_else(|| home().join("config.json"));
        let mut config = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<Config>(&bytes).map_err(|e| {
                Failure::new(format!(
                    "The CLI config {} is not valid ({e}); fix or remove it",
                    path.display()
                ))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Config {
                version: FORMAT_VERSION,
                env: LOCAL.to_owned(),
                envs: BTreeMap::new(),
                namespaces: BTreeMap::new(),
                path: PathBuf::new(),
            },
            Err(e) => {
                return Err(Failure::new(format!(
                    "Failed to read {}: {e}",
                    path.display()
                )));
            }
        };
        if config.version > FORMAT_VERSION {
            return Err(Failure::new(format!(
                "{} was written by a newer micro (format {}); upgrade micro",
                path.display(),
                config.version
            )));
        }
        config.version = FORMAT_VERSION;
        config.path = path;
        Ok(config)
    }

    /// Writes the config atomically.
    pub(crate) fn save(&self) -> Result<(), Failure> {
        crate::files::write_json(&self.path, self, Readers::Anyone, "config")
    }

    /// Every environment, `local` first, then by name.
    pub(crate) fn all(&self) -> Vec<(String, EnvEntry)> {
        let mut all = vec![(LOCAL.to_owned(), local())];
        all.extend(self.envs.iter().map(|(k, v)| (k.clone(), v.clone())));
        all
    }

    /// The environment called `name`.
    pub(crate) fn get(&self, name: &str) -> Option<EnvEntry> {
        if name == LOCAL {
            return Some(local());
        }
        self.envs.get(name).cloned()
    }
}

fn local() -> EnvEntry {
    EnvEntry {
        address: LOCAL_ADDRESS.to_owned(),
        description: "Local running micro server".to_owned(),
        tls: false,
        ca: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_file_is_local_and_saves_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/config.json");
        let mut config = Config::load(Some(&path)).unwrap();
        assert_eq!(config.env, LOCAL);
        config.envs.insert(
            "staging".into(),
            EnvEntry {
                address: "10.0.0.1:8081".into(),
                description: String::new(),
                tls: false,
                ca: None,
            },
        );
        config.env = "staging".into();
        config.save().unwrap();
        let back = Config::load(Some(&path)).unwrap();
        assert_eq!(back.env, "staging");
        assert_eq!(back.get("staging").unwrap().address, "10.0.0.1:8081");
        assert_eq!(back.all()[0].0, LOCAL);
    }

    #[test]
    fn a_newer_format_is_refused_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, r#"{"version":99,"env":"local"}"#).unwrap();
        let err = Config::load(Some(&path)).unwrap_err();
        assert!(err.message.contains("newer micro"), "{}", err.message);
        std::fs::write(&path, "{not json").unwrap();
        assert!(
            Config::load(Some(&path))
                .unwrap_err()
                .message
                .contains("not valid")
        );
    }
}
