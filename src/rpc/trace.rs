//! A request's trace context, made once at the edge: W3C Trace Context's
//! `traceparent` header (W3C Recommendation "Trace Context", §3.2) read
//! into a [`TraceContext`].
//!
//! [`at_edge`] is the one place a request's trace and span ids come from;
//! the access record (Logboek Dataverwerkingen `trace_id`, `span_id`,
//! `foreign_operation`) takes them from here. A tracing layer that makes
//! its own span per request reads the ids from that span instead, in this
//! function alone, so that record and span carry the same ids.

use crate::model::trace::{ForeignOperation, SpanId, TraceContext, TraceId, organisation_uri};
use crate::net::identity::Peer;

/// The header W3C Trace Context names (§3.2).
pub(crate) const TRACEPARENT: &str = "traceparent";

/// The trace context of a request with `headers` from `peer`: when the
/// caller sent a valid `traceparent`, its trace continues (same trace id)
/// and the caller's span becomes the `foreign_operation`, with the calling
/// organisation as a URI (`urn:nl:oin:<OIN>`); otherwise — no header, or
/// one that does not parse, which W3C says to ignore (§3.2.2, "If the
/// vendor failed to parse traceparent, it MUST NOT attempt to continue the
/// trace") — a fresh trace. The request's own span id is always fresh.
///
/// `span`: the (trace id, span id) of the request's OpenTelemetry span when
/// telemetry exports one (`telemetry::Request::ids`); the record then takes
/// those, so that the record and the exported span name each other. The
/// span continues the same `traceparent`, so its trace id is the caller's.
pub(crate) fn at_edge(
    headers: &http::HeaderMap,
    peer: &Peer,
    span: Option<([u8; 16], [u8; 8])>,
) -> TraceContext {
    let mut cx = from_headers(headers, peer);
    if let Some((trace_id, span_id)) = span {
        cx.trace_id = TraceId(trace_id);
        cx.span_id = SpanId(span_id);
    }
    cx
}

fn from_headers(headers: &http::HeaderMap, peer: &Peer) -> TraceContext {
    let parent = headers
        .get(TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_traceparent);
    let Some((trace_id, span_id)) = parent else {
        return TraceContext::fresh();
    };
    let entity = match peer {
        Peer::Registered(c) => organisation_uri(c.oin.as_deref(), &c.participant),
        // Not reached by a request that is served (unregistered callers are
        // refused), but its refusal is recorded too.
        Peer::Unregistered { fingerprint } => format!("urn:sluis:certificate:{fingerprint}"),
    };
    TraceContext {
        trace_id,
        span_id: SpanId::random(),
        foreign: Some(ForeignOperation {
            trace_id,
            span_id,
            entity,
        }),
    }
}

/// Parses `traceparent` (§3.2.2): `version "-" trace-id "-" parent-id "-"
/// trace-flags`, lower-case hex. Version `00` must be exactly 55
/// characters; a higher version (not `ff`) may carry more fields after a
/// `-`, which are ignored (§3.2.4, "Versioning of traceparent"). An
/// all-zero trace id or parent id is invalid.
pub(crate) fn parse_traceparent(value: &str) -> Option<(TraceId, SpanId)> {
    let v = value.trim_matches(|c| c == ' ' || c == '\t');
    let b = v.as_bytes();
    if b.len() < 55 {
        return None;
    }
    let lower_hex = |s: &[u8]| s.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'));
    let version = &b[0..2];
    if !lower_hex(version) || version == b"ff" {
        return None;
    }
    if b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
        return None;
    }
    let (trace, parent, flags) = (&b[3..35], &b[36..52], &b[53..55]);
    if !lower_hex(trace) || !lower_hex(parent) || !lower_hex(flags) {
        return None;
    }
    if version == b"00" {
        if b.len() != 55 {
            return None;
        }
    } else if b.len() > 55 && b[55] != b'-' {
        return None;
    }
    let mut t = [0u8; 16];
    let mut p = [0u8; 8];
    hex::decode_to_slice(trace, &mut t).ok()?;
    hex::decode_to_slice(parent, &mut p).ok()?;
    if t == [0; 16] || p == [0; 8] {
        return None;
    }
    Some((TraceId(t), SpanId(p)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_traceparents_parse() {
        // The example of W3C Trace Context §3.2.2.
        let (t, p) =
            parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(t.hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(p.hex(), "00f067aa0ba902b7");
        // A future version may append fields.
        assert!(
            parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what")
                .is_some()
        );
    }

    #[test]
    fn invalid_traceparents_are_ignored() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
        ] {
            assert!(parse_traceparent(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn the_edge_continues_a_valid_trace_and_starts_one_otherwise() {
        let caller = crate::model::Caller {
            participant: "dtv".into(),
            role: crate::model::Role::Dtv,
            oin: Some("00000001003214345000".into()),
            node: None,
        };
        let peer = Peer::Registered(caller);
        let mut h = http::HeaderMap::new();
        h.insert(
            TRACEPARENT,
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                .parse()
                .unwrap(),
        );
        let t = at_edge(&h, &peer, None);
        assert_eq!(t.trace_id.hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        let f = t.foreign.expect("the caller's operation");
        assert_eq!(f.span_id.hex(), "00f067aa0ba902b7");
        assert_eq!(f.entity, "urn:nl:oin:00000001003214345000");
        assert_ne!(t.span_id, f.span_id);
        h.insert(TRACEPARENT, "garbage".parse().unwrap());
        let fresh = at_edge(&h, &peer, None);
        assert!(fresh.foreign.is_none());
        assert_ne!(fresh.trace_id.hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
    }
}
