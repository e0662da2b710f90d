//! The rules engine: given a namespace's rules, the caller's account (if any) and the resource
//! called, which rule decides and how. Pure code, no I/O.
//!
//! The order, after micro v3, made explicit:
//! 1. keep the rules whose resource matches (`*` parts match anything; a path endpoint `/a/*`
//!    matches `/a` and everything under it);
//! 2. consider them highest priority first (at equal priority a denial comes first);
//! 3. a public rule (scope `""`) decides for anyone;
//! 4. without an account, skip the rule;
//! 5. an account of another namespace is refused, unless the rule's scope is `+`;
//! 6. scope `*` decides for any account of the namespace; any other scope decides for an
//!    account holding it;
//! 7. no rule decided: forbidden.

use std::borrow::Cow;

use super::{Access, Account, Resource, Rule, SCOPE_ACCOUNT, SCOPE_ANY_NAMESPACE, SCOPE_PUBLIC};

/// What the rules said, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision<'a> {
    /// Whether the call may proceed.
    pub allowed: bool,
    /// The rule that decided; `None` when no rule did.
    pub rule: Option<&'a Rule>,
    /// Why, in a few words (for `micro auth verify` and error details).
    pub reason: Cow<'static, str>,
}

impl<'a> Decision<'a> {
    fn by(rule: &'a Rule, reason: impl Into<Cow<'static, str>>) -> Self {
        Self {
            allowed: rule.access == Access::Granted,
            rule: Some(rule),
            reason: reason.into(),
        }
    }
}

/// Highest priority first; at equal priority, a denial first.
pub fn precedence(a: &Rule, b: &Rule) -> std::cmp::Ordering {
    b.priority
        .cmp(&a.priority)
        .then_with(|| (a.access == Access::Granted).cmp(&(b.access == Access::Granted)))
}

/// Decides whether `account` (or an anonymous caller) may reach `resource` in namespace `ns`.
///
/// Rules already in [`precedence`] order (as the server keeps them) are read in place, with no
/// allocation on the way to a grant.
pub fn decide<'a>(
    rules: &'a [Rule],
    account: Option<&Account>,
    ns: &str,
    resource: &Resource,
) -> Decision<'a> {
    if rules.is_sorted_by(|a, b| precedence(a, b).is_le()) {
        return decide_in_order(rules.iter(), account, ns, resource);
    }
    let mut ordered: Vec<&'a Rule> = rules.iter().collect();
    ordered.sort_by(|a, b| precedence(a, b));
    decide_in_order(ordered.into_iter(), account, ns, resource)
}

fn decide_in_order<'a>(
    rules: impl Iterator<Item = &'a Rule>,
    account: Option<&Account>,
    ns: &str,
    resource: &Resource,
) -> Decision<'a> {
    for rule in rules.filter(|r| matches(&r.resource, resource)) {
        if rule.scope == SCOPE_PUBLIC {
            return Decision::by(rule, "the rule is public");
        }
        let Some(account) = account else { continue };
        if account.issuer != ns {
            if rule.scope == SCOPE_ANY_NAMESPACE {
                return Decision::by(rule, "the rule applies to accounts of any namespace");
            }
            return Decision {
                allowed: false,
                rule: Some(rule),
                reason: format!(
                    "the account belongs to namespace {:?}, not {ns:?}",
                    account.issuer
                )
                .into(),
            };
        }
        if rule.scope == SCOPE_ACCOUNT || rule.scope == SCOPE_ANY_NAMESPACE {
            return Decision::by(rule, "the rule applies to any account");
        }
        if account.has_scope(&rule.scope) {
            return Decision::by(rule, format!("the account holds scope {:?}", rule.scope));
        }
    }
    Decision {
        allowed: false,
        rule: None,
        reason: if account.is_some() {
            "no rule grants this account access".into()
        } else {
            "no rule grants access without an account".into()
        },
    }
}

fn matches(rule: &Resource, resource: &Resource) -> bool {
    part(&rule.kind, &resource.kind)
        && part(&rule.name, &resource.name)
        && endpoint(&rule.endpoint, &resource.endpoint)
}

fn part(rule: &str, value: &str) -> bool {
    rule == "*" || rule == value
}

