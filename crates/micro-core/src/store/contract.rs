//! The store contract: one suite every [`Store`] backend runs (BEHAVIOR.md §3, Store).
//!
//! A backend's test calls [`run_all`] with its store and a [`Clock`]. Each check writes to
//! databases of its own, so a shared engine can run the suite while holding other data.

use std::{sync::Arc, time::Duration};

use crate::contract::unique;
pub use crate::contract::{Clock, PausedClock, RealClock};

use super::{Order, Query, Record, Store};

/// Runs every check of the contract.
pub async fn run_all(store: Arc<dyn Store>, clock: impl Clock) {
    records_round_trip_with_metadata(&*store).await;
    missing_and_deleted_keys_are_not_found(&*store).await;
    writes_replace(&*store).await;
    queries_filter_order_and_page(&*store).await;
    expiry_is_honoured_to_the_millisecond(&*store, &clock).await;
    databases_and_tables_are_separate(&*store).await;
    bad_names_are_refused(&*store).await;
    prefixes_are_literal(&*store).await;
    conditional_writes_decide_one_winner(store.clone()).await;
    conditional_writes_compare_the_live_value(&*store, &clock).await;
    a_value_at_the_limit_round_trips(&*store).await;
}

/// A value of [`crate::limits::MAX_VALUE`] bytes is written and read back whole, on every
/// engine and through the server (whose messages carry it, with its key, past 4 MiB).
async fn a_value_at_the_limit_round_trips(store: &dyn Store) {
    let db = unique("biggest");
    let value = vec![7u8; crate::limits::MAX_VALUE];
    store
        .write(&db, "t", Record::new("big", value.clone()))
        .await
        .expect("a value at the limit is written");
    let read = store.read(&db, "t", "big").await.expect("and read back");
    assert!(read.value == value, "whole: {} bytes", read.value.len());
}

/// `%`, `_`, `*` and `\\` in a prefix are plain characters, never patterns.
async fn prefixes_are_literal(store: &dyn Store) {
    let db = unique("literal");
    for key in ["a%b", "a_b", "axb", "a*b", "a\\b", "a%", "ab"] {
        store.write(&db, "t", Record::new(key, "v")).await.unwrap();
    }
    let q = |p: &str| Query {
        prefix: Some(p.to_owned()),
        ..Query::default()
    };
    assert_eq!(store.list(&db, "t", &q("a%")).await.unwrap(), ["a%", "a%b"]);
    assert_eq!(store.list(&db, "t", &q("a_")).await.unwrap(), ["a_b"]);
    assert_eq!(store.list(&db, "t", &q("a*")).await.unwrap(), ["a*b"]);
    assert_eq!(store.list(&db, "t", &q("a\\")).await.unwrap(), ["a\\b"]);
}

/// Many writers racing to create one key: exactly one wins, and its value is the one stored.
async fn conditional_writes_decide_one_winner(store: Arc<dyn Store>) {
    let db = unique("create");
    let racers = (0..16).map(|i| {
        let store = store.clone();
        let db = db.clone();
        async move {
            let won = store
                .write_if(&db, "t", Record::new("name", format!("racer-{i}")), None)
                .await
                .expect("write_if");
            (i, won)
        }
    });
    let results = futures::future::join_all(racers).await;
    let winners: Vec<_> = results.iter().filter(|(_, won)| *won).collect();
    assert_eq!(winners.len(), 1, "exactly one creator wins: {results:?}");
    let stored = store.read(&db, "t", "name").await.unwrap();
    assert_eq!(stored.value, format!("racer-{}", winners[0].0).into_bytes());
}

