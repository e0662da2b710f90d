//! Dynamic commands (`micro helloworld call --name=Alice`) and `micro stream`, end to end.

use micro_e2e::Sandbox;

#[test]
fn every_service_is_a_command_with_typed_flags_and_help() {
    let sb = Sandbox::with_server();
    let _hw = sb.helloworld(&[]);

    let out = sb.micro(&["helloworld", "call", "--name=Alice"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains(r#""msg": "Hello Alice""#), "{out:?}");

    // No word: Helloworld.Call; `--k v` works like `--k=v`.
    let out = sb.micro(&["helloworld", "--name", "Bob"]);
    assert!(out.stdout.contains("Hello Bob"), "{out:?}");

    let out = sb.micro(&["helloworld", "--help"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.starts_with("micro helloworld - "),
        "{}",
        out.stdout
    );
    for word in ["call", "stream", "ping-pong"] {
        assert!(
            out.stdout.contains(&format!("  {word} ")),
            "{word}: {}",
            out.stdout
        );
    }

    let out = sb.micro(&["helloworld", "stream", "--help"]);
    assert!(
        out.stdout.contains("--count") && out.stdout.contains("int64"),
        "{}",
        out.stdout
    );

    let out = sb.micro(&["helloworld", "call", "--nosuchflag=1"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("nosuchflag"), "{out:?}");

    // A number flag is typed: a word is refused before any call, naming the flag.
    let out = sb.micro(&["helloworld", "stream", "--count=many"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("--count"), "{out:?}");

    // A server-streaming endpoint prints every response.
    let out = sb.micro(&["helloworld", "stream", "--count=3"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout.matches("\"count\"").count(), 3, "{}", out.stdout);

    let out = sb.micro(&["helloworld", "nope"]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("Helloworld.Call"), "{out:?}");

    let out = sb.micro(&["nosuch"]);
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr.trim(),
        "Unrecognized micro command: nosuch. Please refer to 'micro --help'"
    );
}

#[test]
fn micro_stream_prints_each_response() {
    let sb = Sandbox::with_server();
    let _hw = sb.helloworld(&[]);
    let out = sb.micro(&[
        "stream",
        "helloworld",
        "Helloworld.Stream",
        r#"{"count":4}"#,
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    for n in 0..4 {
        assert!(
            out.stdout.contains(&format!("\"count\": {n}")),
            "{}",
            out.stdout
        );
    }
    let out = sb.micro(&[
        "stream",
        "helloworld",
        "Helloworld.Stream",
        r#"{"count":-1}"#,
    ]);
    assert_eq!(out.code, 127, "{out:?}");
    assert!(out.stderr.contains("count must be between"), "{out:?}");
    let out = sb.micro(&["stream", "nosuch", "X.Y"]);
    assert_eq!(out.code, 4, "{out:?}");
}
