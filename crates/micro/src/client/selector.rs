//! Node selection as pure logic: given how many nodes there are and a per-service counter,
//! the order in which to try them. The first is the pick; the rest are where a retry goes.

use std::sync::atomic::{AtomicUsize, Ordering};

/// How a node is picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// Each call starts at the node after the previous call's (per service).
    #[default]
    RoundRobin,
    /// Each call starts at a node picked uniformly at random.
    Random,
}

impl std::str::FromStr for Strategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "roundrobin" | "round-robin" | "round_robin" => Ok(Self::RoundRobin),
            "random" => Ok(Self::Random),
            other => Err(format!(
                "unknown selector {other:?}; use random or roundrobin"
            )),
        }
    }
}

/// The order in which to try `n` nodes: a starting point, then the others in turn.
pub fn order(strategy: Strategy, n: usize, counter: &AtomicUsize) -> impl Iterator<Item = usize> {
    let start = match (n, strategy) {
        (0, _) => 0,
        (_, Strategy::RoundRobin) => counter.fetch_add(1, Ordering::Relaxed) % n,
        (_, Strategy::Random) => rand::random_range(0..n),
    };
    (0..n).map(move |i| (start + i) % n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_alternates_and_covers_every_node() {
        let counter = AtomicUsize::new(0);
        let firsts: Vec<usize> = (0..6)
            .map(|_| order(Strategy::RoundRobin, 3, &counter).next().unwrap())
            .collect();
        assert_eq!(firsts, [0, 1, 2, 0, 1, 2]);
        let all: Vec<usize> = order(Strategy::RoundRobin, 3, &counter).collect();
        assert_eq!(all, [0, 1, 2]);
    }

    #[test]
    fn random_tries_every_node_once() {
        let counter = AtomicUsize::new(0);
        for _ in 0..50 {
            let mut all: Vec<usize> = order(Strategy::Random, 4, &counter).collect();
            all.sort_unstable();
            assert_eq!(all, [0, 1, 2, 3]);
        }
        assert_eq!(order(Strategy::Random, 0, &counter).count(), 0);
    }

    #[test]
    fn parses_names() {
        assert_eq!("random".parse::<Strategy>().unwrap(), Strategy::Random);
        assert_eq!(
            "roundrobin".parse::<Strategy>().unwrap(),
            Strategy::RoundRobin
        );
        assert!("fastest".parse::<Strategy>().is_err());
    }
}
