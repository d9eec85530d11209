//! A gate's view of every DC (routing.md §1, §3, §10): which managers it knows (from its
//! observer membership of the DC), what their heartbeats said, and a small circuit
//! breaker per manager fed by dispatch outcomes. From that it classifies each DC
//! (AD-16 plus the gate's overlays), builds the router's candidates, and orders a DC's
//! managers for a dispatch.
//!
//! Choices where routing.md is open, all on the safe side:
//! - Q5: a DC whose freshest heartbeat is older than 15 s is *stale*: routed as DEGRADED
//!   (demoted, not excluded). Older than 30 s, no manager counts as alive: UNHEALTHY.
//! - The federated-probe overlay is the gate's observer membership of the DC: the
//!   leader's membership status SUSPECT makes the DC at least DEGRADED; a manager the
//!   membership holds dead does not count as alive whatever its last heartbeat said.
//! - `total_managers` is the managers the gate knows (the gate has no configured count).
//! - Every manager heartbeats (so `alive_managers` is measured, not assumed); the
//!   capacity figures come from the leader's heartbeat, else the freshest one.
//! - Managers the membership dropped and that have not heartbeated for 60 s are
//!   forgotten (a departed manager's entry is not kept for ever).

use super::health::{classify, DcHealth, DcView};
use super::router::{exclusion, quality_penalty, rtt_ucb, Candidate, RoutingConfig};
use crate::id::{Addr, DcId, NodeId};
use crate::jobs::DcLoad;
use crate::time::{secs, Instant};
use core::time::Duration;
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq)]
pub struct DcTableConfig {
    /// A manager whose last heartbeat is older than this is not alive (30 s).
    pub heartbeat_timeout: Duration,
    /// A DC whose freshest heartbeat is older than this is stale (Q5: 15 s).
    pub stale_after: Duration,
    /// A manager not heard from for this long is not dispatched to (§3: 60 s).
    pub manager_heartbeat_stale: Duration,
    /// Consecutive failed dispatches that open a manager's circuit...
    pub circuit_failures: u32,
    /// ...for this long, then it is half-open (one more try).
    pub circuit_open_for: Duration,
    /// Managers kept per DC at most, and DCs at most (bounds against a hostile peer).
    pub max_managers_per_dc: usize,
    pub max_dcs: usize,
}

