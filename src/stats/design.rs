//! The fixed, documented set of tables: which cases each counts (its
//! population), by which classifications, with which subtotals.
//!
//! A caller picks a table from [`TableKind`]; it cannot compose its own.
//! Every table of one population and quarter is a view of the same
//! protected *family* of cells (see `protect`), so asking for two tables,
//! or for a table and a municipality's slice of it, never shows two
//! differently protected versions of the same figures.

use std::fmt;
use std::str::FromStr;

use crate::model::outcome::{OutcomeKind, Scenario};
use crate::stats::facts::{CaseFacts, Quarter, months_between, sheltered_on};

/// A classification the tables break cases down by.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Dim {
    /// The municipality that registered the case.
    Municipality,
    /// The guidance scenario agreed at intake.
    IntakeScenario,
    /// The perspective worked on now.
    Perspective,
    /// Shelter status at the end of the quarter.
    Shelter,
    /// How the case left the LVV (with durable / not durable subtotals).
    OutcomeKind,
    /// Time from intake to outcome, in bins of whole months.
    TimeToOutcome,
}

impl Dim {
    pub const ALL: [Dim; 6] = [
        Dim::Municipality,
        Dim::IntakeScenario,
        Dim::Perspective,
        Dim::Shelter,
        Dim::OutcomeKind,
        Dim::TimeToOutcome,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Dim::Municipality => "municipality",
            Dim::IntakeScenario => "intake_scenario",
            Dim::Perspective => "perspective",
            Dim::Shelter => "shelter",
            Dim::OutcomeKind => "outcome",
            Dim::TimeToOutcome => "time_to_outcome",
        }
    }

    pub fn words(self) -> &'static str {
        match self {
            Dim::Municipality => "municipality",
            Dim::IntakeScenario => "scenario agreed at intake",
            Dim::Perspective => "perspective now",
            Dim::Shelter => "shelter at the end of the quarter",
            Dim::OutcomeKind => "outcome",
            Dim::TimeToOutcome => "time from intake to outcome",
        }
    }
}

impl FromStr for Dim {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Dim::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| format!("unknown classification '{s}'"))
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One category of a classification, or a subtotal, or the total.
#[derive(Clone, Debug)]
pub struct Node {
    pub key: String,
    pub words: String,
    pub parent: Option<usize>,
    /// A residual that is counted in its parent but never shown as a figure
    /// of its own (e.g. "scenario not recorded", cases registered by a
    /// participant that is not a municipality). Leaving such a category out
    /// of the tables keeps structural zeros from forcing suppressions, while
    /// the totals still count every case.
    pub shown: bool,
}

/// A classification as a tree: node 0 is the total, then subtotals, then
/// the categories (leaves). Every leaf's path ends at the total, and every
/// parent is the sum of its children.
#[derive(Clone, Debug)]
pub struct Classification {
    pub dim: Dim,
    pub nodes: Vec<Node>,
    /// Each node's children, in index order (kept as nodes are added: the
    /// protection walks the trees millions of times).
    kids: Vec<Vec<usize>>,
}

impl Classification {
    fn new(dim: Dim, total_words: &str) -> Classification {
        Classification {
            dim,
            nodes: vec![Node {
                key: "total".into(),
                words: total_words.into(),
                parent: None,
                shown: true,
            }],
            kids: vec![vec![]],
        }
    }

    fn add(&mut self, key: &str, words: &str, parent: usize, shown: bool) -> usize {
        self.nodes.push(Node {
            key: key.into(),
            words: words.into(),
            parent: Some(parent),
            shown,
        });
        let n = self.nodes.len() - 1;
        self.kids.push(vec![]);
        self.kids[parent].push(n);
        n
    }

