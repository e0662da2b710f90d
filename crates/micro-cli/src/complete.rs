//! Completion, as pure logic: the words that may come next on a `micro` command line, from the
//! CLI's own grammar (commands, subcommands, flags) and from what the registry holds (service
//! names, each service's endpoint words and request fields). The interactive CLI (`micro cli`)
//! and the shell completions (`micro completion bash|zsh|fish`, which ask `micro __complete`)
//! both call [`candidates`], so the two complete alike.

use clap::CommandFactory;
use micro_core::Service;

use crate::{
    cli::Cli,
    commands::dynamic::{default_service, endpoint_name, endpoints, flag_rows, kebab},
};

/// Commands whose next words are a service, then one of its endpoints.
const TAKE_A_SERVICE: &[&str] = &["call", "stream", "bench"];
/// Commands whose next word is a service's name.
const TAKE_A_NAME: &[&str] = &["logs", "kill", "status", "update"];

/// What the registry holds, for completion: every service with its endpoints (all versions).
#[derive(Debug, Default, Clone)]
pub(crate) struct Known {
    services: Vec<(String, Vec<micro_core::Endpoint>)>,
}

impl Known {
    /// From the registry's list of services (one entry per version).
    pub(crate) fn new(services: &[Service]) -> Self {
        let mut out: Vec<(String, Vec<micro_core::Endpoint>)> = Vec::new();
        for name in services.iter().map(|s| s.name.as_str()) {
            if out.iter().any(|(n, _)| n == name) {
                continue;
            }
            let versions: Vec<Service> = services
                .iter()
                .filter(|s| s.name == name)
                .cloned()
                .collect();
            out.push((name.to_owned(), endpoints(&versions)));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Self { services: out }
    }

    fn names(&self) -> impl Iterator<Item = &str> {
        self.services.iter().map(|(n, _)| n.as_str())
    }

    fn endpoints(&self, name: &str) -> Option<&[micro_core::Endpoint]> {
        self.services
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, e)| e.as_slice())
    }
}

/// The candidates for the last of `words` (the word being typed, possibly empty), given the
/// words before it; sorted, without repeats.
pub(crate) fn candidates(words: &[String], known: &Known) -> Vec<String> {
    let (partial, done) = match words.split_last() {
        Some((last, done)) => (last.as_str(), done),
        None => ("", &[][..]),
    };
    // Global flags and their values say nothing about the command.
    let done: Vec<&str> = skip_globals(done);
    let mut out: Vec<String> = match done.split_first() {
        None if partial.starts_with('-') => flags(&Cli::command()),
        None => {
            let mut words = subcommands(&Cli::command());
            words.extend(known.names().map(str::to_owned));
            words
        }
        Some((first, rest)) => {
            let root = Cli::command();
            if let Some(command) = root.find_subcommand(first) {
                after_command(command, first, rest, partial, known)
            } else if let Some(endpoints) = known.endpoints(first) {
                after_service(first, endpoints, rest, partial)
            } else {
                Vec::new()
            }
        }
    };
    out.retain(|c| c.starts_with(partial));
    out.sort();
    out.dedup();
    out
}

/// `done` without the global flags (`-e ENV`, `--namespace NS`, ...) and their values.
fn skip_globals(done: &[String]) -> Vec<&str> {
    let mut out = Vec::new();
    let mut words = done.iter().map(String::as_str);
    while let Some(word) = words.next() {
        match word {
            "-e" | "--env" | "--namespace" | "-c" | "--config" if out.is_empty() => {
                words.next();
            }
            "--insecure" if out.is_empty() => {}
            w => out.push(w),
        }
    }
    out
}

fn after_command(
    command: &clap::Command,
    name: &str,
    rest: &[&str],
    partial: &str,
    known: &Known,
) -> Vec<String> {
    // Down the subcommands already typed.
    let mut command = command;
    let mut rest = rest;
    while let Some((word, more)) = rest.split_first() {
        match command.find_subcommand(word) {
            Some(sub) => {
                command = sub;
                rest = more;
            }
            None => break,
        }
    }
    if partial.starts_with('-') {
        return flags(command);
    }
    let positional: Vec<&str> = rest
        .iter()
        .copied()
        .filter(|w| !w.starts_with('-'))
        .collect();
    if command.has_subcommands() && positional.is_empty() {
        return subcommands(command);
    }
    if TAKE_A_SERVICE.contains(&name) {
        return match positional.as_slice() {
            [] => known.names().map(str::to_owned).collect(),
            [service] => known
                .endpoints(service)
                .map(|eps| eps.iter().map(|e| e.name.clone()).collect())
                .unwrap_or_default(),
            _ => Vec::new(),
        };
    }
    let names_a_service =
        TAKE_A_NAME.contains(&name) || (name == "get" && command.get_name() == "service");
    if names_a_service && positional.is_empty() {
        return known.names().map(str::to_owned).collect();
    }
    Vec::new()
}

