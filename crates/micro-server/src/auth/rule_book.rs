//! The rules of every namespace, kept on the platform's store (backend database `auth`, table
//! `NS/rules`) and cached in memory for a second, since every call consults them (a second is
//! how long a change made through another server sharing the store takes to be seen here). A namespace whose rules
//! nobody has changed has the public rule `default`, in memory only, so a namespace named by a
//! stranger's call costs nothing on disk; the first change stores `default` with it, and
//! deleting it later sticks.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use micro_core::{
    Error,
    auth::{Rule, check_id},
    store::{Query, Record, Store},
};
use std::sync::RwLock;

use super::accounts::{Accounts, DATABASE};

const ID: &str = "micro.auth";

/// The namespace's `meta` marker set once its rules were first stored.
pub(crate) const MARKER: &str = "rules";

/// At most this many namespaces' rules are cached (then the cache starts over).
const CACHED: usize = 4096;

/// How long cached rules are used before they are read again: the longest a rule changed
/// through another server sharing the store goes unseen here.
const FRESH: Duration = Duration::from_secs(1);

/// A namespace's rules, and when they were read.
type Cached = (Instant, Arc<Vec<Rule>>);

/// Rules by namespace.
pub(crate) struct RuleBook {
    store: Arc<dyn Store>,
    cache: RwLock<HashMap<String, Cached>>,
    /// Serialises writes so the cache never holds a stale list.
    writes: tokio::sync::Mutex<()>,
}

fn table(ns: &str) -> String {
    format!("{ns}/rules")
}

impl RuleBook {
    pub(crate) fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            cache: RwLock::new(HashMap::new()),
            writes: tokio::sync::Mutex::new(()),
        }
    }

    /// The rules of `ns`, highest priority first.
    pub(crate) async fn rules(
        &self,
        ns: &str,
        accounts: &Accounts,
    ) -> Result<Arc<Vec<Rule>>, Error> {
        if let Some((at, rules)) = self.cache.read().unwrap_or_else(|p| p.into_inner()).get(ns)
            && at.elapsed() < FRESH
        {
            return Ok(rules.clone());
        }
        let _guard = self.writes.lock().await;
        if !accounts.marked(ns, MARKER).await? {
            let rules = Arc::new(vec![Rule::default_public()]);
            self.remember(ns, rules.clone());
            return Ok(rules);
        }
        self.load(ns).await
    }

    /// Before the first change to the rules of `ns`: stores its `default`, so the change
    /// comes on top of it.
    async fn settle(&self, ns: &str, accounts: &Accounts) -> Result<(), Error> {
        if accounts.first_time(ns, MARKER).await? {
            self.put(ns, &Rule::default_public()).await?;
        }
        Ok(())
    }

    /// Caches the rules of `ns` (starting over past [`CACHED`] namespaces).
    fn remember(&self, ns: &str, rules: Arc<Vec<Rule>>) {
        let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHED && !cache.contains_key(ns) {
            cache.clear();
        }
        cache.insert(ns.to_owned(), (Instant::now(), rules));
    }

    async fn load(&self, ns: &str) -> Result<Arc<Vec<Rule>>, Error> {
        let records = self
            .store
            .find(DATABASE, &table(ns), &Query::default())
            .await?;
        let mut rules = records
            .iter()
            .map(|r| {
                serde_json::from_slice::<Rule>(&r.value)
                    .map_err(|e| Error::internal(ID, format!("damaged rule {:?}: {e}", r.key)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        // In the engine's order, so deciding reads them in place.
        rules.sort_by(|a, b| {
            micro_core::auth::rules::precedence(a, b).then_with(|| a.id.cmp(&b.id))
        });
        let rules = Arc::new(rules);
        self.remember(ns, rules.clone());
        Ok(rules)
    }

    async fn put(&self, ns: &str, rule: &Rule) -> Result<(), Error> {
        let value = serde_json::to_vec(rule)
            .map_err(|e| Error::internal(ID, format!("cannot encode a rule: {e}")))?;
        self.store
            .write(DATABASE, &table(ns), Record::new(rule.id.clone(), value))
            .await
    }

    /// Adds or replaces `rule` in `ns`.
    pub(crate) async fn create(
        &self,
        ns: &str,
        rule: &Rule,
        accounts: &Accounts,
    ) -> Result<(), Error> {
        check_id("rule", &rule.id)?;
        let _guard = self.writes.lock().await;
        self.settle(ns, accounts).await?;
        self.put(ns, rule).await?;
        self.load(ns).await.map(drop)
    }

    /// Removes rule `id` of `ns`.
    pub(crate) async fn delete(
        &self,
        ns: &str,
        id: &str,
        accounts: &Accounts,
    ) -> Result<(), Error> {
        let _guard = self.writes.lock().await;
        self.settle(ns, accounts).await?;
        let rules = self.load(ns).await?;
        if !rules.iter().any(|r| r.id == id) {
            return Err(Error::not_found(
                ID,
                format!("no rule {id:?} in namespace {ns:?}"),
            ));
        }
        self.store.delete(DATABASE, &table(ns), id).await?;
        self.load(ns).await.map(drop)
    }
}
