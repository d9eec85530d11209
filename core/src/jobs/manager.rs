//! A manager's side of the job plane: only the DC leader accepts jobs (others redirect to
//! the leader they know); it splits a job into workflows, dispatches each to the worker
//! with the most free slots under a fresh fence token (leadership.md §2.4: the counter
//! bumps on every dispatch), re-dispatches the workflows of workers that die, and reports
//! the DC's result to the gate until acknowledged; then every trace of the job goes.
//!
//! Takeover (AD-12/31, leadership.md §2.2): the leader replicates each job it accepts,
//! each workflow that completes and each job it finishes to the DC's other managers. A
//! manager that becomes leader adopts every replica it holds under the next token of its
//! own term (outranking everything its predecessor issued), waits `takeover_grace` for
//! the workers to report what they are running (`Running`, sent to every new leader),
//! then dispatches what nobody runs. Results in flight follow the leader (workers resend
//! to whoever leads), so nothing is lost and little runs twice. It tells each adopted
//! job's gate it leads the job now (`LeaderTransfer`); a gate that knows the job has
//! ended answers `JobOver`, and the takeover of a replica that missed the end stops
//! there, within the grace, when no manager holding the tombstone is in reach.
//!
//! Timeouts (AD-26/33/34, jobs.md §2-§4): every workflow state change goes through the
//! job's [`Lifecycle`], whose progress notices feed the job's [`JobTimeout`]; workers'
//! extension requests go through their [`WorkerExtensions`], and a grant lengthens the
//! timeout of every job the worker runs (and its suspicion timer). Every 30 s the leader
//! checks each job: a single-DC job is timed out here; a multi-DC job is reported to its
//! gate (progress every 10 s, a timeout report until answered), which decides; 300 s
//! without an answer and the manager acts alone, once. The timeout state is replicated
//! with the job, so a new leader resumes it under the next timeout fence and neither
//! loses the timeout nor fires it again.
//!
//! A job that ended here leaves a tombstone (its final status) with every manager of
//! the DC for `tombstone_ttl`: a gate that takes the job over later (its replica missed
//! the end) gets that status back instead of the job running a second time, perhaps to a
//! different end.

use super::silence::{Call, SilenceWatch};
use super::{DcLoad, JobEvent, JobMsg, JobOutput, JobOutputs, WorkflowIndex};
use crate::backpressure::stats::{Level, StatsBuffer, StatsConfig};
use crate::id::{Addr, DcId, FenceToken, JobId, NodeId, TimeoutFence};
use crate::leadership::{FenceDomain, JobRegistry, TokenIssuer, Verdict};
use crate::time::{secs, Instant};
use crate::timeout::extension::{Denial, ExtensionConfig, ExtensionResponse, WorkerExtensions};
use crate::timeout::gate::{DcStatus, ProgressReport};
use crate::timeout::job::{
    Check, GlobalVerdict, JobTimeout, Strategy, TimeoutBy, TimeoutConfig, TimeoutReason,
};
use crate::timeout::workflow::{Lifecycle, ListenerId, TransitionReason, WorkflowState};
use core::time::Duration;
use smallvec::SmallVec;
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq)]
pub struct ManagerConfig {
    /// A dispatch without an answer is taken back after this long.
    pub dispatch_timeout: Duration,
    /// An unacknowledged `JobDone` is resent after this long.
    pub retry: Duration,
    /// The leader re-tells its workers it leads this often (and at once when it starts
    /// leading or a worker appears).
    pub hello_interval: Duration,
    pub max_jobs: usize,
    /// Workflows per job at most (a bigger submission is refused).
    pub max_workflows: u32,
    /// After a takeover, how long to wait for workers' `Running` reports before
    /// dispatching the adopted workflows nobody reported.
    pub takeover_grace: Duration,
    /// The leader re-announces its live jobs (with their timeout state) to the other
    /// managers this often...
    pub replica_refresh: Duration,
    /// ...and a replica not re-announced for this long is dropped (a job that ended
    /// while we could not hear the leader must not stay with us for ever).
    pub replica_ttl: Duration,
    /// Transitions kept per job (the lifecycle's history bound).
    pub history_cap: usize,
    /// How long an ended job's final status is remembered (bounded by `max_jobs`).
    pub tombstone_ttl: Duration,
    pub timeout: TimeoutConfig,
    pub extension: ExtensionConfig,
    /// The stats buffer whose fill is the backpressure level (AD-23).
    pub stats: StatsConfig,
    /// The leader tells its jobs' gates its level this often (ManagerHeartbeat).
    pub heartbeat_interval: Duration,
    /// A registered gate (GateHello) not heard again for this long is forgotten (it
    /// re-registers every 30 s)...
    pub gate_ttl: Duration,
    /// ...and at most this many are kept.
    pub max_gates: usize,
    /// A final report resent unanswered for this long is given up: the job is
    /// forgotten into its tombstone, which answers the gate should it ever ask again
    /// (its re-claims, every 120 s). AD-34's fallback for an unresponsive gate, applied
    /// to the report of a job that ended, but as long as the tombstone lasts (600 s),
    /// not 300 s: a gate cut off for minutes hears the report itself as soon as the cut
    /// heals (`gate-unreachable-fallback`, an 8-minute cut), and a longer silence is
    /// covered twice over, by the report and then by the tombstone.
    pub report_give_up: Duration,
    /// Backpressure on (the default): progress acks carry the buffer's signal. Off, they
    /// always say NONE (the ablation baseline) and the buffer overwrites its oldest.
    pub backpressure: bool,
    /// AD-30's job layer: a worker silent this long about a job it reported progress
    /// on is suspected for that job, and the job's workflows are taken back from it if
    /// the suspicion runs out (`silence`). `None`: off.
    pub job_silence: Option<Duration>,
    /// A job adopted at a takeover dispatches nothing until its gate confirms it still
    /// runs (`JobLive`, or its `Submit` again), or says it ended (`JobOver`); asked
    /// after `retry`, then less and less often (doubling, up to 16 s). Unanswered this
    /// long, it runs anyway: a live job's gate, or the gate that took it over, re-sends
    /// it to a DC that has not reported every 120 s, so 300 s of silence means no gate
    /// can answer, and the job's own timeout is then all that bounds it.
    pub confirm_give_up: Duration,
}

impl Default for ManagerConfig {
    fn default() -> Self {
        ManagerConfig {
            dispatch_timeout: secs(10),
            retry: secs(2),
            hello_interval: secs(30),
            max_jobs: 10_000,
            max_workflows: 10_000,
            takeover_grace: secs(3),
            // The replicated timeout state is at most this stale at a takeover: the
            // progress-report cadence, so a new leader never sees a job as idler
            // than its gate does.
            replica_refresh: secs(10),
            replica_ttl: secs(95),
            history_cap: 64,
            tombstone_ttl: secs(600),
            timeout: TimeoutConfig::default(),
            extension: ExtensionConfig::default(),
            stats: StatsConfig::default(),
            heartbeat_interval: secs(5),
            backpressure: true,
            gate_ttl: secs(90),
            max_gates: 64,
            report_give_up: secs(600),
            job_silence: Some(super::silence::DEFAULT_SILENCE),
            confirm_give_up: secs(300),
        }
    }
}

/// The job's timeout state listens to its lifecycle.
const TIMEOUT_LISTENER: ListenerId = ListenerId(0);

/// Where a dispatched (or running, or cancelling) workflow is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Dispatch {
    worker: NodeId,
    token: FenceToken,
    at: Instant,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Running,
    Completed,
    TimedOut,
    /// Its gate withdrew it (`JobMsg::Withdraw`): cancelled, reported `Cancelled`.
    Withdrawn,
}

#[derive(Clone, Debug)]
struct Job {
    id: JobId,
    dc: DcId,
    gate: NodeId,
    gate_addr: Addr,
    life: Lifecycle,
    dispatch: Vec<Option<Dispatch>>,
    /// The latest token issued for the job.
    token: FenceToken,
    status: Status,
    /// AD-34 tracking; frozen once the job ends (checks skip terminal jobs) and gone
    /// with the job.
    timeout: JobTimeout,
    /// Workers whose grants count in this job's timeout.
    ext_workers: SmallVec<[NodeId; 4]>,
    /// Items its completed workflows reported.
    items: u64,
    /// Set once the job ended: when to resend its final report (and pending cancels).
    report_next: Option<Instant>,
    /// The gate acknowledged the final report.
    final_acked: bool,
    /// Since when the final report has been resent unanswered (see `report_give_up`).
    unacked_since: Option<Instant>,
    /// A job just taken over is not dispatched before this (see `takeover_grace`).
    hold_until: Option<Instant>,
    /// A job adopted at a takeover waits for its gate's word (`confirm_give_up`).
    unconfirmed: Option<Unconfirmed>,
}

/// An adopted job's wait for its gate: when to ask again, and when to stop waiting.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Unconfirmed {
    ask_next: Instant,
    /// The wait before the next ask: `retry`, doubling up to `MAX_CONFIRM_EVERY`.
    every: Duration,
    give_up: Instant,
}

/// The longest wait between two asks of an adopted job's gates: every job the leader
/// adopted asks every gate registered with it, so the asks of a DC whose gates are all
/// out of reach thin out, as a gate's withdrawals do.
const MAX_CONFIRM_EVERY: Duration = Duration::from_secs(16);

impl Job {
    #[allow(clippy::too_many_arguments)]
    fn new(
        id: JobId,
        dc: DcId,
        gate: NodeId,
        gate_addr: Addr,
        workflows: u32,
        token: FenceToken,
        timeout: JobTimeout,
        history_cap: usize,
    ) -> Job {
        let mut life = Lifecycle::new(workflows, history_cap);
        life.register_progress_listener(TIMEOUT_LISTENER);
        Job {
            id,
            dc,
            gate,
            gate_addr,
            life,
            dispatch: vec![None; workflows as usize],
            token,
            status: Status::Running,
            timeout,
            ext_workers: SmallVec::new(),
            items: 0,
            report_next: None,
            final_acked: false,
            unacked_since: None,
            hold_until: None,
            unconfirmed: None,
        }
    }

    fn all_completed(&self) -> bool {
        self.life
            .states()
            .all(|(_, s)| s == WorkflowState::Completed)
    }

    fn runs_on(&self, worker: NodeId) -> bool {
        self.life.states().any(|(i, s)| {
            matches!(s, WorkflowState::Dispatched | WorkflowState::Running)
                && self.dispatch[i as usize].is_some_and(|d| d.worker == worker)
        })
    }

    /// How the job ended, for its final report and its tombstone (None while it runs).
    fn ending(&self) -> Option<Tombstone> {
        let status = match self.status {
            Status::Running => return None,
            Status::Completed => DcStatus::Completed,
            Status::TimedOut => DcStatus::TimedOut,
            Status::Withdrawn => DcStatus::Cancelled,
        };
        Some(Tombstone {
            status,
            token: self.token,
            fence: self.timeout.fence,
            items: self.items,
        })
    }

    /// The worker no longer runs any of our workflows: its grants stop counting as
    /// "workers with extensions" (the total stays, jobs.md §4.3).
    fn release(&mut self, worker: NodeId) {
        if self.ext_workers.contains(&worker) && !self.runs_on(worker) {
            self.ext_workers.retain(|w| *w != worker);
        }
    }
}

/// One legal lifecycle step of `wf`: the transition event, and its progress notice to
/// the job's timeout. An edge the table lacks changes nothing and is reported (it would
/// be a bug here: every caller takes a legal edge).
fn step_wf(
    j: &mut Job,
    wf: WorkflowIndex,
    to: WorkflowState,
    reason: TransitionReason,
    now: Instant,
    out: &mut JobOutputs,
) -> bool {
    let (id, dc) = (j.id, j.dc);
    let from = j.life.state(wf);
    match j.life.transition(wf, to, reason, now) {
        Ok(notices) => {
            for n in notices {
                if n.listener == TIMEOUT_LISTENER {
                    j.timeout.report_progress(now);
                }
            }
            out.push(JobOutput::Event(JobEvent::WorkflowTransition {
                job: id,
                dc,
                workflow: wf,
                from,
                to,
            }));
            true
        }
        Err(e) => {
            out.push(JobOutput::Event(JobEvent::InvalidTransition {
                job: id,
                workflow: wf,
                from: e.from,
                to: e.to,
            }));
            false
        }
    }
}

/// A cancelling (or never started) workflow is cancelled: confirmed by its worker, its
/// worker gone, or nobody to ask.
fn cancelled(j: &mut Job, wf: WorkflowIndex, now: Instant, out: &mut JobOutputs) {
    step_wf(
        j,
        wf,
        WorkflowState::Cancelled,
        TransitionReason::CancelConfirmed,
        now,
        out,
    );
    j.dispatch[wf as usize] = None;
}

/// Stop every workflow of `j` that has not ended: one a worker runs is sent a cancel
/// (Cancelling until the worker confirms), any other is cancelled at once.
fn cancel_unfinished(
    j: &mut Job,
    workers: &BTreeMap<NodeId, Worker>,
    now: Instant,
    out: &mut JobOutputs,
) {
    let job = j.id;
    for i in 0..j.life.len() as WorkflowIndex {
        let state = j.life.state(i);
        if state.is_terminal() {
            continue;
        }
        step_wf(
            j,
            i,
            WorkflowState::Cancelling,
            TransitionReason::Cancel,
            now,
            out,
        );
        let on = j.dispatch[i as usize]
            .filter(|_| matches!(state, WorkflowState::Dispatched | WorkflowState::Running))
            .and_then(|d| workers.get(&d.worker).map(|w| w.addr));
        match on {
            Some(addr) => out.push(JobOutput::Send {
                to: addr,
                msg: JobMsg::CancelWorkflow { job, workflow: i },
            }),
            None => cancelled(j, i, now, out),
        }
    }
}

/// Worker-failure recovery of a dispatched or running workflow, back to Pending.
fn recover_wf(
    j: &mut Job,
    wf: WorkflowIndex,
    reason: TransitionReason,
    now: Instant,
    out: &mut JobOutputs,
) {
    if step_wf(j, wf, WorkflowState::Failed, reason, now, out) {
        for to in [
            WorkflowState::FailedCancelingDependents,
            WorkflowState::FailedReadyForRetry,
            WorkflowState::Pending,
        ] {
            step_wf(j, wf, to, TransitionReason::Recovery, now, out);
        }
    }
    j.dispatch[wf as usize] = None;
}

/// What every manager remembers of a job that ended in the DC.
#[derive(Clone, Copy, Debug)]
struct Tombstone {
    status: DcStatus,
    token: FenceToken,
    fence: crate::id::TimeoutFence,
    items: u64,
}

/// A job's final report to its gate from DC `dc`'s manager `me`: `JobDone` for a
/// completion, `FinalStatus` otherwise (from a live job's [`Job::ending`] or from its
/// tombstone).
/// What [`take_back`] did to one job.
struct TakenBack {
    /// Dispatched or running workflows put back to be dispatched again.
    workflows: u32,
    /// Cancelling workflows counted as cancelled (the worker is gone).
    cancels_done: bool,
}

/// Take back every workflow of `j` that `worker` was given: dispatched or running ones
/// go back to Pending (with a cancel to `cancel_at` if the worker lives on), cancelling
/// ones count as cancelled if it does not. The one place a worker loses a job's work:
/// its death or eviction (every job) and the job layer's verdict (one job).
fn take_back(
    j: &mut Job,
    worker: NodeId,
    reason: TransitionReason,
    cancel_at: Option<Addr>,
    now: Instant,
    out: &mut JobOutputs,
) -> TakenBack {
    let mut taken = TakenBack {
        workflows: 0,
        cancels_done: false,
    };
    for i in 0..j.life.len() as WorkflowIndex {
        if j.dispatch[i as usize].is_none_or(|d| d.worker != worker) {
            continue;
        }
        match j.life.state(i) {
            WorkflowState::Dispatched | WorkflowState::Running => {
                if let Some(addr) = cancel_at {
                    out.push(JobOutput::Send {
                        to: addr,
                        msg: JobMsg::CancelWorkflow {
                            job: j.id,
                            workflow: i,
                        },
                    });
                }
                recover_wf(j, i, reason, now, out);
                taken.workflows += 1;
            }
            WorkflowState::Cancelling if cancel_at.is_none() => {
                cancelled(j, i, now, out);
                taken.cancels_done = true;
            }
            _ => {}
        }
    }
    j.release(worker);
    taken
}

/// How many workers run the job's dispatched or running workflows: the job size the
/// job layer's timeout is computed over (membership.md §9).
fn job_size(j: &Job) -> u32 {
    let mut workers: SmallVec<[NodeId; 8]> = j
        .life
        .states()
        .filter(|(_, s)| matches!(s, WorkflowState::Dispatched | WorkflowState::Running))
        .filter_map(|(i, _)| j.dispatch[i as usize].map(|d| d.worker))
        .collect();
    workers.sort_unstable();
    workers.dedup();
    workers.len() as u32
}

/// A silence-watch call as the node's output to its DC membership.
fn layer_call(call: Call, job_size: u32, out: &mut JobOutputs) {
    out.push(match call {
        Call::Suspect { job, worker } => JobOutput::SuspectForJob {
            job,
            worker,
            job_size,
        },
        Call::Refute { job, worker } => JobOutput::RefuteForJob { job, worker },
        Call::Clear { job } => JobOutput::ClearJob { job },
    });
}

fn report_of(dc: DcId, me: NodeId, job: JobId, t: Tombstone) -> JobMsg {
    match t.status {
        DcStatus::Completed => JobMsg::JobDone {
            job,
            dc,
            token: t.token,
            items: t.items,
        },
        status => JobMsg::FinalStatus {
            job,
            dc,
            manager: me,
            status,
            fence: t.fence,
            token: t.token,
        },
    }
}

/// The word to the DC's other managers that `job` ended here as tombstone `t` says:
/// they drop its replica and keep the tombstone.
fn replica_forget(job: JobId, t: Tombstone) -> JobMsg {
    JobMsg::ReplicaForget {
        job,
        status: t.status,
        token: t.token,
        fence: t.fence,
        items: t.items,
    }
}

/// The word to `job`'s gate (and, while it does not answer, to the gates registered
/// with us) that we lead the job in DC `dc` now: answered `JobLive` or `JobOver`.
fn leader_transfer(job: JobId, dc: DcId, me: NodeId, fence: TimeoutFence) -> JobMsg {
    JobMsg::LeaderTransfer {
        job,
        dc,
        new_leader: me,
        fence,
    }
}

/// What a follower keeps of a job its leader runs.
#[derive(Clone, Debug)]
struct Replica {
    workflows: u32,
    gate: NodeId,
    gate_addr: Addr,
    gate_token: FenceToken,
    token: FenceToken,
    done: std::collections::BTreeSet<WorkflowIndex>,
    /// Items the done workflows reported.
    items: u64,
    refreshed_at: Instant,
    /// The leader's timeout state, rebased on our clock at receipt.
    timeout: JobTimeout,
    /// When we last offered it to a leader that does not refresh it (`ReplicaOffer`);
    /// cleared when the leader's `Replicate` comes, which our done workflows answer.
    offered_at: Option<Instant>,
    /// Since when, at the latest, the job's final report has gone unanswered: when we
    /// learned that it ended here (every workflow done, or its timeout acted; no
    /// `ReplicaForget` has come, so no gate acknowledged it), or, for our own job when
    /// we stepped aside, the clock we had. A successor leader carries it on, so the
    /// give-up (`report_give_up`) counts from the first leader's silence, not afresh
    /// at each change of leader (a DC whose leadership churned every ~190 s never gave
    /// a dead gate's report up: `jobs-basic` seed 12 of session 19's leak scan).
    unanswered_since: Option<Instant>,
}

impl Replica {
    /// The job ended here, as far as this replica tells: note since when.
    fn note_end(&mut self, now: Instant) {
        let completed = self.done.len() >= self.workflows as usize;
        if completed || self.timeout.acted() {
            self.unanswered_since.get_or_insert(now);
        }
    }
}

#[derive(Clone, Debug)]
struct Worker {
    addr: Addr,
    free_slots: u16,
    /// All its slots, as it last told us (its share of the DC's cores).
    slots: u16,
    /// Its membership status is SUSPECT (not a healthy worker, AD-16).
    suspected: bool,
    ext: WorkerExtensions,
}

#[derive(Clone, Debug)]
pub struct ManagerJobs {
    cfg: ManagerConfig,
    me: NodeId,
    dc: DcId,
    /// Our term while we lead the DC.
    leading: Option<u64>,
    leader: Option<(NodeId, Addr)>,
    workers: BTreeMap<NodeId, Worker>,
    jobs: BTreeMap<JobId, Job>,
    /// Jobs the leader runs, as replicated to us (followers).
    replicas: BTreeMap<JobId, Replica>,
    /// The DC's other managers.
    peers: Vec<(NodeId, Addr)>,
    issuer: TokenIssuer,
    /// Gate tokens of the jobs we accepted (a resent or stale submission is recognised).
    gates: JobRegistry,
    next_hello: Option<Instant>,
    next_refresh: Option<Instant>,
    /// The 30 s timeout check (leader).
    next_check: Option<Instant>,
    /// No unanswered dispatch times out before this (a lower bound; see `tick`).
    dispatch_due: Option<Instant>,
    /// No replica expires or is due to be offered before this (followers; a lower
    /// bound, exact after each upkeep).
    next_replica_upkeep: Option<Instant>,
    /// The term of the DC leader we know (`leader`), and since when we know it (none
    /// while we know no leader): offers of replicas count from then (`replica_upkeep`).
    /// A leader re-elected in a new term counts as new: it may have restarted.
    leader_since: Option<(u64, Instant)>,
    tombstones: BTreeMap<JobId, Tombstone>,
    stats: StatsBuffer,
    /// The level last reported (events fire on changes).
    level: Level,
    next_heartbeat: Option<Instant>,
    /// No exhausted worker's grace ends before this (a lower bound, exact after each
    /// scan): `next_deadline` runs after every step and must not walk the workers.
    grace_due: Option<Instant>,
    /// Set by `QuorumLost`, taken by the next `Leader` input (see `step_aside`).
    quorum_lost_at: Option<Instant>,
    /// Tombstones in the order they were laid, to expire them.
    tombstone_queue: std::collections::VecDeque<(Instant, JobId)>,
    /// Gates registered for our heartbeats (routing.md §1): address -> last hello.
    gates_registered: BTreeMap<Addr, Instant>,
    /// The leader's watch on (job, worker) pairs that fall silent (AD-30's job layer).
    silence: SilenceWatch,
}

