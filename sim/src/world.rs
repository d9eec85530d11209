//! One simulated world: a single-threaded discrete-event loop over (time, sequence),
//! the nodes' machines, the network model and the fault schedule.
//!
//! Determinism: all randomness comes from seeded ChaCha streams (one for the network,
//! one per node derived from the master seed), the queue is ordered by (time, insertion
//! sequence), and the trace hash covers every input and output of every node in order.

use crate::check::{Checker, Truth};
use crate::coords::{self, CoordsTracker};
use crate::network::Network;
use crate::report::{
    AntiEntropy, CoordsReport, Invariants, JobEntry, JobsReport, LeadershipReport,
    MembershipReport, Messages, Report, TablesAtEnd, Throughput,
};
use crate::scenario::{Fault, NodeSpec, RestartState, Scenario};
use crate::trace_hash::TraceHasher;
use meridian_core::io::{Event, Output, Outputs};
use meridian_core::jobs::{JobEvent, JobState};
use meridian_core::leadership::{ElectionConfig, ElectionEvent, StepDownReason};
use meridian_core::membership::Config;
use meridian_core::node::{DcRequest, Input, Node, NodeConfig};
use meridian_core::rng::{derive_seed, DetRng};
use meridian_core::timeout::job::TimeoutBy;
use meridian_core::{Addr, DcId, Incarnation, Instant, JobId, NodeId, Role};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hash::{Hash, Hasher};
use std::io::Write;

/// Incarnation store: a restarted node starts at `stored + 10` (membership.md §2).
const RESTART_INC_STEP: u32 = 10;

/// Which socket a message travels on: the main UDP one, the reliable stream, or the
/// out-of-band probe socket (membership.md §9).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chan {
    Datagram,
    Frame,
    Oob,
}

impl Chan {
    /// The trace's tag of a transmission on this channel; a delivery's is one more.
    fn tag(self) -> u8 {
        match self {
            Chan::Datagram => 0xD0,
            Chan::Frame => 0xF0,
            Chan::Oob => 0xB0,
        }
    }
}

enum Ev {
    Start {
        node: u32,
    },
    Deliver {
        to: u32,
        from: u32,
        bytes: Vec<u8>,
        chan: Chan,
        slowed: bool,
        /// Sequence on its link while a reorder fault is being measured, else 0.
        seq: u32,
    },
    Tick {
        node: u32,
        generation: u64,
    },
    Fault {
        index: usize,
    },
    Resume {
        node: u32,
        generation: u64,
    },
    /// leadership.md §4.5: wait (polling each second) until a majority of `group`'s
    /// live voters may stand and vote again, then arm its `CheckLeaders`.
    PollLeaders {
        healed_at: u64,
        group: u32,
    },
    /// leadership.md §4.5: check that `group` agrees on one leader.
    CheckLeaders {
        healed_at: u64,
        group: u32,
    },
    /// A flapping link (fault `index`) goes down (`up = false`) or comes back.
    Flap {
        index: usize,
        up: bool,
    },
    /// Restart a node a fault crashed (`crash_leader` with `restart_after`).
    Restart {
        node: u32,
    },
    /// The `k`-th submission of `[[job]]` entry `spec`.
    Submit {
        spec: usize,
        k: u32,
    },
    /// The workload model: a workflow a worker started has run its course.
    WorkflowDone {
        node: u32,
        boot: u64,
        job: JobId,
        workflow: u32,
        /// Items the workflow completes (its progress total; 0 if it reports none).
        items: u64,
    },
    /// The workload model: a workflow has done `done` of its `total` items.
    WorkflowProgress {
        node: u32,
        boot: u64,
        job: JobId,
        workflow: u32,
        done: u64,
        total: u64,
    },
}

/// The event queue: a min-heap of compact `(time, sequence, slot)` keys, with the
/// payloads in a slab, so sifting moves 24 bytes instead of whole events. Events at the
/// same time come out in the order they were pushed. Generic so that other protocols
/// can be driven by the same loop (`benches/foca_compare.rs`).
pub struct EventQueue<E> {
    heap: BinaryHeap<Reverse<(u64, u64, u32)>>,
    slab: Vec<Option<E>>,
    free: Vec<u32>,
    seq: u64,
}

impl<E> EventQueue<E> {
    pub fn with_capacity(n: usize) -> Self {
        EventQueue {
            heap: BinaryHeap::with_capacity(n),
            slab: Vec::with_capacity(n),
            free: Vec::new(),
            seq: 0,
        }
    }

    pub fn push(&mut self, time: u64, ev: E) {
        self.seq += 1;
        let slot = match self.free.pop() {
            Some(i) => {
                self.slab[i as usize] = Some(ev);
                i
            }
            None => {
                self.slab.push(Some(ev));
                (self.slab.len() - 1) as u32
            }
        };
        self.heap.push(Reverse((time, self.seq, slot)));
    }

    /// The event that [`Self::pop`] would return next.
    pub fn peek(&self) -> Option<&E> {
        let Reverse((_, _, slot)) = self.heap.peek()?;
        self.slab[*slot as usize].as_ref()
    }

    pub fn pop(&mut self) -> Option<(u64, E)> {
        let Reverse((time, _, slot)) = self.heap.pop()?;
        self.free.push(slot);
        let ev = self.slab[slot as usize]
            .take()
            .expect("queued slot holds its event");
        Some((time, ev))
    }
}

/// A node's local clock: `local = base_local + (t - base_true) x (1 + drift)`, never
/// running backwards.
#[derive(Clone, Copy)]
struct Clock {
    base_true: u64,
    base_local: u64,
    drift_ppm: f64,
    last_local: u64,
}

impl Clock {
    fn identity() -> Clock {
        Clock {
            base_true: 0,
            base_local: 0,
            drift_ppm: 0.0,
            last_local: 0,
        }
    }
    fn skewed(&self) -> bool {
        self.base_true != self.base_local || self.drift_ppm != 0.0
    }
    fn local(&mut self, t: u64) -> u64 {
        self.last_local = self.peek_local(t);
        self.last_local
    }
    /// The local time at `t` without advancing the clock (for read-only observers).
    fn peek_local(&self, t: u64) -> u64 {
        let l = if !self.skewed() {
            t
        } else {
            let dt = t.saturating_sub(self.base_true) as f64;
            self.base_local + (dt * (1.0 + self.drift_ppm / 1e6)) as u64
        };
        self.last_local.max(l)
    }
    fn true_time_of(self, local: u64, now: u64) -> u64 {
        if !self.skewed() {
            return local.max(now);
        }
        if local <= self.base_local {
            return now;
        }
        let dt = (local - self.base_local) as f64 / (1.0 + self.drift_ppm / 1e6);
        (self.base_true + dt.ceil() as u64).max(now)
    }
}

/// The election config every node of the simulator runs (the spec's defaults), and
/// what the heal-convergence check derives its bound from.
fn election_config() -> ElectionConfig {
    ElectionConfig::default()
}

/// leadership.md §4.5's B without the delay term, for the election config every node
/// of the simulator runs: lease + heartbeat + 3 x (pre-vote + max vote window) + flapping
/// cooldown = 5 + 2 + 3 x (2 + 7) + 0 = 34 s with the defaults.
///
/// Spec contradiction, resolved as the spec's total reads: §4.5 names a flapping cooldown
/// term and totals "34 s by default", which holds only with that term at 0 (the cooldown
/// of a group that is not flapping); the smallest cooldown a flapping group has, 5 s,
/// would make it 39 s. The check keeps the spec's total, the stricter bound, which every
/// sweep so far has held: a group that is still flapping 34 s after a heal shows as a
/// violation instead of being excused.
fn heal_convergence_us(cfg: &ElectionConfig) -> u64 {
    let max_vote_window = cfg.vote_window + cfg.vote_window_jitter;
    let b = cfg.lease + cfg.heartbeat + 3 * (cfg.pre_vote + max_vote_window);
    b.as_micros() as u64
}

/// Ticks of one node at one instant after which the simulator calls it a spin.
const SPIN_LIMIT: u32 = 100;

struct SimNode {
    spec: NodeSpec,
    machine: Option<Node>,
    up: bool,
    paused_until: u64,
    pause_generation: u64,
    slow_us: Option<(u64, u64)>,
    /// A `storm` fault: each report up the tiers goes out this many times (1: none).
    storm_copies: u32,
    clock: Clock,
    tick_generation: u64,
    tick_at: Option<u64>,
    stored_inc: u32,
    /// The election's persisted `(term, voted_for)` (survives restarts, like `stored_inc`).
    stored_vote: (u64, Option<NodeId>),
    /// Counts the node's starts: completions of workflows a crashed worker ran are void.
    boot: u64,
    /// Ticks at the same instant in a row (a machine whose deadline does not advance).
    same_instant_ticks: (u64, u32),
}

