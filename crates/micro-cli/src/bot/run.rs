//! Running a chat command: `micro ARGS` as the user's account, in their home and namespace,
//! bounded in time and in what it prints, answered as a code block.

use std::{path::Path, process::Stdio, time::Duration};

use super::users::Account;

/// What a command's environment keeps of the bot's: where the platform is and how to reach it.
const PASSED_ON: &[&str] = &[
    "PATH",
    "MICRO_SERVER_ADDRESS",
    "MICRO_TLS",
    "MICRO_TLS_CA",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
];

/// How long a command may run.
const TIMEOUT: Duration = Duration::from_secs(20);
/// The most characters of output answered (chat messages are short).
const MAX_ANSWER: usize = 3000;

/// Logs `account` in within `home`, unless a login is kept there already.
pub(crate) async fn log_in(account: &Account, home: &Path) -> Result<(), String> {
    if home.join("tokens").exists() {
        return Ok(());
    }
    let _ = std::fs::create_dir_all(home);
    let (code, text) = micro(
        home,
        &account.namespace,
        &["login", "--username", &account.account],
        Some(&account.secret),
    )
    .await;
    if code == 0 {
        Ok(())
    } else {
        Err(format!(
            "cannot log you in as {}: {}",
            account.account,
            text.trim()
        ))
    }
}

/// Runs `micro ARGS` as the account logged in within `home`: its exit code, and the answer as
/// a code block.
pub(crate) async fn command(account: &Account, home: &Path, args: &[String]) -> (i32, String) {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, text) = micro(home, &account.namespace, &args, None).await;
    let mut text = text.trim_end().to_owned();
    if text.chars().count() > MAX_ANSWER {
        text = text.chars().take(MAX_ANSWER).collect::<String>() + "\n…";
    }
    if text.is_empty() {
        text = if code == 0 { "(done)" } else { "(failed)" }.to_owned();
    }
    // A fence inside the answer would end the block early.
    (code, format!("```\n{}\n```", text.replace("```", "'''")))
}

/// `micro ARGS` in `home` and `namespace` (with `password` for a login): its exit code and
/// what it printed, stdout then stderr.
async fn micro(
    home: &Path,
    namespace: &str,
    args: &[&str],
    password: Option<&str>,
) -> (i32, String) {
    let exe = std::env::current_exe().unwrap_or_else(|_| "micro".into());
    let mut cmd = tokio::process::Command::new(exe);
    // A clean environment: the bot's own secrets (Slack's, the webhook's) stay with the bot.
    cmd.env_clear();
    for (key, value) in std::env::vars_os() {
        if PASSED_ON.iter().any(|k| key == *k) {
            cmd.env(key, value);
        }
    }
    cmd.args(args)
        .env("MICRO_HOME", home)
        .env("MICRO_NAMESPACE", namespace)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(password) = password {
        // In the environment of the one child, not on its command line for others to read.
        cmd.env("MICRO_PASSWORD", password);
    }
    let output = match tokio::time::timeout(TIMEOUT, cmd.output()).await {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => return (1, format!("cannot run micro: {e}")),
        Err(_) => return (1, format!("the command took longer than {TIMEOUT:?}")),
    };
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    (output.status.code().unwrap_or(1), text)
}
