//! National figures: the sum of the tables the federation's nodes
//! published, each already protected by its node.
//!
//! Why it adds only published figures: a national cell computed from the
//! nodes' raw counts could be differenced against a node's own published
//! table to narrow that node's "< T" cells. Summing what each node
//! released, and suppressing a cell ("x") wherever any node shows "< T" or
//! "x" for it, makes the national table a function of published figures
//! alone, so it reveals nothing beyond what each node already published.
//! A published count is within `rounding_base / 2` of the truth, so a
//! national count is within `nodes * rounding_base / 2` of it.

use super::{Figure, Publication};

/// Why nodes' tables cannot be added up.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "its table has other headings than this node's (a different release of the classifications)"
)]
pub struct DifferentShape;

/// Adds `other` (a peer node's published table) into `total` cell by cell:
/// counts add; a cell that either shows as "< T" or "x" becomes "x".
/// Errors: [`DifferentShape`] if the tables are not the same table, quarter
/// and headings (then `total` is unchanged).
pub fn add(total: &mut Publication, other: &Publication) -> Result<(), DifferentShape> {
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
        return Err(DifferentShape);
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
/// the names of small and suppressed cells dropped (they are the node's).
pub fn start(mut own: Publication, scope_words: String) -> Publication {
    for f in &mut own.figures {
        if !matches!(f, Figure::Count(_)) {
            *f = Figure::Suppressed;
        }
    }
    own.scope_words = scope_words;
    own.small.clear();
    own.suppressed.clear();
    // An "x" at any node is an "x" here; the national table says nothing
    // of one node's having shown nothing.
    own.all_suppressed = false;
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
        }
    }

    #[test]
    fn counts_add_and_any_small_or_suppressed_part_suppresses() {
        use Figure::*;
        let mut t = start(
            table(vec![Count(20), Small, Count(30)]),
            "the network".into(),
        );
        assert_eq!(t.figures, vec![Count(20), Suppressed, Count(30)]);
        add(&mut t, &table(vec![Count(15), Count(40), Suppressed])).unwrap();
        assert_eq!(t.figures, vec![Count(35), Suppressed, Suppressed]);
        assert!(t.small.is_empty());
    }

    #[test]
    fn tables_of_another_shape_are_not_added() {
        use Figure::*;
        let mut t = start(table(vec![Count(20), Count(20), Count(40)]), "n".into());
        let mut other = table(vec![Count(20), Count(20), Count(40)]);
        other.rows.labels[0].key = "c".into();
        assert_eq!(add(&mut t, &other), Err(DifferentShape));
        assert_eq!(t.figures, vec![Count(20), Count(20), Count(40)]);
    }
}
