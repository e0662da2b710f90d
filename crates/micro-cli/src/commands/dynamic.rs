//! Dynamic commands: `micro helloworld call --name=Alice` (BEHAVIOR.md §1).
//!
//! A word that is not a built-in command is looked up as a service in the registry. The words
//! after it pick the endpoint, the flags become the request's fields, typed by the schema the
//! service registered — so every service gets a command, with help, without any code in the CLI.
//! Parsing is pure ([`endpoint_name`], [`request`]) and unit-tested; [`run`] does the I/O.

use std::{fmt::Write as _, time::Duration};

use micro::text::Scalar;
use micro_core::{
    Registry, Service,
    naming::{self, title},
    registry::Value as Field,
};
use micro_proto::proxy::CallRequest;
use serde_json::{Map, Value};

use super::call::{self, Output};
use crate::{context::Context, failure::Failure};

/// How long a dynamic call waits, as `micro call` does by default.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Runs `micro <service> [words] [--flags]`.
pub(crate) async fn run(ctx: &Context, words: &[String]) -> Result<(), Failure> {
    let Some((name, args)) = words.split_first() else {
        return Err(Failure::new(
            "No command provided to micro. Please refer to 'micro --help'",
        ));
    };
    let unrecognized =
        format!("Unrecognized micro command: {name}. Please refer to 'micro --help'");
    // With no server to ask, the word may be a typo or a service: say both, and exit as a
    // connection failure does.
    let registry = ctx
        .registry()
        .await
        .map_err(|f| Failure::with_code(f.code, format!("{unrecognized}\n{}", f.message)))?;
    let versions = match registry.get_service(&ctx.namespace, name).await {
        Ok(v) => v,
        Err(e) if e.code == 404 => return Err(Failure::new(unrecognized)),
        Err(e) => return Err(e.into()),
    };
    let endpoints = endpoints(&versions);
    let (words, flags) = split(args);
    let help = flags.iter().any(|f| *f == "--help" || *f == "-h");
    if help && words.is_empty() {
        print!("{}", service_help(name, &endpoints));
        return Ok(());
    }
    let endpoint = endpoint_name(name, &endpoints, &words).map_err(Failure::new)?;
    let Some(found) = endpoints.iter().find(|e| e.name == endpoint) else {
        let names: Vec<&str> = endpoints.iter().map(|e| e.name.as_str()).collect();
        return Err(Failure::new(format!(
            "Endpoint \"{endpoint}\" not found on service \"{name}\"; it has: {}. See 'micro {name} --help'",
            names.join(", ")
        )));
    };
    if help {
        print!("{}", endpoint_help(name, &words, found));
        return Ok(());
    }
    let fields = found
        .request
        .as_ref()
        .map(|r| r.values.as_slice())
        .unwrap_or_default();
    let json = request(fields, &flags).map_err(|e| {
        Failure::new(format!(
            "{e}. See 'micro {name} {} --help'",
            words.join(" ")
        ))
    })?;
    let call = CallRequest {
        service: name.clone(),
        endpoint: endpoint.clone(),
        json: json.to_string(),
        address: String::new(),
        metadata: Default::default(),
        timeout_ms: u64::try_from(TIMEOUT.as_millis()).unwrap_or(u64::MAX),
        ..Default::default()
    };
    match found
        .metadata
        .get(micro_core::metadata::ENDPOINT_STREAM)
        .map(String::as_str)
    {
        None => call::unary(ctx, call, TIMEOUT, Output::Json).await,
        Some("server") => call::streaming(ctx, call, Output::Json).await,
        Some(_) => Err(Failure::new(format!(
            "{endpoint} reads a stream of requests; call it over the API gateway's WebSocket"
        ))),
    }
}

/// Every endpoint of every version, once.
pub(crate) fn endpoints(versions: &[Service]) -> Vec<micro_core::Endpoint> {
    let mut out: Vec<micro_core::Endpoint> = Vec::new();
    for endpoint in versions.iter().flat_map(|v| &v.endpoints) {
        if !out.iter().any(|e| e.name == endpoint.name) {
            out.push(endpoint.clone());
        }
    }
    out
}

/// Leading words, then the flags (everything from the first `-`).
fn split(args: &[String]) -> (Vec<&str>, Vec<&str>) {
    let at = args
        .iter()
        .position(|a| a.starts_with('-'))
        .unwrap_or(args.len());
    (
        args[..at].iter().map(String::as_str).collect(),
        args[at..].iter().map(String::as_str).collect(),
    )
}

/// The proto service the words default to: the service's only one, else `Title(name)`.
pub(crate) fn default_service(name: &str, endpoints: &[micro_core::Endpoint]) -> String {
    match naming::proto_services(endpoints).as_slice() {
        [only] => (*only).to_owned(),
        _ => title(name),
    }
}

