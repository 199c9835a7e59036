//! Statistics on the request path: the same order as a read — identify,
//! validate, decide, record, respond — with "compute and protect" in the
//! place of "pseudonymise". Nothing of any case leaves: the figures are
//! counted inside the node from the categories the policy names, protected
//! by [`crate::stats`], and the request is recorded (which table, which
//! cells were suppressed, never a count of one) before the table is handed
//! back.
//!
//! The categories are sealed per case, so the node opens them to count:
//! every statistics request reads every case once (a page at a time) and
//! decrypts at most three small payloads per case. That costs time linear
//! in the cases (BENCHMARKS.md has the figure) but keeps the data where it
//! is: no second copy of anyone's perspective or outcome in clear in the
//! database, nothing to keep in step with updates, and erasing a case's
//! data erases its trace in the figures. One computation runs at a time per
//! node, so a burst of requests queues instead of multiplying that cost.

use crate::gateway::error::ExchangeError;
use crate::gateway::exchange::{Exchange, RequestCtx};
use crate::gateway::validate::Invalid;
use crate::model::clock::rfc3339_ms;
use crate::model::consent::Millis;
use crate::model::{Category, Role};
use crate::stats::{self, CaseFacts, Publication, Quarter, Scope, StatsError, TableKind};
use crate::store::{ReleaseKey, StoredRelease};
use crate::tlog::{Decision, Recorded};

/// A statistics request: which table, which quarter, and for the monitor
/// whether per municipality. The purpose is mandatory, as on every request.
#[derive(Clone, Debug)]
pub struct StatisticsQuery {
    /// The table; `Err` with the code the request named where that is no
    /// table (refused, and recorded with that code).
    pub table: Result<TableKind, i32>,
    /// As asked (a year no quarter has is refused, and recorded as asked).
    pub year: u32,
    /// 1 to 4.
    pub quarter: u32,
    /// The monitor only: one column (or block) per municipality besides the
    /// node's total.
    pub by_municipality: bool,
    pub purpose: String,
    /// Figures over every node of the federation (the monitor's home node
    /// adds up the peers' tables; `rpc::stats`).
    pub network: bool,
}

impl StatisticsQuery {
    /// What was asked, for the access record of a refusal: the table, the
    /// quarter and the breakdown as the request named them.
    fn asked(&self) -> String {
        let table = match self.table {
            Ok(t) => t.as_str().to_string(),
            Err(0) => "unspecified (0)".into(),
            Err(code) => format!("unknown ({code})"),
        };
        let quarter = if (1..=4).contains(&self.quarter) {
            format!("{} Q{}", self.year, self.quarter)
        } else {
            format!("{} quarter {}", self.year, self.quarter)
        };
        format!(
            "asked: table {table}, {quarter}{}{}",
            if self.by_municipality {
                ", per municipality"
            } else {
                ""
            },
            if self.network { ", network" } else { "" }
        )
    }
}

/// Turns a case's opened categories into the facts statistics count:
/// (owner, registration time in ms, payloads) → facts. The gRPC layer
/// supplies it, since only it knows the payloads' encoding.
pub(crate) type FactsReader =
    fn(&str, Millis, &[(Category, Vec<u8>)]) -> Result<CaseFacts, ExchangeError>;

/// Cases read per page.
const PAGE: u32 = 1000;

/// Longest `detail` of a statistics access record, in bytes.
const MAX_DETAIL: usize = 2000;

