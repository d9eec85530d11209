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
    // Pairs are visited twice (count, then score every `stride`-th) rather than
    // collected: at 1,000 nodes a list of all ~500,000 pairs was the run's largest
    // transient allocation (8 MB).
    let total = for_each_pair(&entries, |_, _| {});
    let stride = total.div_ceil(MAX_PAIRS).max(1);
    let mut coord_err = Vec::with_capacity(total.min(MAX_PAIRS));
    let mut est_err = Vec::new();
    let mut k = 0usize;
    for_each_pair(&entries, |ea, eb| {
        k += 1;
        if (k - 1) % stride != 0 {
            return;
        }
        let truth = true_rtt_ms(ea.node, eb.node);
        if truth <= 0.0 {
            return;
        }
        let coord = estimate_between(&ea.coord, &eb.coord).rtt_ms;
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
    let total = for_each_pair(&entries, |_, _| {});
    let stride = total.div_ceil(PLOT_PAIRS).max(1);
    let mut pairs = Vec::new();
    let mut k = 0usize;
    for_each_pair(&entries, |ea, eb| {
        k += 1;
        if (k - 1) % stride == 0 {
            let truth = true_rtt_ms(ea.node, eb.node);
            if truth > 0.0 {
                pairs.push((truth, estimate_between(&ea.coord, &eb.coord).rtt_ms));
            }
        }
    });
    CoordsPlot { points, pairs }
}

/// Calls `visit` on every pair of `entries` (sorted by cluster) that shares a coordinate
/// space, in a fixed order; returns how many there were.
fn for_each_pair<'a>(
    entries: &[Entry<'a>],
    mut visit: impl FnMut(&Entry<'a>, &Entry<'a>),
) -> usize {
    // The pair test reads three small fields of every later entry: from a compact copy
    // (8 bytes an entry) instead of the entries themselves (~130 bytes, each with its
    // coordinate), since at 2,000 nodes this loop runs over 2 million pairs twice every
    // simulated 10 s and scores only one pair in a hundred.
    let keys: Vec<(u16, bool, u32)> = entries
        .iter()
        .map(|e| (e.cluster.0, e.member, e.node as u32))
        .collect();
    let mut count = 0;
    for (a, &(cluster, member, node)) in keys.iter().enumerate() {
        for (b, &(b_cluster, b_member, b_node)) in keys.iter().enumerate().skip(a + 1) {
            if b_cluster != cluster {
                break;
            }
            // Observers embed against members, not against each other.
            if !(member || b_member) || node == b_node {
                continue;
            }
            visit(&entries[a], &entries[b]);
            count += 1;
        }
    }
    count
}

/// `(median, p90)` of a list of errors (NaN-free by construction).
pub fn median_p90(mut v: Vec<f64>) -> (f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0);
    }
    let mut at = |q: f64| {
        let k = ((v.len() - 1) as f64 * q).round() as usize;
        *v.select_nth_unstable_by(k, |a, b| a.total_cmp(b)).1
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
        CoordsReport {
            median_rel_error: median,
            p90_rel_error: p90,
            pairs,
            estimate_median_rel_error: est_median,
            estimate_p90_rel_error: est_p90,
            series: self.series,
            plot,
        }
    }
}
