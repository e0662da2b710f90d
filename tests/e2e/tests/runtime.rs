//! The runtime as a new user meets it (BEHAVIOR.md §5): `micro new`, `micro run`, then status,
//! services, call, logs, update with no failed call, a server restart, kill; a build error; a
//! service that crashes on start. Builds are real `cargo build --release` runs into a target
//! directory the tests share, so only the first build of a run is slow.

use std::{
    path::Path,
    sync::atomic::{AtomicBool, AtomicUsize, Ordering},
    time::Duration,
};

use micro_e2e::{Output, Proc, Sandbox, run, wait_for};

/// A build from cold can take minutes on two cores.
const BUILD: Duration = Duration::from_secs(900);

fn scaffold(sb: &Sandbox, dir: &Path, name: &str) {
    let out = in_dir(sb, dir, &["new", name]);
    assert_eq!(out.code, 0, "{out:?}");
}

fn in_dir(sb: &Sandbox, dir: &Path, args: &[&str]) -> Output {
    let mut cmd = sb.micro_command(args);
    cmd.current_dir(dir);
    run(cmd)
}

fn edit(file: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(file).unwrap();
    assert!(text.contains(from), "{} has no {from:?}", file.display());
    std::fs::write(file, text.replace(from, to)).unwrap();
}

/// The status row of `name`, split into columns.
fn row(sb: &Sandbox, name: &str) -> Option<Vec<String>> {
    let out = sb.micro(&["status"]);
    assert_eq!(out.code, 0, "{out:?}");
    out.stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
}

