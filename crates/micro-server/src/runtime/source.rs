//! Uploaded code: a gzipped tar unpacked into the service's source directory.
//!
//! A service keeps one source directory for its whole life, replaced on each update, so the
//! shared Cargo target directory sees the same paths every time and rebuilds incrementally. The
//! new tree is unpacked beside the old one and swapped in, so a bad archive leaves the old
//! source untouched.

use std::{
    io::Read,
    path::{Component, Path, PathBuf},
};

use micro_core::Error;

const ID: &str = "micro.runtime";

/// The most a source tree may unpack to.
const MAX_UNPACKED: u64 = 2 << 30;
/// The most files and directories a source tree may hold.
const MAX_ENTRIES: usize = 200_000;
/// The largest extension header an entry may carry (a GNU long name or link, PAX records):
/// the tar reader takes each whole into memory before the entry it describes.
const MAX_EXTENSION: u64 = 64 * 1024;
/// The most the gzip stream is read to, headers included: past it, the archive is cut short
/// and refused, however its headers count.
const MAX_STREAM: u64 = MAX_UNPACKED + (MAX_ENTRIES as u64) * 4 * 512;

/// The archive's tar stream, ungzipped, read no further than [`MAX_STREAM`].
fn stream(archive: &Path) -> Result<std::io::Take<flate2::read::GzDecoder<std::fs::File>>, Error> {
    let file = std::fs::File::open(archive)
        .map_err(|e| Error::internal(ID, format!("cannot read the upload: {e}")))?;
    Ok(flate2::read::GzDecoder::new(file).take(MAX_STREAM))
}

/// What the tar reader would trust before it unpacks anything, checked on the raw headers: an
/// extension header (a long name, PAX records) past [`MAX_EXTENSION`] is refused before anything
/// reads one whole; a PAX `size` record or a sparse file (either would make the reader walk the
/// archive at other offsets than these raw headers say) is refused; and so is an archive whose
/// entries add up past [`MAX_UNPACKED`], or that runs past [`MAX_STREAM`].
fn check_headers(archive: &Path, bad: impl Fn(String) -> Error) -> Result<(), Error> {
    let too_big = || {
        Error::bad_request(
            ID,
            "the source unpacks to more than 2 GiB; add what is not source to .gitignore",
        )
    };
    let mut tar = tar::Archive::new(stream(archive)?);
    let mut total = 0u64;
    for entry in tar.entries().map_err(|e| bad(e.to_string()))?.raw(true) {
        let mut entry = entry.map_err(|e| bad(e.to_string()))?;
        total = total.saturating_add(entry.size());
        if total > MAX_UNPACKED {
            return Err(too_big());
        }
        let kind = entry.header().entry_type();
        if kind.is_gnu_sparse() {
            return Err(bad("a sparse file (files are uploaded whole)".to_owned()));
        }
        let pax = kind.is_pax_local_extensions() || kind.is_pax_global_extensions();
        if !(pax || kind.is_gnu_longname() || kind.is_gnu_longlink()) {
            continue;
        }
        if entry.size() > MAX_EXTENSION {
            return Err(bad(format!(
                "an extension header (a long name or PAX records) of {} bytes; the limit is {MAX_EXTENSION}",
                entry.size()
            )));
        }
        if pax {
            let sized = entry
                .pax_extensions()
                .map_err(|e| bad(e.to_string()))?
                .into_iter()
                .flatten()
                .any(|record| record.is_ok_and(|r| r.key() == Ok("size")));
            if sized {
                return Err(bad(
                    "a PAX size record (a file's size belongs in its header)".to_owned(),
                ));
            }
        }
    }
    // Cut short by the stream's bound: more than any source within the limits holds.
    if tar.into_inner().limit() == 0 {
        return Err(too_big());
    }
    Ok(())
}

