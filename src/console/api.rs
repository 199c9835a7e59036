//! The console's HTTP side: the built-in assets, the guard every request
//! passes (loopback `Host`, the session token on API calls), and the API
//! the page calls — each a call of the node's `AuditService` as the officer,
//! answered as JSON.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{RawQuery, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use http::{HeaderValue, StatusCode, header};

use crate::cli::audit::{Filters, Named, record_json};
use crate::gateway::oversight::{self, Lang, SubjectRef};
use crate::gateway::validate::{self, SubjectKey};
use crate::model::Category;
use crate::model::clock::{now_millis, rfc3339_ms};
use crate::rpc::officer::Officer;
use crate::tlog::proof::LeafRef;

/// The header the page sends the session token in.
pub(crate) const TOKEN_HEADER: &str = "x-sluis-console-token";

/// Most entries one page of the access log asks the node for.
const MAX_PAGE: i32 = 10_000;

/// Emergency alerts one page of the console's listing holds when the page
/// names no size, and at most (AIP-158; the node's own bound is 1,000).
const ALERTS_PAGE: i32 = 100;
const MAX_ALERTS_PAGE: i32 = 1000;

/// The most entries the charts and alerts may be computed over, and the
/// default: the page reads the matching entries up to this many and says
/// on the page when there were more.
pub(crate) const MAX_CHART_ENTRIES: u32 = 100_000;
pub(crate) const CHART_ENTRIES: u32 = 20_000;

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

/// One console session: the officer's connection to one node.
#[derive(Clone)]
pub(crate) struct Console(Arc<Inner>);

struct Inner {
    officer: Officer,
    node: String,
    token: String,
    /// The `Host` values a request may carry: the console's own address.
    hosts: Vec<String>,
    addr: SocketAddr,
    /// How many matching entries the charts and alerts are computed over
    /// at most (`--chart-entries`).
    chart_entries: u32,
}

impl Console {
    /// A session with a fresh random token (128 bits, hex).
    pub(crate) fn new(
        officer: Officer,
        node: String,
        addr: SocketAddr,
        chart_entries: u32,
    ) -> Console {
        let mut bytes = [0u8; 16];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
            .expect("the system's random source works");
        let port = addr.port();
        Console(Arc::new(Inner {
            officer,
            node,
            token: hex::encode(bytes),
            hosts: vec![format!("127.0.0.1:{port}"), format!("localhost:{port}")],
            addr,
            chart_entries,
        }))
    }

    /// The address to open, with the session's token.
    pub(crate) fn url(&self) -> String {
        format!("http://{}/?token={}", self.0.addr, self.0.token)
    }

    pub(crate) fn node(&self) -> &str {
        &self.0.node
    }

    pub(crate) fn router(&self) -> Router {
        Router::new()
            .route(
                "/",
                get(|| async { asset(INDEX_HTML, "text/html; charset=utf-8") }),
            )
            .route(
                "/app.js",
                get(|| async { asset(APP_JS, "text/javascript; charset=utf-8") }),
            )
            .route(
                "/app.css",
                get(|| async { asset(APP_CSS, "text/css; charset=utf-8") }),
            )
            .route("/api/words", get(words))
            .route("/api/settings", get(settings))
            .route("/api/entries", get(entries))
            .route("/api/entry", get(entry))
            .route("/api/checkpoint", get(checkpoint))
            .route("/api/report", get(report))
            .route("/api/emergency", get(emergency))
            .route("/api/emergency/close", post(close_emergency))
            .route("/api/statistics", get(statistics))
            .layer(middleware::from_fn_with_state(self.clone(), guard))
            .with_state(self.clone())
    }
}

/// Every request: its `Host` must be the console's own address (a page
/// that rebinds its DNS name to 127.0.0.1 still sends its own name); an
/// API call must carry the token. Every answer: no framing, no referrer,
/// nothing cached, nothing loaded from elsewhere.
async fn guard(State(c): State<Console>, req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let mut res = if !c.0.hosts.iter().any(|h| h == host) {
        error(
            StatusCode::MISDIRECTED_REQUEST,
            "this console answers only at its own address (127.0.0.1 or localhost with its port)",
        )
    } else if req.uri().path().starts_with("/api/")
        && !req
            .headers()
            .get(TOKEN_HEADER)
            .is_some_and(|t| token_matches(t.as_bytes(), c.0.token.as_bytes()))
    {
        error(
            StatusCode::FORBIDDEN,
            "the console's token is missing or wrong: open the address `sluis console` printed",
        )
    } else {
        next.run(req).await
    };
    let h = res.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        ),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    res
}

