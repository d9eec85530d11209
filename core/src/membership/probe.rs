//! Probe rounds (membership.md §3): shuffled round-robin targets, direct attempts, k
//! helpers with nacks, helping others, and what a round's outcome does to our health.

use super::*;

impl Membership {
    /// L = LHM multiplier x degradation timeout multiplier (of the pace level, see
    /// [`lifeguard::Degradation::pace`]).
    pub(super) fn local_mult(&self) -> f64 {
        self.lhm.multiplier() * self.degradation.pace().timeout_mult()
    }

    /// How long a helper waits for the target before nacking: `min(0.7 T, 0.5 s)`,
    /// unscaled (Python's rule). It must be well inside the requester's own window
    /// (`T_p` >= T), or every healthy helper's nack arrives late and is counted as
    /// missing, raising the requester's LHM for nothing.
    pub(super) fn help_wait(&self) -> Duration {
        scale(self.cfg.probe_timeout, 0.7).min(crate::time::millis(500))
    }

    pub(super) fn probe_interval(&self) -> Duration {
        scale(self.cfg.probe_interval, self.local_mult())
    }

    pub(super) fn probe_candidate(&self, m: &Member) -> bool {
        !m.status.is_gone()
            && match self.mode {
                Mode::Member => true,
                Mode::Observer { probes } => m.role() == probes,
            }
    }

    pub(super) fn next_target(&mut self) -> Option<NodeId> {
        for _ in 0..=self.probe_list.len() + 1 {
            if self.probe_idx >= self.probe_list.len() {
                let mut list: Vec<NodeId> = self
                    .members
                    .values()
                    .filter(|m| self.probe_candidate(m))
                    .map(|m| m.id)
                    .collect();
                // Map order is deterministic but arbitrary: sort, then shuffle with our RNG.
                list.sort_unstable();
                list.dedup();
                self.rng.shuffle(&mut list);
                for (pos, id) in list.iter().enumerate() {
                    if let Some(m) = self.members.get_mut(id) {
                        m.set_probe_pos(pos);
                    }
                }
                self.probe_list = list;
                self.probe_idx = 0;
                if self.probe_list.is_empty() {
                    return None;
                }
            }
            let id = self.probe_list[self.probe_idx];
            self.probe_idx += 1;
            if self
                .members
                .get(&id)
                .is_some_and(|m| self.probe_candidate(m))
            {
                return Some(id);
            }
        }
        None
    }

    /// New member: a random place in the probe list (memberlist's way, so a newcomer is
    /// not always probed last).
    pub(super) fn probe_list_insert(&mut self, id: NodeId) {
        // Swap into a random place among the members not yet probed this cycle: O(1).
        // A stale duplicate (a member removed and re-added within one cycle) is harmless
        // and disappears when the list is rebuilt at the end of the cycle.
        self.probe_list.push(id);
        let last = self.probe_list.len() - 1;
        let from = self.probe_idx.min(last);
        let at = from + self.rng.below(last - from + 1);
        self.probe_list.swap(at, last);
        // The entry moved to the end keeps its place only if it was its member's current
        // one (not a stale duplicate); the newcomer's place is set last, so that a stale
        // duplicate of it never overrides it.
        let moved = self.probe_list[last];
        if let Some(m) = self.members.get_mut(&moved) {
            if m.probe_pos() == Some(at) {
                m.set_probe_pos(last);
            }
        }
        if let Some(m) = self.members.get_mut(&id) {
            m.set_probe_pos(at);
        }
    }

    /// Whether `node`'s next probe may come before a coordinate heard now expires
    /// ([`crate::coords::engine::PEER_TTL`]): its place in the probe list is within the next
    /// `TTL / probe_interval` probes, or the list is rebuilt within that many, after which
    /// any member may come first. In a cluster no larger than that window (300 members at
    /// the default 1 s interval) every member is due soon.
    ///
    /// Only such a peer's coordinate can serve a probe or suspicion timeout: in a
    /// 1,000-member cluster a peer is probed about once per 1,000 s, so a coordinate heard
    /// from a peer whose turn is further away expires unused. Keeping only these in the
    /// peer table made it smaller and its hit rate higher (BENCHMARKS.md, session 12).
    pub(super) fn coord_due_soon(&self, node: NodeId) -> bool {
        let window = crate::coords::engine::PEER_TTL
            .as_micros()
            .div_ceil(self.cfg.probe_interval.as_micros().max(1))
            .max(1);
        let window = usize::try_from(window).unwrap_or(usize::MAX);
        let left_in_round = self.probe_list.len().saturating_sub(self.probe_idx);
        if left_in_round < window {
            return true;
        }
        let Some(pos) = self.members.get(&node).and_then(Member::probe_pos) else {
            return true;
        };
        if self.probe_list.get(pos) != Some(&node) {
            return true; // not placed (yet): do not guess
        }
        pos >= self.probe_idx && pos - self.probe_idx < window
    }

