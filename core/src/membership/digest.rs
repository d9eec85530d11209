//! Table digests for digest-first anti-entropy (membership.md §4, refined here).
//!
//! §4's push-pull swaps whole tables every 30 s (scaled up with the cluster's size, as
//! memberlist does). In a settled cluster both tables are the same, and the exchange
//! costs a frame of `N` claims each way for nothing: in the simulator's settled
//! 1,000-node cluster, two fifths of all bytes sent. With `Config::sync_digests` on, a
//! periodic sync starts with [`Body::SyncDigest`](crate::wire::Body::SyncDigest): each
//! side's digest of the table it would send, and the full exchange follows only when the
//! digests differ. A node answers an offer whatever its own setting. Push-pulls that
//! exist because tables are known to differ (the one after a join, a reconnect to a
//! member held dead, an observer's first pull) stay full.
//!
//! The digest is order-independent (the sum of one hash per claim) and covers exactly
//! what merging the other side's full table could change: node, kind, incarnation,
//! role, address, and the accuser of a SUSPECT claim (a different accuser is a Lifeguard
//! confirmation). It leaves out the accuser of DEAD and LEFT claims: a DEAD claim is
//! merged as the sender's suspicion, which never changes a member held dead or
//! suspected at the same incarnation, and a LEFT claim names its subject as accuser.

use crate::wire::{Claim, ClaimKind};
use xxhash_rust::xxh3::xxh3_64;

/// One claim's contribution to a table digest.
pub fn claim_digest(c: &Claim) -> u64 {
    // node 4, inc 4, kind 1, role 1, accuser 4, address length 1, address <= 18.
    let mut buf = [0u8; 15 + crate::id::Addr::CAPACITY];
    buf[0..4].copy_from_slice(&c.node.0.to_le_bytes());
    buf[4..8].copy_from_slice(&c.inc.0.to_le_bytes());
    buf[8] = match c.kind {
        // A table never lists JOIN, but the two merge alike.
        ClaimKind::Alive | ClaimKind::Join => 0,
        ClaimKind::Suspect => 1,
        ClaimKind::Dead => 2,
        ClaimKind::Left => 3,
    };
    buf[9] = c.role as u8;
    if c.kind == ClaimKind::Suspect {
        buf[10..14].copy_from_slice(&c.from.0.to_le_bytes());
    }
    let addr = c.addr.as_bytes();
    buf[14] = addr.len() as u8;
    buf[15..15 + addr.len()].copy_from_slice(addr);
    xxh3_64(&buf[..15 + addr.len()])
}

/// The digest of a set of claims, whatever their order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableDigest {
    sum: u64,
    count: u64,
}

impl TableDigest {
    pub fn add(&mut self, c: &Claim) {
        self.sum = self.sum.wrapping_add(claim_digest(c));
        self.count += 1;
    }

    /// The value sent on the wire.
    pub fn value(&self) -> u64 {
        let mut buf = [0u8; 16];
        buf[..8].copy_from_slice(&self.sum.to_le_bytes());
        buf[8..].copy_from_slice(&self.count.to_le_bytes());
        xxh3_64(&buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::{Addr, Incarnation, NodeId, Role};
    use proptest::prelude::*;

    fn claim(node: u32, kind: ClaimKind, inc: u32, from: u32) -> Claim {
        Claim {
            kind,
            node: NodeId(node),
            addr: Addr::new(&node.to_le_bytes()).unwrap(),
            inc: Incarnation(inc),
            role: Role::Worker,
            from: NodeId(from),
        }
    }

    fn digest(claims: &[Claim]) -> u64 {
        let mut d = TableDigest::default();
        claims.iter().for_each(|c| d.add(c));
        d.value()
    }

    #[test]
    fn what_a_merge_could_change_changes_the_digest() {
        let base = [
            claim(1, ClaimKind::Alive, 0, 1),
            claim(2, ClaimKind::Suspect, 3, 7),
            claim(3, ClaimKind::Dead, 1, 9),
        ];
        let d = digest(&base);
        let mut changed = base;
        changed[0].inc = Incarnation(1);
        assert_ne!(digest(&changed), d, "incarnation");
        let mut changed = base;
        changed[0].kind = ClaimKind::Suspect;
        assert_ne!(digest(&changed), d, "kind");
        let mut changed = base;
        changed[0].role = Role::Manager;
        assert_ne!(digest(&changed), d, "role");
        let mut changed = base;
        changed[0].addr = Addr::new(&[9, 9, 9, 9, 9, 9]).unwrap();
        assert_ne!(digest(&changed), d, "address");
        let mut changed = base;
        changed[1].from = NodeId(8);
        assert_ne!(digest(&changed), d, "a suspicion's accuser");
        assert_ne!(digest(&base[..2]), d, "a member missing");
    }

    #[test]
    fn who_declared_a_death_is_not_part_of_the_digest() {
        let mine = [claim(3, ClaimKind::Dead, 1, 100)];
        let theirs = [claim(3, ClaimKind::Dead, 1, 200)];
        assert_eq!(digest(&mine), digest(&theirs));
        // JOIN and ALIVE merge alike.
        assert_eq!(
            digest(&[claim(4, ClaimKind::Join, 2, 4)]),
            digest(&[claim(4, ClaimKind::Alive, 2, 4)])
        );
    }

    proptest! {
        #[test]
        fn the_digest_ignores_order(
            nodes in proptest::collection::hash_set(0u32..10_000, 0..60),
            incs in proptest::collection::vec(0u32..5, 60),
            rotate in 0usize..60,
        ) {
            let mut claims: Vec<Claim> = nodes
                .iter()
                .zip(&incs)
                .map(|(n, i)| claim(*n, ClaimKind::Alive, *i, *n))
                .collect();
            let d = digest(&claims);
            if !claims.is_empty() {
                let k = rotate % claims.len();
                claims.rotate_left(k);
                claims.reverse();
            }
            prop_assert_eq!(digest(&claims), d);
        }
    }
}