/// Compares in time independent of where the values differ.
fn token_matches(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(body))
        .expect("a static response")
}

fn json(status: StatusCode, v: &serde_json::Value) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(v.to_string()))
        .expect("a JSON response")
}

fn ok(v: serde_json::Value) -> Response {
    json(StatusCode::OK, &v)
}

fn error(status: StatusCode, message: &str) -> Response {
    json(status, &serde_json::json!({ "error": message }))
}

/// What the node said, for the page: its status as HTTP, its message.
fn refused(s: &tonic::Status) -> Response {
    let status = match s.code() {
        tonic::Code::NotFound => StatusCode::NOT_FOUND,
        tonic::Code::InvalidArgument | tonic::Code::OutOfRange => StatusCode::BAD_REQUEST,
        tonic::Code::PermissionDenied | tonic::Code::Unauthenticated => StatusCode::FORBIDDEN,
        tonic::Code::FailedPrecondition => StatusCode::CONFLICT,
        tonic::Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_GATEWAY,
    };
    error(status, s.message())
}

fn invalid(e: impl std::fmt::Display) -> Response {
    error(StatusCode::BAD_REQUEST, &e.to_string())
}

/// The query string's parameters (the last of a repeated name wins).
fn params(q: Option<String>) -> HashMap<String, String> {
    form_urlencoded::parse(q.unwrap_or_default().as_bytes())
        .into_owned()
        .filter(|(_, v)| !v.is_empty())
        .collect()
}

fn lang(p: &HashMap<String, String>) -> Result<Lang, validate::Invalid> {
    Lang::parse("lang", p.get("lang").map_or("en", String::as_str))
}

/// The page's words for machine names, in both languages, from the one
/// place that words them (`gateway::oversight`).
async fn words() -> Response {
    let table = |lang: Lang| {
        let map = |pairs: Vec<(String, String)>| -> serde_json::Map<String, serde_json::Value> {
            pairs
                .into_iter()
                .map(|(k, v)| (k, serde_json::Value::String(v)))
                .collect()
        };
        serde_json::json!({
            "roles": map(crate::model::Role::ALL.iter().map(|r| r.as_str()).chain(["-", oversight::NODE_ROLE, oversight::PEER_NODE_ROLE]).map(|r| (r.to_string(), oversight::role_words(r, lang).to_string())).collect()),
            "categories": map(Category::ALL.iter().map(|c| (c.as_str().to_string(), oversight::category_words(*c, lang).to_string())).collect()),
            "decisions": map(crate::tlog::Decision::ALL.iter().map(|d| (d.as_str().to_string(), oversight::decision_words(*d, lang).to_string())).collect()),
            "reasons": map(crate::model::WithholdReason::ALL.iter().map(|r| (r.as_str().to_string(), oversight::reason_words(r.as_str(), lang).to_string())).collect()),
        })
    };
    ok(serde_json::json!({ "en": table(Lang::En), "nl": table(Lang::Nl) }))
}

/// `GET /api/settings`: what this console session was started with that
/// the page needs: `chart_entries`, the most matching entries its charts
/// and alerts are computed over.
async fn settings(State(c): State<Console>) -> Response {
    ok(serde_json::json!({ "chart_entries": c.0.chart_entries }))
}

