//! An attacker on published statistics, as a statistician would be one:
//! every published figure, every "< T" and every "x" becomes a linear
//! constraint on the unknown counts, and a linear program bounds each
//! suppressed cell from below and above. The width of that interval is what
//! the published figures leave open; width 0 means the cell is recovered.
//!
//! The unknowns are the finest cells of each table (a residual category
//! that is never shown is an unknown like any other); tables of one
//! population must agree on the margins they share. This is the audit
//! τ-ARGUS runs on a suppression pattern, written independently of the
//! node's own reasoning: it knows the tables' shapes and what was shown,
//! nothing else.
#![allow(dead_code)]

use std::collections::BTreeMap;

use microlp::{ComparisonOp, LinearExpr, OptimizationDirection, Problem, Variable};

/// A classification: node 0 is the total; every other node has a parent.
#[derive(Clone, Debug)]
pub struct Tree {
    pub keys: Vec<String>,
    pub parent: Vec<Option<usize>>,
}

impl Tree {
    pub fn leaves(&self) -> Vec<usize> {
        (0..self.keys.len())
            .filter(|&n| !self.parent.contains(&Some(n)))
            .collect()
    }

    /// Whether `leaf` is `n` or lies under it.
    pub fn under(&self, leaf: usize, n: usize) -> bool {
        let mut x = Some(leaf);
        while let Some(i) = x {
            if i == n {
                return true;
            }
            x = self.parent[i];
        }
        false
    }

    pub fn node(&self, key: &str) -> usize {
        self.keys
            .iter()
            .position(|k| k == key)
            .unwrap_or_else(|| panic!("no category {key}"))
    }
}

/// The shape of one population's tables.
#[derive(Clone, Debug)]
pub struct Model {
    pub dims: Vec<Tree>,
    /// Each table as indices into `dims`.
    pub tables: Vec<Vec<usize>>,
}

/// What the attacker knows of a cell: it lies in `lo..=hi`.
pub type Known = (f64, f64);

pub struct Attack<'a> {
    model: &'a Model,
    /// Cell (a node per dim, 0 for the total) → what is known of it.
    known: BTreeMap<Vec<usize>, Known>,
}

impl<'a> Attack<'a> {
    pub fn new(model: &'a Model) -> Attack<'a> {
        Attack {
            model,
            known: BTreeMap::new(),
        }
    }

    /// Adds what a figure says. Two figures of the same cell (from two
    /// answers) are both kept: the attacker intersects them.
    pub fn learn(&mut self, cell: Vec<usize>, lo: f64, hi: f64) {
        let e = self
            .known
            .entry(cell)
            .or_insert((f64::NEG_INFINITY, f64::INFINITY));
        e.0 = e.0.max(lo);
        e.1 = e.1.min(hi);
    }

    /// The table whose unknowns express `cell`.
    fn table_of(&self, cell: &[usize]) -> usize {
        self.model
            .tables
            .iter()
            .position(|t| (0..cell.len()).all(|j| cell[j] == 0 || t.contains(&j)))
            .unwrap_or_else(|| panic!("cell {cell:?} is in no table"))
    }

    /// Every combination of one leaf per dim in `dims`, the total elsewhere.
    fn combos(&self, dims: &[usize]) -> Vec<Vec<usize>> {
        let mut combos: Vec<Vec<usize>> = vec![vec![0; self.model.dims.len()]];
        for &j in dims {
            let mut next = Vec::new();
            for c in &combos {
                for l in self.model.dims[j].leaves() {
                    let mut c = c.clone();
                    c[j] = l;
                    next.push(c);
                }
            }
            combos = next;
        }
        combos
    }

    /// The finest cells of each table, as (table, leaf per dim of the table).
    fn unknowns(&self) -> Vec<(usize, Vec<usize>)> {
        let mut out = Vec::new();
        for (t, dims) in self.model.tables.iter().enumerate() {
            out.extend(self.combos(dims).into_iter().map(|c| (t, c)));
        }
        out
    }

    /// The unknowns of table `t` that add up to `cell`.
    fn expr(
        &self,
        unknowns: &[(usize, Vec<usize>)],
        vars: &[Variable],
        t: usize,
        cell: &[usize],
    ) -> LinearExpr {
        let mut e = LinearExpr::empty();
        for ((tt, leaves), v) in unknowns.iter().zip(vars) {
            if *tt == t
                && self.model.tables[t]
                    .iter()
                    .all(|&j| self.model.dims[j].under(leaves[j], cell[j]))
            {
                e.add(*v, 1.0);
            }
        }
        e
    }

    /// The least and greatest value `cell` can take given everything
    /// learnt (the linear-programming relaxation).
    pub fn interval(&self, cell: &[usize]) -> (f64, f64) {
        (
            self.bound(cell, OptimizationDirection::Minimize),
            self.bound(cell, OptimizationDirection::Maximize),
        )
    }

    fn bound(&self, cell: &[usize], dir: OptimizationDirection) -> f64 {
        let unknowns = self.unknowns();
        let target = self.table_of(cell);
        let mut p = Problem::new(dir);
        let vars: Vec<Variable> = unknowns
            .iter()
            .map(|(t, leaves)| {
                let inside = *t == target
                    && self.model.tables[target]
                        .iter()
                        .all(|&j| self.model.dims[j].under(leaves[j], cell[j]));
                p.add_var(if inside { 1.0 } else { 0.0 }, (0.0, f64::INFINITY))
            })
            .collect();
        for (c, &(lo, hi)) in &self.known {
            let t = self.table_of(c);
            if lo == hi {
                p.add_constraint(self.expr(&unknowns, &vars, t, c), ComparisonOp::Eq, lo);
                continue;
            }
            if lo > 0.0 {
                p.add_constraint(self.expr(&unknowns, &vars, t, c), ComparisonOp::Ge, lo);
            }
            if hi.is_finite() {
                p.add_constraint(self.expr(&unknowns, &vars, t, c), ComparisonOp::Le, hi);
            }
        }
        // Tables of one population agree on the margins they share.
        let n = self.model.tables.len();
        for a in 0..n {
            for b in a + 1..n {
                let shared: Vec<usize> = self.model.tables[a]
                    .iter()
                    .copied()
                    .filter(|j| self.model.tables[b].contains(j))
                    .collect();
                let combos = self.combos(&shared);
                for c in combos {
                    let mut e = LinearExpr::empty();
                    for ((t, leaves), v) in unknowns.iter().zip(&vars) {
                        let sign = match *t {
                            t if t == a => 1.0,
                            t if t == b => -1.0,
                            _ => continue,
                        };
                        if shared
                            .iter()
                            .all(|&j| self.model.dims[j].under(leaves[j], c[j]))
                        {
                            e.add(*v, sign);
                        }
                    }
                    p.add_constraint(e, ComparisonOp::Eq, 0.0);
                }
            }
        }
        match p.solve() {
            // Nothing published bounds the cell from above (a residual
            // under suppressed totals): it could be any count.
            Err(microlp::Error::Unbounded) => f64::INFINITY,
            outcome => outcome
                .expect("the published figures are consistent")
                .solution()
                .expect("the solver finishes")
                .objective(),
        }
    }
}
