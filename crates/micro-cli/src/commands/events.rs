//! `micro events publish TOPIC PAYLOAD`, `micro events topics` and
//! `micro events consume TOPIC [--group G] [--offset N|TIME]`.

use std::collections::BTreeMap;

use futures::StreamExt;
use micro::{events::RemoteEvents, remote::Connection};
use micro_core::events::{ConsumeOptions, Event, Events, Offset};
use serde_json::json;

use crate::{cli::EventsCommand, context::Context, failure::Failure};

pub(crate) async fn run(ctx: &Context, action: Option<&EventsCommand>) -> Result<(), Failure> {
    let action = match action {
        None | Some(EventsCommand::Unknown(_)) => {
            return Err(Failure::new(
                "Unrecognized subcommand for micro events. Please refer to 'micro events --help'",
            ));
        }
        Some(a) => a,
    };
    let conn = Connection::from_channel(ctx.connect().await?, &ctx.address);
    let events = RemoteEvents::over(conn);
    match action {
        EventsCommand::Publish {
            topic,
            payload,
            metadata,
        } => {
            let mut meta = BTreeMap::new();
            for pair in metadata {
                let (k, v) = pair.split_once('=').ok_or_else(|| {
                    Failure::new(format!("Invalid metadata {pair:?}: write it as key=value"))
                })?;
                meta.insert(k.to_owned(), v.to_owned());
            }
            events
                .publish(&ctx.namespace, topic, payload.as_bytes().to_vec(), meta)
                .await?;
        }
        EventsCommand::Topics => {
            for topic in events.topics(&ctx.namespace).await? {
                println!("{topic}");
            }
        }
        EventsCommand::Consume {
            topic,
            group,
            offset,
        } => {
            let options = ConsumeOptions {
                group: group.clone(),
                offset: match offset {
                    None => Offset::Latest,
                    Some(o) => parse_offset(o)?,
                },
                ..ConsumeOptions::default()
            };
            let mut consumer = events.consume(&ctx.namespace, topic, options).await?;
            // On stderr, so stdout holds only events; says the consumer has joined.
            eprintln!("consuming {topic} in group {}", consumer.group);
            let stop = micro::service::shutdown_signal();
            tokio::pin!(stop);
            loop {
                tokio::select! {
                    event = consumer.events.next() => match event {
                        Some(Ok(event)) => println!("{}", line(&event)),
                        Some(Err(e)) => return Err(e.into()),
                        None => return Err(Failure::with_code(4, format!("Lost the micro server at {}", ctx.address))),
                    },
                    () = &mut stop => return Ok(()),
                }
            }
        }
        EventsCommand::Unknown(_) => unreachable!("refused above"),
    }
    Ok(())
}

fn parse_offset(offset: &str) -> Result<Offset, Failure> {
    if let Ok(n) = offset.parse::<u64>() {
        return Ok(Offset::Sequence(n.max(1)));
    }
    humantime::parse_rfc3339_weak(offset)
        .map(Offset::Time)
        .map_err(|_| {
            Failure::new(format!(
                "Invalid offset {offset:?}: give a sequence number (1 is the first event) or a time like 2026-11-21T10:00:00Z"
            ))
        })
}

/// One event as a JSON line; a JSON payload is embedded as JSON, anything else as a string.
fn line(event: &Event) -> String {
    let payload = serde_json::from_slice::<serde_json::Value>(&event.payload)
        .unwrap_or_else(|_| json!(String::from_utf8_lossy(&event.payload)));
    json!({
        "id": event.id,
        "sequence": event.sequence,
        "timestamp": humantime::format_rfc3339_millis(event.timestamp).to_string(),
        "metadata": event.metadata,
        "payload": payload,
    })
    .to_string()
}
