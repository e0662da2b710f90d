//! Deadlines that travel: a call's remaining time goes to the next hop as `grpc-timeout`.
//!
//! A service's server reads the `grpc-timeout` its caller sent ([`DeadlineLayer`], in front of
//! every [`crate::Service`]) and runs the handler with that deadline in scope. Any call the
//! handler makes through a [`crate::Client`] then gets at most the time that is left — so a
//! caller that gives up after 200 ms is not followed by downstream work that runs for seconds —
//! and a call whose deadline has already passed fails at once with `DEADLINE_EXCEEDED`. The
//! handler itself is dropped when its deadline passes (tonic's server enforces `grpc-timeout`),
//! so the work past the deadline is cancelled hop by hop.
//!
//! The deadline is task-local: a handler that spawns a task hands it on with [`scope`].

mod layer;
mod service;

use std::{future::Future, time::Duration};

use tokio::time::Instant;

pub use layer::DeadlineLayer;
pub use service::Deadline;

tokio::task_local! {
    static DEADLINE: Option<Instant>;
}

/// The deadline of the call being handled, if its caller set one.
pub fn current() -> Option<Instant> {
    DEADLINE.try_with(|d| *d).ok().flatten()
}

/// The time left before the deadline of the call being handled (zero once it has passed).
pub fn remaining() -> Option<Duration> {
    current().map(|d| d.saturating_duration_since(Instant::now()))
}

/// Runs `f` with `deadline` in scope (for a task a handler spawns: `scope(current(), f)`).
pub async fn scope<F: Future>(deadline: Option<Instant>, f: F) -> F::Output {
    DEADLINE.scope(deadline, f).await
}

/// A deadline too far to matter, for timeouts too long to add to `now`.
pub(crate) const FAR: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The longest `grpc-timeout` value: 8 digits.
const MAX_DIGITS: usize = 8;

/// Parses a `grpc-timeout` header value (`100m`, `5S`, ...): at most 8 digits and a unit.
pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    if !value.is_ascii() {
        return None;
    }
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > MAX_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// `timeout` as a `grpc-timeout` header value, in the finest unit that fits 8 digits (rounded
/// down, so the next hop never gets more time than there is).
pub fn format_grpc_timeout(timeout: Duration) -> String {
    const LIMIT: u128 = 100_000_000;
    let micros = timeout.as_micros().max(1);
    if micros < LIMIT {
        return format!("{micros}u");
    }
    let millis = timeout.as_millis();
    if millis < LIMIT {
        return format!("{millis}m");
    }
    let secs = u128::from(timeout.as_secs());
    if secs < LIMIT {
        return format!("{secs}S");
    }
    format!("{}H", (secs / 3600).min(LIMIT - 1))
}

/// The `grpc-timeout` header of a call that has `left`: a value that differs on every call, so
/// it is marked never to be indexed by HPACK — indexed, each call would push an entry through
/// the HTTP/2 header tables of both ends of the connection, work done in the one task that
/// serves the whole connection.
pub(crate) fn grpc_timeout_header(left: Duration) -> Option<http::HeaderValue> {
    let mut value = http::HeaderValue::try_from(format_grpc_timeout(left)).ok()?;
    value.set_sensitive(true);
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse_and_format() {
        assert_eq!(parse_grpc_timeout("100m"), Some(Duration::from_millis(100)));
        assert_eq!(parse_grpc_timeout("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse_grpc_timeout("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_grpc_timeout("7n"), Some(Duration::from_nanos(7)));
        for bad in [
            "",
            "m",
            "100",
            "123456789m",
            "-1m",
            "1x",
            "1 m",
            "１m",
            "1é",
        ] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad:?}");
        }
        for d in [
            Duration::from_nanos(1),
            Duration::from_millis(200),
            Duration::from_secs(5),
            Duration::from_secs(1_000_000),
        ] {
            let back = parse_grpc_timeout(&format_grpc_timeout(d)).unwrap();
            assert!(
                back >= d.min(Duration::from_secs(1_000_000)),
                "{d:?} -> {back:?}"
            );
            assert!(back - d < Duration::from_secs(1), "{d:?} -> {back:?}");
        }
        assert!(parse_grpc_timeout(&format_grpc_timeout(Duration::MAX)).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_is_in_scope_only_inside() {
        assert_eq!(current(), None);
        let deadline = Instant::now() + Duration::from_millis(200);
        scope(Some(deadline), async {
            assert_eq!(remaining(), Some(Duration::from_millis(200)));
            tokio::time::advance(Duration::from_millis(300)).await;
            assert_eq!(remaining(), Some(Duration::ZERO));
        })
        .await;
        assert_eq!(remaining(), None);
    }
}
