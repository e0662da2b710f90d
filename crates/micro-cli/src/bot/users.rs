//! Who may use the bot: chat users mapped to platform accounts, from a JSON file
//! (`--users FILE`, readable by its owner alone):
//!
//! ```json
//! { "slack:U0123ABCD": { "account": "ada", "secret": "…", "namespace": "micro" },
//!   "webhook:bob":     { "account": "bob", "secret": "…", "namespace": "team" } }
//! ```
//!
//! Each mapped user's commands run as `micro` logged in as their account, in a home of its own
//! (`MICRO_HOME/bot/users/DIGEST`, named after the chat user, account and namespace together): the platform's rules for that account decide every command, on
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
        let by_chat_id = map
            .into_iter()
            .map(|(key, account)| {
                let home = homes.join(home_name(&key, &account));
                (key, (account, home))
            })
            .collect();
        Ok(Self { by_chat_id })
    }

    /// The account `user` (`INPUT:ID`) is mapped to, and the home its commands run in (never
    /// shared by two mappings, see `home_name`).
    pub(crate) fn get(&self, user: &str) -> Option<&(Account, PathBuf)> {
        self.by_chat_id.get(user)
    }
}

/// A home's directory name: a digest of the chat user, the account and its namespace, so a
/// home (and the login kept in it) belongs to one mapping — an edited or reordered users file
/// never hands one user another's login.
fn home_name(chat_id: &str, account: &Account) -> String {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [chat_id, &account.account, &account.namespace] {
        context.update(&(part.len() as u64).to_be_bytes());
        context.update(part.as_bytes());
    }
    context
        .finish()
        .as_ref()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(name: &str, namespace: &str) -> Account {
        Account {
            account: name.to_owned(),
            secret: "s".to_owned(),
            namespace: namespace.to_owned(),
        }
    }

    #[test]
    fn a_home_belongs_to_one_mapping() {
        let ada = home_name("slack:U1", &account("ada", "micro"));
        assert_eq!(ada, home_name("slack:U1", &account("ada", "micro")));
        assert_ne!(ada, home_name("slack:U2", &account("ada", "micro")));
        assert_ne!(ada, home_name("slack:U1", &account("admin", "micro")));
        assert_ne!(ada, home_name("slack:U1", &account("ada", "team")));
    }
}
