//! SWIM membership with Lifeguard, role-aware peer confirmation, peer-health awareness
//! and per-job suspicion (AD-29/30/46, membership.md §1–§9).
//!
//! One machine per membership cluster a node takes part in. It probes members in a
//! shuffled round-robin (direct attempts, then k helpers), suspects with a Lifeguard
//! dynamic timeout, spreads claims by piggyback gossip and periodic push-pull, refutes
//! accusations about itself by incarnation, and drops peers it never heard from directly
//! after their role's confirmation timeout. An *observer* (a gate health-checking another
//! cluster's managers) runs the same machine but probes only one role, gossips nothing
//! and is never added to the observed cluster.
//!
//! Where things are: `probe` (§3 rounds, helpers), `detect` (§3.4/§6.3 suspicion and
//! death), `merge` (§2 claim precedence, refutation), `table` (status transitions),
//! `unconfirmed` (§7 lifecycle), `messages` (dispatch), `sync` (§4 join, leave,
//! push-pull, reconnect); the pure pieces are `gossip`, `lifeguard`, `suspicion`,
//! `confirmation`, `timers`, `member`, `rate` (§5 per-sender token buckets),
//! `health` (§9 peer-health records; the machine's side is `peer_health`),
//! `job_suspicion` (§9's job layer; the machine's side is `job_layer`) and
//! `config`. This file holds the machine's state, its public API and the timer
//! dispatch.

pub mod config;
pub mod confirmation;
pub mod digest;
pub mod gossip;
pub mod health;
pub mod job_suspicion;
pub mod lifeguard;
pub mod member;
pub mod oob;
pub mod suspicion;
pub mod timers;

mod detect;
mod job_layer;
mod latency;
mod merge;
mod messages;
mod peer_health;
mod probe;
mod rate;
mod sync;
mod table;
mod unconfirmed;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use config::{Config, INJECTED_BUGS};
pub use member::{Member, Status};

use crate::coords::{CoordEngine, VivaldiConfig, WireCoord};
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
use std::collections::VecDeque;
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
    /// AD-26: the node's job plane granted `node` a healthcheck extension: a suspicion
    /// of it runs `by` longer (`deadline = start + timeout(C) + sum(grants)`,
    /// membership.md §6.3). Nothing happens if it is not suspected.
    ExtensionGranted {
        node: NodeId,
        by: Duration,
    },
    /// The node's overload detector (AD-18) graded it anew: announced to peers as our
    /// health record (membership.md §9).
    OwnHealth {
        state: crate::backpressure::overload::OverloadState,
    },
    /// The job layer (membership.md §9): `from` (this node, or a source whose report
    /// the application relays) suspects `node` of failing `job`, a job of `job_size`
    /// nodes. Reported back as `Event::JobSuspicion`; never sent on the wire.
    SuspectForJob {
        job: crate::id::JobId,
        node: NodeId,
        job_size: u32,
        from: NodeId,
    },
    /// Ends `node`'s job suspicion or death mark for `job`: `inc = None` when the
    /// application heard from it about the job, `Some` for its incarnation (refutes an
    /// entry held below it).
    RefuteForJob {
        job: crate::id::JobId,
        node: NodeId,
        inc: Option<Incarnation>,
    },
    /// The application is done with `job`: its job-layer entries go.
    ClearJob {
        job: crate::id::JobId,
    },
    /// Probe `node` now, outside the round (AD-26: the job plane wants a liveness
    /// answer from a worker whose extension budget runs low). Its ACK, like the
    /// last-chance PING's, belongs to no round and counts as a stale reply; what
    /// matters is the direct contact it brings (`Member::last_heard_at`).
    ProbeNow {
        node: NodeId,
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
    /// Periodic syncs begun with a digest offer.
    pub sync_digests: u64,
    /// Offers answered with an equal digest: the full exchange was not needed.
    pub syncs_in_step: u64,
    pub reconnects: u64,
    pub evicted_members: u64,
    pub helps_refused: u64,
    pub encode_failures: u64,
    pub implausible_claims: u64,
    /// Pings sent to check a death a push-pull reported about an UNCONFIRMED member.
    pub death_checks: u64,
    /// Job suspicions refused (table full, unknown or not live node; §9).
    pub job_suspicions_rejected: u64,
    /// §9's OOB probes sent, answered in time, left unanswered, and not sent for a
    /// bound (the rate, the per-member gap, the probes in flight).
    pub oob_probes: u64,
    pub oob_answers: u64,
    pub oob_unanswered: u64,
    pub oob_held_back: u64,
    /// Suspicions an OOB answer extended (at most one extension each).
    pub oob_extensions: u64,
    /// PINGs the application asked for (`Input::ProbeNow`).
    pub probes_on_request: u64,
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
    DeathCheckTimeout {
        seq: u32,
    },
    Forget {
        node: NodeId,
    },
    JoinRetry,
    PushPull,
    Reconnect,
    Housekeeping,
    /// An OOB probe's wait for its answer is over (§9).
    OobTimeout {
        seq: u32,
    },
}