impl Exchange {
    /// A protected table for the monitor (the node's cases, optionally per
    /// municipality) or for a municipality (its own cases). Errors:
    /// `Invalid` (purpose, year, quarter, `by_municipality` asked by a
    /// municipality), `Forbidden` (the policy has no rule with a legal basis
    /// for this role and purpose, or the role is neither), `FailedPrecondition`
    /// (the quarter has not ended), `AuditUnavailable`, `Internal`; or
    /// `refused`, a refusal the caller's layer found first (e.g. of a
    /// network request), recorded like these. Every refusal's record names
    /// the table and quarter asked for.
    ///
    /// `answer` makes the answer from the release once it is decided and
    /// before the record is written: for network figures it asks the other
    /// nodes and adds up their tables, and the [`National`] it returns goes
    /// into this request's record (which nodes were added up, which were
    /// missing and why), so the record is durable, and complete, before
    /// the national table leaves.
    pub async fn statistics<T>(
        &self,
        ctx: &RequestCtx,
        q: StatisticsQuery,
        read: FactsReader,
        refused: Option<ExchangeError>,
        answer: impl AsyncFnOnce(&Released) -> (T, Option<National>),
    ) -> Result<Recorded<T>, ExchangeError> {
        let mut rec = self.record(ctx, "GetStatistics");
        let asked = q.asked();
        let result = async {
            if let Some(e) = refused {
                return Err(e);
            }
            let table = q.table.map_err(|_| {
                ExchangeError::Invalid(Invalid::new(
                    "table",
                    "table must be one of STATISTICS_TABLE_INFLOW (1) to STATISTICS_TABLE_INTAKE_VS_OUTCOME (7)",
                ))
            })?;
            let caller = self.caller(ctx)?;
            self.statistics_rate.take(&caller.participant, rec.at)?;
            self.check_purpose(&q.purpose)?;
            rec.purpose = Some(q.purpose.clone());
            let population = table.population();
            rec.asked = population.categories().to_vec();
            let mut rules = Vec::new();
            let policy = self.policy();
            rec.policy = Some(policy.sha256());
            for &category in population.categories() {
                let d = policy.decide_aggregate(
                    caller.role,
                    category,
                    &q.purpose,
                    ctx.actor.is_some(),
                );
                rules.extend(d.rules);
                if !d.allowed {
                    rec.rules = rules;
                    return Err(ExchangeError::Forbidden(format!(
                        "the node's policy has no rule with a legal basis that allows statistics from {category} for role {} and this purpose",
                        caller.role
                    )));
                }
            }
            rules.sort();
            rules.dedup();
            rec.rules = rules;
            let year = i32::try_from(q.year).ok();
            let quarter = u8::try_from(q.quarter)
                .ok()
                .zip(year)
                .and_then(|(n, y)| Quarter::new(y, n))
                .ok_or_else(|| {
                    let field = if year.and_then(|y| Quarter::new(y, 1)).is_none() { "year" } else { "quarter" };
                    ExchangeError::Invalid(Invalid::new(field, format!(
                        "year must be from {} to 9999 and quarter from 1 to 4",
                        Quarter::FIRST_YEAR
                    )))
                })?;
            let today = day_of(rec.at)?;
            if !quarter.closed_on(today) {
                return Err(ExchangeError::FailedPrecondition(format!(
                    "{quarter} has not ended: a quarter's figures are given from {} on",
                    quarter.end()
                )));
            }
            let scope = match (caller.role, q.by_municipality) {
                (Role::Monitor, false) => Scope::Node,
                (Role::Monitor, true) => Scope::ByMunicipality,
                (Role::Municipality, false) => Scope::Own(caller.participant.clone()),
                (Role::Municipality, true) => {
                    return Err(ExchangeError::Invalid(Invalid::new(
                        "by_municipality",
                        "by_municipality is for the national monitor; a municipality gets the figures of its own cases",
                    )));
                }
                (role, _) => {
                    return Err(ExchangeError::Forbidden(format!(
                        "statistics are for the national monitor and municipalities, not for role {role}"
                    )));
                }
            };
            let request = stats::Request {
                table,
                quarter,
                scope,
            };
            let released = self.release(request, read, rec.at).await?;
            let (out, national) = answer(&released).await;
            rec.decision = Decision::Allowed;
            rec.detail = detail(&released, national.as_ref());
            Ok(out)
        }
        .await;
        self.finish_asked(rec, result, &asked).await
    }

