//! `sluis audit …`: the privacy officer's commands. Each reads the access
//! log in one of two ways and never writes to it (the running node is the
//! log's only writer):
//!
//! - **against a node** (`--node https://host:port` with the officer's
//!   certificate, or `--profile FILE`): over gRPC and mutual TLS, as any
//!   officer's tool — the officer needs no database credentials and no key
//!   of the node, and each call is recorded in the log like every other;
//! - **on the node's host** (`--config sluis.toml`, the default): the
//!   node's database directly, read-only, for `verify` (which recomputes
//!   every tree node) and for an officer working on the host.
//!
//! What the officer types is checked by the field's one validation
//! (`gateway::validate`), as the node checks it; a case or request id that
//! names nothing is an error, never an empty answer. Written times are
//! RFC 3339 UTC with milliseconds, all of one width. A closed pipe
//! (`| head`) ends a command quietly (`cli::main`).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use crate::config::Config;
use crate::gateway::oversight::{self, Lang, ReportEntry, ReportNode, SubjectRef};
use crate::gateway::validate::{self, End};
use crate::gateway::vault::Keys;
use crate::model::clock::rfc3339_ms;
use crate::net::identity::Registry;
use crate::rpc::officer::{Officer, PAGE};
use crate::store::{LogFilter, Store};
use crate::tlog::AccessRecord;
use crate::tlog::checkpoint::Checkpoint;
use crate::tlog::note;
use crate::tlog::proof::{self, InclusionProof, LeafRef};
use crate::tlog::verify;

