//! The plain HTTP webhook input, for any chat system: `POST /webhook` with
//! `Authorization: Bearer TOKEN` (`MICRO_BOT_WEBHOOK_TOKEN`) and `{"user": ID, "text": TEXT}`;
//! the answer is the response, `{"text": ANSWER}`.

use http::{HeaderMap, header};
use serde_json::Value;

use super::input::{Heard, Input, Refusal, Said};

/// The webhook input.
pub(crate) struct Webhook {
    token: String,
}

impl Webhook {
    /// Requests must carry `token`.
    pub(crate) fn new(token: &str) -> Self {
        Self {
            token: token.to_owned(),
        }
    }
}

#[async_trait::async_trait]
impl Input for Webhook {
    fn name(&self) -> &'static str {
        "webhook"
    }

    fn hear(&self, headers: &HeaderMap, body: &[u8], _now: i64) -> Result<Heard, Refusal> {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if !micro_core::auth::same_secret(given.as_bytes(), self.token.as_bytes()) {
            return Err(Refusal::unauthorized(
                "the webhook needs Authorization: Bearer with the bot's webhook token".to_owned(),
            ));
        }
        let request: Value = serde_json::from_slice(body)
            .map_err(|e| Refusal::bad_request(format!("not JSON: {e}")))?;
        let (Some(user), Some(text)) = (request["user"].as_str(), request["text"].as_str()) else {
            return Err(Refusal::bad_request(
                "the body is {\"user\": ID, \"text\": TEXT}".to_owned(),
            ));
        };
        if user.is_empty() || user.len() > 256 {
            return Err(Refusal::bad_request(
                "user must be 1 to 256 bytes".to_owned(),
            ));
        }
        Ok(Heard::Now(Said {
            user: format!("webhook:{user}"),
            text: text.to_owned(),
            reply_to: String::new(),
        }))
    }

    async fn reply(&self, _to: &str, _text: &str) -> Result<(), String> {
        Ok(())
    }
}
