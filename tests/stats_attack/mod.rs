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

    /// The least and greatest value `cell` can take given everything
    /// learnt (the linear-programming relaxation).
    pub fn interval(&self, cell: &[usize]) -> (f64, f64) {
        let program = self.program();
        let objective: Vec<(usize, f64)> =
            program.cell(cell).into_iter().map(|u| (u, 1.0)).collect();
        // Nothing published bounds the cell from above (a residual under
        // suppressed totals): it could be any count.
        let hi = program
            .solve(&objective, OptimizationDirection::Maximize, None)
            .map_or(f64::INFINITY, |(v, _)| v);
        let lo = program
            .solve(&objective, OptimizationDirection::Minimize, None)
            .map_or(0.0, |(v, _)| v);
        (lo, hi)
    }
}

/// The attacker's linear program, built once and used for many cells: what
/// is known does not depend on the cell attacked, only the objective does.
pub struct Program {
    /// Each constraint: the unknowns it adds up, how, and its bound.
    rows: Vec<(Vec<usize>, ComparisonOp, f64)>,
    unknowns: Vec<(usize, Vec<usize>)>,
    model: Model,
}

/// What the attacker can establish about one cell: it can take every value
/// in `lo..=hi` (both reached by tables consistent with everything
/// published), and `exact` says whether these are the least and greatest
/// values (solved) or two values found on the way (the cell is open to at
/// least that range).
#[derive(Clone, Copy, Debug)]
pub struct Range {
    pub lo: f64,
    pub hi: f64,
    pub exact: bool,
}

impl Range {
    pub fn width(&self) -> f64 {
        self.hi - self.lo
    }
}

impl Attack<'_> {
    /// The program of everything learnt so far.
    pub fn program(&self) -> Program {
        let unknowns = self.unknowns();
        let dims = &self.model.dims;
        // The unknowns of each table, by their leaves, for lookups.
        let mut rows = Vec::new();
        let of = |t: usize, cell: &[usize]| -> Vec<usize> {
            unknowns
                .iter()
                .enumerate()
                .filter(|(_, (tt, leaves))| {
                    *tt == t
                        && self.model.tables[t]
                            .iter()
                            .all(|&j| dims[j].under(leaves[j], cell[j]))
                })
                .map(|(i, _)| i)
                .collect()
        };
        for (c, &(lo, hi)) in &self.known {
            let t = self.table_of(c);
            let e = of(t, c);
            if lo == hi {
                rows.push((e, ComparisonOp::Eq, lo));
                continue;
            }
            if lo > 0.0 {
                rows.push((e.clone(), ComparisonOp::Ge, lo));
            }
            if hi.is_finite() {
                rows.push((e, ComparisonOp::Le, hi));
            }
        }
        let n = self.model.tables.len();
        for a in 0..n {
            for b in a + 1..n {
                let shared: Vec<usize> = self.model.tables[a]
                    .iter()
                    .copied()
                    .filter(|j| self.model.tables[b].contains(j))
                    .collect();
                for c in self.combos(&shared) {
                    // a's unknowns minus b's: marked by a second list.
                    let mut e = of(a, &c);
                    e.extend(of(b, &c).into_iter().map(|i| i + unknowns.len()));
                    rows.push((e, ComparisonOp::Eq, 0.0));
                }
            }
        }
        Program {
            rows,
            unknowns,
            model: self.model.clone(),
        }
    }
}

