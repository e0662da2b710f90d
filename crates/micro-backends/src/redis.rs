//! [`RedisStore`]: the store on Redis, shared by every server pointed at it.
//!
//! A record is a hash (`v`: value, `m`: metadata as JSON) at `micro\0r\0DB\0TABLE\0KEY`, living
//! for its expiry by Redis's own `PEXPIRE` — so the engine's clock judges expiry, never a
//! server's. Each table keeps its keys in a sorted set of equal scores, so a prefix is a
//! `ZRANGEBYLEX` range (never a pattern); `micro\0t\0DB` and `micro\0d` name the tables and
//! databases. Writes are one Lua script each, so the record, its index entry and the
//! conditional check happen atomically. Index entries of records that expired are dropped when
//! a list meets them. Durability is the server's: run it with `appendfsync always`.

use std::{collections::BTreeMap, time::Duration};

use async_trait::async_trait;

use crate::successor;
use micro_core::{
    Error,
    store::{Order, Query, Record, Store, check_names, select},
};
use redis::{
    AsyncCommands, Script,
    aio::{ConnectionManager, ConnectionManagerConfig},
};

const ID: &str = "micro.store";

/// How long a call waits on Redis before it answers 503.
const TIMEOUT: Duration = Duration::from_secs(3);

const WRITE: &str = r"
local mode = ARGV[7]
if mode == 'create' then
  if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
elseif mode == 'swap' then
  if redis.call('HGET', KEYS[1], 'v') ~= ARGV[8] then return 0 end
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'v', ARGV[4], 'm', ARGV[5])
if ARGV[6] ~= '' then redis.call('PEXPIRE', KEYS[1], ARGV[6]) end
redis.call('ZADD', KEYS[2], 0, ARGV[1])
redis.call('SADD', KEYS[3], ARGV[2])
redis.call('SADD', KEYS[4], ARGV[3])
return 1
";

/// Drops index entries whose records are gone — each only if its record is still gone when
/// the script runs, so a record written meanwhile keeps its entry.
const FORGET: &str = r"
for i, key in ipairs(ARGV) do
  if redis.call('EXISTS', KEYS[i + 1]) == 0 then redis.call('ZREM', KEYS[1], key) end
end
return 0
";

/// The store on Redis.
#[derive(Clone)]
pub struct RedisStore {
    connection: ConnectionManager,
    write: Script,
    forget: Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedisStore")
    }
}

fn engine_error(e: redis::RedisError) -> Error {
    if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() || e.is_connection_refusal() {
        Error::unavailable(ID, format!("Redis is unreachable: {e}"))
    } else {
        Error::internal(ID, format!("Redis: {e}"))
    }
}

fn damaged(e: impl std::fmt::Display) -> Error {
    Error::internal(ID, format!("Redis answered something unexpected: {e}"))
}

fn join(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = b"micro".to_vec();
    for part in parts {
        out.push(0);
        out.extend_from_slice(part);
    }
    out
}

fn record_key(database: &str, table: &str, key: &[u8]) -> Vec<u8> {
    join(&[b"r", database.as_bytes(), table.as_bytes(), key])
}

fn index_key(database: &str, table: &str) -> Vec<u8> {
    join(&[b"i", database.as_bytes(), table.as_bytes()])
}

fn tables_key(database: &str) -> Vec<u8> {
    join(&[b"t", database.as_bytes()])
}

fn databases_key() -> Vec<u8> {
    join(&[b"d"])
}

/// A lex-range bound: `[x` includes x, `(x` excludes it, `-`/`+` are the ends.
fn bound(kind: u8, bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![kind];
    out.extend_from_slice(bytes);
    out
}

/// A record seen by its key, for [`select`].
struct Keyed(Record);

impl AsRef<str> for Keyed {
    fn as_ref(&self) -> &str {
        &self.0.key
    }
}

