//! The simulated network: per-pair latency (DC-pair table or an RTT matrix), jitter,
//! loss (global and per node), latency changes, symmetric and one-way partitions.

use crate::scenario::{NodeSpec, Scenario};
use meridian_core::rng::DetRng;
use std::path::Path;

pub struct Network {
    dc_of: Vec<usize>,
    /// RTT between DCs, microseconds (row-major, dcs x dcs).
    dc_rtt_us: Vec<u64>,
    dcs: usize,
    /// Optional node x node RTT matrix, microseconds.
    matrix_us: Option<Vec<u64>>,
    n: usize,
    jitter: f64,
    loss: f64,
    pub corrupt: f64,
    pub duplicate: f64,
    node_loss: Vec<f64>,
    /// Partition group of each node; `None` = no partition in force.
    groups: Option<Vec<u16>>,
    one_way: bool,
    /// Recently ended partitions (groups, one-way, ended at µs), newest last, so the
    /// checker can tell a verdict formed from evidence the cut destroyed.
    ended: Vec<(Vec<u16>, bool, u64)>,
    /// Probability that a datagram is held back `reorder_extra_us` longer.
    pub reorder: f64,
    pub reorder_extra_us: (u64, u64),
    /// One-way delay overrides between DCs, µs (row-major `from x to`); none by default.
    one_way_us: Vec<Option<u64>>,
    /// Per-link loss and cuts (link_loss, flap), each on its own pair of node sets.
    links: Vec<Link>,
    /// Link cuts that ended (link, ended at µs), newest last (as `ended`).
    ended_links: Vec<(usize, u64)>,
}

/// One link's trouble: from the nodes of `a` to those of `b` (and back unless one-way).
struct Link {
    /// `(first end, second end, one-way)` as the fault names them.
    key: (String, String, bool),
    a: Vec<bool>,
    b: Vec<bool>,
    loss: f64,
    cut: bool,
}

impl Link {
    fn joins(&self, from: usize, to: usize) -> bool {
        let one_way = self.key.2;
        (self.a[from] && self.b[to]) || (!one_way && self.b[from] && self.a[to])
    }
}

/// How many ended partitions are remembered; older ones cannot matter to a verdict
/// (evidence windows are one probe timeout long).
const ENDED_PARTITIONS_KEPT: usize = 8;

/// The loss rate up to which the network still counts as quiet for §4.5.
const QUIET_LOSS: f64 = 0.01;

fn cut_by(groups: &[u16], one_way: bool, a: usize, b: usize) -> bool {
    if one_way {
        groups[a] == 0 && groups[b] != 0
    } else {
        groups[a] != groups[b]
    }
}

impl Network {
    pub fn new(s: &Scenario, nodes: &[NodeSpec]) -> Network {
        let dcs = s.dcs.len();
        let us = |ms: f64| (ms * 1000.0).round() as u64;
        let mut dc_rtt_us = vec![us(s.network.default_inter_dc_rtt_ms); dcs * dcs];
        for d in 0..dcs {
            dc_rtt_us[d * dcs + d] = us(s.network.intra_dc_rtt_ms);
        }
        for (k, v) in &s.network.inter_dc_rtt_ms {
            let (a, b) = k.split_once('/').expect("validated");
            let a = s.dcs.iter().position(|d| d.name == a).expect("validated");
            let b = s.dcs.iter().position(|d| d.name == b).expect("validated");
            dc_rtt_us[a * dcs + b] = us(*v);
            dc_rtt_us[b * dcs + a] = us(*v);
        }
        let matrix_us = s.network.matrix.as_ref().map(|m| {
            read_matrix(&s.base_dir.join(m), nodes)
                .expect("validated")
                .into_iter()
                .map(us)
                .collect()
        });
        Network {
            dc_of: nodes.iter().map(|n| n.dc).collect(),
            dc_rtt_us,
            dcs,
            matrix_us,
            n: nodes.len(),
            jitter: s.network.jitter,
            loss: s.network.loss,
            corrupt: s.network.corrupt,
            duplicate: s.network.duplicate,
            node_loss: vec![0.0; nodes.len()],
            groups: None,
            one_way: false,
            ended: Vec::new(),
            reorder: 0.0,
            reorder_extra_us: (0, 0),
            one_way_us: vec![None; dcs * dcs],
            links: Vec::new(),
            ended_links: Vec::new(),
        }
    }

