//! Piggyback gossip (membership.md §5): one pending update per member, a retransmit limit
//! that grows with ln N, fewest-sent-first selection, bounded queue.

use crate::id::{Addr, Incarnation, NodeId, PackedAddr, Role};
use crate::time::{secs, CompactInstant, Instant};
use crate::wire::{Claim, ClaimKind};
use crate::FxHashMap;
use std::collections::VecDeque;

/// `max(1, floor(mult x ln(N+1)))`: N=3 -> 4, 10 -> 7, 100 -> 13, 1000 -> 20 at mult 3.
pub fn retransmit_limit(mult: f64, n: usize) -> u32 {
    let l = (mult * libm::log((n + 1) as f64)).floor();
    if l.is_finite() && l >= 1.0 {
        l as u32
    } else {
        1
    }
}

/// A pending update: the whole claim it will be sent as, so that building a datagram
/// reads nothing but the queue. (It once took the member's address and role from the
/// table at each send, 32 bytes here instead of 48; at 2,000 nodes that was two
/// dependent cache misses a claim, the id index and then the record, and the largest
/// part of picking a datagram's gossip.) The address is the table's, which never
/// changes for a record, packed as the record packs it (an address longer than 6
/// bytes waits in `GossipQueue::long_addrs`); the role is kept in step by
/// [`GossipQueue::set_role`].
#[derive(Clone, Copy, Debug)]
struct Pending {
    node: NodeId,
    addr: PackedAddr,
    role: Role,
    kind: ClaimKind,
    sends: u8,
    limit: u8,
    inc: Incarnation,
    from: NodeId,
    enqueued_at: CompactInstant,
    /// Insertion order, newer first on ties; [`URGENT`] marks our own refutations.
    order: u32,
}

/// The top bit of an order: urgent updates (our refutations) go before all others.
const URGENT: u32 = 1 << 31;
/// Orders are renumbered (rank-preserving) before the sequence reaches the urgent bit.
const SEQ_LIMIT: u32 = URGENT - 1;
/// A slab this many slots long or shorter is never compacted.
const SLAB_KEEP: usize = 64;

/// Pending updates, one per member. Selection order is "fewest sends first, newest
/// first": one `ByOrder` of `(order, slot)` per send count, with lazy deletion (an
/// entry is live only if its slot still holds an update of that order and send count;
/// orders are unique among pending updates).
///
/// The updates live in a slab that bucket entries name by index, and a node's update is
/// found through `by_node` only when one is queued or removed. Picking a datagram's
/// gossip therefore reads one array entry per update instead of probing a hash map: at
/// 2,000 nodes the queue is cold in cache every time a datagram is built, and the map's
/// probe (its control bytes, then the entry) was a third of the time spent picking.
#[derive(Clone, Debug, Default)]
pub struct GossipQueue {
    slots: Vec<Option<Pending>>,
    /// Free slots, reused last-freed first.
    free: Vec<u32>,
    by_node: FxHashMap<NodeId, u32>,
    /// The addresses of pending updates too long to pack (see [`PackedAddr`]).
    long_addrs: FxHashMap<NodeId, Addr>,
    /// 8-byte keys `(order, slot)`: the buckets are most of the queue's memory when a mass
    /// join saturates it.
    by_sends: Vec<ByOrder>,
    /// Entries across all buckets, live and stale.
    bucket_entries: usize,
    cap: usize,
    next_order: u32,
    /// Updates dropped because the queue was full.
    pub evicted: u64,
}

impl GossipQueue {
    pub fn new(cap: usize) -> Self {
        GossipQueue {
            cap,
            ..Default::default()
        }
    }

    pub fn len(&self) -> usize {
        self.by_node.len()
    }
    pub fn is_empty(&self) -> bool {
        self.by_node.is_empty()
    }

    fn pending(&self, slot: u32) -> Option<&Pending> {
        self.slots.get(slot as usize).and_then(Option::as_ref)
    }

