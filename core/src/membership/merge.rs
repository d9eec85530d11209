//! Merging claims (membership.md §2): precedence of ALIVE/SUSPECT/DEAD/LEFT by
//! incarnation, the zombie guard, roles, and refuting claims about ourselves.

use super::*;

impl Membership {
    pub(super) fn zombie_ok(&self, m: &Member, inc: Incarnation, now: Instant) -> bool {
        match self.deaths.get(&m.id) {
            Some(death_inc)
                if now.saturating_since(m.status_changed_at.get()) < self.cfg.zombie_window =>
            {
                inc.0 >= death_inc.0.saturating_add(self.cfg.zombie_inc_margin)
            }
            _ => true,
        }
    }

    /// Did `m` speak to us directly within the suspicion minimum of our detector role?
    pub(super) fn heard_recently(&self, m: &Member, now: Instant) -> bool {
        let (min, _) = self.cfg.suspicion_bounds_for(self.detector_role());
        m.last_heard_at
            .get()
            .is_some_and(|t| now.saturating_since(t) < min)
    }

    pub(super) fn detector_role(&self) -> Role {
        match self.mode {
            Mode::Member => self.me.role,
            Mode::Observer { probes } => probes,
        }
    }

    pub(super) fn observed_role_ok(&self, role: Role) -> bool {
        match self.mode {
            Mode::Member => true,
            Mode::Observer { probes } => role == probes,
        }
    }

    /// Apply one claim. `direct` is true when the claim is the sender speaking for itself
    /// in this very datagram (which also confirms it). Returns false if the sender of a
    /// direct claim is held Dead/Left and may not return yet.
    pub(super) fn apply_claim(
        &mut self,
        c: &Claim,
        direct: bool,
        now: Instant,
        out: &mut Outputs,
    ) -> bool {
        if c.node == self.me.node {
            if self.mode == Mode::Member {
                self.claim_about_self(c, now, out);
            }
            return true;
        }
        if c.inc > Incarnation::MAX {
            self.stats.implausible_claims += 1;
            return false;
        }
        let Some(m) = self.members.get(&c.node) else {
            if matches!(c.kind, ClaimKind::Alive | ClaimKind::Join) && self.observed_role_ok(c.role)
            {
                // Gossip never confirms; direct contact does.
                self.insert_member(c, direct, now, out);
                self.regossip_alive(c, now);
            }
            return true;
        };
        if c.inc.0 > m.inc.0.saturating_add(MAX_INC_JUMP) {
            self.stats.implausible_claims += 1;
            return !m.status.is_gone();
        }
        let (status, l) = (m.status, m.inc);
        // Fast path for the common case (most gossip and every push-pull entry): an
        // ALIVE we already hold, same incarnation and role. Nothing to change or spread.
        if !direct
            && matches!(c.kind, ClaimKind::Alive | ClaimKind::Join)
            && c.inc == l
            && matches!(status, Status::Alive | Status::Unconfirmed)
            && (c.role == m.role() || c.role == Role::Unknown)
        {
            return true;
        }
        match (status, c.kind) {
            (_, ClaimKind::Alive | ClaimKind::Join) => self.apply_alive(c, direct, now, out),
            (Status::Unconfirmed, ClaimKind::Suspect) => true, // never Unconfirmed -> Suspect
            (Status::Unconfirmed, ClaimKind::Dead | ClaimKind::Left) => {
                if c.inc >= l {
                    let st = gone_status(c.kind);
                    self.declare_gone(c.node, st, c.inc, c.from, now, out);
                }
                true
            }
            (Status::Alive, ClaimKind::Suspect) => {
                if c.inc >= l {
                    self.start_suspicion(c.node, c.inc, c.from, now, out);
                }
                true
            }
            (Status::Suspect, ClaimKind::Suspect) => {
                if c.inc == l {
                    if self.confirm_suspicion(c.node, c.from, now) {
                        self.enqueue(*c, now, false);
                    }
                } else if c.inc > l {
                    self.start_suspicion(c.node, c.inc, c.from, now, out);
                }
                true
            }
            (Status::Alive | Status::Suspect, ClaimKind::Dead)
                if c.inc >= l && self.heard_recently(m, now) =>
            {
                // Our own fresh evidence contradicts the verdict (typically a partition-
                // local death arriving after the heal): merge it as a suspicion the
                // subject can refute. A real crash cannot be contradicted like this: a
                // death is declared no earlier than `min` after its suspicion started.
                let suspect = Claim {
                    kind: ClaimKind::Suspect,
                    ..*c
                };
                self.apply_claim(&suspect, false, now, out)
            }
            (Status::Alive | Status::Suspect, ClaimKind::Dead | ClaimKind::Left) => {
                if c.inc >= l {
                    let st = gone_status(c.kind);
                    self.declare_gone(c.node, st, c.inc, c.from, now, out);
                }
                true
            }
            (Status::Dead | Status::Left, ClaimKind::Suspect) => true,
            (Status::Dead | Status::Left, ClaimKind::Dead | ClaimKind::Left) => {
                let to_left = c.kind == ClaimKind::Left && status == Status::Dead && c.inc == l;
                if c.inc > l || to_left {
                    let st = gone_status(c.kind);
                    self.transition(c.node, st, c.inc, now, out);
                    self.enqueue(*c, now, false);
                }
                true
            }
        }
    }

