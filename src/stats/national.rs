//! National figures: the sum of the tables the federation's nodes
//! published, each already protected by its node.
//!
//! Why it adds only published figures, and why that protects the national
//! table as a whole: a national cell is a count only where every node
//! published a count for it, and "x" wherever any node shows "< T" or "x"
//! — so the national table's suppressed cells are the union of the nodes'
//! patterns (secondary suppression across nodes: one node's "< 10" hides
//! the national cell, and that node's own secondary "x" cells hide the
//! national cells that would give it away). Any sum or difference of
//! national figures is then a sum of differences of figures each node
//! published, so nothing in it — national total minus the other nodes'
//! published figures included — narrows a node's hidden cell further than
//! that node's own table does (`tests/stats_disclosure.rs` attacks it).
//! That holds only if every node protected its table the same way, so a
//! table under other settings is not added. A published count is within
//! `rounding_base / 2` of the truth, so a national count is within
//! `nodes * rounding_base / 2` of it.

use super::{Dim, Figure, Publication};

/// Why a node's table cannot be added up with this node's.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NotAddable {
    #[error(
        "its table has other headings than this node's (a different release of the classifications)"
    )]
    DifferentShape,
    #[error(
        "its table is protected under other settings (threshold {theirs_t}, protection {theirs_p}, rounding {theirs_r}) than this node's (threshold {ours_t}, protection {ours_p}, rounding {ours_r}): the national table would claim a protection it does not have"
    )]
    DifferentSettings {
        theirs_t: u32,
        theirs_p: u32,
        theirs_r: u32,
        ours_t: u32,
        ours_p: u32,
        ours_r: u32,
    },
}

/// What a national table's total heading says, in place of the node's
/// "all municipalities of this node".
pub const NATIONAL_WORDS: &str = "all nodes of the federation";

/// Adds `other` (a peer node's published table) into `total` cell by cell:
/// counts add; a cell that either shows as "< T" or "x" becomes "x".
/// Errors: [`NotAddable::DifferentShape`] if the tables are not the same
/// table, quarter and headings; [`NotAddable::DifferentSettings`] if
/// `other` was protected with another threshold, protection or rounding
/// (then `total` is unchanged).
pub fn add(total: &mut Publication, other: &Publication) -> Result<(), NotAddable> {
    let keys = |p: &Publication| {
        [&p.rows, &p.columns, &p.blocks]
            .iter()
            .map(|a| a.labels.iter().map(|l| l.key.clone()).collect::<Vec<_>>())
            .collect::<Vec<_>>()
    };
    if total.table != other.table
        || total.quarter != other.quarter
        || keys(total) != keys(other)
        || total.figures.len() != other.figures.len()
    {
        return Err(NotAddable::DifferentShape);
    }
    let (o, t) = (other.settings, total.settings);
    if o != t {
        return Err(NotAddable::DifferentSettings {
            theirs_t: o.threshold,
            theirs_p: o.protection,
            theirs_r: o.rounding_base,
            ours_t: t.threshold,
            ours_p: t.protection,
            ours_r: t.rounding_base,
        });
    }
    for (t, o) in total.figures.iter_mut().zip(&other.figures) {
        *t = match (*t, *o) {
            (Figure::Count(a), Figure::Count(b)) => Figure::Count(a.saturating_add(b)),
            _ => Figure::Suppressed,
        };
    }
    Ok(())
}

/// The node's own published table made the start of a national one: every
/// "< T" shown as "x" (a national cell with one small part is not a count),
/// the names of small and suppressed cells dropped (they are the node's),
/// the total heading and scope saying the federation, and the notes the
/// national ones ([`Publication::national`]).
pub fn start(mut own: Publication) -> Publication {
    for f in &mut own.figures {
        if !matches!(f, Figure::Count(_)) {
            *f = Figure::Suppressed;
        }
    }
    for axis in [&mut own.rows, &mut own.columns, &mut own.blocks] {
        if axis.dim == Some(Dim::Municipality) {
            for l in &mut axis.labels {
                if l.key == "total" {
                    l.words = NATIONAL_WORDS.into();
                }
            }
        }
    }
    own.scope_words = "every node of the federation".into();
    own.small.clear();
    own.suppressed.clear();
    // An "x" at any node is an "x" here; the national table says nothing
    // of one node's having shown nothing.
    own.all_suppressed = false;
    own.national = true;
    own
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{Axis, Label, Quarter, Settings, TableKind};

    fn table(figures: Vec<Figure>) -> Publication {
        let axis = |keys: &[&str]| Axis {
            dim: None,
            labels: keys
                .iter()
                .map(|k| Label {
                    key: (*k).into(),
                    words: (*k).into(),
                    parts: vec![],
                    includes_unlisted: false,
                })
                .collect(),
        };
        Publication {
            table: TableKind::Inflow,
            quarter: Quarter::new(2025, 1).unwrap(),
            scope_words: "node".into(),
            rows: axis(&["a", "b", "total"]),
            columns: axis(&["total"]),
            blocks: axis(&[""]),
            figures,
            settings: Settings {
                threshold: 10,
                protection: 3,
                rounding_base: 5,
            },
            small: vec!["a".into()],
            suppressed: vec![],
            all_suppressed: false,
            national: false,
        }
    }

    #[test]
    fn counts_add_and_any_small_or_suppressed_part_suppresses() {
        use Figure::*;
        let mut t = start(table(vec![Count(20), Small, Count(30)]));
        assert_eq!(t.figures, vec![Count(20), Suppressed, Count(30)]);
        add(&mut t, &table(vec![Count(15), Count(40), Suppressed])).unwrap();
        assert_eq!(t.figures, vec![Count(35), Suppressed, Suppressed]);
        assert!(t.small.is_empty());
    }

    #[test]
    fn tables_of_another_shape_are_not_added() {
        use Figure::*;
        let mut t = start(table(vec![Count(20), Count(20), Count(40)]));
        let mut other = table(vec![Count(20), Count(20), Count(40)]);
        other.rows.labels[0].key = "c".into();
        assert_eq!(add(&mut t, &other), Err(NotAddable::DifferentShape));
        assert_eq!(t.figures, vec![Count(20), Count(20), Count(40)]);
    }

    /// A node that protects with a lower threshold (or less protection, or
    /// other rounding) publishes counts the national table's notes would
    /// misdescribe: its table is not added.
    #[test]
    fn tables_protected_under_other_settings_are_not_added() {
        use Figure::*;
        let mut t = start(table(vec![Count(20), Count(20), Count(40)]));
        let mut other = table(vec![Count(5), Count(20), Count(25)]);
        other.settings.threshold = 5;
        let e = add(&mut t, &other).unwrap_err();
        assert!(matches!(e, NotAddable::DifferentSettings { .. }), "{e}");
        assert!(e.to_string().contains("threshold 5"), "{e}");
        assert_eq!(t.figures, vec![Count(20), Count(20), Count(40)]);
    }
}
