//! A real node for integration tests: `sluis init` into a temporary folder
//! (dev PKI, keys, policy, SQLite), served on 127.0.0.1:0 over mTLS, and
//! clients that connect with their own certificates.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use sluis::config::Config;
use sluis::dev::init;
use sluis::net::client::{self, ClientPem, Clients};
use sluis::net::pki::{CertAuthority, ClientCertSpec, IssuedCert};
use sluis::node::Node;
use sluis::rpc::proto::v1 as pb;
use sluis::store::LogRow;
use tonic::Request;

pub const GEMEENTE: &str = "gemeente-utrecht";
pub const NGO: &str = "ngo-vluchtelingenwerk";
pub const ACTOR: &str = "mw-0042";

pub struct TestNode {
    pub dir: tempfile::TempDir,
    pub config: Config,
    pub node: Node,
}

impl TestNode {
    pub async fn start() -> TestNode {
        TestNode::start_with(|_| {}).await
    }

    /// A node whose configuration `edit` adjusts before it starts.
    pub async fn start_with(edit: impl FnOnce(&mut Config)) -> TestNode {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = init::init(dir.path(), "127.0.0.1:0".parse().unwrap())
            .await
            .expect("init a node directory");
        use_test_database(dir.path()).await;
        let mut config = Config::load(&path).expect("load config");
        edit(&mut config);
        let node = Node::start(&config).await.expect("start node");
        TestNode { dir, config, node }
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join(init::CONFIG_FILE)
    }

    pub fn pki(&self) -> PathBuf {
        self.dir.path().join("pki")
    }

    pub fn db_path(&self) -> PathBuf {
        self.config.sqlite_path().unwrap()
    }

    pub fn database_url(&self) -> String {
        self.config.database_url().unwrap()
    }

    /// Runs SQL on the node's database over a connection of its own (as an
    /// operator, or an attacker with database access, would).
    pub async fn sql(&self, sqlite: &str, postgres: &str) {
        exec_sql(&self.database_url(), sqlite, postgres).await;
    }

    pub fn ca_pem(&self) -> String {
        std::fs::read_to_string(self.pki().join("ca.pem")).unwrap()
    }

    /// The node's CA, to issue odd certificates (expired, revoked, unregistered).
    pub fn ca(&self) -> CertAuthority {
        let cert = std::fs::read_to_string(self.pki().join("ca.pem")).unwrap();
        let key = std::fs::read_to_string(self.pki().join("ca.key")).unwrap();
        CertAuthority::from_pem(&cert, &key).unwrap()
    }

    pub fn issue(&self, spec: &ClientCertSpec) -> IssuedCert {
        self.ca().issue_client(spec).unwrap()
    }

    /// Clients for a dev participant, with its own certificate.
    pub async fn client(&self, participant: &str) -> Clients {
        let cert =
            std::fs::read_to_string(self.pki().join(format!("clients/{participant}.pem"))).unwrap();
        let key =
            std::fs::read_to_string(self.pki().join(format!("clients/{participant}.key"))).unwrap();
        self.client_with(Some((cert, key))).await.expect("connect")
    }

    pub async fn client_with(
        &self,
        identity: Option<(String, String)>,
    ) -> Result<Clients, tonic::transport::Error> {
        let channel = client::connect(
            self.node.local_addr,
            "localhost",
            &ClientPem {
                ca: self.ca_pem(),
                identity,
            },
        )
        .await?;
        Ok(Clients::new(channel))
    }

    pub async fn log(&self) -> Vec<LogRow> {
        self.node.store.access_log(0, 100_000).await.unwrap()
    }

    pub async fn log_len(&self) -> i64 {
        self.node.store.access_log_len().await.unwrap()
    }