/// The privacy officer's commands.
#[derive(clap::Subcommand)]
pub(crate) enum Command {
    /// Recompute the whole tree from the stored entries; check every tree node, every signed
    /// checkpoint and, with --trusted-checkpoint, that the log still extends a checkpoint saved
    /// earlier. Runs on the node's host (--config).
    ///
    /// Exit codes: 0 the log is intact; 2 LOG NOT INTACT (something was changed, removed or
    /// added; the first bad index is named); 3 the keys do not match the log (the signing key
    /// in the keys folder, or --key, never signed this log: a configuration fault, not
    /// tampering; the log's checkpoints could not be checked); 1 the check could not run (no
    /// database, unreadable files).
    #[command(verbatim_doc_comment)]
    Verify {
        /// A signed checkpoint saved earlier (e.g. from `sluis audit checkpoint`).
        #[arg(long, value_name = "FILE")]
        trusted_checkpoint: Option<PathBuf>,
        /// The node's verifier key; repeat it for a log whose key was rotated or whose node was
        /// renamed, oldest first. Default: the node's key history (keys/signing.history, then
        /// the key derived from the node's own signing key).
        #[arg(long)]
        key: Vec<String>,
        /// Require a checkpoint of the log cosigned by at least K of the federation directory's
        /// witnesses (each a valid C2SP cosignature/v1 under the witness-key the directory lists
        /// for another node); exit 3 when none is. The directory is the node's `[federation]`
        /// one, verified with its verifier key.
        #[arg(long, value_name = "K")]
        cosignatures: Option<usize>,
        #[arg(long)]
        json: bool,
    },
    /// The witness alarms this node keeps: each peer node whose log forked or went back, with
    /// the two conflicting checkpoints it signed (the evidence, as signed notes), and who
    /// acknowledged it. Exit 0 when none stands unacknowledged, 4 when one does. Runs on the
    /// node's host (--config).
    ///
    /// With --acknowledge ID --note TEXT, a privacy officer acknowledges alarm ID on the
    /// serving node (--node with your certificate, or --profile): the node records it in its
    /// access log with the note (one line, no names, V-numbers or BSNs), keeps the evidence,
    /// witnesses that peer again, and its health `sluis.witness` is SERVING once every alarm is
    /// acknowledged.
    WitnessAlarms {
        #[arg(long)]
        json: bool,
        /// The alarm to acknowledge (its number in the listing).
        #[arg(long, value_name = "ID", requires = "note")]
        acknowledge: Option<u64>,
        /// What was done about it, one line.
        #[arg(long, requires = "acknowledge")]
        note: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// The access log's entries that match every filter given, in log order: a table in plain
    /// words (default), JSON lines or CSV.
    ///
    /// Dates alone are accepted: --since 2026-11-29 is that day from 00:00 UTC, --until
    /// 2026-11-29 includes that whole day. An unknown case or request id is an error.
    #[command(verbatim_doc_comment)]
    Query {
        #[command(flatten)]
        filters: Filters,
        /// text: one line per entry in plain words; jsonl or csv: every field.
        #[arg(long, value_enum, default_value = "text")]
        format: QueryFormat,
        /// Words of the text table: nl (Nederlands) or en (English).
        #[arg(long, default_value = "en")]
        lang: String,
        /// At most this many entries (default: all).
        #[arg(long)]
        limit: Option<u64>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Export access records: JSON lines or CSV for spreadsheets and SIEMs, or the Logboek
    /// Dataverwerkingen (LDV) shape for the processing log of Dutch government bodies.
    ///
    /// The export reads the log a page at a time (memory stays bounded whatever its size) and,
    /// on a terminal, shows its progress on standard error. It takes the filters of `query`.
    /// With --format ldv each line is one record: trace_id, span_id, status_code, name,
    /// start_time, end_time (ms since the epoch), foreign_operation when the caller sent a W3C
    /// traceparent, and the dpl.core.* attributes; dpl.core.data_subject_id is sealed to the
    /// privacy officer's key (open one with `sluis audit decrypt-subject`).
    /// docs/processing-log.md maps every field.
    #[command(verbatim_doc_comment)]
    Export {
        /// jsonl: every field of each record; csv: the same for spreadsheets; ldv: Logboek
        /// Dataverwerkingen lines (JSON).
        #[arg(long, value_enum, default_value = "jsonl")]
        format: ExportFormat,
        #[command(flatten)]
        filters: Filters,
        /// Write to FILE instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Make the privacy officer's key pair for the data subject ids in the log: the private key
    /// goes to --out (readable by its owner only; keep it with the officer, off the node), the
    /// public key into the node configuration's [processing_log] officer_key (when --config
    /// names an existing file) and to standard output. Restart the node to use it.
    OfficerKey {
        /// Where to write the private key (never overwritten).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Open one access record's sealed data subject id with the officer's private key; prints
    /// its type and the V-number or BSN. Without --sealed the record is read from the node's
    /// database by its request id; with it (and --type), from an LDV export line, offline.
    DecryptSubject {
        /// The officer's private key file (from `sluis audit officer-key`).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// The record's request id (`sluis.request_id` in the LDV export).
        #[arg(long)]
        request_id: String,
        /// `dpl.core.data_subject_id` as exported (base64).
        #[arg(long, requires = "id_type")]
        sealed: Option<String>,
        /// `dpl.core.data_subject_id_type`: Vreemdelingennummer or BSN.
        #[arg(long = "type", value_name = "TYPE", requires = "sealed")]
        id_type: Option<String>,
    },
    /// Print the latest signed checkpoint (to hand to another party).
    Checkpoint {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Print an inclusion proof for a request's access record and verify it.
    Prove {
        #[arg(long)]
        request_id: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// The subject access report (GDPR art. 15) for a case, a V-number or a BSN, in Dutch or
    /// English. A subject with no case on the node is an error, not an empty report. A
    /// V-number or BSN is looked up in the node's keyed subject index, against a node (--node)
    /// or on its host (--config, with the node's pseudonym key).
    Report {
        #[arg(long = "case", value_name = "CASE_ID", group = "subject")]
        case_id: Option<String>,
        #[arg(long, value_name = "V_NUMBER", group = "subject")]
        v_number: Option<String>,
        #[arg(long, value_name = "BSN", group = "subject")]
        bsn: Option<String>,
        /// nl (Nederlands) or en (English).
        #[arg(long, default_value = "en")]
        lang: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: Remote,
    },
}

/// What `sluis audit export` writes.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ExportFormat {
    Jsonl,
    Csv,
    /// Logboek Dataverwerkingen lines (`cli::ldv`).
    Ldv,
}

/// What `sluis audit query` writes.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum QueryFormat {
    Text,
    Jsonl,
    Csv,
}

/// The filters of `query` and `export`, as typed: each checked by its
/// field's one validation before anything is read.
#[derive(clap::Args, Clone, Debug, Default)]
pub(crate) struct Filters {
    /// From this date (00:00 UTC) or RFC 3339 time on, e.g. 2026-11-29 or 2026-11-29T08:00:00Z.
    #[arg(long)]
    pub(crate) since: Option<String>,
    /// Up to this time (exclusive), or through this date (the whole day, UTC).
    #[arg(long)]
    pub(crate) until: Option<String>,
    /// Only entries of this participant id ("-": callers not registered).
    #[arg(long, value_name = "PARTICIPANT")]
    pub(crate) participant: Option<String>,
    /// Only entries of callers in this role (municipality, ind, dtv, avim, ngo, monitor,
    /// privacy_officer).
    #[arg(long)]
    pub(crate) role: Option<String>,
    /// Only entries of this method (GetCase, FindCases, tls.handshake, ...).
    #[arg(long)]
    pub(crate) method: Option<String>,
    /// Only entries with this purpose (one of the node's).
    #[arg(long)]
    pub(crate) purpose: Option<String>,
    /// Only entries with this decision (allowed, partial, denied, invalid, not_found,
    /// handshake_failed, error).
    #[arg(long)]
    pub(crate) decision: Option<String>,
    /// Only entries about this case.
    #[arg(long = "case", value_name = "CASE_ID")]
    pub(crate) case_id: Option<String>,
    /// Only the entry of the call with this request id (its x-request-id).
    #[arg(long)]
    pub(crate) request_id: Option<String>,
}

/// Which entries a walk over the log takes: the store's filter, checked,
/// and the one request id asked for.
#[derive(Clone, Debug, Default)]
pub(crate) struct Query {
    pub(crate) filter: LogFilter,
    pub(crate) request_id: Option<String>,
}

/// How a refused filter is named in its message: as the officer typed it —
/// the command line's flag (`--since`, `--request-id`) or the console's
/// field (`since`, `request_id`).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Named {
    Flags,
    Fields,
}

impl Named {
    /// `flag` (`--request-id`) as this naming writes it.
    fn name(self, flag: &'static str) -> String {
        match self {
            Named::Flags => flag.to_string(),
            Named::Fields => flag.trim_start_matches("--").replace('-', "_"),
        }
    }
}

impl Filters {
    /// The filters checked as every entry point checks them, under the
    /// names the officer typed (`named`).
    pub(crate) fn check(&self, purposes: Option<&[String]>, named: Named) -> anyhow::Result<Query> {
        let n = |flag: &'static str| named.name(flag);
        let since = self
            .since
            .as_deref()
            .map(|s| validate::instant_or_date(&n("--since"), s, End::Since))
            .transpose()?;
        let until = self
            .until
            .as_deref()
            .map(|s| validate::instant_or_date(&n("--until"), s, End::Until))
            .transpose()?;
        validate::time_range(
            (n("--since").as_str(), since),
            (n("--until").as_str(), until),
        )?;
        if let Some(p) = self.participant.as_deref().filter(|p| *p != "-") {
            validate::participant_id(&n("--participant"), p)?;
        }
        if let Some(r) = &self.role {
            validate::role(&n("--role"), r)?;
        }
        if let Some(m) = &self.method {
            validate::method(&n("--method"), m)?;
        }
        if let (Some(p), Some(known)) = (&self.purpose, purposes)
            && !known.contains(p)
        {
            anyhow::bail!(
                "{}: unknown purpose; use one of {}",
                n("--purpose"),
                known.join(", ")
            );
        }
        if let Some(d) = &self.decision {
            validate::decision(&n("--decision"), d)?;
        }
        if let Some(c) = &self.case_id {
            validate::uuid(&n("--case"), c)?;
        }
        if let Some(r) = &self.request_id {
            validate::uuid(&n("--request-id"), r)?;
        }
        Ok(Query {
            filter: LogFilter {
                since,
                until,
                caller: self.participant.clone(),
                role: self.role.clone(),
                method: self.method.clone(),
                purpose: self.purpose.clone(),
                decision: self.decision.clone(),
                case_id: self.case_id.clone(),
                case_subject: None,
                subject: None,
            },
            request_id: self.request_id.clone(),
        })
    }
}

/// How to reach a node as the officer. Without `--node` or `--profile`,
/// the command reads the database of the node `--config` names.
#[derive(clap::Args, Clone, Debug, Default)]
pub(crate) struct Remote {
    /// Ask this node over gRPC with your officer certificate, e.g. https://sluis.example:7443.
    #[arg(long, value_name = "URL")]
    pub(crate) node: Option<String>,
    /// Your privacy officer's client certificate (PEM).
    #[arg(long, value_name = "PEM", requires = "node")]
    pub(crate) cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long, value_name = "PEM", requires = "node")]
    pub(crate) key: Option<PathBuf>,
    /// The CA that issued the node's certificate (PEM).
    #[arg(long, value_name = "PEM", requires = "node")]
    pub(crate) ca: Option<PathBuf>,
    /// The name the node's certificate is issued for (default: the host in --node).
    #[arg(long, requires = "node")]
    pub(crate) server_name: Option<String>,
    /// A profile file with node, cert, key, ca (and server_name), paths relative to it.
    #[arg(long, value_name = "FILE", conflicts_with = "node")]
    pub(crate) profile: Option<PathBuf>,
}

/// A profile file: how one officer reaches one node.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Profile {
    node: String,
    cert: PathBuf,
    key: PathBuf,
    ca: PathBuf,
    server_name: Option<String>,
}

