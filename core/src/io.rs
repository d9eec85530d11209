//! What machines emit: transmissions (already encoded by `wire`) and typed events.

use crate::id::{Addr, ClusterId, Incarnation, NodeId, Role};
use crate::membership::confirmation::RemovalReason;
use crate::membership::lifeguard::DegradationLevel;
use crate::membership::Status;
use crate::time::Instant;
use crate::wire::{DecodeError, NackReason};
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// A datagram (UDP in the driver).
    Transmit {
        to: Addr,
        bytes: Vec<u8>,
    },
    /// A frame on the reliable channel (TCP in the driver).
    Frame {
        to: Addr,
        bytes: Vec<u8>,
    },
    Event(Event),
    /// An out-of-band probe or its answer (membership.md §9; `wire::oob`). `to` is the
    /// member's own address: the shell sends to its OOB endpoint (the driver: the same
    /// host, port + 100), or, for an answer, back where the probe came from.
    Oob {
        to: Addr,
        bytes: Vec<u8>,
    },
}

pub type Outputs = SmallVec<[Output; 4]>;

/// A member's entry as one node sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MemberView {
    pub status: Status,
    pub inc: Incarnation,
    pub confirmed: bool,
}

/// Everything observable. The simulator's checkers, trace and reports, and the driver's
/// logs and metrics all read these.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Event {
    /// A member's entry changed: `None` means absent (never known, forgotten or removed).
    /// Every table transition is reported, so an observer can mirror the table exactly.
    Member {
        cluster: ClusterId,
        node: NodeId,
        role: Role,
        from: Option<MemberView>,
        to: Option<MemberView>,
    },
    /// Our own incarnation changed (persist it before it is announced, membership.md §2).
    SelfIncarnation {
        cluster: ClusterId,
        inc: Incarnation,
    },
    /// A suspicion ran out; the `Member` event declaring the death follows.
    SuspicionExpired {
        cluster: ClusterId,
        node: NodeId,
        inc: Incarnation,
        started_at: Instant,
        earliest: Instant,
        confirmations: u32,
        /// When the last-chance probe whose silence ended the suspicion was sent (`None`
        /// with Lifeguard off): the verdict rests on evidence from that moment on.
        last_probe_at: Option<Instant>,
    },
    Lhm {
        cluster: ClusterId,
        score: u8,
    },
    /// Cluster leadership (leadership.md §1), from the node's election machine.
    Election(crate::leadership::ElectionEvent),
    /// The job plane (issue 4).
    Job(crate::jobs::JobEvent),
    /// Our Vivaldi coordinate after an update, sampled (at most one per
    /// `coord_event_interval`), so a node's coordinate can be plotted over time.
    Coordinate {
        cluster: ClusterId,
        coord: crate::coords::WireCoord,
        samples: u64,
    },
    Degradation {
        cluster: ClusterId,
        level: DegradationLevel,
    },
    /// An out-of-cycle confirmation ping to an unconfirmed gate or manager.
    ProactivePing {
        cluster: ClusterId,
        node: NodeId,
        role: Role,
        attempt: u8,
    },
    UnconfirmedRemoved {
        cluster: ClusterId,
        node: NodeId,
        role: Role,
        reason: RemovalReason,
        discovered_at: Instant,
    },
    UnconfirmedWarning {
        cluster: ClusterId,
        node: NodeId,
    },
    JoinRejected {
        cluster: ClusterId,
        reason: NackReason,
    },
    /// A datagram or frame that did not decode; counted and dropped.
    DecodeFailed {
        error: DecodeError,
    },
    /// The node's overload state changed (AD-18): what its load shedder now sheds.
    Overload {
        state: crate::backpressure::overload::OverloadState,
    },
    /// §9's job layer: what happened to `node`'s standing for `job` at this node. Never
    /// a change of its global status (those are `Member` events).
    JobSuspicion {
        cluster: ClusterId,
        job: crate::id::JobId,
        node: NodeId,
        change: crate::membership::job_suspicion::JobChange,
    },
    /// §9's out-of-band channel: the suspect `node` answered our OOB probe in time, so
    /// its process is there (`overloaded`: with a nack). `extended`: its suspicion got
    /// §9's one extension by `T_p` and a buddy SUSPECT went to it; false if the
    /// suspicion had ended meanwhile. Never a confirmation or a refutation. (New
    /// variants go last, so those before keep their trace encoding.)
    OobAnswer {
        cluster: ClusterId,
        node: NodeId,
        overloaded: bool,
        extended: bool,
    },
}
