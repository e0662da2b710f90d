//! A chat system the bot listens to, behind one small trait: it reads a request into a command
//! (or an answer to give at once, or nothing), and sends an answer back where the command came
//! from. Slack ([`super::slack`]) and a plain HTTP webhook ([`super::webhook`]) are the two.

use http::{HeaderMap, StatusCode};
use serde_json::Value;

/// A command someone said in chat.
#[derive(Debug, Clone)]
pub(crate) struct Said {
    /// Who, as `INPUT:ID` (`slack:U0123`, `webhook:ada`): the key of the users file.
    pub(crate) user: String,
    /// What they wrote.
    pub(crate) text: String,
    /// Where the answer goes (a Slack channel); empty when answered in the response.
    pub(crate) reply_to: String,
}

/// What a request to an input was.
#[derive(Debug)]
pub(crate) enum Heard {
    /// A command, answered in the HTTP response.
    Now(Said),
    /// A command, acknowledged at once and answered with [`Input::reply`].
    Later(Said),
    /// Something to answer as it is (Slack's URL verification).
    Answer(Value),
    /// Nothing to do (another kind of event).
    Nothing,
}

/// Why a request was not heard.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
}

impl Refusal {
    pub(crate) fn unauthorized(message: String) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            message,
        }
    }

    pub(crate) fn bad_request(message: String) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message,
        }
    }
}

/// A chat system.
#[async_trait::async_trait]
pub(crate) trait Input: Send + Sync + 'static {
    /// Its name, in its path (`/slack/events`, `/webhook`) and the users file's keys.
    fn name(&self) -> &'static str;

    /// Reads a request that arrived at `now` (Unix seconds), checking it came from the chat
    /// system.
    fn hear(&self, headers: &HeaderMap, body: &[u8], now: i64) -> Result<Heard, Refusal>;

    /// Sends `text` to `to`, for [`Heard::Later`].
    async fn reply(&self, to: &str, text: &str) -> Result<(), String>;
}
