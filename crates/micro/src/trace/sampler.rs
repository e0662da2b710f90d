//! [`Sampling`]: which new traces are recorded, decided once, where a trace begins.
//!
//! A trace is sampled or not where it starts (a request that arrives with no `traceparent`, or
//! a call made outside any request), and every hop after follows the flag its caller sent. So
//! a call whose trace is not sampled makes no span anywhere: only its `traceparent` (flags
//! `00`) travels on. Spans of an unsampled trace would be built and thrown away, and on a busy
//! gateway that costs more than all of its metrics.
//!
//! The decision reads the standard variables, `OTEL_TRACES_SAMPLER` and
//! `OTEL_TRACES_SAMPLER_ARG`: `always_on` and `parentbased_always_on` (the default) keep every
//! new trace; `always_off` and `parentbased_always_off` none; `traceidratio` and
//! `parentbased_traceidratio` the given share. The hops after the first always follow their
//! caller's flag, as the `parentbased_*` samplers do. It is logic without I/O: the environment
//! is read once, and the trace id to decide on is given.

use opentelemetry::{
    Context, KeyValue,
    trace::{
        Link, SpanContext, SpanId, SpanKind, TraceContextExt, TraceFlags, TraceId, TraceState,
    },
};
use opentelemetry_sdk::trace::{SamplingDecision, SamplingResult, ShouldSample};

/// The share of new traces to record (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    ratio: f64,
}

impl Sampling {
    /// From the sampler's name and argument, as in `OTEL_TRACES_SAMPLER` and
    /// `OTEL_TRACES_SAMPLER_ARG`; an unknown name or a bad ratio keeps every trace (the
    /// standard's default), with a warning.
    pub fn parse(name: Option<&str>, arg: Option<&str>) -> Self {
        let ratio = || match arg.map(str::trim).map(str::parse::<f64>) {
            None => 1.0,
            Some(Ok(r)) if (0.0..=1.0).contains(&r) => r,
            Some(_) => {
                tracing::warn!(
                    "OTEL_TRACES_SAMPLER_ARG={:?} is not a ratio between 0 and 1: sampling every trace",
                    arg.unwrap_or_default()
                );
                1.0
            }
        };
        let ratio = match name.map(str::trim).unwrap_or("") {
            "" | "always_on" | "parentbased_always_on" => 1.0,
            "always_off" | "parentbased_always_off" => 0.0,
            "traceidratio" | "parentbased_traceidratio" => ratio(),
            other => {
                tracing::warn!(
                    "OTEL_TRACES_SAMPLER={other:?} is not supported: sampling every trace"
                );
                1.0
            }
        };
        Self { ratio }
    }

    /// From this process's environment.
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        Self::parse(
            var("OTEL_TRACES_SAMPLER").as_deref(),
            var("OTEL_TRACES_SAMPLER_ARG").as_deref(),
        )
    }

    /// Whether a new trace of id `trace_id` is recorded: the standard's rule, its lower 64
    /// bits below the ratio's share of them.
    pub fn samples(&self, trace_id: TraceId) -> bool {
        if self.ratio >= 1.0 {
            return true;
        }
        if self.ratio <= 0.0 {
            return false;
        }
        let low = u128::from_be_bytes(trace_id.to_bytes()) as u64;
        // The ratio's share of 2^64, as a bound on the lower bits.
        let bound = (self.ratio * (u64::MAX as f64)) as u64;
        low < bound
    }

    /// The context of a new trace this process will not record: fresh ids, flags `00`.
    pub fn unsampled(trace_id: TraceId) -> SpanContext {
        SpanContext::new(
            trace_id,
            SpanId::from(rand::random::<u64>().max(1)),
            TraceFlags::default(),
            false,
            TraceState::default(),
        )
    }

    /// A fresh trace id.
    pub fn new_trace_id() -> TraceId {
        TraceId::from(rand::random::<u128>().max(1))
    }
}

/// The SDK's sampler, which only follows what was decided where the trace began: a span with
/// a parent keeps the parent's flag; one without is kept (the decision to make it was the
/// keeping), unless it is made inside the call of a trace not kept — a handler's own span,
/// an `#[instrument]` — which records nothing rather than begin a trace of its own.
#[derive(Debug, Clone, Copy)]
pub(super) struct FollowTheStart;

