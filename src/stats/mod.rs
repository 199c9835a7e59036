//! Figures for the LVV without singling anyone out: counts of cases by
//! intake scenario, perspective, shelter, outcome and time to outcome, per
//! municipality and quarter, protected by the node before they leave it.
//!
//! What it promises:
//!
//! - **A fixed set of tables** ([`TableKind`]), each over one population
//!   (intakes or outcomes in a quarter) with fixed classifications and
//!   subtotals; no caller composes its own. No table uses the identity
//!   category, nationality or any free text.
//! - **Protected as one publication per population and quarter**
//!   ([`Family`]): small cells (below the threshold, zero included) are
//!   shown as "< T"; enough further cells are suppressed ("x") that no
//!   combination of figures — within a table, across the tables of the same
//!   quarter, between the node total and a municipality's own slice — narrows
//!   a small cell to fewer than `protection` + 1 values; counts are rounded.
//!   The method, its guarantee and its sources are in `protect.rs`.
//! - **Pure**: no I/O, no clock, no keys. The gateway decides who may ask,
//!   opens the sealed categories, records the request and hands the facts
//!   here; nothing in a [`CaseFacts`] leaves the node.
//!
//! It exposes [`compute`], the request and answer types, the settings, and
//! the family itself for tests that attack it.

mod audit;
mod design;
mod facts;
pub mod national;
mod protect;
mod publish;

pub use design::{Dim, Population, TableKind, scope_words_nl, words_nl};
pub use facts::{CaseFacts, Quarter, months_between};
pub use protect::{Family, Settings, Status, Unprotectable};
pub use publish::{
    Axis, Figure, Label, NotAMunicipality, Publication, Request, Scope, all_suppressed_note,
    legend, national_legend,
};

/// Why a table could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    #[error(transparent)]
    NotAMunicipality(#[from] NotAMunicipality),
}

/// The protected table a request asks for. `facts` are every case of the
/// node (those outside the table's population and quarter are skipped);
/// `municipalities` the node's municipalities as (participant id, name), in
/// a fixed order. The same inputs always give the same table.
///
/// Figures that no suppression pattern protects are answered with every
/// figure suppressed ("x"): the headings, every cell "x", and a note that
/// says so in place of the legend.
///
/// Errors: [`StatsError::NotAMunicipality`] for an own-cases scope that names
/// none of them.
pub fn compute(
    facts: &[CaseFacts],
    municipalities: &[(String, String)],
    req: &Request,
    settings: Settings,
) -> Result<Publication, StatsError> {
    let mut fam = Family::count(
        req.table.population(),
        req.quarter,
        municipalities,
        facts,
        settings,
    );
    protect(&mut fam);
    Ok(publish::cut(&fam, req)?)
}

/// Every table of `population` in `quarter`, for every scope (the node,
/// each municipality and their total, each municipality's own cases), cut
/// from one protected family: what the node releases at once, so that no
/// two of its tables about one quarter are protected differently. Same
/// inputs, answer to figures that cannot be protected, and errors as
/// [`compute`].
pub fn compute_all(
    facts: &[CaseFacts],
    municipalities: &[(String, String)],
    population: Population,
    quarter: Quarter,
    settings: Settings,
) -> Result<Vec<(Request, Publication)>, StatsError> {
    let mut fam = Family::count(population, quarter, municipalities, facts, settings);
    protect(&mut fam);
    let mut scopes = vec![Scope::Node, Scope::ByMunicipality];
    scopes.extend(municipalities.iter().map(|(id, _)| Scope::Own(id.clone())));
    let mut out = Vec::new();
    for table in TableKind::ALL
        .into_iter()
        .filter(|t| t.population() == population)
    {
        for scope in &scopes {
            let req = Request {
                table,
                quarter,
                scope: scope.clone(),
            };
            let p = publish::cut(&fam, &req)?;
            out.push((req, p));
        }
    }
    Ok(out)
}

/// Protects the family; where no pattern of suppressed cells protects
/// every small one ([`Unprotectable`]), suppresses every figure instead: a
/// table of nothing but "x" is a safe answer, where a refusal would be no
/// safer and would be computed again on every retry.
fn protect(fam: &mut Family) {
    if fam.protect().is_err() {
        fam.suppress_all();
    }
}
