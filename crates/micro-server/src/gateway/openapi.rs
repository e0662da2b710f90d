//! `GET /openapi.json`: an OpenAPI 3.1 document of every endpoint registered in the caller's
//! namespace, generated on each request from the registry, so it is current as services come
//! and go.
//!
//! Each endpoint is listed under the shortest gateway path that routes to it (checked against
//! [`route`] itself), with `POST` taking the JSON request and answering the JSON response;
//! schemas come from the field schemas services register. Server-streaming endpoints answer
//! `application/x-ndjson` and `text/event-stream`; endpoints reading a request stream are
//! reachable only by WebSocket and are listed with a note saying so.

use micro_core::{
    Service,
    registry::{Endpoint, Value as Field},
};
use serde_json::{Map, Value, json};

use micro_core::naming::{self, title};

use super::route::route;
use crate::{auth::Caller, proxy::ProxyService};

/// The document for `namespace`.
/// The document of what `caller` may call in its namespace.
pub(crate) async fn document(proxy: &ProxyService, caller: &Caller) -> Value {
    let services = proxy
        .registry()
        .list_services(&caller.namespace)
        .await
        .unwrap_or_default();
    from_services(&proxy.callable(caller, services).await)
}

/// The document describing `services`.
pub(crate) fn from_services(services: &[Service]) -> Value {
    let mut paths = Map::new();
    for service in services {
        let proto_services = naming::proto_services(&service.endpoints);
        for endpoint in &service.endpoints {
            let Some(path) = path_for(&service.name, &endpoint.name, proto_services.len() == 1)
            else {
                continue;
            };
            for (method, template, params) in rule_paths(endpoint) {
                let mut op = operation(service, endpoint);
                if !params.is_empty() {
                    op["parameters"] = Value::Array(params);
                }
                if (method == "get" || method == "delete")
                    && let Some(op) = op.as_object_mut()
                {
                    op.remove("requestBody");
                }
                op["operationId"] = json!(format!("{}.{}.{method}", service.name, endpoint.name));
                let entry = paths.entry(template).or_insert_with(|| json!({}));
                if entry.get(&method).is_none() {
                    entry[&method] = op;
                }
            }
            if paths.contains_key(&path) {
                continue;
            }
            paths.insert(path, json!({ "post": operation(service, endpoint) }));
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Micro API gateway",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Every endpoint registered in this namespace. Send JSON; errors are \
                            {id, code, detail, status} with the HTTP status of code.",
        },
        "paths": paths,
        "components": { "schemas": { "Error": error_schema() } },
    })
}

/// The endpoint's `google.api.http` rules as OpenAPI (method, path, path parameters):
/// `{name=shelves/*}` becomes `{name}`; templates with bare wildcards are left out.
fn rule_paths(endpoint: &Endpoint) -> Vec<(String, String, Vec<Value>)> {
    let Some(lines) = endpoint.metadata.get(micro_core::metadata::ENDPOINT_HTTP) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for line in lines.lines() {
        let mut words = line.split_whitespace();
        let (Some(method), Some(template)) = (words.next(), words.next()) else {
            continue;
        };
        let mut path = String::new();
        let mut params = Vec::new();
        let mut rest = template;
        let mut ok = true;
        while let Some(open) = rest.find('{') {
            let Some(close) = rest[open..].find('}').map(|c| open + c) else {
                ok = false;
                break;
            };
            path.push_str(&rest[..open]);
            let name = rest[open + 1..close].split('=').next().unwrap_or_default();
            path.push_str(&format!("{{{name}}}"));
            params.push(json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }));
            rest = &rest[close + 1..];
        }
        path.push_str(rest);
        if ok && !path.contains('*') {
            out.push((method.to_ascii_lowercase(), path, params));
        }
    }
    out
}

/// The shortest path that the router sends to (`service`, `endpoint`).
fn path_for(service: &str, endpoint: &str, only_proto_service: bool) -> Option<String> {
    let (proto_service, method) = endpoint.split_once('.')?;
    let base = service.replace('.', "/");
    let method = lower_camel(method);
    let short = format!("/{base}/{method}");
    let long = format!("/{base}/{}/{method}", lower_camel(proto_service));
    let routes_to = |path: &str| {
        route(path).is_some_and(|r| {
            r.service == service
                && (r.endpoint == endpoint
                    || (only_proto_service
                        && r.endpoint.split_once('.').map(|(_, m)| m) == Some(&title(&method))))
        })
    };
    [short, long].into_iter().find(|p| routes_to(p))
}

fn lower_camel(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| c.to_lowercase().chain(chars).collect())
        .unwrap_or_default()
}