/// `GET /api/entries?since&until&participant&role&method&purpose&decision&case&request_id&start&limit`:
/// one page of the log (limit: default 100, at most 10,000), each entry
/// with every field; `next` is the index to resume from, absent after the
/// last page.
async fn entries(State(c): State<Console>, RawQuery(q): RawQuery) -> Response {
    let p = params(q);
    let filters = Filters {
        since: p.get("since").cloned(),
        until: p.get("until").cloned(),
        participant: p.get("participant").cloned(),
        role: p.get("role").cloned(),
        method: p.get("method").cloned(),
        purpose: p.get("purpose").cloned(),
        decision: p.get("decision").cloned(),
        case_id: p.get("case").cloned(),
        request_id: p.get("request_id").cloned(),
    };
    let query = match filters.check(None, Named::Fields) {
        Ok(q) => q,
        Err(e) => return invalid(e),
    };
    let number = |name: &str, default: i64, max: i64| -> Result<i64, String> {
        match p.get(name) {
            None => Ok(default),
            Some(v) => crate::model::canonical_decimal(v)
                .and_then(|n| i64::try_from(n).ok())
                .filter(|n| (0..=max).contains(n))
                .ok_or_else(|| format!("{name} must be a whole number from 0 to {max}")),
        }
    };
    let (start, limit) = match (
        number("start", 0, i64::MAX),
        number("limit", 100, i64::from(MAX_PAGE)),
    ) {
        (Ok(s), Ok(l)) => (s, l.max(1) as i32),
        (Err(e), _) | (_, Err(e)) => return invalid(e),
    };
    let mut officer = c.0.officer.clone();
    match officer
        .query(&query.filter, query.request_id.as_deref(), start, limit)
        .await
    {
        Ok((rows, _)) => {
            let next = (rows.len() as i32 == limit && query.request_id.is_none())
                .then(|| rows.last().map(|(i, _)| i + 1))
                .flatten();
            let entries: Vec<_> = rows.iter().map(|(i, r)| record_json(*i, r)).collect();
            ok(serde_json::json!({ "entries": entries, "next": next }))
        }
        Err(s) => refused(&s),
    }
}

/// `GET /api/entry?index=N`: one entry with every field, the basis of
/// each released category as the record states it, and its inclusion
/// proof against the latest signed checkpoint with the node's verifier key
/// — for the page to check.
async fn entry(State(c): State<Console>, RawQuery(q): RawQuery) -> Response {
    let p = params(q);
    let Some(index) = p
        .get("index")
        .and_then(|i| crate::model::canonical_decimal(i))
    else {
        return invalid("index must be an entry's position in the log (a whole number)");
    };
    let mut officer = c.0.officer.clone();
    let proof = match officer.inclusion_proof(LeafRef::Index(index)).await {
        Ok(p) => p,
        Err(s) => return refused(&s),
    };
    let key = match officer.checkpoint().await {
        Ok((_, key)) => key,
        Err(s) => return refused(&s),
    };
    let Some(record) = crate::tlog::AccessRecord::decode(&proof.leaf) else {
        return error(
            StatusCode::BAD_GATEWAY,
            "the node sent an entry this console cannot read",
        );
    };
    ok(serde_json::json!({
        "entry": record_json(proof.index as i64, &record),
        "basis": basis(&record),
        "proof": {
            "index": proof.index,
            "tree_size": proof.tree_size,
            "leaf": B64.encode(&proof.leaf),
            "hashes": proof.hashes.iter().map(|h| B64.encode(h)).collect::<Vec<_>>(),
        },
        "checkpoint": {
            "note": proof.checkpoint.note,
            "size": proof.checkpoint.size,
            "signed_at": rfc3339_ms(proof.checkpoint.at),
        },
        "verifier_key": key,
    }))
}

/// Why each released category was released. From record version 5 on the
/// record says it per category (`bases`: consent, legal basis or
/// emergency with its justification, and the rules). Older records name
/// only the request's rules and consents: a category went under a
/// consent, which the record then names, or on a rule's legal basis.
fn basis(r: &crate::tlog::AccessRecord) -> Vec<serde_json::Value> {
    if !r.bases.is_empty() {
        return r
            .bases
            .iter()
            .map(|b| {
                serde_json::json!({
                    "category": b.category.as_str(),
                    "basis": b.kind.as_str(),
                    "rules": b.rules,
                    "text": b.text,
                    "exact": true,
                })
            })
            .collect();
    }
    r.released
        .iter()
        .map(|c| {
            // With consents and more than one deciding rule, the record
            // does not say which category rested on which: the page says
            // so rather than guess.
            let kind = if r.consents.is_empty() {
                "legal_basis"
            } else if r.rules.len() <= 1 {
                "consent"
            } else {
                "consent_or_legal_basis"
            };
            serde_json::json!({
                "category": c.as_str(),
                "basis": kind,
                "rules": r.rules,
                "consents": r.consents,
            })
        })
        .collect()
}

