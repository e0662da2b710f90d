//! `google.api.http` routing: endpoints whose methods carry `(google.api.http)` rules are
//! reached by those rules' method and path before the path convention is tried.
//!
//! Services register their rules as endpoint metadata (`METHOD /path/{field} [BODY]`, see
//! [`micro_core::metadata::ENDPOINT_HTTP`]). The gateway keeps a table per namespace built from
//! the registry and rebuilt when it is a second old, so a request does not list the registry,
//! and a new service's rules are live within a second. One request rebuilds a table that is due;
//! the others meanwhile use the one there is, so a busy gateway lists the registry once a
//! second, not once per request in flight. At most [`MAX_TABLES`] namespaces keep a table
//! (with auth off, a caller may name any namespace).
//!
//! Templates: literal segments, `*` (one segment), `**` (the rest), `{field}` and
//! `{field=pattern}` binding a request field (dotted for nested fields; a multi-segment pattern
//! binds the matched segments joined by `/`), and a trailing `:verb`.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::http::Method;
use micro_core::{Registry, Service, metadata::ENDPOINT_HTTP};
use tokio::time::Instant;

/// How old a namespace's table may get before it is rebuilt.
const MAX_AGE: Duration = Duration::from_secs(1);

/// The most namespaces with a table; a new one beyond replaces the oldest.
const MAX_TABLES: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// `*`
    One,
    /// `**`
    Rest,
    /// `{field=pattern}`
    Var(String, Vec<Segment>),
}

/// A parsed path template.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Template {
    segments: Vec<Segment>,
    verb: Option<String>,
}

/// One rule: an HTTP method and template leading to a service's endpoint.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    method: Method,
    template: Template,
    /// `*`, a field name, or `None` for no body.
    pub(crate) body: Option<String>,
    pub(crate) service: String,
    pub(crate) endpoint: String,
}

/// A rule that matched, with the fields its path bound.
#[derive(Debug, Clone)]
pub(crate) struct Matched {
    pub(crate) rule: Rule,
    /// (dotted field path, raw value)
    pub(crate) bindings: Vec<(String, String)>,
}

fn parse_segments(text: &str) -> Option<Vec<Segment>> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(inner) = rest.strip_prefix('{') {
            let end = inner.find('}')?;
            let (field, pattern) = match inner[..end].split_once('=') {
                Some((f, p)) => (f, parse_segments(p)?),
                None => (&inner[..end], vec![Segment::One]),
            };
            if field.is_empty() || pattern.iter().any(|s| matches!(s, Segment::Var(..))) {
                return None;
            }
            out.push(Segment::Var(field.to_owned(), pattern));
            rest = inner[end + 1..]
                .strip_prefix('/')
                .unwrap_or(&inner[end + 1..]);
            continue;
        }
        let (part, next) = rest.split_once('/').unwrap_or((rest, ""));
        out.push(match part {
            "" => return None,
            "*" => Segment::One,
            "**" => Segment::Rest,
            literal => Segment::Literal(literal.to_owned()),
        });
        rest = next;
    }
    Some(out)
}

/// The most segments a template, or a request path matched against templates, may have.
const MAX_SEGMENTS: usize = micro_core::limits::MAX_PATH_PARTS;

fn parse_template(path: &str) -> Option<Template> {
    let body = path.strip_prefix('/')?;
    // A `:verb` after the last segment (outside braces).
    let (body, verb) = match body.rfind(':') {
        Some(i) if !body[i..].contains(['/', '}']) => (&body[..i], Some(body[i + 1..].to_owned())),
        _ => (body, None),
    };
    let segments = parse_segments(body)?;
    // `**` only at the end (as the spec has it), so matching never backtracks over more than
    // one variable-length part; and a template starts with a literal that is not a platform
    // service's, so no service can claim `/auth/...`, `/store/...` or every path.
    let rest_only_last = segments.iter().enumerate().all(|(i, s)| match s {
        Segment::Rest => i + 1 == segments.len(),
        Segment::Var(_, pattern) => pattern.iter().enumerate().all(|(j, p)| {
            *p != Segment::Rest || (i + 1 == segments.len() && j + 1 == pattern.len())
        }),
        _ => true,
    });
    let claims_its_own = matches!(
        segments.first(),
        Some(Segment::Literal(first)) if !crate::services::names::is_platform_service(first) && first != "openapi.json"
    );
    (segments.len() <= MAX_SEGMENTS && rest_only_last && claims_its_own)
        .then_some(Template { segments, verb })
}

