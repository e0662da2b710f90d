//! Why a WebSocket read failed, as the close frame that tells the peer: every socket the server
//! serves (the gateway's streams, the sidecar's subscriptions) closes on a broken frame with
//! the code RFC 6455 gives it and the reason, not an empty close.

use axum::extract::ws::{CloseFrame, close_code};

/// The longest close reason a close frame carries (its payload is at most 125 bytes).
const MAX_REASON: usize = 120;

/// The close frame for a failed read: a frame that broke the protocol (1002), text that is not
/// UTF-8 (1007) or a message too big (1009), with the reason; `None` when the connection
/// itself failed, and there is no one to tell.
pub(crate) fn for_error(error: axum::Error) -> Option<CloseFrame> {
    use tungstenite::Error as Ws;
    let error = error.into_inner().downcast::<Ws>().ok()?;
    let code = match *error {
        Ws::Utf8(_) => close_code::INVALID,
        Ws::Capacity(_) => close_code::SIZE,
        Ws::Protocol(_) | Ws::AttackAttempt => close_code::PROTOCOL,
        _ => return None,
    };
    let reason = error.to_string();
    let mut end = reason.len().min(MAX_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    Some(CloseFrame {
        code,
        reason: reason[..end].into(),
    })
}
