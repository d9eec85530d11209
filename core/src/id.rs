//! Small typed identifiers shared by every plane.

use serde::{Deserialize, Serialize};

/// A node, unique in the whole deployment (all DCs). The simulator uses the node index.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub struct NodeId(pub u32);

/// A datacenter.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub struct DcId(pub u16);

/// A job, unique in the deployment (assigned by the gate that accepts it).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub struct JobId(pub u64);

/// AD-10's dispatch token (leadership.md §2.4, jobs.md §1): `(term << 32) | counter`,
/// `term` the issuing leader's cluster term, `counter` the job's 32-bit count, bumped by
/// every claim, takeover and dispatch and never reset. So a job's tokens strictly
/// increase, and every token issued under term N+1 outranks every term-N token, even
/// if the new leader lost the counter.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub struct FenceToken(pub u64);

impl FenceToken {
    pub const fn new(term: u32, counter: u32) -> FenceToken {
        FenceToken(((term as u64) << 32) | counter as u64)
    }
    pub const fn term(self) -> u32 {
        (self.0 >> 32) as u32
    }
    pub const fn counter(self) -> u32 {
        self.0 as u32
    }
}

/// The adaptive job timeout's fence (jobs.md §1, §4.2): bumped once each time a new
/// leader resumes tracking a job. A different counter from [`FenceToken`] (which orders
/// dispatches), so it is a different type: a gate's decision carries the fence it last
/// heard from the DC, and a manager refuses one below its own.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub struct TimeoutFence(pub u64);

/// A member's incarnation number (membership.md §2): only its owner increments it.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub struct Incarnation(pub u32);

impl Incarnation {
    /// Incarnations live in `0..=2^31-1`; exhausting them is fatal (membership.md §2).
    pub const MAX: Incarnation = Incarnation((1 << 31) - 1);
}

/// Which membership cluster a datagram belongs to (see `node` for who joins which).
/// `ClusterId::GATES` is the global gate cluster; `ClusterId::dc(d)` is DC `d`'s cluster
/// of managers and workers.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub struct ClusterId(pub u16);

impl ClusterId {
    pub const GATES: ClusterId = ClusterId(0);
    pub const fn dc(dc: DcId) -> ClusterId {
        ClusterId(dc.0 + 1)
    }
}

/// What a node is. Self-asserted and relayed verbatim, never guessed (membership.md §7).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub enum Role {
    Gate,
    Manager,
    Worker,
    #[default]
    Unknown,
}

/// A peer's transport address: opaque bytes that only the shell interprets (an IPv6
/// socket address fits). Inline and `Copy` so that carrying it costs no allocation.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Addr {
    len: u8,
    bytes: [u8; Addr::CAPACITY],
}

impl Addr {
    pub const CAPACITY: usize = 18;

    /// `None` if `bytes` is longer than [`Addr::CAPACITY`].
    pub fn new(bytes: &[u8]) -> Option<Addr> {
        if bytes.len() > Self::CAPACITY {
            return None;
        }
        let mut a = Addr {
            len: bytes.len() as u8,
            bytes: [0; Self::CAPACITY],
        };
        // A copy of a length known only at run time is a call to `memcpy`, made for every
        // address decoded (2,000 in each push-pull frame at 2,000 nodes). The lengths the
        // shells use get copies of a fixed length, which compile to a few moves: 4 (the
        // simulator), 6 (IPv4 and port), 18 (IPv6 and port).
        match bytes.len() {
            4 => a.bytes[..4].copy_from_slice(&bytes[..4]),
            6 => a.bytes[..6].copy_from_slice(&bytes[..6]),
            18 => a.bytes[..18].copy_from_slice(&bytes[..18]),
            n => a.bytes[..n].copy_from_slice(bytes),
        }
        Some(a)
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
    /// The simulator's addresses: a node index as 4 bytes.
    pub const fn from_u32(v: u32) -> Addr {
        let b = v.to_be_bytes();
        let mut bytes = [0; Self::CAPACITY];
        bytes[0] = b[0];
        bytes[1] = b[1];
        bytes[2] = b[2];
        bytes[3] = b[3];
        Addr { len: 4, bytes }
    }
    pub fn to_u32(&self) -> Option<u32> {
        Some(u32::from_be_bytes(self.as_bytes().try_into().ok()?))
    }
}

/// An address as a member record or a pending gossip update holds it, in 7 bytes: the
/// length, then up to 6 address bytes inline (the simulator's 4, IPv4 and a port's 6),
/// or a spilled mark for a longer address (IPv6 and a port is 18), which the holder
/// keeps in an overflow map by node. The full 19-byte [`Addr`] was 11 of a member
/// record's 48 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackedAddr([u8; 7]);

impl PackedAddr {
    const INLINE: usize = 6;
    const SPILLED_LEN: u8 = u8::MAX;
    /// The mark of an address kept elsewhere.
    pub(crate) const SPILLED: PackedAddr = PackedAddr([Self::SPILLED_LEN, 0, 0, 0, 0, 0, 0]);
    pub(crate) const UNSET: PackedAddr = PackedAddr([0; 7]);

    /// The packed form, or `None` if `addr` must go to the overflow map.
    pub(crate) fn pack(addr: &Addr) -> Option<PackedAddr> {
        let bytes = addr.as_bytes();
        if bytes.len() > Self::INLINE {
            return None;
        }
        let mut p = [0u8; 7];
        p[0] = bytes.len() as u8;
        p[1..1 + bytes.len()].copy_from_slice(bytes);
        Some(PackedAddr(p))
    }
    /// The packed bytes as a number (a key for maps of packed addresses).
    pub(crate) fn to_u64(self) -> u64 {
        let [a, b, c, d, e, f, g] = self.0;
        u64::from_le_bytes([a, b, c, d, e, f, g, 0])
    }
    /// Back from [`PackedAddr::to_u64`].
    pub(crate) fn from_u64(k: u64) -> PackedAddr {
        let [a, b, c, d, e, f, g, _] = k.to_le_bytes();
        PackedAddr([a, b, c, d, e, f, g])
    }
    pub(crate) fn is_spilled(self) -> bool {
        self.0[0] == Self::SPILLED_LEN
    }
    /// The inline address (only for a record that is not spilled).
    pub(crate) fn unpack(self) -> Addr {
        let len = (self.0[0] as usize).min(Self::INLINE);
        Addr::new(&self.0[1..1 + len]).expect("6 bytes fit an Addr")
    }
}

impl core::fmt::Debug for Addr {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Addr(")?;
        for b in self.as_bytes() {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

impl Serialize for Addr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.as_bytes())
    }
}

impl<'de> Deserialize<'de> for Addr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Addr, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Addr;
            fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                write!(f, "at most {} address bytes", Addr::CAPACITY)
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Addr, E> {
                Addr::new(v).ok_or_else(|| E::invalid_length(v.len(), &self))
            }
        }
        d.deserialize_bytes(V)
    }
}
