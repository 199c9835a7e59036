//! The node's metrics (OpenTelemetry instruments, exported with the spans).
//!
//! | name | kind | unit | attributes |
//! |---|---|---|---|
//! | `sluis.requests` | counter | `{request}` | `rpc.method`, `decision`, `caller.role`, `rpc.grpc.status` |
//! | `sluis.request.duration` | histogram | `s` | `rpc.method` |
//! | `sluis.audit.append.duration` | histogram | `s` | — (one group commit) |
//! | `sluis.audit.batch.size` | histogram | `{record}` | — |
//! | `sluis.tls.refused` | counter | `{connection}` | `reason` (no accepted certificate: `silent`, `not TLS`, `no client certificate`, ...) |
//! | `sluis.tls.refused.certificate` | counter | `{connection}` | `reason` (`expired`, `not_yet_valid`, `unknown_ca`, `revoked`, `revocation_unknown`, `bad_signature`, `wrong_purpose`, `not_accepted`, `invalid_certificate`, `no_client_certificate`, `tls_error`, `timeout`) |
//! | `sluis.audit.log.size` | gauge | `{entry}` | — |
//! | `sluis.audit.checkpoint.age` | gauge | `s` | — |
//! | `sluis.db.pool.connections` | gauge | `{connection}` | `state` (`used`, `idle`; PostgreSQL) |
//! | `sluis.witness.cosigned` | counter | `{checkpoint}` | `peer` (a node id) |
//! | `sluis.witness.alarms` | counter | `{alarm}` | `peer` (a node id), `kind` (`fork`, `rollback`) |
//!
//! Every attribute value is a method name, a decision, a role, a status or
//! a reason from a closed set: none carries request content. Without an
//! endpoint nothing is installed, and each call below is one relaxed load.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, MeterProvider as _};
use opentelemetry_sdk::metrics::SdkMeterProvider;

struct Instruments {
    requests: Counter<u64>,
    latency: Histogram<f64>,
    append: Histogram<f64>,
    batch: Histogram<u64>,
    refused: Counter<u64>,
    cosigned: Counter<u64>,
    alarms: Counter<u64>,
    meter: opentelemetry::metrics::Meter,
}

static ON: AtomicBool = AtomicBool::new(false);
static INSTRUMENTS: OnceLock<Instruments> = OnceLock::new();
static LOG_SIZE: AtomicU64 = AtomicU64::new(0);
/// When the newest checkpoint was signed, ms since the Unix epoch (0: none yet).
static CHECKPOINT_AT: AtomicI64 = AtomicI64::new(0);
/// Observable instruments whose callbacks a node registered.
static OBSERVERS: Mutex<Vec<Box<dyn std::any::Any + Send>>> = Mutex::new(Vec::new());

/// What a node's gauges read when they are collected.
pub(crate) struct NodeGauges {
    /// Connections refused without an accepted certificate so far, by reason.
    pub(crate) refused: Box<dyn Fn() -> Vec<(&'static str, u64)> + Send + Sync>,
    /// (used, idle) connections of the database pool; `None` where the
    /// store has no pool (SQLite's fixed connections).
    pub(crate) pool: Box<dyn Fn() -> Option<(u64, u64)> + Send + Sync>,
}

/// Whether spans and metrics are exported.
pub(crate) fn exporting() -> bool {
    ON.load(Ordering::Relaxed)
}

fn instruments() -> Option<&'static Instruments> {
    if exporting() { INSTRUMENTS.get() } else { None }
}

pub(super) fn install(provider: &SdkMeterProvider) {
    let meter = provider.meter("sluis");
    let instruments = INSTRUMENTS.get_or_init(|| Instruments {
        requests: meter
            .u64_counter("sluis.requests")
            .with_description("Requests answered, by method, decision, caller role and status")
            .with_unit("{request}")
            .build(),
        latency: meter
            .f64_histogram("sluis.request.duration")
            .with_description("From admission to the end of the request's work, record included")
            .with_unit("s")
            .build(),
        append: meter
            .f64_histogram("sluis.audit.append.duration")
            .with_description(
                "One group commit of the access log: records, tree, checkpoint, fsync",
            )
            .with_unit("s")
            .build(),
        batch: meter
            .u64_histogram("sluis.audit.batch.size")
            .with_description("Access records per group commit")
            .with_unit("{record}")
            .with_boundaries(vec![
                1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
            ])
            .build(),
        refused: meter
            .u64_counter("sluis.tls.refused.certificate")
            .with_description("TLS handshakes refused that presented a certificate")
            .with_unit("{connection}")
            .build(),
        cosigned: meter
            .u64_counter("sluis.witness.cosigned")
            .with_description("Peers' checkpoints this node checked consistent and cosigned")
            .with_unit("{checkpoint}")
            .build(),
        alarms: meter
            .u64_counter("sluis.witness.alarms")
            .with_description(
                "Peers whose log forked or went back, by peer and kind (evidence kept: `sluis audit witness-alarms`)",
            )
            .with_unit("{alarm}")
            .build(),
        meter: meter.clone(),
    });
    let log_size = instruments
        .meter
        .u64_observable_gauge("sluis.audit.log.size")
        .with_description("Entries in the access log")
        .with_unit("{entry}")
        .with_callback(|o| o.observe(LOG_SIZE.load(Ordering::Relaxed), &[]))
        .build();
    let age = instruments
        .meter
        .f64_observable_gauge("sluis.audit.checkpoint.age")
        .with_description("Time since the newest signed checkpoint")
        .with_unit("s")
        .with_callback(|o| {
            let at = CHECKPOINT_AT.load(Ordering::Relaxed);
            if at > 0 {
                let now = crate::model::clock::now_millis();
                o.observe((now - at).max(0) as f64 / 1000.0, &[]);
            }
        })
        .build();
    keep(Box::new(log_size));
    keep(Box::new(age));
    ON.store(true, Ordering::Relaxed);
}

