//! SWIM membership with Lifeguard and role-aware peer confirmation
//! (AD-29/30/46, membership.md §1–§7).
//!
//! One machine per membership cluster a node takes part in. It probes members in a
//! shuffled round-robin (direct attempts, then k helpers), suspects with a Lifeguard
//! dynamic timeout, spreads claims by piggyback gossip and periodic push-pull, refutes
//! accusations about itself by incarnation, and drops peers it never heard from directly
//! after their role's confirmation timeout. An *observer* (a gate health-checking another
//! cluster's managers) runs the same machine but probes only one role, gossips nothing
//! and is never added to the observed cluster.

pub mod config;
pub mod confirmation;
pub mod gossip;
pub mod lifeguard;
pub mod member;
pub mod suspicion;
pub mod timers;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use config::Config;
pub use member::{Member, Status};

use crate::id::{Addr, ClusterId, Incarnation, NodeId, Role};
use crate::io::{Event, Output, Outputs};
use crate::rng::DetRng;
use crate::time::{scale, Instant};
use crate::wire::{self, Body, Channel, Claim, ClaimKind, Envelope, NackReason};
use crate::FxHashMap;
use confirmation::{strategy, RemovalReason};
use core::time::Duration;
use gossip::{retransmit_limit, GossipQueue};
use lifeguard::{Degradation, LagEffect, Lhm};
use serde::Serialize;
use smallvec::SmallVec;
use suspicion::Suspicion;

/// Who this machine speaks for.
#[derive(Clone, Copy, Debug)]
pub struct Identity {
    pub node: NodeId,
    pub addr: Addr,
    pub role: Role,
    pub cluster: ClusterId,
}

/// A full member of the cluster, or an observer that only probes members of one role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Member,
    Observer { probes: Role },
}

pub enum Input<'a> {
    Datagram {
        from: Addr,
        bytes: &'a [u8],
    },
    Frame {
        from: Addr,
        bytes: &'a [u8],
    },
    Tick,
    Join {
        seeds: Vec<Addr>,
    },
    Leave,
    /// Event-loop lag sample `(actual - 10 ms) / 10 ms`, once a second (driver).
    LoopLag {
        ratio: f64,
    },
    /// Application traffic arrived from this peer: it confirms it (membership.md §7).
    HeardFrom(NodeId),
    /// The node's own health score, for an observer: its probes say nothing about the
    /// local node (a whole observed DC may be unreachable), so it borrows the score of
    /// the node's member-mode machine.
    SetLocalHealth {
        score: u8,
    },
}

/// Counters of what was dropped or done; read by the shells' reports and metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub decode_errors: u64,
    pub wrong_cluster: u64,
    pub rate_limited: u64,
    pub misdirected: u64,
    pub stale_replies: u64,
    pub probes: u64,
    pub indirect_probes: u64,
    pub suspicions: u64,
    pub refutations: u64,
    pub refutations_deferred: u64,
    pub push_pulls: u64,
    pub reconnects: u64,
    pub evicted_members: u64,
    pub helps_refused: u64,
    pub encode_failures: u64,
    pub implausible_claims: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    RoundStart,
    DirectRetry {
        seq: u32,
    },
    IndirectEnd {
        seq: u32,
    },
    HelpTimeout {
        seq: u32,
    },
    Suspicion {
        node: NodeId,
    },
    Confirm {
        node: NodeId,
    },
    /// Checks the heads of the passive-confirmation queues.
    PassiveSweep,
    ProactiveTimeout {
        seq: u32,
    },
    Forget {
        node: NodeId,
    },
    JoinRetry,
    PushPull,
    Reconnect,
    Housekeeping,
}

use timers::TimerKey;

#[derive(Clone, Debug)]
struct Round {
    seq: u32,
    target: NodeId,
    target_addr: Addr,
    attempt: usize,
    indirect: bool,
    helpers: u8,
    nacks: u8,
    started_at: Instant,
    /// The pending DirectRetry/IndirectEnd, cancelled when the round ends early.
    timer: Option<TimerKey>,
}

#[derive(Clone, Debug)]
struct Help {
    timer: TimerKey,
    requester_addr: Addr,
    requester_seq: u32,
    target: NodeId,
    want_nack: bool,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Claims more than this far above the known incarnation are implausible (membership.md §2).
const MAX_INC_JUMP: u32 = 1000;
/// JOIN_ACK snapshot entries: what fits one datagram with room to spare.
const JOIN_SNAPSHOT_ENTRIES: usize = 36;

pub struct Membership {
    cfg: Config,
    me: Identity,
    mode: Mode,
    inc: Incarnation,
    rng: DetRng,
    members: member::MemberTable,
    /// The suspicions in progress, one per Suspect member (kept beside the table so every
    /// member record does not carry a pointer for the few that are suspected).
    suspicions: FxHashMap<NodeId, Suspicion>,
    live_count: usize,
    dead_count: usize,
    probe_list: Vec<NodeId>,
    probe_idx: usize,
    timers: timers::TimerQueue<Timer>,
    /// Per-member timers (confirmation, tombstone expiry): one per member, mostly far in
    /// the future. Kept apart so the protocol's few hot timers sit in a small heap.
    member_timers: timers::TimerQueue<Timer>,
    /// UNCONFIRMED members of passive roles (workers), in discovery order, awaiting their
    /// warning and then their removal check. Every such member follows one schedule
    /// relative to its discovery, so only the heads need checking: 8 bytes a member
    /// instead of a timer each (a node of a 1000-member cluster holds ~1000 of them).
    passive_warn: std::collections::VecDeque<(NodeId, u8)>,
    passive_remove: std::collections::VecDeque<(NodeId, u8)>,
    passive_sweep_at: Option<Instant>,
    gossip: GossipQueue,
    lhm: Lhm,
    degradation: Degradation,
    round: Option<Round>,
    round_counter: u64,
    next_seq: u32,
    helps: FxHashMap<u32, Help>,
    proactive: FxHashMap<u32, (NodeId, TimerKey)>,
    buckets: FxHashMap<Addr, Bucket>,
    refute_window_start: Instant,
    refutes_in_window: u32,
    deferred_refute: Option<(Incarnation, ClaimKind)>,
    seeds: Vec<Addr>,
    joined: bool,
    join_attempts_left: u32,
    leaving: bool,
    /// Set while merging a full-state snapshot: what it teaches is not re-gossiped.
    merging_snapshot: bool,
    /// Members a snapshot merge discovered: their confirmation timers are set once the
    /// whole table is in, so cycle-scaled deadlines see the real cluster size.
    discovered_in_snapshot: Vec<NodeId>,
    housekeeping_armed: bool,
    /// The `now` of the input being handled (for helpers that schedule without one).
    last_now: Instant,
    stats: Stats,
}

impl Membership {
    pub fn new(
        cfg: Config,
        me: Identity,
        mode: Mode,
        inc: Incarnation,
        seed: u64,
        now: Instant,
    ) -> Self {
        let mut rng = DetRng::new(seed);
        let first_round =
            now + Duration::from_micros(rng.range_u64(0, cfg.probe_interval.as_micros() as u64));
        let first_push_pull = now
            + Duration::from_micros(rng.range_u64(
                cfg.push_pull_interval.as_micros() as u64 / 2,
                cfg.push_pull_interval.as_micros() as u64,
            ));
        let mut m = Membership {
            gossip: GossipQueue::new(cfg.gossip_queue_cap),
            lhm: Lhm::new(cfg.lifeguard),
            degradation: Degradation::new(now),
            cfg,
            me,
            mode,
            inc,
            rng,
            members: member::MemberTable::default(),
            suspicions: FxHashMap::default(),
            live_count: 0,
            dead_count: 0,
            probe_list: Vec::new(),
            probe_idx: 0,
            timers: timers::TimerQueue::default(),
            member_timers: timers::TimerQueue::default(),
            passive_warn: Default::default(),
            passive_remove: Default::default(),
            passive_sweep_at: None,
            round: None,
            round_counter: 0,
            next_seq: 0,
            helps: FxHashMap::default(),
            proactive: FxHashMap::default(),
            buckets: FxHashMap::default(),
            refute_window_start: now,
            refutes_in_window: 0,
            deferred_refute: None,
            seeds: Vec::new(),
            joined: false,
            join_attempts_left: 0,
            leaving: false,
            merging_snapshot: false,
            discovered_in_snapshot: Vec::new(),
            housekeeping_armed: false,
            last_now: now,
            stats: Stats::default(),
        };
        m.at(first_round, Timer::RoundStart);
        m.at(first_push_pull, Timer::PushPull);
        let reconnect = m.cfg.reconnect_interval;
        m.at(now + reconnect, Timer::Reconnect);
        m
    }

    // ----- public API ---------------------------------------------------------------

    pub fn step(&mut self, input: Input<'_>, now: Instant) -> Outputs {
        let mut out = Outputs::new();
        self.step_into(input, now, &mut out);
        out
    }

