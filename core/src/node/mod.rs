//! A node (gate, manager or worker) as one machine: it owns its membership machines,
//! routes each input to the right one and merges their outputs. Shells only see nodes.
//!
//! Who shares a membership cluster (issue 2): the gates of all DCs form one cluster
//! (`ClusterId::GATES`); each DC's managers and workers form another (`ClusterId::dc`).
//! Gates also health-check every DC's managers: a gate runs, per DC, an *observer*
//! membership machine on that DC's cluster id which learns the table by push-pull,
//! probes only managers (with the same SWIM/Lifeguard rules, helpers included) and
//! gossips nothing. Members answer an observer's probes without adding it, so a DC
//! cluster's membership stays exactly its managers and workers. This replaces the
//! original's ad-hoc cross-cluster probes with the one machine everyone already runs.
//!
//! Leadership (leadership.md §1): managers elect one leader per DC among the DC's
//! configured managers, gates one among all configured gates. The election's messages
//! travel as datagrams of the node's own cluster; SWIM only tells it which voters are
//! visible, and the node's health (LHM, degradation) decides its eligibility.

use crate::backpressure::class::job_class;
use crate::backpressure::class::{body_class, MessageClass, Priority};
use crate::backpressure::inflight::{InFlightLimits, InFlightTracker};
use crate::backpressure::overload::{
    pending_state, LoadShedder, OverloadConfig, OverloadDetector, OverloadState,
    MANAGER_MAX_PENDING,
};
use crate::id::JobId;
use crate::id::{Addr, ClusterId, DcId, Incarnation, NodeId, Role};
use crate::io::{Event, Output, Outputs};
pub use crate::jobs::gate::DcRequest;
use crate::jobs::gate::{GateConfig, GateInput, GateJobs};
use crate::jobs::manager::{ManagerConfig, ManagerInput, ManagerJobs};
use crate::jobs::worker::{WorkerConfig, WorkerInput, WorkerJobs};
use crate::jobs::{JobEvent, JobOutput, JobOutputs, WorkflowIndex};
use crate::leadership::{
    Election, ElectionConfig, ElectionEvent, ElectionInput, ElectionOutput, GroupId,
};
use crate::membership::job_suspicion::JobChange;
use crate::membership::lifeguard::DegradationLevel;
use crate::membership::oob::OobResponder;
use crate::membership::{self, Config, Identity, Membership, Mode};
use crate::rng::derive_seed;
use crate::time::Instant;
use crate::wire::{self, Channel};
use crate::wire::{Body, Envelope, OobFrame, OobKind};

mod limits;
pub use limits::{Admission, RateLimitCounts};
#[cfg(test)]
mod limits_tests;
#[cfg(test)]
mod oob_tests;
#[cfg(test)]
mod overload_tests;

