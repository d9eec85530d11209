//! The UNCONFIRMED lifecycle (AD-29, membership.md §7): warning, proactive confirmation
//! of gates and managers, and removal, with deadlines that scale with the probe cycle.

use super::*;

impl Membership {
    pub(super) fn schedule_confirmation(&mut self, node: NodeId, now: Instant) {
        let m = &self.members[&node];
        let next = self.next_confirmation_check(m);
        if strategy(m.role()).proactive {
            self.member_timers
                .at(next.max(now), Timer::Confirm { node });
            return;
        }
        let entry = PassiveEntry::new(node, m.discovery);
        if m.confirmation().warned() {
            self.passive_remove.push_back(entry);
        } else {
            self.passive_warn.push_back(entry);
        }
        self.arm_passive_sweep(next.max(now));
    }

    pub(super) fn arm_passive_sweep(&mut self, at: Instant) {
        if self.passive_sweep_at.is_none_or(|t| at < t) {
            self.passive_sweep_at = Some(at);
            self.at(at, Timer::PassiveSweep);
        }
    }

    /// The passive member an entry refers to, if the entry is still current: same
    /// discovery, still UNCONFIRMED, still a passive role.
    pub(super) fn passive_entry(&self, entry: PassiveEntry) -> Option<&Member> {
        self.members.get(&entry.node()).filter(|m| {
            m.discovery == entry.discovery()
                && m.status == Status::Unconfirmed
                && !strategy(m.role()).proactive
        })
    }

