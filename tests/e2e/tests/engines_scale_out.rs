//! Two `micro server`s on shared engines (etcd, NATS with JetStream, PostgreSQL or Redis) act as
//! one platform, and losing one of them (`kill -9`) loses no acknowledged write and no
//! registered service.

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use futures::StreamExt;
use micro_core::{
    Registry,
    config::Config,
    events::{ConsumeOptions, Events},
    store::{Query, Record, Store},
};
use micro_e2e::{Sandbox, engines};

/// The shared engines of one test, and the flags that point a server at them.
struct Shared {
    _etcd: engines::Engine,
    _nats: engines::Engine,
    _store: engines::Engine,
    flags: Vec<String>,
}

fn shared(store: engines::Engine) -> Shared {
    let (etcd, nats) = (engines::etcd(), engines::nats());
    let flags = engines::server_flags(&etcd, &nats, &store);
    Shared {
        _etcd: etcd,
        _nats: nats,
        _store: store,
        flags,
    }
}

fn server(shared: &Shared) -> Sandbox {
    let mut sandbox = Sandbox::new();
    let flags: Vec<&str> = shared.flags.iter().map(String::as_str).collect();
    sandbox.start_server_with(&flags);
    sandbox
}

/// A CLI (and services) pointed at both servers.
fn client_of(a: &Sandbox, b: &Sandbox) -> Sandbox {
    let mut client = Sandbox::new();
    client.address = Some(format!("{},{}", a.address(), b.address()));
    client
}

