//! The last five minutes of the calls the platform made for its callers, per namespace,
//! service and endpoint: what the dashboard draws its charts from (request rate, error rate,
//! p50 and p99 latency). Prometheus keeps the long history; this is the picture at a glance,
//! kept in the server with no setup.
//!
//! Logic without I/O: every method takes `now` (seconds on any clock that only moves forward),
//! so the tests decide the time. Memory is bounded: [`SLOTS`] slots of [`SLOT_SECS`] each per
//! series, at most [`MAX_SERIES_PER_NAMESPACE`] series per namespace and [`MAX_SERIES`] in all
//! (the one used longest ago makes room for a new one, in its namespace first).

use std::time::Duration;

use hashbrown::HashMap;

/// Seconds one slot covers.
pub(crate) const SLOT_SECS: u64 = 5;
/// Slots kept: five minutes.
pub(crate) const SLOTS: usize = 60;
/// The most series kept.
pub(crate) const MAX_SERIES: usize = 1024;
/// The most series one namespace keeps: a busy one never pushes the others' out.
pub(crate) const MAX_SERIES_PER_NAMESPACE: usize = 256;
/// Latency bucket bounds: 0.5 ms doubling to ~16 s, then everything slower.
const BUCKETS: usize = 16;

fn bound(bucket: usize) -> f64 {
    0.0005 * f64::from(1u32 << bucket.min(30))
}

#[derive(Clone, Copy, Default)]
struct Slot {
    /// Which slot of time (`now / SLOT_SECS`) this holds.
    at: u64,
    calls: u32,
    errors: u32,
    latency: [u32; BUCKETS + 1],
}

struct Series {
    slots: Box<[Slot; SLOTS]>,
    last: u64,
}

/// One slot of a series, as the charts read it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Point {
    /// Calls a second.
    pub(crate) rate: f64,
    /// The share of calls that failed, 0 to 1 (`None` without calls).
    pub(crate) errors: Option<f64>,
    /// Median latency in seconds (`None` without calls).
    pub(crate) p50: Option<f64>,
    /// 99th percentile latency in seconds.
    pub(crate) p99: Option<f64>,
}

/// A series' key, borrowed, so a call finds its series without allocating; it hashes as the
/// owned key does (each part in order).
#[derive(Hash)]
struct Key<'a>(&'a str, &'a str, &'a str);

impl hashbrown::Equivalent<(String, String, String)> for Key<'_> {
    fn equivalent(&self, key: &(String, String, String)) -> bool {
        self.0 == key.0 && self.1 == key.1 && self.2 == key.2
    }
}

/// The recent calls of every series.
#[derive(Default)]
pub(crate) struct Recent {
    series: HashMap<(String, String, String), Series>,
}

impl Recent {
    /// A call to `endpoint` of `service` in `namespace` that ended at `now` after `took`.
    pub(crate) fn record(
        &mut self,
        now: u64,
        key: (&str, &str, &str),
        failed: bool,
        took: Duration,
    ) {
        let view = Key(key.0, key.1, key.2);
        if !self.series.contains_key(&view) {
            // Room is made in the namespace's own series first, then in all of them.
            let mine = self.series.keys().filter(|k| k.0 == key.0).count();
            let oldest = if mine >= MAX_SERIES_PER_NAMESPACE {
                self.oldest(|k| k.0 == key.0)
            } else if self.series.len() >= MAX_SERIES {
                self.oldest(|_| true)
            } else {
                None
            };
            if let Some(oldest) = oldest {
                self.series.remove(&oldest);
            }
            self.series.insert(
                (key.0.to_owned(), key.1.to_owned(), key.2.to_owned()),
                Series {
                    slots: Box::new([Slot::default(); SLOTS]),
                    last: now,
                },
            );
        }
        let Some(series) = self.series.get_mut(&view) else {
            return;
        };
        series.last = now;
        let at = now / SLOT_SECS;
        let slot = &mut series.slots[index(at)];
        if slot.at != at {
            *slot = Slot {
                at,
                ..Slot::default()
            };
        }
        slot.calls = slot.calls.saturating_add(1);
        if failed {
            slot.errors = slot.errors.saturating_add(1);
        }
        let secs = took.as_secs_f64();
        let bucket = (0..BUCKETS).find(|b| secs <= bound(*b)).unwrap_or(BUCKETS);
        slot.latency[bucket] = slot.latency[bucket].saturating_add(1);
    }

    /// The series among `which` used longest ago.
    fn oldest(
        &self,
        which: impl Fn(&(String, String, String)) -> bool,
    ) -> Option<(String, String, String)> {
        self.series
            .iter()
            .filter(|(k, _)| which(k))
            .min_by_key(|(_, s)| s.last)
            .map(|(k, _)| k.clone())
    }

    /// The last [`SLOTS`] slots up to `now`, oldest first, of `service` in `namespace`: of one
    /// endpoint, or of all of them together when `endpoint` is `None`.
    pub(crate) fn points(
        &self,
        now: u64,
        namespace: &str,
        service: &str,
        endpoint: Option<&str>,
    ) -> Vec<Point> {
        let current = now / SLOT_SECS;
        let first = current.saturating_sub(SLOTS as u64 - 1);
        let mut merged = vec![Slot::default(); SLOTS];
        for ((ns, svc, ep), series) in &self.series {
            if ns != namespace || svc != service || endpoint.is_some_and(|e| e != ep) {
                continue;
            }
            for slot in series
                .slots
                .iter()
                .filter(|s| s.at >= first && s.at <= current)
            {
                let into = &mut merged[usize::try_from(slot.at - first).unwrap_or(0)];
                into.calls = into.calls.saturating_add(slot.calls);
                into.errors = into.errors.saturating_add(slot.errors);
                for (sum, n) in into.latency.iter_mut().zip(slot.latency) {
                    *sum = sum.saturating_add(n);
                }
            }
        }
        merged.iter().map(point).collect()
    }

