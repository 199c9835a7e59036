//! `bench hot-path`: micro-benchmarks of what one `GetCase` does besides TLS
//! and HTTP/2, so a profile of the whole gateway can be read against the
//! price of each part: the policy decision, consent evaluation, pseudonym
//! derivation, opening a sealed category, encoding the access record,
//! sealing the data subject id for the privacy officer (HPKE), the store's
//! reads, and the durable, group-committed audit append.
//!
//! ```sh
//! cargo run --release -p sluis-bench -- hot-path
//! ```
//! A small hand-rolled harness (no criterion: the dependency tree stays
//! lean): each figure is the median of 7 samples of a loop calibrated to
//! ~30 ms. Every figure is printed; nothing is asserted.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prost::Message;
use sluis::dev::sample::OWNER;
use sluis::gateway::officer::{OfficerKey, OfficerSecret};
use sluis::gateway::pseudonym::Pseudonymiser;
use sluis::gateway::vault::Keys;
use sluis::model::consent::{self, Consent, ConsentEvent, EventKind, Recipient};
use sluis::model::{Caller, Category, DEFAULT_PURPOSES, Role};
use sluis::policy::{DEFAULT_POLICY, Policy, Query};
use sluis::rpc::proto::v1 as pb;
use sluis::store::Store;
use sluis::tlog::{AccessRecord, AuditLog, Decision, LogSettings, SubjectIdType};

use crate::scale;

/// Median nanoseconds per call of `f`.
fn measure(mut f: impl FnMut()) -> f64 {
    for _ in 0..100 {
        f();
    }
    let mut iters = 1u64;
    loop {
        let t = Instant::now();
        for _ in 0..iters {
            f();
        }
        if t.elapsed() >= Duration::from_millis(30) || iters >= 1 << 30 {
            break;
        }
        iters *= 2;
    }
    let mut samples: Vec<f64> = (0..7)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iters {
                f();
            }
            t.elapsed().as_nanos() as f64 / iters as f64
        })
        .collect();
    samples.sort_by(|a, b| a.total_cmp(b));
    samples[3]
}

fn show(name: &str, ns: f64) {
    let (v, unit) = if ns >= 10_000.0 {
        (ns / 1000.0, "µs/op")
    } else {
        (ns, "ns/op")
    };
    println!(
        "{name:<58} {v:>10.1} {unit}   {:>12.0} /s",
        1e9 / ns.max(1e-9)
    );
}

fn bench(name: &str, f: impl FnMut()) {
    show(name, measure(f));
}

/// Like `bench`, for an async operation run on `rt`.
fn bench_async<F: Future<Output = ()>>(
    rt: &tokio::runtime::Runtime,
    name: &str,
    mut f: impl FnMut() -> F,
) {
    let ns = measure(|| rt.block_on(f()));
    show(name, ns);
}

fn purposes() -> Vec<String> {
    DEFAULT_PURPOSES.iter().map(|p| p.to_string()).collect()
}

fn caller() -> Caller {
    Caller {
        participant: "ngo-vluchtelingenwerk".into(),
        role: Role::Ngo,
        oin: Some("00000001000000000005".into()),
        node: None,
    }
}

fn consents(now: i64) -> Vec<Consent> {
    let consent =
        |id: &str, recipient: Recipient, categories: Vec<Category>, purposes: &[&str]| Consent {
            id: id.into(),
            case_id: "0190c4e2-7b1a-4c3e-9f00-1a2b3c4d5e6f".into(),
            recorded_by: "gemeente-utrecht".into(),
            recipients: vec![recipient],
            categories,
            purposes: purposes.iter().map(|p| p.to_string()).collect(),
            valid_from: now - 60_000,
            valid_until: None,
            evidence_ref: "DMS-1".into(),
            created_at: now - 60_000,
            events: vec![ConsentEvent {
                kind: EventKind::Given,
                at: now - 60_000,
                by: "gemeente-utrecht".into(),
                note: String::new(),
            }],
        };
    vec![
        consent(
            "0190c4e2-7b1a-4c3e-9f00-000000000001",
            Recipient::Participant("ngo-vluchtelingenwerk".into()),
            vec![Category::Identity, Category::Perspective, Category::Shelter],
            &["case_consultation", "shelter", "guidance"],
        ),
        consent(
            "0190c4e2-7b1a-4c3e-9f00-000000000002",
            Recipient::Role(Role::Dtv),
            vec![Category::Perspective],
            &["return"],
        ),
    ]
}