pub struct World<'a> {
    scenario: &'a Scenario,
    /// The buffer machines step into (`Node::step_into`), boxed so that taking it out
    /// and putting it back moves a pointer, not the whole inline `Outputs`.
    out_buf: Option<Box<Outputs>>,
    /// The scenario's faults for this seed, `random` entries drawn (random_faults.rs).
    faults: Vec<Fault>,
    nodes: Vec<SimNode>,
    queue: EventQueue<Ev>,
    now: u64,
    net: Network,
    net_rng: DetRng,
    node_rng: Vec<DetRng>,
    cfg: Config,
    seed: u64,
    hash: TraceHasher,
    checker: Checker,
    messages: Messages,
    events: u64,
    paused: Vec<bool>,
    up: Vec<bool>,
    trace: Option<&'a mut dyn Write>,
    /// Violations already written to the trace.
    traced_violations: usize,
    /// Keep the data the HTML report draws (`CoordsReport::plot`).
    keep_plot: bool,
    /// Per election group: when its leader last stepped down for want of a quorum on a
    /// lossy network (the leader checks start again from then).
    regrouped: std::collections::BTreeMap<u32, u64>,
    /// Per link `(from, to)`: the last sequence sent and the highest delivered, while a
    /// reorder fault is measured.
    link_seq: meridian_core::FxHashMap<(u32, u32), (u32, u32)>,
    seeds: Vec<Vec<Addr>>,
    observe: Vec<Vec<(DcId, Vec<Addr>)>>,
    /// Vivaldi accuracy, scored every 10 simulated s (None with coordinates off).
    coords: Option<CoordsTracker>,
    next_coords_sample: u64,
    /// The `[[job]]` entry of every submitted job, by job id.
    job_spec: Vec<usize>,
    /// Items each workflow's first finished run completed, per (job, DC, workflow).
    true_items: std::collections::BTreeMap<(u64, u16, u32), u64>,
    /// Backpressure accounting (scenarios with `[[load]]`).
    bp: Option<crate::backpressure::Tracker>,
    /// AD-24's counts and invariant 9 (scenarios with jobs).
    rate: Option<crate::rate_limits::Tracker>,
    /// Routing accounting (scenarios with routed jobs: `[[job]]` entries without `dcs`).
    routing: Option<crate::routing::Tracker>,
    /// §9's out-of-band probes (scenarios with `membership.oob`).
    oob: Option<crate::oob::OobTally>,
    /// Each DC's managers (the true RTT to a DC is the mean RTT to them).
    dc_managers: Vec<Vec<usize>>,
    /// When the latest fault struck (leadership re-convergence is only bounded on a
    /// quiet network).
    last_fault_at: u64,
}