impl Program {
    /// The unknowns that add up to `cell`.
    pub fn cell(&self, cell: &[usize]) -> Vec<usize> {
        let t = self
            .model
            .tables
            .iter()
            .position(|t| (0..cell.len()).all(|j| cell[j] == 0 || t.contains(&j)))
            .unwrap_or_else(|| panic!("cell {cell:?} is in no table"));
        self.unknowns
            .iter()
            .enumerate()
            .filter(|(_, (tt, leaves))| {
                *tt == t
                    && self.model.tables[t]
                        .iter()
                        .all(|&j| self.model.dims[j].under(leaves[j], cell[j]))
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// Optimises `objective` (unknown, coefficient) over the program;
    /// `cap`, if given, bounds every unknown above, which only removes
    /// tables (a solution found under it is consistent with everything
    /// published). Returns the optimum and the unknowns' values, or `None`
    /// when unbounded.
    fn solve(
        &self,
        objective: &[(usize, f64)],
        dir: OptimizationDirection,
        cap: Option<f64>,
    ) -> Option<(f64, Vec<f64>)> {
        let mut coeff = vec![0.0; self.unknowns.len()];
        for &(i, c) in objective {
            coeff[i] += c;
        }
        let mut p = Problem::new(dir);
        let upper = cap.unwrap_or(f64::INFINITY);
        let vars: Vec<Variable> = coeff.iter().map(|&c| p.add_var(c, (0.0, upper))).collect();
        let n = vars.len();
        for (e, op, rhs) in &self.rows {
            let mut x = LinearExpr::empty();
            for &i in e {
                if i < n {
                    x.add(vars[i], 1.0);
                } else {
                    x.add(vars[i - n], -1.0);
                }
            }
            p.add_constraint(x, *op, *rhs);
        }
        match p.solve() {
            Err(microlp::Error::Unbounded) => None,
            outcome => {
                let s = outcome.expect("the published figures are consistent");
                let s = s.solution().expect("the solver finishes");
                Some((
                    s.objective(),
                    vars.iter().map(|&v| s.var_value(v)).collect(),
                ))
            }
        }
    }

    /// What the attacker can establish about each of `cells`, given
    /// `truth` (the true count of each unknown, itself consistent with
    /// everything published): every cell whose values over the tables found
    /// so far already span `need` is open to at least that; only the others
    /// are bounded exactly, by two linear programs each. The tables found
    /// first are the truth and the extremes of the cells' sum (under a cap,
    /// which only removes tables), so most cells need no program of their
    /// own; every program solved adds its table to those found.
    pub fn ranges(&self, cells: &[Vec<usize>], truth: &[f64], need: f64) -> Vec<Range> {
        let exprs: Vec<Vec<usize>> = cells.iter().map(|c| self.cell(c)).collect();
        let mut found: Vec<Vec<f64>> = vec![truth.to_vec()];
        let value = |w: &[f64], e: &[usize]| e.iter().map(|&i| w[i]).sum::<f64>();
        let seen = |found: &[Vec<f64>], e: &[usize]| {
            found
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), w| {
                    let v = value(w, e);
                    (lo.min(v), hi.max(v))
                })
        };
        let cap = truth.iter().sum::<f64>() * 4.0 + 100.0;
        // A few programs over every cell still narrow at once.
        for _ in 0..3 {
            let open: Vec<usize> = (0..cells.len())
                .filter(|&i| {
                    let (lo, hi) = seen(&found, &exprs[i]);
                    hi - lo < need - 1e-6
                })
                .collect();
            if open.is_empty() {
                break;
            }
            let objective: Vec<(usize, f64)> = open
                .iter()
                .flat_map(|&i| exprs[i].iter().map(|&u| (u, 1.0)))
                .collect();
            for dir in [
                OptimizationDirection::Maximize,
                OptimizationDirection::Minimize,
            ] {
                if let Some((_, w)) = self.solve(&objective, dir, Some(cap)) {
                    found.push(w);
                }
            }
        }
        let mut out = Vec::with_capacity(cells.len());
        for e in &exprs {
            let (lo, hi) = seen(&found, e);
            if hi - lo >= need - 1e-6 {
                out.push(Range {
                    lo,
                    hi,
                    exact: false,
                });
                continue;
            }
            let objective: Vec<(usize, f64)> = e.iter().map(|&u| (u, 1.0)).collect();
            let hi = match self.solve(&objective, OptimizationDirection::Maximize, None) {
                Some((v, w)) => {
                    found.push(w);
                    v
                }
                None => f64::INFINITY,
            };
            let lo = match self.solve(&objective, OptimizationDirection::Minimize, None) {
                Some((v, w)) => {
                    found.push(w);
                    v
                }
                None => f64::NEG_INFINITY,
            };
            out.push(Range {
                lo,
                hi,
                exact: true,
            });
        }
        out
    }

    /// The true value of every unknown, from the count of each finest cell.
    pub fn truth(&self, count: impl Fn(&[usize]) -> f64) -> Vec<f64> {
        self.unknowns
            .iter()
            .map(|(_, leaves)| count(leaves))
            .collect()
    }
}
