//! Witnessing: three real nodes on 127.0.0.1 (own CAs, one signed
//! directory listing each node's witness key) fetch each other's
//! checkpoints over node-to-node mTLS, check them consistent and cosign
//! them (C2SP tlog-cosignature). Cosignatures gather on a checkpoint until
//! `sluis audit verify --cosignatures 2` passes; a node whose database is
//! replaced by one with another history is caught by both its peers: an
//! alarm in their log, their health, and the two signed checkpoints kept.

mod common;

use std::process::Command;

use common::federation::*;
use sluis::federation::witness::{AlarmKind, WitnessOutcome, cosigned_checkpoint};
use sluis::node::Node;
use sluis::tlog::checkpoint::Checkpoint;
use time::OffsetDateTime;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// A witnessing round of `witness` on `peer`, repeated while the peer has
/// no checkpoint yet (a fresh node signs its first within its checkpoint
/// interval): what came of it.
async fn witness(witness: &Started, peer: &str) -> WitnessOutcome {
    for _ in 0..100 {
        let outcome = witness_round(witness, peer).await;
        match &outcome {
            WitnessOutcome::Failed(why) if why.contains("checkpoint") => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            _ => return outcome,
        }
    }
    panic!("{peer} signed no checkpoint")
}

/// Waits until `n`'s health says `want` for the witness service name (the
/// node's health loop looks once a second), and says whether it did.
async fn witness_health(n: &Started, want: ServingStatus) -> bool {
    let mut health = HealthClient::new(n.client(common::GEMEENTE).await.channel());
    for _ in 0..100 {
        let status = health
            .check(HealthCheckRequest {
                service: sluis::rpc::WITNESS_HEALTH.into(),
            })
            .await
            .map(|r| r.into_inner().status)
            .ok();
        if status == Some(want as i32) {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    false
}

/// The `sluis` binary on a node's folder with `config` written there.
fn sluis_audit(
    dir: &std::path::Path,
    config: &sluis::config::Config,
    args: &[&str],
) -> (i32, String) {
    let path = dir.join("witness-sluis.toml");
    std::fs::write(&path, toml::to_string(config).unwrap()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sluis"))
        .arg("audit")
        .arg("--config")
        .arg(&path)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cosignatures_accumulate_and_a_rewritten_log_is_caught() {
    use sluis::rpc::proto::v1 as pb;
    use tonic_types::StatusExt;
    let (_key, mut nodes, dir_nodes) = started_network().await;
    let directory = sluis::federation::directory::Directory {
        network: "lvv".into(),
        serial: 1,
        not_before: String::new(),
        not_after: String::new(),
        nodes: dir_nodes.clone(),
    };
    // B holds a case: its log has grown past a few entries.
    let _ = case_at(&nodes[1]).await;
    let (a, c) = (&nodes[0], &nodes[2]);

    // A cosigns B's checkpoint; C, next, is offered the same one (the one
    // being gathered on) and cosigns it too: two cosignatures on one
    // checkpoint, each under the witness key the directory lists.
    let WitnessOutcome::Cosigned {
        size,
        cosignatures: 1,
    } = witness(a, B).await
    else {
        panic!("A cosigns B's checkpoint")
    };
    assert_eq!(
        witness(c, B).await,
        WitnessOutcome::Cosigned {
            size,
            cosignatures: 2
        }
    );
    let b = &nodes[1];
    let cosigned = cosigned_checkpoint(&b.node.store, &directory, B, 2, None)
        .await
        .unwrap()
        .expect("a checkpoint of B with two cosignatures");
    assert_eq!(cosigned.checkpoint.size as u64, size);
    assert_eq!(cosigned.witnesses, vec![A.to_string(), C.to_string()]);
    // The cosigned checkpoint is B's signed note with two more lines, and
    // B's own signature still verifies on it.
    assert_eq!(
        Checkpoint::verify(&cosigned.note, &b.node.verifier_key())
            .unwrap()
            .size,
        size
    );
    // Both peers' witnessing calls are in B's log, naming the calling node.
    let log = b.node.store.access_log(0, 100_000).await.unwrap();
    let callers: Vec<String> = log
        .iter()
        .map(|r| sluis::tlog::AccessRecord::decode(&r.record).unwrap())
        .filter(|r| r.method == "AddCosignature")
        .map(|r| r.caller)
        .collect();
    assert_eq!(callers, vec![A.to_string(), C.to_string()]);

    // The next rounds move on to B's newer checkpoints, each extending the
    // one cosigned before.
    let mut later = size;
    for _ in 0..100 {
        let WitnessOutcome::Cosigned { size: now, .. } = witness(a, B).await else {
            panic!("A cosigns B again")
        };
        later = now;
        if later > size {
            break;
        }
        // B signs its next checkpoint within its checkpoint interval.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(later > size, "{later} > {size}");
    assert!(
        matches!(witness(c, B).await, WitnessOutcome::Cosigned { size, cosignatures: 2 } if size == later)
    );
    for n in [a, c] {
        assert!(witness_health(n, ServingStatus::Serving).await);
    }

    // B stops; its database is replaced by one with another history (a
    // fresh log, on the same keys) and it starts again.
    let Started {
        id,
        dir,
        node,
        config,
    } = nodes.remove(1);
    let mut config = config;
    node.shutdown().await.unwrap();
    let (code, out) = sluis_audit(dir.path(), &config, &["verify", "--cosignatures", "2"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("witnessed: the checkpoint of size"), "{out}");
    let (code, out) = sluis_audit(dir.path(), &config, &["verify", "--cosignatures", "3"]);
    assert_eq!(
        code, 3,
        "three witnesses are more than the directory lists: {out}"
    );
    config.node.database = match common::postgres_admin_url() {
        Some(admin) => common::fresh_postgres_database(&admin).await,
        None => "sqlite://rewritten.db".into(),
    };
    let b = Started {
        id,
        node: Node::start(&config).await.expect("B restarts"),
        dir,
        config,
    };
    let (a, c) = (&nodes[0], &nodes[1]);

    // Both peers catch it: B's new checkpoints are smaller than the one
    // they cosigned. Nothing is cosigned; the alarm is raised.
    for n in [a, c] {
        let WitnessOutcome::Alarm { kind, detail } = witness(n, B).await else {
            panic!("{} raises an alarm on B", n.id)
        };
        assert_eq!(kind, AlarmKind::Rollback, "{detail}");
        assert!(witness_health(n, ServingStatus::NotServing).await);
        let alarms = n.node.store.witness_alarms().await.unwrap();
        assert_eq!(alarms.len(), 1);
        let alarm = &alarms[0];
        assert_eq!((alarm.node.as_str(), alarm.kind.as_str()), (B, "rollback"));
        // The evidence: two checkpoints B signed that cannot both be its
        // log's, each verifying under B's log key from the directory.
        let log_key = &dir_nodes.iter().find(|d| d.id == B).unwrap().log_key;
        let seen = Checkpoint::verify(&alarm.seen_note, log_key).unwrap();
        let offered = Checkpoint::verify(&alarm.offered_note, log_key).unwrap();
        assert!(offered.size < seen.size, "{offered:?} {seen:?}");
        // Asked again, the alarm stands without a second one (B is not
        // witnessed again while it is kept), and B stays uncosigned.
        assert!(matches!(witness(n, B).await, WitnessOutcome::Alarm { .. }));
        assert_eq!(n.node.store.witness_alarms().await.unwrap().len(), 1);
    }
    assert!(
        b.node.store.cosigned_sizes().await.unwrap().is_empty(),
        "no peer cosigned B's rewritten log"
    );
    // The alarm is shown by a command, evidence included.
    let a_config = a.config.clone();
    let (code, out) = sluis_audit(a.dir.path(), &a_config, &["witness-alarms"]);
    assert_eq!(code, 4, "{out}");
    assert!(out.contains("node 'gm0363', rollback"), "{out}");
    assert!(out.contains("gm0363/access-log"), "{out}");

    // An officer acknowledges it on each node: a note naming a person is
    // refused, changes nothing and is recorded without the text; an
    // unknown alarm is NOT_FOUND; the acknowledgement is in the log with
    // its note, the evidence stays, and health is SERVING again.
    for n in [a, c] {
        let alarm_id = n.node.store.witness_alarms().await.unwrap()[0].id as u64;
        let mut officer = n.client("fg-utrecht").await;
        // A BSN however its groups are separated, one separator or a mix.
        for naming in ["called about BSN 111222333", "called about BSN 111.222-333"] {
            let err = officer
                .audit
                .acknowledge_witness_alarm(pb::AcknowledgeWitnessAlarmRequest {
                    alarm_id,
                    note: naming.into(),
                })
                .await
                .expect_err("a note naming a person");
            assert_eq!(
                err.code(),
                tonic::Code::InvalidArgument,
                "{}",
                err.message()
            );
            assert_eq!(
                err.get_details_bad_request().unwrap().field_violations[0].field,
                "note"
            );
            let refused = n.record(&common::request_id_of(err.metadata())).await;
            assert_eq!(refused.method, "AcknowledgeWitnessAlarm");
            for raw in ["111222333", "111.222-333"] {
                assert!(!refused.detail.contains(raw), "{}", refused.detail);
            }
            assert!(n.node.store.witness_alarms().await.unwrap()[0].open());
            assert!(witness_health(n, ServingStatus::NotServing).await);
        }
        let err = officer
            .audit
            .acknowledge_witness_alarm(pb::AcknowledgeWitnessAlarmRequest {
                alarm_id: alarm_id + 100,
                note: "restored from backup".into(),
            })
            .await
            .expect_err("an unknown alarm");
        assert_eq!(err.code(), tonic::Code::NotFound);
        // On A with the command, on C over gRPC.
        let note = "gm0363 restored from backup; network operator informed";
        let access_record_id = if n.id == A {
            let pki = n.dir.path().join("pki");
            let p = |f: &str| pki.join(f).to_string_lossy().to_string();
            let (code, out) = sluis_audit(
                n.dir.path(),
                &n.config,
                &[
                    "witness-alarms",
                    "--acknowledge",
                    &alarm_id.to_string(),
                    "--note",
                    note,
                    "--json",
                    "--node",
                    &format!("https://127.0.0.1:{}", n.node.local_addr.port()),
                    "--server-name",
                    "localhost",
                    "--cert",
                    &p("clients/fg-utrecht.pem"),
                    "--key",
                    &p("clients/fg-utrecht.key"),
                    "--ca",
                    &p("ca.pem"),
                ],
            );
            assert_eq!(code, 0, "{out}");
            let r: serde_json::Value = serde_json::from_str(&out).unwrap();
            assert_eq!(r["node"], B);
            assert_eq!(r["unacknowledged"], 0);
            r["access_record_id"].as_str().unwrap().to_string()
        } else {
            let r = officer
                .audit
                .acknowledge_witness_alarm(pb::AcknowledgeWitnessAlarmRequest {
                    alarm_id,
                    note: note.into(),
                })
                .await
                .expect("the acknowledgement")
                .into_inner();
            assert_eq!((r.node.as_str(), r.unacknowledged), (B, 0));
            r.access_record_id
        };
        let rec = n.record(&access_record_id).await;
        assert_eq!(rec.method, "AcknowledgeWitnessAlarm");
        assert_eq!(rec.decision, sluis::tlog::Decision::Allowed);
        assert!(
            rec.detail.contains("network operator informed"),
            "{}",
            rec.detail
        );
        let kept = &n.node.store.witness_alarms().await.unwrap()[0];
        assert_eq!(
            kept.acknowledged.as_ref().unwrap().request_id,
            access_record_id
        );
        assert!(!kept.offered_note.is_empty(), "the evidence stays");
        assert!(witness_health(n, ServingStatus::Serving).await);
        // Twice: refused, naming the first.
        let err = officer
            .audit
            .acknowledge_witness_alarm(pb::AcknowledgeWitnessAlarmRequest {
                alarm_id,
                note: "again".into(),
            })
            .await
            .expect_err("a second acknowledgement");
        assert_eq!(err.code(), tonic::Code::FailedPrecondition);
        assert!(err.message().contains("fg-utrecht"), "{}", err.message());
    }
    let (code, out) = sluis_audit(a.dir.path(), &a_config, &["witness-alarms"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("acknowledged by 'fg-utrecht'"), "{out}");

    b.node.shutdown().await.unwrap();
    for n in nodes {
        n.node.shutdown().await.unwrap();
    }
}

/// What a peer sends back is checked before it is kept: a cosignature by
/// another node's witness key, on a checkpoint this node did not sign, over
/// another text, or not a signature line at all, is refused
/// `INVALID_ARGUMENT` naming the field, recorded naming the calling node,
/// and nothing is kept; a witnessing call that asserts a participant is
/// refused. A good one is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_cosignature_is_refused_recorded_and_not_kept() {
    use sluis::federation::witness::WitnessSigner;
    use sluis::rpc::proto::v1 as pb;
    use tonic_types::StatusExt;

    let (_key, nodes, _) = started_network().await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let _ = case_at(b).await;
    // B has a checkpoint once A can witness it.
    assert!(matches!(
        witness(a, B).await,
        WitnessOutcome::Cosigned { .. }
    ));
    let channel = node_channel(a, b).await;
    let mut as_a = pb::witness_service_client::WitnessServiceClient::new(channel);
    let note = as_a
        .get_witness_checkpoint(pb::GetWitnessCheckpointRequest { old_size: 0 })
        .await
        .unwrap()
        .into_inner()
        .checkpoint;
    let cp = Checkpoint::parse(&note[..note.rfind("\n\n").unwrap() + 1]).unwrap();
    let held_before = b.node.store.cosignatures(cp.size as i64).await.unwrap();
    let a_key = WitnessSigner::load(A, &a.dir.path().join("witness.key")).unwrap();
    let c_key = WitnessSigner::load(C, &nodes[2].dir.path().join("witness.key")).unwrap();
    let now = (OffsetDateTime::now_utc().unix_timestamp()) as u64;
    let other = Checkpoint {
        size: cp.size + 1,
        ..cp.clone()
    };
    let forged_note = note.replacen(
        &format!("\n{}\n", cp.size),
        &format!("\n{}\n", cp.size + 1),
        1,
    );
    let cases = [
        (
            note.clone(),
            c_key.cosign(&cp, now).unwrap(),
            "cosignature",
            "cosigns as 'gm0344/witness'",
        ),
        (
            forged_note,
            a_key.cosign(&other, now).unwrap(),
            "checkpoint",
            "not a checkpoint this node signed",
        ),
        (
            note.clone(),
            a_key.cosign(&other, now).unwrap(),
            "cosignature",
            "does not verify",
        ),
        (note.clone(), "hello\n".into(), "cosignature", "malformed"),
        (
            note.clone(),
            a_key.cosign(&cp, now + 3600).unwrap(),
            "cosignature",
            "ahead of this node's clock",
        ),
    ];
    for (checkpoint, cosignature, field, says) in cases {
        let err = as_a
            .add_cosignature(pb::AddCosignatureRequest {
                checkpoint,
                cosignature,
            })
            .await
            .expect_err("a bad cosignature");
        assert_eq!(
            err.code(),
            tonic::Code::InvalidArgument,
            "{}",
            err.message()
        );
        assert!(err.message().contains(says), "{says}: {}", err.message());
        let d = err.get_error_details();
        assert_eq!(d.bad_request().unwrap().field_violations[0].field, field);
        let rec = b.record(&common::request_id_of(err.metadata())).await;
        assert_eq!(
            (rec.method.as_str(), rec.caller.as_str()),
            ("AddCosignature", A)
        );
        assert_eq!(rec.status, "INVALID_ARGUMENT");
    }
    // A node witnesses as itself: no participant is asserted.
    let err = as_a
        .get_witness_checkpoint(asserting(
            tonic::Request::new(pb::GetWitnessCheckpointRequest { old_size: 0 }),
            IND,
            "ind",
        ))
        .await
        .expect_err("an assertion on a witnessing call");
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    assert_eq!(
        b.node.store.cosignatures(cp.size as i64).await.unwrap(),
        held_before,
        "nothing refused was kept"
    );
    // The good one is kept.
    let held = as_a
        .add_cosignature(pb::AddCosignatureRequest {
            checkpoint: note.clone(),
            cosignature: a_key.cosign(&cp, now).unwrap(),
        })
        .await
        .unwrap()
        .into_inner()
        .cosignatures;
    assert!(held >= 1);
    let kept = b.node.store.cosignatures(cp.size as i64).await.unwrap();
    assert!(
        kept.iter()
            .any(|c| c.witness == "gm0344/witness" && c.timestamp == now as i64)
    );
    for n in nodes {
        n.node.shutdown().await.unwrap();
    }
}
