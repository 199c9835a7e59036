//! One table cut from a protected family, for one caller: its axes, its
//! figures, and a text rendering a ministry report could quote.

use std::fmt::Write as _;

use crate::stats::design::{DURABLE_KEY, Dim, TableKind};
use crate::stats::facts::Quarter;
use crate::stats::protect::{Family, Settings, Status};

/// Whose cases a table covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// All municipalities of the node, as one total (the monitor).
    Node,
    /// Each municipality of the node and their total (the monitor).
    ByMunicipality,
    /// One municipality's own cases (that municipality).
    Own(String),
}

/// What a caller asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub table: TableKind,
    pub quarter: Quarter,
    pub scope: Scope,
}

/// What is shown in a cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Figure {
    /// A count of at least the threshold, rounded to the rounding base.
    Count(u64),
    /// Fewer than the threshold (zero included): shown as "< T".
    Small,
    /// At least the threshold, but suppressed so that no small cell can be
    /// worked out from the other figures: shown as "x".
    Suppressed,
}

impl Figure {
    /// How the figure is printed, e.g. "40", "< 10", "x".
    pub fn shown(self, threshold: u32) -> String {
        match self {
            Figure::Count(n) => n.to_string(),
            Figure::Small => format!("< {threshold}"),
            Figure::Suppressed => "x".into(),
        }
    }
}

/// A row, column or block heading.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Label {
    /// Stable key, e.g. `legalisation`, `durable`, `total`, a participant id.
    pub key: String,
    pub words: String,
    /// For a subtotal or total: the keys of the shown categories it adds up;
    /// empty for a category.
    pub parts: Vec<String>,
    /// The subtotal also counts cases in no shown category (e.g. scenario
    /// not recorded, or registered by a participant that is not a
    /// municipality), so it may exceed the sum of its parts.
    pub includes_unlisted: bool,
}

/// The labels along one direction of a table, and what they classify.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Axis {
    /// `None` for an axis of one unnamed entry (a table with one block).
    pub dim: Option<Dim>,
    pub labels: Vec<Label>,
}

/// A protected table for one caller.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Publication {
    pub table: TableKind,
    pub quarter: Quarter,
    /// Whose cases, in words.
    pub scope_words: String,
    pub rows: Axis,
    pub columns: Axis,
    /// One block per municipality (and their total) for a two-way table
    /// asked by municipality; otherwise one unnamed block.
    pub blocks: Axis,
    /// Block by block, row by row: `figures[(b * rows + r) * columns + c]`.
    pub figures: Vec<Figure>,
    pub settings: Settings,
    /// Cells shown as "< T" and as "x", by name (no counts), for the access
    /// record.
    pub small: Vec<String>,
    pub suppressed: Vec<String>,
    /// No pattern of suppressed cells protected the quarter's figures, so
    /// every figure is "x" ([`Family::suppress_all`]): here an "x" says
    /// nothing, not even that a figure is at least the threshold.
    /// Releases stored before this existed read as `false`.
    #[serde(default)]
    pub all_suppressed: bool,
    /// A national table (`stats::national`): the sum of the federation's
    /// nodes' published tables, whose "x" means what [`national_legend`]
    /// says. Never stored: `false` in every node's own release, and then
    /// not written, so a release's stored text (and SHA-256) is as before.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub national: bool,
}

/// The scope names no municipality of this node.
#[derive(Debug, thiserror::Error)]
#[error("not a municipality of this node")]
pub struct NotAMunicipality;