async fn kill_one_server_and_lose_nothing(shared: Shared) {
    let mut a = server(&shared);
    let b = server(&shared);
    let client = client_of(&a, &b);

    // Log in through A: its token is signed with the key both servers share.
    a.login("admin", "micro");
    let token = a.token();
    micro::auth::set_token(Some(token.clone()));

    // 1,000 records through A.
    let store_a = Arc::new(micro::store::RemoteStore::new(a.address(), "micro").unwrap());
    futures::stream::iter(0..1000)
        .for_each_concurrent(32, |i| {
            let store = store_a.clone();
            async move {
                store
                    .write(
                        "micro",
                        "scale",
                        Record::new(format!("k{i:04}"), format!("v{i}")),
                    )
                    .await
                    .expect("write through A");
            }
        })
        .await;

    // Config through A, watched through B.
    let config_a = micro::config::RemoteConfig::new(a.address()).unwrap();
    let config_b = micro::config::RemoteConfig::new(b.address()).unwrap();
    let mut watch_b = config_b
        .watch("micro", "feature.flag", false)
        .await
        .expect("watch through B");
    let first = watch_b.next().await.unwrap().unwrap();
    assert_eq!(first, None, "nothing set yet");
    config_a
        .set("micro", "db.password", serde_json::json!("hunter2"), true)
        .await
        .expect("secret through A");
    config_a
        .set("micro", "feature.flag", serde_json::json!(true), false)
        .await
        .expect("config through A");
    let seen = tokio::time::timeout(Duration::from_secs(3), watch_b.next())
        .await
        .expect("B's watch hears of A's change within the re-read interval")
        .unwrap()
        .unwrap();
    assert_eq!(seen, Some(serde_json::json!(true)));

    // helloworld registers through both, heartbeating every second.
    let creds = client_of(&a, &b);
    creds.login("admin", "micro");
    let account = creds.service_account("helloworld");
    let env: Vec<(&str, &str)> = account
        .iter()
        .map(|(k, v)| (*k, v.as_str()))
        .chain([
            ("MICRO_REGISTER_TTL", "3s"),
            ("MICRO_REGISTER_INTERVAL", "1s"),
        ])
        .collect();
    let _helloworld = client.helloworld(&env);

    // 1,000 events through A; a manual-ack group takes and acks half of them through A.
    let events_a = micro::events::RemoteEvents::new(a.address()).unwrap();
    let mut published = BTreeSet::new();
    for i in 0..1000 {
        let event = events_a
            .publish(
                "micro",
                "orders",
                format!("order {i}").into_bytes(),
                Default::default(),
            )
            .await
            .expect("publish through A");
        published.insert(event.id);
    }
    let options = ConsumeOptions {
        group: Some("billing".into()),
        offset: micro_core::events::Offset::Sequence(1),
        auto_ack: false,
        ack_wait: Duration::from_secs(4),
        retry_limit: None,
    };
    let mut consumer = events_a
        .consume("micro", "orders", options.clone())
        .await
        .expect("consume through A");
    let mut acked = BTreeSet::new();
    while acked.len() < 500 {
        let event = tokio::time::timeout(Duration::from_secs(10), consumer.events.next())
            .await
            .expect("an event")
            .expect("open")
            .expect("delivered");
        events_a
            .ack("micro", "orders", "billing", &event.id)
            .await
            .expect("ack through A");
        acked.insert(event.id);
    }

    // A durable group consumed through both servers: it keeps going when A dies.
    let events_both = micro::events::RemoteEvents::new(client.address()).unwrap();
    let mut shipping = events_both
        .consume(
            "micro",
            "orders",
            ConsumeOptions {
                group: Some("shipping".into()),
                ..options.clone()
            },
        )
        .await
        .expect("consume through both");
    let mut shipped = BTreeSet::new();
    while shipped.len() < 100 {
        let event = shipping.events.next().await.unwrap().unwrap();
        events_both
            .ack("micro", "orders", "shipping", &event.id)
            .await
            .unwrap();
        shipped.insert(event.id);
    }

    a.kill_server();
    drop(consumer);

    // Everything acknowledged through A is there through B.
    let store_b = micro::store::RemoteStore::new(b.address(), "micro").unwrap();
    let keys = store_b
        .list("micro", "scale", &Query::default())
        .await
        .expect("A's token works on B");
    assert_eq!(keys.len(), 1000, "every acknowledged record");
    assert_eq!(
        config_b
            .get("micro", "db.password", true)
            .await
            .expect("the secret A sealed opens on B"),
        serde_json::json!("hunter2")
    );

    // helloworld stays callable and registered: its heartbeats moved to B.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let out = client.micro(&["call", "helloworld", "Helloworld.Call", r#"{"name":"Ada"}"#]);
    assert_eq!(out.code, 0, "call after A died: {}", out.stderr);
    assert!(out.stdout.contains("Hello Ada"), "{}", out.stdout);

    // The group gets exactly what was not acked, after ack_wait, through B.
    let events_b = micro::events::RemoteEvents::new(b.address()).unwrap();
    let mut consumer = events_b
        .consume("micro", "orders", options)
        .await
        .expect("consume through B");
    let mut rest = BTreeSet::new();
    while acked.len() + rest.len() < 1000 {
        let event = tokio::time::timeout(Duration::from_secs(20), consumer.events.next())
            .await
            .expect("the unacked events come back")
            .expect("open")
            .expect("delivered");
        assert!(!acked.contains(&event.id), "an acked event came back");
        events_b
            .ack("micro", "orders", "billing", &event.id)
            .await
            .expect("ack through B");
        rest.insert(event.id);
    }
    let all: BTreeSet<_> = acked.union(&rest).cloned().collect();
    assert_eq!(all, published, "every event acked once");

    // The group consumed through both servers got the rest too, whichever server died.
    while shipped.len() < 1000 {
        let event = tokio::time::timeout(Duration::from_secs(20), shipping.events.next())
            .await
            .expect("the consumer through both servers goes on")
            .expect("open")
            .expect("delivered");
        let _ = events_both
            .ack("micro", "orders", "shipping", &event.id)
            .await;
        shipped.insert(event.id);
    }
    assert_eq!(shipped, published);
    let extra = tokio::time::timeout(Duration::from_secs(3), consumer.events.next()).await;
    assert!(extra.is_err(), "nothing more: {extra:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_servers_on_etcd_nats_and_postgres_lose_nothing_when_one_is_killed() {
    kill_one_server_and_lose_nothing(shared(engines::postgres())).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_servers_on_etcd_nats_and_redis_lose_nothing_when_one_is_killed() {
    kill_one_server_and_lose_nothing(shared(engines::redis())).await;
}

/// Two servers creating one account at once: one account, one clear conflict.
#[tokio::test(flavor = "multi_thread")]
async fn an_account_created_through_two_servers_at_once_is_made_once() {
    let shared = shared(engines::postgres());
    let (a, b) = (server(&shared), server(&shared));
    a.login("admin", "micro");
    b.login("admin", "micro");
    let start = |sb: &Sandbox| {
        sb.micro_command(&[
            "auth",
            "create",
            "account",
            "ada",
            "--secret",
            "s3cret-pass",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn micro")
    };
    let (pa, pb) = (start(&a), start(&b));
    let (ra, rb) = (
        pa.wait_with_output().unwrap(),
        pb.wait_with_output().unwrap(),
    );
    let text = |o: &std::process::Output| String::from_utf8_lossy(&o.stderr).into_owned();
    let (ra, rb) = (
        (ra.status.code().unwrap_or(-1), text(&ra)),
        (rb.status.code().unwrap_or(-1), text(&rb)),
    );
    let codes = [ra.0, rb.0];
    assert!(codes.contains(&0), "one creation succeeds: {ra:?} {rb:?}");
    assert!(
        codes.iter().any(|c| *c != 0),
        "the other conflicts: {ra:?} {rb:?}"
    );
    let loser = if ra.0 == 0 { &rb } else { &ra };
    assert!(loser.1.contains("already exists"), "{loser:?}");
    // A rule or account change through one is seen through the other within a second.
    let out = a.micro(&["auth", "list", "accounts"]);
    assert!(out.stdout.contains("ada"), "{out:?}");
    let out = b.micro(&["auth", "list", "accounts"]);
    assert!(out.stdout.contains("ada"), "{out:?}");
}

/// The README's "Scaling out" block, as written: its engine addresses and ports become the
/// engines this test started and free ports; every `micro` line's output is compared.
#[test]
fn readme_scaling_out_runs_as_written() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let block = readme
        .split_once("<!-- scaleout:start -->")
        .and_then(|(_, rest)| rest.split_once("<!-- scaleout:end -->"))
        .map(|(block, _)| block)
        .expect("the scaling-out block");
    let body = block
        .split_once("```console\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .map(|(b, _)| b)
        .expect("a console block");
    let mut steps: Vec<(String, String)> = Vec::new();
    for line in body.lines() {
        match line.strip_prefix("$ ") {
            Some(cmd) => steps.push((cmd.to_owned(), String::new())),
            None => {
                let (_, out) = steps.last_mut().expect("output after a command");
                out.push_str(line);
                out.push('\n');
            }
        }
    }

    let (etcd, nats, pg) = (engines::etcd(), engines::nats(), engines::postgres());
    let engine_address = |word: &str| match word {
        "127.0.0.1:2379" => etcd.address.clone(),
        "nats://127.0.0.1:4222" => nats.address.clone(),
        "postgres://micro@127.0.0.1:5432/postgres" => pg.address.clone(),
        other => other.to_owned(),
    };
    let mut servers: Vec<Sandbox> = Vec::new();
    let mut client = Sandbox::new();
    for (cmd, expected) in steps {
        let words = shell_words::split(cmd.trim_end_matches('&').trim()).unwrap();
        match words.as_slice() {
            [micro, server, flags @ ..] if micro == "micro" && server == "server" => {
                // The listen addresses become free ports; the engines, the ones started here.
                let mut kept = Vec::new();
                let mut flags = flags.iter();
                while let Some(flag) = flags.next() {
                    if ["--address", "--api-address", "--web-address"].contains(&flag.as_str()) {
                        flags.next();
                        continue;
                    }
                    kept.push(engine_address(flag));
                }
                let kept: Vec<&str> = kept.iter().map(String::as_str).collect();
                let mut sandbox = Sandbox::new();
                sandbox.start_server_with(&kept);
                servers.push(sandbox);
            }
            [export, assignment] if export == "export" => {
                assert!(assignment.starts_with("MICRO_SERVER_ADDRESS="), "{cmd}");
                let addresses: Vec<&str> = servers.iter().map(Sandbox::address).collect();
                client.address = Some(addresses.join(","));
            }
            [kill, nine, job] if kill == "kill" && nine == "-9" => {
                let index: usize = job.trim_start_matches('%').parse().unwrap();
                servers[index - 1].kill_server();
            }
            [micro, args @ ..] if micro == "micro" => {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let out = client.micro(&args);
                assert_eq!(
                    out.stdout, expected,
                    "`{cmd}` printed something else; stderr: {}",
                    out.stderr
                );
            }
            _ => panic!("the block runs micro, export and kill only: {cmd}"),
        }
    }
    assert_eq!(servers.len(), 2, "two servers");
}

/// `micro status` through either server lists the services both run; a name one server runs
/// is a conflict on the other; a killed service drops out everywhere.
#[test]
fn status_and_logs_through_either_server_show_every_servers_services() {
    let shared = shared(engines::postgres());
    let (a, b) = (server(&shared), server(&shared));
    a.login("admin", "micro");
    b.login("admin", "micro");
    let work = tempfile::tempdir().unwrap();
    let in_dir = |sb: &Sandbox, args: &[&str]| {
        let mut cmd = sb.micro_command(args);
        cmd.current_dir(work.path());
        micro_e2e::run(cmd)
    };
    let out = in_dir(&a, &["new", "hello-sh"]);
    assert_eq!(out.code, 0, "{out:?}");
    let out = in_dir(&a, &["run", "./hello-sh"]);
    assert_eq!(out.code, 0, "micro run through A: {out:?}");

    let listed = |sb: &Sandbox| {
        let out = sb.micro(&["status"]);
        assert_eq!(out.code, 0, "{out:?}");
        out.stdout
            .lines()
            .any(|l| l.split_whitespace().next() == Some("hello-sh") && l.contains("running"))
    };
    micro_e2e::wait_for(Duration::from_secs(15), "hello-sh in B's status", || {
        listed(&b).then_some(())
    });
    assert!(listed(&a));

    // The logs live with A, which runs the service; B forwards the call there.
    let through_a =
        micro_e2e::wait_for(Duration::from_secs(15), "hello-sh's logs through A", || {
            let out = a.micro(&["logs", "hello-sh"]);
            (out.code == 0 && !out.stdout.trim().is_empty()).then_some(out.stdout)
        });
    let out = b.micro(&["logs", "hello-sh"]);
    assert_eq!(out.code, 0, "micro logs through B: {out:?}");
    let first = through_a.lines().next().unwrap();
    assert!(
        out.stdout.contains(first),
        "B answers with A's logs: {out:?}"
    );
    let out = b.micro(&["logs", "nobody-runs-this"]);
    assert_ne!(out.code, 0, "{out:?}");

    let out = in_dir(&b, &["run", "./hello-sh", "--detach"]);
    assert_ne!(out.code, 0, "the name runs on A: {out:?}");
    assert!(out.stderr.contains("already runs on server"), "{out:?}");

    let out = a.micro(&["kill", "hello-sh"]);
    assert_eq!(out.code, 0, "{out:?}");
    micro_e2e::wait_for(
        Duration::from_secs(20),
        "hello-sh gone from B's status",
        || (!listed(&b)).then_some(()),
    );
}

/// Key files given to every server replace the keys on the shared store: tokens and secrets
/// still work across servers, and the engine never holds the keys.
#[tokio::test(flavor = "multi_thread")]
async fn key_files_keep_the_keys_off_the_engines() {
    let pg = engines::postgres();
    let pg_address = pg.address.clone();
    let shared = shared(pg);
    let keys = tempfile::tempdir().unwrap();
    let token_key = keys.path().join("token.key");
    let secret_key = keys.path().join("secret.key");
    let mut flags = shared.flags.clone();
    flags.extend([
        "--token-key".to_owned(),
        token_key.display().to_string(),
        "--secret-key".to_owned(),
        secret_key.display().to_string(),
    ]);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut a = Sandbox::new();
    a.start_server_with(&flags);
    let mut b = Sandbox::new();
    b.start_server_with(&flags);

    a.login("admin", "micro");
    micro::auth::set_token(Some(a.token()));
    let config_a = micro::config::RemoteConfig::new(a.address()).unwrap();
    config_a
        .set("micro", "db.password", serde_json::json!("hunter2"), true)
        .await
        .expect("secret through A");
    let config_b = micro::config::RemoteConfig::new(b.address()).unwrap();
    assert_eq!(
        config_b
            .get("micro", "db.password", true)
            .await
            .expect("A's token works on B, and B opens A's secret"),
        serde_json::json!("hunter2")
    );
    let store = micro_backends::postgres::PostgresStore::connect(&pg_address)
        .await
        .unwrap();
    for key in ["tokens", "config", "peers"] {
        let err = store.read("auth", "keys", key).await.unwrap_err();
        assert_eq!(err.code, 404, "the {key} key is not on the engine");
    }
    assert!(token_key.is_file() && secret_key.is_file());

    // A server given another key file would issue tokens nobody else reads: refused.
    let other = keys.path().join("other.key");
    let mut wrong = shared.flags.clone();
    wrong.extend([
        "--token-key".to_owned(),
        other.display().to_string(),
        "--address".to_owned(),
        "127.0.0.1:0".to_owned(),
        "--api-address".to_owned(),
        "127.0.0.1:0".to_owned(),
        "--web-address".to_owned(),
        "127.0.0.1:0".to_owned(),
    ]);
    let c = Sandbox::new();
    let out = micro_e2e::run({
        let mut cmd = std::process::Command::new(micro_e2e::bin("micro"));
        cmd.arg("server")
            .args(&wrong)
            .env("MICRO_HOME", c.home.path());
        cmd
    });
    assert_ne!(out.code, 0, "{out:?}");
    assert!(
        out.stderr
            .contains("not the key file the other servers use"),
        "{out:?}"
    );
}

/// A server stopped cleanly takes its platform services' nodes off the shared registry at once,
/// so no caller picks it after it stops answering (a killed one's lapse at their TTL).
#[tokio::test(flavor = "multi_thread")]
async fn a_server_stopped_cleanly_leaves_the_shared_registry_at_once() {
    let (etcd, nats, redis) = (engines::etcd(), engines::nats(), engines::redis());
    let start = || {
        micro_server::start(micro_server::Options {
            address: "127.0.0.1:0".into(),
            api_address: None,
            web_address: None,
            auth: micro_server::AuthOptions {
                enabled: false,
                ..Default::default()
            },
            engines: micro_server::Engines {
                registry: micro_server::Engine::Etcd(etcd.address.clone()),
                broker: micro_server::Engine::Nats(nats.address.clone()),
                events: micro_server::Engine::Nats(nats.address.clone()),
                store: micro_server::Engine::Redis(redis.address.clone()),
            },
            ..Default::default()
        })
    };
    let a = start().await.expect("server a");
    let b = start().await.expect("server b");
    let registry = micro::registry::RemoteRegistry::new(&a.grpc_address().to_string()).unwrap();
    let nodes = |services: Vec<micro_core::Service>| -> BTreeSet<String> {
        services
            .into_iter()
            .flat_map(|s| s.nodes)
            .map(|n| n.address)
            .collect()
    };
    let both = nodes(registry.get_service("micro", "store").await.unwrap());
    let (a_at, b_at) = (a.grpc_address().to_string(), b.grpc_address().to_string());
    assert_eq!(
        both,
        BTreeSet::from([a_at.clone(), b_at]),
        "both serve the store"
    );

    b.stop().await;
    let left = nodes(registry.get_service("micro", "store").await.unwrap());
    assert_eq!(left, BTreeSet::from([a_at]), "b left as it stopped");
    drop(registry);
    a.stop().await;
}

/// A server restarted on shared engines claims its services again before it runs them: its own
/// (named by the id it keeps in its home, whatever its new port) it resumes at once; one another
/// server took while it was down stays there and is not run twice.
#[test]
fn a_restarted_server_resumes_its_own_services_and_leaves_taken_ones() {
    let shared = shared(engines::redis());
    let (mut a, b) = (server(&shared), server(&shared));
    let flags: Vec<&str> = shared.flags.iter().map(String::as_str).collect();
    a.login("admin", "micro");
    b.login("admin", "micro");
    let work = tempfile::tempdir().unwrap();
    let in_dir = |sb: &Sandbox, args: &[&str]| {
        let mut cmd = sb.micro_command(args);
        cmd.current_dir(work.path());
        micro_e2e::run(cmd)
    };
    let out = in_dir(&a, &["new", "hello-sh"]);
    assert_eq!(out.code, 0, "{out:?}");
    let out = in_dir(&a, &["run", "./hello-sh"]);
    assert_eq!(out.code, 0, "micro run through A: {out:?}");
    let running_on = |sb: &Sandbox| {
        let out = sb.micro(&["status"]);
        out.stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some("hello-sh") && l.contains("running"))
            .map(str::to_owned)
    };
    micro_e2e::wait_for(Duration::from_secs(15), "hello-sh running", || {
        running_on(&b)
    });

    // Killed and restarted at once (on new ports): its claim is still live, and its own.
    a.kill_server();
    a.start_server_with(&flags);
    a.login("admin", "micro");
    micro_e2e::wait_for(Duration::from_secs(30), "hello-sh resumed on A", || {
        running_on(&a)
    });
    // A runs it itself: its logs are A's own, not forwarded to its dead former address.
    let out = a.micro(&["logs", "hello-sh"]);
    assert_eq!(out.code, 0, "A serves the logs of what it runs: {out:?}");
    assert_eq!(a.server_log_count("not resumed here"), 0);

    // Killed again and left down until its claim lapses; B takes the name meanwhile.
    a.kill_server();
    micro_e2e::wait_for(Duration::from_secs(30), "A's claim lapsed", || {
        running_on(&b).is_none().then_some(())
    });
    let out = in_dir(&b, &["run", "./hello-sh"]);
    assert_eq!(out.code, 0, "micro run through B: {out:?}");
    a.start_server_with(&flags);
    let line = a.wait_server_line("not resumed here");
    assert!(line.contains("hello-sh"), "{line}");
    a.login("admin", "micro");
    let out = a.micro(&["logs", "hello-sh"]);
    assert_eq!(
        out.code, 0,
        "A forwards the logs to B, which runs it: {out:?}"
    );
}