fn greeting(sb: &Sandbox) -> Output {
    sb.micro(&["call", "hello-rt", "HelloRt.Call", r#"{"name":"Joe"}"#])
}

#[test]
fn run_call_follow_update_restart_and_kill() {
    let mut sb = Sandbox::with_server();
    let work = tempfile::tempdir().unwrap();
    scaffold(&sb, work.path(), "hello-rt");
    let dir = work.path().join("hello-rt");

    // From another directory.
    let out = in_dir(&sb, work.path(), &["run", "./hello-rt"]);
    assert_eq!(out.code, 0, "micro run failed: {out:?}");
    assert!(out.stdout.contains("hello-rt is running"), "{out:?}");
    let status = sb.micro(&["status"]);
    assert!(
        status.stdout.starts_with("NAME") && status.stdout.contains("METADATA"),
        "{status:?}"
    );
    let cols = row(&sb, "hello-rt").expect("hello-rt in micro status");
    assert_eq!(
        cols[1..4],
        [
            "latest".to_owned(),
            dir.canonicalize().unwrap().display().to_string(),
            "running".to_owned()
        ]
    );
    let services = sb.micro(&["services"]);
    assert!(
        services.stdout.lines().any(|l| l == "hello-rt"),
        "{services:?}"
    );
    // It runs as an account of its own, made by the runtime.
    let accounts = sb.micro(&["auth", "list", "accounts"]);
    assert!(
        accounts
            .stdout
            .lines()
            .any(|l| l.starts_with("service:hello-rt ") && l.ends_with(" service")),
        "{accounts:?}"
    );
    let out = greeting(&sb);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains(r#""msg": "Hello Joe""#), "{out:?}");

    // Its output, then new lines as they are written.
    let logs = sb.micro(&["logs", "hello-rt"]);
    assert!(logs.stdout.contains("request for Joe"), "{logs:?}");
    // `-n 0`: only lines written after it joined, so calls go on until one shows up there.
    let follow = Proc::spawn(sb.micro_command(&["logs", "-f", "-n", "0", "hello-rt"]));
    wait_for(Duration::from_secs(30), "a line in micro logs -f", || {
        let out = sb.micro(&["call", "hello-rt", "HelloRt.Call", r#"{"name":"Followed"}"#]);
        assert_eq!(out.code, 0, "{out:?}");
        (follow.count("request for Followed") > 0).then_some(())
    });
    assert_eq!(follow.count("request for Joe"), 0, "-n 0 printed old lines");
    drop(follow);

    // A new greeting, deployed from inside the directory while a caller keeps calling.
    edit(
        &dir.join("src/handler.rs"),
        "format!(\"Hello {name}\")",
        "format!(\"Howdy {name}\")",
    );
    let stop = AtomicBool::new(false);
    let calls = AtomicUsize::new(0);
    let failures = std::thread::scope(|scope| {
        let caller = scope.spawn(|| {
            let mut failures = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let out = greeting(&sb);
                calls.fetch_add(1, Ordering::SeqCst);
                if out.code != 0 {
                    failures.push(out);
                }
            }
            failures
        });
        let out = in_dir(&sb, &dir, &["update", ".", "--instances", "2"]);
        assert_eq!(out.code, 0, "micro update failed: {out:?}");
        wait_for(Duration::from_secs(10), "the new greeting", || {
            greeting(&sb).stdout.contains("Howdy Joe").then_some(())
        });
        stop.store(true, Ordering::SeqCst);
        caller.join().unwrap()
    });
    assert!(calls.load(Ordering::SeqCst) > 5, "the caller hardly called");
    let status = sb.micro(&["status", "hello-rt"]).stdout;
    assert!(status.contains("instances=2/2"), "{status}");
    assert!(
        failures.is_empty(),
        "calls failed during the update: {failures:?}"
    );

    // A restarted server (even after SIGKILL) runs its services again, once.
    sb.kill_server();
    sb.start_server();
    let out = wait_for(
        Duration::from_secs(60),
        "hello-rt after the restart",
        || {
            let out = greeting(&sb);
            (out.code == 0).then_some(out)
        },
    );
    assert!(out.stdout.contains("Howdy Joe"), "{out:?}");
    // Both instances come back (the first may answer before the second has registered), and
    // no more.
    let nodes = wait_for(Duration::from_secs(30), "both instances registered", || {
        let nodes = sb.micro(&["get", "service", "hello-rt"]);
        (nodes.stdout.matches("hello-rt-").count() >= 2).then_some(nodes)
    });
    assert_eq!(
        nodes.stdout.matches("hello-rt-").count(),
        2,
        "two nodes: {nodes:?}"
    );

    let out = sb.micro(&["kill", "hello-rt"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(row(&sb, "hello-rt").is_none(), "still in micro status");
    let services = sb.micro(&["services"]);
    assert!(
        !services.stdout.lines().any(|l| l == "hello-rt"),
        "{services:?}"
    );
    let out = sb.micro(&["kill", "hello-rt"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("no service \"hello-rt\""), "{out:?}");
}

#[test]
fn a_build_error_is_shown_and_a_crashing_service_backs_off() {
    let sb = Sandbox::with_server();
    let work = tempfile::tempdir().unwrap();

    scaffold(&sb, work.path(), "broken");
    edit(
        &work.path().join("broken/src/handler.rs"),
        "format!(\"Hello {name}\")",
        "format!(\"Hello {nam}\")",
    );
    let out = in_dir(&sb, work.path(), &["run", "broken"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("build failed: error[E0425]"), "{out:?}");
    let cols = row(&sb, "broken").expect("broken in micro status");
    assert_eq!(cols[3], "error");
    let line = sb.micro(&["status", "broken"]).stdout;
    assert!(
        line.contains("cannot find value `nam`") && line.contains("src/handler.rs"),
        "{line}"
    );
    let logs = sb.micro(&["logs", "broken", "-n", "50"]);
    assert!(
        logs.stdout
            .contains("error[E0425]: cannot find value `nam` in this scope"),
        "{logs:?}"
    );

    scaffold(&sb, work.path(), "crashy");
    let crashy = work.path().join("crashy");
    edit(
        &crashy.join("src/main.rs"),
        "micro::init_tracing();",
        "micro::init_tracing();\n    panic!(\"crashing on purpose: {}\", std::env::var(\"WHY\").unwrap_or_default());",
    );
    let out = in_dir(&sb, &crashy, &["run", ".", "--env-vars", "WHY=testing"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("exited with code 101"), "{out:?}");
    // Back-off doubles: the fourth exit waits 8 s, and the status counts the restarts.
    let logs = wait_for(BUILD, "three restarts", || {
        let logs = sb.micro(&["logs", "crashy", "-n", "200"]).stdout;
        logs.contains("restarting in 4s").then_some(logs)
    });
    assert!(logs.contains("crashing on purpose: testing"), "{logs}");
    let delays: Vec<&str> = logs
        .lines()
        .filter_map(|l| l.split("restarting in ").nth(1))
        .collect();
    assert_eq!(delays, ["1s", "2s", "4s"], "{logs}");
    let status = sb.micro(&["status", "crashy"]).stdout;
    assert!(
        status.contains("restarts=3") && status.contains(" error "),
        "{status}"
    );
}
