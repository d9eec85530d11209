//! The wire: one versioned envelope for every plane, encoded with postcard (serde).
//!
//! Every decode failure is a typed [`DecodeError`]; the machine counts it and drops the
//! datagram. Bounds: a datagram is at most [`MAX_DATAGRAM`] bytes, a stream frame at most
//! [`MAX_FRAME`], a datagram carries at most [`MAX_GOSSIP_PER_DATAGRAM`] gossip updates
//! and [`MAX_HEALTH_PER_DATAGRAM`] peer-health records (membership.md §5, §9, §10).

use crate::backpressure::overload::OverloadState;
use crate::coords::WireCoord;
use crate::id::{Addr, ClusterId, Incarnation, NodeId, Role};
use crate::jobs::JobMsg;
use crate::leadership::{ElectionMsg, GroupId};
use serde::{Deserialize, Serialize};

pub mod oob;
pub use oob::{OobFrame, OobKind};

/// Bumped on any incompatible change of [`Envelope`] or [`Body`]. 2: PING and ACK
/// carry peer-health records (`health`, membership.md §9).
pub const WIRE_VERSION: u8 = 2;
/// `MAX_UDP_PAYLOAD` (membership.md §5).
pub const MAX_DATAGRAM: usize = 1400;
/// A reliable-channel frame (push-pull state sync). 10,000 members fit many times over.
pub const MAX_FRAME: usize = 4 << 20;
/// Decode at most this many gossip updates per datagram (membership.md §5).
pub const MAX_GOSSIP_PER_DATAGRAM: usize = 100;
/// Decode at most this many peer-health records per datagram (a sender puts up to 5,
/// membership.md §10).
pub const MAX_HEALTH_PER_DATAGRAM: usize = 16;
/// A push-pull table never holds more members than a membership table may.
pub const MAX_SNAPSHOT_ENTRIES: usize = 10_000;

/// Sent by an observer (a gate health-checking another cluster's managers): the receiver
/// answers but never adds the sender to its membership.
pub const FLAG_OBSERVER: u8 = 0b1;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Always first on the wire, so a mismatch is detected before the body is parsed.
    pub version: u8,
    pub cluster: ClusterId,
    pub sender: NodeId,
    pub sender_addr: Addr,
    pub sender_inc: Incarnation,
    pub sender_role: Role,
    pub flags: u8,
    pub body: Body,
}

/// The kind of a membership claim; also a member's status in snapshots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ClaimKind {
    Alive,
    Join,
    Suspect,
    Dead,
    Left,
}

impl ClaimKind {
    /// Same-incarnation precedence (membership.md §5): alive=join 0, suspect 1, dead=leave 2.
    pub fn rank(self) -> u8 {
        match self {
            ClaimKind::Alive | ClaimKind::Join => 0,
            ClaimKind::Suspect => 1,
            ClaimKind::Dead | ClaimKind::Left => 2,
        }
    }
}

/// One gossiped membership claim about `node` (membership.md §5, §10). `from` is the
/// accuser of a SUSPECT/DEAD claim (used to count confirmations).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Claim {
    pub kind: ClaimKind,
    pub node: NodeId,
    pub addr: Addr,
    pub inc: Incarnation,
    pub role: Role,
    pub from: NodeId,
}

