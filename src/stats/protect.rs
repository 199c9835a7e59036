//! Disclosure control: the cells of one population and quarter (a
//! *family*: every table of [`Population::tables`] with all its margins and
//! subtotals, for every municipality and their total), counted, then
//! protected as one publication.
//!
//! The method is cell suppression as Hundepool et al. describe it
//! (*Statistical Disclosure Control*, Wiley 2012, ch. 4–5; the ESSnet
//! *Handbook on Statistical Disclosure Control*), with the threshold rule
//! for frequency tables:
//!
//! 1. **Primary suppression.** Every cell below the threshold `T` — zero
//!    included, since an empty cell next to a full one tells about the
//!    people in the full one — is shown as "< T".
//! 2. **Secondary suppression.** Published cells are linear equations in the
//!    hidden ones (a total is the sum of its parts). For each primary cell
//!    the node finds a *hypercube* (Hundepool et al. §4.2.5; τ-ARGUS's
//!    HYPERCUBE method, Repsilber 1994): 2^k cells at the corners of a box
//!    across k classifications, signs alternating, lifted through every
//!    subtotal on the way to the totals. Adding `t` to the + corners and
//!    subtracting it from the − corners changes no published figure — every
//!    published total contains the corners in ± pairs, or none of them — so
//!    every such table is as consistent with the published figures as the
//!    true one. The corners that are published are suppressed as well (shown
//!    "x"), choosing the box that costs fewest and smallest extra
//!    suppressions.
//! 3. **Guarantee.** The box is kept only if `t` can range over at least
//!    `protection` values while every corner stays within what an attacker
//!    knows of it: a "< T" cell within 0…T−1, an "x" cell at least T, a
//!    residual (never shown) at least 0. So whoever combines *all* figures of
//!    the family — any linear combination of any tables of the same quarter,
//!    the node's totals with a municipality's own slice — can narrow no "< T"
//!    cell to fewer than `protection` + 1 possible values. Each box moves
//!    whole integers, so this holds for an attacker who reasons in integers
//!    too, not only for the linear-programming bound the tests also check.
//!    Because the tables of a family share only margins that every box keeps
//!    fixed unless it suppresses them too, and the family is decomposable
//!    ([`Population::tables`]), the other tables stay consistent with every
//!    shifted one.
//! 4. **Rounding.** Published counts are rounded to a multiple of
//!    `rounding_base` (half up), each within ⌊base/2⌋ of the true count.
//!    Rounding adds uncertainty and takes none away: the guarantee above is
//!    computed on the exact counts.

use crate::stats::audit;
use crate::stats::design::{Classification, Dim, Population, classification, leaf_of};
use crate::stats::facts::{CaseFacts, Quarter};

/// The disclosure-control settings (the `[statistics]` section of the
/// configuration).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Settings {
    /// Cells below this are shown as "< threshold". Default 10.
    pub threshold: u32,
    /// The least number of values beyond the true one that every "< T" cell
    /// must stay open to, whatever is combined: 1 ≤ protection < threshold.
    /// Default 5: a cell shown as "< 10" can never be narrowed to fewer than
    /// six possible counts.
    pub protection: u32,
    /// Published counts are rounded to a multiple of this (1: exact). The
    /// threshold must be a multiple of it, so that no rounded figure falls
    /// below the threshold. Default 5.
    pub rounding_base: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            threshold: 10,
            protection: 5,
            rounding_base: 5,
        }
    }
}

impl Settings {
    /// Checks the settings make sense together; the message says what to fix.
    pub fn check(&self) -> Result<(), String> {
        if !(2..=1000).contains(&self.threshold) {
            return Err("statistics.threshold must be from 2 to 1000".into());
        }
        if self.protection == 0 || self.protection >= self.threshold {
            return Err(format!(
                "statistics.protection must be from 1 to threshold - 1 ({})",
                self.threshold - 1
            ));
        }
        if self.rounding_base == 0 || !self.threshold.is_multiple_of(self.rounding_base) {
            return Err(
                "statistics.rounding_base must be at least 1 and divide the threshold".into(),
            );
        }
        Ok(())
    }

    /// The published value of a count of at least the threshold.
    pub fn round(&self, v: u64) -> u64 {
        let b = u64::from(self.rounding_base);
        (v + b / 2) / b * b
    }
}

/// What is shown of a cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Not a figure of any table: a residual (e.g. "not recorded"), or a
    /// combination no table has. An attacker knows only that it is ≥ 0.
    Hidden,
    /// Shown (rounded).
    Published,
    /// Below the threshold: shown as "< T".
    Small,
    /// At least the threshold, suppressed to protect a small cell: "x".
    Secondary,
    /// Below the threshold, in a node total, where one municipality (or the
    /// other registrants together) holds so much of it that "< T" would tell
    /// that insider, who knows its own cases, the others' share within fewer
    /// than `protection` + 1 values: shown as "x", protected like a small
    /// cell.
    Masked,
}

