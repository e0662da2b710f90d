//! The store pages: the namespace's databases, a database's tables, a table's keys (prefix
//! search, paged), one record; and forms to write and delete. Each is a `Store` call through
//! the platform's pipeline as the visitor, so the store's own rules (and the namespace's walls)
//! decide, as for `micro store`.

use std::fmt::Write;

use axum::{
    body::Bytes,
    extract::{Query, State},
    http::StatusCode,
    response::Response,
};
use base64::Engine;
use micro_core::Error;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    Dashboard,
    form::field,
    html::{csrf_field, escape, url},
    session::Visit,
};

/// Keys shown on one page.
const PAGE: u64 = 50;

#[derive(Deserialize, Default)]
pub(crate) struct Place {
    #[serde(default)]
    database: String,
    #[serde(default)]
    table: String,
    #[serde(default)]
    prefix: String,
    #[serde(default)]
    offset: u64,
    #[serde(default)]
    key: Option<String>,
}

/// `GET /store`: what `?database=&table=&prefix=&offset=&key=` points at.
pub(crate) async fn browse(
    State(dashboard): State<Dashboard>,
    visit: Visit,
    Query(place): Query<Place>,
) -> Response {
    match page(&dashboard, &visit, &place).await {
        Ok(body) => visit.page(StatusCode::OK, "Store", &body),
        Err(e) => visit.failure(&e),
    }
}

async fn page(dashboard: &Dashboard, visit: &Visit, place: &Place) -> Result<String, Error> {
    let caller = &visit.caller;
    let ns = url(&caller.namespace);
    let here = |database: &str, table: &str| {
        format!(
            "/store?namespace={ns}&database={}&table={}",
            url(database),
            url(table)
        )
    };
    let mut out = String::from("<h1>Store</h1>");
    let _ = write!(
        out,
        "<p><a href=\"/store?namespace={ns}\">Databases</a>{}{}</p>",
        if place.database.is_empty() {
            String::new()
        } else {
            format!(
                " › <a href=\"{}\">{}</a>",
                here(&place.database, ""),
                escape(&place.database)
            )
        },
        if place.table.is_empty() {
            String::new()
        } else {
            format!(
                " › <a href=\"{}\">{}</a>",
                here(&place.database, &place.table),
                escape(&place.table)
            )
        }
    );
    let call = |endpoint: &'static str, request: Value| async move {
        dashboard.call(caller, "store", endpoint, &request).await
    };
    if let Some(key) = &place.key {
        let answer = call(
            "Store.Read",
            json!({ "key": key, "database": place.database, "table": place.table }),
        )
        .await?;
        let record = &answer["records"][0];
        let value = text(record["value"].as_str().unwrap_or_default());
        let _ = write!(
            out,
            "<h2>Key {}</h2><pre id=\"value\">{}</pre>",
            escape(key),
            escape(&value)
        );
        // int64 is a string in JSON; an unset expiry is left out.
        if let Some(expiry) = record["expiry_ms"].as_str().filter(|e| *e != "0") {
            let _ = write!(
                out,
                "<p class=\"note\">expires at {} (Unix ms)</p>",
                escape(expiry)
            );
        }
        out.push_str(&delete_form(visit, place, key));
    } else if place.database.is_empty() {
        let answer = call("Store.Databases", json!({})).await?;
        out.push_str("<h2>Databases</h2><ul>");
        for db in strings(&answer["databases"]) {
            let _ = write!(
                out,
                "<li><a href=\"{}\">{}</a></li>",
                here(db, ""),
                escape(db)
            );
        }
        out.push_str("</ul>");
    } else if place.table.is_empty() {
        let answer = call("Store.Tables", json!({ "database": place.database })).await?;
        out.push_str("<h2>Tables</h2><ul>");
        for table in strings(&answer["tables"]) {
            let _ = write!(
                out,
                "<li><a href=\"{}\">{}</a></li>",
                here(&place.database, table),
                escape(table)
            );
        }
        out.push_str("</ul>");
    } else {
        let answer = call(
            "Store.List",
            json!({
                "database": place.database,
                "table": place.table,
                "prefix": place.prefix,
                "limit": PAGE + 1,
                "offset": place.offset,
            }),
        )
        .await?;
        let keys = strings(&answer["keys"]);
        let _ = write!(
            out,
            "<form method=\"get\" action=\"/store\" role=\"search\">\
             <input type=\"hidden\" name=\"namespace\" value=\"{}\">\
             <input type=\"hidden\" name=\"database\" value=\"{}\">\
             <input type=\"hidden\" name=\"table\" value=\"{}\">\
             <label for=\"prefix\">Keys starting with</label>\
             <input id=\"prefix\" name=\"prefix\" value=\"{}\"> <button type=\"submit\">Find keys</button></form>",
            escape(&caller.namespace),
            escape(&place.database),
            escape(&place.table),
            escape(&place.prefix)
        );
        out.push_str("<h2>Keys</h2><ul id=\"keys\">");
        let base = format!(
            "{}&prefix={}",
            here(&place.database, &place.table),
            url(&place.prefix)
        );
        for key in keys
            .iter()
            .take(usize::try_from(PAGE).unwrap_or(usize::MAX))
        {
            let _ = write!(
                out,
                "<li><a href=\"{base}&key={}\">{}</a></li>",
                url(key),
                escape(key)
            );
        }
        out.push_str("</ul><p>");
        if place.offset > 0 {
            let _ = write!(
                out,
                "<a href=\"{base}&offset={}\">Previous keys</a> ",
                place.offset.saturating_sub(PAGE)
            );
        }
        if keys.len() as u64 > PAGE {
            let _ = write!(
                out,
                "<a href=\"{base}&offset={}\">More keys</a>",
                place.offset + PAGE
            );
        }
        out.push_str("</p>");
    }
    out.push_str(&write_form(visit, place));
    Ok(out)
}

