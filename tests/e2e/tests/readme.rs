//! Runs the README's walkthrough exactly as written: every `$ micro ...` line is run and its
//! output compared with the lines under it; `$ cargo run -p helloworld` starts the example.
//! The server is started first, on a free port, as `micro server` would be.

use micro_e2e::Sandbox;

#[test]
fn readme_walkthrough_runs_as_written() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let start = readme
        .find("<!-- walkthrough:start -->")
        .expect("walkthrough start marker");
    let end = readme
        .find("<!-- walkthrough:end -->")
        .expect("walkthrough end marker");
    let block = &readme[start..end];
    let body = block
        .split_once("```console\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .map(|(b, _)| b)
        .expect("a console block in the walkthrough");

    // (command, expected output)
    let mut steps: Vec<(String, String)> = Vec::new();
    for line in body.lines() {
        match line.strip_prefix("$ ") {
            Some(cmd) => steps.push((cmd.to_owned(), String::new())),
            None => {
                let (_, out) = steps.last_mut().expect("output before any command");
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    assert!(steps.len() >= 3, "the walkthrough has commands");

    // Not logged in: the walkthrough logs in itself.
    let mut sb = Sandbox::new();
    sb.start_server();
    let mut services = Vec::new();
    for (cmd, expected) in steps {
        let words = shell_words::split(&cmd).unwrap();
        match words.as_slice() {
            [cargo, run, p, pkg] if cargo == "cargo" && run == "run" && p == "-p" => {
                assert_eq!(
                    pkg, "helloworld",
                    "only the example runs in the walkthrough"
                );
                services.push(sb.helloworld(&[]));
            }
            [micro, args @ ..] if micro == "micro" => {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let out = sb.micro(&args);
                assert_eq!(
                    out.stdout, expected,
                    "`{cmd}` printed something else; stderr: {}",
                    out.stderr
                );
            }
            _ => panic!("the walkthrough runs only micro and cargo run: {cmd}"),
        }
    }
}
