//! Peer-health awareness (membership.md §9, AD-18 feeding SWIM): every node gossips its
//! own overload grade, and the others go easier on a loaded peer. A probe of it waits
//! x1.25 (busy), x1.75 (stressed) or x2.5 (overloaded) longer, it is not asked to help
//! probe others (stressed ones only to make up the number), and datagrams to it carry
//! 75/50/25% of the usual gossip.
//!
//! Records piggyback on PING and ACK, up to 5 a datagram, most severe first. A node puts
//! its own record on every PING and ACK while it is not healthy, and re-announces it
//! (a newer version) every 10 s so relays pass it on; a member relays a record 3 times
//! (healthy, busy) or 8 (stressed, overloaded), counted afresh for each newer version.
//! A record not refreshed for 30 s is stale and no longer counts. The table holds at
//! most 500 records; when full it drops a tenth, the healthiest first, then the least
//! recently refreshed, then the most sent. A record goes with its member.
//!
//! Versions stand in for the spec's timestamps: `(inc, version)` orders one node's
//! records without comparing clocks across nodes (see `wire::HealthClaim`).

use crate::backpressure::overload::OverloadState;
use crate::id::{Incarnation, NodeId};
use crate::time::{secs, Instant};
use crate::wire::HealthClaim;
use crate::FxHashMap;
use core::time::Duration;

/// Most records a table holds (membership.md §9).
pub const TABLE_MAX: usize = 500;
/// A record not refreshed for this long no longer counts.
pub const STALE_AFTER: Duration = secs(30);
/// A node that is not healthy re-announces its record this often, well within
/// `STALE_AFTER`, so every holder's copy stays fresh while the load lasts.
pub const REFRESH_EVERY: Duration = secs(10);
/// Records a sender puts in one PING or ACK (membership.md §10).
pub const PER_DATAGRAM: usize = 5;
/// A record more than this many versions ahead of the fresh one we hold is implausible
/// (as `MAX_INC_JUMP` for incarnations): a node renews every 10 s and changes grade at
/// most once per latency sample, so an honest one cannot get this far in 30 s, while a
/// forged `u32::MAX` would otherwise shut the real node's announcements out.
pub const MAX_VERSION_JUMP: u32 = 10_000;

/// What [`HealthTable::merge`] did with a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Merged {
    /// Newer than ours: taken, to be relayed afresh.
    News,
    /// The one we hold: our copy is fresh again.
    Refreshed,
    /// Older than ours: ignored.
    Old,
    /// Implausibly far ahead of ours: ignored, counted by the caller.
    Implausible,
}

/// How many times a holder relays a record of this grade.
pub fn relay_limit(state: OverloadState) -> u8 {
    match state {
        OverloadState::Healthy | OverloadState::Busy => 3,
        OverloadState::Stressed | OverloadState::Overloaded => 8,
    }
}

/// `peer_health` in `R_p` (membership.md §3.1, §8): how much longer a probe of a peer in
/// this state waits.
pub fn timeout_factor(state: OverloadState) -> f64 {
    match state {
        OverloadState::Healthy => 1.0,
        OverloadState::Busy => 1.25,
        OverloadState::Stressed => 1.75,
        OverloadState::Overloaded => 2.5,
    }
}

/// The gossip updates a datagram to a peer in this state carries, out of `n`: 75/50/25%
/// for busy/stressed/overloaded, rounded down but at least one (a suspicion about the
/// peer must still reach it so it can refute).
pub fn gossip_share(state: OverloadState, n: usize) -> usize {
    let quarters = match state {
        OverloadState::Healthy => return n,
        OverloadState::Busy => 3,
        OverloadState::Stressed => 2,
        OverloadState::Overloaded => 1,
    };
    (n * quarters / 4).max(1).min(n)
}

/// Whether a peer in this state may be asked to probe for us: busy ones as freely as
/// healthy ones; stressed ones only when too few others are at hand; overloaded never.
/// (§9 keeps every stressed+ peer out, §3.3 tops up from stressed ones: this takes
/// §3.3's top-up and §9's exclusion of the overloaded.)
pub fn helper_tier(state: OverloadState) -> Option<u8> {
    match state {
        OverloadState::Healthy | OverloadState::Busy => Some(0),
        OverloadState::Stressed => Some(1),
        OverloadState::Overloaded => None,
    }
}

#[derive(Clone, Copy, Debug)]
struct Record {
    inc: Incarnation,
    version: u32,
    state: OverloadState,
    refreshed_at: Instant,
    sends: u8,
}

impl Record {
    fn claim(&self, node: NodeId) -> HealthClaim {
        HealthClaim {
            node,
            inc: self.inc,
            version: self.version,
            state: self.state,
        }
    }
    fn relayable(&self, now: Instant) -> bool {
        self.sends < relay_limit(self.state) && !is_stale(self.refreshed_at, now)
    }
}