/// Cuts the requested table out of a protected family.
pub(crate) fn cut(fam: &Family, req: &Request) -> Result<Publication, NotAMunicipality> {
    let m = fam.dim_index(Dim::Municipality).ok_or(NotAMunicipality)?;
    let mc = &fam.dims()[m];
    let municipalities: Vec<usize> = match &req.scope {
        Scope::Node => vec![0],
        Scope::ByMunicipality => mc.reading_order(0),
        Scope::Own(id) => vec![
            mc.leaf(id)
                .filter(|&l| mc.nodes[l].shown)
                .ok_or(NotAMunicipality)?,
        ],
    };
    let shown = req.table.shown();
    let axis_nodes = |d: Dim| -> (usize, Vec<usize>) {
        let j = fam.dim_index(d).unwrap_or(0);
        let c = &fam.dims()[j];
        let top = if req.table == TableKind::DurableSolutions && d == Dim::OutcomeKind {
            (0..c.nodes.len())
                .find(|&n| c.nodes[n].key == DURABLE_KEY)
                .unwrap_or(0)
        } else {
            0
        };
        (j, c.reading_order(top))
    };
    let label = |j: usize, n: usize| -> Label {
        let c = &fam.dims()[j];
        let (parts, residual) = c.parts(n);
        Label {
            key: c.nodes[n].key.clone(),
            words: c.nodes[n].words.clone(),
            parts: parts.iter().map(|&p| c.nodes[p].key.clone()).collect(),
            includes_unlisted: residual,
        }
    };
    let (row_j, row_nodes) = axis_nodes(shown[0]);
    let (col_j, col_nodes, block_j, block_nodes) = if let Some(&second) = shown.get(1) {
        let (j, nodes) = axis_nodes(second);
        (Some(j), nodes, Some(m), municipalities)
    } else {
        (Some(m), municipalities, None, vec![0])
    };
    let axis = |j: Option<usize>, nodes: &[usize]| Axis {
        dim: j.map(|j| fam.dims()[j].dim),
        labels: match j {
            Some(j) => nodes.iter().map(|&n| label(j, n)).collect(),
            None => vec![Label {
                key: String::new(),
                words: String::new(),
                parts: vec![],
                includes_unlisted: false,
            }],
        },
    };
    let mut figures = Vec::new();
    let (mut small, mut suppressed) = (Vec::new(), Vec::new());
    for &b in &block_nodes {
        for &r in &row_nodes {
            for &c in &col_nodes {
                let mut key = vec![0; fam.dims().len()];
                if let Some(bj) = block_j {
                    key[bj] = b;
                }
                key[row_j] = r;
                if let Some(cj) = col_j {
                    key[cj] = c;
                }
                let idx = fam.index(&key);
                match fam.status(idx) {
                    Status::Small => small.push(fam.name(idx)),
                    Status::Secondary | Status::Masked => suppressed.push(fam.name(idx)),
                    _ => {}
                }
                figures.push(fam.figure(idx));
            }
        }
    }
    let scope_words = match &req.scope {
        Scope::Node => "all municipalities of this node".to_string(),
        Scope::ByMunicipality => "each municipality of this node, and their total".to_string(),
        Scope::Own(id) => format!(
            "the cases of {}",
            mc.leaf(id)
                .map_or(id.as_str(), |l| mc.nodes[l].words.as_str())
        ),
    };
    Ok(Publication {
        table: req.table,
        quarter: req.quarter,
        scope_words,
        rows: axis(Some(row_j), &row_nodes),
        columns: axis(col_j, &col_nodes),
        blocks: axis(block_j, &block_nodes),
        figures,
        settings: fam.settings,
        small,
        suppressed,
        all_suppressed: fam.all_suppressed(),
        national: false,
    })
}

/// What "< T" and "x" mean, as every table's notes say it.
pub fn legend(t: u32) -> String {
    format!(
        "< {t}: fewer than {t} cases (zero included). x: suppressed so that no \"< {t}\" can be worked out from the other figures; or a node total below {t} that one municipality holds most of, which \"< {t}\" would let that municipality narrow down."
    )
}

/// What a table whose every figure is "x" says in place of the legend.
pub fn all_suppressed_note(t: u32) -> String {
    format!(
        "x: every figure is suppressed. This quarter's cases are too few to show any figure without letting a count below {t} be worked out, so nothing is shown, not even which figures are below {t}."
    )
}

/// What "x" means in a national table (and that its counts are sums).
pub fn national_legend(t: u32) -> String {
    format!(
        "Each figure adds up the figures the nodes published. x: at least one node shows this figure as \"< {t}\" or \"x\" (each node's own suppression, including the cells it suppressed so that its \"< {t}\" cannot be worked out), so no national count is given; the national table reveals nothing beyond what each node published."
    )
}

impl Publication {
    pub fn figure(&self, block: usize, row: usize, column: usize) -> Figure {
        let (r, c) = (self.rows.labels.len(), self.columns.labels.len());
        self.figures[(block * r + row) * c + column]
    }

