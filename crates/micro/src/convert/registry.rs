//! `micro.registry`: services, their nodes and endpoints, and watch events.

use micro_core::{Endpoint, Node, Service, Value, WatchAction, WatchEvent};
use micro_proto::registry as pb;

/// Domain → wire.
pub fn service_to_pb(s: &Service) -> pb::Service {
    pb::Service {
        name: s.name.clone(),
        version: s.version.clone(),
        metadata: s.metadata.clone().into_iter().collect(),
        endpoints: s.endpoints.iter().map(endpoint_to_pb).collect(),
        nodes: s.nodes.iter().map(node_to_pb).collect(),
    }
}

/// Wire → domain.
pub fn service_from_pb(s: pb::Service) -> Service {
    Service {
        name: s.name,
        version: s.version,
        metadata: s.metadata.into_iter().collect(),
        endpoints: s.endpoints.into_iter().map(endpoint_from_pb).collect(),
        nodes: s.nodes.into_iter().map(node_from_pb).collect(),
    }
}

fn node_to_pb(n: &Node) -> pb::Node {
    pb::Node {
        id: n.id.clone(),
        address: n.address.clone(),
        metadata: n.metadata.clone().into_iter().collect(),
    }
}

fn node_from_pb(n: pb::Node) -> Node {
    Node {
        id: n.id,
        address: n.address,
        metadata: n.metadata.into_iter().collect(),
    }
}

fn endpoint_to_pb(e: &Endpoint) -> pb::Endpoint {
    pb::Endpoint {
        name: e.name.clone(),
        request: e.request.as_ref().map(value_to_pb),
        response: e.response.as_ref().map(value_to_pb),
        metadata: e.metadata.clone().into_iter().collect(),
    }
}

fn endpoint_from_pb(e: pb::Endpoint) -> Endpoint {
    Endpoint {
        name: e.name,
        request: e.request.map(value_from_pb),
        response: e.response.map(value_from_pb),
        metadata: e.metadata.into_iter().collect(),
    }
}

fn value_to_pb(v: &Value) -> pb::Value {
    pb::Value {
        name: v.name.clone(),
        r#type: v.r#type.clone(),
        values: v.values.iter().map(value_to_pb).collect(),
    }
}

fn value_from_pb(v: pb::Value) -> Value {
    Value {
        name: v.name,
        r#type: v.r#type,
        values: v.values.into_iter().map(value_from_pb).collect(),
    }
}

/// The wire name of a watch action.
pub fn action_to_str(a: WatchAction) -> &'static str {
    match a {
        WatchAction::Create => "create",
        WatchAction::Update => "update",
        WatchAction::Delete => "delete",
    }
}

/// A wire watch event → domain; `None` for an action this version does not know.
pub fn event_from_pb(r: pb::WatchResponse) -> Option<WatchEvent> {
    let action = match r.action.as_str() {
        "create" => WatchAction::Create,
        "update" => WatchAction::Update,
        "delete" => WatchAction::Delete,
        _ => return None,
    };
    Some(WatchEvent {
        action,
        service: service_from_pb(r.service.unwrap_or_default()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_round_trips() {
        let mut svc = Service::new("hw", "v1").with_node(Node::new("a", "127.0.0.1:1"));
        svc.metadata.insert("k".into(), "v".into());
        let mut ep = Endpoint::new("Hw.Call");
        ep.request = Some(Value {
            name: "Req".into(),
            r#type: "hw.Req".into(),
            values: vec![Value {
                name: "name".into(),
                r#type: "string".into(),
                values: vec![],
            }],
        });
        svc.endpoints.push(ep);
        assert_eq!(service_from_pb(service_to_pb(&svc)), svc);
    }
}
