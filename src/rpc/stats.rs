//! `StatisticsService`: protected tables for the monitor and for
//! municipalities. The gateway decides and records; this file converts the
//! request, gives the gateway the reader of the case payloads it counts
//! from, and turns the protected table into a message. The client side
//! ([`get_statistics`]) converts back, for `sluis stats`.

use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use crate::gateway::Exchange;
use crate::gateway::{ExchangeError, National, Released, StatisticsQuery};
use crate::model::Role;
use crate::net::identity::Peer;
use crate::net::tls::ConnectionInfo;
use crate::rpc::Api;
use crate::rpc::convert::{case_facts, invalid, timestamp};
use crate::rpc::proto::v1 as pb;
use crate::stats::{Axis, Dim, Figure, Label, Publication, Quarter, Settings, TableKind, national};

fn table_pb(t: TableKind) -> pb::StatisticsTable {
    use pb::StatisticsTable as P;
    match t {
        TableKind::Inflow => P::Inflow,
        TableKind::Perspective => P::Perspective,
        TableKind::Shelter => P::Shelter,
        TableKind::Outcomes => P::Outcomes,
        TableKind::DurableSolutions => P::DurableSolutions,
        TableKind::TimeToOutcome => P::TimeToOutcome,
        TableKind::IntakeVsOutcome => P::IntakeVsOutcome,
    }
}

fn table(code: i32) -> Option<TableKind> {
    TableKind::ALL
        .into_iter()
        .find(|t| table_pb(*t) as i32 == code)
}

fn axis_pb(a: &Axis) -> pb::StatisticsAxis {
    pb::StatisticsAxis {
        dimension: a.dim.map(|d| d.as_str().to_string()).unwrap_or_default(),
        labels: a
            .labels
            .iter()
            .map(|l| pb::StatisticsLabel {
                key: l.key.clone(),
                words: l.words.clone(),
                parts: l.parts.clone(),
                includes_unlisted: l.includes_unlisted,
            })
            .collect(),
    }
}

/// A published table as the answer of `GetStatistics` (and as the table
/// of a `StatisticsRelease` an officer lists, with no request id).
pub(crate) fn publication_pb(r: &Released, request_id: &str) -> pb::GetStatisticsResponse {
    use pb::statistics_figure::Kind;
    let p = &r.publication;
    let t = p.settings.threshold;
    pb::GetStatisticsResponse {
        table: table_pb(p.table) as i32,
        title: p.table.title().to_string(),
        year: p.quarter.year as u32,
        quarter: u32::from(p.quarter.q),
        scope: p.scope_words.clone(),
        rows: Some(axis_pb(&p.rows)),
        columns: Some(axis_pb(&p.columns)),
        blocks: Some(axis_pb(&p.blocks)),
        figures: p
            .figures
            .iter()
            .map(|f| {
                let (kind, count) = match f {
                    Figure::Count(n) => (Kind::Count, *n),
                    Figure::Small => (Kind::BelowThreshold, 0),
                    Figure::Suppressed => (Kind::Suppressed, 0),
                };
                pb::StatisticsFigure {
                    kind: kind as i32,
                    count,
                    shown: f.shown(t),
                }
            })
            .collect(),
        disclosure: Some(pb::Disclosure {
            threshold: p.settings.threshold,
            protection: p.settings.protection,
            rounding_base: p.settings.rounding_base,
        }),
        text: p.render(),
        access_record_id: request_id.to_string(),
        as_of: Some(timestamp(r.as_of)),
        release_sha256: r.sha256.clone(),
        nodes: vec![],
        missing_nodes: vec![],
    }
}

/// Why a request for network figures is refused before anything is
/// counted, if it is: from a peer node (one hop: the monitor's own node
/// asks the others), by anyone but the monitor, with a breakdown by
/// municipality, or at a node in no valid federation.
fn network_refusal(
    ex: &Exchange,
    req: &Request<pb::GetStatisticsRequest>,
) -> Option<ExchangeError> {
    let m = req.get_ref();
    if !m.network {
        return None;
    }
    if super::federated::from_peer(req) {
        return Some(ExchangeError::Forbidden(
            "network figures are asked of the monitor's own node, which asks the others; a node answers another node with its own table only (one hop): the calling node must leave network unset".into(),
        ));
    }
    let role = req
        .extensions()
        .get::<ConnectionInfo>()
        .and_then(|i| match &i.peer {
            Peer::Registered(c) => Some(c.role),
            Peer::Unregistered { .. } => None,
        });
    if role.is_some_and(|r| r != Role::Monitor) {
        return Some(invalid(
            "network",
            "network figures are for the national monitor: leave network unset to get the figures of your own cases",
        ));
    }
    if m.by_municipality {
        return Some(invalid(
            "by_municipality",
            "network figures are the nodes' totals: leave by_municipality unset with network, or ask without network for this node's figures per municipality",
        ));
    }
    let valid = ex
        .federation()
        .map(|f| f.current(ex.now()).map(|_| ()).map_err(|e| e.to_string()));
    match valid {
        None => Some(ExchangeError::FailedPrecondition(
            "this node is in no federation: leave network unset for this node's figures".into(),
        )),
        Some(Err(e)) => Some(ExchangeError::FailedPrecondition(format!(
            "{e}: network figures need a valid federation directory (by this node's operator)"
        ))),
        Some(Ok(())) => None,
    }
}

