//! Call forms: an endpoint's request message as labelled inputs, and a posted form back into
//! a JSON request.
//!
//! Each field gets an input named by its dotted path (`address.city`): a number input for
//! numbers, a choice for a bool or an enum, text for strings and bytes (base64), comma-separated
//! text for a repeated scalar, a fieldset for a nested message (to [`FORM_DEPTH`] levels), and
//! JSON text for a repeated message or a map. A raw JSON box takes the whole request instead, or
//! besides: the fields fill in over it. The posted fields are typed by the gateway's own rules
//! for query parameters ([`crate::gateway::request`]) — one set of rules for bad numbers and
//! repeated fields on every door.

use std::{collections::HashMap, fmt::Write};

use micro_core::{Error, limits};
use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};
use serde_json::Value;

use super::html::escape;
use crate::gateway::request::{BodyInto, assemble};

const ID: &str = "micro.web";

/// How deep nested messages become fieldsets; deeper ones take JSON.
const FORM_DEPTH: usize = 4;
/// The most fields a form draws (a message with more takes the rest as raw JSON).
const MAX_INPUTS: usize = 200;

/// The name of the raw JSON box.
pub(crate) const RAW: &str = "_json";

/// The inputs for `message`, filled with `values` (a field's dotted path → its posted text).
pub(crate) fn inputs(message: &MessageDescriptor, values: &HashMap<String, String>) -> String {
    let mut out = String::new();
    let mut drawn = 0;
    fields(&mut out, message, "", 0, values, &mut drawn);
    out
}

fn fields(
    out: &mut String,
    message: &MessageDescriptor,
    prefix: &str,
    depth: usize,
    values: &HashMap<String, String>,
    drawn: &mut usize,
) {
    for field in message.fields() {
        if *drawn >= MAX_INPUTS {
            out.push_str("<p class=\"note\">More fields: use the JSON box.</p>");
            return;
        }
        *drawn += 1;
        let path = format!("{prefix}{}", field.name());
        match field.kind() {
            Kind::Message(nested) if !field.is_list() && !field.is_map() && depth < FORM_DEPTH => {
                let _ = write!(
                    out,
                    "<fieldset><legend>{} <span class=\"note\">{}</span></legend>",
                    escape(field.name()),
                    escape(nested.full_name())
                );
                fields(out, &nested, &format!("{path}."), depth + 1, values, drawn);
                out.push_str("</fieldset>");
            }
            _ => input(out, &field, &path, values.get(&path).map(String::as_str)),
        }
    }
}

/// One labelled input for `field` at `path`.
fn input(out: &mut String, field: &FieldDescriptor, path: &str, value: Option<&str>) {
    let id = format!("f-{path}");
    let value = value.unwrap_or_default();
    let (type_name, hint) = describe(field);
    let _ = write!(
        out,
        "<label for=\"{0}\">{1} <span class=\"note\">{2}{3}</span></label>",
        escape(&id),
        escape(field.name()),
        escape(&type_name),
        escape(hint)
    );
    let enum_values = match field.kind() {
        Kind::Enum(e) if !field.is_list() => {
            Some(e.values().map(|v| v.name().to_owned()).collect())
        }
        Kind::Bool if !field.is_list() => Some(vec!["true".to_owned(), "false".to_owned()]),
        _ => None,
    };
    if let Some(choices) = enum_values {
        let _ = write!(
            out,
            "<select id=\"{0}\" name=\"{0}\"><option value=\"\">(default)</option>",
            escape(&id)
        );
        for choice in choices {
            let selected = if choice == value { " selected" } else { "" };
            let _ = write!(out, "<option{selected}>{}</option>", escape(&choice));
        }
        out.push_str("</select>");
        return;
    }
    let kind = match field.kind() {
        _ if field.is_list() || field.is_map() => "text",
        Kind::Double | Kind::Float => "text",
        Kind::Int32
        | Kind::Int64
        | Kind::Uint32
        | Kind::Uint64
        | Kind::Sint32
        | Kind::Sint64
        | Kind::Fixed32
        | Kind::Fixed64
        | Kind::Sfixed32
        | Kind::Sfixed64 => "number",
        _ => "text",
    };
    let _ = write!(
        out,
        "<input id=\"{0}\" name=\"{0}\" type=\"{kind}\" value=\"{1}\">",
        escape(&id),
        escape(value)
    );
}