    fn live_updates(&self) -> impl Iterator<Item = (u32, &Pending)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.as_ref().map(|p| (i as u32, p)))
    }

    fn alloc(&mut self, p: Pending) -> u32 {
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some(p);
                slot
            }
            None => {
                self.slots.push(Some(p));
                (self.slots.len() - 1) as u32
            }
        };
        self.by_node.insert(p.node, slot);
        slot
    }

    /// Drop the update in `slot`; its bucket entries become stale.
    fn free_slot(&mut self, slot: u32) {
        if let Some(p) = self.slots[slot as usize].take() {
            self.by_node.remove(&p.node);
            if p.addr.is_spilled() {
                self.long_addrs.remove(&p.node);
            }
            self.free.push(slot);
        }
    }

    fn index(&mut self, sends: u8, order: u32, slot: u32) {
        let s = sends as usize;
        if self.by_sends.len() <= s {
            self.by_sends.resize_with(s + 1, ByOrder::default);
        }
        let grows = self.by_sends[s].len() == self.by_sends[s].capacity();
        self.by_sends[s].push((order, slot));
        self.bucket_entries += 1;
        // Bound what lazy deletion leaves behind: once stale entries outnumber live ones,
        // rebuild the buckets from the pending updates in right-sized allocations (a bucket
        // that grew during a mass join would otherwise keep its capacity for ever).
        // Capacity is bounded the same way: a mass join's wave of updates passes through
        // every send count's bucket in turn, and each bucket kept the capacity of the wave's
        // peak (17 MB in all at 1,000 nodes). Checked only when a bucket grows.
        if self.bucket_entries > 2 * self.len() + 64
            || (grows && self.bucket_capacity() > 2 * self.len() + 256)
        {
            self.compact_buckets();
        }
    }

    /// Bucket capacity in entries, across all buckets.
    fn bucket_capacity(&self) -> usize {
        self.by_sends.iter().map(ByOrder::capacity).sum()
    }

    /// Rebuild the buckets from the live updates (slots are left where they are).
    fn compact_buckets(&mut self) {
        let mut buckets: Vec<Vec<(u32, u32)>> = vec![Vec::new(); self.by_sends.len()];
        for (slot, p) in self.live_updates() {
            buckets[p.sends as usize].push((p.order, slot));
        }
        self.by_sends = buckets.into_iter().map(ByOrder::from_unsorted).collect();
        self.bucket_entries = self.len();
    }

    /// Give back what a drained or shrunken queue no longer needs: everything when it is
    /// empty; the slab, packed, once three quarters of it are free (a mass join's wave
    /// would otherwise keep its peak for ever). Never called while slots are held
    /// elsewhere (in `select`'s picks).
    fn release_memory(&mut self) {
        if self.is_empty() {
            if !self.slots.is_empty() || !self.by_sends.is_empty() {
                *self = GossipQueue {
                    cap: self.cap,
                    next_order: self.next_order,
                    evicted: self.evicted,
                    ..Default::default()
                };
            }
        } else if self.slots.len() > SLAB_KEEP && self.len() * 4 <= self.slots.len() {
            let live: Vec<Pending> = self.slots.iter().flatten().copied().collect();
            self.slots = live.into_iter().map(Some).collect();
            self.free = Vec::new();
            self.by_node = FxHashMap::default();
            self.by_node.reserve(self.slots.len());
            for (slot, p) in self.slots.iter().enumerate() {
                if let Some(p) = p {
                    self.by_node.insert(p.node, slot as u32);
                }
            }
            self.compact_buckets();
        }
    }

    /// Queue `claim` unless a pending update about the same node supersedes it: replaced by
    /// a higher incarnation, or the same incarnation and a higher rank, or (for suspicion
    /// confirmations) the same rank from a different accuser. `urgent` puts it first
    /// (our own refutation goes at the head of the queue). The claim's address and role
    /// must be the member table's (the caller's job): they are sent as they are.
    pub fn enqueue(&mut self, claim: Claim, limit: u32, now: Instant, urgent: bool) {
        let existing = self.by_node.get(&claim.node).copied();
        if let Some(old) = existing.and_then(|slot| self.pending(slot)) {
            let newer = claim.inc > old.inc
                || (claim.inc == old.inc && claim.kind.rank() > old.kind.rank())
                || (claim.inc == old.inc
                    && claim.kind.rank() == old.kind.rank()
                    && (claim.from != old.from || claim.kind != old.kind));
            if !newer {
                return;
            }
        } else if self.len() >= self.cap {
            self.make_room(now);
        }
        if self.next_order >= SEQ_LIMIT {
            self.renumber();
        }
        self.next_order += 1;
        let order = if urgent {
            URGENT | self.next_order
        } else {
            self.next_order
        };
        let addr = match PackedAddr::pack(&claim.addr) {
            Some(packed) => {
                if !self.long_addrs.is_empty() {
                    self.long_addrs.remove(&claim.node);
                }
                packed
            }
            None => {
                self.long_addrs.insert(claim.node, claim.addr);
                PackedAddr::SPILLED
            }
        };
        let p = Pending {
            node: claim.node,
            addr,
            role: claim.role,
            kind: claim.kind,
            sends: 0,
            limit: limit.clamp(1, u8::MAX as u32) as u8,
            inc: claim.inc,
            from: claim.from,
            enqueued_at: CompactInstant::new(now),
            order,
        };
        let slot = match existing {
            Some(slot) => {
                self.slots[slot as usize] = Some(p);
                slot
            }
            None => self.alloc(p),
        };
        self.index(0, order, slot);
    }

    /// Give the pending updates orders 1..=n in their current sequence (urgency kept),
    /// so the sequence never reaches the urgent bit; selection order is unchanged.
    fn renumber(&mut self) {
        let mut entries: Vec<(u32, u32)> = self
            .live_updates()
            .map(|(slot, p)| (p.order & SEQ_LIMIT, slot))
            .collect();
        entries.sort_unstable();
        for (i, (_, slot)) in entries.iter().enumerate() {
            let p = self.slots[*slot as usize]
                .as_mut()
                .expect("collected from the slab");
            p.order = (p.order & URGENT) | (i as u32 + 1);
        }
        self.next_order = entries.len() as u32;
        self.compact_buckets();
    }

    /// Full queue: drop stale (> 60 s) entries; if still full, evict the 10 oldest.
    fn make_room(&mut self, now: Instant) {
        let before = self.len();
        let stale: Vec<u32> = self
            .live_updates()
            .filter(|(_, p)| now.saturating_since(p.enqueued_at.get()) > secs(60))
            .map(|(slot, _)| slot)
            .collect();
        for slot in stale {
            self.free_slot(slot);
        }
        if self.len() >= self.cap {
            let mut orders: Vec<(u32, u32)> = self
                .live_updates()
                .map(|(slot, p)| (p.order, slot))
                .collect();
            orders.sort_unstable();
            for (_, slot) in orders.into_iter().take(10) {
                self.free_slot(slot);
            }
        }
        self.evicted += (before - self.len()) as u64;
    }

    /// A member's role became known or changed: so does the role its pending update
    /// will be sent with.
    pub fn set_role(&mut self, node: NodeId, role: Role) {
        if let Some(slot) = self.by_node.get(&node).copied() {
            if let Some(p) = self.slots[slot as usize].as_mut() {
                p.role = role;
            }
        }
    }

    /// Take up to `n` updates for one datagram: fewest sends first, newest first on ties.
    /// Each inclusion counts a send; an update is dropped when it reaches its limit.
    /// `skip` excludes updates about one node (e.g. the buddy claim already carried).
    pub fn select(&mut self, n: usize, skip: Option<NodeId>, out: &mut Vec<Claim>) {
        if n == 0 || self.is_empty() {
            return;
        }
        let mut picked: smallvec::SmallVec<[u32; 8]> = smallvec::SmallVec::new();
        let mut skipped: Option<(usize, (u32, u32))> = None;
        for s in 0..self.by_sends.len() {
            while picked.len() < n {
                let Some((order, slot)) = self.by_sends[s].pop_max() else {
                    break;
                };
                self.bucket_entries -= 1;
                let Some(p) = self.pending(slot) else {
                    continue;
                };
                if p.order != order || p.sends as usize != s {
                    continue;
                }
                if Some(p.node) == skip {
                    skipped = Some((s, (order, slot)));
                    continue;
                }
                picked.push(slot);
            }
            if picked.len() >= n {
                break;
            }
        }
        if let Some((s, entry)) = skipped {
            self.by_sends[s].push(entry);
            self.bucket_entries += 1;
        }
        for slot in picked {
            let p = self.slots[slot as usize]
                .as_mut()
                .expect("live entries exist");
            let addr = if p.addr.is_spilled() {
                self.long_addrs.get(&p.node).copied().unwrap_or_default()
            } else {
                p.addr.unpack()
            };
            out.push(Claim {
                kind: p.kind,
                node: p.node,
                addr,
                inc: p.inc,
                role: p.role,
                from: p.from,
            });
            p.sends += 1;
            if p.sends >= p.limit {
                self.free_slot(slot);
            } else {
                let (sends, order) = (p.sends, p.order);
                self.index(sends, order, slot);
            }
        }
        self.release_memory();
    }

    /// Forget a member's pending update (member removed from the table); its bucket
    /// entries become stale and are skipped.
    pub fn remove(&mut self, node: NodeId) {
        if let Some(slot) = self.by_node.get(&node).copied() {
            self.free_slot(slot);
            self.release_memory();
        }
    }
}

