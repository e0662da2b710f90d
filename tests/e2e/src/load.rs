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
