//! A node's circuit breaker (outlier ejection): logic that takes `now`, no I/O.
//!
//! A node that cannot be connected to is ejected at once: nothing good comes of sending it the
//! next call. A node whose connection broke under a call (a frozen process stops answering
//! HTTP/2 pings; a reset) is suspect: it gets no calls until a probe says whether it still
//! answers — a healthy node is back within the probe's round trip, a frozen one is ejected.
//! Timeouts eject a node after [`CONSECUTIVE`] in a row, or when they are at least
//! [`FAILURE_RATE`] of the node's calls in a [`WINDOW`] of at least [`RATE_MIN_CALLS`] calls (a
//! node that times out every other call never fails five in a row). An ejected node gets no
//! calls; when
//! its back-off has passed, the breaker asks for one probe (a health check the client sends,
//! never a caller's request). A probe that is answered closes the breaker; one that is not
//! ejects the node again for twice as long, up to [`MAX_BACKOFF`].
//!
//! What a service answers never counts against the node, `UNAVAILABLE` included: a service
//! passing on its own dependency's outage is not a failing node, and several services may
//! share one address (the platform's do).

use std::time::Duration;

use tokio::time::Instant;

/// Failures in a row (other than connection failures) that eject a node.
pub(crate) const CONSECUTIVE: u32 = 5;

/// The share of a window's calls that, timing out, ejects a node.
pub(crate) const FAILURE_RATE: f64 = 0.5;

/// The calls a window needs before its failure rate counts.
pub(crate) const RATE_MIN_CALLS: u32 = 20;

/// How long a window of calls lasts.
pub(crate) const WINDOW: Duration = Duration::from_secs(10);

/// The first ejection's length.
pub(crate) const BASE_BACKOFF: Duration = Duration::from_secs(1);

/// The longest ejection.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How a call to a node ended, as far as the node's health goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The node answered (whatever the answer: an application error is not the node failing).
    Answered,
    /// The call timed out (with time enough that a timeout says something of the node).
    Failed,
    /// The connection broke under the call.
    Lost,
    /// The node could not be connected to.
    Unreachable,
}

/// Where the breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// Calls go through.
    Closed,
    /// Ejected until `until`.
    Open { until: Instant },
    /// A probe is out.
    Probing,
}

/// One node's breaker.
#[derive(Debug, Clone)]
pub(crate) struct Breaker {
    state: State,
    consecutive: u32,
    /// The current window of calls: when it began, its calls, its failures.
    window: Option<(Instant, u32, u32)>,
    /// Ejections since the node was last healthy, for the back-off.
    ejections: u32,
}

impl Default for Breaker {
    fn default() -> Self {
        Self {
            state: State::Closed,
            consecutive: 0,
            window: None,
            ejections: 0,
        }
    }
}

impl Breaker {
    pub(crate) fn state(&self) -> State {
        self.state
    }

    /// Whether a caller's request may go to the node.
    pub(crate) fn allows(&self) -> bool {
        self.state == State::Closed
    }

    /// Records how a call ended. Returns whether this took the node out of rotation (ejected
    /// it, or, for [`Outcome::Lost`], asked for a probe at once: the caller sends it).
    pub(crate) fn record(&mut self, now: Instant, outcome: Outcome) -> bool {
        if self.state != State::Closed {
            // A call that started before the ejection: the ejection already counted it.
            return false;
        }
        match outcome {
            Outcome::Answered => {
                self.consecutive = 0;
                self.ejections = 0;
                self.count(now, false);
                false
            }
            Outcome::Failed => {
                self.consecutive += 1;
                let too_many = self.count(now, true);
                if self.consecutive >= CONSECUTIVE || too_many {
                    self.eject(now);
                    return true;
                }
                false
            }
            Outcome::Lost => {
                self.consecutive = 0;
                self.state = State::Probing;
                true
            }
            Outcome::Unreachable => {
                self.eject(now);
                true
            }
        }
    }

    /// Whether a probe should be sent now; if so, the breaker waits for its result.
    pub(crate) fn probe_due(&mut self, now: Instant) -> bool {
        match self.state {
            State::Open { until } if now >= until => {
                self.state = State::Probing;
                true
            }
            _ => false,
        }
    }

    /// The result of the probe `probe_due` asked for.
    pub(crate) fn probed(&mut self, now: Instant, answered: bool) {
        if self.state != State::Probing {
            return;
        }
        if answered {
            self.state = State::Closed;
            self.consecutive = 0;
        } else {
            self.eject(now);
        }
    }

    /// Counts a call in the window (a new one if the last is over); whether the window's
    /// failure rate now ejects the node.
    fn count(&mut self, now: Instant, failed: bool) -> bool {
        let (start, calls, failures) = match self.window {
            Some((start, calls, failures)) if now.duration_since(start) < WINDOW => {
                (start, calls, failures)
            }
            _ => (now, 0, 0),
        };
        let (calls, failures) = (calls + 1, failures + u32::from(failed));
        self.window = Some((start, calls, failures));
        calls >= RATE_MIN_CALLS && f64::from(failures) >= FAILURE_RATE * f64::from(calls)
    }