    /// Loss of at most 1% (a stray lost heartbeat is covered by the lease), and no
    /// corruption, duplication or partition in force: the conditions under which
    /// leadership.md §4.5 bounds re-convergence (the spec states it for no loss).
    pub fn is_clean(&self) -> bool {
        self.loss <= QUIET_LOSS
            && self.node_loss.iter().all(|l| *l <= QUIET_LOSS)
            && self.corrupt == 0.0
            && self.duplicate == 0.0
            && self.reorder == 0.0
            && self.groups.is_none()
            && self.links.iter().all(|l| !l.cut && l.loss <= QUIET_LOSS)
    }

    /// Whether any datagram may be lost now (globally, at a node, or on a link).
    pub fn lossy(&self) -> bool {
        self.loss > 0.0
            || self.node_loss.iter().any(|l| *l > 0.0)
            || self.links.iter().any(|l| l.loss > 0.0)
    }

    /// The largest RTT between any two nodes with jitter at its worst, microseconds.
    pub fn max_rtt_us(&self) -> u64 {
        let base = match &self.matrix_us {
            Some(m) => m.iter().copied().max().unwrap_or(0),
            None => self.dc_rtt_us.iter().copied().max().unwrap_or(0),
        };
        let one_way = self.one_way_us.iter().flatten().max().copied().unwrap_or(0);
        let extra = if self.reorder > 0.0 {
            self.reorder_extra_us.1
        } else {
            0
        };
        (base.max(2 * one_way) as f64 * (1.0 + self.jitter)) as u64 + 2 * extra
    }

    /// The true round-trip time between two nodes, microseconds.
    pub fn rtt_us(&self, a: usize, b: usize) -> u64 {
        let (da, db) = (self.dc_of[a], self.dc_of[b]);
        if self.one_way_us[da * self.dcs + db].is_some()
            || self.one_way_us[db * self.dcs + da].is_some()
        {
            return (self.one_way_base_us(a, b) + self.one_way_base_us(b, a)).round() as u64;
        }
        self.symmetric_rtt_us(a, b)
    }

    fn symmetric_rtt_us(&self, a: usize, b: usize) -> u64 {
        match &self.matrix_us {
            Some(m) => m[a * self.n + b],
            None => self.dc_rtt_us[self.dc_of[a] * self.dcs + self.dc_of[b]],
        }
    }

    /// The one-way delay from `a` to `b` before jitter, µs (half the RTT unless a
    /// one-way override is in force; kept fractional so jitter sees the same value).
    fn one_way_base_us(&self, a: usize, b: usize) -> f64 {
        match self.one_way_us[self.dc_of[a] * self.dcs + self.dc_of[b]] {
            Some(d) => d as f64,
            None => self.symmetric_rtt_us(a, b) as f64 / 2.0,
        }
    }

    /// One-way delay of one message, with jitter.
    pub fn delay_us(&self, a: usize, b: usize, rng: &mut DetRng) -> u64 {
        let half = self.one_way_base_us(a, b);
        let f = if self.jitter > 0.0 {
            1.0 + self.jitter * (2.0 * rng.unit() - 1.0)
        } else {
            1.0
        };
        (half * f).max(0.0) as u64
    }

    /// Whether a datagram from `a` to `b` is lost (cuts are checked separately).
    pub fn lost(&self, a: usize, b: usize, rng: &mut DetRng) -> bool {
        let mut keep = (1.0 - self.loss) * (1.0 - self.node_loss[a]) * (1.0 - self.node_loss[b]);
        for l in self.links.iter().filter(|l| l.loss > 0.0 && l.joins(a, b)) {
            keep *= 1.0 - l.loss;
        }
        rng.chance(1.0 - keep)
    }

    /// Extra delay for a datagram the reorder fault holds back (none if it is not one).
    pub fn reorder_delay_us(&self, rng: &mut DetRng) -> u64 {
        if self.reorder > 0.0 && rng.chance(self.reorder) {
            rng.range_u64(self.reorder_extra_us.0, self.reorder_extra_us.1)
        } else {
            0
        }
    }

    /// A one-way delay override from DC `from` to DC `to` (a one_way_latency fault).
    pub fn set_one_way(&mut self, from: usize, to: usize, delay_us: u64) {
        self.one_way_us[from * self.dcs + to] = Some(delay_us);
    }

    /// The link named `key` between the node sets `a` and `b`, made if new.
    fn link(&mut self, key: (String, String, bool), a: Vec<bool>, b: Vec<bool>) -> usize {
        if let Some(i) = self.links.iter().position(|l| l.key == key) {
            return i;
        }
        self.links.push(Link {
            key,
            a,
            b,
            loss: 0.0,
            cut: false,
        });
        self.links.len() - 1
    }

