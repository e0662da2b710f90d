//! The protos of a sidecar's service, made from its command line: each `--endpoint
//! Name.Method=/path` becomes method `Method` of proto service `Name` in package
//! `sidecar.NAME`, taking and answering `google.protobuf.Struct` — any JSON object. So the
//! platform's proxy, gateway and dashboard transcode JSON for the app as for any service, and
//! reflection describes it to grpcurl.

use std::collections::{BTreeMap, HashMap};

use micro_core::Error;
use prost::Message;
use prost_reflect::DescriptorPool;
use prost_types::{
    FileDescriptorProto, FileDescriptorSet, MethodDescriptorProto, ServiceDescriptorProto,
};

const ID: &str = "micro.sidecar";
const STRUCT_FILE: &str = "google/protobuf/struct.proto";
/// The most endpoints one sidecar declares.
pub(crate) const MAX_ENDPOINTS: usize = 256;

/// What the sidecar serves.
#[derive(Debug)]
pub(crate) struct Protos {
    /// The encoded descriptor set (the service's file and `struct.proto`).
    pub(crate) set: Vec<u8>,
    /// The proto services, by full name (`sidecar.greeter.Greeter`).
    pub(crate) services: Vec<String>,
    /// gRPC path (`/sidecar.greeter.Greeter/Hello`) → the app's path (`/hello`).
    pub(crate) routes: HashMap<String, String>,
}

/// The protos for service `name` with `endpoints` (`Name.Method`, app path).
pub(crate) fn protos(name: &str, endpoints: &[(String, String)]) -> Result<Protos, Error> {
    if endpoints.is_empty() {
        return Err(Error::bad_request(
            ID,
            "a sidecar needs at least one --endpoint Name.Method=/path",
        ));
    }
    if endpoints.len() > MAX_ENDPOINTS {
        return Err(Error::bad_request(
            ID,
            format!("at most {MAX_ENDPOINTS} endpoints"),
        ));
    }
    let package = format!("sidecar.{}", identifier(name));
    let mut services: BTreeMap<&str, Vec<MethodDescriptorProto>> = BTreeMap::new();
    let mut routes = HashMap::new();
    for (endpoint, path) in endpoints {
        let (service, method) = endpoint
            .split_once('.')
            .filter(|(s, m)| is_identifier(s) && is_identifier(m))
            .ok_or_else(|| {
                Error::bad_request(
                    ID,
                    format!("endpoint {endpoint:?} is not Name.Method (letters, digits and _)"),
                )
            })?;
        if !path.starts_with('/') || path.len() > 1024 || path.chars().any(char::is_whitespace) {
            return Err(Error::bad_request(
                ID,
                format!(
                    "the app path of {endpoint} must start with / and have no spaces: {path:?}"
                ),
            ));
        }
        let grpc_path = format!("/{package}.{service}/{method}");
        if routes.insert(grpc_path, path.clone()).is_some() {
            return Err(Error::bad_request(
                ID,
                format!("endpoint {endpoint} is declared twice"),
            ));
        }
        services
            .entry(service)
            .or_default()
            .push(MethodDescriptorProto {
                name: Some(method.to_owned()),
                input_type: Some(".google.protobuf.Struct".to_owned()),
                output_type: Some(".google.protobuf.Struct".to_owned()),
                ..Default::default()
            });
    }
    let file = FileDescriptorProto {
        name: Some(format!("sidecar/{}.proto", identifier(name))),
        package: Some(package.clone()),
        dependency: vec![STRUCT_FILE.to_owned()],
        service: services
            .iter()
            .map(|(service, methods)| ServiceDescriptorProto {
                name: Some((*service).to_owned()),
                method: methods.clone(),
                ..Default::default()
            })
            .collect(),
        syntax: Some("proto3".to_owned()),
        ..Default::default()
    };
    let structs = DescriptorPool::global()
        .get_file_by_name(STRUCT_FILE)
        .ok_or_else(|| Error::internal(ID, "no descriptor of google.protobuf.Struct"))?
        .file_descriptor_proto()
        .clone();
    let set = FileDescriptorSet {
        file: vec![structs, file],
    }
    .encode_to_vec();
    // Checked here, so a mistake is the command line's, not the registry's.
    DescriptorPool::decode(set.as_slice())
        .map_err(|e| Error::internal(ID, format!("the generated protos do not hold: {e}")))?;
    Ok(Protos {
        set,
        services: services
            .keys()
            .map(|service| format!("{package}.{service}"))
            .collect(),
        routes,
    })
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && s.len() <= 128
}

/// `name` as one proto identifier: anything but letters, digits and `_` becomes `_`.
fn identifier(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if !out.starts_with(|c: char| c.is_ascii_alphabetic()) {
        out.insert(0, 'x');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(e, p)| ((*e).to_owned(), (*p).to_owned()))
            .collect()
    }

    #[test]
    fn endpoints_become_struct_methods() {
        let protos = protos(
            "py-greeter",
            &endpoints(&[
                ("Greeter.Hello", "/hello"),
                ("Greeter.Bye", "/bye"),
                ("Admin.Reset", "/reset"),
            ]),
        )
        .unwrap();
        assert_eq!(
            protos.services,
            ["sidecar.py_greeter.Admin", "sidecar.py_greeter.Greeter"]
        );
        assert_eq!(protos.routes["/sidecar.py_greeter.Greeter/Hello"], "/hello");
        let pool = DescriptorPool::decode(protos.set.as_slice()).unwrap();
        let method = pool
            .get_service_by_name("sidecar.py_greeter.Greeter")
            .unwrap()
            .methods()
            .find(|m| m.name() == "Bye")
            .unwrap();
        assert_eq!(method.input().full_name(), "google.protobuf.Struct");
    }

    #[test]
    fn bad_endpoints_are_refused_with_a_reason() {
        for (list, why) in [
            (vec![], "at least one"),
            (vec![("Hello", "/x")], "Name.Method"),
            (vec![("A.b-c", "/x")], "Name.Method"),
            (vec![("A.B", "x")], "start with /"),
            (vec![("A.B", "/x"), ("A.B", "/y")], "twice"),
        ] {
            let e = protos("s", &endpoints(&list)).unwrap_err();
            assert!(e.detail.contains(why), "{list:?}: {e:?}");
        }
    }
}
