//! A real node for integration tests: `sluis init` into a temporary folder
//! (dev PKI, keys, policy, SQLite), served on 127.0.0.1:0 over mTLS, and
//! clients that connect with their own certificates.
#![allow(dead_code)]

pub mod by_hand;
pub mod federated;
pub mod federation;
pub mod private_pg;
pub mod served;

use std::path::PathBuf;
use std::time::Duration;

use sluis::config::Config;
use sluis::dev::init;
use sluis::net::client::{self, ClientPem};
use sluis::net::pki::{CertAuthority, ClientCertSpec, IssuedCert};
use sluis::node::Node;
use sluis::rpc::Clients;
use sluis::rpc::proto::v1 as pb;
use sluis::store::LogRow;
use sluis::tlog::{AccessRecord, Decision};
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
        TestNode::start_in(true, edit).await
    }

    /// A node on a SQLite file whichever backend the other tests use: for
    /// what only SQLite has (the file's lock, its WAL).
    pub async fn start_on_sqlite(edit: impl FnOnce(&mut Config)) -> TestNode {
        TestNode::start_in(false, edit).await
    }

    async fn start_in(test_database: bool, edit: impl FnOnce(&mut Config)) -> TestNode {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = init::init(dir.path(), "127.0.0.1:0".parse().unwrap())
            .await
            .expect("init a node directory");
        if test_database {
            use_test_database(dir.path()).await;
        }
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

    /// A dev participant's certificate and key (PEM).
    pub fn identity(&self, participant: &str) -> (String, String) {
        let read = |ext: &str| {
            std::fs::read_to_string(self.pki().join(format!("clients/{participant}.{ext}")))
                .unwrap()
        };
        (read("pem"), read("key"))
    }

    /// Clients for a dev participant, with its own certificate.
    pub async fn client(&self, participant: &str) -> Clients {
        self.client_with(Some(self.identity(participant)))
            .await
            .expect("connect")
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

    /// A fingerprint of everything the node stores but its access log and
    /// the log's tree and checkpoints (see [`CONTENT`]), read over a
    /// connection of the test's own: equal before and after a request
    /// shows that the request changed nothing.
    pub async fn digest(&self) -> String {
        use sha2::Digest;
        let mut db = connect_database(&self.database_url()).await;
        let mut hash = sha2::Sha256::new();
        for query in CONTENT {
            for row in db.query(query, &[]).await {
                hash.update(format!("{row:?}\n"));
            }
            hash.update("--\n");
        }
        db.close().await;
        hex::encode(hash.finalize())
    }
}

/// Holds the access log's table locked over a connection of the test's
/// own, so that records wait before they are written (SQLite: the write
/// lock, within the node's 5 s busy timeout; PostgreSQL: a table lock).
pub struct LogLock(Database);

impl LogLock {
    pub async fn take(node: &TestNode) -> LogLock {
        let mut db = connect_database(&node.database_url()).await;
        if db.is_postgres() {
            db.execute("BEGIN", &[]).await;
            db.execute("LOCK TABLE access_log IN EXCLUSIVE MODE", &[])
                .await;
        } else {
            db.execute("BEGIN IMMEDIATE", &[]).await;
        }
        LogLock(db)
    }

    pub async fn release(mut self) {
        self.0.execute("COMMIT", &[]).await;
        self.0.close().await;
    }
}

/// A port on 127.0.0.1 that is free now and that no `127.0.0.1:0` bind will
/// be handed meanwhile, for a server that must be told its port before it
/// starts (a directory's endpoint, a node restarted on the same address).
///
/// A port taken from a `:0` bind and released is in the kernel's ephemeral
/// range, where the next `:0` bind of a parallel test may get it before
/// the server binds it ("Address already in use", "Connection refused" to
/// a neighbour's server). These come from below that range (Linux's
/// default starts at 32768), spread by process id and a counter so that
/// the tests of one binary and parallel binaries do not pick the same one.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    let base = std::process::id().wrapping_mul(7_919);
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (LOW + base.wrapping_add(n.wrapping_mul(13)) % SPAN) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port on 127.0.0.1 between {LOW} and {}", LOW + SPAN)
}