/// A conditional write compares the live value: a stale expectation loses, a current one wins,
/// and an expired record counts as none.
async fn conditional_writes_compare_the_live_value(store: &dyn Store, clock: &impl Clock) {
    let db = unique("swap");
    store
        .write(&db, "t", Record::new("k", "one"))
        .await
        .unwrap();
    assert!(
        !store
            .write_if(&db, "t", Record::new("k", "two"), None)
            .await
            .unwrap(),
        "a key that exists is not created again"
    );
    assert!(
        !store
            .write_if(&db, "t", Record::new("k", "two"), Some(b"stale"))
            .await
            .unwrap()
    );
    assert!(
        store
            .write_if(&db, "t", Record::new("k", "two"), Some(b"one"))
            .await
            .unwrap()
    );
    assert_eq!(store.read(&db, "t", "k").await.unwrap().value, b"two");
    store
        .write(
            &db,
            "t",
            Record::new("short", "lived").with_expiry(Duration::from_millis(1500)),
        )
        .await
        .unwrap();
    clock.pass(Duration::from_millis(2500)).await;
    assert!(
        !store
            .write_if(&db, "t", Record::new("short", "again"), Some(b"lived"))
            .await
            .unwrap(),
        "an expired record holds no value"
    );
    assert!(
        store
            .write_if(&db, "t", Record::new("short", "again"), None)
            .await
            .unwrap(),
        "an expired record counts as none"
    );
}

fn keys(records: &[Record]) -> Vec<&str> {
    records.iter().map(|r| r.key.as_str()).collect()
}

async fn records_round_trip_with_metadata(store: &dyn Store) {
    let db = unique("roundtrip");
    let mut record = Record::new("greeting", b"Value with <> signs\0and bytes".to_vec());
    record.metadata.insert("author".into(), "ada".into());
    store.write(&db, "t", record.clone()).await.expect("write");
    let read = store.read(&db, "t", "greeting").await.expect("read");
    assert_eq!(read, record, "a record reads back as written");
}

async fn missing_and_deleted_keys_are_not_found(store: &dyn Store) {
    let db = unique("missing");
    let err = store.read(&db, "t", "nope").await.expect_err("missing key");
    assert_eq!(err.code, 404, "a missing key is not found: {err:?}");
    store
        .write(&db, "t", Record::new("k", "v"))
        .await
        .expect("write");
    store.delete(&db, "t", "k").await.expect("delete");
    assert_eq!(
        store.read(&db, "t", "k").await.expect_err("deleted").code,
        404
    );
    store
        .delete(&db, "t", "k")
        .await
        .expect("deleting a missing key succeeds");
}

async fn writes_replace(store: &dyn Store) {
    let db = unique("replace");
    store
        .write(
            &db,
            "t",
            Record::new("k", "old").with_expiry(Duration::from_secs(3600)),
        )
        .await
        .expect("write");
    store
        .write(&db, "t", Record::new("k", "new"))
        .await
        .expect("overwrite");
    let read = store.read(&db, "t", "k").await.expect("read");
    assert_eq!(
        (read.value.as_slice(), read.expiry),
        (&b"new"[..], None),
        "the new record replaces the old, expiry included"
    );
}

