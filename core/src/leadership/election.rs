//! Cluster leader election (AD-3/5/13, leadership.md §1): one leader per manager DC and
//! one for the gate cluster, Raft-shaped with pre-vote, terms and leases, over the
//! *configured* voter set (never over whatever SWIM happens to know).
//!
//! The fixes over the Python original (leadership.md §1.4 "Fix"): quorum = ⌊N/2⌋+1 of
//! the configured voters; a failed pre-vote retries after a random delay; a higher term
//! deposes a leader or candidate; heartbeats are compared with the current term; a leader
//! steps down when it has not heard a majority for one lease (check-quorum). Check-quorum
//! needs followers to answer, so a follower acknowledges each heartbeat (`HeartbeatAck`,
//! a message the spec's table does not list; Raft's AppendEntries replies play the role).

use crate::id::NodeId;
use crate::rng::DetRng;
use crate::time::{millis, secs, Instant};
use core::time::Duration;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Which election: a DC's managers or the gates. Messages of other groups are dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct GroupId(pub u32);

/// Constants of leadership.md §1.2 (the Env defaults).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ElectionConfig {
    pub heartbeat: Duration,
    pub lease: Duration,
    /// How long a pre-vote collects answers.
    pub pre_vote: Duration,
    /// Vote window `vote_window + U[0, vote_window_jitter)`.
    pub vote_window: Duration,
    pub vote_window_jitter: Duration,
    /// A failed pre-vote retries after `U[0, pre_vote_retry_jitter)` (the spec's fix
    /// names no value: the vote window's jitter, 2 s, is used).
    pub pre_vote_retry_jitter: Duration,
    /// The first election waits until every configured voter is visible, at most this
    /// long, then `U[0, first_election_jitter)`.
    pub first_election_max_wait: Duration,
    pub first_election_jitter: Duration,
    /// Followers poll at most this often while a lease is valid.
    pub follower_poll: Duration,
    /// LHM above this: not eligible; a leader steps down.
    pub max_lhm: u8,
    /// Flapping: leader changes counted over this window...
    pub flap_window: Duration,
    /// ...warn at this many, raise the cooldown x1.5 at `flap_raise`, set it to the cap
    /// at `flap_max`, and relax it (/1.5) below `flap_warn`.
    pub flap_warn: usize,
    pub flap_raise: usize,
    pub flap_max: usize,
    pub cooldown_min: Duration,
    pub cooldown_max: Duration,
}

