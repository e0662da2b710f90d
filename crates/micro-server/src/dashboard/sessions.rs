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
/// The most sessions one account keeps (its oldest makes room): one account logging in again
/// and again cannot push everyone else's out.
pub(crate) const MAX_PER_ACCOUNT: usize = 16;
/// The most sessions one address keeps.
pub(crate) const MAX_PER_PEER: usize = 64;
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
    /// Whose it is (`NAMESPACE/ACCOUNT`).
    pub(crate) owner: String,
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

/// Which sessions count together against a limit.
type Alike<'a> = dyn Fn(&Session) -> bool + 'a;

/// Every session, by id.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    by_id: HashMap<String, Session>,
}

impl Sessions {
    /// Keeps a new `session` as `id`, making room in its account's, its address's, then
    /// everyone's sessions.
    pub(crate) fn insert(&mut self, id: String, session: Session) {
        let limits: [(&Alike<'_>, usize); 3] = [
            (&|s| s.owner == session.owner, MAX_PER_ACCOUNT),
            (&|s| s.peer == session.peer, MAX_PER_PEER),
            (&|_| true, MAX_SESSIONS),
        ];
        for (alike, most) in limits {
            if self.by_id.values().filter(|s| alike(s)).count() >= most {
                let oldest = self
                    .by_id
                    .iter()
                    .filter(|(_, s)| alike(s))
                    .min_by_key(|(_, s)| s.seen)
                    .map(|(id, _)| id.clone());
                if let Some(oldest) = oldest {
                    self.by_id.remove(&oldest);
                }
            }
        }
        self.by_id.insert(id, session);
    }

    /// Puts fresh tokens in session `id`, if it is still the one that was refreshed (`was`, its
    /// refresh token then): a session ended meanwhile (a logout) stays ended.
    pub(crate) fn refreshed(&mut self, id: &str, was: &str, fresh: Session) -> bool {
        match self.by_id.get_mut(id) {
            Some(session) if session.refresh == was => {
                *session = fresh;
                true
            }
            _ => false,
        }
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
            owner: "micro/ada".to_owned(),
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
        // One account, one address: each keeps to its share.
        for i in 0..100 {
            sessions.insert(format!("x{i}"), session("10.0.0.7", i));
        }
        assert_eq!(sessions.by_id.len(), MAX_PER_ACCOUNT);
        assert!(sessions.get("x0", here, 200).is_none());
        assert!(sessions.get("x99", here, 200).is_some());
        for i in 0..100 {
            let mut s = session("10.0.0.8", 300 + i);
            s.owner = format!("micro/u{i}");
            sessions.insert(format!("y{i}"), s);
        }
        let from_8 = sessions
            .by_id
            .values()
            .filter(|s| s.peer == Some("10.0.0.8".parse().unwrap()));
        assert_eq!(from_8.count(), MAX_PER_PEER);
        // Everyone's: bounded too.
        for i in 0..MAX_SESSIONS + 5 {
            let mut s = session(&format!("10.1.{}.{}", i / 250, i % 250), 1000 + i as i64);
            s.owner = format!("micro/v{i}");
            sessions.insert(format!("z{i}"), s);
        }
        assert_eq!(sessions.by_id.len(), MAX_SESSIONS);
    }

    #[test]
    fn a_refresh_does_not_bring_back_an_ended_session() {
        let mut sessions = Sessions::default();
        sessions.insert("s1".to_owned(), session("10.0.0.7", 1000));
        let mut fresh = session("10.0.0.7", 1001);
        fresh.refresh = "r2".to_owned();
        assert!(sessions.refreshed("s1", "r", fresh.clone()));
        assert!(
            !sessions.refreshed("s1", "r", fresh.clone()),
            "r was already traded"
        );
        sessions.remove("s1");
        assert!(!sessions.refreshed("s1", "r2", fresh));
        assert!(sessions.by_id.is_empty());
    }

    #[test]
    fn a_token_is_refreshed_in_the_last_third_of_its_life() {
        let s = session("10.0.0.7", 0);
        assert!(!s.due(1000));
        assert!(!s.due(1599));
        assert!(s.due(1600));
    }
}