/// Runs two calls so that both are under way, each past the checks it
/// makes before its access record, before either record is written: the
/// log is held locked ([`LogLock`]) until both are in progress and have
/// read what they check (reads do not wait on the log's write lock). For
/// two calls that change one thing at the same moment.
pub async fn at_once<A, B>(node: &TestNode, a: A, b: B) -> (A::Output, B::Output)
where
    A: std::future::Future + Send + 'static,
    B: std::future::Future + Send + 'static,
    A::Output: Send + 'static,
    B::Output: Send + 'static,
{
    let lock = LogLock::take(node).await;
    let both = tokio::spawn(async move { tokio::join!(a, b) });
    wait_in_flight(node, 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    lock.release().await;
    both.await.unwrap()
}

/// Waits until `n` requests are in progress on the node at once.
pub async fn wait_in_flight(node: &TestNode, n: usize) {
    for _ in 0..200 {
        if node.node.in_flight.now() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "{n} requests never were in progress at once ({} are)",
        node.node.in_flight.now()
    );
}

/// What [`TestNode::digest`] covers: every row of every table a request
/// can change besides the log (cases, their data, consents with their
/// recipients and events, issued pseudonyms, the subject index, the
/// writes' idempotency keys), in a fixed order.
const CONTENT: [&str; 8] = [
    "SELECT id, owner, version, updated_at, subject_ref FROM cases ORDER BY id",
    "SELECT case_id, category, sealed FROM case_data ORDER BY case_id, category",
    "SELECT id, case_id, categories, purposes, valid_from, valid_until FROM consents ORDER BY id",
    "SELECT consent_id, kind, value FROM consent_recipients ORDER BY consent_id, kind, value",
    "SELECT seq, consent_id, kind, at FROM consent_events ORDER BY seq",
    "SELECT recipient, pseudonym, case_id FROM pseudonyms ORDER BY recipient, pseudonym",
    "SELECT kind, digest, case_id FROM subject_index ORDER BY kind, digest, case_id",
    "SELECT caller, request_id, method, digest, resource_id, seq FROM request_keys
     ORDER BY caller, request_id",
];

/// The one access record of the request with this id. Waits for it:
/// answers outside `sluis.v1` (health, reflection) are recorded without
/// holding the answer.
pub async fn record_of(node: &TestNode, request_id: &str) -> AccessRecord {
    node.wait_for_log(|r| r.request_id == request_id).await;
    let rows: Vec<LogRow> = node
        .log()
        .await
        .into_iter()
        .filter(|r| r.request_id == request_id)
        .collect();
    assert_eq!(rows.len(), 1, "one access record per request id");
    let rec = AccessRecord::decode(&rows[0].record).expect("access record decodes");
    assert_eq!(rec.request_id, request_id);
    rec
}

/// The `x-request-id` of an answer (a UUIDv7).
pub fn request_id_of(md: &tonic::metadata::MetadataMap) -> String {
    let id = md
        .get("x-request-id")
        .expect("x-request-id in the response metadata")
        .to_str()
        .expect("x-request-id is ASCII")
        .to_string();
    let uuid = uuid::Uuid::parse_str(&id).expect("x-request-id is a UUID");
    assert_eq!(uuid.get_version_num(), 7, "x-request-id is a UUIDv7");
    id
}

/// Asserts that `answer` refuses a certificate no participant is registered
/// for (PERMISSION_DENIED, saying to get registered) on `method`, and that
/// its one access record says so, names the certificate by `fp`, and holds
/// nothing of a case.
pub async fn expect_unregistered(
    node: &TestNode,
    method: &str,
    answer: Result<(), tonic::Status>,
    fp: &str,
) -> AccessRecord {
    let status = answer.expect_err(method);
    assert_eq!(
        status.code(),
        tonic::Code::PermissionDenied,
        "{method}: {status:?}"
    );
    assert!(
        status.message().contains("register"),
        "{method}: the message says to get registered: {}",
        status.message()
    );
    use tonic_types::StatusExt;
    assert_eq!(
        status
            .get_error_details()
            .error_info()
            .map(|i| i.reason.as_str()),
        Some("CERTIFICATE_NOT_REGISTERED"),
        "{method}: the reason, for programs"
    );
    let rec = record_of(node, &request_id_of(status.metadata())).await;
    assert_eq!(rec.method, method);
    assert_eq!((rec.caller.as_str(), rec.role.as_str()), ("-", "-"));
    assert_eq!(rec.decision, Decision::Denied, "{method}");
    assert_eq!(rec.status, "PERMISSION_DENIED");
    assert_eq!(rec.peer_fingerprint.as_deref(), Some(fp), "{method}");
    assert!(rec.released.is_empty());
    assert!(
        rec.case_id.is_none(),
        "{method}: an unregistered caller learns nothing of the case"
    );
    rec
}

/// The `x-request-id` a response carries: the id of its access record.
pub fn request_id<T>(r: &tonic::Response<T>) -> String {
    r.metadata()
        .get("x-request-id")
        .expect("every response carries x-request-id")
        .to_str()
        .unwrap()
        .to_string()
}

/// The node's log lines, captured: a `tracing` writer that keeps what is
/// written, for tests that check what the node logs.
#[derive(Clone, Default)]
pub struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// Installs a subscriber at `level` that writes here, for the whole
    /// test binary (one such test per file).
    pub fn install(level: &str) -> Captured {
        let captured = Captured::default();
        let writer = captured.clone();
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(level))
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .init();
        captured
    }

    pub fn bytes(&self) -> Vec<u8> {
        self.0.lock().unwrap().clone()
    }

    pub fn has(&self, text: &str) -> bool {
        String::from_utf8_lossy(&self.0.lock().unwrap()).contains(text)
    }
}

