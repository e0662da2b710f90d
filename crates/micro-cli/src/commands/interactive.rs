//! `micro cli`: the interactive CLI. A `micro> ` prompt with line editing, history kept across
//! sessions (`MICRO_HOME/history`, mode 0600; a line that mentions a secret, a password or a
//! token is not kept),
//! and tab completion of commands, service names, endpoint words and flags from the registry
//! ([`crate::complete`]). Each line runs as `micro LINE` would, with the global flags `micro cli`
//! was started with; a failure prints its message and the prompt comes back. `exit`, `quit` or
//! Ctrl-D leave; Ctrl-C clears the line.

use std::{
    borrow::Cow,
    sync::{Arc, Mutex},
};

use clap::Parser;
use rustyline::{
    CompletionType, Config, Context as LineContext, Editor, Helper as LineHelper,
    completion::{Completer, Pair},
    error::ReadlineError,
    highlight::Highlighter,
    hint::Hinter,
    history::{FileHistory, History},
    validate::Validator,
};

use super::completion::known;
use crate::{
    cli::Cli,
    complete::{Known, candidates},
    context::Context,
    failure::Failure,
};

/// A line holding any of these (in any case) never goes into the history file: a flag, or a
/// JSON field, that carries a secret.
const SECRET_WORDS: &[&str] = &["secret", "password", "token"];

/// Runs the prompt until `exit` or Ctrl-D.
pub(crate) async fn run(outer: &Cli) -> Result<(), Failure> {
    let ctx = Context::new(outer)?;
    let globals = globals(outer);
    let known_now = Arc::new(Mutex::new(Known::default()));
    let config = Config::builder()
        .completion_type(CompletionType::List)
        .auto_add_history(false)
        .build();
    let mut editor: Editor<Helper, FileHistory> = Editor::with_config(config)
        .map_err(|e| Failure::new(format!("cannot start the prompt: {e}")))?;
    editor.set_helper(Some(Helper {
        known: known_now.clone(),
    }));
    let history = crate::config::home().join("history");
    private_file(&history);
    let _ = editor.load_history(&history);
    loop {
        // What the registry holds now, for this line's completion.
        let fresh = known(&ctx).await;
        if let Ok(mut known) = known_now.lock() {
            *known = fresh;
        }
        let line = match tokio::task::block_in_place(|| editor.readline("micro> ")) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(Failure::new(format!("cannot read the line: {e}"))),
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if line == "exit" || line == "quit" {
            break;
        }
        let Some(words) = shlex::split(line) else {
            eprintln!("the line has an unclosed quote");
            continue;
        };
        let lower = line.to_lowercase();
        if !SECRET_WORDS.iter().any(|w| lower.contains(w)) {
            let _ = editor.add_history_entry(line);
            keep(&mut editor, &history);
        }
        if matches!(words.first().map(String::as_str), Some("cli" | "server")) {
            eprintln!("micro {} does not run inside micro cli", words[0]);
            continue;
        }
        let argv = std::iter::once("micro".to_owned())
            .chain(globals.iter().cloned())
            .chain(words);
        match Cli::try_parse_from(argv) {
            // Help and usage mistakes, as the shell CLI prints them.
            Err(e) => {
                let _ = e.print();
            }
            Ok(cli) => {
                if let Err(failure) = Box::pin(super::dispatch(cli)).await
                    && !failure.message.is_empty()
                {
                    eprintln!("{}", failure.message);
                }
            }
        }
    }
    Ok(())
}

/// Appends the last line to the history file.
fn keep(editor: &mut Editor<Helper, FileHistory>, path: &std::path::Path) {
    private_file(path);
    let _ = editor.history_mut().append(path);
}

/// Makes `path` readable by its owner alone, creating it so if it is missing (never readable
/// by others, not even for a moment).
fn private_file(path: &std::path::Path) {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let _ = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path);
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
}

/// The global flags `micro cli` was started with, for every line.
fn globals(cli: &Cli) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(env) = &cli.env {
        out.extend(["--env".to_owned(), env.clone()]);
    }
    if let Some(ns) = &cli.namespace {
        out.extend(["--namespace".to_owned(), ns.clone()]);
    }
    if let Some(config) = &cli.config {
        out.extend(["--config".to_owned(), config.display().to_string()]);
    }
    if cli.insecure {
        out.push("--insecure".to_owned());
    }
    out
}

/// The line editor's completion over what the registry held at the prompt.
struct Helper {
    known: Arc<Mutex<Known>>,
}

impl Completer for Helper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &LineContext<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let before = &line[..pos];
        let start = before.rfind(char::is_whitespace).map_or(0, |i| {
            i + before[i..].chars().next().map_or(1, char::len_utf8)
        });
        let mut words = shlex::split(before)
            .unwrap_or_else(|| before.split_whitespace().map(str::to_owned).collect());
        if before.is_empty() || before.ends_with(char::is_whitespace) {
            words.push(String::new());
        }
        let known = self.known.lock().map(|k| k.clone()).unwrap_or_default();
        let pairs = candidates(&words, &known)
            .into_iter()
            .map(|c| Pair {
                display: c.clone(),
                replacement: c,
            })
            .collect();
        Ok((start, pairs))
    }
}

impl Hinter for Helper {
    type Hint = String;
}

impl Highlighter for Helper {
    fn highlight<'l>(&self, line: &'l str, _: usize) -> Cow<'l, str> {
        Cow::Borrowed(line)
    }
}

impl Validator for Helper {}

impl LineHelper for Helper {}
