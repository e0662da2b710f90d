//! The events contract: one suite every [`Events`] engine runs (BEHAVIOR.md §3, Events).
//!
//! Durability across restarts depends on how an engine is started, so each engine tests it next
//! to its own start-up; everything else is here.

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use futures::StreamExt;

use super::{ConsumeOptions, Consumer, Event, Events, MAX_UNACKED, Offset};
use crate::contract::unique;
pub use crate::contract::{Clock, PausedClock, RealClock};

/// How long a check waits for an event that should come.
const PATIENCE: Duration = Duration::from_secs(10);

/// Runs every check of the contract.
pub async fn run_all(events: Arc<dyn Events>, clock: impl Clock) {
    publish_numbers_events_and_refuses_empty_topics(&*events).await;
    groups_share_and_each_group_gets_all(&*events).await;
    offsets_replay_stored_events_first(&*events).await;
    a_group_resumes_where_it_stopped(&*events).await;
    unacked_events_come_back_with_the_same_id(&*events, &clock).await;
    retry_limit_stops_redelivery(&*events, &clock).await;
    nack_redelivers_at_once(&*events).await;
    a_slow_group_holds_at_most_max_unacked(&*events).await;
    acking_each_event_before_the_next_gets_through_a_backlog(&*events).await;
    namespaces_are_separate(&*events).await;
    topics_are_listed_per_namespace(&*events).await;
}

async fn next(consumer: &mut Consumer) -> Event {
    tokio::time::timeout(PATIENCE, consumer.events.next())
        .await
        .expect("an event within the patience")
        .expect("the consumer is open")
        .expect("a delivery, not an error")
}

async fn nothing_more(consumer: &mut Consumer, wait: Duration) {
    let extra = tokio::time::timeout(wait, consumer.events.next()).await;
    assert!(extra.is_err(), "no further event arrives: {extra:?}");
}

async fn publish(events: &dyn Events, ns: &str, topic: &str, payload: &str) -> Event {
    events
        .publish(ns, topic, payload.as_bytes().to_vec(), Default::default())
        .await
        .expect("publish")
}

fn group(name: &str) -> ConsumeOptions {
    ConsumeOptions {
        group: Some(name.to_owned()),
        ..ConsumeOptions::default()
    }
}

async fn publish_numbers_events_and_refuses_empty_topics(events: &dyn Events) {
    let ns = unique("publish");
    let mut metadata = std::collections::BTreeMap::new();
    metadata.insert("k".to_owned(), "v".to_owned());
    let first = events
        .publish(&ns, "t", b"{\"a\":1}".to_vec(), metadata.clone())
        .await
        .expect("publish");
    let second = publish(events, &ns, "t", "2").await;
    assert_eq!(
        (first.sequence, second.sequence),
        (1, 2),
        "sequences count from 1"
    );
    assert_ne!(first.id, second.id, "ids are unique");
    assert_eq!(first.metadata, metadata);
    assert_eq!(first.topic, "t");
    let err = events
        .publish(&ns, "", b"x".to_vec(), Default::default())
        .await
        .expect_err("an empty topic");
    assert_eq!(err.code, 400, "{err:?}");
}

async fn groups_share_and_each_group_gets_all(events: &dyn Events) {
    let ns = unique("groups");
    let mut a = events.consume(&ns, "t", group("g")).await.expect("consume");
    let mut b = events.consume(&ns, "t", group("g")).await.expect("consume");
    let mut other = events.consume(&ns, "t", group("h")).await.expect("consume");
    const N: usize = 20;
    for i in 0..N {
        publish(events, &ns, "t", &i.to_string()).await;
    }
    for i in 0..N {
        assert_eq!(
            next(&mut other).await.payload,
            i.to_string().into_bytes(),
            "in order"
        );
    }
    let mut seen = Vec::new();
    let mut counts = Vec::new();
    for consumer in [&mut a, &mut b] {
        let mut count = 0;
        while let Ok(Some(Ok(event))) =
            tokio::time::timeout(Duration::from_millis(500), consumer.events.next()).await
        {
            seen.push(event.sequence);
            count += 1;
        }
        counts.push(count);
    }
    let distinct: BTreeSet<u64> = seen.iter().copied().collect();
    assert_eq!(
        (seen.len(), distinct.len()),
        (N, N),
        "shared without loss or duplicates: {counts:?}"
    );
    assert!(
        counts.iter().all(|&c| c > 0),
        "both consumers got a share: {counts:?}"
    );
}

