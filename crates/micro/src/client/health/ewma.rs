//! Peak-EWMA latency, the balancer's measure of a node: logic that takes `now`, no I/O.
//!
//! The estimate jumps to any response time above it at once (a node turning slow is noticed on
//! its first slow answer) and falls back towards faster answers only gradually, weighing each
//! by how long ago the estimate last moved ([`DECAY`]). A node is then worth its estimate times
//! the calls it already has in flight plus one, so a node that stops answering — whose calls
//! pile up — looks worse with every call it holds. An estimate nobody has refreshed for a while
//! fades ([`FADE`]), so a node once slow is tried again now and then and can win its traffic
//! back.

use std::time::Duration;

use tokio::time::Instant;

/// What a node is assumed to take before it has answered anything.
pub(crate) const DEFAULT_RTT: Duration = Duration::from_millis(30);

/// The time constant of the fall towards faster answers.
pub(crate) const DECAY: Duration = Duration::from_secs(10);

/// The time constant with which an unrefreshed estimate fades.
pub(crate) const FADE: Duration = Duration::from_secs(10);

/// One node's latency estimate.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PeakEwma {
    /// Nanoseconds.
    estimate: f64,
    at: Instant,
}

impl PeakEwma {
    pub(crate) fn new(now: Instant) -> Self {
        Self {
            estimate: DEFAULT_RTT.as_nanos() as f64,
            at: now,
        }
    }

    /// A response that took `rtt`, seen at `now`.
    pub(crate) fn observe(&mut self, now: Instant, rtt: Duration) {
        let rtt = rtt.as_nanos() as f64;
        if rtt > self.estimate {
            self.estimate = rtt;
        } else {
            let w = weight(now.saturating_duration_since(self.at), DECAY);
            self.estimate = self.estimate * w + rtt * (1.0 - w);
        }
        self.at = now;
    }

    /// The node's cost at `now` with `pending` calls in flight: lower is better.
    pub(crate) fn cost(&self, now: Instant, pending: usize) -> f64 {
        let faded = self.estimate * weight(now.saturating_duration_since(self.at), FADE);
        faded * (pending as f64 + 1.0)
    }

    /// The current estimate (for stats).
    pub(crate) fn estimate(&self) -> Duration {
        Duration::from_nanos(self.estimate as u64)
    }
}

/// `e^(-elapsed/tau)`: 1 for no time at all, towards 0 as time passes.
fn weight(elapsed: Duration, tau: Duration) -> f64 {
    (-elapsed.as_secs_f64() / tau.as_secs_f64()).exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn jumps_up_at_once_and_falls_gradually() {
        let t0 = Instant::now();
        let mut e = PeakEwma::new(t0);
        e.observe(t0, 100 * MS);
        assert_eq!(e.estimate(), 100 * MS);
        // A fast answer right away barely moves it ...
        e.observe(t0 + MS, MS);
        assert!(e.estimate() > 99 * MS, "{:?}", e.estimate());
        // ... a fast answer long after moves it most of the way.
        e.observe(t0 + Duration::from_secs(30), MS);
        assert!(e.estimate() < 10 * MS, "{:?}", e.estimate());
    }

    #[test]
    fn calls_in_flight_raise_the_cost() {
        let t0 = Instant::now();
        let e = PeakEwma::new(t0);
        assert!(e.cost(t0, 3) > 3.9 * e.cost(t0, 0));
    }

    #[test]
    fn a_slow_node_costs_more_than_a_fast_one_until_its_estimate_fades() {
        let t0 = Instant::now();
        let mut fast = PeakEwma::new(t0);
        let mut slow = PeakEwma::new(t0);
        for i in 0..100u32 {
            fast.observe(t0 + i * 10 * MS, MS);
        }
        slow.observe(t0, 51 * MS);
        let now = t0 + Duration::from_secs(1);
        assert!(slow.cost(now, 0) > fast.cost(now, 0));
        // Unrefreshed for long enough, the slow node is worth trying again.
        let later = t0 + Duration::from_secs(60);
        assert!(slow.cost(later, 0) < fast.cost(now, 0));
    }
}