    /// [`Membership::step`], appending to a caller's buffer (no per-layer copies).
    pub fn step_into(&mut self, input: Input<'_>, now: Instant, out: &mut Outputs) {
        self.last_now = now;
        match input {
            Input::Datagram { from, bytes } => match wire::decode(bytes, Channel::Datagram) {
                Ok(env) => self.handle(env, from, now, out),
                Err(error) => {
                    self.stats.decode_errors += 1;
                    out.push(Output::Event(Event::DecodeFailed { error }));
                }
            },
            Input::Frame { from, bytes } => match wire::decode(bytes, Channel::Frame) {
                Ok(env) => self.handle(env, from, now, out),
                Err(error) => {
                    self.stats.decode_errors += 1;
                    out.push(Output::Event(Event::DecodeFailed { error }));
                }
            },
            Input::Tick => self.tick(now, out),
            Input::Join { seeds } => self.join(seeds, now, out),
            Input::Leave => self.leave(now, out),
            Input::LoopLag { ratio } => {
                match self.degradation.sample_lag(ratio) {
                    LagEffect::Raise(n) => self.lhm_raise(n, out),
                    LagEffect::Lower => self.lhm_lower(out),
                    LagEffect::None => {}
                }
                if self.housekeeping_needed() {
                    self.arm_housekeeping(now);
                }
            }
            Input::HeardFrom(node) => self.heard_from(node, now, out),
            Input::SetLocalHealth { score } => {
                if self.lhm.set_score(score) {
                    self.lhm_event(out);
                }
            }
        }
    }

