//! Invariant checkers and membership metrics (membership.md §11), fed by every event.
//!
//! The checker mirrors each node's membership view from the `Member` events the machines
//! emit (every table transition is one), so it can judge each transition against the
//! simulator's ground truth: who is running, who is partitioned, who heard from whom.
//! Consistency is tracked incrementally (a count of (observer, subject) pairs whose view
//! disagrees with the truth), so checking stays O(1) per event and O(N) per crash.

use crate::report::{Detection, FalsePositive, PartitionReport, SideReport, Violation};
use meridian_core::io::{Event, MemberView};
use meridian_core::jobs::{JobEvent, JobState};
use meridian_core::leadership::ElectionEvent;
use meridian_core::membership::confirmation::strategy;
use meridian_core::membership::job_suspicion::JobChange;
use meridian_core::membership::lifeguard::LHM_MAX_SCORE;
use meridian_core::membership::Status;
use meridian_core::timeout::job::TimeoutBy;
use meridian_core::timeout::workflow::WorkflowState;
use meridian_core::wire::MAX_DATAGRAM;
use meridian_core::{FenceToken, Instant, JobId, NodeId, Role};

const ABSENT: u8 = 0;
const MAX_VIOLATIONS_KEPT: usize = 200;
const MAX_FALSE_POSITIVES_KEPT: usize = 200;

fn code(s: Status) -> u8 {
    match s {
        Status::Unconfirmed => 1,
        Status::Alive => 2,
        Status::Suspect => 3,
        Status::Dead => 4,
        Status::Left => 5,
    }
}

fn gone(code: u8) -> bool {
    code == ABSENT || code >= 4
}

/// What one observer holds about one subject: its status code and incarnation, side by
/// side in 5 bytes. Judging a pair reads both; held in two arrays they were two cache
/// misses for every membership event of a large run (a 2,000-node matrix is 4 million
/// cells), here they are one.
#[derive(Clone, Copy)]
struct Cell([u8; 5]);

impl Cell {
    const ABSENT: Cell = Cell([ABSENT, 0, 0, 0, 0]);
    fn new(status: u8, inc: u32) -> Cell {
        let [a, b, c, d] = inc.to_le_bytes();
        Cell([status, a, b, c, d])
    }
    fn status(self) -> u8 {
        self.0[0]
    }
    fn inc(self) -> u32 {
        u32::from_le_bytes([self.0[1], self.0[2], self.0[3], self.0[4]])
    }
    /// Whether this view agrees with the truth about a subject that is `up` (at
    /// incarnation `inc`) or not: alive at its incarnation, or gone.
    fn agrees(self, up: bool, inc: u32) -> bool {
        if up {
            self.status() == code(Status::Alive) && self.inc() == inc
        } else {
            gone(self.status())
        }
    }
}

/// What the simulator knows that the nodes do not.
pub struct Truth<'a> {
    pub up: &'a [bool],
    pub paused: &'a [bool],
    /// Whether the path from the first node to the second is cut now or was cut at any
    /// moment since the given simulated time (µs).
    pub cut_since: &'a dyn Fn(usize, usize, u64) -> bool,
}

/// leadership.md §4.6's bound for a gate takeover, from the moment the new owner saw
/// the old one dead: grace 10 s + check period 2 s + jitter 2 s, plus 1 ms of slack.
const ORPHAN_TAKEOVER_MAX_US: u64 = 14_001_000;

/// A `skew` fault as it reached one node's clock.
#[derive(Debug, Clone, Copy)]
struct ClockChange {
    at: u64,
    node: usize,
    jump_us: u64,
    drift_ppm: f64,
}

pub struct Checker {
    n: usize,
    role: Vec<Role>,
    dc: Vec<usize>,
    names: Vec<String>,
    /// `view[o * n + s]`: what `o` holds about `s`.
    view: Vec<Cell>,
    own_inc: Vec<u32>,
    max_emitted: Vec<u32>,
    up: Vec<bool>,
    /// When each node last started (µs): a manager up since before a job's end may
    /// hold its tombstone (`run-after-end`).
    started_at: Vec<u64>,
    heard: Vec<u64>,
    mismatches: usize,
    consistent: bool,
    pub converged_at_ms: Option<u64>,
    pub detections: Vec<Detection>,
    active_crash: Vec<Option<usize>>,
    pub false_positives: u64,
    pub false_positive_details: Vec<FalsePositive>,
    pub checked: u64,
    pub violations: Vec<Violation>,
    pub violations_total: u64,
    pub suspicions: u64,
    pub refutations: u64,
    pub partitions: Vec<PartitionReport>,
    /// Tracked (observer, subject) pairs cut by the partition in force.
    cut_pairs: Vec<(usize, usize)>,
    side: Vec<u16>,
    /// Per observer: the suspect whose suspicion just expired and when (simulated µs) the
    /// evidence for that verdict began; consumed by the `Member` event that follows.
    verdict_evidence: Vec<Option<(u32, u64)>>,
    /// Per subject: the highest incarnation at which some node declared it dead by its
    /// own, justified verdict. Adopting that verdict from gossip is not a new declaration.
    justified_death: Vec<Option<u32>>,
    /// Election safety (leadership.md §4.1): the leader of each `(group, term)`.
    leader_of_term: std::collections::BTreeMap<(u32, u64), usize>,
    pub elections: u64,
    pub leaders_per_term_max: u64,
    pub elected_per_group: std::collections::BTreeMap<u32, u64>,
    /// Per job id: (attempted at µs, accepted by a gate with this many DCs, ended at µs
    /// with this state).
    pub jobs: Vec<JobTrack>,
    pub takeovers: u64,
    pub gate_takeovers: u64,
    /// leadership.md §4.2: the token a worker's register for a job last accepted (its
    /// `WorkflowStarted` events are its accepted operations). Not persisted: a restart
    /// starts over.
    worker_register: std::collections::BTreeMap<(usize, u64), FenceToken>,
    /// Every `skew` fault applied: what each node's clock was set to do, so timing
    /// checks can allow for it (see [`Checker::clock_slack_us`]).
    clock_changes: Vec<ClockChange>,
    /// leadership.md §4.6: which gate leads each job, and when each gate saw each other
    /// gate die (gate cluster).
    job_gate: std::collections::BTreeMap<u64, usize>,
    gate_dead_seen: std::collections::BTreeMap<(usize, usize), u64>,
    /// When a gate-cluster leader took in an orphan a follower handed it, per (gate,
    /// job): it learned of that orphan then (dropped at the takeover or the job's end).
    orphans_taken_in: std::collections::BTreeMap<(usize, u64), u64>,
    /// Per gate: when its majority (which other gates answer it) last changed.
    gate_majority_changed: std::collections::BTreeMap<usize, u64>,
    /// Per gate: since when it leads the gate cluster, the one gate that takes jobs
    /// over (absent: it does not lead now).
    gate_leader_since: std::collections::BTreeMap<usize, u64>,
    /// Per node: the simulated intervals it spent paused, in order and disjoint (one per
    /// `pause` fault at most, so bounded by the scenario).
    paused_spans: Vec<Vec<(u64, u64)>>,
    /// leadership.md §4.4: who claimed each `(job, DC or gate, token)`.
    claims: std::collections::BTreeMap<(u64, u16, u64), usize>,
    /// Highest dispatch token that started each workflow at each worker, per (job,
    /// worker, workflow) (jobs.md §7.1). Dropped when the job ends.
    started_token: std::collections::BTreeMap<(u64, usize, u32), FenceToken>,
    /// jobs.md §7.8: the last state each manager moved each workflow to, per (manager,
    /// job, workflow). Dropped when the manager forgets the job or restarts.
    wf_state: std::collections::BTreeMap<(usize, u64, u32), WorkflowState>,
    /// jobs.md §7.3: which gate declared which job timed out, and which manager ran
    /// which job's timeout action.
    declared: std::collections::BTreeSet<(usize, u64)>,
    acted: std::collections::BTreeSet<(usize, u64)>,
    /// jobs.md §7.6: each (manager, worker)'s last grant in its cycle: (nth, µs).
    last_grant: std::collections::BTreeMap<(usize, u32), (u32, u64)>,
    /// membership.md §9/§11.12: the job-layer entries (suspected or job-dead) each
    /// observer holds, as `(observer, subject, job)`, mirrored from its events.
    job_entries: std::collections::BTreeSet<(usize, usize, u64)>,
    /// Pairs whose subject left the observer's global layer in the event being stepped:
    /// by the end of the step the observer must hold no job entry about it.
    job_gone_pending: Vec<(usize, usize)>,
    pub job_layer: JobLayerReport,
}

