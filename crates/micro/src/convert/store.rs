//! `micro.store`: records and orders.

use std::time::Duration;

use micro_core::{
    Error,
    store::{Order, Record},
};
use micro_proto::store as pb;

/// A record on the wire.
pub fn record_to_pb(record: Record) -> pb::Record {
    pb::Record {
        key: record.key,
        value: record.value,
        metadata: record.metadata.into_iter().collect(),
        expiry_ms: record.expiry.map_or(0, |d| {
            i64::try_from(d.as_millis()).unwrap_or(i64::MAX).max(1)
        }),
    }
}

/// A record from the wire.
pub fn record_from_pb(record: pb::Record) -> Record {
    Record {
        key: record.key,
        value: record.value,
        metadata: record.metadata.into_iter().collect(),
        expiry: (record.expiry_ms > 0)
            .then(|| Duration::from_millis(record.expiry_ms.unsigned_abs())),
    }
}

/// The wire name of an order.
pub fn order_to_str(order: Order) -> &'static str {
    match order {
        Order::Asc => "asc",
        Order::Desc => "desc",
    }
}

/// An order from the wire: `asc` (or empty) and `desc`.
pub fn order_from_str(order: &str) -> Result<Order, Error> {
    match order.trim().to_ascii_lowercase().as_str() {
        "" | "asc" => Ok(Order::Asc),
        "desc" => Ok(Order::Desc),
        other => Err(Error::bad_request(
            "micro.store",
            format!("unknown order {other:?}: use asc or desc"),
        )),
    }
}