fn is_stale(refreshed_at: Instant, now: Instant) -> bool {
    now.saturating_since(refreshed_at) >= STALE_AFTER
}

/// What other nodes told us of their health. Allocated on the first record and freed
/// when the last one goes, so a healthy cluster's machines carry no table at all.
#[derive(Debug, Default)]
pub struct HealthTable {
    records: FxHashMap<NodeId, Record>,
}

impl HealthTable {
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// `node`'s grade as far as it counts now: healthy unless a fresh record says not.
    pub fn state_of(&self, node: NodeId, now: Instant) -> OverloadState {
        match self.records.get(&node) {
            Some(r) if !is_stale(r.refreshed_at, now) => r.state,
            _ => OverloadState::Healthy,
        }
    }

    /// Take `claim` (about a member other than us; the caller checks) if it is newer
    /// than what we hold; an equal one only refreshes our copy.
    pub fn merge(&mut self, claim: &HealthClaim, now: Instant) -> Merged {
        if let Some(r) = self.records.get_mut(&claim.node) {
            match (claim.inc, claim.version).cmp(&(r.inc, r.version)) {
                core::cmp::Ordering::Less => return Merged::Old,
                core::cmp::Ordering::Equal => {
                    r.refreshed_at = now;
                    return Merged::Refreshed;
                }
                core::cmp::Ordering::Greater => {
                    let jump = claim.version.saturating_sub(r.version);
                    if claim.inc == r.inc
                        && jump > MAX_VERSION_JUMP
                        && !is_stale(r.refreshed_at, now)
                    {
                        return Merged::Implausible;
                    }
                }
            }
        } else if self.records.len() >= TABLE_MAX {
            self.evict_tenth(now);
        }
        self.records.insert(
            claim.node,
            Record {
                inc: claim.inc,
                version: claim.version,
                state: claim.state,
                refreshed_at: now,
                sends: 0,
            },
        );
        Merged::News
    }

    /// Put up to `max` records to relay into `out`, most severe first, then the least
    /// sent; none about `skip` (the datagram's receiver) or already in `out`.
    pub fn select(&mut self, skip: NodeId, max: usize, now: Instant, out: &mut Vec<HealthClaim>) {
        if max == 0 {
            return;
        }
        let mut picks: smallvec::SmallVec<[(core::cmp::Reverse<OverloadState>, u8, NodeId); 8]> =
            self.records
                .iter()
                .filter(|(id, r)| **id != skip && r.relayable(now))
                .filter(|(id, _)| !out.iter().any(|c| c.node == **id))
                .map(|(id, r)| (core::cmp::Reverse(r.state), r.sends, *id))
                .collect();
        // The map's order is not part of the rule: sort on the whole key, node last.
        picks.sort_unstable();
        for (_, _, id) in picks.into_iter().take(max) {
            let r = self.records.get_mut(&id).expect("picked from the table");
            r.sends += 1;
            out.push(r.claim(id));
        }
    }

    /// Forget `node` (it left the member table).
    pub fn remove(&mut self, node: NodeId) {
        self.records.remove(&node);
    }

    /// Drop every stale record.
    pub fn expire(&mut self, now: Instant) {
        self.records.retain(|_, r| !is_stale(r.refreshed_at, now));
    }

    /// Full: drop a tenth, the healthiest first, then the least recently refreshed,
    /// then the most sent (membership.md §9).
    fn evict_tenth(&mut self, now: Instant) {
        self.expire(now);
        if self.records.len() < TABLE_MAX {
            return;
        }
        let mut order: Vec<(OverloadState, Instant, core::cmp::Reverse<u8>, NodeId)> = self
            .records
            .iter()
            .map(|(id, r)| (r.state, r.refreshed_at, core::cmp::Reverse(r.sends), *id))
            .collect();
        order.sort_unstable();
        for (_, _, _, id) in order.into_iter().take(TABLE_MAX / 10) {
            self.records.remove(&id);
        }
    }
}

/// Our own record: the grade the node's overload detector gave last, and the version
/// of its latest announcement.
#[derive(Clone, Copy, Debug)]
pub struct OwnHealth {
    pub state: OverloadState,
    pub version: u32,
    /// When the current version was announced (a non-healthy one is renewed every
    /// `REFRESH_EVERY`).
    announced_at: Instant,
    /// Datagrams that still carry a healthy record after a recovery, so peers clear
    /// theirs at once rather than after `STALE_AFTER`.
    recovery_sends: u8,
}

impl OwnHealth {
    pub fn new(now: Instant) -> Self {
        OwnHealth {
            state: OverloadState::Healthy,
            version: 0,
            announced_at: now,
            recovery_sends: 0,
        }
    }

