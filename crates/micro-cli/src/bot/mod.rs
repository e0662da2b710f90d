//! `micro bot`: the ChatOps door. Chat messages run the CLI's commands (see [`command`]), as the
//! platform account each chat user is mapped to ([`users`]), answered in a code block.
//!
//! Inputs sit behind one trait ([`input::Input`]): Slack's Events API ([`slack`], at
//! `/slack/events`, when `SLACK_SIGNING_SECRET` and `SLACK_BOT_TOKEN` are set) and a plain
//! webhook for any chat system ([`webhook`], at `/webhook`, when `MICRO_BOT_WEBHOOK_TOKEN` is
//! set).

mod command;
mod input;
mod run;
mod slack;
mod users;
mod webhook;

use std::sync::Arc;

use axum::{
    Json, Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
};
use serde_json::json;

use self::{
    command::{Asked, HELP},
    input::{Heard, Input, Said},
    users::Users,
};
use crate::{cli::BotArgs, failure::Failure};

#[derive(Clone)]
struct Bot {
    users: Arc<Users>,
    /// Commands running at once, at most [`MAX_RUNNING`]; one more waits its turn.
    running: Arc<tokio::sync::Semaphore>,
}

/// The most chat commands run at once.
const MAX_RUNNING: usize = 8;

/// `micro bot`: serves the configured inputs until SIGTERM or Ctrl-C.
pub(crate) async fn run(args: &BotArgs) -> Result<(), Failure> {
    let homes = crate::config::home().join("bot").join("users");
    let users = Users::load(&args.users, &homes).map_err(Failure::new)?;
    let bot = Bot {
        users: Arc::new(users),
        running: Arc::new(tokio::sync::Semaphore::new(MAX_RUNNING)),
    };
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let mut router = Router::new();
    let mut inputs = Vec::new();
    if let (Some(secret), Some(token)) = (var("SLACK_SIGNING_SECRET"), var("SLACK_BOT_TOKEN")) {
        let api = var("SLACK_API_URL").unwrap_or_else(|| "https://slack.com/api".to_owned());
        router = router.route("/slack/events", post(serve::<slack::Slack>));
        router = router.layer(axum::Extension(Arc::new(slack::Slack::new(
            &secret, &token, &api,
        ))));
        inputs.push("slack");
    }
    if let Some(token) = var("MICRO_BOT_WEBHOOK_TOKEN") {
        router = router.route("/webhook", post(serve::<webhook::Webhook>));
        router = router.layer(axum::Extension(Arc::new(webhook::Webhook::new(&token))));
        inputs.push("webhook");
    }
    if inputs.is_empty() {
        return Err(Failure::new(
            "no input: set SLACK_SIGNING_SECRET and SLACK_BOT_TOKEN (Slack), or MICRO_BOT_WEBHOOK_TOKEN (webhook)",
        ));
    }
    let listener = tokio::net::TcpListener::bind(&args.address)
        .await
        .map_err(|e| Failure::new(format!("cannot listen on {}: {e}", args.address)))?;
    let address = listener
        .local_addr()
        .map_err(|e| Failure::new(e.to_string()))?;
    println!("bot listening on {address} ({})", inputs.join(", "));
    axum::serve(listener, router.with_state(bot))
        .with_graceful_shutdown(micro::service::shutdown_signal())
        .await
        .map_err(|e| Failure::new(e.to_string()))
}

/// One input's requests.
async fn serve<I: Input>(
    State(bot): State<Bot>,
    axum::Extension(input): axum::Extension<Arc<I>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if body.len() > 64 * 1024 {
        return (StatusCode::PAYLOAD_TOO_LARGE, "at most 64 KiB").into_response();
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    match input.hear(&headers, &body, now) {
        Err(refusal) => (refusal.status, refusal.message).into_response(),
        Ok(Heard::Answer(value)) => Json(value).into_response(),
        Ok(Heard::Nothing) => StatusCode::OK.into_response(),
        Ok(Heard::Now(said)) => Json(json!({ "text": answer(&bot, &said).await })).into_response(),
        Ok(Heard::Later(said)) => {
            tokio::spawn(async move {
                let text = answer(&bot, &said).await;
                if let Err(e) = input.reply(&said.reply_to, &text).await {
                    tracing::warn!("cannot answer {} on {}: {e}", said.user, input.name());
                }
            });
            StatusCode::OK.into_response()
        }
    }
}

/// The answer to what `said` asks.
async fn answer(bot: &Bot, said: &Said) -> String {
    let Some((account, home)) = bot.users.get(&said.user) else {
        return format!(
            "You ({}) are not mapped to an account on this platform; ask an admin to add you to the bot's users file.",
            said.user
        );
    };
    let args = match command::asked(&said.text) {
        Asked::Help => return format!("```\n{HELP}\n```"),
        Asked::Refused(why) => return format!("Not run: {why}."),
        Asked::Run(args) => args,
    };
    let Ok(_turn) = bot.running.acquire().await else {
        return "the bot is stopping".to_owned();
    };
    if let Err(e) = run::log_in(account, home).await {
        return e;
    }
    let (code, answer) = run::command(account, home, &args).await;
    // A login the platform no longer honours (the refresh token expired, the secret changed):
    // logged in again once.
    if code == 2 && answer.contains("log in") {
        let _ = std::fs::remove_file(home.join("tokens"));
        if let Err(e) = run::log_in(account, home).await {
            return e;
        }
        return run::command(account, home, &args).await.1;
    }
    answer
}