/// The national table: this node's published table plus each peer's, as
/// `stats::national` adds them; a peer that did not answer, answered with
/// a table that does not add up with this node's, or protected its table
/// under other settings than this node's, is named in `missing_nodes`
/// (and in the text) and its cases are not in the figures. Returns what
/// the request's access record says of it too.
fn national(
    own: &Released,
    own_node: &str,
    peers: Vec<(String, Result<pb::GetStatisticsResponse, String>)>,
    request_id: &str,
) -> (pb::GetStatisticsResponse, National) {
    let mut total = national::start(own.publication.clone());
    let mut nodes = vec![own_node.to_string()];
    let mut missing = Vec::new();
    for (node, answer) in peers {
        let added = answer.and_then(|r| {
            let (p, _) = publication_of(r).map_err(|s| s.message().to_string())?;
            national::add(&mut total, &p).map_err(|e| e.to_string())
        });
        match added {
            Ok(()) => nodes.push(node),
            Err(why) => missing.push(format!("{node}: {why}")),
        }
    }
    let suppressed = total
        .figures
        .iter()
        .filter(|f| !matches!(f, Figure::Count(_)))
        .count();
    let released = Released {
        publication: total,
        as_of: own.as_of,
        sha256: String::new(),
    };
    let mut r = publication_pb(&released, request_id);
    r.text
        .push_str(&format!("\nnodes added up: {}\n", nodes.join(", ")));
    if !missing.is_empty() {
        r.text.push_str(&format!(
            "INCOMPLETE: no table from {}\n",
            missing.join("; ")
        ));
    }
    r.nodes = nodes.clone();
    r.missing_nodes = missing.clone();
    (
        r,
        National {
            nodes,
            missing,
            suppressed,
        },
    )
}

#[tonic::async_trait]
impl pb::statistics_service_server::StatisticsService for Api {
    async fn get_statistics(
        &self,
        req: Request<pb::GetStatisticsRequest>,
    ) -> Result<Response<pb::GetStatisticsResponse>, Status> {
        // Refused by the gateway, in its record of the request, which
        // names the table and quarter asked for.
        let refusal = network_refusal(&self.ex, &req);
        self.call(
            "GetStatistics",
            req,
            |m| {
                let network = m.network.then(|| pb::GetStatisticsRequest {
                    network: false,
                    ..m.clone()
                });
                Ok((
                    StatisticsQuery {
                        table: table(m.table).ok_or(m.table),
                        year: m.year,
                        quarter: m.quarter,
                        by_municipality: m.by_municipality,
                        purpose: m.purpose,
                        network: m.network,
                    },
                    network,
                ))
            },
            async |ex, ctx, (q, network)| {
                // For network figures the peers are asked once this node
                // has decided and released its own table, and before its
                // record is written: the record names the nodes added up
                // and those missing, and is durable before the national
                // table leaves.
                ex.statistics(ctx, q, case_facts, refusal, async |own: &Released| {
                    let Some(ask) = network else {
                        return (publication_pb(own, &ctx.request_id), None);
                    };
                    let peers = super::federated::peer_statistics(ex, ctx, ask).await;
                    let own_node = ex
                        .federation()
                        .map(|f| f.node_id().to_string())
                        .unwrap_or_default();
                    let (r, n) = national(own, &own_node, peers, &ctx.request_id);
                    (r, Some(n))
                })
                .await
            },
        )
        .await
    }
}

/// What `sluis stats` asks.
#[derive(Clone, Debug)]
pub struct StatisticsAsk {
    pub table: TableKind,
    pub year: u32,
    pub quarter: u32,
    pub by_municipality: bool,
    pub purpose: String,
    /// The monitor only: the sum of every federation node's table.
    pub network: bool,
    /// Sent as `x-sluis-actor`: the employee asking.
    pub actor: Option<String>,
}

