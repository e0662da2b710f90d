//! Accounts and refresh tokens, kept on the platform's [`Store`] (so they move to PostgreSQL or
//! Redis with it), in backend database `auth`, tables `NS/accounts` and `NS/refresh`.
//!
//! An account is stored under `id/ID`, with a `name/NAME` entry pointing at it, so `Token`
//! finds it by either; an id and a name are unique together (no account's name is another's
//! id). Secrets are hashed with argon2id. Refresh tokens are random; only their SHA-256 is
//! stored (as the key), with the store's own expiry.

use std::{sync::Arc, time::Duration};

use argon2::{
    Argon2,
    password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash},
};
use base64::Engine as _;
use micro_core::{
    Error,
    auth::{Account, AccountType, check_id},
    store::{Query, Record, Store},
};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

const ID: &str = "micro.auth";
/// The backend database holding everything auth keeps.
pub(crate) const DATABASE: &str = "auth";
const VERSION: u32 = 1;

/// How long a refresh token lasts.
pub(crate) const REFRESH_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

#[derive(Serialize, Deserialize)]
struct Stored {
    version: u32,
    account: Account,
    /// The argon2id PHC string.
    secret_hash: String,
}

/// What a refresh token points at.
#[derive(Serialize, Deserialize)]
struct Refresh {
    version: u32,
    account: String,
    /// The account's generation when it was issued (see `revoked`): one of an older generation
    /// is void, as access tokens are. 0 in records written before generations.
    #[serde(default)]
    generation: u64,
}

/// The accounts of every namespace.
pub(crate) struct Accounts {
    store: Arc<dyn Store>,
    /// Serialises this server's changes to existing accounts; creation is decided by
    /// conditional writes on the store, so two servers cannot take one name.
    writes: Mutex<()>,
    random: SystemRandom,
}

/// A handle claimed for an account being created: `pending:UNIX_MS:ID`. It names its account
/// as soon as the account is written; one whose account never was (its server died in
/// between) may be taken over once it is older than [`STALE_CLAIM`].
const PENDING: &str = "pending:";

/// How old a pending claim whose account does not exist must be before another may take it.
const STALE_CLAIM: Duration = Duration::from_secs(30);

