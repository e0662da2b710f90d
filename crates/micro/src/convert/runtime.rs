//! `micro.runtime`: specs and deployments.

use micro_core::{
    Error,
    runtime::{Deployment, Spec},
};
use micro_proto::runtime as pb;

use super::millis;

/// A spec from the wire: it must be there; an empty version is `latest`, zero instances is one.
pub fn spec_from_pb(pb: Option<pb::Spec>) -> Result<Spec, Error> {
    let pb = pb.ok_or_else(|| {
        Error::bad_request("micro.runtime", "the request has no spec: name the service")
    })?;
    let mut spec = Spec::new(pb.name, pb.source);
    if !pb.version.is_empty() {
        spec.version = pb.version;
    }
    spec.instances = pb.instances.max(1);
    spec.env = pb.env.into_iter().collect();
    spec.args = pb.args;
    Ok(spec)
}

/// A spec on the wire.
pub fn spec_to_pb(spec: Spec) -> pb::Spec {
    pb::Spec {
        name: spec.name,
        version: spec.version,
        source: spec.source,
        env: spec.env.into_iter().collect(),
        instances: spec.instances,
        args: spec.args,
    }
}

/// A deployment on the wire.
pub fn deployment_to_pb(d: Deployment) -> pb::Deployment {
    pb::Deployment {
        status: d.status.as_str().to_owned(),
        build: d.build,
        updated_ms: millis(d.updated),
        restarts: d.restarts,
        running: d.running,
        error: d.error.unwrap_or_default(),
        stage: d.stage.unwrap_or_default(),
        spec: Some(spec_to_pb(d.spec)),
    }
}
