//! Which operation a request is, in the terms of W3C Trace Context and of
//! the Logboek Dataverwerkingen (LDV) standard: the trace it belongs to,
//! its own span, and the calling party's operation it continues.
//!
//! Pure values: the gRPC edge makes one per request (`rpc::trace`), the
//! access record carries it (`tlog`), the LDV export writes it out.

use std::fmt;

/// A trace id: 16 bytes, never all zero (W3C Trace Context §3.2.2.3).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceId(pub [u8; 16]);

/// A span id: 8 bytes, never all zero (W3C Trace Context §3.2.2.4,
/// `parent-id`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpanId(pub [u8; 8]);

impl TraceId {
    /// A fresh random id (never all zero).
    pub fn random() -> TraceId {
        TraceId(nonzero_random())
    }
    /// Lower-case hex, 32 characters, as W3C and LDV write it.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl SpanId {
    /// A fresh random id (never all zero).
    pub fn random() -> SpanId {
        SpanId(nonzero_random())
    }
    /// Lower-case hex, 16 characters.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({})", self.hex())
    }
}
impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpanId({})", self.hex())
    }
}

fn nonzero_random<const N: usize>() -> [u8; N] {
    use ring::rand::{SecureRandom, SystemRandom};
    let rng = SystemRandom::new();
    loop {
        let mut b = [0u8; N];
        // The system generator failing is not recoverable here; a
        // non-random id would only weaken correlation, never privacy, but
        // ids must not repeat, so fail loudly.
        rng.fill(&mut b).expect("the system random generator works");
        if b.iter().any(|&x| x != 0) {
            return b;
        }
    }
}

/// The calling party's operation a request continues: LDV's
/// `foreign_operation` (trace id, span id, and the calling organisation
/// as a URI).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForeignOperation {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    /// The calling organisation, e.g. `urn:nl:oin:00000001234567890000`.
    pub entity: String,
}

/// One request's place in a trace: its trace id (the caller's when it sent
/// a valid `traceparent`, else fresh), its own fresh span id, and the
/// caller's operation when there was one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub foreign: Option<ForeignOperation>,
}

impl TraceContext {
    /// A new trace with a new span, continuing nothing: for work no caller
    /// asked for by a request (refused handshakes, summaries).
    pub fn fresh() -> TraceContext {
        TraceContext {
            trace_id: TraceId::random(),
            span_id: SpanId::random(),
            foreign: None,
        }
    }
}

/// The URI LDV's `foreign_operation.entity` names an organisation by: its
/// OIN as `urn:nl:oin:<OIN>` (the Dutch government's organisation
/// identification number, as in PKIoverheid certificates), or — for a
/// participant identified by a pinned key rather than an OIN — the node's
/// own participant id as `urn:sluis:participant:<id>`.
pub fn organisation_uri(oin: Option<&str>, participant: &str) -> String {
    match oin {
        Some(oin) => format!("urn:nl:oin:{oin}"),
        None => format!("urn:sluis:participant:{participant}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_are_nonzero_and_differ() {
        let (a, b) = (TraceId::random(), TraceId::random());
        assert_ne!(a, b);
        assert_ne!(a.0, [0; 16]);
        assert_eq!(a.hex().len(), 32);
        assert_eq!(SpanId::random().hex().len(), 16);
    }
}
