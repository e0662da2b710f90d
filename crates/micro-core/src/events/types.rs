//! The domain types of events.

use std::{
    collections::BTreeMap,
    time::{Duration, SystemTime},
};

/// One stored event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Unique id; a redelivery carries the same one.
    pub id: String,
    /// The topic it was published to.
    pub topic: String,
    /// Its position in the topic, from 1.
    pub sequence: u64,
    /// When it was published.
    pub timestamp: SystemTime,
    /// Free-form metadata.
    pub metadata: BTreeMap<String, String>,
    /// The payload, any bytes.
    pub payload: Vec<u8>,
}

/// Where a new consumer group starts reading.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Offset {
    /// Only events published from now on.
    #[default]
    Latest,
    /// From this sequence number (1 is the first event).
    Sequence(u64),
    /// From the first event published at or after this time.
    Time(SystemTime),
}

/// How to consume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumeOptions {
    /// The consumer group; consumers of one group share events, and the group's position is
    /// kept. `None`: a group of this consumer alone, forgotten when it stops.
    pub group: Option<String>,
    /// Where a group that has no position yet starts; a known group resumes where it was.
    pub offset: Offset,
    /// Ack each event as it is delivered.
    pub auto_ack: bool,
    /// How long a delivered event may stay unacked before it is delivered again.
    pub ack_wait: Duration,
    /// How many times an event is redelivered at most (`None`: no limit).
    pub retry_limit: Option<u32>,
}

impl ConsumeOptions {
    /// The group this consumer reads in, and whether it is durable: the group asked for, or a
    /// generated `~UUID` of this consumer alone. A blank group name is refused (400, as `id`).
    pub fn group_name(&self, id: &str) -> Result<(String, bool), crate::Error> {
        match &self.group {
            Some(g) if g.trim().is_empty() => Err(crate::Error::bad_request(
                id,
                "a group name may not be blank",
            )),
            Some(g) => Ok((g.clone(), true)),
            None => Ok((format!("~{}", uuid::Uuid::new_v4()), false)),
        }
    }
}

impl Default for ConsumeOptions {
    fn default() -> Self {
        Self {
            group: None,
            offset: Offset::Latest,
            auto_ack: true,
            ack_wait: Duration::from_secs(30),
            retry_limit: None,
        }
    }
}
