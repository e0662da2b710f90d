//! What a client knows of each node's health: its latency (`ewma`), the calls it has in
//! flight, and its circuit breaker (`breaker`). Logic only: every method takes `now`, and the
//! client does the I/O (calls, probes) the answers ask for.

pub(crate) mod breaker;
pub(crate) mod ewma;

use std::{collections::HashMap, sync::Mutex, time::Duration};

use tokio::time::Instant;

use breaker::{Breaker, Outcome, State};
use ewma::PeakEwma;

/// Nodes unused this long are forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(300);

/// One node.
#[derive(Debug)]
struct Node {
    ewma: PeakEwma,
    pending: usize,
    breaker: Breaker,
    used: Instant,
}

impl Node {
    fn new(now: Instant) -> Self {
        Self {
            ewma: PeakEwma::new(now),
            pending: 0,
            breaker: Breaker::default(),
            used: now,
        }
    }
}

/// Every node a client has called, by address.
#[derive(Debug, Default)]
pub(crate) struct Nodes {
    table: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
    nodes: HashMap<String, Node>,
    swept: Option<Instant>,
}

/// What the health of a service's nodes says about the next call.
#[derive(Debug, Default)]
pub(crate) struct View {
    /// Of each node asked about, whether its breaker lets calls through, and its cost.
    pub(crate) nodes: Vec<(bool, f64)>,
    /// Nodes whose probe is due: the caller sends each one.
    pub(crate) probes: Vec<String>,
    /// Nodes forgotten since the last view (not called for [`FORGET_AFTER`]).
    pub(crate) forgotten: Vec<String>,
}

/// A node as [`Client::stats`](crate::Client::stats) reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeHealth {
    /// `host:port`.
    pub address: String,
    /// `closed` (calls go through), `open` (ejected) or `probing`.
    pub breaker: &'static str,
    /// Calls in flight.
    pub pending: usize,
    /// The peak-EWMA latency estimate.
    pub latency: Duration,
}

impl Nodes {
    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The view of `addresses` at `now`, starting the probes that are due.
    pub(crate) fn view(&self, now: Instant, addresses: &[&str]) -> View {
        let mut table = self.table();
        let mut view = View {
            forgotten: table.sweep(now),
            ..View::default()
        };
        for address in addresses {
            let node = table.node(now, address);
            node.used = now;
            if node.breaker.probe_due(now) {
                view.probes.push((*address).to_owned());
            }
            view.nodes
                .push((node.breaker.allows(), node.ewma.cost(now, node.pending)));
        }
        view
    }

    /// A call to `address` begins.
    pub(crate) fn begin(&self, now: Instant, address: &str) {
        let mut table = self.table();
        let node = table.node(now, address);
        node.pending += 1;
        node.used = now;
    }

    /// A call to `address` ended with `outcome` after `rtt` (`None`: nothing to learn about its
    /// latency). Returns whether this ejected the node.
    pub(crate) fn end(
        &self,
        now: Instant,
        address: &str,
        outcome: Option<Outcome>,
        rtt: Option<Duration>,
    ) -> bool {
        let mut table = self.table();
        let Some(node) = table.nodes.get_mut(address) else {
            return false;
        };
        node.pending = node.pending.saturating_sub(1);
        if let Some(rtt) = rtt {
            node.ewma.observe(now, rtt);
        }
        outcome.is_some_and(|o| node.breaker.record(now, o))
    }

    /// The probe of `address` was answered (or not).
    pub(crate) fn probed(&self, now: Instant, address: &str, answered: bool) {
        if let Some(node) = self.table().nodes.get_mut(address) {
            node.breaker.probed(now, answered);
        }
    }

    /// Every node known, for stats.
    pub(crate) fn snapshot(&self) -> Vec<NodeHealth> {
        let table = self.table();
        let mut nodes: Vec<NodeHealth> = table
            .nodes
            .iter()
            .map(|(address, node)| NodeHealth {
                address: address.clone(),
                breaker: match node.breaker.state() {
                    State::Closed => "closed",
                    State::Open { .. } => "open",
                    State::Probing => "probing",
                },
                pending: node.pending,
                latency: node.ewma.estimate(),
            })
            .collect();
        nodes.sort_by(|a, b| a.address.cmp(&b.address));
        nodes
    }
}

impl Table {
    /// The node at `address`, new if unknown (looked up without allocating when known).
    fn node(&mut self, now: Instant, address: &str) -> &mut Node {
        if !self.nodes.contains_key(address) {
            self.nodes.insert(address.to_owned(), Node::new(now));
        }
        self.nodes.get_mut(address).expect("inserted above")
    }

    /// Forgets the nodes not used for [`FORGET_AFTER`], at most every tenth of that (services
    /// come and go; the table must not grow with every address ever seen), and says which.
    fn sweep(&mut self, now: Instant) -> Vec<String> {
        let mut forgotten = Vec::new();
        if self
            .swept
            .is_some_and(|at| now.saturating_duration_since(at) < FORGET_AFTER / 10)
        {
            return forgotten;
        }
        self.swept = Some(now);
        self.nodes.retain(|address, node| {
            let keep = node.pending > 0 || now.saturating_duration_since(node.used) < FORGET_AFTER;
            if !keep {
                forgotten.push(address.clone());
            }
            keep
        });
        forgotten
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_unreachable_node_is_held_back_then_probed() {
        let nodes = Nodes::default();
        let now = Instant::now();
        let view = nodes.view(now, &["a:1", "b:1"]);
        assert!(view.nodes.iter().all(|(allowed, _)| *allowed));
        nodes.begin(now, "a:1");
        assert!(nodes.end(now, "a:1", Some(Outcome::Unreachable), None));
        let view = nodes.view(now, &["a:1", "b:1"]);
        assert_eq!(
            view.nodes.iter().map(|n| n.0).collect::<Vec<_>>(),
            [false, true]
        );
        assert!(view.probes.is_empty());
        tokio::time::advance(breaker::BASE_BACKOFF).await;
        let view = nodes.view(Instant::now(), &["a:1", "b:1"]);
        assert_eq!(view.probes, ["a:1"]);
        nodes.probed(Instant::now(), "a:1", true);
        let view = nodes.view(Instant::now(), &["a:1", "b:1"]);
        assert!(view.nodes.iter().all(|(allowed, _)| *allowed));
    }

    #[tokio::test(start_paused = true)]
    async fn calls_in_flight_count_against_a_node() {
        let nodes = Nodes::default();
        let now = Instant::now();
        nodes.begin(now, "a:1");
        nodes.begin(now, "a:1");
        let view = nodes.view(now, &["a:1", "b:1"]);
        assert!(view.nodes[0].1 > view.nodes[1].1);
        nodes.end(
            now,
            "a:1",
            Some(Outcome::Answered),
            Some(Duration::from_millis(1)),
        );
        nodes.end(now, "a:1", None, None);
        assert_eq!(nodes.snapshot()[0].pending, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn unused_nodes_are_forgotten() {
        let nodes = Nodes::default();
        nodes.view(Instant::now(), &["a:1"]);
        tokio::time::advance(FORGET_AFTER * 2).await;
        nodes.view(Instant::now(), &["b:1"]);
        let known: Vec<String> = nodes.snapshot().into_iter().map(|n| n.address).collect();
        assert_eq!(known, ["b:1"]);
    }
}
