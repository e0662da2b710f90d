//! [`Rate`]: the decision behind a rate limit, a token bucket. It takes `now` and does no I/O,
//! so its tests are exact and the layer around it only asks and answers.
//!
//! The bucket holds at most one second's worth of calls and refills continuously: a limit of
//! 100 a second lets a burst of 100 through after a quiet second, then one call every 10 ms.
//! A refused call takes nothing, so callers that back off as told get through.

use std::time::{Duration, Instant};

/// A token bucket of `per_second` calls a second (see the module docs).
#[derive(Debug, Clone)]
pub struct Rate {
    per_second: f64,
    tokens: f64,
    last: Option<Instant>,
}

impl Rate {
    /// `per_second` calls a second (at least 1), starting full.
    pub fn new(per_second: u32) -> Self {
        let per_second = f64::from(per_second.max(1));
        Self {
            per_second,
            tokens: per_second,
            last: None,
        }
    }

    /// Calls a second.
    pub fn per_second(&self) -> u32 {
        self.per_second as u32
    }

    /// Takes a token for a call at `now`; when there is none, how long until there is.
    pub fn admit(&mut self, now: Instant) -> Result<(), Duration> {
        if let Some(last) = self.last {
            // An earlier `now` (callers race to the lock) refills nothing and is not a step back.
            let elapsed = now.saturating_duration_since(last).as_secs_f64();
            self.tokens = (self.tokens + elapsed * self.per_second).min(self.per_second);
        }
        self.last = Some(self.last.map_or(now, |last| last.max(now)));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - self.tokens) / self.per_second,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admitted(rate: &mut Rate, now: Instant, calls: usize) -> usize {
        (0..calls).filter(|_| rate.admit(now).is_ok()).count()
    }

    #[test]
    fn a_burst_of_one_seconds_worth_then_the_rate() {
        let t0 = Instant::now();
        let mut rate = Rate::new(100);
        assert_eq!(admitted(&mut rate, t0, 150), 100);
        // 10 ms makes one more.
        let wait = rate.admit(t0).unwrap_err();
        assert!(wait <= Duration::from_millis(10) && wait > Duration::from_millis(9));
        assert_eq!(admitted(&mut rate, t0 + Duration::from_millis(11), 5), 1);
        // A steady second at the rate gets the rate.
        let mut steady = 0;
        for ms in 12..=1011 {
            steady += admitted(&mut rate, t0 + Duration::from_millis(ms), 1);
        }
        assert!((99..=101).contains(&steady), "{steady}");
    }

    #[test]
    fn a_quiet_spell_refills_no_more_than_one_second() {
        let t0 = Instant::now();
        let mut rate = Rate::new(10);
        assert_eq!(admitted(&mut rate, t0, 10), 10);
        assert_eq!(admitted(&mut rate, t0 + Duration::from_secs(3600), 100), 10);
    }

    #[test]
    fn a_refused_call_takes_nothing_and_time_never_runs_back() {
        let t0 = Instant::now() + Duration::from_secs(1);
        let mut rate = Rate::new(1);
        assert!(rate.admit(t0).is_ok());
        for _ in 0..100 {
            assert!(rate.admit(t0 + Duration::from_millis(500)).is_err());
        }
        // A caller that read the clock before the last one is not owed a token.
        assert!(rate.admit(t0 - Duration::from_millis(500)).is_err());
        assert!(rate.admit(t0 + Duration::from_secs(1)).is_ok());
    }

    #[test]
    fn zero_is_one_a_second() {
        assert_eq!(Rate::new(0).per_second(), 1);
    }
}
