//! The load drivers the benches share: closed-loop (N calls in flight for a while) and
//! fixed-rate (one call every interval), each reporting throughput and latency percentiles.

use std::{
    future::Future,
    pin::Pin,
    time::{Duration, Instant},
};

/// Throughput and latency of one run.
#[derive(Debug, Clone, Copy)]
pub struct Figures {
    /// Calls completed per second.
    pub per_sec: f64,
    /// Median latency.
    pub p50: Duration,
    /// 99th-percentile latency.
    pub p99: Duration,
}

impl Figures {
    /// Figures from latencies collected over `elapsed`.
    pub fn of(mut latencies: Vec<Duration>, elapsed: Duration) -> Self {
        assert!(!latencies.is_empty(), "no call completed");
        latencies.sort_unstable();
        let pct =
            |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
        Self {
            per_sec: latencies.len() as f64 / elapsed.as_secs_f64(),
            p50: pct(0.50),
            p99: pct(0.99),
        }
    }

    /// The mean of two runs (alternating rounds even out drift).
    pub fn merge(self, other: Self) -> Self {
        Self {
            per_sec: (self.per_sec + other.per_sec) / 2.0,
            p50: (self.p50 + other.p50) / 2,
            p99: (self.p99 + other.p99) / 2,
        }
    }

    /// The mean of several runs (of their percentiles too: not the percentile of all calls).
    pub fn mean(runs: &[Self]) -> Self {
        let n = runs.len().max(1) as u32;
        Self {
            per_sec: runs.iter().map(|f| f.per_sec).sum::<f64>() / f64::from(n),
            p50: runs.iter().map(|f| f.p50).sum::<Duration>() / n,
            p99: runs.iter().map(|f| f.p99).sum::<Duration>() / n,
        }
    }
}

/// One call on a caller's own state (a client, a connection).
pub type Call<T> = for<'a> fn(&'a mut T) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Runs one task per caller, each calling back to back until `for_how_long` has passed; hands
/// the callers back (their connections stay warm for the next round).
pub async fn closed_loop<T: Send + 'static>(
    callers: Vec<T>,
    for_how_long: Duration,
    call: Call<T>,
) -> (Figures, Vec<T>) {
    let start = Instant::now();
    let deadline = start + for_how_long;
    let tasks: Vec<_> = callers
        .into_iter()
        .map(|mut caller| {
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let t = Instant::now();
                    call(&mut caller).await;
                    latencies.push(t.elapsed());
                }
                (latencies, caller)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut back = Vec::new();
    for task in tasks {
        let (latencies, caller) = task.await.expect("a load task");
        all.extend(latencies);
        back.push(caller);
    }
    (Figures::of(all, start.elapsed()), back)
}

/// Two clients measured against each other: each one's figures (the mean of its rounds'), and
/// the ratio of their throughputs, b/a.
#[derive(Debug, Clone, Copy)]
pub struct Paired {
    /// The baseline's figures.
    pub a: Figures,
    /// The contender's figures.
    pub b: Figures,
    /// The median over the pairs of rounds of b's calls/s over a's.
    pub ratio: f64,
    /// The lowest and highest of those ratios.
    pub spread: (f64, f64),
}

/// Runs `a` and `b` in alternating rounds of `round` each (a b, b a, a b, …), `pairs` pairs;
/// hands both sets of callers back.
///
/// On a small, shared machine the throughput drifts by ±10 % over seconds: a ratio of totals
/// measures the drift as much as the clients. Rounds next to each other see the same machine,
/// so the ratio is taken pair by pair, and the median of the pairs is reported.
pub async fn paired<A: Send + 'static, B: Send + 'static>(
    (mut a, call_a): (Vec<A>, Call<A>),
    (mut b, call_b): (Vec<B>, Call<B>),
    pairs: usize,
    round: Duration,
) -> (Paired, Vec<A>, Vec<B>) {
    assert!(pairs > 0, "at least one pair of rounds");
    let (mut fa, mut fb, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for pair in 0..pairs {
        let (x, y) = if pair % 2 == 0 {
            let (x, back) = closed_loop(a, round, call_a).await;
            a = back;
            let (y, back) = closed_loop(b, round, call_b).await;
            b = back;
            (x, y)
        } else {
            let (y, back) = closed_loop(b, round, call_b).await;
            b = back;
            let (x, back) = closed_loop(a, round, call_a).await;
            a = back;
            (x, y)
        };
        ratios.push(y.per_sec / x.per_sec);
        fa.push(x);
        fb.push(y);
    }
    ratios.sort_by(f64::total_cmp);
    let median = if ratios.len() % 2 == 1 {
        ratios[ratios.len() / 2]
    } else {
        (ratios[ratios.len() / 2 - 1] + ratios[ratios.len() / 2]) / 2.0
    };
    let paired = Paired {
        a: Figures::mean(&fa),
        b: Figures::mean(&fb),
        ratio: median,
        spread: (ratios[0], ratios[ratios.len() - 1]),
    };
    (paired, a, b)
}

/// Calls once every `1 / per_sec` seconds for `for_how_long`, one call at a time.
pub async fn fixed_rate<T>(
    caller: &mut T,
    per_sec: u32,
    for_how_long: Duration,
    call: Call<T>,
) -> Figures {
    let mut ticks = tokio::time::interval(Duration::from_secs(1) / per_sec);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let start = Instant::now();
    let mut latencies = Vec::new();
    while start.elapsed() < for_how_long {
        ticks.tick().await;
        let t = Instant::now();
        call(caller).await;
        latencies.push(t.elapsed());
    }
    Figures::of(latencies, start.elapsed())
}

/// The counting allocator a bench installs as its global allocator.
pub type Counting = stats_alloc::StatsAlloc<std::alloc::System>;

/// Allocations per call over `calls` calls one at a time, as the bench's global `allocator`
/// counts them (allocations and reallocations): client and server together. Exact, where
/// calls/s on a shared machine are not.
pub async fn allocations_per_call<T: Send + 'static>(
    caller: &mut T,
    call: Call<T>,
    calls: u64,
    allocator: &Counting,
) -> f64 {
    let count = || {
        let stats = allocator.stats();
        stats.allocations + stats.reallocations
    };
    let before = count();
    for _ in 0..calls {
        call(caller).await;
    }
    (count() - before) as f64 / calls as f64
}