/// A small cell for which no suppression pattern could be found; the table
/// is then not published at all.
#[derive(Debug, thiserror::Error)]
#[error("the figures of this quarter cannot be protected; nothing is published")]
pub struct Unprotectable;

/// The cells of one population and quarter, with what is shown of each.
#[derive(Clone, Debug)]
pub struct Family {
    pub population: Population,
    pub quarter: Quarter,
    pub settings: Settings,
    dims: Vec<Classification>,
    /// Each table as indices into `dims`.
    tables: Vec<Vec<usize>>,
    strides: Vec<usize>,
    value: Vec<u64>,
    status: Vec<Status>,
    /// Every figure, in index order (fixed once counted).
    members: Vec<usize>,
    /// The attacker's program's shape, built at the first audit.
    shape: std::sync::OnceLock<Option<audit::Shape>>,
}

/// Boxes added one by one for a cell boxes cannot certify, before the
/// suppression widens to whole municipalities.
const MAX_WIDENING: usize = 24;

/// What a box costs: new suppressions, their total, and minus what it gains.
type Cost = (usize, u64, i64);

/// A box of a certificate, by its index among the boxes through the cell,
/// with the room it takes upwards and downwards.
type Chosen = (usize, u64, u64);

/// The room a certificate uses per cell, and how far it moves the cell.
type Usage = (Vec<(usize, [u64; 4])>, u64);

/// A candidate adjustment's move on one classification.
#[derive(Clone, Copy, Debug)]
enum Move {
    /// Stay on the cell's category, through this leaf under it: every
    /// subtotal up to the total moves along.
    Lift(usize),
    /// Alternate with a sibling: (leaf under the cell's category, the
    /// sibling, a leaf under the sibling). The common parent does not move.
    Alt(usize, usize, usize),
}

impl Family {
    /// Counts the cases of `population` in `quarter` (other facts are
    /// skipped) and marks the cells below the threshold. `municipalities`
    /// are the node's municipalities, (participant id, name).
    pub fn count(
        population: Population,
        quarter: Quarter,
        municipalities: &[(String, String)],
        facts: &[CaseFacts],
        settings: Settings,
    ) -> Family {
        let dims: Vec<Classification> = population
            .dims()
            .iter()
            .map(|&d| classification(d, municipalities))
            .collect();
        let tables: Vec<Vec<usize>> = population
            .tables()
            .iter()
            .map(|t| {
                t.iter()
                    .filter_map(|d| population.dims().iter().position(|x| x == d))
                    .collect()
            })
            .collect();
        let mut strides = vec![0; dims.len()];
        let mut size = 1;
        for j in (0..dims.len()).rev() {
            strides[j] = size;
            size *= dims[j].nodes.len();
        }
        let mut fam = Family {
            population,
            quarter,
            settings,
            dims,
            tables,
            strides,
            value: vec![0; size],
            status: vec![Status::Hidden; size],
            members: Vec::new(),
            shape: std::sync::OnceLock::new(),
        };
        fam.members = (0..size).filter(|&i| fam.is_member(&fam.key(i))).collect();
        let mut cells = Vec::new();
        for f in facts.iter().filter(|f| population.counts(f, quarter)) {
            let leaves: Vec<Option<usize>> =
                fam.dims.iter().map(|c| leaf_of(c, f, quarter)).collect();
            cells.clear();
            for t in &fam.tables {
                let paths: Option<Vec<Vec<usize>>> = (0..fam.dims.len())
                    .map(|j| {
                        if t.contains(&j) {
                            leaves[j].map(|l| fam.dims[j].path(l, 0))
                        } else {
                            Some(vec![0])
                        }
                    })
                    .collect();
                if let Some(paths) = paths {
                    fam.product(&paths, &mut |idx| cells.push(idx));
                }
            }
            cells.sort_unstable();
            cells.dedup();
            for &idx in &cells {
                fam.value[idx] += 1;
            }
        }
        let threshold = u64::from(settings.threshold);
        for idx in fam.members() {
            fam.status[idx] = if fam.value[idx] < threshold {
                Status::Small
            } else {
                Status::Published
            };
        }
        fam
    }

    /// Calls `f` with the index of every cell of the product of `paths`
    /// (one node list per classification).
    fn product(&self, paths: &[Vec<usize>], f: &mut impl FnMut(usize)) {
        fn go(fam: &Family, paths: &[Vec<usize>], j: usize, idx: usize, f: &mut impl FnMut(usize)) {
            if j == paths.len() {
                f(idx);
                return;
            }
            for &n in &paths[j] {
                go(fam, paths, j + 1, idx + n * fam.strides[j], f);
            }
        }
        go(self, paths, 0, 0, f)
    }