impl RedisStore {
    /// Connects to `url` (`redis://HOST:PORT[/DB]`); the connection reconnects by itself.
    pub async fn connect(url: &str) -> Result<Self, Error> {
        let client = redis::Client::open(url)
            .map_err(|e| Error::bad_request(ID, format!("invalid Redis address {url:?}: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT))
            .set_number_of_retries(1);
        let connection = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(engine_error)?;
        warn_unless_durable(&connection).await;
        Ok(Self {
            connection,
            write: Script::new(WRITE),
            forget: Script::new(FORGET),
        })
    }

    async fn put(
        &self,
        database: &str,
        table: &str,
        record: Record,
        mode: &str,
        expected: &[u8],
    ) -> Result<bool, Error> {
        check_names(database, table, Some(&record.key))?;
        let metadata = serde_json::to_string(&record.metadata)
            .map_err(|e| Error::internal(ID, format!("metadata: {e}")))?;
        let ttl = record
            .expiry
            .map(|t| t.as_millis().max(1).to_string())
            .unwrap_or_default();
        let mut connection = self.connection.clone();
        let wrote: i64 = self
            .write
            .key(record_key(database, table, record.key.as_bytes()))
            .key(index_key(database, table))
            .key(tables_key(database))
            .key(databases_key())
            .arg(record.key.as_bytes())
            .arg(table)
            .arg(database)
            .arg(record.value.as_slice())
            .arg(metadata)
            .arg(ttl)
            .arg(mode)
            .arg(expected)
            .invoke_async(&mut connection)
            .await
            .map_err(engine_error)?;
        Ok(wrote == 1)
    }

    /// The keys of `table` in the index that `query`'s prefix and order select (some may have
    /// expired).
    async fn indexed(
        &self,
        database: &str,
        table: &str,
        query: &Query,
    ) -> Result<Vec<Vec<u8>>, Error> {
        let prefix = query.prefix.as_deref().unwrap_or("").as_bytes();
        let (low, high) = if prefix.is_empty() {
            (b"-".to_vec(), b"+".to_vec())
        } else {
            (
                bound(b'[', prefix),
                successor(prefix).map_or_else(|| b"+".to_vec(), |s| bound(b'(', &s)),
            )
        };
        let mut connection = self.connection.clone();
        let index = index_key(database, table);
        match query.order {
            Order::Asc => connection.zrangebylex(index, low, high).await,
            Order::Desc => connection.zrevrangebylex(index, high, low).await,
        }
        .map_err(engine_error)
    }

    /// The live records among `keys`, in their order, with their values when `values`; index
    /// entries of expired records are dropped.
    async fn live(
        &self,
        database: &str,
        table: &str,
        keys: Vec<Vec<u8>>,
        values: bool,
    ) -> Result<Vec<Record>, Error> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for key in &keys {
            let full = record_key(database, table, key);
            if values {
                pipe.cmd("HMGET").arg(&full).arg("v").arg("m");
            } else {
                pipe.cmd("EXISTS").arg(&full);
            }
            pipe.cmd("PTTL").arg(&full);
        }
        let mut connection = self.connection.clone();
        let replies: Vec<redis::Value> = pipe
            .query_async(&mut connection)
            .await
            .map_err(engine_error)?;
        let mut out = Vec::with_capacity(keys.len());
        let mut gone = Vec::new();
        for (key, pair) in keys.into_iter().zip(replies.chunks(2)) {
            let ttl: i64 = redis::from_redis_value(pair[1].clone()).map_err(damaged)?;
            // -2: no such key (expired or deleted).
            if ttl == -2 {
                gone.push(key);
                continue;
            }
            let key = String::from_utf8(key)
                .map_err(|_| Error::internal(ID, "a stored key is not UTF-8"))?;
            let mut record = Record {
                key,
                expiry: (ttl >= 0).then(|| Duration::from_millis(ttl.unsigned_abs())),
                ..Record::default()
            };
            if values {
                let (value, metadata): (Option<Vec<u8>>, Option<String>) =
                    redis::from_redis_value(pair[0].clone()).map_err(damaged)?;
                let Some(value) = value else {
                    gone.push(record.key.into_bytes());
                    continue;
                };
                record.value = value;
                record.metadata = decode_metadata(metadata)?;
            }
            out.push(record);
        }
        if !gone.is_empty() {
            let mut forget = self.forget.key(index_key(database, table));
            for key in &gone {
                forget.key(record_key(database, table, key));
            }
            for key in &gone {
                forget.arg(key.as_slice());
            }
            let _: Result<i64, _> = forget.invoke_async(&mut connection).await;
        }
        Ok(out)
    }

    async fn selected(
        &self,
        database: &str,
        table: &str,
        query: &Query,
        values: bool,
    ) -> Result<Vec<Record>, Error> {
        check_names(database, table, None)?;
        let keys = self.indexed(database, table, query).await?;
        let records = self.live(database, table, keys, values).await?;
        // Already prefixed and ordered: the suffix, then paging, in that order.
        let rest = Query {
            prefix: None,
            order: Order::Asc,
            ..query.clone()
        };
        Ok(select(records.into_iter().map(Keyed), &rest)
            .into_iter()
            .map(|k| k.0)
            .collect())
    }

    /// Whether `table` of `database` holds a live record.
    async fn table_is_live(&self, database: &str, table: &str) -> Result<bool, Error> {
        let keys = self.indexed(database, table, &Query::default()).await?;
        Ok(!self.live(database, table, keys, false).await?.is_empty())
    }
}

/// Says loudly when Redis would lose acknowledged writes: without `appendfsync always` a crash
/// loses the last second, and an `allkeys-*` eviction policy drops records (keys among them).
async fn warn_unless_durable(connection: &ConnectionManager) {
    let setting = |name: &'static str| {
        let mut connection = connection.clone();
        async move {
            let pair: Result<Vec<String>, _> = redis::cmd("CONFIG")
                .arg("GET")
                .arg(name)
                .query_async(&mut connection)
                .await;
            pair.ok()
                .and_then(|p| p.get(1).cloned())
                .unwrap_or_default()
        }
    };
    let (append, fsync, eviction) = (
        setting("appendonly").await,
        setting("appendfsync").await,
        setting("maxmemory-policy").await,
    );
    if append != "yes" || fsync != "always" {
        tracing::warn!(
            appendonly = %append,
            appendfsync = %fsync,
            "Redis may lose acknowledged writes on a crash: run it with --appendonly yes --appendfsync always"
        );
    }
    if eviction.starts_with("allkeys") {
        tracing::warn!(
            policy = %eviction,
            "Redis evicts any key under memory pressure, the platform's keys and records among them: use noeviction"
        );
    }
}

fn decode_metadata(metadata: Option<String>) -> Result<BTreeMap<String, String>, Error> {
    match metadata {
        Some(m) => serde_json::from_str(&m)
            .map_err(|e| Error::internal(ID, format!("stored metadata is damaged: {e}"))),
        None => Ok(BTreeMap::new()),
    }
}

fn not_found(key: &str) -> Error {
    Error::not_found(ID, format!("Record \"{key}\" not found"))
}

#[async_trait]
impl Store for RedisStore {
    async fn read(&self, database: &str, table: &str, key: &str) -> Result<Record, Error> {
        check_names(database, table, Some(key))?;
        self.live(database, table, vec![key.as_bytes().to_vec()], true)
            .await?
            .pop()
            .ok_or_else(|| not_found(key))
    }

