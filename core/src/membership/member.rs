//! The member record and its status (membership.md §2).

use crate::id::{Addr, Incarnation, NodeId, Role};
use crate::membership::suspicion::Suspicion;
use crate::time::Instant;
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
    pub discovered_at: Instant,
    pub last_heard_at: Option<Instant>,
    pub suspicion: Option<Box<Suspicion>>,
    /// `(death_at, death_inc)` for the zombie guard.
    pub death: Option<(Instant, Incarnation)>,
    /// Bumped to invalidate this member's pending timers.
    pub generation: u32,
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
            discovered_at: now,
            last_heard_at: None,
            suspicion: None,
            death: None,
            generation: 0,
            proactive_made: 0,
            proactive_last_failed: false,
            warned: false,
        }
    }

    pub fn view(&self) -> crate::io::MemberView {
        crate::io::MemberView {
            status: self.status,
            inc: self.inc,
            confirmed: self.confirmed,
        }
    }
}
