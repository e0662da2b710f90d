//! Auth on the server: who is calling ([`Caller`]), in which namespace, and whether the rules let
//! them through.
//!
//! | file | concern |
//! |---|---|
//! | `tokens.rs` | the Ed25519 key and the JWT access tokens it signs |
//! | `accounts.rs` | accounts (argon2 secrets) and refresh tokens, on the store |
//! | `rule_book.rs` | rules per namespace, on the store, cached |
//! | `guard.rs` | the tower layer that authenticates every gRPC call and checks the rules |
//!
//! Every door uses the same [`Authority`]: the gRPC [`guard`] in front of the platform services
//! and the proxy, the proxy itself for the service it calls, and the HTTP gateway. The decision
//! is [`micro_core::auth::decide`].

mod accounts;
pub(crate) mod guard;
mod rule_book;
mod tokens;

use std::{
    path::Path,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use micro_core::{
    Error,
    auth::{Account, AccountType, Resource, Rule, SCOPE_ADMIN, bearer, decide},
    metadata::DEFAULT_NAMESPACE,
    store::Store,
};

use accounts::Accounts;
use rule_book::RuleBook;
use tokens::TokenKeys;

const ID: &str = "micro.auth";

/// How the platform authenticates.
#[derive(Debug, Clone)]
pub struct AuthOptions {
    /// Check tokens and rules (`micro server --auth off` turns it off, for trusted networks and
    /// benchmarks only).
    pub enabled: bool,
    /// Create account `admin` (secret `micro`, scope `admin`) in namespace `micro` on the first
    /// start.
    pub default_account: bool,
    /// How long an access token lasts.
    pub token_ttl: Duration,
}

impl Default for AuthOptions {
    fn default() -> Self {
        Self {
            enabled: true,
            default_account: true,
            token_ttl: Duration::from_secs(15 * 60),
        }
    }
}

/// Who is calling: the namespace the call acts in, and the account, if a token came with it.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The namespace the call acts in.
    pub namespace: String,
    /// The account the token stands for.
    pub account: Option<Account>,
    /// The token itself, passed on to the services the call reaches.
    pub token: Option<String>,
    /// Whether auth was checked (off with `--auth off`, and for services served without the
    /// guard).
    pub(crate) enforced: bool,
}

impl Caller {
    /// A caller nobody checked (auth off, or a service served without the guard).
    pub(crate) fn unchecked(namespace: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            account: None,
            token: None,
            enforced: false,
        }
    }

    /// Lets an admin of the caller's namespace (or of `micro`) through; `what` names the
    /// operation in the refusal.
    pub fn require_admin(&self, what: &str) -> Result<(), Error> {
        if !self.enforced
            || self
                .account
                .as_ref()
                .is_some_and(|a| a.administers(&self.namespace))
        {
            return Ok(());
        }
        Err(refusal(
            self,
            &format!("{what} needs scope admin in namespace {:?}", self.namespace),
        ))
    }
}

/// A pair of tokens.
#[derive(Debug, Clone)]
pub struct Tokens {
    /// The JWT.
    pub access_token: String,
    /// Redeemable for a new access token.
    pub refresh_token: String,
    /// Unix seconds.
    pub created: i64,
    /// Unix seconds: when the access token expires.
    pub expiry: i64,
}

/// [`Authority::check`]'s answer.
#[derive(Debug)]
pub struct Checked {
    /// Allowed, or refused with 401 or 403.
    pub verdict: Result<(), Error>,
    /// The token's account, when the token holds.
    pub account: Option<Account>,
    /// Unix seconds: the token's expiry (0 without a valid token).
    pub expiry: i64,
}

/// The platform's auth: keys, accounts, rules.
#[derive(Clone)]
pub struct Authority {
    inner: Arc<Inner>,
}

