//! The request message a gateway call sends, as pure logic: the JSON body merged with the query
//! parameters, each parameter typed by the endpoint's schema.
//!
//! `a=1&b[c]=x` → `{"a":1,"b":{"c":"x"}}`. Each parameter is typed by its field by the rules
//! every door shares ([`micro::text`], the CLI's flags too): a number or bool that does not
//! parse is a 400 naming the parameter; a repeated field collects every occurrence and comma
//! list; for any other field the last occurrence wins. Nothing here can panic on client input:
//! every mistake is an [`Error`] with status 400.

use std::{borrow::Cow, time::Duration};

use micro::text::Scalar;
use micro_core::{Error, limits};
use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};
use serde_json::{Map, Value};

const ID: &str = "micro.api";

/// Where the HTTP body goes in the request message.
#[derive(Debug, Clone, Copy)]
pub(crate) enum BodyInto<'a> {
    /// The body is the request (a JSON object).
    Whole,
    /// The body is the value of this (dotted) field.
    Field(&'a str),
    /// The endpoint takes no body.
    Nothing,
}

/// The JSON request's text: [`assemble`]d, or, when the body is the whole request and
/// nothing is bound or in the query (most calls), the body itself, checked to be an object.
pub(crate) fn json_text<'a>(
    input: &MessageDescriptor,
    body: &'a [u8],
    into: BodyInto<'_>,
    bindings: &[(String, String)],
    query: &[(String, String)],
) -> Result<Cow<'a, str>, Error> {
    if !matches!(into, BodyInto::Whole) || !bindings.is_empty() || !query.is_empty() {
        return Ok(Cow::Owned(
            assemble(input, body, into, bindings, query)?.to_string(),
        ));
    }
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        None => Ok(Cow::Borrowed("{}")),
        Some(b'{') => std::str::from_utf8(body)
            .map(Cow::Borrowed)
            .map_err(|e| Error::bad_request(ID, format!("malformed JSON in request body: {e}"))),
        // Whatever else it is, it is not an object: said as `assemble` says it.
        Some(_) => Ok(Cow::Owned(
            assemble(input, body, into, bindings, query)?.to_string(),
        )),
    }
}

/// Builds the JSON request from the body (placed as `into` says), fields bound by a path
/// template (`(dotted field, raw value)`), and query parameters; later sources win.
pub(crate) fn assemble(
    input: &MessageDescriptor,
    body: &[u8],
    into: BodyInto<'_>,
    bindings: &[(String, String)],
    query: &[(String, String)],
) -> Result<Value, Error> {
    let empty = body.iter().all(u8::is_ascii_whitespace);
    let parse = || {
        serde_json::from_slice::<Value>(body)
            .map_err(|e| Error::bad_request(ID, format!("malformed JSON in request body: {e}")))
    };
    let mut request = match into {
        _ if empty => Map::new(),
        BodyInto::Whole => match parse()? {
            Value::Object(map) => map,
            _ => {
                return Err(Error::bad_request(
                    ID,
                    "the request body must be a JSON object",
                ));
            }
        },
        BodyInto::Field(field) => {
            limits::path_parts(ID, "body field", field.split('.').count())?;
            let mut map = Map::new();
            let mut slot = &mut map;
            let parts: Vec<&str> = field.split('.').collect();
            for part in &parts[..parts.len() - 1] {
                let child = slot
                    .entry((*part).to_owned())
                    .or_insert_with(|| Value::Object(Map::new()));
                let Value::Object(child) = child else {
                    unreachable!("just inserted an object")
                };
                slot = child;
            }
            slot.insert(parts[parts.len() - 1].to_owned(), parse()?);
            map
        }
        BodyInto::Nothing => {
            return Err(Error::bad_request(
                ID,
                "this endpoint takes no request body; send its fields in the path and query string",
            ));
        }
    };
    for (field, raw) in bindings {
        limits::path_parts(ID, "bound field", field.split('.').count())?;
        let path: Vec<&str> = field.split('.').collect();
        insert(&mut request, Some(input), &path, raw)
            .map_err(|why| Error::bad_request(ID, format!("path field {field:?}: {why}")))?;
    }
    if query.len() > limits::MAX_QUERY_PARAMS {
        return Err(Error::bad_request(
            ID,
            format!(
                "the query string has {} parameters; the limit is {}",
                query.len(),
                limits::MAX_QUERY_PARAMS
            ),
        ));
    }
    for (key, raw) in query {
        // Counted before the key is split, so a key nested a million times costs nothing.
        let parts = 1 + key.bytes().filter(|b| *b == b'.' || *b == b'[').count();
        if parts > limits::MAX_PATH_PARTS {
            return Err(Error::bad_request(
                ID,
                format!(
                    "query parameter {:?}... nests {parts} levels; the limit is {}",
                    key.chars().take(32).collect::<String>(),
                    limits::MAX_PATH_PARTS
                ),
            ));
        }
        let path = key_path(key).ok_or_else(|| {
            Error::bad_request(
                ID,
                format!("query parameter {key:?} is not a field name; use a, a.b or a[b]"),
            )
        })?;
        insert(&mut request, Some(input), &path, raw)
            .map_err(|why| Error::bad_request(ID, format!("query parameter {key:?}: {why}")))?;
    }
    Ok(Value::Object(request))
}

