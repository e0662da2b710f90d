//! `micro new`, as a new user meets it: scaffold, `cargo build` with no protoc, run, call.

use std::process::Command;

use micro_e2e::{Sandbox, profile_dir, run};

#[test]
fn micro_new_makes_a_service_that_builds_without_protoc_and_answers() {
    let sb = Sandbox::with_server();
    let work = tempfile::tempdir().unwrap();

    let mut new = Command::new(micro_e2e::bin("micro"));
    new.current_dir(work.path()).args(["new", "foo-bar"]);
    let out = run(new);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("cargo run"), "{}", out.stdout);
    let dir = work.path().join("foo-bar");
    for file in [
        "Cargo.toml",
        "build.rs",
        "proto/foo-bar.proto",
        "src/main.rs",
        "src/handler.rs",
        "README.md",
        ".gitignore",
    ] {
        assert!(dir.join(file).is_file(), "{file} is missing");
    }
    let proto = std::fs::read_to_string(dir.join("proto/foo-bar.proto")).unwrap();
    assert!(
        proto.contains("package foobar;") && proto.contains("service FooBar"),
        "{proto}"
    );

    // An existing directory is refused, untouched.
    let mut again = Command::new(micro_e2e::bin("micro"));
    again.current_dir(work.path()).args(["new", "foo-bar"]);
    let out = run(again);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("already exists"), "{out:?}");

    // The workspace's target directory: the framework's crates are built there already.
    let target = profile_dir().parent().unwrap().to_path_buf();
    let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    build
        .current_dir(&dir)
        .arg("build")
        .env("PROTOC", "/nonexistent/protoc")
        .env("CARGO_TARGET_DIR", &target);
    let out = run(build);
    assert_eq!(out.code, 0, "cargo build failed:\n{}", out.stderr);

    let _svc = sb.service(&target.join("debug/foo-bar"), &[]);
    let out = sb.micro(&["services"]);
    assert!(out.stdout.lines().any(|l| l == "foo-bar"), "{out:?}");
    let out = sb.micro(&["foo-bar", "call", "--name=x"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains(r#""msg": "Hello x""#), "{out:?}");
}

/// The build script (micro-build) watches a service's protos, never the files it writes itself:
/// the bundled `google/api` protos that helloworld imports once made every later build of an
/// unchanged service rerun the script and recompile it.
#[test]
fn the_build_script_watches_only_the_services_protos() {
    let newest = std::fs::read_dir(profile_dir().join("build"))
        .unwrap()
        .flatten()
        .filter(|d| d.file_name().to_string_lossy().starts_with("helloworld-"))
        .filter(|d| d.path().join("output").is_file())
        .max_by_key(|d| {
            d.path()
                .join("output")
                .metadata()
                .unwrap()
                .modified()
                .unwrap()
        })
        .expect("helloworld was built (cargo build --workspace --bins)");
    let output = std::fs::read_to_string(newest.path().join("output")).unwrap();
    let watched: Vec<&str> = output
        .lines()
        .filter_map(|l| l.strip_prefix("cargo:rerun-if-changed="))
        .collect();
    assert!(
        watched.iter().any(|w| w.ends_with("helloworld.proto")),
        "{output}"
    );
    assert!(
        !watched.iter().any(|w| w.contains("micro-build-include")),
        "the build script watches its own output:\n{output}"
    );
}