pub enum ManagerInput {
    Msg {
        from: Addr,
        msg: JobMsg,
    },
    /// Who leads the DC now (from the election), and the term.
    Leader {
        leader: Option<(NodeId, Addr)>,
        term: u64,
    },
    /// A worker of the DC became reachable (or stopped being so), per membership, and
    /// whether it is suspected now.
    Worker {
        node: NodeId,
        addr: Addr,
        alive: bool,
        suspected: bool,
    },
    /// The DC membership's job layer declared `worker` dead for `job` (a suspicion we
    /// raised ran out): the job's workflows are taken back from it.
    WorkerFailedJob {
        job: JobId,
        worker: NodeId,
    },
    /// The job layer ended or refused a suspicion of `worker` for `job` by itself
    /// (refuted by a higher incarnation, cleared, rejected): watched afresh.
    JobSuspicionLifted {
        job: JobId,
        worker: NodeId,
    },
    Tick,
    /// We led, and the election stepped us down for want of a majority (check-quorum):
    /// the last instant we can have heard one. Comes just before the `Leader` input
    /// that makes us step aside, which dates our jobs' replicas to it.
    QuorumLost {
        last_heard: Instant,
    },
}

impl ManagerJobs {
    /// `peers`: the DC's configured managers (ourselves excluded or not).
    pub fn new(
        cfg: ManagerConfig,
        me: NodeId,
        dc: DcId,
        peers: Vec<(NodeId, Addr)>,
    ) -> ManagerJobs {
        let stats = StatsBuffer::new(cfg.stats.clone(), Instant::ZERO);
        let silence = SilenceWatch::new(cfg.job_silence);
        ManagerJobs {
            replicas: BTreeMap::new(),
            peers: peers.into_iter().filter(|(n, _)| *n != me).collect(),
            gates: JobRegistry::new(cfg.max_jobs),
            cfg,
            me,
            dc,
            leading: None,
            leader: None,
            workers: BTreeMap::new(),
            jobs: BTreeMap::new(),
            issuer: TokenIssuer::default(),
            next_hello: None,
            next_refresh: None,
            next_check: None,
            dispatch_due: None,
            next_replica_upkeep: None,
            leader_since: None,
            tombstones: BTreeMap::new(),
            stats,
            level: Level::None,
            next_heartbeat: None,
            grace_due: None,
            quorum_lost_at: None,
            tombstone_queue: std::collections::VecDeque::new(),
            gates_registered: BTreeMap::new(),
            silence,
        }
    }

    /// Ended jobs remembered (bounded by `max_jobs`, each for `tombstone_ttl`).
    pub fn tombstones_len(&self) -> usize {
        self.tombstones.len()
    }

    fn lay_tombstone(&mut self, job: JobId, t: Tombstone, now: Instant) {
        if self.tombstones.insert(job, t).is_none() {
            self.tombstone_queue.push_back((now, job));
        }
        while self.tombstones.len() > self.cfg.max_jobs {
            match self.tombstone_queue.pop_front() {
                Some((_, old)) => {
                    self.tombstones.remove(&old);
                }
                None => break,
            }
        }
    }

    /// Per-job entries held: 0 once every job is reported and acknowledged.
    pub fn table_len(&self) -> usize {
        self.jobs.len()
            + self.replicas.len()
            + self.issuer.len()
            + self.gates.len()
            + self.silence.len()
    }
    pub fn has_job(&self, job: JobId) -> bool {
        self.jobs.contains_key(&job) || self.replicas.contains_key(&job)
    }