/// One send count's entries `(order, slot)`, kept sorted ascending in a ring buffer so
/// that the next pick is the last entry. It replaced a binary max-heap: at 2,000 nodes
/// every queue is cold in cache when a datagram is built, and each heap pop sifted down
/// through ~10 levels, most of them cache misses; picking gossip was a tenth of the run.
/// Here a pick reads one cache line. Inserts are expected at either end: a fresh update
/// has the newest order of all (send count 0), and the updates one select moves up a
/// send count arrive newest first, each older than the last, so they tend to be older
/// than everything already there. Anything else is a binary search and a shift of
/// the shorter side. The same entries come out in the same order as from the heap
/// (largest tuple first), so the selection, and every trace, is unchanged.
#[derive(Clone, Debug, Default)]
struct ByOrder {
    sorted: VecDeque<(u32, u32)>,
}

impl ByOrder {
    fn from_unsorted(mut entries: Vec<(u32, u32)>) -> Self {
        entries.sort_unstable();
        ByOrder {
            sorted: entries.into(),
        }
    }

    fn pop_max(&mut self) -> Option<(u32, u32)> {
        self.sorted.pop_back()
    }

    fn push(&mut self, entry: (u32, u32)) {
        match (self.sorted.front(), self.sorted.back()) {
            (_, None) => self.sorted.push_back(entry),
            (_, Some(&last)) if entry >= last => self.sorted.push_back(entry),
            (Some(&first), _) if entry <= first => self.sorted.push_front(entry),
            _ => {
                let at = self.sorted.partition_point(|e| *e < entry);
                self.sorted.insert(at, entry);
            }
        }
    }