fn after_service(
    name: &str,
    endpoints: &[micro_core::Endpoint],
    rest: &[&str],
    partial: &str,
) -> Vec<String> {
    let words: Vec<&str> = rest
        .iter()
        .copied()
        .take_while(|w| !w.starts_with('-'))
        .collect();
    if partial.starts_with('-') || words.len() < rest.len() {
        // The fields of the endpoint the words pick.
        let Ok(endpoint) = endpoint_name(name, endpoints, &words) else {
            return Vec::new();
        };
        let mut rows = Vec::new();
        if let Some(request) = endpoints
            .iter()
            .find(|e| e.name == endpoint)
            .and_then(|e| e.request.as_ref())
        {
            flag_rows(&request.values, "", &mut rows);
        }
        let mut out: Vec<String> = rows.into_iter().map(|(flag, _)| flag).collect();
        out.push("--help".to_owned());
        return out;
    }
    let svc = default_service(name, endpoints);
    let split = |e: &micro_core::Endpoint| {
        e.name
            .split_once('.')
            .map(|(s, m)| (s.to_owned(), m.to_owned()))
    };
    match words.as_slice() {
        [] => endpoints
            .iter()
            .filter_map(split)
            .map(|(service, method)| {
                if service == svc {
                    kebab(&method)
                } else {
                    kebab(&service)
                }
            })
            .collect(),
        [service] => endpoints
            .iter()
            .filter_map(split)
            .filter(|(s, _)| kebab(s) == *service)
            .map(|(_, method)| kebab(&method))
            .collect(),
        _ => Vec::new(),
    }
}

fn subcommands(command: &clap::Command) -> Vec<String> {
    command
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .map(|c| c.get_name().to_owned())
        .collect()
}

fn flags(command: &clap::Command) -> Vec<String> {
    let mut out: Vec<String> = command
        .get_arguments()
        .filter(|a| !a.is_hide_set())
        .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
        .collect();
    out.push("--help".to_owned());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use micro_core::{Endpoint, registry::Value};

    fn known() -> Known {
        let field = |name: &str, kind: &str| Value {
            name: name.to_owned(),
            r#type: kind.to_owned(),
            values: Vec::new(),
        };
        let endpoint = |name: &str, fields: Vec<Value>| Endpoint {
            name: name.to_owned(),
            request: Some(Value {
                name: "Request".to_owned(),
                r#type: "Request".to_owned(),
                values: fields,
            }),
            ..Endpoint::default()
        };
        let mut hello = Service::new("helloworld", "latest");
        hello.endpoints = vec![
            endpoint("Helloworld.Call", vec![field("name", "string")]),
            endpoint("Helloworld.PingPong", vec![field("stroke", "int64")]),
            endpoint("Admin.Reset", vec![]),
        ];
        let store = Service::new("store", "latest");
        Known::new(&[hello, store])
    }

    fn complete(line: &[&str]) -> Vec<String> {
        let words: Vec<String> = line.iter().map(|w| (*w).to_owned()).collect();
        candidates(&words, &known())
    }

    #[test]
    fn commands_services_and_their_words() {
        assert_eq!(complete(&["hel"]), ["helloworld"]);
        assert!(complete(&["st"]).contains(&"status".to_owned()));
        assert!(complete(&["st"]).contains(&"store".to_owned()));
        assert!(complete(&[""]).contains(&"call".to_owned()));
        assert_eq!(
            complete(&["helloworld", ""]),
            ["admin", "call", "ping-pong"]
        );
        assert_eq!(complete(&["helloworld", "admin", ""]), ["reset"]);
        assert_eq!(
            complete(&["helloworld", "call", "--"]),
            ["--help", "--name"]
        );
        assert_eq!(complete(&["helloworld", "--n"]), ["--name"]);
        assert_eq!(complete(&["call", "he"]), ["helloworld"]);
        assert_eq!(
            complete(&["call", "helloworld", "Helloworld.P"]),
            ["Helloworld.PingPong"]
        );
        assert_eq!(
            complete(&["--namespace", "team", "call", "h"]),
            ["helloworld"]
        );
        assert!(complete(&["store", ""]).contains(&"read".to_owned()));
        assert!(complete(&["call", "--"]).contains(&"--request-timeout".to_owned()));
        assert_eq!(complete(&["get", "service", "h"]), ["helloworld"]);
        assert!(complete(&["nosuch", ""]).is_empty());
    }
}