/// One alert for the page: the emergency access's entry, the justification
/// and, when closed, the review's entry.
fn alert_json(a: &crate::rpc::officer::RemoteAlert) -> serde_json::Value {
    let (index, access) = &a.access;
    let justification = access
        .bases
        .iter()
        .find(|b| b.kind == crate::tlog::BasisKind::Emergency)
        .map(|b| b.text.clone());
    serde_json::json!({
        "access": record_json(*index, access),
        "justification": justification,
        "closed": a.closed,
        "review": a.review.as_ref().map(|(i, r)| record_json(*i, r)),
    })
}

/// `GET /api/emergency?closed=1&page_size=N&page_token=T`: one page of
/// the alerts of emergency accesses (AIP-158: `page_size` from 1 to
/// [`MAX_ALERTS_PAGE`], default [`ALERTS_PAGE`]), open ones only unless
/// `closed` is given, with `next_page_token` (empty after the last page);
/// each open alert stays listed until an officer closes it.
async fn emergency(State(c): State<Console>, RawQuery(q): RawQuery) -> Response {
    let p = params(q);
    let show_closed = p.contains_key("closed");
    let page_size = match p.get("page_size") {
        None => ALERTS_PAGE,
        Some(v) => match crate::model::canonical_decimal(v)
            .and_then(|n| i32::try_from(n).ok())
            .filter(|n| (1..=MAX_ALERTS_PAGE).contains(n))
        {
            Some(n) => n,
            None => {
                return invalid(format!(
                    "page_size must be a whole number from 1 to {MAX_ALERTS_PAGE}"
                ));
            }
        },
    };
    let page_token = p.get("page_token").cloned().unwrap_or_default();
    if page_token.len() > 1024 {
        return invalid("page_token is not one this console gave: pass next_page_token as given");
    }
    let mut officer = c.0.officer.clone();
    match officer
        .emergency_alerts(show_closed, page_size, page_token)
        .await
    {
        Ok((alerts, next)) => ok(serde_json::json!({
            "alerts": alerts.iter().map(alert_json).collect::<Vec<_>>(),
            "next_page_token": next,
        })),
        Err(s) => refused(&s),
    }
}

/// `POST /api/emergency/close` with a form body `request_id`, `verdict`
/// (`justified` or `not_justified`) and `note`: closes the alert with the
/// officer's verdict; the node records it.
async fn close_emergency(State(c): State<Console>, body: String) -> Response {
    let p = params(Some(body));
    let verdict = match p.get("verdict").map(String::as_str) {
        Some("justified") => crate::tlog::Verdict::Justified,
        Some("not_justified") => crate::tlog::Verdict::NotJustified,
        _ => return invalid("verdict must be justified or not_justified"),
    };
    let (Some(id), note) = (p.get("request_id"), p.get("note")) else {
        return invalid("request_id must name the emergency access to close");
    };
    let mut officer = c.0.officer.clone();
    match officer
        .close_emergency_alert(id, verdict, note.map_or("", String::as_str))
        .await
    {
        Ok(a) => ok(alert_json(&a)),
        Err(s) => refused(&s),
    }
}

/// `GET /api/checkpoint`: the latest signed checkpoint, its age, and the
/// verifier key.
async fn checkpoint(State(c): State<Console>) -> Response {
    let mut officer = c.0.officer.clone();
    match officer.checkpoint().await {
        Ok((cp, key)) => ok(serde_json::json!({
            "size": cp.size,
            "signed_at": rfc3339_ms(cp.at),
            "age_seconds": (now_millis() - cp.at).max(0) / 1000,
            "note": cp.note,
            "verifier_key": key,
            "node": c.0.node,
        })),
        Err(s) => refused(&s),
    }
}