    pub(super) fn start_round(&mut self, now: Instant, out: &mut Outputs) {
        let k = self.round_counter;
        self.round_counter += 1;
        if self.degradation.pace().skips_round(k) {
            let next = self.probe_interval();
            self.at(now + next, Timer::RoundStart);
            return;
        }
        let Some(target) = self.next_target() else {
            let next = self.probe_interval();
            self.at(now + next, Timer::RoundStart);
            return;
        };
        let seq = self.seq();
        let addr = self.members.addr_of(&self.members[&target]);
        let timeout = self.probe_timeout_for(target, now);
        self.round = Some(Round {
            seq,
            target,
            target_addr: addr,
            attempt: 0,
            indirect: false,
            helpers: SmallVec::new(),
            nacked: SmallVec::new(),
            started_at: now,
            timeout,
            timer: None,
        });
        self.stats.probes += 1;
        self.send_ping(seq, target, addr, now, out);
        let wait = scale(timeout, self.cfg.direct_attempt_fractions[0]);
        let key = self.at(now + wait, Timer::DirectRetry { seq });
        self.set_round_timer(key);
    }

    pub(super) fn seq(&mut self) -> u32 {
        self.next_seq = self.next_seq.wrapping_add(1);
        self.next_seq
    }

    pub(super) fn send_ping(
        &mut self,
        seq: u32,
        target: NodeId,
        addr: Addr,
        now: Instant,
        out: &mut Outputs,
    ) {
        self.ping_with_buddy(seq, target, addr, self.cfg.lifeguard, now, out);
    }

    /// A PING; with `buddy`, a suspected target learns of its suspicion from the probe
    /// itself (Lifeguard's buddy system, and §9's answer to an OOB probe).
    pub(super) fn ping_with_buddy(
        &mut self,
        seq: u32,
        target: NodeId,
        addr: Addr,
        buddy: bool,
        now: Instant,
        out: &mut Outputs,
    ) {
        let buddy = match self.members.get(&target) {
            Some(m) if buddy && m.status == Status::Suspect => {
                let from = self
                    .suspicions
                    .get(&target)
                    .map_or(self.me.node, |s| s.originator);
                Some(self.claim_of(m, ClaimKind::Suspect, from))
            }
            _ => None,
        };
        let gossip = self.piggyback(buddy.map(|b| b.node), target, now);
        let coord = self.coord_to_send();
        let health = self.health_to_send(target, now);
        self.send(
            addr,
            Body::Ping {
                seq,
                target,
                buddy,
                gossip,
                coord,
                health,
            },
            out,
        );
    }

    pub(super) fn direct_retry(&mut self, seq: u32, now: Instant, out: &mut Outputs) {
        let Some(round) = self.round.as_mut() else {
            return;
        };
        if round.seq != seq || round.indirect {
            return;
        }
        round.attempt += 1;
        let (target, addr, attempt, timeout) = (
            round.target,
            round.target_addr,
            round.attempt,
            round.timeout,
        );
        // The target may have left (or been buried) while we were waiting: a member held
        // Left or Dead is never probed again (invariant 8).
        if self.members.get(&target).is_none_or(|m| m.status.is_gone()) {
            self.end_round(false, now);
            return;
        }
        if attempt < self.cfg.direct_attempt_fractions.len() {
            self.send_ping(seq, target, addr, now, out);
            let wait = scale(timeout, self.cfg.direct_attempt_fractions[attempt]);
            let key = self.at(now + wait, Timer::DirectRetry { seq });
            self.set_round_timer(key);
            return;
        }
        // Direct probe failed.
        let status = self.members.get(&target).map(|m| m.status);
        match status {
            None | Some(Status::Dead) | Some(Status::Left) => {
                self.end_round(false, now);
                return;
            }
            // Never suspect (or blame ourselves for) a peer we never heard from (§3.3 step 3).
            Some(Status::Unconfirmed) => {
                self.end_round(false, now);
                return;
            }
            _ => {}
        }
        let helpers = self.pick_helpers(target, now);
        let inc = self.members[&target].inc;
        for h in &helpers {
            let haddr = self.members.addr_of(&self.members[h]);
            let gossip = self.piggyback(None, *h, now);
            self.send(
                haddr,
                Body::PingReq {
                    seq,
                    target,
                    target_addr: addr,
                    target_inc: inc,
                    want_nack: self.cfg.lifeguard,
                    gossip,
                },
                out,
            );
        }
        self.stats.indirect_probes += 1;
        if let Some(round) = self.round.as_mut() {
            round.indirect = true;
            round.helpers = helpers;
        }
        let key = self.at(now + timeout, Timer::IndirectEnd { seq });
        self.set_round_timer(key);
    }