/// `a[b][c]` and `a.b.c` → `["a", "b", "c"]`; `None` for an empty part or unbalanced brackets.
fn key_path(key: &str) -> Option<Vec<&str>> {
    let (head, mut rest) = match key.find('[') {
        Some(i) => key.split_at(i),
        None => (key, ""),
    };
    let mut path: Vec<&str> = head.split('.').collect();
    while !rest.is_empty() {
        let inner = rest.strip_prefix('[')?;
        let end = inner.find(']')?;
        path.push(&inner[..end]);
        rest = &inner[end + 1..];
    }
    (!path.iter().any(|p| p.is_empty() || p.contains(['[', ']']))).then_some(path)
}

/// Sets `path` in `object` to `raw`, typed by the field it names in `message` (when known) by
/// the rules every door shares ([`micro::text`]); what was expected instead when it does not
/// parse.
fn insert(
    object: &mut Map<String, Value>,
    message: Option<&MessageDescriptor>,
    path: &[&str],
    raw: &str,
) -> Result<(), String> {
    let Some((first, rest)) = path.split_first() else {
        return Ok(());
    };
    let field = message.and_then(|m| field_named(m, first));
    if rest.is_empty() {
        match &field {
            Some(f) if f.is_list() => {
                let more = Scalar::of_kind(&f.kind()).items(raw)?;
                match object.get_mut(*first) {
                    Some(Value::Array(items)) => items.extend(more),
                    _ => {
                        object.insert((*first).to_owned(), Value::Array(more));
                    }
                }
            }
            // A map named without a key takes JSON, as a message does.
            Some(f) if f.is_map() => {
                object.insert((*first).to_owned(), Scalar::Message.value(raw)?);
            }
            Some(f) => {
                object.insert((*first).to_owned(), Scalar::of_kind(&f.kind()).value(raw)?);
            }
            // Not a field of the request: left as text, for the transcoder to name.
            None => {
                object.insert((*first).to_owned(), Value::String(raw.to_owned()));
            }
        }
        return Ok(());
    }
    // A nested message, or a map whose key is the next part.
    let nested = field.as_ref().and_then(|f| match f.kind() {
        Kind::Message(m) if f.is_map() => Some(MapOrMessage::Map(m)),
        Kind::Message(m) if !f.is_list() => Some(MapOrMessage::Message(m)),
        _ => None,
    });
    let child = object
        .entry((*first).to_owned())
        .and_modify(|v| {
            if !v.is_object() {
                *v = Value::Object(Map::new());
            }
        })
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(child) = child else {
        return Ok(());
    };
    match nested {
        Some(MapOrMessage::Message(m)) => insert(child, Some(&m), rest, raw),
        Some(MapOrMessage::Map(entry)) if rest.len() == 1 => {
            let value = Scalar::of_kind(&entry.map_entry_value_field().kind()).value(raw)?;
            child.insert(rest[0].to_owned(), value);
            Ok(())
        }
        _ => insert(child, None, rest, raw),
    }
}