impl Default for ElectionConfig {
    fn default() -> Self {
        ElectionConfig {
            heartbeat: secs(2),
            lease: secs(5),
            pre_vote: secs(2),
            vote_window: secs(5),
            vote_window_jitter: secs(2),
            pre_vote_retry_jitter: secs(2),
            first_election_max_wait: secs(10),
            first_election_jitter: secs(3),
            follower_poll: secs(2),
            max_lhm: 4,
            flap_window: secs(60),
            flap_warn: 3,
            flap_raise: 5,
            flap_max: 10,
            cooldown_min: secs(5),
            cooldown_max: secs(60),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ElectionRole {
    Follower,
    PreCandidate,
    Candidate,
    Leader,
}

/// Election messages (leadership.md §1.3), carried in their own envelope kind with the
/// group and the sender's `NodeId`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ElectionMsg {
    /// `term` = the candidate's current term + 1; nothing changes at the receiver.
    PreVoteReq {
        term: u64,
        lhm: u8,
    },
    PreVoteResp {
        term: u64,
        granted: bool,
    },
    LeaderClaim {
        term: u64,
        lhm: u8,
    },
    LeaderVote {
        term: u64,
        granted: bool,
    },
    LeaderElected {
        term: u64,
    },
    Heartbeat {
        term: u64,
    },
    HeartbeatAck {
        term: u64,
    },
    StepDown {
        term: u64,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StepDownReason {
    /// LHM above the maximum, or degraded to HEAVY or worse.
    Unhealthy,
    /// No majority heard for one lease (check-quorum).
    LostQuorum,
    /// Another leader with a higher term, or the same term and a lower id.
    SplitBrain,
    /// A higher term deposed us.
    HigherTerm,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ElectionEvent {
    /// Persist `(term, voted_for)` before the message that follows is sent.
    Persist {
        term: u64,
        voted_for: Option<NodeId>,
    },
    LeaderElected {
        group: GroupId,
        term: u64,
        node: NodeId,
    },
    SteppedDown {
        group: GroupId,
        term: u64,
        reason: StepDownReason,
    },
    /// Whom this node follows changed (`None`: nobody).
    LeaderChanged {
        group: GroupId,
        term: u64,
        leader: Option<NodeId>,
    },
    SplitBrainDetected {
        group: GroupId,
        term: u64,
        other: NodeId,
    },
    /// Leader changes within the flap window reached a warning level.
    Flapping {
        group: GroupId,
        changes: u32,
        cooldown_ms: u64,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElectionInput {
    Tick,
    Message {
        from: NodeId,
        group: GroupId,
        msg: ElectionMsg,
    },
    /// SWIM's view of a voter (only used to start the first election once all are seen).
    PeerVisible {
        node: NodeId,
        visible: bool,
    },
    /// Local health: LHM 0..=8, and the degradation's leadership verdicts
    /// (membership.md §6.2: MODERATE refuses new leadership, HEAVY+ steps down).
    Health {
        lhm: u8,
        refuse_new: bool,
        step_down: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElectionOutput {
    /// To every other voter of the group.
    Broadcast(ElectionMsg),
    Send {
        to: NodeId,
        msg: ElectionMsg,
    },
    Event(ElectionEvent),
}

pub type ElectionOutputs = SmallVec<[ElectionOutput; 4]>;

/// One node's view of one group's election.
#[derive(Clone, Debug)]
pub struct Election {
    cfg: ElectionConfig,
    group: GroupId,
    me: NodeId,
    voters: BTreeSet<NodeId>,
    rng: DetRng,
    role: ElectionRole,
    term: u64,
    voted_for: Option<NodeId>,
    leader: Option<NodeId>,
    leader_term: u64,
    lease_until: Option<Instant>,
    votes: BTreeSet<NodeId>,
    pre_votes: BTreeSet<NodeId>,
    pre_vote_term: u64,
    /// The highest term this node has started.
    fencing_token: u64,
    lhm: u8,
    refuse_new: bool,
    /// When each voter was last heard (check-quorum; leaders only).
    heard: BTreeMap<NodeId, Instant>,
    visible: BTreeSet<NodeId>,
    started_at: Instant,
    first_election_scheduled: bool,
    changes: VecDeque<Instant>,
    cooldown: Duration,
    cooldown_until: Option<Instant>,
    deadline: Option<Instant>,
    next_heartbeat: Option<Instant>,
    leader_since: Instant,
}

impl Election {
    /// `voters` is the configured group; `me` is added. `persisted` is the `(term,
    /// voted_for)` this node stored before it last voted (zero for a fresh node).
    pub fn new(
        cfg: ElectionConfig,
        group: GroupId,
        me: NodeId,
        voters: impl IntoIterator<Item = NodeId>,
        persisted: (u64, Option<NodeId>),
        seed: u64,
        now: Instant,
    ) -> Election {
        let mut voters: BTreeSet<NodeId> = voters.into_iter().collect();
        voters.insert(me);
        let cooldown = cfg.cooldown_min;
        let mut e = Election {
            deadline: Some(now + cfg.first_election_max_wait),
            cfg,
            group,
            me,
            voters,
            rng: DetRng::new(seed),
            role: ElectionRole::Follower,
            term: persisted.0,
            voted_for: persisted.1,
            leader: None,
            leader_term: 0,
            lease_until: None,
            votes: BTreeSet::new(),
            pre_votes: BTreeSet::new(),
            pre_vote_term: 0,
            fencing_token: persisted.0,
            lhm: 0,
            refuse_new: false,
            heard: BTreeMap::new(),
            visible: BTreeSet::new(),
            started_at: now,
            first_election_scheduled: false,
            changes: VecDeque::new(),
            cooldown,
            cooldown_until: None,
            next_heartbeat: None,
            leader_since: now,
        };
        e.visible.insert(me);
        e.maybe_schedule_first_election(now);
        e
    }

    /// ⌊N/2⌋+1 of the configured voters.
    pub fn quorum(&self) -> usize {
        self.voters.len() / 2 + 1
    }
    pub fn role(&self) -> ElectionRole {
        self.role
    }
    /// How long a leader goes without hearing a majority before it steps down.
    pub fn lease(&self) -> core::time::Duration {
        self.cfg.lease
    }

    pub fn term(&self) -> u64 {
        self.term
    }
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }
    /// The reported token: our term if leading, else the leader's term.
    pub fn token(&self) -> u64 {
        if self.role == ElectionRole::Leader {
            self.term
        } else {
            self.leader_term
        }
    }
    pub fn fencing_token(&self) -> u64 {
        self.fencing_token
    }
    pub fn cooldown(&self) -> Duration {
        self.cooldown
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        match (self.deadline, self.next_heartbeat) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn step(&mut self, input: ElectionInput, now: Instant) -> ElectionOutputs {
        let mut out = ElectionOutputs::new();
        match input {
            ElectionInput::Tick => self.tick(now, &mut out),
            ElectionInput::Message { from, group, msg } => {
                if group == self.group && from != self.me && self.voters.contains(&from) {
                    self.on_message(from, msg, now, &mut out);
                }
            }
            ElectionInput::PeerVisible { node, visible } => {
                if self.voters.contains(&node) {
                    if visible {
                        self.visible.insert(node);
                    } else if node != self.me {
                        self.visible.remove(&node);
                    }
                    self.maybe_schedule_first_election(now);
                }
            }
            ElectionInput::Health {
                lhm,
                refuse_new,
                step_down,
            } => {
                self.lhm = lhm;
                self.refuse_new = refuse_new;
                if self.role == ElectionRole::Leader && (lhm > self.cfg.max_lhm || step_down) {
                    self.step_down(StepDownReason::Unhealthy, now, &mut out);
                }
            }
        }
        out
    }

    /// Whether this voter may stand and vote now (healthy enough, not refusing new
    /// work): a group elects only with a majority of such voters.
    pub fn eligible(&self) -> bool {
        self.lhm <= self.cfg.max_lhm && !self.refuse_new
    }

    fn lease_valid(&self, now: Instant) -> bool {
        self.leader.is_some() && self.lease_until.is_some_and(|t| now < t)
    }

    fn jitter(&mut self, max: Duration) -> Duration {
        Duration::from_micros(self.rng.range_u64(0, max.as_micros().max(1) as u64))
    }

    /// The first election starts once every configured voter is visible (or after
    /// `first_election_max_wait`), plus `U[0, first_election_jitter)`.
    fn maybe_schedule_first_election(&mut self, now: Instant) {
        if self.first_election_scheduled || self.leader.is_some() {
            return;
        }
        let all = self.voters.iter().all(|v| self.visible.contains(v));
        let waited = now >= self.started_at + self.cfg.first_election_max_wait;
        if all || waited {
            self.first_election_scheduled = true;
            let j = self.jitter(self.cfg.first_election_jitter);
            self.deadline = Some(now + j);
        }
    }

    fn tick(&mut self, now: Instant, out: &mut ElectionOutputs) {
        if self.role == ElectionRole::Leader && self.next_heartbeat.is_some_and(|t| t <= now) {
            self.leader_heartbeat(now, out);
        }
        if self.deadline.is_some_and(|t| t <= now) {
            self.deadline = None;
            match self.role {
                ElectionRole::Leader => {}
                ElectionRole::PreCandidate => self.pre_vote_deadline(now, out),
                ElectionRole::Candidate => self.start_pre_vote(now, out), // vote window over
                ElectionRole::Follower => {
                    if self.first_election_scheduled {
                        self.follower_wake(now, out);
                    } else {
                        self.maybe_schedule_first_election(now);
                    }
                }
            }
        }
    }

    /// A follower's poll: with a valid lease, sleep again; without, try to lead.
    fn follower_wake(&mut self, now: Instant, out: &mut ElectionOutputs) {
        if self.lease_valid(now) {
            self.poll_later(now);
            return;
        }
        if self.leader.is_some() {
            // The lease ran out: the leader is presumed gone.
            self.set_leader(None, self.term, now, out);
        }
        self.start_pre_vote(now, out);
    }

    fn poll_later(&mut self, now: Instant) {
        let left = self
            .lease_until
            .map_or(Duration::ZERO, |t| t.saturating_since(now));
        let wait = (left + millis(500)).min(self.cfg.follower_poll);
        self.deadline = Some(now + wait);
    }

    /// Step 2: become PreCandidate, if eligible and not cooling down.
    fn start_pre_vote(&mut self, now: Instant, out: &mut ElectionOutputs) {
        self.role = ElectionRole::Follower;
        if self.lease_valid(now) {
            self.poll_later(now);
            return;
        }
        if let Some(until) = self.cooldown_until.filter(|t| now < *t) {
            self.deadline = Some(until);
            return;
        }
        if !self.eligible() {
            self.deadline = Some(now + self.cfg.follower_poll);
            return;
        }
        self.role = ElectionRole::PreCandidate;
        self.pre_vote_term = self.term + 1;
        self.pre_votes.clear();
        self.pre_votes.insert(self.me);
        out.push(ElectionOutput::Broadcast(ElectionMsg::PreVoteReq {
            term: self.pre_vote_term,
            lhm: self.lhm,
        }));
        self.deadline = Some(now + self.cfg.pre_vote);
    }

    /// Step 3.
    fn pre_vote_deadline(&mut self, now: Instant, out: &mut ElectionOutputs) {
        if self.lease_valid(now) || self.term >= self.pre_vote_term {
            self.role = ElectionRole::Follower;
            self.poll_later(now);
            return;
        }
        if self.pre_votes.len() >= self.quorum() && self.eligible() {
            self.become_candidate(now, out);
        } else {
            self.role = ElectionRole::Follower;
            let j = self.jitter(self.cfg.pre_vote_retry_jitter);
            self.deadline = Some(now + j);
        }
    }

    /// Step 4.
    fn become_candidate(&mut self, now: Instant, out: &mut ElectionOutputs) {
        self.role = ElectionRole::Candidate;
        self.term += 1;
        self.voted_for = Some(self.me);
        self.fencing_token = self.fencing_token.max(self.term);
        self.votes.clear();
        self.votes.insert(self.me);
        out.push(ElectionOutput::Event(ElectionEvent::Persist {
            term: self.term,
            voted_for: self.voted_for,
        }));
        out.push(ElectionOutput::Broadcast(ElectionMsg::LeaderClaim {
            term: self.term,
            lhm: self.lhm,
        }));
        // While flapping the window is `max(5 s, cooldown)` (leadership.md §1.2), and it
        // keeps its jitter on top: stretched without it, the window was the bare
        // cooldown, the same on every node, and two voters that once stood together
        // split the vote in lockstep for ever (found by the simulator's random faults).
        let base = if self.flapping(now) {
            self.cfg.vote_window.max(self.cooldown)
        } else {
            self.cfg.vote_window
        };
        let window = base + self.jitter(self.cfg.vote_window_jitter);
        self.deadline = Some(now + window);
        if self.votes.len() >= self.quorum() {
            self.become_leader(now, out); // a group of one
        }
    }

    /// Step 5.
    fn become_leader(&mut self, now: Instant, out: &mut ElectionOutputs) {
        self.role = ElectionRole::Leader;
        self.leader_since = now;
        self.deadline = None;
        self.heard.clear();
        for v in &self.votes {
            self.heard.insert(*v, now);
        }
        self.set_leader(Some(self.me), self.term, now, out);
        out.push(ElectionOutput::Event(ElectionEvent::LeaderElected {
            group: self.group,
            term: self.term,
            node: self.me,
        }));
        out.push(ElectionOutput::Broadcast(ElectionMsg::LeaderElected {
            term: self.term,
        }));
        self.lease_until = Some(now + self.cfg.lease);
        self.next_heartbeat = Some(now + self.cfg.heartbeat);
    }

    /// Every heartbeat: check-quorum, then send (each sent heartbeat renews the lease).
    fn leader_heartbeat(&mut self, now: Instant, out: &mut ElectionOutputs) {
        self.heard.insert(self.me, now);
        let lease = self.cfg.lease;
        let recent = self
            .voters
            .iter()
            .filter(|v| {
                self.heard
                    .get(v)
                    .is_some_and(|t| now.saturating_since(*t) < lease)
            })
            .count();
        let leading_for = now.saturating_since(self.leader_since);
        if recent < self.quorum() && leading_for >= lease {
            self.step_down(StepDownReason::LostQuorum, now, out);
            return;
        }
        out.push(ElectionOutput::Broadcast(ElectionMsg::Heartbeat {
            term: self.term,
        }));
        self.lease_until = Some(now + self.cfg.lease);
        self.next_heartbeat = Some(now + self.cfg.heartbeat);
    }

    fn step_down(&mut self, reason: StepDownReason, now: Instant, out: &mut ElectionOutputs) {
        let was_leader = self.role == ElectionRole::Leader;
        self.role = ElectionRole::Follower;
        self.next_heartbeat = None;
        self.votes.clear();
        self.pre_votes.clear();
        if was_leader {
            out.push(ElectionOutput::Event(ElectionEvent::SteppedDown {
                group: self.group,
                term: self.term,
                reason,
            }));
            if reason != StepDownReason::HigherTerm && reason != StepDownReason::SplitBrain {
                out.push(ElectionOutput::Broadcast(ElectionMsg::StepDown {
                    term: self.term,
                }));
            }
            self.lease_until = None;
            self.set_leader(None, self.term, now, out);
        }
        let j = self.jitter(self.cfg.pre_vote_retry_jitter);
        self.deadline = Some(now + self.cfg.follower_poll.min(self.cfg.lease) + j);
    }

    /// Record whom we follow; count leader changes for flapping detection.
    fn set_leader(
        &mut self,
        leader: Option<NodeId>,
        term: u64,
        now: Instant,
        out: &mut ElectionOutputs,
    ) {
        if self.leader == leader && (leader.is_none() || self.leader_term == term) {
            return;
        }
        let changed_node = self.leader != leader;
        self.leader = leader;
        if leader.is_some() {
            self.leader_term = term;
            // A leader exists: the bootstrap wait is over; from now on a lapsed lease
            // starts elections.
            self.first_election_scheduled = true;
        }
        out.push(ElectionOutput::Event(ElectionEvent::LeaderChanged {
            group: self.group,
            term,
            leader,
        }));
        if changed_node && leader.is_some() {
            self.note_change(now, out);
        }
    }

    /// Flapping (leadership.md §1.2): leader changes per 60 s set the cooldown.
    fn note_change(&mut self, now: Instant, out: &mut ElectionOutputs) {
        self.changes.push_back(now);
        while self
            .changes
            .front()
            .is_some_and(|t| now.saturating_since(*t) > self.cfg.flap_window)
        {
            self.changes.pop_front();
        }
        let n = self.changes.len();
        if n >= self.cfg.flap_max {
            self.cooldown = self.cfg.cooldown_max;
        } else if n >= self.cfg.flap_raise {
            self.cooldown = crate::time::scale(self.cooldown, 1.5).min(self.cfg.cooldown_max);
        } else if n < self.cfg.flap_warn {
            self.cooldown = crate::time::scale(self.cooldown, 1.0 / 1.5).max(self.cfg.cooldown_min);
        }
        if n >= self.cfg.flap_warn {
            out.push(ElectionOutput::Event(ElectionEvent::Flapping {
                group: self.group,
                changes: n as u32,
                cooldown_ms: self.cooldown.as_millis() as u64,
            }));
        }
        self.cooldown_until = self.flapping(now).then(|| now + self.cooldown);
    }

    /// At least `flap_raise` leader changes within the flap window ending `now`: the
    /// spec's "changes per 60 s" is a rate, so a group calm for a minute is no longer
    /// flapping even though no change has come since to prune the old ones. (Counting
    /// the unpruned list kept a candidate's vote window stretched to the cooldown long
    /// after the flapping ended: two gates that split their first vote after a flapping
    /// link healed waited a whole 25 s cooldown to try again, beyond the 34 s heal
    /// bound, found by the random-fault sweep, seed 19233.)
    fn flapping(&self, now: Instant) -> bool {
        let window = self.cfg.flap_window;
        let stale = self
            .changes
            .partition_point(|t| now.saturating_since(*t) > window);
        self.changes.len() - stale >= self.cfg.flap_raise
    }

    /// A message with a higher term than ours: adopt it; a leader or candidate is deposed
    /// (the spec's fix; Python stayed leader).
    fn observe_term(&mut self, term: u64, now: Instant, out: &mut ElectionOutputs) {
        if term > self.term {
            if self.role == ElectionRole::Leader {
                self.step_down(StepDownReason::HigherTerm, now, out);
            }
            if self.role != ElectionRole::Follower {
                self.role = ElectionRole::Follower;
                self.votes.clear();
                self.pre_votes.clear();
            }
            self.term = term;
            self.voted_for = None;
        }
    }

    fn on_message(
        &mut self,
        from: NodeId,
        msg: ElectionMsg,
        now: Instant,
        out: &mut ElectionOutputs,
    ) {
        if self.role == ElectionRole::Leader {
            self.heard.insert(from, now);
        }
        match msg {
            // Step 6: grant iff req.term >= term, no valid lease, candidate healthy.
            // Always reply; change nothing.
            ElectionMsg::PreVoteReq { term, lhm } => {
                let granted =
                    term >= self.term && !self.lease_valid(now) && lhm <= self.cfg.max_lhm;
                out.push(ElectionOutput::Send {
                    to: from,
                    msg: ElectionMsg::PreVoteResp { term, granted },
                });
            }
            ElectionMsg::PreVoteResp { term, granted } => {
                if self.role == ElectionRole::PreCandidate && granted && term == self.pre_vote_term
                {
                    self.pre_votes.insert(from);
                }
            }
            // Step 7.
            ElectionMsg::LeaderClaim { term, lhm } => {
                if term < self.term {
                    return;
                }
                self.observe_term(term, now, out);
                let free = self.voted_for.is_none_or(|v| v == from);
                let granted = free && lhm <= self.cfg.max_lhm;
                if granted {
                    self.voted_for = Some(from);
                    // Persist before the vote leaves (a restarted voter must not vote
                    // twice in one term).
                    out.push(ElectionOutput::Event(ElectionEvent::Persist {
                        term: self.term,
                        voted_for: self.voted_for,
                    }));
                    if self.role == ElectionRole::Follower && self.deadline.is_none() {
                        self.poll_later(now);
                    }
                }
                out.push(ElectionOutput::Send {
                    to: from,
                    msg: ElectionMsg::LeaderVote { term, granted },
                });
            }
            ElectionMsg::LeaderVote { term, granted } => {
                if term > self.term {
                    self.observe_term(term, now, out);
                    return;
                }
                if self.role == ElectionRole::Candidate && granted && term == self.term {
                    self.votes.insert(from);
                    if self.votes.len() >= self.quorum() {
                        self.become_leader(now, out);
                    }
                }
            }
            // Steps 8-10.
            ElectionMsg::LeaderElected { term } | ElectionMsg::Heartbeat { term } => {
                if term < self.term {
                    return;
                }
                if self.role == ElectionRole::Leader && term == self.term {
                    // Step 10: two leaders in one term (only possible with a broken
                    // voter set): the lower id keeps it.
                    out.push(ElectionOutput::Event(ElectionEvent::SplitBrainDetected {
                        group: self.group,
                        term,
                        other: from,
                    }));
                    if from < self.me {
                        self.step_down(StepDownReason::SplitBrain, now, out);
                    } else {
                        return;
                    }
                }
                self.observe_term(term, now, out);
                if self.role != ElectionRole::Follower {
                    self.role = ElectionRole::Follower;
                    self.votes.clear();
                    self.pre_votes.clear();
                }
                self.set_leader(Some(from), term, now, out);
                self.lease_until = Some(now + self.cfg.lease);
                self.poll_later(now);
                if matches!(msg, ElectionMsg::Heartbeat { .. }) {
                    out.push(ElectionOutput::Send {
                        to: from,
                        msg: ElectionMsg::HeartbeatAck { term },
                    });
                }
            }
            ElectionMsg::HeartbeatAck { term } => {
                if term > self.term {
                    self.observe_term(term, now, out);
                }
            }
            // Step 11.
            ElectionMsg::StepDown { term } => {
                if self.leader == Some(from) && term >= self.leader_term {
                    self.lease_until = None;
                    self.set_leader(None, term, now, out);
                    if self.role == ElectionRole::Follower {
                        self.start_pre_vote(now, out);
                    }
                }
            }
        }
    }
}