/// Makes the real access-log table refuse writes (or accept them again),
/// over a connection of its own, as a full disk or a broken volume would.
pub async fn block_log(node: &TestNode, blocked: bool) {
    if blocked {
        node.sql(
            "CREATE TRIGGER block_log BEFORE INSERT ON access_log BEGIN SELECT RAISE(ABORT, 'disk full'); END",
            "CREATE FUNCTION block_log() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'disk full'; END; $$;
             CREATE TRIGGER block_log BEFORE INSERT ON access_log FOR EACH ROW EXECUTE FUNCTION block_log();",
        )
        .await;
    } else {
        node.sql(
            "DROP TRIGGER block_log",
            "DROP TRIGGER block_log ON access_log; DROP FUNCTION block_log();",
        )
        .await;
    }
}

/// A consent request of the owner's for `case_id`: DT&V may see the
/// perspective for `return`, evidence `DMS-1`; tests change what they test.
pub fn consent_request(case_id: &str) -> pb::GrantConsentRequest {
    pb::GrantConsentRequest {
        request_id: String::new(),
        case_id: case_id.into(),
        recipients: vec![participant("dtv")],
        categories: cats(&[pb::Category::Perspective]),
        purposes: vec!["return".into()],
        valid_from: None,
        valid_until: None,
        evidence_ref: "DMS-1".into(),
    }
}

pub fn with_actor<T>(msg: T) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut()
        .insert("x-sluis-actor", ACTOR.parse().unwrap());
    r
}

/// Registers intakes through `owner`, `n` of each perspective kind in
/// `mix`, as generated people numbered from `first` (V-numbers from
/// `v_base + first`), intake dates in February 2025; returns the next number.
pub async fn register_intakes(
    owner: &mut Clients,
    mix: &[(pb::PerspectiveKind, usize)],
    first: usize,
    v_base: u64,
) -> usize {
    let mut i = first;
    for &(kind, n) in mix {
        for _ in 0..n {
            let mut d = full_case(
                &format!("Gegenereerd Persoon {i:05}"),
                &format!("{:010}", v_base + i as u64),
                "",
            );
            d.perspective = Some(pb::Perspective {
                kind: kind as i32,
                intake_scenario: kind as i32,
                intake_date: format!("2025-02-{:02}", 1 + i % 27),
                ..Default::default()
            });
            d.outcome = None;
            owner
                .cases
                .register_case(with_actor(pb::RegisterCaseRequest {
                    request_id: String::new(),
                    data: Some(d),
                }))
                .await
                .expect("register");
            i += 1;
        }
    }
    i
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
            ..Default::default()
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
            ..Default::default()
        }),
    }
}

/// An mTLS channel to the node at `addr` as participant `who`, with the
/// certificates of the node folder `dir` (made by `sluis init`).
pub async fn channel_as(
    addr: std::net::SocketAddr,
    dir: &std::path::Path,
    who: &str,
) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    let pki = dir.join("pki");
    let read = |p: PathBuf| std::fs::read_to_string(p).unwrap();
    let pem = ClientPem {
        ca: read(pki.join("ca.pem")),
        identity: Some((
            read(pki.join(format!("clients/{who}.pem"))),
            read(pki.join(format!("clients/{who}.key"))),
        )),
    };
    client::connect(addr, "localhost", &pem).await
}