    /// Up to k confirmed Alive helpers other than the target (§3.3 step 4), preferring
    /// members we heard from within about one probe cycle. Refinement of the spec's
    /// random choice: a helper we have no recent evidence of reaching (typically one on
    /// the far side of a partition) cannot nack, and its missing nack would be charged to
    /// our own health. A node that hears from nobody still falls back to random helpers,
    /// so Lifeguard's self-awareness for a truly isolated node is unchanged.
    ///
    /// Peer health (§3.3, §9): an overloaded member is never asked, a stressed one only
    /// to make up the number when too few others were found (`health::helper_tier`).
    pub(super) fn pick_helpers(&mut self, target: NodeId, now: Instant) -> SmallVec<[NodeId; 4]> {
        let mut helpers: SmallVec<[NodeId; 4]> = SmallVec::new();
        let k = self.cfg.indirect_helpers;
        if self.probe_list.is_empty() || k == 0 {
            return helpers;
        }
        let cycle = scale(self.cfg.probe_interval, (self.live_count.max(1) * 2) as f64)
            .max(crate::time::secs(10));
        let recent = |m: &Member| {
            m.last_heard_at
                .get()
                .is_some_and(|t| now.saturating_since(t) <= cycle)
        };
        let mut fallback: SmallVec<[NodeId; 4]> = SmallVec::new();
        let mut stressed: SmallVec<[NodeId; 4]> = SmallVec::new();
        for _ in 0..(4 * k + 8) {
            if helpers.len() >= k {
                break;
            }
            let id = self.probe_list[self.rng.below(self.probe_list.len())];
            if id == target
                || helpers.contains(&id)
                || fallback.contains(&id)
                || stressed.contains(&id)
            {
                continue;
            }
            match self.members.get(&id) {
                Some(m) if m.status == Status::Alive && m.confirmed() => {
                    match health::helper_tier(self.peer_health(id, now)) {
                        Some(1) if stressed.len() < k => stressed.push(id),
                        Some(0) if recent(m) => helpers.push(id),
                        Some(0) if fallback.len() < k => fallback.push(id),
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        for id in stressed {
            if helpers.len() >= k {
                break;
            }
            helpers.push(id);
        }
        if helpers.is_empty() {
            return fallback;
        }
        helpers
    }

    pub(super) fn indirect_end(&mut self, seq: u32, now: Instant, out: &mut Outputs) {
        let Some(round) = self.round.as_ref() else {
            return;
        };
        if round.seq != seq {
            return;
        }
        let (target, helpers, nacks) = (
            round.target,
            round.helpers.len() as u8,
            round.nacked.len() as u8,
        );
        // Lifeguard's self-awareness signal (membership.md §6.1). Spec deviation, as
        // memberlist and the Lifeguard paper do: a failed probe costs +1 only when no
        // helper could vouch for our network; with helpers, each *missing nack* costs +1
        // and a failure every helper nacked costs nothing. Charging every failed probe
        // made a node's health worse whenever a peer really died or was partitioned
        // away, which stretched its suspicion timeouts x2..x9 exactly when detection
        // matters (a 2-minute partition went undetected by gates in simulation).
        let penalty = if !self.cfg.lifeguard {
            0
        } else if helpers == 0 {
            1
        } else {
            helpers.saturating_sub(nacks)
        };
        // Every helper answered in time: our own sending, receiving and processing work
        // (the very thing the LHM measures), so the round counts for our health as a
        // success does (-1). Without this, a node whose remaining peers are all
        // unreachable (an isolated minority) keeps its LHM, and every suspicion's
        // timeout, at the level the partition's first probes raised it to.
        let vouched = self.cfg.lifeguard && helpers > 0 && nacks >= helpers;
        self.end_round(false, now);
        if vouched {
            self.lhm_lower(now, out);
        }
        // The suspicion snapshots the LHM from *before* this round's penalty: the same
        // missing replies must not both accuse the target and stretch its timeout.
        if let Some(m) = self.members.get(&target) {
            match m.status {
                Status::Alive => {
                    let inc = m.inc;
                    self.start_suspicion(target, inc, self.me.node, now, out);
                }
                Status::Suspect => {
                    // Our own independent failure: tell others so it counts as a confirmation.
                    let claim = self.claim_of(m, ClaimKind::Suspect, self.me.node);
                    self.enqueue(claim, now, false);
                }
                _ => {}
            }
        }
        if penalty > 0 {
            self.lhm_raise(penalty, now, out);
        }
    }

    pub(super) fn set_round_timer(&mut self, key: TimerKey) {
        if let Some(r) = self.round.as_mut() {
            r.timer = Some(key);
        }
    }

    pub(super) fn end_round(&mut self, success: bool, now: Instant) {
        let Some(round) = self.round.take() else {
            return;
        };
        self.cancel(round.timer);
        if success && self.mode == Mode::Member {
            self.lhm.lower(1);
        }
        let next = (round.started_at + self.probe_interval()).max(now);
        self.at(next, Timer::RoundStart);
    }

    pub(super) fn round_succeeded(&mut self, now: Instant, out: &mut Outputs) {
        let before = self.lhm.score();
        self.end_round(true, now);
        if self.lhm.score() != before {
            self.lhm_event(now, out);
        }
    }
}