async fn offsets_replay_stored_events_first(events: &dyn Events) {
    let ns = unique("offsets");
    publish(events, &ns, "t", "one").await;
    let two = publish(events, &ns, "t", "two").await;
    publish(events, &ns, "t", "three").await;

    let mut from_seq = events
        .consume(
            &ns,
            "t",
            ConsumeOptions {
                offset: Offset::Sequence(2),
                ..group("by-seq")
            },
        )
        .await
        .expect("consume");
    assert_eq!(next(&mut from_seq).await.payload, b"two");
    assert_eq!(next(&mut from_seq).await.payload, b"three");
    publish(events, &ns, "t", "four").await;
    assert_eq!(
        next(&mut from_seq).await.payload,
        b"four",
        "then new events"
    );

    let mut from_time = events
        .consume(
            &ns,
            "t",
            ConsumeOptions {
                offset: Offset::Time(two.timestamp),
                ..group("by-time")
            },
        )
        .await
        .expect("consume");
    assert_eq!(next(&mut from_time).await.payload, b"two");

    let mut latest = events
        .consume(&ns, "t", ConsumeOptions::default())
        .await
        .expect("consume");
    nothing_more(&mut latest, Duration::from_millis(200)).await;
    publish(events, &ns, "t", "five").await;
    assert_eq!(
        next(&mut latest).await.payload,
        b"five",
        "the default offset is new events only"
    );
}

async fn a_group_resumes_where_it_stopped(events: &dyn Events) {
    let ns = unique("resume");
    let mut first = events
        .consume(
            &ns,
            "t",
            ConsumeOptions {
                offset: Offset::Sequence(1),
                ..group("g")
            },
        )
        .await
        .expect("consume");
    publish(events, &ns, "t", "a").await;
    publish(events, &ns, "t", "b").await;
    next(&mut first).await;
    next(&mut first).await;
    drop(first);
    // Leaving completes shortly after the drop on an engine (its pull is withdrawn by a
    // message of its own); an event published before that may go to the leaving consumer and
    // come back only after ack_wait.
    tokio::time::sleep(Duration::from_millis(500)).await;
    publish(events, &ns, "t", "c").await;
    let mut again = events
        .consume(
            &ns,
            "t",
            ConsumeOptions {
                offset: Offset::Sequence(1),
                ..group("g")
            },
        )
        .await
        .expect("consume");
    assert_eq!(
        next(&mut again).await.payload,
        b"c",
        "the group's position wins over the offset"
    );
}

async fn unacked_events_come_back_with_the_same_id(events: &dyn Events, clock: &impl Clock) {
    let ns = unique("redeliver");
    let options = ConsumeOptions {
        auto_ack: false,
        ack_wait: Duration::from_millis(300),
        ..group("g")
    };
    let mut consumer = events.consume(&ns, "t", options).await.expect("consume");
    let sent = publish(events, &ns, "t", "once").await;
    let first = next(&mut consumer).await;
    assert_eq!(first.id, sent.id);
    clock.pass(Duration::from_millis(400)).await;
    let again = next(&mut consumer).await;
    assert_eq!(again.id, sent.id, "redelivered with the same id");
    events
        .ack(&ns, "t", &consumer.group, &again.id)
        .await
        .expect("ack");
    let later = publish(events, &ns, "t", "later").await;
    clock.pass(Duration::from_millis(400)).await;
    assert_eq!(
        next(&mut consumer).await.id,
        later.id,
        "an acked event is not redelivered"
    );
    events
        .ack(&ns, "t", &consumer.group, &later.id)
        .await
        .expect("ack");
    let err = events
        .ack(&ns, "t", "no-such-group", &later.id)
        .await
        .expect_err("unknown group");
    assert_eq!(err.code, 404, "{err:?}");
}

async fn retry_limit_stops_redelivery(events: &dyn Events, clock: &impl Clock) {
    let ns = unique("retry");
    let options = ConsumeOptions {
        auto_ack: false,
        ack_wait: Duration::from_millis(200),
        retry_limit: Some(1),
        ..group("g")
    };
    let mut consumer = events.consume(&ns, "t", options).await.expect("consume");
    let sent = publish(events, &ns, "t", "flaky").await;
    assert_eq!(next(&mut consumer).await.id, sent.id);
    clock.pass(Duration::from_millis(300)).await;
    assert_eq!(next(&mut consumer).await.id, sent.id, "one retry");
    clock.pass(Duration::from_millis(300)).await;
    nothing_more(&mut consumer, Duration::from_millis(600)).await;
}

