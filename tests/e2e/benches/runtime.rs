//! The runtime with the helloworld example: how long from `micro run` to the first answered
//! call with a warm build cache, and how long `micro update` takes after a one-line change,
//! against doing the same by hand (cargo build, start the binary) in the same run.
//!
//! Run: `cargo build --release -p micro-cli && cargo bench -p micro-e2e --bench runtime` (add
//! `-- 5` for five rounds; default 3). A bench runs the `micro` of its own profile.
//!
//! The bench copies the workspace (its git-tracked files) into a temporary directory, so it can
//! edit `examples/helloworld` without touching the checkout; `micro run` uploads that copy's
//! workspace, as it does for any workspace member. Both sides build into target directories that
//! the bench warms first, so the figures are for warm caches:
//! - run → first call: `micro run examples/helloworld` until `micro call` answers, then
//!   `micro kill`; by hand: start the already built binary until `micro call` answers.
//! - update: change the greeting line, then `micro update` until the new greeting is served;
//!   by hand: `cargo build --release`, stop the old process, start the new one, until the new
//!   greeting is served (with a window without a node, which `micro update` does not have).

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use micro_e2e::{Proc, Sandbox, build_dir, run, wait_for};

fn rounds() -> usize {
    std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(3)
}

/// A copy of the workspace's tracked files.
fn copy_workspace(into: &Path) -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new("git")
        .arg("-C")
        .arg(&repo)
        .args(["ls-files", "-z"])
        .output()
        .expect("git ls-files (the bench copies the git-tracked files)");
    assert!(out.status.success(), "git ls-files failed");
    let root = into.join("workspace");
    for file in out.stdout.split(|b| *b == 0).filter(|f| !f.is_empty()) {
        let file = Path::new(std::str::from_utf8(file).expect("utf-8 path"));
        let to = root.join(file);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(repo.join(file), &to).unwrap();
    }
    root
}

fn set_greeting(root: &Path, greeting: &str) {
    let handler = root.join("examples/helloworld/src/handler.rs");
    let text = std::fs::read_to_string(&handler).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("msg: format!("))
        .expect("the greeting line")
        .to_owned();
    let new = format!("            msg: format!(\"{greeting} {{name}}\"),");
    std::fs::write(&handler, text.replace(&line, &new)).unwrap();
}

fn answers(sb: &Sandbox, greeting: &str) -> bool {
    let out = sb.micro(&["call", "helloworld", "Helloworld.Call", r#"{"name":"b"}"#]);
    out.code == 0 && out.stdout.contains(&format!("{greeting} b"))
}

fn until_answers(sb: &Sandbox, greeting: &str) {
    wait_for(Duration::from_secs(600), "helloworld to answer", || {
        answers(sb, greeting).then_some(())
    });
}

fn micro_ok(sb: &Sandbox, dir: &Path, args: &[&str]) {
    let mut cmd = sb.micro_command(args);
    cmd.current_dir(dir);
    let out = run(cmd);
    assert_eq!(out.code, 0, "micro {args:?} failed: {out:?}");
}

fn cargo_build(root: &Path, target: &Path) -> PathBuf {
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(root)
        .args(["build", "--release", "--quiet", "-p", "helloworld"])
        .env("CARGO_TARGET_DIR", target)
        .status()
        .expect("cargo");
    assert!(status.success(), "cargo build failed");
    target.join("release/helloworld")
}

fn start_by_hand(sb: &Sandbox, binary: &Path) -> Proc {
    let mut cmd = Command::new(binary);
    cmd.env("MICRO_SERVER_ADDRESS", sb.address())
        .env("MICRO_HOME", sb.home.path());
    Proc::spawn(cmd)
}

fn mean(samples: &[Duration]) -> Duration {
    samples.iter().sum::<Duration>() / samples.len().max(1) as u32
}

fn show(what: &str, samples: &[Duration]) -> Duration {
    let m = mean(samples);
    let all: Vec<String> = samples
        .iter()
        .map(|d| format!("{:.2}", d.as_secs_f64()))
        .collect();
    println!(
        "{what:<34} mean {:>6.2} s   ({} s)",
        m.as_secs_f64(),
        all.join(", ")
    );
    m
}

fn main() {
    let n = rounds();
    let sb = Sandbox::with_server();
    let tmp = tempfile::tempdir().unwrap();
    let root = copy_workspace(tmp.path());
    let dir = root.join("examples");
    let by_hand_target = build_dir().with_file_name("bench-by-hand");

    println!("warming both build caches (the first build of a new checkout takes minutes)...");
    set_greeting(&root, "Hello");
    micro_ok(&sb, &dir, &["run", "helloworld"]);
    until_answers(&sb, "Hello");
    micro_ok(&sb, &dir, &["kill", "helloworld"]);
    let binary = cargo_build(&root, &by_hand_target);

    let mut run_platform = Vec::new();
    let mut run_hand = Vec::new();
    for _ in 0..n {
        let start = Instant::now();
        micro_ok(&sb, &dir, &["run", "helloworld"]);
        until_answers(&sb, "Hello");
        run_platform.push(start.elapsed());
        micro_ok(&sb, &dir, &["kill", "helloworld"]);

        let start = Instant::now();
        let process = start_by_hand(&sb, &binary);
        until_answers(&sb, "Hello");
        run_hand.push(start.elapsed());
        drop(process);
        wait_for(Duration::from_secs(100), "helloworld to go", || {
            (!answers(&sb, "Hello")).then_some(())
        });
    }

    let mut update_platform = Vec::new();
    let mut update_hand = Vec::new();
    micro_ok(&sb, &dir, &["run", "helloworld"]);
    until_answers(&sb, "Hello");
    for round in 0..n {
        let greeting = format!("Hi{round}");
        set_greeting(&root, &greeting);
        let start = Instant::now();
        micro_ok(&sb, &dir, &["update", "helloworld"]);
        until_answers(&sb, &greeting);
        update_platform.push(start.elapsed());
    }
    micro_ok(&sb, &dir, &["kill", "helloworld"]);
    let mut process = start_by_hand(&sb, &binary);
    for round in 0..n {
        let greeting = format!("Hey{round}");
        set_greeting(&root, &greeting);
        let start = Instant::now();
        let binary = cargo_build(&root, &by_hand_target);
        drop(process);
        process = start_by_hand(&sb, &binary);
        until_answers(&sb, &greeting);
        update_hand.push(start.elapsed());
    }
    drop(process);

    println!("\nhelloworld, warm build caches, {n} rounds:");
    let a = show("micro run → first call", &run_platform);
    let b = show("by hand: start binary → first call", &run_hand);
    println!(
        "{:<34} {:.2}x",
        "ratio micro run / by hand",
        a.as_secs_f64() / b.as_secs_f64()
    );
    let a = show("micro update (one-line change)", &update_platform);
    let b = show("by hand: cargo build + restart", &update_hand);
    println!(
        "{:<34} {:.2}x",
        "ratio micro update / by hand",
        a.as_secs_f64() / b.as_secs_f64()
    );
}