/// `POST /store/write`: writes the posted key and value, then shows the record.
pub(crate) async fn write(
    State(dashboard): State<Dashboard>,
    visit: Visit,
    body: Bytes,
) -> Response {
    let (dashboard, visit) = (&dashboard, &visit);
    visit
        .act(&body, |fields| async move {
            let get = |k| field(&fields, k);
            let (database, table, key) = (get("database"), get("table"), get("key"));
            let value = base64::engine::general_purpose::STANDARD.encode(get("value").as_bytes());
            let record = json!({ "key": key, "value": value });
            let request = json!({ "record": record, "database": database, "table": table });
            dashboard
                .call(&visit.caller, "store", "Store.Write", &request)
                .await?;
            Ok(format!(
                "{}&key={}",
                table_page(visit, database, table),
                url(key)
            ))
        })
        .await
}

/// `POST /store/delete`: deletes the posted key, then shows its table.
pub(crate) async fn delete(
    State(dashboard): State<Dashboard>,
    visit: Visit,
    body: Bytes,
) -> Response {
    let (dashboard, visit) = (&dashboard, &visit);
    visit
        .act(&body, |fields| async move {
            let get = |k| field(&fields, k);
            let (database, table) = (get("database"), get("table"));
            let request = json!({ "key": get("key"), "database": database, "table": table });
            dashboard
                .call(&visit.caller, "store", "Store.Delete", &request)
                .await?;
            Ok(table_page(visit, database, table))
        })
        .await
}

/// The page of `table` in `database`.
fn table_page(visit: &Visit, database: &str, table: &str) -> String {
    format!(
        "/store?namespace={}&database={}&table={}",
        url(&visit.caller.namespace),
        url(database),
        url(table)
    )
}

fn write_form(visit: &Visit, place: &Place) -> String {
    format!(
        "<h2>Write a key</h2><form method=\"post\" action=\"/store/write?namespace={}\">{}\
         <label for=\"w-database\">Database <span class=\"note\">(empty: the namespace's)</span></label>\
         <input id=\"w-database\" name=\"database\" value=\"{}\">\
         <label for=\"w-table\">Table <span class=\"note\">(empty: micro)</span></label>\
         <input id=\"w-table\" name=\"table\" value=\"{}\">\
         <label for=\"w-key\">Key</label><input id=\"w-key\" name=\"key\" value=\"{}\" required>\
         <label for=\"w-value\">Value</label><textarea id=\"w-value\" name=\"value\"></textarea>\
         <p><button type=\"submit\">Write</button></p></form>",
        url(&visit.caller.namespace),
        csrf_field(&visit.csrf),
        escape(&place.database),
        escape(&place.table),
        escape(place.key.as_deref().unwrap_or_default())
    )
}

fn delete_form(visit: &Visit, place: &Place, key: &str) -> String {
    format!(
        "<form method=\"post\" action=\"/store/delete?namespace={}\">{}\
         <input type=\"hidden\" name=\"database\" value=\"{}\">\
         <input type=\"hidden\" name=\"table\" value=\"{}\">\
         <input type=\"hidden\" name=\"key\" value=\"{}\">\
         <button type=\"submit\">Delete {}</button></form>",
        url(&visit.caller.namespace),
        csrf_field(&visit.csrf),
        escape(&place.database),
        escape(&place.table),
        escape(key),
        escape(key)
    )
}

/// A JSON array's strings.
fn strings(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .map(|items| items.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// A stored value (base64 in JSON) as text, or as base64 when it is not UTF-8.
fn text(base64: &str) -> String {
    base64::engine::general_purpose::STANDARD
        .decode(base64)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .unwrap_or_else(|| format!("(binary, base64) {base64}"))
}
