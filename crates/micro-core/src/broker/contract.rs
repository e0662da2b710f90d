//! The broker contract: one suite every [`Broker`] backend runs (BEHAVIOR.md §3, Broker).

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use futures::StreamExt;

use super::{Broker, Message, Subscription};
use crate::contract::unique;

/// How long a check waits for a message that should come.
const PATIENCE: Duration = Duration::from_secs(10);

/// Runs every check of the contract.
pub async fn run_all(broker: Arc<dyn Broker>) {
    every_subscriber_gets_every_message(&*broker).await;
    a_queue_shares_messages_without_loss_or_duplicates(&*broker).await;
    headers_and_bytes_travel(&*broker).await;
    namespaces_and_topics_are_separate(&*broker).await;
    empty_topics_are_refused(&*broker).await;
}

async fn next(subscription: &mut Subscription) -> Message {
    tokio::time::timeout(PATIENCE, subscription.next())
        .await
        .expect("a message within the patience")
        .expect("the subscription is open")
}

async fn nothing_more(subscription: &mut Subscription) {
    let extra = tokio::time::timeout(Duration::from_millis(200), subscription.next()).await;
    assert!(extra.is_err(), "no further message arrives: {extra:?}");
}

async fn every_subscriber_gets_every_message(broker: &dyn Broker) {
    let (ns, topic) = (unique("fanout"), "events");
    let mut subs = Vec::new();
    for _ in 0..3 {
        subs.push(broker.subscribe(&ns, topic, None).await.expect("subscribe"));
    }
    for i in 0..10 {
        broker
            .publish(&ns, topic, Message::new(format!("m{i}")))
            .await
            .expect("publish");
    }
    for sub in &mut subs {
        for i in 0..10 {
            assert_eq!(
                next(sub).await.body,
                format!("m{i}").into_bytes(),
                "in order"
            );
        }
    }
}

async fn a_queue_shares_messages_without_loss_or_duplicates(broker: &dyn Broker) {
    let (ns, topic) = (unique("queue"), "work");
    let mut members = Vec::new();
    for _ in 0..3 {
        members.push(
            broker
                .subscribe(&ns, topic, Some("workers"))
                .await
                .expect("subscribe"),
        );
    }
    let mut outsider = broker.subscribe(&ns, topic, None).await.expect("subscribe");
    const N: usize = 300;
    for i in 0..N {
        broker
            .publish(&ns, topic, Message::new(i.to_string()))
            .await
            .expect("publish");
    }
    for _ in 0..N {
        next(&mut outsider).await;
    }
    // Collect until the members together hold N messages.
    let mut seen = Vec::new();
    let mut counts = Vec::new();
    for member in &mut members {
        let mut count = 0;
        while let Ok(Some(m)) =
            tokio::time::timeout(Duration::from_millis(500), member.next()).await
        {
            seen.push(String::from_utf8(m.body).expect("utf-8"));
            count += 1;
        }
        counts.push(count);
    }
    let distinct: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(seen.len(), N, "none lost, none duplicated: {counts:?}");
    assert_eq!(distinct.len(), N, "none duplicated");
    assert!(
        counts.iter().all(|&c| c > 0),
        "every member of the queue got a share: {counts:?}"
    );
}

async fn headers_and_bytes_travel(broker: &dyn Broker) {
    let (ns, topic) = (unique("headers"), "t");
    let mut sub = broker.subscribe(&ns, topic, None).await.expect("subscribe");
    let mut message = Message::new(vec![0u8, 159, 146, 150, b'{']);
    message
        .header
        .insert("content-type".into(), "application/octet-stream".into());
    broker
        .publish(&ns, topic, message.clone())
        .await
        .expect("publish");
    assert_eq!(next(&mut sub).await, message);
}

async fn namespaces_and_topics_are_separate(broker: &dyn Broker) {
    let (a, b) = (unique("ns-a"), unique("ns-b"));
    let mut in_a = broker.subscribe(&a, "t", None).await.expect("subscribe");
    let mut other_topic = broker.subscribe(&a, "u", None).await.expect("subscribe");
    broker
        .publish(&b, "t", Message::new("for b"))
        .await
        .expect("publish");
    broker
        .publish(&a, "t", Message::new("for a"))
        .await
        .expect("publish");
    assert_eq!(next(&mut in_a).await.body, b"for a");
    nothing_more(&mut in_a).await;
    nothing_more(&mut other_topic).await;
}

async fn empty_topics_are_refused(broker: &dyn Broker) {
    let ns = unique("empty");
    let err = broker
        .publish(&ns, "", Message::new("x"))
        .await
        .expect_err("empty topic");
    assert_eq!(err.code, 400, "{err:?}");
    let err = broker
        .subscribe(&ns, " ", None)
        .await
        .err()
        .expect("empty topic");
    assert_eq!(err.code, 400, "{err:?}");
}