    pub fn children(&self, n: usize) -> impl Iterator<Item = usize> + '_ {
        self.kids[n].iter().copied()
    }

    pub fn is_leaf(&self, n: usize) -> bool {
        self.kids[n].is_empty()
    }

    /// The leaves under `n` (`n` itself if it is one), in index order.
    pub fn leaves_under(&self, n: usize) -> Vec<usize> {
        let mut out = Vec::new();
        let mut todo = vec![n];
        while let Some(x) = todo.pop() {
            if self.is_leaf(x) {
                out.push(x);
            } else {
                todo.extend(self.children(x));
            }
        }
        out.sort_unstable();
        out
    }

    /// The other children of `n`'s parent.
    pub fn siblings(&self, n: usize) -> Vec<usize> {
        match self.nodes[n].parent {
            None => vec![],
            Some(p) => self.children(p).filter(|&c| c != n).collect(),
        }
    }

    /// From `from` up to `to` (both included); `to` must be an ancestor of
    /// `from` or `from` itself.
    pub fn path(&self, from: usize, to: usize) -> Vec<usize> {
        let mut out = vec![from];
        let mut n = from;
        while n != to {
            match self.nodes[n].parent {
                Some(p) => {
                    out.push(p);
                    n = p;
                }
                None => break,
            }
        }
        out
    }

    /// The leaf with this key.
    pub fn leaf(&self, key: &str) -> Option<usize> {
        (0..self.nodes.len()).find(|&l| self.nodes[l].key == key && self.is_leaf(l))
    }

    /// Shown nodes in reading order: each subtotal after its members, the
    /// total last.
    pub fn reading_order(&self, under: usize) -> Vec<usize> {
        let mut out = Vec::new();
        for c in self.children(under) {
            out.extend(self.reading_order(c));
        }
        if self.nodes[under].shown {
            out.push(under);
        }
        out
    }

    /// The shown children of `n`, and whether `n` also counts a residual
    /// that is not shown.
    pub fn parts(&self, n: usize) -> (Vec<usize>, bool) {
        let all: Vec<usize> = self.children(n).collect();
        let shown: Vec<usize> = all
            .iter()
            .copied()
            .filter(|&c| self.nodes[c].shown)
            .collect();
        let residual = shown.len() < all.len();
        (shown, residual)
    }
}

/// Where a table's cases come from: each case counts once per table, in the
/// quarter of its event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Population {
    /// Cases whose intake was in the quarter (inflow).
    Intakes,
    /// Cases whose outcome was in the quarter (outflow).
    Outcomes,
}

impl Population {
    /// The classifications of the population's family, in a fixed order;
    /// the municipality is always first.
    pub fn dims(self) -> &'static [Dim] {
        match self {
            Population::Intakes => &[
                Dim::Municipality,
                Dim::IntakeScenario,
                Dim::Perspective,
                Dim::Shelter,
            ],
            Population::Outcomes => &[
                Dim::Municipality,
                Dim::IntakeScenario,
                Dim::OutcomeKind,
                Dim::TimeToOutcome,
            ],
        }
    }

    /// The tables of the family, as sets of its dims. They share only the
    /// municipality margin (for outcomes, the municipality × outcome table
    /// is a margin of the intake × outcome one), so the set is decomposable:
    /// tables that agree on their shared margins always come from some set
    /// of cases. That is what lets the protection reason table by table.
    pub fn tables(self) -> &'static [&'static [Dim]] {
        match self {
            Population::Intakes => &[
                &[Dim::Municipality, Dim::IntakeScenario],
                &[Dim::Municipality, Dim::Perspective],
                &[Dim::Municipality, Dim::Shelter],
            ],
            Population::Outcomes => &[
                &[Dim::Municipality, Dim::IntakeScenario, Dim::OutcomeKind],
                &[Dim::Municipality, Dim::TimeToOutcome],
            ],
        }
    }

    /// Whether a case belongs to the population of `quarter`.
    pub fn counts(self, f: &CaseFacts, quarter: Quarter) -> bool {
        match self {
            Population::Intakes => quarter.contains(f.intake),
            Population::Outcomes => f.outcome.is_some_and(|o| quarter.contains(o.date)),
        }
    }

    /// The case categories its figures are computed from.
    pub fn categories(self) -> &'static [crate::model::Category] {
        use crate::model::Category;
        match self {
            Population::Intakes => &[Category::Perspective, Category::Shelter],
            Population::Outcomes => &[Category::Perspective, Category::Outcome],
        }
    }
}