    /// The classifications, in the population's order.
    pub fn dims(&self) -> &[Classification] {
        &self.dims
    }

    /// The tables, as indices into [`dims`](Self::dims).
    pub fn tables(&self) -> &[Vec<usize>] {
        &self.tables
    }

    pub fn index(&self, key: &[usize]) -> usize {
        key.iter().zip(&self.strides).map(|(n, s)| n * s).sum()
    }

    pub fn key(&self, idx: usize) -> Vec<usize> {
        self.strides
            .iter()
            .zip(&self.dims)
            .map(|(s, c)| idx / s % c.nodes.len())
            .collect()
    }

    /// Whether a cell is a figure of some table: the tables' classifications
    /// at any node, the others at their total, and no residual.
    fn is_member(&self, key: &[usize]) -> bool {
        key.iter()
            .enumerate()
            .all(|(j, &n)| self.dims[j].nodes[n].shown)
            && self.tables.iter().any(|t| {
                key.iter()
                    .enumerate()
                    .all(|(j, &n)| n == 0 || t.contains(&j))
            })
    }

    /// Residual cells that follow from the figures by subtraction — a
    /// total minus its shown parts, e.g. the cases of the other registrants,
    /// or those with no scenario recorded — and count from 1 to T − 1
    /// people: never shown, but protected like a small cell, since the
    /// published figures could otherwise pin them down. An empty residual
    /// is a fact about the register, not about anyone, and is not protected.
    pub fn small_residuals(&self) -> Vec<usize> {
        let t = u64::from(self.settings.threshold);
        (0..self.value.len())
            .filter(|&i| (1..t).contains(&self.value[i]))
            .filter(|&i| {
                let key = self.key(i);
                !self.is_member(&key)
                    && self.tables.iter().any(|tab| {
                        key.iter()
                            .enumerate()
                            .all(|(j, &n)| n == 0 || tab.contains(&j))
                    })
            })
            .collect()
    }

    /// Every figure of the family, in index order.
    pub fn members(&self) -> Vec<usize> {
        self.members.clone()
    }

    /// The shape of the attacker's program over this family (`audit`).
    pub(crate) fn shape(&self) -> Option<&audit::Shape> {
        self.shape
            .get_or_init(|| audit::Shape::of(self, &self.members))
            .as_ref()
    }

    /// The true count of a cell. Stays inside the node.
    pub fn value(&self, idx: usize) -> u64 {
        self.value[idx]
    }

    pub fn status(&self, idx: usize) -> Status {
        self.status[idx]
    }

    /// The cell's name, e.g. `municipality=gemeente-utrecht outcome=durable`
    /// (totals left out), for the access record and error messages.
    pub fn name(&self, idx: usize) -> String {
        let key = self.key(idx);
        let parts: Vec<String> = key
            .iter()
            .enumerate()
            .filter(|&(_, &n)| n != 0)
            .map(|(j, &n)| format!("{}={}", self.dims[j].dim, self.dims[j].nodes[n].key))
            .collect();
        if parts.is_empty() {
            "total".into()
        } else {
            parts.join(" ")
        }
    }

    /// The position of a classification in this family.
    pub fn dim_index(&self, d: Dim) -> Option<usize> {
        self.dims.iter().position(|c| c.dim == d)
    }

    /// Suppresses what must be suppressed (module documentation). Fails
    /// when some small cell cannot be protected; nothing may then be shown.
    pub fn protect(&mut self) -> Result<(), Unprotectable> {
        self.mask_dominated();
        let mut primaries: Vec<usize> = (0..self.status.len())
            .filter(|&i| matches!(self.status[i], Status::Small | Status::Masked))
            .collect();
        primaries.extend(self.small_residuals());
        // Detailed cells first: their boxes often cover the margins' too.
        primaries.sort_by_key(|&i| (self.key(i).iter().filter(|&&n| n == 0).count(), i));
        let insiders = self.insiders();
        for p in primaries {
            let boxes = self.boxes_through(p);
            // The outsider first; then every insider its certificate does
            // not also hold for gets a certificate of its own.
            let mut open = vec![None];
            open.extend(insiders.iter().map(|&i| Some(i)));
            let mut first: Option<Usage> = None;
            for insider in open {
                if insider.is_some_and(|i| self.owned_by(p, i)) {
                    continue;
                }
                if let Some(usage) = &first
                    && self.holds(usage, insider)
                {
                    continue;
                }
                match self.certify(p, &boxes, insider) {
                    Some((extra, chosen)) => {
                        for idx in extra {
                            self.status[idx] = Status::Secondary;
                        }
                        if first.is_none() {
                            first = Some(self.usage(&boxes, &chosen));
                        }
                    }
                    None => self.widen(p, insider, &boxes)?,
                }
            }
        }
        Ok(())
    }

