//! Scoring Vivaldi coordinates against the simulator's true RTTs (issue 3): the error of
//! every tracked pair's estimate, at the end of a run and every simulated 10 s.

use crate::report::{CoordsReport, CoordsSample};
use meridian_core::coords::{estimate_between, CoordEngine, Coordinate};
use meridian_core::membership::Mode;
use meridian_core::node::Node;
use meridian_core::{ClusterId, Instant, NodeId};

/// At most this many pairs are scored per measurement (a deterministic stride over all
/// of them), so the series stays cheap at 1,000 nodes.
pub const MAX_PAIRS: usize = 20_000;
/// The series' spacing.
pub const SERIES_EVERY_US: u64 = 10_000_000;

/// One node's coordinate in one cluster's space.
struct Entry<'a> {
    node: usize,
    cluster: ClusterId,
    member: bool,
    coord: Coordinate,
    engine: &'a CoordEngine,
    local: Instant,
}

/// Relative errors `|est - true| / true` of the pairs that share a coordinate space:
/// two members of one cluster, or a gate's observer of a DC and that DC's members.
/// Pairs where either side has no sample yet are skipped. Returns
/// `(coordinate errors, engine-estimate errors)`; the second (only `with_estimates`)
/// uses what the machine itself would use (its own direct measurement when fresh).
pub fn errors(
    machines: &[(usize, &Node, Instant)],
    true_rtt_ms: &dyn Fn(usize, usize) -> f64,
    with_estimates: bool,
) -> (Vec<f64>, Vec<f64>) {
    let entries = entries(machines);
    let mut coord_err = Vec::with_capacity(MAX_PAIRS);
    let mut est_err = Vec::new();
    sampled_pairs(&entries, MAX_PAIRS, |ea, eb| {
        let truth = true_rtt_ms(ea.node, eb.node);
        if truth <= 0.0 {
            return;
        }
        // `estimate_between(..).rtt_ms`, without the bounds it also works out.
        let coord = ea.coord.distance(&eb.coord) * 1000.0;
        coord_err.push((coord - truth).abs() / truth);
        // The machine's own estimate, from the side that holds the pair (`a`).
        if with_estimates {
            if let Some(est) = ea.engine.estimate(NodeId(eb.node as u32), ea.local) {
                est_err.push((est.rtt_ms - truth).abs() / truth);
            }
        }
    });
    (coord_err, est_err)
}

/// Every machine's coordinate space entries with at least one sample, sorted by
/// cluster then node.
fn entries<'a>(machines: &[(usize, &'a Node, Instant)]) -> Vec<Entry<'a>> {
    let mut entries = Vec::new();
    for (i, node, local) in machines {
        for m in node.memberships() {
            let c = m.coordinates();
            if c.samples() == 0 {
                continue;
            }
            entries.push(Entry {
                node: *i,
                cluster: m.identity().cluster,
                member: matches!(m.mode(), Mode::Member),
                coord: *c.own(),
                engine: c,
                local: *local,
            });
        }
    }
    entries.sort_by_key(|e| (e.cluster.0, e.node));
    entries
}

/// What the HTML report draws of the coordinates at the end of a run.
#[derive(Debug, Clone, Default)]
pub struct CoordsPlot {
    /// `(node, cluster, x, y)`: the first two components of each member's coordinate,
    /// ms (observers' coordinates are left out: they live in other clusters' spaces).
    pub points: Vec<(usize, u32, f64, f64)>,
    /// `(true RTT, coordinate estimate)`, ms, for a deterministic sample of the pairs.
    pub pairs: Vec<(f64, f64)>,
}

/// At most this many pairs are plotted.
pub const PLOT_PAIRS: usize = 1_500;

pub fn plot(
    machines: &[(usize, &Node, Instant)],
    true_rtt_ms: &dyn Fn(usize, usize) -> f64,
) -> CoordsPlot {
    let entries = entries(machines);
    let points = entries
        .iter()
        .filter(|e| e.member)
        .map(|e| {
            let v = &e.coord.vec;
            (e.node, e.cluster.0 as u32, v[0] * 1000.0, v[1] * 1000.0)
        })
        .collect();
    let mut pairs = Vec::new();
    sampled_pairs(&entries, PLOT_PAIRS, |ea, eb| {
        let truth = true_rtt_ms(ea.node, eb.node);
        if truth > 0.0 {
            pairs.push((truth, estimate_between(&ea.coord, &eb.coord).rtt_ms));
        }
    });
    CoordsPlot { points, pairs }
}