async fn nack_redelivers_at_once(events: &dyn Events) {
    let ns = unique("nack");
    let options = ConsumeOptions {
        auto_ack: false,
        ..group("g")
    };
    let mut consumer = events.consume(&ns, "t", options).await.expect("consume");
    let sent = publish(events, &ns, "t", "again").await;
    assert_eq!(next(&mut consumer).await.id, sent.id);
    events
        .nack(&ns, "t", &consumer.group, &sent.id)
        .await
        .expect("nack");
    assert_eq!(
        next(&mut consumer).await.id,
        sent.id,
        "redelivered well before ack_wait (30 s)"
    );
}

async fn a_slow_group_holds_at_most_max_unacked(events: &dyn Events) {
    let ns = unique("unacked");
    let options = ConsumeOptions {
        auto_ack: false,
        ack_wait: Duration::from_secs(120),
        ..group("g")
    };
    let mut consumer = events.consume(&ns, "t", options).await.expect("consume");
    let ns_ref = ns.as_str();
    futures::stream::iter(0..=MAX_UNACKED)
        .for_each_concurrent(64, |i| async move {
            publish(events, ns_ref, "t", &i.to_string()).await;
        })
        .await;
    let mut held = Vec::with_capacity(MAX_UNACKED);
    for _ in 0..MAX_UNACKED {
        held.push(next(&mut consumer).await.id);
    }
    nothing_more(&mut consumer, Duration::from_millis(500)).await;
    events
        .ack(&ns, "t", &consumer.group, &held[0])
        .await
        .expect("ack");
    let last = next(&mut consumer).await;
    assert!(!held.contains(&last.id), "the one held back: {last:?}");
}

/// The plain loop — take an event, ack it, take the next — over more events than any buffer on
/// the way holds (a consumer's channel, a gRPC stream's flow-control window): the ack is
/// answered while deliveries wait for the consumer to read on.
async fn acking_each_event_before_the_next_gets_through_a_backlog(events: &dyn Events) {
    let ns = unique("backlog");
    let options = ConsumeOptions {
        auto_ack: false,
        ..group("g")
    };
    let mut consumer = events.consume(&ns, "t", options).await.expect("consume");
    let payload = "x".repeat(8 * 1024);
    const BACKLOG: usize = 100;
    for _ in 0..BACKLOG {
        publish(events, &ns, "t", &payload).await;
    }
    for _ in 0..BACKLOG {
        let event = next(&mut consumer).await;
        tokio::time::timeout(PATIENCE, events.ack(&ns, "t", &consumer.group, &event.id))
            .await
            .expect("an ack answered while deliveries wait")
            .expect("ack");
    }
}

async fn namespaces_are_separate(events: &dyn Events) {
    let (a, b) = (unique("ns-a"), unique("ns-b"));
    publish(events, &a, "t", "in a").await;
    let mut in_b = events
        .consume(
            &b,
            "t",
            ConsumeOptions {
                offset: Offset::Sequence(1),
                ..group("g")
            },
        )
        .await
        .expect("consume");
    nothing_more(&mut in_b, Duration::from_millis(200)).await;
    publish(events, &b, "t", "in b").await;
    let event = next(&mut in_b).await;
    assert_eq!(
        (event.payload.as_slice(), event.sequence),
        (&b"in b"[..], 1)
    );
}

async fn topics_are_listed_per_namespace(events: &dyn Events) {
    let (a, b) = (unique("topics-a"), unique("topics-b"));
    assert!(events.topics(&a).await.expect("topics").is_empty());
    // Names that sort around each other, and odd ones.
    for topic in ["orders", "order", "orders.v2", "a b", "z\u{fc}rich"] {
        publish(events, &a, topic, "x").await;
    }
    publish(events, &a, "orders", "again").await;
    publish(events, &b, "elsewhere", "x").await;
    assert_eq!(
        events.topics(&a).await.expect("topics"),
        ["a b", "order", "orders", "orders.v2", "z\u{fc}rich"]
    );
    assert_eq!(events.topics(&b).await.expect("topics"), ["elsewhere"]);
}