    /// The release of `request`: the stored one if the quarter's figures
    /// were published before; else the node counts and protects the
    /// quarter's population once (one computation at a time), stores every
    /// table of it for every scope as releases, and answers from what is
    /// stored — so that a replica that released the same quarter at the
    /// same moment and this node answer alike.
    async fn release(
        &self,
        request: stats::Request,
        read: FactsReader,
        now: Millis,
    ) -> Result<Released, ExchangeError> {
        let key = release_key(&request);
        if let Some(r) = self.stored_release(&key).await? {
            return Ok(r);
        }
        let turn = self
            .statistics
            .1
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| ExchangeError::internal("statistics", &e))?;
        // Released while this request waited for its turn?
        if let Some(r) = self.stored_release(&key).await? {
            return Ok(r);
        }
        let node_key = ReleaseKey {
            breakdown: "node".into(),
            scope: String::new(),
            ..key.clone()
        };
        if let Some(r) = self.stored_release(&node_key).await? {
            // The quarter was published before this municipality was
            // registered: figures computed now could be subtracted from it.
            return Err(ExchangeError::FailedPrecondition(format!(
                "the figures of {} were published at {}, before this municipality was registered; a quarter's figures are published once",
                request.quarter,
                rfc3339_ms(r.as_of)
            )));
        }
        let facts = self.read_facts(read, request.table.population()).await?;
        let mut municipalities: Vec<(String, String)> = self
            .registry()
            .participants()
            .filter(|(_, role)| *role == Role::Municipality)
            .map(|(p, _)| (p.id.clone(), p.name.clone()))
            .collect();
        municipalities.sort();
        let settings = self.statistics.0;
        let (population, quarter) = (request.table.population(), request.quarter);
        // The turn goes with the computation: should this future be
        // dropped, the thread still runs to its end, and no second
        // computation may start beside it.
        let (turn, all) = tokio::task::spawn_blocking(move || {
            let all = stats::compute_all(&facts, &municipalities, population, quarter, settings);
            (turn, all)
        })
        .await
        .map_err(|e| ExchangeError::internal("statistics", &e))?;
        let all = all.map_err(|e| match e {
            StatsError::NotAMunicipality(_) => ExchangeError::internal("statistics", &e),
        })?;
        let mut rows = Vec::with_capacity(all.len());
        for (req, publication) in &all {
            let body = serde_json::to_string(publication)
                .map_err(|e| ExchangeError::internal("statistics", &e))?;
            rows.push(StoredRelease {
                key: release_key(req),
                computed_at: now,
                sha256: sha256_hex(body.as_bytes()),
                body,
            });
        }
        self.store
            .insert_statistics_releases(rows)
            .await
            .map_err(|e| ExchangeError::internal("storage", &e))?;
        drop(turn);
        self.stored_release(&key).await?.ok_or_else(|| {
            ExchangeError::Forbidden(
                "statistics of own cases are for the municipalities registered with this node"
                    .into(),
            )
        })
    }

    /// A stored release, opened; checks its digest.
    async fn stored_release(&self, key: &ReleaseKey) -> Result<Option<Released>, ExchangeError> {
        let Some(r) = self
            .store
            .statistics_release(key)
            .await
            .map_err(|e| ExchangeError::internal("storage", &e))?
        else {
            return Ok(None);
        };
        opened(key, r).map(Some)
    }

    /// Reads every case, a page at a time, and opens the categories the
    /// population's tables count from — those the policy was asked about —
    /// and no other: an outcome table never opens anyone's shelter.
    async fn read_facts(
        &self,
        read: FactsReader,
        population: stats::Population,
    ) -> Result<Vec<CaseFacts>, ExchangeError> {
        let wanted = population.categories();
        // The page query takes three categories; a repeated one selects
        // nothing more.
        let categories = [0, 1, 2].map(|i| wanted[i.min(wanted.len() - 1)]);
        let mut facts = Vec::new();
        let mut after = String::new();
        loop {
            let page = self
                .store
                .cases_for_statistics(categories, &after, PAGE)
                .await
                .map_err(|e| ExchangeError::internal("storage", &e))?;
            let Some(last) = page.last() else { break };
            after = last.id.clone();
            let full = page.len() as u32 == PAGE;
            for case in page {
                let key = case
                    .case_key
                    .as_deref()
                    .map(|w| self.keys.case_key(&case.id, w))
                    .transpose()
                    .map_err(|e| ExchangeError::internal("vault", &e))?;
                let opened = case
                    .sealed
                    .iter()
                    .map(|(c, sealed)| {
                        self.keys
                            .open_case(key.as_ref(), &Self::aad(&case.id, *c), sealed)
                            .map(|plain| (*c, plain))
                            .map_err(|e| ExchangeError::internal("vault", &e))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                facts.push(read(&case.owner, case.registered, &opened)?);
            }
            if !full {
                break;
            }
        }
        Ok(facts)
    }
}

/// Releases one `ListStatisticsReleases` call lists unless asked for fewer.
const DEFAULT_RELEASES: i64 = 20;
/// Most releases one call lists.
const MAX_RELEASES: i64 = 100;
/// About the most bytes of tables one call lists (at least one release is
/// always listed): below a gRPC client's usual 4 MiB limit.
const MAX_RELEASE_BYTES: usize = 2 << 20;

/// Most quarters a listing names (a hundred years).
const MAX_QUARTERS: i64 = 400;

/// One page of releases, and every quarter there are releases of.
#[derive(Clone, Debug)]
pub(crate) struct ReleaseListing {
    pub(crate) releases: Vec<ListedRelease>,
    /// Empty after the last page.
    pub(crate) next_page_token: String,
    /// `2025Q3`, newest first.
    pub(crate) quarters: Vec<String>,
}

/// One stored release as a privacy officer lists it.
#[derive(Clone, Debug)]
pub(crate) struct ListedRelease {
    /// Its table, quarter (`2025Q3`), breakdown and scope.
    pub(crate) key: ReleaseKey,
    pub(crate) released: Released,
}

impl Exchange {
    /// The statistics releases the node published, for a privacy officer:
    /// newest quarter first, then by table, breakdown and scope; of one
    /// quarter (`2025Q3`) if `quarter` is not empty; the municipalities'
    /// own tables only if `include_own`; at most `page_size` (0: 20, at
    /// most 100) and about 2 MiB of tables, resumed with the sealed page
    /// token. Each release's digest is checked. The call is an access
    /// record naming the quarter asked and the releases listed (by table,
    /// breakdown and SHA-256; nothing of any case). Errors: `Forbidden`
    /// (not a privacy officer), `Invalid` (quarter, page_size,
    /// page_token), `Unavailable`, `Internal`.
    pub(crate) async fn list_statistics_releases(
        &self,
        ctx: &RequestCtx,
        quarter: &str,
        include_own: bool,
        page_size: i32,
        page_token: &str,
    ) -> Result<Recorded<ReleaseListing>, ExchangeError> {
        let mut rec = self.record(ctx, "ListStatisticsReleases");
        let asked = format!(
            "asked: {}{}",
            // A quarter as asked only if it is one: anything else is the
            // caller's text, which the log does not keep (it could hold a
            // name or a number).
            if quarter.is_empty() {
                "every quarter".to_string()
            } else if parse_quarter(quarter).is_some() {
                format!("quarter {quarter}")
            } else {
                format!(
                    "a quarter that is none ({} characters)",
                    quarter.chars().count()
                )
            },
            if include_own {
                ", with the municipalities' own tables"
            } else {
                ""
            }
        );
        let result = async {
            let caller = self.officer(ctx)?;
            if !quarter.is_empty() && parse_quarter(quarter).is_none() {
                return Err(Invalid::new(
                    "quarter",
                    "quarter must be a year and a quarter as \"2025Q3\" (year 2019 or later, quarter 1 to 4), or empty for every quarter",
                )
                .into());
            }
            let limit =
                crate::gateway::validate::page_size(page_size, DEFAULT_RELEASES, MAX_RELEASES, "releases")?;
            let listing = format!("statistics-releases/{quarter}/{include_own}");
            let bad_token = || {
                ExchangeError::from(Invalid::new(
                    "page_token",
                    "page_token is not one this node gave you for this listing (the same quarter and include_own as the request that returned it): pass the next_page_token of the previous answer, or none to start",
                ))
            };
            let after = match self.open_page_token(caller, &listing, page_token, bad_token)? {
                p if p.is_empty() => None,
                p => {
                    let mut parts = p.split('\t').map(str::to_string);
                    match (parts.next(), parts.next(), parts.next(), parts.next(), parts.next()) {
                        (Some(quarter), Some(table), Some(breakdown), Some(scope), None) => {
                            Some(ReleaseKey {
                                table,
                                quarter,
                                breakdown,
                                scope,
                            })
                        }
                        _ => return Err(bad_token()),
                    }
                }
            };
            let rows = self
                .store
                .statistics_releases(
                    (!quarter.is_empty()).then_some(quarter),
                    include_own,
                    after.as_ref(),
                    limit + 1,
                )
                .await
                .map_err(|e| ExchangeError::store("statistics releases", &e))?;
            let mut listed = Vec::new();
            let mut bytes = 0;
            let mut more = false;
            for row in rows {
                if listed.len() as i64 == limit
                    || (!listed.is_empty() && bytes + row.body.len() > MAX_RELEASE_BYTES)
                {
                    more = true;
                    break;
                }
                bytes += row.body.len();
                let key = row.key.clone();
                listed.push(ListedRelease {
                    released: opened(&key, row)?,
                    key,
                });
            }
            let next = match listed.last() {
                Some(l) if more => {
                    let k = &l.key;
                    let position = format!("{}\t{}\t{}\t{}", k.quarter, k.table, k.breakdown, k.scope);
                    self.seal_page_token(caller, &listing, &position)?
                }
                _ => String::new(),
            };
            let quarters = self
                .store
                .statistics_quarters(MAX_QUARTERS)
                .await
                .map_err(|e| ExchangeError::store("statistics releases", &e))?;
            rec.decision = Decision::Allowed;
            rec.detail = listed_detail(&asked, &listed);
            Ok(ReleaseListing {
                releases: listed,
                next_page_token: next,
                quarters,
            })
        }
        .await;
        self.finish_asked(rec, result, &asked).await
    }
}

/// `2025Q3` as a quarter.
fn parse_quarter(s: &str) -> Option<Quarter> {
    let (year, q) = s.split_once('Q')?;
    if year.len() != 4 || q.len() != 1 {
        return None;
    }
    Quarter::new(year.parse().ok()?, q.parse().ok()?)
}

/// What the access record of a listing says: what was asked, and each
/// release listed by quarter, table, breakdown, scope and SHA-256, bounded
/// in length.
fn listed_detail(asked: &str, listed: &[ListedRelease]) -> String {
    let mut d = format!("{asked}; {} releases listed", listed.len());
    for (i, l) in listed.iter().enumerate() {
        let k = &l.key;
        let item = format!(
            "{} {} {}{}{} sha256 {}",
            k.quarter,
            k.table,
            k.breakdown,
            if k.scope.is_empty() { "" } else { " " },
            k.scope,
            l.released.sha256
        );
        if d.len() + item.len() + 2 > MAX_DETAIL {
            d.push_str(&format!(" … and {} more", listed.len() - i));
            break;
        }
        d.push_str(if i == 0 { ": " } else { "; " });
        d.push_str(&item);
    }
    d
}

/// A stored release, opened: its digest checked, its table read.
fn opened(key: &ReleaseKey, r: StoredRelease) -> Result<Released, ExchangeError> {
    if sha256_hex(r.body.as_bytes()) != r.sha256 {
        return Err(ExchangeError::internal(
            "statistics",
            &format!("release {key:?} does not match its digest"),
        ));
    }
    let publication: Publication =
        serde_json::from_str(&r.body).map_err(|e| ExchangeError::internal("statistics", &e))?;
    Ok(Released {
        publication,
        as_of: r.computed_at,
        sha256: r.sha256,
    })
}

/// A published table: the figures, when they were computed, and the
/// digest of the release they come from.
#[derive(Clone, Debug)]
pub struct Released {
    pub publication: Publication,
    /// When the figures were computed (ms since the epoch); later requests
    /// for the same table, breakdown, quarter and scope get the same ones.
    pub as_of: Millis,
    /// Hex SHA-256 of the stored release.
    pub sha256: String,
}

/// A token bucket per caller: `per_minute` requests a minute, as many at
/// once at most. Entries exist for registered participants only (the
/// caller is identified first), and full buckets are dropped when the map
/// grows past [`MAX_RATE_ENTRIES`], so it stays bounded.
pub(crate) struct Rate {
    per_minute: u32,
    buckets: std::sync::Mutex<std::collections::HashMap<String, (f64, Millis)>>,
}

/// Callers whose buckets are kept before full ones are dropped.
const MAX_RATE_ENTRIES: usize = 4096;

impl Rate {
    pub(crate) fn new(per_minute: u32) -> Rate {
        Rate {
            per_minute: per_minute.max(1),
            buckets: Default::default(),
        }
    }

    /// Takes one request of `caller`'s at `now` (ms), or says how long to wait.
    fn take(&self, caller: &str, now: Millis) -> Result<(), ExchangeError> {
        let cap = f64::from(self.per_minute);
        let per_ms = cap / 60_000.0;
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_RATE_ENTRIES && !buckets.contains_key(caller) {
            buckets.retain(|_, (tokens, at)| *tokens + (now - *at).max(0) as f64 * per_ms < cap);
        }
        let (tokens, at) = buckets.entry(caller.to_string()).or_insert((cap, now));
        *tokens = (*tokens + (now - *at).max(0) as f64 * per_ms).min(cap);
        *at = now.max(*at);
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            return Ok(());
        }
        Err(ExchangeError::RateLimited {
            per_minute: self.per_minute,
            retry_after_ms: ((1.0 - *tokens) / per_ms).ceil().max(1.0) as u64,
        })
    }
}