fn record() -> AccessRecord {
    let mut r = AccessRecord::new(
        uuid::Uuid::now_v7().to_string(),
        1_764_000_000_000,
        "GetCase",
    );
    r.caller = "ngo-vluchtelingenwerk".into();
    r.role = "ngo".into();
    r.case_id = Some("0190c4e2-7b1a-4c3e-9f00-1a2b3c4d5e6f".into());
    r.subject = Some("ps1.AAAAAAAAAAAAAAAAAAAAAAAAAAA".into());
    r.purpose = Some("case_consultation".into());
    r.asked = Category::ALL.to_vec();
    r.released = vec![Category::Identity, Category::Shelter, Category::Perspective];
    r.withheld = vec![
        (
            Category::ResidenceProcedure,
            "not_permitted_for_role_and_purpose".into(),
        ),
        (Category::Guidance, "no_consent".into()),
        (Category::Medical, "no_consent".into()),
        (
            Category::Safety,
            "not_permitted_for_role_and_purpose".into(),
        ),
        (
            Category::Outcome,
            "not_permitted_for_role_and_purpose".into(),
        ),
    ];
    r.decision = Decision::Partial;
    r.status = "OK".into();
    r.rules = vec!["ngo-guidance-consent".into()];
    r.consents = vec!["0190c4e2-7b1a-4c3e-9f00-000000000001".into()];
    r
}

fn policy_benches() {
    let purposes = purposes();
    let policy = Policy::from_text(DEFAULT_POLICY, "<default policy>", &purposes)
        .expect("the default policy loads");
    let mut k = 0usize;
    bench("policy: decide one category (answer remembered)", || {
        k = (k + 1) % Category::ALL.len();
        black_box(policy.decide(&Query {
            role: Role::Ngo,
            category: Category::ALL[k],
            purpose: "case_consultation",
            is_owner: false,
            actor_present: false,
        }));
    });
    // The first answer to each question comes from Cedar itself.
    let fresh: Vec<Policy> = (0..20)
        .map(|_| Policy::from_text(DEFAULT_POLICY, "<default policy>", &purposes).expect("loads"))
        .collect();
    let t = Instant::now();
    let mut n = 0u32;
    for p in &fresh {
        for c in Category::ALL {
            black_box(p.decide(&Query {
                role: Role::Ngo,
                category: c,
                purpose: "case_consultation",
                is_owner: false,
                actor_present: false,
            }));
            n += 1;
        }
    }
    show(
        "policy: decide one category, first time (Cedar evaluates)",
        t.elapsed().as_nanos() as f64 / f64::from(n),
    );
    let now = sluis::model::clock::now_millis();
    let consents = consents(now);
    let caller = caller();
    bench("consent: evaluate one category against 2 consents", || {
        k = (k + 1) % Category::ALL.len();
        black_box(consent::evaluate(
            &consents,
            &caller,
            Category::ALL[k],
            "case_consultation",
            now,
        ));
    });
}

fn crypto_benches(keys: &Keys) {
    let p = Pseudonymiser::new(keys.pseudonym_secret());
    let subject = [7u8; 16];
    bench(
        "pseudonym: derive for a recipient (HKDF + HMAC-SHA256)",
        || {
            black_box(p.pseudonym(black_box("ngo-vluchtelingenwerk"), &subject));
        },
    );
    bench("pseudonym: actor hash", || {
        black_box(p.actor_hash("gemeente-utrecht", black_box("mw-0042")));
    });
    let plain = pb::Shelter {
        location: "LVV Utrecht, locatie Oost".into(),
        since: "2026-04-01".into(),
        until: String::new(),
        notes: "shares a room".into(),
    }
    .encode_to_vec();
    let aad = b"sluis/v1/case/0190c4e2-7b1a-4c3e-9f00-1a2b3c4d5e6f/shelter";
    let sealed = keys.seal(aad, &plain).expect("seal");
    bench(
        &format!("vault: AEAD open (AES-256-GCM, {} B category)", plain.len()),
        || {
            black_box(keys.open(aad, black_box(&sealed)).expect("opens"));
        },
    );
    bench(
        &format!("vault: AEAD seal (AES-256-GCM, {} B category)", plain.len()),
        || {
            black_box(keys.seal(aad, black_box(&plain)).expect("seals"));
        },
    );
    let rec = record();
    let encoded = rec.encode();
    bench(
        &format!("audit: encode an access record ({} B)", encoded.len()),
        || {
            black_box(black_box(&rec).encode());
        },
    );
    bench("audit: Merkle leaf hash of the record", || {
        black_box(sluis::tlog::merkle::leaf_hash(black_box(&encoded)));
    });
    // The data subject id of the Logboek Dataverwerkingen fields, in every
    // record that names a subject: the case's id opened from the vault,
    // then sealed for the privacy officer (`Exchange::name_subject`): under
    // the key exported from the epoch's HPKE context (RFC 9180: X25519,
    // HKDF-SHA256, ChaCha20-Poly1305), one encapsulation per epoch of
    // `EPOCH_RECORDS` records, so the figure includes that share.
    let (_, officer) = OfficerSecret::generate();
    let officer = OfficerKey::parse(&officer).expect("officer key");
    let request_id = uuid::Uuid::now_v7().to_string();
    bench(
        "officer: seal of a V-number for one record (epoch key)",
        || {
            black_box(
                officer
                    .seal(
                        black_box(&request_id),
                        SubjectIdType::Vreemdelingennummer,
                        black_box("1234567890"),
                    )
                    .expect("seals"),
            );
        },
    );
    let id_aad = b"sluis/v1/case/0190c4e2-7b1a-4c3e-9f00-1a2b3c4d5e6f/subject_id";
    let sealed_id = keys.seal(id_aad, b"\x011234567890").expect("seal");
    bench(
        "officer: vault open + seal (the record's data subject id)",
        || {
            let plain = keys.open(id_aad, black_box(&sealed_id)).expect("opens");
            let value = std::str::from_utf8(&plain[1..]).expect("text");
            black_box(
                officer
                    .seal(&request_id, SubjectIdType::Vreemdelingennummer, value)
                    .expect("seals"),
            );
        },
    );
    bench("request id: UUIDv7 as text", || {
        black_box(uuid::Uuid::now_v7().to_string());
    });
}

