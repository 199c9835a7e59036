//! `StatisticsService` end to end: a real node over mTLS with a generated
//! population of 1,600 cases in three municipalities' worth of owners,
//! asked by the monitor and by a municipality. Every answer is checked
//! against the truth (no figure below the threshold; every count within the
//! rounding bound of the true one), and all answers about one quarter are
//! attacked together — the node total, the table per municipality, a
//! municipality's own figures, a two-way table: every overlap between them
//! is a difference an attacker can take — by a linear program per cell
//! shown as "< 10". Every request, refused ones too, is in the access log.

mod common;
mod stats_attack;

use std::collections::BTreeMap;

use common::*;
use sluis::config::Participant;
use sluis::net::pki::ClientCertSpec;
use sluis::rpc::Clients;
use sluis::rpc::proto::v1 as pb;
use sluis::stats::{Population, months_between};
use stats_attack::{Attack, Model, Tree};
use tonic::Code;

const TILBURG: &str = "gemeente-tilburg";
const TILBURG_OIN: &str = "00000001000000000011";
const CASES: usize = 1600;

/// One generated case: who owns it and its categories, as keys of the
/// statistics' classifications.
#[derive(Clone, Debug)]
struct Truth {
    owner: &'static str,
    intake: time::Date,
    intake_scenario: Option<pb::PerspectiveKind>,
    outcome: Option<(pb::OutcomeKind, time::Date)>,
}

fn date(s: &str) -> time::Date {
    sluis::model::outcome::parse_date(s).unwrap()
}

fn generate(i: usize) -> Truth {
    // A fixed, skewed mix: Utrecht twice Tilburg, a few NGO-registered.
    let h = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 17;
    let owner = match h % 20 {
        0 => NGO,
        1..=6 => TILBURG,
        _ => GEMEENTE,
    };
    let intake = date("2025-01-01") + time::Duration::days((h / 20 % 365) as i64);
    use pb::PerspectiveKind as P;
    let intake_scenario = match h / 7300 % 20 {
        0 => None,
        1 => Some(P::OnwardMigration),
        2..=4 => Some(P::Return),
        5..=11 => Some(P::Legalisation),
        _ => Some(P::Undetermined),
    };
    use pb::OutcomeKind as K;
    let outcome = match h / 146_000 % 20 {
        0..=4 => Some(K::Legalisation),
        5..=7 => Some(K::DepartureIndependent),
        8 => Some(K::DepartureForced),
        9 => Some(K::OnwardMigration),
        10..=11 => Some(K::DepartureUnsupervised),
        12..=14 => Some(K::OutOfSight),
        _ => None,
    }
    .map(|k| {
        let days = [20, 60, 120, 200, 300][(h / 2_920_000 % 5) as usize];
        (k, intake + time::Duration::days(days))
    });
    Truth {
        owner,
        intake,
        intake_scenario,
        outcome,
    }
}

fn case_data(i: usize, t: &Truth) -> pb::CaseData {
    let mut d = full_case(
        &format!("Gegenereerd Persoon {i:05}"),
        &format!("{:010}", 7_000_000_000u64 + i as u64),
        "",
    );
    d.perspective = Some(pb::Perspective {
        kind: t
            .intake_scenario
            .unwrap_or(pb::PerspectiveKind::Unspecified) as i32,
        intake_scenario: t
            .intake_scenario
            .unwrap_or(pb::PerspectiveKind::Unspecified) as i32,
        intake_date: t.intake.to_string(),
        ..Default::default()
    });
    d.outcome = t.outcome.map(|(k, day)| pb::Outcome {
        outcome_kind: k as i32,
        date: day.to_string(),
        ..Default::default()
    });
    d
}

async fn start() -> (TestNode, Clients) {
    let node = TestNode::start_with(|c| {
        c.participants.push(Participant {
            id: TILBURG.into(),
            name: "Gemeente Tilburg".into(),
            role: "municipality".into(),
            oin: Some(TILBURG_OIN.into()),
            spki_sha256: None,
        })
    })
    .await;
    let cert = node.issue(&ClientCertSpec::new("Gemeente Tilburg", Some(TILBURG_OIN)));
    let tilburg = node
        .client_with(Some((cert.cert_pem, cert.key_pem)))
        .await
        .unwrap();
    (node, tilburg)
}