/// What the job layer did (membership.md §9), over every node.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct JobLayerReport {
    pub suspected: u64,
    pub confirmed: u64,
    /// Pairs declared dead for their job (their global status untouched).
    pub dead: u64,
    pub refuted: u64,
    pub cleared: u64,
    pub rejected: u64,
}

#[derive(Clone, Debug, Default)]
pub struct JobTrack {
    pub attempted_at: u64,
    pub dcs: Option<u16>,
    pub ended: Option<(u64, JobState)>,
    /// Global timeout declarations (jobs.md §7.3: at most one), first at µs.
    pub global_timeouts: u32,
    pub global_at: Option<u64>,
    /// Timeout actions: (DC, by whom, at µs). At most one per DC (§7.3).
    pub timed_out: Vec<(u16, TimeoutBy, u64)>,
    /// First timeout report per DC: (DC, at µs).
    pub reported: Vec<(u16, u64)>,
    /// Items the gate recorded with the job's outcome.
    pub items: Option<u64>,
    /// Extensions that lengthened the job's timeout, and by how much in all (µs).
    pub extensions: u64,
    pub extended_us: u64,
    /// The DC the gate last gave up on (`RouteCooldown`), until the job moves on.
    pub cooling: Option<u16>,
    /// DCs the job fell back from (`RouteCooldown`, then a fallback `RouteDispatch`):
    /// unanswered, perhaps only because their answers were lost, so they may hold a
    /// copy of the job that does not count (see `terminal-not-timed-out`).
    pub abandoned: Vec<u16>,
    /// `(DC, workflow)`: completed at a manager of that DC (a `WorkflowTransition` to
    /// `Completed`). Once the job has ended at its gate, none of them is dispatched in
    /// that DC again (`run-after-end`), for as long as the DC keeps the job's tombstone.
    pub done_in: std::collections::BTreeSet<(u16, u32)>,
    /// `(DC, workflow) -> µs`: when a manager of the DC last dispatched the workflow. A
    /// start after the job's end of a dispatch from before it is late (its worker was
    /// paused or slow, or a late result overtook it), not a new run.
    pub dispatched_at: std::collections::BTreeMap<(u16, u32), u64>,
}

/// How long a DC's managers keep an ended job's tombstone (`ManagerConfig::tombstone_ttl`,
/// 600 s): `run-after-end` holds that long after the job's end.
const TOMBSTONE_TTL_US: u64 = 600_000_000;

/// jobs.md §3's table, written out again here so the checker does not trust the code
/// it checks.
fn legal_edge(from: WorkflowState, to: WorkflowState) -> bool {
    use WorkflowState as S;
    matches!(
        (from, to),
        (S::Pending, S::Dispatched | S::Cancelling | S::Failed)
            | (S::Dispatched, S::Running | S::Cancelling | S::Failed)
            | (
                S::Running,
                S::Completed | S::Failed | S::Cancelling | S::Aggregated
            )
            | (S::Failed, S::FailedCancelingDependents | S::Cancelled)
            | (S::FailedCancelingDependents, S::FailedReadyForRetry)
            | (S::FailedReadyForRetry, S::Pending)
            | (S::Cancelling, S::Cancelled)
    )
}

fn terminal(s: WorkflowState) -> bool {
    matches!(
        s,
        WorkflowState::Completed | WorkflowState::Cancelled | WorkflowState::Aggregated
    )
}

/// jobs.md §7.5: a gate-coordinated manager's fallback waits this long after its report.
const GATE_FALLBACK_US: u64 = 300_000_000;
/// jobs.md §2: `min_grant` and `max_extensions`.
const MIN_GRANT_US: u64 = 1_000_000;
const MAX_EXTENSIONS: u32 = 5;

impl Checker {
    pub fn new(role: Vec<Role>, dc: Vec<usize>, names: Vec<String>) -> Checker {
        let n = role.len();
        let mut c = Checker {
            n,
            role,
            dc,
            names,
            view: vec![Cell::ABSENT; n * n],
            own_inc: vec![0; n],
            max_emitted: vec![0; n],
            up: vec![false; n],
            started_at: vec![0; n],
            heard: vec![0; (n * n).div_ceil(64)],
            mismatches: 0,
            consistent: false,
            converged_at_ms: None,
            detections: Vec::new(),
            active_crash: vec![None; n],
            verdict_evidence: vec![None; n],
            justified_death: vec![None; n],
            leader_of_term: Default::default(),
            elections: 0,
            leaders_per_term_max: 0,
            elected_per_group: Default::default(),
            jobs: Vec::new(),
            takeovers: 0,
            gate_takeovers: 0,
            claims: Default::default(),
            worker_register: Default::default(),
            clock_changes: Vec::new(),
            job_gate: Default::default(),
            gate_dead_seen: Default::default(),
            orphans_taken_in: Default::default(),
            gate_majority_changed: Default::default(),
            gate_leader_since: Default::default(),
            paused_spans: vec![Vec::new(); n],
            started_token: Default::default(),
            wf_state: Default::default(),
            last_grant: Default::default(),
            job_entries: Default::default(),
            job_gone_pending: Vec::new(),
            job_layer: JobLayerReport::default(),
            declared: Default::default(),
            acted: Default::default(),
            false_positives: 0,
            false_positive_details: Vec::new(),
            checked: 0,
            violations: Vec::new(),
            violations_total: 0,
            suspicions: 0,
            refutations: 0,
            partitions: Vec::new(),
            cut_pairs: Vec::new(),
            side: Vec::new(),
        };
        c.mismatches = 0;
        c
    }

    /// Does `o` keep a membership view of `s`? Gates track gates and every DC's managers;
    /// managers and workers track their own DC's managers and workers.
    pub fn tracks(&self, o: usize, s: usize) -> bool {
        if o == s {
            return false;
        }
        match (self.role[o], self.role[s]) {
            (Role::Gate, Role::Gate) | (Role::Gate, Role::Manager) => true,
            (Role::Gate, _) | (_, Role::Gate) => false,
            _ => self.dc[o] == self.dc[s],
        }
    }

    fn counted(&self, o: usize, s: usize) -> bool {
        self.up[o] && self.tracks(o, s)
    }

    fn pair_ok(&self, o: usize, s: usize) -> bool {
        self.view[o * self.n + s].agrees(self.up[s], self.own_inc[s])
    }

    /// Node `s` is now `up` at incarnation `inc`: every observer's pair about `s` may
    /// change its verdict. One pass down column `s`, each pair judged before and after.
    /// (Two passes, one removing the column's mismatches and one adding them back, read
    /// the column twice: at 2,000 nodes every start walked 2,000 rows of a 4-million-cell
    /// matrix twice, 3% of the run.)
    fn set_subject(&mut self, s: usize, up: bool, inc: u32) {
        let n = self.n;
        let (up_before, inc_before) = (self.up[s], self.own_inc[s]);
        let mut delta: isize = 0;
        for o in 0..n {
            if !self.counted(o, s) {
                continue;
            }
            let v = self.view[o * n + s];
            delta += !v.agrees(up, inc) as isize - !v.agrees(up_before, inc_before) as isize;
        }
        self.up[s] = up;
        self.own_inc[s] = inc;
        self.mismatches = self
            .mismatches
            .checked_add_signed(delta)
            .expect("mismatch count stays non-negative");
    }

    fn row(&mut self, o: usize, add: bool) {
        for s in 0..self.n {
            if self.counted(o, s) && !self.pair_ok(o, s) {
                self.adjust(add);
            }
        }
    }

    fn adjust(&mut self, add: bool) {
        if add {
            self.mismatches += 1;
        } else {
            self.mismatches -= 1;
        }
    }

    /// A violation found outside the event stream (the world's own checks).
    pub fn violation_at(&mut self, now: u64, invariant: &str, detail: String) {
        self.violation(now, invariant, detail);
    }

    fn violation(&mut self, now: u64, invariant: &str, detail: String) {
        self.violations_total += 1;
        if self.violations.len() < MAX_VIOLATIONS_KEPT {
            self.violations.push(Violation {
                at_ms: now / 1000,
                invariant: invariant.to_string(),
                detail,
            });
        }
    }

