//! NATS: the [`NatsBroker`] on core subjects and [`JetStreamEvents`] on JetStream, shared by
//! every server pointed at the same nats-server.
//!
//! Callers choose namespaces, topics and group names; NATS gives `.`, `*`, `>` and whitespace a
//! meaning in subjects and refuses them in stream and consumer names. So every caller's name is
//! escaped into one subject token ([`token`]: bytes outside `[A-Za-z0-9_-]` become `%HH`), and
//! stream and consumer names are digests of the names they stand for ([`digest_name`]) — no
//! topic can reach another namespace's subjects, and no name can break a stream's. Payloads
//! travel in an `Envelope` (headers, metadata and body encoded with protobuf), so no caller's
//! header name has to be a valid NATS header.

mod broker;
mod events;

use std::{collections::BTreeMap, time::Duration};

use micro_core::Error;

pub use broker::NatsBroker;
pub use events::JetStreamEvents;

/// How long connecting and each request may take before the answer is 503.
const TIMEOUT: Duration = Duration::from_secs(3);

/// Connects to the comma-separated `addresses` (`nats://HOST:PORT`), reconnecting for ever.
pub(crate) async fn connect(id: &str, addresses: &str) -> Result<async_nats::Client, Error> {
    let servers: Vec<async_nats::ServerAddr> = addresses
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(|a| {
            a.parse()
                .map_err(|e| Error::bad_request(id, format!("invalid NATS address {a:?}: {e}")))
        })
        .collect::<Result<_, _>>()?;
    if servers.is_empty() {
        return Err(Error::bad_request(id, "a NATS address is required"));
    }
    async_nats::ConnectOptions::new()
        .name("micro")
        .connection_timeout(TIMEOUT)
        .request_timeout(Some(TIMEOUT))
        .connect(servers)
        .await
        .map_err(|e| Error::unavailable(id, format!("cannot reach NATS at {addresses}: {e}")))
}

/// `name` as one subject token: `[A-Za-z0-9_-]` as is, every other byte as `%HH`.
pub fn token(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A stream or consumer name standing for `parts`: `PREFIX-` and 32 hex digits of their
/// SHA-256, whatever characters and lengths the parts have.
pub fn digest_name(prefix: &str, parts: &[&str]) -> String {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    for part in parts {
        context.update(&(part.len() as u64).to_be_bytes());
        context.update(part.as_bytes());
    }
    let digest = context.finish();
    let hex: String = digest.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{prefix}-{hex}")
}

/// What a NATS message carries.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Envelope {
    /// Broker headers, or event metadata.
    #[prost(btree_map = "string, string", tag = "1")]
    pub(crate) header: BTreeMap<String, String>,
    #[prost(bytes = "vec", tag = "2")]
    pub(crate) body: Vec<u8>,
    /// Events: the event's id.
    #[prost(string, tag = "3")]
    pub(crate) id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_hold_no_subject_syntax_and_differ_for_different_names() {
        for name in ["a.b", "a*", ">", "a b", "%41", "ü", "a\tb"] {
            let t = token(name);
            assert!(
                t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-%".contains(&b)),
                "{name:?} -> {t:?}"
            );
        }
        assert_ne!(token("a.b"), token("a%2Eb"));
        assert_eq!(token("orders-v2_x"), "orders-v2_x");
    }

    #[test]
    fn digest_names_separate_their_parts() {
        assert_ne!(
            digest_name("S", &["ab", "c"]),
            digest_name("S", &["a", "bc"])
        );
        assert_eq!(digest_name("S", &["a"]).len(), "S-".len() + 32);
    }
}
