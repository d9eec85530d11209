//! Handling one message (membership.md §3, §4, §5): dispatch by body, snapshots, acks,
//! helping, answering the dead; per-sender inbound rate limiting asks `rate`.

use super::*;

/// How far ahead of the claim being merged a snapshot merge reads a member's index
/// entry, and its record (whose slot the index entry names, read by then).
const SNAPSHOT_INDEX_AHEAD: usize = 8;
const SNAPSHOT_RECORD_AHEAD: usize = 4;

impl Membership {
    pub(super) fn on_message(&mut self, env: Envelope, now: Instant, out: &mut Outputs) {
        let from_observer = env.flags & wire::FLAG_OBSERVER != 0;
        let sender = Claim {
            kind: ClaimKind::Alive,
            node: env.sender,
            addr: env.sender_addr,
            inc: env.sender_inc,
            role: env.sender_role,
            from: env.sender,
        };
        if env.sender == self.me.node {
            self.stats.misdirected += 1;
            return;
        }
        // JOIN is checked before the sender counts as contact (zombie guard on its claim).
        if let Body::Join { protocol_major, .. } = env.body {
            if let Some(reason) = self.join_refusal(&env, protocol_major, now) {
                self.send(
                    env.sender_addr,
                    Body::Nack {
                        seq: 0,
                        target: env.sender,
                        reason,
                    },
                    out,
                );
                return;
            }
        }
        let sender_ok = from_observer || self.apply_claim(&sender, true, now, out);
        match env.body {
            Body::Ping {
                seq,
                target,
                buddy,
                gossip,
                coord,
                health,
            } => {
                self.observe_coord(env.sender, coord, now);
                if let Some(b) = buddy {
                    self.apply_claim(&b, false, now, out);
                }
                self.apply_gossip(&gossip, now, out);
                self.apply_health(&health, now);
                if target != self.me.node {
                    self.stats.misdirected += 1;
                    return;
                }
                if !sender_ok {
                    self.tell_gone(env.sender, env.sender_addr, out);
                    return;
                }
                let gossip = self.piggyback(None, env.sender, now);
                let coord = self.coord_to_send();
                let health = self.health_to_send(env.sender, now);
                let ack = Body::Ack {
                    seq,
                    gossip,
                    coord,
                    health,
                };
                self.send(env.sender_addr, ack, out);
            }
            Body::Ack {
                seq,
                gossip,
                coord,
                health,
            } => {
                self.observe_coord(env.sender, coord, now);
                self.apply_gossip(&gossip, now, out);
                self.apply_health(&health, now);
                self.on_ack(seq, env.sender, now, out);
            }
            Body::PingReq {
                seq,
                target,
                target_addr,
                want_nack,
                gossip,
                ..
            } => {
                self.apply_gossip(&gossip, now, out);
                if !sender_ok {
                    self.tell_gone(env.sender, env.sender_addr, out);
                    return;
                }
                self.help(
                    seq,
                    target,
                    target_addr,
                    want_nack,
                    env.sender_addr,
                    now,
                    out,
                );
            }
            Body::IndirectAck { seq, target } => {
                if self
                    .round
                    .as_ref()
                    .is_some_and(|r| r.seq == seq && r.target == target)
                {
                    self.round_succeeded(now, out);
                } else {
                    self.stats.stale_replies += 1;
                }
            }
            Body::Nack {
                seq,
                target,
                reason,
            } => match reason {
                NackReason::VersionMismatch
                | NackReason::VersionRequired
                | NackReason::ZombieRejected => {
                    if !self.joined {
                        self.event(
                            out,
                            Event::JoinRejected {
                                cluster: self.me.cluster,
                                reason,
                            },
                        );
                    }
                }
                _ => {
                    // Only a helper we asked, and only once (datagrams may be duplicated).
                    if let Some(r) = self.round.as_mut() {
                        let helper = env.sender;
                        if r.seq == seq
                            && r.target == target
                            && r.indirect
                            && r.helpers.contains(&helper)
                            && !r.nacked.contains(&helper)
                        {
                            r.nacked.push(helper);
                        }
                    }
                }
            },
            Body::Join { .. } => {
                // Accepted (the sender is Alive and confirmed by now): JOIN gossip and a
                // snapshot of the table.
                let join = Claim {
                    kind: ClaimKind::Join,
                    ..sender
                };
                self.enqueue(join, now, false);
                let mut snapshot = Vec::with_capacity(JOIN_SNAPSHOT_ENTRIES);
                snapshot.push(self.self_claim(ClaimKind::Alive));
                self.table_claims(JOIN_SNAPSHOT_ENTRIES - 1, Some(env.sender), &mut snapshot);
                self.send(
                    env.sender_addr,
                    Body::JoinAck {
                        accepted: true,
                        reason: None,
                        snapshot,
                    },
                    out,
                );
            }
            Body::JoinAck {
                accepted,
                reason,
                snapshot,
            } => {
                if accepted {
                    self.joined = true;
                    self.apply_snapshot(&snapshot, env.sender, false, now, out);
                    // The snapshot is one datagram: fetch the rest at once.
                    self.send_push_pull(env.sender_addr, false, out);
                } else {
                    self.event(
                        out,
                        Event::JoinRejected {
                            cluster: self.me.cluster,
                            reason: reason.unwrap_or(NackReason::Unknown),
                        },
                    );
                }
            }
            Body::Leave => {
                let left = Claim {
                    kind: ClaimKind::Left,
                    ..sender
                };
                self.apply_claim(&left, false, now, out);
            }
            Body::Notice { gossip } => self.apply_gossip(&gossip, now, out),
            Body::PushPull { reply, entries } => {
                self.apply_snapshot(&entries, env.sender, from_observer, now, out);
                if reply {
                    self.joined = true;
                } else {
                    self.send_push_pull(env.sender_addr, true, out);
                }
            }
            Body::SyncDigest { reply, digest } => {
                self.on_sync_digest(env.sender_addr, reply, digest, out)
            }
            // The node routes elections to its election machine; one arriving here was
            // misrouted (the sender still counted as contact above).
            Body::Election { .. } | Body::Job(_) => self.stats.misdirected += 1,
        }
    }