    fn eject(&mut self, now: Instant) {
        self.window = None;
        let doublings = self.ejections.min(16);
        self.ejections = self.ejections.saturating_add(1);
        let backoff = BASE_BACKOFF.saturating_mul(1 << doublings).min(MAX_BACKOFF);
        self.state = State::Open {
            until: now + backoff,
        };
        self.consecutive = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn unreachable_ejects_at_once_and_a_probe_brings_it_back() {
        let mut b = Breaker::default();
        assert!(b.allows());
        assert!(b.record(Instant::now(), Outcome::Unreachable));
        assert!(!b.allows());
        assert!(!b.probe_due(Instant::now()), "not before the back-off");
        tokio::time::advance(BASE_BACKOFF).await;
        assert!(b.probe_due(Instant::now()));
        assert!(!b.probe_due(Instant::now()), "one probe at a time");
        assert!(!b.allows(), "no caller while probing");
        b.probed(Instant::now(), true);
        assert!(b.allows());
    }

    #[tokio::test(start_paused = true)]
    async fn failures_eject_only_in_a_row() {
        let mut b = Breaker::default();
        for _ in 0..CONSECUTIVE - 1 {
            assert!(!b.record(Instant::now(), Outcome::Failed));
        }
        b.record(Instant::now(), Outcome::Answered);
        for _ in 0..CONSECUTIVE - 1 {
            assert!(!b.record(Instant::now(), Outcome::Failed));
        }
        assert!(b.allows());
        assert!(b.record(Instant::now(), Outcome::Failed));
        assert!(!b.allows());
    }

    #[tokio::test(start_paused = true)]
    async fn a_node_failing_every_other_call_is_ejected_by_its_failure_rate() {
        let mut b = Breaker::default();
        let mut ejected = false;
        for n in 0..RATE_MIN_CALLS {
            let outcome = if n % 2 == 0 {
                Outcome::Answered
            } else {
                Outcome::Failed
            };
            ejected |= b.record(Instant::now(), outcome);
        }
        assert!(ejected, "half the window's calls failed");
        assert!(!b.allows());
    }

    #[tokio::test(start_paused = true)]
    async fn failures_spread_over_windows_or_below_the_rate_do_not_eject() {
        let mut b = Breaker::default();
        // One in three fails: below the rate, however many calls.
        for n in 0..3 * RATE_MIN_CALLS {
            let outcome = if n % 3 == 0 {
                Outcome::Failed
            } else {
                Outcome::Answered
            };
            assert!(!b.record(Instant::now(), outcome), "call {n}");
        }
        // Every other call fails, but each window sees too few calls to judge.
        for n in 0..4 * RATE_MIN_CALLS {
            let outcome = if n % 2 == 0 {
                Outcome::Answered
            } else {
                Outcome::Failed
            };
            assert!(!b.record(Instant::now(), outcome), "call {n}");
            if n % (RATE_MIN_CALLS / 2) == 0 {
                tokio::time::advance(WINDOW).await;
            }
        }
        assert!(b.allows());
    }

    #[tokio::test(start_paused = true)]
    async fn failed_probes_double_the_back_off_up_to_the_cap() {
        let mut b = Breaker::default();
        b.record(Instant::now(), Outcome::Unreachable);
        let mut expected = BASE_BACKOFF;
        for _ in 0..10 {
            let State::Open { until } = b.state() else {
                panic!("ejected: {:?}", b.state())
            };
            assert_eq!(until - Instant::now(), expected);
            tokio::time::advance(expected).await;
            assert!(b.probe_due(Instant::now()));
            b.probed(Instant::now(), false);
            expected = (expected * 2).min(MAX_BACKOFF);
        }
        assert_eq!(expected, MAX_BACKOFF);
        // Healthy again, and healthy for a call: the next ejection is short again.
        tokio::time::advance(MAX_BACKOFF).await;
        assert!(b.probe_due(Instant::now()));
        b.probed(Instant::now(), true);
        b.record(Instant::now(), Outcome::Answered);
        b.record(Instant::now(), Outcome::Unreachable);
        assert_eq!(
            b.state(),
            State::Open {
                until: Instant::now() + BASE_BACKOFF
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_lost_connection_is_probed_at_once() {
        let mut b = Breaker::default();
        assert!(b.record(Instant::now(), Outcome::Lost));
        assert_eq!(b.state(), State::Probing);
        assert!(!b.allows());
        b.probed(Instant::now(), true);
        assert!(b.allows(), "a node that still answers is back at once");
        b.record(Instant::now(), Outcome::Lost);
        b.probed(Instant::now(), false);
        assert_eq!(
            b.state(),
            State::Open {
                until: Instant::now() + BASE_BACKOFF
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_that_began_before_the_ejection_changes_nothing() {
        let mut b = Breaker::default();
        b.record(Instant::now(), Outcome::Unreachable);
        let before = b.state();
        assert!(!b.record(Instant::now(), Outcome::Unreachable));
        b.record(Instant::now(), Outcome::Answered);
        assert_eq!(b.state(), before);
    }
}