    /// leadership.md §4.4: no two nodes claim the same `(job, domain, token)`.
    fn claim(&mut self, o: usize, key: (u64, u16, u64), now: u64) {
        match self.claims.insert(key, o) {
            Some(prev) if prev != o => self.violation(
                now,
                "unique-owner",
                format!(
                    "{} and {} both claimed job {} under token {:#x}",
                    self.names[prev], self.names[o], key.0, key.2
                ),
            ),
            _ => {}
        }
    }

    /// A client tries to submit job `job` (ids are dense, in submission order).
    pub fn on_submit_attempt(&mut self, job: JobId, now: u64) {
        let i = job.0 as usize;
        if self.jobs.len() <= i {
            self.jobs.resize_with(i + 1, JobTrack::default);
        }
        self.jobs[i].attempted_at = now;
    }

    /// A node (re)starts with a fresh, empty view and incarnation `inc`.
    pub fn on_start(&mut self, i: usize, inc: u32, now: u64) {
        self.started_at[i] = now;
        self.worker_register.retain(|(node, _), _| *node != i);
        self.job_entries.retain(|(o, _, _)| *o != i);
        self.wf_state.retain(|(node, _, _), _| *node != i);
        self.last_grant.retain(|(node, _), _| *node != i);
        self.acted.retain(|(node, _)| *node != i);
        // A restarted gate remembers no decision: like another gate across a failover,
        // it may decide a job it took back over once more (the DCs apply one decision).
        self.declared.retain(|(node, _)| *node != i);
        self.gate_leader_since.remove(&i);
        // ...nor any gate's death, nor any orphan it was handed.
        self.gate_dead_seen.retain(|(o, _), _| *o != i);
        self.orphans_taken_in.retain(|(o, _), _| *o != i);
        // Row `i` (what `i` sees) and column `i` (how others see `i`) share no counted
        // pair: nobody tracks itself.
        self.row(i, false);
        self.set_subject(i, true, inc);
        self.max_emitted[i] = self.max_emitted[i].max(inc);
        let n = self.n;
        for s in 0..n {
            self.view[i * n + s] = Cell::ABSENT;
            let bit = i * n + s;
            self.heard[bit / 64] &= !(1 << (bit % 64));
        }
        self.row(i, true);
        self.active_crash[i] = None;
    }

    /// Node `i`'s clock was skewed at `at`: it jumped by `jump_us` (either way) and runs
    /// `drift_ppm` off from then on.
    pub fn on_clock_change(&mut self, i: usize, at: u64, jump_us: u64, drift_ppm: f64) {
        self.clock_changes.push(ClockChange {
            at,
            node: i,
            jump_us,
            drift_ppm,
        });
    }

    /// How far the clocks of DC `dc`'s nodes may together have moved off true time
    /// between `from` and `to` (µs): every jump in that span plus every drift over it.
    /// A duration a machine measures across its DC (a replicated age, rebased on each
    /// receiver's clock) can be off by at most that much, so a check of when a machine
    /// acted allows it. Summed over nodes and over a node's successive skews, it can
    /// only overstate.
    fn clock_slack_us(&self, dc: usize, from: u64, to: u64) -> u64 {
        self.clock_changes
            .iter()
            .filter(|c| self.dc[c.node] == dc && c.at <= to)
            .map(|c| {
                let jump = if c.at > from { c.jump_us } else { 0 };
                let span = to - c.at.max(from);
                jump + (span as f64 * c.drift_ppm.abs() / 1e6).ceil() as u64
            })
            .sum()
    }

    /// How much less than `to - from` node `i`'s timers may have measured over that span
    /// (µs). A node's clock never runs backwards: set back by J at `at`, it stands still
    /// from `at` until true time has caught up, about `at + J`, and only the part of that
    /// inside the span counts (a jump just before `from` still delays timers after it).
    /// A jump forward is counted the same way (the direction is not recorded), which can
    /// only overstate; drift adds its rate over the span.
    fn node_clock_slack_us(&self, i: usize, from: u64, to: u64) -> u64 {
        self.clock_changes
            .iter()
            .filter(|c| c.node == i && c.at <= to)
            .map(|c| {
                let still = (c.at + c.jump_us).min(to).saturating_sub(c.at.max(from));
                let span = to - c.at.max(from).min(to);
                still + (span as f64 * c.drift_ppm.abs() / 1e6).ceil() as u64
            })
            .sum()
    }

    /// A node stops (crash or after a graceful leave).
    pub fn on_stop(&mut self, i: usize, now: u64, crashed: bool) {
        self.row(i, false);
        self.set_subject(i, false, self.own_inc[i]);
        self.row(i, true);
        if crashed {
            self.active_crash[i] = Some(self.detections.len());
            self.detections.push(Detection {
                node: self.names[i].clone(),
                crashed_at_ms: now / 1000,
                first_suspect_ms: None,
                first_dead_ms: None,
                all_dead_ms: None,
            });
        }
    }

    /// Node `i` is paused from `now` until `until` (a later pause may extend one that is
    /// still on).
    pub fn on_pause(&mut self, i: usize, now: u64, until: u64) {
        let spans = &mut self.paused_spans[i];
        match spans.last_mut() {
            Some(last) if last.1 >= now => last.1 = last.1.max(until),
            _ => spans.push((now, until)),
        }
    }

    /// How long node `i` was paused between `from` and `to`.
    fn paused_within(&self, i: usize, from: u64, to: u64) -> u64 {
        self.paused_spans[i]
            .iter()
            .map(|&(a, b)| b.min(to).saturating_sub(a.max(from)))
            .sum()
    }

    /// A datagram or frame from `from` was handed to `to`'s machine.
    pub fn on_delivery(&mut self, to: usize, from: usize) {
        let bit = to * self.n + from;
        self.heard[bit / 64] |= 1 << (bit % 64);
    }

    /// A datagram leaves `from` for `to`. Checks its size (invariant 10) and that a node
    /// never probes a member it holds Left (invariant 8); the datagram is decoded only in
    /// that rare case.
    pub fn on_transmit(&mut self, from: usize, to: Option<usize>, bytes: &[u8], now: u64) {
        let len = bytes.len();
        if let Some(to) = to {
            if self.view[from * self.n + to].status() == code(Status::Left) {
                let ping =
                    meridian_core::wire::decode(bytes, meridian_core::wire::Channel::Datagram)
                        .is_ok_and(|e| matches!(e.body, meridian_core::wire::Body::Ping { .. }));
                if ping {
                    self.violation(
                        now,
                        "left-never-probed",
                        format!(
                            "{} probed {}, which it holds Left",
                            self.names[from], self.names[to]
                        ),
                    );
                }
            }
        }
        self.checked += 1;
        if len > MAX_DATAGRAM {
            self.violation(
                now,
                "datagram-size",
                format!("{} sent {len} bytes", self.names[from]),
            );
        }
    }

    /// Re-evaluate convergence after an event at `now` (true time, µs).
    pub fn settle(&mut self, now: u64) {
        if !self.job_gone_pending.is_empty() {
            self.check_job_layer_follows(now);
        }
        if self.mismatches == 0 {
            if !self.consistent {
                self.consistent = true;
                self.converged_at_ms = Some(now / 1000);
                if let Some(p) = self.partitions.last_mut() {
                    if p.healed_at_ms.is_some() && p.reconverged_at_ms.is_none() {
                        p.reconverged_at_ms = Some(now / 1000);
                    }
                }
            }
        } else {
            self.consistent = false;
        }
    }

    pub fn consistent(&self) -> bool {
        self.consistent
    }

