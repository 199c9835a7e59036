//! The attacker's bound on one cell, computed the way a statistician would
//! attack a suppression pattern (the audit τ-ARGUS runs; Hundepool et al.
//! 2012, §4.2.4): every published figure is an equation, every "< T" and
//! "x" an inequality, every finest cell of every table an unknown ≥ 0, and
//! tables of the family agree on the margins they share. Two linear
//! programs give the least and greatest value the cell can take.
//!
//! The node uses it only where boxes (`protect`) cannot certify a cell: it
//! costs up to two solves per cell, where a box costs a few additions. The
//! program's shape (which unknowns each figure adds up) is built once per
//! family ([`Shape`]); only the statuses are read again at each solve.

use std::collections::{HashMap, HashSet};

use microlp::{ComparisonOp, LinearExpr, OptimizationDirection, Problem, Variable};

use crate::stats::design::Dim;
use crate::stats::protect::{Family, Status};

/// Whether cell `p` stays open to at least `need` values besides its own,
/// given what the family shows now and, for an `insider` (a leaf of the
/// municipality classification), every cell of its own exactly: the least
/// value by one program and, only if that alone does not leave `need`
/// below the true count (itself a value consistent with everything shown),
/// the greatest by a second. `false` if the solver fails, so that a failure
/// can only suppress more.
pub(crate) fn open_to(fam: &Family, p: usize, insider: Option<usize>, need: f64) -> bool {
    let v = fam.value(p) as f64;
    let Some(lo) = solve(fam, p, insider, OptimizationDirection::Minimize) else {
        return false;
    };
    if v - lo >= need {
        return true;
    }
    solve(fam, p, insider, OptimizationDirection::Maximize).is_some_and(|hi| hi - lo >= need)
}

/// Every combination of one leaf per classification in `dims` (residuals
/// included), the total elsewhere: the finest cells of a table, or the
/// finest margins two tables share.
fn finest(fam: &Family, dims: &[usize]) -> Vec<Vec<usize>> {
    let mut combos = vec![vec![0; fam.dims().len()]];
    for &j in dims {
        let leaves = fam.dims()[j].leaves_under(0);
        combos = combos
            .into_iter()
            .flat_map(|c| {
                leaves.iter().map(move |&l| {
                    let mut c = c.clone();
                    c[j] = l;
                    c
                })
            })
            .collect();
    }
    combos
}

/// The finest cells of table `t` that add up to cell `key`: every
/// combination of the leaves under `key`'s node on each of the table's
/// classifications, as family indices.
fn under(fam: &Family, t: usize, key: &[usize]) -> Vec<usize> {
    let mut out = vec![0usize];
    for (j, &n) in key.iter().enumerate() {
        if !fam.tables()[t].contains(&j) {
            continue;
        }
        let mut one = vec![0; key.len()];
        let leaves: Vec<usize> = fam.dims()[j]
            .leaves_under(n)
            .into_iter()
            .map(|l| {
                one[j] = l;
                fam.index(&one)
            })
            .collect();
        out = out
            .iter()
            .flat_map(|&base| leaves.iter().map(move |&l| base + l))
            .collect();
    }
    out
}

/// The first table that has every classification `key` fixes.
fn table_of(fam: &Family, key: &[usize]) -> Option<usize> {
    fam.tables().iter().position(|t| {
        key.iter()
            .enumerate()
            .all(|(j, &n)| n == 0 || t.contains(&j))
    })
}

/// The shape of a family's linear program, which does not change while
/// the protection suppresses more: the unknowns (every finest cell of every
/// table), the unknowns each figure adds up, and the margins tables share.
/// Built once per family (the statuses, read at each solve, are what
/// changes), so a solve costs the solver's time, not the building's.
#[derive(Clone, Debug)]
pub(crate) struct Shape {
    /// Each unknown: (its table, its family index).
    vars: Vec<(usize, usize)>,
    /// Each figure: (its family index, the unknowns it adds up).
    figures: Vec<(usize, Vec<u32>)>,
    /// Each shared margin: the unknowns of one table minus the other's.
    margins: Vec<(Vec<u32>, Vec<u32>)>,
}