    /// Loss `rate` on the link between the node sets (a link_loss fault). A rate of 1
    /// is a cut (counted as such, and remembered when it ends, like a partition).
    pub fn set_link_loss(
        &mut self,
        key: (String, String, bool),
        a: Vec<bool>,
        b: Vec<bool>,
        rate: f64,
        now_us: u64,
    ) {
        let i = self.link(key, a, b);
        if self.links[i].loss >= 1.0 && rate < 1.0 && !self.links[i].cut {
            self.remember_ended_link(i, now_us);
        }
        self.links[i].loss = rate;
    }

    /// Link `i` stopped cutting at `now_us`: remembered, like an ended partition.
    fn remember_ended_link(&mut self, i: usize, now_us: u64) {
        if self.ended_links.len() == ENDED_PARTITIONS_KEPT {
            self.ended_links.remove(0);
        }
        self.ended_links.push((i, now_us));
    }

    /// Cut or restore the link between the node sets (a flap); returns whether that
    /// changed anything.
    pub fn set_link_cut(
        &mut self,
        key: (String, String, bool),
        a: Vec<bool>,
        b: Vec<bool>,
        cut: bool,
        now_us: u64,
    ) -> bool {
        let i = self.link(key, a, b);
        if self.links[i].cut == cut {
            return false;
        }
        self.links[i].cut = cut;
        if !cut {
            self.remember_ended_link(i, now_us);
        }
        true
    }

    /// Maybe corrupt a datagram in flight: truncate it, or replace it with garbage whose
    /// first byte is never the wire version (a checksum would reject it). Returns true
    /// if it was corrupted.
    pub fn maybe_corrupt(&self, bytes: &mut Vec<u8>, rng: &mut DetRng) -> bool {
        if !rng.chance(self.corrupt) {
            return false;
        }
        if rng.chance(0.5) && !bytes.is_empty() {
            let keep = rng.below(bytes.len());
            bytes.truncate(keep);
        } else {
            let len = rng.range_u64(0, 64) as usize;
            bytes.clear();
            bytes.extend((0..len).map(|_| rng.next_u64() as u8));
            if let Some(b) = bytes.first_mut() {
                if *b == meridian_core::wire::WIRE_VERSION {
                    *b = !*b;
                }
            }
        }
        true
    }

    /// Whether the path from `a` to `b` is cut by the partition in force.
    pub fn cut(&self, a: usize, b: usize) -> bool {
        self.groups
            .as_ref()
            .is_some_and(|g| cut_by(g, self.one_way, a, b))
            || self
                .links
                .iter()
                .any(|l| (l.cut || l.loss >= 1.0) && l.joins(a, b))
    }

    /// Whether the path from `a` to `b` is cut now or was cut at any moment since
    /// `since_us` (by a partition that has ended since).
    pub fn cut_since(&self, a: usize, b: usize, since_us: u64) -> bool {
        self.cut(a, b)
            || self
                .ended
                .iter()
                .any(|(g, one_way, until)| *until >= since_us && cut_by(g, *one_way, a, b))
            || self
                .ended_links
                .iter()
                .any(|(l, until)| *until >= since_us && self.links[*l].joins(a, b))
    }

    /// The partition in force (if any) ends at `now_us`.
    fn end_partition(&mut self, now_us: u64) {
        if let Some(g) = self.groups.take() {
            if self.ended.len() == ENDED_PARTITIONS_KEPT {
                self.ended.remove(0);
            }
            self.ended.push((g, self.one_way, now_us));
        }
    }

    /// The partition group of node `i` (0 when no partition is in force).
    pub fn group_of(&self, i: usize) -> u16 {
        self.groups.as_ref().map_or(0, |g| g[i])
    }

    pub fn partitioned(&self) -> bool {
        self.groups.is_some()
    }

    /// `groups` lists DC or node names; nodes in no group form one more group together.
    pub fn partition(
        &mut self,
        groups: &[Vec<String>],
        one_way: bool,
        s: &Scenario,
        nodes: &[NodeSpec],
        now_us: u64,
    ) {
        self.end_partition(now_us);
        let rest = groups.len() as u16;
        let mut g = vec![rest; self.n];
        for (gi, members) in groups.iter().enumerate() {
            for name in members {
                if let Some(d) = s.dcs.iter().position(|d| &d.name == name) {
                    for (i, node) in nodes.iter().enumerate() {
                        if node.dc == d {
                            g[i] = gi as u16;
                        }
                    }
                } else if let Some(i) = nodes.iter().position(|n| &n.name == name) {
                    g[i] = gi as u16;
                }
            }
        }
        self.groups = Some(g);
        self.one_way = one_way;
    }

    pub fn heal(&mut self, now_us: u64) {
        self.end_partition(now_us);
    }