/// A field's type as the form names it, and how to write it.
fn describe(field: &FieldDescriptor) -> (String, &'static str) {
    let name = match field.kind() {
        Kind::Message(m) => m.full_name().to_owned(),
        Kind::Enum(e) => e.full_name().to_owned(),
        kind => format!("{kind:?}").to_lowercase(),
    };
    let hint = if field.is_map() {
        " (map, as JSON)"
    } else if field.is_list() && matches!(field.kind(), Kind::Message(_)) {
        " (list, as a JSON array)"
    } else if field.is_list() {
        " (list, comma-separated)"
    } else if matches!(field.kind(), Kind::Message(_)) {
        " (as JSON)"
    } else if matches!(field.kind(), Kind::Bytes) {
        " (base64)"
    } else {
        ""
    };
    let name = if field.is_list() && !field.is_map() {
        format!("repeated {name}")
    } else {
        name
    };
    (name, hint)
}

/// A posted `application/x-www-form-urlencoded` body as its fields, bounded in number.
pub(crate) fn posted(body: &[u8]) -> Result<Vec<(String, String)>, Error> {
    let mut fields = Vec::new();
    for (k, v) in form_urlencoded::parse(body) {
        if fields.len() >= limits::MAX_QUERY_PARAMS {
            return Err(Error::bad_request(
                ID,
                format!("the form has more than {} fields", limits::MAX_QUERY_PARAMS),
            ));
        }
        fields.push((k.into_owned(), v.into_owned()));
    }
    Ok(fields)
}

/// The value of field `name` in a posted form; empty when it is not there (a form posts an
/// empty input as empty too).
pub(crate) fn field<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

/// The posted inputs by dotted path (`f-` taken off), non-empty ones only.
pub(crate) fn values(fields: &[(String, String)]) -> HashMap<String, String> {
    fields
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("f-")?.to_owned(), v.clone())))
        .filter(|(_, v)| !v.trim().is_empty())
        .collect()
}

/// The JSON request a posted call form makes for `input`: the JSON box, with each filled-in
/// field set over it, typed by the gateway's rules (a 400 naming the field when it does not
/// parse).
pub(crate) fn request(
    input: &MessageDescriptor,
    fields: &[(String, String)],
) -> Result<Value, Error> {
    let raw = field(fields, RAW);
    let mut filled: Vec<(String, String)> = values(fields).into_iter().collect();
    // In the form's order, so a later duplicate wins as on the gateway.
    filled.sort_by_key(|(k, _)| {
        fields
            .iter()
            .position(|(f, _)| f.strip_prefix("f-") == Some(k))
    });
    assemble(input, raw.as_bytes(), BodyInto::Whole, &[], &filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> MessageDescriptor {
        let pool = prost_reflect::DescriptorPool::decode(micro_proto::FILE_DESCRIPTOR_SET).unwrap();
        pool.get_message_by_name("micro.store.ReadRequest").unwrap()
    }

    #[test]
    fn a_form_types_its_fields_by_the_message() {
        let input = message();
        let html = inputs(&input, &HashMap::new());
        assert!(html.contains("<label for=\"f-key\">key"), "{html}");
        assert!(html.contains("name=\"f-limit\" type=\"number\""), "{html}");
        let fields = vec![
            ("_csrf".to_owned(), "x".to_owned()),
            (RAW.to_owned(), r#"{"key":"a","table":"t"}"#.to_owned()),
            ("f-key".to_owned(), "b".to_owned()),
            ("f-limit".to_owned(), "5".to_owned()),
            ("f-prefix".to_owned(), String::new()),
        ];
        let request = request(&input, &fields).unwrap();
        assert_eq!(
            request,
            serde_json::json!({"key": "b", "table": "t", "limit": 5})
        );
        let bad = vec![("f-limit".to_owned(), "lots".to_owned())];
        let e = super::request(&input, &bad).unwrap_err();
        assert_eq!(e.code, 400);
        assert!(e.detail.contains("limit"), "{e:?}");
    }
}
