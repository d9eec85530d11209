//! The member record and its status (membership.md §2).

use crate::id::{Addr, Incarnation, NodeId, PackedAddr, Role};
use crate::time::{CompactInstant, CompactOptInstant, Instant};
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

/// One member as this machine sees it: 32 bytes. A node of an N-member cluster holds N
/// of these, so the record is most of a large simulation's memory (1,000 nodes: 1,000
/// records each) and every claim, probe and gossip pick reads one; it was 56 bytes, of
/// which most records then straddled two cache lines, then 48 with the address inline,
/// then 40, then 36 with 6-byte instants ([`CompactInstant`]); now the role and the
/// confirmed flag share a byte with the confirmation progress ([`MemberFlags`]).
/// Rarely used state lives beside the table instead: a dead member's death incarnation
/// is in `Membership::deaths`, an address longer than 6 bytes in the table's overflow
/// map (see [`PackedAddr`]; read addresses through [`MemberTable::addr_of`]).
#[derive(Clone, Debug)]
pub struct Member {
    pub id: NodeId,
    pub inc: Incarnation,
    addr: PackedAddr,
    pub status: Status,
    /// When `status` last changed (6 bytes: see [`CompactInstant`]).
    pub status_changed_at: CompactInstant,
    /// Last direct contact (any datagram sourced by it).
    pub last_heard_at: CompactOptInstant,
    /// Bumped at each (re)discovery, so queued confirmation entries of an earlier
    /// discovery are recognised as stale.
    pub discovery: u8,
    /// The role, whether we have heard from it directly, and where an UNCONFIRMED
    /// member is in its confirmation lifecycle (membership.md §7).
    flags: MemberFlags,
    /// The member's place in this node's probe list, 16 bits: whether its next probe is
    /// near decides if its coordinate is worth keeping (`Membership::coord_due_soon`;
    /// a place beyond 16 bits reads as unknown, which that check takes as near).
    probe_pos: [u8; 2],
}

/// A member's small state in one byte: its role (2 bits), whether it is confirmed
/// (heard from directly), and its UNCONFIRMED lifecycle: proactive attempts made (at
/// most 5 by the spec's strategy table, stored up to 7), whether the last one failed,
/// and whether the warning was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberFlags(u8);

impl MemberFlags {
    const MADE: u8 = 0b0000_0111;
    const LAST_FAILED: u8 = 0b0000_1000;
    const WARNED: u8 = 0b0001_0000;
    const CONFIRMED: u8 = 0b0010_0000;
    const ROLE_SHIFT: u32 = 6;
    const ROLE: u8 = 0b1100_0000;

    fn new(role: Role) -> Self {
        let mut f = MemberFlags(0);
        f.set_role(role);
        f
    }
    pub fn role(self) -> Role {
        match (self.0 & Self::ROLE) >> Self::ROLE_SHIFT {
            0 => Role::Gate,
            1 => Role::Manager,
            2 => Role::Worker,
            _ => Role::Unknown,
        }
    }
    fn set_role(&mut self, role: Role) {
        let bits = match role {
            Role::Gate => 0,
            Role::Manager => 1,
            Role::Worker => 2,
            Role::Unknown => 3,
        };
        self.0 = (self.0 & !Self::ROLE) | (bits << Self::ROLE_SHIFT);
    }
    pub fn confirmed(self) -> bool {
        self.0 & Self::CONFIRMED != 0
    }
    pub fn proactive_made(self) -> u8 {
        self.0 & Self::MADE
    }
    /// One more proactive attempt (saturating at 7, above any role's limit of 5).
    fn add_proactive_attempt(&mut self) {
        if self.proactive_made() < Self::MADE {
            self.0 += 1;
        }
    }
    pub fn last_failed(self) -> bool {
        self.0 & Self::LAST_FAILED != 0
    }
    fn set_last_failed(&mut self, failed: bool) {
        self.set(Self::LAST_FAILED, failed);
    }
    pub fn warned(self) -> bool {
        self.0 & Self::WARNED != 0
    }
    fn set_warned(&mut self, warned: bool) {
        self.set(Self::WARNED, warned);
    }
    /// A member back from the dead is discovered afresh: no attempts made, no warning
    /// given (whether the last attempt failed, the role and the confirmed flag are left
    /// as they were).
    fn rediscovered(&mut self) {
        self.0 &= !(Self::MADE | Self::WARNED);
    }
    fn set(&mut self, bit: u8, on: bool) {
        if on {
            self.0 |= bit;
        } else {
            self.0 &= !bit;
        }
    }
}

