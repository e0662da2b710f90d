//! [`PostgresStore`]: the store in one PostgreSQL table, shared by every server pointed at it.
//!
//! `micro_records` holds `(db, tbl, key)` → value, metadata and an absolute expiry. Keys are
//! `bytea`, so order is byte order whatever the database's collation, and a prefix is the key
//! range `[prefix, successor(prefix))` — never `LIKE`, where `%` and `_` in a key would match
//! more. Expiry is judged by the engine's clock (`clock_timestamp()`, not `now()`, which is
//! frozen for a transaction), never by a server's, so servers with skewed clocks agree.
//! Conditional writes are single statements (`INSERT … ON CONFLICT … WHERE`, `UPDATE … WHERE
//! value = …`), atomic under PostgreSQL's row locks. `micro_meta` stamps the table's format.

use std::{collections::BTreeMap, time::Duration};

use async_trait::async_trait;

use crate::successor;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use micro_core::{
    Error,
    store::{Order, Query, Record, Store, check_names},
};
use tokio_postgres::{NoTls, Row, types::ToSql};

const ID: &str = "micro.store";

/// The table format this build reads and writes.
pub const FORMAT_VERSION: i64 = 1;

/// How long a call waits for a connection before it answers 503.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The longest a statement runs, or the engine stays silent, before the call answers 503.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(5);

/// A record is live while it has no expiry or its expiry is still ahead on the engine's clock.
const LIVE: &str = "(expires_at IS NULL OR expires_at > clock_timestamp())";

/// The milliseconds a live record has left, on the engine's clock.
const LEFT_MS: &str =
    "(extract(epoch from (expires_at - clock_timestamp())) * 1000)::bigint AS left_ms";

/// The expiry of a written record: `$ttl` milliseconds from now on the engine's clock.
fn expiry_sql(ttl: &str) -> String {
    format!(
        "CASE WHEN {ttl}::bigint IS NULL THEN NULL ELSE clock_timestamp() + {ttl}::bigint * interval '1 millisecond' END"
    )
}

/// The store on PostgreSQL.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PostgresStore")
    }
}

/// A lost or refused connection is the engine being away (503); anything else is ours (500).
pub(crate) fn engine_error(e: impl std::fmt::Display + std::fmt::Debug) -> Error {
    Error::unavailable(ID, format!("PostgreSQL: {e}"))
}

fn query_error(e: tokio_postgres::Error) -> Error {
    match e.as_db_error() {
        // A statement that ran past the statement timeout: the engine is too slow now.
        Some(db) if *db.code() == tokio_postgres::error::SqlState::QUERY_CANCELED => {
            Error::unavailable(ID, format!("PostgreSQL is too slow: {}", db.message()))
        }
        Some(db) if !e.is_closed() => Error::internal(ID, format!("PostgreSQL: {}", db.message())),
        _ => Error::unavailable(ID, format!("PostgreSQL is unreachable: {e}")),
    }
}