/// The key a request's release is stored under.
fn release_key(r: &stats::Request) -> ReleaseKey {
    let (breakdown, scope) = match &r.scope {
        Scope::Node => ("node", String::new()),
        Scope::ByMunicipality => ("by_municipality", String::new()),
        Scope::Own(id) => ("own", id.clone()),
    };
    ReleaseKey {
        table: r.table.as_str().to_string(),
        quarter: format!("{}Q{}", r.quarter.year, r.quarter.q),
        breakdown: breakdown.to_string(),
        scope,
    }
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, data))
}

/// The UTC calendar day of an instant in ms.
fn day_of(ms: Millis) -> Result<time::Date, ExchangeError> {
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .map(|t| t.date())
        .map_err(|e| ExchangeError::internal("clock", &e))
}

/// What a network request's record adds to the home node's: the nodes
/// whose published tables the national table adds up (this node first),
/// those that did not answer with one, each with why, and how many cells
/// the national table shows as "x".
#[derive(Clone, Debug, Default)]
pub struct National {
    pub nodes: Vec<String>,
    pub missing: Vec<String>,
    pub suppressed: usize,
}

/// Longest reason a record keeps for one missing node, in characters.
const MAX_WHY: usize = 200;

/// What the access record says of a statistics answer: the table, its
/// scope, the release (its SHA-256 and when it was computed, RFC 3339),
/// the method's settings, and which cells were suppressed — by name, never
/// with a count; for network figures, the nodes added up and those
/// missing. At most [`MAX_DETAIL`] bytes: each list says how many it has,
/// and one cut short ends in "… and N more".
fn detail(r: &Released, national: Option<&National>) -> String {
    let p = &r.publication;
    let s = p.settings;
    let mut d = format!(
        "table {} {}; scope: {}; release sha256 {}, as of {}; threshold {}, protection {}, rounding {}",
        p.table,
        p.quarter,
        p.scope_words,
        r.sha256,
        rfc3339_ms(r.as_of),
        s.threshold,
        s.protection,
        s.rounding_base,
    );
    if p.all_suppressed {
        d.push_str("; every figure x (no pattern of suppressed cells protects this quarter)");
    }
    // The national part first: it is short, and what a privacy officer
    // looks for in a network request's record.
    let mut lists: Vec<(String, Vec<String>)> = Vec::new();
    if let Some(n) = national {
        d.push_str(&format!(
            "; network: {} node{} added up, {} missing, {} cells x in the national table",
            n.nodes.len(),
            if n.nodes.len() == 1 { "" } else { "s" },
            n.missing.len(),
            n.suppressed
        ));
        if !n.missing.is_empty() {
            d.push_str(" (INCOMPLETE)");
        }
        lists.push(("nodes added up".into(), n.nodes.clone()));
        lists.push((
            "missing".into(),
            n.missing
                .iter()
                .map(|m| bounded_chars(m, MAX_WHY))
                .collect(),
        ));
    }
    lists.push((format!("cells \"< {}\"", s.threshold), p.small.clone()));
    lists.push(("cells x besides".into(), p.suppressed.clone()));
    for (label, items) in &lists {
        push_list(&mut d, label, items);
    }
    d
}