    /// Suppresses every figure as a masked one ("x", bounding nothing):
    /// the answer for figures [`protect`](Self::protect) cannot protect.
    /// With every figure "x", an "x" no longer says that a figure is at
    /// least the threshold, and the table shows nothing but its headings —
    /// safe whatever anyone knows of their own cases.
    pub fn suppress_all(&mut self) {
        for &idx in &self.members {
            self.status[idx] = Status::Masked;
        }
    }

    /// Whether every figure is suppressed by [`suppress_all`](Self::suppress_all)
    /// (cells of municipalities are never masked otherwise).
    pub fn all_suppressed(&self) -> bool {
        self.members
            .iter()
            .all(|&idx| self.status[idx] == Status::Masked)
    }

    /// The possible insiders: every municipality of the node, and the other
    /// registrants together (leaves of the municipality classification).
    fn insiders(&self) -> Vec<usize> {
        let m = self.municipality_dim();
        self.dims[m].leaves_under(0)
    }

    fn municipality_dim(&self) -> usize {
        self.dim_index(Dim::Municipality).unwrap_or(0)
    }

    /// The node of classification `j` that cell `idx` is at.
    pub(crate) fn coord(&self, idx: usize, j: usize) -> usize {
        idx / self.strides[j] % self.dims[j].nodes.len()
    }

    /// Whether cell `idx` is one of `insider`'s own (it knows it exactly).
    fn owned_by(&self, idx: usize, insider: usize) -> bool {
        self.coord(idx, self.municipality_dim()) == insider
    }

    /// `insider`'s own part of cell `idx`: all of it for its own cells, its
    /// column of a node total, nothing of another municipality's cell.
    fn part_of(&self, idx: usize, insider: Option<usize>) -> u64 {
        let Some(i) = insider else { return 0 };
        let m = self.municipality_dim();
        match self.coord(idx, m) {
            0 => self.value[idx + i * self.strides[m]],
            n if n == i => self.value[idx],
            _ => 0,
        }
    }

    /// Node totals below the threshold that one insider dominates: with
    /// "< T" shown, whoever holds `a` of a cell knows the others hold at
    /// most T − 1 − a, fewer than `protection` + 1 values once a exceeds
    /// T − 1 − protection (the dominance view of Hundepool et al. 2012,
    /// §4.2.2, for a frequency count whose contributors are
    /// municipalities). Such a cell is shown as "x", which bounds nothing.
    fn mask_dominated(&mut self) {
        let m = self.municipality_dim();
        let limit = u64::from(self.settings.threshold - 1 - self.settings.protection);
        let insiders = self.insiders();
        for idx in 0..self.status.len() {
            if self.status[idx] != Status::Small || self.key(idx)[m] != 0 {
                continue;
            }
            if insiders.iter().any(|&i| self.part_of(idx, Some(i)) > limit) {
                self.status[idx] = Status::Masked;
            }
        }
    }

    /// (room to rise, room to fall) of a cell as `insider` (or an outsider,
    /// `None`) knows it, once suppressed: a "< T" cell within 0…T−1, an "x"
    /// at least T (an outsider may assume so of every "x" but a masked
    /// one), a masked or never shown cell at least 0 — and every cell at
    /// least the insider's own part of it; the insider's own cells not at all.
    fn room(&self, idx: usize, insider: Option<usize>) -> (u64, u64) {
        if insider.is_some_and(|i| self.owned_by(idx, i)) {
            return (0, 0);
        }
        let t = u64::from(self.settings.threshold);
        let v = self.value[idx];
        let floor = self.part_of(idx, insider);
        match self.status[idx] {
            Status::Small => ((t - 1).saturating_sub(v), v.saturating_sub(floor)),
            Status::Secondary | Status::Published => (u64::MAX, v.saturating_sub(t.max(floor))),
            Status::Masked | Status::Hidden => (u64::MAX, v.saturating_sub(floor)),
        }
    }

    /// The room the boxes `chosen` use, per cell: [rise in the raised
    /// table, fall in it, rise in the lowered, fall in it], and the total
    /// they move the cell up and down.
    fn usage(&self, boxes: &[Vec<(usize, i8)>], chosen: &[Chosen]) -> Usage {
        let mut used: std::collections::HashMap<usize, [u64; 4]> = Default::default();
        let (mut up, mut down) = (0u64, 0u64);
        for &(b, g_up, g_down) in chosen {
            for &(idx, sign) in &boxes[b] {
                let u = used.entry(idx).or_default();
                if sign > 0 {
                    u[0] += g_up;
                    u[3] += g_down;
                } else {
                    u[1] += g_up;
                    u[2] += g_down;
                }
            }
            up += g_up;
            down += g_down;
        }
        (used.into_iter().collect(), up + down)
    }