    /// One event emitted by node `o` at true time `now` (µs) and its local time `local`.
    pub fn on_event(&mut self, o: usize, e: &Event, now: u64, local: Instant, truth: &Truth) {
        self.checked += 1;
        match e {
            Event::Member {
                node,
                from,
                to,
                role,
                ..
            } => {
                self.on_member(o, node.0 as usize, *role, *from, *to, now, truth);
                if to.is_none_or(|v| v.status.is_gone()) && !self.job_entries.is_empty() {
                    self.job_gone_pending.push((o, node.0 as usize));
                }
                self.verdict_evidence[o] = None;
                if *role == Role::Gate && self.role[o] == Role::Gate {
                    let key = (o, node.0 as usize);
                    let is_live = to.is_some_and(|v| v.status.is_live());
                    if !is_live {
                        self.gate_dead_seen.entry(key).or_insert(now);
                    } else {
                        self.gate_dead_seen.remove(&key);
                    }
                    // Its majority (who answers: alive and not suspected) changed: that
                    // may hold a takeover back (who else is live no longer does: the
                    // leader takes over, not a ring owner).
                    let answered =
                        |v: Option<MemberView>| v.is_some_and(|v| v.status == Status::Alive);
                    if answered(*from) != answered(*to) {
                        self.gate_majority_changed.insert(o, now);
                    }
                }
            }
            Event::JobSuspicion {
                job, node, change, ..
            } => self.on_job_layer(o, node.0 as usize, job.0, *change, now),
            Event::SelfIncarnation { cluster, inc } => {
                let own = self.role[o] == Role::Gate && cluster.0 == 0
                    || self.role[o] != Role::Gate && cluster.0 != 0;
                if own {
                    if inc.0 < self.own_inc[o] {
                        self.violation(
                            now,
                            "incarnation-monotonic",
                            format!("{} lowered its own incarnation", self.names[o]),
                        );
                    }
                    self.set_subject(o, self.up[o], inc.0);
                    self.max_emitted[o] = self.max_emitted[o].max(inc.0);
                    self.refutations += 1;
                }
            }
            Event::SuspicionExpired {
                node,
                last_probe_at,
                earliest,
                ..
            } => {
                // The verdict rests on the silence since the last-chance probe: the
                // declaration that follows is judged over that whole window.
                let since = last_probe_at.map_or(now, |p| {
                    now.saturating_sub(local.saturating_since(p).as_micros() as u64)
                });
                self.verdict_evidence[o] = Some((node.0, since));
                if local < *earliest {
                    self.violation(
                        now,
                        "suspicion-floor",
                        format!(
                            "{} expired its suspicion of {} before start + min",
                            self.names[o],
                            self.name(node.0)
                        ),
                    );
                }
            }
            Event::Election(ElectionEvent::LeaderChanged { group, leader, .. })
                if group.0 == 0 && self.role[o] == Role::Gate =>
            {
                // Since when each gate leads the gate cluster (the arbiter of takeovers).
                if *leader == Some(NodeId(o as u32)) {
                    self.gate_leader_since.entry(o).or_insert(now);
                } else {
                    self.gate_leader_since.remove(&o);
                }
            }
            Event::Election(ElectionEvent::LeaderElected { group, term, node }) => {
                self.elections += 1;
                *self.elected_per_group.entry(group.0).or_default() += 1;
                let leader = node.0 as usize;
                match self.leader_of_term.insert((group.0, *term), leader) {
                    Some(prev) if prev != leader => {
                        self.leaders_per_term_max = self.leaders_per_term_max.max(2);
                        self.violation(
                            now,
                            "election-safety",
                            format!(
                                "group {} term {term}: {} and {} both elected",
                                group.0,
                                self.name(prev as u32),
                                self.name(node.0)
                            ),
                        );
                    }
                    _ => self.leaders_per_term_max = self.leaders_per_term_max.max(1),
                }
            }
            Event::Job(JobEvent::TakenOver { job, dc, token })
            | Event::Job(JobEvent::Accepted { job, dc, token }) => {
                if matches!(e, Event::Job(JobEvent::TakenOver { .. })) {
                    self.takeovers += 1;
                }
                self.claim(o, (job.0, dc.0, token.0), now);
            }
            Event::Job(JobEvent::GateTakenOver { job, token }) => {
                self.gate_takeovers += 1;
                self.claim(o, (job.0, u16::MAX, token.0), now);
                // leadership.md §4.6: re-led within grace (10 s) + check period (2 s) +
                // jitter (<= 2 s) of the new owner learning that the old one died.
                // (From the latest of: seeing the old owner dead, the last change of
                // who answers the taker (its majority), and the taker
                // becoming the gate-cluster leader, the one gate that takes jobs over,
                // and, for an orphan a follower handed the taker, taking it in: the
                // taker held no replica before, and the follower hands an orphan on
                // only once the leader has let twice the grace pass.
                // Time the taker spent paused does not count: its timers stood still;
                // nor does what its clock lost to skew.)
                let taken_in = self.orphans_taken_in.remove(&(o, job.0));
                if let Some(prev) = self.job_gate.insert(job.0, o) {
                    let dead_seen = self.gate_dead_seen.get(&(o, prev)).copied();
                    if dead_seen.is_some() || taken_in.is_some() {
                        let majority = self.gate_majority_changed.get(&o).copied().unwrap_or(0);
                        let leading = self.gate_leader_since.get(&o).copied().unwrap_or(now);
                        let seen = dead_seen
                            .unwrap_or(0)
                            .max(taken_in.unwrap_or(0))
                            .max(majority)
                            .max(leading);
                        let stood_still = self.paused_within(o, seen, now)
                            + self.node_clock_slack_us(o, seen, now);
                        if now.saturating_sub(seen).saturating_sub(stood_still)
                            > ORPHAN_TAKEOVER_MAX_US
                        {
                            self.violation(
                                now,
                                "orphan-liveness",
                                format!(
                                    "{} took job {} over {} ms after seeing {} dead",
                                    self.names[o],
                                    job.0,
                                    (now - seen) / 1000,
                                    self.names[prev]
                                ),
                            );
                        }
                    }
                }
            }
            Event::Job(JobEvent::RouteCooldown { job, dc }) => {
                if let Some(t) = self.jobs.get_mut(job.0 as usize) {
                    t.cooling = Some(dc.0);
                }
            }
            Event::Job(JobEvent::RouteDispatch {
                job,
                fallback: true,
                ..
            }) => {
                if let Some(t) = self.jobs.get_mut(job.0 as usize) {
                    if let Some(d) = t.cooling.take() {
                        t.abandoned.push(d);
                    }
                }
            }
            Event::Job(JobEvent::Submitted { job, dcs }) => {
                if let Some(t) = self.jobs.get_mut(job.0 as usize) {
                    t.dcs = Some(*dcs);
                }
                self.job_gate.insert(job.0, o);
            }
            Event::Job(JobEvent::Finished { job, state }) => {
                // Exactly one terminal state: two gates may both report the end of a
                // job whose leadership moved while it finished (at-least-once final
                // status, deduplicated by the client's token), but never two different
                // ends.
                let earlier = self.jobs.get(job.0 as usize).and_then(|t| t.ended);
                if let Some((_, first)) = earlier {
                    if first != *state {
                        self.violation(
                            now,
                            "job-terminal-once",
                            format!("job {} ended {first:?} and then {state:?}", job.0),
                        );
                    }
                } else if let Some(t) = self.jobs.get_mut(job.0 as usize) {
                    t.ended = Some((now, *state));
                }
                self.started_token.retain(|(j, _, _), _| *j != job.0);
                self.declared.retain(|(_, j)| *j != job.0);
                self.acted.retain(|(_, j)| *j != job.0);
                self.claims.retain(|(j, _, _), _| *j != job.0);
                self.worker_register.retain(|(_, j), _| *j != job.0);
                self.job_gate.remove(&job.0);
                self.orphans_taken_in.retain(|(_, j), _| *j != job.0);
            }
            Event::Job(JobEvent::GateOrphanTakenIn { job, .. }) => {
                self.orphans_taken_in.insert((o, job.0), now);
            }
            Event::Job(JobEvent::GateOrphanAbandoned { job, .. }) => {
                self.orphans_taken_in.remove(&(o, job.0));
            }
            Event::Job(JobEvent::WorkflowTransition {
                job,
                dc,
                workflow,
                from,
                to,
            }) => {
                if let Some(t) = self.jobs.get_mut(job.0 as usize) {
                    if *to == WorkflowState::Completed {
                        t.done_in.insert((dc.0, *workflow));
                    }
                    if *to == WorkflowState::Dispatched {
                        t.dispatched_at.insert((dc.0, *workflow), now);
                    }
                }
                // jobs.md §7.8: every change is an edge of the table, and a terminal
                // state is never left.
                if !legal_edge(*from, *to) {
                    self.violation(
                        now,
                        "workflow-transition",
                        format!(
                            "{}: job {} workflow {workflow}: {from:?} -> {to:?} is not in the table",
                            self.names[o], job.0
                        ),
                    );
                }
                let key = (o, job.0, *workflow);
                if let Some(prev) = self.wf_state.insert(key, *to) {
                    if terminal(prev) {
                        self.violation(
                            now,
                            "workflow-transition",
                            format!(
                                "{}: job {} workflow {workflow} left terminal {prev:?} for {to:?}",
                                self.names[o], job.0
                            ),
                        );
                    }
                }
            }
            Event::Job(JobEvent::InvalidTransition {
                job,
                workflow,
                from,
                to,
            }) => {
                self.violation(
                    now,
                    "workflow-transition",
                    format!(
                        "{}: job {} workflow {workflow}: asked for {from:?} -> {to:?}",
                        self.names[o], job.0
                    ),
                );
            }
            Event::Job(JobEvent::Forgotten { job }) => {
                self.wf_state
                    .retain(|(node, j, _), _| !(*node == o && *j == job.0));
            }
            Event::Job(JobEvent::GlobalTimeout { job, .. }) => {
                // jobs.md §7.3: *a gate* declares a job timed out at most once. Two gates
                // may both decide across a gate failover; the DCs apply one decision
                // (timeout-once per DC below) and correct the other, and the outcome is
                // what the DCs report (job-terminal-once).
                let Some(t) = self.jobs.get_mut(job.0 as usize) else {
                    return;
                };
                t.global_timeouts += 1;
                t.global_at.get_or_insert(now);
                if !self.declared.insert((o, job.0)) {
                    self.violation(
                        now,
                        "timeout-once",
                        format!("{} declared job {} timed out twice", self.names[o], job.0),
                    );
                }
            }
            Event::Job(JobEvent::Items { job, items }) => {
                if let Some(t) = self.jobs.get_mut(job.0 as usize) {
                    t.items.get_or_insert(*items);
                }
            }
            Event::Job(JobEvent::TimeoutReported { job, dc, .. }) => {
                if let Some(t) = self.jobs.get_mut(job.0 as usize) {
                    if !t.reported.iter().any(|(d, _)| *d == dc.0) {
                        t.reported.push((dc.0, now));
                    }
                }
            }
            Event::Job(JobEvent::ExtensionGranted {
                worker,
                grant_us,
                nth,
                ..
            }) => {
                // jobs.md §7.6: within a cycle grants never grow, each is at least the
                // 1 s floor, and there are at most 5.
                let prev = self.last_grant.insert((o, worker.0), (*nth, *grant_us));
                let grew = *nth > 1 && prev.is_some_and(|(n, g)| n + 1 == *nth && *grant_us > g);
                if grew || *grant_us < MIN_GRANT_US || *nth == 0 || *nth > MAX_EXTENSIONS {
                    self.violation(
                        now,
                        "extension-grants",
                        format!(
                            "{} granted {} grant #{nth} of {grant_us} us after {prev:?}",
                            self.names[o],
                            self.name(worker.0)
                        ),
                    );
                }
            }
            Event::Job(JobEvent::JobExtended { job, grant_us, .. }) => {
                if let Some(t) = self.jobs.get_mut(job.0 as usize) {
                    t.extensions += 1;
                    t.extended_us += grant_us;
                }
            }
            Event::Job(JobEvent::TimedOut { job, dc, by, .. }) => {
                let Some(t) = self.jobs.get_mut(job.0 as usize) else {
                    return;
                };
                // jobs.md §7.3: *a manager* runs the action at most once. Two managers of
                // one DC may both act when a leader cut off from its DC acts unheard and
                // its successor acts again (only the second takes effect); across a clean
                // failover the fixtures hold the DC to one action.
                let twice = !self.acted.insert((o, job.0));
                t.timed_out.push((dc.0, *by, now));
                let (dcs, ended, global_at) = (t.dcs, t.ended, t.global_at);
                let reported = t.reported.iter().find(|(d, _)| *d == dc.0).map(|r| r.1);
                let name = &self.names[o];
                let mut bad: Vec<(&str, String)> = Vec::new();
                if twice {
                    bad.push((
                        "timeout-once",
                        format!("{name} timed job {} out twice", job.0),
                    ));
                }
                // A DC the job fell back from may have accepted it after all (its
                // answer lost, as under a one-way cut) and then timed out its own copy,
                // which never ended there and whose outcome the gate ignores
                // (`gate::dc_final`): that copy is not the completed job. Jobs.md §7's
                // "a terminal job is never timed out" binds the DCs whose results count.
                let abandoned = t.abandoned.contains(&dc.0);
                if let (Some((_, JobState::Completed)), false) = (ended, abandoned) {
                    bad.push((
                        "terminal-not-timed-out",
                        format!("{name} timed out job {} after it completed", job.0),
                    ));
                }
                // jobs.md §7.5: who may act, and when.
                let ok = match by {
                    TimeoutBy::Local => dcs == Some(1),
                    TimeoutBy::Global => global_at.is_some(),
                    // 300 s after the report, as the DC's clocks measure it: a skewed
                    // clock that replicated the report's age moves the action.
                    TimeoutBy::Fallback => {
                        dcs.is_some_and(|d| d > 1)
                            && reported.is_some_and(|r| {
                                now + self.clock_slack_us(self.dc[o], r, now)
                                    >= r + GATE_FALLBACK_US
                            })
                    }
                };
                if !ok {
                    bad.push((
                        "timeout-authority",
                        format!(
                            "{name} timed out job {} ({by:?}) with {dcs:?} DCs, decision at \
                             {global_at:?}, report at {reported:?}",
                            job.0
                        ),
                    ));
                }
                for (inv, detail) in bad {
                    self.violation(now, inv, detail);
                }
            }
            Event::Job(JobEvent::WorkflowStarted {
                job,
                workflow,
                token,
            }) => {
                // Per receiver (leadership.md §4.3 binds only receivers that have seen
                // the newer token): a worker that was paused while its dispatch was
                // taken back and given to another may still start it on resume; that is
                // at-least-once execution, not a stale effect at that worker.
                let key = (job.0, o, *workflow);
                if self.started_token.get(&key).is_some_and(|t| token <= t) {
                    self.violation(
                        now,
                        "stale-dispatch-effect",
                        format!(
                            "{} started job {} workflow {workflow} with stale token {:#x}",
                            self.names[o], job.0, token.0
                        ),
                    );
                }
                self.started_token.insert(key, *token);
                // The job ended at its gate, this workflow had completed in this DC, and
                // a leader dispatched it again since: a second run (a takeover of a
                // replica that missed the end). At least once holds while a job runs (a
                // result lost with its leader runs again), never after its outcome is
                // recorded.
                let dc = self.dc[o] as u16;
                // Only while a manager of the DC that has been up since the end may
                // hold its tombstone: once every one of them crashed or restarted
                // (a DC outage), no node of the DC can know the job ran, and a gate
                // that re-sends it there (its replica missed the end, and every gate
                // that knew restarted too) gets a new run; memory is all there is.
                let (role, up, started_at, dcs) =
                    (&self.role, &self.up, &self.started_at, &self.dc);
                let remembered = |end: u64| {
                    (0..role.len()).any(|m| {
                        role[m] == Role::Manager
                            && dcs[m] == dc as usize
                            && up[m]
                            && started_at[m] <= end
                    })
                };
                if let Some(t) = self.jobs.get_mut(job.0 as usize) {
                    if let Some((end, _)) = t.ended {
                        let issued_after = t
                            .dispatched_at
                            .get(&(dc, *workflow))
                            .is_none_or(|at| *at > end);
                        if now.saturating_sub(end) >= TOMBSTONE_TTL_US {
                            t.done_in.clear();
                            t.dispatched_at.clear();
                        } else if issued_after
                            && t.done_in.contains(&(dc, *workflow))
                            && remembered(end)
                        {
                            let detail = format!(
                                "{} started job {} workflow {workflow}, completed in its DC, {} ms after the job ended",
                                self.names[o],
                                job.0,
                                (now - end) / 1000
                            );
                            self.violation(now, "run-after-end", detail);
                        }
                    }
                }
                // leadership.md §4.2: the worker's register for the job never goes back.
                if let Some(prev) = self.worker_register.insert((o, job.0), *token) {
                    if *token < prev {
                        self.violation(
                            now,
                            "monotone-register",
                            format!(
                                "{}: job {} register {:#x} -> {:#x}",
                                self.names[o], job.0, prev.0, token.0
                            ),
                        );
                        self.worker_register.insert((o, job.0), prev);
                    }
                }
            }
            Event::Lhm { score, .. } if *score > LHM_MAX_SCORE => {
                self.violation(now, "lhm-range", format!("{} LHM {score}", self.names[o]));
            }
            Event::ProactivePing { node, role, .. } => {
                if matches!(role, Role::Worker | Role::Unknown) {
                    self.violation(
                        now,
                        "no-proactive-worker-pings",
                        format!("{} proactively pinged {}", self.names[o], self.name(node.0)),
                    );
                }
            }
            Event::UnconfirmedRemoved {
                node,
                role,
                discovered_at,
                ..
            } => {
                let passive = strategy(*role).passive;
                if local.saturating_since(*discovered_at) < passive {
                    self.violation(
                        now,
                        "unconfirmed-removal-early",
                        format!(
                            "{} removed {} before its passive timeout",
                            self.names[o],
                            self.name(node.0)
                        ),
                    );
                }
            }
            _ => {}
        }
    }