struct Inner {
    options: AuthOptions,
    keys: TokenKeys,
    accounts: Accounts,
    rules: RuleBook,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority")
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl Authority {
    /// Auth on `store`, with its key at `key` (made if missing; `None`: a key for this process).
    pub async fn open(
        store: Arc<dyn Store>,
        key: Option<&Path>,
        options: AuthOptions,
    ) -> Result<Self, Error> {
        let keys = match key {
            Some(path) => TokenKeys::load_or_create(path)?,
            None => TokenKeys::ephemeral()?,
        };
        let authority = Self {
            inner: Arc::new(Inner {
                accounts: Accounts::new(store.clone()),
                rules: RuleBook::new(store),
                keys,
                options,
            }),
        };
        let accounts = &authority.inner.accounts;
        if authority.inner.options.default_account
            && accounts.first_time(DEFAULT_NAMESPACE, "accounts").await?
        {
            let admin = Account {
                id: "admin".to_owned(),
                name: "admin".to_owned(),
                kind: AccountType::User,
                issuer: DEFAULT_NAMESPACE.to_owned(),
                scopes: vec![SCOPE_ADMIN.to_owned()],
                metadata: Default::default(),
            };
            match accounts.create(&admin, "micro").await {
                Err(e) if e.code != 409 => return Err(e),
                _ => {}
            }
        }
        Ok(authority)
    }

    /// Whether tokens and rules are checked.
    pub fn enabled(&self) -> bool {
        self.inner.options.enabled
    }

    /// Who is calling, from the `Authorization` value (`Bearer TOKEN`) and the namespace the
    /// caller asked for. A bad token is refused (401), never ignored; a namespace other than the
    /// token's is refused (403) unless the account is an admin of `micro`.
    pub fn caller(
        &self,
        authorization: Option<&str>,
        asked: Option<&str>,
    ) -> Result<Caller, Error> {
        let asked = asked.map(str::trim).filter(|ns| !ns.is_empty());
        if let Some(ns) = asked {
            check_namespace(ns)?;
        }
        let token = authorization.map(bearer).unwrap_or("");
        // Without auth, or without a token: nobody, in the namespace asked for.
        let Some((account, _)) = self.holder(token)? else {
            return Ok(Caller {
                namespace: asked.unwrap_or(DEFAULT_NAMESPACE).to_owned(),
                account: None,
                token: (!token.is_empty()).then(|| token.to_owned()),
                enforced: self.enabled(),
            });
        };
        let namespace = match asked {
            Some(ns) if ns != account.issuer => {
                if account.issuer == DEFAULT_NAMESPACE && account.has_scope(SCOPE_ADMIN) {
                    ns.to_owned()
                } else {
                    return Err(Error::forbidden(
                        ID,
                        format!(
                            "the namespace asked for ({ns:?}) is not your token's ({:?}); log in to {ns:?} instead",
                            account.issuer
                        ),
                    ));
                }
            }
            _ => account.issuer.clone(),
        };
        Ok(Caller {
            namespace,
            account: Some(account),
            token: Some(token.to_owned()),
            enforced: true,
        })
    }

    /// The account `token` stands for, with the token's expiry (unix seconds); `None` without a
    /// token or with auth off, 401 for a token that does not hold.
    fn holder(&self, token: &str) -> Result<Option<(Account, i64)>, Error> {
        if token.is_empty() || !self.enabled() {
            return Ok(None);
        }
        self.inner.keys.verify_until(token).map(Some)
    }

    /// What the rules of the caller's namespace decide about `resource`: allowed, the rule that
    /// decided, and why.
    pub async fn decide(
        &self,
        caller: &Caller,
        resource: &Resource,
    ) -> Result<(bool, Option<Rule>, String), Error> {
        let rules = self.rules(&caller.namespace).await?;
        let d = decide(&rules, caller.account.as_ref(), &caller.namespace, resource);
        Ok((d.allowed, d.rule.cloned(), d.reason.into_owned()))
    }

    /// Lets the call through, or refuses it: 401 without an account, 403 with one.
    pub async fn authorize(&self, caller: &Caller, resource: &Resource) -> Result<(), Error> {
        if !self.enabled() {
            return Ok(());
        }
        let rules = self.rules(&caller.namespace).await?;
        let decision = decide(&rules, caller.account.as_ref(), &caller.namespace, resource);
        if decision.allowed {
            return Ok(());
        }
        Err(refusal(caller, &format!("{resource}: {}", decision.reason)))
    }

    /// What a service asks before its handler runs (`Auth.Check`): whether `token` (empty: none)
    /// may call `resource` in `namespace`. A refusal (401, 403) is an answer, not an error;
    /// the error is for a question that cannot be answered.
    pub async fn check(
        &self,
        token: &str,
        namespace: &str,
        resource: &Resource,
    ) -> Result<Checked, Error> {
        check_namespace(namespace)?;
        let (account, expiry) = match self.holder(bearer(token)) {
            Ok(Some((account, expiry))) => (Some(account), expiry),
            Ok(None) => (None, 0),
            Err(e) => {
                return Ok(Checked {
                    verdict: Err(e),
                    account: None,
                    expiry: 0,
                });
            }
        };
        let caller = Caller {
            namespace: namespace.to_owned(),
            account,
            token: None,
            enforced: self.enabled(),
        };
        let verdict = match self.authorize(&caller, resource).await {
            Err(e) if e.code == 401 || e.code == 403 => Err(e),
            Err(e) => return Err(e),
            Ok(()) => Ok(()),
        };
        Ok(Checked {
            verdict,
            account: caller.account,
            expiry,
        })
    }

    /// Fresh tokens for `account`.
    pub async fn tokens(&self, account: &Account) -> Result<Tokens, Error> {
        let created = now();
        let ttl = self.inner.options.token_ttl;
        Ok(Tokens {
            access_token: self.inner.keys.issue(account, created, ttl)?,
            refresh_token: self.inner.accounts.new_refresh(account).await?,
            created,
            expiry: created.saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX)),
        })
    }

    /// The account `token` stands for.
    pub fn inspect(&self, token: &str) -> Result<Account, Error> {
        self.inner.keys.verify(token)
    }

    /// The rules of `ns`, highest priority first.
    pub async fn rules(&self, ns: &str) -> Result<Arc<Vec<Rule>>, Error> {
        self.inner.rules.rules(ns, &self.inner.accounts).await
    }

    pub(crate) fn accounts(&self) -> &Accounts {
        &self.inner.accounts
    }

    pub(crate) async fn create_rule(&self, ns: &str, rule: &Rule) -> Result<(), Error> {
        self.inner
            .rules
            .create(ns, rule, &self.inner.accounts)
            .await
    }

    pub(crate) async fn delete_rule(&self, ns: &str, id: &str) -> Result<(), Error> {
        self.inner.rules.delete(ns, id, &self.inner.accounts).await
    }
}