/// A worker's configuration for unit tests: node `i` of DC 0, seeded with `seeds`, with
/// the default protocol configuration.
#[cfg(test)]
pub(crate) fn test_worker_config(i: u32, seeds: Vec<Addr>) -> NodeConfig {
    NodeConfig {
        node: NodeId(i),
        role: Role::Worker,
        dc: DcId(0),
        addr: Addr::from_u32(i),
        seeds,
        observe: vec![],
        membership: Config::default(),
        incarnation: Incarnation(0),
        seed: 7 + i as u64,
        voters: vec![],
        election: ElectionConfig::default(),
        persisted_vote: (0, None),
        backpressure: true,
        job_silence: true,
        routing_hysteresis: true,
    }
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NodeConfig {
    pub node: NodeId,
    pub role: Role,
    pub dc: DcId,
    pub addr: Addr,
    /// Membership seeds of the node's own cluster.
    pub seeds: Vec<Addr>,
    /// For gates: per DC, the addresses of that DC's managers to observe.
    pub observe: Vec<(DcId, Vec<Addr>)>,
    pub membership: Config,
    /// Starting incarnation (from the store: `stored + 10`, or 0 without one).
    pub incarnation: Incarnation,
    pub seed: u64,
    /// The configured election group (managers: their DC's managers; gates: all gates;
    /// workers: none), with addresses.
    pub voters: Vec<(NodeId, Addr)>,
    pub election: ElectionConfig,
    /// `(term, voted_for)` from the store, persisted before every vote.
    pub persisted_vote: (u64, Option<NodeId>),
    /// Stats backpressure (AD-23/37) on; off only for ablation runs.
    pub backpressure: bool,
    /// Routing hysteresis (AD-36 §7) on; off only for ablation runs.
    pub routing_hysteresis: bool,
    /// A DC leader's job-silence watch (AD-30's job layer, `jobs::silence`) on; off
    /// only for ablation runs.
    pub job_silence: bool,
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
    /// A datagram on the out-of-band probe channel (membership.md §9). Shells serve it
    /// ahead of the main socket: that is its point.
    Oob {
        from: Addr,
        bytes: &'a [u8],
    },
    Tick,
    Leave,
    LoopLag {
        ratio: f64,
    },
    HeardFrom(NodeId),
    /// A client submits a job to this gate: `workflows` workflows in each of the DCs
    /// `dcs` names or the router picks.
    SubmitJob {
        job: JobId,
        dcs: DcRequest,
        workflows: u32,
        /// The job's timeout (none: only stuck detection).
        timeout: Option<core::time::Duration>,
        /// Who submits it, as the shell knows them (the driver: the client's IP; the
        /// simulator: the submission's `client`): AD-24 limits each client apart.
        client: u64,
    },
    /// The shell measured how long a message waited to be handled (queueing and
    /// processing), in milliseconds: the overload detector's latency sample.
    ProcessingLatency {
        ms: f64,
    },
    /// The workload says a workflow this worker runs has finished, with `items` items
    /// completed.
    WorkflowFinished {
        job: JobId,
        workflow: WorkflowIndex,
        items: u64,
    },
    /// The workload says a workflow this worker runs has completed `completed` of its
    /// `total` items (the progress a worker shows to earn an extension).
    WorkflowProgress {
        job: JobId,
        workflow: WorkflowIndex,
        completed: u64,
        total: u64,
    },
    /// The shell's resource sample (AD-18's third signal): this process's CPU use, in
    /// percent of the cores it may use, and its resident memory, in percent of the
    /// memory it may use. Graded against `cpu_thresholds` and `memory_thresholds`.
    Resources {
        cpu_percent: f64,
        mem_percent: f64,
    },
}

/// The node's role in the job plane. Each variant is boxed on its own, so a worker
/// (most nodes of a simulation) allocates its 448 bytes, not a gate's 1,600.
enum JobPlane {
    Gate(Box<GateJobs>),
    Manager(Box<ManagerJobs>),
    Worker(Box<WorkerJobs>),
}

impl JobPlane {
    fn next_deadline(&self) -> Option<Instant> {
        match self {
            JobPlane::Gate(g) => g.next_deadline(),
            JobPlane::Manager(m) => m.next_deadline(),
            JobPlane::Worker(w) => w.next_deadline(),
        }
    }
    fn tick(&mut self, now: Instant) -> JobOutputs {
        match self {
            JobPlane::Gate(g) => g.step(GateInput::Tick, now),
            JobPlane::Manager(m) => m.step(ManagerInput::Tick, now),
            JobPlane::Worker(w) => w.step(WorkerInput::Tick, now),
        }
    }
    fn msg(&mut self, from: Addr, msg: crate::jobs::JobMsg, now: Instant) -> JobOutputs {
        match self {
            JobPlane::Gate(g) => g.step(GateInput::Msg { from, msg }, now),
            JobPlane::Manager(m) => m.step(ManagerInput::Msg { from, msg }, now),
            JobPlane::Worker(w) => w.step(WorkerInput::Msg { from, msg }, now),
        }
    }
}

/// The node's election machine and what it needs to talk.
struct Leadership {
    election: Election,
    group: GroupId,
    voters: Vec<(NodeId, Addr)>,
    me: NodeId,
    addr: Addr,
    cluster: ClusterId,
    /// Health last given to the election: (LHM, degradation).
    health: (u8, DegradationLevel),
}

pub struct Node {
    role: Role,
    node: NodeId,
    addr: Addr,
    own_cluster: ClusterId,
    jobs: JobPlane,
    /// `None` for workers (and for a group of nobody).
    leadership: Option<Box<Leadership>>,
    /// Own cluster first, then observers. A `Vec`, not an inline `SmallVec`: a machine
    /// is ~1.6 KB and most nodes have one (a simulation holds thousands of nodes).
    memberships: Vec<Membership>,
    decode_errors: u64,
    unknown_cluster: u64,
    /// AD-18/22: the processing latency the shell measures grades the node's load; job
    /// messages whose priority the grade sheds are dropped on arrival (CONTROL never).
    overload: OverloadDetector,
    shedder: LoadShedder,
    /// AD-32: messages the shell holds for this node before handling them (a slow
    /// node's queue), capped per priority.
    in_flight: InFlightTracker,
    /// §9's OOB channel, answering side: `None` unless `membership.oob` is on.
    oob: Option<OobResponder>,
    /// OOB datagrams dropped unread: the channel is off, or an answer matched no probe
    /// in flight (late, duplicated or forged).
    oob_dropped: u64,
    /// AD-24: the rate limiter, and the waits receivers asked of us.
    limits: limits::RateLimits,
}

impl Node {
    /// Builds the node's machines and returns the join traffic they emit at `now`.
    pub fn new(cfg: NodeConfig, now: Instant) -> (Node, Outputs) {
        let own_cluster = match cfg.role {
            Role::Gate => ClusterId::GATES,
            _ => ClusterId::dc(cfg.dc),
        };
        let ident = |cluster| Identity {
            node: cfg.node,
            addr: cfg.addr,
            role: cfg.role,
            cluster,
        };
        let mut out = Outputs::new();
        let mut own = Membership::new(
            cfg.membership.clone(),
            ident(own_cluster),
            Mode::Member,
            cfg.incarnation,
            derive_seed(cfg.seed, 0),
            now,
        );
        out.extend(own.step(
            membership::Input::Join {
                seeds: cfg.seeds.clone(),
            },
            now,
        ));
        let mut memberships = Vec::with_capacity(1 + cfg.observe.len());
        memberships.push(own);
        if cfg.role == Role::Gate {
            for (i, (dc, seeds)) in cfg.observe.iter().enumerate() {
                let mut obs = Membership::new(
                    cfg.membership.clone(),
                    ident(ClusterId::dc(*dc)),
                    Mode::Observer {
                        probes: Role::Manager,
                    },
                    cfg.incarnation,
                    derive_seed(cfg.seed, 1 + i as u64),
                    now,
                );
                out.extend(obs.step(
                    membership::Input::Join {
                        seeds: seeds.clone(),
                    },
                    now,
                ));
                memberships.push(obs);
            }
        }
        let leadership = (!cfg.voters.is_empty() && cfg.role != Role::Worker).then(|| {
            let group = GroupId(own_cluster.0 as u32);
            Box::new(Leadership {
                election: Election::new(
                    cfg.election.clone(),
                    group,
                    cfg.node,
                    cfg.voters.iter().map(|(n, _)| *n),
                    cfg.persisted_vote,
                    derive_seed(cfg.seed, 0xE1EC),
                    now,
                ),
                group,
                voters: cfg.voters.clone(),
                me: cfg.node,
                addr: cfg.addr,
                cluster: own_cluster,
                health: (0, DegradationLevel::Normal),
            })
        });
        let jobs = match cfg.role {
            Role::Gate => JobPlane::Gate(Box::new(GateJobs::new(
                {
                    let d = GateConfig::default();
                    GateConfig {
                        routing: crate::routing::router::RoutingConfig {
                            hysteresis: cfg.routing_hysteresis,
                            ..d.routing.clone()
                        },
                        ..d
                    }
                },
                cfg.node,
                cfg.addr,
                cfg.voters.clone(),
                derive_seed(cfg.seed, 0x6A7E),
            ))),
            Role::Manager | Role::Unknown => JobPlane::Manager(Box::new(ManagerJobs::new(
                ManagerConfig {
                    backpressure: cfg.backpressure,
                    job_silence: cfg
                        .job_silence
                        .then_some(crate::jobs::silence::DEFAULT_SILENCE),
                    ..ManagerConfig::default()
                },
                cfg.node,
                cfg.dc,
                cfg.voters.clone(),
            ))),
            Role::Worker => JobPlane::Worker(Box::new(WorkerJobs::new(
                WorkerConfig::default(),
                cfg.dc,
                now,
            ))),
        };
        (
            Node {
                role: cfg.role,
                node: cfg.node,
                addr: cfg.addr,
                own_cluster,
                jobs,
                leadership,
                memberships,
                decode_errors: 0,
                unknown_cluster: 0,
                overload: OverloadDetector::new(OverloadConfig::default())
                    .expect("the default thresholds are ordered"),
                shedder: LoadShedder::default(),
                in_flight: InFlightTracker::new(match cfg.role {
                    Role::Gate => InFlightLimits::GATE,
                    Role::Manager | Role::Unknown => InFlightLimits::MANAGER,
                    Role::Worker => InFlightLimits::WORKER,
                }),
                oob: cfg.membership.oob.then(|| OobResponder::new(now)),
                oob_dropped: 0,
                limits: limits::RateLimits::new(now),
            },
            out,
        )
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn step(&mut self, input: Input<'_>, now: Instant) -> Outputs {
        let mut out = Outputs::new();
        self.step_into(input, now, &mut out);
        out
    }

    /// [`Node::step`], appending to `out` (which may hold earlier outputs): a caller that
    /// steps many times reuses one buffer instead of moving a fresh `Outputs` (over 200
    /// bytes inline) out of every step. The simulator does.
    pub fn step_into(&mut self, input: Input<'_>, now: Instant, out: &mut Outputs) {
        let base = out.len();
        // The election's due timers run first, whatever the input, and what they decide
        // reaches the job plane before it acts: a leader whose lease ran out must not do
        // a leader's work (time a job out, dispatch) in the same step. A process resumed
        // from a pause sees every timer due at once, the election's included.
        if let Some(l) = self.leadership.as_mut() {
            if l.election.next_deadline().is_some_and(|d| d <= now) {
                l.step(ElectionInput::Tick, now, out);
                self.inform_jobs(now, out, base);
            }
        }
        let informed = out.len();
        match input {
            Input::Datagram { from, bytes } => self.route(from, bytes, Channel::Datagram, now, out),
            Input::Frame { from, bytes } => self.route(from, bytes, Channel::Frame, now, out),
            Input::Oob { from, bytes } => self.oob(from, bytes, now, out),
            Input::Tick => {
                self.limits.sweep_if_due(now);
                for m in self.memberships.iter_mut() {
                    if m.next_deadline().is_some_and(|d| d <= now) {
                        m.step_into(membership::Input::Tick, now, out);
                    }
                }
                if self.jobs.next_deadline().is_some_and(|d| d <= now) {
                    self.gate_coordinates(now);
                    let o = self.jobs.tick(now);
                    self.job_outputs(o, now, out);
                }
            }
            Input::SubmitJob {
                job,
                dcs,
                workflows,
                timeout,
                client,
            } => {
                // AD-22: a client's submission is DISPATCH work, checked before dispatch
                // (shed only while Overloaded); the client hears it was refused. Then
                // AD-24: the client's `job_submit` allowance.
                let dispatch = MessageClass::Dispatch.priority();
                let gate = matches!(self.jobs, JobPlane::Gate(_));
                if gate && self.shedder.should_shed(self.shed_grade(), dispatch) {
                    out.push(Output::Event(Event::Job(JobEvent::SubmissionShed { job })));
                } else if gate && self.limit_submission(client, job, now, out) {
                    self.gate_coordinates(now);
                    if let JobPlane::Gate(g) = &mut self.jobs {
                        let o = g.step(
                            GateInput::Submit {
                                job,
                                dcs,
                                workflows,
                                timeout,
                            },
                            now,
                        );
                        self.job_outputs(o, now, out);
                    }
                }
            }
            Input::WorkflowProgress {
                job,
                workflow,
                completed,
                total,
            } => {
                if let JobPlane::Worker(w) = &mut self.jobs {
                    let o = w.step(
                        WorkerInput::Progress {
                            job,
                            workflow,
                            completed,
                            total,
                        },
                        now,
                    );
                    self.job_outputs(o, now, out);
                }
            }
            Input::ProcessingLatency { ms } => {
                let before = self.overload.state();
                let state = self.overload.record_latency(ms);
                self.overload_graded(before, state, now, out);
            }
            Input::Resources {
                cpu_percent,
                mem_percent,
            } => {
                let before = self.overload.state();
                let state = self.overload.record_resources(cpu_percent, mem_percent);
                self.overload_graded(before, state, now, out);
            }
            Input::WorkflowFinished {
                job,
                workflow,
                items,
            } => {
                if let JobPlane::Worker(w) = &mut self.jobs {
                    let o = w.step(
                        WorkerInput::Finished {
                            job,
                            workflow,
                            items,
                        },
                        now,
                    );
                    self.job_outputs(o, now, out);
                }
            }
            Input::Leave => {
                for m in self.memberships.iter_mut() {
                    m.step_into(membership::Input::Leave, now, out);
                }
            }
            Input::LoopLag { ratio } => {
                for m in self.memberships.iter_mut() {
                    m.step_into(membership::Input::LoopLag { ratio }, now, out);
                }
            }
            Input::HeardFrom(node) => {
                for m in self.memberships.iter_mut() {
                    m.step_into(membership::Input::HeardFrom(node), now, out);
                }
            }
        }
        self.share_health(now, out);
        self.inform_election(now, out, base);
        self.inform_jobs(now, out, informed);
    }

    /// What membership and the election just reported that the job plane needs: the
    /// workers a manager can use, the managers a gate can ask, who leads.
    /// `out[from..]` is what has not been passed on yet.
    fn inform_jobs(&mut self, now: Instant, out: &mut Outputs, from: usize) {
        // A worker's job plane hears nothing of membership or the election (it has
        // neither voters nor peers to track): most nodes stop here.
        if matches!(self.jobs, JobPlane::Worker(_)) {
            return;
        }
        let mut manager_in: smallvec::SmallVec<[ManagerInput; 4]> = smallvec::SmallVec::new();
        let mut gate_in: smallvec::SmallVec<[GateInput; 4]> = smallvec::SmallVec::new();
        for o in out[from..].iter() {
            let Output::Event(e) = o else { continue };
            match (e, &self.jobs) {
                (
                    Event::Member {
                        cluster,
                        node,
                        role: Role::Worker,
                        to,
                        ..
                    },
                    JobPlane::Manager(_),
                ) if *cluster == self.own_cluster => {
                    let (addr, alive) = self.usable(*cluster, *node, *to);
                    manager_in.push(ManagerInput::Worker {
                        node: *node,
                        addr,
                        alive,
                        suspected: to
                            .is_some_and(|v| v.status == membership::member::Status::Suspect),
                    });
                }
                (
                    Event::Member {
                        cluster,
                        node,
                        role: Role::Manager,
                        to,
                        ..
                    },
                    JobPlane::Gate(_),
                ) if *cluster != ClusterId::GATES => {
                    let (addr, alive) = self.usable(*cluster, *node, *to);
                    gate_in.push(GateInput::Manager {
                        dc: DcId(cluster.0 - 1),
                        node: *node,
                        addr,
                        alive,
                        suspected: to
                            .is_some_and(|v| v.status == membership::member::Status::Suspect),
                    });
                }
                (
                    Event::Member {
                        cluster,
                        node,
                        role: Role::Gate,
                        to,
                        ..
                    },
                    JobPlane::Gate(_),
                ) if *cluster == ClusterId::GATES => {
                    gate_in.push(GateInput::Peer {
                        node: *node,
                        alive: to.is_some_and(|v| v.status.is_live()),
                        reachable: to
                            .is_some_and(|v| v.status == membership::member::Status::Alive),
                    });
                }
                (
                    Event::JobSuspicion {
                        cluster,
                        job,
                        node,
                        change: JobChange::Dead,
                    },
                    JobPlane::Manager(_),
                ) if *cluster == self.own_cluster => {
                    manager_in.push(ManagerInput::WorkerFailedJob {
                        job: *job,
                        worker: *node,
                    });
                }
                (
                    Event::JobSuspicion {
                        cluster,
                        job,
                        node,
                        change: JobChange::Refuted | JobChange::Cleared | JobChange::Rejected(_),
                    },
                    JobPlane::Manager(_),
                ) if *cluster == self.own_cluster => {
                    manager_in.push(ManagerInput::JobSuspicionLifted {
                        job: *job,
                        worker: *node,
                    });
                }
                (
                    Event::Election(ElectionEvent::SteppedDown {
                        reason: crate::leadership::StepDownReason::LostQuorum,
                        ..
                    }),
                    JobPlane::Manager(_),
                ) => {
                    // Check-quorum: no majority heard for a lease. What we knew of our
                    // jobs dates from then (`ManagerJobs::step_aside`).
                    if let Some(l) = self.leadership.as_ref() {
                        let lease = l.election.lease();
                        manager_in.push(ManagerInput::QuorumLost {
                            last_heard: Instant::from_micros(
                                now.as_micros().saturating_sub(lease.as_micros() as u64),
                            ),
                        });
                    }
                }
                (Event::Election(ElectionEvent::LeaderChanged { leader, term, .. }), plane) => {
                    match plane {
                        JobPlane::Manager(_) => {
                            let leader = leader.and_then(|n| self.voter_addr(n).map(|a| (n, a)));
                            manager_in.push(ManagerInput::Leader {
                                leader,
                                term: *term,
                            });
                        }
                        JobPlane::Gate(_) => {
                            gate_in.push(GateInput::Term(*term));
                            gate_in.push(GateInput::Leader(*leader));
                        }
                        JobPlane::Worker(_) => {}
                    }
                }
                _ => {}
            }
        }
        // Most steps produce no membership or election event: return before moving the
        // inline buffers into iterators (a copy of all their slots, on every step).
        if manager_in.is_empty() && gate_in.is_empty() {
            return;
        }
        for input in manager_in {
            if let JobPlane::Manager(m) = &mut self.jobs {
                let o = m.step(input, now);
                self.job_outputs(o, now, out);
            }
        }
        for input in gate_in {
            if let JobPlane::Gate(g) = &mut self.jobs {
                let o = g.step(input, now);
                self.job_outputs(o, now, out);
            }
        }
    }

    /// A member the job plane may use: its address, and whether it is confirmed and
    /// alive (or suspected) in `cluster` now.
    /// A gate about to route: hand it the RTT bound and quality of every manager its
    /// observer memberships have an estimate for (the DC's coordinate is its leader's,
    /// looked up by node id: routing.md Q6), and whether its coordinates are mature
    /// (some observer engine has 10+ samples and error <= 0.5; each DC's estimates come
    /// from the membership that probes it).
    fn gate_coordinates(&mut self, now: Instant) {
        let JobPlane::Gate(g) = &mut self.jobs else {
            return;
        };
        if !g.wants_coordinates() {
            return;
        }
        let observers = &self.memberships[1..];
        let mature = observers.iter().any(|m| {
            let c = m.coordinates();
            c.samples() >= 10 && c.own().error <= 0.5
        });
        g.set_coordinates(
            mature,
            observers.iter().flat_map(|m| {
                let c = m.coordinates();
                m.members()
                    .filter(|p| p.role() == Role::Manager)
                    .filter_map(move |p| {
                        c.estimate(p.id, now)
                            .map(|e| (p.id, (e.ucb_ms, c.pair_quality(p.id, now))))
                    })
            }),
        );
    }

    fn usable(
        &self,
        cluster: ClusterId,
        node: NodeId,
        to: Option<crate::io::MemberView>,
    ) -> (Addr, bool) {
        let addr = self.member_addr(cluster, node);
        let alive = to.is_some_and(|v| v.confirmed && v.status.is_live()) && addr.is_some();
        (addr.unwrap_or_default(), alive)
    }

    fn member_addr(&self, cluster: ClusterId, node: NodeId) -> Option<Addr> {
        self.memberships
            .iter()
            .find(|m| m.identity().cluster == cluster)
            .and_then(|m| m.member_addr(node))
    }

    fn voter_addr(&self, node: NodeId) -> Option<Addr> {
        self.leadership
            .as_ref()
            .and_then(|l| l.voters.iter().find(|(n, _)| *n == node).map(|(_, a)| *a))
    }

    /// A job-plane call for our own DC's membership (the first machine): §9's job layer,
    /// AD-26's stretched suspicions and liveness probes.
    fn pass_to_own_membership(
        &mut self,
        input: membership::Input<'_>,
        now: Instant,
        out: &mut Outputs,
    ) {
        if let Some(m) = self.memberships.first_mut() {
            m.step_into(input, now, out);
        }
    }

    /// `msg` to `to`, in this node's envelope, as a frame (`None`: it would not
    /// encode within a frame's limit, which no job message reaches).
    fn job_frame(&self, to: Addr, msg: crate::jobs::JobMsg) -> Option<Output> {
        let env = Envelope {
            version: wire::WIRE_VERSION,
            cluster: self.own_cluster,
            sender: self.node,
            sender_addr: self.addr,
            sender_inc: Incarnation(0),
            sender_role: self.role,
            flags: 0,
            body: Body::Job(msg),
        };
        wire::encode(&env, Channel::Frame)
            .ok()
            .map(|bytes| Output::Frame { to, bytes })
    }

    /// Job messages become frames; job events, node events.
    fn job_outputs(&mut self, o: JobOutputs, now: Instant, out: &mut Outputs) {
        for jo in o {
            match jo {
                JobOutput::Send { to, msg } => {
                    if self.held_back(to, &msg, now) {
                        continue;
                    }
                    if let Some(frame) = self.job_frame(to, msg) {
                        out.push(frame);
                    }
                }
                JobOutput::Event(e) => out.push(Output::Event(Event::Job(e))),
                // AD-26: the grant also stretches the worker's suspicion in the DC's
                // membership (our own cluster: first).
                JobOutput::ExtendSuspicion { node, by } => self.pass_to_own_membership(
                    membership::Input::ExtensionGranted { node, by },
                    now,
                    out,
                ),
                // AD-30's job layer, in the DC's membership (ours: first).
                JobOutput::SuspectForJob {
                    job,
                    worker,
                    job_size,
                } => self.pass_to_own_membership(
                    membership::Input::SuspectForJob {
                        job,
                        node: worker,
                        job_size,
                        from: self.node,
                    },
                    now,
                    out,
                ),
                JobOutput::RefuteForJob { job, worker } => self.pass_to_own_membership(
                    membership::Input::RefuteForJob {
                        job,
                        node: worker,
                        inc: None,
                    },
                    now,
                    out,
                ),
                JobOutput::ClearJob { job } => {
                    self.pass_to_own_membership(membership::Input::ClearJob { job }, now, out)
                }
                JobOutput::ProbeWorker { node } => {
                    self.pass_to_own_membership(membership::Input::ProbeNow { node }, now, out)
                }
            }
        }
    }

    /// Job messages shed on arrival or refused admission, per priority (index =
    /// priority value).
    pub fn shed_counts(&self) -> [u64; 4] {
        let mut s = self.shedder.shed;
        for (a, b) in s.iter_mut().zip(self.in_flight.shed) {
            *a += b;
        }
        s
    }

    /// The priority of a message on the wire: datagrams carry membership (CONTROL);
    /// frames by their body; what does not decode counts as Normal (it is dropped
    /// when handled anyway).
    fn priority_of(bytes: &[u8], frame: bool) -> Priority {
        if !frame {
            return Priority::Critical;
        }
        match wire::decode(bytes, Channel::Frame) {
            Ok(env) => body_class(&env.body).priority(),
            Err(_) => Priority::Normal,
        }
    }

    /// AD-32 bounded execution: the shell is about to hold `bytes` until this node can
    /// handle it (a slow node's queue). Admitted within the in-flight caps of its
    /// priority and the global cap (Critical always); a refusal means the shell drops
    /// it. Each admission is released with [`Node::release`] once handled.
    ///
    /// A manager that refuses a message at `now` excuses the job silence it causes
    /// (AD-30's watch must not accuse a worker whose progress we dropped unread), as it
    /// does for the messages it sheds (AD-22).
    pub fn admit(&mut self, bytes: &[u8], frame: bool, now: Instant) -> bool {
        let admitted = self.in_flight.try_acquire(Self::priority_of(bytes, frame));
        if !admitted {
            if let JobPlane::Manager(m) = &mut self.jobs {
                m.excuse_silence(now);
            }
        }
        admitted
    }

    pub fn release(&mut self, bytes: &[u8], frame: bool) {
        self.in_flight.release(Self::priority_of(bytes, frame));
    }

    /// A leader manager's stats buffer fill (0..1), if this node is a manager.
    pub fn buffer_fill(&self) -> Option<f64> {
        match &self.jobs {
            JobPlane::Manager(m) => Some(m.buffer_fill()),
            _ => None,
        }
    }

    /// Progress updates this worker sent, batched and dropped (AD-37).
    pub fn progress_counts(&self) -> Option<(u64, u64, u64)> {
        match &self.jobs {
            JobPlane::Worker(w) => Some((w.progress_sent, w.progress_batched, w.progress_dropped)),
            _ => None,
        }
    }

    /// Stats entries a manager's full buffer overwrote (only with backpressure off).
    pub fn buffer_overwritten(&self) -> Option<u64> {
        match &self.jobs {
            JobPlane::Manager(m) => Some(m.buffer_overwritten()),
            _ => None,
        }
    }

    /// Per-job entries this node holds (a leak check: 0 once its jobs are done).
    pub fn job_table_len(&self) -> usize {
        match &self.jobs {
            JobPlane::Gate(g) => g.table_len(),
            JobPlane::Manager(m) => m.table_len(),
            JobPlane::Worker(w) => w.table_len(),
        }
    }

    /// The jobs a gate leads (None on other roles).
    pub fn gate_jobs(&self) -> Option<Vec<crate::jobs::gate::JobSummary>> {
        match &self.jobs {
            JobPlane::Gate(g) => Some(g.summaries()),
            _ => None,
        }
    }

    /// Whether this node still tracks `job` (gate or manager).
    pub fn tracks_job(&self, job: JobId) -> bool {
        match &self.jobs {
            JobPlane::Gate(g) => g.has_job(job),
            JobPlane::Manager(m) => m.has_job(job),
            JobPlane::Worker(w) => w.has_job(job),
        }
    }

    /// What membership just reported that the election needs: which voters are visible,
    /// and our own health. `out[from..]` is this step's output.
    fn inform_election(&mut self, now: Instant, out: &mut Outputs, from: usize) {
        let Some(l) = self.leadership.as_mut() else {
            return;
        };
        let mut inputs: smallvec::SmallVec<[ElectionInput; 4]> = smallvec::SmallVec::new();
        let mut health = l.health;
        for o in out[from..].iter() {
            let Output::Event(e) = o else { continue };
            match e {
                Event::Member {
                    cluster, node, to, ..
                } if *cluster == l.cluster && l.voters.iter().any(|(v, _)| v == node) => {
                    let visible = to.is_some_and(|v| v.confirmed && v.status.is_live());
                    inputs.push(ElectionInput::PeerVisible {
                        node: *node,
                        visible,
                    });
                }
                Event::Lhm { cluster, score } if *cluster == l.cluster => health.0 = *score,
                Event::Degradation { cluster, level } if *cluster == l.cluster => health.1 = *level,
                _ => {}
            }
        }
        if health != l.health {
            l.health = health;
            inputs.push(ElectionInput::Health {
                lhm: health.0,
                // membership.md §6.2: MODERATE refuses new leadership, HEAVY+ steps down.
                refuse_new: health.1 >= DegradationLevel::Moderate,
                step_down: health.1 >= DegradationLevel::Heavy,
            });
        }
        for input in inputs {
            l.step(input, now, out);
        }
    }

    /// AD-18's grade moved: say so, and tell the memberships (membership.md §9: peers
    /// learn the grade and go easier on us).
    fn overload_graded(
        &mut self,
        before: OverloadState,
        state: OverloadState,
        now: Instant,
        out: &mut Outputs,
    ) {
        if state == before {
            return;
        }
        out.push(Output::Event(Event::Overload { state }));
        for m in &mut self.memberships {
            m.step_into(membership::Input::OwnHealth { state }, now, out);
        }
    }

    /// The grade AD-22 sheds by (wire messages, and a gate's client submissions). A
    /// manager also has backpressure.md §3's pending-request detector (AD-32's messages
    /// in flight over 1000), and sheds by the higher of the two. Spec deviation, on the safe side: the spec gives a manager
    /// the pending detector *instead* of the hybrid one, but a real node's shell queues
    /// nothing in the in-flight tracker (it handles each message as it reads it), so a
    /// manager graded by pending requests alone would never shed.
    fn shed_grade(&self) -> OverloadState {
        let hybrid = self.overload.state();
        match self.jobs {
            JobPlane::Manager(_) => {
                hybrid.max(pending_state(self.in_flight.total(), MANAGER_MAX_PENDING))
            }
            _ => hybrid,
        }
    }

    /// The node's AD-18 grade (for the shell's metrics).
    pub fn overload_state(&self) -> OverloadState {
        self.overload.state()
    }

    /// Observers borrow the node's health score from its own cluster's machine.
    fn share_health(&mut self, now: Instant, out: &mut Outputs) {
        let Some((own, observers)) = self.memberships.split_first_mut() else {
            return;
        };
        let score = own.lhm_score();
        for m in observers {
            if m.lhm_score() != score {
                m.step_into(membership::Input::SetLocalHealth { score }, now, out);
            }
        }
    }

    fn route(
        &mut self,
        from: Addr,
        bytes: &[u8],
        channel: Channel,
        now: Instant,
        out: &mut Outputs,
    ) {
        match wire::decode(bytes, channel) {
            Ok(Envelope {
                cluster,
                sender,
                body: Body::Election { group, msg },
                ..
            }) => match self.leadership.as_mut() {
                Some(l) if cluster == l.cluster => l.step(
                    ElectionInput::Message {
                        from: sender,
                        group,
                        msg,
                    },
                    now,
                    out,
                ),
                _ => self.unknown_cluster += 1,
            },
            Ok(Envelope {
                sender,
                sender_addr,
                body: Body::Job(msg),
                ..
            }) => {
                // AD-22: shed what the load grade sheds. Membership and election
                // traffic, and CONTROL job messages, are Critical: never shed.
                let p = job_class(&msg).priority();
                if self.shedder.should_shed(self.shed_grade(), p) {
                    // A leader's own shedding silences its workers: not their silence
                    // (AD-30's job-silence watch must not count it).
                    if let JobPlane::Manager(m) = &mut self.jobs {
                        m.excuse_silence(now);
                    }
                    return;
                }
                if !self.limit_job_message((sender, sender_addr), &msg, p, now, out) {
                    return;
                }
                if let (JobPlane::Manager(m), crate::jobs::JobMsg::ExtensionRequest { .. }) =
                    (&mut self.jobs, &msg)
                {
                    // AD-26's liveness reset: when our DC membership last heard from the
                    // worker directly (`timeout::extension`).
                    let heard = self
                        .memberships
                        .first()
                        .and_then(|own| own.member(sender).and_then(|w| w.last_heard_at.get()));
                    if let Some(at) = heard {
                        m.worker_heard(sender, at);
                    }
                }
                let o = self.jobs.msg(sender_addr, msg, now);
                self.job_outputs(o, now, out);
            }
            Ok(env) => match self
                .memberships
                .iter_mut()
                .find(|m| m.identity().cluster == env.cluster)
            {
                Some(m) => m.handle(env, from, now, out),
                None => self.unknown_cluster += 1,
            },
            Err(error) => {
                self.decode_errors += 1;
                out.push(Output::Event(Event::DecodeFailed { error }));
            }
        }
    }

    /// §9's OOB channel: answer a probe (an ack, or a nack while overloaded), or hand
    /// an answer to the machine whose probe it answers.
    fn oob(&mut self, from: Addr, bytes: &[u8], now: Instant, out: &mut Outputs) {
        let Some(responder) = self.oob.as_mut() else {
            self.oob_dropped += 1;
            return;
        };
        match OobFrame::decode(bytes) {
            Err(error) => {
                self.decode_errors += 1;
                out.push(Output::Event(Event::DecodeFailed { error }));
            }
            Ok(frame) if frame.kind == OobKind::Probe => {
                let overloaded = self.overload.state() == OverloadState::Overloaded;
                if let Some(bytes) = responder.answer(frame.seq, overloaded, now) {
                    out.push(Output::Oob { to: from, bytes });
                }
            }
            Ok(frame) => {
                if !self
                    .memberships
                    .iter_mut()
                    .any(|m| m.oob_answer(from, frame, now, out))
                {
                    self.oob_dropped += 1;
                }
            }
        }
    }

    /// §9's OOB channel: `(probes left unanswered for the rate limit, datagrams
    /// dropped unread)`.
    pub fn oob_counts(&self) -> (u64, u64) {
        (self.oob.as_ref().map_or(0, |r| r.refused), self.oob_dropped)
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        let election = self
            .leadership
            .as_ref()
            .and_then(|l| l.election.next_deadline());
        self.memberships
            .iter()
            .filter_map(|m| m.next_deadline())
            .chain(election)
            .chain(self.jobs.next_deadline())
            .min()
    }

    /// The node's election, if it votes in one.
    pub fn election(&self) -> Option<&Election> {
        self.leadership.as_deref().map(|l| &l.election)
    }

    /// Reads the first of the node's state a step touches and returns something of it:
    /// a simulator calls it for the next event's node while handling the current one,
    /// so that those cache misses overlap. Changes nothing.
    /// `from`: the sender of the datagram the next step will handle, whose member
    /// record and coordinate that step reads.
    pub fn warm(&self, from: Option<NodeId>) -> usize {
        self.memberships.first().map_or(0, |m| m.warm(from))
    }

    /// The node's membership machines: its own cluster first, then observers.
    pub fn memberships(&self) -> &[Membership] {
        &self.memberships
    }

    pub fn decode_errors(&self) -> u64 {
        self.decode_errors
    }
    pub fn unknown_cluster(&self) -> u64 {
        self.unknown_cluster
    }
}

impl Leadership {
    /// Step the election and turn what it emits into datagrams and events.
    fn step(&mut self, input: ElectionInput, now: Instant, out: &mut Outputs) {
        for o in self.election.step(input, now) {
            match o {
                ElectionOutput::Broadcast(msg) => {
                    for (n, addr) in &self.voters {
                        if *n != self.me {
                            self.transmit(*addr, msg, out);
                        }
                    }
                }
                ElectionOutput::Send { to, msg } => {
                    if let Some((_, addr)) = self.voters.iter().find(|(n, _)| *n == to) {
                        self.transmit(*addr, msg, out);
                    }
                }
                ElectionOutput::Event(e) => out.push(Output::Event(Event::Election(e))),
            }
        }
    }

    fn transmit(&self, to: Addr, msg: crate::leadership::ElectionMsg, out: &mut Outputs) {
        let env = Envelope {
            version: wire::WIRE_VERSION,
            cluster: self.cluster,
            sender: self.me,
            sender_addr: self.addr,
            sender_inc: Incarnation(0),
            sender_role: Role::Unknown,
            flags: 0,
            body: Body::Election {
                group: self.group,
                msg,
            },
        };
        if let Ok(bytes) = wire::encode_datagram(&env) {
            out.push(Output::Transmit { to, bytes });
        }
    }
}
