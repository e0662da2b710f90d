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

    let file = std::fs::File::open(archive)
        .map_err(|e| Error::internal(ID, format!("cannot read the upload: {e}")))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
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
        total = total.saturating_add(entry.header().size().unwrap_or(u64::MAX));
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