/// The tables a caller may ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum TableKind {
    /// Intakes in the quarter by the scenario agreed at intake.
    Inflow,
    /// Intakes in the quarter by the perspective worked on now.
    Perspective,
    /// Intakes in the quarter by shelter status at the end of the quarter.
    Shelter,
    /// Outcomes in the quarter by kind, with durable / not durable subtotals.
    Outcomes,
    /// Outcomes in the quarter that are durable solutions, by kind.
    DurableSolutions,
    /// Outcomes in the quarter by time from intake.
    TimeToOutcome,
    /// Outcomes in the quarter: scenario agreed at intake × outcome.
    IntakeVsOutcome,
}

impl TableKind {
    pub const ALL: [TableKind; 7] = [
        TableKind::Inflow,
        TableKind::Perspective,
        TableKind::Shelter,
        TableKind::Outcomes,
        TableKind::DurableSolutions,
        TableKind::TimeToOutcome,
        TableKind::IntakeVsOutcome,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TableKind::Inflow => "inflow",
            TableKind::Perspective => "perspective",
            TableKind::Shelter => "shelter",
            TableKind::Outcomes => "outcomes",
            TableKind::DurableSolutions => "durable_solutions",
            TableKind::TimeToOutcome => "time_to_outcome",
            TableKind::IntakeVsOutcome => "intake_vs_outcome",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            TableKind::Inflow => "Inflow: intakes by the scenario agreed at intake",
            TableKind::Perspective => "Intakes by the perspective worked on now",
            TableKind::Shelter => "Intakes by shelter at the end of the quarter",
            TableKind::Outcomes => "Outflow: outcomes by kind",
            TableKind::DurableSolutions => "Durable solutions reached",
            TableKind::TimeToOutcome => "Outcomes by time from intake",
            TableKind::IntakeVsOutcome => "Outcomes: scenario agreed at intake against outcome",
        }
    }

    /// The title in Dutch, for the officer's console.
    pub fn title_nl(self) -> &'static str {
        match self {
            TableKind::Inflow => "Instroom: intakes naar het bij de intake afgesproken scenario",
            TableKind::Perspective => "Intakes naar het perspectief waaraan nu wordt gewerkt",
            TableKind::Shelter => "Intakes naar opvang aan het eind van het kwartaal",
            TableKind::Outcomes => "Uitstroom: uitkomsten naar soort",
            TableKind::DurableSolutions => "Bereikte duurzame oplossingen",
            TableKind::TimeToOutcome => "Uitkomsten naar tijd sinds de intake",
            TableKind::IntakeVsOutcome => {
                "Uitkomsten: bij de intake afgesproken scenario tegen uitkomst"
            }
        }
    }

    pub fn population(self) -> Population {
        match self {
            TableKind::Inflow | TableKind::Perspective | TableKind::Shelter => Population::Intakes,
            _ => Population::Outcomes,
        }
    }

    /// The classifications shown (besides the municipality): rows, then
    /// columns if there are two.
    pub fn shown(self) -> &'static [Dim] {
        match self {
            TableKind::Inflow => &[Dim::IntakeScenario],
            TableKind::Perspective => &[Dim::Perspective],
            TableKind::Shelter => &[Dim::Shelter],
            TableKind::Outcomes | TableKind::DurableSolutions => &[Dim::OutcomeKind],
            TableKind::TimeToOutcome => &[Dim::TimeToOutcome],
            TableKind::IntakeVsOutcome => &[Dim::IntakeScenario, Dim::OutcomeKind],
        }
    }
}

impl FromStr for TableKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TableKind::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = TableKind::ALL.iter().map(|t| t.as_str()).collect();
                format!("unknown table '{s}': use one of {}", names.join(", "))
            })
    }
}

impl fmt::Display for TableKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The key of the residual "not recorded" categories.
const NOT_RECORDED: &str = "not_recorded";

/// The node of the durable-solutions subtotal in the outcome classification.
pub(crate) const DURABLE_KEY: &str = "durable";