impl Default for DcTableConfig {
    fn default() -> Self {
        DcTableConfig {
            heartbeat_timeout: secs(30),
            stale_after: secs(15),
            manager_heartbeat_stale: secs(60),
            circuit_failures: 3,
            circuit_open_for: secs(30),
            max_managers_per_dc: 64,
            max_dcs: 64,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Circuit {
    Closed,
    HalfOpen,
    Open,
}

#[derive(Clone, Copy, Debug)]
struct Manager {
    addr: Addr,
    /// The gate's observer membership holds it alive or suspected...
    live: bool,
    /// ...and suspected.
    suspected: bool,
    /// Its last heartbeat: when, whether it led, what it said.
    heartbeat: Option<(Instant, bool, DcLoad)>,
    failures: u32,
    open_until: Option<Instant>,
}

impl Manager {
    fn circuit(&self, now: Instant) -> Circuit {
        match self.open_until {
            Some(t) if now < t => Circuit::Open,
            Some(_) => Circuit::HalfOpen,
            None => Circuit::Closed,
        }
    }
    fn heard_within(&self, now: Instant, d: Duration) -> bool {
        self.heartbeat
            .is_some_and(|(at, _, _)| now.saturating_since(at) < d)
    }
}

#[derive(Clone, Debug, Default)]
struct Dc {
    managers: BTreeMap<NodeId, Manager>,
    /// The bucket last reported (`DcHealthChanged`).
    reported: Option<DcHealth>,
}

/// RTT bound and coordinate quality of a node, if the gate has an estimate.
pub trait CoordView {
    fn rtt_ucb_quality(&self, node: NodeId) -> Option<(f64, f64)>;
}

impl CoordView for BTreeMap<NodeId, (f64, f64)> {
    fn rtt_ucb_quality(&self, node: NodeId) -> Option<(f64, f64)> {
        self.get(&node).copied()
    }
}

#[derive(Clone, Debug, Default)]
pub struct DcTable {
    cfg: DcTableConfig,
    dcs: BTreeMap<DcId, Dc>,
}

impl DcTable {
    pub fn new(cfg: DcTableConfig) -> DcTable {
        DcTable {
            cfg,
            dcs: BTreeMap::new(),
        }
    }

    fn dc_mut(&mut self, dc: DcId) -> Option<&mut Dc> {
        if !self.dcs.contains_key(&dc) && self.dcs.len() >= self.cfg.max_dcs {
            return None;
        }
        Some(self.dcs.entry(dc).or_default())
    }

    fn manager_mut(&mut self, dc: DcId, node: NodeId, addr: Addr) -> Option<&mut Manager> {
        let max = self.cfg.max_managers_per_dc;
        let d = self.dc_mut(dc)?;
        if !d.managers.contains_key(&node) && d.managers.len() >= max {
            return None;
        }
        let m = d.managers.entry(node).or_insert(Manager {
            addr,
            live: false,
            suspected: false,
            heartbeat: None,
            failures: 0,
            open_until: None,
        });
        m.addr = addr;
        Some(m)
    }

    /// The gate's observer membership says `node` (a manager of `dc`) is alive or
    /// suspected (`live`), and whether suspected.
    pub fn member(&mut self, dc: DcId, node: NodeId, addr: Addr, live: bool, suspected: bool) {
        if let Some(m) = self.manager_mut(dc, node, addr) {
            m.live = live;
            m.suspected = live && suspected;
        }
    }

    /// A manager's heartbeat.
    pub fn heartbeat(
        &mut self,
        dc: DcId,
        node: NodeId,
        addr: Addr,
        leader: bool,
        load: DcLoad,
        now: Instant,
    ) {
        if let Some(d) = self.dcs.get_mut(&dc) {
            if leader {
                // One leader per DC: an older leader's figures stop being the best.
                for m in d.managers.values_mut() {
                    if let Some(hb) = m.heartbeat.as_mut() {
                        hb.1 = false;
                    }
                }
            }
        }
        if let Some(m) = self.manager_mut(dc, node, addr) {
            m.heartbeat = Some((now, leader, load));
        }
    }

    /// A dispatch to `node` was answered (accepted, or redirected by a follower).
    pub fn dispatch_answered(&mut self, dc: DcId, node: NodeId) {
        if let Some(m) = self
            .dcs
            .get_mut(&dc)
            .and_then(|d| d.managers.get_mut(&node))
        {
            m.failures = 0;
            m.open_until = None;
        }
    }

    /// A dispatch to `node` went unanswered: after 3 in a row its circuit opens for 30 s;
    /// a half-open circuit that fails again re-opens at once.
    pub fn dispatch_failed(&mut self, dc: DcId, node: NodeId, now: Instant) {
        let (limit, open_for) = (self.cfg.circuit_failures, self.cfg.circuit_open_for);
        if let Some(m) = self
            .dcs
            .get_mut(&dc)
            .and_then(|d| d.managers.get_mut(&node))
        {
            m.failures += 1;
            if m.failures >= limit || m.circuit(now) == Circuit::HalfOpen {
                m.open_until = Some(now + open_for);
            }
        }
    }

    /// The node id of the manager at `addr` in `dc`.
    pub fn node_at(&self, dc: DcId, addr: Addr) -> Option<NodeId> {
        self.dcs
            .get(&dc)?
            .managers
            .iter()
            .find(|(_, m)| m.addr == addr)
            .map(|(n, _)| *n)
    }

    /// DCs with a live manager but no heartbeat yet (registration under way).
    pub fn initializing(&self) -> usize {
        self.dcs
            .values()
            .filter(|d| {
                d.managers.values().any(|m| m.live)
                    && d.managers.values().all(|m| m.heartbeat.is_none())
            })
            .count()
    }

    /// The DCs whose managers registered (heartbeated at least once), as candidates.
    pub fn candidates(&self, now: Instant, coords: &dyn CoordView) -> Vec<Candidate> {
        self.dcs
            .iter()
            .filter_map(|(dc, d)| self.candidate(*dc, d, now, coords))
            .collect()
    }

    fn candidate(
        &self,
        dc: DcId,
        d: &Dc,
        now: Instant,
        coords: &dyn CoordView,
    ) -> Option<Candidate> {
        let freshest = d
            .managers
            .values()
            .filter_map(|m| m.heartbeat.map(|(at, _, _)| at))
            .max()?;
        let alive = |m: &Manager| m.live && m.heard_within(now, self.cfg.heartbeat_timeout);
        let alive_managers = d.managers.values().filter(|m| alive(m)).count() as u32;
        // The best heartbeat: the alive leader's, else the freshest alive one's.
        let best = d
            .managers
            .iter()
            .filter(|(_, m)| alive(m))
            .max_by_key(|(n, m)| {
                let (at, leader, _) = m.heartbeat.expect("alive");
                (leader, at, core::cmp::Reverse(**n))
            });
        let load = best
            .map(|(_, m)| m.heartbeat.expect("alive").2)
            .unwrap_or_default();
        let mut health = classify(&DcView {
            alive_managers,
            total_managers: d.managers.len() as u32,
            worker_count: load.workers as u32,
            healthy_worker_count: load.healthy_workers as u32,
            available_cores: load.available_cores,
        });
        if best.is_some_and(|(_, m)| m.suspected) {
            health = health.max(DcHealth::Degraded);
        }
        let open = d
            .managers
            .values()
            .filter(|m| m.circuit(now) == Circuit::Open)
            .count() as u32;
        let total = d.managers.len() as u32;
        let coord = best.and_then(|(n, _)| coords.rtt_ucb_quality(*n));
        Some(Candidate {
            dc,
            health,
            stale: now.saturating_since(freshest) > self.cfg.stale_after,
            available_cores: load.available_cores,
            total_cores: load.total_cores,
            queue_depth: load.queue_depth,
            circuit_pressure: if total == 0 {
                0.0
            } else {
                open as f64 / total as f64
            },
            total_managers: total,
            healthy_managers: total - open,
            rtt_ucb_ms: coord.map(|(u, _)| u),
            quality: coord.map_or(0.0, |(_, q)| q),
        })
    }

    /// The bucket routing puts `c` in: excluded DCs are UNHEALTHY, stale ones DEGRADED.
    pub fn routing_bucket(c: &Candidate) -> DcHealth {
        if exclusion(c).is_some() {
            DcHealth::Unhealthy
        } else {
            super::router::bucket(c)
        }
    }

    /// Re-classify every registered DC at `now`: the changes since the last call
    /// (`DcHealthChanged`), and forget managers long gone.
    pub fn refresh(
        &mut self,
        now: Instant,
        coords: &dyn CoordView,
    ) -> Vec<(DcId, Option<DcHealth>, DcHealth)> {
        let forget = self.cfg.manager_heartbeat_stale;
        for d in self.dcs.values_mut() {
            d.managers
                .retain(|_, m| m.live || m.heard_within(now, forget));
        }
        let mut changes = Vec::new();
        let buckets: Vec<(DcId, Option<DcHealth>)> = self
            .dcs
            .iter()
            .map(|(dc, d)| {
                (
                    *dc,
                    self.candidate(*dc, d, now, coords)
                        .map(|c| Self::routing_bucket(&c)),
                )
            })
            .collect();
        for (dc, b) in buckets {
            let d = self.dcs.get_mut(&dc).expect("listed");
            // A DC that lost every manager entry is unregistered: UNHEALTHY to watchers.
            let to = b.unwrap_or(DcHealth::Unhealthy);
            if (d.reported.is_some() || b.is_some()) && d.reported != Some(to) {
                changes.push((dc, d.reported, to));
                d.reported = Some(to);
            }
        }
        // A DC with no manager left was reported UNHEALTHY above: its entry goes.
        self.dcs.retain(|_, d| !d.managers.is_empty());
        changes
    }

    /// routing.md §10: the managers of `dc` to try, in order. Hard excludes: not alive
    /// in the membership, circuit open, silent for 60 s. The DC's leader (by its last
    /// heartbeat) first: only it accepts, a follower would redirect. The rest by
    /// `rtt_ucb x (1 + 0.2 cb) x quality_penalty`, `cb` 0.5 when half-open.
    pub fn managers_for(
        &self,
        dc: DcId,
        now: Instant,
        cfg: &RoutingConfig,
        coords: &dyn CoordView,
    ) -> Vec<(NodeId, Addr)> {
        let Some(d) = self.dcs.get(&dc) else {
            return Vec::new();
        };
        let mut v: Vec<(bool, f64, NodeId, Addr)> = d
            .managers
            .iter()
            .filter(|(_, m)| {
                m.live
                    && m.circuit(now) != Circuit::Open
                    && m.heard_within(now, self.cfg.manager_heartbeat_stale)
            })
            .map(|(n, m)| {
                let coord = coords.rtt_ucb_quality(*n);
                let cand = Candidate {
                    dc,
                    health: DcHealth::Healthy,
                    stale: false,
                    available_cores: 1,
                    total_cores: 1,
                    queue_depth: 0,
                    circuit_pressure: 0.0,
                    total_managers: 1,
                    healthy_managers: 1,
                    rtt_ucb_ms: coord.map(|(u, _)| u),
                    quality: 0.0,
                };
                let cb = if m.circuit(now) == Circuit::HalfOpen {
                    0.5
                } else {
                    0.0
                };
                let score = rtt_ucb(cfg, &cand)
                    * (1.0 + cfg.a_cb * cb)
                    * quality_penalty(cfg, coord.map_or(0.0, |(_, q)| q));
                let leads = m.heartbeat.is_some_and(|(_, l, _)| l);
                (!leads, score, *n, m.addr)
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)).then(a.2.cmp(&b.2)));
        v.into_iter().map(|(_, _, n, a)| (n, a)).collect()
    }

    /// Managers and DCs held (for leak checks).
    pub fn len(&self) -> usize {
        self.dcs.values().map(|d| d.managers.len()).sum()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::millis;

    const DC: DcId = DcId(1);
    fn addr(n: u32) -> Addr {
        Addr::from_u32(n)
    }
    fn load(workers: u16, healthy: u16, total: u32, free: u32) -> DcLoad {
        DcLoad {
            workers,
            healthy_workers: healthy,
            total_cores: total,
            available_cores: free,
            queue_depth: 0,
        }
    }
    fn table_with_three_managers() -> DcTable {
        let mut t = DcTable::new(DcTableConfig::default());
        for n in 1..=3 {
            t.member(DC, NodeId(n), addr(n), true, false);
        }
        t
    }
    fn none() -> BTreeMap<NodeId, (f64, f64)> {
        BTreeMap::new()
    }
    fn bucket_at(t: &DcTable, now: Instant) -> Option<DcHealth> {
        t.candidates(now, &none())
            .first()
            .map(DcTable::routing_bucket)
    }

    #[test]
    fn a_dc_is_classified_only_once_its_managers_registered() {
        let mut t = table_with_three_managers();
        let now = Instant::ZERO;
        assert!(t.candidates(now, &none()).is_empty());
        assert_eq!(t.initializing(), 1);
        assert!(t.refresh(now, &none()).is_empty(), "nothing to report yet");
        for n in 1..=3 {
            t.heartbeat(DC, NodeId(n), addr(n), n == 1, load(4, 4, 16, 8), now);
        }
        assert_eq!(t.initializing(), 0);
        assert_eq!(t.refresh(now, &none()), vec![(DC, None, DcHealth::Healthy)]);
        assert!(
            t.refresh(now, &none()).is_empty(),
            "a change is reported once"
        );
    }

    #[test]
    fn ad16_from_heartbeats_with_the_leaders_figures() {
        let mut t = table_with_three_managers();
        let now = Instant::ZERO;
        // A follower's view (no free cores: it dispatches nothing) does not count while
        // the leader's heartbeat is fresh.
        t.heartbeat(DC, NodeId(2), addr(2), false, load(4, 4, 16, 0), now);
        t.heartbeat(DC, NodeId(1), addr(1), true, load(4, 4, 16, 8), now);
        t.heartbeat(DC, NodeId(3), addr(3), false, load(4, 4, 16, 0), now);
        assert_eq!(bucket_at(&t, now), Some(DcHealth::Healthy));
        // No free core: BUSY (AD-16, Q1).
        t.heartbeat(DC, NodeId(1), addr(1), true, load(4, 4, 16, 0), now);
        assert_eq!(bucket_at(&t, now), Some(DcHealth::Busy));
        // 2 of 4 workers healthy is not a majority: DEGRADED.
        t.heartbeat(DC, NodeId(1), addr(1), true, load(4, 2, 16, 8), now);
        assert_eq!(bucket_at(&t, now), Some(DcHealth::Degraded));
        // No worker: UNHEALTHY.
        t.heartbeat(DC, NodeId(1), addr(1), true, load(0, 0, 0, 0), now);
        assert_eq!(bucket_at(&t, now), Some(DcHealth::Unhealthy));
    }

    #[test]
    fn silence_demotes_at_15_s_and_excludes_at_30_s() {
        let mut t = table_with_three_managers();
        let t0 = Instant::ZERO;
        for n in 1..=3 {
            t.heartbeat(DC, NodeId(n), addr(n), n == 1, load(4, 4, 16, 8), t0);
        }
        assert_eq!(bucket_at(&t, t0 + secs(15)), Some(DcHealth::Healthy));
        let stale = t.candidates(t0 + secs(15) + millis(1), &none())[0];
        assert!(stale.stale && stale.health == DcHealth::Healthy);
        assert_eq!(DcTable::routing_bucket(&stale), DcHealth::Degraded);
        // Only the leader keeps talking: 1 of 3 managers alive is DEGRADED, not stale.
        t.heartbeat(
            DC,
            NodeId(1),
            addr(1),
            true,
            load(4, 4, 16, 8),
            t0 + secs(29),
        );
        assert_eq!(bucket_at(&t, t0 + secs(31)), Some(DcHealth::Degraded));
        // Nobody for 30 s: no alive manager, UNHEALTHY.
        assert_eq!(bucket_at(&t, t0 + secs(60)), Some(DcHealth::Unhealthy));
    }

    #[test]
    fn a_suspected_leader_degrades_its_dc_and_dead_managers_do_not_count() {
        let mut t = table_with_three_managers();
        let now = Instant::ZERO;
        for n in 1..=3 {
            t.heartbeat(DC, NodeId(n), addr(n), n == 1, load(4, 4, 16, 8), now);
        }
        assert_eq!(t.refresh(now, &none()).len(), 1);
        t.member(DC, NodeId(1), addr(1), true, true);
        assert_eq!(bucket_at(&t, now), Some(DcHealth::Degraded));
        t.member(DC, NodeId(1), addr(1), true, false);
        t.member(DC, NodeId(2), addr(2), false, false);
        t.member(DC, NodeId(3), addr(3), false, false);
        // 1 of 3 alive whatever their last heartbeats said.
        assert_eq!(bucket_at(&t, now), Some(DcHealth::Degraded));
        // Departed managers are forgotten once silent for 60 s; a DC with none left is
        // reported UNHEALTHY and dropped.
        t.member(DC, NodeId(1), addr(1), false, false);
        let changes = t.refresh(now + secs(61), &none());
        assert_eq!(
            changes,
            vec![(DC, Some(DcHealth::Healthy), DcHealth::Unhealthy)]
        );
        assert!(t.is_empty());
    }

    #[test]
    fn circuits_open_after_3_failures_and_half_open_after_30_s() {
        let mut t = table_with_three_managers();
        let now = Instant::ZERO;
        for n in 1..=3 {
            t.heartbeat(DC, NodeId(n), addr(n), n == 1, load(4, 4, 16, 8), now);
        }
        let cfg = RoutingConfig::default();
        let order = |t: &DcTable, at| -> Vec<NodeId> {
            t.managers_for(DC, at, &cfg, &none())
                .into_iter()
                .map(|(n, _)| n)
                .collect()
        };
        assert_eq!(order(&t, now), vec![NodeId(1), NodeId(2), NodeId(3)]);
        for _ in 0..2 {
            t.dispatch_failed(DC, NodeId(1), now);
        }
        assert_eq!(order(&t, now)[0], NodeId(1), "two failures: still closed");
        t.dispatch_failed(DC, NodeId(1), now);
        assert_eq!(order(&t, now), vec![NodeId(2), NodeId(3)]);
        let c = t.candidates(now, &none())[0];
        assert_eq!((c.healthy_managers, c.total_managers), (2, 3));
        assert!((c.circuit_pressure - 1.0 / 3.0).abs() < 1e-9);
        // Half-open after 30 s: tried again; one more failure re-opens it at once.
        assert!(order(&t, now + secs(30)).contains(&NodeId(1)));
        t.dispatch_failed(DC, NodeId(1), now + secs(30));
        assert!(!order(&t, now + secs(30)).contains(&NodeId(1)));
        t.dispatch_answered(DC, NodeId(1));
        assert_eq!(order(&t, now + secs(30))[0], NodeId(1));
        // Every circuit open: the DC is excluded (AllManagersCircuitOpen).
        for n in 1..=3 {
            for _ in 0..3 {
                t.dispatch_failed(DC, NodeId(n), now + secs(31));
            }
        }
        assert_eq!(bucket_at(&t, now + secs(31)), Some(DcHealth::Unhealthy));
    }

    #[test]
    fn managers_after_the_leader_go_by_rtt_and_silent_ones_not_at_all() {
        let mut t = table_with_three_managers();
        let now = Instant::ZERO;
        for n in 1..=3 {
            t.heartbeat(DC, NodeId(n), addr(n), n == 3, load(4, 4, 16, 8), now);
        }
        let coords: BTreeMap<NodeId, (f64, f64)> =
            [(NodeId(1), (80.0, 1.0)), (NodeId(2), (20.0, 1.0))].into();
        let cfg = RoutingConfig::default();
        let order: Vec<NodeId> = t
            .managers_for(DC, now, &cfg, &coords)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(order, vec![NodeId(3), NodeId(2), NodeId(1)]);
        // The DC's RTT is its leader's (by node id, Q6): manager 3 has no estimate.
        assert_eq!(t.candidates(now, &coords)[0].rtt_ucb_ms, None);
        // Silent for 60 s: not dispatched to (§3).
        t.heartbeat(
            DC,
            NodeId(3),
            addr(3),
            true,
            load(4, 4, 16, 8),
            now + secs(30),
        );
        let later: Vec<NodeId> = t
            .managers_for(DC, now + secs(61), &cfg, &coords)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(later, vec![NodeId(3)]);
    }

    #[test]
    fn tables_are_bounded() {
        let mut t = DcTable::new(DcTableConfig {
            max_managers_per_dc: 2,
            max_dcs: 1,
            ..DcTableConfig::default()
        });
        for n in 0..10 {
            t.member(DC, NodeId(n), addr(n), true, false);
            t.member(DcId(2), NodeId(100 + n), addr(100 + n), true, false);
        }
        assert_eq!(t.len(), 2);
    }
}