async fn queries_filter_order_and_page(store: &dyn Store) {
    let db = unique("query");
    for key in ["b2", "a1", "a3", "b1", "a2", "xa1"] {
        store
            .write(&db, "t", Record::new(key, key))
            .await
            .expect("write");
    }
    let query = |prefix: Option<&str>,
                 suffix: Option<&str>,
                 offset: usize,
                 limit: Option<usize>,
                 order: Order| Query {
        prefix: prefix.map(str::to_owned),
        suffix: suffix.map(str::to_owned),
        offset,
        limit,
        order,
    };
    let all = store.list(&db, "t", &Query::default()).await.expect("list");
    assert_eq!(
        all,
        ["a1", "a2", "a3", "b1", "b2", "xa1"],
        "lists in key order"
    );
    let found = store
        .find(&db, "t", &query(Some("a"), None, 0, None, Order::Asc))
        .await
        .expect("prefix");
    assert_eq!(
        keys(&found),
        ["a1", "a2", "a3"],
        "prefix read, in key order"
    );
    assert_eq!(found[1].value, b"a2", "prefix reads return values");
    let found = store
        .find(&db, "t", &query(None, Some("1"), 0, None, Order::Asc))
        .await
        .expect("suffix");
    assert_eq!(keys(&found), ["a1", "b1", "xa1"]);
    let found = store
        .find(&db, "t", &query(Some("a"), Some("1"), 0, None, Order::Asc))
        .await
        .expect("both");
    assert_eq!(keys(&found), ["a1"], "prefix and suffix both apply");
    let found = store
        .find(&db, "t", &query(Some("a"), None, 1, Some(1), Order::Asc))
        .await
        .expect("page");
    assert_eq!(
        keys(&found),
        ["a2"],
        "offset and limit apply after filtering"
    );
    let listed = store
        .list(&db, "t", &query(None, None, 0, Some(2), Order::Desc))
        .await
        .expect("desc");
    assert_eq!(listed, ["xa1", "b2"], "descending order");
    let none = store
        .find(&db, "t", &query(Some("zzz"), None, 0, None, Order::Asc))
        .await
        .expect("no match");
    assert!(
        none.is_empty(),
        "a prefix read of nothing is empty, not an error"
    );
    assert!(
        store
            .list(&unique("empty"), "t", &Query::default())
            .await
            .expect("empty db")
            .is_empty()
    );
}

async fn expiry_is_honoured_to_the_millisecond(store: &dyn Store, clock: &impl Clock) {
    let db = unique("expiry");
    store
        .write(
            &db,
            "t",
            Record::new("short", "v").with_expiry(Duration::from_millis(300)),
        )
        .await
        .expect("write");
    store
        .write(&db, "t", Record::new("long", "v"))
        .await
        .expect("write");
    let read = store
        .read(&db, "t", "short")
        .await
        .expect("not yet expired");
    let left = read
        .expiry
        .expect("an expiring record says how long it has left");
    assert!(
        left <= Duration::from_millis(300) && left > Duration::from_millis(100),
        "{left:?}"
    );
    clock.pass(Duration::from_millis(450)).await;
    assert_eq!(
        store
            .read(&db, "t", "short")
            .await
            .expect_err("expired")
            .code,
        404
    );
    assert_eq!(
        store.list(&db, "t", &Query::default()).await.expect("list"),
        ["long"],
        "expired keys are not listed"
    );
    let found = store.find(&db, "t", &Query::default()).await.expect("find");
    assert_eq!(keys(&found), ["long"]);
}

async fn databases_and_tables_are_separate(store: &dyn Store) {
    let (one, two) = (unique("db-one"), unique("db-two"));
    store
        .write(&one, "users", Record::new("k", "1"))
        .await
        .expect("write");
    store
        .write(&one, "orders", Record::new("k", "2"))
        .await
        .expect("write");
    store
        .write(&two, "users", Record::new("other", "3"))
        .await
        .expect("write");
    assert_eq!(
        store.read(&one, "users", "k").await.expect("read").value,
        b"1"
    );
    assert_eq!(
        store.read(&one, "orders", "k").await.expect("read").value,
        b"2",
        "tables are separate"
    );
    assert_eq!(
        store
            .read(&two, "users", "k")
            .await
            .expect_err("other db")
            .code,
        404,
        "databases are separate"
    );
    let dbs = store.databases().await.expect("databases");
    assert!(dbs.contains(&one) && dbs.contains(&two), "{dbs:?}");
    assert_eq!(
        store.tables(&one).await.expect("tables"),
        ["orders", "users"]
    );
}

async fn bad_names_are_refused(store: &dyn Store) {
    let db = unique("bad");
    assert_eq!(
        store
            .write(&db, "t", Record::new("", "v"))
            .await
            .expect_err("empty key")
            .code,
        400
    );
    assert_eq!(
        store
            .write("", "t", Record::new("k", "v"))
            .await
            .expect_err("empty db")
            .code,
        400
    );
    assert_eq!(
        store
            .read(&db, "", "k")
            .await
            .expect_err("empty table")
            .code,
        400
    );
}