    /// O(jobs), not O(workflows): the node asks after every step. The dispatch-timeout
    /// deadline is kept as a lower bound (`dispatch_due`), exact after each scan.
    pub fn next_deadline(&self) -> Option<Instant> {
        // One pass over the jobs: final-report resends, takeover holds and (leading)
        // gate-coordinated progress reports.
        let tcfg = &self.cfg.timeout;
        let leading = self.leading.is_some();
        let jobs = self
            .jobs
            .values()
            .flat_map(|j| {
                let progress = leading
                    .then(|| j.timeout.next_report_at(tcfg, j.status != Status::Running))
                    .flatten();
                let confirm = j.unconfirmed.map(|u| u.ask_next.min(u.give_up));
                [j.report_next, j.hold_until, progress, confirm]
            })
            .flatten()
            .min();
        // Promotions matter only while the hot tier holds something.
        let promote = (self.stats.hot_len() > 0).then(|| self.stats.next_deadline());
        let tomb = self
            .tombstone_queue
            .front()
            .map(|(at, _)| *at + self.cfg.tombstone_ttl);
        let grace = self.leading.and(self.grace_due);
        let earliest = [
            self.next_hello,
            self.dispatch_due,
            jobs,
            self.next_refresh,
            self.next_replica_upkeep,
            self.next_check,
            grace,
            tomb,
            promote,
            // Only with gates to tell: registered ones, or (leading) its jobs' gates.
            self.next_heartbeat.filter(|_| self.has_gates_to_tell()),
        ]
        .into_iter()
        .flatten()
        .min();
        // Apart from the array: an eleventh entry made the whole function 20x dearer
        // (callgrind, `nodes-100`: it runs after every step of every manager).
        match (earliest, self.leading.and(self.silence.next_deadline())) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn step(&mut self, input: ManagerInput, now: Instant) -> JobOutputs {
        let mut out = JobOutputs::new();
        match input {
            ManagerInput::Msg { from, msg } => self.on_msg(from, msg, now, &mut out),
            ManagerInput::QuorumLost { last_heard } => {
                self.quorum_lost_at = Some(last_heard.min(now));
            }
            ManagerInput::Leader { leader, term } => {
                let knew_as_of = self.quorum_lost_at.take().unwrap_or(now);
                let known = (self.leader.zip(self.leader_since)).map(|((n, _), (t, _))| (n, t));
                if leader.map(|(n, _)| (n, term)) != known {
                    self.leader_since = leader.map(|_| (term, now));
                    if !self.replicas.is_empty() && leader.is_some() {
                        // A new leader to offer our replicas to, should it not refresh them.
                        let due = now + self.offer_after();
                        self.next_replica_upkeep =
                            Some(self.next_replica_upkeep.map_or(due, |t| t.min(due)));
                    }
                }
                self.leader = leader;
                let lead = leader.is_some_and(|(n, _)| n == self.me);
                let was = self.leading.is_some();
                self.leading = lead.then_some(term);
                self.next_hello = lead.then_some(now);
                self.next_refresh = lead.then_some(now + self.cfg.replica_refresh);
                self.next_check = lead.then_some(now + self.cfg.timeout.check_interval);
                // A new leader (or a follower that was one) tells its gates at once.
                self.next_heartbeat = (lead || !self.gates_registered.is_empty()).then_some(now);
                if lead && !was {
                    self.take_over(term, now, &mut out);
                } else if !lead && was {
                    self.step_aside(now, knew_as_of, &mut out);
                }
                if lead {
                    self.tick(now, &mut out);
                }
            }
            ManagerInput::Worker {
                node,
                addr,
                alive,
                suspected,
            } => {
                if alive {
                    match self.workers.get_mut(&node) {
                        // Heard alive again (a suspicion refuted: it answered a liveness
                        // check): a new extension cycle (jobs.md §2, "Reset").
                        Some(w) => {
                            if !suspected {
                                w.ext.reset();
                            }
                            w.suspected = suspected;
                        }
                        None => {
                            self.workers.insert(
                                node,
                                Worker {
                                    addr,
                                    free_slots: 0,
                                    slots: 0,
                                    suspected,
                                    ext: WorkerExtensions::default(),
                                },
                            );
                            if let Some(term) = self.leading {
                                out.push(JobOutput::Send {
                                    to: addr,
                                    msg: JobMsg::LeaderHello { term },
                                });
                            }
                        }
                    }
                } else if self.workers.remove(&node).is_some() {
                    // Its workflows go back to the queue (a late result still counts);
                    // cancels it can no longer confirm are done.
                    self.forget_worker_pairs(node, &mut out);
                    self.reclaim(node, TransitionReason::WorkerFailed, None, now, &mut out);
                    self.dispatch(now, &mut out);
                }
            }
            ManagerInput::WorkerFailedJob { job, worker } => {
                self.worker_failed_job(job, worker, now, &mut out)
            }
            ManagerInput::JobSuspicionLifted { job, worker } => {
                self.silence.lifted(job, worker, now)
            }
            ManagerInput::Tick => self.tick(now, &mut out),
        }
        out
    }

    /// Take back every workflow `worker` was given: dispatched or running ones go back
    /// to Pending (sending a cancel to `cancel_at` if the worker lives on), cancelling
    /// ones count as cancelled.
    fn reclaim(
        &mut self,
        worker: NodeId,
        reason: TransitionReason,
        cancel_at: Option<Addr>,
        now: Instant,
        out: &mut JobOutputs,
    ) {
        let mut cancels_done: smallvec::SmallVec<[JobId; 4]> = smallvec::SmallVec::new();
        for (&id, j) in self.jobs.iter_mut() {
            if take_back(j, worker, reason, cancel_at, now, out).cancels_done {
                cancels_done.push(id);
            }
        }
        // A job that ended and was acknowledged waits only for its cancels: the dead
        // worker's were its last, it goes now (it used to stay for ever).
        for job in cancels_done {
            self.forget_if_settled(job, now, out);
        }
    }

    fn on_msg(&mut self, from: Addr, msg: JobMsg, now: Instant, out: &mut JobOutputs) {
        // Only progress starts watching a pair; other words matter once pairs exist.
        if matches!(msg, JobMsg::WorkflowProgress { .. }) || !self.silence.is_empty() {
            self.worker_word(from, &msg, now, out);
        }
        match msg {
            JobMsg::Submit {
                job,
                workflows,
                gate,
                gate_addr,
                gate_token,
                timeout_ms,
                dcs,
            } => {
                let dc = self.dc;
                let ack = |accepted, leader| JobOutput::Send {
                    to: gate_addr,
                    msg: JobMsg::SubmitAck {
                        job,
                        dc,
                        accepted,
                        leader,
                    },
                };
                let Some(term) = self.leading else {
                    out.push(ack(false, self.leader));
                    return;
                };
                if let Some(t) = self.tombstones.get(&job).copied() {
                    // It ended here already: the claimant gets its final status, not a
                    // second run (and asks again until that status reaches it).
                    out.push(JobOutput::Send {
                        to: gate_addr,
                        msg: report_of(self.dc, self.me, job, t),
                    });
                    return;
                }
                if workflows == 0 || workflows > self.cfg.max_workflows {
                    out.push(ack(false, None));
                    return;
                }
                match self
                    .gates
                    .claim(FenceDomain::GateJob, job, gate_token, gate)
                {
                    Ok(Verdict::Resend) => {
                        // Its gate sends it again: it still runs.
                        self.confirmed(job, gate_addr, now, out);
                        out.push(ack(true, None));
                    }
                    Ok(Verdict::Accepted) if !self.jobs.contains_key(&job) => {
                        let Ok(token) = self.issuer.next(job, term, None) else {
                            out.push(ack(false, None));
                            return;
                        };
                        // jobs.md §4.1: a job run by several DCs has its gate decide.
                        let strategy = if dcs > 1 {
                            Strategy::GateCoordinated
                        } else {
                            Strategy::LocalAuthority
                        };
                        let timeout =
                            JobTimeout::start(strategy, timeout_ms.map(Duration::from_millis), now);
                        let j = Job::new(
                            job,
                            self.dc,
                            gate,
                            gate_addr,
                            workflows,
                            token,
                            timeout,
                            self.cfg.history_cap,
                        );
                        let replicate = self.replicate_msg(job, &j, now);
                        self.jobs.insert(job, j);
                        out.push(JobOutput::Event(JobEvent::Accepted {
                            job,
                            dc: self.dc,
                            token,
                        }));
                        out.push(ack(true, None));
                        self.to_peers(replicate, out);
                        self.dispatch(now, out);
                    }
                    // A newer claim for a job we hold (a gate took it over): re-point.
                    Ok(Verdict::Accepted) => {
                        if let Some(j) = self.jobs.get_mut(&job) {
                            j.gate = gate;
                            j.gate_addr = gate_addr;
                        }
                        self.confirmed(job, gate_addr, now, out);
                        out.push(ack(true, None));
                    }
                    Ok(Verdict::Stale) => {
                        out.push(JobOutput::Event(JobEvent::StaleRejected {
                            job,
                            token: gate_token,
                        }));
                        out.push(ack(false, None));
                    }
                    Err(_) => out.push(ack(false, None)),
                }
            }
            JobMsg::DispatchAck {
                job,
                workflow,
                token,
                accepted,
            } => {
                let Some(j) = self.jobs.get_mut(&job) else {
                    return;
                };
                let Some(d) = j.dispatch.get(workflow as usize).copied().flatten() else {
                    return;
                };
                if d.token != token || j.life.state(workflow) != WorkflowState::Dispatched {
                    return;
                }
                if accepted {
                    step_wf(
                        j,
                        workflow,
                        WorkflowState::Running,
                        TransitionReason::Accepted,
                        now,
                        out,
                    );
                } else {
                    recover_wf(j, workflow, TransitionReason::Refused, now, out);
                    if let Some(wk) = self.workers.get_mut(&d.worker) {
                        wk.free_slots = 0; // full: wait for its next hello
                    }
                    self.dispatch(now, out);
                }
            }
            JobMsg::WorkflowDone {
                job,
                workflow,
                items,
                ..
            } => {
                out.push(JobOutput::Send {
                    to: from,
                    msg: JobMsg::WorkflowDoneAck { job, workflow },
                });
                let worker = self.worker_at(from);
                if let Some(wk) = worker.and_then(|n| self.workers.get_mut(&n)) {
                    wk.free_slots = wk.free_slots.saturating_add(1);
                    // Completing a workflow starts a new extension cycle (jobs.md §2).
                    wk.ext.reset();
                }
                self.workflow_done(job, workflow, worker, items, now, out);
                self.dispatch(now, out);
            }
            // A result an earlier leader acknowledged (we lead the job from a replica
            // that may have missed it): it counts, but frees no slot of ours (the
            // worker's hello told us its slots) and is not a new extension cycle.
            // Unanswered: the worker does not wait for it.
            JobMsg::DoneEarlier {
                job,
                workflow,
                items,
            } if self.leading.is_some() => {
                self.workflow_done(job, workflow, None, items, now, out);
            }
            JobMsg::WorkflowCancelled { job, workflow } => {
                let worker = self.worker_at(from);
                let Some(j) = self.jobs.get_mut(&job) else {
                    return;
                };
                if j.life.state(workflow) == WorkflowState::Cancelling {
                    let on = j.dispatch[workflow as usize].map(|d| d.worker);
                    cancelled(j, workflow, now, out);
                    if let Some(wk) = on.filter(|n| Some(*n) == worker) {
                        if let Some(w) = self.workers.get_mut(&wk) {
                            w.free_slots = w.free_slots.saturating_add(1);
                        }
                    }
                }
                self.forget_if_settled(job, now, out);
            }
            JobMsg::JobDoneAck { job, dc }
                if dc == self.dc
                    && self.jobs.get(&job).is_some_and(|j| j.report_next.is_some()) =>
            {
                if let Some(j) = self.jobs.get_mut(&job) {
                    j.final_acked = true;
                }
                self.forget_if_settled(job, now, out);
            }
            JobMsg::JobOver { job, dc } if dc == self.dc => self.job_over(from, job, now, out),
            JobMsg::JobLive { job, dc } if dc == self.dc => self.confirmed(job, from, now, out),
            JobMsg::TimeoutReportAck { job, dc } if dc == self.dc => {
                if let Some(j) = self.jobs.get_mut(&job) {
                    j.timeout.report_acked();
                }
            }
            JobMsg::Withdraw {
                job,
                dc,
                gate_token,
            } if dc == self.dc => self.withdraw(from, job, gate_token, now, out),
            JobMsg::GlobalTimeout { job, reason, fence } => {
                // No tracking for the job: if it ended here, its status corrects the
                // gate. Spec deviation (jobs.md §4.5 ignores such a decision): a leader
                // with no record at all answers that the DC never ran it, as to a
                // withdrawal. A gate decides only about DCs it sent the job to, so
                // this DC accepted it (or may have) and the record is lost: a leader
                // that restarted with no state, elected over a follower holding the
                // job's replica. Ignored, the decision would never be confirmed and
                // the gate would drop the job with no outcome; answered, the job is
                // over here, and the followers drop their replicas for the tombstone.
                let Some(j) = self.jobs.get_mut(&job) else {
                    if self.leading.is_none() {
                        return;
                    }
                    match self.tombstones.get(&job).copied() {
                        Some(t) => out.push(JobOutput::Send {
                            to: from,
                            msg: report_of(self.dc, self.me, job, t),
                        }),
                        None => self.never_had(from, job, now, out),
                    }
                    return;
                };
                let terminal = j.status != Status::Running;
                match j.timeout.on_global(fence, terminal) {
                    GlobalVerdict::Apply => {
                        self.time_out(job, reason, TimeoutBy::Global, now, out);
                    }
                    verdict => {
                        out.push(JobOutput::Event(JobEvent::GlobalTimeoutRefused {
                            job,
                            dc: self.dc,
                            fence,
                            stale: verdict == GlobalVerdict::Stale,
                        }));
                        // A correction: the gate learns the job's real status.
                        if let Some(t) = j.ending() {
                            out.push(JobOutput::Send {
                                to: from,
                                msg: report_of(self.dc, self.me, job, t),
                            });
                        }
                    }
                }
            }
            JobMsg::ExtensionRequest { request } => {
                if self.leading.is_none() {
                    return;
                }
                let Some(node) = self.worker_at(from) else {
                    out.push(JobOutput::Send {
                        to: from,
                        msg: JobMsg::ExtensionResponse {
                            response: ExtensionResponse {
                                granted: false,
                                extension_us: 0,
                                deadline_in_us: 0,
                                remaining_extensions: 0,
                                denial: Some(Denial::UnknownWorker),
                                is_exhaustion_warning: false,
                                grace_period_remaining_us: 0,
                                in_grace_period: false,
                            },
                        },
                    });
                    return;
                };
                let cfg = &self.cfg.extension;
                let wk = self.workers.get_mut(&node).expect("found by address");
                let handled = wk.ext.handle(cfg, &request, now);
                let evict = handled.grant.is_none() && wk.ext.should_evict(cfg, now);
                if let Some(g) = wk.ext.grace_ends_at(cfg) {
                    self.grace_due = Some(self.grace_due.map_or(g, |d| d.min(g)));
                }
                out.push(JobOutput::Send {
                    to: from,
                    msg: JobMsg::ExtensionResponse {
                        response: handled.response,
                    },
                });
                match (handled.grant, handled.response.denial) {
                    (Some(grant), _) => {
                        // jobs.md §2 coupling: every job the worker runs, and membership.
                        let mut jobs = 0u16;
                        for (&id, j) in self.jobs.iter_mut() {
                            if j.status != Status::Running || !j.runs_on(node) {
                                continue;
                            }
                            if !j.ext_workers.contains(&node) {
                                j.ext_workers.push(node);
                            }
                            j.timeout.record_worker_extension(grant, now);
                            jobs = jobs.saturating_add(1);
                            out.push(JobOutput::Event(JobEvent::JobExtended {
                                job: id,
                                dc: self.dc,
                                worker: node,
                                grant_us: grant.as_micros() as u64,
                            }));
                        }
                        let nth = self.workers[&node].ext.tracker.extension_count;
                        out.push(JobOutput::Event(JobEvent::ExtensionGranted {
                            worker: node,
                            grant_us: grant.as_micros() as u64,
                            nth,
                            jobs,
                        }));
                        out.push(JobOutput::ExtendSuspicion { node, by: grant });
                        if handled.response.is_exhaustion_warning {
                            // One grant left: a probe now lets its answer refill the
                            // budget before the next request (`timeout::extension`).
                            out.push(JobOutput::ProbeWorker { node });
                        }
                    }
                    (None, Some(denial)) => {
                        out.push(JobOutput::Event(JobEvent::ExtensionDenied {
                            worker: node,
                            denial,
                        }));
                    }
                    (None, None) => {}
                }
                if evict {
                    self.evict(node, now, out);
                }
            }
            JobMsg::Replicate {
                job,
                workflows,
                gate,
                gate_addr,
                gate_token,
                token,
                timeout,
                items,
            } => {
                if self.leading.is_some() {
                    return; // a deposed leader's late word: we lead now
                }
                if let Some(t) = self.tombstones.get(&job).copied() {
                    // It ended here already: the sender took it over from a replica
                    // that missed the end (it was cut off when the job was forgotten).
                    // Our tombstone tells it, instead of the job running a second time.
                    out.push(JobOutput::Send {
                        to: from,
                        msg: replica_forget(job, t),
                    });
                    return;
                }
                let known = self.replicas.contains_key(&job);
                if !known && self.replicas.len() >= self.cfg.max_jobs {
                    return;
                }
                let state = JobTimeout::from_wire(&timeout, now);
                let r = self.replicas.entry(job).or_insert(Replica {
                    workflows,
                    gate,
                    gate_addr,
                    gate_token,
                    token,
                    done: Default::default(),
                    items,
                    refreshed_at: now,
                    timeout: state.clone(),
                    offered_at: None,
                    unanswered_since: None,
                });
                if token >= r.token {
                    r.token = token;
                    r.items = r.items.max(items);
                    let mut state = state;
                    state.keep_acted(&r.timeout);
                    r.timeout = state;
                    r.gate = gate;
                    r.gate_addr = gate_addr;
                    r.gate_token = r.gate_token.max(gate_token);
                }
                r.refreshed_at = now;
                r.note_end(now);
                if r.offered_at.take().is_some() && !r.done.is_empty() {
                    // The leader has the job we offered it (it adopted it, or had it):
                    // our done workflows, so that it does not run them again.
                    for workflow in r.done.iter() {
                        out.push(JobOutput::Send {
                            to: from,
                            msg: JobMsg::ReplicaDone {
                                job,
                                workflow: *workflow,
                                items: 0,
                            },
                        });
                    }
                }
                let due = now + self.offer_after();
                self.next_replica_upkeep.get_or_insert(due);
            }
            JobMsg::ReplicaDone {
                job,
                workflow,
                items,
            } if self.leading.is_some() => {
                // A follower's done workflow of a job we adopted from its offer (or a
                // deposed leader's late word): the result was real, whoever runs the
                // workflow now. (The offer carried the done workflows' items.)
                let Some(j) = self.jobs.get(&job) else {
                    return;
                };
                let Some(d) = j.dispatch.get(workflow as usize) else {
                    return;
                };
                let worker = d.map(|d| d.worker);
                self.workflow_done(job, workflow, worker, items, now, out);
            }
            JobMsg::ReplicaDone {
                job,
                workflow,
                items,
            } => {
                if let Some(r) = self.replicas.get_mut(&job) {
                    if r.done.insert(workflow) {
                        r.items += items;
                    }
                    r.note_end(now);
                }
            }
            JobMsg::ReplicaOffer {
                job,
                workflows,
                gate,
                gate_addr,
                gate_token,
                token,
                timeout,
                items,
            } => {
                let Some(term) = self.leading else {
                    return; // only the leader adopts
                };
                if let Some(j) = self.jobs.get(&job) {
                    let msg = self.replicate_msg(job, j, now);
                    out.push(JobOutput::Send { to: from, msg });
                    return;
                }
                if let Some(t) = self.tombstones.get(&job).copied() {
                    out.push(JobOutput::Send {
                        to: from,
                        msg: replica_forget(job, t),
                    });
                    return;
                }
                if self.jobs.len() >= self.cfg.max_jobs || workflows > self.cfg.max_workflows {
                    return;
                }
                let r = Replica {
                    workflows,
                    gate,
                    gate_addr,
                    gate_token,
                    token,
                    done: Default::default(),
                    items,
                    refreshed_at: now,
                    timeout: JobTimeout::from_wire(&timeout, now),
                    offered_at: None,
                    // The offer does not carry the follower's clock (the rare path of a
                    // leader that restarted): an ended job's give-up starts here.
                    unanswered_since: None,
                };
                if self.adopt(job, r, term, now, out) {
                    for w in self.workers.values() {
                        out.push(JobOutput::Send {
                            to: w.addr,
                            msg: JobMsg::RunningQuery { job },
                        });
                    }
                }
            }
            JobMsg::ReplicaForget {
                job,
                status,
                token,
                fence,
                items,
            } => {
                let t = Tombstone {
                    status,
                    token,
                    fence,
                    items,
                };
                if self.leading.is_some() && self.jobs.contains_key(&job) {
                    // We lead a job that ended here already (a takeover from a stale
                    // replica, answered by a peer's tombstone).
                    self.superseded(job, t, now, out);
                    return;
                }
                self.lay_tombstone(job, t, now);
                let had = self.replicas.remove(&job).is_some();
                if had && !self.jobs.contains_key(&job) {
                    out.push(JobOutput::Event(JobEvent::Forgotten { job }));
                }
            }
            JobMsg::Running {
                job,
                workflow,
                token,
            } => {
                let Some(worker) = self.worker_at(from) else {
                    return;
                };
                let Some(j) = self.jobs.get_mut(&job) else {
                    return;
                };
                if workflow as usize >= j.dispatch.len() {
                    return;
                }
                match j.status {
                    // It runs a workflow of a job that ended: stop it.
                    Status::TimedOut | Status::Withdrawn => out.push(JobOutput::Send {
                        to: from,
                        msg: JobMsg::CancelWorkflow { job, workflow },
                    }),
                    Status::Running if !j.life.state(workflow).is_terminal() => {
                        // Reconstruction after a takeover, not progress: no transition.
                        j.life.restore(workflow, WorkflowState::Running);
                        j.dispatch[workflow as usize] = Some(Dispatch {
                            worker,
                            token,
                            at: now,
                        });
                    }
                    _ => {}
                }
            }
            JobMsg::WorkflowProgress { job, .. } => {
                // AD-23 (backpressure.md §7): the update is applied whatever the level
                // (here: it is progress for the job's timeout) and recorded in the stats
                // buffer; the answer carries the buffer's signal.
                if self.leading.is_none() {
                    return;
                }
                if let Some(j) = self.jobs.get_mut(&job) {
                    j.timeout.report_progress(now);
                }
                if self.cfg.backpressure {
                    self.stats.record(1.0, now);
                } else {
                    // Ablation: no levels; the hot tier overwrites its oldest.
                    self.stats.record_unbounded(1.0, now);
                }
                self.level_changed(now, out);
                let signal = if self.cfg.backpressure {
                    self.stats.signal()
                } else {
                    crate::backpressure::stats::Signal::of(Level::None)
                };
                out.push(JobOutput::Send {
                    to: from,
                    msg: JobMsg::WorkflowProgressAck {
                        level: signal.level,
                        delay_ms: signal.suggested_delay_ms,
                        batch_only: signal.batch_only,
                    },
                });
            }
            JobMsg::GateHello { .. } => self.register_gate(from, now, out),
            JobMsg::WorkerHello { free_slots, slots } => {
                if let Some(wk) = self.workers.values_mut().find(|w| w.addr == from) {
                    wk.free_slots = free_slots;
                    wk.slots = slots;
                }
                self.dispatch(now, out);
            }
            _ => {}
        }
    }

    /// The stats buffer's level moved: an event (with the fill); every worker hears
    /// the new signal at once, and the gates at the next heartbeat. Pushing it matters
    /// on the way down: a worker at REJECT sends no progress, so no ack would ever tell
    /// it the pressure is gone.
    fn level_changed(&mut self, now: Instant, out: &mut JobOutputs) {
        let level = if self.cfg.backpressure {
            self.stats.level()
        } else {
            Level::None
        };
        if level == Level::Reject || self.level == Level::Reject {
            // The workers drop their progress while we say REJECT: not their silence.
            self.silence.excuse(now);
        }
        if level != self.level {
            self.level = level;
            out.push(JobOutput::Event(JobEvent::BackpressureLevel {
                dc: self.dc,
                level,
                fill_ppm: (self.stats.fill() * 1e6) as u32,
            }));
            if self.leading.is_some() {
                let s = crate::backpressure::stats::Signal::of(level);
                let msg = JobMsg::WorkflowProgressAck {
                    level: s.level,
                    delay_ms: s.suggested_delay_ms,
                    batch_only: s.batch_only,
                };
                for w in self.workers.values() {
                    out.push(JobOutput::Send { to: w.addr, msg });
                }
            }
        }
    }

    fn has_gates_to_tell(&self) -> bool {
        !self.gates_registered.is_empty() || (self.leading.is_some() && !self.jobs.is_empty())
    }

    /// A gate registers for our heartbeats (or refreshes its registration); the first
    /// time, it hears one at once (a gate classifies no DC before its first heartbeat).
    fn register_gate(&mut self, from: Addr, now: Instant, out: &mut JobOutputs) {
        let new = !self.gates_registered.contains_key(&from);
        if new && self.gates_registered.len() >= self.cfg.max_gates {
            return;
        }
        self.gates_registered.insert(from, now);
        self.next_heartbeat.get_or_insert(now);
        if new {
            let msg = self.heartbeat_msg();
            out.push(JobOutput::Send { to: from, msg });
        }
    }

    /// What the DC looks like from here (AD-16's inputs): workers alive or suspected and
    /// of those the unsuspected, their slots, the free ones (the leader's count), and the
    /// workflows waiting for a slot.
    fn load(&self) -> DcLoad {
        let sat16 = |n: usize| n.min(u16::MAX as usize) as u16;
        let queue_depth = if self.leading.is_some() {
            self.jobs
                .values()
                .filter(|j| j.status == Status::Running)
                .map(|j| j.life.count_in(WorkflowState::Pending))
                .sum()
        } else {
            0
        };
        DcLoad {
            workers: sat16(self.workers.len()),
            healthy_workers: sat16(self.workers.values().filter(|w| !w.suspected).count()),
            total_cores: self.workers.values().map(|w| w.slots as u32).sum(),
            available_cores: self.workers.values().map(|w| w.free_slots as u32).sum(),
            queue_depth,
        }
    }

    fn heartbeat_msg(&self) -> JobMsg {
        let signal = crate::backpressure::stats::Signal::of(self.level);
        JobMsg::ManagerHeartbeat {
            dc: self.dc,
            level: signal.level,
            delay_ms: signal.suggested_delay_ms,
            jobs: self.jobs.len() as u32,
            leader: self.leading.is_some(),
            load: self.load(),
        }
    }

    /// Every 5 s, to the gates registered with us and (leading) the gates of our jobs:
    /// load, health inputs and backpressure level.
    fn heartbeat(&mut self, now: Instant, out: &mut JobOutputs) {
        let ttl = self.cfg.gate_ttl;
        self.gates_registered
            .retain(|_, at| now.saturating_since(*at) < ttl);
        if !self.has_gates_to_tell() || self.next_heartbeat.is_some_and(|t| t > now) {
            return;
        }
        self.next_heartbeat = Some(now + self.cfg.heartbeat_interval);
        let mut gates: SmallVec<[Addr; 4]> = self.gates_registered.keys().copied().collect();
        if self.leading.is_some() {
            gates.extend(self.jobs.values().map(|j| j.gate_addr));
        }
        gates.sort_unstable();
        gates.dedup();
        let msg = self.heartbeat_msg();
        for to in gates {
            out.push(JobOutput::Send { to, msg });
        }
    }

    /// The stats buffer's fill now (for reports).
    pub fn buffer_fill(&self) -> f64 {
        self.stats.fill()
    }

    /// Entries the full buffer overwrote (backpressure off only).
    pub fn buffer_overwritten(&self) -> u64 {
        self.stats.overwritten
    }

    fn worker_at(&self, addr: Addr) -> Option<NodeId> {
        self.workers
            .iter()
            .find(|(_, w)| w.addr == addr)
            .map(|(n, _)| *n)
    }

    /// A worker's result for `workflow` (from `worker`, if we know it).
    fn workflow_done(
        &mut self,
        job: JobId,
        workflow: WorkflowIndex,
        worker: Option<NodeId>,
        items: u64,
        now: Instant,
        out: &mut JobOutputs,
    ) {
        let dc = self.dc;
        let Some(j) = self.jobs.get_mut(&job) else {
            return;
        };
        if workflow as usize >= j.dispatch.len() {
            return;
        }
        match (j.status, j.life.state(workflow)) {
            // A result still counts whatever we last thought (a late one after the
            // dispatch was taken back, say): walk the legal edges to Completed.
            (Status::Running, s) if !s.is_terminal() && s != WorkflowState::Cancelling => {
                let path: &[WorkflowState] = match s {
                    WorkflowState::Pending => &[
                        WorkflowState::Dispatched,
                        WorkflowState::Running,
                        WorkflowState::Completed,
                    ],
                    WorkflowState::Dispatched => {
                        &[WorkflowState::Running, WorkflowState::Completed]
                    }
                    _ => &[WorkflowState::Completed],
                };
                for to in path {
                    step_wf(j, workflow, *to, TransitionReason::Finished, now, out);
                }
                j.dispatch[workflow as usize] = None;
                j.items += items;
                if let Some(w) = worker {
                    j.release(w);
                }
                let msg = JobMsg::ReplicaDone {
                    job,
                    workflow,
                    items,
                };
                for (_, addr) in &self.peers {
                    out.push(JobOutput::Send { to: *addr, msg });
                }
                if j.all_completed() {
                    // Done: stop tracking the timeout; report until acknowledged.
                    j.status = Status::Completed;
                    j.report_next = Some(now + self.cfg.retry);
                    let msg = report_of(dc, self.me, job, j.ending().expect("completed"));
                    out.push(JobOutput::Send {
                        to: j.gate_addr,
                        msg,
                    });
                }
            }
            // It ended while we were cancelling it.
            (Status::TimedOut | Status::Withdrawn, WorkflowState::Cancelling) => {
                cancelled(j, workflow, now, out);
                self.forget_if_settled(job, now, out);
            }
            _ => {}
        }
    }

    /// The timeout action (jobs.md §4.6): status timeout, pending workflows out of the
    /// queue, cancels to the workers of running ones, the gate told (until it
    /// acknowledges), tracking stopped. At most once per job: a job that ended is skipped.
    fn time_out(
        &mut self,
        job: JobId,
        reason: TimeoutReason,
        by: TimeoutBy,
        now: Instant,
        out: &mut JobOutputs,
    ) {
        let dc = self.dc;
        let Some(j) = self.jobs.get_mut(&job) else {
            return;
        };
        if j.status != Status::Running {
            return;
        }
        j.status = Status::TimedOut;
        j.timeout.reason = Some(reason);
        cancel_unfinished(j, &self.workers, now, out);
        j.ext_workers.clear();
        j.report_next = Some(now + self.cfg.retry);
        out.push(JobOutput::Event(JobEvent::TimedOut {
            job,
            dc,
            by,
            reason,
        }));
        let gate = j.gate_addr;
        out.push(JobOutput::Send {
            to: gate,
            msg: report_of(
                self.dc,
                self.me,
                job,
                self.jobs[&job].ending().expect("timed out"),
            ),
        });
        // The others learn at once that it is over (a new leader must not time it out
        // again).
        let msg = self.replicate_msg(job, &self.jobs[&job], now);
        self.to_peers(msg, out);
    }

    /// Forget a job that ended once the gate has its final report and no cancel is
    /// outstanding.
    fn forget_if_settled(&mut self, job: JobId, now: Instant, out: &mut JobOutputs) {
        let settled = self.jobs.get(&job).is_some_and(|j| {
            j.final_acked
                && j.status != Status::Running
                && j.life.count_in(WorkflowState::Cancelling) == 0
        });
        if settled {
            let j = self.jobs.remove(&job).expect("settled");
            self.issuer.forget(job);
            if let Some(call) = self.silence.forget_job(job) {
                layer_call(call, 0, out);
            }
            self.gates.forget_job(job);
            out.push(JobOutput::Event(JobEvent::Forgotten { job }));
            let t = j.ending().expect("settled jobs have ended");
            self.lay_tombstone(job, t, now);
            self.to_peers(replica_forget(job, t), out);
        }
    }

    /// As the leader, end a job we have no record of (no job, no tombstone) for the gate
    /// at `from`: a `Cancelled` tombstone, so that a late submission does not start it,
    /// the report that the DC never ran it, and the tombstone to the followers (who drop
    /// any replica of it: the job is over here).
    fn never_had(&mut self, from: Addr, job: JobId, now: Instant, out: &mut JobOutputs) {
        let t = Tombstone {
            status: DcStatus::Cancelled,
            token: FenceToken::default(),
            fence: Default::default(),
            items: 0,
        };
        self.lay_tombstone(job, t, now);
        out.push(JobOutput::Send {
            to: from,
            msg: report_of(self.dc, self.me, job, t),
        });
        self.to_peers(replica_forget(job, t), out);
    }

    /// The job's gate fell back from this DC (our acceptance never reached it): stop the
    /// job and report it `Cancelled` until the gate acknowledges (it ignores our result
    /// but acknowledges it, `gate::dc_final`), then forget it. The leader acts on a
    /// running job, for the gate token it runs under or a newer one (a withdrawal from a
    /// gate the job has since moved away from is stale); a follower drops its replica
    /// for a `Cancelled` tombstone. The gate asks again until it hears how the job ended
    /// here, so the leader answers a job that has ended with its tombstone, and one it
    /// never had (its submission lost, or still on its way) with a `Cancelled`
    /// tombstone of its own: a submission arriving later gets that, not a run.
    fn withdraw(
        &mut self,
        from: Addr,
        job: JobId,
        gate_token: FenceToken,
        now: Instant,
        out: &mut JobOutputs,
    ) {
        if self.leading.is_none() {
            // A follower's replica learns it too, so that a manager leading next does
            // not take the job over again (the gate withdraws once, from every manager
            // it knows in the DC). Its tombstone answers a late takeover as above.
            let stale = |r: &Replica| gate_token < r.gate_token;
            if self.replicas.get(&job).is_none_or(stale) {
                return;
            }
            if let Some(r) = self.replicas.remove(&job) {
                let t = Tombstone {
                    status: DcStatus::Cancelled,
                    token: r.token,
                    fence: r.timeout.fence,
                    items: r.items,
                };
                self.lay_tombstone(job, t, now);
                out.push(JobOutput::Event(JobEvent::Forgotten { job }));
            }
            return;
        }
        if let Some(t) = self.tombstones.get(&job).copied() {
            out.push(JobOutput::Send {
                to: from,
                msg: report_of(self.dc, self.me, job, t),
            });
            return;
        }
        let current = self.gates.token(FenceDomain::GateJob, job);
        if current.is_some_and(|t| gate_token < t) {
            return;
        }
        if !self.jobs.contains_key(&job) {
            self.never_had(from, job, now, out);
            return;
        }
        let (dc, me, retry) = (self.dc, self.me, self.cfg.retry);
        // How the copy ends goes to the gate that asks, from now on: a gate carrying on
        // the withdrawal of one that died (`JobMsg::GateWithdrawing`) is not the gate the
        // job came from, and that one would never acknowledge it.
        let j = self.jobs.get_mut(&job).expect("listed above");
        j.gate_addr = from;
        if j.status != Status::Running {
            // It ended here before the withdrawal came (its report lost, or sent to a
            // gate that has died): the report answers it, now, unless acknowledged.
            if let (false, Some(t)) = (j.final_acked, j.ending()) {
                out.push(JobOutput::Send {
                    to: from,
                    msg: report_of(dc, me, job, t),
                });
            }
            return;
        }
        let Some(j) = self.stop_running(job, Status::Withdrawn, now, out) else {
            return;
        };
        j.report_next = Some(now + retry);
        let t = j.ending().expect("withdrawn");
        out.push(JobOutput::Event(JobEvent::Withdrawn { job, dc }));
        out.push(JobOutput::Send {
            to: j.gate_addr,
            msg: report_of(dc, me, job, t),
        });
        // The gate ignores our result (it fell back from this DC), so the followers
        // need not wait for its acknowledgement to drop their replicas: told now, a
        // manager leading next does not run the job again even if the gate's own
        // withdrawal missed it.
        self.to_peers(replica_forget(job, t), out);
    }

    /// End `job` as `status` if it still runs, not by its own course: no hold, no
    /// extensions, every unfinished workflow cancelled (`cancel_unfinished`). `None` if
    /// it is not ours or has ended already.
    fn stop_running(
        &mut self,
        job: JobId,
        status: Status,
        now: Instant,
        out: &mut JobOutputs,
    ) -> Option<&mut Job> {
        let j = self.jobs.get_mut(&job)?;
        if j.status != Status::Running {
            return None;
        }
        j.status = status;
        j.hold_until = None;
        j.ext_workers.clear();
        cancel_unfinished(j, &self.workers, now, out);
        Some(j)
    }

    /// A peer's tombstone `t` for `job`, which we lead: the job ended in this DC while
    /// our replica of it missed the end (we were cut off when it was forgotten), and our
    /// takeover revived it. It must not run, report or time out a second time (the
    /// module doc's tombstone rule, applied to a takeover as to a gate's late claim): it
    /// takes the tombstone's end, what we dispatched since is cancelled like a timed-out
    /// job's, and it is forgotten once the cancels are confirmed. The gate is not told:
    /// the tombstone exists because the gate acknowledged the job's final report. A job
    /// that ended under us as well keeps its own end.
    fn superseded(&mut self, job: JobId, t: Tombstone, now: Instant, out: &mut JobOutputs) {
        let dc = self.dc;
        let status = match t.status {
            DcStatus::Completed => Status::Completed,
            DcStatus::Cancelled => Status::Withdrawn,
            _ => Status::TimedOut,
        };
        let Some(j) = self.stop_running(job, status, now, out) else {
            return;
        };
        j.items = t.items;
        j.final_acked = true;
        j.report_next = None;
        out.push(JobOutput::Event(JobEvent::TakeoverSuperseded {
            job,
            dc,
            status: t.status,
        }));
        self.forget_if_settled(job, now, out);
    }

    /// The job's gate says `job` ended (`JobMsg::JobOver`, its answer to the
    /// `LeaderTransfer` of our takeover): the replica we adopted missed the job's end in
    /// this DC, and the managers that kept its tombstone are out of our reach (we
    /// restarted without it and were offered the stale replica, say). The gate's word
    /// stands for the tombstone we lack: the job stops as `superseded` by a `Cancelled`
    /// end (how it ended here the gate no longer knows, and its outcome is recorded
    /// already), before `takeover_grace` lets anything be dispatched again when the
    /// gate answers in time. Only from the gate the job names or one registered with us
    /// (asked when its own gate may be gone), and only while we lead it: a job that
    /// ended under us keeps its own end.
    fn job_over(&mut self, from: Addr, job: JobId, now: Instant, out: &mut JobOutputs) {
        let Some(j) = self.jobs.get(&job) else {
            return;
        };
        let a_gate = j.gate_addr == from || self.gates_registered.contains_key(&from);
        if self.leading.is_none() || !a_gate {
            return;
        }
        let t = Tombstone {
            status: DcStatus::Cancelled,
            token: j.token,
            fence: j.timeout.fence,
            items: j.items,
        };
        self.superseded(job, t, now, out);
    }

    /// The job's gate at `from` says `job` still runs (`JobLive`, or its `Submit` again):
    /// an adopted job may dispatch what nobody runs once the takeover grace is over.
    fn confirmed(&mut self, job: JobId, from: Addr, now: Instant, out: &mut JobOutputs) {
        let Some(j) = self.jobs.get_mut(&job) else {
            return;
        };
        if j.gate_addr != from || j.unconfirmed.take().is_none() {
            return;
        }
        // (The wait, a round trip to the gate, is not excused: a job stalled before
        // the takeover stays as stuck as it was.)
        self.dispatch(now, out);
    }

    /// AD-26: our DC membership last heard from `worker` directly at `at` (told with
    /// each of its extension requests): see `timeout::extension`'s liveness refill.
    pub fn worker_heard(&mut self, worker: NodeId, at: Instant) {
        if let Some(wk) = self.workers.get_mut(&worker) {
            wk.ext.heard(at);
        }
    }

    /// We dropped a worker's message unread (AD-22 load shedding), or asked it to wait
    /// until `until` (AD-24): no pair's silence counts from before `until`.
    pub fn excuse_silence(&mut self, until: Instant) {
        self.silence.excuse(until);
    }

    /// No worker's silence counts from before this instant (the last excuse).
    #[cfg(test)]
    pub(crate) fn silence_excused_until(&self) -> Instant {
        self.silence.quiet_from()
    }

    /// AD-30's job layer: a worker's word about a job, as the silence watch hears it. A
    /// progress report starts watching the pair; any word refreshes it and refutes a
    /// suspicion or death mark we raised.
    fn worker_word(&mut self, from: Addr, msg: &JobMsg, now: Instant, out: &mut JobOutputs) {
        if self.leading.is_none() {
            return;
        }
        // A cancel confirmation is no word about the job's progress: it answers our
        // cancel, which a worker stuck on the job's workflow may still do.
        let (job, workflow, progress) = match *msg {
            JobMsg::WorkflowProgress { job, workflow, .. } => (job, workflow, true),
            JobMsg::DispatchAck { job, workflow, .. }
            | JobMsg::WorkflowDone { job, workflow, .. } => (job, workflow, false),
            _ => return,
        };
        // Only about a workflow of ours it was given (a stray report starts nothing):
        // the worker the workflow went to, if the message comes from its address.
        let Some(worker) = self
            .jobs
            .get(&job)
            .and_then(|j| j.dispatch.get(workflow as usize).copied().flatten())
            .map(|d| d.worker)
            .filter(|w| self.workers.get(w).is_some_and(|wk| wk.addr == from))
        else {
            return;
        };
        let call = if progress {
            self.silence.progress(job, worker, now)
        } else {
            self.silence.heard(job, worker, now)
        };
        if let Some(call) = call {
            layer_call(call, 0, out);
        }
    }

    /// The pairs silent for the threshold are suspected for their job (leader).
    fn silence_check(&mut self, now: Instant, out: &mut JobOutputs) {
        if self.leading.is_none() || self.silence.next_deadline().is_none_or(|t| t > now) {
            return;
        }
        if self.level == Level::Reject {
            self.silence.excuse(now);
        }
        let mut calls = Vec::new();
        let jobs = &self.jobs;
        self.silence.check(
            now,
            |job, worker| jobs.get(&job).is_some_and(|j| j.runs_on(worker)),
            &mut calls,
        );
        for call in calls {
            let size = match call {
                Call::Suspect { job, .. } => self.jobs.get(&job).map_or(0, job_size),
                _ => 0,
            };
            layer_call(call, size, out);
        }
    }

    /// The job layer declared `worker` dead for `job`: take the job's workflows back
    /// from it, cancel them there, and give them to others. A verdict on a pair we no
    /// longer suspect (it spoke since, or we stepped aside) is refuted instead.
    fn worker_failed_job(
        &mut self,
        job: JobId,
        worker: NodeId,
        now: Instant,
        out: &mut JobOutputs,
    ) {
        if self.leading.is_none() || !self.silence.died(job, worker) {
            layer_call(Call::Refute { job, worker }, 0, out);
            return;
        }
        // A worker we no longer know has had its workflows taken back already.
        let Some(addr) = self.workers.get(&worker).map(|w| w.addr) else {
            return;
        };
        let Some(j) = self.jobs.get_mut(&job) else {
            return;
        };
        let taken = take_back(
            j,
            worker,
            TransitionReason::WorkerFailed,
            Some(addr),
            now,
            out,
        );
        out.push(JobOutput::Event(JobEvent::WorkerFailedJob {
            job,
            worker,
            workflows: taken.workflows,
        }));
        self.dispatch(now, out);
    }

    /// `worker` is gone or evicted: the silence watch drops its pairs.
    fn forget_worker_pairs(&mut self, worker: NodeId, out: &mut JobOutputs) {
        if self.silence.is_empty() {
            return;
        }
        let mut calls = Vec::new();
        self.silence.forget_worker(worker, &mut calls);
        for call in calls {
            layer_call(call, 0, out);
        }
    }

    /// An evicted worker (jobs.md §2): its workflows are taken back and cancelled on it.
    fn evict(&mut self, node: NodeId, now: Instant, out: &mut JobOutputs) {
        let Some(wk) = self.workers.get_mut(&node) else {
            return;
        };
        wk.ext.reset();
        wk.free_slots = 0; // until it says again what it can take
        let addr = wk.addr;
        out.push(JobOutput::Event(JobEvent::WorkerEvicted { worker: node }));
        self.forget_worker_pairs(node, out);
        self.reclaim(node, TransitionReason::WorkerFailed, Some(addr), now, out);
        self.dispatch(now, out);
    }

    fn replicate_msg(&self, job: JobId, j: &Job, now: Instant) -> JobMsg {
        JobMsg::Replicate {
            job,
            workflows: j.life.len() as u32,
            gate: j.gate,
            gate_addr: j.gate_addr,
            gate_token: self
                .gates
                .token(FenceDomain::GateJob, job)
                .unwrap_or_default(),
            token: j.token,
            timeout: j.timeout.to_wire(now),
            items: j.items,
        }
    }

    /// The leader's timeout duties at `now` (jobs.md §4.4): the 30 s check, the 10 s
    /// progress reports of gate-coordinated jobs, and evicting workers whose grace ran out.
    fn timeouts(&mut self, now: Instant, out: &mut JobOutputs) {
        if self.leading.is_none() {
            return;
        }
        let dc = self.dc;
        let me = self.me;
        let tcfg = self.cfg.timeout.clone();
        if self.next_check.is_some_and(|t| t <= now) {
            self.next_check = Some(now + tcfg.check_interval);
            let ids: Vec<JobId> = self.jobs.keys().copied().collect();
            for job in ids {
                let j = self.jobs.get_mut(&job).expect("listed");
                if j.unconfirmed.is_some() && j.timeout.reason.is_none() {
                    // Waiting for its gate's word: neither overdue nor stuck until
                    // then (the gate may know it completed). A timeout already reported
                    // goes on (resent, then AD-34's fallback if the gate never answers).
                    continue;
                }
                let terminal = j.status != Status::Running;
                let elapsed_ms = now.saturating_since(j.timeout.started_at).as_millis() as u64;
                match j.timeout.check(&tcfg, terminal, now) {
                    Check::Nothing => {}
                    Check::TimeOut { reason, by } => self.time_out(job, reason, by, now, out),
                    check @ (Check::Report { reason } | Check::Resend { reason }) => {
                        let fence = j.timeout.fence;
                        let gate = j.gate_addr;
                        out.push(JobOutput::Send {
                            to: gate,
                            msg: JobMsg::TimeoutReport {
                                job,
                                dc,
                                manager: me,
                                reason,
                                elapsed_ms,
                                fence,
                            },
                        });
                        if matches!(check, Check::Report { .. }) {
                            out.push(JobOutput::Event(JobEvent::TimeoutReported {
                                job,
                                dc,
                                reason,
                            }));
                            // The report is part of the replicated state: a new leader
                            // re-sends it instead of deciding again.
                            let msg = self.replicate_msg(job, &self.jobs[&job], now);
                            self.to_peers(msg, out);
                        }
                    }
                }
            }
        }
        for (&job, j) in self.jobs.iter_mut() {
            let terminal = j.status != Status::Running;
            if let Some(recent) = j.timeout.progress_report(&tcfg, terminal, now) {
                let completed = j.life.count_in(WorkflowState::Completed);
                let t = &j.timeout;
                out.push(JobOutput::Send {
                    to: j.gate_addr,
                    msg: JobMsg::ProgressReport {
                        job,
                        dc,
                        manager: me,
                        report: ProgressReport {
                            workflows_total: j.life.len() as u32,
                            workflows_completed: completed,
                            workflows_failed: 0,
                            has_recent_progress: recent,
                            fence: t.fence,
                            total_extensions_us: t.total_extensions.as_micros() as u64,
                            max_worker_extension_us: t.max_worker_extension.as_micros() as u64,
                            workers_with_extensions: j.ext_workers.len() as u32,
                        },
                    },
                });
            }
        }
        if self.grace_due.is_some_and(|t| t <= now) {
            let ecfg = &self.cfg.extension;
            let evict: Vec<NodeId> = self
                .workers
                .iter()
                .filter(|(_, w)| w.ext.should_evict(ecfg, now))
                .map(|(n, _)| *n)
                .collect();
            for node in evict {
                self.evict(node, now, out);
            }
            let ecfg = &self.cfg.extension;
            self.grace_due = self
                .workers
                .values()
                .filter_map(|w| w.ext.grace_ends_at(ecfg))
                .min();
        }
    }

    fn tick(&mut self, now: Instant, out: &mut JobOutputs) {
        self.stats.tick(now);
        self.level_changed(now, out);
        self.heartbeat(now, out);
        while let Some(&(at, job)) = self.tombstone_queue.front() {
            if now < at + self.cfg.tombstone_ttl {
                break;
            }
            self.tombstone_queue.pop_front();
            self.tombstones.remove(&job);
        }
        if self.next_refresh.is_some_and(|t| t <= now) {
            self.next_refresh = Some(now + self.cfg.replica_refresh);
            let announce: Vec<JobMsg> = self
                .jobs
                .iter()
                .map(|(job, j)| self.replicate_msg(*job, j, now))
                .collect();
            for msg in announce {
                self.to_peers(msg, out);
            }
        }
        if self.next_replica_upkeep.is_some_and(|t| t <= now) {
            self.replica_upkeep(now, out);
        }
        if let (Some(term), Some(t)) = (self.leading, self.next_hello) {
            if t <= now {
                self.next_hello = Some(now + self.cfg.hello_interval);
                for w in self.workers.values() {
                    out.push(JobOutput::Send {
                        to: w.addr,
                        msg: JobMsg::LeaderHello { term },
                    });
                }
            }
        }
        let timeout = self.cfg.dispatch_timeout;
        let scan = self.dispatch_due.is_some_and(|t| t <= now);
        if scan {
            self.dispatch_due = None;
        }
        let ids: Vec<JobId> = self.jobs.keys().copied().collect();
        let mut abandoned = Vec::new();
        for job in ids {
            let j = self.jobs.get_mut(&job).expect("listed");
            if let Some(u) = j.unconfirmed.as_mut() {
                if j.status != Status::Running || now >= u.give_up {
                    // Ended, or no gate could answer (`confirm_give_up`): the wait,
                    // ours, does not count as the job being stuck.
                    j.unconfirmed = None;
                    j.timeout.report_progress(now);
                } else if now >= u.ask_next {
                    u.every = (u.every * 2).min(MAX_CONFIRM_EVERY);
                    u.ask_next = now + u.every;
                    // Its gate first; the gates registered with us too, since its gate
                    // may be gone: any gate the end reached (its owner tells the others)
                    // answers `JobOver`, and a gate that took the job over re-sends it.
                    let msg = leader_transfer(job, self.dc, self.me, j.timeout.fence);
                    let others = self.gates_registered.keys().filter(|a| **a != j.gate_addr);
                    for to in core::iter::once(&j.gate_addr).chain(others) {
                        out.push(JobOutput::Send { to: *to, msg });
                    }
                }
            }
            if scan {
                for i in 0..j.life.len() as WorkflowIndex {
                    if j.life.state(i) != WorkflowState::Dispatched {
                        continue;
                    }
                    let Some(d) = j.dispatch[i as usize] else {
                        continue;
                    };
                    let due = d.at + timeout;
                    if due <= now {
                        // No answer: the dispatch was lost.
                        recover_wf(j, i, TransitionReason::DispatchLost, now, out);
                        j.release(d.worker);
                    } else {
                        self.dispatch_due = Some(self.dispatch_due.map_or(due, |x| x.min(due)));
                    }
                }
            }
            if j.report_next.is_some_and(|t| t <= now) {
                j.report_next = Some(now + self.cfg.retry);
                if let (false, Some(t)) = (j.final_acked, j.ending()) {
                    // Unanswered for `report_give_up`: the gate died with no gate
                    // taking the job over (a takeover re-points us), or the job came
                    // back here from a stale replica after its gate had finished it
                    // (`gate-failover` seed 26 of session 19's scan, resent to a dead
                    // gate for ever). Forgotten into its tombstone like an
                    // acknowledged one, after the cancels.
                    let since = *j.unacked_since.get_or_insert(now);
                    if now.saturating_since(since) >= self.cfg.report_give_up {
                        j.final_acked = true;
                        abandoned.push(job);
                        out.push(JobOutput::Event(JobEvent::FinalReportAbandoned {
                            job,
                            dc: self.dc,
                        }));
                    } else {
                        out.push(JobOutput::Send {
                            to: j.gate_addr,
                            msg: report_of(self.dc, self.me, job, t),
                        });
                    }
                }
                for i in j.life.workflows_in(WorkflowState::Cancelling) {
                    if let Some(w) =
                        j.dispatch[i as usize].and_then(|d| self.workers.get(&d.worker))
                    {
                        out.push(JobOutput::Send {
                            to: w.addr,
                            msg: JobMsg::CancelWorkflow { job, workflow: i },
                        });
                    }
                }
            }
        }
        for job in abandoned {
            self.forget_if_settled(job, now, out);
        }
        self.timeouts(now, out);
        self.silence_check(now, out);
        self.dispatch(now, out);
    }

    /// A replica the leader has not refreshed for this long since it began to lead is
    /// offered to it: two of its refreshes missed.
    fn offer_after(&self) -> Duration {
        (2 * self.cfg.replica_refresh).min(self.cfg.replica_ttl)
    }

    /// Followers: drop the replicas nobody refreshed for `replica_ttl`, and offer the
    /// leader those it does not refresh (it may have restarted, or taken over without
    /// them), from `offer_after` after it began to lead.
    ///
    /// Expiry stays 95 s after the last refresh, leader or not. Keeping replicas through
    /// a DC with no leader (so that whoever wins later finds them) was tried: a
    /// follower cut off while its job ended then kept the replica that missed the end,
    /// and offered it to a leader that had restarted without the job's tombstone, which
    /// ran the job's timeout action on a completed job (`leader-failover-mid-job`,
    /// `--chaos 6`, seed 160003). A DC that regains a leader only after its replicas
    /// expired gets its jobs back from their gates (`GateJobs::reclaim`), run again.
    fn replica_upkeep(&mut self, now: Instant, out: &mut JobOutputs) {
        let ttl = self.cfg.replica_ttl;
        let offer_after = self.offer_after();
        let retry = self.cfg.replica_refresh;
        let leader = match (self.leader, self.leader_since) {
            (Some((node, addr)), Some((_, since))) if node != self.me => Some((addr, since)),
            _ => None,
        };
        let mut next: Option<Instant> = None;
        let mut expired: SmallVec<[JobId; 4]> = SmallVec::new();
        for (job, r) in self.replicas.iter_mut() {
            let expires = r.refreshed_at + ttl;
            if now >= expires {
                expired.push(*job);
                continue;
            }
            let Some((addr, since)) = leader else {
                next = Some(next.map_or(expires, |t| t.min(expires)));
                continue;
            };
            let window = r.refreshed_at.max(since);
            let offer_at = (window + offer_after).max(r.offered_at.map_or(window, |t| t + retry));
            let due = if now >= offer_at {
                r.offered_at = Some(now);
                out.push(JobOutput::Send {
                    to: addr,
                    msg: JobMsg::ReplicaOffer {
                        job: *job,
                        workflows: r.workflows,
                        gate: r.gate,
                        gate_addr: r.gate_addr,
                        gate_token: r.gate_token,
                        token: r.token,
                        timeout: r.timeout.to_wire(now),
                        items: r.items,
                    },
                });
                now + retry
            } else {
                offer_at
            };
            let due = due.min(expires);
            next = Some(next.map_or(due, |t| t.min(due)));
        }
        for job in expired {
            self.replicas.remove(&job);
            out.push(JobOutput::Event(JobEvent::Forgotten { job }));
        }
        self.next_replica_upkeep = next;
    }

    fn to_peers(&self, msg: JobMsg, out: &mut JobOutputs) {
        for (_, addr) in &self.peers {
            out.push(JobOutput::Send { to: *addr, msg });
        }
    }

    /// We now lead: adopt every replicated job under the next token of our term, and
    /// give the workers `takeover_grace` to say what they run before dispatching. Each
    /// adopted job's timeout resumes under the next timeout fence (jobs.md §4.7); its
    /// gate hears who leads it now, and a timeout report still unanswered goes again.
    fn take_over(&mut self, term: u64, now: Instant, out: &mut JobOutputs) {
        let replicas = core::mem::take(&mut self.replicas);
        for (job, r) in replicas {
            self.adopt(job, r, term, now, out);
        }
    }

    /// Lead the job `r` is a replica of, under the next token of our term (false: we
    /// have it already, it ended here, or its tokens are stale).
    fn adopt(
        &mut self,
        job: JobId,
        r: Replica,
        term: u64,
        now: Instant,
        out: &mut JobOutputs,
    ) -> bool {
        if self.jobs.contains_key(&job) || self.tombstones.contains_key(&job) {
            return false;
        }
        let Ok(token) = self.issuer.next(job, term, Some(r.token)) else {
            return false;
        };
        if self
            .gates
            .claim(FenceDomain::GateJob, job, r.gate_token, r.gate)
            .is_err()
        {
            return false;
        }
        let mut timeout = r.timeout.clone();
        timeout.resume();
        let ended = timeout.acted();
        let mut j = Job::new(
            job,
            self.dc,
            r.gate,
            r.gate_addr,
            r.workflows,
            token,
            timeout,
            self.cfg.history_cap,
        );
        j.items = r.items;
        for i in 0..r.workflows {
            if r.done.contains(&i) {
                j.life.restore(i, WorkflowState::Completed);
            } else if ended {
                // Its predecessor timed it out: what still runs is stopped as the
                // workers report it (`Running` gets a cancel back).
                j.life.restore(i, WorkflowState::Cancelled);
            }
        }
        if ended {
            j.status = Status::TimedOut;
            j.report_next = Some(now);
            j.unacked_since = r.unanswered_since;
        } else if j.all_completed() {
            j.status = Status::Completed;
            j.report_next = Some(now);
            j.unacked_since = r.unanswered_since;
        } else {
            j.hold_until = Some(now + self.cfg.takeover_grace);
            j.unconfirmed = Some(Unconfirmed {
                ask_next: now + self.cfg.retry,
                every: self.cfg.retry,
                give_up: now + self.cfg.confirm_give_up,
            });
            // Every strategy's gate hears it: the gate tracks a gate-coordinated job's
            // timeout with it, and answers `JobLive`, or `JobOver` for a job that has
            // ended (our replica missed the end).
            out.push(JobOutput::Send {
                to: r.gate_addr,
                msg: leader_transfer(job, self.dc, self.me, j.timeout.fence),
            });
        }
        let t = &j.timeout;
        if t.strategy == Strategy::GateCoordinated && j.status == Status::Running {
            if let (true, Some(reason)) = (t.report_pending, t.reason) {
                out.push(JobOutput::Send {
                    to: r.gate_addr,
                    msg: JobMsg::TimeoutReport {
                        job,
                        dc: self.dc,
                        manager: self.me,
                        reason,
                        elapsed_ms: now.saturating_since(t.started_at).as_millis() as u64,
                        fence: t.fence,
                    },
                });
            }
        }
        out.push(JobOutput::Event(JobEvent::TakenOver {
            job,
            dc: self.dc,
            token,
        }));
        // The others keep it as a replica of ours now.
        let msg = self.replicate_msg(job, &j, now);
        self.jobs.insert(job, j);
        self.to_peers(msg, out);
        for i in r.done.iter() {
            // (The items travel in the Replicate above.)
            self.to_peers(
                JobMsg::ReplicaDone {
                    job,
                    workflow: *i,
                    items: 0,
                },
                out,
            );
        }
        true
    }

    /// We no longer lead: our jobs become replicas (the new leader took them over, or
    /// will; should we lead again, we adopt them again). Losing leadership stops the
    /// checks and nothing else (jobs.md §4.7, Q8). A job its gate withdrew keeps its
    /// end as a `Cancelled` tombstone instead: a replica would carry only the completed
    /// workflows, and leading again we would dispatch the cancelled ones once more
    /// (found by a chaos sweep: `jobs-basic.toml`, seed 80759, `--chaos 10`).
    ///
    /// Our replicas are as fresh as what we knew of the jobs: a leader stepped down for
    /// want of a majority knew them last when it last heard one (`knew_as_of`), not
    /// when it noticed. Dated `now`, a leader cut off at 63 s that noticed at 69 s kept
    /// a replica of a job that completed at 72 s until 164 s, and a leader restarted
    /// without tombstones adopted it at 161 s and timed the completed job out
    /// (`overload-burst`, `--chaos 6`, seed 281052). Dating it to the last majority
    /// narrows that window by the lease it takes to notice; it does not close it (a
    /// replica that missed its job's end can still be offered within the 95 s).
    fn step_aside(&mut self, now: Instant, knew_as_of: Instant, out: &mut JobOutputs) {
        let mut calls = Vec::new();
        self.silence.clear(&mut calls);
        for call in calls {
            layer_call(call, 0, out);
        }
        self.next_refresh = None;
        self.next_check = None;
        self.next_replica_upkeep = Some(now + self.offer_after());
        let jobs = core::mem::take(&mut self.jobs);
        for (job, j) in jobs {
            self.issuer.forget(job);
            if j.status == Status::Withdrawn {
                let t = j.ending().expect("withdrawn jobs have ended");
                self.lay_tombstone(job, t, now);
                self.gates.forget_job(job);
                out.push(JobOutput::Event(JobEvent::Forgotten { job }));
                continue;
            }
            let done = j.life.workflows_in(WorkflowState::Completed).collect();
            let gate_token = self
                .gates
                .token(FenceDomain::GateJob, job)
                .unwrap_or_default();
            self.replicas.insert(
                job,
                Replica {
                    workflows: j.life.len() as u32,
                    gate: j.gate,
                    gate_addr: j.gate_addr,
                    gate_token,
                    token: j.token,
                    done,
                    items: j.items,
                    refreshed_at: knew_as_of,
                    offered_at: None,
                    unanswered_since: j.ending().is_some().then(|| j.unacked_since.unwrap_or(now)),
                    timeout: j.timeout,
                },
            );
            self.gates.forget_job(job);
        }
        for w in self.workers.values_mut() {
            w.ext.reset();
        }
        self.grace_due = None;
    }

    /// While leading: each pending workflow to the worker with the most free slots
    /// (ties to the lowest id), each under a fresh token.
    fn dispatch(&mut self, now: Instant, out: &mut JobOutputs) {
        // Holds that ran out end here, whatever happens below (the loop may stop early
        // when no worker has room, and a past hold would make the deadline spin).
        for j in self.jobs.values_mut() {
            if j.hold_until.is_some_and(|t| t <= now) {
                j.hold_until = None;
            }
        }
        let Some(term) = self.leading else {
            return;
        };
        let me = self.me;
        let Some(my_addr) = self.leader.map(|(_, a)| a) else {
            return;
        };
        for (job, j) in self.jobs.iter_mut() {
            if j.hold_until.is_some() || j.unconfirmed.is_some() || j.status != Status::Running {
                continue;
            }
            for i in 0..j.life.len() as WorkflowIndex {
                if j.life.state(i) != WorkflowState::Pending {
                    continue;
                }
                // A worker the job layer found failing this job comes last (AD-30).
                let silence = &self.silence;
                let Some((&node, wk)) = self
                    .workers
                    .iter_mut()
                    .filter(|(_, w)| w.free_slots > 0)
                    .max_by_key(|(id, w)| {
                        (
                            !silence.is_dead(*job, **id),
                            w.free_slots,
                            core::cmp::Reverse(**id),
                        )
                    })
                else {
                    return;
                };
                let Ok(token) = self.issuer.next(*job, term, Some(j.token)) else {
                    continue;
                };
                j.token = token;
                wk.free_slots -= 1;
                step_wf(
                    j,
                    i,
                    WorkflowState::Dispatched,
                    TransitionReason::Dispatched,
                    now,
                    out,
                );
                j.dispatch[i as usize] = Some(Dispatch {
                    worker: node,
                    token,
                    at: now,
                });
                if let Some(call) = self.silence.dispatched(*job, node, now) {
                    layer_call(call, 0, out);
                }
                let due = now + self.cfg.dispatch_timeout;
                self.dispatch_due = Some(self.dispatch_due.map_or(due, |d| d.min(due)));
                out.push(JobOutput::Send {
                    to: wk.addr,
                    msg: JobMsg::Dispatch {
                        job: *job,
                        workflow: i,
                        token,
                        manager: me,
                        manager_addr: my_addr,
                    },
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::FenceToken;
    use crate::time::millis;

    const ME: NodeId = NodeId(1);
    const GATE: Addr = Addr::from_u32(100);

    /// Worker `from` reports `workflow` of `job` done under `token`.
    fn workflow_done(
        from: u32,
        job: u64,
        workflow: WorkflowIndex,
        token: FenceToken,
        items: u64,
    ) -> ManagerInput {
        ManagerInput::Msg {
            from: Addr::from_u32(from),
            msg: JobMsg::WorkflowDone {
                job: JobId(job),
                workflow,
                token,
                items,
            },
        }
    }

    fn leader(term: u64) -> ManagerInput {
        ManagerInput::Leader {
            leader: Some((ME, Addr::from_u32(1))),
            term,
        }
    }

    fn submit(job: u64, workflows: u32) -> ManagerInput {
        ManagerInput::Msg {
            from: GATE,
            msg: JobMsg::Submit {
                job: JobId(job),
                workflows,
                gate: NodeId(100),
                gate_addr: GATE,
                gate_token: FenceToken::new(1, 1),
                timeout_ms: None,
                dcs: 1,
            },
        }
    }

    fn hello(worker: u32, free: u16) -> ManagerInput {
        ManagerInput::Msg {
            from: Addr::from_u32(worker),
            msg: JobMsg::WorkerHello {
                free_slots: free,
                slots: 4,
            },
        }
    }

    fn dispatches(out: &JobOutputs) -> Vec<(Addr, WorkflowIndex, FenceToken)> {
        out.iter()
            .filter_map(|o| match o {
                JobOutput::Send {
                    to,
                    msg:
                        JobMsg::Dispatch {
                            workflow, token, ..
                        },
                } => Some((*to, *workflow, *token)),
                _ => None,
            })
            .collect()
    }

    fn manager_with_workers() -> ManagerJobs {
        let t = Instant::ZERO;
        let mut m = ManagerJobs::new(
            ManagerConfig::default(),
            ME,
            DcId(0),
            vec![(ME, Addr::from_u32(1)), (NodeId(2), Addr::from_u32(2))],
        );
        for w in [10, 11] {
            m.step(
                ManagerInput::Worker {
                    node: NodeId(w),
                    addr: Addr::from_u32(w),
                    alive: true,
                    suspected: false,
                },
                t,
            );
        }
        m
    }

    fn progress(worker: u32, job: u64) -> ManagerInput {
        from_worker(
            worker,
            JobMsg::WorkflowProgress {
                job: JobId(job),
                workflow: 0,
                completed: 1,
                workflows: 1,
            },
        )
    }

    /// The leader's call to suspect worker 10 for job 7 (it alone runs the job).
    fn suspect_7_on_10() -> JobOutput {
        JobOutput::SuspectForJob {
            job: JobId(7),
            worker: NodeId(10),
            job_size: 1,
        }
    }

    fn layer_calls(out: &JobOutputs) -> Vec<JobOutput> {
        out.iter()
            .filter(|o| {
                matches!(
                    o,
                    JobOutput::SuspectForJob { .. }
                        | JobOutput::RefuteForJob { .. }
                        | JobOutput::ClearJob { .. }
                )
            })
            .cloned()
            .collect()
    }

    /// AD-30's job layer, the leader's side: worker 10 runs jobs 7 and 8, reports on
    /// both, then only on 8. 30 s after its last word about 7 it is suspected for 7
    /// (job size 1); the job layer's verdict takes job 7's workflow from it (cancelled
    /// there, given to worker 11) and leaves job 8's alone.
    #[test]
    fn a_worker_silent_about_one_job_is_suspected_and_loses_that_job_alone() {
        let t = Instant::ZERO;
        let mut m = manager_with_workers();
        m.step(leader(1), t);
        m.step(hello(10, 2), t);
        let mut token = BTreeMap::new();
        for job in [7, 8] {
            let out = m.step(submit(job, 1), t);
            let d = dispatches(&out);
            assert_eq!(d.len(), 1);
            assert_eq!(d[0].0, Addr::from_u32(10));
            token.insert(job, d[0].2);
            m.step(
                from_worker(
                    10,
                    JobMsg::DispatchAck {
                        job: JobId(job),
                        workflow: 0,
                        token: d[0].2,
                        accepted: true,
                    },
                ),
                t,
            );
        }
        m.step(hello(11, 2), t);
        m.step(progress(10, 7), t + secs(1));
        m.step(progress(10, 8), t + secs(1));
        for s in [10, 20, 30] {
            m.step(progress(10, 8), t + secs(s));
        }
        let out = m.step(ManagerInput::Tick, t + secs(31) - millis(1));
        assert!(layer_calls(&out).is_empty(), "not before 30 s of silence");
        let out = m.step(ManagerInput::Tick, t + secs(31));
        assert_eq!(layer_calls(&out), vec![suspect_7_on_10()]);
        let out = m.step(
            ManagerInput::WorkerFailedJob {
                job: JobId(7),
                worker: NodeId(10),
            },
            t + secs(46),
        );
        assert!(out.contains(&JobOutput::Send {
            to: Addr::from_u32(10),
            msg: JobMsg::CancelWorkflow {
                job: JobId(7),
                workflow: 0
            }
        }));
        assert!(!out.iter().any(|o| matches!(
            o,
            JobOutput::Send { msg: JobMsg::CancelWorkflow { job, .. }, .. } if *job == JobId(8)
        )));
        let d = dispatches(&out);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].0, Addr::from_u32(11), "to another worker");
        assert!(d[0].2 > token[&7], "under a newer token");
        assert!(out.contains(&JobOutput::Event(JobEvent::WorkerFailedJob {
            job: JobId(7),
            worker: NodeId(10),
            workflows: 1
        })));
        // A verdict we no longer stand by (already acted on) is refuted, not acted on.
        let out = m.step(
            ManagerInput::WorkerFailedJob {
                job: JobId(7),
                worker: NodeId(10),
            },
            t + secs(47),
        );
        assert_eq!(
            layer_calls(&out),
            vec![JobOutput::RefuteForJob {
                job: JobId(7),
                worker: NodeId(10)
            }]
        );
        assert!(dispatches(&out).is_empty());
    }

    /// Messages we shed, and our own REJECT level, excuse the silence they cause.
    #[test]
    fn silence_we_cause_is_excused() {
        let t = Instant::ZERO;
        let mut m = running_job(None, 1, 1);
        m.step(progress(10, 7), t + secs(1));
        m.excuse_silence(t + secs(20));
        let out = m.step(ManagerInput::Tick, t + secs(31));
        assert!(layer_calls(&out).is_empty());
        let out = m.step(ManagerInput::Tick, t + secs(50));
        assert_eq!(layer_calls(&out), vec![suspect_7_on_10()]);
    }

    /// A suspected worker that speaks about the job again is refuted; a leader that
    /// steps aside clears what it raised (a forgotten job's clearing is the simulator's
    /// `a_worker_stuck_on_one_job_loses_that_job_alone_and_the_job_completes`).
    #[test]
    fn a_word_refutes_and_forgetting_or_stepping_aside_clears() {
        let t = Instant::ZERO;
        let mut m = running_job(None, 1, 1);
        m.step(progress(10, 7), t + secs(1));
        let out = m.step(ManagerInput::Tick, t + secs(31));
        assert_eq!(layer_calls(&out).len(), 1);
        let out = m.step(progress(10, 7), t + secs(32));
        assert_eq!(
            layer_calls(&out),
            vec![JobOutput::RefuteForJob {
                job: JobId(7),
                worker: NodeId(10)
            }]
        );
        let out = m.step(
            ManagerInput::Leader {
                leader: Some((NodeId(2), Addr::from_u32(2))),
                term: 2,
            },
            t + secs(33),
        );
        assert_eq!(
            layer_calls(&out),
            vec![JobOutput::ClearJob { job: JobId(7) }]
        );
    }

    #[test]
    fn only_the_leader_accepts_and_followers_redirect() {
        let t = Instant::ZERO;
        let mut m = manager_with_workers();
        let other = (NodeId(2), Addr::from_u32(2));
        m.step(
            ManagerInput::Leader {
                leader: Some(other),
                term: 3,
            },
            t,
        );
        let out = m.step(submit(5, 2), t);
        assert_eq!(
            out.to_vec(),
            vec![JobOutput::Send {
                to: GATE,
                msg: JobMsg::SubmitAck {
                    job: JobId(5),
                    dc: DcId(0),
                    accepted: false,
                    leader: Some(other)
                }
            }]
        );
        assert_eq!(m.table_len(), 0);
    }

    #[test]
    fn workflows_go_to_free_slots_under_increasing_tokens() {
        let t = Instant::ZERO;
        let mut m = manager_with_workers();
        m.step(leader(3), t);
        m.step(hello(10, 2), t);
        m.step(hello(11, 1), t);
        let out = m.step(submit(5, 4), t);
        assert!(out.contains(&JobOutput::Event(JobEvent::Accepted {
            job: JobId(5),
            dc: DcId(0),
            token: FenceToken::new(3, 1)
        })));
        // Three free slots, four workflows: three dispatched, most-free worker first,
        // each under the next token of term 3.
        let d = dispatches(&out);
        assert_eq!(
            d,
            vec![
                (Addr::from_u32(10), 0, FenceToken::new(3, 2)),
                (Addr::from_u32(10), 1, FenceToken::new(3, 3)),
                (Addr::from_u32(11), 2, FenceToken::new(3, 4)),
            ]
        );
        // A worker's result frees a slot: the fourth goes out.
        let out = m.step(
            workflow_done(11, 5, 2, FenceToken::new(3, 4), 0),
            t + secs(5),
        );
        assert_eq!(
            dispatches(&out),
            vec![(Addr::from_u32(11), 3, FenceToken::new(3, 5))]
        );
    }

    #[test]
    fn a_dead_workers_workflows_are_dispatched_again_and_the_job_reports_once_done() {
        let t = Instant::ZERO;
        let mut m = manager_with_workers();
        m.step(leader(1), t);
        m.step(hello(10, 1), t);
        m.step(hello(11, 1), t);
        m.step(submit(9, 2), t);
        // Worker 10 dies with workflow 0: it goes to worker 11 once that has room.
        m.step(
            ManagerInput::Worker {
                node: NodeId(10),
                addr: Addr::from_u32(10),
                alive: false,
                suspected: false,
            },
            t + secs(1),
        );
        let done = |wf, token| workflow_done(11, 9, wf, token, 0);
        let out = m.step(done(1, FenceToken::new(1, 3)), t + secs(2));
        assert_eq!(
            dispatches(&out),
            vec![(Addr::from_u32(11), 0, FenceToken::new(1, 4))]
        );
        let out = m.step(done(0, FenceToken::new(1, 4)), t + secs(3));
        let report = JobMsg::JobDone {
            job: JobId(9),
            dc: DcId(0),
            token: FenceToken::new(1, 4),
            items: 0,
        };
        assert!(out.contains(&JobOutput::Send {
            to: GATE,
            msg: report
        }));
        // Resent until acknowledged, then everything about the job goes.
        let out = m.step(ManagerInput::Tick, t + secs(5));
        assert!(out.contains(&JobOutput::Send {
            to: GATE,
            msg: report
        }));
        let out = m.step(
            ManagerInput::Msg {
                from: GATE,
                msg: JobMsg::JobDoneAck {
                    job: JobId(9),
                    dc: DcId(0),
                },
            },
            t + secs(6),
        );
        assert!(out.contains(&JobOutput::Event(JobEvent::Forgotten { job: JobId(9) })));
        assert_eq!(m.table_len(), 0);
    }

    #[test]
    fn a_resent_submission_is_acknowledged_and_a_stale_one_refused() {
        let t = Instant::ZERO;
        let mut m = manager_with_workers();
        m.step(leader(1), t);
        m.step(submit(4, 1), t);
        let out = m.step(submit(4, 1), t);
        assert!(out.iter().any(|o| matches!(
            o,
            JobOutput::Send {
                msg: JobMsg::SubmitAck { accepted: true, .. },
                ..
            }
        )));
        assert_eq!(m.jobs.len(), 1);
        // A newer gate claim takes over; the older one is then stale.
        let newer = ManagerInput::Msg {
            from: GATE,
            msg: JobMsg::Submit {
                job: JobId(4),
                workflows: 1,
                gate: NodeId(101),
                gate_addr: Addr::from_u32(101),
                gate_token: FenceToken::new(2, 2),
                timeout_ms: None,
                dcs: 1,
            },
        };
        m.step(newer, t);
        let out = m.step(submit(4, 1), t);
        assert!(out.contains(&JobOutput::Event(JobEvent::StaleRejected {
            job: JobId(4),
            token: FenceToken::new(1, 1)
        })));
    }

    #[test]
    fn jobs_are_replicated_and_a_new_leader_takes_them_over() {
        let t = Instant::ZERO;
        let peer = Addr::from_u32(2);
        // The leader replicates what it accepts and what completes.
        let mut m = manager_with_workers();
        m.step(leader(1), t);
        let out = m.step(submit(9, 3), t);
        assert!(out.iter().any(|o| matches!(
            o,
            JobOutput::Send { to, msg: JobMsg::Replicate { job: JobId(9), workflows: 3, .. } }
                if *to == peer
        )));
        // A follower (node 1 here) holds a replica, then becomes leader in term 2.
        let mut f = manager_with_workers();
        f.step(
            ManagerInput::Leader {
                leader: Some((NodeId(2), peer)),
                term: 1,
            },
            t,
        );
        let from = |msg| ManagerInput::Msg { from: peer, msg };
        f.step(
            from(JobMsg::Replicate {
                job: JobId(9),
                workflows: 3,
                gate: NodeId(100),
                gate_addr: GATE,
                gate_token: FenceToken::new(1, 1),
                token: FenceToken::new(1, 3),
                timeout: JobTimeout::start(Strategy::LocalAuthority, None, t).to_wire(t),
                items: 0,
            }),
            t,
        );
        f.step(
            from(JobMsg::ReplicaDone {
                job: JobId(9),
                workflow: 0,
                items: 0,
            }),
            t,
        );
        assert!(f.has_job(JobId(9)));
        f.step(hello(10, 4), t);
        f.step(hello(11, 4), t);
        let out = f.step(leader(2), t + secs(10));
        // Taken over under the next token of term 2 (counter continues: 3 -> 4).
        assert!(out.contains(&JobOutput::Event(JobEvent::TakenOver {
            job: JobId(9),
            dc: DcId(0),
            token: FenceToken::new(2, 4)
        })));
        assert!(
            dispatches(&out).is_empty(),
            "waits for the workers' reports"
        );
        // Worker 10 still runs workflow 1 (dispatched by the old leader).
        f.step(
            ManagerInput::Msg {
                from: Addr::from_u32(10),
                msg: JobMsg::Running {
                    job: JobId(9),
                    workflow: 1,
                    token: FenceToken::new(1, 3),
                },
            },
            t + secs(11),
        );
        // After the 3 s grace nothing goes out until the job's gate says it runs
        // (asked at the takeover, and again 2 s later); then only workflow 2 (nobody
        // runs it) is dispatched.
        let out = f.step(ManagerInput::Tick, t + secs(13));
        assert!(dispatches(&out).is_empty());
        assert!(sends(&out)
            .any(|(to, msg)| to == GATE
                && matches!(msg, JobMsg::LeaderTransfer { job: JobId(9), .. })));
        let out = f.step(job_live(9), t + secs(13));
        assert_eq!(
            dispatches(&out),
            vec![(Addr::from_u32(10), 2, FenceToken::new(2, 5))]
        );
        // Both results come in: the job is reported to the gate under the new token.
        let done = |wf, token| workflow_done(10, 9, wf, token, 0);
        f.step(done(1, FenceToken::new(1, 3)), t + secs(14));
        let out = f.step(done(2, FenceToken::new(2, 5)), t + secs(15));
        assert!(out.contains(&JobOutput::Send {
            to: GATE,
            msg: JobMsg::JobDone {
                job: JobId(9),
                dc: DcId(0),
                token: FenceToken::new(2, 5),
                items: 0
            }
        }));
    }

    /// The job's gate says `job` still runs in DC 0 (its answer to a `LeaderTransfer`).
    fn job_live(job: u64) -> ManagerInput {
        ManagerInput::Msg {
            from: GATE,
            msg: JobMsg::JobLive {
                job: JobId(job),
                dc: DcId(0),
            },
        }
    }

    /// The old leader's announcement of job 9 (3 workflows, none timed), at `t`.
    fn replicate_9(t: Instant) -> JobMsg {
        JobMsg::Replicate {
            job: JobId(9),
            workflows: 3,
            gate: NodeId(100),
            gate_addr: GATE,
            gate_token: FenceToken::new(1, 1),
            token: FenceToken::new(1, 3),
            timeout: JobTimeout::start(Strategy::LocalAuthority, None, t).to_wire(t),
            items: 0,
        }
    }

    /// A follower of node 2 (term 1) holding job 9's replica, workflow 0 done.
    fn follower_with_replica_9(t: Instant) -> ManagerJobs {
        let peer = Addr::from_u32(2);
        let mut f = manager_with_workers();
        f.step(
            ManagerInput::Leader {
                leader: Some((NodeId(2), peer)),
                term: 1,
            },
            t,
        );
        let from = |msg| ManagerInput::Msg { from: peer, msg };
        f.step(from(replicate_9(t)), t);
        f.step(
            from(JobMsg::ReplicaDone {
                job: JobId(9),
                workflow: 0,
                items: 7,
            }),
            t,
        );
        f
    }

    /// A leader that takes a job over from a replica that missed a result (the leader
    /// that acknowledged it crashed before its `ReplicaDone` reached anyone) hears it
    /// from the worker that still remembers it (`DoneEarlier`, in answer to its hello)
    /// and does not run that workflow again: after the takeover grace only the
    /// workflow nobody finished is dispatched, the result's items count, and no slot
    /// is freed for it. Before, the workflow ran a second time (`extensions` seed 28 of
    /// session 19's leak scan, where the second run was then timed out after the gate
    /// had recorded the job complete).
    #[test]
    fn a_result_the_replica_missed_is_not_run_again() {
        let t = Instant::ZERO;
        let mut f = follower_with_replica_9(t);
        f.step(hello(10, 0), t);
        let out = f.step(leader(2), t + secs(10));
        assert!(out.contains(&JobOutput::Event(JobEvent::TakenOver {
            job: JobId(9),
            dc: DcId(0),
            token: FenceToken::new(2, 4)
        })));
        // Worker 10 (no slot free) finished workflow 1 for the old leader (4 items).
        let out = f.step(
            ManagerInput::Msg {
                from: Addr::from_u32(10),
                msg: JobMsg::DoneEarlier {
                    job: JobId(9),
                    workflow: 1,
                    items: 4,
                },
            },
            t + secs(10),
        );
        assert!(
            sends(&out).all(|(_, msg)| !matches!(msg, JobMsg::WorkflowDoneAck { .. })),
            "not acknowledged: the worker waits for nothing"
        );
        f.step(job_live(9), t + secs(10));
        let out = f.step(ManagerInput::Tick, t + secs(13));
        assert!(
            dispatches(&out).is_empty(),
            "no slot freed for an old result"
        );
        // A slot comes free: only workflow 2, which nobody finished, goes out.
        let mut out = f.step(hello(10, 1), t + secs(14));
        out.extend(f.step(ManagerInput::Tick, t + secs(15)));
        assert_eq!(
            dispatches(&out),
            vec![(Addr::from_u32(10), 2, FenceToken::new(2, 5))]
        );
        let out = f.step(
            workflow_done(10, 9, 2, FenceToken::new(2, 5), 1),
            t + secs(20),
        );
        assert!(out.contains(&JobOutput::Send {
            to: GATE,
            msg: JobMsg::JobDone {
                job: JobId(9),
                dc: DcId(0),
                token: FenceToken::new(2, 5),
                items: 7 + 4 + 1
            }
        }));
    }

    fn offers(out: &JobOutputs) -> Vec<(Addr, JobId)> {
        out.iter()
            .filter_map(|o| match o {
                JobOutput::Send {
                    to,
                    msg: JobMsg::ReplicaOffer { job, .. },
                } => Some((*to, *job)),
                _ => None,
            })
            .collect()
    }

    /// Run `f` to `until` the way a node does: a tick at each deadline.
    fn run_to(f: &mut ManagerJobs, until: Instant) -> JobOutputs {
        let mut all = JobOutputs::new();
        while let Some(at) = f.next_deadline().filter(|at| *at <= until) {
            all.extend(f.step(ManagerInput::Tick, at));
        }
        all
    }

    /// A leader stepped down for want of a majority dates its jobs' replicas to the last
    /// majority it heard, not to when it noticed: they go 95 s after that
    /// (`overload-burst`, `--chaos 6`, seed 281052). Stepped down otherwise, to now.
    #[test]
    fn a_leader_that_lost_its_quorum_dates_its_replicas_to_the_last_majority() {
        let t = Instant::ZERO;
        for (lost_quorum, expires) in [(true, secs(10 + 95)), (false, secs(15 + 95))] {
            let mut m = running_job(None, 1, 1);
            if lost_quorum {
                m.step(
                    ManagerInput::QuorumLost {
                        last_heard: t + secs(10),
                    },
                    t + secs(15),
                );
            }
            m.step(
                ManagerInput::Leader {
                    leader: Some((NodeId(2), Addr::from_u32(2))),
                    term: 2,
                },
                t + secs(15),
            );
            assert!(m.has_job(JobId(7)), "a replica of ours now");
            let just_before = Instant::from_micros(expires.as_micros() as u64 - 1);
            run_to(&mut m, just_before);
            assert!(m.has_job(JobId(7)), "lost quorum: {lost_quorum}");
            run_to(&mut m, t + expires);
            assert!(!m.has_job(JobId(7)), "lost quorum: {lost_quorum}");
        }
    }

    /// A replica goes 95 s after its last refresh, whether or not we know a leader (a
    /// longer life let a replica that missed its job's end reach a leader without the
    /// tombstone: see `replica_upkeep`). Meanwhile a leader that does not refresh it is
    /// offered it, from 20 s after it began to lead, every 10 s.
    #[test]
    fn a_replica_expires_95_s_after_its_last_refresh_and_is_offered_meanwhile() {
        let t = Instant::ZERO;
        let leaderless = || ManagerInput::Leader {
            leader: None,
            term: 1,
        };
        // No leader: kept to 95 s, offered to nobody.
        let mut f = follower_with_replica_9(t);
        f.step(leaderless(), t + secs(1));
        let out = run_to(&mut f, t + secs(94));
        assert!(f.has_job(JobId(9)));
        assert!(offers(&out).is_empty());
        let out = run_to(&mut f, t + secs(95));
        assert!(out.contains(&JobOutput::Event(JobEvent::Forgotten { job: JobId(9) })));
        assert!(!f.has_job(JobId(9)));

        // A leader known all along that stops refreshing it: offered at 20 s, then
        // every 10 s, and gone at 95 s (the leader never answered).
        let mut f = follower_with_replica_9(t);
        let out = run_to(&mut f, t + secs(94));
        assert!(f.has_job(JobId(9)));
        assert_eq!(offers(&out).len(), 8, "20, 30, ... 90 s");
        run_to(&mut f, t + secs(95));
        assert!(!f.has_job(JobId(9)));

        // A leader known from 60 s: offered from 80 s; the expiry does not move.
        let mut f = follower_with_replica_9(t);
        f.step(leaderless(), t + secs(1));
        let other = ManagerInput::Leader {
            leader: Some((NodeId(3), Addr::from_u32(3))),
            term: 2,
        };
        f.step(other, t + secs(60));
        let out = run_to(&mut f, t + secs(94));
        assert_eq!(offers(&out), vec![(Addr::from_u32(3), JobId(9)); 2]);
        run_to(&mut f, t + secs(95));
        assert!(!f.has_job(JobId(9)));
    }

    /// A leader that does not refresh a replica is offered it 20 s (two refreshes) after
    /// it began to lead. Having restarted with no state, it adopts the job, asks its
    /// workers what they run of it, and learns the done workflows from the follower
    /// once its announcement reaches it: it dispatches only what nobody ran.
    #[test]
    fn a_leader_that_restarted_adopts_the_replicas_a_follower_offers() {
        let t = Instant::ZERO;
        let me = Addr::from_u32(1);
        let new_leader = Addr::from_u32(2);
        // The follower: node 1, with job 9's replica from the old leader (node 2 in
        // term 1), which now leads again in term 3, having restarted.
        let mut f = follower_with_replica_9(t);
        f.step(
            ManagerInput::Leader {
                leader: Some((NodeId(2), new_leader)),
                term: 3,
            },
            t + secs(5),
        );
        let out = run_to(&mut f, t + secs(24));
        assert!(offers(&out).is_empty(), "not before 20 s of the new leader");
        let out = run_to(&mut f, t + secs(25));
        assert_eq!(offers(&out), vec![(new_leader, JobId(9))]);
        let offer = out
            .iter()
            .find_map(|o| match o {
                JobOutput::Send {
                    msg: m @ JobMsg::ReplicaOffer { items: 7, .. },
                    ..
                } => Some(*m),
                _ => None,
            })
            .expect("the offer carries the replica's items");

        // The restarted leader: node 2, no state, peers 1 and 3, workers 10 and 11.
        let mut l = ManagerJobs::new(
            ManagerConfig::default(),
            NodeId(2),
            DcId(0),
            vec![
                (ME, me),
                (NodeId(2), new_leader),
                (NodeId(3), Addr::from_u32(3)),
            ],
        );
        for w in [10, 11] {
            l.step(
                ManagerInput::Worker {
                    node: NodeId(w),
                    addr: Addr::from_u32(w),
                    alive: true,
                    suspected: false,
                },
                t,
            );
            l.step(hello(w, 4), t);
        }
        l.step(
            ManagerInput::Leader {
                leader: Some((NodeId(2), new_leader)),
                term: 3,
            },
            t + secs(5),
        );
        let out = l.step(
            ManagerInput::Msg {
                from: me,
                msg: offer,
            },
            t + secs(25),
        );
        assert!(out.contains(&JobOutput::Event(JobEvent::TakenOver {
            job: JobId(9),
            dc: DcId(0),
            token: FenceToken::new(3, 4)
        })));
        assert!(
            dispatches(&out).is_empty(),
            "waits for the workers' reports"
        );
        let queried: Vec<Addr> = out
            .iter()
            .filter_map(|o| match o {
                JobOutput::Send {
                    to,
                    msg: JobMsg::RunningQuery { job: JobId(9) },
                } => Some(*to),
                _ => None,
            })
            .collect();
        assert_eq!(queried, vec![Addr::from_u32(10), Addr::from_u32(11)]);
        let announce = out
            .iter()
            .find_map(|o| match o {
                JobOutput::Send {
                    to,
                    msg: m @ JobMsg::Replicate { .. },
                } if *to == me => Some(*m),
                _ => None,
            })
            .expect("the adopted job is announced to the followers");

        // The follower hears it and answers with its done workflow; no more offers.
        let out = f.step(
            ManagerInput::Msg {
                from: new_leader,
                msg: announce,
            },
            t + secs(25),
        );
        let done: Vec<JobMsg> = out
            .iter()
            .filter_map(|o| match o {
                JobOutput::Send { to, msg } if *to == new_leader => Some(*msg),
                _ => None,
            })
            .collect();
        assert_eq!(
            done,
            vec![JobMsg::ReplicaDone {
                job: JobId(9),
                workflow: 0,
                items: 0
            }]
        );
        // (The leader refreshes it every 10 s from here; 20 s without would be offered.)
        assert!(offers(&run_to(&mut f, t + secs(44))).is_empty());

        // The leader: workflow 0 done (the follower), 1 running on worker 11 (its
        // report); after the 3 s grace only workflow 2 is dispatched.
        l.step(
            ManagerInput::Msg {
                from: me,
                msg: done[0],
            },
            t + secs(25),
        );
        l.step(
            ManagerInput::Msg {
                from: Addr::from_u32(11),
                msg: JobMsg::Running {
                    job: JobId(9),
                    workflow: 1,
                    token: FenceToken::new(1, 3),
                },
            },
            t + secs(26),
        );
        l.step(job_live(9), t + secs(26));
        let out = run_to(&mut l, t + secs(28));
        assert_eq!(
            dispatches(&out),
            vec![(Addr::from_u32(10), 2, FenceToken::new(3, 5))]
        );
        let out = l.step(
            workflow_done(11, 9, 1, FenceToken::new(1, 3), 1),
            t + secs(29),
        );
        assert!(!out.iter().any(|o| matches!(
            o,
            JobOutput::Send {
                msg: JobMsg::JobDone { .. },
                ..
            }
        )));
        let out = l.step(
            workflow_done(10, 9, 2, FenceToken::new(3, 5), 2),
            t + secs(30),
        );
        // Items: 7 from the offer (workflow 0), then 1 and 2.
        assert!(out.contains(&JobOutput::Send {
            to: GATE,
            msg: JobMsg::JobDone {
                job: JobId(9),
                dc: DcId(0),
                token: FenceToken::new(3, 5),
                items: 10
            }
        }));
    }

    /// An offered job the leader runs is announced back; one that ended here is
    /// answered with its tombstone, and the follower drops it; a follower ignores offers.
    #[test]
    fn an_offer_of_a_job_the_leader_knows_is_answered_not_adopted() {
        let t = Instant::ZERO;
        let peer = Addr::from_u32(2);
        let offer = |job| ManagerInput::Msg {
            from: peer,
            msg: JobMsg::ReplicaOffer {
                job: JobId(job),
                workflows: 3,
                gate: NodeId(100),
                gate_addr: GATE,
                gate_token: FenceToken::new(1, 1),
                token: FenceToken::new(1, 3),
                timeout: JobTimeout::start(Strategy::LocalAuthority, None, t).to_wire(t),
                items: 0,
            },
        };
        let mut f = manager_with_workers();
        assert!(f.step(offer(9), t).is_empty(), "only the leader adopts");
        let mut m = manager_with_workers();
        m.step(leader(1), t);
        m.step(submit(9, 3), t);
        let out = m.step(offer(9), t + secs(1));
        assert!(out.iter().any(|o| matches!(
            o,
            JobOutput::Send { to, msg: JobMsg::Replicate { job: JobId(9), .. } } if *to == peer
        )));
        assert!(!out
            .iter()
            .any(|o| matches!(o, JobOutput::Event(JobEvent::TakenOver { .. }))));
        // Job 8 was withdrawn before the leader ever had it: a tombstone.
        m.step(withdraw_from_gate(8), t + secs(1));
        let out = m.step(offer(8), t + secs(2));
        let answer = out
            .iter()
            .find_map(|o| match o {
                JobOutput::Send {
                    to,
                    msg: m @ JobMsg::ReplicaForget { job: JobId(8), .. },
                } if *to == peer => Some(*m),
                _ => None,
            })
            .expect("the tombstone answers");
        assert!(!m.has_job(JobId(8)));
        // The follower that offered it drops its replica on that answer.
        let mut f = manager_with_workers();
        let mut replica = replicate_9(t);
        if let JobMsg::Replicate { job, .. } = &mut replica {
            *job = JobId(8);
        }
        f.step(
            ManagerInput::Msg {
                from: peer,
                msg: replica,
            },
            t,
        );
        assert!(f.has_job(JobId(8)));
        f.step(
            ManagerInput::Msg {
                from: peer,
                msg: answer,
            },
            t + secs(2),
        );
        assert!(!f.has_job(JobId(8)));
    }

    /// A takeover hold that runs out while no worker has a free slot must not leave the
    /// deadline in the past (the node would be ticked at the same instant for ever).
    #[test]
    fn an_expired_hold_never_leaves_the_deadline_behind() {
        let t = Instant::ZERO;
        let mut f = manager_with_workers();
        // Two jobs: dispatching stops at the first when no worker has room.
        for job in [3, 4] {
            f.step(
                ManagerInput::Msg {
                    from: Addr::from_u32(2),
                    msg: JobMsg::Replicate {
                        job: JobId(job),
                        workflows: 2,
                        gate: NodeId(100),
                        gate_addr: GATE,
                        gate_token: FenceToken::new(1, 1),
                        token: FenceToken::new(1, 1),
                        timeout: JobTimeout::start(Strategy::LocalAuthority, None, t).to_wire(t),
                        items: 0,
                    },
                },
                t,
            );
        }
        // Leading, but no worker has said it has room.
        f.step(leader(2), t + secs(1));
        let mut now = t + secs(1);
        for _ in 0..5 {
            let d = f.next_deadline().expect("hello and hold");
            assert!(d > now, "deadline {d:?} not after {now:?}");
            now = d;
            f.step(ManagerInput::Tick, now);
        }
        assert!(f.next_deadline().is_none_or(|d| d > now));
    }

    fn submit_with(job: u64, workflows: u32, timeout_s: Option<u64>, dcs: u16) -> ManagerInput {
        ManagerInput::Msg {
            from: GATE,
            msg: JobMsg::Submit {
                job: JobId(job),
                workflows,
                gate: NodeId(100),
                gate_addr: GATE,
                gate_token: FenceToken::new(1, 1),
                timeout_ms: timeout_s.map(|s| s * 1000),
                dcs,
            },
        }
    }

    fn from_worker(worker: u32, msg: JobMsg) -> ManagerInput {
        ManagerInput::Msg {
            from: Addr::from_u32(worker),
            msg,
        }
    }

    /// Worker 10 asks for an extension, `items` of `total` done.
    fn extension_request(items: u64, total: u64) -> ManagerInput {
        from_worker(
            10,
            JobMsg::ExtensionRequest {
                request: crate::timeout::extension::ExtensionRequest {
                    current_progress_ppm: 0,
                    completed_items: Some(items),
                    total_items: Some(total),
                    active_workflows: 1,
                    estimated_completion_ms: 0,
                },
            },
        )
    }

    /// A leader with worker 10 (4 slots) running every workflow of job 7 (accepted).
    fn running_job(timeout_s: Option<u64>, dcs: u16, workflows: u32) -> ManagerJobs {
        let t = Instant::ZERO;
        let mut m = manager_with_workers();
        m.step(leader(1), t);
        m.step(hello(10, 4), t);
        let out = m.step(submit_with(7, workflows, timeout_s, dcs), t);
        for (_, wf, token) in dispatches(&out) {
            m.step(
                from_worker(
                    10,
                    JobMsg::DispatchAck {
                        job: JobId(7),
                        workflow: wf,
                        token,
                        accepted: true,
                    },
                ),
                t,
            );
        }
        m
    }

    /// Worker 10 confirms it stopped workflow `wf` of job 7.
    fn cancel_confirmed(wf: WorkflowIndex) -> ManagerInput {
        from_worker(
            10,
            JobMsg::WorkflowCancelled {
                job: JobId(7),
                workflow: wf,
            },
        )
    }

    /// The gate acknowledges job 7's final report from DC 0.
    fn final_acked() -> ManagerInput {
        ManagerInput::Msg {
            from: GATE,
            msg: JobMsg::JobDoneAck {
                job: JobId(7),
                dc: DcId(0),
            },
        }
    }

    fn timed_out(out: &JobOutputs) -> Vec<(TimeoutBy, TimeoutReason)> {
        out.iter()
            .filter_map(|o| match o {
                JobOutput::Event(JobEvent::TimedOut { by, reason, .. }) => Some((*by, *reason)),
                _ => None,
            })
            .collect()
    }

    /// The gate withdraws job `job` from DC 0 (under gate token `(1, 1)`).
    fn withdraw_from_gate(job: u64) -> ManagerInput {
        ManagerInput::Msg {
            from: GATE,
            msg: JobMsg::Withdraw {
                job: JobId(job),
                dc: DcId(0),
                gate_token: FenceToken::new(1, 1),
            },
        }
    }

    /// Whether `out` reports a final status `status` to the gate.
    fn final_status_to_gate(out: &JobOutputs, status: DcStatus) -> bool {
        sends(out).any(|(to, msg)| {
            to == GATE && matches!(msg, JobMsg::FinalStatus { status: s, .. } if s == status)
        })
    }

    fn sends<'a>(out: &'a JobOutputs) -> impl Iterator<Item = (Addr, JobMsg)> + 'a {
        out.iter().filter_map(|o| match o {
            JobOutput::Send { to, msg } => Some((*to, *msg)),
            _ => None,
        })
    }

    /// jobs.md §4.4 + §4.6, local authority: past its timeout (checked every 30 s) the
    /// job is timed out once: its workflows cancelled on their worker, the gate told
    /// until it acknowledges; the job is forgotten once the cancels are confirmed.
    #[test]
    fn a_single_dc_job_past_its_timeout_is_timed_out_once_cancelled_and_forgotten() {
        let t = Instant::ZERO;
        let mut m = running_job(Some(60), 1, 2);
        assert!(timed_out(&m.step(ManagerInput::Tick, t + secs(30))).is_empty());
        // 60 s elapsed is not past a 60 s timeout.
        assert!(timed_out(&m.step(ManagerInput::Tick, t + secs(60))).is_empty());
        let out = m.step(ManagerInput::Tick, t + secs(90));
        assert_eq!(
            timed_out(&out),
            vec![(TimeoutBy::Local, TimeoutReason::Timeout)]
        );
        let cancels: Vec<_> = sends(&out)
            .filter(|(_, msg)| matches!(msg, JobMsg::CancelWorkflow { .. }))
            .collect();
        assert_eq!(cancels.len(), 2);
        assert!(cancels.iter().all(|(to, _)| *to == Addr::from_u32(10)));
        assert!(final_status_to_gate(&out, DcStatus::TimedOut));
        // Never twice, and cancels and the final report are resent while unanswered.
        let out = m.step(ManagerInput::Tick, t + secs(120));
        assert!(timed_out(&out).is_empty());
        assert!(sends(&out).any(|(_, msg)| matches!(msg, JobMsg::FinalStatus { .. })));
        m.step(final_acked(), t + secs(121));
        assert!(m.has_job(JobId(7)), "cancels still outstanding");
        for wf in 0..2 {
            m.step(cancel_confirmed(wf), t + secs(122));
        }
        assert!(!m.has_job(JobId(7)));
        assert_eq!(m.table_len(), 0);
    }

    /// jobs.md §2 coupling: a grant to a worker lengthens the timeout of every job it
    /// runs (and goes to membership for its suspicion); without it the same job is
    /// timed out a check earlier.
    #[test]
    fn an_extension_grant_lengthens_the_timeout_of_the_jobs_its_worker_runs() {
        let t = Instant::ZERO;
        let request = |items| extension_request(items, 10);
        let mut plain = running_job(Some(45), 1, 1);
        let mut extended = running_job(Some(45), 1, 1);
        let out = extended.step(request(1), t + secs(5));
        assert!(out.contains(&JobOutput::ExtendSuspicion {
            node: NodeId(10),
            by: secs(15)
        }));
        assert!(out.contains(&JobOutput::Event(JobEvent::JobExtended {
            job: JobId(7),
            dc: DcId(0),
            worker: NodeId(10),
            grant_us: 15_000_000
        })));
        assert!(sends(&out).any(|(to, msg)| to == Addr::from_u32(10)
            && matches!(msg, JobMsg::ExtensionResponse { response } if response.granted)));
        // 60 s elapsed: past 45 s, not past 45 + 15 s.
        assert_eq!(
            timed_out(&plain.step(ManagerInput::Tick, t + secs(60))),
            vec![(TimeoutBy::Local, TimeoutReason::Timeout)]
        );
        assert!(timed_out(&extended.step(ManagerInput::Tick, t + secs(60))).is_empty());
        assert_eq!(
            timed_out(&extended.step(ManagerInput::Tick, t + secs(90))).len(),
            1
        );
        // A request without more progress is denied; three in a row evict the worker:
        // its workflows are taken back and cancelled on it.
        let mut m = running_job(Some(600), 1, 1);
        m.step(request(3), t + secs(1));
        let mut evicted = false;
        for k in 0..3 {
            let out = m.step(request(3), t + secs(3 + 2 * k));
            evicted |= out.contains(&JobOutput::Event(JobEvent::WorkerEvicted {
                worker: NodeId(10),
            }));
        }
        assert!(evicted);
    }

    /// AD-26's liveness refill, the manager's side: the grant that leaves one asks the
    /// DC membership to probe the worker; once membership has heard from it after that
    /// grant (the node says so with the next request), the budget is full again.
    #[test]
    fn a_worker_low_on_extensions_is_probed_and_its_answer_refills_the_budget() {
        let t = Instant::ZERO;
        let request = |items| extension_request(items, 100);
        let granted = |out: &JobOutputs| {
            out.iter().find_map(|o| match o {
                JobOutput::ExtendSuspicion { by, .. } => Some(*by),
                _ => None,
            })
        };
        let probe = JobOutput::ProbeWorker { node: NodeId(10) };
        let mut m = running_job(Some(600), 1, 1);
        for i in 0..4u64 {
            let out = m.step(request(i + 1), t + secs(10 * i));
            // The fourth grant leaves one: the probe goes with it, once.
            assert_eq!(out.contains(&probe), i == 3, "grant {i}");
        }
        // Heard (before the request) after the fourth grant: a full budget again.
        m.worker_heard(NodeId(10), t + secs(31));
        assert_eq!(granted(&m.step(request(5), t + secs(40))), Some(secs(15)));
        // Not heard since: the halving goes on from there.
        assert_eq!(
            granted(&m.step(request(6), t + secs(50))),
            Some(millis(7_500))
        );
    }

    /// jobs.md §4.4, gate-coordinated: progress to the gate every 10 s; a timeout is
    /// reported (and re-sent each check until acknowledged), never acted on alone; the
    /// gate's decision under our fence is applied.
    #[test]
    fn a_multi_dc_job_reports_to_its_gate_and_waits_for_the_decision() {
        let t = Instant::ZERO;
        let mut m = running_job(Some(45), 2, 1);
        let progress = |out: &JobOutputs| {
            sends(out)
                .filter(|(to, msg)| *to == GATE && matches!(msg, JobMsg::ProgressReport { .. }))
                .count()
        };
        // (The heartbeat to the gate, due as soon as the leader has a job and then
        // every 5 s, is not a progress report.)
        assert_eq!(m.next_deadline(), Some(t));
        assert_eq!(progress(&m.step(ManagerInput::Tick, t)), 0);
        assert_eq!(m.next_deadline(), Some(t + secs(5)));
        assert_eq!(progress(&m.step(ManagerInput::Tick, t + secs(5))), 0);
        assert_eq!(m.next_deadline(), Some(t + secs(10)));
        assert_eq!(progress(&m.step(ManagerInput::Tick, t + secs(10))), 1);
        assert_eq!(progress(&m.step(ManagerInput::Tick, t + secs(15))), 0);
        assert_eq!(progress(&m.step(ManagerInput::Tick, t + secs(20))), 1);
        for s in [30, 40, 50] {
            m.step(ManagerInput::Tick, t + secs(s));
        }
        let out = m.step(ManagerInput::Tick, t + secs(60));
        assert!(timed_out(&out).is_empty(), "the gate decides");
        let report = |out: &JobOutputs| {
            sends(out)
                .filter(|(_, msg)| matches!(msg, JobMsg::TimeoutReport { .. }))
                .count()
        };
        assert_eq!(report(&out), 1);
        assert_eq!(
            report(&m.step(ManagerInput::Tick, t + secs(90))),
            1,
            "resent"
        );
        m.step(
            ManagerInput::Msg {
                from: GATE,
                msg: JobMsg::TimeoutReportAck {
                    job: JobId(7),
                    dc: DcId(0),
                },
            },
            t + secs(91),
        );
        assert_eq!(report(&m.step(ManagerInput::Tick, t + secs(120))), 0);
        let out = m.step(
            ManagerInput::Msg {
                from: GATE,
                msg: JobMsg::GlobalTimeout {
                    job: JobId(7),
                    reason: TimeoutReason::Timeout,
                    fence: crate::id::TimeoutFence(0),
                },
            },
            t + secs(125),
        );
        assert_eq!(
            timed_out(&out),
            vec![(TimeoutBy::Global, TimeoutReason::Timeout)]
        );
    }

    /// jobs.md §4.7: a new leader resumes a replicated timeout under the next fence,
    /// tells the gate it leads the job, re-sends the pending report, and refuses a
    /// decision under the old fence; a job its predecessor already timed out is not
    /// timed out again.
    #[test]
    fn a_new_leader_resumes_timeouts_under_the_next_fence() {
        let t = Instant::ZERO;
        let peer = Addr::from_u32(2);
        let mut reported = JobTimeout::start(Strategy::GateCoordinated, Some(secs(45)), t);
        assert!(matches!(
            reported.check(&TimeoutConfig::default(), false, t + secs(60)),
            Check::Report { .. }
        ));
        let mut acted = JobTimeout::start(Strategy::LocalAuthority, Some(secs(45)), t);
        assert!(matches!(
            acted.check(&TimeoutConfig::default(), false, t + secs(60)),
            Check::TimeOut { .. }
        ));
        let mut f = manager_with_workers();
        f.step(
            ManagerInput::Leader {
                leader: Some((NodeId(2), peer)),
                term: 1,
            },
            t,
        );
        for (job, state) in [(7, &reported), (8, &acted)] {
            f.step(
                ManagerInput::Msg {
                    from: peer,
                    msg: JobMsg::Replicate {
                        job: JobId(job),
                        workflows: 1,
                        gate: NodeId(100),
                        gate_addr: GATE,
                        gate_token: FenceToken::new(1, 1),
                        token: FenceToken::new(1, 2),
                        timeout: state.to_wire(t + secs(61)),
                        items: 0,
                    },
                },
                t + secs(61),
            );
        }
        let out = f.step(leader(2), t + secs(70));
        let fence1 = crate::id::TimeoutFence(1);
        assert!(out.contains(&JobOutput::Send {
            to: GATE,
            msg: JobMsg::LeaderTransfer {
                job: JobId(7),
                dc: DcId(0),
                new_leader: ME,
                fence: fence1
            }
        }));
        assert!(sends(&out).any(|(_, msg)| matches!(
            msg,
            JobMsg::TimeoutReport { job: JobId(7), fence, .. } if fence == fence1
        )));
        let decide = |fence| ManagerInput::Msg {
            from: GATE,
            msg: JobMsg::GlobalTimeout {
                job: JobId(7),
                reason: TimeoutReason::Stuck,
                fence: crate::id::TimeoutFence(fence),
            },
        };
        let out = f.step(decide(0), t + secs(71));
        assert!(timed_out(&out).is_empty());
        assert!(
            out.contains(&JobOutput::Event(JobEvent::GlobalTimeoutRefused {
                job: JobId(7),
                dc: DcId(0),
                fence: crate::id::TimeoutFence(0),
                stale: true
            }))
        );
        assert_eq!(timed_out(&f.step(decide(1), t + secs(72))).len(), 1);
        // Job 8 was timed out by the old leader: its final status is re-sent, the
        // timeout is not run again.
        let mut all = JobOutputs::new();
        for s in [73, 100, 130] {
            all.extend(f.step(ManagerInput::Tick, t + secs(s)));
        }
        assert!(timed_out(&all).is_empty());
        assert!(sends(&all).any(|(_, msg)| matches!(
            msg,
            JobMsg::FinalStatus {
                job: JobId(8),
                status: DcStatus::TimedOut,
                ..
            }
        )));
    }

    /// A final report its gate never acknowledges (the gate died and no gate took the
    /// job over, or the job came back here from a stale replica after its gate had
    /// finished it) is resent every 2 s for 600 s, then given up: the job is forgotten
    /// into its tombstone (the followers told), and the gate, should it ever ask
    /// again, gets the final status from the tombstone. Before, the report went to a
    /// dead gate every 2 s for ever, the job held for ever (`gate-failover` seed 26 of
    /// session 19's scan).
    #[test]
    fn a_final_report_never_acknowledged_is_given_up_after_600_s() {
        let t = Instant::ZERO;
        let mut m = running_job(Some(60), 1, 1);
        m.step(ManagerInput::Tick, t + secs(90)); // timed out, cancel sent
        m.step(cancel_confirmed(0), t + secs(91));
        let reports = |out: &JobOutputs| {
            sends(out)
                .filter(|(to, msg)| *to == GATE && matches!(msg, JobMsg::FinalStatus { .. }))
                .count()
        };
        // The first resend starts the 600 s; every resend until then goes out.
        let mut now = t + secs(90);
        let mut first_resend = None;
        let mut abandoned = None;
        while abandoned.is_none() && now < t + secs(2_000) {
            now = m.next_deadline().expect("reporting");
            let out = m.step(ManagerInput::Tick, now);
            if out.iter().any(|o| {
                matches!(
                    o,
                    JobOutput::Event(JobEvent::FinalReportAbandoned { job: JobId(7), .. })
                )
            }) {
                abandoned = Some(out);
            } else if reports(&out) > 0 {
                first_resend.get_or_insert(now);
            }
        }
        let (first_resend, out) = (first_resend.expect("resent"), abandoned.expect("given up"));
        assert!(first_resend <= t + secs(93), "{first_resend:?}");
        assert_eq!(now, first_resend + secs(600));
        assert_eq!(reports(&out), 0);
        assert!(out.contains(&JobOutput::Event(JobEvent::Forgotten { job: JobId(7) })));
        assert!(sends(&out).any(|(to, msg)| to == Addr::from_u32(2)
            && matches!(
                msg,
                JobMsg::ReplicaForget {
                    status: DcStatus::TimedOut,
                    ..
                }
            )));
        assert_eq!((m.table_len(), m.tombstones_len()), (0, 1));
        // The gate asks again (its re-claim): the tombstone answers.
        let out = m.step(submit(7, 1), now + secs(60));
        assert!(dispatches(&out).is_empty());
        assert!(sends(&out).any(|(to, msg)| to == GATE
            && matches!(
                msg,
                JobMsg::FinalStatus {
                    status: DcStatus::TimedOut,
                    ..
                }
            )));
    }

    /// The give-up clock survives a change of DC leader: a follower notes when it
    /// learned that the job ended (its report unanswered, or a `ReplicaForget` would
    /// have come), and when it leads, the 600 s count from then, not from its own
    /// first resend. Before, a DC whose leadership changed more often than every 600 s
    /// resent a dead gate's report for ever (`jobs-basic` seed 12 of session 19's leak
    /// scan: leaders of two live voters, losing check-quorum every ~190 s). And a
    /// leader that steps aside hands its own clock on the same way.
    #[test]
    fn the_report_give_up_counts_from_the_end_across_leader_changes() {
        let t = Instant::ZERO;
        let peer = Addr::from_u32(2);
        let from = |msg| ManagerInput::Msg { from: peer, msg };
        let abandoned_at = |m: &mut ManagerJobs, job: u64, from: Instant| {
            let mut now = from;
            while now < t + secs(3_000) {
                now = m.next_deadline().expect("reporting");
                let out = m.step(ManagerInput::Tick, now);
                if out.contains(&JobOutput::Event(JobEvent::FinalReportAbandoned {
                    job: JobId(job),
                    dc: DcId(0),
                })) {
                    return now;
                }
            }
            panic!("never given up");
        };
        // Job 9 (3 workflows) completes under node 2's leadership at 10 s; node 2
        // keeps refreshing our replica (every 60 s) until it loses the lead at 300 s.
        let mut f = follower_with_replica_9(t);
        for wf in 1..3 {
            f.step(
                from(JobMsg::ReplicaDone {
                    job: JobId(9),
                    workflow: wf,
                    items: 0,
                }),
                t + secs(10),
            );
        }
        for at in (60..=300).step_by(60) {
            f.step(from(replicate_9(t + secs(at))), t + secs(at));
        }
        let out = f.step(leader(2), t + secs(300));
        assert!(out.contains(&JobOutput::Event(JobEvent::TakenOver {
            job: JobId(9),
            dc: DcId(0),
            token: FenceToken::new(2, 4)
        })));
        // The report goes out unanswered until 600 s after the end became known here.
        assert_eq!(abandoned_at(&mut f, 9, t + secs(300)), t + secs(610));
        assert_eq!((f.table_len(), f.tombstones_len()), (0, 1));

        // The leader itself steps aside at 400 s with the report unanswered since it
        // ended (and first resent, at 11-13 s); leading again at 500 s, it keeps that
        // clock.
        let mut m = running_job(None, 1, 1);
        let out = m.step(
            workflow_done(10, 7, 0, FenceToken::new(1, 2), 0),
            t + secs(10),
        );
        assert!(sends(&out).any(|(to, msg)| to == GATE && matches!(msg, JobMsg::JobDone { .. })));
        let first_resend = loop {
            let at = m.next_deadline().expect("the resend");
            let out = m.step(ManagerInput::Tick, at);
            if sends(&out).any(|(to, msg)| to == GATE && matches!(msg, JobMsg::JobDone { .. })) {
                break at;
            }
        };
        assert!(first_resend <= t + secs(13), "{first_resend:?}");
        run_to(&mut m, t + secs(399));
        m.step(
            ManagerInput::Leader {
                leader: Some((NodeId(2), peer)),
                term: 2,
            },
            t + secs(400),
        );
        assert_eq!(m.table_len(), 1, "a replica now");
        m.step(leader(3), t + secs(500));
        assert_eq!(
            abandoned_at(&mut m, 7, t + secs(500)),
            first_resend + secs(600)
        );
    }

    /// A job that ended here is never run again: a later claim (a gate that took it
    /// over without hearing of its end) gets the final status back, from the leader or
    /// from whichever manager leads next; the tombstone expires after its TTL.
    #[test]
    fn an_ended_job_answers_a_late_claim_with_its_final_status() {
        let t = Instant::ZERO;
        let mut m = running_job(Some(60), 1, 1);
        m.step(ManagerInput::Tick, t + secs(90)); // timed out, cancel sent
        m.step(cancel_confirmed(0), t + secs(91));
        let out = m.step(final_acked(), t + secs(92));
        let forget = sends(&out)
            .find(|(_, msg)| matches!(msg, JobMsg::ReplicaForget { .. }))
            .expect("the followers are told")
            .1;
        assert!(matches!(
            forget,
            JobMsg::ReplicaForget {
                status: DcStatus::TimedOut,
                ..
            }
        ));
        assert_eq!((m.table_len(), m.tombstones_len()), (0, 1));
        // Another gate claims it under a newer token: no second run, the status instead.
        let claim = ManagerInput::Msg {
            from: Addr::from_u32(101),
            msg: JobMsg::Submit {
                job: JobId(7),
                workflows: 1,
                gate: NodeId(101),
                gate_addr: Addr::from_u32(101),
                gate_token: FenceToken::new(2, 1),
                timeout_ms: Some(60_000),
                dcs: 1,
            },
        };
        let out = m.step(claim, t + secs(100));
        assert!(dispatches(&out).is_empty());
        assert!(!out
            .iter()
            .any(|o| matches!(o, JobOutput::Event(JobEvent::Accepted { .. }))));
        assert!(sends(&out).any(|(to, msg)| to == Addr::from_u32(101)
            && matches!(
                msg,
                JobMsg::FinalStatus {
                    status: DcStatus::TimedOut,
                    ..
                }
            )));
        // A follower that heard the forget answers the same once it leads.
        let mut f = manager_with_workers();
        f.step(
            ManagerInput::Msg {
                from: Addr::from_u32(2),
                msg: forget,
            },
            t + secs(92),
        );
        f.step(leader(3), t + secs(95));
        let out = f.step(submit(7, 1), t + secs(100));
        assert!(sends(&out).any(|(_, msg)| matches!(msg, JobMsg::FinalStatus { .. })));
        // After the 600 s TTL it is gone.
        m.step(ManagerInput::Tick, t + secs(92 + 600));
        assert_eq!(m.tombstones_len(), 0);
    }

    /// The gate fell back from this DC, whose acceptance it never heard: a withdrawal
    /// (for the job's gate token) stops the job on the leader: running workflows are
    /// cancelled on their worker, the rest at once, the gate hears `Cancelled` until it
    /// acknowledges, and then the job is forgotten with a `Cancelled` tombstone. A stale
    /// token or another DC's withdrawal changes nothing; a follower forgets its replica.
    #[test]
    fn a_withdrawn_job_is_cancelled_reported_and_forgotten() {
        let t = Instant::ZERO;
        // Five workflows on worker 10's four slots: four run, one waits.
        let mut m = running_job(Some(60), 1, 5);
        let withdraw = |token, dc| ManagerInput::Msg {
            from: GATE,
            msg: JobMsg::Withdraw {
                job: JobId(7),
                dc: DcId(dc),
                gate_token: token,
            },
        };
        for ignored in [
            withdraw(FenceToken::new(0, 9), 0),
            withdraw(FenceToken::new(1, 1), 3),
        ] {
            let out = m.step(ignored, t + secs(1));
            assert!(out.is_empty(), "{out:?}");
        }
        // A follower holding a replica drops it for a Cancelled tombstone (a stale
        // token leaves it), so that leading next it does not take the job over.
        let mut follower = manager_with_workers();
        follower.step(
            ManagerInput::Leader {
                leader: Some((NodeId(2), Addr::from_u32(2))),
                term: 1,
            },
            t,
        );
        follower.step(
            ManagerInput::Msg {
                from: Addr::from_u32(2),
                msg: JobMsg::Replicate {
                    job: JobId(7),
                    workflows: 5,
                    gate: NodeId(100),
                    gate_addr: GATE,
                    gate_token: FenceToken::new(1, 1),
                    token: FenceToken::new(1, 3),
                    timeout: JobTimeout::start(Strategy::LocalAuthority, Some(secs(60)), t)
                        .to_wire(t),
                    items: 0,
                },
            },
            t,
        );
        assert!(follower
            .step(withdraw(FenceToken::new(0, 9), 0), t + secs(1))
            .is_empty());
        assert!(follower.has_job(JobId(7)));
        let out = follower.step(withdraw(FenceToken::new(1, 1), 0), t + secs(1));
        assert!(out.contains(&JobOutput::Event(JobEvent::Forgotten { job: JobId(7) })));
        assert_eq!(
            (follower.has_job(JobId(7)), follower.tombstones_len()),
            (false, 1)
        );
        follower.step(hello(10, 4), t + secs(2));
        let out = follower.step(leader(2), t + secs(2));
        assert!(!out
            .iter()
            .any(|o| matches!(o, JobOutput::Event(JobEvent::TakenOver { .. }))));
        let out = m.step(withdraw(FenceToken::new(1, 1), 0), t + secs(2));
        assert!(out.contains(&JobOutput::Event(JobEvent::Withdrawn {
            job: JobId(7),
            dc: DcId(0)
        })));
        let cancels: Vec<WorkflowIndex> = sends(&out)
            .filter_map(|(to, msg)| match msg {
                JobMsg::CancelWorkflow { workflow, .. } if to == Addr::from_u32(10) => {
                    Some(workflow)
                }
                _ => None,
            })
            .collect();
        assert_eq!(cancels, vec![0, 1, 2, 3], "the four running on worker 10");
        assert!(final_status_to_gate(&out, DcStatus::Cancelled));
        assert!(timed_out(&out).is_empty());
        // Nothing is dispatched again, and the job's timeout never fires.
        let out = m.step(ManagerInput::Tick, t + secs(90));
        assert!(dispatches(&out).is_empty() && timed_out(&out).is_empty());
        // The worker confirms the cancels and the gate acknowledges: forgotten.
        for wf in 0..4 {
            m.step(cancel_confirmed(wf), t + secs(91));
        }
        let out = m.step(final_acked(), t + secs(92));
        assert!(out.contains(&JobOutput::Event(JobEvent::Forgotten { job: JobId(7) })));
        assert!(sends(&out).any(|(_, msg)| matches!(
            msg,
            JobMsg::ReplicaForget {
                status: DcStatus::Cancelled,
                ..
            }
        )));
        assert_eq!((m.table_len(), m.tombstones_len()), (0, 1));
    }

    /// A timed-out job whose gate acknowledged the report waits only for its cancels;
    /// its worker dies before confirming them: they count as done (nobody is left to
    /// stop), and the job is forgotten then. (It used to stay for ever: found by a
    /// chaos scan, `single-dc-timeouts` seed 51 with faults until 5 min, then 15 quiet
    /// minutes, still tracked by all three managers at the end.)
    #[test]
    fn an_ended_job_whose_worker_dies_before_confirming_its_cancels_is_forgotten() {
        let t = Instant::ZERO;
        let mut m = running_job(Some(60), 1, 2);
        assert!(final_status_to_gate(
            &m.step(ManagerInput::Tick, t + secs(90)),
            DcStatus::TimedOut
        ));
        m.step(final_acked(), t + secs(91));
        assert!(m.has_job(JobId(7)), "its cancels are outstanding");
        let out = m.step(
            ManagerInput::Worker {
                node: NodeId(10),
                addr: Addr::from_u32(10),
                alive: false,
                suspected: false,
            },
            t + secs(100),
        );
        assert!(out.contains(&JobOutput::Event(JobEvent::Forgotten { job: JobId(7) })));
        assert!(sends(&out).any(|(_, msg)| matches!(
            msg,
            JobMsg::ReplicaForget {
                status: DcStatus::TimedOut,
                ..
            }
        )));
        assert_eq!((m.table_len(), m.tombstones_len()), (0, 1));
    }

    /// A job that ended here while its report went unacknowledged (its gate died), then
    /// withdrawn by another gate carrying on the dead gate's withdrawal: the report
    /// answers the withdrawal, goes to that gate from then on, and its acknowledgement
    /// lets the job be forgotten. (The report used to go to the dead gate for ever, and
    /// the job was never forgotten.)
    #[test]
    fn an_ended_job_reports_to_the_gate_that_withdraws_it() {
        const TAKER: Addr = Addr::from_u32(101);
        let t = Instant::ZERO;
        let mut m = running_job(Some(60), 1, 2);
        let out = m.step(ManagerInput::Tick, t + secs(90));
        assert!(final_status_to_gate(&out, DcStatus::TimedOut));
        for wf in 0..2 {
            m.step(cancel_confirmed(wf), t + secs(91));
        }
        let to_taker = |out: &JobOutputs| {
            sends(out)
                .filter(|(to, msg)| {
                    *to == TAKER
                        && matches!(
                            msg,
                            JobMsg::FinalStatus {
                                status: DcStatus::TimedOut,
                                ..
                            }
                        )
                })
                .count()
        };
        let withdraw = ManagerInput::Msg {
            from: TAKER,
            msg: JobMsg::Withdraw {
                job: JobId(7),
                dc: DcId(0),
                gate_token: FenceToken::new(1, 1),
            },
        };
        let out = m.step(withdraw, t + secs(100));
        assert_eq!(to_taker(&out), 1);
        assert!(
            !out.iter()
                .any(|o| matches!(o, JobOutput::Event(JobEvent::Withdrawn { .. }))),
            "it had ended: nothing to cancel"
        );
        // Re-sent to that gate, no longer to the one the job came from.
        let out = m.step(ManagerInput::Tick, t + secs(130));
        assert_eq!(to_taker(&out), 1);
        assert!(!final_status_to_gate(&out, DcStatus::TimedOut));
        let out = m.step(
            ManagerInput::Msg {
                from: TAKER,
                msg: JobMsg::JobDoneAck {
                    job: JobId(7),
                    dc: DcId(0),
                },
            },
            t + secs(131),
        );
        assert!(out.contains(&JobOutput::Event(JobEvent::Forgotten { job: JobId(7) })));
        assert_eq!(m.table_len(), 0);
    }

    /// A leader that withdrew a job and loses leadership before the gate acknowledges
    /// (a chaos sweep: `jobs-basic.toml`, seed 80759, `--chaos 10`: the DC's one manager
    /// was cut off, stepped aside, led again, and dispatched the cancelled workflows a
    /// second time). The job's end survives as a `Cancelled` tombstone, so leading again
    /// takes nothing over and dispatches nothing; a late claim for it gets the final
    /// status back. The withdrawal also tells the followers at once.
    #[test]
    fn a_withdrawn_job_stays_ended_across_a_change_of_leader() {
        let t = Instant::ZERO;
        let mut m = running_job(Some(60), 1, 5);
        let out = m.step(withdraw_from_gate(7), t + secs(1));
        assert!(sends(&out).any(|(to, msg)| to == Addr::from_u32(2)
            && matches!(
                msg,
                JobMsg::ReplicaForget {
                    job: JobId(7),
                    status: DcStatus::Cancelled,
                    ..
                }
            )));
        // Another manager leads for a while: no acknowledgement reaches us.
        let out = m.step(
            ManagerInput::Leader {
                leader: Some((NodeId(2), Addr::from_u32(2))),
                term: 2,
            },
            t + secs(5),
        );
        assert!(out.contains(&JobOutput::Event(JobEvent::Forgotten { job: JobId(7) })));
        assert_eq!((m.has_job(JobId(7)), m.tombstones_len()), (false, 1));
        // We lead again, with a worker free to run anything pending.
        let out = m.step(leader(3), t + secs(10));
        assert!(
            !out.iter()
                .any(|o| matches!(o, JobOutput::Event(JobEvent::TakenOver { .. }))),
            "{out:?}"
        );
        m.step(hello(11, 4), t + secs(10));
        let mut now = t + secs(10);
        while now < t + secs(30) {
            now = now + secs(1);
            let out = m.step(ManagerInput::Tick, now);
            assert!(dispatches(&out).is_empty(), "{out:?}");
        }
        // The gate's claim again (say, a retry): answered with the final status.
        let out = m.step(submit_with(7, 5, Some(60), 1), now);
        assert!(final_status_to_gate(&out, DcStatus::Cancelled));
        assert!(dispatches(&out).is_empty());
    }

    /// The gate withdraws a job until it hears how it ended here. A leader that never
    /// had the job (its submission lost, or still on its way) keeps a `Cancelled`
    /// tombstone, tells the gate and its followers, and answers a submission arriving
    /// after it with that status instead of running the job; asked again, it answers
    /// from the tombstone.
    #[test]
    fn a_withdrawal_of_a_job_never_received_leaves_a_cancelled_tombstone() {
        let t = Instant::ZERO;
        let mut m = manager_with_workers();
        m.step(leader(1), t);
        m.step(hello(10, 4), t);
        let cancelled_to_gate = |out: &JobOutputs| final_status_to_gate(out, DcStatus::Cancelled);
        let out = m.step(withdraw_from_gate(9), t + secs(1));
        assert!(cancelled_to_gate(&out), "{out:?}");
        assert!(sends(&out).any(|(to, msg)| to == Addr::from_u32(2)
            && matches!(msg, JobMsg::ReplicaForget { job: JobId(9), .. })));
        assert_eq!((m.has_job(JobId(9)), m.tombstones_len()), (false, 1));
        // The submission, late: no run.
        let out = m.step(submit(9, 2), t + secs(2));
        assert!(cancelled_to_gate(&out), "{out:?}");
        assert!(dispatches(&out).is_empty());
        assert!(!m.has_job(JobId(9)));
        // Asked again (its answer was lost): the same answer.
        let out = m.step(withdraw_from_gate(9), t + secs(6));
        assert!(cancelled_to_gate(&out), "{out:?}");
        assert_eq!(m.tombstones_len(), 1);

        // A job that ended here some other way answers with that end, which stays.
        let mut m = running_job(Some(60), 1, 1);
        m.step(ManagerInput::Tick, t + secs(90)); // timed out, cancel sent
        m.step(cancel_confirmed(0), t + secs(91));
        m.step(final_acked(), t + secs(92));
        let out = m.step(withdraw_from_gate(7), t + secs(93));
        assert!(final_status_to_gate(&out, DcStatus::TimedOut), "{out:?}");
    }

    /// Spec deviation (jobs.md §4.5 ignores a decision about a job with no tracking): a
    /// leader with no record at all of a job its gate timed out (it restarted with no
    /// state and was elected over the follower holding the replica) answers that the DC
    /// never ran it, as to a withdrawal: a `Cancelled` tombstone, the report to the gate,
    /// and the tombstone to the followers, which drop their replicas. Ignored, the
    /// decision would never be confirmed and the gate would drop the job with no
    /// outcome. A follower still ignores it (the gate asks the leader next).
    #[test]
    fn a_leader_with_no_record_of_a_timed_out_job_says_the_dc_never_ran_it() {
        let t = Instant::ZERO;
        let decision = || ManagerInput::Msg {
            from: GATE,
            msg: JobMsg::GlobalTimeout {
                job: JobId(9),
                reason: TimeoutReason::Timeout,
                fence: crate::id::TimeoutFence(1),
            },
        };
        let mut follower = manager_with_workers();
        let out = follower.step(decision(), t + secs(1));
        assert!(sends(&out).next().is_none(), "{out:?}");
        assert_eq!(follower.tombstones_len(), 0);

        let mut m = manager_with_workers();
        m.step(leader(1), t);
        let out = m.step(decision(), t + secs(1));
        assert!(final_status_to_gate(&out, DcStatus::Cancelled), "{out:?}");
        assert!(sends(&out).any(|(to, msg)| to == Addr::from_u32(2)
            && matches!(
                msg,
                JobMsg::ReplicaForget {
                    job: JobId(9),
                    status: DcStatus::Cancelled,
                    ..
                }
            )));
        assert_eq!(m.tombstones_len(), 1);
        // A late submission gets the same answer, not a run.
        m.step(hello(10, 4), t + secs(2));
        let out = m.step(submit(9, 2), t + secs(2));
        assert!(final_status_to_gate(&out, DcStatus::Cancelled), "{out:?}");
        assert!(dispatches(&out).is_empty());
    }

    /// A manager cut off while its DC finished a job keeps a replica that missed the end
    /// (found by a chaos sweep: `extensions.toml`, seed 30397, `--chaos 5`, where the
    /// revived job ran a second time and then timed out). When it leads again its takeover
    /// announces the job; a peer holding the job's tombstone answers with it, and the job
    /// is dropped before the takeover grace lets it be dispatched.
    #[test]
    fn a_takeover_from_a_replica_that_missed_the_end_is_superseded_by_a_tombstone() {
        let t = Instant::ZERO;
        let leader_addr = Addr::from_u32(2);
        let replicate = JobMsg::Replicate {
            job: JobId(9),
            workflows: 2,
            gate: NodeId(100),
            gate_addr: GATE,
            gate_token: FenceToken::new(1, 1),
            token: FenceToken::new(1, 3),
            timeout: JobTimeout::start(Strategy::LocalAuthority, Some(secs(60)), t).to_wire(t),
            items: 0,
        };
        let follower = |m: &mut ManagerJobs| {
            m.step(
                ManagerInput::Leader {
                    leader: Some((NodeId(2), leader_addr)),
                    term: 1,
                },
                t,
            );
            m.step(
                ManagerInput::Msg {
                    from: leader_addr,
                    msg: replicate,
                },
                t,
            );
        };
        // `f` (node 1) and `p` both replicate job 9; only `p` hears it end.
        let mut f = manager_with_workers();
        follower(&mut f);
        let mut p = manager_with_workers();
        follower(&mut p);
        p.step(
            ManagerInput::Msg {
                from: leader_addr,
                msg: JobMsg::ReplicaForget {
                    job: JobId(9),
                    status: DcStatus::Completed,
                    token: FenceToken::new(1, 3),
                    fence: Default::default(),
                    items: 11,
                },
            },
            t + secs(30),
        );
        assert_eq!((p.has_job(JobId(9)), p.tombstones_len()), (false, 1));
        // `f` leads in term 2 and revives the job from its replica.
        f.step(hello(10, 4), t + secs(40));
        let out = f.step(leader(2), t + secs(40));
        assert!(out.iter().any(|o| matches!(
            o,
            JobOutput::Event(JobEvent::TakenOver { job: JobId(9), .. })
        )));
        let announced = sends(&out)
            .find(|(_, msg)| matches!(msg, JobMsg::Replicate { job: JobId(9), .. }))
            .expect("the takeover is announced to the peers")
            .1;
        // `p` keeps no replica of an ended job: it answers with the tombstone.
        let out = p.step(
            ManagerInput::Msg {
                from: Addr::from_u32(1),
                msg: announced,
            },
            t + secs(40),
        );
        assert!(!p.has_job(JobId(9)));
        let answer = sends(&out)
            .find(|(to, msg)| {
                *to == Addr::from_u32(1)
                    && matches!(
                        msg,
                        JobMsg::ReplicaForget {
                            job: JobId(9),
                            status: DcStatus::Completed,
                            ..
                        }
                    )
            })
            .expect("the tombstone goes back to the new leader")
            .1;
        let out = f.step(
            ManagerInput::Msg {
                from: leader_addr,
                msg: answer,
            },
            t + secs(40),
        );
        // Past the takeover grace and the job's own timeout nothing is dispatched or
        // timed out.
        assert_superseded_quietly(&mut f, &out, DcStatus::Completed, [43, 50, 120]);
    }

    /// Job 9's takeover at `f` was superseded by an end of `status` (`out`): forgotten,
    /// the gate not told (it has the job's outcome), and at each of `ticks` (s) nothing
    /// dispatched or timed out.
    fn assert_superseded_quietly(
        f: &mut ManagerJobs,
        out: &JobOutputs,
        status: DcStatus,
        ticks: [u64; 3],
    ) {
        assert!(
            out.contains(&JobOutput::Event(JobEvent::TakeoverSuperseded {
                job: JobId(9),
                dc: DcId(0),
                status,
            }))
        );
        assert!(out.contains(&JobOutput::Event(JobEvent::Forgotten { job: JobId(9) })));
        assert!(!f.has_job(JobId(9)));
        assert!(
            sends(out).all(|(to, _)| to != GATE),
            "the gate has the job's outcome"
        );
        for at in ticks {
            let out = f.step(ManagerInput::Tick, Instant::ZERO + secs(at));
            assert!(dispatches(&out).is_empty());
            assert!(timed_out(&out).is_empty());
        }
    }

    /// The window a peer's tombstone cannot close: the managers that kept job 9's
    /// tombstone are out of reach, so the new leader revives it from a replica that
    /// missed its end. Its `LeaderTransfer` (sent for a local-authority job too) asks the
    /// gate, whose `JobOver` stops the job inside the takeover grace: nothing is
    /// dispatched or timed out, the followers get a `Cancelled` tombstone, and the gate
    /// hears nothing more. The same word from any other address is ignored. (Before,
    /// nothing stopped it: the two workflows not done went out again after the grace.)
    #[test]
    fn a_takeover_of_a_job_that_ended_is_stopped_by_its_gate() {
        let t = Instant::ZERO;
        let job_over = |from| ManagerInput::Msg {
            from,
            msg: JobMsg::JobOver {
                job: JobId(9),
                dc: DcId(0),
            },
        };
        let mut f = follower_with_replica_9(t);
        f.step(hello(10, 4), t + secs(10));
        let out = f.step(leader(2), t + secs(10));
        assert!(sends(&out).any(|(to, msg)| to == GATE
            && matches!(
                msg,
                JobMsg::LeaderTransfer {
                    job: JobId(9),
                    dc: DcId(0),
                    new_leader: NodeId(1),
                    ..
                }
            )));
        // Not the job's gate: no effect.
        let out = f.step(job_over(Addr::from_u32(101)), t + secs(10));
        assert!(out.is_empty());
        assert!(f.has_job(JobId(9)));
        let out = f.step(job_over(GATE), t + secs(10));
        assert!(sends(&out).any(|(_, msg)| matches!(
            msg,
            JobMsg::ReplicaForget {
                job: JobId(9),
                status: DcStatus::Cancelled,
                ..
            }
        )));
        assert_superseded_quietly(&mut f, &out, DcStatus::Cancelled, [13, 30, 120]);
    }

    /// A job adopted at a takeover dispatches nothing until its gate says it runs: the
    /// new leader asks at once, 2 s later (`retry`), then twice as long each time up to
    /// 16 s; a `JobLive` from any other address does not count; its gate's `JobLive`
    /// (or its `Submit` again) does. With no gate to answer (cut off, or gone with no
    /// gate taking the job over) it runs anyway after `confirm_give_up` (300 s); the
    /// wait never times it out. Before, it dispatched after the 3 s grace whatever the
    /// gate knew (a chaos sweep's `run-after-end`: the completed job's workflows ran
    /// again where the gate could not be reached to say so).
    #[test]
    fn an_adopted_job_waits_for_its_gate_before_dispatching() {
        let t = Instant::ZERO;
        let asks = |out: &JobOutputs| {
            sends(out)
                .filter(|(to, msg)| {
                    *to == GATE && matches!(msg, JobMsg::LeaderTransfer { job: JobId(9), .. })
                })
                .count()
        };
        // Unanswered: asked every 2 s, nothing dispatched for 300 s, then run.
        let mut f = follower_with_replica_9(t);
        f.step(hello(10, 4), t);
        assert_eq!(asks(&f.step(leader(2), t + secs(10))), 1);
        let out = run_to(&mut f, t + secs(10 + 299));
        assert!(dispatches(&out).is_empty());
        assert!(timed_out(&out).is_empty(), "not stuck: waiting");
        // At 12, 16, 24 and 40 s, then every 16 s.
        assert_eq!(asks(&out), 4 + 16);
        let out = run_to(&mut f, t + secs(10 + 300));
        assert_eq!(dispatches(&out).len(), 2, "workflows 1 and 2");
        assert_eq!(asks(&run_to(&mut f, t + secs(400))), 0, "no more asking");
        // Answered by someone else, then by its gate.
        let mut f = follower_with_replica_9(t);
        f.step(hello(10, 4), t);
        f.step(leader(2), t + secs(10));
        let mut stranger = job_live(9);
        if let ManagerInput::Msg { from, .. } = &mut stranger {
            *from = Addr::from_u32(101);
        }
        f.step(stranger, t + secs(11));
        assert!(dispatches(&run_to(&mut f, t + secs(20))).is_empty());
        let out = f.step(job_live(9), t + secs(20));
        assert_eq!(dispatches(&out).len(), 2);
        // Its gate re-sending the job (a re-claim) confirms it as well.
        let mut f = follower_with_replica_9(t);
        f.step(hello(10, 4), t);
        f.step(leader(2), t + secs(10));
        let resent = ManagerInput::Msg {
            from: GATE,
            msg: JobMsg::Submit {
                job: JobId(9),
                workflows: 3,
                gate: NodeId(100),
                gate_addr: GATE,
                gate_token: FenceToken::new(1, 1),
                timeout_ms: None,
                dcs: 1,
            },
        };
        f.step(resent, t + secs(11));
        let out = run_to(&mut f, t + secs(13));
        assert_eq!(dispatches(&out).len(), 2);
        // Its gate gone: the gates registered with us are asked too, and one that
        // heard of the end answers for it.
        let other = Addr::from_u32(102);
        let mut f = follower_with_replica_9(t);
        f.step(hello(10, 4), t);
        f.step(
            ManagerInput::Msg {
                from: other,
                msg: JobMsg::GateHello { gate: NodeId(102) },
            },
            t,
        );
        f.step(leader(2), t + secs(10));
        let out = run_to(&mut f, t + secs(12));
        let asked: Vec<Addr> = sends(&out)
            .filter(|(_, msg)| matches!(msg, JobMsg::LeaderTransfer { .. }))
            .map(|(to, _)| to)
            .collect();
        assert_eq!(asked, vec![GATE, other]);
        let over = ManagerInput::Msg {
            from: other,
            msg: JobMsg::JobOver {
                job: JobId(9),
                dc: DcId(0),
            },
        };
        let out = f.step(over, t + secs(12));
        assert!(out.iter().any(|o| matches!(
            o,
            JobOutput::Event(JobEvent::TakeoverSuperseded { job: JobId(9), .. })
        )));
        assert!(!f.has_job(JobId(9)));
    }

    /// AD-23 end to end on the leader: each progress update is recorded and answered
    /// with the buffer's signal (THROTTLE at 700 of 1000 recent updates, BATCH at 850,
    /// REJECT at 950); the level changes are events and reach the gates in the 5 s
    /// heartbeat; with backpressure off every answer says NONE.
    #[test]
    fn progress_acks_carry_the_stats_buffer_signal_and_heartbeats_the_level() {
        let t = Instant::ZERO;
        let acks = |on: bool| {
            let mut m = running_job(None, 2, 1);
            m.cfg.backpressure = on;
            let mut levels = Vec::new();
            let mut events = Vec::new();
            for k in 0..1000u64 {
                let out = m.step(
                    from_worker(
                        10,
                        JobMsg::WorkflowProgress {
                            job: JobId(7),
                            workflow: 0,
                            completed: k,
                            workflows: 1,
                        },
                    ),
                    t + millis(k),
                );
                for o in &out {
                    match o {
                        JobOutput::Send {
                            msg: JobMsg::WorkflowProgressAck { level, .. },
                            ..
                        } if levels.last().is_none_or(|(_, l)| l != level) => {
                            levels.push((k, *level));
                        }
                        JobOutput::Event(JobEvent::BackpressureLevel { level, .. }) => {
                            events.push(*level)
                        }
                        _ => {}
                    }
                }
            }
            (m, levels, events)
        };
        let (mut m, levels, events) = acks(true);
        // The k-th update makes k + 1 entries: THROTTLE from the 700th (k = 699).
        assert_eq!(
            levels,
            vec![
                (0, Level::None),
                (699, Level::Throttle),
                (849, Level::Batch),
                (949, Level::Reject)
            ]
        );
        assert_eq!(events, vec![Level::Throttle, Level::Batch, Level::Reject]);
        assert_eq!(m.stats.hot_len(), 950, "refused at REJECT: the bound holds");
        let hb = m.step(ManagerInput::Tick, t + secs(5));
        assert!(hb.contains(&JobOutput::Send {
            to: GATE,
            msg: JobMsg::ManagerHeartbeat {
                dc: DcId(0),
                level: Level::Reject,
                delay_ms: 1000,
                jobs: 1,
                leader: true,
                load: DcLoad {
                    workers: 2,
                    healthy_workers: 2,
                    // One worker said hello (4 slots, one busy); the other has not yet.
                    total_cores: 4,
                    available_cores: 3,
                    queue_depth: 0,
                },
            }
        }));
        // Records stop: the hot entries age out (60 s) at the next 10 s promotion.
        let mut now = t + secs(5);
        let mut back = None;
        while back.is_none() && now < t + secs(200) {
            now = m.next_deadline().unwrap();
            let out = m.step(ManagerInput::Tick, now);
            if out.contains(&JobOutput::Event(JobEvent::BackpressureLevel {
                dc: DcId(0),
                level: Level::None,
                fill_ppm: 0,
            })) {
                back = Some(now);
            }
        }
        assert_eq!(back, Some(t + secs(70)));
        // Off: every answer says NONE, and the full ring overwrites its oldest.
        let (m, levels, events) = acks(false);
        assert_eq!(levels, vec![(0, Level::None)]);
        assert!(events.is_empty());
        assert_eq!(m.stats.hot_len(), 1000);
    }

    /// routing.md §1: a gate registers (GateHello) and hears a heartbeat at once, then
    /// every 5 s from every manager, leader or not, with what the gate classifies the DC
    /// from; a gate silent for 90 s is forgotten.
    #[test]
    fn registered_gates_hear_heartbeats_until_they_fall_silent() {
        let t = Instant::ZERO;
        let mut m = manager_with_workers();
        m.step(
            ManagerInput::Worker {
                node: NodeId(11),
                addr: Addr::from_u32(11),
                alive: true,
                suspected: true,
            },
            t,
        );
        let gate = Addr::from_u32(77);
        let hello = || ManagerInput::Msg {
            from: gate,
            msg: JobMsg::GateHello { gate: NodeId(77) },
        };
        let beats = |out: &JobOutputs| -> Vec<(bool, DcLoad)> {
            out.iter()
                .filter_map(|o| match o {
                    JobOutput::Send {
                        to,
                        msg: JobMsg::ManagerHeartbeat { leader, load, .. },
                    } if *to == gate => Some((*leader, *load)),
                    _ => None,
                })
                .collect()
        };
        // A follower (no leader known yet) answers too: it is alive, with its view.
        let out = m.step(hello(), t);
        let expect = DcLoad {
            workers: 2,
            healthy_workers: 1,
            total_cores: 0,
            available_cores: 0,
            queue_depth: 0,
        };
        assert_eq!(beats(&out), vec![(false, expect)]);
        assert_eq!(m.next_deadline(), Some(t));
        m.step(ManagerInput::Tick, t);
        assert_eq!(m.next_deadline(), Some(t + secs(5)));
        assert_eq!(
            beats(&m.step(ManagerInput::Tick, t + secs(5))),
            vec![(false, expect)]
        );
        // Leading: its heartbeats say so, at once.
        let out = m.step(
            ManagerInput::Leader {
                leader: Some((ME, Addr::from_u32(1))),
                term: 2,
            },
            t + secs(6),
        );
        assert!(beats(&out).iter().all(|(leader, _)| *leader) && !beats(&out).is_empty());
        // Refreshed at 60 s, the registration outlives 90 s of silence only until 150 s.
        m.step(hello(), t + secs(60));
        let mut now = t + secs(60);
        let mut last = now;
        while now < t + secs(200) {
            now = match m.next_deadline() {
                Some(d) => d,
                None => break,
            };
            if !beats(&m.step(ManagerInput::Tick, now)).is_empty() {
                last = now;
            }
        }
        assert!(last < t + secs(150) && last >= t + secs(145), "{last:?}");
        // Bounded: at most 64 gates.
        for g in 0..100 {
            m.step(
                ManagerInput::Msg {
                    from: Addr::from_u32(1000 + g),
                    msg: JobMsg::GateHello {
                        gate: NodeId(1000 + g),
                    },
                },
                now,
            );
        }
        assert_eq!(m.gates_registered.len(), 64);
    }
}
