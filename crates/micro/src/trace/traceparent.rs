//! The W3C `traceparent` header of a trace nobody records, read and written here, not by the
//! SDK's propagator.
//!
//! Most calls belong to traces the sampler did not keep, and each of their hops only reads the
//! flag and passes the ids on. Through the propagator that is a lock on the global propagator,
//! a `Vec` of the header's parts, ids parsed and printed through `fmt`, and an
//! `opentelemetry::Context` built and dropped, three times a call (gateway, client, service):
//! a tenth of the gateway's throughput at 1 % sampling. What this module does not take — a
//! sampled trace, a `tracestate`, another version of the header, anything malformed — it leaves
//! to the propagator, which reads it as before.

use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

use super::TRACEPARENT;

/// The W3C header that carries vendors' trace state next to `traceparent`.
const TRACESTATE: &str = "tracestate";

/// `00-` + 32 hex digits + `-` + 16 + `-` + 2.
const LEN: usize = 55;

/// What a request's trace headers say, as far as this module reads them.
#[derive(Debug, PartialEq)]
pub(super) enum Incoming {
    /// No `traceparent`: a trace may begin here.
    Absent,
    /// A trace its caller did not keep, with nothing else to pass on.
    Unsampled(SpanContext),
    /// Anything else, for the propagator to read.
    Other,
}

/// Reads `headers` for [`Incoming`].
pub(super) fn read(headers: &http::HeaderMap) -> Incoming {
    let Some(value) = headers.get(TRACEPARENT) else {
        return Incoming::Absent;
    };
    if headers.contains_key(TRACESTATE) {
        return Incoming::Other;
    }
    match parse(value.as_bytes()) {
        Some(context) if !context.is_sampled() => Incoming::Unsampled(context),
        _ => Incoming::Other,
    }
}

/// A version-00 `traceparent` with valid ids, as a remote span context (other flag bits
/// cleared, as the spec asks of a reader that does not know them).
fn parse(text: &[u8]) -> Option<SpanContext> {
    if text.len() != LEN || &text[..3] != b"00-" || text[35] != b'-' || text[52] != b'-' {
        return None;
    }
    let trace_id = u128::from_be_bytes(hex::<16>(&text[3..35])?);
    let span_id = u64::from_be_bytes(hex::<8>(&text[36..52])?);
    let [flags] = hex::<1>(&text[53..55])?;
    if trace_id == 0 || span_id == 0 {
        return None;
    }
    Some(SpanContext::new(
        TraceId::from(trace_id),
        SpanId::from(span_id),
        TraceFlags::new(flags) & TraceFlags::SAMPLED,
        true,
        TraceState::NONE,
    ))
}

/// `N` bytes from `2 * N` lower-case hex digits (the spec allows no upper case).
fn hex<const N: usize>(digits: &[u8]) -> Option<[u8; N]> {
    fn nibble(d: u8) -> Option<u8> {
        match d {
            b'0'..=b'9' => Some(d - b'0'),
            b'a'..=b'f' => Some(d - b'a' + 10),
            _ => None,
        }
    }
    let mut bytes = [0; N];
    for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(bytes)
}

/// Puts `context` on outgoing `headers` as `traceparent` (and takes any `tracestate` off) when
/// this module can say all of it (valid ids, no trace state); whether it did.
pub(super) fn write(context: &SpanContext, headers: &mut http::HeaderMap) -> bool {
    if !context.is_valid() || *context.trace_state() != TraceState::NONE {
        return false;
    }
    let mut out = *b"00-00000000000000000000000000000000-0000000000000000-00";
    put_hex(&mut out[3..35], &context.trace_id().to_bytes());
    put_hex(&mut out[36..52], &context.span_id().to_bytes());
    put_hex(&mut out[53..], &[context.trace_flags().to_u8()]);
    let Ok(mut value) = http::HeaderValue::from_bytes(&out) else {
        return false;
    };
    // New on every call: not for HPACK's tables (see `deadline::grpc_timeout_header`).
    value.set_sensitive(true);
    headers.insert(TRACEPARENT, value);
    // A trace state the caller sent belongs to its own trace, not to this one.
    headers.remove(TRACESTATE);
    true
}

/// `bytes` as lower-case hex digits into `out`, two a byte.
fn put_hex(out: &mut [u8], bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 0xf)];
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::propagation::TextMapPropagator;
    use opentelemetry::trace::TraceContextExt;
    use opentelemetry_sdk::propagation::TraceContextPropagator;

    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> http::HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    http::HeaderValue::from_str(v).unwrap(),
                )
            })
            .collect()
    }

    /// What the SDK's propagator reads from `headers`.
    fn sdk(headers: &http::HeaderMap) -> SpanContext {
        let cx = TraceContextPropagator::new().extract(&super::super::HeaderExtractor(headers));
        cx.span().span_context().clone()
    }

    const UNSAMPLED: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";

    #[test]
    fn an_unsampled_parent_reads_as_the_sdk_reads_it() {
        let h = headers(&[("traceparent", UNSAMPLED)]);
        assert_eq!(read(&h), Incoming::Unsampled(sdk(&h)));
        // Flag bits past "sampled" are cleared, as the SDK clears them.
        let h = headers(&[(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-fe",
        )]);
        assert_eq!(read(&h), Incoming::Unsampled(sdk(&h)));
    }

    #[test]
    fn what_it_does_not_take_is_left_to_the_propagator() {
        assert_eq!(read(&headers(&[])), Incoming::Absent);
        for other in [
            // sampled
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            // upper case, zero ids, another version, bad digits, short, long, misplaced dashes
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-00",
            "00-00000000000000000000000000000000-b7ad6b7169203331-00",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-00",
            "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00",
            "00-0af7651916cd43dd8448eb211c8031zz-b7ad6b7169203331-00",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00-",
            "00-0af7651916cd43dd8448eb211c80319cb-7ad6b7169203331-00",
            "",
        ] {
            assert_eq!(
                read(&headers(&[("traceparent", other)])),
                Incoming::Other,
                "{other:?}"
            );
        }
        // A trace state goes on through the propagator, which keeps it.
        let h = headers(&[
            ("traceparent", UNSAMPLED),
            ("tracestate", "congo=t61rcWkgMzE"),
        ]);
        assert_eq!(read(&h), Incoming::Other);
    }

    #[test]
    fn what_it_writes_the_sdk_reads_back() {
        let h = headers(&[("traceparent", UNSAMPLED)]);
        let Incoming::Unsampled(context) = read(&h) else {
            panic!("unsampled")
        };
        // A trace state passed along from elsewhere does not go on with this trace.
        let mut out = headers(&[("tracestate", "congo=t61rcWkgMzE")]);
        assert!(write(&context, &mut out));
        assert!(!out.contains_key("tracestate"));
        assert_eq!(out["traceparent"], UNSAMPLED);
        assert!(out["traceparent"].is_sensitive());
        assert_eq!(sdk(&out), context);
        // An invalid context, or one with a trace state, is the propagator's to write.
        assert!(!write(&SpanContext::NONE, &mut http::HeaderMap::new()));
        let with_state = SpanContext::new(
            context.trace_id(),
            context.span_id(),
            context.trace_flags(),
            true,
            "a=b".parse().unwrap(),
        );
        assert!(!write(&with_state, &mut http::HeaderMap::new()));
    }
}