    /// Whether a certificate found for one attacker (its [`usage`]) also
    /// certifies the cell against `insider`: no box moves one of its own
    /// cells, and no cell is moved beyond the room the insider sees.
    fn holds(&self, usage: &Usage, insider: Option<usize>) -> bool {
        let (used, moved) = usage;
        *moved >= u64::from(self.settings.protection)
            && used.iter().all(|&(idx, u)| {
                let (rise, fall) = self.room(idx, insider);
                u[0] <= rise && u[2] <= rise && u[1] <= fall && u[3] <= fall
            })
    }

    /// For a small cell whose neighbourhood is too sparse for boxes to
    /// certify on their own: suppress the published corners of one more box
    /// through it at a time, cheapest first, and after each bound the cell as
    /// an attacker would, by linear programming over all figures of the
    /// family ([`audit::open_to`], with what `insider` knows of its own
    /// cases), until it is open to `protection` values besides its own.
    /// Should that not do, suppress every published figure of its
    /// municipality (or of the node total), then every figure.
    fn widen(
        &mut self,
        p: usize,
        insider: Option<usize>,
        through: &[Vec<(usize, i8)>],
    ) -> Result<(), Unprotectable> {
        let need = f64::from(self.settings.protection) - 1e-6;
        let wide = |fam: &Family| audit::open_to(fam, p, insider, need);
        let boxes: Vec<&Vec<(usize, i8)>> = through
            .iter()
            .filter(|b| {
                !b.iter()
                    .any(|&(idx, _)| insider.is_some_and(|i| self.owned_by(idx, i)))
            })
            .collect();
        for _ in 0..MAX_WIDENING {
            if wide(self) {
                return Ok(());
            }
            let cheapest = boxes
                .iter()
                .filter_map(|b| {
                    let new: Vec<usize> = b
                        .iter()
                        .map(|&(idx, _)| idx)
                        .filter(|&idx| self.status[idx] == Status::Published)
                        .collect();
                    let total: u64 = new.iter().map(|&i| self.value[i]).sum();
                    (!new.is_empty()).then_some(((new.len(), total), new))
                })
                .min_by_key(|(cost, _)| *cost);
            let Some((_, new)) = cheapest else { break };
            for idx in new {
                self.status[idx] = Status::Secondary;
            }
        }
        let m = self.dim_index(Dim::Municipality).unwrap_or(0);
        let key = self.key(p);
        let members = self.members();
        let same_municipality: Vec<usize> = members
            .iter()
            .copied()
            .filter(|&i| self.key(i)[m] == key[m])
            .collect();
        for step in [same_municipality, members] {
            for idx in step {
                if self.status[idx] == Status::Published {
                    self.status[idx] = Status::Secondary;
                }
            }
            if wide(self) {
                return Ok(());
            }
        }
        Err(Unprotectable)
    }

    /// The boxes through `p` (each moving `p` up with the + corners): every
    /// way to lift or alternate each classification `p` fixes.
    fn boxes_through(&self, p: usize) -> Vec<Vec<(usize, i8)>> {
        let key = self.key(p);
        let fixed: Vec<usize> = (0..key.len()).filter(|&j| key[j] != 0).collect();
        // Per fixed classification: lift, or alternate with a sibling.
        let options: Vec<Vec<Move>> = fixed
            .iter()
            .map(|&j| {
                let c = &self.dims[j];
                let here = self.top_leaves(&key, j, key[j], usize::MAX);
                let mut o: Vec<Move> = here.iter().map(|&l| Move::Lift(l)).collect();
                for s in c.siblings(key[j]) {
                    for &m in &self.top_leaves(&key, j, s, usize::MAX) {
                        for &l in &here {
                            o.push(Move::Alt(l, s, m));
                        }
                    }
                }
                o
            })
            .collect();
        let mut out = Vec::new();
        let mut choice = vec![0usize; fixed.len()];
        loop {
            let mut moves: Vec<Option<Move>> = vec![None; key.len()];
            for (f, &j) in fixed.iter().enumerate() {
                moves[j] = Some(options[f][choice[f]]);
            }
            out.extend(
                self.boxes(&key, &moves)
                    .into_iter()
                    .filter(|b| b.contains(&(p, 1))),
            );
            // Next combination of options.
            let mut f = 0;
            loop {
                if f == fixed.len() {
                    out.sort();
                    out.dedup();
                    return out;
                }
                choice[f] += 1;
                if choice[f] < options[f].len() {
                    break;
                }
                choice[f] = 0;
                f += 1;
            }
        }
    }

