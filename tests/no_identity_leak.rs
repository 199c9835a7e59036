//! No raw identity outside the vault: after a busy session, neither the
//! SQLite files nor any log line (at the most verbose level) contain a name,
//! V-number or BSN in clear.

mod common;

use common::*;
use sluis::rpc::proto::v1 as pb;

use pb::Category as C;

const NAME: &str = "Zebulon Quaxwell";
const V_NUMBER: &str = "8675309012";
const BSN: &str = "246813532";

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identities_never_appear_in_clear_in_files_or_logs() {
    let captured = Captured::install("trace");
    let node = TestNode::start().await;
    let mut gemeente = node.client(GEMEENTE).await;
    let reg = gemeente
        .cases
        .register_case(with_actor(pb::RegisterCaseRequest {
            request_id: String::new(),
            data: Some(full_case(NAME, V_NUMBER, BSN)),
        }))
        .await
        .expect("a valid BSN registers")
        .into_inner();
    let case_id = reg.case_id;
    grant(
        &mut gemeente,
        &case_id,
        vec![participant(NGO)],
        &[C::Identity, C::Shelter],
        &["shelter"],
    )
    .await;
    let mut ngo = node.client(NGO).await;
    let r = ngo
        .cases
        .get_case(by_id(&case_id, "shelter"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        r.data.unwrap().identity.unwrap().bsn,
        BSN,
        "released to the consented NGO"
    );
    for who in ["dtv", "ind", "avim", "monitor-jenv"] {
        let mut c = node.client(who).await;
        let _ = c.cases.get_case(by_id(&case_id, "return")).await;
    }
    // Bad input that carries identity values where they do not belong.
    let _ = ngo.cases.get_case(by_id(&case_id, BSN)).await;
    let _ = ngo.cases.get_case(by_id(V_NUMBER, "shelter")).await;
    let _ = ngo.cases.get_case(by_pseudonym(NAME, "shelter")).await;
    let mut bad = full_case(NAME, V_NUMBER, "246813531");
    bad.identity.as_mut().unwrap().name = NAME.into();
    let _ = gemeente
        .cases
        .register_case(with_actor(pb::RegisterCaseRequest {
            request_id: String::new(),
            data: Some(bad),
        }))
        .await;
    let _ = gemeente
        .cases
        .update_case(with_actor(pb::UpdateCaseRequest {
            request_id: String::new(),
            case_id: case_id.clone(),
            data: Some(full_case(NAME, V_NUMBER, BSN)),
            update_mask: None,
        }))
        .await
        .unwrap();
    // An unregistered certificate whose subject carries the name.
    let stranger = node.issue(&sluis::net::pki::ClientCertSpec::new(
        "stranger",
        Some("00000009999999999999"),
    ));
    if let Ok(mut c) = node
        .client_with(Some((stranger.cert_pem, stranger.key_pem)))
        .await
    {
        let _ = c.cases.get_case(by_id(&case_id, "shelter")).await;
    }
    let log_rows = node.log().await;
    assert!(log_rows.len() >= 10);

    let dir = node.dir.path().to_path_buf();
    let url = node.database_url();
    node.node.shutdown().await.unwrap();

    if url.starts_with("postgres") {
        // Every row of every table, as PostgreSQL renders it (bytea as hex).
        use sqlx::{Connection, Row};
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        let tables: Vec<String> =
            sqlx::query_scalar("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'")
                .fetch_all(&mut conn)
                .await
                .unwrap();
        assert!(tables.len() >= 10, "{tables:?}");
        for t in tables {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT CAST(t AS TEXT) FROM {t} t"
            )))
            .fetch_all(&mut conn)
            .await
            .unwrap();
            for row in rows {
                let text: String = row.get(0);
                for needle in [NAME, V_NUMBER, BSN] {
                    assert!(!text.contains(needle), "{needle} in clear in table {t}");
                    assert!(
                        !text.contains(&hex::encode(needle)),
                        "{needle} in clear (bytea) in {t}"
                    );
                }
            }
        }
    } else {
        // Every file of the database (main file, WAL, shared memory).
        let db = url
            .strip_prefix("sqlite://")
            .and_then(|p| p.split('?').next())
            .map(std::path::PathBuf::from)
            .unwrap();
        let mut checked = 0;
        for entry in std::fs::read_dir(db.parent().unwrap()).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if !name.starts_with(db.file_name().unwrap().to_str().unwrap()) {
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            for needle in [NAME, V_NUMBER, BSN] {
                assert!(
                    !contains(&bytes, needle),
                    "{needle} in clear in {}",
                    path.display()
                );
            }
            checked += 1;
        }
        assert!(checked >= 1);
    }
    // And every other file the node wrote (config, policy, PKI, keys).
    for entry in walk(&dir) {
        let bytes = std::fs::read(&entry).unwrap();
        for needle in [NAME, V_NUMBER, BSN] {
            assert!(
                !contains(&bytes, needle),
                "{needle} in clear in {}",
                entry.display()
            );
        }
    }

    let logs = captured.bytes();
    assert!(
        logs.len() > 1000,
        "trace logging was captured ({} bytes)",
        logs.len()
    );
    assert!(
        contains(&logs, "sluis node serving"),
        "the node's own log lines were captured"
    );
    for needle in [NAME, V_NUMBER, BSN] {
        assert!(
            !contains(&logs, needle),
            "{needle} in clear in the log output"
        );
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
