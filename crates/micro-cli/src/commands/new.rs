//! `micro new NAME`: scaffolds a service crate that builds with `cargo build` alone (BEHAVIOR.md
//! §4) and depends on the framework this CLI was built from (`--micro-path` overrides).
//!
//! The files come from `templates/`, filled in with the name in the forms each place needs:
//! `foo-bar` is the crate and the registered service, `FooBar` the proto service, `foobar` the
//! proto package, `foo_bar` tonic's module prefix.

use std::path::{Path, PathBuf};

use crate::{cli::NewArgs, failure::Failure};

/// The repository this CLI was built from: `crates/micro-cli/../..`.
fn built_from() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The forms of a service name.
#[derive(Debug, PartialEq, Eq)]
struct Names {
    name: String,
    service: String,
    package: String,
    snake: String,
}

fn names(name: &str) -> Result<Names, String> {
    let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && !name.ends_with(['-', '_']);
    if !valid {
        return Err(format!(
            "Invalid service name {name:?}: use lower-case letters, digits and dashes, starting with a letter (e.g. foo-bar)"
        ));
    }
    let words: Vec<&str> = name.split(['-', '_']).filter(|w| !w.is_empty()).collect();
    Ok(Names {
        name: name.to_owned(),
        service: micro_core::naming::title(name),
        package: words.concat(),
        snake: words.join("_"),
    })
}

fn fill(template: &str, names: &Names, micro_path: &str) -> String {
    template
        .replace("{{name}}", &names.name)
        .replace("{{service}}", &names.service)
        .replace("{{package}}", &names.package)
        .replace("{{snake}}", &names.snake)
        .replace("{{micro_path}}", micro_path)
}

pub(crate) fn run(args: &NewArgs) -> Result<(), Failure> {
    let dir = PathBuf::from(&args.name);
    let base = dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Failure::new(format!("Invalid service name {:?}", args.name)))?;
    let names = names(base).map_err(Failure::new)?;
    if dir.exists() {
        return Err(Failure::new(format!(
            "{} already exists; choose another name or remove it",
            dir.display()
        )));
    }
    let framework = args.micro_path.clone().unwrap_or_else(built_from);
    if !framework.join("crates/micro/Cargo.toml").is_file() {
        return Err(Failure::new(format!(
            "The Micro framework is not at {}; pass --micro-path with the path of a Micro for Rust checkout",
            framework.display()
        )));
    }
    let framework = framework.canonicalize().unwrap_or(framework);
    let micro_path = framework.to_string_lossy().replace('\\', "/");
    let files: [(String, &str); 7] = [
        (
            "Cargo.toml".into(),
            include_str!("../../templates/Cargo.toml.tmpl"),
        ),
        (
            "build.rs".into(),
            include_str!("../../templates/build.rs.tmpl"),
        ),
        (
            format!("proto/{}.proto", names.name),
            include_str!("../../templates/proto.tmpl"),
        ),
        (
            "src/main.rs".into(),
            include_str!("../../templates/main.rs.tmpl"),
        ),
        (
            "src/handler.rs".into(),
            include_str!("../../templates/handler.rs.tmpl"),
        ),
        (
            "README.md".into(),
            include_str!("../../templates/README.md.tmpl"),
        ),
        (
            ".gitignore".into(),
            include_str!("../../templates/gitignore.tmpl"),
        ),
    ];
    let write = |path: &Path, text: &str| -> Result<(), Failure> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Failure::new(format!("Cannot create {}: {e}", parent.display())))?;
        }
        std::fs::write(path, text)
            .map_err(|e| Failure::new(format!("Cannot write {}: {e}", path.display())))
    };
    std::fs::create_dir_all(&dir)
        .map_err(|e| Failure::new(format!("Cannot create {}: {e}", dir.display())))?;
    println!("Creating service {} in {}\n", names.name, dir.display());
    for (file, template) in &files {
        write(&dir.join(file), &fill(template, &names, &micro_path))?;
        println!("  {}", dir.join(file).display());
    }
    println!(
        "\nBuild it with no protoc needed, then run it against a micro server:\n\n  cd {}\n  cargo run\n  micro {} call --name=Alice\n",
        dir.display(),
        names.name
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dashed_names_make_every_form() {
        assert_eq!(
            names("foo-bar").unwrap(),
            Names {
                name: "foo-bar".into(),
                service: "FooBar".into(),
                package: "foobar".into(),
                snake: "foo_bar".into(),
            }
        );
        assert_eq!(names("helloworld").unwrap().service, "Helloworld");
    }

    #[test]
    fn bad_names_say_what_a_name_is() {
        for bad in ["Foo", "1foo", "foo-", "foo bar", "", "foo/bar"] {
            let err = names(bad).unwrap_err();
            assert!(err.contains("lower-case"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_framework_is_this_checkout() {
        assert!(built_from().join("crates/micro/Cargo.toml").is_file());
    }
}