    fn len(&self) -> usize {
        self.sorted.len()
    }

    fn capacity(&self) -> usize {
        self.sorted.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::{Addr, Role};

    fn claim(node: u32, kind: ClaimKind, inc: u32) -> Claim {
        Claim {
            kind,
            node: NodeId(node),
            addr: Addr::from_u32(node),
            inc: Incarnation(inc),
            role: Role::Worker,
            from: NodeId(0),
        }
    }

    #[test]
    fn retransmit_limits_match_spec() {
        assert_eq!(retransmit_limit(3.0, 3), 4);
        assert_eq!(retransmit_limit(3.0, 10), 7);
        assert_eq!(retransmit_limit(3.0, 100), 13);
        assert_eq!(retransmit_limit(3.0, 1000), 20);
        assert_eq!(retransmit_limit(3.0, 0), 1);
    }

    #[test]
    fn each_update_is_sent_at_most_its_limit() {
        let mut q = GossipQueue::new(100);
        q.enqueue(claim(1, ClaimKind::Alive, 1), 3, Instant::ZERO, false);
        let mut sent = 0;
        for _ in 0..10 {
            let mut out = Vec::new();
            q.select(5, None, &mut out);
            sent += out.len();
        }
        assert_eq!(sent, 3);
        assert!(q.is_empty());
    }

    /// IPv6 and a port (18 bytes) do not pack into an update: they wait in the overflow
    /// map, go out intact, and leave with their update (also when a shorter address
    /// replaces them).
    #[test]
    fn long_addresses_go_out_intact_and_leave_nothing_behind() {
        let v6 = Addr::new(&[
            0x20, 0x01, 0x0d, 0xb8, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x1f, 0x90,
        ])
        .unwrap();
        let mut q = GossipQueue::new(100);
        let long = |node: u32, inc: u32| Claim {
            addr: v6,
            ..claim(node, ClaimKind::Alive, inc)
        };
        q.enqueue(long(1, 1), 2, Instant::ZERO, false);
        q.enqueue(long(2, 1), 2, Instant::ZERO, false);
        q.enqueue(claim(3, ClaimKind::Alive, 1), 2, Instant::ZERO, false);
        assert_eq!(q.long_addrs.len(), 2);
        // Node 2's next update carries a short address: its long one is forgotten.
        q.enqueue(claim(2, ClaimKind::Alive, 2), 2, Instant::ZERO, false);
        assert_eq!(q.long_addrs.len(), 1);
        let mut out = Vec::new();
        q.select(5, None, &mut out);
        out.sort_by_key(|c| c.node);
        assert_eq!(
            out,
            vec![
                long(1, 1),
                claim(2, ClaimKind::Alive, 2),
                claim(3, ClaimKind::Alive, 1)
            ]
        );
        q.remove(NodeId(3));
        let mut out = Vec::new();
        q.select(5, None, &mut out);
        assert_eq!(out, vec![claim(2, ClaimKind::Alive, 2), long(1, 1)]);
        assert!(q.is_empty() && q.long_addrs.is_empty());
        // A long address whose update is removed before it is sent leaves too.
        q.enqueue(long(4, 1), 2, Instant::ZERO, false);
        q.enqueue(claim(5, ClaimKind::Alive, 1), 2, Instant::ZERO, false);
        q.remove(NodeId(4));
        assert!(q.long_addrs.is_empty());
    }

    /// A mass join fills every node's queue with one update per member: 36 bytes a
    /// slot (the address packed, the instant in 6 bytes; 48 with both whole).
    #[test]
    fn a_queued_update_is_36_bytes() {
        assert_eq!(core::mem::size_of::<Option<Pending>>(), 36);
    }

    #[test]
    fn higher_rank_or_incarnation_replaces_lower_does_not() {
        let mut q = GossipQueue::new(100);
        q.enqueue(claim(1, ClaimKind::Alive, 2), 5, Instant::ZERO, false);
        q.enqueue(claim(1, ClaimKind::Suspect, 1), 5, Instant::ZERO, false);
        let mut out = Vec::new();
        q.select(5, None, &mut out);
        assert_eq!(out, vec![claim(1, ClaimKind::Alive, 2)]);
        q.enqueue(claim(1, ClaimKind::Suspect, 2), 5, Instant::ZERO, false);
        let mut out = Vec::new();
        q.select(5, None, &mut out);
        assert_eq!(out, vec![claim(1, ClaimKind::Suspect, 2)]);
    }

    #[test]
    fn fewest_sends_first_then_newest() {
        let mut q = GossipQueue::new(100);
        for i in 1..=4 {
            q.enqueue(claim(i, ClaimKind::Alive, 1), 10, Instant::ZERO, false);
        }
        let mut out = Vec::new();
        q.select(2, None, &mut out);
        let nodes: Vec<u32> = out.iter().map(|c| c.node.0).collect();
        assert_eq!(nodes, vec![4, 3]);
        let mut out = Vec::new();
        q.select(2, None, &mut out);
        let nodes: Vec<u32> = out.iter().map(|c| c.node.0).collect();
        assert_eq!(nodes, vec![2, 1]);
        // Urgent goes first.
        q.enqueue(claim(9, ClaimKind::Alive, 1), 10, Instant::ZERO, true);
        q.enqueue(claim(8, ClaimKind::Alive, 1), 10, Instant::ZERO, false);
        let mut out = Vec::new();
        q.select(1, None, &mut out);
        assert_eq!(out[0].node, NodeId(9));
    }

    #[test]
    fn queue_is_bounded() {
        let mut q = GossipQueue::new(20);
        for i in 0..100 {
            q.enqueue(claim(i, ClaimKind::Alive, 1), 10, Instant::ZERO, false);
            assert!(q.len() <= 20);
        }
        assert!(q.evicted > 0);
    }
}

#[cfg(test)]
mod memory_tests {
    use super::*;
    use crate::id::{Addr, Role};