    /// Waits for a record to appear (handshake failures are recorded by a
    /// background task, after the client has already seen its error).
    pub async fn wait_for_log(&self, pred: impl Fn(&LogRow) -> bool) -> LogRow {
        for _ in 0..100 {
            if let Some(r) = self.log().await.into_iter().find(&pred) {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("expected access record did not appear");
    }

    pub async fn digest(&self) -> String {
        self.node.store.content_digest().await.unwrap()
    }
}

pub fn with_actor<T>(msg: T) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut()
        .insert("x-sluis-actor", ACTOR.parse().unwrap());
    r
}

/// A case with data in every category.
pub fn full_case(name: &str, v_number: &str, bsn: &str) -> pb::CaseData {
    pb::CaseData {
        identity: Some(pb::Identity {
            name: name.into(),
            date_of_birth: "1988-02-29".into(),
            nationality: "SDN".into(),
            v_number: v_number.into(),
            bsn: bsn.into(),
        }),
        residence_procedure: Some(pb::ResidenceProcedure {
            status: "first application rejected".into(),
            last_decision_date: "2025-11-01".into(),
            pending: false,
        }),
        shelter: Some(pb::Shelter {
            location: "LVV Oost".into(),
            since: "2026-01-01".into(),
            until: String::new(),
            notes: String::new(),
        }),
        guidance: Some(pb::Guidance {
            organisation: NGO.into(),
            notes: "weekly".into(),
        }),
        perspective: Some(pb::Perspective {
            kind: pb::PerspectiveKind::Undetermined as i32,
            milestones: vec![],
        }),
        medical: Some(pb::Medical {
            notes: "care".into(),
        }),
        safety: Some(pb::Safety {
            notes: "none".into(),
        }),
        outcome: Some(pb::Outcome {
            reached: false,
            kind: 0,
            date: String::new(),
        }),
    }
}

/// Registers a full case as the municipality; returns (case id, its pseudonym).
pub async fn register(c: &mut Clients) -> (String, String) {
    let r = c
        .cases
        .register_case(with_actor(pb::RegisterCaseRequest {
            data: Some(full_case("Test Persoon", "1234567890", "111222333")),
        }))
        .await
        .expect("register")
        .into_inner();
    (r.case_id, r.subject_pseudonym)
}

pub fn participant(id: &str) -> pb::Recipient {
    pb::Recipient {
        recipient: Some(pb::recipient::Recipient::Participant(id.into())),
    }
}

pub fn role(r: &str) -> pb::Recipient {
    pb::Recipient {
        recipient: Some(pb::recipient::Recipient::Role(r.into())),
    }
}

pub fn cats(cs: &[pb::Category]) -> Vec<i32> {
    cs.iter().map(|c| *c as i32).collect()
}

pub async fn grant(
    c: &mut Clients,
    case_id: &str,
    recipients: Vec<pb::Recipient>,
    categories: &[pb::Category],
    purposes: &[&str],
) -> pb::Consent {
    c.consents
        .grant_consent(with_actor(pb::GrantConsentRequest {
            case_id: case_id.into(),
            recipients,
            categories: cats(categories),
            purposes: purposes.iter().map(|s| s.to_string()).collect(),
            valid_from: None,
            valid_until: None,
            evidence_ref: "DMS-1".into(),
        }))
        .await
        .expect("grant consent")
        .into_inner()
        .consent
        .unwrap()
}

pub fn by_id(case_id: &str, purpose: &str) -> pb::GetCaseRequest {
    pb::GetCaseRequest {
        subject: Some(pb::get_case_request::Subject::CaseId(case_id.into())),
        purpose: purpose.into(),
        categories: vec![],
    }
}

pub fn by_pseudonym(p: &str, purpose: &str) -> pb::GetCaseRequest {
    pb::GetCaseRequest {
        subject: Some(pb::get_case_request::Subject::SubjectPseudonym(p.into())),
        purpose: purpose.into(),
        categories: vec![],
    }
}

/// Category names released in a response, sorted.
pub fn released(r: &pb::GetCaseResponse) -> Vec<&'static str> {
    let mut v: Vec<&'static str> = r
        .released
        .iter()
        .map(|c| pb::Category::try_from(*c).unwrap().as_str_name())
        .map(|s| match s {
            "CATEGORY_IDENTITY" => "identity",
            "CATEGORY_RESIDENCE_PROCEDURE" => "residence_procedure",
            "CATEGORY_SHELTER" => "shelter",
            "CATEGORY_GUIDANCE" => "guidance",
            "CATEGORY_PERSPECTIVE" => "perspective",
            "CATEGORY_MEDICAL" => "medical",
            "CATEGORY_SAFETY" => "safety",
            "CATEGORY_OUTCOME" => "outcome",
            other => panic!("unexpected {other}"),
        })
        .collect();
    v.sort();
    v
}

/// The reason a category was withheld, if it was.
pub fn withheld_reason(r: &pb::GetCaseResponse, c: pb::Category) -> Option<pb::WithholdReason> {
    r.withheld
        .iter()
        .find(|w| w.category == c as i32)
        .map(|w| pb::WithholdReason::try_from(w.reason).unwrap())
}

/// Every set field of the released data matches a released category.
pub fn data_matches_released(r: &pb::GetCaseResponse) -> bool {
    let d = r.data.clone().unwrap_or_default();
    let set = [
        (d.identity.is_some(), pb::Category::Identity),
        (
            d.residence_procedure.is_some(),
            pb::Category::ResidenceProcedure,
        ),
        (d.shelter.is_some(), pb::Category::Shelter),
        (d.guidance.is_some(), pb::Category::Guidance),
        (d.perspective.is_some(), pb::Category::Perspective),
        (d.medical.is_some(), pb::Category::Medical),
        (d.safety.is_some(), pb::Category::Safety),
        (d.outcome.is_some(), pb::Category::Outcome),
    ];
    set.iter()
        .all(|(present, c)| *present == r.released.contains(&(*c as i32)))
}