impl PostgresStore {
    /// Connects to `url` (`postgres://USER@HOST:PORT/DB`) and makes the table if missing.
    pub async fn connect(url: &str) -> Result<Self, Error> {
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| {
            Error::bad_request(ID, format!("invalid PostgreSQL address {url:?}: {e}"))
        })?;
        config.connect_timeout(CONNECT_TIMEOUT);
        config.application_name("micro");
        // A statement, or a peer gone silent, answers 503 in seconds instead of hanging.
        config.options(format!(
            "-c statement_timeout={}",
            STATEMENT_TIMEOUT.as_millis()
        ));
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(5));
        config.tcp_user_timeout(STATEMENT_TIMEOUT);
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(32)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| Error::internal(ID, format!("PostgreSQL pool: {e}")))?;
        let store = Self { pool };
        store.migrate().await?;
        Ok(store)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, Error> {
        self.pool.get().await.map_err(engine_error)
    }

    /// Makes the tables once, under an advisory lock so servers starting together do not race,
    /// and checks the format.
    async fn migrate(&self) -> Result<(), Error> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(query_error)?;
        tx.batch_execute(
            "SELECT pg_advisory_xact_lock(7346221001);
             CREATE TABLE IF NOT EXISTS micro_meta (name text PRIMARY KEY, value bigint NOT NULL);
             CREATE TABLE IF NOT EXISTS micro_records (
                 db text COLLATE \"C\" NOT NULL,
                 tbl text COLLATE \"C\" NOT NULL,
                 key bytea NOT NULL,
                 value bytea NOT NULL,
                 metadata text NOT NULL,
                 expires_at timestamptz,
                 PRIMARY KEY (db, tbl, key));
             CREATE INDEX IF NOT EXISTS micro_records_expiry ON micro_records (expires_at)
                 WHERE expires_at IS NOT NULL;",
        )
        .await
        .map_err(query_error)?;
        tx.execute(
            "INSERT INTO micro_meta (name, value) VALUES ('store_format', $1)
             ON CONFLICT (name) DO NOTHING",
            &[&FORMAT_VERSION],
        )
        .await
        .map_err(query_error)?;
        let format: i64 = tx
            .query_one(
                "SELECT value FROM micro_meta WHERE name = 'store_format'",
                &[],
            )
            .await
            .map_err(query_error)?
            .get(0);
        tx.commit().await.map_err(query_error)?;
        if format > FORMAT_VERSION {
            return Err(Error::internal(
                ID,
                format!(
                    "the PostgreSQL store has format {format}, newer than this micro's \
                     {FORMAT_VERSION}: upgrade micro"
                ),
            ));
        }
        Ok(())
    }

    /// Deletes every expired record now, a batch at a time (each well inside the statement
    /// timeout, however large the backlog); returns how many.
    pub async fn sweep(&self) -> Result<u64, Error> {
        let client = self.client().await?;
        let mut swept = 0;
        loop {
            let n = client
                .execute(
                    "DELETE FROM micro_records WHERE ctid IN (SELECT ctid FROM micro_records \
                     WHERE expires_at <= clock_timestamp() LIMIT 5000)",
                    &[],
                )
                .await
                .map_err(query_error)?;
            swept += n;
            if n < 5000 {
                return Ok(swept);
            }
        }
    }

    /// Sweeps expired records every `interval`, until aborted.
    pub fn spawn_sweeper(&self, interval: Duration) -> tokio::task::JoinHandle<()> {
        let store = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            loop {
                tick.tick().await;
                if let Err(e) = store.sweep().await {
                    tracing::debug!(error = %e, "sweeping expired records");
                }
            }
        })
    }

    /// The rows `query` selects, with the columns `columns`.
    async fn rows(
        &self,
        database: &str,
        table: &str,
        query: &Query,
        columns: &str,
    ) -> Result<Vec<Row>, Error> {
        check_names(database, table, None)?;
        let mut sql =
            format!("SELECT {columns} FROM micro_records WHERE db = $1 AND tbl = $2 AND {LIVE}");
        let prefix = query.prefix.as_deref().unwrap_or("").as_bytes().to_vec();
        let end = successor(&prefix);
        let offset = i64::try_from(query.offset).unwrap_or(i64::MAX);
        let limit = query.limit.map(|l| i64::try_from(l).unwrap_or(i64::MAX));
        let suffix = query.suffix.as_deref().unwrap_or("").as_bytes().to_vec();
        let suffix_len = i32::try_from(suffix.len()).unwrap_or(i32::MAX);
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&database, &table];
        if !prefix.is_empty() {
            params.push(&prefix);
            sql.push_str(&format!(" AND key >= ${}", params.len()));
        }
        if let Some(end) = &end
            && !prefix.is_empty()
        {
            params.push(end);
            sql.push_str(&format!(" AND key < ${}", params.len()));
        }
        if !suffix.is_empty() {
            // The key's last bytes, compared as bytes: no pattern.
            params.push(&suffix_len);
            let n = params.len();
            params.push(&suffix);
            sql.push_str(&format!(
                " AND length(key) >= ${n} AND substring(key from length(key) - ${n} + 1) = ${}",
                params.len()
            ));
        }
        sql.push_str(match query.order {
            Order::Asc => " ORDER BY key ASC",
            Order::Desc => " ORDER BY key DESC",
        });
        if let Some(limit) = &limit {
            params.push(limit);
            sql.push_str(&format!(" LIMIT ${}", params.len()));
        }
        params.push(&offset);
        sql.push_str(&format!(" OFFSET ${}", params.len()));
        let client = self.client().await?;
        let statement = client.prepare_cached(&sql).await.map_err(query_error)?;
        client.query(&statement, &params).await.map_err(query_error)
    }

    /// The records `query` selects, suffix and paging applied.
    async fn selected(
        &self,
        database: &str,
        table: &str,
        query: &Query,
        columns: &str,
    ) -> Result<Vec<Record>, Error> {
        let rows = self.rows(database, table, query, columns).await?;
        rows.iter().map(row_record).collect()
    }

    async fn upsert(
        &self,
        database: &str,
        table: &str,
        record: Record,
        expected: Option<Option<&[u8]>>,
    ) -> Result<bool, Error> {
        check_names(database, table, Some(&record.key))?;
        let metadata = serde_json::to_string(&record.metadata)
            .map_err(|e| Error::internal(ID, format!("metadata: {e}")))?;
        let ttl: Option<i64> = record
            .expiry
            .map(|t| i64::try_from(t.as_millis()).unwrap_or(i64::MAX).max(1));
        let key = record.key.as_bytes();
        let client = self.client().await?;
        let values = format!("($1, $2, $3, $4, $5, {})", expiry_sql("$6"));
        let set = "SET value = EXCLUDED.value, metadata = EXCLUDED.metadata, \
                   expires_at = EXCLUDED.expires_at";
        let params: [&(dyn ToSql + Sync); 6] =
            [&database, &table, &key, &record.value, &metadata, &ttl];
        let changed = match expected {
            None => {
                let sql = format!(
                    "INSERT INTO micro_records (db, tbl, key, value, metadata, expires_at) \
                     VALUES {values} ON CONFLICT (db, tbl, key) DO UPDATE {set}"
                );
                let statement = client.prepare_cached(&sql).await.map_err(query_error)?;
                client.execute(&statement, &params).await
            }
            Some(None) => {
                let sql = format!(
                    "INSERT INTO micro_records (db, tbl, key, value, metadata, expires_at) \
                     VALUES {values} ON CONFLICT (db, tbl, key) DO UPDATE {set} \
                     WHERE NOT (micro_records.expires_at IS NULL \
                     OR micro_records.expires_at > clock_timestamp())"
                );
                let statement = client.prepare_cached(&sql).await.map_err(query_error)?;
                client.execute(&statement, &params).await
            }
            Some(Some(old)) => {
                let sql = format!(
                    "UPDATE micro_records SET value = $4, metadata = $5, expires_at = {} \
                     WHERE db = $1 AND tbl = $2 AND key = $3 AND value = $7 AND {LIVE}",
                    expiry_sql("$6")
                );
                let statement = client.prepare_cached(&sql).await.map_err(query_error)?;
                let mut with_old = params.to_vec();
                with_old.push(&old);
                client.execute(&statement, &with_old).await
            }
        }
        .map_err(query_error)?;
        Ok(changed == 1)
    }

    async fn distinct(&self, column: &str, database: Option<&str>) -> Result<Vec<String>, Error> {
        let client = self.client().await?;
        let rows = match database {
            None => {
                let sql = format!("SELECT DISTINCT {column} FROM micro_records WHERE {LIVE} ORDER BY 1");
                client.query(&sql, &[]).await
            }
            Some(db) => {
                let sql = format!(
                    "SELECT DISTINCT {column} FROM micro_records WHERE db = $1 AND {LIVE} ORDER BY 1"
                );
                client.query(&sql, &[&db]).await
            }
        }
        .map_err(query_error)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}