    /// §9's job layer at observer `o` about subject `s` (invariant 12, first half: a
    /// job verdict is only about a member the global layer holds live, as a job
    /// suspicion starts only about one).
    fn on_job_layer(&mut self, o: usize, s: usize, job: u64, change: JobChange, now: u64) {
        let live = s < self.n && {
            let st = self.view[o * self.n + s].status();
            st == code(Status::Alive) || st == code(Status::Suspect)
        };
        match change {
            JobChange::Suspected { .. } | JobChange::Dead => {
                if matches!(change, JobChange::Dead) {
                    self.job_layer.dead += 1;
                } else {
                    self.job_layer.suspected += 1;
                }
                if !live {
                    self.violation(
                        now,
                        "job-layer-global-precedence",
                        format!(
                            "{}: a job verdict about a member not held live",
                            self.who(o, s)
                        ),
                    );
                }
                self.job_entries.insert((o, s, job));
            }
            JobChange::Confirmed { .. } => self.job_layer.confirmed += 1,
            JobChange::Refuted | JobChange::Cleared => {
                if matches!(change, JobChange::Refuted) {
                    self.job_layer.refuted += 1;
                } else {
                    self.job_layer.cleared += 1;
                }
                self.job_entries.remove(&(o, s, job));
            }
            JobChange::Rejected(_) => self.job_layer.rejected += 1,
        }
    }