    pub(super) fn join_refusal(
        &self,
        env: &Envelope,
        major: u16,
        now: Instant,
    ) -> Option<NackReason> {
        if self.mode != Mode::Member {
            return Some(NackReason::Unknown);
        }
        if major != self.cfg.protocol_major {
            return Some(NackReason::VersionMismatch);
        }
        match self.members.get(&env.sender) {
            Some(m) if m.status.is_gone() && !self.zombie_ok(m, env.sender_inc, now) => {
                Some(NackReason::ZombieRejected)
            }
            _ => None,
        }
    }

    /// Merge a full-state snapshot (push-pull, JOIN_ACK) from `sender`.
    ///
    /// Two refinements of "merge per §2", both for safety after partitions:
    /// - a snapshot's DEAD about someone else is taken as a SUSPECT accused by the
    ///   sender (memberlist's `mergeState` does the same): a stale verdict from the other
    ///   side of a healed partition must not kill a peer we can reach; it gets a
    ///   suspicion it can refute. Our own death (about self) keeps its meaning, so we
    ///   refute it with the zombie-safe bump.
    /// - an observer's snapshot is outside knowledge of this cluster: only its claims
    ///   about us are used (to refute); its verdicts about others are ignored.
    ///
    /// A DEAD about a member we hold UNCONFIRMED cannot become a suspicion (never
    /// UNCONFIRMED -> SUSPECT, §7), and taking it as it is would let a stale verdict
    /// kill a live peer we merely have not met. It is checked instead: one ping, and
    /// the death stands only if that goes unanswered ([`Membership::check_reported_death`]).
    /// Before, such a death was dropped: a node that missed its gossip kept the dead
    /// member UNCONFIRMED until its removal deadline (~2,000 s at 1,000 members), every
    /// push-pull notwithstanding.
    pub(super) fn apply_snapshot(
        &mut self,
        claims: &[Claim],
        sender: NodeId,
        from_observer: bool,
        now: Instant,
        out: &mut Outputs,
    ) {
        // A snapshot is anti-entropy, not news: re-gossiping every entry of a
        // 1000-member table would saturate every queue at a mass join for no gain.
        self.merging_snapshot = true;
        let claims = &claims[..claims.len().min(wire::MAX_SNAPSHOT_ENTRIES)];
        for (i, c) in claims.iter().enumerate() {
            // A snapshot lists members in the sender's table order, random in ours: each
            // claim's index entry and record are two dependent cache misses in a large
            // cluster (at 2,000 nodes, most of the time merging takes). Reading a few
            // claims ahead overlaps them with the merging of the claims before.
            std::hint::black_box(self.members.read_ahead(
                claims.get(i + SNAPSHOT_INDEX_AHEAD).map(|c| c.node),
                claims.get(i + SNAPSHOT_RECORD_AHEAD).map(|c| c.node),
            ));
            if c.node == self.me.node {
                self.apply_claim(c, false, now, out);
            } else if from_observer {
                continue;
            } else if c.kind == ClaimKind::Dead && self.holds_unconfirmed(c.node, c.inc) {
                self.check_reported_death(c.node, c.inc, now, out);
            } else if c.kind == ClaimKind::Dead {
                let suspect = Claim {
                    kind: ClaimKind::Suspect,
                    from: sender,
                    ..*c
                };
                self.apply_claim(&suspect, false, now, out);
            } else {
                self.apply_claim(c, false, now, out);
            }
        }
        self.merging_snapshot = false;
        for node in std::mem::take(&mut self.discovered_in_snapshot) {
            if self.members.contains_key(&node) {
                self.schedule_confirmation(node, now);
            }
        }
    }