    /// Whether `service` in `namespace` had any call in the last [`SLOTS`] slots.
    pub(crate) fn any(&self, now: u64, namespace: &str, service: &str) -> bool {
        let first = (now / SLOT_SECS).saturating_sub(SLOTS as u64 - 1);
        self.series.iter().any(|((ns, svc, _), s)| {
            ns == namespace
                && svc == service
                && s.slots.iter().any(|x| x.at >= first && x.calls > 0)
        })
    }
}

fn index(at: u64) -> usize {
    usize::try_from(at % SLOTS as u64).unwrap_or(0)
}

fn point(slot: &Slot) -> Point {
    let calls = f64::from(slot.calls);
    let has = slot.calls > 0;
    Point {
        rate: calls / SLOT_SECS as f64,
        errors: has.then(|| f64::from(slot.errors) / calls),
        p50: has.then(|| quantile(&slot.latency, 0.5)),
        p99: has.then(|| quantile(&slot.latency, 0.99)),
    }
}

/// The `q` quantile of a latency histogram, linear within its bucket (as Prometheus's
/// `histogram_quantile`); the slowest bucket answers its lower bound.
fn quantile(latency: &[u32; BUCKETS + 1], q: f64) -> f64 {
    let total: f64 = latency.iter().map(|n| f64::from(*n)).sum();
    let rank = q * total;
    let mut seen = 0.0;
    for (bucket, n) in latency.iter().enumerate() {
        let n = f64::from(*n);
        if n > 0.0 && seen + n >= rank {
            if bucket == BUCKETS {
                return bound(BUCKETS - 1);
            }
            let low = if bucket == 0 { 0.0 } else { bound(bucket - 1) };
            let high = bound(bucket);
            return low + (high - low) * ((rank - seen) / n).clamp(0.0, 1.0);
        }
        seen += n;
    }
    0.0
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: (&str, &str, &str) = ("micro", "helloworld", "Helloworld.Call");

    #[test]
    fn rates_errors_and_latency_come_from_the_slots() {
        let mut recent = Recent::default();
        let t = 1_000_000;
        for i in 0..100 {
            let took = Duration::from_micros(if i < 99 { 300 } else { 100_000 });
            recent.record(t, KEY, i % 10 == 0, took);
        }
        let points = recent.points(t, "micro", "helloworld", Some("Helloworld.Call"));
        assert_eq!(points.len(), SLOTS);
        let last = points[SLOTS - 1];
        assert!((last.rate - 20.0).abs() < 1e-9, "{last:?}");
        assert!((last.errors.unwrap() - 0.1).abs() < 1e-9, "{last:?}");
        assert!(last.p50.unwrap() <= 0.0005, "{last:?}");
        assert!(last.p99.unwrap() <= 0.0005, "{last:?}");
        assert_eq!(points[0].errors, None);
        // Another namespace's service of the same name is another series.
        assert!(!recent.any(t, "team", "helloworld"));
        assert!(
            recent
                .points(t, "team", "helloworld", None)
                .iter()
                .all(|p| p.rate == 0.0)
        );
    }

    #[test]
    fn old_slots_fall_out_and_are_reused() {
        let mut recent = Recent::default();
        let t = 1_000_000;
        recent.record(t, KEY, false, Duration::from_millis(1));
        let later = t + SLOT_SECS * SLOTS as u64;
        assert!(!recent.any(later, "micro", "helloworld"));
        // The same ring position, a new slot of time: the old count is gone.
        recent.record(later, KEY, true, Duration::from_millis(1));
        let points = recent.points(later, "micro", "helloworld", None);
        assert_eq!(points[SLOTS - 1].errors, Some(1.0));
        assert!((points[SLOTS - 1].rate - 0.2).abs() < 1e-9);
    }

    #[test]
    fn series_are_bounded_per_namespace_and_overall() {
        let mut recent = Recent::default();
        recent.record(0, ("quiet", "svc", "S.Call"), false, Duration::ZERO);
        for i in 0..MAX_SERIES + 10 {
            let name = format!("s{i}");
            recent.record(
                1 + i as u64,
                ("micro", &name, "S.Call"),
                false,
                Duration::ZERO,
            );
        }
        let quiet = ("quiet".to_owned(), "svc".to_owned(), "S.Call".to_owned());
        assert!(
            recent.series.contains_key(&quiet),
            "a busy namespace keeps to its share"
        );
        assert_eq!(recent.series.len(), MAX_SERIES_PER_NAMESPACE + 1);
        for ns in 0..MAX_SERIES {
            let ns = format!("ns{ns}");
            recent.record(5000, (&ns, "svc", "S.Call"), false, Duration::ZERO);
        }
        assert_eq!(recent.series.len(), MAX_SERIES);
        let first = ("micro".to_owned(), "s0".to_owned(), "S.Call".to_owned());
        assert!(!recent.series.contains_key(&first), "the oldest made room");
        let last = format!("ns{}", MAX_SERIES - 1);
        assert!(recent.any(5000, &last, "svc"), "the newest is kept");
    }

    #[test]
    fn quantiles_interpolate_within_a_bucket() {
        let mut latency = [0u32; BUCKETS + 1];
        latency[1] = 10; // 0.5 ms to 1 ms
        assert!((quantile(&latency, 0.5) - 0.00075).abs() < 1e-9);
        latency[BUCKETS] = 1000;
        assert_eq!(quantile(&latency, 0.99), bound(BUCKETS - 1));
    }
}