impl<'a> World<'a> {
    pub fn new(scenario: &'a Scenario, seed: u64, trace: Option<&'a mut dyn Write>) -> World<'a> {
        let specs = scenario.nodes();
        let n = specs.len();
        let net = Network::new(scenario, &specs);
        let checker = Checker::new(
            specs.iter().map(|s| s.role).collect(),
            specs.iter().map(|s| s.dc).collect(),
            specs.iter().map(|s| s.name.clone()).collect(),
        );
        let (seeds, observe) = seed_lists(scenario, &specs);
        let dc_managers: Vec<Vec<usize>> = (0..scenario.dcs.len())
            .map(|d| {
                specs
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| s.dc == d && s.role == Role::Manager)
                    .map(|(i, _)| i)
                    .collect()
            })
            .collect();
        let nodes = specs
            .into_iter()
            .map(|spec| SimNode {
                spec,
                machine: None,
                up: false,
                paused_until: 0,
                pause_generation: 0,
                slow_us: None,
                storm_copies: 1,
                clock: Clock::identity(),
                tick_generation: 0,
                tick_at: None,
                stored_inc: 0,
                stored_vote: (0, None),
                boot: 0,
                same_instant_ticks: (u64::MAX, 0),
            })
            .collect();
        let mut w = World {
            out_buf: None,
            scenario,
            faults: crate::random_faults::concrete_faults(scenario, seed),
            traced_violations: 0,
            keep_plot: false,
            regrouped: Default::default(),
            link_seq: Default::default(),
            nodes,
            queue: EventQueue::with_capacity(4 * n + 64),
            now: 0,
            net,
            net_rng: DetRng::new(derive_seed(seed, u64::MAX)),
            node_rng: (0..n)
                .map(|i| DetRng::new(derive_seed(seed ^ 0xA5A5, i as u64)))
                .collect(),
            cfg: scenario.membership_config(),
            seed,
            hash: TraceHasher::new(),
            checker,
            messages: Messages::default(),
            events: 0,
            paused: vec![false; n],
            up: vec![false; n],
            trace,
            seeds,
            observe,
            coords: scenario
                .membership_config()
                .coordinates
                .then(CoordsTracker::default),
            next_coords_sample: coords::SERIES_EVERY_US,
            job_spec: Vec::new(),
            true_items: Default::default(),
            bp: (!scenario.loads.is_empty()).then(Default::default),
            rate: (!scenario.jobs.is_empty()).then(Default::default),
            oob: scenario.membership_config().oob.then(Default::default),
            routing: scenario
                .jobs
                .iter()
                .any(|j| j.dcs.is_none())
                .then(Default::default),
            dc_managers,
            last_fault_at: 0,
        };
        // Nodes boot over the first second, in a seeded order.
        for i in 0..n {
            let at = w.net_rng.range_u64(0, 999_999);
            w.push(at, Ev::Start { node: i as u32 });
        }
        for index in 0..w.faults.len() {
            let at = w.faults[index].at().as_micros() as u64;
            w.push(at, Ev::Fault { index });
        }
        for (spec, j) in scenario.jobs.iter().enumerate() {
            for k in 0..j.count {
                let at = j.at + j.every.unwrap_or_default() * k;
                if at <= scenario.duration {
                    w.push(at.as_micros() as u64, Ev::Submit { spec, k });
                }
            }
        }
        w
    }

    fn push(&mut self, time: u64, ev: Ev) {
        self.queue.push(time, ev);
    }

    /// Run to the scenario's end and report.
    /// Also keep what the HTML report draws (see [`crate::run_for_html`]).
    pub fn with_plot(mut self) -> Self {
        self.keep_plot = true;
        self
    }

    pub fn run(mut self) -> Report {
        let started = std::time::Instant::now();
        let end = self.scenario.duration.as_micros() as u64;
        if let Some(w) = self.trace.as_mut() {
            let names: Vec<String> = self.nodes.iter().map(|n| n.spec.name.clone()).collect();
            let header = crate::trace::header(&self.scenario.name, self.seed, &names);
            let _ = writeln!(w, "{header}");
        }
        while let Some((time, ev)) = self.queue.pop() {
            if time > end {
                break;
            }
            // Score the coordinates as they stood at each 10 s mark (reading machine
            // state only: the trace and every decision are unaffected).
            while self.coords.is_some() && self.next_coords_sample <= time {
                let at = self.next_coords_sample;
                self.next_coords_sample += coords::SERIES_EVERY_US;
                self.score_coords(at, false);
            }
            self.now = time;
            self.events += 1;
            self.warm_next();
            match ev {
                Ev::Start { node } => self.start(node as usize, false),
                Ev::Deliver {
                    to,
                    from,
                    bytes,
                    chan,
                    slowed,
                    seq,
                } => self.deliver(to as usize, from as usize, bytes, chan, slowed, seq),
                Ev::Tick { node, generation } => self.tick(node as usize, generation),
                Ev::Fault { index } => self.fault(index),
                Ev::Resume { node, generation } => {
                    let n = &mut self.nodes[node as usize];
                    if n.pause_generation == generation {
                        self.paused[node as usize] = false;
                    }
                }
                Ev::Submit { spec, k } => self.submit(spec, k),
                Ev::Restart { node } => {
                    // A scheduled restart (`crash_leader` with `restart_after`) is a
                    // fault like any other: a leader check pending from before it no
                    // longer applies (its own check follows).
                    self.last_fault_at = self.now;
                    self.start(node as usize, true);
                    self.check_leaders_later();
                }
                Ev::Flap { index, up } => self.flap(index, up),
                Ev::PollLeaders { healed_at, group } => self.poll_leaders(healed_at, group),
                Ev::CheckLeaders { healed_at, group } => self.check_leaders(healed_at, group),
                Ev::WorkflowDone {
                    node,
                    boot,
                    job,
                    workflow,
                    items,
                } => {
                    let i = node as usize;
                    if self.nodes[i].up && self.nodes[i].boot == boot && !self.stalled(i, job) {
                        // The truth a job's reported items are checked against: the
                        // first run of each workflow in each DC that finished.
                        let dc = self.nodes[i].spec.dc as u16;
                        self.true_items
                            .entry((job.0, dc, workflow))
                            .or_insert(items);
                        self.feed(
                            i,
                            Input::WorkflowFinished {
                                job,
                                workflow,
                                items,
                            },
                        );
                    }
                }
                Ev::WorkflowProgress {
                    node,
                    boot,
                    job,
                    workflow,
                    done,
                    total,
                } => self.workflow_progress(node, boot, job, workflow, done, total),
            }
            self.checker.settle(self.now);
            self.trace_violations();
        }
        self.now = end;
        while self.coords.is_some() && self.next_coords_sample <= end {
            let at = self.next_coords_sample;
            self.next_coords_sample += coords::SERIES_EVERY_US;
            self.score_coords(at, false);
        }
        let coords_report = self.score_coords(end, true);
        let partitions = self
            .faults
            .iter()
            .any(|f| matches!(f, Fault::Partition { .. } | Fault::IsolateLeader { .. }));
        self.checker.on_heal(end);
        let bound = completeness_bounds(&self.cfg, &self.checker, &self.nodes);
        self.checker.finish(end, |s| bound[s], partitions);
        self.trace_violations();
        let trace_hash = format!("{:016x}", self.hash.finish());
        if let Some(w) = self.trace.as_mut() {
            let _ = writeln!(w, "{}", crate::trace::end_line(end, &trace_hash));
        }
        let wall = started.elapsed();
        let wall_s = wall.as_secs_f64().max(1e-9);
        let tables_at_end = self.tables_at_end();
        let anti_entropy = self.anti_entropy();
        let leadership = self.leadership_report();
        let jobs = self.jobs_report();
        let backpressure = self.bp.as_ref().map(|bp| {
            let mut shed = [0u64; 4];
            let mut overwritten = 0;
            for m in self.nodes.iter().filter_map(|n| n.machine.as_ref()) {
                for (s, x) in shed.iter_mut().zip(m.shed_counts()) {
                    *s += x;
                }
                overwritten += m.buffer_overwritten().unwrap_or(0);
            }
            let names: Vec<String> = self.nodes.iter().map(|n| n.spec.name.clone()).collect();
            bp.report(end, &names, shed, overwritten)
        });
        let c = self.checker;
        Report {
            scenario: self.scenario.name.clone(),
            seed: self.seed,
            nodes: self.nodes.len(),
            sim_duration_ms: end / 1000,
            events: self.events,
            wall_ms: wall.as_millis() as u64,
            trace_hash,
            throughput: Throughput {
                messages_per_wall_sec: self.messages.sent as f64 / wall_s,
                events_per_wall_sec: self.events as f64 / wall_s,
            },
            messages: self.messages,
            membership: MembershipReport {
                false_positives: c.false_positives,
                false_positive_details: c.false_positive_details.clone(),
                detections: c.detections.clone(),
                converged_at_ms: c.converged_at_ms,
                consistent_at_end: c.consistent(),
                suspicions: c.suspicions,
                refutations: c.refutations,
                partitions: c.partitions.clone(),
                tables_at_end,
                anti_entropy,
                job_layer: c.job_layer.clone(),
                oob: self.oob.as_ref().map(|t| t.report()),
            },
            leadership,
            jobs,
            coords: coords_report,
            backpressure,
            routing: self.routing.as_ref().map(|r| r.report()),
            invariants: Invariants {
                checked: c.checked,
                violations_total: c.violations_total,
                violations: c.violations.clone(),
            },
        }
    }

    /// Score the live nodes' coordinates against the true RTTs at simulated time `at`:
    /// one series point, or (`finish`) the final report. The truth is the network's
    /// RTT: coordinates model the network, and a `slow` node's hold is load, which
    /// peer health covers (membership.md §9); a loaded end's RTT sample does not teach
    /// Vivaldi (`Membership::learn_rtt`).
    fn score_coords(&mut self, at: u64, finish: bool) -> Option<CoordsReport> {
        let machines: Vec<(usize, &Node, Instant)> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.up)
            .filter_map(|(i, n)| {
                n.machine
                    .as_ref()
                    .map(|m| (i, m, Instant(n.clock.peek_local(at))))
            })
            .collect();
        let net = &self.net;
        let rtt = |a: usize, b: usize| net.rtt_us(a, b) as f64 / 1000.0;
        if finish {
            let tracker = self.coords.take()?;
            return Some(tracker.finish(&machines, &rtt, self.keep_plot));
        }
        let mut tracker = self.coords.take()?;
        tracker.sample(at, &machines, &rtt);
        self.coords = Some(tracker);
        None
    }

    /// Group 0 is the gates'; group `d + 1` DC `d`'s managers'.
    fn group_name(&self, group: u32) -> String {
        match group {
            0 => "gates".to_string(),
            g => self
                .scenario
                .dcs
                .get(g as usize - 1)
                .map_or_else(|| format!("group-{g}"), |d| d.name.clone()),
        }
    }

    fn jobs_report(&self) -> Option<JobsReport> {
        if self.scenario.jobs.is_empty() {
            return None;
        }
        let mut r = JobsReport {
            takeovers: self.checker.takeovers,
            gate_takeovers: self.checker.gate_takeovers,
            ..JobsReport::default()
        };
        for (id, t) in self.checker.jobs.iter().enumerate() {
            let job = JobId(id as u64);
            let state = match (t.dcs, t.ended) {
                (None, _) => {
                    r.refused += 1;
                    "refused"
                }
                (Some(_), Some((_, JobState::Completed))) => {
                    r.completed += 1;
                    "completed"
                }
                (Some(_), Some((_, JobState::Failed))) => {
                    r.failed += 1;
                    "failed"
                }
                (Some(_), Some((_, JobState::TimedOut))) => {
                    r.timed_out += 1;
                    "timed_out"
                }
                (Some(_), None) => {
                    let tracked = self
                        .nodes
                        .iter()
                        .any(|n| n.up && n.machine.as_ref().is_some_and(|m| m.tracks_job(job)));
                    if tracked {
                        r.in_flight += 1;
                        "in_flight"
                    } else {
                        r.lost += 1;
                        "lost"
                    }
                }
            };
            if t.dcs.is_some() {
                r.submitted += 1;
            }
            // Who timed it out: the gate's decision if there was one, else the first
            // manager that acted (a single-DC job's leader, or a fallback).
            let timed_out_by = if t.global_timeouts > 0 {
                Some("global")
            } else {
                t.timed_out.iter().min_by_key(|x| x.2).map(|x| match x.1 {
                    TimeoutBy::Local => "local",
                    TimeoutBy::Global => "global",
                    TimeoutBy::Fallback => "fallback",
                })
            };
            r.global_timeouts += t.global_timeouts as u64;
            r.extensions += t.extensions;
            r.per_job.push(JobEntry {
                id: id as u64,
                submitted_ms: t.attempted_at / 1000,
                ended_ms: t.ended.map(|(at, _)| at / 1000),
                state: state.to_string(),
                dcs: t.dcs.unwrap_or(0),
                timed_out_by: timed_out_by.map(str::to_string),
                extensions: t.extensions,
                extended_ms: t.extended_us / 1000,
                dcs_timed_out: t.timed_out.len() as u16,
                running_at_end: self.holders_at_end(job, true),
                items: t.items,
                items_expected: self
                    .true_items
                    .range((id as u64, 0, 0)..=(id as u64, u16::MAX, u32::MAX))
                    .map(|(_, n)| *n)
                    .sum(),
                tracked_at_end: if t.ended.is_some() {
                    self.holders_at_end(job, false)
                } else {
                    0
                },
            });
        }
        if let Some(rate) = &self.rate {
            let held_by_live = self
                .nodes
                .iter()
                .filter_map(|n| n.machine.as_ref())
                .map(|m| m.rate_limit_counts().held)
                .sum();
            r.rate_limits = rate.report(held_by_live);
        }
        Some(r)
    }

    /// Live nodes that still hold `job` at the end: workers (running or reporting one
    /// of its workflows), or gates and managers (tracking it or keeping a replica).
    fn holders_at_end(&self, job: JobId, workers: bool) -> u16 {
        self.nodes
            .iter()
            .filter(|n| n.up && (n.spec.role == Role::Worker) == workers)
            .filter(|n| n.machine.as_ref().is_some_and(|m| m.tracks_job(job)))
            .count() as u16
    }

    /// leadership.md §4.5: after a heal, a leader's crash or its restart at H, every
    /// group agrees on one leader by H + B, B = lease + heartbeat + 3 (pre-vote + max
    /// vote window) + flapping cooldown + 2d = 34 s + 2d (d: the largest one-way delay).
    ///
    /// Spec gap: B assumes the voters may stand and vote from H on, but a node whose
    /// LHM is above 4 (or that is degraded) may do neither, and one back from a long
    /// isolation needs tens of seconds of good probes to get there. So the clock starts
    /// at H or, later, at the first second a majority of the group's live voters is
    /// eligible again (polled each second from H); the bound itself is the spec's.
    fn check_leaders_later(&mut self) {
        let mut groups: Vec<u32> = self
            .nodes
            .iter()
            .filter(|n| n.spec.role != Role::Worker)
            .map(|n| Self::election_group(&n.spec))
            .collect();
        groups.sort_unstable();
        groups.dedup();
        for group in groups {
            self.push(
                self.now,
                Ev::PollLeaders {
                    healed_at: self.now,
                    group,
                },
            );
        }
    }

    /// Group 0 is the gates'; group `d + 1` DC `d`'s managers' (as `group_name`).
    fn election_group(spec: &NodeSpec) -> u32 {
        match spec.role {
            Role::Gate => 0,
            _ => spec.dc as u32 + 1,
        }
    }

    /// The bound holds for a clean network (no loss, no partition, no paused or slowed
    /// node, no other fault since H); otherwise there is nothing to check.
    fn leader_check_disturbed(&self, healed_at: u64) -> bool {
        self.last_fault_at > healed_at
            || !self.net.is_clean()
            || self.paused.iter().any(|p| *p)
            || self.nodes.iter().any(|n| n.slow_us.is_some())
    }

    /// `group`'s live voters' views of the leader, its voters (live or not), and how
    /// many live ones may stand and vote now.
    fn leader_views(&self, group: u32) -> (Vec<Option<NodeId>>, usize, usize) {
        let (mut views, mut voters, mut eligible) = (Vec::new(), 0, 0);
        for n in &self.nodes {
            if n.spec.role == Role::Worker || Self::election_group(&n.spec) != group {
                continue;
            }
            voters += 1;
            if let Some(el) =
                n.up.then(|| n.machine.as_ref().and_then(|m| m.election()))
                    .flatten()
            {
                views.push(el.leader());
                eligible += usize::from(el.eligible());
            }
        }
        (views, voters, eligible)
    }

    /// A leader of node `i`'s group stepped down for want of a quorum. On a lossy
    /// network that is the protocol working (check-quorum after two heartbeats or their
    /// acks were lost in a row: the lease covers one), not a failure to converge: the
    /// group's convergence is judged afresh from now, and checks pending from before
    /// no longer apply to it. On a loss-free network it is left to the checks as is.
    fn quorum_lost(&mut self, i: usize) {
        if !self.net.lossy() {
            return;
        }
        self.regroup(Self::election_group(&self.nodes[i].spec));
    }

    /// Node `i` lost its leader of `term` (its lease ran out) while that leader still
    /// leads: on a lossy network, the heartbeats of a lease lost in a row, the
    /// follower's side of what [`World::quorum_lost`] is for the leader, and judged the
    /// same way. The follower hears the next heartbeat and follows again; a check that
    /// came due in between called that a failure to converge (the shrunk regression of
    /// `sim/tests/shrink.rs`, seed 4006 at 1% loss: two heartbeats of eu-west's leader
    /// lost in a row, and the check 0.25 s into the half second manager-1 had no
    /// leader). A lapse because the leader is gone is left to the checks as is.
    fn lease_lapsed(&mut self, i: usize, term: u64) {
        if !self.net.lossy() {
            return;
        }
        let group = Self::election_group(&self.nodes[i].spec);
        let still_leads = self.nodes.iter().any(|n| {
            n.up && n.spec.role != Role::Worker
                && Self::election_group(&n.spec) == group
                && n.machine
                    .as_ref()
                    .and_then(|m| m.election())
                    .is_some_and(|e| {
                        e.role() == meridian_core::leadership::ElectionRole::Leader
                            && e.term() == term
                    })
        });
        if still_leads {
            self.regroup(group);
        }
    }

    /// `group`'s convergence is judged afresh from now.
    fn regroup(&mut self, group: u32) {
        self.regrouped.insert(group, self.now);
        self.push(
            self.now,
            Ev::PollLeaders {
                healed_at: self.now,
                group,
            },
        );
    }

    /// Whether a later disturbance of `group` (see [`World::quorum_lost`]) supersedes a
    /// check that started at `healed_at`.
    fn superseded(&self, healed_at: u64, group: u32) -> bool {
        self.regrouped.get(&group).is_some_and(|t| *t > healed_at)
    }

    fn poll_leaders(&mut self, healed_at: u64, group: u32) {
        if self.leader_check_disturbed(healed_at) || self.superseded(healed_at, group) {
            return;
        }
        let (views, voters, eligible) = self.leader_views(group);
        let majority = voters / 2 + 1;
        if views.len() >= majority && eligible >= majority {
            let d = self.net.max_rtt_us() / 2;
            self.push(
                self.now + heal_convergence_us(&election_config()) + 2 * d,
                Ev::CheckLeaders { healed_at, group },
            );
        } else if views.len() >= majority {
            // Live, but not healthy enough to elect anyone yet.
            self.push(self.now + 1_000_000, Ev::PollLeaders { healed_at, group });
        }
    }

    /// leadership.md §4.5 at B after the group could elect again: its live voters
    /// follow one live leader (a group that lost its majority again is not judged).
    fn check_leaders(&mut self, healed_at: u64, group: u32) {
        if self.leader_check_disturbed(healed_at) || self.superseded(healed_at, group) {
            return;
        }
        let (views, voters, eligible) = self.leader_views(group);
        if views.len() < voters / 2 + 1 || eligible < voters / 2 + 1 {
            return;
        }
        let first = views[0];
        let agreed =
            first.is_some_and(|l| views.iter().all(|v| *v == first) && self.nodes[l.0 as usize].up);
        if !agreed {
            let name = self.group_name(group);
            self.checker.violation_at(
                self.now,
                "heal-convergence",
                format!(
                    "{name}: no agreed leader {} s after the heal, crash or restart at {} s",
                    (self.now - healed_at) / 1_000_000,
                    healed_at / 1_000_000
                ),
            );
        }
    }

    /// The live node that leads DC `dc`'s managers (or the gates, `dc = "gates"`) now.
    fn leader_of(&self, dc: &str) -> Option<usize> {
        let gates = dc == "gates";
        self.nodes.iter().position(|n| {
            n.up && (if gates {
                n.spec.role == Role::Gate
            } else {
                n.spec.role == Role::Manager && self.scenario.dcs[n.spec.dc].name == dc
            }) && n
                .machine
                .as_ref()
                .and_then(|m| m.election())
                .is_some_and(|e| e.role() == meridian_core::leadership::ElectionRole::Leader)
        })
    }

    fn fault_partition(&mut self, groups: Vec<Vec<String>>, one_way: bool) {
        let specs: Vec<NodeSpec> = self.nodes.iter().map(|n| n.spec.clone()).collect();
        self.net
            .partition(&groups, one_way, self.scenario, &specs, self.now);
        let net = &self.net;
        let side: Vec<u16> = (0..self.nodes.len()).map(|i| net.group_of(i)).collect();
        self.checker
            .on_partition(self.now, &|a, b| net.cut(a, b), side);
    }

    fn leadership_report(&self) -> LeadershipReport {
        let c = &self.checker;
        let mut leaders_at_end = std::collections::BTreeMap::new();
        let mut views: std::collections::BTreeMap<u32, Vec<Option<NodeId>>> = Default::default();
        for n in self.nodes.iter().filter(|n| n.up) {
            if let Some(e) = n.machine.as_ref().and_then(|m| m.election()) {
                let group = Self::election_group(&n.spec);
                views.entry(group).or_default().push(e.leader());
            }
        }
        for (group, v) in views {
            let agreed = v
                .first()
                .copied()
                .flatten()
                .filter(|l| v.iter().all(|x| *x == Some(*l)))
                .filter(|l| self.nodes[l.0 as usize].up);
            leaders_at_end.insert(
                self.group_name(group),
                agreed.map(|l| self.nodes[l.0 as usize].spec.name.clone()),
            );
        }
        LeadershipReport {
            elections: c.elections,
            leaders_per_term_max: c.leaders_per_term_max,
            leader_changes: c
                .elected_per_group
                .iter()
                .map(|(g, n)| (self.group_name(*g), *n))
                .collect(),
            leaders_at_end,
        }
    }

    fn anti_entropy(&self) -> AntiEntropy {
        let mut a = AntiEntropy::default();
        for s in self
            .nodes
            .iter()
            .filter_map(|n| n.machine.as_ref())
            .flat_map(|n| n.memberships())
            .map(|m| m.stats())
        {
            a.digest_offers += s.sync_digests;
            a.in_step += s.syncs_in_step;
            a.full_push_pulls += s.push_pulls;
        }
        a
    }

    fn tables_at_end(&self) -> TablesAtEnd {
        let mut t = TablesAtEnd {
            members_min: usize::MAX,
            ..TablesAtEnd::default()
        };
        for m in self
            .nodes
            .iter()
            .filter_map(|n| n.machine.as_ref())
            .flat_map(|n| n.memberships())
        {
            let s = m.table_sizes();
            t.members_min = t.members_min.min(s.members);
            t.members_max = t.members_max.max(s.members);
            t.gossip_max = t.gossip_max.max(s.gossip);
            t.timers_max = t.timers_max.max(s.timers);
            t.helps_max = t.helps_max.max(s.helps);
            t.proactive_max = t.proactive_max.max(s.proactive);
            t.rate_buckets_max = t.rate_buckets_max.max(s.rate_buckets);
            t.coord_peers_max = t.coord_peers_max.max(s.coord_peers);
            t.health_records_max = t.health_records_max.max(s.health_records);
            t.job_suspicions_max = t.job_suspicions_max.max(s.job_suspicions);
        }
        if t.members_min == usize::MAX {
            t.members_min = 0;
        }
        t.job_entries_max = self
            .nodes
            .iter()
            .filter(|n| n.up)
            .filter_map(|n| n.machine.as_ref())
            .map(|m| m.job_table_len())
            .max()
            .unwrap_or(0);
        t
    }

    fn node_config(&self, i: usize, inc: u32) -> NodeConfig {
        let spec = &self.nodes[i].spec;
        NodeConfig {
            node: NodeId(i as u32),
            role: spec.role,
            dc: DcId(spec.dc as u16),
            addr: Addr::from_u32(i as u32),
            seeds: self.seeds[i].clone(),
            observe: self.observe[i].clone(),
            membership: self.cfg.clone(),
            incarnation: Incarnation(inc),
            // A restart gets a fresh stream, still a pure function of (seed, node, inc).
            seed: derive_seed(self.seed, ((inc as u64) << 32) | i as u64),
            voters: self.voters(i),
            election: election_config(),
            persisted_vote: self.nodes[i].stored_vote,
            backpressure: self.scenario.backpressure,
            routing_hysteresis: self.scenario.routing.hysteresis,
            job_silence: self.scenario.job_silence,
        }
    }

    /// The configured election group of node `i`: its DC's managers (managers), all gates
    /// (gates), nobody (workers).
    fn voters(&self, i: usize) -> Vec<(NodeId, Addr)> {
        let me = &self.nodes[i].spec;
        if me.role == Role::Worker {
            return Vec::new();
        }
        self.nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| {
                n.spec.role == me.role && (me.role == Role::Gate || n.spec.dc == me.dc)
            })
            .map(|(j, _)| (NodeId(j as u32), Addr::from_u32(j as u32)))
            .collect()
    }

    fn start(&mut self, i: usize, restart: bool) {
        if self.nodes[i].up {
            return;
        }
        if let Some(w) = self.trace.as_mut() {
            let line = crate::trace::node_line(self.now, &self.nodes[i].spec.name, "started");
            let _ = writeln!(w, "{line}");
        }
        let inc = if restart {
            self.nodes[i].stored_inc + RESTART_INC_STEP
        } else {
            0
        };
        self.nodes[i].stored_inc = inc;
        self.nodes[i].boot += 1;
        let cfg = self.node_config(i, inc);
        let local = self.nodes[i].clock.local(self.now);
        let (mut machine, outs) = Node::new(cfg, Instant(local));
        if self.rate.is_some() {
            machine.record_admissions();
        }
        self.nodes[i].machine = Some(machine);
        self.nodes[i].up = true;
        self.up[i] = true;
        self.checker.on_start(i, inc, self.now);
        self.hash.update(&[0xB0]);
        self.hash.update(&(i as u32).to_le_bytes());
        self.hash.update(&self.now.to_le_bytes());
        for o in outs {
            self.output(i, o, Instant(local));
        }
        if let Some(bp) = self.bp.as_mut() {
            if let Some(fill) = self.nodes[i].machine.as_ref().and_then(|m| m.buffer_fill()) {
                bp.on_fill(i, fill);
            }
        }
        self.reschedule(i);
    }

    fn stop(&mut self, i: usize, crashed: bool) {
        if !self.nodes[i].up {
            return;
        }
        if let (Some(rate), Some(m)) = (self.rate.as_mut(), self.nodes[i].machine.as_ref()) {
            rate.on_stop(i, m.rate_limit_counts().held);
        }
        let n = &mut self.nodes[i];
        n.up = false;
        n.machine = None;
        n.tick_at = None;
        n.tick_generation += 1;
        self.up[i] = false;
        self.paused[i] = false;
        self.checker.on_stop(i, self.now, crashed);
        if let Some(rt) = self.routing.as_mut() {
            rt.on_stop(i);
        }
        if let Some(bp) = self.bp.as_mut() {
            bp.on_stop(i, self.now);
        }
        if let Some(t) = self.oob.as_mut() {
            t.forget(i);
        }
        if let Some(w) = self.trace.as_mut() {
            let what = if crashed { "crashed" } else { "stopped" };
            let line = crate::trace::node_line(self.now, &self.nodes[i].spec.name, what);
            let _ = writeln!(w, "{line}");
        }
    }

    fn deliver(
        &mut self,
        to: usize,
        from: usize,
        bytes: Vec<u8>,
        chan: Chan,
        slowed: bool,
        seq: u32,
    ) {
        if !self.nodes[to].up {
            self.messages.dropped += 1;
            self.messages.dropped_down += 1;
            return;
        }
        if self.paused[to] {
            // A paused process's socket buffers what arrives; it is read on resume.
            let at = self.nodes[to].paused_until;
            self.push(
                at,
                Ev::Deliver {
                    to: to as u32,
                    from: from as u32,
                    bytes,
                    chan,
                    slowed,
                    seq,
                },
            );
            return;
        }
        // The OOB socket is served ahead of the main one (§9): a slow node's queue does
        // not hold its probes back.
        let frame = chan == Chan::Frame;
        if let (Some((lo, hi)), false, false) = (self.nodes[to].slow_us, slowed, chan == Chan::Oob)
        {
            // AD-32: the slow node holds the message until it can handle it, within its
            // in-flight caps (a refusal drops it; CONTROL is always admitted).
            let node = &mut self.nodes[to];
            let local = Instant(node.clock.peek_local(self.now));
            let admitted = node
                .machine
                .as_mut()
                .is_some_and(|m| m.admit(&bytes, frame, local));
            if !admitted {
                self.messages.dropped += 1;
                return;
            }
            let d = self.node_rng[to].range_u64(lo, hi);
            // The node's shell measures how long messages wait to be handled: its
            // overload detector's sample (AD-18).
            if self.nodes[to].up && !self.paused[to] {
                self.feed(
                    to,
                    Input::ProcessingLatency {
                        ms: d as f64 / 1000.0,
                    },
                );
            }
            self.push(
                self.now + d,
                Ev::Deliver {
                    to: to as u32,
                    from: from as u32,
                    bytes,
                    chan,
                    slowed: true,
                    seq,
                },
            );
            return;
        }
        self.messages.delivered += 1;
        if seq != 0 {
            // A datagram delivered after one sent later on the same link: reordered.
            let last = self.link_seq.entry((from as u32, to as u32)).or_default();
            if seq < last.1 {
                self.messages.reordered += 1;
            } else {
                last.1 = seq;
            }
        }
        if chan != Chan::Oob {
            // An OOB answer confirms nobody (invariant 3 counts main-socket traffic).
            self.checker.on_delivery(to, from);
        }
        let local = self.nodes[to].clock.local(self.now);
        self.hash.update(&[chan.tag() + 1]);
        self.hash.update(&(to as u32).to_le_bytes());
        self.hash.update(&(from as u32).to_le_bytes());
        self.hash.update(&local.to_le_bytes());
        self.hash.update(&bytes);
        let from_addr = Addr::from_u32(from as u32);
        let machine = self.nodes[to]
            .machine
            .as_mut()
            .expect("up nodes have a machine");
        let input = match chan {
            Chan::Frame => Input::Frame {
                from: from_addr,
                bytes: &bytes,
            },
            Chan::Datagram => Input::Datagram {
                from: from_addr,
                bytes: &bytes,
            },
            Chan::Oob => Input::Oob {
                from: from_addr,
                bytes: &bytes,
            },
        };
        let mut outs = self.out_buf.take().unwrap_or_default();
        machine.step_into(input, Instant(local), &mut outs);
        if slowed {
            machine.release(&bytes, frame);
        }
        self.route_outputs(to, outs, Instant(local));
        if let (Some(bp), true) = (self.bp.as_mut(), frame) {
            if let Some(fill) = self.nodes[to]
                .machine
                .as_ref()
                .and_then(|m| m.buffer_fill())
            {
                bp.on_fill(to, fill);
            }
        }
        self.reschedule(to);
    }

    /// Step node `i` with `input` now, route its outputs, re-arm its timer.
    fn feed(&mut self, i: usize, input: Input<'_>) {
        let local = self.nodes[i].clock.local(self.now);
        self.hash.update(&[0x1B]);
        self.hash.update(&(i as u32).to_le_bytes());
        self.hash.update(&local.to_le_bytes());
        let mut outs = self.out_buf.take().unwrap_or_default();
        self.nodes[i]
            .machine
            .as_mut()
            .expect("up nodes have a machine")
            .step_into(input, Instant(local), &mut outs);
        self.route_outputs(i, outs, Instant(local));
        self.reschedule(i);
    }

    /// Route what node `i` output at `local`, and keep the emptied buffer for the next
    /// step.
    fn route_outputs(&mut self, i: usize, mut outs: Box<Outputs>, local: Instant) {
        if let Some(rate) = self.rate.as_mut() {
            let mut admitted = rate.take_scratch();
            if let Some(m) = self.nodes[i].machine.as_mut() {
                m.drain_admissions(&mut admitted);
            }
            let (checker, now) = (&mut self.checker, self.now);
            rate.check(i, &self.nodes[i].spec.name, admitted, |detail| {
                checker.violation_at(now, "rate-limit", detail)
            });
        }
        for o in outs.drain(..) {
            self.output(i, o, local);
        }
        self.out_buf = Some(outs);
    }

    /// A client submits the `k`-th job of `[[job]]` entry `spec` to its gate (one of the
    /// entry's `clients`, in turn): run in the
    /// DCs it names (pinned), else in `datacenters` DCs the gate's router picks (AD-36),
    /// `prefer`red ones ranked better, the entry's jobs sharing one routing key.
    fn submit(&mut self, spec: usize, k: u32) {
        let j = &self.scenario.jobs[spec];
        let job = JobId(self.job_spec.len() as u64);
        self.job_spec.push(spec);
        let ids = |names: &[String]| -> Vec<DcId> {
            names
                .iter()
                .filter_map(|n| self.scenario.dcs.iter().position(|d| d.name == *n))
                .map(|d| DcId(d as u16))
                .collect()
        };
        let dcs = match &j.dcs {
            Some(names) => DcRequest::Pinned(ids(names)),
            None => DcRequest::Routed {
                count: j.datacenters.min(u16::MAX as usize) as u16,
                preferred: ids(j.prefer.as_deref().unwrap_or_default()),
                key: Some(spec as u64),
            },
        };
        let timeout = j.timeout;
        let workflows = j.workflows;
        // AD-24's client: the entry's (its `client`, else its index), one of its
        // `clients` in turn.
        let entry = j.client.map_or(spec as u64, u64::from);
        let client = (entry << 32) | (k % j.clients) as u64;
        let Some(gate) = self.nodes.iter().position(|n| n.spec.name == j.gate) else {
            return;
        };
        self.checker.on_submit_attempt(job, self.now);
        if !self.nodes[gate].up || self.paused[gate] {
            return; // nobody took the submission: it never entered the system
        }
        self.feed(
            gate,
            Input::SubmitJob {
                job,
                dcs,
                workflows,
                timeout,
                client,
            },
        );
    }

    /// Whether `job`'s workflows on node `i` make no progress now (its `stall`).
    fn stalled(&self, i: usize, job: JobId) -> bool {
        let Some(spec) = self
            .job_spec
            .get(job.0 as usize)
            .map(|s| &self.scenario.jobs[*s])
        else {
            return false;
        };
        spec.stall.as_ref().is_some_and(|st| {
            self.now >= st.after.as_micros() as u64
                && st.covers(
                    &self.scenario.dcs[self.nodes[i].spec.dc].name,
                    &self.nodes[i].spec.name,
                )
        })
    }

    /// One more item done (unless stalled), and the next one scheduled.
    fn workflow_progress(
        &mut self,
        node: u32,
        boot: u64,
        job: JobId,
        workflow: u32,
        done: u64,
        total: u64,
    ) {
        let i = node as usize;
        if !self.nodes[i].up || self.nodes[i].boot != boot || self.stalled(i, job) {
            return;
        }
        self.feed(
            i,
            Input::WorkflowProgress {
                job,
                workflow,
                completed: done,
                total,
            },
        );
        let every = self
            .job_spec
            .get(job.0 as usize)
            .and_then(|s| self.scenario.jobs[*s].progress_every);
        if let (Some(every), true) = (every, done + 1 < total) {
            self.push(
                self.now + every.as_micros() as u64,
                Ev::WorkflowProgress {
                    node,
                    boot,
                    job,
                    workflow,
                    done: done + 1,
                    total,
                },
            );
        }
    }

    /// The workload model: a started workflow finishes after `U[workflow_duration]`,
    /// unless it is stalled there (then never).
    fn workflow_started(&mut self, i: usize, job: JobId, workflow: u32) {
        let Some(spec) = self
            .job_spec
            .get(job.0 as usize)
            .map(|s| &self.scenario.jobs[*s])
        else {
            return;
        };
        if spec.stall.is_some() && self.stalled(i, job) {
            return;
        }
        let (lo, hi) = spec.workflow_duration;
        let d = self.node_rng[i].range_u64(lo.as_micros() as u64, hi.as_micros() as u64 + 1);
        let boot = self.nodes[i].boot;
        let mut items = 0;
        if let Some(every) = spec.progress_every {
            let every = every.as_micros() as u64;
            let total = (d / every).max(1);
            items = total;
            self.push(
                self.now + every,
                Ev::WorkflowProgress {
                    node: i as u32,
                    boot,
                    job,
                    workflow,
                    done: 1,
                    total,
                },
            );
        }
        self.push(
            self.now + d,
            Ev::WorkflowDone {
                node: i as u32,
                boot,
                job,
                workflow,
                items,
            },
        );
    }

    /// Read the first lines of the next event's node now, so that their cache misses
    /// overlap with this event's work instead of starting the next one (at 2,000 nodes
    /// consecutive events almost never share a node, and each began with a chain of
    /// misses: the node's record, its machine, its membership). Changes nothing.
    fn warm_next(&self) {
        let (node, from) = match self.queue.peek() {
            // A node's id is its index in the world.
            Some(Ev::Deliver { to, from, .. }) => (*to, Some(NodeId(*from))),
            Some(Ev::Tick { node, .. }) => (*node, None),
            _ => return,
        };
        let Some(n) = self.nodes.get(node as usize) else {
            return;
        };
        let seen = n.machine.as_ref().map_or(0, |m| m.warm(from));
        std::hint::black_box((n.up, n.tick_generation, seen));
    }

    fn tick(&mut self, i: usize, generation: u64) {
        let n = &mut self.nodes[i];
        if !n.up || n.tick_generation != generation {
            return;
        }
        n.tick_at = None;
        if self.paused[i] {
            // Timers of a paused process fire late, all at once, on resume.
            let at = n.paused_until;
            self.arm_tick(i, at);
            return;
        }
        let local = n.clock.local(self.now);
        self.hash.update(&[0x71]);
        self.hash.update(&(i as u32).to_le_bytes());
        self.hash.update(&local.to_le_bytes());
        // A machine must move its deadline past the instant it was ticked at (a timer
        // added while a step runs may cost one more tick at the same instant, not 100).
        let spins = if n.same_instant_ticks.0 == self.now {
            n.same_instant_ticks.1 + 1
        } else {
            0
        };
        n.same_instant_ticks = (self.now, spins);
        let mut outs = self.out_buf.take().unwrap_or_default();
        n.machine
            .as_mut()
            .expect("up nodes have a machine")
            .step_into(Input::Tick, Instant(local), &mut outs);
        self.route_outputs(i, outs, Instant(local));
        if spins == SPIN_LIMIT {
            self.checker.violation_at(
                self.now,
                "deadline-not-advanced",
                format!(
                    "{} ticked {SPIN_LIMIT} times at the same instant",
                    self.nodes[i].spec.name
                ),
            );
        }
        if spins >= SPIN_LIMIT {
            self.arm_tick(i, self.now + 1_000); // keep the run going, 1 ms later
            return;
        }
        self.reschedule(i);
    }

    /// Keep exactly one live Tick per node, at its machine's next deadline.
    fn reschedule(&mut self, i: usize) {
        let now = self.now;
        let n = &mut self.nodes[i];
        let Some(machine) = n.machine.as_ref() else {
            return;
        };
        let Some(deadline) = machine.next_deadline() else {
            return;
        };
        let mut at = n.clock.true_time_of(deadline.as_micros(), now);
        if at <= now && n.clock.local(now) < deadline.as_micros() {
            at = now + 1; // rounding under drift: never spin at the same instant
        }
        if n.tick_at.is_some_and(|t| t <= at) {
            return;
        }
        self.arm_tick(i, at);
    }

    /// Make `at` node `i`'s one live Tick (earlier queued Ticks become stale).
    fn arm_tick(&mut self, i: usize, at: u64) {
        let n = &mut self.nodes[i];
        n.tick_generation += 1;
        n.tick_at = Some(at);
        let generation = n.tick_generation;
        self.push(
            at,
            Ev::Tick {
                node: i as u32,
                generation,
            },
        );
    }

    fn output(&mut self, i: usize, o: Output, local: Instant) {
        match o {
            Output::Transmit { to, bytes } => self.transmit(i, to, bytes, Chan::Datagram),
            Output::Frame { to, bytes } => {
                if self.nodes[i].storm_copies > 1 {
                    self.storm(i, to, &bytes);
                }
                self.transmit(i, to, bytes, Chan::Frame)
            }
            Output::Oob { to, bytes } => self.transmit_oob(i, to, bytes),
            Output::Event(e) => self.event(i, e, local),
        }
    }

    /// A `storm` fault's extra copies of a report up the tiers (what AD-24 counts).
    #[cold]
    #[inline(never)]
    fn storm(&mut self, from: usize, to: Addr, bytes: &[u8]) {
        let counted = matches!(
            meridian_core::wire::decode(bytes, meridian_core::wire::Channel::Frame),
            Ok(meridian_core::wire::Envelope { body: meridian_core::wire::Body::Job(m), .. })
                if meridian_core::backpressure::rate_limit::Operation::of(&m).is_some()
        );
        if counted {
            for _ in 1..self.nodes[from].storm_copies {
                self.transmit(from, to, bytes.to_vec(), Chan::Frame);
            }
        }
    }

    /// An OOB datagram (§9): rare, kept out of the hot path's inlined code.
    #[cold]
    #[inline(never)]
    fn transmit_oob(&mut self, from: usize, to: Addr, bytes: Vec<u8>) {
        if let Some(t) = self.oob.as_mut() {
            t.on_send(&bytes);
        }
        self.messages.oob += 1;
        self.transmit(from, to, bytes, Chan::Oob)
    }

    fn transmit(&mut self, from: usize, to: Addr, bytes: Vec<u8>, chan: Chan) {
        // The reliable stream's frames are neither lost, corrupted, duplicated nor
        // reordered; both kinds of datagram may be.
        let frame = chan == Chan::Frame;
        if let (Some(bp), false) = (self.bp.as_mut(), chan == Chan::Oob) {
            bp.on_send(&bytes, frame);
        }
        self.hash.update(&[chan.tag()]);
        self.hash.update(to.as_bytes());
        self.hash.update(&bytes);
        self.messages.sent += 1;
        self.messages.bytes += bytes.len() as u64;
        let dest = to
            .to_u32()
            .map(|d| d as usize)
            .filter(|d| *d < self.nodes.len());
        if chan == Chan::Datagram {
            self.checker.on_transmit(from, dest, &bytes, self.now);
        }
        let Some(dest) = dest else {
            self.messages.dropped += 1;
            self.messages.dropped_down += 1;
            return;
        };
        if self.net.cut(from, dest) {
            self.messages.dropped += 1;
            self.messages.dropped_partition += 1;
            return;
        }
        if !frame && self.net.lost(from, dest, &mut self.net_rng) {
            self.messages.dropped += 1;
            self.messages.dropped_loss += 1;
            return;
        }
        let mut bytes = bytes;
        if !frame && self.net.maybe_corrupt(&mut bytes, &mut self.net_rng) {
            self.messages.corrupted += 1;
        }
        // While a reorder fault is on, datagrams carry a per-link sequence so that
        // overtaking is counted where it lands (none of this runs otherwise).
        let seq = if chan == Chan::Datagram && self.net.reorder > 0.0 {
            let next = &mut self
                .link_seq
                .entry((from as u32, dest as u32))
                .or_default()
                .0;
            *next += 1;
            *next
        } else {
            0
        };
        if !frame && self.net.duplicate > 0.0 && self.net_rng.chance(self.net.duplicate) {
            self.messages.duplicated += 1;
            let again = self.net.delay_us(from, dest, &mut self.net_rng);
            self.push(
                self.now + again,
                Ev::Deliver {
                    to: dest as u32,
                    from: from as u32,
                    bytes: bytes.clone(),
                    chan,
                    slowed: false,
                    seq,
                },
            );
        }
        let mut delay = self.net.delay_us(from, dest, &mut self.net_rng);
        if !frame && self.net.reorder > 0.0 {
            delay += self.net.reorder_delay_us(&mut self.net_rng);
        }
        self.push(
            self.now + delay,
            Ev::Deliver {
                to: dest as u32,
                from: from as u32,
                bytes,
                chan,
                slowed: false,
                seq,
            },
        );
    }

    fn event(&mut self, i: usize, e: Event, local: Instant) {
        self.hash.update(&[0xE0]);
        self.hash.update(&(i as u32).to_le_bytes());
        e.hash(&mut self.hash);
        if let Event::DecodeFailed { .. } = &e {
            self.messages.decode_errors += 1;
        }
        if let Some(t) = self.oob.as_mut() {
            t.on_event(i, &e);
        }
        if let Event::SelfIncarnation { inc, .. } = &e {
            // The incarnation store persists before the bump is announced.
            self.nodes[i].stored_inc = self.nodes[i].stored_inc.max(inc.0);
        }
        if let Event::Job(JobEvent::WorkflowStarted { job, workflow, .. }) = &e {
            self.workflow_started(i, *job, *workflow);
        }
        if let Some(bp) = self.bp.as_mut() {
            match &e {
                Event::Job(JobEvent::BackpressureLevel {
                    level, fill_ppm, ..
                }) => bp.on_level(i, *level, *fill_ppm as f64 / 1e6, self.now),
                Event::Job(JobEvent::FlushLevel { level }) => {
                    bp.on_flush_level(i, *level, self.now)
                }
                Event::Job(JobEvent::ProgressFlushed {
                    batched, dropped, ..
                }) => bp.on_flush(*batched as u64, *dropped as u64),
                _ => {}
            }
        }
        if let (Some(rate), Event::Job(JobEvent::RateLimited { job, .. })) =
            (self.rate.as_mut(), &e)
        {
            rate.refused += 1;
            if job.is_some() {
                rate.submissions_refused += 1;
            }
        }
        if let (Some(rt), Event::Job(je)) = (self.routing.as_mut(), &e) {
            let (net, managers, scenario) = (&self.net, &self.dc_managers, self.scenario);
            let rtt_ms = |gate: usize, dc: u16| {
                let m = &managers[dc as usize];
                m.iter().map(|x| net.rtt_us(gate, *x) as f64).sum::<f64>()
                    / m.len().max(1) as f64
                    / 1000.0
            };
            let dc_name = |dc: u16| scenario.dcs[dc as usize].name.clone();
            if let Some((inv, detail)) = rt.on_event(i, je, self.now, &rtt_ms, &dc_name) {
                self.checker.violation_at(self.now, inv, detail);
            }
        }
        if let Event::Election(ElectionEvent::Persist { term, voted_for }) = &e {
            // The store persists before the vote leaves.
            self.nodes[i].stored_vote = (*term, *voted_for);
        }
        if let Event::Election(ElectionEvent::SteppedDown {
            reason: StepDownReason::LostQuorum,
            ..
        }) = &e
        {
            self.quorum_lost(i);
        }
        if let Event::Election(ElectionEvent::LeaderChanged {
            leader: None, term, ..
        }) = &e
        {
            self.lease_lapsed(i, *term);
        }
        let net = &self.net;
        let cut_since = |a: usize, b: usize, since: u64| net.cut_since(a, b, since);
        let truth = Truth {
            up: &self.up,
            paused: &self.paused,
            cut_since: &cut_since,
        };
        self.checker.on_event(i, &e, self.now, local, &truth);
        if let Some(w) = self.trace.as_mut() {
            let line = crate::trace::event_line(self.now, &self.nodes[i].spec.name, &e);
            let _ = writeln!(w, "{line}");
        }
    }

    /// Violations found since the last call, as trace lines (a report keeps the first
    /// 200; so does the trace).
    fn trace_violations(&mut self) {
        let Some(w) = self.trace.as_mut() else {
            return;
        };
        for v in &self.checker.violations[self.traced_violations..] {
            let _ = writeln!(w, "{}", crate::trace::violation_line(self.now, v));
        }
        self.traced_violations = self.checker.violations.len();
    }

    /// The nodes a name stands for (a DC's name: all its nodes), as a membership mask.
    fn side(&self, name: &str) -> Vec<bool> {
        self.nodes
            .iter()
            .map(|n| n.spec.name == name || self.scenario.dcs[n.spec.dc].name == name)
            .collect()
    }

    /// Flap fault `index` changes state: down for its `down`, then back until the next
    /// period starts (within `at..until`). Each change counts as a fault.
    fn flap(&mut self, index: usize, up: bool) {
        let Fault::Flap {
            at,
            between,
            period,
            down,
            until,
            one_way,
        } = self.faults[index].clone()
        else {
            return;
        };
        self.last_fault_at = self.now;
        let (a, b) = (self.side(&between[0]), self.side(&between[1]));
        let key = (between[0].clone(), between[1].clone(), one_way);
        self.net.set_link_cut(key, a, b, !up, self.now);
        if up {
            self.check_leaders_later();
            return;
        }
        self.push(
            self.now + down.as_micros() as u64,
            Ev::Flap { index, up: true },
        );
        let next = self.now + period.as_micros() as u64;
        let until = until.unwrap_or(self.scenario.duration).max(at);
        if next <= until.as_micros() as u64 {
            self.push(next, Ev::Flap { index, up: false });
        }
    }

    fn resolve(&self, names: &[String]) -> Vec<usize> {
        names
            .iter()
            .filter_map(|n| self.nodes.iter().position(|x| &x.spec.name == n))
            .collect()
    }

    fn fault(&mut self, index: usize) {
        self.last_fault_at = self.now;
        let f = self.faults[index].clone();
        self.hash.update(&[0xFA]);
        self.hash.update(&(index as u32).to_le_bytes());
        if let Some(w) = self.trace.as_mut() {
            let _ = writeln!(w, "{}", crate::trace::fault_line(self.now, &f));
        }
        match f {
            Fault::Crash { nodes, .. } => {
                for i in self.resolve(&nodes) {
                    self.stop(i, true);
                }
            }
            Fault::Restart { nodes, state, .. } => {
                for i in self.resolve(&nodes) {
                    if state == RestartState::Lost && !self.nodes[i].up {
                        // Its disk is gone: no incarnation, no vote to come back to.
                        self.nodes[i].stored_inc = 0;
                        self.nodes[i].stored_vote = Default::default();
                        self.start(i, false);
                    } else {
                        self.start(i, true);
                    }
                }
            }
            Fault::Reorder { rate, extra_ms, .. } => {
                self.net.reorder = rate;
                self.net.reorder_extra_us = (extra_ms[0] * 1000, extra_ms[1] * 1000);
            }
            Fault::OneWayLatency {
                from, to, delay_ms, ..
            } => {
                let dc = |name: &str| {
                    self.scenario
                        .dcs
                        .iter()
                        .position(|d| d.name == name)
                        .expect("validated")
                };
                let (a, b) = (dc(&from), dc(&to));
                self.net.set_one_way(a, b, (delay_ms * 1000.0) as u64);
            }
            Fault::LinkLoss {
                between,
                rate,
                one_way,
                ..
            } => {
                let (a, b) = (self.side(&between[0]), self.side(&between[1]));
                let key = (between[0].clone(), between[1].clone(), one_way);
                self.net.set_link_loss(key, a, b, rate, self.now);
            }
            Fault::Flap { .. } => self.flap(index, false),
            Fault::DcOutage { dcs, duration, .. } => {
                let back = self.now + duration.as_micros() as u64;
                for i in 0..self.nodes.len() {
                    let dc = &self.scenario.dcs[self.nodes[i].spec.dc].name;
                    if dcs.contains(dc) && self.nodes[i].up {
                        self.stop(i, true);
                        self.push(back, Ev::Restart { node: i as u32 });
                    }
                }
                self.check_leaders_later();
            }
            Fault::IsolateLeader { dc, .. } => {
                if let Some(i) = self.leader_of(&dc) {
                    let groups = vec![vec![self.nodes[i].spec.name.clone()]];
                    self.fault_partition(groups, false);
                }
            }
            Fault::CrashLeader {
                dc, restart_after, ..
            } => {
                if let Some(i) = self.leader_of(&dc) {
                    self.stop(i, true);
                    self.check_leaders_later();
                    if let Some(after) = restart_after {
                        self.push(
                            self.now + after.as_micros() as u64,
                            Ev::Restart { node: i as u32 },
                        );
                    }
                }
            }
            Fault::Leave { nodes, .. } => {
                for i in self.resolve(&nodes) {
                    if !self.nodes[i].up {
                        continue;
                    }
                    let local = self.nodes[i].clock.local(self.now);
                    let outs = self.nodes[i]
                        .machine
                        .as_mut()
                        .expect("up")
                        .step(Input::Leave, Instant(local));
                    for o in outs {
                        self.output(i, o, Instant(local));
                    }
                    self.stop(i, false);
                }
            }
            Fault::Partition {
                groups, one_way, ..
            } => self.fault_partition(groups, one_way),
            Fault::Corrupt { rate, .. } => self.net.corrupt = rate,
            Fault::Duplicate { rate, .. } => self.net.duplicate = rate,
            // Drawn into concrete faults before the run (`World::faults`).
            Fault::Random { .. } => {}
            Fault::Heal { .. } => {
                self.net.heal(self.now);
                self.checker.on_heal(self.now);
                self.check_leaders_later();
            }
            Fault::Loss { rate, nodes, .. } => {
                let list = nodes.map(|n| self.resolve(&n));
                self.net.set_loss(rate, list.as_deref());
            }
            Fault::Latency {
                between, rtt_ms, ..
            } => {
                let a = self
                    .scenario
                    .dcs
                    .iter()
                    .position(|d| d.name == between[0])
                    .expect("validated");
                let b = self
                    .scenario
                    .dcs
                    .iter()
                    .position(|d| d.name == between[1])
                    .expect("validated");
                self.net.set_dc_rtt(a, b, (rtt_ms * 1000.0) as u64);
            }
            Fault::Pause {
                nodes, duration, ..
            } => {
                for i in self.resolve(&nodes) {
                    let until = self.now + duration.as_micros() as u64;
                    let n = &mut self.nodes[i];
                    n.paused_until = n.paused_until.max(until);
                    n.pause_generation += 1;
                    self.paused[i] = true;
                    let (at, generation) = (n.paused_until, n.pause_generation);
                    self.checker.on_pause(i, self.now, at);
                    self.push(
                        at,
                        Ev::Resume {
                            node: i as u32,
                            generation,
                        },
                    );
                }
            }
            Fault::Slow {
                nodes, delay_ms, ..
            } => {
                for i in self.resolve(&nodes) {
                    self.nodes[i].slow_us = Some((delay_ms[0] * 1000, delay_ms[1] * 1000));
                }
            }
            Fault::Storm { nodes, copies, .. } => {
                for i in self.resolve(&nodes) {
                    self.nodes[i].storm_copies = copies;
                }
            }
            Fault::Skew {
                nodes,
                offset_ms,
                drift_ppm,
                ..
            } => {
                for i in self.resolve(&nodes) {
                    let now = self.now;
                    let c = &mut self.nodes[i].clock;
                    let before = c.local(now);
                    let local = before as i64 + offset_ms * 1000;
                    c.base_true = now;
                    c.base_local = local.max(0) as u64;
                    c.drift_ppm = drift_ppm.max(-900_000.0);
                    let (jump, drift) = (c.base_local.abs_diff(before), c.drift_ppm);
                    self.checker.on_clock_change(i, now, jump, drift);
                    // Deadlines now map to different true times.
                    self.nodes[i].tick_at = None;
                    self.nodes[i].tick_generation += 1;
                    self.reschedule(i);
                }
            }
        }
    }
}