/// A node reached as the officer: the audit service, and the host name.
pub(crate) struct Connected {
    pub(crate) officer: Officer,
    pub(crate) node: String,
}

impl Remote {
    fn wanted(&self) -> bool {
        self.node.is_some() || self.profile.is_some()
    }

    /// Connects over mTLS with the officer's certificate. Errors name what
    /// to fix: a missing flag, an unreadable file, a node that cannot be
    /// reached or refuses the certificate.
    pub(crate) async fn connect(&self) -> anyhow::Result<Connected> {
        let (node, cert, key, ca, server_name) = match &self.profile {
            Some(path) => {
                let text = crate::files::read_to_string(path, crate::files::Kind::Config)
                    .with_context(|| format!("cannot read the profile {}", path.display()))?;
                let p: Profile = toml::from_str(&text).map_err(|e| {
                    anyhow::anyhow!(
                        "the profile {} is not valid: {} (it holds node, cert, key, ca and optionally server_name)",
                        path.display(),
                        e.message()
                    )
                })?;
                let dir = path.parent().unwrap_or(Path::new("."));
                (
                    p.node,
                    dir.join(p.cert),
                    dir.join(p.key),
                    dir.join(p.ca),
                    p.server_name,
                )
            }
            None => {
                let need = |v: &Option<PathBuf>, flag: &str| {
                    v.clone().with_context(|| {
                        format!("--node needs {flag}: the officer's certificate, its key and the node's CA")
                    })
                };
                (
                    self.node.clone().unwrap_or_default(),
                    need(&self.cert, "--cert")?,
                    need(&self.key, "--key")?,
                    need(&self.ca, "--ca")?,
                    self.server_name.clone(),
                )
            }
        };
        let hostport = node
            .strip_prefix("https://")
            .map(|h| h.trim_end_matches('/'))
            .filter(|h| !h.is_empty() && !h.contains('/'))
            .with_context(|| {
                "--node must be https://HOST:PORT, e.g. https://sluis.example:7443".to_string()
            })?;
        let host = match hostport.rsplit_once(':') {
            Some((h, p)) if p.parse::<u16>().is_ok() => {
                h.trim_start_matches('[').trim_end_matches(']')
            }
            _ => anyhow::bail!("--node must name a port, e.g. https://{hostport}:7443"),
        };
        let addr = tokio::net::lookup_host(hostport)
            .await
            .ok()
            .and_then(|mut a| a.next())
            .with_context(|| format!("cannot resolve {hostport}"))?;
        let read = |p: &PathBuf| {
            crate::files::read_to_string(p, crate::files::Kind::Pem)
                .with_context(|| format!("cannot read {}", p.display()))
        };
        let pem = crate::net::client::ClientPem {
            ca: read(&ca)?,
            identity: Some((read(&cert)?, read(&key)?)),
        };
        let server_name = server_name.unwrap_or_else(|| host.to_string());
        let channel = crate::net::client::connect(addr, &server_name, &pem)
            .await
            .with_context(|| {
                format!(
                    "cannot connect to {hostport} over mTLS as the certificate {}",
                    cert.display()
                )
            })?;
        Ok(Connected {
            officer: Officer::new(channel),
            node: hostport.to_string(),
        })
    }
}

/// The node's refusal of an officer's call, for a person: what the node
/// said (its message names the field, or what it did not find).
fn refused(s: tonic::Status) -> anyhow::Error {
    let what = match s.code() {
        tonic::Code::NotFound => "not found",
        tonic::Code::InvalidArgument => "invalid",
        tonic::Code::PermissionDenied => "not permitted (is this a privacy officer's certificate?)",
        tonic::Code::Unauthenticated => "certificate not accepted",
        tonic::Code::Unavailable => "the node cannot answer now; try again",
        _ => "refused",
    };
    anyhow::anyhow!("{what}: {}", s.message())
}

/// Where the records come from.
pub(crate) enum Source {
    /// The node's database, on its host.
    Local { config: Box<Config>, store: Store },
    /// A node's `AuditService`, as the officer.
    Remote(Officer),
}

impl Source {
    /// One page of decoded records matching `q` from index `start` on, and
    /// the request id of the call's own record (remote: each call is
    /// recorded).
    async fn page(
        &mut self,
        q: &Query,
        start: i64,
    ) -> anyhow::Result<(Vec<(i64, AccessRecord)>, Option<String>)> {
        match self {
            Source::Remote(officer) => officer
                .query(&q.filter, q.request_id.as_deref(), start, PAGE)
                .await
                .map(|(rows, own)| (rows, Some(own)))
                .map_err(refused),
            Source::Local { config, store } => {
                // Entries about a case include the listings that named it
                // among others, as the node's QueryAccess does.
                let mut filter = q.filter.clone();
                if let Some(id) = &filter.case_id {
                    filter.case_subject = case_subject(config, store, id).await?;
                }
                let rows = match &q.request_id {
                    None => store.query_log(&filter, start, i64::from(PAGE)).await?,
                    Some(id) => {
                        let at = store.log_position(id).await?.with_context(
                            || "not found: no entry of the access log has this --request-id",
                        )?;
                        let mut rows = store.query_log(&filter, at.max(start), 1).await?;
                        rows.retain(|r| r.seq == at);
                        rows
                    }
                };
                if rows.is_empty()
                    && start == 0
                    && let Some(id) = &q.filter.case_id
                    && store.case_meta(id).await?.is_none()
                {
                    anyhow::bail!(
                        "not found: no case with this --case on this node, and no entry of the access log names it"
                    );
                }
                let rows = rows
                    .into_iter()
                    .map(|row| {
                        let r = AccessRecord::decode(&row.record).with_context(|| {
                            format!(
                                "entry {} does not decode; run `sluis audit verify`",
                                row.seq
                            )
                        })?;
                        Ok((row.seq, r))
                    })
                    .collect::<anyhow::Result<_>>()?;
                Ok((rows, None))
            }
        }
    }

    /// Every record matching `q`, in log order.
    pub(crate) fn records<'a>(&'a mut self, q: &'a Query) -> Records<'a> {
        Records {
            source: self,
            query: q,
            next: 0,
            page: Vec::new().into_iter(),
            done: false,
            own: Vec::new(),
        }
    }
}