fn operation(service: &Service, endpoint: &Endpoint) -> Value {
    let streams = endpoint.metadata.get(micro_core::metadata::ENDPOINT_STREAM);
    let request = endpoint.request.as_ref().map_or_else(|| json!({}), schema);
    let response = endpoint.response.as_ref().map_or_else(|| json!({}), schema);
    let content = match streams.map(String::as_str) {
        Some("server") => json!({
            "application/x-ndjson": { "schema": response },
            "text/event-stream": { "schema": { "type": "string" } },
        }),
        _ => json!({ "application/json": { "schema": response } }),
    };
    let mut description = format!("{} of service {}", endpoint.name, service.name);
    if matches!(streams.map(String::as_str), Some("client" | "bidi")) {
        description.push_str("; reads a stream of requests, so connect with a WebSocket");
    }
    let error =
        json!({ "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } });
    json!({
        "operationId": format!("{}.{}", service.name, endpoint.name),
        "tags": [service.name],
        "summary": endpoint.name,
        "description": description,
        "requestBody": { "content": { "application/json": { "schema": request } } },
        "responses": {
            "200": { "description": "the response", "content": content },
            "400": { "description": "a malformed request", "content": error },
            "404": { "description": "no such service or endpoint", "content": error },
            "503": { "description": "the service is unavailable", "content": error },
        },
    })
}

/// JSON Schema for a registered field schema.
fn schema(field: &Field) -> Value {
    if let Some(item) = field.r#type.strip_prefix("repeated ") {
        let inner = Field {
            r#type: item.to_owned(),
            ..field.clone()
        };
        return json!({ "type": "array", "items": schema(&inner) });
    }
    if let Some(inner) = field
        .r#type
        .strip_prefix("map<")
        .and_then(|t| t.strip_suffix('>'))
    {
        let value_type = inner.split_once(", ").map_or(inner, |(_, v)| v);
        let value = Field {
            r#type: value_type.to_owned(),
            ..field.clone()
        };
        return json!({ "type": "object", "additionalProperties": schema(&value) });
    }
    let scalar = match field.r#type.as_str() {
        "string" => Some(json!({ "type": "string" })),
        "bool" => Some(json!({ "type": "boolean" })),
        "bytes" => Some(json!({ "type": "string", "contentEncoding": "base64" })),
        "double" | "float" => Some(json!({ "type": "number" })),
        "int32" | "sint32" | "sfixed32" | "uint32" | "fixed32" => {
            Some(json!({ "type": "integer", "format": "int32" }))
        }
        "int64" | "sint64" | "sfixed64" | "uint64" | "fixed64" => {
            Some(json!({ "type": ["integer", "string"], "format": "int64" }))
        }
        _ => None,
    };
    if let Some(s) = scalar {
        return s;
    }
    if !field.values.is_empty() && field.values.iter().all(|v| v.r#type == "enum value") {
        let names: Vec<&str> = field.values.iter().map(|v| v.name.as_str()).collect();
        return json!({ "type": "string", "enum": names });
    }
    if field.values.is_empty() {
        // A well-known type or a message not expanded: any JSON.
        return json!({ "description": field.r#type });
    }
    let properties: Map<String, Value> = field
        .values
        .iter()
        .map(|f| (f.name.clone(), schema(f)))
        .collect();
    json!({ "type": "object", "title": field.r#type, "properties": properties })
}

fn error_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "id": { "type": "string" },
            "code": { "type": "integer" },
            "detail": { "type": "string" },
            "status": { "type": "string" },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(name: &str, request: Field) -> Endpoint {
        Endpoint {
            name: name.to_owned(),
            request: Some(request),
            response: None,
            metadata: Default::default(),
        }
    }

    fn field(name: &str, r#type: &str, values: Vec<Field>) -> Field {
        Field {
            name: name.to_owned(),
            r#type: r#type.to_owned(),
            values,
        }
    }

    #[test]
    fn paths_are_the_shortest_that_route_back() {
        assert_eq!(
            path_for("helloworld", "Helloworld.Call", true).as_deref(),
            Some("/helloworld/call")
        );
        assert_eq!(
            path_for("helloworld", "Greeter.SayHello", false).as_deref(),
            Some("/helloworld/greeter/sayHello")
        );
        assert_eq!(
            path_for("helloworld", "Greeter.SayHello", true).as_deref(),
            Some("/helloworld/sayHello")
        );
        assert_eq!(
            path_for("foo.bar", "Baz.Cat", false).as_deref(),
            Some("/foo/bar/baz/cat")
        );
        assert_eq!(
            path_for("v1.foo", "Foo.Bar", false).as_deref(),
            Some("/v1/foo/bar")
        );
    }

    #[test]
    fn schemas_follow_the_field_types() {
        let request = field(
            "Request",
            "pkg.Request",
            vec![
                field("name", "string", vec![]),
                field("tags", "repeated string", vec![]),
                field("labels", "map<string, int32>", vec![]),
                field("kind", "pkg.Kind", vec![field("A", "enum value", vec![])]),
                field("inner", "pkg.Inner", vec![field("on", "bool", vec![])]),
            ],
        );
        let services = [Service {
            name: "svc".to_owned(),
            version: "latest".to_owned(),
            endpoints: vec![endpoint("Svc.Call", request)],
            ..Service::default()
        }];
        let doc = from_services(&services);
        assert_eq!(doc["openapi"], "3.1.0");
        let props = &doc["paths"]["/svc/call"]["post"]["requestBody"]["content"]["application/json"]
            ["schema"]["properties"];
        assert_eq!(props["name"]["type"], "string");
        assert_eq!(props["tags"]["items"]["type"], "string");
        assert_eq!(props["labels"]["additionalProperties"]["type"], "integer");
        assert_eq!(props["kind"]["enum"][0], "A");
        assert_eq!(props["inner"]["properties"]["on"]["type"], "boolean");
    }
}
