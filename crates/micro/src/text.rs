//! One set of rules for turning text into a request field's JSON value, for every door that
//! takes fields as text: the CLI's dynamic commands (`--count=3`) and the gateway's query
//! parameters and path bindings (`?count=3`).
//!
//! - Numbers and bools must parse as the field's type; anything else is the caller's mistake,
//!   said with the type expected (a 400 at the gateway), never passed on for the service to
//!   refuse.
//! - A repeated field takes every occurrence, and each occurrence may be a comma list
//!   (`--tags=a,b --tags c`, `?tags=a,b&tags=c`: three items), as Micro's CLI reads repeated
//!   flags. An item with a comma in it goes in a JSON request instead.
//! - A field of a message type takes JSON text; the well-known types that are not objects in
//!   JSON take their own text (`Timestamp`, `Duration`, `FieldMask`, the wrappers).

use prost_reflect::Kind;
use serde_json::Value;

/// What kind of value a field holds, as far as reading text goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scalar {
    /// `string`.
    String,
    /// `bytes` (base64 text in JSON).
    Bytes,
    /// `bool`.
    Bool,
    /// The signed integers.
    Signed,
    /// The unsigned integers.
    Unsigned,
    /// `double` and `float`.
    Float,
    /// An enum: its value's name (or number).
    Enum,
    /// A message (or a type this does not know): JSON text.
    Message,
}

impl Scalar {
    /// The kind of a field of proto type `name` (`int64`, `string`, `pkg.Msg`); `is_enum` for an
    /// enum type, whose name says nothing.
    pub fn of_type_name(name: &str, is_enum: bool) -> Self {
        match name {
            "string" => Self::String,
            "bytes" => Self::Bytes,
            "bool" => Self::Bool,
            "int32" | "sint32" | "sfixed32" | "int64" | "sint64" | "sfixed64" => Self::Signed,
            "uint32" | "fixed32" | "uint64" | "fixed64" => Self::Unsigned,
            "double" | "float" => Self::Float,
            _ if is_enum => Self::Enum,
            _ => Self::well_known(name).unwrap_or(Self::Message),
        }
    }

    /// The well-known types whose JSON is not an object: the wrappers are their scalar, and a
    /// `Timestamp` (`2024-01-01T00:00:00Z`), `Duration` (`1.5s`) or `FieldMask` (`a,b.c`) is
    /// text.
    fn well_known(full_name: &str) -> Option<Self> {
        Some(match full_name.strip_prefix("google.protobuf.")? {
            "StringValue" | "Timestamp" | "Duration" | "FieldMask" => Self::String,
            "BytesValue" => Self::Bytes,
            "BoolValue" => Self::Bool,
            "Int32Value" | "Int64Value" => Self::Signed,
            "UInt32Value" | "UInt64Value" => Self::Unsigned,
            "DoubleValue" | "FloatValue" => Self::Float,
            _ => return None,
        })
    }

    /// The kind of a field described by `kind`.
    pub fn of_kind(kind: &Kind) -> Self {
        match kind {
            Kind::String => Self::String,
            Kind::Bytes => Self::Bytes,
            Kind::Bool => Self::Bool,
            Kind::Int32
            | Kind::Sint32
            | Kind::Sfixed32
            | Kind::Int64
            | Kind::Sint64
            | Kind::Sfixed64 => Self::Signed,
            Kind::Uint32 | Kind::Fixed32 | Kind::Uint64 | Kind::Fixed64 => Self::Unsigned,
            Kind::Double | Kind::Float => Self::Float,
            Kind::Enum(_) => Self::Enum,
            Kind::Message(m) => Self::well_known(m.full_name()).unwrap_or(Self::Message),
        }
    }

    /// `raw` as this kind's JSON value, or what was expected instead.
    pub fn value(self, raw: &str) -> Result<Value, String> {
        let wrong = |what: &str| format!("expected {what}, got {raw:?}");
        Ok(match self {
            Self::String | Self::Bytes | Self::Enum => Value::String(raw.to_owned()),
            Self::Bool => Value::Bool(raw.parse().map_err(|_| wrong("true or false"))?),
            Self::Signed => Value::from(raw.parse::<i64>().map_err(|_| wrong("an integer"))?),
            Self::Unsigned => Value::from(
                raw.parse::<u64>()
                    .map_err(|_| wrong("a non-negative integer"))?,
            ),
            Self::Float => raw
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
                .ok_or_else(|| wrong("a finite number"))?,
            Self::Message => serde_json::from_str(raw).map_err(|_| wrong("JSON"))?,
        })
    }

    /// The items one occurrence of `raw` gives a repeated field of this kind: a comma list,
    /// each part trimmed; a message's JSON text is one item.
    pub fn items(self, raw: &str) -> Result<Vec<Value>, String> {
        match self {
            Self::Message => Ok(vec![self.value(raw)?]),
            _ => raw.split(',').map(|part| self.value(part.trim())).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_and_bools_parse_or_say_what_was_expected() {
        assert_eq!(Scalar::Signed.value("-3"), Ok(json!(-3)));
        assert_eq!(Scalar::Unsigned.value("3"), Ok(json!(3)));
        assert_eq!(Scalar::Float.value("1.5"), Ok(json!(1.5)));
        assert_eq!(Scalar::Bool.value("true"), Ok(json!(true)));
        for (scalar, raw, expected) in [
            (Scalar::Signed, "x", "an integer"),
            (Scalar::Unsigned, "-1", "a non-negative integer"),
            (Scalar::Float, "NaN", "a finite number"),
            (Scalar::Bool, "yes", "true or false"),
            (Scalar::Message, "{", "JSON"),
        ] {
            let why = scalar.value(raw).unwrap_err();
            assert!(why.contains(expected), "{scalar:?} {raw:?}: {why}");
        }
    }

    #[test]
    fn comma_lists_fill_repeated_fields() {
        assert_eq!(
            Scalar::Signed.items("1, 2,3"),
            Ok(vec![json!(1), json!(2), json!(3)])
        );
        assert_eq!(Scalar::Enum.items("A,B"), Ok(vec![json!("A"), json!("B")]));
        assert_eq!(
            Scalar::String.items("a, b"),
            Ok(vec![json!("a"), json!("b")])
        );
        assert_eq!(
            Scalar::Message.items(r#"{"a":1,"b":2}"#),
            Ok(vec![json!({"a":1,"b":2})])
        );
        assert!(Scalar::Signed.items("1,x").is_err());
    }

    #[test]
    fn type_names_and_kinds_agree() {
        assert_eq!(Scalar::of_type_name("sfixed64", false), Scalar::Signed);
        assert_eq!(Scalar::of_type_name("Colour", true), Scalar::Enum);
        assert_eq!(Scalar::of_type_name("pkg.Msg", false), Scalar::Message);
        assert_eq!(Scalar::of_kind(&Kind::Fixed32), Scalar::Unsigned);
        assert_eq!(
            Scalar::of_type_name("google.protobuf.Timestamp", false),
            Scalar::String
        );
        assert_eq!(
            Scalar::of_type_name("google.protobuf.Int64Value", false),
            Scalar::Signed
        );
        assert_eq!(
            Scalar::of_type_name("google.protobuf.Struct", false),
            Scalar::Message
        );
    }
}
