//! Auth on the server: who is calling ([`Caller`]), in which namespace, and whether the rules let
//! them through.
//!
//! | file | concern |
//! |---|---|
//! | `tokens.rs` | the Ed25519 key and the JWT access tokens it signs |
//! | `accounts.rs` | accounts (argon2 secrets) and refresh tokens, on the store |
//! | `rule_book.rs` | rules per namespace, on the store, cached |
//! | `guard.rs` | the tower layer that authenticates every gRPC call and checks the rules |
//! | `revoked.rs` | revocation: a deleted account's (or old secret's) tokens stop working |
//! | `throttle.rs` | back-off for failed logins, per account and per peer |
//!
//! Every door uses the same [`Authority`]: the gRPC `guard` in front of the platform services
//! and the proxy, the proxy itself for the service it calls, and the HTTP gateway. The decision
//! is [`micro_core::auth::decide`].

mod accounts;
pub(crate) mod guard;
mod revoked;
mod rule_book;
mod throttle;
mod tokens;

use std::{
    collections::HashSet,
    net::IpAddr,
    path::Path,
    sync::{Arc, RwLock},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use micro_core::{
    Error,
    auth::{Account, AccountType, Resource, Rule, SCOPE_ADMIN, bearer, decide},
    metadata::{ALL_NAMESPACES, DEFAULT_NAMESPACE},
    store::Store,
};

use accounts::Accounts;
use revoked::Revocations;
use rule_book::RuleBook;
use throttle::Throttle;
use tokens::TokenKeys;

/// The peer address an HTTP door of this process forwards with a call, and its proof.
pub(crate) const PEER_HEADER: &str = "micro-peer";
pub(crate) const PEER_PROOF_HEADER: &str = "micro-peer-proof";

/// The marker a namespace gets when a `micro` admin creates it (its first account or rule).
const CREATED: &str = "namespace";
/// The most namespaces remembered as existing, or as missing (past it, each is looked up on
/// the store).
const KNOWN_CAP: usize = 65_536;
/// At most this many passed-on tokens are remembered (then the memory starts over).
const PASSED_ON_CAP: usize = 4096;
/// How long a namespace found missing is taken to be missing.
const MISSING_FOR: Duration = Duration::from_secs(1);

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
    /// Where the call came from, when an HTTP door knows (failed logins are counted per peer).
    pub(crate) peer: Option<IpAddr>,
}

