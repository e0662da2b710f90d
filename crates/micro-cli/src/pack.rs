//! Packs a service's source for `micro run` and `micro update`: a gzipped tar of the crate's
//! directory — or, when the crate belongs to a Cargo workspace, of the whole workspace, since
//! it inherits from it — honouring `.gitignore` and leaving out `target/` and `.git/`. The
//! server judges which files changed by their bytes, not by the times packed here (it keeps the
//! old time of a file an update left as it was), so its incremental build rebuilds only what
//! changed.

use std::path::{Path, PathBuf};

use crate::failure::Failure;

/// A packed source tree.
pub(crate) struct Packed {
    /// The gzipped tar.
    pub(crate) archive: Vec<u8>,
    /// The crate's directory inside the archive (`""` for its root), with `/` separators.
    pub(crate) path: String,
    /// The crate directory's name: the service name unless `--name` says otherwise.
    pub(crate) dir_name: String,
    /// The crate's directory on this machine, as SOURCE.
    pub(crate) source: String,
    /// How many files went in.
    pub(crate) files: usize,
}

/// Packs the crate at `dir`.
pub(crate) fn pack(dir: &Path) -> Result<Packed, Failure> {
    let crate_dir = dir.canonicalize().map_err(|_| {
        Failure::new(format!(
            "No directory {}: micro run takes the directory of a Rust crate",
            dir.display()
        ))
    })?;
    if !crate_dir.join("Cargo.toml").is_file() {
        return Err(Failure::new(format!(
            "{} has no Cargo.toml: micro run takes the directory of a Rust crate (make one with micro new NAME)",
            dir.display()
        )));
    }
    let root = workspace_root(&crate_dir).unwrap_or_else(|| crate_dir.clone());
    let path = crate_dir
        .strip_prefix(&root)
        .unwrap_or(Path::new(""))
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/");
    let dir_name = crate_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();

    let failed =
        |e: &dyn std::fmt::Display| Failure::new(format!("Cannot pack {}: {e}", root.display()));
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    tar.follow_symlinks(false);
    let mut files = 0;
    let walk = ignore::WalkBuilder::new(&root)
        .hidden(false)
        .require_git(false)
        .filter_entry(|entry| {
            let name = entry.file_name();
            !(entry.file_type().is_some_and(|t| t.is_dir()) && (name == "target" || name == ".git"))
        })
        .build();
    for entry in walk {
        let entry = entry.map_err(|e| failed(&e))?;
        if !entry.file_type().is_some_and(|t| t.is_file()) {
            continue;
        }
        let relative: PathBuf = entry
            .path()
            .strip_prefix(&root)
            .map_err(|e| failed(&e))?
            .into();
        tar.append_path_with_name(entry.path(), &relative)
            .map_err(|e| failed(&e))?;
        files += 1;
    }
    let archive = tar
        .into_inner()
        .and_then(|gz| gz.finish())
        .map_err(|e| failed(&e))?;
    Ok(Packed {
        archive,
        path,
        dir_name,
        source: crate_dir.display().to_string(),
        files,
    })
}

/// The directory of the workspace `crate_dir` belongs to: its own when its Cargo.toml has a
/// `[workspace]` table, else the nearest ancestor's that has one, else none.
fn workspace_root(crate_dir: &Path) -> Option<PathBuf> {
    crate_dir
        .ancestors()
        .find(|dir| {
            std::fs::read_to_string(dir.join("Cargo.toml"))
                .ok()
                .and_then(|text| text.parse::<toml::Table>().ok())
                .is_some_and(|manifest| manifest.contains_key("workspace"))
        })
        .map(Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(packed: &Packed) -> Vec<String> {
        let gz = flate2::read::GzDecoder::new(packed.archive.as_slice());
        let mut names: Vec<String> = tar::Archive::new(gz)
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn packs_a_crate_without_its_target_or_ignored_files() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("hello");
        write(
            &dir.join("Cargo.toml"),
            "[package]\nname = \"hello\"\n[workspace]\n",
        );
        write(&dir.join("src/main.rs"), "fn main() {}");
        write(&dir.join(".gitignore"), "/secrets\n");
        write(&dir.join("secrets/key"), "x");
        write(&dir.join("target/release/hello"), "binary");
        let packed = pack(&dir).unwrap();
        assert_eq!(names(&packed), [".gitignore", "Cargo.toml", "src/main.rs"]);
        assert_eq!(packed.path, "");
        assert_eq!(packed.dir_name, "hello");
        assert_eq!(packed.files, 3);
    }

    #[test]
    fn a_workspace_member_travels_with_its_workspace() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("repo");
        write(
            &root.join("Cargo.toml"),
            "[workspace]\nmembers = [\"services/*\"]\n",
        );
        write(
            &root.join("services/greeter/Cargo.toml"),
            "[package]\nname = \"greeter\"\n",
        );
        write(&root.join("services/greeter/src/main.rs"), "fn main() {}");
        write(&root.join("crates/shared/src/lib.rs"), "");
        let packed = pack(&root.join("services/greeter")).unwrap();
        assert_eq!(packed.path, "services/greeter");
        assert_eq!(packed.dir_name, "greeter");
        assert!(names(&packed).contains(&"crates/shared/src/lib.rs".to_owned()));
    }

    #[test]
    fn refuses_what_is_not_a_crate() {
        let tmp = tempfile::tempdir().unwrap();
        let err = pack(&tmp.path().join("missing")).err().unwrap();
        assert!(err.message.contains("No directory"), "{}", err.message);
        let err = pack(tmp.path()).err().unwrap();
        assert!(err.message.contains("no Cargo.toml"), "{}", err.message);
    }
}