/// The one walk over the log that `query`, `export` and the LDV export
/// share: every record matching a query, decoded, in log order, a page
/// at a time — memory holds one page whatever the log's size.
///
/// Against a node every page is a call, and every call adds its own record
/// to the log, which can match the same filter (a query about a case is
/// recorded about that case): the walk leaves out the records of its own
/// calls, and ends at a page that holds nothing else, so it ends.
pub(crate) struct Records<'a> {
    source: &'a mut Source,
    query: &'a Query,
    next: i64,
    page: std::vec::IntoIter<(i64, AccessRecord)>,
    done: bool,
    /// The request ids of the walk's own calls.
    own: Vec<String>,
}

impl Records<'_> {
    /// The next record and its index, or `None` after the last.
    pub(crate) async fn next(&mut self) -> anyhow::Result<Option<(i64, AccessRecord)>> {
        loop {
            if let Some(r) = self.page.next() {
                return Ok(Some(r));
            }
            if self.done {
                return Ok(None);
            }
            let (mut page, own) = self.source.page(self.query, self.next).await?;
            match page.last() {
                Some((i, _)) => self.next = i + 1,
                None => self.done = true,
            }
            page.retain(|(_, r)| !self.own.contains(&r.request_id));
            if page.is_empty() || self.query.request_id.is_some() {
                self.done = true;
            }
            self.own.extend(own);
            self.page = page.into_iter();
        }
    }

    /// The index the walk reads from next.
    pub(crate) fn position(&self) -> i64 {
        self.next
    }

    /// The log position of the entry with this request id, `None` when
    /// the log has none (a review's line names the access it reviews by
    /// it). Against a node it is a call of its own, left out of the walk
    /// as the others are.
    pub(crate) async fn position_of(&mut self, request_id: &str) -> anyhow::Result<Option<i64>> {
        match &mut *self.source {
            Source::Local { store, .. } => Ok(store.log_position(request_id).await?),
            Source::Remote(officer) => {
                let filter = LogFilter::default();
                match officer.query(&filter, Some(request_id), 0, 1).await {
                    Ok((rows, own)) => {
                        self.own.push(own);
                        Ok(rows.first().map(|(i, _)| *i))
                    }
                    Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
                    Err(s) => Err(refused(s)),
                }
            }
        }
    }
}

/// The node's store, read-only, for commands outside this file.
pub(crate) async fn open_store(config_path: &Path) -> anyhow::Result<Store> {
    Ok(open_local(config_path).await?.1)
}

async fn open_local(config_path: &Path) -> anyhow::Result<(Config, Store)> {
    let config = crate::cli::load_config(
        config_path,
        "give --config FILE on the node's host, or --node URL with your certificate",
    )?;
    if let Ok(db) = config.sqlite_path()
        && !db.exists()
    {
        anyhow::bail!("the node's database {} does not exist", db.display());
    }
    // Read-only use: no migrations, a small pool.
    let settings = crate::store::PoolSettings {
        max_connections: 2,
        ..config.pool_settings()
    };
    let (store, _) = Store::open(&config.database_url()?, &settings, false).await?;
    Ok((config, store))
}

/// The audit pseudonym of case `case_id`'s subject, as the log names it
/// (the node's pseudonym key; for a case referred away, the pseudonym its
/// entries carry); `None` for a case the node never held.
async fn case_subject(
    config: &Config,
    store: &Store,
    case_id: &str,
) -> anyhow::Result<Option<String>> {
    Ok(match store.case_meta(case_id).await? {
        Some(case) => {
            let keys = Keys::load(&config.path(&config.node.keys_dir))
                .context("entries about a case name its subject with the node's pseudonym key")?;
            Some(oversight::ReportedCase::of(&case, keys.pseudonym_secret()).subject)
        }
        None => oversight::reported_from_log(store, case_id)
            .await?
            .map(|c| c.subject),
    })
}

async fn source(config_path: &Path, remote: &Remote) -> anyhow::Result<Source> {
    Ok(if remote.wanted() {
        Source::Remote(remote.connect().await?.officer)
    } else {
        let (config, store) = open_local(config_path).await?;
        Source::Local {
            config: Box::new(config),
            store,
        }
    })
}

impl Source {
    async fn close(self) {
        if let Source::Local { store, .. } = self {
            store.close().await;
        }
    }

    /// The purposes the node knows, where this side can tell (the node
    /// checks them itself when asked remotely).
    fn purposes(&self) -> Option<&[String]> {
        match self {
            Source::Local { config, .. } => Some(&config.node.purposes),
            Source::Remote(_) => None,
        }
    }

    /// The node's name (the origin of its checkpoints, less the suffix).
    async fn node_name(&mut self) -> anyhow::Result<String> {
        match self {
            Source::Local { config, .. } => Ok(config.node.name.clone()),
            Source::Remote(officer) => {
                let (cp, _) = officer.checkpoint().await.map_err(refused)?;
                let origin = cp.note.lines().next().unwrap_or_default();
                Ok(origin
                    .strip_suffix("/access-log")
                    .unwrap_or(origin)
                    .to_string())
            }
        }
    }

    /// The latest signed checkpoint and the verifier key to check it with.
    async fn checkpoint(&mut self) -> anyhow::Result<(crate::store::StoredCheckpoint, String)> {
        match self {
            Source::Local { config, store } => Ok((
                proof::checkpoint(store, None).await?,
                own_verifier_key(config)?,
            )),
            Source::Remote(officer) => officer.checkpoint().await.map_err(refused),
        }
    }

    async fn inclusion_proof(
        &mut self,
        request_id: String,
    ) -> anyhow::Result<(InclusionProof, String)> {
        match self {
            Source::Local { config, store } => Ok((
                proof::inclusion_proof(store, LeafRef::RequestId(request_id), None).await?,
                own_verifier_key(config)?,
            )),
            Source::Remote(officer) => {
                let p = officer
                    .inclusion_proof(LeafRef::RequestId(request_id))
                    .await
                    .map_err(refused)?;
                let (_, key) = officer.checkpoint().await.map_err(refused)?;
                Ok((p, key))
            }
        }
    }
}

fn own_verifier_key(config: &Config) -> anyhow::Result<String> {
    let keys = Keys::load(&config.path(&config.node.keys_dir))
        .context("cannot derive the verifier key from the node's signing key; pass --key")?;
    Ok(note::verifier_key(
        &config.node.name,
        &keys.signing_public_key(),
    ))
}

/// Standard output, buffered; a closed pipe surfaces as an I/O error that
/// `cli::main` ends quietly on.
fn stdout() -> std::io::BufWriter<std::io::StdoutLock<'static>> {
    std::io::BufWriter::new(std::io::stdout().lock())
}

