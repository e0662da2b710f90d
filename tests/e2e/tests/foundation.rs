//! The foundation, end to end: `micro server`, two helloworld processes, and the CLI.

use std::time::{Duration, Instant};

use micro_e2e::{Sandbox, wait_for};

const SHORT_TTL: [(&str, &str); 2] = [
    ("MICRO_REGISTER_TTL", "2s"),
    ("MICRO_REGISTER_INTERVAL", "500ms"),
];

#[test]
fn two_nodes_discovery_round_robin_failover_and_clean_exit() {
    let mut sb = Sandbox::new();
    sb.start_server_with(&["--selector", "roundrobin"]);
    sb.login("admin", "micro");
    let mut a = sb.helloworld(&SHORT_TTL);
    let mut b = sb.helloworld(&SHORT_TTL);

    let services = sb.micro(&["services"]);
    assert_eq!(services.code, 0, "{services:?}");
    assert_eq!(
        services.stdout,
        "auth\nbroker\nconfig\nevents\nhelloworld\nregistry\nruntime\nstore\n"
    );

    let got = sb.micro(&["get", "service", "helloworld"]);
    assert_eq!(got.code, 0, "{got:?}");
    assert!(
        got.stdout.starts_with("service  helloworld\n"),
        "{}",
        got.stdout
    );
    assert!(
        got.stdout.contains(&a.address) && got.stdout.contains(&b.address),
        "{}",
        got.stdout
    );
    assert!(
        got.stdout
            .contains("Endpoint: Helloworld.Call\n\nRequest: {\n\tname string\n}"),
        "{}",
        got.stdout
    );

    let call = sb.micro(&[
        "call",
        "helloworld",
        "Helloworld.Call",
        r#"{"name":"John"}"#,
    ]);
    assert_eq!(call.code, 0, "{call:?}");
    assert_eq!(call.stdout, "{\n  \"msg\": \"Hello John\"\n}\n");

    // Round-robin: each call goes to the node the previous one did not.
    let mut served_by = Vec::new();
    for i in 0..4 {
        let before = (
            a.proc.count("Helloworld.Call"),
            b.proc.count("Helloworld.Call"),
        );
        let out = sb.micro(&[
            "call",
            "helloworld",
            "Helloworld.Call",
            &format!(r#"{{"name":"rr{i}"}}"#),
        ]);
        assert_eq!(out.code, 0, "{out:?}");
        let who = wait_for(Duration::from_secs(5), "a node to log the call", || {
            let now = (
                a.proc.count("Helloworld.Call"),
                b.proc.count("Helloworld.Call"),
            );
            match (now.0 > before.0, now.1 > before.1) {
                (true, false) => Some('a'),
                (false, true) => Some('b'),
                _ => None,
            }
        });
        served_by.push(who);
    }
    assert!(
        served_by.windows(2).all(|w| w[0] != w[1]),
        "calls did not alternate: {served_by:?}"
    );

    // SIGKILL one node: calls keep succeeding, and it is gone once its TTL passes.
    a.proc.signal("-9");
    let killed = Instant::now();
    for i in 0..6 {
        let out = sb.micro(&[
            "call",
            "helloworld",
            "Helloworld.Call",
            &format!(r#"{{"name":"k{i}"}}"#),
            "--output",
            "raw",
        ]);
        assert_eq!(out.code, 0, "call {i} after SIGKILL failed: {out:?}");
        assert_eq!(out.stdout, format!("{{\"msg\":\"Hello k{i}\"}}\n"));
    }
    wait_for(Duration::from_secs(10), "the killed node to expire", || {
        let got = sb.micro(&["get", "service", "helloworld"]);
        (!got.stdout.contains(&a.address)).then_some(())
    });
    assert!(
        killed.elapsed() >= Duration::from_millis(1000),
        "expired before its TTL could pass"
    );

    // SIGTERM: the node deregisters before it exits, so it is gone the moment it has exited.
    b.proc.signal("-TERM");
    let gone = sb.micro(&["get", "service", "helloworld"]);
    assert_eq!(gone.code, 4, "{gone:?}");
    assert_eq!(gone.stderr, "Service \"helloworld\" not found\n");
    assert_eq!(
        sb.micro(&["services"]).stdout,
        "auth\nbroker\nconfig\nevents\nregistry\nruntime\nstore\n"
    );
}

#[test]
fn call_errors_and_exit_codes() {
    let sb = Sandbox::with_server();
    let _hw = sb.helloworld(&[]);

    let missing = sb.micro(&["call", "nosuch", "X.Y"]);
    assert_eq!(missing.code, 4, "{missing:?}");
    assert_eq!(missing.stderr, "Service \"nosuch\" not found\n");

    let endpoint = sb.micro(&["call", "helloworld", "Helloworld.Nope"]);
    assert_eq!(endpoint.code, 127, "{endpoint:?}");
    assert!(
        endpoint
            .stderr
            .contains("Helloworld.Call, Helloworld.PingPong, Helloworld.Stream"),
        "{}",
        endpoint.stderr
    );

    let wrong_type = sb.micro(&["call", "helloworld", "Helloworld.Call", r#"{"name":42}"#]);
    assert_ne!(wrong_type.code, 0);
    assert!(
        wrong_type.stderr.contains("\"name\""),
        "{}",
        wrong_type.stderr
    );

    let not_json = sb.micro(&["call", "helloworld", "Helloworld.Call", "{name"]);
    assert_eq!(not_json.code, 1, "{not_json:?}");
    assert!(
        not_json.stderr.starts_with("The request is not valid JSON"),
        "{}",
        not_json.stderr
    );

    // The default request is {}.
    let empty = sb.micro(&["call", "helloworld", "Helloworld.Call"]);
    assert_eq!(empty.stdout, "{\n  \"msg\": \"Hello \"\n}\n", "{empty:?}");

    // The platform's own services answer the same way.
    let listed = sb.micro(&[
        "call",
        "registry",
        "Registry.GetService",
        r#"{"service":"helloworld"}"#,
    ]);
    assert_eq!(listed.code, 0, "{listed:?}");
    let json: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
    assert_eq!(json["services"][0]["name"], "helloworld");
}

#[test]
fn every_command_names_the_server_it_cannot_reach() {
    let mut sb = Sandbox::new();
    let address = format!("127.0.0.1:{}", micro_e2e::engines::free_port());
    sb.address = Some(address.clone());
    for args in [
        &["services"][..],
        &["get", "service", "helloworld"],
        &["call", "helloworld", "Helloworld.Call", "{}"],
    ] {
        let out = sb.micro(args);
        assert_ne!(out.code, 0, "{args:?}: {out:?}");
        assert_eq!(
            out.stderr,
            format!("Failed to connect to micro server at {address}\n"),
            "{args:?}"
        );
    }
}

#[test]
fn no_command_and_unknown_commands() {
    let mut sb = Sandbox::new();
    // A server address where nothing listens (not the default :8081, which a developer's own
    // `micro server` may hold).
    sb.address = Some(format!("127.0.0.1:{}", micro_e2e::engines::free_port()));
    let none = sb.micro(&[]);
    assert_eq!(none.code, 1);
    assert!(none.stderr.contains("micro --help"), "{}", none.stderr);
    // No server runs here, so the CLI cannot look for a service of that name either: it says
    // both, and exits 4 as every command does when the server cannot be reached.
    let unknown = sb.micro(&["frobnicate"]);
    assert_eq!(unknown.code, 4, "{unknown:?}");
    let lines: Vec<&str> = unknown.stderr.lines().collect();
    assert_eq!(
        lines.first().copied(),
        Some("Unrecognized micro command: frobnicate. Please refer to 'micro --help'")
    );
    assert!(
        lines[1].starts_with("Failed to connect to micro server at"),
        "{lines:?}"
    );
    for cmd in ["server", "services", "call", "env"] {
        let help = sb.micro(&[cmd, "--help"]);
        assert_eq!(help.code, 0);
        assert!(
            help.stdout.starts_with(&format!("micro {cmd} - ")),
            "{cmd}: {}",
            help.stdout
        );
    }
}

#[test]
fn environments() {
    let sb = Sandbox::new();
    let list = sb.micro(&["env"]);
    assert_eq!(
        list.stdout, "* local  127.0.0.1:8081  Local running micro server\n",
        "{list:?}"
    );

    let add = sb.micro(&[
        "env",
        "add",
        "staging",
        "127.0.0.1:1",
        "--description",
        "Staging",
    ]);
    assert_eq!((add.code, add.stdout.as_str()), (0, ""), "{add:?}");
    let list = sb.micro(&["env"]).stdout;
    assert_eq!(
        list,
        "* local    127.0.0.1:8081  Local running micro server\n  staging  127.0.0.1:1     Staging\n"
    );

    assert_eq!(sb.micro(&["env", "set", "staging"]).code, 0);
    assert!(sb.micro(&["env"]).stdout.contains("* staging"));
    // The current env is where commands go ...
    let out = sb.micro(&["services"]);
    assert_eq!(
        out.stderr,
        "Failed to connect to micro server at 127.0.0.1:1\n"
    );
    // ... unless -e says otherwise (an env on a port nothing listens on, not `local`: a
    // developer's own server may well be on 127.0.0.1:8081).
    let spare = format!("127.0.0.1:{}", micro_e2e::engines::free_port());
    assert_eq!(sb.micro(&["env", "add", "spare", &spare]).code, 0);
    let out = sb.micro(&["-e", "spare", "services"]);
    assert_eq!(
        out.stderr,
        format!("Failed to connect to micro server at {spare}\n")
    );
    assert_eq!(sb.micro(&["env", "del", "spare"]).code, 0);

    let refuse_current = sb.micro(&["env", "del", "staging"]);
    assert_eq!(refuse_current.code, 1);
    assert!(
        refuse_current.stderr.contains("current env"),
        "{refuse_current:?}"
    );
    let refuse_builtin = sb.micro(&["env", "del", "local"]);
    assert!(
        refuse_builtin.stderr.contains("built in"),
        "{refuse_builtin:?}"
    );
    assert_eq!(sb.micro(&["env", "set", "local"]).code, 0);
    assert_eq!(sb.micro(&["env", "del", "staging"]).code, 0);
    assert_eq!(
        sb.micro(&["env"]).stdout,
        "* local  127.0.0.1:8081  Local running micro server\n"
    );
    let missing = sb.micro(&["env", "set", "nowhere"]);
    assert_eq!(missing.code, 1);
    assert!(missing.stderr.contains("not found"));
    // The config lives under MICRO_HOME.
    assert!(sb.home.path().join("config.json").exists());
}
