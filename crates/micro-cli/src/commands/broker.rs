//! `micro publish TOPIC MESSAGE` and `micro subscribe TOPIC [--queue Q]`.

use futures::StreamExt;
use micro::{broker::RemoteBroker, remote::Connection};
use micro_core::broker::{Broker, Message};

use crate::{context::Context, failure::Failure};

pub(crate) async fn publish(ctx: &Context, topic: &str, body: &str) -> Result<(), Failure> {
    let conn = Connection::from_channel(ctx.connect().await?, &ctx.address);
    let mut message = Message::new(body.as_bytes().to_vec());
    if serde_json::from_str::<serde_json::Value>(body).is_ok() {
        message
            .header
            .insert("content-type".into(), "application/json".into());
    }
    RemoteBroker::over(conn)
        .publish(&ctx.namespace, topic, message)
        .await?;
    Ok(())
}

pub(crate) async fn subscribe(
    ctx: &Context,
    topic: &str,
    queue: Option<&str>,
) -> Result<(), Failure> {
    let conn = Connection::from_channel(ctx.connect().await?, &ctx.address);
    let mut messages = RemoteBroker::over(conn)
        .subscribe(&ctx.namespace, topic, queue)
        .await?;
    // On stderr, so stdout holds only messages; says the subscription is live.
    match queue {
        Some(q) => eprintln!("subscribed to {topic} in queue {q}"),
        None => eprintln!("subscribed to {topic}"),
    }
    let stop = micro::service::shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            message = messages.next() => match message {
                Some(m) => println!("{}", String::from_utf8_lossy(&m.body)),
                None => return Err(Failure::with_code(4, format!("Lost the micro server at {}", ctx.address))),
            },
            () = &mut stop => return Ok(()),
        }
    }
}
