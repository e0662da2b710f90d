//! The Slack input: the Events API webhook (`POST /slack/events`) and `chat.postMessage`.
//!
//! - Each request must carry Slack's signature: `X-Slack-Signature: v0=HEX`, the HMAC-SHA256
//!   with the app's signing secret of `v0:TIMESTAMP:BODY`, with `X-Slack-Request-Timestamp`
//!   within five minutes of now (an old request replayed is refused).
//! - `url_verification` is answered with its challenge; an `event_callback` with an
//!   `app_mention`, or a `message` in a direct message, from a person (not a bot, not an edit)
//!   and not heard before (Slack retries by `event_id`) is a command, acknowledged at once
//!   and answered in the same channel with `chat.postMessage` (bot token from
//!   `SLACK_BOT_TOKEN`), as Slack wants an answer to its request within three seconds.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use serde_json::{Value, json};

use super::input::{Heard, Input, Refusal, Said};

/// How far a request's timestamp may be from now (seconds).
const MAX_SKEW: i64 = 5 * 60;

type Https = hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>;

/// Slack, as the bot's input.
pub(crate) struct Slack {
    signing_secret: ring::hmac::Key,
    bot_token: String,
    /// `https://slack.com/api` (or a stand-in's).
    api: String,
    client: Client<Https, Full<Bytes>>,
    /// The event ids heard lately, oldest first (at most [`REMEMBERED`]).
    seen: std::sync::Mutex<std::collections::VecDeque<String>>,
}

/// Event ids remembered to tell a retry from a new event.
const REMEMBERED: usize = 1024;

impl Slack {
    /// Slack with the app's signing secret and bot token, posting to `api`.
    pub(crate) fn new(signing_secret: &str, bot_token: &str, api: &str) -> Self {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .build();
        Self {
            signing_secret: ring::hmac::Key::new(
                ring::hmac::HMAC_SHA256,
                signing_secret.as_bytes(),
            ),
            bot_token: bot_token.to_owned(),
            api: api.trim_end_matches('/').to_owned(),
            client: Client::builder(TokioExecutor::new()).build(https),
            seen: std::sync::Mutex::default(),
        }
    }

    /// Whether event `id` is heard for the first time (and remembers it).
    fn first_time(&self, id: &str) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.iter().any(|s| s == id) {
            return false;
        }
        if seen.len() >= REMEMBERED {
            seen.pop_front();
        }
        seen.push_back(id.to_owned());
        true
    }
}

/// Whether `signature` (`v0=HEX`) signs `body` sent at `timestamp`, as of `now`.
pub(crate) fn verify(
    key: &ring::hmac::Key,
    timestamp: &str,
    signature: &str,
    body: &[u8],
    now: i64,
) -> Result<(), Refusal> {
    let refused = |why: &str| Refusal::unauthorized(format!("not from Slack: {why}"));
    let sent: i64 = timestamp.parse().map_err(|_| refused("no timestamp"))?;
    if now.abs_diff(sent) > MAX_SKEW.unsigned_abs() {
        return Err(refused("the timestamp is more than five minutes off"));
    }
    let hex = signature
        .strip_prefix("v0=")
        .ok_or_else(|| refused("no v0 signature"))?;
    let tag = decode_hex(hex).ok_or_else(|| refused("the signature is not hex"))?;
    let mut signed = format!("v0:{timestamp}:").into_bytes();
    signed.extend_from_slice(body);
    ring::hmac::verify(key, &signed, &tag).map_err(|_| refused("the signature does not match"))
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) || hex.len() > 256 {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

#[async_trait::async_trait]
impl Input for Slack {
    fn name(&self) -> &'static str {
        "slack"
    }

    fn hear(&self, headers: &HeaderMap, body: &[u8], now: i64) -> Result<Heard, Refusal> {
        let text = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
        };
        verify(
            &self.signing_secret,
            text("x-slack-request-timestamp"),
            text("x-slack-signature"),
            body,
            now,
        )?;
        let request: Value = serde_json::from_slice(body)
            .map_err(|e| Refusal::bad_request(format!("not JSON: {e}")))?;
        match request["type"].as_str() {
            Some("url_verification") => Ok(Heard::Answer(json!({
                "challenge": request["challenge"].as_str().unwrap_or_default()
            }))),
            Some("event_callback") => {
                let event = &request["event"];
                let kind = event["type"].as_str().unwrap_or_default();
                // Bots (this one included) and edits are not commands; in a channel only a
                // mention of the bot is (its message event is the same words again), in a
                // direct message every message is.
                let from_person = event["bot_id"].is_null() && event["subtype"].is_null();
                let addressed = kind == "app_mention"
                    || (kind == "message" && event["channel_type"].as_str() == Some("im"));
                if !addressed || !from_person {
                    return Ok(Heard::Nothing);
                }
                // Slack sends an event again when it thinks the answer was late.
                let id = request["event_id"].as_str().unwrap_or_default();
                if !id.is_empty() && !self.first_time(id) {
                    return Ok(Heard::Nothing);
                }
                let user = event["user"].as_str().unwrap_or_default();
                let channel = event["channel"].as_str().unwrap_or_default();
                if user.is_empty() || channel.is_empty() {
                    return Ok(Heard::Nothing);
                }
                Ok(Heard::Later(Said {
                    user: format!("slack:{user}"),
                    text: event["text"].as_str().unwrap_or_default().to_owned(),
                    reply_to: channel.to_owned(),
                }))
            }
            _ => Ok(Heard::Nothing),
        }
    }

    async fn reply(&self, to: &str, text: &str) -> Result<(), String> {
        let body = json!({ "channel": to, "text": text }).to_string();
        let request = Request::post(format!("{}/chat.postMessage", self.api))
            .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
            .header(header::AUTHORIZATION, format!("Bearer {}", self.bot_token))
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let response = tokio::time::timeout(Duration::from_secs(10), self.client.request(request))
            .await
            .map_err(|_| "Slack did not answer within 10 s".to_owned())?
            .map_err(|e| format!("cannot reach Slack: {e}"))?;
        let answer = Limited::new(response.into_body(), 64 * 1024)
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        let answer: Value = serde_json::from_slice(&answer).unwrap_or_default();
        if answer["ok"].as_bool() == Some(true) {
            Ok(())
        } else {
            Err(format!(
                "chat.postMessage: {}",
                answer["error"].as_str().unwrap_or("no ok")
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(key: &ring::hmac::Key, timestamp: &str, body: &[u8]) -> String {
        let mut signed = format!("v0:{timestamp}:").into_bytes();
        signed.extend_from_slice(body);
        let tag = ring::hmac::sign(key, &signed);
        let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        format!("v0={hex}")
    }

    #[test]
    fn slack_signatures_are_checked_and_old_ones_refused() {
        let key =
            ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"8f742231b10e8888abcd99yyyzzz85a5");
        let body = br#"{"type":"url_verification","challenge":"c"}"#;
        let good = sign(&key, "1531420618", body);
        assert!(verify(&key, "1531420618", &good, body, 1_531_420_618).is_ok());
        assert!(verify(&key, "1531420618", &good, body, 1_531_420_618 + 301).is_err());
        assert!(verify(&key, "1531420619", &good, body, 1_531_420_618).is_err());
        assert!(verify(&key, "1531420618", &good, b"{}", 1_531_420_618).is_err());
        assert!(verify(&key, "1531420618", "v0=zz", body, 1_531_420_618).is_err());
        assert!(verify(&key, "x", &good, body, 1_531_420_618).is_err());
    }
}