/// A short hash of an archive: the build id shown in `micro status`.
pub(crate) fn build_id(archive: &Path) -> Result<String, Error> {
    let mut file = std::fs::File::open(archive)
        .map_err(|e| Error::internal(ID, format!("cannot read the upload: {e}")))?;
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buffer = vec![0; 64 * 1024];
    loop {
        let n = file
            .read(&mut buffer)
            .map_err(|e| Error::internal(ID, format!("cannot read the upload: {e}")))?;
        if n == 0 {
            break;
        }
        context.update(&buffer[..n]);
    }
    Ok(context
        .finish()
        .as_ref()
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Checks that `path` (the crate's directory inside the archive) stays inside it.
pub(crate) fn check_path(path: &str) -> Result<(), Error> {
    let inside = Path::new(path)
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if inside {
        Ok(())
    } else {
        Err(Error::bad_request(
            ID,
            format!("invalid source path {path:?}: it must be relative and stay inside the upload"),
        ))
    }
}

/// Unpacks `archive` into `dir`, replacing what was there. A `Cargo.lock` the old tree had and
/// the new one lacks is kept (`crate_path` names where it lives), so an update does not
/// re-resolve dependencies.
pub(crate) fn unpack(archive: &Path, dir: &Path, crate_path: &str) -> Result<(), Error> {
    let bad = |what: String| {
        Error::bad_request(ID, format!("the upload is not a source archive: {what}"))
    };
    let parent = dir
        .parent()
        .ok_or_else(|| Error::internal(ID, "a source directory has no parent"))?;
    std::fs::create_dir_all(parent)
        .map_err(|e| Error::internal(ID, format!("cannot create {}: {e}", parent.display())))?;
    let fresh = tempfile::Builder::new()
        .prefix(".unpacking-")
        .tempdir_in(parent)
        .map_err(|e| Error::internal(ID, format!("cannot unpack the upload: {e}")))?;

    check_headers(archive, bad)?;
    let mut tar = tar::Archive::new(stream(archive)?);
    // Unpacked files are new to the build: with the archive's times, an older file sent in an
    // update (copied with its time kept, from another checkout) would not look changed to
    // cargo, and the old code would run under the new build id. Files an update left as they
    // were get their old times back below, so only what changed is rebuilt.
    tar.set_preserve_mtime(false);
    let mut total = 0u64;
    for (count, entry) in tar.entries().map_err(|e| bad(e.to_string()))?.enumerate() {
        if count >= MAX_ENTRIES {
            return Err(Error::bad_request(
                ID,
                format!(
                    "the source holds more than {MAX_ENTRIES} files; add what is not source to .gitignore"
                ),
            ));
        }
        let mut entry = entry.map_err(|e| bad(e.to_string()))?;
        // The size the entry holds, as read: a PAX record can say more than its header.
        total = total.saturating_add(entry.size());
        if total > MAX_UNPACKED {
            return Err(Error::bad_request(
                ID,
                "the source unpacks to more than 2 GiB; add what is not source to .gitignore",
            ));
        }
        // Files and directories only: a link could lead the build (or its `Cargo.toml`)
        // out of the source tree, and a device or fifo has no place in source.
        let kind = entry.header().entry_type();
        if !(kind.is_file() || kind.is_dir()) {
            let path = entry
                .path()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            return Err(bad(format!(
                "{path:?} is not a plain file or directory (links are not uploaded)"
            )));
        }
        // A path that leaves the tree, or starts at the root, is refused (`unpack_in` would
        // skip the first and re-root the second, quietly).
        let path = entry.path().map_err(|e| bad(e.to_string()))?;
        if !path
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
        {
            return Err(bad(format!(
                "{:?} leaves the source tree (an absolute path, or ..)",
                micro_core::error::bounded(&path.display().to_string())
            )));
        }
        // `unpack_in` refuses entries that would land outside the directory.
        entry
            .unpack_in(fresh.path())
            .map_err(|e| bad(e.to_string()))?;
    }

    let manifest = fresh.path().join(crate_path).join("Cargo.toml");
    if !manifest.is_file() {
        return Err(Error::bad_request(
            ID,
            format!(
                "no Cargo.toml in {}: micro run takes the directory of a Rust crate",
                if crate_path.is_empty() {
                    "the upload"
                } else {
                    crate_path
                }
            ),
        ));
    }
    let old_lock = dir.join(crate_path).join("Cargo.lock");
    let new_lock = fresh.path().join(crate_path).join("Cargo.lock");
    if old_lock.is_file() && !new_lock.exists() {
        let _ = std::fs::copy(&old_lock, &new_lock);
    }
    keep_times_of_unchanged(fresh.path(), dir);

    let fresh = fresh.keep();
    let retired = retired(dir);
    if dir.exists() {
        let _ = std::fs::remove_dir_all(&retired);
        std::fs::rename(dir, &retired)
            .map_err(|e| Error::internal(ID, format!("cannot replace {}: {e}", dir.display())))?;
    }
    std::fs::rename(&fresh, dir)
        .map_err(|e| Error::internal(ID, format!("cannot move the new source in place: {e}")))?;
    let _ = std::fs::remove_dir_all(&retired);
    Ok(())
}

/// Gives each file under `fresh` whose bytes are those of the file at the same place under
/// `old` that file's modification time, so cargo sees as changed only what an update changed.
/// Best effort: a file it cannot judge keeps its new time, and is rebuilt.
fn keep_times_of_unchanged(fresh: &Path, old: &Path) {
    // An explicit stack: the tree's depth is the archive's to choose.
    let mut dirs = vec![PathBuf::new()];
    while let Some(relative) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(fresh.join(&relative)) else {
            continue;
        };
        for entry in entries.flatten() {
            let relative = relative.join(entry.file_name());
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                dirs.push(relative);
            } else if kind.is_file() {
                let before = old.join(&relative);
                if let Ok(modified) = std::fs::metadata(&before).and_then(|m| m.modified())
                    && same_bytes(&entry.path(), &before)
                    && let Ok(file) = std::fs::File::options().write(true).open(entry.path())
                {
                    let _ = file.set_modified(modified);
                }
            }
        }
    }
}

/// Whether the files at `a` and `b` hold the same bytes (`false` if either cannot be read).
fn same_bytes(a: &Path, b: &Path) -> bool {
    let (Ok(a), Ok(b)) = (std::fs::File::open(a), std::fs::File::open(b)) else {
        return false;
    };
    if a.metadata().map(|m| m.len()).ok() != b.metadata().map(|m| m.len()).ok() {
        return false;
    }
    let (mut a, mut b) = (std::io::BufReader::new(a), std::io::BufReader::new(b));
    let (mut left, mut right) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    loop {
        let Ok(n) = a.read(&mut left) else {
            return false;
        };
        if n == 0 {
            return b.read(&mut right[..1]).is_ok_and(|m| m == 0);
        }
        if b.read_exact(&mut right[..n]).is_err() || left[..n] != right[..n] {
            return false;
        }
    }
}

fn retired(dir: &Path) -> PathBuf {
    let mut name = dir.as_os_str().to_owned();
    name.push(".old");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(dir: &Path, files: &[(&str, &str)]) -> PathBuf {
        let path = dir.join("upload.tar.gz");
        let gz = flate2::write::GzEncoder::new(
            std::fs::File::create(&path).unwrap(),
            flate2::Compression::fast(),
        );
        let mut tar = tar::Builder::new(gz);
        for (name, text) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(text.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            tar.append_data(&mut header, name, text.as_bytes()).unwrap();
        }
        tar.into_inner().unwrap().finish().unwrap();
        path
    }

    /// An archive of `entries` (header, data) as given, no path checked on the way in.
    fn raw_archive(dir: &Path, entries: Vec<(tar::Header, Vec<u8>)>) -> PathBuf {
        let path = dir.join("raw.tar.gz");
        let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
            std::fs::File::create(&path).unwrap(),
            flate2::Compression::fast(),
        ));
        for (header, data) in entries {
            tar.append(&header, data.as_slice()).unwrap();
        }
        tar.into_inner().unwrap().finish().unwrap();
        path
    }

    fn header(name: &[u8], kind: tar::EntryType, size: u64) -> tar::Header {
        let mut header = tar::Header::new_gnu();
        header.as_old_mut().name[..name.len()].copy_from_slice(name);
        header.set_entry_type(kind);
        header.set_size(size);
        header.set_mode(0o644);
        header.set_cksum();
        header
    }

    #[test]
    fn sizes_names_and_paths_are_judged_as_the_reader_sees_them() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = (
            header(b"Cargo.toml", tar::EntryType::Regular, 9),
            b"[package]".to_vec(),
        );
        let refused = |entries: Vec<(tar::Header, Vec<u8>)>, why: &str| {
            let archive = raw_archive(dir.path(), entries);
            let err = unpack(&archive, &dir.path().join("svc"), "").unwrap_err();
            assert_eq!(err.code, 400, "{why}: {err:?}");
            assert!(err.detail.contains(why), "{why}: {}", err.detail);
            assert!(!dir.path().join("svc").exists());
        };
        // A PAX record saying the next file is bigger than its header does.
        let records = b"19 size=2300000000\n".to_vec();
        refused(
            vec![
                manifest.clone(),
                (
                    header(b"pax", tar::EntryType::XHeader, records.len() as u64),
                    records,
                ),
                (header(b"big.bin", tar::EntryType::Regular, 0), Vec::new()),
            ],
            "PAX size record",
        );
        // One that shifts where the reader looks for the next header (the raw headers would
        // see the end of the archive, the reader then a 1.5 GB long name): the same.
        let records = b"13 size=1024\n".to_vec();
        refused(
            vec![
                manifest.clone(),
                (
                    header(b"pax", tar::EntryType::XHeader, records.len() as u64),
                    records,
                ),
                (header(b"shift", tar::EntryType::Regular, 0), vec![0; 1024]),
                (
                    header(b"././@LongLink", tar::EntryType::GNULongName, 1_500_000_000),
                    Vec::new(),
                ),
            ],
            "PAX size record",
        );
        // A header that says more than the limit, data or not.
        refused(
            vec![
                manifest.clone(),
                (
                    header(b"huge", tar::EntryType::Regular, 3 << 30),
                    Vec::new(),
                ),
            ],
            "more than 2 GiB",
        );
        refused(
            vec![
                manifest.clone(),
                (header(b"holes", tar::EntryType::GNUSparse, 0), Vec::new()),
            ],
            "sparse",
        );
        // A GNU long name of a megabyte: refused before anything reads it.
        refused(
            vec![
                manifest.clone(),
                (
                    header(b"././@LongLink", tar::EntryType::GNULongName, 1 << 20),
                    vec![b'a'; 1 << 20],
                ),
                (header(b"x", tar::EntryType::Regular, 0), Vec::new()),
            ],
            "extension header",
        );
        // Paths that leave the tree are refused, not skipped or re-rooted.
        for name in [&b"../escape"[..], b"/tmp/escape", b"a/../../escape"] {
            refused(
                vec![
                    manifest.clone(),
                    (header(name, tar::EntryType::Regular, 1), b"x".to_vec()),
                ],
                "leaves the source tree",
            );
        }
    }

    #[test]
    fn an_update_keeps_the_times_of_what_it_left_as_it_was() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("svc");
        let first = archive(
            tmp.path(),
            &[
                ("Cargo.toml", "[package]"),
                ("src/same.rs", "1"),
                ("src/changed.rs", "1"),
            ],
        );
        unpack(&first, &dir, "").unwrap();
        let past = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        for file in ["Cargo.toml", "src/same.rs", "src/changed.rs"] {
            std::fs::File::options()
                .write(true)
                .open(dir.join(file))
                .unwrap()
                .set_modified(past)
                .unwrap();
        }
        let second = archive(
            tmp.path(),
            &[
                ("Cargo.toml", "[package]"),
                ("src/same.rs", "1"),
                ("src/changed.rs", "2"),
            ],
        );
        unpack(&second, &dir, "").unwrap();
        let modified = |file: &str| {
            std::fs::metadata(dir.join(file))
                .unwrap()
                .modified()
                .unwrap()
        };
        assert_eq!(modified("src/same.rs"), past, "unchanged: its old time");
        assert_eq!(modified("Cargo.toml"), past);
        assert!(modified("src/changed.rs") > past, "changed: now");
    }

    #[test]
    fn unpacked_files_are_new_to_the_build() {
        let dir = tempfile::tempdir().unwrap();
        let mut old = header(b"Cargo.toml", tar::EntryType::Regular, 9);
        old.set_mtime(0);
        old.set_cksum();
        let archive = raw_archive(dir.path(), vec![(old, b"[package]".to_vec())]);
        unpack(&archive, &dir.path().join("svc"), "").unwrap();
        let modified = std::fs::metadata(dir.path().join("svc/Cargo.toml"))
            .unwrap()
            .modified()
            .unwrap();
        assert!(
            modified > std::time::UNIX_EPOCH + std::time::Duration::from_secs(86_400),
            "not the archive's 1970: {modified:?}"
        );
    }

    #[test]
    fn links_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("links.tar.gz");
        let file = std::fs::File::create(&archive).unwrap();
        let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
            file,
            flate2::Compression::fast(),
        ));
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        header.set_mode(0o777);
        tar.append_link(&mut header, "Cargo.toml", "/etc/passwd")
            .unwrap();
        tar.into_inner().unwrap().finish().unwrap();
        let err = unpack(&archive, &dir.path().join("svc"), "").unwrap_err();
        assert_eq!(err.code, 400);
        assert!(
            err.detail.contains("links are not uploaded"),
            "{}",
            err.detail
        );
        assert!(!dir.path().join("svc").exists());
    }

    #[test]
    fn unpacks_replacing_the_old_tree_and_keeping_its_lock_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("sources/micro/hello");
        let first = archive(
            tmp.path(),
            &[("Cargo.toml", "[package]"), ("src/old.rs", "")],
        );
        unpack(&first, &dir, "").unwrap();
        std::fs::write(dir.join("Cargo.lock"), "resolved").unwrap();

        let second = archive(
            tmp.path(),
            &[("Cargo.toml", "[package]"), ("src/new.rs", "")],
        );
        let id = build_id(&second).unwrap();
        assert_eq!(id.len(), 8);
        unpack(&second, &dir, "").unwrap();
        assert!(dir.join("src/new.rs").is_file());
        assert!(!dir.join("src/old.rs").exists(), "the old tree is gone");
        assert_eq!(
            std::fs::read_to_string(dir.join("Cargo.lock")).unwrap(),
            "resolved"
        );
    }

    #[test]
    fn refuses_what_is_not_a_crate_and_leaves_the_old_tree() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("svc");
        let good = archive(tmp.path(), &[("Cargo.toml", "[package]")]);
        unpack(&good, &dir, "").unwrap();

        let no_manifest = archive(tmp.path(), &[("README.md", "hi")]);
        let err = unpack(&no_manifest, &dir, "").unwrap_err();
        assert!(err.detail.contains("no Cargo.toml"), "{err}");
        assert!(dir.join("Cargo.toml").is_file());

        let garbage = tmp.path().join("garbage.tar.gz");
        std::fs::write(&garbage, b"not gzip at all").unwrap();
        let err = unpack(&garbage, &dir, "").unwrap_err();
        assert_eq!(err.code, 400, "{err}");

        for bad in ["../x", "/etc", "a/../../b"] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
        check_path("examples/helloworld").unwrap();
    }
}
