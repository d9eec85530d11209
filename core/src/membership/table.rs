//! The member table's transitions (membership.md §2): the one place a member's status
//! changes, confirmation by direct contact, insertion, removal and eviction.

use super::*;
use crate::io::MemberView;

impl Membership {
    /// The single place a member's `(status, inc, confirmed)` changes: keeps the counters
    /// and emits the `Member` event the shells mirror.
    pub(super) fn transition(
        &mut self,
        node: NodeId,
        status: Status,
        inc: Incarnation,
        now: Instant,
        out: &mut Outputs,
    ) {
        let m = self
            .members
            .get_mut(&node)
            .expect("transition of a known member");
        let from = m.view();
        let suspicion_over = m.status == Status::Suspect && status != Status::Suspect;
        if m.status != status {
            m.status_changed_at.set(now);
        }
        let was_live = m.status.is_live();
        let was_dead = m.status == Status::Dead;
        let was_gone = m.status.is_gone();
        m.status = status;
        m.inc = inc;
        if matches!(status, Status::Alive | Status::Suspect) && !m.confirmed() {
            // Alive only ever means "confirmed": an unconfirmed revival stays Unconfirmed.
            m.status = if status == Status::Alive {
                Status::Unconfirmed
            } else {
                status
            };
        }
        let to = m.view();
        let role = m.role();
        let now_live = m.status.is_live();
        let now_dead = m.status == Status::Dead;
        let now_gone = m.status.is_gone();
        self.live_count = self.live_count + now_live as usize - was_live as usize;
        self.dead_count = self.dead_count + now_dead as usize - was_dead as usize;
        if was_gone && !now_gone {
            self.probe_list_insert(node);
        }
        if suspicion_over {
            self.suspicions.remove(&node);
        }
        let status = (to.status, to.inc);
        if from != to {
            self.member_event(out, node, role, Some(from), Some(to));
        }
        // After the member's own event: the job layer follows the global verdict.
        self.job_layer_follows(node, Some(status), out);
    }

    /// Report a change of one member's entry: the event every observer mirrors.
    fn member_event(
        &self,
        out: &mut Outputs,
        node: NodeId,
        role: Role,
        from: Option<MemberView>,
        to: Option<MemberView>,
    ) {
        self.event(
            out,
            Event::Member {
                cluster: self.me.cluster,
                node,
                role,
                from,
                to,
            },
        );
    }

    /// Direct contact from `node` (membership.md §7): an Unconfirmed peer becomes Alive.
    pub(super) fn confirm_member(&mut self, node: NodeId, now: Instant, out: &mut Outputs) {
        let Some(m) = self.members.get_mut(&node) else {
            return;
        };
        m.last_heard_at.set(now);
        if m.confirmed() {
            return;
        }
        let from = m.view();
        m.set_confirmed(true);
        if m.status == Status::Unconfirmed {
            m.status = Status::Alive;
            m.status_changed_at.set(now);
        }
        let (to, role) = (m.view(), m.role());
        if to.status.is_live() && !from.status.is_live() {
            self.live_count += 1;
        }
        self.member_event(out, node, role, Some(from), Some(to));
    }

    /// Add a member learned from claim `c` (its own ALIVE when `confirmed`).
    pub(super) fn insert_member(
        &mut self,
        c: &Claim,
        confirmed: bool,
        now: Instant,
        out: &mut Outputs,
    ) {
        let (node, addr, role, inc) = (c.node, c.addr, c.role, c.inc);
        if self.members.len() >= self.cfg.max_members {
            self.evict(out);
        }
        let mut m = Member::new(node, role, inc, now);
        if confirmed {
            m.set_confirmed(true);
            m.status = Status::Alive;
            m.last_heard_at.set(now);
            self.live_count += 1;
        }
        let to = m.view();
        self.members.insert(node, m, addr);
        self.probe_list_insert(node);
        self.member_event(out, node, role, None, Some(to));
        if !confirmed {
            if self.merging_snapshot {
                self.discovered_in_snapshot.push(node);
            } else {
                self.schedule_confirmation(node, now);
            }
        }
    }

    pub(super) fn remove_member(&mut self, node: NodeId, out: &mut Outputs) {
        let Some(m) = self.members.remove(&node) else {
            return;
        };
        self.live_count -= m.status.is_live() as usize;
        self.dead_count -= (m.status == Status::Dead) as usize;
        self.gossip.remove(node);
        self.suspicions.remove(&node);
        self.deaths.remove(&node);
        self.coords.remove(node);
        self.forget_health(node);
        self.member_event(out, node, m.role(), Some(m.view()), None);
        self.job_layer_follows(node, None, out);
    }

    /// Table full: evict `len - max + 100`, Unconfirmed first, then Dead, Suspect, Alive;
    /// oldest status change first (membership.md §2).
    pub(super) fn evict(&mut self, out: &mut Outputs) {
        let excess = self.members.len() + 100 - self.cfg.max_members;
        let class = |s: Status| match s {
            Status::Unconfirmed => 0,
            Status::Dead | Status::Left => 1,
            Status::Suspect => 2,
            Status::Alive => 3,
        };
        let mut order: Vec<(u8, Instant, NodeId)> = self
            .members
            .values()
            .map(|m| (class(m.status), m.status_changed_at.get(), m.id))
            .collect();
        order.sort_unstable();
        for (_, _, id) in order.into_iter().take(excess) {
            self.stats.evicted_members += 1;
            self.remove_member(id, out);
        }
    }
}
