//! Suspicion and its end (membership.md §3.4, §6.3): starting a suspicion with a
//! Lifeguard timeout, confirmations, the last-chance probe, and declaring death.

use super::*;
use suspicion::OobProbeState;

impl Membership {
    pub(super) fn start_suspicion(
        &mut self,
        node: NodeId,
        inc: Incarnation,
        from: NodeId,
        now: Instant,
        out: &mut Outputs,
    ) {
        // Bounds follow the detector's kind (membership.md §3.1, Q1). An observer is a
        // gate acting as a health checker of another cluster's managers: it uses the
        // bounds of the role it observes, since it never receives confirmations (observers
        // gossip nothing) and at gate bounds would always wait the full 120 s.
        let bounds = self.suspicion_bounds_towards(node, now);
        let n = self.live_count;
        let susp = Suspicion::new(
            now,
            bounds,
            self.lhm.multiplier(),
            n,
            from,
            self.cfg.lifeguard,
        );
        let deadline = susp.deadline();
        self.stats.suspicions += 1;
        self.transition(node, Status::Suspect, inc, now, out);
        self.suspicions.insert(node, susp);
        let claim = self.claim_of(&self.members[&node], ClaimKind::Suspect, from);
        self.enqueue(claim, now, false);
        self.at(deadline, Timer::Suspicion { node });
    }

    pub(super) fn confirm_suspicion(&mut self, node: NodeId, from: NodeId, now: Instant) -> bool {
        let me = self.me.node;
        let Some(s) = self.suspicions.get_mut(&node) else {
            return false;
        };
        let before = s.deadline();
        if !s.confirm(from, me) {
            return false;
        }
        let after = s.deadline();
        if after < before {
            self.at(after.max(now), Timer::Suspicion { node });
        }
        true
    }

    /// The local health multiplier changed: if it fell, shorten the suspicions whose
    /// bounds were scaled by a higher one (see [`Suspicion::relax`]) and bring their
    /// timers forward. A rise changes nothing.
    pub(super) fn relax_suspicions(&mut self, now: Instant) {
        let mult = self.lhm.multiplier();
        let mut moved: SmallVec<[(NodeId, Instant); 8]> = SmallVec::new();
        for (&node, s) in self.suspicions.iter_mut() {
            let before = s.deadline();
            if s.relax(mult) && s.deadline() < before {
                moved.push((node, s.deadline()));
            }
        }
        // Timers with equal deadlines fire in insertion order: insert in id order so the
        // trace never depends on the map's iteration order.
        moved.sort_unstable_by_key(|&(node, _)| node);
        for (node, deadline) in moved {
            self.at(deadline.max(now), Timer::Suspicion { node });
        }
    }

    pub(super) fn suspicion_timer(&mut self, node: NodeId, now: Instant, out: &mut Outputs) {
        let Some(m) = self.members.get(&node) else {
            return;
        };
        if m.status != Status::Suspect {
            return;
        }
        let Some(s) = self.suspicions.get(&node) else {
            return;
        };
        if s.deadline() > now {
            return; // superseded by a later re-suspicion
        }
        let spoke_since = m.last_heard_at.get().is_some_and(|t| t > s.started_at);
        let within_cap = now < s.started_at + s.max + s.max;
        let in_band = self.cfg.lifeguard && (!s.last_chance || (spoke_since && within_cap));
        let out_of_band = self.cfg.oob && s.oob == OobProbeState::Unsent;
        if in_band || out_of_band {
            let addr = self.members.addr_of(m);
            if self.probe_again(node, addr, in_band, out_of_band, now, out) {
                return;
            }
        }
        // Both probes held back or spent: the verdict (the borrows are taken afresh).
        let (m, s) = (&self.members[&node], &self.suspicions[&node]);
        let ev = Event::SuspicionExpired {
            cluster: self.me.cluster,
            node,
            inc: m.inc,
            started_at: s.started_at,
            earliest: s.floor(),
            confirmations: s.confirmations() as u32,
            last_probe_at: s.last_probe_at,
        };
        let inc = m.inc;
        self.event(out, ev);
        self.declare_gone(node, Status::Dead, inc, self.me.node, now, out);
    }

    /// The suspicion of `node` ran out: send the in-band last-chance PING and/or §9's
    /// OOB probe, extending the deadline for their answers. Returns false if neither
    /// went out (the OOB probe held back by its bounds, no in-band chance left).
    fn probe_again(
        &mut self,
        node: NodeId,
        addr: Addr,
        in_band: bool,
        out_of_band: bool,
        now: Instant,
        out: &mut Outputs,
    ) -> bool {
        // §9's OOB probe: once a suspicion, beside the in-band one (the suspect's main
        // socket may be backed up); its answer extends the deadline once more.
        let oob_seq = if out_of_band {
            self.send_oob_probe(node, addr, now, out)
        } else {
            None
        };
        if in_band {
            // membership.md §9: one last probe before a suspicion expires, extending
            // the deadline by T_p. The PING carries the buddy SUSPECT, so a live
            // suspect refutes and its ACK brings the higher incarnation that clears
            // the suspicion. Refinement: if the suspect has spoken to us directly
            // since the suspicion began, it demonstrably lives (typically a verdict
            // formed during a partition that just healed): probe and extend again
            // rather than declare, up to twice the maximum suspicion, so a one-way
            // cut still ends in a verdict.
            let t = self.probe_timeout_for(node, now);
            let s = self
                .suspicions
                .get_mut(&node)
                .expect("suspect has a suspicion");
            s.last_chance = true;
            s.probed(now, t);
            let seq = self.seq();
            self.send_ping(seq, node, addr, now, out);
        }
        if in_band || oob_seq.is_some() {
            let s = self
                .suspicions
                .get_mut(&node)
                .expect("suspect has a suspicion");
            if let Some(seq) = oob_seq {
                // The answer gets its full wait before any verdict.
                s.oob = OobProbeState::Awaiting(seq);
                s.granted += (now + oob::OOB_TIMEOUT).saturating_since(s.deadline());
            }
            let deadline = s.deadline();
            self.at(deadline.max(now), Timer::Suspicion { node });
            return true;
        }
        false
    }

    pub(super) fn declare_gone(
        &mut self,
        node: NodeId,
        status: Status,
        inc: Incarnation,
        from: NodeId,
        now: Instant,
        out: &mut Outputs,
    ) {
        let was_unconfirmed = self.members[&node].status == Status::Unconfirmed;
        self.transition(node, status, inc, now, out);
        if status == Status::Dead {
            // Death time is `status_changed_at`, set by the transition just above.
            self.deaths.insert(node, inc);
        }
        let kind = if status == Status::Left {
            ClaimKind::Left
        } else {
            ClaimKind::Dead
        };
        // An unconfirmed peer's tombstone is ours alone: no DEAD gossip (invariant 2).
        if !was_unconfirmed {
            let claim = self.claim_of(&self.members[&node], kind, from);
            self.enqueue(claim, now, false);
        }
        self.member_timers
            .at(now + self.cfg.tombstone, Timer::Forget { node });
    }
}
