//! The member record and its status (membership.md §2).

use crate::id::{Addr, Incarnation, NodeId, Role};
use crate::time::{Instant, OptInstant};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
pub enum Status {
    Unconfirmed,
    Alive,
    Suspect,
    Dead,
    Left,
}

impl Status {
    /// Same-incarnation rank: Unconfirmed -1 < Alive 0 < Suspect 1 < Dead 2 <= Left 2.
    pub fn rank(self) -> i8 {
        match self {
            Status::Unconfirmed => -1,
            Status::Alive => 0,
            Status::Suspect => 1,
            Status::Dead | Status::Left => 2,
        }
    }
    pub fn is_gone(self) -> bool {
        matches!(self, Status::Dead | Status::Left)
    }
    /// Counted in N of the suspicion formula and probed as a helper candidate.
    pub fn is_live(self) -> bool {
        matches!(self, Status::Alive | Status::Suspect)
    }
}

#[derive(Clone, Debug)]
pub struct Member {
    pub id: NodeId,
    pub addr: Addr,
    pub role: Role,
    pub status: Status,
    pub inc: Incarnation,
    pub confirmed: bool,
    pub status_changed_at: Instant,
    /// Last direct contact (any datagram sourced by it).
    pub last_heard_at: OptInstant,
    /// Declared dead (and not back since): the zombie guard applies from
    /// `status_changed_at`, at `death_inc` (membership.md §2).
    pub has_death: bool,
    pub death_inc: Incarnation,
    pub proactive_made: u8,
    pub proactive_last_failed: bool,
    pub warned: bool,
}

impl Member {
    pub fn new(id: NodeId, addr: Addr, role: Role, inc: Incarnation, now: Instant) -> Self {
        Member {
            id,
            addr,
            role,
            status: Status::Unconfirmed,
            inc,
            confirmed: false,
            status_changed_at: now,
            last_heard_at: OptInstant::NONE,
            has_death: false,
            death_inc: Incarnation(0),
            proactive_made: 0,
            proactive_last_failed: false,
            warned: false,
        }
    }

    /// When an UNCONFIRMED member was (re)discovered. Not stored: a member only enters
    /// Unconfirmed by being (re)discovered, and `status_changed_at` is set exactly then.
    pub fn discovered_at(&self) -> Instant {
        self.status_changed_at
    }

    pub fn view(&self) -> crate::io::MemberView {
        crate::io::MemberView {
            status: self.status,
            inc: self.inc,
            confirmed: self.confirmed,
        }
    }
}

/// The member table: members stored densely in a `Vec` behind a `NodeId -> slot` index.
/// A hash map of 1000 records of ~100 bytes rounds up to 2048 buckets (~220 KB); here
/// the records take one `Vec` and the index 8 bytes a bucket. Iteration order depends
/// only on the sequence of inserts and removals (deterministic).
#[derive(Clone, Debug, Default)]
pub struct MemberTable {
    slots: Vec<Member>,
    index: crate::FxHashMap<NodeId, u32>,
}

impl MemberTable {
    pub fn len(&self) -> usize {
        self.slots.len()
    }
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
    pub fn get(&self, id: &NodeId) -> Option<&Member> {
        self.index.get(id).map(|&i| &self.slots[i as usize])
    }
    pub fn get_mut(&mut self, id: &NodeId) -> Option<&mut Member> {
        self.index.get(id).map(|&i| &mut self.slots[i as usize])
    }
    pub fn contains_key(&self, id: &NodeId) -> bool {
        self.index.contains_key(id)
    }
    /// Insert a member that is not in the table.
    pub fn insert(&mut self, id: NodeId, m: Member) {
        debug_assert!(!self.index.contains_key(&id));
        self.index.insert(id, self.slots.len() as u32);
        self.slots.push(m);
    }
    pub fn remove(&mut self, id: &NodeId) -> Option<Member> {
        let i = self.index.remove(id)? as usize;
        let m = self.slots.swap_remove(i);
        if let Some(moved) = self.slots.get(i) {
            self.index.insert(moved.id, i as u32);
        }
        Some(m)
    }
    pub fn values(&self) -> impl Iterator<Item = &Member> {
        self.slots.iter()
    }
}

impl core::ops::Index<&NodeId> for MemberTable {
    type Output = Member;
    fn index(&self, id: &NodeId) -> &Member {
        self.get(id).expect("member is in the table")
    }
}
