//! # micro-backends
//!
//! Where the platform's data lives. The embedded default needs no setup: a [`redb`] file for
//! the store (config documents included) and another for the event log, both under
//! `MICRO_HOME/server/`, each stamped with a format version; and a [`sealer`] key there that
//! encrypts config secrets at rest. The distributed engines sit next to them, each behind a cargo
//! feature named for what it pulls: [`postgres`] and [`redis`] stores, the [`nats`] broker and
//! JetStream events, the [`etcd`] registry.
//!
//! Every backend here implements a trait of `micro-core` and passes that trait's contract suite.

#[cfg(feature = "etcd")]
pub mod etcd;
#[cfg(feature = "nats")]
pub mod nats;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "redb")]
pub mod redb;
#[cfg(feature = "redis")]
pub mod redis;
pub mod sealer;

use std::{
    io::Write,
    path::{Path, PathBuf},
};

/// The smallest byte string after every one that starts with `prefix` (`None`: there is none,
/// every such string is the largest): the end of a prefix's key range, for every engine that
/// scans ranges (never patterns).
pub fn successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut next = prefix.to_vec();
    while let Some(last) = next.pop() {
        if last < u8::MAX {
            next.push(last + 1);
            return Some(next);
        }
    }
    None
}

/// Makes `dir` (and its parents) if missing, and leaves it private to this user (mode 0700),
/// whatever it was before: the server's files hold password hashes, keys and records.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Leaves the file at `path` readable and writable by this user only (mode 0600).
pub fn private_file(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Writes a new key file readable by its owner only (mode 0600), with its directory, and syncs
/// it; an existing file is never overwritten.
pub fn write_key_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    // A directory made here is private; one that exists (an operator's, `/tmp`) is left as it is.
    if let Some(dir) = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty() && !d.exists())
    {
        private_dir(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// The store database and table holding the keys servers sharing a store share (`auth` is a
/// platform database: no caller's store database is named without a `/`).
const SHARED_KEYS: (&str, &str) = ("auth", "keys");

/// The key `name` that every server sharing `store` uses: read from the store, or made by
/// `make` and stored with a conditional write, so servers starting together agree on one.
pub async fn shared_key(
    store: &dyn micro_core::store::Store,
    name: &str,
    make: impl FnOnce() -> Result<Vec<u8>, micro_core::Error>,
) -> Result<Vec<u8>, micro_core::Error> {
    let (database, table) = SHARED_KEYS;
    match store.read(database, table, name).await {
        Ok(record) => return Ok(record.value),
        Err(e) if e.code != 404 => return Err(e),
        Err(_) => {}
    }
    let made = micro_core::store::Record::new(name, make()?);
    if store.write_if(database, table, made.clone(), None).await? {
        return Ok(made.value);
    }
    // Another server stored its key first: use that one.
    Ok(store.read(database, table, name).await?.value)
}

/// Checks that the key file at `path` is the one every server sharing `store` uses: the first
/// server records its fingerprint (`name`) on the store, the others must match it — so a
/// server started without the operator's file (which would make a key of its own) is refused
/// instead of issuing tokens, or sealing secrets, no other server can read.
pub async fn agree_on_key_file(
    store: &dyn micro_core::store::Store,
    name: &str,
    path: &Path,
) -> Result<(), micro_core::Error> {
    let bytes = std::fs::read(path).map_err(|e| {
        micro_core::Error::internal(
            "micro.server",
            format!("cannot read {}: {e}", path.display()),
        )
    })?;
    let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
    let mine: String = digest.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let agreed = shared_key(store, name, || Ok(mine.clone().into_bytes())).await?;
    if agreed != mine.as_bytes() {
        return Err(micro_core::Error::bad_request(
            "micro.server",
            format!(
                "{} is not the key file the other servers use (fingerprint {mine}, theirs {}): give every server the same file",
                path.display(),
                String::from_utf8_lossy(&agreed)
            ),
        ));
    }
    Ok(())
}

/// The files of one server under `home` (`MICRO_HOME`, default `~/.micro`).
#[derive(Debug, Clone)]
pub struct ServerFiles {
    dir: PathBuf,
}

impl ServerFiles {
    /// The server's files under `home`.
    pub fn new(home: &Path) -> Self {
        Self {
            dir: home.join("server"),
        }
    }

    /// The directory holding them all.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The store (records and config documents).
    pub fn store(&self) -> PathBuf {
        self.dir.join("store.redb")
    }

    /// The event log.
    pub fn events(&self) -> PathBuf {
        self.dir.join("events.redb")
    }

    /// The Ed25519 key signing access tokens.
    pub fn auth_key(&self) -> PathBuf {
        self.dir.join("auth.key")
    }

    /// The key sealing config secrets.
    pub fn secret_key(&self) -> PathBuf {
        self.dir.join("config.key")
    }
}
