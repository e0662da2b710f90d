//! `micro services` and `micro get service NAME`.

use std::fmt::Write;

use micro_core::{Registry, Service, Value};

use crate::{context::Context, failure::Failure};

pub(crate) async fn list(ctx: &Context) -> Result<(), Failure> {
    let registry = ctx.registry().await?;
    let services = registry.list_services(&ctx.namespace).await?;
    let mut names: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    for name in names {
        println!("{name}");
    }
    Ok(())
}

pub(crate) async fn get(ctx: &Context, name: &str) -> Result<(), Failure> {
    let registry = ctx.registry().await?;
    let services = registry
        .get_service(&ctx.namespace, name)
        .await
        .map_err(|e| {
            if e.code == 404 {
                Failure::with_code(4, format!("Service \"{name}\" not found"))
            } else {
                e.into()
            }
        })?;
    print!("{}", render(&services));
    Ok(())
}

/// The `get service` text: name, then per version the node table and every endpoint's schema.
fn render(versions: &[Service]) -> String {
    let mut out = String::new();
    let Some(first) = versions.first() else {
        return out;
    };
    let _ = writeln!(out, "service  {}", first.name);
    for service in versions {
        let _ = writeln!(out, "\nversion  {}\n", service.version);
        let rows: Vec<[String; 3]> = service
            .nodes
            .iter()
            .map(|n| {
                let meta: Vec<String> =
                    n.metadata.iter().map(|(k, v)| format!("{k}={v}")).collect();
                [n.id.clone(), n.address.clone(), meta.join(",")]
            })
            .collect();
        out.push_str(&table(["ID", "ADDRESS", "METADATA"], &rows));
        let mut endpoints: Vec<_> = service.endpoints.iter().collect();
        endpoints.sort_by(|a, b| a.name.cmp(&b.name));
        for endpoint in endpoints {
            let _ = writeln!(out, "\nEndpoint: {}", endpoint.name);
            if let Some(stream) = endpoint.metadata.get(micro_core::metadata::ENDPOINT_STREAM) {
                let _ = writeln!(out, "Stream: {stream}");
            }
            for (label, value) in [
                ("Request", &endpoint.request),
                ("Response", &endpoint.response),
            ] {
                let _ = write!(out, "\n{label}: ");
                match value {
                    Some(v) => schema(&mut out, v, 0),
                    None => out.push_str("{}\n"),
                }
            }
        }
    }
    out
}

fn schema(out: &mut String, value: &Value, depth: usize) {
    if value.values.is_empty() {
        out.push_str("{}\n");
        return;
    }
    out.push_str("{\n");
    for field in &value.values {
        let indent = "\t".repeat(depth + 1);
        let is_enum = field.values.iter().all(|v| v.r#type == "enum value");
        if field.values.is_empty() || is_enum {
            let _ = writeln!(out, "{indent}{} {}", field.name, field.r#type);
        } else {
            let _ = write!(out, "{indent}{} {} ", field.name, field.r#type);
            schema(out, field, depth + 1);
        }
    }
    let _ = writeln!(out, "{}}}", "\t".repeat(depth));
}

/// Left-aligned columns separated by two spaces.
pub(crate) fn table<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> String {
    let mut widths = header.map(str::len);
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: [&str; N]| {
        let mut s = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == N {
                s.push_str(cell);
            } else {
                let _ = write!(s, "{cell:<w$}  ", w = widths[i]);
            }
        }
        out.push_str(s.trim_end());
        out.push('\n');
    };
    line(&mut out, header);
    for row in rows {
        line(&mut out, std::array::from_fn(|i| row[i].as_str()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use micro_core::{Endpoint, Node};

    #[test]
    fn renders_nodes_and_nested_schemas() {
        let mut svc = Service::new("hw", "latest").with_node(Node::new("hw-1", "127.0.0.1:5"));
        let mut ep = Endpoint::new("Hw.Call");
        ep.request = Some(Value {
            name: "Request".into(),
            r#type: "hw.Request".into(),
            values: vec![
                Value {
                    name: "name".into(),
                    r#type: "string".into(),
                    values: vec![],
                },
                Value {
                    name: "inner".into(),
                    r#type: "hw.Inner".into(),
                    values: vec![Value {
                        name: "n".into(),
                        r#type: "int64".into(),
                        values: vec![],
                    }],
                },
            ],
        });
        svc.endpoints.push(ep);
        let text = render(&[svc]);
        assert!(
            text.starts_with(
                "service  hw\n\nversion  latest\n\nID    ADDRESS      METADATA\nhw-1  127.0.0.1:5\n"
            ),
            "{text}"
        );
        assert!(text.contains("Endpoint: Hw.Call\n\nRequest: {\n\tname string\n\tinner hw.Inner {\n\t\tn int64\n\t}\n}\n"), "{text}");
        assert!(text.contains("Response: {}\n"), "{text}");
    }
}