impl Shape {
    pub(crate) fn of(fam: &Family, members: &[usize]) -> Option<Shape> {
        let mut vars = Vec::new();
        let mut at: HashMap<(usize, usize), u32> = HashMap::new();
        for t in 0..fam.tables().len() {
            for leaf in finest(fam, &fam.tables()[t]) {
                let idx = fam.index(&leaf);
                at.insert((t, idx), vars.len() as u32);
                vars.push((t, idx));
            }
        }
        let of = |t: usize, key: &[usize]| -> Vec<u32> {
            under(fam, t, key)
                .into_iter()
                .filter_map(|idx| at.get(&(t, idx)).copied())
                .collect()
        };
        let mut figures = Vec::with_capacity(members.len());
        for &idx in members {
            let key = fam.key(idx);
            let t = table_of(fam, &key)?;
            figures.push((idx, of(t, &key)));
        }
        let mut margins = Vec::new();
        let n = fam.tables().len();
        for a in 0..n {
            for b in a + 1..n {
                let shared: Vec<usize> = fam.tables()[a]
                    .iter()
                    .copied()
                    .filter(|j| fam.tables()[b].contains(j))
                    .collect();
                for c in finest(fam, &shared) {
                    margins.push((of(a, &c), of(b, &c)));
                }
            }
        }
        Some(Shape {
            vars,
            figures,
            margins,
        })
    }
}

fn solve(
    fam: &Family,
    p: usize,
    insider: Option<usize>,
    dir: OptimizationDirection,
) -> Option<f64> {
    let shape = fam.shape()?;
    let target = fam.key(p);
    let m = fam.dim_index(Dim::Municipality)?;
    let target_table = table_of(fam, &target)?;
    let threshold = f64::from(fam.settings.threshold);
    let mut problem = Problem::new(dir);
    let inside: HashSet<usize> = under(fam, target_table, &target).into_iter().collect();
    let vars: Vec<Variable> = shape
        .vars
        .iter()
        .map(|&(t, idx)| {
            let coeff = if t == target_table && inside.contains(&idx) {
                1.0
            } else {
                0.0
            };
            let known = if insider == Some(fam.coord(idx, m)) {
                let v = fam.value(idx) as f64;
                (v, v)
            } else {
                (0.0, f64::INFINITY)
            };
            problem.add_var(coeff, known)
        })
        .collect();
    let sum = |unknowns: &[u32], sign: f64, e: &mut LinearExpr| {
        for &u in unknowns {
            e.add(vars[u as usize], sign);
        }
    };
    for (idx, unknowns) in &shape.figures {
        let (op, rhs) = match fam.status(*idx) {
            Status::Published => (ComparisonOp::Eq, fam.value(*idx) as f64),
            Status::Small => (ComparisonOp::Le, threshold - 1.0),
            Status::Secondary => (ComparisonOp::Ge, threshold),
            Status::Hidden | Status::Masked => continue,
        };
        let mut e = LinearExpr::empty();
        sum(unknowns, 1.0, &mut e);
        problem.add_constraint(e, op, rhs);
    }
    // Tables agree on the margins they share (every combination of leaves
    // of the shared classifications, residuals included).
    for (a, b) in &shape.margins {
        let mut e = LinearExpr::empty();
        sum(a, 1.0, &mut e);
        sum(b, -1.0, &mut e);
        problem.add_constraint(e, ComparisonOp::Eq, 0.0);
    }
    match problem.solve() {
        // Nothing shown bounds the cell from above (a residual under
        // suppressed totals): it could be any count.
        Err(microlp::Error::Unbounded) if matches!(dir, OptimizationDirection::Maximize) => {
            Some(f64::INFINITY)
        }
        outcome => outcome.ok()?.solution().map(|s| s.objective()),
    }
}