enum MapOrMessage {
    Map(MessageDescriptor),
    Message(MessageDescriptor),
}

fn field_named(message: &MessageDescriptor, name: &str) -> Option<FieldDescriptor> {
    message
        .get_field_by_name(name)
        .or_else(|| message.get_field_by_json_name(name))
}

/// The longest `Timeout` a caller may ask for.
const MAX_TIMEOUT: Duration = Duration::from_secs(3600);

/// The caller's `Timeout` header (`200ms`, `5s`, `1m`): the call's deadline, which the
/// services it reaches pass on. Absent: the proxy's default.
pub(crate) fn timeout(headers: &http::HeaderMap) -> Result<Option<Duration>, Error> {
    let Some(value) = headers.get("timeout") else {
        return Ok(None);
    };
    let bad = || {
        Error::bad_request(
            ID,
            "the Timeout header must be a duration between 1ms and 1h, such as 200ms or 5s",
        )
    };
    let text = value.to_str().map_err(|_| bad())?;
    if text.len() > 32 {
        return Err(bad());
    }
    let timeout = humantime::parse_duration(text.trim()).map_err(|_| bad())?;
    if timeout < Duration::from_millis(1) || timeout > MAX_TIMEOUT {
        return Err(bad());
    }
    Ok(Some(timeout))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whole_body_alone_is_the_request_as_sent() {
        fn text<'a>(body: &'a [u8], query: &[(String, String)]) -> Result<Cow<'a, str>, Error> {
            json_text(&input(), body, BodyInto::Whole, &[], query)
        }
        let body = br#" {"service":"a"} "#;
        assert!(matches!(text(body, &[]).unwrap(), Cow::Borrowed(t) if t.as_bytes() == body));
        assert_eq!(text(b" \n", &[]).unwrap(), "{}");
        for (bad, says) in [
            (&b"[1]"[..], "must be a JSON object"),
            (b"\"a\"", "must be a JSON object"),
            (b"{\xff}", "malformed JSON"),
            (b"nope", "malformed JSON"),
        ] {
            let e = text(bad, &[]).unwrap_err();
            assert_eq!(e.code, 400);
            assert!(e.detail.contains(says), "{bad:?}: {}", e.detail);
        }
        // With anything else to merge, it is assembled.
        let query = [("endpoint".to_owned(), "E".to_owned())];
        let assembled: serde_json::Value =
            serde_json::from_str(&text(body, &query).unwrap()).unwrap();
        assert_eq!(
            assembled,
            serde_json::json!({"service": "a", "endpoint": "E"})
        );
    }

    #[test]
    fn timeouts_are_durations_within_bounds() {
        let header = |v: &str| {
            let mut h = http::HeaderMap::new();
            h.insert("timeout", v.parse().unwrap());
            timeout(&h)
        };
        assert_eq!(timeout(&http::HeaderMap::new()).unwrap(), None);
        assert_eq!(header("200ms").unwrap(), Some(Duration::from_millis(200)));
        assert_eq!(header("5s").unwrap(), Some(Duration::from_secs(5)));
        for bad in [
            "",
            "soon",
            "0s",
            "2h",
            "-1s",
            "999999999999999999999s",
            &"1".repeat(40),
        ] {
            let e = header(bad).unwrap_err();
            assert_eq!(e.code, 400, "{bad:?}");
        }
    }
    use proptest::prelude::*;
    use serde_json::json;

    fn build(
        input: &MessageDescriptor,
        body: &[u8],
        query: &[(String, String)],
    ) -> Result<Value, Error> {
        assemble(input, body, BodyInto::Whole, &[], query)
    }

    #[test]
    fn rule_bindings_and_body_fields_fill_the_request() {
        let built = assemble(
            &input(),
            br#"{"k":"v"}"#,
            BodyInto::Field("metadata"),
            &[
                ("service".to_owned(), "hw".to_owned()),
                ("timeout_ms".to_owned(), "9".to_owned()),
            ],
            &[],
        )
        .unwrap();
        assert_eq!(
            built,
            json!({"metadata": {"k": "v"}, "service": "hw", "timeout_ms": 9})
        );
        let err = assemble(&input(), b"{}", BodyInto::Nothing, &[], &[]).unwrap_err();
        assert!(
            err.detail.contains("takes no request body"),
            "{}",
            err.detail
        );
    }

    fn input() -> MessageDescriptor {
        let pool = prost_reflect::DescriptorPool::decode(micro_proto::FILE_DESCRIPTOR_SET)
            .expect("our descriptors");
        pool.get_message_by_name("micro.proxy.CallRequest")
            .expect("CallRequest")
    }

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn query_parameters_are_typed_by_the_schema() {
        let built = build(
            &input(),
            b"",
            &q(&[("service", "x"), ("timeout_ms", "250")]),
        )
        .unwrap();
        assert_eq!(built, json!({"service": "x", "timeout_ms": 250}));
    }

    #[test]
    fn a_value_that_does_not_parse_is_a_400_naming_the_parameter() {
        let err = build(&input(), b"", &q(&[("timeout_ms", "soon")])).unwrap_err();
        assert_eq!(err.code, 400);
        assert!(
            err.detail.contains("\"timeout_ms\"") && err.detail.contains("integer"),
            "{}",
            err.detail
        );
    }

    #[test]
    fn brackets_and_dots_nest() {
        let built = build(
            &input(),
            b"",
            &q(&[
                ("a", "1"),
                ("b[c]", "x"),
                ("d.e", "y"),
                ("metadata[k]", "v"),
            ]),
        )
        .unwrap();
        assert_eq!(
            built,
            json!({"a": "1", "b": {"c": "x"}, "d": {"e": "y"}, "metadata": {"k": "v"}})
        );
    }

    #[test]
    fn the_body_merges_with_the_query_and_the_last_duplicate_wins() {
        let built = build(
            &input(),
            br#"{"service":"a","json":"{}"}"#,
            &q(&[("service", "b"), ("service", "c")]),
        )
        .unwrap();
        assert_eq!(built, json!({"service": "c", "json": "{}"}));
    }

    #[test]
    fn client_mistakes_are_400s_that_say_what_is_wrong() {
        let err = build(&input(), b"{not json", &[]).unwrap_err();
        assert_eq!(err.code, 400);
        assert!(err.detail.contains("malformed JSON"), "{}", err.detail);
        let err = build(&input(), b"[1]", &[]).unwrap_err();
        assert!(err.detail.contains("JSON object"), "{}", err.detail);
        let err = build(&input(), b"", &q(&[("a[", "1")])).unwrap_err();
        assert_eq!(err.code, 400);
    }

    #[test]
    fn deeply_nested_query_keys_are_refused_before_they_are_split() {
        for key in [
            format!("b{}", "[c]".repeat(5000)),
            format!("b{}", ".c".repeat(5000)),
        ] {
            let err = build(&input(), b"", &[(key, "1".to_owned())]).unwrap_err();
            assert_eq!(err.code, 400);
            assert!(err.detail.contains("limit is 32"), "{}", err.detail);
        }
        let ok = format!("b{}", "[c]".repeat(30));
        assert!(build(&input(), b"", &[(ok, "1".to_owned())]).is_ok());
        let many: Vec<(String, String)> = (0..1000)
            .map(|i| (format!("k{i}"), "v".to_owned()))
            .collect();
        assert_eq!(build(&input(), b"", &many).unwrap_err().code, 400);
    }

    proptest! {
        #[test]
        fn any_body_and_query_is_a_request_or_a_400(
            body in proptest::collection::vec(any::<u8>(), 0..64),
            query in proptest::collection::vec(("[a-z_.\\[\\]]{0,12}", ".{0,8}"), 0..6),
        ) {
            match build(&input(), &body, &query) {
                Ok(value) => prop_assert!(value.is_object()),
                Err(e) => prop_assert_eq!(e.code, 400),
            }
        }

        #[test]
        fn any_json_object_body_is_accepted(
            keys in proptest::collection::vec("[a-z]{1,6}", 0..5),
        ) {
            let object: Map<String, Value> =
                keys.into_iter().map(|k| (k, Value::from(1))).collect();
            let body = Value::Object(object.clone()).to_string();
            prop_assert_eq!(build(&input(), body.as_bytes(), &[]).unwrap(), Value::Object(object));
        }
    }
}