    /// An ALIVE claim a worker makes about itself.
    fn claim(n: u32, inc: u32) -> Claim {
        Claim {
            kind: ClaimKind::Alive,
            node: NodeId(n),
            addr: Addr::from_u32(n),
            inc: Incarnation(inc),
            role: Role::Worker,
            from: NodeId(n),
        }
    }

    #[test]
    fn bucket_entries_stay_bounded_and_an_empty_queue_holds_none() {
        let mut q = GossipQueue::new(1000);
        // Churn: many replacements leave stale bucket entries behind.
        for round in 0..200u32 {
            for n in 0..50 {
                q.enqueue(claim(n, round), 20, Instant::ZERO, false);
            }
            let mut out = Vec::new();
            q.select(5, None, &mut out);
            assert!(
                q.bucket_entries <= 2 * q.len() + 64 + 1,
                "{} entries for {}",
                q.bucket_entries,
                q.len()
            );
        }
        // Drain everything: the buckets are released.
        while !q.is_empty() {
            let mut out = Vec::new();
            q.select(5, None, &mut out);
        }
        assert!(q.by_sends.is_empty());
        assert_eq!(q.bucket_entries, 0);
    }

    /// A mass join: a wave of 1,000 updates passes through every send count's bucket
    /// in turn (all get their first send, then their second, ...). At most the two buckets
    /// the wave is passing between hold its capacity; unbounded, each of the 20 buckets
    /// kept the wave's peak (~20,000 entries, 160 KB a machine).
    #[test]
    fn a_wave_of_updates_leaves_no_capacity_behind_in_earlier_buckets() {
        let mut q = GossipQueue::new(2000);
        for n in 0..1000 {
            q.enqueue(claim(n, 1), 20, Instant::ZERO, false);
        }
        let mut rounds = 0;
        while !q.is_empty() {
            let mut out = Vec::new();
            q.select(5, None, &mut out);
            rounds += 1;
            assert!(
                q.bucket_capacity() <= 2 * 1024 + 256,
                "capacity {} for {} pending after {rounds} datagrams",
                q.bucket_capacity(),
                q.len()
            );
        }
        assert_eq!(rounds, 1000 * 20 / 5);
        assert_eq!(q.bucket_capacity(), 0);
    }