/// Which database the integration tests run on: SQLite (default) or, with
/// `SLUIS_TEST_BACKEND=postgres`, a fresh database per test on the server
/// at `SLUIS_TEST_POSTGRES_URL` (e.g. postgres://postgres@127.0.0.1:5432/test).
pub fn postgres_admin_url() -> Option<String> {
    match std::env::var("SLUIS_TEST_BACKEND").as_deref() {
        Ok("postgres") => Some(
            std::env::var("SLUIS_TEST_POSTGRES_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into()),
        ),
        _ => None,
    }
}

pub fn on_postgres() -> bool {
    postgres_admin_url().is_some()
}

/// A new, empty PostgreSQL database; returns its URL.
pub async fn fresh_postgres_database(admin_url: &str) -> String {
    use sqlx::Connection;
    let name = format!("sluis_t_{}", uuid::Uuid::now_v7().simple());
    let mut admin = sqlx::PgConnection::connect(admin_url)
        .await
        .expect("connect to the test PostgreSQL server (SLUIS_TEST_POSTGRES_URL)");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .expect("create a test database");
    admin.close().await.ok();
    let base = admin_url
        .rsplit_once('/')
        .map(|(b, _)| b)
        .unwrap_or(admin_url);
    format!("{base}/{name}")
}

/// Points a node folder made by `sluis init` at the test database: nothing
/// changes on SQLite; on PostgreSQL its sluis.toml names a fresh database,
/// so the CLI commands run on the folder see the same data as the node.
pub async fn use_test_database(dir: &std::path::Path) {
    let Some(admin) = postgres_admin_url() else {
        return;
    };
    let url = fresh_postgres_database(&admin).await;
    let path = dir.join(init::CONFIG_FILE);
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text.replace(
        "database = \"sqlite://sluis.db\"",
        &format!("database = \"{url}\""),
    );
    std::fs::write(&path, text).unwrap();
}

pub async fn exec_sql(url: &str, sqlite: &str, postgres: &str) {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let sql = if url.starts_with("postgres") {
        postgres
    } else {
        sqlite
    };
    let mut conn = sqlx::AnyConnection::connect(url).await.expect("connect");
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&mut conn)
        .await
        .expect("run SQL");
    conn.close().await.ok();
}

/// The database URL a node folder's sluis.toml names (a relative SQLite
/// path resolved against the folder).
pub fn database_url_of(dir: &std::path::Path) -> String {
    Config::load(&dir.join(init::CONFIG_FILE))
        .expect("load config")
        .database_url()
        .expect("a database URL")
}

/// Points a node folder's sluis.toml at the database `url`.
pub fn set_database(dir: &std::path::Path, url: &str) {
    let path = dir.join(init::CONFIG_FILE);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut found = false;
    let lines: Vec<String> = text
        .lines()
        .map(|line| {
            if !found && line.starts_with("database = \"") {
                found = true;
                format!("database = \"{url}\"")
            } else {
                line.to_string()
            }
        })
        .collect();
    assert!(found, "no database line in {}", path.display());
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
}

/// A copy of the PostgreSQL database at `url` (`CREATE DATABASE … TEMPLATE`),
/// on the test server; returns the copy's URL. Nobody may be connected to
/// the original: stop its node and close every connection first.
pub async fn copy_postgres_database(url: &str) -> String {
    use sqlx::Connection;
    let admin = postgres_admin_url().expect("copying a database needs PostgreSQL");
    let (base, original) = url.rsplit_once('/').expect("a database URL");
    let original = original.split('?').next().unwrap();
    assert!(
        original
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_'),
        "unexpected database name {original}"
    );
    let name = format!("sluis_t_{}", uuid::Uuid::now_v7().simple());
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .expect("connect to the test PostgreSQL server");
    // The server waits a few seconds for sessions that are ending (a node
    // that just stopped, a CLI that just exited); try a few times more.
    let mut attempt = 0;
    loop {
        let sql = format!("CREATE DATABASE {name} TEMPLATE {original}");
        match sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
        {
            Ok(_) => break,
            Err(e) if attempt < 3 => {
                attempt += 1;
                eprintln!("copying database {original} (attempt {attempt}): {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("copy database {original}: {e}"),
        }
    }
    conn.close().await.ok();
    format!("{base}/{name}")
}

/// A connection of the test's own to a node's database (SQLite or PostgreSQL).
pub async fn connect_database(url: &str) -> sqlx::AnyConnection {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    sqlx::AnyConnection::connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect to {}: {e}", sluis::config::redact_url(url)))
}

/// SQL written with `?` placeholders, as the backend of `url` wants it:
/// unchanged for SQLite, `$1, $2, …` for PostgreSQL. (Placeholders only;
/// the SQL must have no `?` inside string literals.)
pub fn placeholders(url: &str, sql: &str) -> sqlx::AssertSqlSafe<String> {
    if !url.starts_with("postgres") {
        return sqlx::AssertSqlSafe(sql.to_string());
    }
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push_str(&format!("${n}"));
        } else {
            out.push(c);
        }
    }
    sqlx::AssertSqlSafe(out)
}
