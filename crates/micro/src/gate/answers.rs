//! [`Answers`]: what the platform said about a caller, remembered per endpoint and token — logic
//! that takes `now` and does no I/O.
//!
//! An answer is good for [`REMEMBER`](super::REMEMBER), and never past the token's expiry. At
//! most [`CAP`] answers are kept: at the cap, the expired go first, then everything (a flood
//! of made-up tokens costs the next callers one question each, never unbounded memory).

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use micro_core::{Error, auth::Account};

use super::REMEMBER;

/// At most this many answers are remembered.
pub(super) const CAP: usize = 4096;

/// A caller let in (with its account, if the token named one), or the refusal.
pub(super) type Verdict = Result<Option<Arc<Account>>, Error>;

/// What the platform said about one endpoint and token, and until when it holds.
#[derive(Clone)]
struct Answer {
    verdict: Verdict,
    until: Instant,
}

/// gRPC path → token ("" for none) → answer.
#[derive(Default)]
pub(super) struct Answers {
    by_path: HashMap<String, HashMap<String, Answer>>,
    count: usize,
}

impl Answers {
    /// The verdict remembered for `path` and `token`, if it still holds at `now`.
    pub(super) fn get(&self, now: Instant, path: &str, token: &str) -> Option<Verdict> {
        let answer = self.by_path.get(path)?.get(token)?;
        (now < answer.until).then(|| answer.verdict.clone())
    }

    /// Remembers `verdict` for `path` and `token` from `now`, for [`REMEMBER`] or until the
    /// token `expires` (from now), whichever is first.
    pub(super) fn put(
        &mut self,
        now: Instant,
        path: &str,
        token: &str,
        verdict: Verdict,
        expires: Option<Duration>,
    ) {
        let lasts = expires.map_or(REMEMBER, |left| left.min(REMEMBER));
        if self.count >= CAP {
            for by_token in self.by_path.values_mut() {
                by_token.retain(|_, a| a.until > now);
            }
            self.by_path.retain(|_, by_token| !by_token.is_empty());
            self.count = self.by_path.values().map(HashMap::len).sum();
            if self.count >= CAP {
                self.by_path.clear();
                self.count = 0;
            }
        }
        let replaced = self.by_path.entry(path.to_owned()).or_default().insert(
            token.to_owned(),
            Answer {
                verdict,
                until: now + lasts,
            },
        );
        if replaced.is_none() {
            self.count += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused() -> Verdict {
        Err(Error::forbidden("micro.auth", "no"))
    }

    #[test]
    fn an_answer_holds_for_a_second_and_never_past_the_tokens_expiry() {
        let now = Instant::now();
        let mut answers = Answers::default();
        answers.put(now, "/a.A/M", "t1", Ok(None), None);
        answers.put(
            now,
            "/a.A/M",
            "t2",
            refused(),
            Some(Duration::from_millis(300)),
        );
        assert!(matches!(answers.get(now, "/a.A/M", "t1"), Some(Ok(None))));
        assert!(answers.get(now, "/a.A/M", "t3").is_none(), "another token");
        assert!(answers.get(now, "/b.B/M", "t1").is_none(), "another path");
        let later = now + Duration::from_millis(300);
        assert!(answers.get(later, "/a.A/M", "t1").is_some());
        assert!(
            answers.get(later, "/a.A/M", "t2").is_none(),
            "the token expired"
        );
        assert!(answers.get(now + REMEMBER, "/a.A/M", "t1").is_none());
    }

    #[test]
    fn at_the_cap_the_expired_go_first_then_everything() {
        let now = Instant::now();
        let mut answers = Answers::default();
        for n in 0..CAP / 2 {
            answers.put(now, "/a.A/M", &format!("old{n}"), Ok(None), None);
        }
        let later = now + REMEMBER;
        for n in 0..CAP / 2 {
            answers.put(later, "/a.A/M", &format!("new{n}"), Ok(None), None);
        }
        // Full: the expired half goes, the live half stays.
        answers.put(later, "/a.A/M", "one-more", Ok(None), None);
        assert!(answers.get(later, "/a.A/M", "new0").is_some());
        assert_eq!(answers.count, CAP / 2 + 1);
        // Full of live answers: everything goes.
        for n in 0..CAP {
            answers.put(later, "/b.B/M", &format!("flood{n}"), refused(), None);
        }
        assert!(answers.count <= CAP);
        assert!(answers.get(later, "/a.A/M", "new0").is_none());
    }
}
