//! The attacker's bound on one cell, computed the way a statistician would
//! attack a suppression pattern (the audit τ-ARGUS runs; Hundepool et al.
//! 2012, §4.2.4): every published figure is an equation, every "< T" and
//! "x" an inequality, every finest cell of every table an unknown ≥ 0, and
//! tables of the family agree on the margins they share. Two linear
//! programs give the least and greatest value the cell can take.
//!
//! The node uses it only where boxes (`protect`) cannot certify a cell: it
//! costs two solves per cell, where a box costs a few additions.

use std::collections::{HashMap, HashSet};

use microlp::{ComparisonOp, LinearExpr, OptimizationDirection, Problem, Variable};

use crate::stats::design::Dim;
use crate::stats::protect::{Family, Status};

/// (least, greatest) value of cell `p` given what the family shows now and,
/// for an `insider` (a leaf of the municipality classification), every
/// cell of its own exactly. Returns (0, 0) — no protection — if the solver
/// fails, so that a failure can only suppress more.
pub(crate) fn bounds(fam: &Family, p: usize, insider: Option<usize>) -> (f64, f64) {
    let lo = solve(fam, p, insider, OptimizationDirection::Minimize);
    let hi = solve(fam, p, insider, OptimizationDirection::Maximize);
    match (lo, hi) {
        (Some(lo), Some(hi)) => (lo, hi),
        _ => (0.0, 0.0),
    }
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

fn solve(
    fam: &Family,
    p: usize,
    insider: Option<usize>,
    dir: OptimizationDirection,
) -> Option<f64> {
    let target = fam.key(p);
    let m = fam.dim_index(Dim::Municipality)?;
    let target_table = table_of(fam, &target)?;
    let threshold = f64::from(fam.settings.threshold);
    let mut problem = Problem::new(dir);
    // Unknowns: (table, finest cell's family index) → variable.
    let mut vars: HashMap<(usize, usize), Variable> = HashMap::new();
    let inside: HashSet<usize> = under(fam, target_table, &target).into_iter().collect();
    for t in 0..fam.tables().len() {
        for leaf in finest(fam, &fam.tables()[t]) {
            let idx = fam.index(&leaf);
            let coeff = if t == target_table && inside.contains(&idx) {
                1.0
            } else {
                0.0
            };
            let known = if insider == Some(leaf[m]) {
                let v = fam.value(idx) as f64;
                (v, v)
            } else {
                (0.0, f64::INFINITY)
            };
            vars.insert((t, idx), problem.add_var(coeff, known));
        }
    }
    let expr = |t: usize, key: &[usize], sign: f64, e: &mut LinearExpr| {
        for idx in under(fam, t, key) {
            if let Some(v) = vars.get(&(t, idx)) {
                e.add(*v, sign);
            }
        }
    };
    for idx in fam.members() {
        let key = fam.key(idx);
        let t = table_of(fam, &key)?;
        let (op, rhs) = match fam.status(idx) {
            Status::Published => (ComparisonOp::Eq, fam.value(idx) as f64),
            Status::Small => (ComparisonOp::Le, threshold - 1.0),
            Status::Secondary => (ComparisonOp::Ge, threshold),
            Status::Hidden | Status::Masked => continue,
        };
        let mut e = LinearExpr::empty();
        expr(t, &key, 1.0, &mut e);
        problem.add_constraint(e, op, rhs);
    }
    // Tables agree on the margins they share (every combination of leaves
    // of the shared classifications, residuals included).
    let n = fam.tables().len();
    for a in 0..n {
        for b in a + 1..n {
            let shared: Vec<usize> = fam.tables()[a]
                .iter()
                .copied()
                .filter(|j| fam.tables()[b].contains(j))
                .collect();
            let combos = finest(fam, &shared);
            for c in combos {
                let mut e = LinearExpr::empty();
                expr(a, &c, 1.0, &mut e);
                expr(b, &c, -1.0, &mut e);
                problem.add_constraint(e, ComparisonOp::Eq, 0.0);
            }
        }
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