    /// Handle an already-decoded message (the node decodes once to route by cluster).
    pub fn handle(&mut self, env: Envelope, from: Addr, now: Instant, out: &mut Outputs) {
        self.last_now = now;
        if env.cluster != self.me.cluster {
            self.stats.wrong_cluster += 1;
            return;
        }
        if self.leaving {
            return;
        }
        if !self.admit(from, now) {
            self.stats.rate_limited += 1;
            return;
        }
        self.on_message(env, now, out);
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        if self.leaving {
            return None;
        }
        match (self.timers.next(), self.member_timers.next()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn identity(&self) -> Identity {
        self.me
    }
    pub fn mode(&self) -> Mode {
        self.mode
    }
    pub fn incarnation(&self) -> Incarnation {
        self.inc
    }
    pub fn lhm_score(&self) -> u8 {
        self.lhm.score()
    }
    pub fn degradation(&self) -> lifeguard::DegradationLevel {
        self.degradation.level()
    }
    pub fn stats(&self) -> &Stats {
        &self.stats
    }
    pub fn member(&self, node: NodeId) -> Option<&Member> {
        self.members.get(&node)
    }
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }
    pub fn member_count(&self) -> usize {
        self.members.len()
    }
    /// Sizes of every bounded table, for leak tests and metrics.
    pub fn table_sizes(&self) -> TableSizes {
        TableSizes {
            members: self.members.len(),
            gossip: self.gossip.len(),
            helps: self.helps.len(),
            proactive: self.proactive.len(),
            rate_buckets: self.buckets.len(),
            timers: self.timers.len()
                + self.member_timers.len()
                + self.passive_warn.len()
                + self.passive_remove.len(),
        }
    }

    // ----- timers ---------------------------------------------------------------------

    /// Schedule `timer`; the returned key cancels it.
    fn at(&mut self, when: Instant, timer: Timer) -> TimerKey {
        self.timers.at(when, timer)
    }

    fn cancel(&mut self, key: Option<TimerKey>) {
        if let Some(k) = key {
            self.timers.cancel(k);
        }
    }

    /// Housekeeping (degradation, deferred refutations) runs once a second only while
    /// there is something to do: an idle healthy node schedules no ticks for it.
    fn arm_housekeeping(&mut self, now: Instant) {
        if !self.housekeeping_armed {
            self.housekeeping_armed = true;
            self.at(now + crate::time::secs(1), Timer::Housekeeping);
        }
    }

    fn housekeeping_needed(&self) -> bool {
        self.lhm.score() > 0
            || self.degradation.level() != lifeguard::DegradationLevel::Normal
            || self.degradation.lagging()
            || self.deferred_refute.is_some()
    }

    fn tick(&mut self, now: Instant, out: &mut Outputs) {
        // A late Tick (paused process) fires every due timer in order.
        // A late Tick (paused process) fires every due timer, both queues in time order.
        while !self.leaving {
            let hot = self.timers.next().filter(|t| *t <= now);
            let member = self.member_timers.next().filter(|t| *t <= now);
            let timer = match (hot, member) {
                (Some(a), Some(b)) if b < a => self.member_timers.pop_due(now),
                (Some(_), _) => self.timers.pop_due(now),
                (None, Some(_)) => self.member_timers.pop_due(now),
                (None, None) => None,
            };
            let Some(timer) = timer else {
                break;
            };
            self.fire(timer, now, out);
        }
    }

    fn fire(&mut self, timer: Timer, now: Instant, out: &mut Outputs) {
        match timer {
            Timer::RoundStart => self.start_round(now, out),
            Timer::DirectRetry { seq } => self.direct_retry(seq, now, out),
            Timer::IndirectEnd { seq } => self.indirect_end(seq, now, out),
            Timer::HelpTimeout { seq } => {
                if let Some(help) = self.helps.remove(&seq) {
                    if help.want_nack {
                        self.send(
                            help.requester_addr,
                            Body::Nack {
                                seq: help.requester_seq,
                                target: help.target,
                                reason: NackReason::Timeout,
                            },
                            out,
                        );
                    }
                }
            }
            Timer::Suspicion { node } => self.suspicion_timer(node, now, out),
            Timer::Confirm { node } => self.confirm_timer(node, now, out),
            Timer::PassiveSweep => {
                if self.passive_sweep_at.is_some_and(|t| t <= now) {
                    self.passive_sweep_at = None;
                }
                self.passive_sweep(now, out);
            }
            Timer::ProactiveTimeout { seq } => {
                if let Some((node, _)) = self.proactive.remove(&seq) {
                    if let Some(m) = self.members.get_mut(&node) {
                        m.proactive_last_failed = true;
                    }
                    self.member_timers.at(now, Timer::Confirm { node });
                }
            }
            Timer::Forget { node } => {
                let due = self.members.get(&node).is_some_and(|m| {
                    m.status.is_gone() && now >= m.status_changed_at + self.cfg.tombstone
                });
                if due {
                    self.remove_member(node, out);
                }
            }
            Timer::JoinRetry => {
                if !self.joined && self.join_attempts_left > 0 {
                    self.join_attempts_left -= 1;
                    self.send_join(now, out);
                }
            }
            Timer::PushPull => {
                let scaled = scale(
                    self.cfg.push_pull_interval,
                    push_pull_scale(self.live_count + 1) as f64,
                );
                let next = self.jittered(scaled);
                self.at(now + next, Timer::PushPull);
                if let Some(peer) = self.random_member(|m| m.status == Status::Alive && m.confirmed)
                {
                    let addr = self.members[&peer].addr;
                    self.send_push_pull(addr, false, out);
                }
            }
            Timer::Reconnect => {
                self.at(now + self.cfg.reconnect_interval, Timer::Reconnect);
                self.reconnect(now, out);
                // A bucket idle for burst/rate seconds has refilled completely: exactly
                // the state a new bucket starts in. Dropping it changes no decision and
                // keeps the table to the senders of the last few seconds (a node of a
                // 1000-member cluster hears from hundreds of senders a minute).
                let refill = self.cfg.rate_limit_burst / self.cfg.rate_limit_per_sec.max(1e-3);
                let idle = Duration::from_micros((refill * 1e6) as u64);
                self.buckets
                    .retain(|_, b| now.saturating_since(b.last) < idle);
            }
            Timer::Housekeeping => {
                self.housekeeping_armed = false;
                self.housekeeping(now, out);
                if self.housekeeping_needed() {
                    self.arm_housekeeping(now);
                }
            }
        }
    }

    fn jittered(&mut self, d: Duration) -> Duration {
        scale(d, 0.8 + 0.4 * self.rng.unit())
    }

    // ----- probing (membership.md §3) ------------------------------------------------

    /// L = LHM multiplier x degradation timeout multiplier (of the pace level, see
    /// [`lifeguard::Degradation::pace`]).
    fn local_mult(&self) -> f64 {
        self.lhm.multiplier() * self.degradation.pace().timeout_mult()
    }

    /// `T_p = min(T x R_p, max) x L`. R_p (latency, confidence, peer health) is 1 until
    /// coordinates and peer-health gossip feed it.
    fn probe_timeout(&self) -> Duration {
        scale(
            self.cfg.probe_timeout.min(self.cfg.max_probe_timeout),
            self.local_mult(),
        )
    }

    /// How long a helper waits for the target before nacking: `min(0.7 T, 0.5 s)`,
    /// unscaled (Python's rule). It must be well inside the requester's own window
    /// (`T_p` >= T), or every healthy helper's nack arrives late and is counted as
    /// missing, raising the requester's LHM for nothing.
    fn help_wait(&self) -> Duration {
        scale(self.cfg.probe_timeout, 0.7).min(crate::time::millis(500))
    }

    fn probe_interval(&self) -> Duration {
        scale(self.cfg.probe_interval, self.local_mult())
    }

    fn probe_candidate(&self, m: &Member) -> bool {
        !m.status.is_gone()
            && match self.mode {
                Mode::Member => true,
                Mode::Observer { probes } => m.role == probes,
            }
    }

    fn next_target(&mut self) -> Option<NodeId> {
        for _ in 0..=self.probe_list.len() + 1 {
            if self.probe_idx >= self.probe_list.len() {
                let mut list: Vec<NodeId> = self
                    .members
                    .values()
                    .filter(|m| self.probe_candidate(m))
                    .map(|m| m.id)
                    .collect();
                // Map order is deterministic but arbitrary: sort, then shuffle with our RNG.
                list.sort_unstable();
                list.dedup();
                self.rng.shuffle(&mut list);
                self.probe_list = list;
                self.probe_idx = 0;
                if self.probe_list.is_empty() {
                    return None;
                }
            }
            let id = self.probe_list[self.probe_idx];
            self.probe_idx += 1;
            if self
                .members
                .get(&id)
                .is_some_and(|m| self.probe_candidate(m))
            {
                return Some(id);
            }
        }
        None
    }

    /// New member: a random place in the probe list (memberlist's way, so a newcomer is
    /// not always probed last).
    fn probe_list_insert(&mut self, id: NodeId) {
        // Swap into a random place among the members not yet probed this cycle: O(1).
        // A stale duplicate (a member removed and re-added within one cycle) is harmless
        // and disappears when the list is rebuilt at the end of the cycle.
        self.probe_list.push(id);
        let last = self.probe_list.len() - 1;
        let from = self.probe_idx.min(last);
        let at = from + self.rng.below(last - from + 1);
        self.probe_list.swap(at, last);
    }

    fn start_round(&mut self, now: Instant, out: &mut Outputs) {
        let k = self.round_counter;
        self.round_counter += 1;
        if self.degradation.pace().skips_round(k) {
            let next = self.probe_interval();
            self.at(now + next, Timer::RoundStart);
            return;
        }
        let Some(target) = self.next_target() else {
            let next = self.probe_interval();
            self.at(now + next, Timer::RoundStart);
            return;
        };
        let seq = self.seq();
        let addr = self.members[&target].addr;
        self.round = Some(Round {
            seq,
            target,
            target_addr: addr,
            attempt: 0,
            indirect: false,
            helpers: 0,
            nacks: 0,
            started_at: now,
            timer: None,
        });
        self.stats.probes += 1;
        self.send_ping(seq, target, addr, out);
        let wait = scale(self.probe_timeout(), self.cfg.direct_attempt_fractions[0]);
        let key = self.at(now + wait, Timer::DirectRetry { seq });
        self.set_round_timer(key);
    }

    fn seq(&mut self) -> u32 {
        self.next_seq = self.next_seq.wrapping_add(1);
        self.next_seq
    }

    fn send_ping(&mut self, seq: u32, target: NodeId, addr: Addr, out: &mut Outputs) {
        // Lifeguard buddy: a suspect learns of its suspicion from the probe itself.
        let buddy = match self.members.get(&target) {
            Some(m) if self.cfg.lifeguard && m.status == Status::Suspect => {
                let from = self
                    .suspicions
                    .get(&target)
                    .map_or(self.me.node, |s| s.originator);
                Some(self.claim_of(m, ClaimKind::Suspect, from))
            }
            _ => None,
        };
        let gossip = self.piggyback(buddy.map(|b| b.node));
        self.send(
            addr,
            Body::Ping {
                seq,
                target,
                buddy,
                gossip,
            },
            out,
        );
    }

    fn direct_retry(&mut self, seq: u32, now: Instant, out: &mut Outputs) {
        let Some(round) = self.round.as_mut() else {
            return;
        };
        if round.seq != seq || round.indirect {
            return;
        }
        round.attempt += 1;
        let (target, addr, attempt) = (round.target, round.target_addr, round.attempt);
        // The target may have left (or been buried) while we were waiting: a member held
        // Left or Dead is never probed again (invariant 8).
        if self.members.get(&target).is_none_or(|m| m.status.is_gone()) {
            self.end_round(false, now);
            return;
        }
        if attempt < self.cfg.direct_attempt_fractions.len() {
            self.send_ping(seq, target, addr, out);
            let wait = scale(
                self.probe_timeout(),
                self.cfg.direct_attempt_fractions[attempt],
            );
            let key = self.at(now + wait, Timer::DirectRetry { seq });
            self.set_round_timer(key);
            return;
        }
        // Direct probe failed.
        let status = self.members.get(&target).map(|m| m.status);
        match status {
            None | Some(Status::Dead) | Some(Status::Left) => {
                self.end_round(false, now);
                return;
            }
            // Never suspect (or blame ourselves for) a peer we never heard from (§3.3 step 3).
            Some(Status::Unconfirmed) => {
                self.end_round(false, now);
                return;
            }
            _ => {}
        }
        let helpers = self.pick_helpers(target, now);
        let inc = self.members[&target].inc;
        for h in &helpers {
            let haddr = self.members[h].addr;
            let gossip = self.piggyback(None);
            self.send(
                haddr,
                Body::PingReq {
                    seq,
                    target,
                    target_addr: addr,
                    target_inc: inc,
                    want_nack: self.cfg.lifeguard,
                    gossip,
                },
                out,
            );
        }
        self.stats.indirect_probes += 1;
        if let Some(round) = self.round.as_mut() {
            round.indirect = true;
            round.helpers = helpers.len() as u8;
        }
        let wait = self.probe_timeout();
        let key = self.at(now + wait, Timer::IndirectEnd { seq });
        self.set_round_timer(key);
    }

    /// Up to k confirmed Alive helpers other than the target (§3.3 step 4), preferring
    /// members we heard from within about one probe cycle. Refinement of the spec's
    /// random choice: a helper we have no recent evidence of reaching (typically one on
    /// the far side of a partition) cannot nack, and its missing nack would be charged to
    /// our own health. A node that hears from nobody still falls back to random helpers,
    /// so Lifeguard's self-awareness for a truly isolated node is unchanged.
    fn pick_helpers(&mut self, target: NodeId, now: Instant) -> SmallVec<[NodeId; 4]> {
        let mut helpers: SmallVec<[NodeId; 4]> = SmallVec::new();
        let k = self.cfg.indirect_helpers;
        if self.probe_list.is_empty() || k == 0 {
            return helpers;
        }
        let cycle = scale(self.cfg.probe_interval, (self.live_count.max(1) * 2) as f64)
            .max(crate::time::secs(10));
        let recent = |m: &Member| {
            m.last_heard_at
                .get()
                .is_some_and(|t| now.saturating_since(t) <= cycle)
        };
        let mut fallback: SmallVec<[NodeId; 4]> = SmallVec::new();
        for _ in 0..(4 * k + 8) {
            if helpers.len() >= k {
                break;
            }
            let id = self.probe_list[self.rng.below(self.probe_list.len())];
            if id == target || helpers.contains(&id) || fallback.contains(&id) {
                continue;
            }
            match self.members.get(&id) {
                Some(m) if m.status == Status::Alive && m.confirmed => {
                    if recent(m) {
                        helpers.push(id);
                    } else if fallback.len() < k {
                        fallback.push(id);
                    }
                }
                _ => {}
            }
        }
        if helpers.is_empty() {
            return fallback;
        }
        helpers
    }

    fn indirect_end(&mut self, seq: u32, now: Instant, out: &mut Outputs) {
        let Some(round) = self.round.as_ref() else {
            return;
        };
        if round.seq != seq {
            return;
        }
        let (target, helpers, nacks) = (round.target, round.helpers, round.nacks);
        // Lifeguard's self-awareness signal (membership.md §6.1). Spec deviation, as
        // memberlist and the Lifeguard paper do: a failed probe costs +1 only when no
        // helper could vouch for our network; with helpers, each *missing nack* costs +1
        // and a failure every helper nacked costs nothing. Charging every failed probe
        // made a node's health worse whenever a peer really died or was partitioned
        // away, which stretched its suspicion timeouts x2..x9 exactly when detection
        // matters (a 2-minute partition went undetected by gates in simulation).
        let penalty = if !self.cfg.lifeguard {
            0
        } else if helpers == 0 {
            1
        } else {
            helpers.saturating_sub(nacks)
        };
        self.end_round(false, now);
        // The suspicion snapshots the LHM from *before* this round's penalty: the same
        // missing replies must not both accuse the target and stretch its timeout.
        if let Some(m) = self.members.get(&target) {
            match m.status {
                Status::Alive => {
                    let inc = m.inc;
                    self.start_suspicion(target, inc, self.me.node, now, out);
                }
                Status::Suspect => {
                    // Our own independent failure: tell others so it counts as a confirmation.
                    let claim = self.claim_of(m, ClaimKind::Suspect, self.me.node);
                    self.enqueue(claim, now, false);
                }
                _ => {}
            }
        }
        if penalty > 0 {
            self.lhm_raise(penalty, out);
        }
    }

    fn set_round_timer(&mut self, key: TimerKey) {
        if let Some(r) = self.round.as_mut() {
            r.timer = Some(key);
        }
    }

    fn end_round(&mut self, success: bool, now: Instant) {
        let Some(round) = self.round.take() else {
            return;
        };
        self.cancel(round.timer);
        if success && self.mode == Mode::Member {
            self.lhm.lower(1);
        }
        let next = (round.started_at + self.probe_interval()).max(now);
        self.at(next, Timer::RoundStart);
    }

    fn round_succeeded(&mut self, now: Instant, out: &mut Outputs) {
        let before = self.lhm.score();
        self.end_round(true, now);
        if self.lhm.score() != before {
            self.lhm_event(out);
        }
    }

    // ----- suspicion (membership.md §3.4, §6.3) ---------------------------------------

    fn start_suspicion(
        &mut self,
        node: NodeId,
        inc: Incarnation,
        from: NodeId,
        now: Instant,
        out: &mut Outputs,
    ) {
        // Bounds follow the detector's kind (membership.md §3.1, Q1). An observer is a
        // gate acting as a health checker of another cluster's managers: it uses the
        // bounds of the role it observes, since it never receives confirmations (observers
        // gossip nothing) and at gate bounds would always wait the full 120 s.
        let (base_min, base_max) = self.cfg.suspicion_bounds_for(self.detector_role());
        let mult = self.lhm.multiplier();
        let n = self.live_count;
        let susp = Suspicion::new(
            now,
            scale(base_min, mult),
            scale(base_max, mult),
            n,
            from,
            self.cfg.lifeguard,
        );
        let deadline = susp.deadline();
        self.stats.suspicions += 1;
        self.transition(node, Status::Suspect, inc, now, out);
        self.suspicions.insert(node, susp);
        let claim = self.claim_of(&self.members[&node], ClaimKind::Suspect, from);
        self.enqueue(claim, now, false);
        self.at(deadline, Timer::Suspicion { node });
    }

    fn confirm_suspicion(&mut self, node: NodeId, from: NodeId, now: Instant) -> bool {
        let me = self.me.node;
        let Some(s) = self.suspicions.get_mut(&node) else {
            return false;
        };
        let before = s.deadline();
        if !s.confirm(from, me) {
            return false;
        }
        let after = s.deadline();
        if after < before {
            self.at(after.max(now), Timer::Suspicion { node });
        }
        true
    }

    fn suspicion_timer(&mut self, node: NodeId, now: Instant, out: &mut Outputs) {
        let Some(m) = self.members.get(&node) else {
            return;
        };
        if m.status != Status::Suspect {
            return;
        }
        let Some(s) = self.suspicions.get(&node) else {
            return;
        };
        if s.deadline() > now {
            return; // superseded by a later re-suspicion
        }
        let spoke_since = m.last_heard_at.get().is_some_and(|t| t > s.started_at);
        let within_cap = now < s.started_at + s.max + s.max;
        if self.cfg.lifeguard && (!s.last_chance || (spoke_since && within_cap)) {
            // membership.md §9: one last probe before a suspicion expires, extending the
            // deadline by T_p. The PING carries the buddy SUSPECT, so a live suspect
            // refutes and its ACK brings the higher incarnation that clears the suspicion.
            // Refinement: if the suspect has spoken to us directly since the suspicion
            // began, it demonstrably lives (typically a verdict formed during a partition
            // that just healed): probe and extend again rather than declare, up to twice
            // the maximum suspicion, so a one-way cut still ends in a verdict.
            let (addr, t) = (m.addr, self.probe_timeout());
            let s = self
                .suspicions
                .get_mut(&node)
                .expect("suspect has a suspicion");
            s.last_chance = true;
            s.granted += t;
            let deadline = s.deadline();
            let seq = self.seq();
            self.send_ping(seq, node, addr, out);
            self.at(deadline.max(now), Timer::Suspicion { node });
            return;
        }
        let ev = Event::SuspicionExpired {
            cluster: self.me.cluster,
            node,
            inc: m.inc,
            started_at: s.started_at,
            earliest: s.floor(),
            confirmations: s.confirmations() as u32,
        };
        let inc = m.inc;
        self.event(out, ev);
        self.declare_gone(node, Status::Dead, inc, self.me.node, now, out);
    }

    fn declare_gone(
        &mut self,
        node: NodeId,
        status: Status,
        inc: Incarnation,
        from: NodeId,
        now: Instant,
        out: &mut Outputs,
    ) {
        let was_unconfirmed = self.members[&node].status == Status::Unconfirmed;
        self.transition(node, status, inc, now, out);
        let m = self.members.get_mut(&node).expect("member exists");
        if status == Status::Dead {
            // Death time is `status_changed_at`, set by the transition just above.
            m.has_death = true;
            m.death_inc = inc;
        }
        let kind = if status == Status::Left {
            ClaimKind::Left
        } else {
            ClaimKind::Dead
        };
        // An unconfirmed peer's tombstone is ours alone: no DEAD gossip (invariant 2).
        if !was_unconfirmed {
            let claim = self.claim_of(&self.members[&node], kind, from);
            self.enqueue(claim, now, false);
        }
        self.member_timers
            .at(now + self.cfg.tombstone, Timer::Forget { node });
    }

    // ----- the table ----------------------------------------------------------------

    /// The single place a member's `(status, inc, confirmed)` changes: keeps the counters
    /// and emits the `Member` event the shells mirror.
    fn transition(
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
            m.status_changed_at = now;
        }
        let was_live = m.status.is_live();
        let was_dead = m.status == Status::Dead;
        let was_gone = m.status.is_gone();
        m.status = status;
        m.inc = inc;
        if matches!(status, Status::Alive | Status::Suspect) && !m.confirmed {
            // Alive only ever means "confirmed": an unconfirmed revival stays Unconfirmed.
            m.status = if status == Status::Alive {
                Status::Unconfirmed
            } else {
                status
            };
        }
        let to = m.view();
        let role = m.role;
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
        if from != to {
            self.event(
                out,
                Event::Member {
                    cluster: self.me.cluster,
                    node,
                    role,
                    from: Some(from),
                    to: Some(to),
                },
            );
        }
    }

