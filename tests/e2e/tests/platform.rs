//! The platform services from the command line (BEHAVIOR.md §1 and §3): the store and config
//! sequences with their exact output, the broker and events commands, a running service that
//! watches config, namespaces, and acknowledged writes surviving `kill -9` of the server.

use std::time::{Duration, Instant};

use micro_core::broker::{Broker, Message};
use micro_e2e::{Proc, Sandbox, bin, wait_for};

/// Runs `micro ARGS`, asserting the exit code, stdout and stderr.
#[track_caller]
fn expect(sb: &Sandbox, args: &[&str], code: i32, stdout: &str, stderr: &str) {
    let out = sb.micro(args);
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (code, stdout, stderr),
        "micro {}",
        args.join(" ")
    );
}

fn spawn_micro(sb: &Sandbox, args: &[&str]) -> Proc {
    let mut cmd = std::process::Command::new(bin("micro"));
    cmd.args(args)
        .env("MICRO_HOME", sb.home.path())
        .env("MICRO_SERVER_ADDRESS", sb.address())
        .env_remove("MICRO_NAMESPACE");
    Proc::spawn(cmd)
}

#[test]
fn store_commands_behave_as_documented() {
    let sb = Sandbox::with_server();
    expect(&sb, &["store", "read", "foo"], 1, "", "Not found\n");
    expect(&sb, &["store", "write", "foo", "bar"], 0, "", "");
    expect(&sb, &["store", "read", "foo"], 0, "bar\n", "");
    expect(&sb, &["store", "write", "foo2", "baz"], 0, "", "");
    expect(&sb, &["store", "write", "afoo", "x"], 0, "", "");
    expect(
        &sb,
        &["store", "read", "--prefix", "foo"],
        0,
        "bar\nbaz\n",
        "",
    );
    expect(
        &sb,
        &["store", "read", "--suffix", "foo"],
        0,
        "x\nbar\n",
        "",
    );
    expect(&sb, &["store", "read", "--prefix", "nothing"], 0, "", "");
    expect(&sb, &["store", "list"], 0, "afoo\nfoo\nfoo2\n", "");
    expect(
        &sb,
        &["store", "list", "--order", "desc", "--limit", "2"],
        0,
        "foo2\nfoo\n",
        "",
    );
    expect(
        &sb,
        &["store", "list", "--prefix", "foo", "--offset", "1"],
        0,
        "foo2\n",
        "",
    );
    expect(
        &sb,
        &["store", "read", "-v", "--prefix", "foo"],
        0,
        "KEY   VALUE  EXPIRY\nfoo   bar    None\nfoo2  baz    None\n",
        "",
    );
    expect(
        &sb,
        &["store", "write", "brief", "v", "--expiry", "300ms"],
        0,
        "",
        "",
    );
    let verbose = sb.micro(&["store", "read", "-v", "brief"]);
    assert!(verbose.stdout.contains("brief  v"), "{verbose:?}");
    assert!(
        verbose.stdout.contains("ms"),
        "sub-second expiry left: {verbose:?}"
    );
    wait_for(Duration::from_secs(5), "the record to expire", || {
        (sb.micro(&["store", "read", "brief"]).code == 1).then_some(())
    });
    expect(&sb, &["store", "list"], 0, "afoo\nfoo\nfoo2\n", "");
    expect(&sb, &["store", "delete", "foo"], 0, "", "");
    expect(&sb, &["store", "read", "foo"], 1, "", "Not found\n");
    expect(
        &sb,
        &["store", "write", "k", "v", "-d", "other", "-t", "things"],
        0,
        "",
        "",
    );
    expect(&sb, &["store", "databases"], 0, "micro\nother\n", "");
    expect(&sb, &["store", "tables", "-d", "other"], 0, "things\n", "");
    expect(
        &sb,
        &["store", "read", "k", "-d", "other", "-t", "things"],
        0,
        "v\n",
        "",
    );
}