fn endpoint(rule: &str, value: &str) -> bool {
    if part(rule, value) {
        return true;
    }
    // `/a/*` covers `/a`, `/a/` and everything below.
    match rule.strip_suffix("/*") {
        Some(prefix) if rule.starts_with('/') => {
            value == prefix
                || value
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with('/'))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(id: &str, scope: &str, resource: &str, access: Access, priority: i32) -> Rule {
        Rule {
            id: id.to_owned(),
            scope: scope.to_owned(),
            resource: Resource::parse(resource).unwrap(),
            access,
            priority,
        }
    }

    fn account(issuer: &str, scopes: &[&str]) -> Account {
        Account {
            id: "someone".to_owned(),
            name: "someone".to_owned(),
            issuer: issuer.to_owned(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            ..Account::default()
        }
    }

    use Access::{Denied, Granted};

    /// (case, rules, account, resource, allowed, deciding rule)
    type Case<'a> = (
        &'a str,
        Vec<Rule>,
        Option<&'a Account>,
        &'a str,
        bool,
        Option<&'a str>,
    );

    #[test]
    fn the_table() {
        let call = "service:helloworld:Helloworld.Call";
        let public = rule("default", "", "*:*:*", Granted, 0);
        let logged_in = rule("onlyloggedin", "*", "*:*:*", Granted, 0);
        let admins = rule("admins", "admin", "*:*:*", Granted, 0);
        let other_ns = rule("anyns", "+", "*:*:*", Granted, 0);
        let deny_hw_high = rule("nohw", "", "service:helloworld:*", Denied, 10);
        let deny_hw_low = rule("nohw", "", "service:helloworld:*", Denied, -10);
        let grant_hw = rule("hw", "", "service:helloworld:*", Granted, 0);
        let web = rule("web", "", "service:web:/static/*", Granted, 0);
        let alice = account("micro", &["basic"]);
        let admin = account("micro", &["admin"]);
        let stranger = account("random", &["admin"]);

        // (case, rules, account, resource, allowed, deciding rule)
        let cases: Vec<Case<'_>> = vec![
            ("no rules", vec![], Some(&admin), call, false, None),
            ("no rules, anonymous", vec![], None, call, false, None),
            (
                "public, anonymous",
                vec![public.clone()],
                None,
                call,
                true,
                Some("default"),
            ),
            (
                "public, account",
                vec![public.clone()],
                Some(&alice),
                call,
                true,
                Some("default"),
            ),
            (
                "* without account",
                vec![logged_in.clone()],
                None,
                call,
                false,
                None,
            ),
            (
                "* with account",
                vec![logged_in.clone()],
                Some(&alice),
                call,
                true,
                Some("onlyloggedin"),
            ),
            (
                "scope held",
                vec![admins.clone()],
                Some(&admin),
                call,
                true,
                Some("admins"),
            ),
            (
                "scope missing",
                vec![admins.clone()],
                Some(&alice),
                call,
                false,
                None,
            ),
            (
                "scope, anonymous",
                vec![admins.clone()],
                None,
                call,
                false,
                None,
            ),
            (
                "deny at higher priority wins",
                vec![grant_hw.clone(), deny_hw_high.clone()],
                None,
                call,
                false,
                Some("nohw"),
            ),
            (
                "deny at lower priority loses",
                vec![grant_hw.clone(), deny_hw_low.clone()],
                None,
                call,
                true,
                Some("hw"),
            ),
            (
                "deny wins a tie",
                vec![
                    grant_hw.clone(),
                    rule("nohw", "", "service:helloworld:*", Denied, 0),
                ],
                None,
                call,
                false,
                Some("nohw"),
            ),
            (
                "other service unaffected",
                vec![deny_hw_high.clone(), public.clone()],
                None,
                "service:store:Store.Read",
                true,
                Some("default"),
            ),
            (
                "path prefix",
                vec![web.clone()],
                None,
                "service:web:/static/app.js",
                true,
                Some("web"),
            ),
            (
                "path prefix, deeper",
                vec![web.clone()],
                None,
                "service:web:/static/js/app.js",
                true,
                Some("web"),
            ),
            (
                "path prefix, itself",
                vec![web.clone()],
                None,
                "service:web:/static",
                true,
                Some("web"),
            ),
            (
                "path prefix, sibling",
                vec![web.clone()],
                None,
                "service:web:/staticx",
                false,
                None,
            ),
            (
                "path prefix, elsewhere",
                vec![web.clone()],
                None,
                "service:web:/admin",
                false,
                None,
            ),
            (
                "exact endpoint",
                vec![rule("tok", "", "service:auth:Auth.Token", Granted, 0)],
                None,
                "service:auth:Auth.Token",
                true,
                Some("tok"),
            ),
            (
                "exact endpoint miss",
                vec![rule("tok", "", "service:auth:Auth.Token", Granted, 0)],
                None,
                "service:auth:Auth.Generate",
                false,
                None,
            ),
            (
                "other namespace refused",
                vec![logged_in.clone()],
                Some(&stranger),
                call,
                false,
                Some("onlyloggedin"),
            ),
            (
                "other namespace, scope held, refused",
                vec![admins.clone()],
                Some(&stranger),
                call,
                false,
                Some("admins"),
            ),
            (
                "other namespace with +",
                vec![other_ns.clone()],
                Some(&stranger),
                call,
                true,
                Some("anyns"),
            ),
            (
                "other namespace, public",
                vec![public.clone()],
                Some(&stranger),
                call,
                true,
                Some("default"),
            ),
            (
                "+ in own namespace",
                vec![other_ns.clone()],
                Some(&alice),
                call,
                true,
                Some("anyns"),
            ),
        ];
        for (case, rules, account, resource, allowed, by) in cases {
            let d = decide(
                &rules,
                account,
                "micro",
                &Resource::parse(resource).unwrap(),
            );
            assert_eq!(d.allowed, allowed, "{case}: {d:?}");
            assert_eq!(d.rule.as_ref().map(|r| r.id.as_str()), by, "{case}: {d:?}");
        }
    }

    #[test]
    fn admin_rights() {
        assert!(account("micro", &["admin"]).administers("micro"));
        assert!(account("micro", &["admin"]).administers("random"));
        assert!(account("random", &["admin"]).administers("random"));
        assert!(!account("random", &["admin"]).administers("micro"));
        assert!(!account("random", &["service"]).administers("random"));
        assert!(account("random", &["service"]).uses("random"));
        assert!(!account("random", &["service"]).uses("micro"));
        assert!(account("random", &["admin"]).uses("random"));
        assert!(!account("random", &["admin"]).sees_all());
        assert!(account("micro", &["admin"]).sees_all());
        assert!(!account("micro", &["service"]).sees_all());
        assert!(!account("micro", &["service"]).administers("random"));
        assert!(!account("micro", &["basic"]).administers("micro"));
    }

    #[test]
    fn resources_parse() {
        assert!(Resource::parse("service:a").is_err());
        assert!(Resource::parse("service::x").is_err());
        assert_eq!(
            Resource::parse("service:web:/a:b").unwrap().endpoint,
            "/a:b"
        );
    }
}