    /// The slab a wave filled is packed once three quarters of it are free, and a
    /// drained queue holds no slab, free list or index at all.
    #[test]
    fn the_slab_shrinks_with_the_queue_and_an_empty_queue_holds_nothing() {
        let mut q = GossipQueue::new(2000);
        for n in 0..1000 {
            q.enqueue(claim(n, 1), 20, Instant::ZERO, false);
        }
        assert_eq!(q.slots.len(), 1000);
        // The members behind 900 of them leave the table.
        for n in 0..900 {
            q.remove(NodeId(n));
        }
        assert_eq!(q.len(), 100);
        assert!(q.slots.len() <= 4 * 100, "slab of {}", q.slots.len());
        assert!(q.free.len() < q.slots.len());
        // What is left is still sent, newest first, each to its limit.
        let mut out = Vec::new();
        q.select(3, None, &mut out);
        let nodes: Vec<u32> = out.iter().map(|c| c.node.0).collect();
        assert_eq!(nodes, vec![999, 998, 997]);
        let mut sent = 3;
        while !q.is_empty() {
            let mut out = Vec::new();
            q.select(5, None, &mut out);
            sent += out.len();
        }
        assert_eq!(sent, 100 * 20);
        assert_eq!(
            (q.slots.capacity(), q.free.capacity(), q.by_node.capacity()),
            (0, 0, 0)
        );
    }
}

#[cfg(test)]
mod order_tests {
    use super::*;
    use crate::id::{Addr, Role};