    pub fn set_loss(&mut self, rate: f64, nodes: Option<&[usize]>) {
        match nodes {
            None => self.loss = rate,
            Some(list) => {
                for &i in list {
                    self.node_loss[i] = rate;
                }
            }
        }
    }

    /// Set the RTT between two DCs (a latency fault). Overrides the matrix for the pairs of
    /// nodes in those DCs.
    pub fn set_dc_rtt(&mut self, a: usize, b: usize, rtt_us: u64) {
        self.dc_rtt_us[a * self.dcs + b] = rtt_us;
        self.dc_rtt_us[b * self.dcs + a] = rtt_us;
        // Both ways are set now: one-way overrides between the two DCs end.
        self.one_way_us[a * self.dcs + b] = None;
        self.one_way_us[b * self.dcs + a] = None;
        if let Some(m) = &mut self.matrix_us {
            for i in 0..self.n {
                for j in 0..self.n {
                    let (di, dj) = (self.dc_of[i], self.dc_of[j]);
                    if (di == a && dj == b) || (di == b && dj == a) {
                        m[i * self.n + j] = rtt_us;
                    }
                }
            }
        }
    }
}

/// Read a square CSV RTT matrix (ms): header `node,<name1>,…`, then one row per node
/// starting with its name. Every scenario node must appear; the matrix is reordered to
/// the scenario's node order and must be symmetric and non-negative.
pub fn read_matrix(path: &Path, nodes: &[NodeSpec]) -> Result<Vec<f64>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines
        .next()
        .ok_or("empty matrix")?
        .split(',')
        .map(str::trim)
        .collect();
    if header.first() != Some(&"node") {
        return Err("the header must start with `node`".into());
    }
    let names = &header[1..];
    let mut rows = std::collections::BTreeMap::new();
    for (li, line) in lines.enumerate() {
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        if cells.len() != names.len() + 1 {
            return Err(format!(
                "row {} has {} cells, expected {}",
                li + 2,
                cells.len(),
                names.len() + 1
            ));
        }
        let vals: Result<Vec<f64>, String> = cells[1..]
            .iter()
            .map(|c| {
                c.parse::<f64>()
                    .ok()
                    .filter(|v| *v >= 0.0 && v.is_finite())
                    .ok_or(format!("row {}: bad RTT {c:?}", li + 2))
            })
            .collect();
        rows.insert(cells[0].to_string(), vals?);
    }
    let col = |name: &str| names.iter().position(|n| *n == name);
    let n = nodes.len();
    let mut out = vec![0.0; n * n];
    for (i, a) in nodes.iter().enumerate() {
        let row = rows
            .get(&a.name)
            .ok_or(format!("node {:?} has no row", a.name))?;
        for (j, b) in nodes.iter().enumerate() {
            let c = col(&b.name).ok_or(format!("node {:?} has no column", b.name))?;
            out[i * n + j] = row[c];
        }
    }
    for i in 0..n {
        for j in 0..n {
            if (out[i * n + j] - out[j * n + i]).abs() > 1e-9 {
                return Err(format!(
                    "not symmetric between {:?} and {:?}",
                    nodes[i].name, nodes[j].name
                ));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn three_dcs() -> (Scenario, Vec<NodeSpec>) {
        let text = r#"
            name = "t"
            duration = "1m"
            seed = 1
            [[dc]]
            name = "a"
            workers = 1
            [[dc]]
            name = "b"
            workers = 1
            [[dc]]
            name = "c"
            workers = 1
        "#;
        let s = crate::scenario::parse(text, Path::new("t.toml"), &[]).unwrap();
        let nodes = s.nodes();
        (s, nodes)
    }

    #[test]
    fn cut_since_remembers_partitions_that_have_ended() {
        let (s, nodes) = three_dcs();
        let mut net = Network::new(&s, &nodes);
        let groups = vec![vec!["a".to_string()]];
        assert!(!net.cut_since(0, 1, 0));
        net.partition(&groups, false, &s, &nodes, 1_000);
        assert!(net.cut(0, 1) && net.cut(1, 0) && !net.cut(1, 2));
        net.heal(5_000);
        assert!(!net.cut(0, 1));
        // Evidence gathered from 4 ms on saw the cut; from 6 ms on it did not.
        assert!(net.cut_since(0, 1, 4_000));
        assert!(net.cut_since(1, 0, 5_000));
        assert!(!net.cut_since(0, 1, 6_000));
        assert!(!net.cut_since(1, 2, 0), "b and c were never cut");
        // A one-way cut only blocks its own direction, also in the past.
        net.partition(&groups, true, &s, &nodes, 7_000);
        net.heal(8_000);
        assert!(net.cut_since(0, 1, 7_500));
        assert!(!net.cut_since(1, 0, 7_500));
    }
}