impl Member {
    /// A new record. Its address is given to [`MemberTable::insert`], which keeps it
    /// inline or in its overflow map.
    pub fn new(id: NodeId, role: Role, inc: Incarnation, now: Instant) -> Self {
        Member {
            id,
            inc,
            addr: PackedAddr::UNSET,
            status: Status::Unconfirmed,
            status_changed_at: CompactInstant::new(now),
            last_heard_at: CompactOptInstant::NONE,
            discovery: 0,
            flags: MemberFlags::new(role),
            probe_pos: Self::NO_PROBE_POS,
        }
    }

    const NO_PROBE_POS: [u8; 2] = [0xFF; 2];

    pub fn role(&self) -> Role {
        self.flags.role()
    }
    pub fn set_role(&mut self, role: Role) {
        self.flags.set_role(role);
    }
    /// Heard from directly (membership.md §7).
    pub fn confirmed(&self) -> bool {
        self.flags.confirmed()
    }
    pub fn set_confirmed(&mut self, confirmed: bool) {
        self.flags.set(MemberFlags::CONFIRMED, confirmed);
    }
    /// The UNCONFIRMED lifecycle's progress, to read (a copy: it changes through the
    /// methods below).
    pub fn confirmation(&self) -> MemberFlags {
        self.flags
    }
    pub fn add_proactive_attempt(&mut self) {
        self.flags.add_proactive_attempt();
    }
    pub fn set_last_attempt_failed(&mut self, failed: bool) {
        self.flags.set_last_failed(failed);
    }
    pub fn set_warned(&mut self, warned: bool) {
        self.flags.set_warned(warned);
    }
    /// Discovered afresh (back from the dead): no attempts made, no warning given.
    pub fn restart_confirmation(&mut self) {
        self.flags.rediscovered();
    }

    /// Where the probe list last placed this member (`None`: never, or beyond 16 bits).
    pub fn probe_pos(&self) -> Option<usize> {
        (self.probe_pos != Self::NO_PROBE_POS).then(|| u16::from_le_bytes(self.probe_pos) as usize)
    }
    pub fn set_probe_pos(&mut self, pos: usize) {
        self.probe_pos = match u16::try_from(pos) {
            Ok(p) if p < u16::MAX => p.to_le_bytes(),
            _ => Self::NO_PROBE_POS,
        };
    }

    /// When an UNCONFIRMED member was (re)discovered. Not stored: a member only enters
    /// Unconfirmed by being (re)discovered, and `status_changed_at` is set exactly then.
    pub fn discovered_at(&self) -> Instant {
        self.status_changed_at.get()
    }

    pub fn view(&self) -> crate::io::MemberView {
        crate::io::MemberView {
            status: self.status,
            inc: self.inc,
            confirmed: self.confirmed(),
        }
    }
}

/// Node ids below this index a dense vector directly; larger ones go through a hash map.
/// Ids are small integers by design (ARCHITECTURE.md); the bound caps what one hostile
/// claim can make a node allocate (32 KiB).
const DENSE_IDS: u32 = 16_384;
/// A dense index entry is a slot below this; above it, one of the two marks.
const DENSE_SLOTS: u16 = u16::MAX - 1;
/// Dense index mark: no member with this id.
const NO_SLOT: u16 = u16::MAX;
/// Dense index mark: the member's slot is too large for the entry and is in `sparse`
/// (a table of more than 65,534 members, far above the default `max_members`).
const IN_SPARSE: u16 = u16::MAX - 1;

/// The member table: records stored densely in a `Vec`, found through a direct
/// `id -> slot` vector for small ids (2 bytes a member) and a hash map for the rest. A
/// hash map of 1000 records of ~100 bytes rounded up to 2048 buckets (~220 KB); this
/// takes one `Vec` of records and 2 KB of index (1,000 nodes of 1,000 members: 2 MB;
/// 4-byte entries took 4). Iteration order depends only on the sequence of inserts and
/// removals (deterministic).
#[derive(Clone, Debug, Default)]
pub struct MemberTable {
    slots: Vec<Member>,
    dense: Vec<u16>,
    sparse: crate::FxHashMap<NodeId, u32>,
    /// Addresses too long to pack into their record (see [`PackedAddr`]), by member.
    long_addrs: crate::FxHashMap<NodeId, Addr>,
}

