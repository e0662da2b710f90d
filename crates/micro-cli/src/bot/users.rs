//! Who may use the bot: chat users mapped to platform accounts, from a JSON file
//! (`--users FILE`, readable by its owner alone):
//!
//! ```json
//! { "slack:U0123ABCD": { "account": "ada", "secret": "…", "namespace": "micro" },
//!   "webhook:bob":     { "account": "bob", "secret": "…", "namespace": "team" } }
//! ```
//!
//! Each mapped user's commands run as `micro` logged in as their account, in a home of its own
//! (`MICRO_HOME/bot/users/N`): the platform's rules for that account decide every command, on
//! this door as on every other, and the bot itself holds no rights. Anyone not in the file is
//! refused.

use std::{collections::HashMap, path::PathBuf};

use serde::Deserialize;

/// One mapped user.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Account {
    pub(crate) account: String,
    pub(crate) secret: String,
    #[serde(default = "default_namespace")]
    pub(crate) namespace: String,
}

fn default_namespace() -> String {
    micro_core::metadata::DEFAULT_NAMESPACE.to_owned()
}

/// The users file, read.
#[derive(Debug, Default)]
pub(crate) struct Users {
    by_chat_id: HashMap<String, (Account, PathBuf)>,
}

impl Users {
    /// Reads `path`; each user's home is under `homes`.
    pub(crate) fn load(path: &std::path::Path, homes: &std::path::Path) -> Result<Self, String> {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(format!(
                "{} holds secrets: make it readable by its owner alone (chmod 600)",
                path.display()
            ));
        }
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let map: HashMap<String, Account> = serde_json::from_str(&text)
            .map_err(|e| format!("{} is not a users file: {e}", path.display()))?;
        let mut keys: Vec<&String> = map.keys().collect();
        keys.sort();
        let by_chat_id = keys
            .iter()
            .enumerate()
            .map(|(i, key)| {
                (
                    (*key).clone(),
                    (map[*key].clone(), homes.join(i.to_string())),
                )
            })
            .collect();
        Ok(Self { by_chat_id })
    }

    /// The account `user` (`INPUT:ID`) is mapped to, and the home its commands run in.
    pub(crate) fn get(&self, user: &str) -> Option<&(Account, PathBuf)> {
        self.by_chat_id.get(user)
    }
}