    /// Direct contact from `node` (membership.md §7): an Unconfirmed peer becomes Alive.
    fn confirm_member(&mut self, node: NodeId, now: Instant, out: &mut Outputs) {
        let Some(m) = self.members.get_mut(&node) else {
            return;
        };
        m.last_heard_at.set(now);
        if m.confirmed {
            return;
        }
        let from = m.view();
        m.confirmed = true;
        if m.status == Status::Unconfirmed {
            m.status = Status::Alive;
            m.status_changed_at = now;
        }
        let (to, role) = (m.view(), m.role);
        if to.status.is_live() && !from.status.is_live() {
            self.live_count += 1;
        }
        self.event(
            out,
            Event::Member {
                cluster: self.me.cluster,
                node,
                role,
                from: Some(from),
                to: Some(to),
            },
        );
    }

    /// Add a member learned from claim `c` (its own ALIVE when `confirmed`).
    fn insert_member(&mut self, c: &Claim, confirmed: bool, now: Instant, out: &mut Outputs) {
        let (node, addr, role, inc) = (c.node, c.addr, c.role, c.inc);
        if self.members.len() >= self.cfg.max_members {
            self.evict(out);
        }
        let mut m = Member::new(node, addr, role, inc, now);
        if confirmed {
            m.confirmed = true;
            m.status = Status::Alive;
            m.last_heard_at.set(now);
            self.live_count += 1;
        }
        let to = m.view();
        self.members.insert(node, m);
        self.probe_list_insert(node);
        self.event(
            out,
            Event::Member {
                cluster: self.me.cluster,
                node,
                role,
                from: None,
                to: Some(to),
            },
        );
        if !confirmed {
            if self.merging_snapshot {
                self.discovered_in_snapshot.push(node);
            } else {
                self.schedule_confirmation(node, now);
            }
        }
    }

    fn schedule_confirmation(&mut self, node: NodeId, now: Instant) {
        let m = &self.members[&node];
        let next = self.next_confirmation_check(m);
        if strategy(m.role).proactive {
            self.member_timers
                .at(next.max(now), Timer::Confirm { node });
            return;
        }
        let entry = (node, m.discovery);
        if m.warned {
            self.passive_remove.push_back(entry);
        } else {
            self.passive_warn.push_back(entry);
        }
        self.arm_passive_sweep(next.max(now));
    }

    fn arm_passive_sweep(&mut self, at: Instant) {
        if self.passive_sweep_at.is_none_or(|t| at < t) {
            self.passive_sweep_at = Some(at);
            self.at(at, Timer::PassiveSweep);
        }
    }

    /// The passive member an entry refers to, if the entry is still current: same
    /// discovery, still UNCONFIRMED, still a passive role.
    fn passive_entry(&self, (node, discovery): (NodeId, u8)) -> Option<&Member> {
        self.members.get(&node).filter(|m| {
            m.discovery == discovery
                && m.status == Status::Unconfirmed
                && !strategy(m.role).proactive
        })
    }

