//! `micro cli` in a pseudo-terminal, as a user types at it: tab completes a service name and an
//! endpoint's flag from the registry, lines run as commands (a failing one leaves the prompt
//! up), history survives the session; and the shell completions ask the same completer.

use std::{
    fs::File,
    io::{Read, Write},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use micro_e2e::{Sandbox, bin, wait_for};

/// `micro cli` on a pseudo-terminal.
struct Terminal {
    master: File,
    child: Child,
    screen: Arc<Mutex<String>>,
}

impl Terminal {
    fn open(sb: &Sandbox) -> Self {
        let pty = nix::pty::openpty(None, None).expect("openpty");
        let slave = File::from(pty.slave);
        let mut cmd = Command::new(bin("micro"));
        cmd.arg("cli")
            .env("MICRO_HOME", sb.home.path())
            .env("MICRO_SERVER_ADDRESS", sb.address())
            .env("TERM", "xterm")
            .env_remove("MICRO_NAMESPACE")
            .stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave));
        let child = cmd.spawn().expect("micro cli");
        let master = File::from(pty.master);
        let screen = Arc::new(Mutex::new(String::new()));
        let mut reader = master.try_clone().unwrap();
        let into = screen.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = reader.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                into.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&chunk[..n]));
            }
        });
        Self {
            master,
            child,
            screen,
        }
    }

    fn type_in(&mut self, keys: &str) {
        self.master.write_all(keys.as_bytes()).unwrap();
    }

    /// Waits until the screen shows `text` after what was shown before, and forgets up to it.
    fn expect(&mut self, text: &str) {
        wait_for(
            Duration::from_secs(20),
            &format!("{text:?} on the terminal"),
            || {
                let mut screen = self.screen.lock().unwrap();
                let at = screen.find(text)?;
                screen.drain(..at + text.len());
                Some(())
            },
        );
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_interactive_cli_completes_from_the_registry_and_keeps_its_history() {
    let sb = Sandbox::with_server();
    let _hw = sb.helloworld(&[]);
    let mut term = Terminal::open(&sb);
    term.expect("micro> ");

    // A service's name, then its endpoint's flag, completed with tab.
    term.type_in("hellow\t");
    term.expect("helloworld");
    term.type_in(" call --na\t");
    term.expect("--name");
    term.type_in("=Ada\r");
    term.expect("Hello Ada");
    term.expect("micro> ");

    // Any command, quotes and all; a failing one leaves the prompt up.
    term.type_in("call helloworld Helloworld.Call '{\"name\":\"Bo\"}'\r");
    term.expect("Hello Bo");
    term.type_in("nosuch\r");
    term.expect("Unrecognized micro command: nosuch");
    term.expect("micro> ");
    term.type_in("exit\r");
    let status = term.child.wait().unwrap();
    assert!(status.success(), "{status}");

    // History, across sessions, readable by its owner alone.
    let history = sb.home.path().join("history");
    let kept = std::fs::read_to_string(&history).unwrap();
    assert!(kept.contains("helloworld call --name=Ada"), "{kept}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&history).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let mut term = Terminal::open(&sb);
    term.expect("micro> ");
    term.type_in("\x1b[A\x1b[A");
    term.expect("call helloworld Helloworld.Call");
    term.type_in("\r");
    term.expect("Hello Bo");
    term.expect("micro> ");
    // A secret typed at the prompt is not kept.
    term.type_in("auth create account cat --secret hunter2\r");
    term.expect("micro> ");
    term.type_in("call auth Auth.Token '{\"id\":\"cat\",\"secret\":\"hunter3\"}'\r");
    term.expect("micro> ");
    term.type_in("\x04");
    let status = term.child.wait().unwrap();
    assert!(status.success(), "Ctrl-D leaves: {status}");
    let kept = std::fs::read_to_string(&history).unwrap();
    assert!(
        !kept.contains("hunter2") && !kept.contains("hunter3"),
        "{kept}"
    );
}

#[test]
fn shell_completions_ask_the_same_completer() {
    let sb = Sandbox::with_server();
    let _hw = sb.helloworld(&[]);
    let out = sb.micro(&["__complete", "hel"]);
    assert_eq!(out.stdout.trim(), "helloworld", "{out:?}");
    let out = sb.micro(&["__complete", "helloworld", ""]);
    assert_eq!(
        out.stdout.lines().collect::<Vec<_>>(),
        ["call", "ping-pong", "stream"],
        "{out:?}"
    );

    // bash, as it calls the function on <TAB>.
    let script = sb.micro(&["completion", "bash"]);
    assert_eq!(script.code, 0, "{script:?}");
    let dir = bin("micro").parent().unwrap().to_owned();
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let check = format!(
        "{}\nCOMP_WORDS=(micro call hellow); COMP_CWORD=2; _micro; echo \"${{COMPREPLY[*]}}\"",
        script.stdout
    );
    // The sandbox's environment (its MICRO_HOME and server), as `micro` itself gets it.
    let sandboxed = sb.micro_command(&[]);
    let out = Command::new("bash")
        .arg("-c")
        .arg(&check)
        .env("PATH", path)
        .envs(
            sandboxed
                .get_envs()
                .filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned()))),
        )
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "helloworld",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for shell in ["zsh", "fish"] {
        let out = sb.micro(&["completion", shell]);
        assert!(out.stdout.contains("micro __complete"), "{shell}: {out:?}");
    }
    let out = sb.micro(&["completion", "tcsh"]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("bash, zsh or fish"), "{out:?}");
}