    /// Invariant 12, second half: a member that left an observer's global layer (Dead,
    /// Left or forgotten) leaves it no job entry, by the end of the step.
    fn check_job_layer_follows(&mut self, now: u64) {
        for (o, s) in core::mem::take(&mut self.job_gone_pending) {
            let left = s < self.n && gone(self.view[o * self.n + s].status());
            let held = self
                .job_entries
                .range((o, s, 0)..=(o, s, u64::MAX))
                .next()
                .is_some();
            if left && held {
                self.violation(
                    now,
                    "job-layer-global-precedence",
                    format!("{}: globally gone, still held for a job", self.who(o, s)),
                );
            }
        }
    }

    fn who(&self, o: usize, s: usize) -> String {
        format!("{} about {}", self.names[o], self.names[s])
    }

    fn name(&self, i: u32) -> String {
        self.names
            .get(i as usize)
            .cloned()
            .unwrap_or_else(|| format!("node#{i}"))
    }

    #[allow(clippy::too_many_arguments)]
    fn on_member(
        &mut self,
        o: usize,
        s: usize,
        _role: Role,
        from: Option<MemberView>,
        to: Option<MemberView>,
        now: u64,
        truth: &Truth,
    ) {
        if s >= self.n {
            self.violation(
                now,
                "unknown-member",
                format!("{} holds a node that does not exist", self.names[o]),
            );
            return;
        }
        if !self.tracks(o, s) {
            self.violation(
                now,
                "view-scope",
                format!(
                    "{} keeps a view of {}, outside its clusters",
                    self.names[o], self.names[s]
                ),
            );
            return;
        }
        if let (Some(f), Some(t)) = (from, to) {
            if t.inc < f.inc {
                self.violation(
                    now,
                    "incarnation-monotonic",
                    format!("{}: {} -> {}", self.who(o, s), f.inc.0, t.inc.0),
                );
            }
            if f.status == Status::Unconfirmed && t.status == Status::Suspect {
                self.violation(now, "unconfirmed-never-suspect", self.who(o, s));
            }
            if f.status.is_gone() && !t.status.is_gone() && t.inc <= f.inc {
                self.violation(
                    now,
                    "dead-ends-by-higher-inc",
                    format!("{}: back at {}", self.who(o, s), t.inc.0),
                );
            }
            if t.status == Status::Suspect && f.status != Status::Suspect {
                self.suspicions += 1;
            }
        }
        if let Some(t) = to {
            if t.inc.0 > self.max_emitted[s] {
                self.violation(
                    now,
                    "incarnation-not-emitted",
                    format!(
                        "{}: inc {} but it emitted at most {}",
                        self.who(o, s),
                        t.inc.0,
                        self.max_emitted[s]
                    ),
                );
            }
            let was_confirmed = from.is_some_and(|f| f.confirmed);
            let bit = o * self.n + s;
            if t.confirmed && !was_confirmed && self.heard[bit / 64] & (1 << (bit % 64)) == 0 {
                self.violation(now, "confirmed-by-direct-contact", self.who(o, s));
            }
        }
        // A death declaration: a live-and-confirmed member declared Dead.
        let declared_dead = to.is_some_and(|t| t.status == Status::Dead)
            && from.is_some_and(|f| f.status.is_live());
        if declared_dead {
            // Judged over the verdict's evidence window: a verdict whose last probe went
            // out while a partition cut the path is not a false positive even if the
            // partition healed before the probe timed out.
            // A node adopting another's death verdict from gossip is judged by that
            // verdict: the declaration happened where the verdict was formed.
            let own_verdict = match self.verdict_evidence[o] {
                Some((node, since)) if node as usize == s => Some(since),
                _ => None,
            };
            let inc = to.map_or(0, |t| t.inc.0);
            let adopted_justified =
                own_verdict.is_none() && self.justified_death[s].is_some_and(|j| j >= inc);
            let since = own_verdict.unwrap_or(now);
            let reachable = truth.up[s]
                && !truth.paused[s]
                && !(truth.cut_since)(o, s, since)
                && !(truth.cut_since)(s, o, since);
            if own_verdict.is_some() && !reachable {
                self.justified_death[s] = Some(self.justified_death[s].map_or(inc, |j| j.max(inc)));
            }
            if reachable && !adopted_justified {
                self.false_positives += 1;
                if self.false_positive_details.len() < MAX_FALSE_POSITIVES_KEPT {
                    self.false_positive_details.push(FalsePositive {
                        at_ms: now / 1000,
                        declarer: self.names[o].clone(),
                        node: self.names[s].clone(),
                    });
                }
            }
        }
        // Mirror the view, keeping the mismatch count.
        let i = o * self.n + s;
        let counted = self.counted(o, s);
        if counted && !self.pair_ok(o, s) {
            self.mismatches -= 1;
        }
        match to {
            Some(t) => {
                self.view[i] = Cell::new(code(t.status), t.inc.0);
            }
            None => {
                self.view[i] = Cell::ABSENT;
            }
        }
        if counted && !self.pair_ok(o, s) {
            self.mismatches += 1;
        }
        // Detection of a crashed subject.
        if let Some(d) = self.active_crash[s] {
            let status = to.map(|t| t.status);
            let ms = now / 1000;
            if status == Some(Status::Suspect) && self.detections[d].first_suspect_ms.is_none() {
                self.detections[d].first_suspect_ms = Some(ms);
            }
            if declared_dead && self.detections[d].first_dead_ms.is_none() {
                self.detections[d].first_dead_ms = Some(ms);
            }
            if gone(self.view[i].status()) && self.detections[d].all_dead_ms.is_none() {
                let all = (0..self.n)
                    .filter(|&x| self.counted(x, s))
                    .all(|x| gone(self.view[x * self.n + s].status()));
                if all {
                    self.detections[d].all_dead_ms = Some(ms);
                }
            }
        }
    }