/// A consent by the case owner: `role` may receive the perspective for
/// return. Returns the consent id.
pub async fn grant_to_role(c: &mut Clients, case_id: &str, role_id: &str) -> String {
    c.consents
        .grant_consent(with_actor(pb::GrantConsentRequest {
            request_id: String::new(),
            case_id: case_id.into(),
            recipients: vec![role(role_id)],
            categories: vec![pb::Category::Perspective as i32],
            purposes: vec!["return".into()],
            valid_from: None,
            valid_until: None,
            evidence_ref: "DMS-1".into(),
        }))
        .await
        .expect("grant")
        .into_inner()
        .consent
        .expect("a consent")
        .consent_id
}

/// `tlog::verify::verify_log_history` over a node's database (the node
/// stopped or killed), against the node's key history: what a privacy
/// officer's `sluis audit verify` runs.
pub async fn verify_log_of(config: &Config) -> sluis::tlog::verify::VerifyReport {
    let dir = config.path(&config.node.keys_dir);
    let keys = sluis::gateway::vault::Keys::load(&dir).unwrap();
    let history = keys.log_keys(&dir, &config.node.name).unwrap();
    let (store, _) = sluis::store::Store::open(
        &config.database_url().unwrap(),
        &sluis::store::PoolSettings::default(),
        false,
    )
    .await
    .expect("open the node's database");
    let report = sluis::tlog::verify::verify_log_history(&store, &history, None, |_, _| {})
        .await
        .expect("read the log");
    store.close().await;
    report
}

/// The subject access report of a case, as (participant, method) per entry.
pub async fn report(officer: &mut Clients, case_id: &str) -> Vec<(String, String)> {
    officer
        .audit
        .subject_access_report(pb::SubjectAccessReportRequest {
            subject: Some(pb::subject_access_report_request::Subject::CaseId(
                case_id.into(),
            )),
        })
        .await
        .unwrap()
        .into_inner()
        .entries
        .into_iter()
        .map(|e| (e.participant, e.method))
        .collect()
}

/// Registers a full case as the municipality; returns (case id, its pseudonym).
pub async fn register(c: &mut Clients) -> (String, String) {
    let r = c
        .cases
        .register_case(with_actor(pb::RegisterCaseRequest {
            request_id: String::new(),
            data: Some(full_case("Test Persoon", "1234567890", "111222333")),
        }))
        .await
        .expect("register")
        .into_inner();
    (r.case_id, r.subject_pseudonym)
}

/// The ids of every case the caller owns (`FindCases` with `SCOPE_OWN`,
/// page by page).
pub async fn own_cases(c: &mut Clients) -> Vec<String> {
    let mut own = Vec::new();
    let mut token = String::new();
    loop {
        let r = c
            .cases
            .find_cases(with_actor(pb::FindCasesRequest {
                scope: pb::find_cases_request::Scope::Own as i32,
                purpose: String::new(),
                page_size: 500,
                page_token: token.clone(),
            }))
            .await
            .expect("find own cases")
            .into_inner();
        own.extend(r.cases.into_iter().map(|c| c.case_id));
        if r.next_page_token.is_empty() {
            return own;
        }
        token = r.next_page_token;
    }
}

pub fn participant(id: &str) -> pb::Recipient {
    pb::Recipient {
        recipient: Some(pb::recipient::Recipient::Participant(id.into())),
    }
}

/// A role recipient by the role's name as the node spells it (`ngo`).
pub fn role(r: &str) -> pb::Recipient {
    pb::Recipient {
        recipient: Some(pb::recipient::Recipient::Role(role_code(r))),
    }
}

/// `sluis.v1.Role`'s code for a role's name (`privacy_officer`).
pub fn role_code(r: &str) -> i32 {
    pb::Role::from_str_name(&format!("ROLE_{}", r.to_uppercase()))
        .unwrap_or_else(|| panic!("no role {r}")) as i32
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
            request_id: String::new(),
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
        emergency_justification: String::new(),
    }
}