/// Builds a classification. `municipalities` are (participant id, name) of
/// the node's registered municipalities, in a fixed order.
pub fn classification(dim: Dim, municipalities: &[(String, String)]) -> Classification {
    match dim {
        Dim::Municipality => {
            let mut c = Classification::new(dim, "all municipalities of this node");
            for (id, name) in municipalities {
                c.add(id, name, 0, true);
            }
            c.add("other_registrants", "registered by others", 0, false);
            c
        }
        Dim::IntakeScenario | Dim::Perspective => {
            let mut c = Classification::new(dim, "total");
            for s in Scenario::ALL {
                c.add(s.as_str(), s.words(), 0, true);
            }
            c.add(NOT_RECORDED, "not recorded", 0, false);
            c
        }
        Dim::Shelter => {
            let mut c = Classification::new(dim, "total");
            c.add("in_shelter", "in LVV shelter", 0, true);
            c.add("shelter_ended", "shelter ended", 0, true);
            c.add("no_shelter", "no shelter recorded", 0, false);
            c
        }
        Dim::OutcomeKind => {
            let mut c = Classification::new(dim, "all outcomes");
            let durable = c.add(DURABLE_KEY, "durable solutions", 0, true);
            let other = c.add("not_durable", "left without a durable solution", 0, true);
            for k in OutcomeKind::ALL {
                c.add(
                    k.as_str(),
                    k.words(),
                    if k.is_durable() { durable } else { other },
                    true,
                );
            }
            c
        }
        Dim::TimeToOutcome => {
            let mut c = Classification::new(dim, "total");
            for (key, words) in TIME_BINS {
                c.add(key, words, 0, true);
            }
            c
        }
    }
}

/// A heading's words in Dutch, for the officer's console (the API and the
/// tables' text keep the English `words`): `dim` is the axis's
/// classification (`None` for an axis of one unnamed entry). `None` for a
/// municipality's own name, which is the same in both.
pub fn words_nl(dim: Option<Dim>, key: &str) -> Option<&'static str> {
    Some(match (dim?, key) {
        (Dim::Municipality, "total") => "alle gemeenten van dit knooppunt",
        (Dim::Municipality, "other_registrants") => "geregistreerd door anderen",
        (Dim::Municipality, _) => return None,
        (Dim::OutcomeKind, "total") => "alle uitkomsten",
        (_, "total") => "totaal",
        (_, NOT_RECORDED) => "niet vastgelegd",
        (Dim::IntakeScenario | Dim::Perspective, "undetermined") => "nog niet bepaald",
        (Dim::IntakeScenario | Dim::Perspective, "return") => "terugkeer",
        (_, "onward_migration") => "doormigratie",
        (Dim::IntakeScenario | Dim::Perspective, "legalisation") => "legalisatie",
        (Dim::Shelter, "in_shelter") => "in LVV-opvang",
        (Dim::Shelter, "shelter_ended") => "opvang beëindigd",
        (Dim::Shelter, "no_shelter") => "geen opvang vastgelegd",
        (Dim::OutcomeKind, DURABLE_KEY) => "duurzame oplossingen",
        (Dim::OutcomeKind, "not_durable") => "vertrokken zonder duurzame oplossing",
        (Dim::OutcomeKind, "departure_independent") => "zelfstandig vertrek",
        (Dim::OutcomeKind, "departure_forced") => "gedwongen vertrek",
        (Dim::OutcomeKind, "departure_unsupervised") => "vertrek zonder toezicht",
        (Dim::OutcomeKind, "legalisation") => "legalisatie (vergunning verleend)",
        (Dim::OutcomeKind, "out_of_sight") => "uit beeld",
        (Dim::TimeToOutcome, "under_3_months") => "minder dan 3 maanden",
        (Dim::TimeToOutcome, "3_to_6_months") => "3 tot 6 maanden",
        (Dim::TimeToOutcome, "6_to_12_months") => "6 tot 12 maanden",
        (Dim::TimeToOutcome, "12_to_24_months") => "1 tot 2 jaar",
        (Dim::TimeToOutcome, "24_months_or_more") => "2 jaar of langer",
        _ => return None,
    })
}

/// A table's scope words (`Publication::scope_words`) in Dutch.
pub fn scope_words_nl(words: &str) -> String {
    match words {
        "all municipalities of this node" => "alle gemeenten van dit knooppunt".into(),
        "each municipality of this node, and their total" => {
            "elke gemeente van dit knooppunt, en hun totaal".into()
        }
        w => match w.strip_prefix("the cases of ") {
            Some(name) => format!("de dossiers van {name}"),
            None => w.into(),
        },
    }
}