    /// End of run: completeness (membership.md §11.6) for crashes that stayed down past
    /// the spec's bound with no partition in the scenario.
    pub fn finish(&mut self, end: u64, bound_us: impl Fn(usize) -> u64, partitions: bool) {
        if partitions {
            return;
        }
        for d in 0..self.detections.len() {
            let det = &self.detections[d];
            if det.all_dead_ms.is_some() {
                continue;
            }
            let Some(s) = self.names.iter().position(|n| *n == det.node) else {
                continue;
            };
            if self.active_crash[s] != Some(d) {
                continue; // restarted
            }
            // Dead everywhere it is tracked, or tracked by no live node at all (its
            // trackers crashed too, before any of them saw it die: nobody is left to
            // declare it, so "every live tracker" holds it gone vacuously).
            let n = self.n;
            let held_alive =
                (0..n).any(|x| self.counted(x, s) && !gone(self.view[x * n + s].status()));
            if !held_alive {
                continue;
            }
            let crashed = det.crashed_at_ms * 1000;
            if end >= crashed + bound_us(s) {
                let detail = format!(
                    "{} still not dead everywhere {} ms after its crash",
                    det.node,
                    (end - crashed) / 1000
                );
                self.violation(end, "completeness", detail);
            }
        }
    }

    /// A partition starts: remember every tracked pair of live nodes it cuts.
    pub fn on_partition(&mut self, now: u64, cut: &dyn Fn(usize, usize) -> bool, side: Vec<u16>) {
        self.close_partition(now);
        self.side = side;
        self.cut_pairs.clear();
        for o in 0..self.n {
            for s in 0..self.n {
                // A probe needs both directions: either cut breaks the pair.
                if self.counted(o, s) && self.up[s] && (cut(s, o) || cut(o, s)) {
                    self.cut_pairs.push((o, s));
                }
            }
        }
        self.partitions.push(PartitionReport {
            at_ms: now / 1000,
            healed_at_ms: None,
            cut_pairs: self.cut_pairs.len() as u64,
            declared_dead_pairs: 0,
            suspected_or_dead_pairs: 0,
            reconverged_at_ms: None,
            sides: Vec::new(),
        });
    }

    /// The partition heals: how many cut pairs ended up declaring the other side gone
    /// (SWIM's correct verdict for an unreachable peer).
    pub fn on_heal(&mut self, now: u64) {
        self.close_partition(now);
    }

    fn close_partition(&mut self, now: u64) {
        let Some(p) = self.partitions.last_mut() else {
            return;
        };
        if p.healed_at_ms.is_some() {
            return;
        }
        p.healed_at_ms = Some(now / 1000);
        let groups = self
            .side
            .iter()
            .copied()
            .max()
            .map_or(0, |g| g as usize + 1);
        let mut sides = vec![
            SideReport {
                nodes: 0,
                tracked_across: 0,
                declared_dead_across: 0,
            };
            groups
        ];
        for &g in &self.side {
            sides[g as usize].nodes += 1;
        }
        let mut tracked = vec![false; self.n];
        let mut declared_subject = vec![false; self.n];
        let (mut declared, mut not_alive) = (0, 0);
        for &(o, s) in &self.cut_pairs {
            let v = self.view[o * self.n + s].status();
            tracked[s] = true;
            if gone(v) {
                declared += 1;
                declared_subject[s] = true;
            }
            if v != code(Status::Alive) {
                not_alive += 1;
            }
        }
        for s in 0..self.n {
            let g = self.side[s] as usize;
            sides[g].tracked_across += tracked[s] as u64;
            sides[g].declared_dead_across += declared_subject[s] as u64;
        }
        p.declared_dead_pairs = declared;
        p.suspected_or_dead_pairs = not_alive;
        p.sides = sides;
        self.cut_pairs.clear();
    }