/// Matches `segments` against `parts`, pushing bindings; backtracks over `**`.
fn match_segments(
    segments: &[Segment],
    parts: &[&str],
    bindings: &mut Vec<(String, String)>,
) -> bool {
    let Some((first, rest)) = segments.split_first() else {
        return parts.is_empty();
    };
    match first {
        Segment::Literal(l) => {
            parts.first() == Some(&l.as_str()) && match_segments(rest, &parts[1..], bindings)
        }
        Segment::One => !parts.is_empty() && match_segments(rest, &parts[1..], bindings),
        Segment::Rest => (0..=parts.len())
            .rev()
            .any(|n| match_segments(rest, &parts[n..], bindings)),
        Segment::Var(field, pattern) => {
            let mark = bindings.len();
            for n in (1..=parts.len()).rev() {
                let mut inner = Vec::new();
                if match_segments(pattern, &parts[..n], &mut inner)
                    && match_segments(rest, &parts[n..], bindings)
                {
                    bindings.insert(mark, (field.clone(), parts[..n].join("/")));
                    return true;
                }
                bindings.truncate(mark);
            }
            false
        }
    }
}

impl Template {
    fn matches(&self, path: &str) -> Option<Vec<(String, String)>> {
        let mut body = path.strip_prefix('/')?;
        if let Some(verb) = &self.verb {
            body = body.strip_suffix(verb.as_str())?.strip_suffix(':')?;
        }
        if body.split('/').nth(MAX_SEGMENTS * 4).is_some() {
            return None;
        }
        let parts: Vec<&str> = if body.is_empty() {
            Vec::new()
        } else {
            body.split('/').collect()
        };
        let mut bindings = Vec::new();
        match_segments(&self.segments, &parts, &mut bindings).then_some(bindings)
    }
}

/// The rules `services` registered; lines that do not parse are skipped.
fn rules_of(services: &[Service]) -> Vec<Rule> {
    let mut out = Vec::new();
    for service in services {
        for endpoint in &service.endpoints {
            let Some(lines) = endpoint.metadata.get(ENDPOINT_HTTP) else {
                continue;
            };
            for line in lines.lines() {
                let mut words = line.split_whitespace();
                let (Some(method), Some(path)) = (words.next(), words.next()) else {
                    continue;
                };
                let (Ok(method), Some(template)) = (method.parse::<Method>(), parse_template(path))
                else {
                    continue;
                };
                out.push(Rule {
                    method,
                    template,
                    body: words.next().map(str::to_owned),
                    service: service.name.clone(),
                    endpoint: endpoint.name.clone(),
                });
            }
        }
    }
    out
}

/// The first rule that matches `method` and `path`.
fn find(rules: &[Rule], method: &Method, path: &str) -> Option<Matched> {
    rules.iter().find_map(|rule| {
        if rule.method != *method {
            return None;
        }
        rule.template.matches(path).map(|bindings| Matched {
            rule: rule.clone(),
            bindings,
        })
    })
}

/// A namespace's rules, when they were read from the registry, and since when a request has
/// been reading them again.
struct Table {
    built: Instant,
    rules: Arc<Vec<Rule>>,
    rebuilding: Option<Instant>,
}

/// Per-namespace rule tables built from the registry.
#[derive(Default)]
pub(crate) struct RuleTables {
    tables: Mutex<HashMap<String, Table>>,
}

impl RuleTables {
    /// The rule for this request in `namespace`, if any.
    pub(crate) async fn find(
        &self,
        registry: &Arc<dyn Registry>,
        namespace: &str,
        method: &Method,
        path: &str,
    ) -> Option<Matched> {
        let rules = match self.current(namespace) {
            Current::Fresh(rules) => rules,
            Current::Due => {
                let services = registry.list_services(namespace).await.unwrap_or_default();
                let rules = Arc::new(rules_of(&services));
                self.store(namespace, rules.clone());
                rules
            }
        };
        find(&rules, method, path)
    }

