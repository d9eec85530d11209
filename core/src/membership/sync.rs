//! Join, leave and anti-entropy (membership.md §4): seeds, graceful leave, push-pull
//! full-state sync and reconnecting to members held dead (partitions heal unaided).

use super::digest::TableDigest;
use super::*;

impl Membership {
    pub(super) fn join(&mut self, seeds: Vec<Addr>, now: Instant, out: &mut Outputs) {
        self.seeds = seeds;
        self.seeds.retain(|a| *a != self.me.addr);
        self.seeds.truncate(64);
        self.joined = false;
        self.join_attempts_left = self.cfg.join_attempts.saturating_sub(1);
        self.send_join(now, out);
    }

    /// A member asks a seed to JOIN; an observer pulls the seed's table instead.
    fn contact_seed(&mut self, seed: Addr, out: &mut Outputs) {
        match self.mode {
            Mode::Member => self.send(
                seed,
                Body::Join {
                    protocol_major: self.cfg.protocol_major,
                    protocol_minor: self.cfg.protocol_minor,
                },
                out,
            ),
            Mode::Observer { .. } => self.send_push_pull(seed, false, out),
        }
    }

    pub(super) fn send_join(&mut self, now: Instant, out: &mut Outputs) {
        for i in 0..self.seeds.len() {
            let seed = self.seeds[i];
            self.contact_seed(seed, out);
        }
        if self.join_attempts_left > 0 {
            let wait = self.jittered(self.cfg.join_retry());
            self.at(now + wait, Timer::JoinRetry);
        }
    }

    pub(super) fn leave(&mut self, _now: Instant, out: &mut Outputs) {
        if self.leaving || self.mode != Mode::Member {
            self.leaving = true;
            return;
        }
        let targets: Vec<Addr> = self
            .members
            .values()
            .filter(|m| m.status.is_live())
            .map(|m| self.members.addr_of(m))
            .collect();
        for addr in targets {
            self.send(addr, Body::Leave, out);
        }
        self.leaving = true;
        self.timers.clear();
        self.member_timers.clear();
        self.passive_warn.clear();
        self.passive_remove.clear();
    }

    /// Heal partitions without an operator: push-pull with a random member we hold Dead
    /// (its reply refutes our view, our table makes it refute its own death), and re-join
    /// the seeds while nobody is alive.
    pub(super) fn reconnect(&mut self, now: Instant, out: &mut Outputs) {
        if self.live_count == 0 && !self.seeds.is_empty() {
            let seed = self.seeds[self.rng.below(self.seeds.len())];
            self.stats.reconnects += 1;
            self.contact_seed(seed, out);
        }
        if self.dead_count == 0 {
            return;
        }
        let window = self.cfg.tombstone;
        let deaths = &self.deaths;
        let mut dead: Vec<NodeId> = self
            .members
            .values()
            .filter(|m| {
                m.status == Status::Dead
                    && deaths.contains_key(&m.id)
                    && now.saturating_since(m.status_changed_at.get()) < window
            })
            .map(|m| m.id)
            .collect();
        if dead.is_empty() {
            return;
        }
        dead.sort_unstable();
        let pick = dead[self.rng.below(dead.len())];
        let addr = self.members.addr_of(&self.members[&pick]);
        self.stats.reconnects += 1;
        self.send_push_pull(addr, false, out);
    }

    pub(super) fn send_push_pull(&mut self, to: Addr, reply: bool, out: &mut Outputs) {
        let mut entries = Vec::with_capacity(self.members.len() + 1);
        entries.extend(self.snapshot_claims());
        self.stats.push_pulls += 1;
        self.send_frame(to, Body::PushPull { reply, entries }, out);
    }

    /// What a push-pull frame lists: our own ALIVE (members only), then the table.
    fn snapshot_claims(&self) -> impl Iterator<Item = Claim> + '_ {
        let me = (self.mode == Mode::Member).then(|| self.self_claim(ClaimKind::Alive));
        me.into_iter()
            .chain(self.table_claim_iter(None))
            .take(wire::MAX_SNAPSHOT_ENTRIES)
    }

    /// The digest of exactly what [`Self::send_push_pull`] would send now.
    pub(super) fn table_digest(&self) -> u64 {
        let mut d = TableDigest::default();
        self.snapshot_claims().for_each(|c| d.add(&c));
        d.value()
    }

    /// Periodic anti-entropy starts with digests (see [`super::digest`]): offer ours; the
    /// full exchange follows only if the peer's answer differs.
    pub(super) fn offer_sync_digest(&mut self, to: Addr, out: &mut Outputs) {
        let digest = self.table_digest();
        self.stats.sync_digests += 1;
        self.sync_offered_to = Some(to);
        self.send_frame(
            to,
            Body::SyncDigest {
                reply: false,
                digest,
            },
            out,
        );
    }

    /// A [`Body::SyncDigest`] arrived from `from`.
    pub(super) fn on_sync_digest(
        &mut self,
        from: Addr,
        reply: bool,
        digest: u64,
        out: &mut Outputs,
    ) {
        if !reply {
            let own = self.table_digest();
            self.send_frame(
                from,
                Body::SyncDigest {
                    reply: true,
                    digest: own,
                },
                out,
            );
            return;
        }
        // Only the answer to our own latest offer counts: anyone else's would make us
        // send a whole table on request.
        if self.sync_offered_to != Some(from) {
            self.stats.stale_replies += 1;
            return;
        }
        self.sync_offered_to = None;
        if digest == self.table_digest() {
            self.stats.syncs_in_step += 1;
            self.joined = true;
        } else {
            self.send_push_pull(from, false, out);
        }
    }

    fn send_frame(&mut self, to: Addr, body: Body, out: &mut Outputs) {
        let env = self.envelope(body);
        match wire::encode(&env, Channel::Frame) {
            Ok(bytes) => out.push(Output::Frame { to, bytes }),
            Err(_) => self.stats.encode_failures += 1,
        }
    }

    /// The table as claims, in the table's (deterministic) order.
    pub(super) fn table_claims(&self, max: usize, skip: Option<NodeId>, out: &mut Vec<Claim>) {
        out.extend(self.table_claim_iter(skip).take(max));
    }

    fn table_claim_iter(&self, skip: Option<NodeId>) -> impl Iterator<Item = Claim> + '_ {
        self.members
            .values()
            .filter(move |m| Some(m.id) != skip)
            .map(|m| {
                let (kind, from) = match m.status {
                    Status::Unconfirmed | Status::Alive => (ClaimKind::Alive, m.id),
                    Status::Suspect => (
                        ClaimKind::Suspect,
                        self.suspicions
                            .get(&m.id)
                            .map_or(self.me.node, |s| s.originator),
                    ),
                    Status::Dead => (ClaimKind::Dead, self.me.node),
                    Status::Left => (ClaimKind::Left, m.id),
                };
                self.claim_of(m, kind, from)
            })
    }

    pub(super) fn housekeeping(&mut self, now: Instant, out: &mut Outputs) {
        if let Some(level) = self.degradation.evaluate(self.lhm.score(), now) {
            self.event(
                out,
                Event::Degradation {
                    cluster: self.me.cluster,
                    level,
                },
            );
        }
        if let Some((inc, kind)) = self.deferred_refute {
            if now.saturating_since(self.refute_window_start) >= self.cfg.refutation_window {
                self.deferred_refute = None;
                if inc >= self.inc {
                    self.refute(inc, kind, now, out);
                }
            }
        }
    }
}
