//! `micro store read|write|list|delete|databases|tables`.

use micro::{remote::Connection, store::RemoteStore};
use micro_core::store::{Order, Query, Record, Store};

use crate::{
    cli::{Paging, StoreCommand, StoreTarget},
    context::Context,
    failure::Failure,
};

/// The CLI's table when none is named.
const TABLE: &str = "micro";

pub(crate) async fn run(ctx: &Context, action: Option<&StoreCommand>) -> Result<(), Failure> {
    let action = match action {
        None | Some(StoreCommand::Unknown(_)) => {
            return Err(Failure::new(
                "Unrecognized subcommand for micro store. Please refer to 'micro store --help'",
            ));
        }
        Some(a) => a,
    };
    let conn = Connection::from_channel(ctx.connect().await?, &ctx.address);
    let store = RemoteStore::over(conn, &ctx.namespace);
    let names = |target: &StoreTarget| {
        (
            target
                .database
                .clone()
                .unwrap_or_else(|| ctx.namespace.clone()),
            target.table.clone().unwrap_or_else(|| TABLE.to_owned()),
        )
    };
    match action {
        StoreCommand::Read {
            key,
            prefix,
            suffix,
            paging,
            verbose,
            output,
            target,
        } => {
            let (db, table) = names(target);
            let records = if *prefix || *suffix {
                let query = Query {
                    prefix: prefix.then(|| key.clone()),
                    suffix: suffix.then(|| key.clone()),
                    ..query(paging)
                };
                store.find(&db, &table, &query).await?
            } else {
                match store.read(&db, &table, key).await {
                    Ok(r) => vec![r],
                    Err(e) if e.code == 404 => return Err(Failure::new("Not found")),
                    Err(e) => return Err(e.into()),
                }
            };
            print_records(&records, *verbose, output == "json");
        }
        StoreCommand::Write {
            key,
            value,
            expiry,
            target,
        } => {
            let (db, table) = names(target);
            let mut record = Record::new(key.clone(), value.clone().into_bytes());
            record.expiry = *expiry;
            store.write(&db, &table, record).await?;
        }
        StoreCommand::List {
            prefix,
            suffix,
            paging,
            output,
            target,
        } => {
            let (db, table) = names(target);
            let query = Query {
                prefix: prefix.clone(),
                suffix: suffix.clone(),
                ..query(paging)
            };
            let keys = store.list(&db, &table, &query).await?;
            if output == "json" {
                println!("{}", serde_json::Value::from(keys));
            } else {
                for key in keys {
                    println!("{key}");
                }
            }
        }
        StoreCommand::Delete { key, target } => {
            let (db, table) = names(target);
            store.delete(&db, &table, key).await?;
        }
        StoreCommand::Databases => {
            for db in store.databases().await? {
                println!("{db}");
            }
        }
        StoreCommand::Tables { database } => {
            let db = database.clone().unwrap_or_else(|| ctx.namespace.clone());
            for table in store.tables(&db).await? {
                println!("{table}");
            }
        }
        StoreCommand::Unknown(_) => unreachable!("refused above"),
    }
    Ok(())
}

fn query(paging: &Paging) -> Query {
    Query {
        offset: paging.offset,
        limit: paging.limit,
        order: if paging.order == "desc" {
            Order::Desc
        } else {
            Order::Asc
        },
        ..Query::default()
    }
}

fn print_records(records: &[Record], verbose: bool, json: bool) {
    if json {
        let out: Vec<serde_json::Value> = records
            .iter()
            .map(|r| {
                serde_json::json!({
                    "key": r.key,
                    "value": String::from_utf8_lossy(&r.value),
                    "metadata": r.metadata,
                    "expiry": r.expiry.map(|d| humantime::format_duration(round(d)).to_string()),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        return;
    }
    if !verbose {
        for r in records {
            println!("{}", String::from_utf8_lossy(&r.value));
        }
        return;
    }
    let rows: Vec<[String; 3]> = records
        .iter()
        .map(|r| {
            [
                r.key.clone(),
                String::from_utf8_lossy(&r.value).into_owned(),
                r.expiry.map_or("None".to_owned(), |d| {
                    humantime::format_duration(round(d)).to_string()
                }),
            ]
        })
        .collect();
    let mut widths = [3, 5, 6];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    println!(
        "{:<w0$}  {:<w1$}  EXPIRY",
        "KEY",
        "VALUE",
        w0 = widths[0],
        w1 = widths[1]
    );
    for [k, v, e] in rows {
        println!("{k:<w0$}  {v:<w1$}  {e}", w0 = widths[0], w1 = widths[1]);
    }
}

/// Time left to the millisecond: enough for a person, and sub-second stays visible.
fn round(d: std::time::Duration) -> std::time::Duration {
    std::time::Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