    /// Warn, then remove, the UNCONFIRMED passive members whose time has come
    /// (membership.md §7); stale entries are dropped on the way.
    pub(super) fn passive_sweep(&mut self, now: Instant, out: &mut Outputs) {
        while let Some(&entry) = self.passive_warn.front() {
            let Some(m) = self
                .passive_entry(entry)
                .filter(|m| !m.confirmation().warned())
            else {
                self.passive_warn.pop_front();
                continue;
            };
            if self.warning_at(m) > now {
                break;
            }
            self.passive_warn.pop_front();
            self.members
                .get_mut(&entry.node())
                .expect("current")
                .set_warned(true);
            self.event(
                out,
                Event::UnconfirmedWarning {
                    cluster: self.me.cluster,
                    node: entry.node(),
                },
            );
            self.passive_remove.push_back(entry);
        }
        while let Some(&entry) = self.passive_remove.front() {
            let Some(m) = self.passive_entry(entry) else {
                self.passive_remove.pop_front();
                continue;
            };
            if self.removal_deadline(m) > now {
                break;
            }
            let ev = Event::UnconfirmedRemoved {
                cluster: self.me.cluster,
                node: entry.node(),
                role: m.role(),
                reason: RemovalReason::PassiveTimeoutExpired,
                discovered_at: m.discovered_at(),
            };
            self.passive_remove.pop_front();
            self.event(out, ev);
            self.remove_member(entry.node(), out);
        }
        release_drained(&mut self.passive_warn);
        release_drained(&mut self.passive_remove);
        let warn_at = self
            .passive_warn
            .front()
            .and_then(|e| self.passive_entry(*e))
            .map(|m| self.warning_at(m));
        let remove_at = self
            .passive_remove
            .front()
            .and_then(|e| self.passive_entry(*e))
            .map(|m| self.removal_deadline(m));
        let next = match (warn_at, remove_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        // A stale head (not current) is dropped at the next sweep, a second from now.
        let stale_head = (warn_at.is_none() && !self.passive_warn.is_empty())
            || (remove_at.is_none() && !self.passive_remove.is_empty());
        let next = if stale_head {
            Some(next.map_or(now + crate::time::secs(1), |n| {
                n.min(now + crate::time::secs(1))
            }))
        } else {
            next
        };
        if let Some(t) = next {
            self.arm_passive_sweep(t.max(now));
        }
    }

    /// When an UNCONFIRMED peer is removed: the role's deadline (membership.md §7), but
    /// never before two full probe cycles. Spec refinement for large clusters: round-robin
    /// probing reaches every member once per cycle, so in a cluster whose cycle is longer
    /// than the passive timeout (above ~180 workers) the spec's deadline would remove
    /// healthy peers before anyone could have probed them, and gossip would rediscover
    /// them forever. This only ever extends the spec's timeout.
    pub(super) fn removal_deadline(&self, m: &Member) -> Instant {
        let role_deadline =
            strategy(m.role()).removal_deadline(m.discovered_at(), self.lhm.multiplier(), 1.0);
        let cycles = scale(self.probe_interval(), 2.0 * self.probe_list.len() as f64);
        role_deadline.max(m.discovered_at() + cycles)
    }

    /// When an UNCONFIRMED peer earns its one warning: after `unconfirmed_warning` (60 s),
    /// but never before one probe cycle, for the same reason as [`Self::removal_deadline`]:
    /// in a 1000-node cluster every peer learned by gossip is legitimately unconfirmed
    /// for most of a cycle, and the spec's 60 s made a million warnings of noise.
    pub(super) fn warning_at(&self, m: &Member) -> Instant {
        let cycle = scale(self.probe_interval(), self.probe_list.len() as f64);
        m.discovered_at() + self.cfg.unconfirmed_warning.max(cycle)
    }

    /// The next instant the confirmation timer must look at `m`: its warning, its next
    /// proactive attempt, or its removal deadline.
    pub(super) fn next_confirmation_check(&self, m: &Member) -> Instant {
        let strat = strategy(m.role());
        let mut next = self.removal_deadline(m);
        if let Some(a) = strat.attempt_at(m.discovered_at(), m.confirmation().proactive_made()) {
            next = next.min(a);
        }
        if !m.confirmation().warned() {
            next = next.min(self.warning_at(m));
        }
        next
    }

    /// Proactive confirmation and removal of an UNCONFIRMED peer (membership.md §7).
    pub(super) fn confirm_timer(&mut self, node: NodeId, now: Instant, out: &mut Outputs) {
        let Some(m) = self.members.get(&node) else {
            return;
        };
        if m.status != Status::Unconfirmed {
            return;
        }
        if !m.confirmation().warned() && now >= self.warning_at(m) {
            self.members
                .get_mut(&node)
                .expect("exists")
                .set_warned(true);
            self.event(
                out,
                Event::UnconfirmedWarning {
                    cluster: self.me.cluster,
                    node,
                },
            );
        }
        let m = &self.members[&node];
        let strat = strategy(m.role());
        let deadline = self.removal_deadline(m);
        let in_flight = self.proactive.values().any(|(n, _)| *n == node);
        if let Some(due) = strat.attempt_at(m.discovered_at(), m.confirmation().proactive_made()) {
            if due <= now && !in_flight {
                let addr = self.members.addr_of(m);
                let (role, attempt) = (m.role(), m.confirmation().proactive_made());
                let seq = self.seq();
                let t = self.probe_timeout_for(node, now);
                let key = self.at(now + t, Timer::ProactiveTimeout { seq });
                self.proactive.insert(seq, (node, key));
                let mm = self.members.get_mut(&node).expect("exists");
                mm.add_proactive_attempt();
                mm.set_last_attempt_failed(false);
                self.event(
                    out,
                    Event::ProactivePing {
                        cluster: self.me.cluster,
                        node,
                        role,
                        attempt,
                    },
                );
                self.send_ping(seq, node, addr, now, out);
                return;
            }
        }
        let exhausted =
            m.confirmation().proactive_made() >= strat.attempts && m.confirmation().last_failed();
        if now >= deadline && (!strat.proactive || exhausted) {
            let reason = if strat.proactive {
                RemovalReason::ExhaustedProactiveAttempts
            } else {
                RemovalReason::PassiveTimeoutExpired
            };
            let ev = Event::UnconfirmedRemoved {
                cluster: self.me.cluster,
                node,
                role: m.role(),
                reason,
                discovered_at: m.discovered_at(),
            };
            self.event(out, ev);
            self.remove_member(node, out);
            return;
        }
        if in_flight {
            return; // the attempt's timeout reschedules us
        }
        self.schedule_confirmation(node, now);
    }
}

/// A ping checking a death reported about an UNCONFIRMED member: the member and the
/// incarnation the report gave.
#[derive(Clone, Copy, Debug)]
pub(super) struct DeathCheck {
    pub(super) node: NodeId,
    pub(super) inc: Incarnation,
    pub(super) timer: TimerKey,
}

/// At most this many death checks in flight: a push-pull can list thousands of deaths,
/// and checks that do not fit wait for a later push-pull (each lists its deaths again
/// until their tombstones expire).
pub(super) const MAX_DEATH_CHECKS: usize = 16;

impl Membership {
    /// Whether we hold `node` UNCONFIRMED at an incarnation a report about `inc` covers.
    pub(super) fn holds_unconfirmed(&self, node: NodeId, inc: Incarnation) -> bool {
        self.members
            .get(&node)
            .is_some_and(|m| m.status == Status::Unconfirmed && inc >= m.inc)
    }