impl MemberTable {
    pub fn len(&self) -> usize {
        self.slots.len()
    }
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    fn slot(&self, id: &NodeId) -> Option<usize> {
        if id.0 < DENSE_IDS {
            match self.dense.get(id.0 as usize) {
                Some(&NO_SLOT) | None => None,
                Some(&IN_SPARSE) => self.sparse.get(id).map(|&s| s as usize),
                Some(&s) => Some(s as usize),
            }
        } else {
            self.sparse.get(id).map(|&s| s as usize)
        }
    }

    /// Point `id` at `slot`, or at nothing when `slot` is `None`.
    fn set_slot(&mut self, id: NodeId, slot: Option<u32>) {
        if id.0 < DENSE_IDS {
            let i = id.0 as usize;
            if self.dense.len() <= i {
                // Grow in steps of 256 ids, not by doubling: ids arrive in any order
                // during a join, and doubling left up to twice the index needed (3.5 MB
                // instead of 2 at 1,000 nodes); 256 bounds the reallocations all the same.
                let want = (i + 1).next_multiple_of(256).min(DENSE_IDS as usize);
                self.dense.reserve_exact(want - self.dense.len());
                self.dense.resize(i + 1, NO_SLOT);
            }
            if self.dense[i] == IN_SPARSE {
                self.sparse.remove(&id);
            }
            self.dense[i] = match slot {
                None => NO_SLOT,
                Some(s) if s < u32::from(DENSE_SLOTS) => s as u16,
                Some(s) => {
                    self.sparse.insert(id, s);
                    IN_SPARSE
                }
            };
        } else {
            match slot {
                None => self.sparse.remove(&id),
                Some(s) => self.sparse.insert(id, s),
            };
        }
    }

    pub fn get(&self, id: &NodeId) -> Option<&Member> {
        self.slot(id).map(|i| &self.slots[i])
    }
    pub fn get_mut(&mut self, id: &NodeId) -> Option<&mut Member> {
        self.slot(id).map(|i| &mut self.slots[i])
    }
    pub fn contains_key(&self, id: &NodeId) -> bool {
        self.slot(id).is_some()
    }
    /// Insert a member that is not in the table, reachable at `addr`.
    pub fn insert(&mut self, id: NodeId, mut m: Member, addr: Addr) {
        debug_assert!(!self.contains_key(&id));
        m.addr = match PackedAddr::pack(&addr) {
            Some(packed) => packed,
            None => {
                self.long_addrs.insert(id, addr);
                PackedAddr::SPILLED
            }
        };
        self.set_slot(id, Some(self.slots.len() as u32));
        self.slots.push(m);
    }
    /// The address of `m`, a record of this table.
    pub fn addr_of(&self, m: &Member) -> Addr {
        if m.addr.is_spilled() {
            self.long_addrs.get(&m.id).copied().unwrap_or_default()
        } else {
            m.addr.unpack()
        }
    }
    /// The address of member `id`, if it is in the table.
    pub fn addr(&self, id: &NodeId) -> Option<Addr> {
        self.get(id).map(|m| self.addr_of(m))
    }
    pub fn remove(&mut self, id: &NodeId) -> Option<Member> {
        let i = self.slot(id)?;
        self.set_slot(*id, None);
        if self.slots[i].addr.is_spilled() {
            self.long_addrs.remove(id);
            if self.long_addrs.is_empty() {
                self.long_addrs = Default::default();
            }
        }
        let m = self.slots.swap_remove(i);
        if let Some(moved) = self.slots.get(i) {
            let moved_id = moved.id;
            self.set_slot(moved_id, Some(i as u32));
        }
        Some(m)
    }
    pub fn values(&self) -> impl Iterator<Item = &Member> {
        self.slots.iter()
    }

    /// Read `index_of`'s index entry and `record_of`'s record, and nothing else: a walk
    /// over many claims calls this for claims a few places ahead, so that the cache
    /// misses of finding them start while earlier ones are merged (see
    /// `Membership::apply_snapshot`). Returns what it read, for `black_box`.
    pub fn read_ahead(&self, index_of: Option<NodeId>, record_of: Option<NodeId>) -> u64 {
        let index = index_of
            .and_then(|id| self.slot(&id))
            .map_or(0, |s| s as u64);
        let record = record_of
            .and_then(|id| self.get(&id))
            .map_or(0, |m| m.inc.0 as u64);
        index ^ record
    }
}

