//! The membership machine's side of peer-health awareness (membership.md §9; the pure
//! rules are in `health`): taking the node's own grade, reading and writing records on
//! PING and ACK, and the three effects (probe timeouts, helpers, gossip volume).

use super::*;
use crate::backpressure::overload::OverloadState;
use crate::wire::HealthClaim;

impl Membership {
    /// The node's overload detector (AD-18) graded it anew.
    pub(super) fn set_own_health(&mut self, state: OverloadState, now: Instant) {
        if self.cfg.peer_health {
            self.own_health.set(state, now);
        }
    }

    /// `peer`'s grade as our records have it (healthy without a fresh record).
    pub fn peer_health(&self, peer: NodeId, now: Instant) -> OverloadState {
        match &self.health {
            Some(t) if self.cfg.peer_health => t.state_of(peer, now),
            _ => OverloadState::Healthy,
        }
    }

    /// `peer_health` in `R_p` (§3.1): 1, 1.25, 1.75 or 2.5.
    pub(super) fn peer_health_factor(&self, peer: NodeId, now: Instant) -> f64 {
        health::timeout_factor(self.peer_health(peer, now))
    }

    /// The records for a PING or ACK to `to`: ours first while it should ride, then
    /// relays. An observer sends none: it is no member of the cluster it watches, so
    /// nobody there would keep its record (it still reads the members' records).
    pub(super) fn health_to_send(&mut self, to: NodeId, now: Instant) -> Vec<HealthClaim> {
        let mut v = Vec::new();
        // The common case, a healthy cluster: nothing to tell, nothing to look up.
        if !self.cfg.peer_health
            || self.mode != Mode::Member
            || (self.health.is_none() && self.own_health.is_quiet())
        {
            return v;
        }
        if let Some(own) = self.own_health.to_send(self.me.node, self.inc, now) {
            v.push(own);
        }
        if let Some(t) = self.health.as_mut() {
            let room = health::PER_DATAGRAM - v.len();
            t.select(to, room, now, &mut v);
        }
        v
    }

    /// Records that came on a PING or ACK. Only members of our table are recorded (the
    /// table is bounded by it and by `health::TABLE_MAX`); one about us that is as new
    /// as ours (from before a restart) makes us announce past it.
    pub(super) fn apply_health(&mut self, claims: &[HealthClaim], now: Instant) {
        if claims.is_empty() || !self.cfg.peer_health {
            return;
        }
        for c in claims.iter().take(wire::MAX_HEALTH_PER_DATAGRAM) {
            if c.node == self.me.node {
                if c.inc == self.inc && c.state != self.own_health.state {
                    self.own_health.overtake(c.version, now);
                }
                continue;
            }
            let current = self.members.get(&c.node).is_some_and(|m| c.inc >= m.inc);
            if current {
                let table = self.health.get_or_insert_with(Default::default);
                if table.merge(c, now) == health::Merged::Implausible {
                    self.stats.implausible_claims += 1;
                }
            }
        }
    }

    /// A member left the table: its record goes with it.
    pub(super) fn forget_health(&mut self, node: NodeId) {
        if let Some(t) = self.health.as_mut() {
            t.remove(node);
            if t.is_empty() {
                self.health = None;
            }
        }
    }

    /// Stale records go (at each `Reconnect` tick, every 10 s by default), and with the
    /// last one the table itself.
    pub(super) fn expire_health(&mut self, now: Instant) {
        if let Some(t) = self.health.as_mut() {
            t.expire(now);
            if t.is_empty() {
                self.health = None;
            }
        }
    }