/// 401 for a caller without an account, 403 for one with.
fn refusal(caller: &Caller, why: &str) -> Error {
    match &caller.account {
        None => Error::unauthorized(ID, format!("{why}; log in first (micro login)")),
        Some(account) => Error::forbidden(
            ID,
            format!("account {:?} may not do this: {why}", account.id),
        ),
    }
}

/// A namespace name: up to 63 characters, no `/`, no control characters.
fn check_namespace(ns: &str) -> Result<(), Error> {
    if ns.len() > 63 || ns.contains('/') || ns.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(Error::bad_request(
            ID,
            format!("invalid namespace {ns:?}: up to 63 characters, without / or spaces"),
        ));
    }
    Ok(())
}

#[async_trait::async_trait]
impl crate::runtime::ServiceAccounts for Authority {
    /// Account `service:NAME` with scope `service`, and a new secret each time: a service's
    /// processes log in with it. Its refresh tokens stay valid, so processes of the build it
    /// replaces keep working until they stop.
    async fn provision(&self, namespace: &str, name: &str) -> Result<(String, String), Error> {
        let accounts = &self.inner.accounts;
        let account = Account {
            id: format!("service:{name}"),
            name: format!("service:{name}"),
            kind: AccountType::Service,
            issuer: namespace.to_owned(),
            scopes: vec![micro_core::auth::SCOPE_SERVICE.to_owned()],
            metadata: Default::default(),
        };
        let secret = accounts.random_string(24)?;
        accounts.put_service(&account, &secret).await?;
        Ok((account.id, secret))
    }
}
