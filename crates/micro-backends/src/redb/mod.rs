//! The embedded default: redb files, one per concern, each stamped with a format version.
//!
//! redb is synchronous; every operation runs on tokio's blocking pool. Keys are byte strings
//! of `\0`-separated names (`database\0table\0key`, `namespace\0topic\0sequence`), so one
//! ordered table serves every database, table or topic, and a prefix is a key range. Names may
//! therefore not contain `\0`.

mod commit;
mod events;
mod store;

use std::{path::Path, sync::Arc};

use micro_core::Error;
use redb::{Database, ReadOnlyTable, ReadTransaction, ReadableDatabase, TableDefinition};

pub use events::RedbLog;
pub use store::RedbStore;

/// The on-disk format this build reads and writes. A file with a higher version was written by a
/// newer micro and is refused rather than misread.
pub const FORMAT_VERSION: u64 = 1;

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const FORMAT_KEY: &str = "format";

/// Opens (creating if needed) the redb file at `path` and checks its format version.
pub(crate) fn open(path: &Path, id: &'static str) -> Result<Arc<Database>, Error> {
    if let Some(dir) = path.parent() {
        crate::private_dir(dir)
            .map_err(|e| Error::internal(id, format!("cannot create {}: {e}", dir.display())))?;
    }
    let db = Database::create(path).map_err(|e| match e {
        redb::DatabaseError::DatabaseAlreadyOpen => Error::internal(
            id,
            format!(
                "{} is in use by another micro server: stop it, or give this one another MICRO_HOME",
                path.display()
            ),
        ),
        e => Error::internal(id, format!("cannot open {}: {e}", path.display())),
    })?;
    crate::private_file(path)
        .map_err(|e| Error::internal(id, format!("cannot make {} private: {e}", path.display())))?;
    let found = {
        let read = db.begin_read().map_err(|e| storage(id, e))?;
        match table(id, &read, META)? {
            Some(meta) => meta
                .get(FORMAT_KEY)
                .map_err(|e| storage(id, e))?
                .map(|v| v.value()),
            None => None,
        }
    };
    match found {
        Some(FORMAT_VERSION) => {}
        Some(other) => {
            return Err(Error::internal(
                id,
                format!(
                    "{} has format version {other}, but this micro reads version {FORMAT_VERSION}: use the micro that wrote it, or a newer one",
                    path.display()
                ),
            ));
        }
        None => {
            let write = db.begin_write().map_err(|e| storage(id, e))?;
            write
                .open_table(META)
                .map_err(|e| storage(id, e))?
                .insert(FORMAT_KEY, FORMAT_VERSION)
                .map_err(|e| storage(id, e))?;
            write.commit().map_err(|e| storage(id, e))?;
        }
    }
    Ok(Arc::new(db))
}

/// `definition` as `read` sees it; `None` while no write has created it yet.
pub(crate) fn table<K: redb::Key + 'static, V: redb::Value + 'static>(
    id: &str,
    read: &ReadTransaction,
    definition: TableDefinition<K, V>,
) -> Result<Option<ReadOnlyTable<K, V>>, Error> {
    match read.open_table(definition) {
        Ok(table) => Ok(Some(table)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(storage(id, e)),
    }
}

/// Stamps `path` with another format version (for upgrade tests).
#[doc(hidden)]
pub fn stamp_format(path: &Path, version: u64) -> Result<(), Error> {
    let db = Database::create(path).map_err(|e| storage("micro.store", e))?;
    let write = db.begin_write().map_err(|e| storage("micro.store", e))?;
    write
        .open_table(META)
        .map_err(|e| storage("micro.store", e))?
        .insert(FORMAT_KEY, version)
        .map_err(|e| storage("micro.store", e))?;
    write.commit().map_err(|e| storage("micro.store", e))
}

/// A storage failure as a platform error.
pub(crate) fn storage(id: &str, e: impl std::fmt::Display) -> Error {
    Error::internal(id, format!("storage failed: {e}"))
}

/// Runs `work` on the blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    id: &'static str,
    db: &Arc<Database>,
    work: impl FnOnce(&Database) -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    let db = db.clone();
    tokio::task::spawn_blocking(move || work(&db))
        .await
        .map_err(|e| Error::internal(id, format!("storage task failed: {e}")))?
}

/// `a\0b\0…\0` for the names, refusing names that contain `\0`.
pub(crate) fn prefix(id: &str, names: &[&str]) -> Result<Vec<u8>, Error> {
    let mut key = Vec::new();
    for name in names {
        if name.contains('\0') {
            return Err(Error::bad_request(
                id,
                format!("{name:?} contains a NUL character, which names may not"),
            ));
        }
        key.extend_from_slice(name.as_bytes());
        key.push(0);
    }
    Ok(key)
}

/// Milliseconds since the Unix epoch.
pub(crate) fn unix_ms(time: std::time::SystemTime) -> u64 {
    time.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_carry_a_version_and_newer_ones_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("server/store.redb");
        drop(open(&path, "test").expect("a new file"));
        drop(open(&path, "test").expect("reopening a version-1 file"));
        stamp_format(&path, FORMAT_VERSION + 1).expect("stamp");
        let err = open(&path, "test").expect_err("a newer format");
        assert!(err.detail.contains("format version 2"), "{err:?}");
    }

    #[test]
    fn a_file_is_used_by_one_server_at_a_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("store.redb");
        let _first = open(&path, "test").expect("open");
        let err = open(&path, "test").expect_err("second open");
        assert!(
            err.detail.contains("in use by another micro server"),
            "{err:?}"
        );
    }
}