/// `s` cut to `max` characters, saying so.
fn bounded_chars(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max).collect();
    out.push_str(" …");
    out
}

/// Appends `; <label> (<count>): a; b; … and N more` to `d`, as many
/// items as fit in [`MAX_DETAIL`] with room kept for the marker (and for
/// the label and count of a list that comes later).
fn push_list(d: &mut String, label: &str, items: &[String]) {
    if items.is_empty() {
        return;
    }
    // Room for " … and 1234567 more" and a later list's heading.
    const KEEP: usize = 64;
    let head = format!("; {label} ({}):", items.len());
    if d.len() + head.len() + KEEP > MAX_DETAIL {
        // Not even the heading fits with its marker: say the count.
        let short = format!("; {label}: {} not listed", items.len());
        if d.len() + short.len() <= MAX_DETAIL {
            d.push_str(&short);
        }
        return;
    }
    d.push_str(&head);
    for (i, c) in items.iter().enumerate() {
        if d.len() + c.len() + 2 + KEEP > MAX_DETAIL {
            d.push_str(&format!(" … and {} more", items.len() - i));
            return;
        }
        d.push_str(if i == 0 { " " } else { ", " });
        d.push_str(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{Axis, Settings};

    fn released(small: usize, suppressed: usize) -> Released {
        let axis = Axis {
            dim: None,
            labels: vec![],
        };
        let name = |i: usize| format!("municipality=gemeente-{i:04} intake_scenario=legalisation");
        Released {
            publication: Publication {
                table: TableKind::IntakeVsOutcome,
                quarter: Quarter::new(2025, 1).unwrap(),
                scope_words: "each municipality of this node, and their total".into(),
                rows: axis.clone(),
                columns: axis.clone(),
                blocks: axis,
                figures: vec![],
                settings: Settings::default(),
                small: (0..small).map(name).collect(),
                suppressed: (small..small + suppressed).map(name).collect(),
                all_suppressed: false,
                national: false,
            },
            as_of: 1_743_465_600_123,
            sha256: "ab".repeat(32),
        }
    }

    /// A record's lists of suppressed cells are bounded, and say so: each
    /// gives its count, and one cut short says how many it left out — the
    /// names listed and the "N more" add up to the count.
    #[test]
    fn long_cell_lists_are_bounded_and_say_how_many_they_leave_out() {
        let national = National {
            nodes: vec!["gm0344".into(), "gm0363".into()],
            missing: vec![format!("gm0599: {}", "unreachable ".repeat(100))],
            suppressed: 40,
        };
        for (small, suppressed, n) in [(200, 300, None), (3, 400, None), (200, 5, Some(&national))]
        {
            let d = detail(&released(small, suppressed), n);
            assert!(d.len() <= MAX_DETAIL, "{} bytes: {d}", d.len());
            for (label, count) in [
                (format!("cells \"< 10\" ({small}):"), small),
                (format!("cells x besides ({suppressed}):"), suppressed),
            ] {
                let Some(at) = d.find(&label) else {
                    assert!(
                        d.contains(&format!(
                            "{}: {count} not listed",
                            &label[..label.find(" (").unwrap()]
                        )),
                        "{label} in {d}"
                    );
                    continue;
                };
                let list = &d[at + label.len()..];
                let list = list.split("; ").next().unwrap();
                let named = list.matches("municipality=").count();
                let more = list
                    .split(" … and ")
                    .nth(1)
                    .map_or(0, |m| m.trim_end_matches(" more").parse::<usize>().unwrap());
                assert_eq!(named + more, count, "{label} {list}");
            }
        }
    }

    /// When the figures were computed is an RFC 3339 time, not a count of
    /// milliseconds; a network request's record says it was national and
    /// which nodes were added up or missing.
    #[test]
    fn the_record_says_when_in_rfc_3339_and_what_a_national_answer_added_up() {
        let d = detail(&released(1, 1), None);
        assert!(d.contains("as of 2025-04-01T00:00:00.123Z"), "{d}");
        assert!(!d.contains("1743465600123"), "{d}");
        assert!(!d.contains("network"), "{d}");
        let national = National {
            nodes: vec!["gm0344".into(), "gm0363".into()],
            missing: vec!["gm0599: unreachable".into()],
            suppressed: 4,
        };
        let d = detail(&released(1, 1), Some(&national));
        assert!(d.contains("network: 2 nodes added up, 1 missing"), "{d}");
        assert!(d.contains("INCOMPLETE"), "{d}");
        assert!(d.contains("nodes added up (2): gm0344, gm0363"), "{d}");
        assert!(d.contains("missing (1): gm0599: unreachable"), "{d}");
    }
}