pub(super) fn uninstall() {
    ON.store(false, Ordering::Relaxed);
}

fn keep(observer: Box<dyn std::any::Any + Send>) {
    if let Ok(mut v) = OBSERVERS.lock() {
        v.push(observer);
    }
}

/// Registers a node's gauges (refused handshakes by reason, pool use).
/// Nothing when not exporting.
pub(crate) fn observe_node(gauges: NodeGauges) {
    let Some(i) = instruments() else {
        return;
    };
    let NodeGauges { refused, pool } = gauges;
    let refused = i
        .meter
        .u64_observable_counter("sluis.tls.refused")
        .with_description("Connections closed without an accepted client certificate, by reason")
        .with_unit("{connection}")
        .with_callback(move |o| {
            for (reason, n) in refused() {
                o.observe(n, &[KeyValue::new("reason", reason)]);
            }
        })
        .build();
    let pool = i
        .meter
        .u64_observable_gauge("sluis.db.pool.connections")
        .with_description("Database pool connections by state")
        .with_unit("{connection}")
        .with_callback(move |o| {
            if let Some((used, idle)) = pool() {
                o.observe(used, &[KeyValue::new("state", "used")]);
                o.observe(idle, &[KeyValue::new("state", "idle")]);
            }
        })
        .build();
    keep(Box::new(refused));
    keep(Box::new(pool));
}

/// One request's end (see [`super::Request::end`]).
pub(super) fn request(
    method: &str,
    decision: &'static str,
    role: &str,
    status: &'static str,
    latency: Duration,
) {
    let Some(i) = instruments() else {
        return;
    };
    let method = KeyValue::new("rpc.method", method.to_string());
    i.latency
        .record(latency.as_secs_f64(), std::slice::from_ref(&method));
    i.requests.add(
        1,
        &[
            method,
            KeyValue::new("decision", decision),
            KeyValue::new("caller.role", role.to_string()),
            KeyValue::new("rpc.grpc.status", status),
        ],
    );
}

/// One group commit of the access log: how long it took and how many
/// records it held; `log_size` the log's entries after it.
pub(crate) fn audit_appended(took: Duration, records: usize, log_size: u64) {
    LOG_SIZE.store(log_size, Ordering::Relaxed);
    let Some(i) = instruments() else {
        return;
    };
    i.append.record(took.as_secs_f64(), &[]);
    i.batch.record(records as u64, &[]);
}

/// The log as its writer found it at start: `size` entries, the newest
/// checkpoint signed at `checkpoint_at` (ms since the Unix epoch), if any.
pub(crate) fn log_opened(size: u64, checkpoint_at: Option<i64>) {
    LOG_SIZE.store(size, Ordering::Relaxed);
    CHECKPOINT_AT.store(checkpoint_at.unwrap_or(0), Ordering::Relaxed);
}

/// A checkpoint was signed and stored now.
pub(crate) fn checkpoint_signed() {
    CHECKPOINT_AT.store(crate::model::clock::now_millis(), Ordering::Relaxed);
}

/// A peer's checkpoint was cosigned. `peer` is a node id (a machine of
/// the network, never a person).
pub(crate) fn witness_cosigned(peer: &str) {
    if let Some(i) = instruments() {
        i.cosigned
            .add(1, &[KeyValue::new("peer", peer.to_string())]);
    }
}

/// A peer's log forked or went back (`kind`: `fork`, `rollback`).
pub(crate) fn witness_alarm(peer: &str, kind: &'static str) {
    if let Some(i) = instruments() {
        i.alarms.add(
            1,
            &[
                KeyValue::new("peer", peer.to_string()),
                KeyValue::new("kind", kind),
            ],
        );
    }
}

/// A TLS handshake that presented a certificate was refused, for
/// `reason` (one of a closed set: `net::tls::refusal_reason`).
pub(crate) fn certificate_refused(reason: &'static str) {
    if let Some(i) = instruments() {
        i.refused.add(1, &[KeyValue::new("reason", reason)]);
    }
}