/// Membership seeds: a member of a DC cluster joins via its DC's managers (workers if the
/// DC has none); a gate via the other gates. Gates observe every DC's managers.
/// Per node: its membership seeds, and (gates) the managers it observes per DC.
type SeedLists = (Vec<Vec<Addr>>, Vec<Vec<(DcId, Vec<Addr>)>>);

fn seed_lists(s: &Scenario, specs: &[NodeSpec]) -> SeedLists {
    let addr = |i: usize| Addr::from_u32(i as u32);
    let of = |dc: Option<usize>, role: Role| -> Vec<usize> {
        specs
            .iter()
            .enumerate()
            .filter(|(_, n)| n.role == role && dc.is_none_or(|d| n.dc == d))
            .map(|(i, _)| i)
            .collect()
    };
    let mut seeds = Vec::with_capacity(specs.len());
    let mut observe = Vec::with_capacity(specs.len());
    for (i, n) in specs.iter().enumerate() {
        let pool = match n.role {
            Role::Gate => of(None, Role::Gate),
            _ => {
                let m = of(Some(n.dc), Role::Manager);
                if m.iter().any(|&x| x != i) {
                    m
                } else {
                    of(Some(n.dc), Role::Worker)
                }
            }
        };
        seeds.push(
            pool.into_iter()
                .filter(|&x| x != i)
                .take(3)
                .map(addr)
                .collect(),
        );
        let obs = if n.role == Role::Gate {
            (0..s.dcs.len())
                .filter_map(|d| {
                    let m = of(Some(d), Role::Manager);
                    (!m.is_empty()).then(|| (DcId(d as u16), m.into_iter().map(addr).collect()))
                })
                .collect()
        } else {
            Vec::new()
        };
        observe.push(obs);
    }
    (seeds, observe)
}