    /// A certificate for `p` against `insider` (or an outsider, `None`):
    /// boxes that together move `p` up by `U` and down by `D` with
    /// `U + D ≥ protection`, each cell staying within what that attacker
    /// knows of it ([`room`](Self::room)); no box may move an insider's own
    /// cell. Boxes add up — every one leaves every published figure as it
    /// is — as long as no cell is moved past its room, so each box takes
    /// what room it uses from the cells it moves (separately for the raised
    /// and the lowered table). Free boxes first, then the one that
    /// suppresses fewest and smallest extra cells per unit of room gained.
    /// Returns the cells to suppress besides and the boxes chosen; `None`
    /// if even every box together falls short.
    fn certify(
        &self,
        p: usize,
        boxes: &[Vec<(usize, i8)>],
        insider: Option<usize>,
    ) -> Option<(Vec<usize>, Vec<Chosen>)> {
        let need = u64::from(self.settings.protection);
        let mut extra: Vec<usize> = Vec::new();
        let mut chosen: Vec<Chosen> = Vec::new();
        // Room used so far: for the raised table, and for the lowered one.
        let mut used_up: std::collections::HashMap<usize, (u64, u64)> = Default::default();
        let mut used_down: std::collections::HashMap<usize, (u64, u64)> = Default::default();
        let (mut up, mut down) = (0u64, 0u64);
        let usable: Vec<bool> = boxes
            .iter()
            .map(|b| {
                b.contains(&(p, 1))
                    && !b
                        .iter()
                        .any(|&(idx, _)| insider.is_some_and(|i| self.owned_by(idx, i)))
            })
            .collect();
        while up.saturating_add(down) < need {
            // (new suppressions, their total, −gain), the box, gain up, gain down.
            let mut best: Option<(Cost, usize, u64, u64)> = None;
            for (b, moved) in boxes.iter().enumerate() {
                if !usable[b] {
                    continue;
                }
                let (mut g_up, mut g_down) = (u64::MAX, u64::MAX);
                let (mut new, mut new_total) = (0usize, 0u64);
                for &(idx, sign) in moved {
                    if self.status[idx] == Status::Published && !extra.contains(&idx) {
                        new += 1;
                        new_total += self.value[idx];
                    }
                    let (rise, fall) = self.room(idx, insider);
                    let (ur, uf) = used_up.get(&idx).copied().unwrap_or((0, 0));
                    let (dr, df) = used_down.get(&idx).copied().unwrap_or((0, 0));
                    // Raising p: + corners rise, − corners fall; lowering: the reverse.
                    let (u, d) = if sign > 0 {
                        (rise.saturating_sub(ur), fall.saturating_sub(df))
                    } else {
                        (fall.saturating_sub(uf), rise.saturating_sub(dr))
                    };
                    g_up = g_up.min(u);
                    g_down = g_down.min(d);
                }
                let g_up = g_up.min(need);
                let g_down = g_down.min(need);
                let gain = g_up + g_down;
                if gain == 0 {
                    continue;
                }
                let cost = (new, new_total, -(gain as i64));
                if best.as_ref().is_none_or(|(c, ..)| cost < *c) {
                    best = Some((cost, b, g_up, g_down));
                }
            }
            let (_, b, g_up, g_down) = best?;
            for &(idx, sign) in &boxes[b] {
                if self.status[idx] == Status::Published && !extra.contains(&idx) {
                    extra.push(idx);
                }
                let u = used_up.entry(idx).or_default();
                let d = used_down.entry(idx).or_default();
                if sign > 0 {
                    u.0 += g_up;
                    d.1 += g_down;
                } else {
                    u.1 += g_up;
                    d.0 += g_down;
                }
            }
            chosen.push((b, g_up, g_down));
            up += g_up;
            down += g_down;
        }
        Some((extra, chosen))
    }

    /// Up to `k` leaves under node `n` of classification `j`, largest count
    /// first (as the cell `key` with `j` set to the leaf, or else that leaf's
    /// own total), so the box has room to move.
    fn top_leaves(&self, key: &[usize], j: usize, n: usize, k: usize) -> Vec<usize> {
        let mut leaves = self.dims[j].leaves_under(n);
        let rank = |l: usize| {
            let mut with = key.to_vec();
            with[j] = l;
            if self.tables.iter().any(|t| {
                with.iter()
                    .enumerate()
                    .all(|(i, &x)| x == 0 || t.contains(&i))
            }) {
                self.value[self.index(&with)]
            } else {
                let mut alone = vec![0; key.len()];
                alone[j] = l;
                self.value[self.index(&alone)]
            }
        };
        leaves.sort_by_key(|&l| (std::cmp::Reverse(rank(l)), l));
        leaves.truncate(k);
        leaves
    }