const RECORD_COLUMNS: &str = "key, value, metadata, ";

fn row_record(row: &Row) -> Result<Record, Error> {
    let key: Vec<u8> = row.get("key");
    let key =
        String::from_utf8(key).map_err(|_| Error::internal(ID, "a stored key is not UTF-8"))?;
    let value: Option<Vec<u8>> = row.try_get("value").ok();
    let metadata: Option<String> = row.try_get("metadata").ok();
    let metadata: BTreeMap<String, String> = match metadata {
        Some(m) => serde_json::from_str(&m)
            .map_err(|e| Error::internal(ID, format!("stored metadata is damaged: {e}")))?,
        None => BTreeMap::new(),
    };
    let left: Option<i64> = row.try_get("left_ms").ok().flatten();
    Ok(Record {
        key,
        value: value.unwrap_or_default(),
        metadata,
        expiry: left.map(|ms| Duration::from_millis(u64::try_from(ms).unwrap_or(0))),
    })
}

fn not_found(key: &str) -> Error {
    Error::not_found(ID, format!("Record \"{key}\" not found"))
}

#[async_trait]
impl Store for PostgresStore {
    async fn read(&self, database: &str, table: &str, key: &str) -> Result<Record, Error> {
        check_names(database, table, Some(key))?;
        let client = self.client().await?;
        let sql = format!(
            "SELECT {RECORD_COLUMNS}{LEFT_MS} FROM micro_records \
             WHERE db = $1 AND tbl = $2 AND key = $3 AND {LIVE}"
        );
        let statement = client.prepare_cached(&sql).await.map_err(query_error)?;
        let row = client
            .query_opt(&statement, &[&database, &table, &key.as_bytes()])
            .await
            .map_err(query_error)?
            .ok_or_else(|| not_found(key))?;
        row_record(&row)
    }

    async fn find(&self, database: &str, table: &str, query: &Query) -> Result<Vec<Record>, Error> {
        let columns = format!("{RECORD_COLUMNS}{LEFT_MS}");
        self.selected(database, table, query, &columns).await
    }

    async fn write(&self, database: &str, table: &str, record: Record) -> Result<(), Error> {
        self.upsert(database, table, record, None).await.map(drop)
    }

    async fn write_if(
        &self,
        database: &str,
        table: &str,
        record: Record,
        expected: Option<&[u8]>,
    ) -> Result<bool, Error> {
        self.upsert(database, table, record, Some(expected)).await
    }

    async fn delete(&self, database: &str, table: &str, key: &str) -> Result<(), Error> {
        check_names(database, table, Some(key))?;
        let client = self.client().await?;
        let statement = client
            .prepare_cached("DELETE FROM micro_records WHERE db = $1 AND tbl = $2 AND key = $3")
            .await
            .map_err(query_error)?;
        client
            .execute(&statement, &[&database, &table, &key.as_bytes()])
            .await
            .map_err(query_error)?;
        Ok(())
    }

    async fn list(&self, database: &str, table: &str, query: &Query) -> Result<Vec<String>, Error> {
        Ok(self
            .selected(database, table, query, "key")
            .await?
            .into_iter()
            .map(|r| r.key)
            .collect())
    }

    async fn databases(&self) -> Result<Vec<String>, Error> {
        self.distinct("db", None).await
    }

    async fn tables(&self, database: &str) -> Result<Vec<String>, Error> {
        self.distinct("tbl", Some(database)).await
    }
}
