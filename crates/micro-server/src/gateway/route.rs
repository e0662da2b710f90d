//! URL path → (service, endpoint), as pure logic (BEHAVIOR.md §2).
//!
//! | path | service | endpoint |
//! |---|---|---|
//! | `/foo` | `foo` | `Foo.Call` |
//! | `/foo/bar` | `foo` | `Foo.Bar` |
//! | `/foo/bar/baz` | `foo` | `Bar.Baz` |
//! | `/foo/bar/baz/cat` | `foo.bar` | `Baz.Cat` |
//! | `/v1/foo/bar` | `v1.foo` | `Foo.Bar` |
//!
//! Each endpoint part is title-cased: `baz-xyz` → `BazXyz`, `fooBar` → `FooBar`.

use micro_core::naming::title_into;

/// Where a path goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Route {
    /// The registered service name.
    pub(crate) service: String,
    /// `Service.Method`.
    pub(crate) endpoint: String,
}

/// The route for `path`, or `None` when the path names nothing (`/`, empty segments, or
/// characters no service or endpoint name has).
pub(crate) fn route(path: &str) -> Option<Route> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    if parts.iter().any(|p| !valid(p)) {
        return None;
    }
    // A leading version segment joins the next one into the service name.
    let named = match parts.as_slice() {
        [v, _, ..] if is_version(v) => 2,
        [_, ..] => 1,
        [] => return None,
    };
    // More than two words after the service: the extra ones belong to the service name.
    let (service_parts, rest) = parts.split_at(named.max(parts.len().saturating_sub(2)));
    let last_service_word = service_parts.last()?;
    let mut endpoint = String::with_capacity(path.len() + ".Call".len());
    let (proto_service, method) = match rest {
        [] => (*last_service_word, None),
        [method] => (*last_service_word, Some(*method)),
        [svc, method] => (*svc, Some(*method)),
        _ => unreachable!("at most two words remain"),
    };
    title_into(&mut endpoint, proto_service);
    endpoint.push('.');
    match method {
        Some(method) => title_into(&mut endpoint, method),
        None => endpoint.push_str("Call"),
    }
    Some(Route {
        service: service_parts.join("."),
        endpoint,
    })
}

/// A segment starts with a letter or digit and holds only those, `-` and `_`: a dot would
/// split the `Service.Method` it becomes.
fn valid(part: &str) -> bool {
    part.starts_with(|c: char| c.is_ascii_alphanumeric())
        && part
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn is_version(part: &str) -> bool {
    part.len() > 1 && part.starts_with('v') && part[1..].chars().all(|c| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaviour_table() {
        let table = [
            ("/foo", "foo", "Foo.Call"),
            ("/foo/bar", "foo", "Foo.Bar"),
            ("/foo/foo/bar", "foo", "Foo.Bar"),
            ("/foo/bar/baz", "foo", "Bar.Baz"),
            ("/foo/bar/baz-xyz", "foo", "Bar.BazXyz"),
            ("/foo/bar/baz/cat", "foo.bar", "Baz.Cat"),
            ("/v1/foo/bar", "v1.foo", "Foo.Bar"),
            ("/v1/foo/bar/baz", "v1.foo", "Bar.Baz"),
            (
                "/helloworld/greeter/say-hello",
                "helloworld",
                "Greeter.SayHello",
            ),
            ("/helloworld/fooBar", "helloworld", "Helloworld.FooBar"),
            ("/v1/foo/a/b/c", "v1.foo.a", "B.C"),
            ("/v1", "v1", "V1.Call"),
        ];
        for (path, service, endpoint) in table {
            let got = route(path).unwrap_or_else(|| panic!("{path} has a route"));
            assert_eq!(
                (got.service.as_str(), got.endpoint.as_str()),
                (service, endpoint),
                "{path}"
            );
        }
    }

    #[test]
    fn paths_that_name_nothing() {
        for path in ["/", "", "/a//b", "/a b", "/foo/%2e", "/-", "/a/_", "/a.b/c"] {
            assert_eq!(route(path), None, "{path:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_path_routes_to_a_well_formed_endpoint_or_to_nothing(path in "\\PC{0,40}") {
            if let Some(r) = route(&path) {
                proptest::prop_assert!(!r.service.is_empty());
                let (svc, method) = r.endpoint.split_once('.').expect("Service.Method");
                proptest::prop_assert!(!svc.is_empty() && !method.is_empty(), "{:?}", r);
            }
        }

        #[test]
        fn segment_paths_always_route(parts in proptest::collection::vec("[a-z][a-z0-9-]{0,8}", 1..6)) {
            let path = format!("/{}", parts.join("/"));
            proptest::prop_assert!(route(&path).is_some(), "{}", path);
        }
    }
}