/// The account id a handle record names (plain, or in a pending claim).
fn claimed_id(claim: &str) -> &str {
    match claim.strip_prefix(PENDING) {
        Some(rest) => rest.split_once(':').map_or(rest, |(_, id)| id),
        None => claim,
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn table(ns: &str, what: &str) -> String {
    format!("{ns}/{what}")
}

fn internal(e: impl std::fmt::Display) -> Error {
    Error::internal(ID, format!("damaged auth record: {e}"))
}

impl Accounts {
    pub(crate) fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            writes: Mutex::new(()),
            random: SystemRandom::new(),
        }
    }

    /// `len` random bytes, URL-safe base64.
    pub(crate) fn random_string(&self, len: usize) -> Result<String, Error> {
        let mut bytes = vec![0u8; len];
        self.random
            .fill(&mut bytes)
            .map_err(|_| Error::internal(ID, "no randomness"))?;
        Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Creates `account` with `secret`. Its id and name must both be free.
    pub(crate) async fn create(&self, account: &Account, secret: &str) -> Result<(), Error> {
        check_id("account", &account.id)?;
        check_id("account", &account.name)?;
        check_secret(secret)?;
        let ns = &account.issuer;
        let taken = |handle: &str| {
            Error::conflict(
                ID,
                format!("an account {handle:?} already exists in namespace {ns:?}"),
            )
        };
        // A clear answer for the common case; the conditional writes below decide races, even
        // between servers.
        for handle in [&account.id, &account.name] {
            if self.find(ns, handle).await?.is_some() {
                return Err(taken(handle));
            }
        }
        let stored = Stored {
            version: VERSION,
            account: account.clone(),
            secret_hash: hash(secret).await?,
        };
        let value = serde_json::to_vec(&stored).map_err(internal)?;
        let accounts = table(ns, "accounts");
        // Every handle (the id and the name) is claimed, so no two accounts share one even when
        // created through two servers at once: first as pending (gone by itself if this server
        // dies before the account is written), then for good.
        let mut handles = vec![account.id.clone()];
        if account.name != account.id {
            handles.push(account.name.clone());
        }
        let pending = format!("{PENDING}{}:{}", now_ms(), account.id);
        let mut claimed: Vec<String> = Vec::new();
        let outcome = async {
            for handle in &handles {
                let key = format!("name/{handle}");
                if !self.claim(&accounts, &key, &pending).await? {
                    return Err(taken(handle));
                }
                claimed.push(key);
            }
            let id_record = Record::new(format!("id/{}", account.id), value);
            if !self
                .store
                .write_if(DATABASE, &accounts, id_record, None)
                .await?
            {
                return Err(taken(&account.id));
            }
            Ok(())
        }
        .await;
        if let Err(e) = outcome {
            for key in &claimed {
                // Only our own claim, and best effort: a claim left behind names no account,
                // so it is taken over once it is stale.
                let gone =
                    Record::new(key.clone(), Vec::new()).with_expiry(Duration::from_millis(1));
                let _ = self
                    .store
                    .write_if(DATABASE, &accounts, gone, Some(pending.as_bytes()))
                    .await;
            }
            return Err(e);
        }
        // The account exists, so its claims hold already (a pending claim names it); making
        // them plain is tidiness, and only over our own claim.
        for key in claimed {
            let plain = Record::new(key, account.id.clone());
            let _ = self
                .store
                .write_if(DATABASE, &accounts, plain, Some(pending.as_bytes()))
                .await;
        }
        Ok(())
    }

    /// Claims the handle record `key` for the account `pending` names: when it is free, or
    /// when it holds a stale pending claim whose account was never written (its server died
    /// between the claim and the account).
    async fn claim(&self, accounts: &str, key: &str, pending: &str) -> Result<bool, Error> {
        let record = Record::new(key, pending);
        if self
            .store
            .write_if(DATABASE, accounts, record.clone(), None)
            .await?
        {
            return Ok(true);
        }
        let current = match self.store.read(DATABASE, accounts, key).await {
            Ok(r) => r.value,
            Err(e) if e.code == 404 => return Ok(false),
            Err(e) => return Err(e),
        };
        let text = String::from_utf8_lossy(&current);
        let Some(rest) = text.strip_prefix(PENDING) else {
            return Ok(false);
        };
        let (at, id) = rest.split_once(':').unwrap_or(("0", rest));
        let stale = at
            .parse::<u64>()
            .is_ok_and(|at| now_ms().saturating_sub(at) > STALE_CLAIM.as_millis() as u64);
        let ns = accounts.strip_suffix("/accounts").unwrap_or(accounts);
        if !stale || self.by_id(ns, id).await?.is_some() {
            return Ok(false);
        }
        self.store
            .write_if(DATABASE, accounts, record, Some(&current))
            .await
    }

    async fn by_id(&self, ns: &str, id: &str) -> Result<Option<Stored>, Error> {
        match self
            .store
            .read(DATABASE, &table(ns, "accounts"), &format!("id/{id}"))
            .await
        {
            Ok(record) => Ok(Some(
                serde_json::from_slice(&record.value).map_err(internal)?,
            )),
            Err(e) if e.code == 404 => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The account whose id, else name, is `handle`.
    async fn find(&self, ns: &str, handle: &str) -> Result<Option<Stored>, Error> {
        if let Some(found) = self.by_id(ns, handle).await? {
            return Ok(Some(found));
        }
        match self
            .store
            .read(DATABASE, &table(ns, "accounts"), &format!("name/{handle}"))
            .await
        {
            Ok(record) => {
                let claim = String::from_utf8(record.value).map_err(internal)?;
                self.by_id(ns, claimed_id(&claim)).await
            }
            Err(e) if e.code == 404 => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The account `id` of `ns`.
    pub(crate) async fn get(&self, ns: &str, id: &str) -> Result<Account, Error> {
        self.by_id(ns, id)
            .await?
            .map(|s| s.account)
            .ok_or_else(|| Error::not_found(ID, format!("no account {id:?} in namespace {ns:?}")))
    }

    /// The account `handle` (id or name) names, if `secret` is its secret.
    pub(crate) async fn check(
        &self,
        ns: &str,
        handle: &str,
        secret: &str,
    ) -> Result<Account, Error> {
        let refused =
            || Error::unauthorized(ID, format!("wrong id, name or secret for namespace {ns:?}"));
        let Some(stored) = self.find(ns, handle).await? else {
            // Spend the same effort as a real check, so timing does not tell which ids exist.
            let _ = hash(secret).await;
            return Err(refused());
        };
        if !verify(&stored.secret_hash, secret).await? {
            return Err(refused());
        }
        Ok(stored.account)
    }

    /// Every account of `ns`, by id.
    pub(crate) async fn list(&self, ns: &str) -> Result<Vec<Account>, Error> {
        let records = self
            .store
            .find(
                DATABASE,
                &table(ns, "accounts"),
                &Query {
                    prefix: Some("id/".to_owned()),
                    ..Query::default()
                },
            )
            .await?;
        records
            .iter()
            .map(|r| {
                serde_json::from_slice::<Stored>(&r.value)
                    .map(|s| s.account)
                    .map_err(internal)
            })
            .collect()
    }

    /// Whether `ns` has any account.
    pub(crate) async fn any(&self, ns: &str) -> Result<bool, Error> {
        let found = self
            .store
            .list(
                DATABASE,
                &table(ns, "accounts"),
                &Query {
                    limit: Some(1),
                    ..Query::default()
                },
            )
            .await?;
        Ok(!found.is_empty())
    }

    /// Removes account `id` of `ns` and every refresh token it holds.
    pub(crate) async fn delete(&self, ns: &str, id: &str) -> Result<(), Error> {
        let _guard = self.writes.lock().await;
        let account = self.get(ns, id).await?;
        let accounts = table(ns, "accounts");
        for handle in [&account.name, &account.id] {
            self.store
                .delete(DATABASE, &accounts, &format!("name/{handle}"))
                .await?;
        }
        self.store
            .delete(DATABASE, &accounts, &format!("id/{id}"))
            .await?;
        self.revoke_refresh(ns, id).await
    }

    /// Sets the secret of account `id` of `ns`; its refresh tokens stop working.
    pub(crate) async fn set_secret(&self, ns: &str, id: &str, secret: &str) -> Result<(), Error> {
        check_secret(secret)?;
        let _guard = self.writes.lock().await;
        let missing = || Error::not_found(ID, format!("no account {id:?} in namespace {ns:?}"));
        let accounts = table(ns, "accounts");
        let key = format!("id/{id}");
        let old = match self.store.read(DATABASE, &accounts, &key).await {
            Ok(record) => record.value,
            Err(e) if e.code == 404 => return Err(missing()),
            Err(e) => return Err(e),
        };
        let mut stored: Stored = serde_json::from_slice(&old).map_err(internal)?;
        stored.secret_hash = hash(secret).await?;
        let value = serde_json::to_vec(&stored).map_err(internal)?;
        // Only over the account as read: one deleted or changed meanwhile through another
        // server is not brought back.
        if !self
            .store
            .write_if(DATABASE, &accounts, Record::new(key, value), Some(&old))
            .await?
        {
            return Err(Error::conflict(
                ID,
                format!("account {id:?} changed or went away meanwhile; try again"),
            ));
        }
        self.revoke_refresh(ns, id).await
    }

    /// Creates or replaces a service's account with `secret`, leaving its refresh tokens.
    ///
    /// A new one is created as every account is (its handles claimed by conditional writes);
    /// an existing one is replaced only over the account as read. So servers provisioning the
    /// same service at once each end with an account that holds (the last secret written wins,
    /// and every process logs in again with its own), and none takes a user's account.
    pub(crate) async fn put_service(&self, account: &Account, secret: &str) -> Result<(), Error> {
        let ns = &account.issuer;
        let accounts = table(ns, "accounts");
        let key = format!("id/{}", account.id);
        let taken =
            || Error::conflict(ID, format!("account {:?} is taken by a user", account.name));
        let secret_hash = hash(secret).await?;
        for _ in 0..8 {
            let old = match self.store.read(DATABASE, &accounts, &key).await {
                Ok(record) => record.value,
                Err(e) if e.code == 404 => match self.create(account, secret).await {
                    // Another server created it meanwhile, or is creating it (its claim on the
                    // name is there, its account not yet): replace that one once it is.
                    Err(e) if e.code == 409 => {
                        if let Some(holder) = self.find(ns, &account.name).await?
                            && holder.account.id != account.id
                        {
                            return Err(taken());
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                    other => return other,
                },
                Err(e) => return Err(e),
            };
            let mut stored: Stored = serde_json::from_slice(&old).map_err(internal)?;
            if stored.account.kind != AccountType::Service {
                return Err(taken());
            }
            stored.account = account.clone();
            stored.secret_hash = secret_hash.clone();
            let value = serde_json::to_vec(&stored).map_err(internal)?;
            let record = Record::new(key.clone(), value);
            if self
                .store
                .write_if(DATABASE, &accounts, record, Some(&old))
                .await?
            {
                return Ok(());
            }
        }
        Err(Error::conflict(
            ID,
            format!(
                "account {:?} kept changing meanwhile; try again",
                account.id
            ),
        ))
    }

    /// A new refresh token for `account`.
    pub(crate) async fn new_refresh(
        &self,
        account: &Account,
        generation: u64,
    ) -> Result<String, Error> {
        let token = self.random_string(32)?;
        let value = serde_json::to_vec(&Refresh {
            version: VERSION,
            account: account.id.clone(),
            generation,
        })
        .map_err(internal)?;
        let key = digest(&token);
        self.store
            .write(
                DATABASE,
                &table(&account.issuer, "refresh"),
                Record::new(key, value).with_expiry(REFRESH_TTL),
            )
            .await?;
        // The namespace travels in the token, so `Token(refresh_token)` needs nothing else.
        Ok(format!("{}.{token}", account.issuer))
    }

    /// The account a refresh token belongs to, and the generation it was issued in.
    pub(crate) async fn redeem(&self, refresh: &str) -> Result<(Account, u64), Error> {
        let refused = || {
            Error::unauthorized(
                ID,
                "the refresh token is unknown or expired: log in again (micro login)",
            )
        };
        let (ns, token) = refresh.rsplit_once('.').ok_or_else(refused)?;
        let record = match self
            .store
            .read(DATABASE, &table(ns, "refresh"), &digest(token))
            .await
        {
            Ok(record) => record,
            Err(e) if e.code == 404 => return Err(refused()),
            Err(e) => return Err(e),
        };
        let refresh: Refresh = serde_json::from_slice(&record.value).map_err(internal)?;
        match self.get(ns, &refresh.account).await {
            Ok(account) => Ok((account, refresh.generation)),
            Err(e) if e.code == 404 => Err(refused()),
            Err(e) => Err(e),
        }
    }

    async fn revoke_refresh(&self, ns: &str, id: &str) -> Result<(), Error> {
        let refresh = table(ns, "refresh");
        // Rare (a deletion or a new secret), so a scan of the namespace's tokens will do.
        let records = self
            .store
            .find(DATABASE, &refresh, &Query::default())
            .await?;
        for r in records {
            let held: Refresh = serde_json::from_slice(&r.value).map_err(internal)?;
            if held.account == id {
                self.store.delete(DATABASE, &refresh, &r.key).await?;
            }
        }
        Ok(())
    }

    /// Whether `marker` is set in `ns`.
    pub(crate) async fn marked(&self, ns: &str, marker: &str) -> Result<bool, Error> {
        match self.store.read(DATABASE, &table(ns, "meta"), marker).await {
            Ok(_) => Ok(true),
            Err(e) if e.code == 404 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Whether `marker` was set in `ns` (and sets it): for things done once per namespace.
    pub(crate) async fn first_time(&self, ns: &str, marker: &str) -> Result<bool, Error> {
        if self.marked(ns, marker).await? {
            return Ok(false);
        }
        self.store
            .write(DATABASE, &table(ns, "meta"), Record::new(marker, "1"))
            .await?;
        Ok(true)
    }
}

fn check_secret(secret: &str) -> Result<(), Error> {
    if secret.is_empty() {
        return Err(Error::bad_request(ID, "the secret may not be empty"));
    }
    if secret.len() > 1024 {
        return Err(Error::bad_request(
            ID,
            "the secret is longer than 1024 bytes",
        ));
    }
    Ok(())
}

/// Runs one argon2 computation off the async workers, at most one per core at a time: each
/// costs tens of milliseconds and megabytes, and logging in is open to anyone, so unbounded
/// they would stall every other call.
async fn argon2<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, Error> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    /// The most checks waiting for a core; past it, a login is told to come back.
    const WAITING: usize = 256;
    static SLOTS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    static WAITERS: AtomicUsize = AtomicUsize::new(0);
    let slots = SLOTS.get_or_init(|| {
        tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
    });
    if WAITERS.fetch_add(1, Ordering::AcqRel) >= WAITING {
        WAITERS.fetch_sub(1, Ordering::AcqRel);
        return Err(Error::unavailable(
            ID,
            "too many logins at once; try again shortly",
        ));
    }
    let slot = slots.acquire().await;
    WAITERS.fetch_sub(1, Ordering::AcqRel);
    let _slot = slot.map_err(|_| Error::internal(ID, "the password hasher is closed"))?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::internal(ID, format!("the password hasher failed: {e}")))
}

async fn hash(secret: &str) -> Result<String, Error> {
    let secret = secret.to_owned();
    argon2(move || {
        Argon2::default()
            .hash_password(secret.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| Error::internal(ID, format!("cannot hash the secret: {e}")))
    })
    .await?
}

async fn verify(stored: &str, secret: &str) -> Result<bool, Error> {
    let (stored, secret) = (stored.to_owned(), secret.to_owned());
    argon2(move || {
        let parsed = PasswordHash::new(&stored).map_err(internal)?;
        Ok(Argon2::default()
            .verify_password(secret.as_bytes(), &parsed)
            .is_ok())
    })
    .await?
}

fn digest(token: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use micro_core::store::MemoryStore;

    use super::*;

    fn service(ns: &str, name: &str, kind: AccountType) -> Account {
        Account {
            id: format!("service:{name}"),
            name: format!("service:{name}"),
            kind,
            issuer: ns.to_owned(),
            scopes: vec!["service".to_owned()],
            metadata: Default::default(),
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn two_servers_provisioning_one_service_leave_one_account_and_never_take_a_users() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let (a, b) = (Accounts::new(store.clone()), Accounts::new(store));
        let account = service("micro", "hello", AccountType::Service);
        let (ra, rb) = tokio::join!(
            a.put_service(&account, "secret-from-a-0123456789"),
            b.put_service(&account, "secret-from-b-0123456789")
        );
        ra.expect("a");
        rb.expect("b");
        assert_eq!(a.list("micro").await.unwrap(), vec![account.clone()]);
        let works = |secret: &'static str| {
            let a = &a;
            async move { a.check("micro", "service:hello", secret).await.is_ok() }
        };
        assert!(
            works("secret-from-a-0123456789").await ^ works("secret-from-b-0123456789").await,
            "the last secret written holds"
        );
        // Replacing it again works, over the account as read.
        b.put_service(&account, "secret-again-0123456789")
            .await
            .expect("replace");
        assert!(works("secret-again-0123456789").await);

        // An account a user made under that id is never replaced.
        let user = service("micro", "taken", AccountType::User);
        a.create(&user, "user-secret-0123456789")
            .await
            .expect("user");
        let err = b
            .put_service(
                &service("micro", "taken", AccountType::Service),
                "x-0123456789abcdef",
            )
            .await
            .unwrap_err();
        assert_eq!(err.code, 409, "{err}");
        assert!(
            a.check("micro", "service:taken", "user-secret-0123456789")
                .await
                .is_ok()
        );
    }
}