    /// The table to use now, or that this request is to rebuild it: when there is none yet,
    /// or it is due and no other request is rebuilding it (one that went away is replaced
    /// after [`MAX_AGE`]).
    fn current(&self, namespace: &str) -> Current {
        let now = Instant::now();
        let mut tables = self.lock();
        let Some(table) = tables.get_mut(namespace) else {
            return Current::Due;
        };
        let young = |at: Instant| now.duration_since(at) < MAX_AGE;
        if young(table.built) || table.rebuilding.is_some_and(young) {
            return Current::Fresh(table.rules.clone());
        }
        table.rebuilding = Some(now);
        Current::Due
    }

    fn store(&self, namespace: &str, rules: Arc<Vec<Rule>>) {
        let mut tables = self.lock();
        if tables.len() >= MAX_TABLES && !tables.contains_key(namespace) {
            let oldest = tables
                .iter()
                .min_by_key(|(_, t)| t.built)
                .map(|(ns, _)| ns.clone());
            if let Some(ns) = oldest {
                tables.remove(&ns);
            }
        }
        tables.insert(
            namespace.to_owned(),
            Table {
                built: Instant::now(),
                rules,
                rebuilding: None,
            },
        );
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Table>> {
        self.tables.lock().unwrap_or_else(|p| p.into_inner())
    }
}

enum Current {
    Fresh(Arc<Vec<Rule>>),
    Due,
}

#[cfg(test)]
mod tests {
    use super::*;
    use micro_core::Endpoint;

    fn service(rules: &[(&str, &str)]) -> Service {
        Service {
            name: "greeter".into(),
            version: "latest".into(),
            endpoints: rules
                .iter()
                .map(|(endpoint, http)| {
                    let mut e = Endpoint::new(*endpoint);
                    e.metadata.insert(ENDPOINT_HTTP.into(), (*http).into());
                    e
                })
                .collect(),
            ..Service::default()
        }
    }

    fn bound(
        rules: &[Rule],
        method: Method,
        path: &str,
    ) -> Option<(String, Vec<(String, String)>)> {
        find(rules, &method, path).map(|m| (m.rule.endpoint, m.bindings))
    }