/// Completeness bound per node (membership.md §11.6), nominal L = 1:
/// `N x round_max + 9 x max_suspicion + retransmit_limit rounds`.
fn completeness_bounds(cfg: &Config, checker: &Checker, nodes: &[SimNode]) -> Vec<u64> {
    let t = cfg.probe_timeout.as_micros() as f64;
    let i = cfg.probe_interval.as_micros() as f64;
    let direct: f64 = cfg.direct_attempt_fractions.iter().sum::<f64>() * t;
    let round_max = i.max(direct + t);
    let max_susp = [Role::Gate, Role::Manager, Role::Worker]
        .iter()
        .map(|r| cfg.suspicion_bounds_for(*r).1.as_micros() as f64)
        .fold(0.0, f64::max);
    (0..nodes.len())
        .map(|s| {
            let n = checker.trackers(s).max(1);
            let limit =
                meridian_core::membership::gossip::retransmit_limit(cfg.retransmit_mult, n) as f64;
            (n as f64 * round_max + 9.0 * max_susp + limit * i) as u64
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// leadership.md §4.5: B = 34 s (+ 2d) with the default election config, computed
    /// from the config rather than written down, so that it follows the config.
    #[test]
    fn the_heal_convergence_bound_is_the_specs_34_s_by_default() {
        assert_eq!(heal_convergence_us(&ElectionConfig::default()), 34_000_000);
        let slower = ElectionConfig {
            lease: std::time::Duration::from_secs(10),
            ..ElectionConfig::default()
        };
        assert_eq!(heal_convergence_us(&slower), 39_000_000);
    }
}