/// A node's answer to `GetStatistics`, as `sluis stats` prints it.
#[derive(Clone, Debug)]
pub struct StatisticsAnswer {
    /// The table as the node protected it.
    pub publication: Publication,
    /// The whole table as text with its notes, as the node wrote it (for
    /// network figures: with the nodes added up and any missing).
    pub text: String,
    /// The id of the request's access record.
    pub request_id: String,
    /// Hex SHA-256 of the release the table is (empty for network
    /// figures: each node's record names its own).
    pub release_sha256: String,
    /// When the figures were computed, ms since the epoch.
    pub as_of: Option<i64>,
    /// Network figures: the nodes added up, and those that did not answer,
    /// each with why.
    pub nodes: Vec<String>,
    pub missing_nodes: Vec<String>,
}

/// Asks a node for a table over `channel` (mTLS as the caller) and returns
/// it as the node protected it, with the request id of its access record.
/// Errors: the node's status (its message says what to fix), or a reply
/// this binary cannot read.
pub async fn get_statistics(
    channel: Channel,
    ask: StatisticsAsk,
) -> Result<StatisticsAnswer, Status> {
    let mut client = pb::statistics_service_client::StatisticsServiceClient::new(channel);
    let mut req = Request::new(pb::GetStatisticsRequest {
        table: table_pb(ask.table) as i32,
        year: ask.year,
        quarter: ask.quarter,
        by_municipality: ask.by_municipality,
        purpose: ask.purpose,
        network: ask.network,
    });
    if let Some(actor) = ask.actor {
        let v = actor
            .parse()
            .map_err(|_| Status::invalid_argument("the actor must be printable ASCII"))?;
        req.metadata_mut().insert(crate::rpc::ACTOR_HEADER, v);
    }
    let r = client.get_statistics(req).await?.into_inner();
    let (text, release_sha256, as_of, nodes, missing_nodes) = (
        r.text.clone(),
        r.release_sha256.clone(),
        r.as_of
            .map(|t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000),
        r.nodes.clone(),
        r.missing_nodes.clone(),
    );
    let (publication, request_id) = publication_of(r)?;
    Ok(StatisticsAnswer {
        publication,
        text,
        request_id,
        release_sha256,
        as_of,
        nodes,
        missing_nodes,
    })
}

/// A node's answer as the table it published, with the request id of its
/// access record. Errors: `Internal` for a reply this binary cannot read.
pub(crate) fn publication_of(
    r: pb::GetStatisticsResponse,
) -> Result<(Publication, String), Status> {
    let bad = || Status::internal("the node's answer is not a table this binary can read");
    let axis = |a: Option<pb::StatisticsAxis>| -> Result<Axis, Status> {
        let a = a.unwrap_or_default();
        let dim = if a.dimension.is_empty() {
            None
        } else {
            Some(a.dimension.parse::<Dim>().map_err(|_| bad())?)
        };
        Ok(Axis {
            dim,
            labels: a
                .labels
                .into_iter()
                .map(|l| Label {
                    key: l.key,
                    words: l.words,
                    parts: l.parts,
                    includes_unlisted: l.includes_unlisted,
                })
                .collect(),
        })
    };
    let d = r.disclosure.unwrap_or_default();
    let figures = r
        .figures
        .iter()
        .map(|f| match pb::statistics_figure::Kind::try_from(f.kind) {
            Ok(pb::statistics_figure::Kind::Count) => Ok(Figure::Count(f.count)),
            Ok(pb::statistics_figure::Kind::BelowThreshold) => Ok(Figure::Small),
            Ok(pb::statistics_figure::Kind::Suppressed) => Ok(Figure::Suppressed),
            _ => Err(bad()),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let publication = Publication {
        table: table(r.table).ok_or_else(bad)?,
        quarter: u8::try_from(r.quarter)
            .ok()
            .and_then(|q| Quarter::new(i32::try_from(r.year).ok()?, q))
            .ok_or_else(bad)?,
        scope_words: r.scope,
        rows: axis(r.rows)?,
        columns: axis(r.columns)?,
        blocks: axis(r.blocks)?,
        figures,
        settings: Settings {
            threshold: d.threshold,
            protection: d.protection,
            rounding_base: d.rounding_base,
        },
        small: vec![],
        suppressed: vec![],
        all_suppressed: false,
        national: false,
    };
    let cells = publication.rows.labels.len()
        * publication.columns.labels.len()
        * publication.blocks.labels.len();
    if cells != publication.figures.len() {
        return Err(bad());
    }
    Ok((publication, r.access_record_id))
}