    /// A push-pull reported `node`, which we hold UNCONFIRMED, dead at `inc`: ping it
    /// once. An ACK confirms it (direct contact); silence for its probe timeout lets the
    /// reported death stand (`death_check_timeout`). The ping can only stop a death
    /// someone else declared, never start one of ours: membership.md §11 invariant 2
    /// (an UNCONFIRMED member yields no death of our own, no DEAD gossip) still holds,
    /// as for a DEAD that arrives by gossip, which is applied without a check.
    pub(super) fn check_reported_death(
        &mut self,
        node: NodeId,
        inc: Incarnation,
        now: Instant,
        out: &mut Outputs,
    ) {
        if self.death_checks.len() >= MAX_DEATH_CHECKS
            || self.death_checks.values().any(|d| d.node == node)
        {
            return;
        }
        let addr = self.members.addr_of(&self.members[&node]);
        let seq = self.seq();
        let t = self.probe_timeout_for(node, now);
        let timer = self.at(now + t, Timer::DeathCheckTimeout { seq });
        self.death_checks
            .insert(seq, DeathCheck { node, inc, timer });
        self.stats.death_checks += 1;
        self.send_ping(seq, node, addr, now, out);
    }

    /// A death check went unanswered: the reported death stands, unless the member has
    /// since been confirmed, removed or reported at a newer incarnation. (An
    /// UNCONFIRMED member's tombstone is not gossiped: `declare_gone`.)
    pub(super) fn death_check_timeout(&mut self, seq: u32, now: Instant, out: &mut Outputs) {
        let Some(check) = self.death_checks.remove(&seq) else {
            return;
        };
        if self.holds_unconfirmed(check.node, check.inc) {
            self.declare_gone(check.node, Status::Dead, check.inc, self.me.node, now, out);
        }
    }
}

/// A passive member's place in `passive_warn` or `passive_remove`: the member and the
/// discovery it was queued for, in 5 bytes. A `(NodeId, u8)` pair takes 8, and a node
/// of a 1,000-member cluster holds ~1,000 of them for a probe cycle (8 MB of a
/// 1,000-node simulation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct PassiveEntry([u8; 5]);

impl PassiveEntry {
    pub(super) fn new(node: NodeId, discovery: u8) -> Self {
        let [a, b, c, d] = node.0.to_le_bytes();
        PassiveEntry([a, b, c, d, discovery])
    }
    pub(super) fn node(self) -> NodeId {
        let [a, b, c, d, _] = self.0;
        NodeId(u32::from_le_bytes([a, b, c, d]))
    }
    pub(super) fn discovery(self) -> u8 {
        self.0[4]
    }
}

/// A queue that has drained gives its memory back. A mass join queues an entry for
/// every worker discovered (a thousand at 1,000 nodes); without this each machine kept
/// that capacity, 5 KB, for the rest of its life (5 MB at 1,000 nodes).
fn release_drained<T>(q: &mut VecDeque<T>) {
    if q.is_empty() {
        if q.capacity() > 0 {
            *q = VecDeque::new();
        }
    } else if q.capacity() > 64 && q.len() < q.capacity() / 4 {
        q.shrink_to(q.len() * 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_passive_entry_is_five_bytes_and_keeps_both_parts() {
        assert_eq!(core::mem::size_of::<PassiveEntry>(), 5);
        for (node, discovery) in [(0, 0), (1, 255), (u32::MAX, 7), (70_000, 1)] {
            let e = PassiveEntry::new(NodeId(node), discovery);
            assert_eq!((e.node(), e.discovery()), (NodeId(node), discovery));
        }
    }
}