    /// Warn, then remove, the UNCONFIRMED passive members whose time has come
    /// (membership.md §7); stale entries are dropped on the way.
    fn passive_sweep(&mut self, now: Instant, out: &mut Outputs) {
        while let Some(&entry) = self.passive_warn.front() {
            let Some(m) = self.passive_entry(entry).filter(|m| !m.warned) else {
                self.passive_warn.pop_front();
                continue;
            };
            if self.warning_at(m) > now {
                break;
            }
            self.passive_warn.pop_front();
            self.members.get_mut(&entry.0).expect("current").warned = true;
            self.event(
                out,
                Event::UnconfirmedWarning {
                    cluster: self.me.cluster,
                    node: entry.0,
                },
            );
            self.passive_remove.push_back(entry);
        }
        while let Some(&entry) = self.passive_remove.front() {
            let Some(m) = self.passive_entry(entry) else {
                self.passive_remove.pop_front();
                continue;
            };
            if self.removal_deadline(m) > now {
                break;
            }
            let ev = Event::UnconfirmedRemoved {
                cluster: self.me.cluster,
                node: entry.0,
                role: m.role,
                reason: RemovalReason::PassiveTimeoutExpired,
                discovered_at: m.discovered_at(),
            };
            self.passive_remove.pop_front();
            self.event(out, ev);
            self.remove_member(entry.0, out);
        }
        let warn_at = self
            .passive_warn
            .front()
            .and_then(|e| self.passive_entry(*e))
            .map(|m| self.warning_at(m));
        let remove_at = self
            .passive_remove
            .front()
            .and_then(|e| self.passive_entry(*e))
            .map(|m| self.removal_deadline(m));
        let next = match (warn_at, remove_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        // A stale head (not current) is dropped at the next sweep, a second from now.
        let stale_head = (warn_at.is_none() && !self.passive_warn.is_empty())
            || (remove_at.is_none() && !self.passive_remove.is_empty());
        let next = if stale_head {
            Some(next.map_or(now + crate::time::secs(1), |n| {
                n.min(now + crate::time::secs(1))
            }))
        } else {
            next
        };
        if let Some(t) = next {
            self.arm_passive_sweep(t.max(now));
        }
    }

    /// When an UNCONFIRMED peer is removed: the role's deadline (membership.md §7), but
    /// never before two full probe cycles. Spec refinement for large clusters: round-robin
    /// probing reaches every member once per cycle, so in a cluster whose cycle is longer
    /// than the passive timeout (above ~180 workers) the spec's deadline would remove
    /// healthy peers before anyone could have probed them, and gossip would rediscover
    /// them forever. This only ever extends the spec's timeout.
    fn removal_deadline(&self, m: &Member) -> Instant {
        let role_deadline =
            strategy(m.role).removal_deadline(m.discovered_at(), self.lhm.multiplier(), 1.0);
        let cycles = scale(self.probe_interval(), 2.0 * self.probe_list.len() as f64);
        role_deadline.max(m.discovered_at() + cycles)
    }

    /// When an UNCONFIRMED peer earns its one warning: after `unconfirmed_warning` (60 s),
    /// but never before one probe cycle, for the same reason as [`Self::removal_deadline`]:
    /// in a 1000-node cluster every peer learned by gossip is legitimately unconfirmed
    /// for most of a cycle, and the spec's 60 s made a million warnings of noise.
    fn warning_at(&self, m: &Member) -> Instant {
        let cycle = scale(self.probe_interval(), self.probe_list.len() as f64);
        m.discovered_at() + self.cfg.unconfirmed_warning.max(cycle)
    }

    /// The next instant the confirmation timer must look at `m`: its warning, its next
    /// proactive attempt, or its removal deadline.
    fn next_confirmation_check(&self, m: &Member) -> Instant {
        let strat = strategy(m.role);
        let mut next = self.removal_deadline(m);
        if let Some(a) = strat.attempt_at(m.discovered_at(), m.proactive_made) {
            next = next.min(a);
        }
        if !m.warned {
            next = next.min(self.warning_at(m));
        }
        next
    }

    /// Proactive confirmation and removal of an UNCONFIRMED peer (membership.md §7).
    fn confirm_timer(&mut self, node: NodeId, now: Instant, out: &mut Outputs) {
        let Some(m) = self.members.get(&node) else {
            return;
        };
        if m.status != Status::Unconfirmed {
            return;
        }
        if !m.warned && now >= self.warning_at(m) {
            self.members.get_mut(&node).expect("exists").warned = true;
            self.event(
                out,
                Event::UnconfirmedWarning {
                    cluster: self.me.cluster,
                    node,
                },
            );
        }
        let m = &self.members[&node];
        let strat = strategy(m.role);
        let deadline = self.removal_deadline(m);
        let in_flight = self.proactive.values().any(|(n, _)| *n == node);
        if let Some(due) = strat.attempt_at(m.discovered_at(), m.proactive_made) {
            if due <= now && !in_flight {
                let (addr, role, attempt) = (m.addr, m.role, m.proactive_made);
                let seq = self.seq();
                let t = self.probe_timeout();
                let key = self.at(now + t, Timer::ProactiveTimeout { seq });
                self.proactive.insert(seq, (node, key));
                let mm = self.members.get_mut(&node).expect("exists");
                mm.proactive_made += 1;
                mm.proactive_last_failed = false;
                self.event(
                    out,
                    Event::ProactivePing {
                        cluster: self.me.cluster,
                        node,
                        role,
                        attempt,
                    },
                );
                self.send_ping(seq, node, addr, out);
                return;
            }
        }
        let exhausted = m.proactive_made >= strat.attempts && m.proactive_last_failed;
        if now >= deadline && (!strat.proactive || exhausted) {
            let reason = if strat.proactive {
                RemovalReason::ExhaustedProactiveAttempts
            } else {
                RemovalReason::PassiveTimeoutExpired
            };
            let ev = Event::UnconfirmedRemoved {
                cluster: self.me.cluster,
                node,
                role: m.role,
                reason,
                discovered_at: m.discovered_at(),
            };
            self.event(out, ev);
            self.remove_member(node, out);
            return;
        }
        if in_flight {
            return; // the attempt's timeout reschedules us
        }
        self.schedule_confirmation(node, now);
    }

    fn remove_member(&mut self, node: NodeId, out: &mut Outputs) {
        let Some(m) = self.members.remove(&node) else {
            return;
        };
        self.live_count -= m.status.is_live() as usize;
        self.dead_count -= (m.status == Status::Dead) as usize;
        self.gossip.remove(node);
        self.suspicions.remove(&node);
        self.event(
            out,
            Event::Member {
                cluster: self.me.cluster,
                node,
                role: m.role,
                from: Some(m.view()),
                to: None,
            },
        );
    }

    /// Table full: evict `len - max + 100`, Unconfirmed first, then Dead, Suspect, Alive;
    /// oldest status change first (membership.md §2).
    fn evict(&mut self, out: &mut Outputs) {
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
            .map(|m| (class(m.status), m.status_changed_at, m.id))
            .collect();
        order.sort_unstable();
        for (_, _, id) in order.into_iter().take(excess) {
            self.stats.evicted_members += 1;
            self.remove_member(id, out);
        }
    }

    // ----- merge (membership.md §2) ---------------------------------------------------

    fn zombie_ok(&self, m: &Member, inc: Incarnation, now: Instant) -> bool {
        match m.has_death.then_some(m.status_changed_at) {
            Some(at) if now.saturating_since(at) < self.cfg.zombie_window => {
                let death_inc = m.death_inc;
                inc.0 >= death_inc.0.saturating_add(self.cfg.zombie_inc_margin)
            }
            _ => true,
        }
    }

    /// Did `m` speak to us directly within the suspicion minimum of our detector role?
    fn heard_recently(&self, m: &Member, now: Instant) -> bool {
        let (min, _) = self.cfg.suspicion_bounds_for(self.detector_role());
        m.last_heard_at
            .get()
            .is_some_and(|t| now.saturating_since(t) < min)
    }

    fn detector_role(&self) -> Role {
        match self.mode {
            Mode::Member => self.me.role,
            Mode::Observer { probes } => probes,
        }
    }

    fn observed_role_ok(&self, role: Role) -> bool {
        match self.mode {
            Mode::Member => true,
            Mode::Observer { probes } => role == probes,
        }
    }

    /// Apply one claim. `direct` is true when the claim is the sender speaking for itself
    /// in this very datagram (which also confirms it). Returns false if the sender of a
    /// direct claim is held Dead/Left and may not return yet.
    fn apply_claim(&mut self, c: &Claim, direct: bool, now: Instant, out: &mut Outputs) -> bool {
        if c.node == self.me.node {
            if self.mode == Mode::Member {
                self.claim_about_self(c, now, out);
            }
            return true;
        }
        if c.inc > Incarnation::MAX {
            self.stats.implausible_claims += 1;
            return false;
        }
        let Some(m) = self.members.get(&c.node) else {
            if matches!(c.kind, ClaimKind::Alive | ClaimKind::Join) && self.observed_role_ok(c.role)
            {
                // Gossip never confirms; direct contact does.
                self.insert_member(c, direct, now, out);
                self.regossip_alive(c, now);
            }
            return true;
        };
        if c.inc.0 > m.inc.0.saturating_add(MAX_INC_JUMP) {
            self.stats.implausible_claims += 1;
            return !m.status.is_gone();
        }
        let (status, l) = (m.status, m.inc);
        // Fast path for the common case (most gossip and every push-pull entry): an
        // ALIVE we already hold, same incarnation and role. Nothing to change or spread.
        if !direct
            && matches!(c.kind, ClaimKind::Alive | ClaimKind::Join)
            && c.inc == l
            && matches!(status, Status::Alive | Status::Unconfirmed)
            && (c.role == m.role || c.role == Role::Unknown)
        {
            return true;
        }
        match (status, c.kind) {
            (_, ClaimKind::Alive | ClaimKind::Join) => self.apply_alive(c, direct, now, out),
            (Status::Unconfirmed, ClaimKind::Suspect) => true, // never Unconfirmed -> Suspect
            (Status::Unconfirmed, ClaimKind::Dead | ClaimKind::Left) => {
                if c.inc >= l {
                    let st = if c.kind == ClaimKind::Left {
                        Status::Left
                    } else {
                        Status::Dead
                    };
                    self.declare_gone(c.node, st, c.inc, c.from, now, out);
                }
                true
            }
            (Status::Alive, ClaimKind::Suspect) => {
                if c.inc >= l {
                    self.start_suspicion(c.node, c.inc, c.from, now, out);
                }
                true
            }
            (Status::Suspect, ClaimKind::Suspect) => {
                if c.inc == l {
                    if self.confirm_suspicion(c.node, c.from, now) {
                        self.enqueue(*c, now, false);
                    }
                } else if c.inc > l {
                    self.start_suspicion(c.node, c.inc, c.from, now, out);
                }
                true
            }
            (Status::Alive | Status::Suspect, ClaimKind::Dead)
                if c.inc >= l && self.heard_recently(m, now) =>
            {
                // Our own fresh evidence contradicts the verdict (typically a partition-
                // local death arriving after the heal): merge it as a suspicion the
                // subject can refute. A real crash cannot be contradicted like this: a
                // death is declared no earlier than `min` after its suspicion started.
                let suspect = Claim {
                    kind: ClaimKind::Suspect,
                    ..*c
                };
                self.apply_claim(&suspect, false, now, out)
            }
            (Status::Alive | Status::Suspect, ClaimKind::Dead | ClaimKind::Left) => {
                if c.inc >= l {
                    let st = if c.kind == ClaimKind::Left {
                        Status::Left
                    } else {
                        Status::Dead
                    };
                    self.declare_gone(c.node, st, c.inc, c.from, now, out);
                }
                true
            }
            (Status::Dead | Status::Left, ClaimKind::Suspect) => true,
            (Status::Dead | Status::Left, ClaimKind::Dead | ClaimKind::Left) => {
                let to_left = c.kind == ClaimKind::Left && status == Status::Dead && c.inc == l;
                if c.inc > l || to_left {
                    let st = if c.kind == ClaimKind::Left {
                        Status::Left
                    } else {
                        Status::Dead
                    };
                    self.transition(c.node, st, c.inc, now, out);
                    self.enqueue(*c, now, false);
                }
                true
            }
        }
    }

    fn apply_alive(&mut self, c: &Claim, direct: bool, now: Instant, out: &mut Outputs) -> bool {
        let m = &self.members[&c.node];
        let (status, l) = (m.status, m.inc);
        let mut accepted = false;
        match status {
            Status::Unconfirmed | Status::Alive => {
                if c.inc > l {
                    self.transition(c.node, status, c.inc, now, out);
                    accepted = true;
                }
            }
            Status::Suspect => {
                if c.inc > l {
                    self.transition(c.node, Status::Alive, c.inc, now, out);
                    accepted = true;
                }
            }
            Status::Dead | Status::Left => {
                if c.inc > l && self.zombie_ok(m, c.inc, now) {
                    let m = self.members.get_mut(&c.node).expect("exists");
                    m.has_death = false;
                    m.proactive_made = 0;
                    m.warned = false;
                    m.discovery = m.discovery.wrapping_add(1);
                    self.transition(c.node, Status::Alive, c.inc, now, out);
                    if self.members[&c.node].status == Status::Unconfirmed {
                        self.schedule_confirmation(c.node, now);
                    }
                    accepted = true;
                } else if direct {
                    return false;
                }
            }
        }
        if accepted || c.role != Role::Unknown {
            self.update_role(c.node, c.role, accepted, now);
        }
        if direct {
            self.confirm_member(c.node, now, out);
        }
        if accepted {
            self.regossip_alive(c, now);
        }
        true
    }

    /// Roles are self-asserted: take a role from a newer incarnation, or fill an unknown
    /// one; a learned role re-targets the confirmation strategy (membership.md §7).
    fn update_role(&mut self, node: NodeId, role: Role, newer: bool, now: Instant) {
        if role == Role::Unknown {
            return;
        }
        let m = self.members.get_mut(&node).expect("exists");
        if m.role == role || !(newer || m.role == Role::Unknown) {
            return;
        }
        m.role = role;
        if m.status == Status::Unconfirmed {
            self.schedule_confirmation(node, now);
        }
    }

    fn claim_about_self(&mut self, c: &Claim, now: Instant, out: &mut Outputs) {
        match c.kind {
            ClaimKind::Alive | ClaimKind::Join => {
                if c.inc > self.inc {
                    self.refute(c.inc, ClaimKind::Suspect, now, out);
                }
            }
            ClaimKind::Suspect | ClaimKind::Dead | ClaimKind::Left => {
                if self.leaving && c.kind != ClaimKind::Suspect {
                    return;
                }
                // A burial must be answered with an incarnation its zombie guard accepts
                // (>= accused + margin), even if we already moved past `accused` by
                // refuting a suspicion: otherwise the burier rejects us for the whole
                // zombie window (seen: 60 s after a partition healed).
                let margin = match c.kind {
                    ClaimKind::Suspect => 0,
                    _ => self.cfg.zombie_inc_margin,
                };
                if c.inc.0.saturating_add(margin) >= self.inc.0 {
                    self.refute(c.inc, c.kind, now, out);
                } else {
                    let me = self.self_claim(ClaimKind::Alive);
                    self.enqueue(me, now, true);
                }
            }
        }
    }

    /// Refute an accusation at `accused`: `own := accused + 1` (ML). A DEAD/LEFT
    /// accusation is answered with `accused + zombie_inc_margin`, so observers that
    /// buried us let us back at once instead of after the zombie window: the owner is
    /// the only one who can issue it, which is exactly what the zombie guard asks for.
    /// At most `refutations_per_window` bumps per window; the rest wait, never dropped.
    fn refute(&mut self, accused: Incarnation, kind: ClaimKind, now: Instant, out: &mut Outputs) {
        if now.saturating_since(self.refute_window_start) >= self.cfg.refutation_window {
            self.refute_window_start = now;
            self.refutes_in_window = 0;
        }
        if self.refutes_in_window >= self.cfg.refutations_per_window {
            self.stats.refutations_deferred += 1;
            let worse = match self.deferred_refute {
                Some((inc, _)) => accused > inc,
                None => true,
            };
            if worse {
                self.deferred_refute = Some((accused, kind));
                self.arm_housekeeping(now);
            }
            return;
        }
        self.refutes_in_window += 1;
        let bump = if matches!(kind, ClaimKind::Dead | ClaimKind::Left) {
            self.cfg.zombie_inc_margin.max(1)
        } else {
            1
        };
        let next = Incarnation(accused.0.saturating_add(bump).min(Incarnation::MAX.0));
        if next <= self.inc {
            return;
        }
        self.inc = next;
        self.stats.refutations += 1;
        self.event(
            out,
            Event::SelfIncarnation {
                cluster: self.me.cluster,
                inc: next,
            },
        );
        self.lhm_raise(1, out);
        let me = self.self_claim(ClaimKind::Alive);
        self.enqueue(me, now, true);
    }

    // ----- messages -----------------------------------------------------------------

    fn on_message(&mut self, env: Envelope, now: Instant, out: &mut Outputs) {
        let from_observer = env.flags & wire::FLAG_OBSERVER != 0;
        let sender = Claim {
            kind: ClaimKind::Alive,
            node: env.sender,
            addr: env.sender_addr,
            inc: env.sender_inc,
            role: env.sender_role,
            from: env.sender,
        };
        if env.sender == self.me.node {
            self.stats.misdirected += 1;
            return;
        }
        // JOIN is checked before the sender counts as contact (zombie guard on its claim).
        if let Body::Join { protocol_major, .. } = env.body {
            if let Some(reason) = self.join_refusal(&env, protocol_major, now) {
                self.send(
                    env.sender_addr,
                    Body::Nack {
                        seq: 0,
                        target: env.sender,
                        reason,
                    },
                    out,
                );
                return;
            }
        }
        let sender_ok = from_observer || self.apply_claim(&sender, true, now, out);
        match env.body {
            Body::Ping {
                seq,
                target,
                buddy,
                gossip,
            } => {
                if let Some(b) = buddy {
                    self.apply_claim(&b, false, now, out);
                }
                self.apply_gossip(&gossip, now, out);
                if target != self.me.node {
                    self.stats.misdirected += 1;
                    return;
                }
                if !sender_ok {
                    self.tell_gone(env.sender, env.sender_addr, out);
                    return;
                }
                let gossip = self.piggyback(None);
                self.send(env.sender_addr, Body::Ack { seq, gossip }, out);
            }
            Body::Ack { seq, gossip } => {
                self.apply_gossip(&gossip, now, out);
                self.on_ack(seq, env.sender, now, out);
            }
            Body::PingReq {
                seq,
                target,
                target_addr,
                want_nack,
                gossip,
                ..
            } => {
                self.apply_gossip(&gossip, now, out);
                if !sender_ok {
                    self.tell_gone(env.sender, env.sender_addr, out);
                    return;
                }
                self.help(
                    seq,
                    target,
                    target_addr,
                    want_nack,
                    env.sender_addr,
                    now,
                    out,
                );
            }
            Body::IndirectAck { seq, target } => {
                if self
                    .round
                    .as_ref()
                    .is_some_and(|r| r.seq == seq && r.target == target)
                {
                    self.round_succeeded(now, out);
                } else {
                    self.stats.stale_replies += 1;
                }
            }
            Body::Nack {
                seq,
                target,
                reason,
            } => match reason {
                NackReason::VersionMismatch
                | NackReason::VersionRequired
                | NackReason::ZombieRejected => {
                    if !self.joined {
                        self.event(
                            out,
                            Event::JoinRejected {
                                cluster: self.me.cluster,
                                reason,
                            },
                        );
                    }
                }
                _ => {
                    if let Some(r) = self.round.as_mut() {
                        if r.seq == seq && r.target == target && r.indirect {
                            r.nacks = r.nacks.saturating_add(1);
                        }
                    }
                }
            },
            Body::Join { .. } => {
                // Accepted (the sender is Alive and confirmed by now): JOIN gossip and a
                // snapshot of the table.
                let join = Claim {
                    kind: ClaimKind::Join,
                    ..sender
                };
                self.enqueue(join, now, false);
                let mut snapshot = Vec::with_capacity(JOIN_SNAPSHOT_ENTRIES);
                snapshot.push(self.self_claim(ClaimKind::Alive));
                self.table_claims(JOIN_SNAPSHOT_ENTRIES - 1, Some(env.sender), &mut snapshot);
                self.send(
                    env.sender_addr,
                    Body::JoinAck {
                        accepted: true,
                        reason: None,
                        snapshot,
                    },
                    out,
                );
            }
            Body::JoinAck {
                accepted,
                reason,
                snapshot,
            } => {
                if accepted {
                    self.joined = true;
                    self.apply_snapshot(&snapshot, env.sender, false, now, out);
                    // The snapshot is one datagram: fetch the rest at once.
                    self.send_push_pull(env.sender_addr, false, out);
                } else {
                    self.event(
                        out,
                        Event::JoinRejected {
                            cluster: self.me.cluster,
                            reason: reason.unwrap_or(NackReason::Unknown),
                        },
                    );
                }
            }
            Body::Leave => {
                let left = Claim {
                    kind: ClaimKind::Left,
                    ..sender
                };
                self.apply_claim(&left, false, now, out);
            }
            Body::Notice { gossip } => self.apply_gossip(&gossip, now, out),
            Body::PushPull { reply, entries } => {
                self.apply_snapshot(&entries, env.sender, from_observer, now, out);
                if reply {
                    self.joined = true;
                } else {
                    self.send_push_pull(env.sender_addr, true, out);
                }
            }
        }
    }

    fn join_refusal(&self, env: &Envelope, major: u16, now: Instant) -> Option<NackReason> {
        if self.mode != Mode::Member {
            return Some(NackReason::Unknown);
        }
        if major != self.cfg.protocol_major {
            return Some(NackReason::VersionMismatch);
        }
        match self.members.get(&env.sender) {
            Some(m) if m.status.is_gone() && !self.zombie_ok(m, env.sender_inc, now) => {
                Some(NackReason::ZombieRejected)
            }
            _ => None,
        }
    }

    /// Merge a full-state snapshot (push-pull, JOIN_ACK) from `sender`.
    ///
    /// Two refinements of "merge per §2", both for safety after partitions:
    /// - a snapshot's DEAD about someone else is taken as a SUSPECT accused by the
    ///   sender (memberlist's `mergeState` does the same): a stale verdict from the other
    ///   side of a healed partition must not kill a peer we can reach; it gets a
    ///   suspicion it can refute. Our own death (about self) keeps its meaning, so we
    ///   refute it with the zombie-safe bump.
    /// - an observer's snapshot is outside knowledge of this cluster: only its claims
    ///   about us are used (to refute); its verdicts about others are ignored.
    fn apply_snapshot(
        &mut self,
        claims: &[Claim],
        sender: NodeId,
        from_observer: bool,
        now: Instant,
        out: &mut Outputs,
    ) {
        // A snapshot is anti-entropy, not news: re-gossiping every entry of a
        // 1000-member table would saturate every queue at a mass join for no gain.
        self.merging_snapshot = true;
        for c in claims.iter().take(wire::MAX_SNAPSHOT_ENTRIES) {
            if c.node == self.me.node {
                self.apply_claim(c, false, now, out);
            } else if from_observer {
                continue;
            } else if c.kind == ClaimKind::Dead {
                let suspect = Claim {
                    kind: ClaimKind::Suspect,
                    from: sender,
                    ..*c
                };
                self.apply_claim(&suspect, false, now, out);
            } else {
                self.apply_claim(c, false, now, out);
            }
        }
        self.merging_snapshot = false;
        for node in std::mem::take(&mut self.discovered_in_snapshot) {
            if self.members.contains_key(&node) {
                self.schedule_confirmation(node, now);
            }
        }
    }

    fn apply_gossip(&mut self, claims: &[Claim], now: Instant, out: &mut Outputs) {
        for c in claims.iter().take(wire::MAX_SNAPSHOT_ENTRIES) {
            self.apply_claim(c, false, now, out);
        }
    }

    fn on_ack(&mut self, seq: u32, sender: NodeId, now: Instant, out: &mut Outputs) {
        if self
            .round
            .as_ref()
            .is_some_and(|r| r.seq == seq && r.target == sender)
        {
            self.round_succeeded(now, out);
        } else if let Some(help) = self.helps.remove(&seq) {
            self.timers.cancel(help.timer);
            if help.target == sender {
                self.send(
                    help.requester_addr,
                    Body::IndirectAck {
                        seq: help.requester_seq,
                        target: sender,
                    },
                    out,
                );
            }
        } else if self.proactive.get(&seq).is_some_and(|(n, _)| *n == sender) {
            let (_, key) = self.proactive.remove(&seq).expect("present");
            self.timers.cancel(key);
        } else {
            self.stats.stale_replies += 1;
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn help(
        &mut self,
        requester_seq: u32,
        target: NodeId,
        target_addr: Addr,
        want_nack: bool,
        requester_addr: Addr,
        now: Instant,
        out: &mut Outputs,
    ) {
        let nack = |this: &mut Self, reason, out: &mut Outputs| {
            if want_nack {
                this.send(
                    requester_addr,
                    Body::Nack {
                        seq: requester_seq,
                        target,
                        reason,
                    },
                    out,
                );
            }
        };
        if !self.degradation.level().helps_indirect()
            || self.helps.len() >= self.cfg.max_pending_helps
        {
            self.stats.helps_refused += 1;
            return nack(self, NackReason::Busy, out);
        }
        // Unknown, or gone for good: a member that left is never probed (invariant 8).
        if self
            .members
            .get(&target)
            .is_none_or(|m| m.status == Status::Left)
        {
            return nack(self, NackReason::Unknown, out);
        }
        let seq = self.seq();
        let timer = self.at(now + self.help_wait(), Timer::HelpTimeout { seq });
        self.helps.insert(
            seq,
            Help {
                timer,
                requester_addr,
                requester_seq,
                target,
                want_nack,
            },
        );
        self.send_ping(seq, target, target_addr, out);
    }

    /// A datagram from a member we hold Dead/Left: tell it, so it refutes or stays away.
    fn tell_gone(&mut self, node: NodeId, addr: Addr, out: &mut Outputs) {
        let Some(m) = self.members.get(&node) else {
            return;
        };
        let kind = if m.status == Status::Left {
            ClaimKind::Left
        } else {
            ClaimKind::Dead
        };
        let claim = self.claim_of(m, kind, self.me.node);
        self.send(
            addr,
            Body::Notice {
                gossip: vec![claim],
            },
            out,
        );
    }

    fn heard_from(&mut self, node: NodeId, now: Instant, out: &mut Outputs) {
        if self.members.get(&node).is_some_and(|m| !m.status.is_gone()) {
            self.confirm_member(node, now, out);
        }
    }

    // ----- join, leave, anti-entropy (membership.md §4) -------------------------------

    fn join(&mut self, seeds: Vec<Addr>, now: Instant, out: &mut Outputs) {
        self.seeds = seeds;
        self.seeds.retain(|a| *a != self.me.addr);
        self.seeds.truncate(64);
        self.joined = false;
        self.join_attempts_left = self.cfg.join_attempts.saturating_sub(1);
        self.send_join(now, out);
    }

    fn send_join(&mut self, now: Instant, out: &mut Outputs) {
        for i in 0..self.seeds.len() {
            let seed = self.seeds[i];
            match self.mode {
                Mode::Member => self.send(
                    seed,
                    Body::Join {
                        protocol_major: self.cfg.protocol_major,
                        protocol_minor: self.cfg.protocol_minor,
                    },
                    out,
                ),
                Mode::Observer { .. } => self.send_push_pull(seed, false, out),
            }
        }
        if self.join_attempts_left > 0 {
            let wait = self.jittered(self.cfg.join_retry());
            self.at(now + wait, Timer::JoinRetry);
        }
    }

    fn leave(&mut self, _now: Instant, out: &mut Outputs) {
        if self.leaving || self.mode != Mode::Member {
            self.leaving = true;
            return;
        }
        let targets: Vec<Addr> = self
            .members
            .values()
            .filter(|m| m.status.is_live())
            .map(|m| m.addr)
            .collect();
        for addr in targets {
            self.send(addr, Body::Leave, out);
        }
        self.leaving = true;
        self.timers.clear();
        self.member_timers.clear();
        self.passive_warn.clear();
        self.passive_remove.clear();
    }

    /// Heal partitions without an operator: push-pull with a random member we hold Dead
    /// (its reply refutes our view, our table makes it refute its own death), and re-join
    /// the seeds while nobody is alive.
    fn reconnect(&mut self, now: Instant, out: &mut Outputs) {
        if self.live_count == 0 && !self.seeds.is_empty() {
            let seed = self.seeds[self.rng.below(self.seeds.len())];
            self.stats.reconnects += 1;
            match self.mode {
                Mode::Member => self.send(
                    seed,
                    Body::Join {
                        protocol_major: self.cfg.protocol_major,
                        protocol_minor: self.cfg.protocol_minor,
                    },
                    out,
                ),
                Mode::Observer { .. } => self.send_push_pull(seed, false, out),
            }
        }
        if self.dead_count == 0 {
            return;
        }
        let window = self.cfg.tombstone;
        let mut dead: Vec<NodeId> = self
            .members
            .values()
            .filter(|m| {
                m.status == Status::Dead
                    && m.has_death
                    && now.saturating_since(m.status_changed_at) < window
            })
            .map(|m| m.id)
            .collect();
        if dead.is_empty() {
            return;
        }
        dead.sort_unstable();
        let pick = dead[self.rng.below(dead.len())];
        let addr = self.members[&pick].addr;
        self.stats.reconnects += 1;
        self.send_push_pull(addr, false, out);
    }

    fn send_push_pull(&mut self, to: Addr, reply: bool, out: &mut Outputs) {
        let mut entries = Vec::with_capacity(self.members.len() + 1);
        if self.mode == Mode::Member {
            entries.push(self.self_claim(ClaimKind::Alive));
        }
        self.table_claims(wire::MAX_SNAPSHOT_ENTRIES - 1, None, &mut entries);
        self.stats.push_pulls += 1;
        let env = self.envelope(Body::PushPull { reply, entries });
        match wire::encode(&env, Channel::Frame) {
            Ok(bytes) => out.push(Output::Frame { to, bytes }),
            Err(_) => self.stats.encode_failures += 1,
        }
    }

    /// The table as claims, in the table's (deterministic) order.
    fn table_claims(&self, max: usize, skip: Option<NodeId>, out: &mut Vec<Claim>) {
        let start = out.len();
        for m in self.members.values() {
            if Some(m.id) == skip {
                continue;
            }
            let (kind, from) = match m.status {
                Status::Unconfirmed | Status::Alive => (ClaimKind::Alive, m.id),
                Status::Suspect => (
                    ClaimKind::Suspect,
                    self.suspicions
                        .get(&m.id)
                        .map_or(self.me.node, |s| s.originator),
                ),
                Status::Dead => (ClaimKind::Dead, self.me.node),
                Status::Left => (ClaimKind::Left, m.id),
            };
            out.push(self.claim_of(m, kind, from));
        }
        // Table order is deterministic already; no need to sort 1000 entries per sync.
        out.truncate(start + max);
    }

    fn housekeeping(&mut self, now: Instant, out: &mut Outputs) {
        if let Some(level) = self.degradation.evaluate(self.lhm.score(), now) {
            self.event(
                out,
                Event::Degradation {
                    cluster: self.me.cluster,
                    level,
                },
            );
        }
        if let Some((inc, kind)) = self.deferred_refute {
            if now.saturating_since(self.refute_window_start) >= self.cfg.refutation_window {
                self.deferred_refute = None;
                if inc >= self.inc {
                    self.refute(inc, kind, now, out);
                }
            }
        }
    }

    // ----- rate limiting (membership.md §5) ------------------------------------------

    fn admit(&mut self, from: Addr, now: Instant) -> bool {
        if self.buckets.len() >= self.cfg.rate_limit_senders && !self.buckets.contains_key(&from) {
            // Evict the least recently active tenth, in one pass (amortised).
            let mut by_age: Vec<(Instant, Addr)> =
                self.buckets.iter().map(|(a, b)| (b.last, *a)).collect();
            by_age.sort_unstable();
            for (_, a) in by_age
                .into_iter()
                .take(self.cfg.rate_limit_senders / 10 + 1)
            {
                self.buckets.remove(&a);
            }
        }
        let burst = self.cfg.rate_limit_burst;
        let rate = self.cfg.rate_limit_per_sec;
        let b = self.buckets.entry(from).or_insert(Bucket {
            tokens: burst,
            last: now,
        });
        let elapsed = now.saturating_since(b.last).as_micros() as f64 / 1e6;
        b.tokens = (b.tokens + elapsed * rate).min(burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    // ----- helpers ------------------------------------------------------------------

    fn random_member(&mut self, pred: impl Fn(&Member) -> bool) -> Option<NodeId> {
        if self.probe_list.is_empty() {
            return None;
        }
        for _ in 0..16 {
            let id = self.probe_list[self.rng.below(self.probe_list.len())];
            if self.members.get(&id).is_some_and(&pred) {
                return Some(id);
            }
        }
        None
    }

    fn claim_of(&self, m: &Member, kind: ClaimKind, from: NodeId) -> Claim {
        Claim {
            kind,
            node: m.id,
            addr: m.addr,
            inc: m.inc,
            role: m.role,
            from,
        }
    }

    fn self_claim(&self, kind: ClaimKind) -> Claim {
        Claim {
            kind,
            node: self.me.node,
            addr: self.me.addr,
            inc: self.inc,
            role: self.me.role,
            from: self.me.node,
        }
    }

    /// Spread an accepted ALIVE/JOIN claim onward as ALIVE (membership.md §5).
    fn regossip_alive(&mut self, c: &Claim, now: Instant) {
        let alive = Claim {
            kind: ClaimKind::Alive,
            ..*c
        };
        self.enqueue(alive, now, false);
    }

    fn enqueue(&mut self, claim: Claim, now: Instant, urgent: bool) {
        if self.mode != Mode::Member {
            return;
        }
        // While merging a snapshot only news is spread: suspicions (and anything about
        // us, which is urgent).
        if self.merging_snapshot && !urgent && claim.kind != ClaimKind::Suspect {
            return;
        }
        let limit = retransmit_limit(self.cfg.retransmit_mult, self.members.len() + 1);
        self.gossip.enqueue(claim, limit, now, urgent);
    }

    fn piggyback(&mut self, skip: Option<NodeId>) -> Vec<Claim> {
        let mut v = Vec::new();
        if self.mode == Mode::Member {
            let n = self
                .degradation
                .level()
                .piggyback(self.cfg.gossip_per_datagram);
            let (members, me) = (&self.members, self.me);
            self.gossip.select(n, skip, &mut v, |u| {
                let (addr, role) = if u.node == me.node {
                    (me.addr, me.role)
                } else {
                    let m = members.get(&u.node)?;
                    (m.addr, m.role)
                };
                Some(Claim {
                    kind: u.kind,
                    node: u.node,
                    addr,
                    inc: u.inc,
                    role,
                    from: u.from,
                })
            });
        }
        v
    }

    fn envelope(&self, body: Body) -> Envelope {
        Envelope {
            version: wire::WIRE_VERSION,
            cluster: self.me.cluster,
            sender: self.me.node,
            sender_addr: self.me.addr,
            sender_inc: self.inc,
            sender_role: self.me.role,
            flags: match self.mode {
                Mode::Member => 0,
                Mode::Observer { .. } => wire::FLAG_OBSERVER,
            },
            body,
        }
    }

    fn send(&mut self, to: Addr, body: Body, out: &mut Outputs) {
        let env = self.envelope(body);
        match wire::encode_datagram(&env) {
            Ok(bytes) => out.push(Output::Transmit { to, bytes }),
            Err(_) => self.stats.encode_failures += 1,
        }
    }

    fn event(&self, out: &mut Outputs, e: Event) {
        out.push(Output::Event(e));
    }

    fn lhm_event(&mut self, out: &mut Outputs) {
        if self.housekeeping_needed() {
            let now = self.last_now;
            self.arm_housekeeping(now);
        }
        self.event(
            out,
            Event::Lhm {
                cluster: self.me.cluster,
                score: self.lhm.score(),
            },
        );
    }

    fn lhm_raise(&mut self, by: u8, out: &mut Outputs) {
        if self.mode != Mode::Member {
            return; // observers take the node's score (SetLocalHealth)
        }
        if self.lhm.raise(by) {
            self.lhm_event(out);
        }
    }

    fn lhm_lower(&mut self, out: &mut Outputs) {
        if self.mode != Mode::Member {
            return;
        }
        if self.lhm.lower(1) {
            self.lhm_event(out);
        }
    }
}

/// memberlist's `pushPullScale`: above 32 members, full-state syncs slow down by
/// `ceil(log2 n - log2 32) + 1` so their total cost grows like n log n, not n^2.
pub fn push_pull_scale(n: usize) -> u32 {
    const THRESHOLD: usize = 32;
    if n <= THRESHOLD {
        return 1;
    }
    let extra = libm::ceil(libm::log2(n as f64) - libm::log2(THRESHOLD as f64));
    extra as u32 + 1
}

/// Sizes of the machine's bounded tables.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TableSizes {
    pub members: usize,
    pub gossip: usize,
    pub helps: usize,
    pub proactive: usize,
    pub rate_buckets: usize,
    pub timers: usize,
}
