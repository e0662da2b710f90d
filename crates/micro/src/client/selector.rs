//! Node selection as logic without I/O: given each node's health (whether its breaker lets calls
//! through, and its peak-EWMA cost), the order in which to try the nodes. The first is the pick;
//! the rest are where a retry goes. Ejected nodes are never in the order.

use std::sync::atomic::{AtomicUsize, Ordering};

/// How a node is picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// The cheaper of two nodes picked at random, a node's cost being its peak-EWMA latency
    /// times its calls in flight plus one ("power of two choices"): slow or stuck nodes get
    /// little traffic, and no node is herded onto.
    #[default]
    LeastLoaded,
    /// Each call starts at the node after the previous call's (per service).
    RoundRobin,
    /// Each call starts at a node picked uniformly at random.
    Random,
}

impl std::str::FromStr for Strategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "p2c" | "least-loaded" | "leastloaded" | "peak-ewma" => Ok(Self::LeastLoaded),
            "roundrobin" | "round-robin" | "round_robin" => Ok(Self::RoundRobin),
            "random" => Ok(Self::Random),
            other => Err(format!(
                "unknown selector {other:?}; use p2c, random or roundrobin"
            )),
        }
    }
}

/// The order in which to try the nodes whose `(allowed, cost)` is given: allowed ones only.
pub fn order(strategy: Strategy, nodes: &[(bool, f64)], counter: &AtomicUsize) -> Vec<usize> {
    let allowed: Vec<usize> = (0..nodes.len()).filter(|&i| nodes[i].0).collect();
    let n = allowed.len();
    if n == 0 {
        return allowed;
    }
    match strategy {
        Strategy::RoundRobin => {
            let start = counter.fetch_add(1, Ordering::Relaxed) % n;
            (0..n).map(|i| allowed[(start + i) % n]).collect()
        }
        Strategy::Random => {
            let start = rand::random_range(0..n);
            (0..n).map(|i| allowed[(start + i) % n]).collect()
        }
        Strategy::LeastLoaded => {
            let cost = |i: usize| nodes[i].1;
            let mut rest = allowed.clone();
            rest.sort_by(|&a, &b| cost(a).total_cmp(&cost(b)));
            if n >= 2 {
                let a = rand::random_range(0..n);
                let b = (a + rand::random_range(1..n)) % n;
                let pick = if cost(allowed[b]) < cost(allowed[a]) {
                    allowed[b]
                } else {
                    allowed[a]
                };
                rest.retain(|&i| i != pick);
                rest.insert(0, pick);
            }
            rest
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEALTHY: (bool, f64) = (true, 1.0);

    #[test]
    fn round_robin_alternates_and_covers_every_node() {
        let counter = AtomicUsize::new(0);
        let nodes = [HEALTHY; 3];
        let firsts: Vec<usize> = (0..6)
            .map(|_| order(Strategy::RoundRobin, &nodes, &counter)[0])
            .collect();
        assert_eq!(firsts, [0, 1, 2, 0, 1, 2]);
        assert_eq!(order(Strategy::RoundRobin, &nodes, &counter), [0, 1, 2]);
    }

    #[test]
    fn every_strategy_tries_each_allowed_node_once_and_no_ejected_one() {
        let counter = AtomicUsize::new(0);
        let nodes = [HEALTHY, (false, 0.1), HEALTHY, (true, 5.0)];
        for strategy in [
            Strategy::LeastLoaded,
            Strategy::RoundRobin,
            Strategy::Random,
        ] {
            for _ in 0..50 {
                let mut all = order(strategy, &nodes, &counter);
                all.sort_unstable();
                assert_eq!(all, [0, 2, 3], "{strategy:?}");
            }
            assert!(order(strategy, &[], &counter).is_empty());
            assert!(order(strategy, &[(false, 1.0)], &counter).is_empty());
        }
    }

    #[test]
    fn least_loaded_never_picks_the_costliest_of_three() {
        let counter = AtomicUsize::new(0);
        let nodes = [HEALTHY, (true, 50.0), HEALTHY];
        let mut picks = [0; 3];
        for _ in 0..300 {
            let order = order(Strategy::LeastLoaded, &nodes, &counter);
            picks[order[0]] += 1;
            // Retries go to the cheapest remaining nodes.
            assert_eq!(order[2], 1);
        }
        assert_eq!(picks[1], 0, "{picks:?}");
        assert!(picks[0] > 100 && picks[2] > 100, "spread: {picks:?}");
    }

    #[test]
    fn parses_names() {
        assert_eq!("random".parse::<Strategy>().unwrap(), Strategy::Random);
        assert_eq!("p2c".parse::<Strategy>().unwrap(), Strategy::LeastLoaded);
        assert_eq!(
            "roundrobin".parse::<Strategy>().unwrap(),
            Strategy::RoundRobin
        );
        assert!("fastest".parse::<Strategy>().is_err());
    }
}