/// The pairs of `entries` (sorted by cluster, then node) that share a coordinate space:
/// two entries of one cluster, on different nodes, at least one of them a member
/// (observers embed against members, not against each other). Their order is fixed:
/// by first entry, then by second. Scoring takes every `stride`-th of them; at 2,000
/// nodes there are 2 million, of which one in a hundred is scored every simulated 10 s,
/// and walking them all twice (once to count, once to score) was 2% of the run. Here
/// each entry's pairs are counted from its cluster's member positions (O(log n)), and the
/// scored ones are found directly.
struct Pairs {
    /// Per entry: the cluster run's end, and the last entry of its node's run (equal
    /// nodes are adjacent in the sort order).
    cluster_end: Vec<usize>,
    node_end: Vec<usize>,
    member: Vec<bool>,
    /// The members' indices, ascending (clusters are contiguous, so each cluster's
    /// members are a contiguous part of it).
    members: Vec<usize>,
}

impl Pairs {
    fn new(keys: &[(u16, bool, u32)]) -> Pairs {
        let n = keys.len();
        let mut cluster_end = vec![n; n];
        let mut node_end = vec![0; n];
        for a in (0..n).rev() {
            let (cluster, _, node) = keys[a];
            if a + 1 < n && keys[a + 1].0 == cluster {
                cluster_end[a] = cluster_end[a + 1];
                node_end[a] = if keys[a + 1].2 == node {
                    node_end[a + 1]
                } else {
                    a
                };
            } else {
                cluster_end[a] = a + 1;
                node_end[a] = a;
            }
        }
        Pairs {
            cluster_end,
            node_end,
            member: keys.iter().map(|k| k.1).collect(),
            members: (0..n).filter(|&i| keys[i].1).collect(),
        }
    }

    /// The pairs `(a, b)` for entry `a`: every `b` after `a`'s node run and inside its
    /// cluster, if `a` is a member; only the members among them otherwise. Returns
    /// where those `b` start in `members` (for a non-member `a`) and how many there are.
    fn row(&self, a: usize) -> (usize, usize) {
        let (from, end) = (self.node_end[a] + 1, self.cluster_end[a]);
        if from >= end {
            return (0, 0);
        }
        if self.member[a] {
            (0, end - from)
        } else {
            let first = self.members.partition_point(|&m| m < from);
            let last = self.members.partition_point(|&m| m < end);
            (first, last - first)
        }
    }

    fn count(&self) -> usize {
        (0..self.member.len()).map(|a| self.row(a).1).sum()
    }

    /// Calls `visit(a, b)` on the pairs numbered 0, `stride`, 2 `stride`, … in the order
    /// above.
    fn for_each_nth(&self, stride: usize, mut visit: impl FnMut(usize, usize)) {
        let mut k = 0usize;
        for a in 0..self.member.len() {
            let (first, len) = self.row(a);
            // The first multiple of `stride` at or after `k`, as an offset into this row.
            let mut j = k.next_multiple_of(stride) - k;
            while j < len {
                let b = if self.member[a] {
                    self.node_end[a] + 1 + j
                } else {
                    self.members[first + j]
                };
                visit(a, b);
                j += stride;
            }
            k += len;
        }
    }
}

/// Every `stride`-th pair of `entries` sharing a coordinate space (see [`Pairs`]), and
/// how many pairs there are in all: `stride` is chosen from the total to score at most
/// `max` pairs.
fn sampled_pairs<'a, 'e>(
    entries: &'e [Entry<'a>],
    max: usize,
    mut visit: impl FnMut(&'e Entry<'a>, &'e Entry<'a>),
) -> usize {
    let keys: Vec<(u16, bool, u32)> = entries
        .iter()
        .map(|e| (e.cluster.0, e.member, e.node as u32))
        .collect();
    let pairs = Pairs::new(&keys);
    let total = pairs.count();
    let stride = total.div_ceil(max).max(1);
    pairs.for_each_nth(stride, |a, b| visit(&entries[a], &entries[b]));
    total
}

