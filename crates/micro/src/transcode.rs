//! JSON ↔ protobuf with a message's descriptor.
//!
//! JSON lives only at the edges (CLI, gateway, dashboard). Requests are parsed with the proto3
//! JSON mapping (both `json_name` and the proto field name are accepted); responses are printed
//! with proto field names and every field shown, defaults included, so a client sees the full
//! shape of the answer. A request that does not fit the schema is a 400 that names the field.

use bytes::Bytes;
use micro_core::Error;
use prost::Message;
use prost_reflect::{DeserializeOptions, DynamicMessage, MessageDescriptor, SerializeOptions};

const ID: &str = "micro.transcode";

/// Encodes a JSON request as protobuf. Empty input means `{}`.
pub fn json_to_protobuf(message: &MessageDescriptor, json: &str) -> Result<Bytes, Error> {
    let json = if json.trim().is_empty() { "{}" } else { json };
    let mut de = serde_json::Deserializer::from_str(json);
    let mut track = serde_path_to_error::Track::new();
    let options = DeserializeOptions::new();
    let parsed = DynamicMessage::deserialize_with_options(
        message.clone(),
        serde_path_to_error::Deserializer::new(&mut de, &mut track),
        &options,
    )
    .and_then(|m| de.end().map(|()| m));
    match parsed {
        Ok(msg) => Ok(Bytes::from(msg.encode_to_vec())),
        Err(err) if err.is_syntax() || err.is_eof() => Err(Error::bad_request(
            ID,
            format!("malformed JSON in request: {err}"),
        )),
        Err(err) => {
            let path = track.path().to_string();
            let detail = if path.is_empty() || path == "." {
                format!("invalid request for {}: {err}", message.name())
            } else {
                format!(
                    "invalid value for field \"{path}\" of {}: {err}",
                    message.name()
                )
            };
            Err(Error::bad_request(ID, detail))
        }
    }
}

/// Decodes a protobuf message and renders it as JSON.
pub fn protobuf_to_json(
    message: &MessageDescriptor,
    bytes: &[u8],
) -> Result<serde_json::Value, Error> {
    decode(message, bytes)?
        .serialize_with_options(serde_json::value::Serializer, &serialize_options())
        .map_err(|e| unrenderable(message, e))
}

/// Decodes a protobuf message and renders it as JSON text, the same text
/// [`protobuf_to_json`]'s value prints as, without building the value first.
pub fn protobuf_to_json_text(message: &MessageDescriptor, bytes: &[u8]) -> Result<Bytes, Error> {
    let msg = decode(message, bytes)?;
    let mut text = Vec::with_capacity(bytes.len() * 2 + 16);
    msg.serialize_with_options(
        &mut serde_json::Serializer::new(&mut text),
        &serialize_options(),
    )
    .map_err(|e| unrenderable(message, e))?;
    Ok(Bytes::from(text))
}

fn decode(message: &MessageDescriptor, bytes: &[u8]) -> Result<DynamicMessage, Error> {
    DynamicMessage::decode(message.clone(), bytes).map_err(|e| {
        Error::internal(
            ID,
            format!(
                "the service answered bytes that are not a {}: {e}",
                message.full_name()
            ),
        )
    })
}

/// Proto field names, every field shown, 64-bit integers as numbers.
fn serialize_options() -> SerializeOptions {
    SerializeOptions::new()
        .use_proto_field_name(true)
        .skip_default_fields(false)
        .stringify_64_bit_integers(false)
}

fn unrenderable(message: &MessageDescriptor, e: impl std::fmt::Display) -> Error {
    Error::internal(
        ID,
        format!("failed to render {} as JSON: {e}", message.full_name()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_reflect::DescriptorPool;

    fn request() -> MessageDescriptor {
        DescriptorPool::decode(micro_proto::FILE_DESCRIPTOR_SET)
            .unwrap()
            .get_message_by_name("micro.registry.RegisterRequest")
            .unwrap()
    }

    #[test]
    fn the_text_is_the_values_text() {
        let desc = request();
        let json = r#"{"service":{"name":"a","version":"1","nodes":[{"id":"n","address":"x:1","metadata":{"k":"v"}}]},"ttl_ms":30}"#;
        let bytes = json_to_protobuf(&desc, json).unwrap();
        let value = protobuf_to_json(&desc, &bytes).unwrap();
        let text = protobuf_to_json_text(&desc, &bytes).unwrap();
        assert_eq!(text, value.to_string().into_bytes());
        assert!(protobuf_to_json_text(&desc, b"\xff\xff").is_err());
    }

    #[test]
    fn round_trips_nested_json() {
        let desc = request();
        let bytes = json_to_protobuf(
            &desc,
            r#"{"service":{"name":"hw","nodes":[{"id":"a"}]},"ttl_ms":5}"#,
        )
        .unwrap();
        let json = protobuf_to_json(&desc, &bytes).unwrap();
        assert_eq!(json["service"]["name"], "hw");
        assert_eq!(json["service"]["nodes"][0]["id"], "a");
        assert_eq!(json["ttl_ms"], 5);
        // Defaults are shown.
        assert_eq!(json["service"]["version"], "");
    }

    #[test]
    fn empty_body_is_an_empty_message() {
        assert!(json_to_protobuf(&request(), "  ").unwrap().is_empty());
    }

    #[test]
    fn malformed_json_says_so() {
        let err = json_to_protobuf(&request(), "{\"service\":").unwrap_err();
        assert_eq!(err.code, 400);
        assert!(err.detail.starts_with("malformed JSON"), "{}", err.detail);
        let err = json_to_protobuf(&request(), "{} trailing").unwrap_err();
        assert!(err.detail.starts_with("malformed JSON"), "{}", err.detail);
    }

    #[test]
    fn wrong_type_names_the_field() {
        let err = json_to_protobuf(&request(), r#"{"service":{"name":42}}"#).unwrap_err();
        assert_eq!(err.code, 400);
        assert!(err.detail.contains("service.name"), "{}", err.detail);
        let err = json_to_protobuf(&request(), r#"{"nosuch":1}"#).unwrap_err();
        assert!(err.detail.contains("nosuch"), "{}", err.detail);
    }
}
