//! `micro.events`: events and consume options.

use std::time::{Duration, UNIX_EPOCH};

use micro_core::events::{ConsumeOptions, Event, Offset};
use micro_proto::events as pb;

use super::{from_millis, millis};

/// An event on the wire, delivered to `group` (empty when published).
pub fn event_to_pb(event: Event, group: &str) -> pb::Event {
    pb::Event {
        id: event.id,
        topic: event.topic,
        sequence: event.sequence,
        timestamp_ms: millis(event.timestamp),
        metadata: event.metadata.into_iter().collect(),
        payload: event.payload,
        group: group.to_owned(),
    }
}

/// An event from the wire.
pub fn event_from_pb(event: pb::Event) -> Event {
    Event {
        id: event.id,
        topic: event.topic,
        sequence: event.sequence,
        timestamp: from_millis(event.timestamp_ms),
        metadata: event.metadata.into_iter().collect(),
        payload: event.payload,
    }
}

/// Consume options on the wire.
pub fn options_to_pb(topic: &str, options: &ConsumeOptions) -> pb::ConsumeRequest {
    let (offset_sequence, offset_time_ms) = match options.offset {
        Offset::Latest => (0, 0),
        Offset::Sequence(n) => (n.max(1), 0),
        // A time at or before the epoch still asks for a time (0 would mean "latest").
        Offset::Time(t) => (0, millis(t).max(1)),
    };
    pb::ConsumeRequest {
        topic: topic.to_owned(),
        group: options.group.clone().unwrap_or_default(),
        offset_sequence,
        offset_time_ms,
        auto_ack: Some(options.auto_ack),
        ack_wait_ms: u64::try_from(options.ack_wait.as_millis()).unwrap_or(u64::MAX),
        retry_limit: options.retry_limit,
    }
}

/// Consume options from the wire (defaults for what is unset).
pub fn options_from_pb(req: &pb::ConsumeRequest) -> ConsumeOptions {
    let defaults = ConsumeOptions::default();
    ConsumeOptions {
        group: (!req.group.is_empty()).then(|| req.group.clone()),
        offset: if req.offset_sequence > 0 {
            Offset::Sequence(req.offset_sequence)
        } else if req.offset_time_ms > 0 {
            Offset::Time(UNIX_EPOCH + Duration::from_millis(req.offset_time_ms.unsigned_abs()))
        } else {
            Offset::Latest
        },
        auto_ack: req.auto_ack.unwrap_or(true),
        ack_wait: match req.ack_wait_ms {
            0 => defaults.ack_wait,
            ms => Duration::from_millis(ms),
        },
        retry_limit: req.retry_limit,
    }
}