    pub(super) fn apply_alive(
        &mut self,
        c: &Claim,
        direct: bool,
        now: Instant,
        out: &mut Outputs,
    ) -> bool {
        let m = &self.members[&c.node];
        let (status, l) = (m.status, m.inc);
        let mut accepted = false;
        match status {
            Status::Unconfirmed | Status::Alive => {
                if c.inc > l {
                    self.transition(c.node, status, c.inc, now, out);
                    accepted = true;
                }
            }
            Status::Suspect => {
                if c.inc > l {
                    self.transition(c.node, Status::Alive, c.inc, now, out);
                    accepted = true;
                }
            }
            Status::Dead | Status::Left => {
                // The planted bug (test builds only, `Config::injected_bug`): a death
                // undone at the incarnation it was declared at.
                let planted = INJECTED_BUGS && self.cfg.injected_bug && c.inc == l;
                if (c.inc > l || planted) && self.zombie_ok(m, c.inc, now) {
                    self.deaths.remove(&c.node);
                    let m = self.members.get_mut(&c.node).expect("exists");
                    m.restart_confirmation();
                    m.discovery = m.discovery.wrapping_add(1);
                    self.transition(c.node, Status::Alive, c.inc, now, out);
                    if self.members[&c.node].status == Status::Unconfirmed {
                        self.schedule_confirmation(c.node, now);
                    }
                    accepted = true;
                } else if direct {
                    return false;
                }
            }
        }
        if accepted || c.role != Role::Unknown {
            self.update_role(c.node, c.role, accepted, now);
        }
        if direct {
            self.confirm_member(c.node, now, out);
        }
        if accepted {
            self.regossip_alive(c, now);
        }
        true
    }

    /// Roles are self-asserted: take a role from a newer incarnation, or fill an unknown
    /// one; a learned role re-targets the confirmation strategy (membership.md §7).
    pub(super) fn update_role(&mut self, node: NodeId, role: Role, newer: bool, now: Instant) {
        if role == Role::Unknown {
            return;
        }
        let m = self.members.get_mut(&node).expect("exists");
        if m.role() == role || !(newer || m.role() == Role::Unknown) {
            return;
        }
        m.set_role(role);
        let unconfirmed = m.status == Status::Unconfirmed;
        self.gossip.set_role(node, role);
        if unconfirmed {
            self.schedule_confirmation(node, now);
        }
    }

    pub(super) fn claim_about_self(&mut self, c: &Claim, now: Instant, out: &mut Outputs) {
        match c.kind {
            ClaimKind::Alive | ClaimKind::Join => {
                if c.inc > self.inc {
                    self.refute(c.inc, ClaimKind::Suspect, now, out);
                }
            }
            ClaimKind::Suspect | ClaimKind::Dead | ClaimKind::Left => {
                if self.leaving && c.kind != ClaimKind::Suspect {
                    return;
                }
                // A burial must be answered with an incarnation its zombie guard accepts
                // (>= accused + margin), even if we already moved past `accused` by
                // refuting a suspicion: otherwise the burier rejects us for the whole
                // zombie window (seen: 60 s after a partition healed).
                let margin = match c.kind {
                    ClaimKind::Suspect => 0,
                    _ => self.cfg.zombie_inc_margin,
                };
                if c.inc.0.saturating_add(margin) >= self.inc.0 {
                    self.refute(c.inc, c.kind, now, out);
                } else {
                    let me = self.self_claim(ClaimKind::Alive);
                    self.enqueue(me, now, true);
                }
            }
        }
    }

    /// Refute an accusation at `accused`: `own := accused + 1` (ML). A DEAD/LEFT
    /// accusation is answered with `accused + zombie_inc_margin`, so observers that
    /// buried us let us back at once instead of after the zombie window: the owner is
    /// the only one who can issue it, which is exactly what the zombie guard asks for.
    /// At most `refutations_per_window` bumps per window; the rest wait, never dropped.
    pub(super) fn refute(
        &mut self,
        accused: Incarnation,
        kind: ClaimKind,
        now: Instant,
        out: &mut Outputs,
    ) {
        if now.saturating_since(self.refute_window_start) >= self.cfg.refutation_window {
            self.refute_window_start = now;
            self.refutes_in_window = 0;
        }
        if self.refutes_in_window >= self.cfg.refutations_per_window {
            self.stats.refutations_deferred += 1;
            let worse = match self.deferred_refute {
                Some((inc, _)) => accused > inc,
                None => true,
            };
            if worse {
                self.deferred_refute = Some((accused, kind));
                self.arm_housekeeping(now);
            }
            return;
        }
        self.refutes_in_window += 1;
        let bump = if matches!(kind, ClaimKind::Dead | ClaimKind::Left) {
            self.cfg.zombie_inc_margin.max(1)
        } else {
            1
        };
        let next = Incarnation(accused.0.saturating_add(bump).min(Incarnation::MAX.0));
        if next <= self.inc {
            return;
        }
        self.inc = next;
        self.stats.refutations += 1;
        self.event(
            out,
            Event::SelfIncarnation {
                cluster: self.me.cluster,
                inc: next,
            },
        );
        self.lhm_raise(1, now, out);
        let me = self.self_claim(ClaimKind::Alive);
        self.enqueue(me, now, true);
    }
}

/// The status a DEAD or LEFT claim leads to.
fn gone_status(kind: ClaimKind) -> Status {
    if kind == ClaimKind::Left {
        Status::Left
    } else {
        Status::Dead
    }
}