impl ShouldSample for FollowTheStart {
    fn should_sample(
        &self,
        parent_context: Option<&Context>,
        _: TraceId,
        _: &str,
        _: &SpanKind,
        _: &[KeyValue],
        _: &[Link],
    ) -> SamplingResult {
        let parent = parent_context
            .map(|cx| cx.span().span_context().clone())
            .filter(SpanContext::is_valid);
        let keep = match &parent {
            Some(parent) => parent.is_sampled(),
            None => !super::in_unsampled_call(),
        };
        SamplingResult {
            decision: if keep {
                SamplingDecision::RecordAndSample
            } else {
                SamplingDecision::Drop
            },
            attributes: Vec::new(),
            trace_state: parent.map(|p| p.trace_state().clone()).unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_names_and_their_ratios() {
        let ratio = |name, arg| Sampling::parse(name, arg).ratio;
        assert_eq!(ratio(None, None), 1.0);
        assert_eq!(ratio(Some("parentbased_always_on"), None), 1.0);
        assert_eq!(ratio(Some("always_off"), None), 0.0);
        assert_eq!(ratio(Some("parentbased_always_off"), Some("0.5")), 0.0);
        assert_eq!(ratio(Some("parentbased_traceidratio"), Some("0.01")), 0.01);
        assert_eq!(ratio(Some("traceidratio"), None), 1.0);
        // What cannot be read keeps every trace, as the standard's default does.
        assert_eq!(ratio(Some("traceidratio"), Some("2")), 1.0);
        assert_eq!(ratio(Some("traceidratio"), Some("a lot")), 1.0);
        assert_eq!(ratio(Some("jaeger_remote"), None), 1.0);
    }

    #[test]
    fn a_ratio_keeps_about_its_share_and_decides_by_the_trace_id_alone() {
        let sampling = Sampling::parse(Some("parentbased_traceidratio"), Some("0.1"));
        let kept = (0..20_000)
            .filter(|_| sampling.samples(Sampling::new_trace_id()))
            .count();
        assert!((1_600..2_400).contains(&kept), "{kept} of 20000");
        let id = TraceId::from(0x0123_4567_89ab_cdef_0000_0000_0000_0001_u128);
        assert_eq!(sampling.samples(id), sampling.samples(id));
        assert!(
            sampling.samples(TraceId::from(1)),
            "low bits 1 are under any share"
        );
        assert!(!sampling.samples(TraceId::from(u128::from(u64::MAX))));
        assert!(Sampling::parse(None, None).samples(TraceId::from(u128::from(u64::MAX))));
        assert!(!Sampling::parse(Some("always_off"), None).samples(TraceId::from(1)));
    }

    #[tokio::test]
    async fn the_sdk_follows_the_start_and_drops_a_handlers_own_span_in_an_unsampled_call() {
        let keeps = |parent: Option<SpanContext>| {
            let cx = parent.map(|p| Context::new().with_remote_span_context(p));
            FollowTheStart
                .should_sample(
                    cx.as_ref(),
                    Sampling::new_trace_id(),
                    "span",
                    &SpanKind::Internal,
                    &[],
                    &[],
                )
                .decision
                == SamplingDecision::RecordAndSample
        };
        let kept = SpanContext::new(
            Sampling::new_trace_id(),
            SpanId::from(7),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        );
        let dropped = Sampling::unsampled(Sampling::new_trace_id());
        assert!(keeps(Some(kept.clone())));
        assert!(!keeps(Some(dropped.clone())));
        assert!(
            keeps(None),
            "a root made outside any call was decided on already"
        );
        let inside =
            super::super::unsampled(dropped, async move { (keeps(None), keeps(Some(kept))) }).await;
        assert_eq!(
            inside,
            (false, true),
            "a root inside an unsampled call records nothing"
        );
    }

    #[test]
    fn an_unsampled_context_is_valid_and_says_so() {
        let context = Sampling::unsampled(Sampling::new_trace_id());
        assert!(context.is_valid());
        assert!(!context.is_sampled());
    }
}