/// A store holding one case, loaded as `bench scale` loads its cases: by
/// SQL on this run's own SQLite file (the gateway's write path records an
/// access for every write, so the benchmark does not seed through a store
/// method that would not). Returns the store, the case id and the owner's
/// pseudonym of it.
async fn store_with_case(dir: &std::path::Path, keys: &Keys) -> (Store, String, String) {
    let db = dir.join("hot.db");
    // Opening the store creates the schema the rows go into.
    let (store, _) = Store::open_sqlite(&db).await.expect("store opens");
    store.close().await;
    scale::load_cases(&db, keys, 0, 1, true)
        .await
        .expect("load one case");
    let (store, _) = Store::open_sqlite(&db).await.expect("store opens");
    let pseudonym =
        Pseudonymiser::new(keys.pseudonym_secret()).pseudonym(OWNER, &scale::subject_ref(0));
    let case_id = scale::case_id(0);
    // The reads below time hits, not misses.
    assert_eq!(
        store
            .resolve_pseudonym(OWNER, &pseudonym)
            .await
            .expect("read"),
        Some(case_id.clone()),
        "the loaded case resolves by its owner's pseudonym"
    );
    (store, case_id, pseudonym)
}

fn store_benches(rt: &tokio::runtime::Runtime, dir: &std::path::Path, keys: &Keys) {
    let (store, case_id, pseudonym) = rt.block_on(store_with_case(dir, keys));
    let (s, id, ps) = (&store, case_id.as_str(), pseudonym.as_str());
    bench_async(
        rt,
        "store: ping (SELECT 1: the floor of any query)",
        || async move {
            black_box(s.ping().await);
        },
    );
    bench_async(
        rt,
        "store: case_with_data (what GetCase reads)",
        || async move {
            black_box(s.case_with_data(id).await.expect("read"));
        },
    );
    bench_async(rt, "store: case_meta (one row by id)", || async move {
        black_box(s.case_meta(id).await.expect("read"));
    });
    bench_async(rt, "store: consents_for_case (2 consents)", || async move {
        black_box(s.consents_for_case(id).await.expect("read"));
    });
    bench_async(rt, "store: resolve_pseudonym", || async move {
        black_box(s.resolve_pseudonym(OWNER, ps).await.expect("read"));
    });
    rt.block_on(store.close());
}

/// Durable appends through the one group-commit writer with `concurrency`
/// callers waiting at once: per-append latency and appends per second.
async fn appends(dir: &std::path::Path, keys: Arc<Keys>, concurrency: usize, total: usize) {
    let (store, sink) = Store::open_sqlite(&dir.join(format!("append-{concurrency}.db")))
        .await
        .expect("store opens");
    let log = AuditLog::start(
        store.clone(),
        sink,
        keys,
        LogSettings {
            key_name: "bench".into(),
            origin: sluis::tlog::checkpoint::origin("bench"),
            checkpoint_interval: Duration::from_secs(1),
        },
    )
    .await
    .expect("log starts");
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..concurrency {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut i = t;
            while i < total {
                let r = record();
                let t0 = Instant::now();
                log.append(&r).await.expect("append");
                lat.push(t0.elapsed());
                i += concurrency;
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.expect("task"));
    }
    let secs = started.elapsed().as_secs_f64();
    lat.sort();
    let p = |q: f64| lat[((lat.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e3;
    println!(
        "{:<58} {:>10.0} /s     p50 {:.2} ms, p99 {:.2} ms",
        format!("audit: durable append, {concurrency} waiting at once"),
        total as f64 / secs,
        p(0.5),
        p(0.99)
    );
    drop(log);
    store.close().await;
}

/// Runs every micro-benchmark and prints its figure. Async operations are
/// timed as one `rt.block_on` each, so this runs outside the runtime.
pub fn run(rt: &tokio::runtime::Runtime) {
    let dir = tempfile::tempdir().expect("temp dir");
    Keys::create(&dir.path().join("keys")).expect("keys");
    let keys = Arc::new(Keys::load(&dir.path().join("keys")).expect("keys load"));
    println!(
        "sluis hot-path micro-benchmarks ({} CPUs)\n",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    policy_benches();
    crypto_benches(&keys);
    store_benches(rt, dir.path(), &keys);
    for (concurrency, total) in [(1, 300), (16, 5_000), (256, 50_000)] {
        rt.block_on(appends(dir.path(), keys.clone(), concurrency, total));
    }
}