/// The endpoint the words name: none → `Svc.Call`, `w` → `Svc.W`, `a b` → `A.B`.
pub(crate) fn endpoint_name(
    name: &str,
    endpoints: &[micro_core::Endpoint],
    words: &[&str],
) -> Result<String, String> {
    let svc = default_service(name, endpoints);
    match words {
        [] => Ok(format!("{svc}.Call")),
        [method] => Ok(format!("{svc}.{}", title(method))),
        [service, method] => Ok(format!("{}.{}", title(service), title(method))),
        _ => Err(format!(
            "Too many words for an endpoint: {}. Use 'micro {name} [service] method --field=value'",
            words.join(" ")
        )),
    }
}

/// `SayHello` → `say-hello`.
pub(crate) fn kebab(word: &str) -> String {
    let mut out = String::new();
    for (i, c) in word.chars().enumerate() {
        if c.is_uppercase() {
            if i > 0 {
                out.push('-');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn service_help(name: &str, endpoints: &[micro_core::Endpoint]) -> String {
    let svc = default_service(name, endpoints);
    let mut out = format!(
        "micro {name} - call the {name} service\n\nUsage: micro {name} [ENDPOINT] [--field=value ...]\n\nEndpoints:\n"
    );
    let rows: Vec<(String, &str)> = endpoints
        .iter()
        .map(|e| {
            let (service, method) = e.name.split_once('.').unwrap_or(("", &e.name));
            let words = if service == svc {
                kebab(method)
            } else {
                format!("{} {}", kebab(service), kebab(method))
            };
            (words, e.name.as_str())
        })
        .collect();
    let width = rows.iter().map(|(w, _)| w.len()).max().unwrap_or(0);
    for (words, endpoint) in rows {
        let _ = writeln!(out, "  {words:width$}  {endpoint}");
    }
    let _ = writeln!(
        out,
        "\nSee 'micro {name} ENDPOINT --help' for an endpoint's flags."
    );
    out
}

fn endpoint_help(name: &str, words: &[&str], endpoint: &micro_core::Endpoint) -> String {
    let command = format!("micro {name} {}", words.join(" "));
    let mut out = format!(
        "{command} - call {}\n\nUsage: {command} [--field=value ...]\n\nFlags:\n",
        endpoint.name
    );
    let mut rows = Vec::new();
    if let Some(request) = &endpoint.request {
        flag_rows(&request.values, "", &mut rows);
    }
    if rows.is_empty() {
        out.push_str("  (none: the request has no fields)\n");
    }
    let width = rows.iter().map(|(f, _)| f.len()).max().unwrap_or(0);
    for (flag, kind) in rows {
        let _ = writeln!(out, "  {flag:width$}  {kind}");
    }
    out
}

/// One row per leaf field: nested fields as `--a-b`.
pub(crate) fn flag_rows(fields: &[Field], prefix: &str, rows: &mut Vec<(String, String)>) {
    for field in fields {
        let flag = format!("{prefix}{}", field.name.replace('_', "-"));
        if is_message(field) {
            flag_rows(&field.values, &format!("{flag}-"), rows);
        } else {
            let kind = if is_enum(field) {
                let names: Vec<&str> = field.values.iter().map(|v| v.name.as_str()).collect();
                format!("{} (one of {})", field.r#type, names.join(", "))
            } else if field.r#type.starts_with("repeated ") {
                format!("{} (repeat the flag or give a comma list)", field.r#type)
            } else {
                field.r#type.clone()
            };
            rows.push((format!("--{flag}"), kind));
        }
    }
}

fn is_enum(field: &Field) -> bool {
    !field.values.is_empty() && field.values.iter().all(|v| v.r#type == "enum value")
}

/// A message field whose own fields become flags (not repeated, not a map).
fn is_message(field: &Field) -> bool {
    !field.values.is_empty()
        && !is_enum(field)
        && !field.r#type.starts_with("repeated ")
        && !field.r#type.starts_with("map<")
}

/// The JSON request the flags describe, typed by the request's `fields`.
fn request(fields: &[Field], flags: &[&str]) -> Result<Value, String> {
    let mut out = Map::new();
    let mut i = 0;
    while i < flags.len() {
        let arg = flags[i];
        i += 1;
        let Some(flag) = arg.strip_prefix("--") else {
            return Err(format!(
                "Unexpected argument {arg:?}: flags are written --field=value"
            ));
        };
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (flag, None),
        };
        let path = resolve(fields, &name.split('-').collect::<Vec<_>>())
            .ok_or_else(|| format!("Unknown flag --{name}"))?;
        let leaf = path
            .last()
            .copied()
            .ok_or_else(|| format!("Unknown flag --{name}"))?;
        let is_bool = leaf.r#type == "bool" || leaf.r#type == "repeated bool";
        let raw = match inline {
            Some(v) => v.to_owned(),
            None if is_bool => "true".to_owned(),
            None => match flags.get(i) {
                Some(next) if !next.starts_with("--") => {
                    i += 1;
                    (*next).to_owned()
                }
                _ => return Err(format!("Flag --{name} needs a value (--{name}=VALUE)")),
            },
        };
        let value =
            typed(leaf, &raw).map_err(|why| format!("Invalid value for --{name}: {why}"))?;
        set(&mut out, &path, value);
    }
    Ok(Value::Object(out))
}

/// The fields a dashed flag name walks through: `a-b` is field `a_b`, or field `b` of message
/// `a`; the longest field name wins.
fn resolve<'a>(fields: &'a [Field], parts: &[&str]) -> Option<Vec<&'a Field>> {
    for take in (1..=parts.len()).rev() {
        let candidate = parts[..take].join("_");
        let Some(field) = fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(&candidate))
        else {
            continue;
        };
        if take == parts.len() {
            return Some(vec![field]);
        }
        if is_message(field)
            && let Some(mut rest) = resolve(&field.values, &parts[take..])
        {
            rest.insert(0, field);
            return Some(rest);
        }
    }
    None
}

/// Sets the value at `path`, appending to lists so repeated flags add up.
fn set(object: &mut Map<String, Value>, path: &[&Field], value: Value) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    if rest.is_empty() {
        match (object.get_mut(&first.name), value) {
            (Some(Value::Array(items)), Value::Array(more)) => items.extend(more),
            (_, value) => {
                object.insert(first.name.clone(), value);
            }
        }
        return;
    }
    let child = object
        .entry(first.name.clone())
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(child) = child {
        set(child, rest, value);
    }
}

/// `raw` as the JSON the field's type wants, by the rules every door shares
/// ([`micro::text`]): a repeated field's flag adds its comma list's items.
fn typed(field: &Field, raw: &str) -> Result<Value, String> {
    match field.r#type.strip_prefix("repeated ") {
        Some(item) => Scalar::of_type_name(item, is_enum(field))
            .items(raw)
            .map(Value::Array),
        None => Scalar::of_type_name(&field.r#type, is_enum(field)).value(raw),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field(name: &str, r#type: &str, values: Vec<Field>) -> Field {
        Field {
            name: name.to_owned(),
            r#type: r#type.to_owned(),
            values,
        }
    }

    fn schema() -> Vec<Field> {
        vec![
            field("name", "string", vec![]),
            field("count", "int64", vec![]),
            field("loud", "bool", vec![]),
            field("tags", "repeated string", vec![]),
            field("first_name", "string", vec![]),
            field(
                "a",
                "pkg.A",
                vec![field("b", "string", vec![]), field("n", "double", vec![])],
            ),
        ]
    }

    fn endpoint(name: &str) -> micro_core::Endpoint {
        micro_core::Endpoint {
            name: name.to_owned(),
            ..Default::default()
        }
    }

    #[test]
    fn flags_become_typed_fields() {
        let got = request(
            &schema(),
            &[
                "--name=Alice",
                "--count",
                "3",
                "--loud",
                "--tags=a,b",
                "--tags",
                "c",
                "--first-name=Al",
                "--a-b=x",
                "--a-n=1.5",
            ],
        )
        .unwrap();
        assert_eq!(
            got,
            json!({"name": "Alice", "count": 3, "loud": true, "tags": ["a", "b", "c"],
                   "first_name": "Al", "a": {"b": "x", "n": 1.5}})
        );
    }

    #[test]
    fn mistakes_name_the_flag() {
        let err = request(&schema(), &["--nosuchflag=1"]).unwrap_err();
        assert!(err.contains("--nosuchflag"), "{err}");
        let err = request(&schema(), &["--count=many"]).unwrap_err();
        assert!(err.contains("--count") && err.contains("integer"), "{err}");
        let err = request(&schema(), &["--name"]).unwrap_err();
        assert!(err.contains("needs a value"), "{err}");
        let err = request(&schema(), &["stray"]).unwrap_err();
        assert!(err.contains("stray"), "{err}");
    }

    #[test]
    fn words_pick_the_endpoint() {
        let one = [endpoint("Helloworld.Call"), endpoint("Helloworld.Stream")];
        assert_eq!(
            endpoint_name("helloworld", &one, &[]).unwrap(),
            "Helloworld.Call"
        );
        assert_eq!(
            endpoint_name("helloworld", &one, &["ping-pong"]).unwrap(),
            "Helloworld.PingPong"
        );
        assert_eq!(
            endpoint_name("helloworld", &one, &["greeter", "sayHello"]).unwrap(),
            "Greeter.SayHello"
        );
        let two = [endpoint("A.Call"), endpoint("B.Call")];
        assert_eq!(endpoint_name("foo-bar", &two, &[]).unwrap(), "FooBar.Call");
        assert!(endpoint_name("x", &two, &["a", "b", "c"]).is_err());
    }

    #[test]
    fn help_lists_endpoints_and_flags() {
        let eps = [
            endpoint("Helloworld.Call"),
            endpoint("Helloworld.PingPong"),
            endpoint("Other.Get"),
        ];
        let help = service_help("helloworld", &eps);
        assert!(
            help.contains("call") && help.contains("ping-pong") && help.contains("other get"),
            "{help}"
        );
        let mut call = endpoint("Helloworld.Call");
        call.request = Some(field("Request", "pkg.Request", schema()));
        let help = endpoint_help("helloworld", &["call"], &call);
        assert!(
            help.contains("--name") && help.contains("--a-b") && help.contains("--first-name"),
            "{help}"
        );
    }
}
