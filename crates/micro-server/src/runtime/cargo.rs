//! Builds a service with `cargo build --release` into the runtime's shared target directory.
//!
//! Cargo's JSON messages (stdout) name the executable it produced; its human output (stderr,
//! with rendered compiler diagnostics) becomes the build log, and its `Compiling …` lines are
//! the build's stage in `micro status`. When the build fails, the first compiler error and its
//! location make the one-line reason shown in METADATA.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
};

use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::Command,
    sync::watch,
};

use super::{logs::LogFile, raised};

/// What a build needs.
pub(crate) struct Build<'a> {
    /// The crate's directory (holds its Cargo.toml).
    pub(crate) crate_dir: &'a Path,
    /// The shared target directory.
    pub(crate) target_dir: &'a Path,
    /// The executable to prefer when the crate has several (the service name).
    pub(crate) name: &'a str,
    /// Where cargo's output goes.
    pub(crate) log: &'a LogFile,
}

/// Runs the build; returns the built executable, or why there is none in one line. `stage` is
/// told what cargo is doing; a `true` on `cancel` kills cargo.
pub(crate) async fn build(
    build: Build<'_>,
    stage: impl Fn(&str),
    mut cancel: watch::Receiver<bool>,
) -> Result<PathBuf, String> {
    let manifest = build.crate_dir.join("Cargo.toml");
    let manifest = manifest.canonicalize().unwrap_or(manifest);
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // At a lower CPU priority where `nice` exists: a build must not starve the services running.
    let mut command = if nice_exists() {
        let mut c = Command::new("nice");
        c.args(["-n", "10"]).arg(&cargo);
        c
    } else {
        Command::new(&cargo)
    };
    let mut child = command
        .args(["build", "--release", "--message-format=json-render-diagnostics"])
        .arg("--manifest-path")
        .arg(&manifest)
        .current_dir(build.crate_dir)
        .env("CARGO_TARGET_DIR", build.target_dir)
        .env("CARGO_TERM_COLOR", "never")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A group of its own, so a cancelled build stops rustc and build scripts too.
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            format!(
                "cannot start cargo ({e}): the server needs Rust's cargo on its PATH (https://rustup.rs)"
            )
        })?;
    build.log.append(&format!(
        "$ cargo build --release --manifest-path {}",
        manifest.display()
    ));

    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let log = build.log;
    let human = async {
        let mut lines = BufReader::new(stderr).lines();
        let mut first_error: Option<String> = None;
        let mut location: Option<String> = None;
        while let Ok(Some(line)) = lines.next_line().await {
            log.append(&line);
            let trimmed = line.trim_start();
            if [
                "Compiling",
                "Downloading",
                "Downloaded",
                "Updating",
                "Building",
            ]
            .iter()
            .any(|verb| trimmed.starts_with(verb))
            {
                stage(trimmed);
            }
            if first_error.is_none() && trimmed.starts_with("error") {
                first_error = Some(trimmed.to_owned());
            } else if first_error.is_some()
                && location.is_none()
                && let Some(at) = trimmed.strip_prefix("--> ")
            {
                location = Some(at.to_owned());
            }
        }
        match (first_error, location) {
            (Some(error), Some(at)) => Some(format!("{error} (at {at})")),
            (error, _) => error,
        }
    };
    let machine = async {
        let mut lines = BufReader::new(stdout).lines();
        let mut executables: Vec<(String, PathBuf)> = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            let Ok(message) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if message["reason"] != "compiler-artifact" {
                continue;
            }
            let same_crate = message["manifest_path"]
                .as_str()
                .is_some_and(|p| Path::new(p) == manifest);
            if let (true, Some(exe), Some(target)) = (
                same_crate,
                message["executable"].as_str(),
                message["target"]["name"].as_str(),
            ) {
                executables.push((target.to_owned(), PathBuf::from(exe)));
            }
        }
        executables
    };
    let ((error, executables), status) = tokio::select! {
        done = async { tokio::join!(async { tokio::join!(human, machine) }, child.wait()) } => done,
        () = raised(&mut cancel) => {
            if let Some(pid) = child.id() {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            let _ = child.kill().await;
            return Err("the build was cancelled".to_owned());
        }
    };
    let status = status.map_err(|e| format!("cargo did not finish: {e}"))?;
    if status.code() == Some(127) {
        return Err(
            "build failed: cargo is not on the server's PATH; install Rust (https://rustup.rs)"
                .to_owned(),
        );
    }
    if !status.success() {
        return Err(format!(
            "build failed: {}",
            error.unwrap_or_else(|| format!("cargo exited with {status}"))
        ));
    }
    let chosen = executables
        .iter()
        .find(|(target, _)| target == build.name || target.replace('_', "-") == build.name)
        .or(executables.first());
    match chosen {
        Some((_, exe)) => Ok(exe.clone()),
        None => Err("build failed: the crate has no binary to run (add src/main.rs)".to_owned()),
    }
}

fn nice_exists() -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join("nice").is_file()))
}
