//! What a chat message asks for, as pure logic: the text becomes the arguments of a `micro`
//! command, if it is one the bot runs — `help`, `services`, `get service NAME`, `call SERVICE
//! ENDPOINT [JSON]`, `status [NAME]`, `logs NAME [-n N]`, and any service's own command
//! (`helloworld call --name=Ada`). Everything else is refused before anything runs: the other
//! built-in commands (`run`, `kill`, `auth`, `server`, ...), the flags that would pick another
//! environment, namespace, config file or node, and following a log forever.

use clap::CommandFactory;

use crate::cli::Cli;

/// The longest message read.
pub(crate) const MAX_TEXT: usize = 4000;
/// The most words a command has.
const MAX_WORDS: usize = 64;
/// The built-in commands the bot runs.
const ALLOWED: &[&str] = &["services", "get", "call", "status", "logs"];
/// Flags no chat user may pass.
const FORBIDDEN: &[&str] = &[
    "-e",
    "--env",
    "--namespace",
    "-c",
    "--config",
    "--insecure",
    "--address",
    "-f",
    "--follow",
    "--output",
];

/// What the bot does with a message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Asked {
    /// Answer the bot's help.
    Help,
    /// Run `micro ARGS`.
    Run(Vec<String>),
    /// Say why not.
    Refused(String),
}

/// The command in `text`: a leading mention (`<@U123>`) and a leading `micro` are left out.
pub(crate) fn asked(text: &str) -> Asked {
    if text.len() > MAX_TEXT {
        return Asked::Refused(format!("the message is longer than {MAX_TEXT} bytes"));
    }
    let mut text = text.trim();
    if text.starts_with("<@")
        && let Some(end) = text.find('>')
    {
        text = text[end + 1..].trim_start();
    }
    // Slack sends quotes as typographic ones, and `&`, `<`, `>` escaped.
    let text = text
        .replace(['\u{201c}', '\u{201d}'], "\"")
        .replace(['\u{2018}', '\u{2019}'], "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    // A JSON request is written as it is in chat, not shell-quoted: from its first `{` on, the
    // text is one word.
    let (before, json) = match text.find('{') {
        Some(at) => (&text[..at], Some(text[at..].trim())),
        None => (text.as_str(), None),
    };
    let Some(mut words) = shlex::split(before) else {
        return Asked::Refused("the message has an unclosed quote".to_owned());
    };
    words.extend(json.map(str::to_owned));
    if words.first().is_some_and(|w| w == "micro") {
        words.remove(0);
    }
    if words.len() > MAX_WORDS {
        return Asked::Refused(format!("more than {MAX_WORDS} words"));
    }
    let Some(first) = words.first() else {
        return Asked::Help;
    };
    if first == "help" || first == "--help" {
        return Asked::Help;
    }
    // `-eprod`, `-c/x` and `-fn5` are `-e prod`, `-c /x` and `-f -n5` to the parser.
    if let Some(flag) = words.iter().find(|w| {
        FORBIDDEN.iter().any(|f| {
            *w == f
                || w.starts_with(&format!("{f}="))
                || (f.len() == 2 && !w.starts_with("--") && w.starts_with(f))
        })
    }) {
        return Asked::Refused(format!("{flag} is not for chat"));
    }
    let built_in = Cli::command().find_subcommand(first).is_some();
    if built_in && !ALLOWED.contains(&first.as_str()) {
        return Asked::Refused(format!(
            "micro {first} is not a bot command; say help for the ones that are"
        ));
    }
    if first == "get" && words.get(1).map(String::as_str) != Some("service") {
        return Asked::Refused("the bot gets services only: get service NAME".to_owned());
    }
    // The platform's own services (the store, auth, the runtime, ...) are reached through the
    // commands above, not called: a call could do what the refused commands do.
    let called = if first == "call" {
        words.get(1)
    } else if built_in {
        None
    } else {
        Some(first)
    };
    if let Some(service) = called.filter(|s| micro_server::is_platform_service(s)) {
        return Asked::Refused(format!(
            "{service} is the platform's own service; the bot does not call it"
        ));
    }
    if first.starts_with('-') {
        return Asked::Refused(format!("{first} is not a command"));
    }
    // Whatever the words, they must not pick another env, namespace or config file (the bot's
    // own environment may well set them: only the words count).
    if let Ok(matches) = Cli::command()
        .try_get_matches_from(std::iter::once("micro").chain(words.iter().map(String::as_str)))
        && ["env", "namespace", "config", "insecure"]
            .iter()
            .any(|id| matches.value_source(id) == Some(clap::parser::ValueSource::CommandLine))
    {
        return Asked::Refused("the env, namespace and config are the bot's to choose".to_owned());
    }
    Asked::Run(words)
}

/// The bot's help.
pub(crate) const HELP: &str = "\
Commands:
  services                        the services you may call
  get service NAME                a service's versions, nodes and endpoints
  call SERVICE ENDPOINT [JSON]    call an endpoint
  SERVICE [WORDS] [--field=value] a service's own command (SERVICE --help lists them)
  status [NAME]                   what the runtime runs
  logs NAME [-n N]                a service's last lines
  help                            this";

#[cfg(test)]
mod tests {
    use super::*;

    fn run(words: &[&str]) -> Asked {
        Asked::Run(words.iter().map(|w| (*w).to_owned()).collect())
    }

    #[test]
    fn chat_text_becomes_a_micro_command() {
        assert_eq!(asked("services"), run(&["services"]));
        assert_eq!(asked("<@U0BOT> services"), run(&["services"]));
        assert_eq!(
            asked("micro get service helloworld"),
            run(&["get", "service", "helloworld"])
        );
        assert_eq!(
            asked("call helloworld Helloworld.Call {\u{201c}name\u{201d}: \u{201c}Ada\u{201d}}"),
            run(&[
                "call",
                "helloworld",
                "Helloworld.Call",
                r#"{"name": "Ada"}"#
            ])
        );
        assert_eq!(
            asked("helloworld call --name=Ada"),
            run(&["helloworld", "call", "--name=Ada"])
        );
        assert_eq!(asked("logs hello -n 5"), run(&["logs", "hello", "-n", "5"]));
        assert_eq!(asked(""), Asked::Help);
        assert_eq!(asked("help"), Asked::Help);
    }

    #[test]
    fn what_chat_may_not_do_is_refused() {
        for text in [
            "run .",
            "kill helloworld",
            "auth list accounts",
            "server",
            "store write k v",
            "call helloworld X --address 10.0.0.1:22",
            "services --namespace other",
            "services -e prod",
            "logs hello -f",
            "logs hello --follow",
            "services -eprod",
            "call svc E -c/etc/x.json",
            "logs x -fn5",
            "services --namespace=team",
            "call runtime Runtime.Delete {\"name\":\"x\"}",
            "call auth Rules.Create {}",
            "runtime logs --follow=true",
            "store write k v",
            "get accounts",
            "call 'unclosed",
            "--help-me",
        ] {
            assert!(matches!(asked(text), Asked::Refused(_)), "{text}");
        }
        assert!(matches!(asked(&"x ".repeat(3000)), Asked::Refused(_)));
    }
}