async fn register_all(node: &TestNode, tilburg: &Clients) -> Vec<Truth> {
    let truths: Vec<Truth> = (0..CASES).map(generate).collect();
    let utrecht = node.client(GEMEENTE).await;
    let ngo = node.client(NGO).await;
    let mut tasks = Vec::new();
    for lane in 0..8 {
        let (mut u, mut t, mut n) = (utrecht.clone(), tilburg.clone(), ngo.clone());
        let truths = truths.clone();
        tasks.push(tokio::spawn(async move {
            for i in (lane..CASES).step_by(8) {
                let c = match truths[i].owner {
                    GEMEENTE => &mut u,
                    TILBURG => &mut t,
                    _ => &mut n,
                };
                c.cases
                    .register_case(with_actor(pb::RegisterCaseRequest {
                        request_id: String::new(),
                        data: Some(case_data(i, &truths[i])),
                    }))
                    .await
                    .expect("register");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    truths
}

fn ask(
    table: pb::StatisticsTable,
    quarter: u32,
    by_municipality: bool,
) -> pb::GetStatisticsRequest {
    pb::GetStatisticsRequest {
        table: table as i32,
        year: 2025,
        quarter,
        by_municipality,
        purpose: "monitoring".into(),
        network: false,
    }
}

/// The classification trees as the answers describe them (labels and their
/// parts; a subtotal that counts unlisted cases gets an unknown residual).
#[derive(Default)]
struct Shapes(BTreeMap<String, BTreeMap<String, (Vec<String>, bool)>>);

impl Shapes {
    fn learn(&mut self, a: &pb::StatisticsAxis) {
        if a.dimension.is_empty() {
            return;
        }
        let d = self.0.entry(a.dimension.clone()).or_default();
        for l in &a.labels {
            d.insert(l.key.clone(), (l.parts.clone(), l.includes_unlisted));
        }
    }

    fn tree(&self, dim: &str) -> Tree {
        let labels = &self.0[dim];
        let mut keys = vec!["total".to_string()];
        let mut parent = vec![None];
        // Breadth first from the total.
        let mut i = 0;
        while i < keys.len() {
            let (parts, unlisted) = labels.get(&keys[i]).cloned().unwrap_or_default();
            for p in parts {
                keys.push(p);
                parent.push(Some(i));
            }
            if unlisted {
                keys.push(format!("unlisted-in-{}", keys[i]));
                parent.push(Some(i));
            }
            i += 1;
        }
        Tree { keys, parent }
    }
}

fn outcome_key(k: pb::OutcomeKind) -> &'static str {
    use pb::OutcomeKind as K;
    match k {
        K::DepartureIndependent => "departure_independent",
        K::DepartureForced => "departure_forced",
        K::DepartureUnsupervised => "departure_unsupervised",
        K::Legalisation => "legalisation",
        K::OnwardMigration => "onward_migration",
        K::OutOfSight => "out_of_sight",
        K::Unspecified => "",
    }
}

fn scenario_key(s: Option<pb::PerspectiveKind>) -> String {
    match s {
        Some(pb::PerspectiveKind::Undetermined) => "undetermined".into(),
        Some(pb::PerspectiveKind::Return) => "return".into(),
        Some(pb::PerspectiveKind::OnwardMigration) => "onward_migration".into(),
        Some(pb::PerspectiveKind::Legalisation) => "legalisation".into(),
        _ => "unlisted-in-total".into(),
    }
}

fn time_key(months: u32) -> &'static str {
    match months {
        0..3 => "under_3_months",
        3..6 => "3_to_6_months",
        6..12 => "6_to_12_months",
        12..24 => "12_to_24_months",
        _ => "24_months_or_more",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protected_tables_for_the_monitor_and_a_municipality() {
    let (node, tilburg_client) = start().await;
    let truths = register_all(&node, &tilburg_client).await;
    let mut monitor = node.client("monitor-jenv").await;
    let mut tilburg = tilburg_client.clone();
    let log_before = node.log_len().await;
    let quarter = 3;
    let q = sluis::stats::Quarter::new(2025, quarter as u8).unwrap();
    use pb::StatisticsTable as T;

    // The answers an attacker collects about 2025 Q3's outcomes.
    let mut answers: Vec<pb::GetStatisticsResponse> = Vec::new();
    let started = std::time::Instant::now();
    for (table, by) in [
        (T::DurableSolutions, false),
        (T::Outcomes, true),
        (T::IntakeVsOutcome, true),
        (T::TimeToOutcome, true),
        (T::Outcomes, false),
    ] {
        answers.push(
            monitor
                .stats
                .get_statistics(ask(table, quarter, by))
                .await
                .expect("the monitor gets its table")
                .into_inner(),
        );
    }
    answers.push(
        tilburg
            .stats
            .get_statistics(with_actor(ask(T::IntakeVsOutcome, quarter, false)))
            .await
            .expect("a municipality gets its own figures")
            .into_inner(),
    );
    let requests = answers.len();
    println!(
        "{requests} statistics requests over {CASES} cases: {:?}",
        started.elapsed()
    );
    println!("{}", answers[0].text);
    assert!(
        answers[0]
            .text
            .contains("Durable solutions reached, 2025 Q3")
    );
    assert_eq!(answers[5].scope, "the cases of Gemeente Tilburg");

    // The classifications, as the answers describe them.
    let mut shapes = Shapes::default();
    for a in &answers {
        for axis in [&a.rows, &a.columns, &a.blocks].into_iter().flatten() {
            shapes.learn(axis);
        }
    }
    let dims: Vec<&str> = vec![
        "municipality",
        "intake_scenario",
        "outcome",
        "time_to_outcome",
    ];
    let model = Model {
        dims: dims.iter().map(|d| shapes.tree(d)).collect(),
        tables: Population::Outcomes
            .tables()
            .iter()
            .map(|t| {
                t.iter()
                    .map(|d| dims.iter().position(|x| *x == d.as_str()).unwrap())
                    .collect()
            })
            .collect(),
    };
    // Each case's category per classification (its leaf).
    let leaves = |t: &Truth| -> Option<Vec<usize>> {
        let (kind, day) = t.outcome?;
        if !q.contains(day) {
            return None;
        }
        let m = match t.owner {
            NGO => "unlisted-in-total".to_string(),
            o => o.to_string(),
        };
        Some(vec![
            model.dims[0].node(&m),
            model.dims[1].node(&scenario_key(t.intake_scenario)),
            model.dims[2].node(outcome_key(kind)),
            model.dims[3].node(time_key(months_between(t.intake, day))),
        ])
    };
    let in_quarter: Vec<Vec<usize>> = truths.iter().filter_map(leaves).collect();
    assert!(
        in_quarter.len() > 100,
        "{} outcomes in the quarter",
        in_quarter.len()
    );

    let mut attack = Attack::new(&model);
    let mut small_cells = Vec::new();
    let (mut counts, mut small, mut suppressed) = (0, 0, 0);
    for a in &answers {
        let d = a.disclosure.unwrap();
        assert_eq!((d.threshold, d.protection, d.rounding_base), (10, 5, 5));
        let axes = [
            a.blocks.clone().unwrap(),
            a.rows.clone().unwrap(),
            a.columns.clone().unwrap(),
        ];
        let (nb, nr, nc) = (
            axes[0].labels.len(),
            axes[1].labels.len(),
            axes[2].labels.len(),
        );
        assert_eq!(a.figures.len(), nb * nr * nc);
        for b in 0..nb {
            for r in 0..nr {
                for c in 0..nc {
                    let mut cell = vec![0; dims.len()];
                    for (axis, i) in axes.iter().zip([b, r, c]) {
                        if let Some(j) = dims.iter().position(|d| *d == axis.dimension) {
                            cell[j] = model.dims[j].node(&axis.labels[i].key);
                        }
                    }
                    let truth = in_quarter
                        .iter()
                        .filter(|l| (0..dims.len()).all(|j| model.dims[j].under(l[j], cell[j])))
                        .count() as u64;
                    let f = &a.figures[(b * nr + r) * nc + c];
                    use pb::statistics_figure::Kind;
                    match Kind::try_from(f.kind).unwrap() {
                        Kind::Count => {
                            counts += 1;
                            assert!(f.count >= 10, "published below the threshold");
                            assert!(f.count.abs_diff(truth) <= 2, "{} for {truth}", f.count);
                            assert_eq!(f.shown, f.count.to_string());
                            attack.learn(cell, f.count as f64 - 2.0, f.count as f64 + 2.0);
                        }
                        Kind::BelowThreshold => {
                            small += 1;
                            assert!(truth < 10);
                            assert_eq!(f.shown, "< 10");
                            attack.learn(cell.clone(), 0.0, 9.0);
                            small_cells.push((cell, truth));
                        }
                        Kind::Suppressed => {
                            suppressed += 1;
                            assert_eq!(f.shown, "x");
                            if cell[0] != 0 {
                                // A municipality's "x" hides at least 10.
                                assert!(truth >= 10);
                                attack.learn(cell, 10.0, f64::INFINITY);
                            } else {
                                // A node total's may hide a small count one
                                // municipality holds most of: it is
                                // protected as one.
                                attack.learn(cell.clone(), 0.0, f64::INFINITY);
                                if truth < 10 {
                                    small_cells.push((cell, truth));
                                }
                            }
                        }
                        Kind::Unspecified => panic!("a figure without a kind"),
                    }
                }
            }
        }
    }
    println!("{counts} counts, {small} cells < 10, {suppressed} suppressed besides");
    assert!(small > 10 && counts > 10);
    small_cells.sort();
    small_cells.dedup();
    for (cell, truth) in &small_cells {
        let (lo, hi) = attack.interval(cell);
        assert!(lo <= *truth as f64 + 1e-6 && *truth as f64 <= hi + 1e-6);
        assert!(hi - lo >= 5.0 - 1e-6, "{cell:?} narrowed to [{lo}, {hi}]");
    }

    // Every request is in the access log, with the table and no count.
    let rows: Vec<_> = node
        .log()
        .await
        .into_iter()
        .skip(log_before as usize)
        .filter(|r| r.method == "GetStatistics")
        .collect();
    assert_eq!(rows.len(), requests);
    for r in &rows {
        let rec = sluis::tlog::AccessRecord::decode(&r.record).unwrap();
        assert_eq!(rec.decision.as_str(), "allowed");
        assert_eq!(rec.purpose.as_deref(), Some("monitoring"));
        assert!(rec.rules.contains(&"statistics-monitoring".to_string()));
        assert!(
            rec.released.is_empty(),
            "no category of any case is released"
        );
        assert!(rec.case_id.is_none() && rec.subject.is_none());
        assert!(rec.detail.starts_with("table "), "{}", rec.detail);
        assert!(rec.detail.contains("2025 Q3"), "{}", rec.detail);
    }
    assert!(rows.iter().any(|r| r.caller == TILBURG));
}

async fn refused(c: &mut Clients, req: pb::GetStatisticsRequest, code: Code, says: &str) {
    let e = c.stats.get_statistics(req).await.expect_err("refused");
    assert_eq!(e.code(), code, "{}", e.message());
    assert!(e.message().contains(says), "{}", e.message());
    assert!(e.metadata().get("x-request-id").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_statistics_requests_are_recorded_and_say_what_to_fix() {
    let (node, mut tilburg) = start().await;
    let mut monitor = node.client("monitor-jenv").await;
    let mut dtv = node.client("dtv").await;
    let before = node.log_len().await;
    use pb::StatisticsTable as T;
    let mut no_purpose = ask(T::Outcomes, 1, false);
    no_purpose.purpose.clear();
    refused(
        &mut monitor,
        no_purpose,
        Code::InvalidArgument,
        "purpose is required",
    )
    .await;
    refused(
        &mut monitor,
        ask(T::Unspecified, 1, false),
        Code::InvalidArgument,
        "table must be",
    )
    .await;
    refused(
        &mut monitor,
        ask(T::Outcomes, 5, false),
        Code::InvalidArgument,
        "quarter from 1 to 4",
    )
    .await;
    let mut old = ask(T::Outcomes, 1, false);
    old.year = 2018;
    refused(&mut monitor, old, Code::InvalidArgument, "year must be").await;
    let mut far = ask(T::Outcomes, 1, false);
    far.year = 4_000_000_000;
    refused(&mut monitor, far, Code::InvalidArgument, "year must be").await;
    let mut current = ask(T::Outcomes, 1, false);
    current.year = 9999;
    refused(
        &mut monitor,
        current,
        Code::FailedPrecondition,
        "has not ended",
    )
    .await;
    let mut other = ask(T::Outcomes, 1, false);
    other.purpose = "return".into();
    refused(&mut monitor, other, Code::PermissionDenied, "legal basis").await;
    refused(
        &mut dtv,
        ask(T::Outcomes, 1, false),
        Code::PermissionDenied,
        "legal basis",
    )
    .await;
    refused(
        &mut tilburg,
        ask(T::Outcomes, 1, true),
        Code::InvalidArgument,
        "by_municipality",
    )
    .await;
    let rows: Vec<_> = node
        .log()
        .await
        .into_iter()
        .skip(before as usize)
        .filter(|r| r.method == "GetStatistics")
        .collect();
    assert_eq!(rows.len(), 9, "every refusal is recorded");
    assert!(rows.iter().all(|r| r.decision != "allowed"));
    // Each refusal's record names what was asked, besides why it was
    // refused: the officer sees which table and quarter were wanted.
    let details: Vec<String> = rows
        .iter()
        .map(|r| sluis::tlog::AccessRecord::decode(&r.record).unwrap().detail)
        .collect();
    for (detail, asked) in details.iter().zip([
        "asked: table outcomes, 2025 Q1",
        "asked: table unspecified (0), 2025 Q1",
        "asked: table outcomes, 2025 quarter 5",
        "asked: table outcomes, 2018 Q1",
        "asked: table outcomes, 4000000000 Q1",
        "asked: table outcomes, 9999 Q1",
        "asked: table outcomes, 2025 Q1",
        "asked: table outcomes, 2025 Q1",
        "asked: table outcomes, 2025 Q1, per municipality",
    ]) {
        assert!(detail.contains(asked), "{asked} in {detail}");
    }
    assert!(details[5].contains("has not ended"), "{}", details[5]);
}

/// `sluis stats` as the monitor would run it: a table as text, as CSV, and
/// a refusal that says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sluis_stats_prints_the_protected_table() {
    let node = TestNode::start().await;
    let pki = node.pki();
    let addr = node.node.local_addr.to_string();
    let run = move |extra: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_sluis"));
        cmd.arg("stats")
            .arg("--node")
            .arg(&addr)
            .arg("--ca")
            .arg(pki.join("ca.pem"))
            .arg("--cert")
            .arg(pki.join("clients/monitor-jenv.pem"))
            .arg("--key")
            .arg(pki.join("clients/monitor-jenv.key"))
            .args(["--year", "2025", "--quarter", "2"])
            .args(extra);
        cmd.output().unwrap()
    };
    let out = tokio::task::spawn_blocking(move || {
        (
            run(&["--table", "outcomes"]),
            run(&["--table", "inflow", "--format", "csv"]),
            run(&["--table", "outcomes", "--purpose", "return"]),
            run(&["--table", "inflow", "--format", "json"]),
        )
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.0.stdout);
    assert!(
        out.0.status.success(),
        "{}",
        String::from_utf8_lossy(&out.0.stderr)
    );
    assert!(
        text.contains("Outflow: outcomes by kind, 2025 Q2"),
        "{text}"
    );
    assert!(
        text.contains("< 10"),
        "an empty node shows only small cells:\n{text}"
    );
    assert!(String::from_utf8_lossy(&out.0.stderr).contains("request id"));
    let csv = String::from_utf8_lossy(&out.1.stdout);
    assert!(
        csv.starts_with("table,quarter,block,row,column,figure\n"),
        "{csv}"
    );
    assert!(
        csv.contains("inflow,2025 Q2,,legalisation,total,< 10"),
        "{csv}"
    );
    assert!(!out.2.status.success());
    assert!(String::from_utf8_lossy(&out.2.stderr).contains("PermissionDenied"));
    // Which release was handed out, and as of when: the officer finds the
    // same SHA-256 in the access record.
    let stderr = String::from_utf8_lossy(&out.0.stderr);
    let sha = stderr
        .lines()
        .find_map(|l| l.strip_prefix("release sha256 "))
        .unwrap_or_else(|| panic!("the release's SHA-256 printed: {stderr}"));
    assert_eq!(sha.len(), 64, "{stderr}");
    assert!(stderr.contains("as of 20"), "{stderr}");
    let id = stderr
        .lines()
        .find_map(|l| l.strip_prefix("request id "))
        .and_then(|l| l.split(' ').next())
        .unwrap()
        .to_string();
    assert!(
        record_of(&node, &id)
            .await
            .detail
            .contains(&format!("release sha256 {sha}"))
    );
    let json: serde_json::Value = serde_json::from_slice(&out.3.stdout).unwrap();
    assert_eq!(json["release_sha256"].as_str().unwrap().len(), 64, "{json}");
    assert!(json["as_of"].as_str().unwrap().starts_with("20"), "{json}");
    // The legend says what an "x" can be: also a small node total that one
    // municipality holds most of.
    assert!(text.contains("node total"), "{text}");
}

/// A municipality's own table says whose cases it counts once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_municipality_s_table_names_it_once() {
    let node = TestNode::start().await;
    let mut utrecht = node.client(GEMEENTE).await;
    let own = utrecht
        .stats
        .get_statistics(with_actor(ask(pb::StatisticsTable::Inflow, 1, false)))
        .await
        .unwrap()
        .into_inner();
    assert!(!own.text.contains("cases of the cases of"), "{}", own.text);
    assert!(
        own.text.lines().nth(1).unwrap().starts_with("cases of "),
        "{}",
        own.text
    );
}

/// A quarter so sparse that no pattern of suppressed cells protects its
/// outcome tables against a municipality that knows its own cases (21
/// outcomes over two municipalities and an NGO, found by search) is
/// answered with every figure "x" — then "x" tells nothing, not even that
/// a figure is at least 10 — rather than refused: that answer is safe.
/// It is kept as the quarter's release like any other, so asking again is
/// the same answer, not a new computation; the record names the cells.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sparse_quarter_is_answered_with_every_figure_suppressed() {
    let (node, mut tilburg) = start().await;
    let mut utrecht = node.client(GEMEENTE).await;
    let mut ngo = node.client(NGO).await;
    let mut monitor = node.client("monitor-jenv").await;
    use pb::OutcomeKind as K;
    use pb::PerspectiveKind as P;
    // (owner: t(ilburg), u(trecht) or n(go); scenario; outcome; intake)
    let sparse = [
        ('t', P::Legalisation, K::Legalisation, "2024-10-10"),
        ('t', P::Return, K::DepartureForced, "2024-11-10"),
        ('u', P::Legalisation, K::OutOfSight, "2024-11-10"),
        ('u', P::Return, K::DepartureUnsupervised, "2024-11-10"),
        ('u', P::Undetermined, K::Legalisation, "2024-10-10"),
        (
            't',
            P::OnwardMigration,
            K::DepartureUnsupervised,
            "2024-10-10",
        ),
        ('t', P::OnwardMigration, K::DepartureForced, "2024-12-10"),
        ('n', P::OnwardMigration, K::Legalisation, "2024-10-10"),
        ('n', P::OnwardMigration, K::OutOfSight, "2024-12-10"),
        ('t', P::Return, K::DepartureForced, "2024-11-10"),
        ('n', P::Undetermined, K::OutOfSight, "2024-10-10"),
        ('n', P::Undetermined, K::DepartureIndependent, "2024-12-10"),
        ('u', P::Undetermined, K::DepartureForced, "2024-11-10"),
        ('u', P::OnwardMigration, K::DepartureForced, "2024-11-10"),
        ('u', P::Return, K::OutOfSight, "2024-10-10"),
        ('t', P::OnwardMigration, K::Legalisation, "2024-11-10"),
        ('u', P::Return, K::OutOfSight, "2024-12-10"),
        ('t', P::OnwardMigration, K::DepartureForced, "2024-11-10"),
        (
            't',
            P::OnwardMigration,
            K::DepartureIndependent,
            "2024-10-10",
        ),
        ('t', P::OnwardMigration, K::OutOfSight, "2024-10-10"),
        ('t', P::Legalisation, K::OutOfSight, "2024-12-10"),
    ];
    for (i, (owner, scenario, outcome, intake)) in sparse.into_iter().enumerate() {
        let c = match owner {
            't' => &mut tilburg,
            'u' => &mut utrecht,
            _ => &mut ngo,
        };
        let t = Truth {
            owner: GEMEENTE,
            intake: date(intake),
            intake_scenario: Some(scenario),
            outcome: Some((outcome, date("2025-02-10"))),
        };
        c.cases
            .register_case(with_actor(pb::RegisterCaseRequest {
                request_id: String::new(),
                data: Some(case_data(i, &t)),
            }))
            .await
            .expect("register");
    }
    use pb::StatisticsTable as T;
    use pb::statistics_figure::Kind;
    let first = monitor
        .stats
        .get_statistics(ask(T::Outcomes, 1, true))
        .await
        .expect("an answer with every figure suppressed, not a refusal");
    let first_id = request_id(&first);
    let first = first.into_inner();
    assert!(
        first
            .figures
            .iter()
            .all(|f| f.kind == Kind::Suppressed as i32 && f.shown == "x"),
        "{}",
        first.text
    );
    assert!(first.text.contains("every figure"), "{}", first.text);
    assert_eq!(first.release_sha256.len(), 64);
    let rec = record_of(&node, &first_id).await;
    assert_eq!(rec.decision.as_str(), "allowed");
    assert!(rec.detail.contains("cells x besides ("), "{}", rec.detail);
    // Asked again, after another outcome: the same release.
    let t = Truth {
        owner: GEMEENTE,
        intake: date("2024-12-01"),
        intake_scenario: Some(P::Return),
        outcome: Some((K::DepartureIndependent, date("2025-03-01"))),
    };
    utrecht
        .cases
        .register_case(with_actor(pb::RegisterCaseRequest {
            request_id: String::new(),
            data: Some(case_data(21, &t)),
        }))
        .await
        .unwrap();
    let again = monitor
        .stats
        .get_statistics(ask(T::Outcomes, 1, true))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.release_sha256, first.release_sha256);
    assert_eq!(again.as_of, first.as_of);
    // Tilburg's own figures are its own: nothing to hide from itself, but
    // they come from the same release.
    let own = tilburg
        .stats
        .get_statistics(with_actor(ask(T::DurableSolutions, 1, false)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(own.as_of, first.as_of);
}

/// Differencing across time: the same quarter asked again after late
/// registrations must not show different figures, or subtracting the two
/// answers would single out the late cases. The first answer is the
/// release; later ones are the same release, `as_of` the first computation,
/// and every access record names its SHA-256. Nobody can change a release
/// in the database either: the triggers refuse.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quarter_is_published_once() {
    let (node, tilburg) = start().await;
    let mut utrecht = node.client(GEMEENTE).await;
    let mut monitor = node.client("monitor-jenv").await;
    let register = async |c: &mut Clients, from: usize, n: usize| {
        for i in from..from + n {
            let mut t = generate(i);
            // Every one an independent departure in 2025 Q3.
            t.intake = date("2025-05-01");
            t.outcome = Some((pb::OutcomeKind::DepartureIndependent, date("2025-08-01")));
            c.cases
                .register_case(with_actor(pb::RegisterCaseRequest {
                    request_id: String::new(),
                    data: Some(case_data(i, &t)),
                }))
                .await
                .expect("register");
        }
    };
    register(&mut utrecht, 0, 40).await;
    use pb::StatisticsTable as T;
    let first = monitor
        .stats
        .get_statistics(ask(T::DurableSolutions, 3, false))
        .await
        .unwrap();
    let first_id = request_id(&first);
    let first = first.into_inner();
    assert_eq!(first.release_sha256.len(), 64);
    let as_of = first.as_of.expect("as_of");

    // Late registrations for the same quarter.
    register(&mut utrecht, 40, 13).await;
    let again = monitor
        .stats
        .get_statistics(ask(T::DurableSolutions, 3, false))
        .await
        .unwrap();
    let again_id = request_id(&again);
    let again = again.into_inner();
    assert_eq!(again.figures, first.figures, "the same figures");
    assert_eq!(again.release_sha256, first.release_sha256);
    assert_eq!(again.as_of, Some(as_of));
    // The other tables of the quarter were released with it, from the same
    // figures; a municipality's own table too.
    let other = monitor
        .stats
        .get_statistics(ask(T::Outcomes, 3, true))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(other.as_of, Some(as_of));
    let own = tilburg
        .clone()
        .stats
        .get_statistics(with_actor(ask(T::Outcomes, 3, false)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(own.as_of, Some(as_of));
    // Another quarter is released when first asked.
    let q2 = monitor
        .stats
        .get_statistics(ask(T::DurableSolutions, 2, false))
        .await
        .unwrap()
        .into_inner();
    assert_ne!(q2.release_sha256, first.release_sha256);

    for id in [first_id, again_id] {
        let rec = record_of(&node, &id).await;
        assert!(
            rec.detail
                .contains(&format!("release sha256 {}", first.release_sha256)),
            "{}",
            rec.detail
        );
    }

    // A release cannot be changed or removed, on either database.
    for (sqlite, postgres) in [
        (
            "UPDATE statistics_releases SET body = '{}'",
            "UPDATE statistics_releases SET body = '{}'",
        ),
        (
            "DELETE FROM statistics_releases",
            "DELETE FROM statistics_releases",
        ),
    ] {
        let refused = match connect_database(&node.database_url()).await {
            Database::Sqlite(conn) => conn.execute_batch(sqlite).is_err(),
            Database::Postgres(mut conn) => {
                sqlx::raw_sql(sqlx::AssertSqlSafe(postgres.to_string()))
                    .execute(&mut conn)
                    .await
                    .is_err()
            }
        };
        assert!(refused, "{sqlite}: a release is append-only");
    }
    let after = monitor
        .stats
        .get_statistics(ask(T::DurableSolutions, 3, false))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(after.figures, first.figures);
}

/// A statistics computation reads and opens every case: one caller may not
/// ask for more than `[statistics] requests_per_minute`, and is told how
/// long to wait (RetryInfo). Other callers are not held up by it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statistics_are_rate_limited_per_caller() {
    use tonic_types::StatusExt;
    let node = TestNode::start_with(|c| c.statistics.requests_per_minute = 2).await;
    let mut monitor = node.client("monitor-jenv").await;
    let mut utrecht = node.client(GEMEENTE).await;
    use pb::StatisticsTable as T;
    for _ in 0..2 {
        monitor
            .stats
            .get_statistics(ask(T::DurableSolutions, 1, false))
            .await
            .expect("within the rate");
    }
    let before = node.log_len().await;
    let e = monitor
        .stats
        .get_statistics(ask(T::Outcomes, 1, false))
        .await
        .expect_err("beyond the rate");
    assert_eq!(e.code(), Code::ResourceExhausted, "{}", e.message());
    assert!(
        e.message().contains("at most 2 statistics a minute"),
        "{}",
        e.message()
    );
    let d = e.check_error_details().expect("details decode");
    assert_eq!(d.error_info().unwrap().reason, "RATE_LIMITED");
    let wait = d.retry_info().unwrap().retry_delay.expect("a delay");
    assert!(wait > std::time::Duration::ZERO && wait <= std::time::Duration::from_secs(30));
    let rec = record_of(&node, &request_id_of(e.metadata())).await;
    assert_eq!(rec.method, "GetStatistics");
    assert_eq!(
        rec.decision.as_str(),
        "denied",
        "a valid request refused by the rate limit is not an invalid one"
    );
    assert_eq!(node.log_len().await, before + 1, "the refusal is recorded");
    // Another caller has its own rate.
    utrecht
        .stats
        .get_statistics(with_actor(ask(T::DurableSolutions, 1, false)))
        .await
        .expect("another caller is not limited by the monitor's requests");
}

/// A privacy officer reads the tables the node published, exactly as they
/// were handed out: `AuditService.ListStatisticsReleases`, newest quarter
/// first, paged, each with the SHA-256 the monitor's record names. No one
/// else may; a quarter written otherwise is refused naming the field; each
/// call is recorded, naming the releases listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_officer_lists_the_published_releases_and_no_one_else() {
    let (node, mut tilburg) = start().await;
    let mut monitor = node.client("monitor-jenv").await;
    let mut officer = node.client("fg-utrecht").await;
    use pb::StatisticsTable as T;
    let q3 = monitor
        .stats
        .get_statistics(ask(T::DurableSolutions, 3, false))
        .await
        .unwrap()
        .into_inner();
    monitor
        .stats
        .get_statistics(ask(T::Inflow, 2, false))
        .await
        .unwrap();
    let list = async |c: &mut Clients, quarter: &str, own: bool, size: i32, token: String| {
        c.audit
            .list_statistics_releases(pb::ListStatisticsReleasesRequest {
                quarter: quarter.into(),
                include_own: own,
                page_size: size,
                page_token: token,
            })
            .await
    };
    let e = list(&mut monitor, "", false, 0, String::new())
        .await
        .expect_err("the monitor lists no releases");
    assert_eq!(e.code(), Code::PermissionDenied, "{}", e.message());
    let e = list(&mut tilburg, "", false, 0, String::new())
        .await
        .expect_err("a municipality lists no releases");
    assert_eq!(e.code(), Code::PermissionDenied, "{}", e.message());
    let e = list(&mut officer, "2025-3", false, 0, String::new())
        .await
        .expect_err("a quarter written otherwise");
    assert_eq!(e.code(), Code::InvalidArgument, "{}", e.message());
    assert!(e.message().contains("2025Q3"), "{}", e.message());

    let all = list(&mut officer, "", false, 100, String::new())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.quarters, ["2025Q3", "2025Q2"]);
    // Outcome tables of Q3 and intake tables of Q2, node and per
    // municipality: (4 + 3) × 2.
    assert_eq!(
        all.releases.len(),
        14,
        "{:?}",
        all.releases
            .iter()
            .map(|r| (&r.quarter, &r.breakdown))
            .collect::<Vec<_>>()
    );
    assert!(all.releases[..8].iter().all(|r| r.quarter == "2025Q3"));
    assert!(all.releases.iter().all(|r| r.breakdown != "own"));
    let same = all
        .releases
        .iter()
        .find(|r| r.release_sha256 == q3.release_sha256)
        .expect("the monitor's table is listed");
    assert_eq!(same.breakdown, "node");
    assert_eq!(same.as_of, q3.as_of);
    assert_eq!(same.table.as_ref().unwrap().figures, q3.figures);
    assert_eq!(same.table.as_ref().unwrap().text, q3.text);
    // With the municipalities' own tables; page by page, the same.
    let mut paged = Vec::new();
    let mut token = String::new();
    loop {
        let page = list(&mut officer, "2025Q3", true, 3, token)
            .await
            .unwrap()
            .into_inner();
        assert!(page.releases.len() <= 3);
        paged.extend(page.releases);
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    // Four outcome tables for the node, per municipality, and each of the
    // two municipalities' own.
    assert_eq!(paged.len(), 16);
    assert!(
        paged
            .iter()
            .any(|r| r.breakdown == "own" && r.scope == TILBURG)
    );
    let mut keys: Vec<_> = paged
        .iter()
        .map(|r| (&r.breakdown, &r.scope, r.table.as_ref().unwrap().table))
        .collect();
    keys.dedup();
    assert_eq!(keys.len(), 16, "no release twice");
    // A token is for its own listing only.
    let first = list(&mut officer, "2025Q3", true, 3, String::new())
        .await
        .unwrap()
        .into_inner();
    let e = list(&mut officer, "2025Q3", false, 3, first.next_page_token)
        .await
        .expect_err("a token of another listing");
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("page_token"), "{}", e.message());
    // Recorded, naming the releases listed.
    let rec = record_of(&node, &all.access_record_id).await;
    assert_eq!(rec.method, "ListStatisticsReleases");
    assert!(rec.detail.contains(&q3.release_sha256), "{}", rec.detail);
}