impl core::ops::Index<&NodeId> for MemberTable {
    type Output = Member;
    fn index(&self, id: &NodeId) -> &Member {
        self.get(id).expect("member is in the table")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::{Addr, Incarnation, Role};
    use crate::time::Instant;

    fn member(id: u32) -> Member {
        Member::new(NodeId(id), Role::Worker, Incarnation(0), Instant::ZERO)
    }

    #[test]
    fn dense_and_sparse_ids_insert_find_and_remove() {
        let mut t = MemberTable::default();
        for id in [3, 70_000, 0, 16_383, 16_384, u32::MAX - 1] {
            t.insert(NodeId(id), member(id), Addr::from_u32(id));
        }
        assert_eq!(t.len(), 6);
        for id in [3, 70_000, 0, 16_383, 16_384, u32::MAX - 1] {
            assert_eq!(t.get(&NodeId(id)).unwrap().id, NodeId(id));
        }
        assert!(t.get(&NodeId(4)).is_none());
        assert!(t.get(&NodeId(5_000_000)).is_none());
        // Removing moves the last record into the hole; both stay findable.
        assert_eq!(t.remove(&NodeId(3)).unwrap().id, NodeId(3));
        assert!(t.get(&NodeId(3)).is_none());
        assert_eq!(
            t.get(&NodeId(u32::MAX - 1)).unwrap().id,
            NodeId(u32::MAX - 1)
        );
        assert_eq!(t.remove(&NodeId(70_000)).unwrap().id, NodeId(70_000));
        assert!(t.remove(&NodeId(70_000)).is_none());
        assert_eq!(t.values().count(), 4);
        // A huge id never grows the dense index.
        assert!(t.dense.len() <= DENSE_IDS as usize);
    }

    /// A small id whose slot does not fit a 2-byte index entry (a table of more than
    /// 65,534 members) is found through the hash map, and back through the entry once a
    /// removal moves it to a low slot.
    #[test]
    fn small_ids_in_slots_beyond_the_dense_entries_reach_still_resolve() {
        let mut t = MemberTable::default();
        let far = |k: u32| NodeId(100_000 + k);
        for k in 0..u32::from(DENSE_SLOTS) {
            t.insert(far(k), member(far(k).0), Addr::from_u32(k));
        }
        for id in 0..4 {
            t.insert(NodeId(id), member(id), Addr::from_u32(id));
        }
        for id in 0..4 {
            assert_eq!(t.dense[id as usize], IN_SPARSE);
            assert_eq!(t.get(&NodeId(id)).unwrap().id, NodeId(id));
        }
        // Removing slot 0 moves the last record (id 3) into it: back in the dense entry.
        t.remove(&far(0));
        assert_eq!(t.dense[3], 0);
        assert!(!t.sparse.contains_key(&NodeId(3)));
        assert_eq!(t.get(&NodeId(3)).unwrap().id, NodeId(3));
        // Removing an id held through the map forgets it there too.
        t.remove(&NodeId(1));
        assert!(t.get(&NodeId(1)).is_none());
        assert!(!t.sparse.contains_key(&NodeId(1)));
        for id in [0, 2, 3] {
            assert_eq!(t.get(&NodeId(id)).unwrap().id, NodeId(id));
        }
        assert_eq!(t.get(&far(7)).unwrap().id, far(7));
        assert_eq!(t.len(), usize::from(DENSE_SLOTS) + 2);
    }

    /// Ids arriving in any order grow the dense index in steps of 256, not by
    /// doubling: 1,000 ids take at most 1,024 entries.
    #[test]
    fn the_dense_index_grows_to_the_largest_id_not_to_twice_it() {
        let mut t = MemberTable::default();
        // In the scrambled order gossip delivers them (a permutation of 0..1000), then
        // one far id. Doubling took this index to 1,840 entries.
        for k in 0..1000u32 {
            let id = k * 7919 % 1000;
            t.insert(NodeId(id), member(id), Addr::from_u32(id));
        }
        assert!(
            t.dense.capacity() <= 1024,
            "capacity {}",
            t.dense.capacity()
        );
        t.insert(NodeId(3000), member(3000), Addr::from_u32(3000));
        assert!(
            t.dense.capacity() <= 3072,
            "capacity {}",
            t.dense.capacity()
        );
        assert_eq!(t.get(&NodeId(3000)).unwrap().id, NodeId(3000));
        assert_eq!(t.get(&NodeId(999)).unwrap().id, NodeId(999));
    }

    #[test]
    fn a_member_record_is_32_bytes() {
        assert_eq!(core::mem::size_of::<Member>(), 32);
    }

    /// Addresses of every length come back as they went in: up to 6 bytes from the
    /// record itself, longer ones from the overflow map, which forgets them with their
    /// member.
    #[test]
    fn short_addresses_stay_in_the_record_and_long_ones_in_the_overflow_map() {
        let mut t = MemberTable::default();
        let lengths = [0usize, 1, 4, 6, 7, 8, 16, 18];
        let addr_for = |len: usize| {
            let bytes: Vec<u8> = (0..len as u8).map(|b| b.wrapping_mul(37) ^ 0xA5).collect();
            Addr::new(&bytes).unwrap()
        };
        for (k, &len) in lengths.iter().enumerate() {
            t.insert(NodeId(k as u32), member(k as u32), addr_for(len));
        }
        assert_eq!(t.long_addrs.len(), 4, "7, 8, 16 and 18 bytes overflow");
        for (k, &len) in lengths.iter().enumerate() {
            assert_eq!(
                t.addr(&NodeId(k as u32)),
                Some(addr_for(len)),
                "{len} bytes"
            );
        }
        // Removing a member moves the last record into its slot; both still resolve.
        t.remove(&NodeId(5));
        assert_eq!(t.long_addrs.len(), 3);
        assert_eq!(t.addr(&NodeId(5)), None);
        assert_eq!(t.addr(&NodeId(7)), Some(addr_for(18)));
        for id in [4, 6, 7] {
            t.remove(&NodeId(id));
        }
        assert!(t.long_addrs.is_empty());
        assert_eq!(t.addr(&NodeId(3)), Some(addr_for(6)));
    }

    #[test]
    fn probe_positions_round_trip_in_16_bits() {
        let mut m = member(1);
        assert_eq!(m.probe_pos(), None);
        for pos in [0, 1, 255, 256, 10_000, 65_534] {
            m.set_probe_pos(pos);
            assert_eq!(m.probe_pos(), Some(pos));
        }
        m.set_probe_pos(65_535);
        assert_eq!(m.probe_pos(), None, "beyond 16 bits is unknown");
        m.set_probe_pos(usize::MAX);
        assert_eq!(m.probe_pos(), None);
    }

    /// The one flags byte keeps its five parts apart: the role and the confirmed flag
    /// survive every change of the confirmation progress, and the reverse.
    #[test]
    fn member_flags_keep_their_five_parts_apart() {
        let parts = |m: &Member| {
            let c = m.confirmation();
            (
                m.role(),
                m.confirmed(),
                c.proactive_made(),
                c.last_failed(),
                c.warned(),
            )
        };
        for role in [Role::Gate, Role::Manager, Role::Worker, Role::Unknown] {
            let mut m = Member::new(NodeId(1), role, Incarnation(0), Instant::ZERO);
            assert_eq!(parts(&m), (role, false, 0, false, false));
            m.set_confirmed(true);
            m.set_warned(true);
            for _ in 0..5 {
                m.add_proactive_attempt();
            }
            m.set_last_attempt_failed(true);
            assert_eq!(parts(&m), (role, true, 5, true, true));
            m.set_last_attempt_failed(false);
            m.set_warned(false);
            assert_eq!(parts(&m), (role, true, 5, false, false));
            for _ in 0..100 {
                m.add_proactive_attempt();
            }
            assert_eq!(parts(&m), (role, true, 7, false, false), "saturates at 7");
            m.set_warned(true);
            m.set_last_attempt_failed(true);
            m.restart_confirmation();
            assert_eq!(parts(&m), (role, true, 0, true, false));
            m.set_role(Role::Worker);
            m.set_confirmed(false);
            assert_eq!(parts(&m), (Role::Worker, false, 0, true, false));
        }
    }
}