/// `(median, p90)` of a list of errors (NaN-free by construction).
pub fn median_p90(v: Vec<f64>) -> (f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0);
    }
    // Errors are never negative (nor NaN): their bit patterns order as the numbers do,
    // and integer comparisons select faster than `total_cmp`. (A negative value would
    // sort last; debug builds check there is none.)
    debug_assert!(v.iter().all(|x| x.is_sign_positive() && !x.is_nan()));
    let mut bits: Vec<u64> = v.into_iter().map(f64::to_bits).collect();
    let mut at = |q: f64| {
        let k = ((bits.len() - 1) as f64 * q).round() as usize;
        f64::from_bits(*bits.select_nth_unstable(k).1)
    };
    let median = at(0.5);
    (round4(median), round4(at(0.9)))
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// Builds the report: the series as the run goes, the final numbers at the end.
#[derive(Default)]
pub struct CoordsTracker {
    series: Vec<CoordsSample>,
}

impl CoordsTracker {
    pub fn sample(
        &mut self,
        at_us: u64,
        machines: &[(usize, &Node, Instant)],
        rtt: &dyn Fn(usize, usize) -> f64,
    ) {
        let (coord, _) = errors(machines, rtt, false);
        if coord.is_empty() {
            return;
        }
        let (median, p90) = median_p90(coord);
        self.series.push(CoordsSample {
            at_ms: at_us / 1000,
            median_rel_error: median,
            p90_rel_error: p90,
        });
    }

    /// The final numbers; with `with_plot`, also what the HTML report draws (left out
    /// otherwise: a sweep keeps every report in memory).
    pub fn finish(
        self,
        machines: &[(usize, &Node, Instant)],
        rtt: &dyn Fn(usize, usize) -> f64,
        with_plot: bool,
    ) -> CoordsReport {
        let (coord, est) = errors(machines, rtt, true);
        let plot = if with_plot {
            plot(machines, rtt)
        } else {
            CoordsPlot::default()
        };
        let pairs = coord.len();
        let (median, p90) = median_p90(coord);
        let (est_median, est_p90) = median_p90(est);
        let (mut timeout_lookups, mut timeout_lookups_cached) = (0, 0);
        for (_, node, _) in machines {
            for m in node.memberships() {
                let (lookups, hits) = m.coordinates().timeout_lookups();
                timeout_lookups += lookups;
                timeout_lookups_cached += hits;
            }
        }
        CoordsReport {
            median_rel_error: median,
            p90_rel_error: p90,
            pairs,
            estimate_median_rel_error: est_median,
            estimate_p90_rel_error: est_p90,
            timeout_lookups,
            timeout_lookups_cached,
            series: self.series,
            plot,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The definition, pair by pair: every `(a, b)`, `a < b`, of one cluster, on
    /// different nodes, not both observers; numbered in that order.
    fn every_pair(keys: &[(u16, bool, u32)]) -> Vec<(usize, usize)> {
        let mut all = Vec::new();
        for a in 0..keys.len() {
            for b in a + 1..keys.len() {
                let (ka, kb) = (keys[a], keys[b]);
                if ka.0 == kb.0 && (ka.1 || kb.1) && ka.2 != kb.2 {
                    all.push((a, b));
                }
            }
        }
        all
    }

    proptest! {
        /// The direct count and walk give exactly the pairs numbered 0, stride, 2
        /// stride, … of the definition, in its order.
        #[test]
        fn sampled_pairs_are_every_strideth_pair(
            mut keys in proptest::collection::vec((0u16..4, any::<bool>(), 0u32..12), 0..60),
            stride in 1usize..9,
        ) {
            keys.sort_by_key(|k| (k.0, k.2));
            let want: Vec<(usize, usize)> = every_pair(&keys).into_iter().step_by(stride).collect();
            let pairs = Pairs::new(&keys);
            prop_assert_eq!(pairs.count(), every_pair(&keys).len());
            let mut got = Vec::new();
            pairs.for_each_nth(stride, |a, b| got.push((a, b)));
            prop_assert_eq!(got, want);
        }
    }
}
