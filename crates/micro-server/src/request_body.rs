//! Reading an HTTP request's body whole, the one way every HTTP door does it: within a size
//! limit (413) and a deadline (408).
//!
//! The listener's idle deadline moves with every byte, so without a deadline of its own a
//! client that trickles a body a byte every few seconds would hold a connection, and the task
//! serving it, for as long as it liked.

use std::time::Duration;

use axum::body::{Body, Bytes};
use micro_core::Error;

/// How long a body of at most `max` bytes may take to arrive, whole: a minute, and a second
/// more for each 64 KiB it may hold (4 MiB: 124 s).
pub(crate) fn deadline(max: usize) -> Duration {
    let per_64k = u64::try_from(max / (64 * 1024)).unwrap_or(u64::MAX / 2);
    Duration::from_secs(60u64.saturating_add(per_64k))
}

/// `body`, whole, if it is at most `max` bytes and arrives within [`deadline`]`(max)`; the
/// errors say which limit it broke, as `id`.
pub(crate) async fn read_whole(body: Body, max: usize, id: &str) -> Result<Bytes, Error> {
    let deadline = deadline(max);
    tokio::time::timeout(deadline, axum::body::to_bytes(body, max))
        .await
        .map_err(|_| {
            Error::timeout(
                id,
                format!(
                    "the request body did not arrive within {} s",
                    deadline.as_secs()
                ),
            )
        })?
        .map_err(|e| {
            if std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
            {
                Error::new(
                    id,
                    413,
                    format!("the request body is larger than the limit of {max} bytes"),
                )
            } else {
                Error::bad_request(id, format!("could not read the request body: {e}"))
            }
        })
}

/// Middleware for a door whose handlers take bodies whole: reads `request`'s body with
/// [`read_whole`] before `next` sees it, and answers a body too big or too slow with
/// `respond`, the door's own way of saying an error.
pub(crate) async fn buffered(
    request: axum::extract::Request,
    next: axum::middleware::Next,
    max: usize,
    id: &'static str,
    respond: fn(&Error) -> axum::response::Response,
) -> axum::response::Response {
    let (parts, body) = request.into_parts();
    match read_whole(body, max, id).await {
        Ok(bytes) => {
            next.run(axum::extract::Request::from_parts(parts, bytes.into()))
                .await
        }
        Err(e) => respond(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_body_that_never_ends_is_a_408_and_a_big_one_a_413() {
        // A body whose sender never sends nor ends.
        let (_sender, body) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
        let pending = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(body));
        let err = read_whole(pending, 1024, "t").await.unwrap_err();
        assert_eq!(err.code, 408, "{err:?}");
        assert!(err.detail.contains("60 s"), "{err:?}");
        let err = read_whole(Body::from(vec![0u8; 2048]), 1024, "t")
            .await
            .unwrap_err();
        assert_eq!(err.code, 413, "{err:?}");
        let whole = read_whole(Body::from("ok"), 1024, "t").await.unwrap();
        assert_eq!(&whole[..], b"ok");
        assert_eq!(deadline(4 << 20), Duration::from_secs(124));
    }
}
