//! A node worth measuring: a dev node (`sluis::dev::init`) with cases
//! registered through the API by their owner, consents that make several
//! participants' reads release some categories and withhold others, and the
//! workload file that tells the load generator who reads what.
//!
//! Reads are spread over five participants so the measured path is the
//! real mix: legal-basis releases (DT&V, IND, AVIM), consent-based ones
//! (DT&V, the NGO, with identity), withheld categories with reasons, and the
//! owner reading everything with an acting employee named (keyed-hashed into
//! the record).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use tonic::Request;
use tonic::transport::Channel;

use sluis::model::Category;
use sluis::net::client::{self, ClientPem, Clients};
use sluis::rpc::proto::v1 as pb;

/// The owner of every benchmark case, and the employee acting for it.
pub const OWNER: &str = "gemeente-utrecht";
pub const OWNER_ACTOR: &str = "mw-0042";
const NGO: &str = "ngo-vluchtelingenwerk";

/// Who reads, for what purpose; each releases a different set of categories.
const READERS: [(&str, &str, Option<&str>); 5] = [
    ("dtv", "return", None),
    ("ind", "legalisation", None),
    ("avim", "return", None),
    (NGO, "case_consultation", None),
    (OWNER, "case_consultation", Some(OWNER_ACTOR)),
];

/// What the load generator needs to call a node: where, as whom, which cases.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Workload {
    /// Address to call (only used by `loadgen`; `compare` knows its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<SocketAddr>,
    /// Name the node's certificate is checked against.
    pub server_name: String,
    /// CA certificate (PEM) that issued the node's certificate.
    pub ca: PathBuf,
    /// One entry per calling participant; connections go round-robin.
    pub clients: Vec<ClientSpec>,
    /// Cases read, in turn.
    pub case_ids: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClientSpec {
    /// Participant id (an organisation), for labels only.
    pub participant: String,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub purpose: String,
    /// `x-sluis-actor` to send, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
}

impl Workload {
    pub fn load(path: &Path) -> anyhow::Result<Workload> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{} is malformed", path.display()))
    }

    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        std::fs::write(path, serde_json::to_string_pretty(self)?)
            .with_context(|| format!("cannot write {}", path.display()))
    }

    /// The standard readers of a dev node directory made by `devnode::init`.
    pub fn standard(node_dir: &Path, case_ids: Vec<String>) -> Workload {
        let clients = node_dir.join("pki").join("clients");
        Workload {
            target: None,
            server_name: "localhost".into(),
            ca: node_dir.join("pki").join("ca.pem"),
            clients: READERS
                .iter()
                .map(|(id, purpose, actor)| ClientSpec {
                    participant: id.to_string(),
                    cert: clients.join(format!("{id}.pem")),
                    key: clients.join(format!("{id}.key")),
                    purpose: purpose.to_string(),
                    actor: actor.map(String::from),
                })
                .collect(),
            case_ids,
        }
    }
}

/// Connects as `spec` (a fresh HTTP/2 connection each time).
pub async fn connect(
    addr: SocketAddr,
    workload: &Workload,
    spec: &ClientSpec,
) -> anyhow::Result<Channel> {
    let read = |p: &Path| {
        std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))
    };
    let pem = ClientPem {
        ca: read(&workload.ca)?,
        identity: Some((read(&spec.cert)?, read(&spec.key)?)),
    };
    client::connect(addr, &workload.server_name, &pem)
        .await
        .with_context(|| format!("cannot connect to {addr} as {}", spec.participant))
}

fn with_actor<T>(msg: T, actor: Option<&str>) -> Request<T> {
    let mut r = Request::new(msg);
    if let Some(a) = actor
        && let Ok(v) = a.parse()
    {
        r.metadata_mut().insert(sluis::rpc::ACTOR_HEADER, v);
    }
    r
}

/// A GetCase request as `spec` sends it.
pub fn get_case_request(spec: &ClientSpec, case_id: &str) -> Request<pb::GetCaseRequest> {
    with_actor(
        pb::GetCaseRequest {
            subject: Some(pb::get_case_request::Subject::CaseId(case_id.to_string())),
            purpose: spec.purpose.clone(),
            categories: vec![],
        },
        spec.actor.as_deref(),
    )
}

/// Case `i`: every category filled, fields of fixed width so that every
/// case encodes to the same size (and every answer to a participant too).
/// The identity is fictional; it is never printed.
pub fn case_data(i: u64) -> pb::CaseData {
    pb::CaseData {
        identity: Some(pb::Identity {
            name: format!("Bench Persoon {i:08}"),
            date_of_birth: "1990-04-01".into(),
            nationality: "ERI".into(),
            v_number: format!("{:010}", 3_000_000_000u64 + i % 1_000_000_000),
            bsn: String::new(),
        }),
        residence_procedure: Some(pb::ResidenceProcedure {
            status: "regular application rejected; no procedure pending".into(),
            last_decision_date: "2026-03-15".into(),
            pending: false,
        }),
        shelter: Some(pb::Shelter {
            location: "LVV Utrecht, locatie Oost".into(),
            since: "2026-04-01".into(),
            until: String::new(),
            notes: "shares a room".into(),
        }),
        guidance: Some(pb::Guidance {
            organisation: NGO.into(),
            notes: "weekly talks about the future".into(),
        }),
        perspective: Some(pb::Perspective {
            kind: pb::PerspectiveKind::Return as i32,
            milestones: vec![pb::Milestone {
                description: "travel document requested".into(),
                date: "2026-10-01".into(),
                reached: false,
            }],
        }),
        medical: Some(pb::Medical {
            notes: "needs regular care".into(),
        }),
        safety: Some(pb::Safety {
            notes: "no incidents".into(),
        }),
        outcome: Some(pb::Outcome {
            reached: false,
            kind: pb::PerspectiveKind::Unspecified as i32,
            date: String::new(),
        }),
    }
}