    /// How many records we hold (for leak checks).
    pub fn health_records(&self) -> usize {
        self.health.as_ref().map_or(0, |t| t.len())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{confirm, deliver, env_from, machine, machine_with, CLUSTER};
    use super::*;
    use crate::time::{millis, secs};

    fn record(node: u32, version: u32, state: OverloadState) -> HealthClaim {
        HealthClaim {
            node: NodeId(node),
            inc: Incarnation(0),
            version,
            state,
        }
    }

    /// A PING from `from` carrying `health`.
    fn ping_with(from: u32, seq: u32, health: Vec<HealthClaim>) -> Envelope {
        let body = Body::Ping {
            seq,
            target: NodeId(0),
            buddy: None,
            gossip: vec![],
            coord: None,
            health,
        };
        env_from(from, Role::Worker, 0, body)
    }

    /// The ACK our machine sent in `out`.
    fn ack_in(out: &Outputs) -> (Vec<Claim>, Vec<HealthClaim>) {
        out.iter()
            .find_map(|o| match o {
                Output::Transmit { bytes, .. } => {
                    match wire::decode(bytes, Channel::Datagram).unwrap().body {
                        Body::Ack { gossip, health, .. } => Some((gossip, health)),
                        _ => None,
                    }
                }
                _ => None,
            })
            .expect("an ACK")
    }

    #[test]
    fn a_loaded_peer_gets_the_spec_probe_timeout_factors() {
        let mut m = machine(Role::Worker);
        let t0 = Instant::ZERO + secs(1);
        confirm(&mut m, 5, Role::Worker, t0);
        assert_eq!(m.probe_timeout_for(NodeId(5), t0), secs(1));
        let (min, max) = m.suspicion_bounds_towards(NodeId(5), t0);
        let steps = [
            (OverloadState::Busy, 1_250),
            (OverloadState::Stressed, 1_750),
            (OverloadState::Overloaded, 2_500),
        ];
        for (v, (state, ms)) in steps.into_iter().enumerate() {
            deliver(
                &mut m,
                ping_with(5, 2 + v as u32, vec![record(5, v as u32 + 1, state)]),
                t0,
            );
            let t = Duration::from_millis(ms);
            assert_eq!(m.probe_timeout_for(NodeId(5), t0), t, "{state:?}");
            // The suspicion bounds grow by as much as the probe timeout did.
            let headroom = t - secs(1);
            assert_eq!(
                m.suspicion_bounds_towards(NodeId(5), t0),
                (min + headroom, max + headroom)
            );
        }
        // Another peer is not affected; the record stops counting 30 s after it came.
        confirm(&mut m, 6, Role::Worker, t0);
        assert_eq!(m.probe_timeout_for(NodeId(6), t0), secs(1));
        assert_eq!(m.probe_timeout_for(NodeId(5), t0 + secs(29)), millis(2_500));
        assert_eq!(m.probe_timeout_for(NodeId(5), t0 + secs(30)), secs(1));
        // Switched off, records change nothing.
        let mut off = machine_with(
            Role::Worker,
            Config {
                adaptive_timeouts: false,
                peer_health: false,
                ..Config::default()
            },
        );
        confirm(&mut off, 5, Role::Worker, t0);
        deliver(
            &mut off,
            ping_with(5, 2, vec![record(5, 1, OverloadState::Overloaded)]),
            t0,
        );
        assert_eq!(off.probe_timeout_for(NodeId(5), t0), secs(1));
        assert_eq!(off.health_records(), 0);
    }

    #[test]
    fn overloaded_members_never_help_and_stressed_ones_only_make_up_the_number() {
        let mut m = machine(Role::Worker);
        let t0 = Instant::ZERO + secs(1);
        for n in 1..=9 {
            confirm(&mut m, n, Role::Worker, t0);
        }
        // 1-6 overloaded, 7 stressed, 8 and 9 healthy; we probe 9.
        let mut loads: Vec<HealthClaim> = (1..=6)
            .map(|n| record(n, 1, OverloadState::Overloaded))
            .collect();
        loads.push(record(7, 1, OverloadState::Stressed));
        deliver(&mut m, ping_with(8, 2, loads), t0);
        for _ in 0..50 {
            let helpers = m.pick_helpers(NodeId(9), t0);
            assert!(helpers.iter().all(|h| h.0 >= 7), "{helpers:?}");
            // k = 3 and only 8 is healthy: 7 makes up the number whenever it was drawn.
            assert!(helpers.contains(&NodeId(8)) || helpers.contains(&NodeId(7)));
            assert!(helpers.len() <= 2);
        }
        // With enough healthy members the stressed one is not asked at all.
        for n in 10..=20 {
            confirm(&mut m, n, Role::Worker, t0);
        }
        for _ in 0..50 {
            let helpers = m.pick_helpers(NodeId(9), t0);
            assert_eq!(helpers.len(), 3);
            assert!(!helpers.contains(&NodeId(7)), "{helpers:?}");
        }
    }

    #[test]
    fn datagrams_to_a_loaded_peer_carry_less_gossip() {
        let mut m = machine(Role::Worker);
        let t0 = Instant::ZERO + secs(1);
        // Every confirmation queues an ALIVE claim to spread: plenty of gossip.
        for n in 1..=12 {
            confirm(&mut m, n, Role::Worker, t0);
        }
        let states = [
            (1, OverloadState::Healthy, 5),
            (2, OverloadState::Busy, 3),
            (3, OverloadState::Stressed, 2),
            (4, OverloadState::Overloaded, 1),
        ];
        for (n, state, gossip) in states {
            let out = deliver(&mut m, ping_with(n, 7, vec![record(n, 1, state)]), t0);
            assert_eq!(ack_in(&out).0.len(), gossip, "{state:?}");
        }
    }

    #[test]
    fn our_grade_rides_on_our_acks_and_members_relay_others() {
        let mut m = machine(Role::Worker);
        let t0 = Instant::ZERO + secs(1);
        for n in 1..=3 {
            confirm(&mut m, n, Role::Worker, t0);
        }
        let out = deliver(&mut m, ping_with(1, 2, vec![]), t0);
        assert!(ack_in(&out).1.is_empty(), "healthy: nothing to tell");
        m.step(
            Input::OwnHealth {
                state: OverloadState::Stressed,
            },
            t0,
        );
        // 3 tells us it is overloaded; our ACK to 2 carries our grade, then 3's.
        deliver(
            &mut m,
            ping_with(3, 3, vec![record(3, 1, OverloadState::Overloaded)]),
            t0,
        );
        let (_, health) = ack_in(&deliver(&mut m, ping_with(2, 4, vec![]), t0));
        let told: Vec<(u32, OverloadState)> = health.iter().map(|c| (c.node.0, c.state)).collect();
        assert_eq!(
            told,
            vec![(0, OverloadState::Stressed), (3, OverloadState::Overloaded)]
        );
        // Never 3's own record back to 3.
        let (_, to_three) = ack_in(&deliver(&mut m, ping_with(3, 5, vec![]), t0));
        assert!(to_three.iter().all(|c| c.node != NodeId(3)));
        // An observer reads the members' records but sends none (it is no member).
        let mut obs = Membership::new(
            Config::default(),
            Identity {
                node: NodeId(0),
                addr: Addr::from_u32(0),
                role: Role::Gate,
                cluster: CLUSTER,
            },
            Mode::Observer {
                probes: Role::Worker,
            },
            Incarnation(0),
            1,
            Instant::ZERO,
        );
        obs.step(
            Input::OwnHealth {
                state: OverloadState::Busy,
            },
            t0,
        );
        let env = ping_with(3, 3, vec![record(3, 1, OverloadState::Overloaded)]);
        let _ = deliver(&mut obs, env, t0);
        assert_eq!(obs.peer_health(NodeId(3), t0), OverloadState::Overloaded);
        assert!(obs.health_to_send(NodeId(4), t0).is_empty());
    }

    #[test]
    fn a_record_goes_with_its_member_and_the_table_with_the_last_record() {
        let mut m = machine(Role::Worker);
        let t0 = Instant::ZERO + secs(1);
        confirm(&mut m, 5, Role::Worker, t0);
        // About a node not in our table: not kept.
        deliver(
            &mut m,
            ping_with(5, 2, vec![record(77, 1, OverloadState::Overloaded)]),
            t0,
        );
        assert_eq!(m.health_records(), 0);
        deliver(
            &mut m,
            ping_with(5, 3, vec![record(5, 1, OverloadState::Overloaded)]),
            t0,
        );
        assert_eq!(m.health_records(), 1);
        assert_eq!(m.table_sizes().health_records, 1);
        let mut out = Outputs::new();
        m.remove_member(NodeId(5), &mut out);
        assert_eq!(m.health_records(), 0);
        assert!(m.health.is_none());
        // Stale records go at the next expiry, and the table with them.
        confirm(&mut m, 6, Role::Worker, t0);
        deliver(
            &mut m,
            ping_with(6, 4, vec![record(6, 1, OverloadState::Busy)]),
            t0,
        );
        m.expire_health(t0 + secs(29));
        assert_eq!(m.health_records(), 1);
        m.expire_health(t0 + secs(30));
        assert!(m.health.is_none());
    }

    /// Coordinates model the network: an RTT to or from a loaded node measures its
    /// queue, so it teaches Vivaldi nothing (`learn_rtt`).
    #[test]
    fn a_loaded_end_teaches_vivaldi_nothing() {
        use crate::coords::{Coordinate, VivaldiConfig};
        let mut m = machine_with(Role::Worker, Config::default());
        let t0 = Instant::ZERO;
        confirm(&mut m, 6, Role::Worker, t0);
        let mut peer = Coordinate::origin(&VivaldiConfig::default());
        peer.vec[0] = 0.001;
        peer.error = 0.3;
        m.coords
            .observe(NodeId(6), &WireCoord::from_coordinate(&peer), t0);
        let mut out = Outputs::new();
        let t1 = t0 + secs(1);
        m.learn_rtt(NodeId(6), t1, t1 + millis(2), &mut out);
        assert_eq!(m.coords.samples(), 1, "both healthy: a sample");
        // 6 says it is stressed: its RTT is not a sample.
        deliver(
            &mut m,
            ping_with(6, 2, vec![record(6, 1, OverloadState::Stressed)]),
            t1,
        );
        m.learn_rtt(NodeId(6), t1, t1 + millis(900), &mut out);
        assert_eq!(m.coords.samples(), 1);
        // Its record gone stale (30 s), it counts again; then we are the loaded end.
        let t2 = t1 + secs(30);
        m.learn_rtt(NodeId(6), t2, t2 + millis(2), &mut out);
        assert_eq!(m.coords.samples(), 2);
        m.step(
            Input::OwnHealth {
                state: OverloadState::Busy,
            },
            t2,
        );
        m.learn_rtt(NodeId(6), t2, t2 + millis(400), &mut out);
        assert_eq!(m.coords.samples(), 2);
    }

    #[test]
    fn a_record_of_us_as_new_as_ours_makes_us_announce_past_it() {
        let mut m = machine(Role::Worker);
        let t0 = Instant::ZERO + secs(1);
        confirm(&mut m, 5, Role::Worker, t0);
        // From before a restart: 5 holds "0 is overloaded" at version 4; we are healthy.
        deliver(
            &mut m,
            ping_with(5, 2, vec![record(0, 4, OverloadState::Overloaded)]),
            t0,
        );
        let (_, health) = ack_in(&deliver(&mut m, ping_with(5, 3, vec![]), t0));
        assert_eq!(health, vec![record(0, 5, OverloadState::Healthy)]);
    }
}