    #[test]
    fn renumbering_near_the_limit_keeps_the_selection_order() {
        let claim = |n: u32| Claim {
            kind: ClaimKind::Alive,
            node: NodeId(n),
            addr: Addr::from_u32(n),
            inc: Incarnation(1),
            role: Role::Worker,
            from: NodeId(n),
        };
        let mut q = GossipQueue::new(100);
        q.next_order = SEQ_LIMIT - 3;
        for n in 1..=6 {
            q.enqueue(claim(n), 10, Instant::ZERO, n == 2);
        }
        assert!(
            q.next_order < 10,
            "renumbered instead of reaching the urgent bit"
        );
        let mut out = Vec::new();
        q.select(6, None, &mut out);
        let order: Vec<u32> = out.iter().map(|c| c.node.0).collect();
        // Urgent first, then newest first.
        assert_eq!(order, vec![2, 6, 5, 4, 3, 1]);
    }
}

#[cfg(test)]
mod role_tests {
    use super::*;
    use crate::id::Addr;
    use crate::id::Role;

    /// A pending update goes out with the role its member has when it is sent.
    #[test]
    fn a_role_learned_after_queueing_is_the_one_sent() {
        let mut q = GossipQueue::new(10);
        let c = Claim {
            kind: ClaimKind::Alive,
            node: NodeId(4),
            addr: Addr::from_u32(4),
            inc: Incarnation(1),
            role: Role::Unknown,
            from: NodeId(4),
        };
        q.enqueue(c, 5, Instant::ZERO, false);
        q.set_role(NodeId(4), Role::Gate);
        q.set_role(NodeId(5), Role::Manager); // nothing queued about 5: no effect
        let mut out = Vec::new();
        q.select(5, None, &mut out);
        assert_eq!(
            out,
            vec![Claim {
                role: Role::Gate,
                ..c
            }]
        );
        assert_eq!(q.len(), 1);
    }

    proptest::proptest! {
        /// `ByOrder` gives the entries a max-heap gives, in the same order (the queue's
        /// selection, and so every trace, was defined with a heap), whatever the mix of
        /// pushes and pops, duplicates, and inserts between its ends.
        #[test]
        fn by_order_pops_what_a_max_heap_pops(
            ops in proptest::collection::vec(proptest::option::of((0u32..64, 0u32..4)), 0..400)
        ) {
            let mut heap = std::collections::BinaryHeap::new();
            let mut ours = ByOrder::default();
            for op in ops {
                match op {
                    Some(entry) => {
                        heap.push(entry);
                        ours.push(entry);
                    }
                    None => proptest::prop_assert_eq!(ours.pop_max(), heap.pop()),
                }
                proptest::prop_assert_eq!(ours.len(), heap.len());
            }
            let rebuilt = ByOrder::from_unsorted(ours.sorted.iter().rev().copied().collect());
            proptest::prop_assert_eq!(&rebuilt.sorted, &ours.sorted);
            while let Some(e) = heap.pop() {
                proptest::prop_assert_eq!(ours.pop_max(), Some(e));
            }
            proptest::prop_assert_eq!(ours.pop_max(), None);
        }
    }
}