/// The two consents every benchmark case gets, as (recipient, categories,
/// purposes): the NGO by name for identity, perspective and shelter; DT&V
/// as a role for perspective on return.
pub fn consent_terms() -> [(pb::recipient::Recipient, Vec<Category>, Vec<&'static str>); 2] {
    [
        (
            pb::recipient::Recipient::Participant(NGO.into()),
            vec![Category::Identity, Category::Perspective, Category::Shelter],
            vec!["case_consultation", "shelter", "guidance"],
        ),
        (
            pb::recipient::Recipient::Role("dtv".into()),
            vec![Category::Perspective],
            vec!["return"],
        ),
    ]
}

/// Registers `n` cases as their owner, with the two consents each, through
/// the node's API (16 at a time). Returns the case ids in order.
pub async fn populate(
    addr: SocketAddr,
    workload: &Workload,
    n: usize,
) -> anyhow::Result<Vec<String>> {
    let owner = workload
        .clients
        .iter()
        .find(|c| c.participant == OWNER)
        .context("the workload has no case owner")?;
    let channel = connect(addr, workload, owner).await?;
    let clients = Clients::new(channel);
    let ids = Arc::new(std::sync::Mutex::new(vec![String::new(); n]));
    let workers = 16.min(n.max(1));
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..workers {
        let mut c = clients.clone();
        let ids = ids.clone();
        tasks.spawn(async move {
            let mut i = w;
            while i < n {
                let reg = c
                    .cases
                    .register_case(with_actor(
                        pb::RegisterCaseRequest {
                            data: Some(case_data(i as u64)),
                        },
                        Some(OWNER_ACTOR),
                    ))
                    .await?
                    .into_inner();
                for (recipient, categories, purposes) in consent_terms() {
                    c.consents
                        .grant_consent(with_actor(
                            pb::GrantConsentRequest {
                                case_id: reg.case_id.clone(),
                                recipients: vec![pb::Recipient {
                                    recipient: Some(recipient),
                                }],
                                categories: categories.iter().map(|c| c.code().into()).collect(),
                                purposes: purposes.iter().map(|p| p.to_string()).collect(),
                                valid_from: None,
                                valid_until: None,
                                evidence_ref: format!("BENCH-{i:08}"),
                            },
                            Some(OWNER_ACTOR),
                        ))
                        .await?;
                }
                if let Ok(mut ids) = ids.lock() {
                    ids[i] = reg.case_id;
                }
                i += workers;
            }
            Ok::<(), tonic::Status>(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    let ids = ids.lock().map(|v| v.clone()).unwrap_or_default();
    Ok(ids)
}

/// One read per participant of the first case: the answers the baseline
/// replays, so that it sends the same bytes the gateway sends.
pub async fn capture_answers(
    addr: SocketAddr,
    workload: &Workload,
) -> anyhow::Result<Vec<(String, pb::GetCaseResponse)>> {
    let Some(case_id) = workload.case_ids.first() else {
        bail!("the workload has no cases");
    };
    let mut out = Vec::new();
    for spec in &workload.clients {
        let channel = connect(addr, workload, spec).await?;
        let mut c = pb::case_service_client::CaseServiceClient::new(channel);
        let r = c
            .get_case(get_case_request(spec, case_id))
            .await
            .with_context(|| format!("{} cannot read a benchmark case", spec.participant))?
            .into_inner();
        if r.released.is_empty() {
            bail!(
                "{} received nothing for purpose {}: the benchmark would measure a denial",
                spec.participant,
                spec.purpose
            );
        }
        out.push((spec.participant.clone(), r));
    }
    Ok(out)
}

/// Category names of a released list, for a summary line.
pub fn category_names(codes: &[i32]) -> String {
    codes
        .iter()
        .filter_map(|c| Category::from_code(*c))
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Folder for the node (must not hold one yet).
    #[arg(long)]
    pub dir: PathBuf,
    /// Cases to register.
    #[arg(long, default_value_t = 100)]
    pub cases: usize,
    /// Address the node will listen on (written into its sluis.toml).
    #[arg(long, default_value = "127.0.0.1:7443")]
    pub listen: SocketAddr,
}

/// `bench setup`: a node directory and its workload file.
pub async fn run_cli(args: Args) -> anyhow::Result<()> {
    if !args.listen.ip().is_loopback() {
        bail!("the benchmark node listens on 127.0.0.1 only");
    }
    let config_path = sluis::dev::init::init(&args.dir, args.listen).await?;
    let mut config = sluis::config::Config::load(&config_path)?;
    config.node.listen = "127.0.0.1:0".parse()?;
    let node = sluis::node::Node::start(&config).await?;
    let mut workload = Workload::standard(&args.dir, Vec::new());
    eprintln!("registering {} cases with consents…", args.cases);
    workload.case_ids = populate(node.local_addr, &workload, args.cases).await?;
    for (who, r) in capture_answers(node.local_addr, &workload).await? {
        eprintln!("  {who:<22} receives {}", category_names(&r.released));
    }
    node.shutdown().await?;
    workload.target = Some(args.listen);
    let path = args.dir.join("workload.json");
    workload.save(&path)?;
    let d = args.dir.display();
    println!(
        "node in {d}, workload in {}\n\nserve it:  cargo run --release -- serve --config {d}/sluis.toml\nload it:   cargo run --release -p sluis-bench -- loadgen --workload {} --rate 1000",
        path.display(),
        path.display()
    );
    Ok(())
}