/// `GET /api/report?case=|v_number=|bsn=&lang=nl|en`: the subject access
/// report, each line with its log position; an unknown subject is 404 with
/// the node's words.
async fn report(State(c): State<Console>, RawQuery(q): RawQuery) -> Response {
    let p = params(q);
    let lang = match lang(&p) {
        Ok(l) => l,
        Err(e) => return invalid(e),
    };
    let subject = match (p.get("case"), p.get("v_number"), p.get("bsn")) {
        (Some(id), None, None) => {
            validate::uuid("case", id).map(|()| SubjectRef::CaseId(id.clone()))
        }
        (None, Some(v), None) => {
            SubjectKey::v_number("v_number", v).map(|_| SubjectRef::VNumber(v.clone()))
        }
        (None, None, Some(b)) => SubjectKey::bsn("bsn", b).map(|_| SubjectRef::Bsn(b.clone())),
        _ => return invalid("give exactly one of a case id, a V-number or a BSN"),
    };
    let subject = match subject {
        Ok(s) => s,
        Err(e) => return invalid(e),
    };
    let mut officer = c.0.officer.clone();
    let r = match officer.report(subject, lang).await {
        Ok(r) => r,
        Err(s) => return refused(&s),
    };
    let node = match officer.checkpoint().await {
        Ok((cp, _)) => {
            let origin = cp.note.lines().next().unwrap_or_default().to_string();
            origin
                .strip_suffix("/access-log")
                .map_or(origin.clone(), str::to_string)
        }
        Err(_) => c.0.node.clone(),
    };
    let entries: Vec<_> = r
        .entries
        .iter()
        .map(|e| {
            serde_json::json!({
                "node": e.node,
                "request_id": e.request_id,
                "index": e.index,
                "at": rfc3339_ms(e.access.at),
                "summary": e.summary,
            })
        })
        .collect();
    ok(serde_json::json!({
        "case_ids": r.case_ids,
        "entries": entries,
        "text": oversight::report_text(&node, &r.case_ids, &r.entries, &r.nodes, lang),
        "complete": oversight::complete(&r.nodes),
        "witnessed": oversight::witnessed(&r.nodes),
        "access_record_id": r.access_record_id,
        "node": node,
    }))
}

/// A release's own notes in both of the page's languages (the English
/// words are the table's own notes, `Publication::render`): what "< T" and
/// "x" mean and that counts are rounded; for a release whose every figure
/// is suppressed, that note instead of the legend, since there an "x" says
/// nothing.
fn legend(p: &crate::stats::Publication) -> serde_json::Value {
    let t = p.settings.threshold;
    let rounding_base = p.settings.rounding_base;
    let (mut en, mut nl) = if p.all_suppressed {
        (
            crate::stats::all_suppressed_note(t),
            format!(
                "x: elk cijfer is weggelaten. Dit kwartaal telt te weinig dossiers om een cijfer te tonen zonder dat een aantal onder {t} is af te leiden; er wordt dus niets getoond, ook niet welke cijfers onder {t} liggen."
            ),
        )
    } else {
        (
            crate::stats::legend(t),
            format!(
                "< {t}: minder dan {t} dossiers (nul inbegrepen). x: weggelaten zodat geen \"< {t}\" uit de andere cijfers is af te leiden; of een totaal van het knooppunt onder {t} waarvan één gemeente het meeste heeft, die het met \"< {t}\" zou kunnen afbakenen."
            ),
        )
    };
    if rounding_base > 1 && !p.all_suppressed {
        en.push_str(&format!(
            " Counts are rounded to multiples of {rounding_base}; totals may differ from the sum of their parts."
        ));
        nl.push_str(&format!(
            " Aantallen zijn afgerond op veelvouden van {rounding_base}; totalen kunnen afwijken van de som van hun delen."
        ));
    }
    serde_json::json!({ "en": en, "nl": nl })
}

/// One axis of a table for the page: each heading's key and words, in
/// English and Dutch (a municipality's name is the same in both).
fn axis_json(a: &crate::stats::Axis) -> serde_json::Value {
    a.labels
        .iter()
        .map(|l| {
            let nl = crate::stats::words_nl(a.dim, &l.key).unwrap_or(&l.words);
            serde_json::json!({ "key": l.key, "words": { "en": l.words, "nl": nl } })
        })
        .collect::<Vec<_>>()
        .into()
}