    fn b(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    /// A registry that counts how often it is listed.
    #[derive(Default)]
    struct Counting {
        inner: micro_core::MemoryRegistry,
        lists: std::sync::atomic::AtomicUsize,
    }

    #[async_trait::async_trait]
    impl Registry for Counting {
        async fn register(
            &self,
            namespace: &str,
            service: &Service,
            ttl: Duration,
        ) -> Result<(), micro_core::Error> {
            self.inner.register(namespace, service, ttl).await
        }
        async fn deregister(
            &self,
            namespace: &str,
            service: &Service,
        ) -> Result<(), micro_core::Error> {
            self.inner.deregister(namespace, service).await
        }
        async fn get_service(
            &self,
            namespace: &str,
            name: &str,
        ) -> Result<Vec<Service>, micro_core::Error> {
            self.inner.get_service(namespace, name).await
        }
        async fn list_services(&self, namespace: &str) -> Result<Vec<Service>, micro_core::Error> {
            self.lists.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            // A list that takes a while, as a remote registry's does.
            tokio::time::sleep(Duration::from_millis(50)).await;
            self.inner.list_services(namespace).await
        }
        async fn watch(
            &self,
            namespace: &str,
            service: Option<&str>,
        ) -> Result<micro_core::registry::Watcher, micro_core::Error> {
            self.inner.watch(namespace, service).await
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_due_table_is_rebuilt_by_one_request_while_the_others_use_the_old_one() {
        let counting = Arc::new(Counting::default());
        counting
            .register(
                "micro",
                &service(&[("Greeter.Hello", "GET /v1/hello/{name}")])
                    .with_node(micro_core::Node::new("g-1", "127.0.0.1:1")),
                Duration::from_secs(3600),
            )
            .await
            .unwrap();
        let registry: Arc<dyn Registry> = counting.clone();
        let tables = Arc::new(RuleTables::default());
        let find_all = |n: usize| {
            let handles: Vec<_> = (0..n)
                .map(|_| {
                    let (tables, registry) = (tables.clone(), registry.clone());
                    tokio::spawn(async move {
                        tables
                            .find(&registry, "micro", &Method::GET, "/v1/hello/ada")
                            .await
                            .map(|m| m.rule.endpoint)
                    })
                })
                .collect();
            async move {
                for handle in handles {
                    assert_eq!(handle.await.unwrap().as_deref(), Some("Greeter.Hello"));
                }
            }
        };
        find_all(1).await;
        assert_eq!(counting.lists.load(std::sync::atomic::Ordering::SeqCst), 1);
        tokio::time::advance(MAX_AGE).await;
        // 64 requests at once find the table due: one lists the registry, none waits for it.
        find_all(64).await;
        assert_eq!(counting.lists.load(std::sync::atomic::Ordering::SeqCst), 2);
        tokio::time::advance(Duration::from_millis(60)).await;
        find_all(8).await;
        assert_eq!(counting.lists.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn tables_are_kept_for_a_bounded_number_of_namespaces() {
        let registry: Arc<dyn Registry> = Arc::new(micro_core::MemoryRegistry::new());
        let tables = RuleTables::default();
        for i in 0..MAX_TABLES + 10 {
            let _ = tables
                .find(&registry, &format!("ns-{i}"), &Method::GET, "/x")
                .await;
        }
        assert_eq!(tables.lock().len(), MAX_TABLES);
    }

    #[test]
    fn templates_bind_fields() {
        let rules = rules_of(&[service(&[
            ("Greeter.Hello", "GET /v1/hello/{name}\nPOST /v1/hello *"),
            ("Greeter.Get", "GET /v1/{name=shelves/*/books/*}"),
            ("Greeter.Nested", "GET /v1/users/{user.id}/x"),
            ("Greeter.Files", "GET /files/**"),
            ("Greeter.Undelete", "POST /v1/{id}:undelete"),
        ])]);
        assert_eq!(
            bound(&rules, Method::GET, "/v1/hello/Ann"),
            Some(("Greeter.Hello".into(), b(&[("name", "Ann")])))
        );
        assert_eq!(rules[1].body.as_deref(), Some("*"));
        assert_eq!(
            bound(&rules, Method::POST, "/v1/hello").map(|m| m.0),
            Some("Greeter.Hello".into())
        );
        assert_eq!(
            bound(&rules, Method::GET, "/v1/shelves/1/books/2"),
            Some(("Greeter.Get".into(), b(&[("name", "shelves/1/books/2")])))
        );
        assert_eq!(
            bound(&rules, Method::GET, "/v1/users/7/x"),
            Some(("Greeter.Nested".into(), b(&[("user.id", "7")])))
        );
        assert_eq!(
            bound(&rules, Method::GET, "/files/a/b/c").map(|m| m.0),
            Some("Greeter.Files".into())
        );
        assert_eq!(
            bound(&rules, Method::POST, "/v1/9:undelete"),
            Some(("Greeter.Undelete".into(), b(&[("id", "9")])))
        );
        assert_eq!(bound(&rules, Method::GET, "/v1/hello"), None);
        assert_eq!(bound(&rules, Method::DELETE, "/v1/hello/Ann"), None);
        assert_eq!(bound(&rules, Method::GET, "/v1/shelves/1"), None);
    }

    #[test]
    fn bad_rules_are_skipped() {
        let rules = rules_of(&[service(&[(
            "Greeter.X",
            "GET no-slash\nG@T /x\nGET /{}\nGET /a//b\nGET /ok",
        )])]);
        assert_eq!(rules.len(), 1, "{rules:?}");
    }

    #[test]
    fn rules_cannot_claim_the_platform_or_backtrack() {
        let rules = rules_of(&[service(&[(
            "Greeter.X",
            "POST /auth/token\nGET /store/read\nGET /{path=**}\nGET /*/x\nGET /openapi.json\n\
             GET /a/**/b\nGET /a/{x=**}/{y=**}\nGET /mine/{rest=**}",
        )])]);
        assert_eq!(rules.len(), 1, "{rules:?}");
        assert_eq!(
            bound(&rules, Method::GET, "/mine/a/b").map(|m| m.1),
            Some(b(&[("rest", "a/b")]))
        );
        let long = format!("/mine{}", "/x".repeat(100_000));
        assert_eq!(bound(&rules, Method::GET, &long), None, "too long to match");
    }

    proptest::proptest! {
        #[test]
        fn any_template_and_path_match_without_panicking(template in "/[a-z{}=*/:.]{0,16}", path in "/[a-z0-9/:]{0,16}") {
            if let Some(t) = parse_template(&template) {
                let _ = t.matches(&path);
            }
        }
    }
}
