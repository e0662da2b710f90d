//! Endpoint schemas from protobuf descriptors.
//!
//! A service registers each method as an [`Endpoint`] named `Service.Method` with its request and
//! response described as recursive [`Value`]s, so the CLI, the gateway and other tools can show
//! and build requests without the `.proto` file. Endpoint metadata records the fully-qualified
//! gRPC service and the streaming kind so a caller can build the exact gRPC path.

use micro_core::{
    Endpoint, Value,
    metadata::{ENDPOINT_GRPC_SERVICE, ENDPOINT_HTTP, ENDPOINT_IDEMPOTENT, ENDPOINT_STREAM},
};
use prost_reflect::{
    DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, MethodDescriptor, ServiceDescriptor,
    Value as ProtoValue,
};

/// How deep nested messages are expanded before a field is shown by type name only.
const MAX_DEPTH: usize = 8;

/// One endpoint per method of `service`.
pub fn endpoints(service: &ServiceDescriptor) -> Vec<Endpoint> {
    service
        .methods()
        .map(|method| {
            let mut endpoint = Endpoint::new(format!("{}.{}", service.name(), method.name()));
            endpoint.request = Some(message_value(&method.input()));
            endpoint.response = Some(message_value(&method.output()));
            endpoint.metadata.insert(
                ENDPOINT_GRPC_SERVICE.to_owned(),
                service.full_name().to_owned(),
            );
            let stream = match (method.is_client_streaming(), method.is_server_streaming()) {
                (false, false) => None,
                (false, true) => Some("server"),
                (true, false) => Some("client"),
                (true, true) => Some("bidi"),
            };
            if let Some(kind) = stream {
                endpoint
                    .metadata
                    .insert(ENDPOINT_STREAM.to_owned(), kind.to_owned());
            }
            if idempotent(&method) {
                endpoint
                    .metadata
                    .insert(ENDPOINT_IDEMPOTENT.to_owned(), "true".to_owned());
            }
            let rules = http_rules(&method);
            if !rules.is_empty() {
                endpoint
                    .metadata
                    .insert(ENDPOINT_HTTP.to_owned(), rules.join("\n"));
            }
            endpoint
        })
        .collect()
}

/// Whether the proto marks `method` safe to repeat (`idempotency_level` `NO_SIDE_EFFECTS` or
/// `IDEMPOTENT`).
fn idempotent(method: &MethodDescriptor) -> bool {
    use prost_types::method_options::IdempotencyLevel;
    let level = method
        .method_descriptor_proto()
        .options
        .as_ref()
        .and_then(|o| o.idempotency_level);
    level.is_some_and(|l| {
        l == IdempotencyLevel::NoSideEffects as i32 || l == IdempotencyLevel::Idempotent as i32
    })
}

/// The method's `(google.api.http)` rules, with their additional bindings, as
/// `METHOD /path [BODY]` lines; none when the option is absent or its schema unknown.
fn http_rules(method: &MethodDescriptor) -> Vec<String> {
    let Some(extension) = method
        .parent_pool()
        .get_extension_by_name("google.api.http")
    else {
        return Vec::new();
    };
    let options = method.options();
    if !options.has_extension(&extension) {
        return Vec::new();
    }
    let mut out = Vec::new();
    if let ProtoValue::Message(rule) = options.get_extension(&extension).as_ref() {
        collect_rules(rule, &mut out);
    }
    out
}

fn collect_rules(rule: &DynamicMessage, out: &mut Vec<String>) {
    let text = |name: &str| {
        rule.get_field_by_name(name)
            .and_then(|v| v.as_str().map(str::to_owned))
            .filter(|s| !s.is_empty())
    };
    let pattern = ["get", "put", "post", "delete", "patch"]
        .into_iter()
        .find_map(|m| text(m).map(|path| (m.to_ascii_uppercase(), path)))
        .or_else(|| {
            let custom = rule.get_field_by_name("custom")?;
            let custom = custom.as_message()?;
            let kind = custom
                .get_field_by_name("kind")?
                .as_str()?
                .to_ascii_uppercase();
            let path = custom.get_field_by_name("path")?.as_str()?.to_owned();
            Some((kind, path))
        });
    if let Some((method, path)) = pattern
        && !path.contains(char::is_whitespace)
    {
        match text("body") {
            Some(body) => out.push(format!("{method} {path} {body}")),
            None => out.push(format!("{method} {path}")),
        }
    }
    if let Some(more) = rule.get_field_by_name("additional_bindings")
        && let Some(list) = more.as_list()
    {
        for binding in list {
            if let Some(binding) = binding.as_message() {
                collect_rules(binding, out);
            }
        }
    }
}