pub fn by_pseudonym(p: &str, purpose: &str) -> pb::GetCaseRequest {
    pb::GetCaseRequest {
        subject: Some(pb::get_case_request::Subject::SubjectPseudonym(p.into())),
        purpose: purpose.into(),
        categories: vec![],
        emergency_justification: String::new(),
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

/// Why a PostgreSQL-only test is ignored, and how it is run: the
/// PostgreSQL pass selects these tests by their module, `postgres_only`.
pub const NEEDS_POSTGRES: &str = "needs PostgreSQL: run with SLUIS_TEST_BACKEND=postgres and `-- --ignored postgres_only` (as .ci/run does)";

/// Fails, rather than passing without running, when a PostgreSQL-only test
/// is run without PostgreSQL.
pub fn require_postgres() {
    assert!(on_postgres(), "this test {NEEDS_POSTGRES}");
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
    match connect_database(url).await {
        Database::Sqlite(conn) => conn.execute_batch(sqlite).expect("run SQL"),
        Database::Postgres(mut conn) => {
            use sqlx::Connection;
            sqlx::raw_sql(sqlx::AssertSqlSafe(postgres.to_string()))
                .execute(&mut conn)
                .await
                .expect("run SQL");
            conn.close().await.ok();
        }
    }
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

/// A connection of the test's own to a node's database: the SQLite file
/// (rusqlite) or the PostgreSQL database (sqlx), as an operator or an
/// attacker with database access would open it.
pub enum Database {
    Sqlite(rusqlite::Connection),
    Postgres(sqlx::PgConnection),
}

/// A value to bind or a column read, whichever the database.
#[derive(Clone, Debug, PartialEq)]
pub enum Val {
    Null,
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
}

impl Val {
    pub fn int(&self) -> i64 {
        match self {
            Val::Int(i) => *i,
            v => panic!("not an integer: {v:?}"),
        }
    }
    pub fn opt_int(&self) -> Option<i64> {
        match self {
            Val::Null => None,
            v => Some(v.int()),
        }
    }
    pub fn text(&self) -> String {
        match self {
            Val::Text(t) => t.clone(),
            v => panic!("not text: {v:?}"),
        }
    }
    pub fn opt_text(&self) -> Option<String> {
        match self {
            Val::Null => None,
            v => Some(v.text()),
        }
    }
    pub fn blob(&self) -> Vec<u8> {
        match self {
            Val::Blob(b) => b.clone(),
            v => panic!("not a blob: {v:?}"),
        }
    }
}

impl From<i64> for Val {
    fn from(i: i64) -> Val {
        Val::Int(i)
    }
}
impl From<&str> for Val {
    fn from(s: &str) -> Val {
        Val::Text(s.to_string())
    }
}
impl From<&String> for Val {
    fn from(s: &String) -> Val {
        Val::Text(s.clone())
    }
}
impl From<&Option<String>> for Val {
    fn from(s: &Option<String>) -> Val {
        s.as_ref().map_or(Val::Null, Val::from)
    }
}
impl From<Vec<u8>> for Val {
    fn from(b: Vec<u8>) -> Val {
        Val::Blob(b)
    }
}
impl From<&Vec<u8>> for Val {
    fn from(b: &Vec<u8>) -> Val {
        Val::Blob(b.clone())
    }
}

impl Database {
    pub fn is_postgres(&self) -> bool {
        matches!(self, Database::Postgres(_))
    }

    /// Runs one statement written with `?` placeholders; returns the rows
    /// it changed.
    pub async fn execute(&mut self, sql: &str, params: &[Val]) -> u64 {
        match self {
            Database::Sqlite(conn) => {
                let mut q = conn.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
                // Stepped through, so a statement that returns rows (a
                // PRAGMA) runs too.
                let mut rows = q
                    .query(rusqlite::params_from_iter(params.iter().map(sqlite_value)))
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
                while rows
                    .next()
                    .unwrap_or_else(|e| panic!("{sql}: {e}"))
                    .is_some()
                {}
                drop(rows);
                drop(q);
                conn.changes()
            }
            Database::Postgres(conn) => postgres_query(sql, params)
                .execute(&mut *conn)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
                .rows_affected(),
        }
    }

    /// Every row of a query written with `?` placeholders.
    pub async fn query(&mut self, sql: &str, params: &[Val]) -> Vec<Vec<Val>> {
        match self {
            Database::Sqlite(conn) => {
                use rusqlite::types::ValueRef;
                let mut q = conn.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
                let n = q.column_count();
                let mut rows = q
                    .query(rusqlite::params_from_iter(params.iter().map(sqlite_value)))
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
                let mut out = Vec::new();
                while let Some(r) = rows.next().unwrap_or_else(|e| panic!("{sql}: {e}")) {
                    out.push(
                        (0..n)
                            .map(|i| match r.get_ref(i).unwrap() {
                                ValueRef::Null => Val::Null,
                                ValueRef::Integer(i) => Val::Int(i),
                                ValueRef::Real(f) => panic!("unexpected real {f}"),
                                ValueRef::Text(t) => Val::Text(String::from_utf8_lossy(t).into()),
                                ValueRef::Blob(b) => Val::Blob(b.to_vec()),
                            })
                            .collect(),
                    );
                }
                out
            }
            Database::Postgres(conn) => {
                use sqlx::{Column, Row, TypeInfo};
                let rows = postgres_query(sql, params)
                    .fetch_all(&mut *conn)
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
                rows.iter()
                    .map(|r| {
                        r.columns()
                            .iter()
                            .map(|c| {
                                let i = c.ordinal();
                                let v = match c.type_info().name() {
                                    "INT8" | "INT4" | "INT2" => {
                                        r.try_get::<Option<i64>, _>(i).map(|v| v.map(Val::Int))
                                    }
                                    "BYTEA" => {
                                        r.try_get::<Option<Vec<u8>>, _>(i).map(|v| v.map(Val::Blob))
                                    }
                                    _ => {
                                        r.try_get::<Option<String>, _>(i).map(|v| v.map(Val::Text))
                                    }
                                };
                                v.unwrap_or_else(|e| panic!("{sql}: column {i}: {e}"))
                                    .unwrap_or(Val::Null)
                            })
                            .collect()
                    })
                    .collect()
            }
        }
    }

    /// The one row of a query.
    pub async fn query_one(&mut self, sql: &str, params: &[Val]) -> Vec<Val> {
        let mut rows = self.query(sql, params).await;
        assert_eq!(rows.len(), 1, "{sql}: {} rows", rows.len());
        rows.remove(0)
    }

    pub async fn close(self) {
        match self {
            Database::Sqlite(conn) => conn.close().map_err(|(_, e)| e).unwrap(),
            Database::Postgres(conn) => {
                use sqlx::Connection;
                conn.close().await.unwrap()
            }
        }
    }
}

fn sqlite_value(v: &Val) -> rusqlite::types::Value {
    use rusqlite::types::Value;
    match v {
        Val::Null => Value::Null,
        Val::Int(i) => Value::Integer(*i),
        Val::Text(t) => Value::Text(t.clone()),
        Val::Blob(b) => Value::Blob(b.clone()),
    }
}

fn postgres_query<'q>(
    sql: &str,
    params: &[Val],
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    let mut q = sqlx::query(sqlx::AssertSqlSafe(placeholders(sql)));
    for v in params {
        q = match v {
            Val::Null => q.bind(None::<String>),
            Val::Int(i) => q.bind(*i),
            Val::Text(t) => q.bind(t.clone()),
            Val::Blob(b) => q.bind(b.clone()),
        };
    }
    q
}

/// The SQLite file a `sqlite://FILE?…` URL names.
pub fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    Some(PathBuf::from(rest.split('?').next().unwrap_or(rest)))
}

/// A connection of the test's own to a node's database (SQLite or PostgreSQL).
pub async fn connect_database(url: &str) -> Database {
    if let Some(file) = sqlite_file(url) {
        let conn = rusqlite::Connection::open_with_flags(
            &file,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE,
        )
        .unwrap_or_else(|e| panic!("open {}: {e}", file.display()));
        conn.busy_timeout(Duration::from_secs(5)).unwrap();
        return Database::Sqlite(conn);
    }
    use sqlx::Connection;
    let conn = sqlx::PgConnection::connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect to {}: {e}", sluis::store::redact_url(url)));
    Database::Postgres(conn)
}

/// SQL written with `?` placeholders as PostgreSQL wants it: `$1, $2, …`.
/// (Placeholders only; the SQL must have no `?` inside string literals.)
pub fn placeholders(sql: &str) -> String {
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
    out
}