pub(crate) async fn run(config_path: &Path, command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::OfficerKey { out } => crate::cli::ldv::officer_key(config_path, &out),
        Command::DecryptSubject {
            key,
            request_id,
            sealed,
            id_type,
        } => {
            crate::cli::ldv::decrypt_subject(
                config_path,
                crate::cli::ldv::Decrypt {
                    key,
                    request_id,
                    sealed: sealed.zip(id_type),
                },
            )
            .await
        }
        Command::Verify {
            trusted_checkpoint,
            key,
            cosignatures,
            json,
        } => {
            let (config, store) = open_local(config_path).await?;
            let code = verify(&config, &store, trusted_checkpoint, key, json).await;
            let code = match (code, cosignatures) {
                (Ok(c), Some(k)) if c == ExitCode::SUCCESS => {
                    witnessed(&config, config_path, &store, k, json).await
                }
                (other, _) => other,
            };
            store.close().await;
            code
        }
        Command::WitnessAlarms {
            json,
            acknowledge: Some(id),
            note,
            remote,
        } => {
            if !remote.wanted() {
                anyhow::bail!(
                    "an acknowledgement is recorded by the serving node in its access log: ask it with your privacy officer's certificate (--node URL --cert --key --ca, or --profile)"
                );
            }
            let mut officer = remote.connect().await?.officer;
            let r = officer
                .acknowledge_witness_alarm(id, note.unwrap_or_default())
                .await
                .map_err(refused)?;
            let mut w = stdout();
            if json {
                writeln!(
                    w,
                    "{}",
                    serde_json::json!({
                        "alarm_id": r.alarm_id,
                        "node": r.node,
                        "unacknowledged": r.unacknowledged,
                        "access_record_id": r.access_record_id,
                    })
                )?;
            } else {
                writeln!(
                    w,
                    "witness alarm {} (node '{}') acknowledged, record {}; {} alarm(s) stand unacknowledged",
                    r.alarm_id, r.node, r.access_record_id, r.unacknowledged
                )?;
            }
            w.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Command::WitnessAlarms { json, .. } => {
            let (_, store) = open_local(config_path).await?;
            let alarms = store.witness_alarms().await;
            store.close().await;
            witness_alarms(alarms?, json)
        }
        Command::Query {
            filters,
            format,
            lang,
            limit,
            remote,
        } => {
            let lang = Lang::parse("--lang", &lang)?;
            let mut src = source(config_path, &remote).await?;
            let code = query(&mut src, &filters, format, lang, limit).await;
            src.close().await;
            code
        }
        Command::Export {
            format,
            filters,
            out,
            remote,
        } => {
            let mut src = source(config_path, &remote).await?;
            let code = export(&mut src, format, &filters, out).await;
            src.close().await;
            code
        }
        Command::Checkpoint { json, remote } => {
            let mut src = source(config_path, &remote).await?;
            let (cp, key) = src.checkpoint().await?;
            src.close().await;
            let mut w = stdout();
            if json {
                writeln!(
                    w,
                    "{}",
                    serde_json::json!({
                        "size": cp.size,
                        "root_hash": B64.encode(&cp.root),
                        "signed_at": rfc3339_ms(cp.at),
                        "signed_note": cp.note,
                        "verifier_key": key,
                    })
                )?;
            } else {
                write!(w, "{}", cp.note)?;
                eprintln!("verifier key: {key}");
            }
            w.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Prove {
            request_id,
            json,
            remote,
        } => {
            validate::uuid("--request-id", &request_id)?;
            let mut src = source(config_path, &remote).await?;
            let proved = src.inclusion_proof(request_id).await;
            src.close().await;
            let (proof, key) = proved?;
            prove(&proof, &key, json)
        }
        Command::Report {
            case_id,
            v_number,
            bsn,
            lang,
            json,
            remote,
        } => {
            let lang = Lang::parse("--lang", &lang)?;
            let subject = match (case_id, v_number, bsn) {
                (Some(c), _, _) => {
                    validate::uuid("--case", &c)?;
                    SubjectRef::CaseId(c)
                }
                (_, Some(v), _) => SubjectRef::VNumber(v),
                (_, _, Some(b)) => SubjectRef::Bsn(b),
                _ => anyhow::bail!("say whose report: --case CASE_ID, --v-number or --bsn"),
            };
            let mut src = source(config_path, &remote).await?;
            let made = report(&mut src, subject, lang).await;
            src.close().await;
            let (node, case_ids, entries, nodes) = made?;
            let mut w = stdout();
            if json {
                writeln!(w, "{}", report_json(&case_ids, &entries, &nodes))?;
            } else {
                write!(
                    w,
                    "{}",
                    oversight::report_text(&node, &case_ids, &entries, &nodes, lang)
                )?;
            }
            w.flush()?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The subject's cases and every access to them, worded in `lang`.
async fn report(
    src: &mut Source,
    subject: SubjectRef,
    lang: Lang,
) -> anyhow::Result<(String, Vec<String>, Vec<ReportEntry>, Vec<ReportNode>)> {
    match src {
        Source::Remote(officer) => {
            let r = officer.report(subject, lang).await.map_err(refused)?;
            let node = src.node_name().await?;
            Ok((node, r.case_ids, r.entries, r.nodes))
        }
        Source::Local { config, store } => {
            let keys = Keys::load(&config.path(&config.node.keys_dir)).context(
                "the report names the subject as the log does, with the node's pseudonym key",
            )?;
            // By V-number or BSN: the cases through the node's keyed
            // subject index, as the node itself finds them.
            let index = |key: validate::SubjectKey| {
                let digest = crate::gateway::pseudonym::Pseudonymiser::new(keys.pseudonym_secret())
                    .index_digest(key.kind(), key.value());
                (key.kind(), digest)
            };
            let (case_ids, by_number) = match subject {
                SubjectRef::CaseId(id) => (vec![id], false),
                SubjectRef::VNumber(v) => {
                    let (kind, digest) = index(validate::SubjectKey::v_number("--v-number", &v)?);
                    (store.cases_by_subject(kind, &digest).await?, true)
                }
                SubjectRef::Bsn(b) => {
                    let (kind, digest) = index(validate::SubjectKey::bsn("--bsn", &b)?);
                    (store.cases_by_subject(kind, &digest).await?, true)
                }
            };
            if case_ids.is_empty() {
                anyhow::bail!("not found: no case is registered for this subject on this node");
            }
            let mut reported = Vec::with_capacity(case_ids.len());
            for case_id in case_ids {
                reported.push(match store.case_meta(&case_id).await? {
                    Some(case) => oversight::ReportedCase::of(&case, keys.pseudonym_secret()),
                    // Referred to another node: its accesses here, as the
                    // log names them.
                    None => match store.referred_to(&case_id).await? {
                        Some(_) => oversight::reported_from_log(store, &case_id)
                            .await?
                            .context("not found: no entry of the access log names this case")?,
                        None if by_number => continue,
                        None => anyhow::bail!("not found: no case with this --case on this node"),
                    },
                });
            }
            let registry = Registry::new(&config.participants);
            let r =
                oversight::subject_report(store, &registry, &config.node.name, &reported).await?;
            let r = oversight::reworded(r, &config.node.name, lang);
            Ok((config.node.name.clone(), r.case_ids, r.entries, r.nodes))
        }
    }
}

fn report_json(
    case_ids: &[String],
    entries: &[ReportEntry],
    nodes: &[ReportNode],
) -> serde_json::Value {
    let nodes_in = nodes;
    let entries: Vec<_> = entries
        .iter()
        .map(|e| {
            let a = &e.access;
            serde_json::json!({
                "node": e.node,
                "request_id": e.request_id,
                "index": e.index,
                "proven": e.proof.is_some(),
                "at": rfc3339_ms(a.at),
                "organisation": a.organisation,
                "participant": a.participant,
                "role": a.role,
                "method": a.method,
                "purpose": a.purpose,
                "released": a.released.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
                "withheld": a.withheld.iter().map(|(c, r)| serde_json::json!({"category": c.as_str(), "reason": r})).collect::<Vec<_>>(),
                "decision": a.decision.as_str(),
                "summary": e.summary,
            })
        })
        .collect();
    let nodes: Vec<_> = nodes
        .iter()
        .map(|n| {
            serde_json::json!({
                "node": n.node,
                "answered": n.answered,
                "missing_reason": n.missing_reason,
                "checkpoint": n.checkpoint,
                "witnesses": n.witnesses,
                "cosignatures_required": n.quorum.required,
                "witnessed": n.witnessed,
                "witness_note": n.witness_note,
                "log_warning": n.log_warning,
                "witness_alarm": n.witness_alarm,
            })
        })
        .collect();
    serde_json::json!({
        "case_ids": case_ids,
        "entries": entries,
        "nodes": nodes,
        "complete": oversight::complete(nodes_in),
        "witnessed": oversight::witnessed(nodes_in),
    })
}

fn prove(proof: &InclusionProof, key: &str, json: bool) -> anyhow::Result<ExitCode> {
    let signed = Checkpoint::verify(&proof.checkpoint.note, key);
    let verified = proof.verify();
    let ok = signed.is_ok() && verified.is_ok();
    let leaf_hash = B64.encode(crate::tlog::merkle::leaf_hash(&proof.leaf));
    let mut w = stdout();
    if json {
        writeln!(
            w,
            "{}",
            serde_json::json!({
                "index": proof.index,
                "tree_size": proof.tree_size,
                "leaf_hash": leaf_hash,
                "hashes": proof.hashes.iter().map(|h| B64.encode(h)).collect::<Vec<_>>(),
                "checkpoint": proof.checkpoint.note,
                "verifier_key": key,
                "verified": ok,
            })
        )?;
    } else {
        writeln!(
            w,
            "entry {} in the log of size {}",
            proof.index, proof.tree_size
        )?;
        writeln!(w, "leaf hash  {leaf_hash}")?;
        for (i, h) in proof.hashes.iter().enumerate() {
            writeln!(w, "proof[{i:>2}]  {}", B64.encode(h))?;
        }
        writeln!(w, "checkpoint:\n{}", proof.checkpoint.note)?;
        match (&signed, &verified) {
            (Ok(_), Ok(())) => writeln!(w, "verified: the entry is in the log the node signed")?,
            (Err(e), _) => writeln!(w, "NOT verified: checkpoint signature: {e}")?,
            (_, Err(e)) => writeln!(w, "NOT verified: {e}")?,
        }
    }
    w.flush()?;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `sluis audit verify`'s exit code when the log is not intact.
const VERIFY_NOT_INTACT: u8 = 2;
/// `sluis audit verify`'s exit code when the keys given never signed the log
/// (and nothing else was found): the keys are wrong, not the log.
const VERIFY_KEY_MISMATCH: u8 = 3;

async fn verify(
    config: &Config,
    store: &Store,
    trusted: Option<PathBuf>,
    key: Vec<String>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let keys = match key.is_empty() {
        false => key,
        true => {
            let dir = config.path(&config.node.keys_dir);
            Keys::load(&dir)
                .and_then(|k| k.log_keys(&dir, &config.node.name))
                .context("cannot read the node's key history; pass --key")?
        }
    };
    let trusted = match trusted {
        Some(path) => Some(
            crate::files::read_to_string(&path, crate::files::Kind::Note).with_context(|| {
                format!("cannot read the trusted checkpoint {}", path.display())
            })?,
        ),
        None => None,
    };
    let tty = std::io::stderr().is_terminal() && !json;
    let report = verify::verify_log_history(store, &keys, trusted.as_deref(), |done, total| {
        if tty && total > 0 {
            let pct = done * 100 / total;
            eprint!("\rverifying {done}/{total} entries ({pct}%)");
            let _ = std::io::stderr().flush();
        }
    })
    .await?;
    if tty {
        eprintln!();
    }
    let mut w = stdout();
    if json {
        writeln!(
            w,
            "{}",
            serde_json::json!({
                "intact": report.intact(),
                "entries": report.entries,
                "checkpoints": report.checkpoints,
                "tree_nodes": report.tree_nodes,
                "root": report.root,
                "trusted_checkpoint": report.trusted_checkpoint,
                "first_bad_index": report.first_problem().map(|p| p.index),
                "key_mismatch": report.key_mismatch,
                "problems": report.problems,
                "seconds": report.seconds,
                "entries_per_second": report.entries_per_second(),
            })
        )?;
    } else if report.intact() {
        writeln!(
            w,
            "log intact: {} entries, {} tree nodes, {} signed checkpoints{} verified in {:.2}s ({:.0} entries/s)\nroot {}",
            report.entries,
            report.tree_nodes,
            report.checkpoints,
            report
                .trusted_checkpoint
                .map(|s| format!(", extends the trusted checkpoint of size {s},"))
                .unwrap_or_default(),
            report.seconds,
            report.entries_per_second(),
            report.root
        )?;
    } else {
        if let Some(m) = &report.key_mismatch {
            writeln!(
                w,
                "KEYS DO NOT MATCH THE LOG: its checkpoints could not be checked.\n{}",
                m.explain()
            )?;
        }
        if let Some(first) = report.first_problem() {
            let found = match report.key_mismatch {
                Some(_) => "Found without the keys: LOG NOT INTACT at index",
                None => "LOG NOT INTACT: first bad index",
            };
            writeln!(w, "{found} {}: {}", first.index, first.what)?;
            for p in report.problems.iter().skip(1).take(20) {
                writeln!(w, "  also at {}: {}", p.index, p.what)?;
            }
        }
    }
    w.flush()?;
    Ok(match (report.problems.is_empty(), &report.key_mismatch) {
        (true, None) => ExitCode::SUCCESS,
        (true, Some(_)) => ExitCode::from(VERIFY_KEY_MISMATCH),
        (false, _) => ExitCode::from(VERIFY_NOT_INTACT),
    })
}

/// `verify --cosignatures k`: the largest checkpoint with `k` valid
/// cosignatures from the directory's witnesses, or exit 3.
async fn witnessed(
    config: &Config,
    config_path: &Path,
    store: &Store,
    k: usize,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let f = config
        .federation
        .as_ref()
        .context("--cosignatures needs the node's [federation] section: its directory lists the witness keys")?;
    let base = config_path.parent().unwrap_or(Path::new("."));
    let path = base.join(&f.directory);
    let text = crate::files::read_to_string(&path, crate::files::Kind::Note)
        .with_context(|| format!("cannot read the federation directory {}", path.display()))?;
    let (directory, _) = crate::federation::directory::verify(&text, &f.verifier_key)
        .with_context(|| {
            format!(
                "the federation directory {} does not verify",
                path.display()
            )
        })?;
    let found = crate::federation::witness::cosigned_checkpoint(
        store,
        &directory,
        &config.node.name,
        k,
        None,
    )
    .await?;
    let mut w = stdout();
    match &found {
        Some(c) if json => writeln!(
            w,
            "{}",
            serde_json::json!({
                "witnessed": true,
                "required": k,
                "size": c.checkpoint.size,
                "witnesses": c.witnesses,
                "cosigned_checkpoint": c.note,
            })
        )?,
        Some(c) => writeln!(
            w,
            "witnessed: the checkpoint of size {} is cosigned by {} of the directory's witnesses ({}), {k} required\n{}",
            c.checkpoint.size,
            c.witnesses.len(),
            c.witnesses.join(", "),
            c.note
        )?,
        None if json => writeln!(
            w,
            "{}",
            serde_json::json!({"witnessed": false, "required": k})
        )?,
        None => writeln!(
            w,
            "NOT WITNESSED: no checkpoint of this log holds {k} valid cosignatures from the federation directory's witness keys (are the peers witnessing, with witness-key lines in the directory?)"
        )?,
    }
    w.flush()?;
    Ok(if found.is_some() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

/// `witness-alarms`: the evidence kept, one alarm after the other.
fn witness_alarms(
    alarms: Vec<crate::store::witness::WitnessAlarm>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let mut w = stdout();
    if json {
        let list: Vec<serde_json::Value> = alarms
            .iter()
            .map(|a| {
                serde_json::json!({
                    "id": a.id,
                    "node": a.node,
                    "kind": a.kind,
                    "detail": a.detail,
                    "at": crate::model::clock::rfc3339(a.at),
                    "seen_checkpoint": a.seen_note,
                    "offered_checkpoint": a.offered_note,
                    "acknowledged": a.acknowledged.as_ref().map(|k| serde_json::json!({
                        "by": k.by,
                        "note": k.note,
                        "request_id": k.request_id,
                        "at": crate::model::clock::rfc3339(k.at),
                    })),
                })
            })
            .collect();
        writeln!(w, "{}", serde_json::Value::Array(list))?;
    } else if alarms.is_empty() {
        writeln!(
            w,
            "no witness alarms: every peer's log extended the one this node cosigned"
        )?;
    } else {
        for a in &alarms {
            if let Some(k) = &a.acknowledged {
                writeln!(
                    w,
                    "acknowledged by '{}' at {} (record {}): {}",
                    k.by,
                    crate::model::clock::rfc3339(k.at),
                    k.request_id,
                    k.note
                )?;
            }
            writeln!(
                w,
                "{} {} at {}: node '{}', {}: {}\n-- the checkpoint cosigned before:\n{}-- the checkpoint offered after it:\n{}",
                if a.open() {
                    "ALARM"
                } else {
                    "alarm (acknowledged)"
                },
                a.id,
                crate::model::clock::rfc3339(a.at),
                a.node,
                a.kind,
                a.detail,
                a.seen_note,
                a.offered_note
            )?;
        }
    }
    w.flush()?;
    Ok(if alarms.iter().all(|a| !a.open()) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(4)
    })
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The CSV header: every field of a record, one column each.
const CSV_HEADER: &str = "index,request_id,at,caller,role,method,case_id,subject,purpose,decision,status,asked,released,withheld,rules,consents,actor_hash,peer_fingerprint,detail,subjects,policy_sha256,bases,review,from_node";

/// One record as a CSV line (lists joined with `;`, withheld as
/// `category:reason`; `bases` and `review`, whose texts are free, as the
/// JSON of [`record_json`]).
fn csv_line(index: i64, r: &AccessRecord) -> String {
    let cats =
        |cs: &[crate::model::Category]| cs.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(";");
    let withheld: Vec<String> = r
        .withheld
        .iter()
        .map(|(c, why)| format!("{c}:{why}"))
        .collect();
    let fields = [
        index.to_string(),
        r.request_id.clone(),
        rfc3339_ms(r.at),
        r.caller.clone(),
        r.role.clone(),
        r.method.clone(),
        r.case_id.clone().unwrap_or_default(),
        r.subject.clone().unwrap_or_default(),
        r.purpose.clone().unwrap_or_default(),
        r.decision.as_str().to_string(),
        r.status.clone(),
        cats(&r.asked),
        cats(&r.released),
        withheld.join(";"),
        r.rules.join(";"),
        r.consents.join(";"),
        r.actor_hash.clone().unwrap_or_default(),
        r.peer_fingerprint.clone().unwrap_or_default(),
        r.detail.clone(),
        r.subjects.join(";"),
        r.policy.map(hex::encode).unwrap_or_default(),
        if r.bases.is_empty() {
            String::new()
        } else {
            bases_json(r).to_string()
        },
        r.review
            .as_ref()
            .map(|v| review_json(v).to_string())
            .unwrap_or_default(),
        r.from_node.clone().unwrap_or_default(),
    ];
    let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
    line.join(",")
}

/// One record as a JSON object: every field, times as fixed-width
/// RFC 3339 UTC. The console's API serves the same objects.
pub(crate) fn record_json(index: i64, r: &AccessRecord) -> serde_json::Value {
    serde_json::json!({
        "index": index,
        "request_id": r.request_id,
        "at": rfc3339_ms(r.at),
        "caller": r.caller,
        "role": r.role,
        "method": r.method,
        "case_id": r.case_id,
        "subject": r.subject,
        "purpose": r.purpose,
        "asked": r.asked.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
        "released": r.released.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
        "withheld": r.withheld.iter().map(|(c, why)| serde_json::json!({"category": c.as_str(), "reason": why})).collect::<Vec<_>>(),
        "decision": r.decision.as_str(),
        "status": r.status,
        "detail": r.detail,
        "rules": r.rules,
        "consents": r.consents,
        "actor_hash": r.actor_hash,
        "peer_fingerprint": r.peer_fingerprint,
        "subjects": r.subjects,
        "policy_sha256": r.policy.map(hex::encode),
        "bases": bases_json(r),
        "review": r.review.as_ref().map(review_json),
        "from_node": r.from_node,
    })
}

/// Each released category's basis: `[{category, kind, rules, text}]`, kind
/// `consent` (text: the consent id), `legal_basis` (the legal basis) or
/// `emergency` (the justification).
fn bases_json(r: &AccessRecord) -> serde_json::Value {
    r.bases
        .iter()
        .map(|b| {
            serde_json::json!({
                "category": b.category.as_str(),
                "kind": b.kind.as_str(),
                "rules": b.rules,
                "text": b.text,
            })
        })
        .collect()
}

/// An officer's review of an emergency access.
fn review_json(v: &crate::tlog::Review) -> serde_json::Value {
    serde_json::json!({
        "access_record_id": v.access_record_id,
        "verdict": v.verdict.as_str(),
        "note": v.note,
    })
}

/// One record as a line of the text table, in plain words.
/// `reviewed`: on an officer's review, the log position of the access it
/// reviews.
fn text_line(index: i64, r: &AccessRecord, reviewed: Option<i64>, lang: Lang) -> String {
    let mut s = format!(
        "{}  #{:<7} {} ({}{}) {}",
        rfc3339_ms(r.at),
        index,
        r.caller,
        oversight::role_words(oversight::shown_role(&r.caller, &r.role), lang),
        oversight::via_node(r.from_node.as_deref(), &r.caller, lang),
        r.method,
    );
    if let Some(p) = &r.purpose {
        s.push_str(&format!(" [{}]", oversight::purpose_words(p, lang)));
    }
    if let Some(c) = &r.case_id {
        s.push_str(&format!(
            " {} {c}",
            if lang == Lang::Nl { "dossier" } else { "case" }
        ));
    }
    s.push_str(&format!(
        ": {}",
        oversight::decision_words(r.decision, lang)
    ));
    // "; shared: a, b" — a list of categories under its label.
    let categories = |s: &mut String, (en, nl): (&str, &str), list: &[crate::model::Category]| {
        if list.is_empty() {
            return;
        }
        let words: Vec<&str> = list
            .iter()
            .map(|c| oversight::category_words(*c, lang))
            .collect();
        let label = if lang == Lang::Nl { nl } else { en };
        s.push_str(&format!("; {label} {}", words.join(", ")));
    };
    categories(&mut s, ("shared:", "gedeeld:"), &r.released);
    if !r.bases.is_empty() {
        let why: Vec<String> = r
            .bases
            .iter()
            .map(|b| oversight::basis_line(b, lang))
            .collect();
        s.push_str(&format!(
            "; {} {}",
            if lang == Lang::Nl {
                "grondslag:"
            } else {
                "basis:"
            },
            why.join("; ")
        ));
    }
    // An erasure names what it erased (the record's `asked`).
    if r.method == crate::gateway::ERASE_METHOD && r.decision == crate::tlog::Decision::Allowed {
        categories(&mut s, ("erased:", "gewist:"), &r.asked);
    }
    if let Some(v) = &r.review {
        if let Some(i) = reviewed {
            s.push_str(&format!(
                "; {} #{i}",
                if lang == Lang::Nl {
                    "beoordeelt toegang"
                } else {
                    "reviews access"
                }
            ));
        }
        s.push_str(&format!(
            "; {} {}: \"{}\"",
            if lang == Lang::Nl {
                "oordeel:"
            } else {
                "verdict:"
            },
            oversight::verdict_words(v.verdict, lang),
            v.note
        ));
    }
    s
}

async fn query(
    src: &mut Source,
    filters: &Filters,
    format: QueryFormat,
    lang: Lang,
    limit: Option<u64>,
) -> anyhow::Result<ExitCode> {
    let q = filters.check(src.purposes(), Named::Flags)?;
    let mut w = stdout();
    if format == QueryFormat::Csv {
        writeln!(w, "{CSV_HEADER}")?;
    }
    let mut n = 0u64;
    let mut records = src.records(&q);
    while limit.is_none_or(|l| n < l)
        && let Some((i, r)) = records.next().await?
    {
        match format {
            QueryFormat::Text => {
                let reviewed = match &r.review {
                    Some(v) => records.position_of(&v.access_record_id).await?,
                    None => None,
                };
                writeln!(w, "{}", text_line(i, &r, reviewed, lang))?
            }
            QueryFormat::Jsonl => writeln!(w, "{}", record_json(i, &r))?,
            QueryFormat::Csv => writeln!(w, "{}", csv_line(i, &r))?,
        }
        n += 1;
    }
    w.flush()?;
    if format == QueryFormat::Text && std::io::stderr().is_terminal() {
        eprintln!("{n} entries");
    }
    Ok(ExitCode::SUCCESS)
}

async fn export(
    src: &mut Source,
    format: ExportFormat,
    filters: &Filters,
    out: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let q = filters.check(src.purposes(), Named::Flags)?;
    let node = if format == ExportFormat::Ldv {
        src.node_name().await?
    } else {
        String::new()
    };
    let mut w: Box<dyn Write> = match &out {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
        None => Box::new(stdout()),
    };
    if format == ExportFormat::Csv {
        writeln!(w, "{CSV_HEADER}")?;
    }
    let progress = std::io::stderr().is_terminal();
    let mut n = 0u64;
    let mut records = src.records(&q);
    while let Some((i, r)) = records.next().await? {
        match format {
            ExportFormat::Jsonl => writeln!(w, "{}", record_json(i, &r))?,
            ExportFormat::Csv => writeln!(w, "{}", csv_line(i, &r))?,
            ExportFormat::Ldv => {
                for line in crate::cli::ldv::ldv_lines(i, &node, &r) {
                    writeln!(w, "{line}")?;
                }
            }
        }
        n += 1;
        if progress && n.is_multiple_of(u64::from(PAGE.unsigned_abs())) {
            eprint!(
                "\rexported {n} records (up to entry {})",
                records.position()
            );
        }
    }
    w.flush()?;
    drop(w);
    if progress {
        eprintln!();
    }
    if let Some(p) = out {
        eprintln!("exported {n} records to {}", p.display());
    }
    Ok(ExitCode::SUCCESS)
}