    async fn find(&self, database: &str, table: &str, query: &Query) -> Result<Vec<Record>, Error> {
        self.selected(database, table, query, true).await
    }

    async fn write(&self, database: &str, table: &str, record: Record) -> Result<(), Error> {
        self.put(database, table, record, "write", b"")
            .await
            .map(drop)
    }

    async fn write_if(
        &self,
        database: &str,
        table: &str,
        record: Record,
        expected: Option<&[u8]>,
    ) -> Result<bool, Error> {
        match expected {
            None => self.put(database, table, record, "create", b"").await,
            Some(old) => self.put(database, table, record, "swap", old).await,
        }
    }

    async fn delete(&self, database: &str, table: &str, key: &str) -> Result<(), Error> {
        check_names(database, table, Some(key))?;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .del(record_key(database, table, key.as_bytes()))
            .zrem(index_key(database, table), key.as_bytes());
        let mut connection = self.connection.clone();
        let _: (i64, i64) = pipe
            .query_async(&mut connection)
            .await
            .map_err(engine_error)?;
        Ok(())
    }

    async fn list(&self, database: &str, table: &str, query: &Query) -> Result<Vec<String>, Error> {
        Ok(self
            .selected(database, table, query, false)
            .await?
            .into_iter()
            .map(|r| r.key)
            .collect())
    }

    async fn databases(&self) -> Result<Vec<String>, Error> {
        let mut connection = self.connection.clone();
        let mut names: Vec<String> = connection
            .smembers(databases_key())
            .await
            .map_err(engine_error)?;
        names.sort();
        let mut live = Vec::new();
        for name in names {
            if !self.tables(&name).await?.is_empty() {
                live.push(name);
            }
        }
        Ok(live)
    }

    async fn tables(&self, database: &str) -> Result<Vec<String>, Error> {
        let mut connection = self.connection.clone();
        let mut names: Vec<String> = connection
            .smembers(tables_key(database))
            .await
            .map_err(engine_error)?;
        names.sort();
        let mut live = Vec::new();
        for name in names {
            if self.table_is_live(database, &name).await? {
                live.push(name);
            }
        }
        Ok(live)
    }
}