    /// The boxes for one choice of moves on the fixed classifications: the
    /// lifted classifications that are not fixed still need a leaf to go
    /// through, tried among the two largest.
    fn boxes(&self, key: &[usize], moves: &[Option<Move>]) -> Vec<Vec<(usize, i8)>> {
        let alternated: Vec<usize> = (0..key.len())
            .filter(|&j| matches!(moves[j], Some(Move::Alt(..))))
            .collect();
        // A table is touched when it has every alternated classification;
        // the others see each corner in ± pairs.
        let touched: Vec<&Vec<usize>> = self
            .tables
            .iter()
            .filter(|t| alternated.iter().all(|j| t.contains(j)))
            .collect();
        let free: Vec<usize> = (0..key.len())
            .filter(|&j| moves[j].is_none() && touched.iter().any(|t| t.contains(&j)))
            .collect();
        let free_options: Vec<Vec<usize>> = free
            .iter()
            .map(|&j| self.top_leaves(key, j, 0, usize::MAX))
            .collect();
        let mut out = Vec::new();
        let mut choice = vec![0usize; free.len()];
        loop {
            let mut all = moves.to_vec();
            for (f, &j) in free.iter().enumerate() {
                all[j] = Some(Move::Lift(free_options[f][choice[f]]));
            }
            if let Some(moved) = self.moved(key, &all, &alternated, &touched) {
                out.push(moved);
            }
            let mut f = 0;
            loop {
                if f == free.len() {
                    return out;
                }
                choice[f] += 1;
                if choice[f] < free_options[f].len() {
                    break;
                }
                choice[f] = 0;
                f += 1;
            }
        }
    }

    /// The cells one box moves, with their signs; `None` if two tables would
    /// move a shared cell in opposite directions (cannot happen for a box,
    /// kept as a guard).
    fn moved(
        &self,
        key: &[usize],
        moves: &[Option<Move>],
        alternated: &[usize],
        touched: &[&Vec<usize>],
    ) -> Option<Vec<(usize, i8)>> {
        let mut out: Vec<(usize, i8)> = Vec::new();
        for t in touched {
            for corner in 0u32..(1 << alternated.len()) {
                let sign: i8 = if corner.count_ones() % 2 == 0 { 1 } else { -1 };
                let paths: Vec<Vec<usize>> = (0..key.len())
                    .map(|j| {
                        if !t.contains(&j) {
                            return vec![0];
                        }
                        let c = &self.dims[j];
                        match moves[j] {
                            Some(Move::Alt(l, s, m)) => {
                                let bit = alternated.iter().position(|&a| a == j).unwrap_or(0);
                                if corner & (1 << bit) == 0 {
                                    c.path(l, key[j])
                                } else {
                                    c.path(m, s)
                                }
                            }
                            Some(Move::Lift(l)) => c.path(l, 0),
                            None => vec![0],
                        }
                    })
                    .collect();
                self.product(&paths, &mut |idx| out.push((idx, sign)));
            }
        }
        out.sort_unstable();
        out.dedup();
        let conflicting = out.windows(2).any(|w| w[0].0 == w[1].0);
        (!conflicting).then_some(out)
    }