    /// The detector's grade changed: announce it (a new version).
    pub fn set(&mut self, state: OverloadState, now: Instant) -> bool {
        if state == self.state {
            return false;
        }
        let was_loaded = self.state != OverloadState::Healthy;
        self.state = state;
        self.version = self.version.saturating_add(1);
        self.announced_at = now;
        self.recovery_sends = if state == OverloadState::Healthy && was_loaded {
            relay_limit(OverloadState::Healthy)
        } else {
            0
        };
        true
    }

    /// Healthy, with no recovery left to tell: our record rides on nothing.
    pub fn is_quiet(&self) -> bool {
        self.state == OverloadState::Healthy && self.recovery_sends == 0
    }

    /// Someone holds a record of us at `version` or later (ours from before a restart,
    /// say): move past it so our next announcement wins.
    pub fn overtake(&mut self, version: u32, now: Instant) {
        if version >= self.version {
            self.version = version.saturating_add(1);
            self.announced_at = now;
            if self.state == OverloadState::Healthy {
                self.recovery_sends = relay_limit(OverloadState::Healthy);
            }
        }
    }

    /// Our record for an outgoing PING or ACK, if it should ride on one now.
    pub fn to_send(&mut self, node: NodeId, inc: Incarnation, now: Instant) -> Option<HealthClaim> {
        if self.state == OverloadState::Healthy {
            if self.recovery_sends == 0 {
                return None;
            }
            self.recovery_sends -= 1;
        } else if now.saturating_since(self.announced_at) >= REFRESH_EVERY {
            self.version = self.version.saturating_add(1);
            self.announced_at = now;
        }
        Some(HealthClaim {
            node,
            inc,
            version: self.version,
            state: self.state,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(node: u32, version: u32, state: OverloadState) -> HealthClaim {
        HealthClaim {
            node: NodeId(node),
            inc: Incarnation(0),
            version,
            state,
        }
    }

    const T0: Instant = Instant::ZERO;

    #[test]
    fn the_spec_factors() {
        use OverloadState::*;
        let f: Vec<f64> = [Healthy, Busy, Stressed, Overloaded]
            .map(timeout_factor)
            .to_vec();
        assert_eq!(f, vec![1.0, 1.25, 1.75, 2.5]);
        let g: Vec<usize> = [Healthy, Busy, Stressed, Overloaded]
            .map(|s| gossip_share(s, 5))
            .to_vec();
        assert_eq!(g, vec![5, 3, 2, 1]);
        assert_eq!(gossip_share(Overloaded, 1), 1);
        assert_eq!(gossip_share(Busy, 0), 0);
        let l: Vec<u8> = [Healthy, Busy, Stressed, Overloaded]
            .map(relay_limit)
            .to_vec();
        assert_eq!(l, vec![3, 3, 8, 8]);
    }

    #[test]
    fn a_newer_record_wins_and_an_older_one_is_ignored() {
        let mut t = HealthTable::default();
        assert_eq!(
            t.merge(&claim(1, 2, OverloadState::Stressed), T0),
            Merged::News
        );
        assert_eq!(
            t.merge(&claim(1, 1, OverloadState::Overloaded), T0),
            Merged::Old
        );
        assert_eq!(t.state_of(NodeId(1), T0), OverloadState::Stressed);
        assert_eq!(t.merge(&claim(1, 3, OverloadState::Busy), T0), Merged::News);
        assert_eq!(t.state_of(NodeId(1), T0), OverloadState::Busy);
        // A higher incarnation is newer whatever its version (a restarted node).
        let mut restarted = claim(1, 0, OverloadState::Overloaded);
        restarted.inc = Incarnation(1);
        assert_eq!(t.merge(&restarted, T0), Merged::News);
        assert_eq!(t.state_of(NodeId(1), T0), OverloadState::Overloaded);
    }

    #[test]
    fn a_forged_far_future_version_is_refused_while_ours_is_fresh() {
        let mut t = HealthTable::default();
        t.merge(&claim(1, 5, OverloadState::Healthy), T0);
        let forged = claim(1, u32::MAX, OverloadState::Overloaded);
        assert_eq!(t.merge(&forged, T0 + secs(1)), Merged::Implausible);
        assert_eq!(t.state_of(NodeId(1), T0), OverloadState::Healthy);
        // A jump within the bound is news; with nothing fresh held, anything is.
        let far = claim(1, 5 + MAX_VERSION_JUMP, OverloadState::Busy);
        assert_eq!(t.merge(&far, T0 + secs(1)), Merged::News);
        assert_eq!(t.merge(&forged, T0 + secs(31)), Merged::News);
        // Our own version saturates instead of wrapping to 0 (which every holder
        // would then take for old).
        let mut own = OwnHealth::new(T0);
        own.overtake(u32::MAX, T0);
        assert_eq!(own.version, u32::MAX);
    }

    #[test]
    fn a_record_counts_for_30_s_after_its_last_refresh() {
        let mut t = HealthTable::default();
        t.merge(&claim(1, 1, OverloadState::Overloaded), T0);
        let t29 = T0 + secs(29);
        assert_eq!(t.state_of(NodeId(1), t29), OverloadState::Overloaded);
        // The same version again refreshes our copy.
        assert_eq!(
            t.merge(&claim(1, 1, OverloadState::Overloaded), t29),
            Merged::Refreshed
        );
        assert_eq!(
            t.state_of(NodeId(1), t29 + secs(29)),
            OverloadState::Overloaded
        );
        assert_eq!(
            t.state_of(NodeId(1), t29 + secs(30)),
            OverloadState::Healthy
        );
        t.expire(t29 + secs(30));
        assert!(t.is_empty());
    }

    #[test]
    fn relays_go_most_severe_first_and_stop_at_their_limit() {
        let mut t = HealthTable::default();
        t.merge(&claim(1, 1, OverloadState::Busy), T0);
        t.merge(&claim(2, 1, OverloadState::Overloaded), T0);
        t.merge(&claim(3, 1, OverloadState::Stressed), T0);
        let mut sent = Vec::new();
        t.select(NodeId(9), 2, T0, &mut sent);
        assert_eq!(
            sent.iter().map(|c| c.node.0).collect::<Vec<_>>(),
            vec![2, 3]
        );
        // Never about the receiver.
        let mut to_two = Vec::new();
        t.select(NodeId(2), 5, T0, &mut to_two);
        assert!(to_two.iter().all(|c| c.node != NodeId(2)));
        // Busy: 3 sends in all; overloaded: 8.
        let mut count = [0usize; 4];
        for _ in 0..20 {
            let mut v = Vec::new();
            t.select(NodeId(9), 5, T0, &mut v);
            for c in v {
                count[c.node.0 as usize] += 1;
            }
        }
        // Earlier selects sent node 2 once and node 3 twice, node 1 once.
        assert_eq!(count[1] + 1, 3);
        assert_eq!(count[2] + 1, 8);
        assert_eq!(count[3] + 2, 8);
        // A newer version is relayed afresh.
        t.merge(&claim(1, 2, OverloadState::Busy), T0);
        let mut v = Vec::new();
        t.select(NodeId(9), 5, T0, &mut v);
        assert_eq!(v.iter().map(|c| c.node.0).collect::<Vec<_>>(), vec![1]);
    }

    #[test]
    fn a_full_table_drops_a_tenth_healthiest_first() {
        let mut t = HealthTable::default();
        for i in 0..TABLE_MAX as u32 {
            let state = if i < 100 {
                OverloadState::Healthy
            } else {
                OverloadState::Overloaded
            };
            t.merge(&claim(i, 1, state), T0 + Duration::from_millis(i as u64));
        }
        assert_eq!(t.len(), TABLE_MAX);
        t.merge(&claim(10_000, 1, OverloadState::Stressed), T0 + secs(1));
        assert_eq!(t.len(), TABLE_MAX - TABLE_MAX / 10 + 1);
        // The 50 oldest healthy ones went; the other healthy ones and every loaded
        // one stayed.
        let gone = (0..TABLE_MAX as u32)
            .filter(|i| !t.records.contains_key(&NodeId(*i)))
            .collect::<Vec<_>>();
        assert_eq!(gone, (0..50).collect::<Vec<_>>());
    }

    #[test]
    fn our_own_record_rides_while_loaded_and_three_times_after_recovery() {
        let mut own = OwnHealth::new(T0);
        let (me, inc) = (NodeId(7), Incarnation(0));
        assert_eq!(own.to_send(me, inc, T0), None);
        assert!(own.set(OverloadState::Overloaded, T0));
        let first = own.to_send(me, inc, T0).expect("loaded");
        assert_eq!((first.state, first.version), (OverloadState::Overloaded, 1));
        // Renewed every 10 s, so relays pass it on and holders keep it fresh.
        assert_eq!(own.to_send(me, inc, T0 + secs(9)).unwrap().version, 1);
        assert_eq!(own.to_send(me, inc, T0 + secs(10)).unwrap().version, 2);
        assert!(own.set(OverloadState::Healthy, T0 + secs(11)));
        let later = T0 + secs(12);
        let healthy: Vec<_> = (0..5).filter_map(|_| own.to_send(me, inc, later)).collect();
        assert_eq!(healthy.len(), 3);
        assert!(healthy
            .iter()
            .all(|c| c.state == OverloadState::Healthy && c.version == 3));
        // Told of a later record of ours (from before a restart): overtake it.
        own.overtake(9, later);
        assert_eq!(own.to_send(me, inc, later).unwrap().version, 10);
    }
}