    /// Number of live observers tracking node `s`.
    pub fn trackers(&self, s: usize) -> usize {
        (0..self.n).filter(|&o| self.counted(o, s)).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meridian_core::leadership::GroupId;
    use meridian_core::{ClusterId, Incarnation};

    const SEC: u64 = 1_000_000;

    /// Node `o` emits `e` at `at` (its clock true), with `up` the nodes that run.
    fn feed(c: &mut Checker, o: usize, e: Event, at: u64, up: [bool; 2]) {
        let paused = [false, false];
        let cut = |_: usize, _: usize, _: u64| false;
        let truth = Truth {
            up: &up,
            paused: &paused,
            cut_since: &cut,
        };
        c.on_event(o, &e, at, Instant(at), &truth);
    }

    /// Gates 0 (which accepts job 7 at 0 s) and 1 (which leads the gate cluster from
    /// 0 s and sees gate 0 die at 10 s).
    fn two_gates() -> Checker {
        let mut c = two_gates_started();
        let submitted = JobEvent::Submitted {
            job: JobId(7),
            dcs: 1,
        };
        feed(&mut c, 0, Event::Job(submitted), 0, [true, true]);
        let leads = ElectionEvent::LeaderChanged {
            group: GroupId(0),
            term: 2,
            leader: Some(NodeId(1)),
        };
        feed(&mut c, 1, Event::Election(leads), 0, [true, true]);
        let view = |status| {
            Some(MemberView {
                status,
                inc: Incarnation(0),
                confirmed: true,
            })
        };
        let died = Event::Member {
            cluster: ClusterId::GATES,
            node: NodeId(0),
            role: Role::Gate,
            from: view(Status::Suspect),
            to: view(Status::Dead),
        };
        feed(&mut c, 1, died, 10 * SEC, [false, true]);
        c
    }

    /// Gate 1 takes job 7 over at `at`: the orphan-liveness violations that makes.
    fn take_over_at(c: &mut Checker, at: u64) -> usize {
        let taken = JobEvent::GateTakenOver {
            job: JobId(7),
            token: FenceToken::new(2, 2),
        };
        feed(c, 1, Event::Job(taken), at, [false, true]);
        c.violations
            .iter()
            .filter(|v| v.invariant == "orphan-liveness")
            .count()
    }

    /// leadership.md §4.6: the leader re-leads an orphan within 14 s of seeing its
    /// owner dead, counted on the taker's own timers: a pause, or a clock set back
    /// (which stands still until true time catches up, even from a jump just before the
    /// death was seen), stops them, and the bound does not count that time.
    #[test]
    fn orphan_liveness_counts_only_time_the_takers_timers_ran() {
        // 14.5 s after seeing the death: late.
        let mut c = two_gates();
        assert_eq!(take_over_at(&mut c, 24 * SEC + SEC / 2), 1);
        // Within 14 s: in time.
        let mut c = two_gates();
        assert_eq!(take_over_at(&mut c, 23 * SEC + SEC / 2), 0);
        // Paused 3 s in between: 16.5 s of true time, 13.5 s of the taker's.
        let mut c = two_gates();
        c.on_pause(1, 15 * SEC, 17 * SEC);
        c.on_pause(1, 16 * SEC, 18 * SEC); // extends the first pause
        assert_eq!(take_over_at(&mut c, 26 * SEC + SEC / 2), 0);
        // A pause before the death was seen does not count.
        let mut c = two_gates();
        c.on_pause(1, 5 * SEC, 8 * SEC);
        assert_eq!(take_over_at(&mut c, 24 * SEC + SEC / 2), 1);
        // The clock set back 4 s at 9 s stands still until 13 s: 3 s of it after the
        // death was seen.
        let mut c = two_gates();
        c.on_clock_change(1, 9 * SEC, 4 * SEC, 0.0);
        assert_eq!(take_over_at(&mut c, 26 * SEC + SEC / 2), 0);
        let mut c = two_gates();
        c.on_clock_change(1, 9 * SEC, 4 * SEC, 0.0);
        assert_eq!(take_over_at(&mut c, 27 * SEC + SEC / 2), 1, "3 s, not 4");
        // Another node's clock does not count.
        let mut c = two_gates();
        c.on_clock_change(0, 9 * SEC, 4 * SEC, 0.0);
        assert_eq!(take_over_at(&mut c, 26 * SEC + SEC / 2), 1);
    }

    /// `run-after-end`: once job 3 ended at its gate, a workflow that completed in DC 0
    /// is not dispatched and started there again while a manager of the DC that has
    /// been up since the end may hold its tombstone. A start of a dispatch from before
    /// the end (a paused or slow worker) is late, not a new run; once every manager of
    /// the DC restarted, nothing there can know, and nothing is flagged.
    #[test]
    fn a_completed_workflow_dispatched_after_its_jobs_end_is_a_violation() {
        // Node 0 the gate, 1 and 3 managers, 2 a worker, all in DC 0.
        let mut c = Checker::new(
            vec![Role::Gate, Role::Manager, Role::Worker, Role::Manager],
            vec![0; 4],
            (0..4).map(|i| format!("n{i}")).collect(),
        );
        for i in 0..4 {
            c.on_start(i, 0, 0);
        }
        c.on_submit_attempt(JobId(3), 0);
        let step = |c: &mut Checker, o: usize, e: JobEvent, at: u64| {
            let (up, paused) = ([true; 4], [false; 4]);
            let cut = |_: usize, _: usize, _: u64| false;
            let truth = Truth {
                up: &up,
                paused: &paused,
                cut_since: &cut,
            };
            c.on_event(o, &Event::Job(e), at, Instant(at), &truth);
        };
        let moved = |from, to| JobEvent::WorkflowTransition {
            job: JobId(3),
            dc: meridian_core::DcId(0),
            workflow: 0,
            from,
            to,
        };
        let started = |token| JobEvent::WorkflowStarted {
            job: JobId(3),
            workflow: 0,
            token: FenceToken(token),
        };
        let flagged = |c: &Checker| {
            c.violations
                .iter()
                .filter(|v| v.invariant == "run-after-end")
                .count()
        };
        use WorkflowState as W;
        step(&mut c, 1, moved(W::Pending, W::Dispatched), SEC);
        step(&mut c, 2, started(1), SEC);
        step(&mut c, 1, moved(W::Dispatched, W::Running), SEC);
        step(&mut c, 1, moved(W::Running, W::Completed), 3 * SEC);
        let finished = JobEvent::Finished {
            job: JobId(3),
            state: JobState::Completed,
        };
        step(&mut c, 0, finished, 4 * SEC);
        // The 1 s dispatch, started late by a worker that was paused: not a new run.
        step(&mut c, 2, started(1), 5 * SEC);
        assert_eq!(flagged(&c), 0);
        // Manager 3 dispatches it again after the end; manager 1 is up since before.
        step(&mut c, 3, moved(W::Pending, W::Dispatched), 6 * SEC);
        step(&mut c, 2, started(2), 7 * SEC);
        assert_eq!(flagged(&c), 1);
        // Every manager of the DC restarts: nobody there can remember the job.
        for m in [1, 3] {
            c.on_stop(m, 8 * SEC, true);
            c.on_start(m, 1, 9 * SEC);
        }
        step(&mut c, 3, moved(W::Pending, W::Dispatched), 10 * SEC);
        step(&mut c, 2, started(3), 11 * SEC);
        assert_eq!(flagged(&c), 1);
    }

    /// Gates 0 and 1, both started at 0 s.
    fn two_gates_started() -> Checker {
        let mut c = Checker::new(
            vec![Role::Gate, Role::Gate],
            vec![0, 0],
            vec!["gate-0".into(), "gate-1".into()],
        );
        c.on_start(0, 0, 0);
        c.on_start(1, 0, 0);
        c
    }

    /// Gates 0 and 1, each holding the other alive.
    fn two_gates_seeing_each_other() -> Checker {
        let mut c = two_gates_started();
        for (o, s) in [(0, 1), (1, 0)] {
            let alive = Event::Member {
                cluster: ClusterId::GATES,
                node: NodeId(s),
                role: Role::Gate,
                from: None,
                to: Some(MemberView {
                    status: Status::Alive,
                    inc: Incarnation(0),
                    confirmed: true,
                }),
            };
            feed(&mut c, o, alive, SEC, [true, true]);
        }
        c
    }

    /// membership.md §11.12: a member that leaves the global layer takes its job
    /// entries with it in the same step, and no job verdict is about a member not held
    /// live.
    #[test]
    fn job_layer_entries_follow_the_global_layer() {
        let job_change = |change| Event::JobSuspicion {
            cluster: ClusterId::GATES,
            job: JobId(7),
            node: NodeId(0),
            change,
        };
        let suspected = job_change(JobChange::Suspected {
            inc: Incarnation(0),
            deadline: Instant(30 * SEC),
        });
        let dead = Event::Member {
            cluster: ClusterId::GATES,
            node: NodeId(0),
            role: Role::Gate,
            from: Some(MemberView {
                status: Status::Alive,
                inc: Incarnation(0),
                confirmed: true,
            }),
            to: Some(MemberView {
                status: Status::Dead,
                inc: Incarnation(0),
                confirmed: true,
            }),
        };
        let precedence = |c: &Checker| {
            c.violations
                .iter()
                .filter(|v| v.invariant == "job-layer-global-precedence")
                .count()
        };
        // Cleared in the step that buries it: fine.
        let mut c = two_gates_seeing_each_other();
        feed(&mut c, 1, suspected.clone(), 2 * SEC, [true, true]);
        feed(&mut c, 1, dead.clone(), 3 * SEC, [true, true]);
        feed(
            &mut c,
            1,
            job_change(JobChange::Cleared),
            3 * SEC,
            [true, true],
        );
        c.settle(3 * SEC);
        assert_eq!(precedence(&c), 0);
        assert_eq!((c.job_layer.suspected, c.job_layer.cleared), (1, 1));
        // A job verdict about a member held dead.
        feed(
            &mut c,
            1,
            job_change(JobChange::Dead),
            4 * SEC,
            [true, true],
        );
        assert_eq!(precedence(&c), 1);
        // Kept past the step that buried it.
        let mut c = two_gates_seeing_each_other();
        feed(&mut c, 1, suspected, 2 * SEC, [true, true]);
        feed(&mut c, 1, dead, 3 * SEC, [true, true]);
        c.settle(3 * SEC);
        assert_eq!(precedence(&c), 1);
    }

    /// membership.md §11.6 completeness, at the end of a run: a crashed gate whose
    /// only tracker crashed with it (before seeing it die) breaks nothing, as no live
    /// node holds it alive; a live tracker that never buries it does.
    #[test]
    fn completeness_needs_a_live_tracker_that_holds_the_crashed_node_alive() {
        let bound = |_| 100 * SEC;
        // Both gates crash at 10 s: nobody is left to declare either dead.
        let mut c = two_gates_seeing_each_other();
        c.on_stop(0, 10 * SEC, true);
        c.on_stop(1, 10 * SEC, true);
        c.finish(1_000 * SEC, bound, false);
        assert!(c.violations.iter().all(|v| v.invariant != "completeness"));
        // Gate 0 crashes, gate 1 lives and still holds it alive at the end.
        let mut c = two_gates_seeing_each_other();
        c.on_stop(0, 10 * SEC, true);
        c.finish(1_000 * SEC, bound, false);
        assert_eq!(
            c.violations
                .iter()
                .filter(|v| v.invariant == "completeness")
                .count(),
            1
        );
    }

    /// An orphan a follower hands the leader (`GateOrphanTakenIn`) is counted from
    /// when the leader took it in: it held no replica before. Still 14 s at most.
    /// A gate that restarts forgets the deaths it saw and the orphans it was handed.
    #[test]
    fn orphan_liveness_counts_a_handed_orphan_from_its_taking_in() {
        let taken_in = |c: &mut Checker, at: u64| {
            let e = JobEvent::GateOrphanTakenIn {
                job: JobId(7),
                owner: NodeId(0),
            };
            feed(c, 1, Event::Job(e), at, [false, true]);
        };
        let mut c = two_gates();
        taken_in(&mut c, 60 * SEC);
        assert_eq!(take_over_at(&mut c, 73 * SEC), 0);
        let mut c = two_gates();
        taken_in(&mut c, 60 * SEC);
        assert_eq!(take_over_at(&mut c, 75 * SEC), 1);
        // Restarted after seeing the death: nothing of it counts.
        let mut c = two_gates();
        c.on_start(1, 1, 0);
        assert_eq!(take_over_at(&mut c, 60 * SEC), 0);
        // Restarted, elected again, then handed the orphan: from the taking in.
        let mut c = two_gates();
        c.on_start(1, 1, 0);
        let leads = ElectionEvent::LeaderChanged {
            group: GroupId(0),
            term: 3,
            leader: Some(NodeId(1)),
        };
        feed(&mut c, 1, Event::Election(leads), 50 * SEC, [false, true]);
        taken_in(&mut c, 60 * SEC);
        assert_eq!(take_over_at(&mut c, 75 * SEC), 1);
    }
}