    pub(super) fn apply_gossip(&mut self, claims: &[Claim], now: Instant, out: &mut Outputs) {
        for c in claims.iter().take(wire::MAX_SNAPSHOT_ENTRIES) {
            self.apply_claim(c, false, now, out);
        }
    }

    pub(super) fn on_ack(&mut self, seq: u32, sender: NodeId, now: Instant, out: &mut Outputs) {
        if let Some(r) = self
            .round
            .as_ref()
            .filter(|r| r.seq == seq && r.target == sender)
        {
            if r.attempt == 0 && !r.indirect {
                let started_at = r.started_at;
                self.learn_rtt(sender, started_at, now, out);
            }
            self.round_succeeded(now, out);
        } else if self.helps.get(&seq).is_some_and(|h| h.target == sender) {
            // Only the target's own ACK completes a help: a stray ACK that happens to
            // carry the seq must not cancel the probe we owe the requester.
            let help = self.helps.remove(&seq).expect("present");
            self.timers.cancel(help.timer);
            self.send(
                help.requester_addr,
                Body::IndirectAck {
                    seq: help.requester_seq,
                    target: sender,
                },
                out,
            );
        } else if self.proactive.get(&seq).is_some_and(|(n, _)| *n == sender) {
            let (_, key) = self.proactive.remove(&seq).expect("present");
            self.timers.cancel(key);
        } else if self
            .death_checks
            .get(&seq)
            .is_some_and(|d| d.node == sender)
        {
            // Alive after all: its datagram has already confirmed it (direct contact).
            let check = self.death_checks.remove(&seq).expect("present");
            self.timers.cancel(check.timer);
        } else {
            self.stats.stale_replies += 1;
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn help(
        &mut self,
        requester_seq: u32,
        target: NodeId,
        target_addr: Addr,
        want_nack: bool,
        requester_addr: Addr,
        now: Instant,
        out: &mut Outputs,
    ) {
        let nack = |this: &mut Self, reason, out: &mut Outputs| {
            if want_nack {
                this.send(
                    requester_addr,
                    Body::Nack {
                        seq: requester_seq,
                        target,
                        reason,
                    },
                    out,
                );
            }
        };
        if !self.degradation.level().helps_indirect()
            || self.helps.len() >= self.cfg.max_pending_helps
        {
            self.stats.helps_refused += 1;
            return nack(self, NackReason::Busy, out);
        }
        // Unknown, or gone for good: a member that left is never probed (invariant 8).
        if self
            .members
            .get(&target)
            .is_none_or(|m| m.status == Status::Left)
        {
            return nack(self, NackReason::Unknown, out);
        }
        let seq = self.seq();
        let timer = self.at(now + self.help_wait(), Timer::HelpTimeout { seq });
        self.helps.insert(
            seq,
            Help {
                timer,
                requester_addr,
                requester_seq,
                target,
                want_nack,
            },
        );
        self.send_ping(seq, target, target_addr, now, out);
    }

    /// A datagram from a member we hold Dead/Left: tell it, so it refutes or stays away.
    pub(super) fn tell_gone(&mut self, node: NodeId, addr: Addr, out: &mut Outputs) {
        let Some(m) = self.members.get(&node) else {
            return;
        };
        let kind = if m.status == Status::Left {
            ClaimKind::Left
        } else {
            ClaimKind::Dead
        };
        let claim = self.claim_of(m, kind, self.me.node);
        self.send(
            addr,
            Body::Notice {
                gossip: vec![claim],
            },
            out,
        );
    }

    pub(super) fn heard_from(&mut self, node: NodeId, now: Instant, out: &mut Outputs) {
        if self.members.get(&node).is_some_and(|m| !m.status.is_gone()) {
            self.confirm_member(node, now, out);
        }
    }

    pub(super) fn admit(&mut self, from: Addr, now: Instant) -> bool {
        let cfg = &self.cfg;
        self.rate.admit(
            from,
            now,
            cfg.rate_limit_burst,
            cfg.rate_limit_per_sec,
            cfg.rate_limit_senders,
        )
    }
}