    /// The figure shown for a member cell.
    pub fn figure(&self, idx: usize) -> crate::stats::Figure {
        use crate::stats::Figure;
        match self.status[idx] {
            Status::Published => Figure::Count(self.settings.round(self.value[idx])),
            Status::Small => Figure::Small,
            Status::Secondary | Status::Masked | Status::Hidden => Figure::Suppressed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::outcome::{Outcome, OutcomeKind, Scenario, parse_date};

    fn facts(owner: &str, kind: OutcomeKind, intake: Scenario, n: usize) -> Vec<CaseFacts> {
        (0..n)
            .map(|_| CaseFacts {
                owner: owner.into(),
                intake: parse_date("2025-01-10").unwrap(),
                intake_scenario: Some(intake),
                perspective: Some(intake),
                outcome: Some(Outcome {
                    kind,
                    date: parse_date("2025-02-10").unwrap(),
                }),
                shelter: None,
            })
            .collect()
    }

    fn municipalities() -> Vec<(String, String)> {
        ["a", "b"]
            .iter()
            .map(|m| (m.to_string(), m.to_uppercase()))
            .collect()
    }

    #[test]
    fn settings_are_checked() {
        assert!(Settings::default().check().is_ok());
        let bad = |threshold, protection, rounding_base| {
            Settings {
                threshold,
                protection,
                rounding_base,
            }
            .check()
            .is_err()
        };
        assert!(bad(10, 10, 5));
        assert!(bad(10, 0, 5));
        assert!(bad(10, 5, 3));
        assert!(bad(1, 1, 1));
        assert_eq!(Settings::default().round(12), 10);
        assert_eq!(Settings::default().round(13), 15);
    }

    #[test]
    fn a_lonely_small_cell_takes_others_with_it() {
        let mut all = facts("a", OutcomeKind::Legalisation, Scenario::Legalisation, 3);
        all.extend(facts(
            "a",
            OutcomeKind::DepartureIndependent,
            Scenario::Return,
            40,
        ));
        all.extend(facts(
            "b",
            OutcomeKind::Legalisation,
            Scenario::Legalisation,
            30,
        ));
        all.extend(facts(
            "b",
            OutcomeKind::DepartureIndependent,
            Scenario::Return,
            25,
        ));
        let mut fam = Family::count(
            Population::Outcomes,
            Quarter::new(2025, 1).unwrap(),
            &municipalities(),
            &all,
            Settings::default(),
        );
        let k = fam.dim_index(Dim::OutcomeKind).unwrap();
        let m = fam.dim_index(Dim::Municipality).unwrap();
        let mut key = vec![0; fam.dims().len()];
        key[m] = fam.dims()[m].leaf("a").unwrap();
        key[k] = fam.dims()[k].leaf("legalisation").unwrap();
        let small = fam.index(&key);
        assert_eq!(fam.status(small), Status::Small);
        fam.protect().unwrap();
        let secondary = fam
            .members()
            .into_iter()
            .filter(|&i| fam.status(i) == Status::Secondary)
            .count();
        assert!(secondary > 0, "the small cell needs partners");
        assert_eq!(fam.figure(small), crate::stats::Figure::Small);
    }

    /// 21 outcomes of a quarter over two municipalities and another
    /// registrant (found by search): no pattern of suppressed cells
    /// protects every small cell against every insider. Every figure "x"
    /// does, and is what is published.
    #[test]
    fn figures_no_pattern_protects_are_all_suppressed() {
        use OutcomeKind as K;
        use Scenario as S;
        let cases = [
            ("a", S::Legalisation, K::Legalisation, "2024-10-10"),
            ("a", S::Return, K::DepartureForced, "2024-11-10"),
            ("b", S::Legalisation, K::OutOfSight, "2024-11-10"),
            ("b", S::Return, K::DepartureUnsupervised, "2024-11-10"),
            ("b", S::Undetermined, K::Legalisation, "2024-10-10"),
            (
                "a",
                S::OnwardMigration,
                K::DepartureUnsupervised,
                "2024-10-10",
            ),
            ("a", S::OnwardMigration, K::DepartureForced, "2024-12-10"),
            ("ngo", S::OnwardMigration, K::Legalisation, "2024-10-10"),
            ("ngo", S::OnwardMigration, K::OutOfSight, "2024-12-10"),
            ("a", S::Return, K::DepartureForced, "2024-11-10"),
            ("ngo", S::Undetermined, K::OutOfSight, "2024-10-10"),
            (
                "ngo",
                S::Undetermined,
                K::DepartureIndependent,
                "2024-12-10",
            ),
            ("b", S::Undetermined, K::DepartureForced, "2024-11-10"),
            ("b", S::OnwardMigration, K::DepartureForced, "2024-11-10"),
            ("b", S::Return, K::OutOfSight, "2024-10-10"),
            ("a", S::OnwardMigration, K::Legalisation, "2024-11-10"),
            ("b", S::Return, K::OutOfSight, "2024-12-10"),
            ("a", S::OnwardMigration, K::DepartureForced, "2024-11-10"),
            (
                "a",
                S::OnwardMigration,
                K::DepartureIndependent,
                "2024-10-10",
            ),
            ("a", S::OnwardMigration, K::OutOfSight, "2024-10-10"),
            ("a", S::Legalisation, K::OutOfSight, "2024-12-10"),
        ];
        let all: Vec<CaseFacts> = cases
            .iter()
            .map(|&(owner, scenario, kind, intake)| CaseFacts {
                owner: owner.into(),
                intake: parse_date(intake).unwrap(),
                intake_scenario: Some(scenario),
                perspective: Some(scenario),
                outcome: Some(Outcome {
                    kind,
                    date: parse_date("2025-02-10").unwrap(),
                }),
                shelter: None,
            })
            .collect();
        let q = Quarter::new(2025, 1).unwrap();
        let mut fam = Family::count(
            Population::Outcomes,
            q,
            &municipalities(),
            &all,
            Settings::default(),
        );
        assert!(fam.protect().is_err(), "the search's population");
        let answered = crate::stats::compute_all(
            &all,
            &municipalities(),
            Population::Outcomes,
            q,
            Settings::default(),
        )
        .unwrap();
        for (_, p) in answered {
            assert!(p.all_suppressed);
            assert!(
                p.figures
                    .iter()
                    .all(|f| *f == crate::stats::Figure::Suppressed)
            );
            assert!(p.render().contains("every figure"), "{}", p.render());
        }
    }

    #[test]
    fn an_empty_quarter_shows_nothing_but_small_cells() {
        let mut fam = Family::count(
            Population::Intakes,
            Quarter::new(2025, 1).unwrap(),
            &municipalities(),
            &[],
            Settings::default(),
        );
        fam.protect().unwrap();
        assert!(
            fam.members()
                .into_iter()
                .all(|i| fam.status(i) == Status::Small)
        );
    }
}
