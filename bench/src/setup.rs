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

use sluis::dev::sample::{self, NGO, OWNER, OWNER_ACTOR, with_actor};
use sluis::model::Category;
use sluis::net::client::{self, ClientPem};
use sluis::rpc::Clients;
use sluis::rpc::proto::v1 as pb;

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

    /// The standard readers of a dev node directory made by `sluis::dev::init::init`.
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

/// A GetCase request as `spec` sends it.
/// Sets `key` (a setting `sluis init` wrote, which names every one) to
/// `value` in the config file at `path`.
pub fn set_setting(path: &Path, key: &str, value: &str) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path)?;
    let prefix = format!("{key} = ");
    let mut found = false;
    let lines: Vec<String> = text
        .lines()
        .map(|l| {
            if l.starts_with(&prefix) {
                found = true;
                format!("{prefix}{value}")
            } else {
                l.to_string()
            }
        })
        .collect();
    if !found {
        bail!("{} has no setting {key}", path.display());
    }
    std::fs::write(path, lines.join("\n") + "\n")?;
    Ok(())
}

pub fn get_case_request(spec: &ClientSpec, case_id: &str) -> Request<pb::GetCaseRequest> {
    with_actor(
        pb::GetCaseRequest {
            subject: Some(pb::get_case_request::Subject::CaseId(case_id.to_string())),
            purpose: spec.purpose.clone(),
            categories: vec![],
            emergency_justification: String::new(),
        },
        spec.actor.as_deref(),
    )
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
                            request_id: String::new(),
                            data: Some(sample::case_data(i as u64)),
                        },
                        Some(OWNER_ACTOR),
                    ))
                    .await?
                    .into_inner();
                for terms in sample::consents() {
                    c.consents
                        .grant_consent(with_actor(
                            terms.request(&reg.case_id, format!("BENCH-{i:08}")),
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