/// `GET /api/statistics?quarter=2025Q3&own=1`: the statistics releases the
/// node published for that quarter (default: the newest), the
/// municipalities' own tables only with `own`, each with its figures as
/// published, its headings and notes in English and Dutch, its SHA-256 and
/// when it was computed (RFC 3339); and every quarter with releases.
async fn statistics(State(c): State<Console>, RawQuery(q): RawQuery) -> Response {
    use crate::stats::Figure;
    let p = params(q);
    let quarter = p.get("quarter").map_or("", String::as_str);
    let mut officer = c.0.officer.clone();
    let (mut releases, quarters) = match officer
        .statistics_releases(quarter, p.contains_key("own"))
        .await
    {
        Ok(r) => r,
        Err(s) => return refused(&s),
    };
    // In the order of the tables, then the monitor's before the
    // municipalities' own.
    let order = |b: &str| match b {
        "node" => 0,
        "by_municipality" => 1,
        _ => 2,
    };
    let table_order = |t: crate::stats::TableKind| {
        crate::stats::TableKind::ALL
            .iter()
            .position(|k| *k == t)
            .unwrap_or(usize::MAX)
    };
    releases.sort_by(|a, b| {
        (
            table_order(a.publication.table),
            order(&a.breakdown),
            &a.scope,
        )
            .cmp(&(
                table_order(b.publication.table),
                order(&b.breakdown),
                &b.scope,
            ))
    });
    let listed: Vec<serde_json::Value> = releases
        .iter()
        .map(|r| {
            let p = &r.publication;
            let t = p.settings.threshold;
            let figures: Vec<serde_json::Value> = p
                .figures
                .iter()
                .map(|f| {
                    let (kind, count) = match f {
                        Figure::Count(n) => ("count", *n),
                        Figure::Small => ("small", 0),
                        Figure::Suppressed => ("x", 0),
                    };
                    serde_json::json!({ "kind": kind, "count": count, "shown": f.shown(t) })
                })
                .collect();
            serde_json::json!({
                "quarter": r.quarter,
                "breakdown": r.breakdown,
                "scope": r.scope,
                "as_of": rfc3339_ms(r.as_of),
                "sha256": r.sha256,
                "title": { "en": p.table.title(), "nl": p.table.title_nl() },
                "scope_words": { "en": p.scope_words, "nl": crate::stats::scope_words_nl(&p.scope_words) },
                "legend": legend(p),
                "rows": axis_json(&p.rows),
                "columns": axis_json(&p.columns),
                "blocks": axis_json(&p.blocks),
                "figures": figures,
                "text": r.text,
                "threshold": t,
            })
        })
        .collect();
    ok(serde_json::json!({
        "quarter": releases.first().map(|r| r.quarter.clone()).unwrap_or_else(|| quarter.to_string()),
        "quarters": quarters,
        "releases": listed,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{Axis, Figure, Publication, Quarter, Settings, TableKind};

    fn release(all_suppressed: bool) -> Publication {
        let axis = Axis {
            dim: None,
            labels: vec![],
        };
        Publication {
            table: TableKind::Outcomes,
            quarter: Quarter::new(2025, 1).unwrap(),
            scope_words: "all municipalities of this node".into(),
            rows: axis.clone(),
            columns: axis.clone(),
            blocks: axis,
            figures: vec![Figure::Suppressed],
            settings: Settings::default(),
            small: vec![],
            suppressed: vec![],
            all_suppressed,
            national: false,
        }
    }

    /// A release's own notes, in both languages: a release whose every
    /// figure is "x" says so, and not the legend whose "x" would claim a
    /// figure of at least 10; the others give the legend.
    #[test]
    fn each_release_has_its_own_notes() {
        let all_x = legend(&release(true));
        for lang in ["en", "nl"] {
            let n = all_x[lang].as_str().unwrap();
            assert!(n.starts_with("x: e"), "{n}");
            assert!(!n.contains("< 10:"), "{n}");
        }
        assert!(
            all_x["en"]
                .as_str()
                .unwrap()
                .contains("every figure is suppressed")
        );
        assert!(
            all_x["nl"]
                .as_str()
                .unwrap()
                .contains("elk cijfer is weggelaten")
        );
        let ordinary = legend(&release(false));
        assert!(
            ordinary["en"]
                .as_str()
                .unwrap()
                .starts_with("< 10: fewer than 10")
        );
        assert!(
            ordinary["nl"]
                .as_str()
                .unwrap()
                .starts_with("< 10: minder dan 10")
        );
    }
}