use timers::TimerKey;

#[derive(Clone, Debug)]
struct Round {
    seq: u32,
    target: NodeId,
    target_addr: Addr,
    attempt: usize,
    indirect: bool,
    /// The helpers asked, and which of them nacked (a duplicated NACK counts once).
    helpers: SmallVec<[NodeId; 4]>,
    nacked: SmallVec<[NodeId; 4]>,
    started_at: Instant,
    /// `T_p` for this round's target, fixed when the round starts (§3.1).
    timeout: Duration,
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

/// Claims more than this far above the known incarnation are implausible (membership.md §2).
const MAX_INC_JUMP: u32 = 1000;
/// JOIN_ACK snapshot entries: what fits one datagram with room to spare.
const JOIN_SNAPSHOT_ENTRIES: usize = 36;

/// The coordinate engine's random stream, derived from the machine's seed.
const COORD_RNG_STREAM: u64 = 0xC0_0D;

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
    /// The incarnation each member we declared dead died at (and is not back from):
    /// the zombie guard refuses it below `death_inc + margin` for the zombie window
    /// from `status_changed_at` (membership.md §2). Beside the table, not in each
    /// record: few members are dead at once. Dropped with the member.
    deaths: FxHashMap<NodeId, Incarnation>,
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
    /// relative to its discovery, so only the heads need checking: 5 bytes a member
    /// instead of a timer each (a node of a 1000-member cluster holds ~1000 of them).
    passive_warn: VecDeque<unconfirmed::PassiveEntry>,
    passive_remove: VecDeque<unconfirmed::PassiveEntry>,
    passive_sweep_at: Option<Instant>,
    /// Where our latest digest offer went (only its answer is acted on).
    sync_offered_to: Option<Addr>,
    gossip: GossipQueue,
    lhm: Lhm,
    degradation: Degradation,
    round: Option<Round>,
    round_counter: u64,
    next_seq: u32,
    helps: FxHashMap<u32, Help>,
    proactive: FxHashMap<u32, (NodeId, TimerKey)>,
    /// Pings checking a death a push-pull reported about an UNCONFIRMED member, by seq
    /// (see `check_reported_death`); at most `unconfirmed::MAX_DEATH_CHECKS`.
    death_checks: FxHashMap<u32, unconfirmed::DeathCheck>,
    /// Per-sender inbound token buckets (membership.md §5).
    rate: rate::RateLimiter,
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
    /// Vivaldi (AD-35), with its own random stream so switching coordinates off leaves
    /// every other random choice (probe order, helpers, jitter) unchanged.
    coords: CoordEngine,
    coord_rng: DetRng,
    last_coord_event: Option<Instant>,
    next_coord_expiry: Instant,
    /// Peer-health records (§9): `None` until a peer tells us it is loaded, and again
    /// once every record has gone, so a healthy cluster pays nothing for them.
    health: Option<Box<health::HealthTable>>,
    own_health: health::OwnHealth,
    /// §9's job layer: per-`(job, node)` suspicions the application raises.
    job_suspicions: job_suspicion::JobSuspicions,
    /// §9's out-of-band probes awaiting answers (`Config::oob`).
    oob: oob::OobProber,
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
        let mut coord_rng = DetRng::new(crate::rng::derive_seed(seed, COORD_RNG_STREAM));
        let coords = CoordEngine::new(
            VivaldiConfig::default(),
            cfg.coord_peers_max,
            &mut coord_rng,
        );
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
            deaths: FxHashMap::default(),
            live_count: 0,
            dead_count: 0,
            probe_list: Vec::new(),
            probe_idx: 0,
            timers: timers::TimerQueue::default(),
            member_timers: timers::TimerQueue::default(),
            passive_warn: Default::default(),
            passive_remove: Default::default(),
            passive_sweep_at: None,
            sync_offered_to: None,
            round: None,
            round_counter: 0,
            next_seq: 0,
            helps: FxHashMap::default(),
            proactive: FxHashMap::default(),
            death_checks: FxHashMap::default(),
            rate: rate::RateLimiter::default(),
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
            coords,
            coord_rng,
            last_coord_event: None,
            next_coord_expiry: now,
            health: None,
            own_health: health::OwnHealth::new(now),
            job_suspicions: Default::default(),
            oob: oob::OobProber::new(now),
            stats: Stats::default(),
        };
        m.at(first_round, Timer::RoundStart);
        m.at(first_push_pull, Timer::PushPull);
        let reconnect = m.cfg.reconnect_interval;
        m.at(now + reconnect, Timer::Reconnect);
        m
    }

    pub fn step(&mut self, input: Input<'_>, now: Instant) -> Outputs {
        let mut out = Outputs::new();
        self.step_into(input, now, &mut out);
        out
    }

    /// [`Membership::step`], appending to a caller's buffer (no per-layer copies).
    pub fn step_into(&mut self, input: Input<'_>, now: Instant, out: &mut Outputs) {
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
                    LagEffect::Raise(n) => self.lhm_raise(n, now, out),
                    LagEffect::Lower => self.lhm_lower(now, out),
                    LagEffect::None => {}
                }
                if self.housekeeping_needed() {
                    self.arm_housekeeping(now);
                }
            }
            Input::HeardFrom(node) => self.heard_from(node, now, out),
            Input::SetLocalHealth { score } => {
                if self.lhm.set_score(score) {
                    self.lhm_event(now, out);
                }
            }
            Input::OwnHealth { state } => self.set_own_health(state, now),
            Input::SuspectForJob {
                job,
                node,
                job_size,
                from,
            } => self.suspect_for_job(job, node, job_size, from, now, out),
            Input::RefuteForJob { job, node, inc } => self.refute_for_job(job, node, inc, out),
            Input::ClearJob { job } => self.clear_job(job, out),
            Input::ProbeNow { node } => {
                let live = self
                    .members
                    .get(&node)
                    .is_some_and(|m| m.confirmed() && m.status.is_live());
                if live && !self.leaving {
                    let addr = self.members.addr_of(&self.members[&node]);
                    let seq = self.seq();
                    self.send_ping(seq, node, addr, now, out);
                    self.stats.probes_on_request += 1;
                }
            }
            Input::ExtensionGranted { node, by } => {
                if let Some(s) = self.suspicions.get_mut(&node) {
                    s.granted += by;
                    let deadline = s.deadline();
                    self.at(deadline.max(now), Timer::Suspicion { node });
                }
            }
        }
    }

    /// Handle an already-decoded message (the node decodes once to route by cluster).
    pub fn handle(&mut self, env: Envelope, from: Addr, now: Instant, out: &mut Outputs) {
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
        // Pairwise, not an iterator over an array: this runs after every step, and the
        // iterator cost 2% of all instructions (callgrind, `nodes-100`).
        let earliest = |a: Option<Instant>, b: Option<Instant>| match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        earliest(
            earliest(self.timers.next(), self.member_timers.next()),
            self.job_suspicions.next_deadline(),
        )
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
    /// Where member `node` is reached, if it is in the table.
    pub fn member_addr(&self, node: NodeId) -> Option<Addr> {
        self.members.addr(&node)
    }
    /// The address of `m`, a record from [`Membership::members`] or [`Membership::member`].
    pub fn addr_of(&self, m: &Member) -> Addr {
        self.members.addr_of(m)
    }
    /// See `Node::warm`: reads the table's size and, for a sender, its member record
    /// and peer coordinate. Changes nothing.
    pub fn warm(&self, from: Option<NodeId>) -> usize {
        let sender = from.map_or(0, |f| {
            self.members.get(&f).map_or(0, |m| m.inc.0 as usize) + self.coords.has_peer(f) as usize
        });
        self.members.len() + sender
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
            // Death checks and OOB probes are proactive probes too.
            proactive: self.proactive.len() + self.death_checks.len() + self.oob.len(),
            rate_buckets: self.rate.len(),
            coord_peers: self.coords.peer_count(),
            health_records: self.health_records(),
            job_suspicions: self.job_suspicions.len(),
            timers: self.timers.len()
                + self.member_timers.len()
                + self.passive_warn.len()
                + self.passive_remove.len(),
        }
    }

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
        // A late Tick (paused process) fires every due timer, the three queues in time
        // order (the job layer's deadlines last among equals).
        while !self.leaving {
            let hot = self.timers.next().filter(|t| *t <= now);
            let member = self.member_timers.next().filter(|t| *t <= now);
            if let Some(due) = self.job_suspicions.next_deadline().filter(|t| *t <= now) {
                if hot.is_none_or(|t| due < t) && member.is_none_or(|t| due < t) {
                    self.expire_job_suspicions(due, out);
                    continue;
                }
            }
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
                        m.set_last_attempt_failed(true);
                    }
                    self.member_timers.at(now, Timer::Confirm { node });
                }
            }
            Timer::DeathCheckTimeout { seq } => self.death_check_timeout(seq, now, out),
            Timer::Forget { node } => {
                let due = self.members.get(&node).is_some_and(|m| {
                    m.status.is_gone() && now >= m.status_changed_at.get() + self.cfg.tombstone
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
                if let Some(peer) =
                    self.random_member(|m| m.status == Status::Alive && m.confirmed())
                {
                    let addr = self.members.addr_of(&self.members[&peer]);
                    // An observer keeps only the roles it watches, so its table never
                    // matches a member's: it pulls whole tables.
                    if self.cfg.sync_digests && self.mode == Mode::Member {
                        self.offer_sync_digest(addr, out);
                    } else {
                        self.send_push_pull(addr, false, out);
                    }
                }
            }
            Timer::Reconnect => {
                self.at(now + self.cfg.reconnect_interval, Timer::Reconnect);
                // Peer coordinates not refreshed for 300 s go (membership.md §8); a
                // check every minute keeps each at most 360 s.
                if now >= self.next_coord_expiry {
                    self.next_coord_expiry = now + crate::time::secs(60);
                    self.coords.expire(now);
                }
                self.expire_health(now);
                self.reconnect(now, out);
                // Buckets that have refilled are forgotten (see `rate`).
                self.rate
                    .sweep(now, self.cfg.rate_limit_burst, self.cfg.rate_limit_per_sec);
            }
            Timer::Housekeeping => {
                self.housekeeping_armed = false;
                self.housekeeping(now, out);
                if self.housekeeping_needed() {
                    self.arm_housekeeping(now);
                }
            }
            Timer::OobTimeout { seq } => self.oob_timeout(seq),
        }
    }

    fn jittered(&mut self, d: Duration) -> Duration {
        scale(d, 0.8 + 0.4 * self.rng.unit())
    }

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
            addr: self.members.addr_of(m),
            inc: m.inc,
            role: m.role(),
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
        // Sent with the table's address and role (the claim we received may name others).
        let (addr, role) = if claim.node == self.me.node {
            (self.me.addr, self.me.role)
        } else {
            match self.members.get(&claim.node) {
                Some(m) => (self.members.addr_of(m), m.role()),
                // Only members and ourselves are ever gossiped about.
                None => return,
            }
        };
        let limit = retransmit_limit(self.cfg.retransmit_mult, self.members.len() + 1);
        self.gossip.enqueue(
            Claim {
                addr,
                role,
                ..claim
            },
            limit,
            now,
            urgent,
        );
    }

    /// Gossip for a datagram to `to`: as many updates as our degradation level allows,
    /// cut to 75/50/25% for a busy/stressed/overloaded receiver (§9); none about `skip`.
    fn piggyback(&mut self, skip: Option<NodeId>, to: NodeId, now: Instant) -> Vec<Claim> {
        let mut v = Vec::new();
        if self.mode == Mode::Member {
            let n = self
                .degradation
                .level()
                .piggyback(self.cfg.gossip_per_datagram);
            let n = health::gossip_share(self.peer_health(to, now), n);
            self.gossip.select(n, skip, &mut v);
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

    /// The LHM changed (every change goes through here).
    fn lhm_event(&mut self, now: Instant, out: &mut Outputs) {
        if self.housekeeping_needed() {
            self.arm_housekeeping(now);
        }
        self.relax_suspicions(now);
        self.event(
            out,
            Event::Lhm {
                cluster: self.me.cluster,
                score: self.lhm.score(),
            },
        );
    }

    fn lhm_raise(&mut self, by: u8, now: Instant, out: &mut Outputs) {
        if self.mode != Mode::Member {
            return; // observers take the node's score (SetLocalHealth)
        }
        if self.lhm.raise(by) {
            self.lhm_event(now, out);
        }
    }

    fn lhm_lower(&mut self, now: Instant, out: &mut Outputs) {
        if self.mode != Mode::Member {
            return;
        }
        if self.lhm.lower(1) {
            self.lhm_event(now, out);
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
    /// Peer coordinates kept (at most one per member; expire 300 s after last seen).
    pub coord_peers: usize,
    /// Peer-health records kept (members only; at most 500; stale after 30 s).
    pub health_records: usize,
    /// §9's job layer: suspected or job-dead `(job, node)` pairs (at most 10,000; a
    /// job's go when it is cleared, a node's when it leaves the global layer).
    pub job_suspicions: usize,
    pub timers: usize,
}