    /// The table as text: title, one grid per block, and the notes a reader
    /// needs to read it right.
    pub fn render(&self) -> String {
        let t = self.settings.threshold;
        let mut s = String::new();
        let _ = writeln!(s, "{}, {}", self.table.title(), self.quarter);
        // A municipality's own scope says "the cases of" itself.
        let whose = self
            .scope_words
            .strip_prefix("the cases of ")
            .unwrap_or(&self.scope_words);
        let _ = writeln!(s, "cases of {whose}");
        let width = self
            .rows
            .labels
            .iter()
            .map(|l| l.words.chars().count())
            .max()
            .unwrap_or(0)
            .max(12);
        let col_width: Vec<usize> = self
            .columns
            .labels
            .iter()
            .map(|l| l.words.chars().count().max(6))
            .collect();
        for (b, block) in self.blocks.labels.iter().enumerate() {
            s.push('\n');
            if self.blocks.dim.is_some() {
                let _ = writeln!(s, "{}", block.words);
            }
            let _ = write!(s, "{:width$}", "");
            for (c, l) in self.columns.labels.iter().enumerate() {
                let _ = write!(s, "  {:>w$}", l.words, w = col_width[c]);
            }
            s.push('\n');
            for (r, row) in self.rows.labels.iter().enumerate() {
                let _ = write!(s, "{:width$}", row.words);
                for (c, w) in col_width.iter().enumerate() {
                    let _ = write!(s, "  {:>w$}", self.figure(b, r, c).shown(t), w = *w);
                }
                s.push('\n');
            }
        }
        s.push('\n');
        if self.national {
            let _ = writeln!(s, "{}", national_legend(t));
        } else if self.all_suppressed {
            let _ = writeln!(s, "{}", all_suppressed_note(t));
        } else {
            let _ = writeln!(s, "{}", legend(t));
        }
        if self.settings.rounding_base > 1 {
            let _ = writeln!(
                s,
                "Counts are rounded to multiples of {}; totals may differ from the sum of their parts.",
                self.settings.rounding_base
            );
        }
        if self
            .rows
            .labels
            .iter()
            .chain(&self.columns.labels)
            .chain(&self.blocks.labels)
            .any(|l| l.includes_unlisted)
        {
            let _ = writeln!(
                s,
                "Totals also count cases in no listed category (not recorded, or registered by a participant that is not a municipality)."
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::outcome::{Outcome, OutcomeKind, Scenario, parse_date};
    use crate::stats::{CaseFacts, compute_all};

    /// A table shows the classifications it is asked for and no other:
    /// not in its axes, and not in the names of its suppressed cells in the
    /// access record (a shelter state in an inflow table would tell about
    /// the people counted in it).
    #[test]
    fn a_table_shows_only_the_classifications_asked_for() {
        let facts: Vec<CaseFacts> = (0..300)
            .map(|i| CaseFacts {
                owner: ["a", "b", "ngo"][i % 3].to_string(),
                intake: parse_date("2025-01-10").unwrap(),
                intake_scenario: Some(Scenario::ALL[i % 4]),
                perspective: Some(Scenario::ALL[(i / 3) % 4]),
                outcome: (i % 2 == 0).then(|| Outcome {
                    kind: OutcomeKind::ALL[i % 6],
                    date: parse_date("2025-03-10").unwrap(),
                }),
                shelter: (i % 5 != 0).then_some((None, None)),
            })
            .collect();
        let m = vec![
            ("a".to_string(), "A".to_string()),
            ("b".to_string(), "B".to_string()),
        ];
        let q = Quarter::new(2025, 1).unwrap();
        for pop in [
            crate::stats::Population::Intakes,
            crate::stats::Population::Outcomes,
        ] {
            for (req, p) in compute_all(&facts, &m, pop, q, Settings::default()).unwrap() {
                let mut allowed: Vec<Dim> = req.table.shown().to_vec();
                allowed.push(Dim::Municipality);
                for axis in [&p.rows, &p.columns, &p.blocks] {
                    if let Some(d) = axis.dim {
                        assert!(allowed.contains(&d), "{} shows {d}", req.table);
                    }
                }
                for name in p.small.iter().chain(&p.suppressed) {
                    for part in name.split(' ').filter(|s| *s != "total") {
                        let dim: Dim = part.split('=').next().unwrap().parse().unwrap();
                        assert!(allowed.contains(&dim), "{}: {name}", req.table);
                    }
                }
            }
        }
    }
}