/// Bins of whole months from intake to outcome: lower bound included.
const TIME_BINS: [(&str, &str); 5] = [
    ("under_3_months", "less than 3 months"),
    ("3_to_6_months", "3 to 6 months"),
    ("6_to_12_months", "6 to 12 months"),
    ("12_to_24_months", "1 to 2 years"),
    ("24_months_or_more", "2 years or more"),
];

fn time_bin(months: u32) -> &'static str {
    match months {
        0..3 => TIME_BINS[0].0,
        3..6 => TIME_BINS[1].0,
        6..12 => TIME_BINS[2].0,
        12..24 => TIME_BINS[3].0,
        _ => TIME_BINS[4].0,
    }
}

/// The leaf a case falls in for a classification, or `None` when the
/// classification does not apply (it is counted in no table of that dim).
pub(crate) fn leaf_of(c: &Classification, f: &CaseFacts, quarter: Quarter) -> Option<usize> {
    let key: &str = match c.dim {
        Dim::Municipality => {
            return c.leaf(&f.owner).or_else(|| c.leaf("other_registrants"));
        }
        Dim::IntakeScenario => f.intake_scenario.map_or(NOT_RECORDED, Scenario::as_str),
        Dim::Perspective => f.perspective.map_or(NOT_RECORDED, Scenario::as_str),
        Dim::Shelter => match f.shelter {
            None => "no_shelter",
            Some((since, until)) => {
                let last_day = quarter.end().previous_day().unwrap_or(quarter.end());
                if sheltered_on(since, until, last_day) {
                    "in_shelter"
                } else {
                    "shelter_ended"
                }
            }
        },
        Dim::OutcomeKind => f.outcome?.kind.as_str(),
        Dim::TimeToOutcome => time_bin(months_between(f.intake, f.outcome?.date)),
    };
    c.leaf(key)
}

#[cfg(test)]
mod tests {

    /// Every heading the tables can show has Dutch words, except a
    /// municipality's own name, and no two headings of one classification
    /// share them.
    #[test]
    fn every_heading_has_dutch_words() {
        let m = vec![("gemeente-a".to_string(), "A".to_string())];
        for dim in Dim::ALL {
            let c = classification(dim, &m);
            let mut seen = std::collections::BTreeSet::new();
            for n in &c.nodes {
                let nl = words_nl(Some(dim), &n.key);
                if dim == Dim::Municipality && n.key == "gemeente-a" {
                    assert_eq!(nl, None);
                    continue;
                }
                let nl = nl.unwrap_or_else(|| panic!("{dim} {} has no Dutch words", n.key));
                assert!(seen.insert(nl), "{dim}: {nl} twice");
            }
        }
    }
    use super::*;

    #[test]
    fn trees_sum_up_to_the_total() {
        let m = vec![("gemeente-a".to_string(), "A".to_string())];
        for p in [Population::Intakes, Population::Outcomes] {
            for &d in p.dims() {
                let c = classification(d, &m);
                for (i, n) in c.nodes.iter().enumerate().skip(1) {
                    assert!(c.path(i, 0).ends_with(&[0]), "{d} {}", n.key);
                }
            }
        }
        let k = classification(Dim::OutcomeKind, &m);
        let durable = k.nodes.iter().position(|n| n.key == DURABLE_KEY).unwrap();
        assert_eq!(k.leaves_under(durable).len(), 4);
        assert_eq!(k.siblings(durable).len(), 1);
        let order: Vec<&str> = k
            .reading_order(0)
            .iter()
            .map(|&n| k.nodes[n].key.as_str())
            .collect();
        assert_eq!(order.last(), Some(&"total"));
        assert_eq!(order[4], DURABLE_KEY);
        let s = classification(Dim::IntakeScenario, &m);
        assert_eq!(s.parts(0).0.len(), 4);
        assert!(s.parts(0).1, "not recorded is a residual");
    }

    #[test]
    fn every_table_is_in_its_population() {
        for t in TableKind::ALL {
            let p = t.population();
            for d in t.shown() {
                assert!(p.dims().contains(d), "{t}");
            }
            assert!(
                p.tables()
                    .iter()
                    .any(|tab| t.shown().iter().all(|d| tab.contains(d))),
                "{t} is a view of one table of its family"
            );
        }
    }
}