#[test]
fn config_commands_behave_as_documented() {
    let sb = Sandbox::with_server();
    expect(&sb, &["config", "get", "app"], 1, "", "Not found\n");
    expect(&sb, &["config", "set", "app", r#"{"a":1}"#], 0, "", "");
    expect(&sb, &["config", "set", "app", r#"{"b":2}"#], 0, "", "");
    expect(&sb, &["config", "get", "app"], 0, "{\"a\":1,\"b\":2}\n", "");
    expect(&sb, &["config", "set", "app.n", r#"{"x":1}"#], 0, "", "");
    expect(&sb, &["config", "set", "app.n", r#"{"y":2}"#], 0, "", "");
    expect(
        &sb,
        &["config", "get", "app.n"],
        0,
        "{\"x\":1,\"y\":2}\n",
        "",
    );
    expect(
        &sb,
        &["config", "set", "app.a", r#"{"deep":true}"#],
        0,
        "",
        "",
    );
    expect(&sb, &["config", "get", "app.a.deep"], 0, "true\n", "");
    expect(
        &sb,
        &["config", "set", "title", "Value with <> signs"],
        0,
        "",
        "",
    );
    expect(
        &sb,
        &["config", "get", "title"],
        0,
        "Value with <> signs\n",
        "",
    );
    expect(
        &sb,
        &["config", "set", "db.password", "hunter2", "--secret"],
        0,
        "",
        "",
    );
    expect(&sb, &["config", "get", "db.password"], 0, "[secret]\n", "");
    expect(
        &sb,
        &["config", "get", "db"],
        0,
        "{\"password\":\"[secret]\"}\n",
        "",
    );
    expect(
        &sb,
        &["config", "get", "db.password", "--secret"],
        0,
        "hunter2\n",
        "",
    );
    expect(&sb, &["config", "del", "app.a"], 0, "", "");
    expect(
        &sb,
        &["config", "get", "app"],
        0,
        "{\"b\":2,\"n\":{\"x\":1,\"y\":2}}\n",
        "",
    );
    expect(
        &sb,
        &["config", "frob"],
        1,
        "",
        "Unrecognized subcommand for micro config\n",
    );
    expect(
        &sb,
        &["config", "get", "a..b"],
        1,
        "",
        "invalid config path \"a..b\": write it as a.b.c\n",
    );
    let on_disk = std::fs::read(sb.home.path().join("server/store.redb")).expect("the store file");
    assert!(
        !on_disk.windows(7).any(|w| w == b"hunter2"),
        "the secret is not on disk in clear"
    );
}

#[test]
fn a_running_service_uses_store_events_broker_and_sees_config_changes() {
    let sb = Sandbox::with_server();
    // Started by hand, it logs in with an account of its own, as `micro run` would give it.
    let [(id_var, id), (secret_var, secret)] = sb.service_account("greeter");
    let mut greeter = sb.service(&bin("greeter"), &[(id_var, &id), (secret_var, &secret)]);
    let out = sb.micro(&["greeter", "greet", "--name=ada"]);
    assert_eq!(
        out.stdout, "{\n  \"msg\": \"Hello ada\",\n  \"count\": 1\n}\n",
        "{out:?}"
    );

    let asked = Instant::now();
    expect(&sb, &["config", "set", "greeting", "hi"], 0, "", "");
    greeter.proc.wait_line("greeting is now \"hi\"");
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "the change was seen within a second ({:?})",
        asked.elapsed()
    );
    let out = sb.micro(&["greeter", "greet", "--name=ada"]);
    assert_eq!(
        out.stdout, "{\n  \"msg\": \"hi ada\",\n  \"count\": 2\n}\n",
        "no restart needed: {out:?}"
    );

    expect(
        &sb,
        &["store", "read", "count/ada", "-t", "greeter"],
        0,
        "2\n",
        "",
    );
    let mut consumer = spawn_micro(&sb, &["events", "consume", "greetings", "--offset", "1"]);
    consumer.wait_line(r#""payload":{"name":"ada","count":1}"#);
    consumer.wait_line(r#""payload":{"name":"ada","count":2}"#);

    expect(
        &sb,
        &["publish", "announcements", r#"{"release":"1.0"}"#],
        0,
        "",
        "",
    );
    greeter.proc.wait_line(r#"announcement: {"release":"1.0"}"#);
}

#[test]
fn broker_subscribers_fan_out_and_queues_share() {
    let sb = Sandbox::with_server();
    let mut everyone: Vec<Proc> = (0..3)
        .map(|_| spawn_micro(&sb, &["subscribe", "news"]))
        .collect();
    let mut queue: Vec<Proc> = (0..3)
        .map(|_| spawn_micro(&sb, &["subscribe", "jobs", "--queue", "workers"]))
        .collect();
    for sub in &mut everyone {
        sub.wait_line("subscribed to news");
    }
    for sub in &mut queue {
        sub.wait_line("subscribed to jobs in queue workers");
    }
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let _context = runtime.enter();
    let broker = micro::broker::RemoteBroker::new(sb.address()).expect("broker");
    // The subscribers are separate processes: publish until each has joined.
    wait_for(
        Duration::from_secs(10),
        "every subscriber to hear a ping",
        || {
            runtime.block_on(async {
                broker
                    .publish("micro", "news", Message::new("ping"))
                    .await
                    .expect("publish");
            });
            everyone.iter().all(|p| p.count("ping") > 0).then_some(())
        },
    );
    expect(&sb, &["publish", "news", r#"{"headline":"hi"}"#], 0, "", "");
    for sub in &everyone {
        wait_for(Duration::from_secs(5), "the headline", || {
            (sub.count(r#"{"headline":"hi"}"#) == 1).then_some(())
        });
    }
    // Warm the queue up until all three members have received something.
    let mut warm = 0;
    wait_for(
        Duration::from_secs(10),
        "every queue member to join",
        || {
            runtime
                .block_on(broker.publish("micro", "jobs", Message::new(format!("warm-{warm}"))))
                .expect("publish");
            warm += 1;
            queue.iter().all(|p| p.count("warm-") > 0).then_some(())
        },
    );
    for i in 0..300 {
        runtime
            .block_on(broker.publish("micro", "jobs", Message::new(format!("job-{i}"))))
            .expect("publish");
    }
    wait_for(Duration::from_secs(10), "all 300 jobs", || {
        (queue.iter().map(|p| p.count("job-")).sum::<usize>() >= 300).then_some(())
    });
    // A duplicate would arrive before anything published after it: publish markers until every
    // member has one, and each member's stream has then delivered all it ever will of the jobs.
    let mut marker = 0;
    wait_for(
        Duration::from_secs(10),
        "a marker after the jobs at every member",
        || {
            runtime
                .block_on(broker.publish("micro", "jobs", Message::new(format!("done-{marker}"))))
                .expect("publish");
            marker += 1;
            queue.iter().all(|p| p.count("done-") > 0).then_some(())
        },
    );
    let mut seen: Vec<String> = queue
        .iter()
        .flat_map(|p| p.lines().into_iter().filter(|l| l.starts_with("job-")))
        .collect();
    let counts: Vec<usize> = queue.iter().map(|p| p.count("job-")).collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 300, "none lost, none duplicated: {counts:?}");
    assert_eq!(counts.iter().sum::<usize>(), 300, "{counts:?}");
    assert!(counts.iter().all(|&c| c > 0), "shared: {counts:?}");
}

#[test]
fn event_groups_share_and_each_group_gets_everything() {
    let sb = Sandbox::with_server();
    let mut a = spawn_micro(
        &sb,
        &[
            "events", "consume", "orders", "--group", "billing", "--offset", "1",
        ],
    );
    let mut b = spawn_micro(
        &sb,
        &[
            "events", "consume", "orders", "--group", "billing", "--offset", "1",
        ],
    );
    let mut audit = spawn_micro(
        &sb,
        &[
            "events", "consume", "orders", "--group", "audit", "--offset", "1",
        ],
    );
    // Both billing consumers must have joined before the events are published.
    for consumer in [&mut a, &mut b, &mut audit] {
        consumer.wait_line("consuming orders in group");
    }
    for i in 0..20 {
        expect(
            &sb,
            &[
                "events",
                "publish",
                "orders",
                &format!(r#"{{"order":{i}}}"#),
            ],
            0,
            "",
            "",
        );
    }
    wait_for(Duration::from_secs(10), "every order in audit", || {
        (audit.count("\"order\":") == 20).then_some(())
    });
    wait_for(Duration::from_secs(10), "every order in billing", || {
        (a.count("\"order\":") + b.count("\"order\":") == 20).then_some(())
    });
    assert!(
        a.count("\"order\":") > 0 && b.count("\"order\":") > 0,
        "billing shares: {} / {}",
        a.count("\"order\":"),
        b.count("\"order\":")
    );
    expect(
        &sb,
        &["events", "publish", "", "x"],
        1,
        "",
        "a topic name is required\n",
    );
}

#[test]
fn namespaces_isolate_all_four_services() {
    let sb = Sandbox::with_server();
    expect(
        &sb,
        &["--namespace", "a", "store", "write", "k", "v"],
        0,
        "",
        "",
    );
    expect(
        &sb,
        &["--namespace", "b", "store", "read", "k"],
        1,
        "",
        "Not found\n",
    );
    expect(&sb, &["--namespace", "b", "store", "databases"], 0, "", "");
    expect(
        &sb,
        &["--namespace", "a", "config", "set", "k", "v"],
        0,
        "",
        "",
    );
    expect(
        &sb,
        &["--namespace", "b", "config", "get", "k"],
        1,
        "",
        "Not found\n",
    );
    expect(
        &sb,
        &["--namespace", "a", "events", "publish", "t", "1"],
        0,
        "",
        "",
    );
    let mut b_events = spawn_micro(
        &sb,
        &[
            "--namespace",
            "b",
            "events",
            "consume",
            "t",
            "--offset",
            "1",
        ],
    );
    let mut b_news = spawn_micro(&sb, &["--namespace", "b", "subscribe", "news"]);
    b_events.wait_line("consuming t in group");
    b_news.wait_line("subscribed to news");
    expect(
        &sb,
        &["--namespace", "a", "publish", "news", "for-a"],
        0,
        "",
        "",
    );
    expect(
        &sb,
        &["--namespace", "b", "events", "publish", "t", "\"in-b\""],
        0,
        "",
        "",
    );
    b_events.wait_line("in-b");
    assert_eq!(
        b_events.count("\"sequence\":"),
        1,
        "only b's event: {:?}",
        b_events.lines()
    );
    assert_eq!(b_news.count("for-a"), 0, "a's message stays in a");
}

#[test]
fn acknowledged_writes_and_events_survive_kill_9() {
    let mut sb = Sandbox::with_server();
    for i in 0..50 {
        expect(
            &sb,
            &[
                "store",
                "write",
                &format!("key-{i:02}"),
                &format!("value-{i}"),
            ],
            0,
            "",
            "",
        );
    }
    for i in 0..10 {
        expect(
            &sb,
            &["events", "publish", "log", &format!(r#"{{"n":{i}}}"#)],
            0,
            "",
            "",
        );
    }
    sb.kill_server();
    sb.start_server();
    let out = sb.micro(&["store", "read", "--prefix", "key-"]);
    let expected: String = (0..50).map(|i| format!("value-{i}\n")).collect();
    assert_eq!(
        out.stdout, expected,
        "all 50 writes readable after kill -9: {out:?}"
    );
    let mut consumer = spawn_micro(&sb, &["events", "consume", "log", "--offset", "1"]);
    consumer.wait_line(r#""payload":{"n":9}"#);
    assert_eq!(
        consumer.count("\"sequence\":"),
        10,
        "{:?}",
        consumer.lines()
    );
}

#[test]
fn platform_services_answer_calls_and_the_gateway_like_any_service() {
    let sb = Sandbox::with_server();
    expect(&sb, &["store", "write", "k", "v"], 0, "", "");
    let call = sb.micro(&["call", "store", "Store.Read", r#"{"key":"k"}"#]);
    assert_eq!(call.code, 0, "{call:?}");
    assert!(
        call.stdout.contains("\"value\": \"dg==\""),
        "bytes as base64: {call:?}"
    );
    let api = sb.api.as_deref().expect("gateway");
    // The store and config want an admin, over HTTP as everywhere.
    let admin = format!("Bearer {}", sb.token());
    let rsp = micro_e2e::http(
        api,
        "POST",
        "/config/set",
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &admin),
        ],
        r#"{"path":"via","value":"\"http\""}"#,
    );
    assert_eq!(rsp.status, 200, "{rsp:?}");
    expect(&sb, &["config", "get", "via"], 0, "http\n", "");
    let rsp = micro_e2e::http(
        api,
        "POST",
        "/config/get",
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &admin),
        ],
        r#"{"path":"missing"}"#,
    );
    assert_eq!(
        rsp.status, 404,
        "a miss is a 404 with the error body: {rsp:?}"
    );
    let rsp = micro_e2e::http(
        api,
        "POST",
        "/config/set",
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &admin),
        ],
        r#"{"path":"x","value":"not json"}"#,
    );
    assert_eq!(rsp.status, 400, "{rsp:?}");
    assert!(rsp.body.contains("not JSON"), "{rsp:?}");
}
