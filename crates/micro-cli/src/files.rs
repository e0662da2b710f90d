//! The CLI's own files (`config.json`, `tokens`): written whole to a temporary file, synced, then
//! renamed over the old one, so a crash leaves the old file or the new one, never half of each.

use std::{io::Write, path::Path};

use crate::failure::Failure;

/// Who may read a file the CLI writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Readers {
    /// As the umask says (the config).
    Anyone,
    /// The owner alone, mode 0600 (saved logins).
    Owner,
}

/// Writes `value` as pretty JSON to `path`, atomically; `what` names it in errors.
pub(crate) fn write_json<T: serde::Serialize>(
    path: &Path,
    value: &T,
    readers: Readers,
    what: &str,
) -> Result<(), Failure> {
    let fail = |e: std::io::Error| Failure::new(format!("Failed to write {}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let json = serde_json::to_vec_pretty(value)
        .map_err(|e| Failure::new(format!("Failed to encode the {what}: {e}")))?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if readers == Readers::Owner {
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    }
    let mut file = options.open(&tmp).map_err(fail)?;
    file.write_all(&json).map_err(fail)?;
    file.sync_all().map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)
}