/// One peer-health record (membership.md §9): `node`'s own overload grade (AD-18), as
/// it announced it. Records of one node are ordered by `(inc, version)`: the node bumps
/// `version` on every announcement, so a higher pair is newer (the spec's timestamp,
/// without comparing clocks across nodes). The spec's `node_type` is the member's role,
/// already in the table; its capacity and throughput fields are left out: nothing in
/// membership reads them, and the job plane's heartbeats carry a manager's capacity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HealthClaim {
    pub node: NodeId,
    pub inc: Incarnation,
    pub version: u32,
    pub state: OverloadState,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NackReason {
    Timeout,
    Unknown,
    Busy,
    VersionRequired,
    VersionMismatch,
    ZombieRejected,
    Oversize,
    RateLimited,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Body {
    /// Direct probe. `buddy` is the Lifeguard buddy SUSPECT so a suspect refutes at once.
    /// `coord` is the sender's Vivaldi coordinate (AD-35), stored by the receiver.
    Ping {
        seq: u32,
        target: NodeId,
        buddy: Option<Claim>,
        gossip: Vec<Claim>,
        coord: Option<WireCoord>,
        /// Peer-health records (membership.md §9): the sender's own while it is not
        /// healthy, then others it relays. Empty in a healthy cluster (one byte).
        health: Vec<HealthClaim>,
    },
    /// `coord` is the responder's coordinate; the prober learns from the RTT.
    Ack {
        seq: u32,
        gossip: Vec<Claim>,
        coord: Option<WireCoord>,
        health: Vec<HealthClaim>,
    },
    PingReq {
        seq: u32,
        target: NodeId,
        target_addr: Addr,
        target_inc: Incarnation,
        want_nack: bool,
        gossip: Vec<Claim>,
    },
    IndirectAck {
        seq: u32,
        target: NodeId,
    },
    Nack {
        seq: u32,
        target: NodeId,
        reason: NackReason,
    },
    Join {
        protocol_major: u16,
        protocol_minor: u16,
    },
    JoinAck {
        accepted: bool,
        reason: Option<NackReason>,
        snapshot: Vec<Claim>,
    },
    Leave,
    /// Bare gossip: the answer to a datagram from a member we hold Dead/Left.
    Notice {
        gossip: Vec<Claim>,
    },
    /// Full-state anti-entropy, over the reliable channel only (a `Frame`).
    PushPull {
        reply: bool,
        entries: Vec<Claim>,
    },
    /// Cluster leader election (leadership.md §1.3): its own kind, naming the group; the
    /// node hands it to its election machine, never to membership.
    Election {
        group: GroupId,
        msg: ElectionMsg,
    },
    /// The job plane (issue 4), over the reliable channel only.
    Job(JobMsg),
    /// The first step of periodic anti-entropy (membership.md §4, refined here): the
    /// sender's [table digest](crate::membership::digest) instead of its whole
    /// table. An offer (`reply: false`) is answered with the receiver's own digest
    /// (`reply: true`); the offerer then starts the full `PushPull` exchange only if the
    /// two differ. Offered only with `membership::Config::sync_digests` on (always
    /// answered). Over the reliable channel only. Appended last, so every earlier kind
    /// keeps its encoding.
    SyncDigest {
        reply: bool,
        digest: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
pub enum DecodeError {
    #[error("empty input")]
    Empty,
    #[error("{len} bytes exceed the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("unsupported wire version {0}")]
    UnsupportedVersion(u8),
    #[error("malformed message")]
    Malformed,
    #[error("{0} trailing bytes after the message")]
    TrailingBytes(usize),
    #[error("{count} entries exceed the limit of {max}")]
    TooManyEntries { count: usize, max: usize },
    #[error("stream-only message in a datagram, or a datagram message in a frame")]
    WrongChannel,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("encoded message of {len} bytes exceeds {max}")]
    TooLarge { len: usize, max: usize },
    #[error("serialization failed")]
    Serialize,
}

/// Which transport a message travels on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    Datagram,
    Frame,
}

impl Channel {
    fn max(self) -> usize {
        match self {
            Channel::Datagram => MAX_DATAGRAM,
            Channel::Frame => MAX_FRAME,
        }
    }
}

impl Body {
    fn channel(&self) -> Channel {
        match self {
            Body::PushPull { .. } | Body::Job(_) | Body::SyncDigest { .. } => Channel::Frame,
            _ => Channel::Datagram,
        }
    }

    fn entry_count(&self) -> (usize, usize) {
        match self {
            Body::Ping { health, .. } | Body::Ack { health, .. }
                if health.len() > MAX_HEALTH_PER_DATAGRAM =>
            {
                (health.len(), MAX_HEALTH_PER_DATAGRAM)
            }
            Body::Ping { gossip, buddy, .. } => (
                gossip.len() + buddy.is_some() as usize,
                MAX_GOSSIP_PER_DATAGRAM,
            ),
            Body::Ack { gossip, .. } | Body::PingReq { gossip, .. } | Body::Notice { gossip } => {
                (gossip.len(), MAX_GOSSIP_PER_DATAGRAM)
            }
            Body::JoinAck { snapshot, .. } => (snapshot.len(), MAX_GOSSIP_PER_DATAGRAM),
            Body::PushPull { entries, .. } => (entries.len(), MAX_SNAPSHOT_ENTRIES),
            _ => (0, usize::MAX),
        }
    }
}

/// postcard's output flavor for our messages: the same bytes as its `Vec` flavors, but
/// the short pieces postcard hands over (a varint is 1-5 bytes, our addresses 4-18) are
/// appended with copies of a fixed length, which compile to a few moves.
///
/// The `Vec` flavors copy every piece with `extend_from_slice` of a run-time length, a
/// call to `memcpy`: several calls a claim, and at 2,000 nodes a push-pull frame is
/// 2,000 claims. `memcpy` was 9% of a 2,000-node run's instructions, most of it these
/// calls and the decoder's copies of addresses (`Addr::new`).
struct ShortPieces(Vec<u8>);

impl postcard::ser_flavors::Flavor for ShortPieces {
    type Output = Vec<u8>;

    #[inline(always)]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        match data.len() {
            1 => self.0.push(data[0]),
            2 => self.0.extend_from_slice(&data[..2]),
            3 => self.0.extend_from_slice(&data[..3]),
            4 => self.0.extend_from_slice(&data[..4]),
            5 => self.0.extend_from_slice(&data[..5]),
            _ => self.0.extend_from_slice(data),
        }
        Ok(())
    }

    #[inline(always)]
    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.push(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<Vec<u8>> {
        Ok(self.0)
    }
}