impl Caller {
    /// A caller nobody checked (auth off, a service served without the guard, or a process
    /// calling nodes itself, as `micro bench --direct` does).
    pub fn unchecked(namespace: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            account: None,
            token: None,
            enforced: false,
            peer: None,
        }
    }

    /// Lets an admin of the caller's namespace (or of `micro`) through; `what` names the
    /// operation in the refusal.
    pub fn require_admin(&self, what: &str) -> Result<(), Error> {
        self.require(what, "scope admin", |a, ns| a.administers(ns))
    }

    /// Lets an admin or a `service` of the caller's namespace (or an admin of `micro`)
    /// through: the store and config.
    pub fn require_user(&self, what: &str) -> Result<(), Error> {
        self.require(what, "scope admin or service", |a, ns| a.uses(ns))
    }

    /// Lets only an admin of `micro` through: the runtime, which builds and runs code as the
    /// server's own user (until builds are sandboxed, running code is the server's power).
    pub fn require_platform_admin(&self, what: &str) -> Result<(), Error> {
        if !self.enforced || self.account.as_ref().is_some_and(Account::sees_all) {
            return Ok(());
        }
        let acting = if self.namespace == DEFAULT_NAMESPACE {
            String::new()
        } else {
            format!(" (acting in namespace {:?})", self.namespace)
        };
        Err(refusal(
            self,
            &format!("{what} needs scope admin in namespace \"micro\"{acting}"),
        ))
    }

    /// Lets through whom `allowed` lets through in the caller's namespace; `needs` says what
    /// the refusal names as missing there.
    fn require(
        &self,
        what: &str,
        needs: &str,
        allowed: impl Fn(&Account, &str) -> bool,
    ) -> Result<(), Error> {
        if !self.enforced
            || self
                .account
                .as_ref()
                .is_some_and(|a| allowed(a, &self.namespace))
        {
            return Ok(());
        }
        Err(refusal(
            self,
            &format!("{what} needs {needs} in namespace {:?}", self.namespace),
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
    revocations: Revocations,
    /// Failed logins per account and peer (`NS/handle@peer`).
    pair_logins: Throttle,
    /// Failed logins per account, from anywhere (`NS/handle`).
    account_logins: Throttle,
    /// Failed logins per peer address.
    peer_logins: Throttle,
    /// Namespaces known to exist (a namespace is never deleted, so this only grows).
    known: RwLock<HashSet<String>>,
    /// Tokens passed on to services, by (caller's token, service).
    passed_on: RwLock<std::collections::HashMap<(String, String), String>>,
    /// Namespaces found missing, and when: asked again after a second (another server may
    /// have made one), so strangers naming random namespaces cost a map read, not the store.
    missing: std::sync::Mutex<std::collections::HashMap<String, Instant>>,
    /// Vouches for the peer address this process's own HTTP doors forward with a call.
    peers: ring::hmac::Key,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority")
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

pub(crate) fn now() -> i64 {
    now_ms().div_euclid(1000)
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
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
        let peers =
            ring::hmac::Key::generate(ring::hmac::HMAC_SHA256, &ring::rand::SystemRandom::new())
                .map_err(|_| Error::internal(ID, "no randomness for the peer key"))?;
        Self::with_keys(store, keys, peers, options).await
    }

    /// Auth on a `store` other servers share, signing with the key they share on it (made by
    /// the first): a token one of them issues is good at all of them.
    /// With `key`, the token key is that file instead (every server given the same one): the
    /// operator keeps it off the engine.
    pub async fn open_shared(
        store: Arc<dyn Store>,
        key: Option<&Path>,
        options: AuthOptions,
    ) -> Result<Self, Error> {
        // Servers vouch for the callers they pass on to each other with one shared key: from
        // the operator's token key file when there is one (nothing on the engine), else on the
        // store.
        let (keys, peers) = match key {
            Some(path) => {
                let keys = TokenKeys::load_or_create(path)?;
                micro_backends::agree_on_key_file(&*store, "token-key-file", path).await?;
                let bytes = std::fs::read(path).map_err(|e| {
                    Error::internal(ID, format!("cannot read {}: {e}", path.display()))
                })?;
                let mut derive = ring::digest::Context::new(&ring::digest::SHA256);
                derive.update(b"micro peers\0");
                derive.update(&bytes);
                (keys, derive.finish().as_ref().to_vec())
            }
            None => {
                let keys = TokenKeys::shared(&*store).await?;
                let peers = micro_backends::shared_key(&*store, "peers", || {
                    let mut key = vec![0u8; 32];
                    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut key)
                        .map_err(|_| Error::internal(ID, "no randomness for the peer key"))?;
                    Ok(key)
                })
                .await?;
                (keys, peers)
            }
        };
        let peers = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &peers);
        Self::with_keys(store, keys, peers, options).await
    }

    async fn with_keys(
        store: Arc<dyn Store>,
        keys: TokenKeys,
        peers: ring::hmac::Key,
        options: AuthOptions,
    ) -> Result<Self, Error> {
        let authority = Self {
            inner: Arc::new(Inner {
                accounts: Accounts::new(store.clone()),
                rules: RuleBook::new(store.clone()),
                revocations: Revocations::new(store),
                pair_logins: Throttle::new(5, Duration::from_secs(1), Duration::from_secs(60)),
                account_logins: Throttle::new(50, Duration::from_secs(1), Duration::from_secs(10)),
                peer_logins: Throttle::new(20, Duration::from_secs(1), Duration::from_secs(60)),
                known: RwLock::default(),
                passed_on: RwLock::default(),
                missing: std::sync::Mutex::default(),
                peers,
                keys,
                options,
            }),
        };
        authority.inner.revocations.reload().await?;
        let accounts = &authority.inner.accounts;
        if authority.inner.options.default_account
            && accounts.first_time(DEFAULT_NAMESPACE, "accounts").await?
        {
            match accounts.create(&micro_admin("admin"), "micro").await {
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
    /// caller asked for. A bad, expired or revoked token is refused (401), never ignored; a
    /// namespace other than the token's is refused (403) unless the account is an admin of
    /// `micro`, and so is `*` (every namespace); a caller without an account is refused (404)
    /// in a namespace that does not exist, so nobody registers, publishes or stores where no
    /// `micro` admin made room.
    pub async fn caller(
        &self,
        authorization: Option<&str>,
        asked: Option<&str>,
    ) -> Result<Caller, Error> {
        self.caller_as_of(authorization, asked, now()).await
    }

    /// [`Self::caller`] with the token's expiry judged at `at` (Unix seconds): a stream let in
    /// at `at` is checked again for revocation and rules, not for the token's age — it outlives
    /// the token it opened with, as a connection outlives its login.
    pub(crate) async fn caller_as_of(
        &self,
        authorization: Option<&str>,
        asked: Option<&str>,
        at: i64,
    ) -> Result<Caller, Error> {
        let caller = self.identify(authorization, asked, at)?;
        // An account's own namespace exists (it holds the account), and an admin of `micro`
        // acts wherever it likes; a caller without an account needs a namespace that exists.
        if caller.enforced && caller.account.is_none() {
            self.require_namespace(&caller.namespace).await?;
        }
        Ok(caller)
    }

    /// [`Self::caller`] without the look-up of the namespace.
    fn identify(
        &self,
        authorization: Option<&str>,
        asked: Option<&str>,
        at: i64,
    ) -> Result<Caller, Error> {
        let asked = asked.map(str::trim).filter(|ns| !ns.is_empty());
        if let Some(ns) = asked {
            check_namespace(ns)?;
        }
        // A scheme other than Bearer (Basic, say) is a mistake worth naming.
        if self.enabled()
            && let Some((scheme, _)) = authorization.and_then(|a| a.trim().split_once(' '))
            && !scheme.eq_ignore_ascii_case("bearer")
        {
            let named = if scheme.len() <= 20 && scheme.bytes().all(|b| b.is_ascii_alphanumeric()) {
                format!("{scheme:?}")
            } else {
                "unknown".to_owned()
            };
            return Err(Error::unauthorized(
                ID,
                format!("the Authorization scheme is {named}; send Bearer TOKEN"),
            ));
        }
        let token = authorization.map(bearer).unwrap_or("");
        // Without auth, or without a token: nobody, in the namespace asked for.
        let Some((account, _)) = self.holder_at(token, None, at)? else {
            if asked == Some(ALL_NAMESPACES) && self.enabled() {
                return Err(Error::unauthorized(
                    ID,
                    "namespace \"*\" (every namespace) is for admins of micro; log in first (micro login)",
                ));
            }
            return Ok(Caller {
                namespace: asked.unwrap_or(DEFAULT_NAMESPACE).to_owned(),
                account: None,
                token: (!token.is_empty()).then(|| token.to_owned()),
                enforced: self.enabled(),
                peer: None,
            });
        };
        let namespace = match asked {
            Some(ns) if ns != account.issuer => {
                if account.sees_all() {
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
            peer: None,
        })
    }

    /// The account `token` stands for, with the token's expiry (unix seconds); `None` without a
    /// token or with auth off, 401 for a token that does not hold or was revoked.
    fn holder(&self, token: &str) -> Result<Option<(Account, i64)>, Error> {
        self.holder_at(token, None, now())
    }

    /// [`Self::holder`] at a door that is `door` (`NAMESPACE/SERVICE`, a service's own door
    /// asking `Auth.Check`) or the platform's (`None`): a token passed on to one service opens
    /// that service's door and no other.
    fn holder_at(
        &self,
        token: &str,
        door: Option<&str>,
        at: i64,
    ) -> Result<Option<(Account, i64)>, Error> {
        let Some(holder) = self.verified(token, at)? else {
            return Ok(None);
        };
        if let Some(audience) = &holder.audience
            && door != Some(audience.as_str())
        {
            return Err(Error::unauthorized(
                ID,
                format!("this token was passed on to service {audience:?} and opens nothing else"),
            ));
        }
        Ok(Some((holder.account, holder.expiry)))
    }

    /// What `token` says, if it holds and was not revoked; `None` without a token or with auth
    /// off. A token passed on to one service (with an audience) is answered as it is.
    fn verified(&self, token: &str, at: i64) -> Result<Option<tokens::Holder>, Error> {
        if token.is_empty() || !self.enabled() {
            return Ok(None);
        }
        let holder = self.inner.keys.verify_at(token, at)?;
        let account = &holder.account;
        if self.inner.revocations.voids(
            &account.issuer,
            &account.id,
            holder.generation,
            holder.issued_ms,
        ) {
            return Err(Error::unauthorized(
                ID,
                "the token was revoked (its account was deleted or its secret changed): log in again (micro login)",
            ));
        }
        Ok(Some(holder))
    }

    /// The token the proxy passes on to `service` of `namespace` for a caller holding `token`:
    /// one that opens that service of that namespace only (its own door checks it with
    /// `Auth.Check`), so a service never holds a token it could replay against the platform or
    /// another service. Remembered per token and service; `None` when `token` does not hold.
    pub fn pass_on(&self, token: &str, namespace: &str, service: &str) -> Option<String> {
        let audience = format!("{namespace}/{service}");
        let key = (token.to_owned(), audience.clone());
        if let Some(made) = self
            .inner
            .passed_on
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Some(made.clone());
        }
        let holder = self.verified(token, now()).ok().flatten()?;
        if holder.audience.is_some() {
            return None;
        }
        let made = self.inner.keys.issue_for(&holder, &audience).ok()?;
        let mut passed_on = self
            .inner
            .passed_on
            .write()
            .unwrap_or_else(|p| p.into_inner());
        if passed_on.len() >= PASSED_ON_CAP {
            passed_on.clear();
        }
        passed_on.insert(key, made.clone());
        Some(made)
    }

    /// Whether namespace `ns` exists: `micro` and `*` always; any other once a `micro` admin
    /// created its first account or rule. With auth off, every namespace exists.
    pub async fn exists(&self, ns: &str) -> Result<bool, Error> {
        if !self.enabled() || ns == DEFAULT_NAMESPACE || ns == ALL_NAMESPACES {
            return Ok(true);
        }
        if self
            .inner
            .known
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(ns)
        {
            return Ok(true);
        }
        let recently_missing = self
            .inner
            .missing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(ns)
            .is_some_and(|at| at.elapsed() < MISSING_FOR);
        if recently_missing {
            return Ok(false);
        }
        let accounts = &self.inner.accounts;
        // Namespaces made before the marker existed have accounts or rules of their own.
        let exists = accounts.marked(ns, CREATED).await?
            || accounts.marked(ns, rule_book::MARKER).await?
            || accounts.any(ns).await?;
        if exists {
            let mut known = self.inner.known.write().unwrap_or_else(|p| p.into_inner());
            if known.len() < KNOWN_CAP {
                known.insert(ns.to_owned());
            }
        } else {
            let mut missing = self.inner.missing.lock().unwrap_or_else(|p| p.into_inner());
            if missing.len() >= KNOWN_CAP {
                missing.retain(|_, at| at.elapsed() < MISSING_FOR);
                if missing.len() >= KNOWN_CAP {
                    missing.clear();
                }
            }
            missing.insert(ns.to_owned(), Instant::now());
        }
        Ok(exists)
    }

    /// Refuses a namespace that does not exist (404), saying how one is made.
    async fn require_namespace(&self, ns: &str) -> Result<(), Error> {
        if self.exists(ns).await? {
            return Ok(());
        }
        Err(Error::not_found(
            ID,
            format!(
                "namespace {ns:?} does not exist; an admin of micro creates it with its first account \
                 (micro auth create account ID --namespace {ns})"
            ),
        ))
    }

    /// Marks namespace `ns` as made (by its first account or rule).
    async fn create_namespace(&self, ns: &str) -> Result<(), Error> {
        if ns != DEFAULT_NAMESPACE {
            check_namespace(ns)?;
            if ns == ALL_NAMESPACES {
                return Err(Error::bad_request(
                    ID,
                    "\"*\" names every namespace; it cannot hold accounts or rules",
                ));
            }
            self.inner.accounts.first_time(ns, CREATED).await?;
            self.inner
                .missing
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(ns);
        }
        Ok(())
    }

    /// Rereads what other servers sharing the store revoked, every second, for as long as the
    /// task runs.
    pub fn spawn_refresh(&self) -> tokio::task::JoinHandle<()> {
        let authority = self.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(revoked::REFRESH);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                if let Err(e) = authority.inner.revocations.reload().await {
                    tracing::warn!("cannot reread revoked tokens: {}", e.detail);
                }
            }
        })
    }

    /// The proof that this process forwards `peer` (metadata `micro-peer-proof`).
    pub(crate) fn vouch(&self, peer: IpAddr) -> String {
        let tag = ring::hmac::sign(&self.inner.peers, peer.to_string().as_bytes());
        tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The peer a call came from: the one this process's own gateway forwarded (with its
    /// proof), else the connection's.
    pub(crate) fn peer_of<T>(&self, req: &tonic::Request<T>) -> Option<IpAddr> {
        let text = |key| req.metadata().get(key).and_then(|v| v.to_str().ok());
        if let (Some(peer), Some(proof)) = (text(PEER_HEADER), text(PEER_PROOF_HEADER))
            && let Ok(peer) = peer.parse::<IpAddr>()
            && self.vouch(peer) == proof
        {
            return Some(peer);
        }
        req.remote_addr().map(|a| a.ip())
    }

    /// The account `handle` (id or name) of `ns` names, if `secret` is its secret. Failed
    /// logins close the account, and the peer they came from, for a while (429).
    pub async fn login(
        &self,
        ns: &str,
        handle: &str,
        secret: &str,
        peer: Option<IpAddr>,
    ) -> Result<Account, Error> {
        // A handle no account could have is refused before it is counted anywhere.
        micro_core::auth::check_id("account", handle)?;
        // Counted per account and peer (an attacker elsewhere cannot lock the owner out), per
        // peer (one source guessing many accounts), and per account overall, more loosely
        // (many sources guessing one account).
        let peer_key = peer.map_or_else(|| "unknown".to_owned(), |p| p.to_string());
        let pair_key = format!("{ns}/{handle}@{peer_key}");
        let account_key = format!("{ns}/{handle}");
        let now = Instant::now();
        let closed = [
            (&self.inner.pair_logins, &pair_key),
            (&self.inner.peer_logins, &peer_key),
            (&self.inner.account_logins, &account_key),
        ]
        .into_iter()
        .filter_map(|(throttle, key)| throttle.closed_for(key, now))
        .max();
        if let Some(wait) = closed {
            return Err(Error::new(
                ID,
                429,
                format!(
                    "too many failed logins; try again in {} s",
                    wait.as_secs().max(1)
                ),
            ));
        }
        // Counted as failed before the secret is judged, so a burst of guesses sent at once
        // meets the throttle too; a success is forgiven.
        self.inner.pair_logins.failed(&pair_key, now);
        self.inner.peer_logins.failed(&peer_key, now);
        self.inner.account_logins.failed(&account_key, now);
        let checked = self.inner.accounts.check(ns, handle, secret).await;
        if !matches!(&checked, Err(e) if e.code == 401) {
            let now = Instant::now();
            self.inner.pair_logins.forgive(&pair_key, now);
            self.inner.peer_logins.forgive(&peer_key, now);
            self.inner.account_logins.forgive(&account_key, now);
        }
        if checked.is_ok() {
            self.inner.pair_logins.succeeded(&pair_key);
        }
        checked
    }

    /// Creates `account` with `secret` (and its namespace, if it is the first).
    pub(crate) async fn create_account(
        &self,
        account: &Account,
        secret: &str,
    ) -> Result<(), Error> {
        self.create_namespace(&account.issuer).await?;
        self.inner.accounts.create(account, secret).await
    }

    /// Recovery for an operator with the server's files: gives account `id` of `micro` the
    /// secret `secret` and scope `admin`, making it if it is gone; its older tokens stop
    /// working. (No rule can lock an admin of `micro` out, so this is all a lost platform
    /// needs.)
    pub async fn recover(&self, id: &str, secret: &str) -> Result<(), Error> {
        let accounts = &self.inner.accounts;
        match accounts.get(DEFAULT_NAMESPACE, id).await {
            Ok(account) if account.has_scope(SCOPE_ADMIN) => {
                self.set_secret(DEFAULT_NAMESPACE, id, secret).await
            }
            Ok(_) => Err(Error::conflict(
                ID,
                format!("account {id:?} of micro exists without scope admin; recover another id"),
            )),
            Err(e) if e.code == 404 => accounts.create(&micro_admin(id), secret).await,
            Err(e) => Err(e),
        }
    }

    /// Deletes account `id` of `ns`; its tokens stop working at once.
    pub(crate) async fn delete_account(&self, ns: &str, id: &str) -> Result<(), Error> {
        // Revoked first: if the account cannot be deleted after, its tokens are still void. And
        // again after: a login that checked the old account meanwhile got the first new
        // generation, which this voids.
        self.inner.accounts.get(ns, id).await?;
        self.inner.revocations.revoke(ns, id).await?;
        self.inner.accounts.delete(ns, id).await?;
        self.inner.revocations.revoke(ns, id).await
    }

    /// Sets the secret of account `id` of `ns`; tokens issued before stop working.
    pub(crate) async fn set_secret(&self, ns: &str, id: &str, secret: &str) -> Result<(), Error> {
        self.inner.accounts.get(ns, id).await?;
        self.inner.revocations.revoke(ns, id).await?;
        self.inner.accounts.set_secret(ns, id, secret).await?;
        // Again after the change: a login with the old secret while it was being made got the
        // first new generation, which this voids.
        self.inner.revocations.revoke(ns, id).await
    }

    /// What the rules of the caller's namespace decide about `resource`: allowed, the rule that
    /// decided, and why.
    pub async fn decide(
        &self,
        caller: &Caller,
        resource: &Resource,
    ) -> Result<(bool, Option<Rule>, String), Error> {
        if beyond_rules(caller, resource) {
            return Ok((
                true,
                None,
                "no rule decides this: logging in, an admin managing auth, and an admin of micro \
                 using another namespace's runtime are always allowed"
                    .to_owned(),
            ));
        }
        let rules = self.rules(&caller.namespace).await?;
        let d = decide(&rules, caller.account.as_ref(), &caller.namespace, resource);
        Ok((d.allowed, d.rule.cloned(), d.reason.into_owned()))
    }

    /// Lets the call through, or refuses it: 401 without an account, 403 with one.
    ///
    /// Two things no rule can take away, so no rule change locks anyone out: logging in
    /// (`auth` `Auth.Token`, and `Auth.Inspect`, `Auth.Check`), and an admin of the namespace
    /// (or of `micro`) managing its accounts and rules.
    pub async fn authorize(&self, caller: &Caller, resource: &Resource) -> Result<(), Error> {
        if !self.enabled() || beyond_rules(caller, resource) {
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
        if !self.exists(namespace).await? {
            return Ok(Checked {
                verdict: Err(Error::forbidden(
                    ID,
                    format!("namespace {namespace:?} does not exist"),
                )),
                account: None,
                expiry: 0,
            });
        }
        let here = format!("{namespace}/{}", resource.name);
        let verified = self.holder_at(bearer(token), Some(&here), now());
        let (account, expiry) = match verified {
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
            peer: None,
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

    /// The account a refresh token stands for, unless it was revoked: one issued before the
    /// account's secret changed, or before it was deleted (even if an account of the same id
    /// was made since), is refused.
    pub(crate) async fn redeem(&self, refresh: &str) -> Result<Account, Error> {
        let (account, generation) = self.inner.accounts.redeem(refresh).await?;
        let current = self
            .inner
            .revocations
            .generation(&account.issuer, &account.id)
            .await?;
        if generation < current {
            return Err(Error::unauthorized(
                ID,
                "the refresh token was revoked (its account's secret changed or it was deleted): log in again (micro login)",
            ));
        }
        Ok(account)
    }

    /// Fresh tokens for `account`.
    pub async fn tokens(&self, account: &Account) -> Result<Tokens, Error> {
        let created_ms = now_ms();
        let created = created_ms.div_euclid(1000);
        let ttl = self.inner.options.token_ttl;
        // The account's generation as the store has it: a revocation through any server since
        // voids this token, whatever the clocks say.
        let generation = self
            .inner
            .revocations
            .generation(&account.issuer, &account.id)
            .await?;
        Ok(Tokens {
            access_token: self
                .inner
                .keys
                .issue(account, created_ms, ttl, generation)?,
            refresh_token: self.inner.accounts.new_refresh(account, generation).await?,
            created,
            expiry: created.saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX)),
        })
    }

    /// The account `token` stands for (401 when it does not hold or was revoked).
    pub fn inspect(&self, token: &str) -> Result<Account, Error> {
        if !self.enabled() {
            return self.inner.keys.verify(token);
        }
        self.holder(token)?
            .map(|(account, _)| account)
            .ok_or_else(|| Error::unauthorized(ID, "no token to inspect"))
    }

    /// The rules of `ns`, highest priority first.
    pub async fn rules(&self, ns: &str) -> Result<Arc<Vec<Rule>>, Error> {
        self.inner.rules.rules(ns, &self.inner.accounts).await
    }

    pub(crate) fn accounts(&self) -> &Accounts {
        &self.inner.accounts
    }

    pub(crate) async fn create_rule(&self, ns: &str, rule: &Rule) -> Result<(), Error> {
        self.create_namespace(ns).await?;
        self.inner
            .rules
            .create(ns, rule, &self.inner.accounts)
            .await
    }

    pub(crate) async fn delete_rule(&self, ns: &str, id: &str) -> Result<(), Error> {
        self.inner.rules.delete(ns, id, &self.inner.accounts).await
    }
}

/// User account `id` of `micro` with scope `admin`: the default account, and what recovery
/// makes.
fn micro_admin(id: &str) -> Account {
    Account {
        id: id.to_owned(),
        name: id.to_owned(),
        kind: AccountType::User,
        issuer: DEFAULT_NAMESPACE.to_owned(),
        scopes: vec![SCOPE_ADMIN.to_owned()],
        metadata: Default::default(),
    }
}

/// Whether `resource` is one no rule decides for `caller` (see [`Authority::authorize`]).
fn beyond_rules(caller: &Caller, resource: &Resource) -> bool {
    if resource.kind != "service" {
        return false;
    }
    // The runtime is for admins of `micro` only, in every namespace: another namespace's rules
    // could take it from them and give it to nobody else. `micro`'s own rules still decide in
    // `micro`, where an operator may hold an admin account (a CI's, say) to less.
    if resource.name == "runtime" {
        return caller.namespace != micro_core::metadata::DEFAULT_NAMESPACE
            && caller
                .account
                .as_ref()
                .is_some_and(|a| a.administers(micro_core::metadata::DEFAULT_NAMESPACE));
    }
    if resource.name != "auth" {
        return false;
    }
    matches!(
        resource.endpoint.as_str(),
        "Auth.Token" | "Auth.Inspect" | "Auth.Check"
    ) || caller
        .account
        .as_ref()
        .is_some_and(|a| a.administers(&caller.namespace))
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

#[cfg(test)]
mod beyond_rules_tests {
    use super::*;

    fn caller(issuer: &str, scope: &str, namespace: &str) -> Caller {
        Caller {
            namespace: namespace.to_owned(),
            account: Some(Account {
                id: "a".to_owned(),
                name: "a".to_owned(),
                kind: micro_core::auth::AccountType::User,
                issuer: issuer.to_owned(),
                scopes: vec![scope.to_owned()],
                metadata: Default::default(),
            }),
            token: None,
            enforced: true,
            peer: None,
        }
    }

    #[test]
    fn only_micros_admin_elsewhere_uses_the_runtime_beyond_the_rules() {
        let runtime = Resource::service("runtime", "Runtime.Read");
        assert!(beyond_rules(&caller("micro", "admin", "team"), &runtime));
        assert!(
            !beyond_rules(&caller("micro", "admin", "micro"), &runtime),
            "micro's rules decide in micro"
        );
        assert!(!beyond_rules(&caller("team", "admin", "team"), &runtime));
        assert!(!beyond_rules(&caller("micro", "service", "team"), &runtime));
        let store = Resource::service("store", "Store.Read");
        assert!(!beyond_rules(&caller("micro", "admin", "team"), &store));
    }
}
