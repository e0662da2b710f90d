//! [`ByCode`]: one method's histograms by gRPC status code, so that recording a call finds its
//! series without building (and allocating) a label set for the family's lookup. Every metric
//! of calls — a service's, the platform's proxy's — keeps one per method it has seen.

use std::{sync::OnceLock, time::Duration};

use prometheus_client::metrics::histogram::Histogram;

/// gRPC's status codes, 0 (OK) to 16 (UNAUTHENTICATED).
const CODES: usize = 17;

/// One method's histograms by gRPC status code, each taken from its family the first time
/// that code is seen (a clone shares the family's counts).
#[derive(Debug, Default)]
pub struct ByCode([OnceLock<Histogram>; CODES]);

impl ByCode {
    /// Observes `took` in the histogram of `code`, which `series` gives the first time.
    pub fn observe(&self, code: tonic::Code, took: Duration, series: impl FnOnce() -> Histogram) {
        let index = usize::try_from(code as i32).map_or(CODES - 1, |i| i.min(CODES - 1));
        self.0[index]
            .get_or_init(series)
            .observe(took.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::metrics::family::Family;

    use super::*;

    #[test]
    fn a_code_takes_its_series_once_and_records_into_the_familys() {
        type Labels = Vec<(String, String)>;
        let family: Family<Labels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(crate::metrics::latency_histogram);
        let by_code = ByCode::default();
        let mut taken = 0;
        for _ in 0..3 {
            by_code.observe(tonic::Code::Ok, Duration::from_millis(1), || {
                taken += 1;
                family
                    .get_or_create(&vec![("code".into(), "0".into())])
                    .clone()
            });
        }
        by_code.observe(tonic::Code::NotFound, Duration::from_millis(1), || {
            taken += 1;
            family
                .get_or_create(&vec![("code".into(), "5".into())])
                .clone()
        });
        assert_eq!(taken, 2, "one lookup per code");
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register("calls", "calls", family);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains(r#"calls_count{code="0"} 3"#), "{text}");
        assert!(text.contains(r#"calls_count{code="5"} 1"#), "{text}");
    }
}
