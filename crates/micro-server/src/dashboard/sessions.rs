//! The dashboard's sessions, kept in the server: a browser holds only an opaque session id
//! (cookie `micro-session`), and the tokens it stands for never leave the server. Cookies are
//! not kept apart by port, so anything else served on the dashboard's host name receives the
//! browser's cookies: with the tokens here, what it gets is a session id that works only at
//! the dashboard, only from the address that logged in, and ends at logout — not a refresh
//! token good at every door for 30 days.
//!
//! Logic without I/O: the caller passes `now` (Unix seconds). Bounded: at most
//! [`MAX_SESSIONS`]; the one seen longest ago makes room.

use std::{collections::HashMap, net::IpAddr};

/// The most sessions kept.
pub(crate) const MAX_SESSIONS: usize = 10_000;
/// How long a session lasts without a visit (seconds): a refresh token's life.
pub(crate) const IDLE: i64 = 30 * 24 * 60 * 60;

/// One logged-in browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Session {
    pub(crate) access: String,
    pub(crate) refresh: String,
    /// When the access token was issued and expires (Unix seconds).
    pub(crate) issued: i64,
    pub(crate) expiry: i64,
    /// The address it logged in from; used from another, it is void.
    pub(crate) peer: Option<IpAddr>,
    /// When it was last used (Unix seconds).
    pub(crate) seen: i64,
}

impl Session {
    /// Whether its access token is due for a refresh at `now`: once two thirds of its life
    /// have passed (10 minutes into the default 15).
    pub(crate) fn due(&self, now: i64) -> bool {
        let life = (self.expiry - self.issued).max(0);
        now >= self.issued + life * 2 / 3
    }
}

/// Every session, by id.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    by_id: HashMap<String, Session>,
}

impl Sessions {
    /// Keeps `session` as `id`.
    pub(crate) fn insert(&mut self, id: String, session: Session) {
        if !self.by_id.contains_key(&id) && self.by_id.len() >= MAX_SESSIONS {
            let oldest = self
                .by_id
                .iter()
                .min_by_key(|(_, s)| s.seen)
                .map(|(id, _)| id.clone());
            if let Some(oldest) = oldest {
                self.by_id.remove(&oldest);
            }
        }
        self.by_id.insert(id, session);
    }

    /// The session `id`, used from `peer` at `now`: `None` (and forgotten) if it is unknown,
    /// idle too long, or used from another address than the one that logged in.
    pub(crate) fn get(&mut self, id: &str, peer: Option<IpAddr>, now: i64) -> Option<Session> {
        let session = self.by_id.get_mut(id)?;
        if session.peer != peer || now - session.seen > IDLE {
            self.by_id.remove(id);
            return None;
        }
        session.seen = now;
        Some(session.clone())
    }

    /// Ends session `id`.
    pub(crate) fn remove(&mut self, id: &str) {
        self.by_id.remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(peer: &str, seen: i64) -> Session {
        Session {
            access: "a".to_owned(),
            refresh: "r".to_owned(),
            issued: 1000,
            expiry: 1900,
            peer: Some(peer.parse().unwrap()),
            seen,
        }
    }

    #[test]
    fn a_session_works_from_its_own_address_only() {
        let mut sessions = Sessions::default();
        sessions.insert("s1".to_owned(), session("10.0.0.7", 1000));
        let here = Some("10.0.0.7".parse().unwrap());
        let elsewhere = Some("10.0.0.5".parse().unwrap());
        assert!(sessions.get("s1", here, 1001).is_some());
        assert!(sessions.get("nope", here, 1001).is_none());
        assert!(sessions.get("s1", elsewhere, 1002).is_none());
        assert!(
            sessions.get("s1", here, 1003).is_none(),
            "void once replayed"
        );
    }

    #[test]
    fn idle_sessions_end_and_the_store_is_bounded() {
        let mut sessions = Sessions::default();
        let here = Some("10.0.0.7".parse().unwrap());
        sessions.insert("s1".to_owned(), session("10.0.0.7", 1000));
        assert!(sessions.get("s1", here, 1000 + IDLE + 1).is_none());
        for i in 0..MAX_SESSIONS + 5 {
            sessions.insert(format!("x{i}"), session("10.0.0.7", i as i64));
        }
        assert_eq!(sessions.by_id.len(), MAX_SESSIONS);
        assert!(sessions.get("x0", here, 20_000).is_none());
    }

    #[test]
    fn a_token_is_refreshed_in_the_last_third_of_its_life() {
        let s = session("10.0.0.7", 0);
        assert!(!s.due(1000));
        assert!(!s.due(1599));
        assert!(s.due(1600));
    }
}