fn serialize_into(env: &Envelope, buf: Vec<u8>) -> Result<Vec<u8>, EncodeError> {
    postcard::serialize_with_flavor(env, ShortPieces(buf)).map_err(|_| EncodeError::Serialize)
}

/// Encode `env` for `channel`; fails (never truncates) if it would exceed the channel's limit.
pub fn encode(env: &Envelope, channel: Channel) -> Result<Vec<u8>, EncodeError> {
    // A claim encodes to ~12 bytes with the simulator's addresses, ~26 with IPv6 ones:
    // room for 16 each spares a push-pull frame a dozen doublings of its buffer (each a
    // copy of everything so far) at most one.
    let (entries, _) = env.body.entry_count();
    let guess = (64 + entries.saturating_mul(16)).min(channel.max());
    let bytes = serialize_into(env, Vec::with_capacity(guess))?;
    if bytes.len() > channel.max() {
        return Err(EncodeError::TooLarge {
            len: bytes.len(),
            max: channel.max(),
        });
    }
    Ok(bytes)
}

/// Encode a datagram into a right-sized buffer (membership messages are mostly under
/// 128 bytes): one allocation, no zero-filling of a 1400-byte scratch buffer.
pub fn encode_datagram(env: &Envelope) -> Result<Vec<u8>, EncodeError> {
    let bytes = serialize_into(env, Vec::with_capacity(128))?;
    if bytes.len() > MAX_DATAGRAM {
        return Err(EncodeError::TooLarge {
            len: bytes.len(),
            max: MAX_DATAGRAM,
        });
    }
    Ok(bytes)
}

/// Encoded size without allocating the output.
pub fn encoded_len(env: &Envelope) -> usize {
    postcard::experimental::serialized_size(env).unwrap_or(usize::MAX)
}

/// Exactly one `T` in `bytes`: malformed input and trailing bytes are typed errors.
#[inline]
pub(crate) fn take_whole<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, DecodeError> {
    let (value, rest): (T, &[u8]) =
        postcard::take_from_bytes(bytes).map_err(|_| DecodeError::Malformed)?;
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes(rest.len()));
    }
    Ok(value)
}

/// Decode one message that arrived on `channel`. Never panics on any input.
pub fn decode(bytes: &[u8], channel: Channel) -> Result<Envelope, DecodeError> {
    let first = *bytes.first().ok_or(DecodeError::Empty)?;
    if bytes.len() > channel.max() {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            max: channel.max(),
        });
    }
    if first != WIRE_VERSION {
        return Err(DecodeError::UnsupportedVersion(first));
    }
    let env: Envelope = take_whole(bytes)?;
    if env.body.channel() != channel {
        return Err(DecodeError::WrongChannel);
    }
    let (count, max) = env.body.entry_count();
    if count > max {
        return Err(DecodeError::TooManyEntries { count, max });
    }
    Ok(env)
}

#[cfg(test)]
pub(crate) mod tests;