/// The schema of a message: its name, full type name and fields.
pub fn message_value(message: &MessageDescriptor) -> Value {
    let mut stack = vec![message.full_name().to_owned()];
    Value {
        name: message.name().to_owned(),
        r#type: message.full_name().to_owned(),
        values: fields(message, &mut stack),
    }
}

fn fields(message: &MessageDescriptor, stack: &mut Vec<String>) -> Vec<Value> {
    message.fields().map(|f| field_value(&f, stack)).collect()
}

fn field_value(field: &FieldDescriptor, stack: &mut Vec<String>) -> Value {
    let name = field.name().to_owned();
    if field.is_map() {
        let Kind::Message(entry) = field.kind() else {
            unreachable!("map fields are map-entry messages")
        };
        let key = type_name(&entry.map_entry_key_field().kind());
        let value_field = entry.map_entry_value_field();
        let value = field_value(&value_field, stack);
        return Value {
            name,
            r#type: format!("map<{key}, {}>", value.r#type),
            values: value.values,
        };
    }
    let base = type_name(&field.kind());
    let values = match field.kind() {
        Kind::Message(m) if expandable(&m, stack) => {
            stack.push(m.full_name().to_owned());
            let v = fields(&m, stack);
            stack.pop();
            v
        }
        Kind::Enum(e) => e
            .values()
            .map(|v| Value {
                name: v.name().to_owned(),
                r#type: "enum value".to_owned(),
                values: Vec::new(),
            })
            .collect(),
        _ => Vec::new(),
    };
    let r#type = if field.is_list() {
        format!("repeated {base}")
    } else {
        base
    };
    Value {
        name,
        r#type,
        values,
    }
}

/// Expands a message unless it is a well-known type (its JSON form is a scalar), recursive, or
/// too deep.
fn expandable(message: &MessageDescriptor, stack: &[String]) -> bool {
    !message.full_name().starts_with("google.protobuf.")
        && stack.len() < MAX_DEPTH
        && !stack.iter().any(|s| s == message.full_name())
}

fn type_name(kind: &Kind) -> String {
    match kind {
        Kind::Double => "double".into(),
        Kind::Float => "float".into(),
        Kind::Int32 => "int32".into(),
        Kind::Int64 => "int64".into(),
        Kind::Uint32 => "uint32".into(),
        Kind::Uint64 => "uint64".into(),
        Kind::Sint32 => "sint32".into(),
        Kind::Sint64 => "sint64".into(),
        Kind::Fixed32 => "fixed32".into(),
        Kind::Fixed64 => "fixed64".into(),
        Kind::Sfixed32 => "sfixed32".into(),
        Kind::Sfixed64 => "sfixed64".into(),
        Kind::Bool => "bool".into(),
        Kind::String => "string".into(),
        Kind::Bytes => "bytes".into(),
        Kind::Message(m) => m.full_name().to_owned(),
        Kind::Enum(e) => e.full_name().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_reflect::DescriptorPool;

    fn registry_pool() -> DescriptorPool {
        DescriptorPool::decode(micro_proto::FILE_DESCRIPTOR_SET).unwrap()
    }

    #[test]
    fn endpoints_are_named_service_dot_method_with_schemas() {
        let pool = registry_pool();
        let svc = pool.get_service_by_name("micro.registry.Registry").unwrap();
        let eps = endpoints(&svc);
        let get = eps
            .iter()
            .find(|e| e.name == "Registry.GetService")
            .unwrap();
        let req = get.request.as_ref().unwrap();
        assert_eq!(req.r#type, "micro.registry.GetServiceRequest");
        assert_eq!(
            (req.values[0].name.as_str(), req.values[0].r#type.as_str()),
            ("service", "string")
        );
        assert_eq!(
            get.metadata[ENDPOINT_GRPC_SERVICE],
            "micro.registry.Registry"
        );
        let watch = eps.iter().find(|e| e.name == "Registry.Watch").unwrap();
        assert_eq!(watch.metadata[ENDPOINT_STREAM], "server");
    }

    #[test]
    fn recursive_messages_stop_expanding() {
        let pool = registry_pool();
        let value = pool.get_message_by_name("micro.registry.Value").unwrap();
        let schema = message_value(&value);
        let nested = schema.values.iter().find(|v| v.name == "values").unwrap();
        assert_eq!(nested.r#type, "repeated micro.registry.Value");
        assert!(
            nested.values.is_empty(),
            "a recursive field is not expanded"
        );
        let svc = pool.get_message_by_name("micro.registry.Service").unwrap();
        let meta = message_value(&svc)
            .values
            .into_iter()
            .find(|v| v.name == "metadata")
            .unwrap();
        assert_eq!(meta.r#type, "map<string, string>");
    }
}
