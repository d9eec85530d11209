//! The job plane (issue 4, jobs.md §1, leadership.md §2): gates accept jobs and send each
//! to its datacenters; a DC's leader manager splits it into workflows and dispatches them
//! to workers with free slots; workers run them (the shell says when one finishes: no
//! clock here) and report; results flow back to the gate. Every dispatch and result
//! carries the job's fence token (AD-10), and receivers keep registers so a stale token
//! never takes effect.
//!
//! One machine per role ([`worker::WorkerJobs`], [`manager::ManagerJobs`],
//! [`gate::GateJobs`]), composed into the node. Job messages travel over the reliable
//! channel (frames).

pub mod gate;
pub mod manager;
pub mod silence;
pub mod worker;

use crate::backpressure::stats::Level;
use crate::id::{Addr, DcId, FenceToken, JobId, NodeId, TimeoutFence};
use crate::routing::{DcHealth, RouteReason};
use crate::timeout::extension::{Denial, ExtensionRequest, ExtensionResponse};
use crate::timeout::gate::{DcStatus, ProgressReport};
use crate::timeout::job::{TimeoutBy, TimeoutReason, TimeoutWire};
use crate::timeout::workflow::WorkflowState;
use core::time::Duration;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

/// A workflow of a job: its index `0..workflows`.
pub type WorkflowIndex = u32;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JobMsg {
    /// Gate -> manager: run `workflows` workflows of `job` in this DC.
    Submit {
        job: JobId,
        workflows: u32,
        gate: NodeId,
        gate_addr: Addr,
        gate_token: FenceToken,
        /// The job's timeout in milliseconds (none: only stuck detection applies).
        timeout_ms: Option<u64>,
        /// How many DCs run the job: one means the DC times it out alone, more that its
        /// gate decides (jobs.md §4.1).
        dcs: u16,
    },
    /// Manager -> gate. Refused by a non-leader, with the leader it knows.
    SubmitAck {
        job: JobId,
        dc: DcId,
        accepted: bool,
        leader: Option<(NodeId, Addr)>,
    },
    /// Leader manager -> worker.
    Dispatch {
        job: JobId,
        workflow: WorkflowIndex,
        token: FenceToken,
        manager: NodeId,
        manager_addr: Addr,
    },
    /// Worker -> manager: taken (a slot was free and the token is current) or not.
    DispatchAck {
        job: JobId,
        workflow: WorkflowIndex,
        token: FenceToken,
        accepted: bool,
    },
    /// Worker -> manager, resent until acknowledged.
    WorkflowDone {
        job: JobId,
        workflow: WorkflowIndex,
        token: FenceToken,
        /// Items the workflow completed: its final progress, on a message that is never
        /// shed, batched or dropped (AD-37: progress is never lost from a result).
        items: u64,
    },
    WorkflowDoneAck {
        job: JobId,
        workflow: WorkflowIndex,
    },
    /// Manager -> gate, resent until acknowledged.
    JobDone {
        job: JobId,
        dc: DcId,
        token: FenceToken,
        /// Items completed by all the job's workflows in the DC.
        items: u64,
    },
    JobDoneAck {
        job: JobId,
        dc: DcId,
    },
    /// Worker -> the DC leader it knows, periodically: its capacity.
    WorkerHello {
        free_slots: u16,
        /// All its slots (the DC's core count is their sum).
        slots: u16,
    },
    /// Leader manager -> the DC's workers, periodically.
    LeaderHello {
        term: u64,
    },
    // Variants are only ever appended: their index is their wire encoding.
    /// Worker -> a new DC leader: a workflow it is running (one message each), so a
    /// leader that took a job over does not dispatch it twice.
    Running {
        job: JobId,
        workflow: WorkflowIndex,
        token: FenceToken,
    },
    /// Leader -> the DC's other managers: a job it accepted (leadership.md §2.1's
    /// announcement), so whoever leads next can take it over.
    Replicate {
        job: JobId,
        workflows: u32,
        gate: NodeId,
        gate_addr: Addr,
        gate_token: FenceToken,
        token: FenceToken,
        /// The job's timeout tracking, instants relative to the sender's now (Q4).
        timeout: TimeoutWire,
        /// Items its completed workflows reported so far.
        items: u64,
    },
    /// Leader -> the other managers: one of the job's workflows is done.
    ReplicaDone {
        job: JobId,
        workflow: WorkflowIndex,
        items: u64,
    },
    /// Leader -> the other managers: the job is reported and acknowledged: forget it.
    ReplicaForget {
        job: JobId,
        /// How it ended, and its last dispatch token and timeout fence: the followers
        /// keep a tombstone, so whoever leads next answers a late claim with it.
        status: DcStatus,
        token: FenceToken,
        fence: TimeoutFence,
        items: u64,
    },
    /// Job-leading gate -> the other gates: the job, its DCs (bit `d` = DC `d`), its
    /// token and owner, so the gate-cluster leader can take it over.
    GateReplicate {
        job: JobId,
        workflows: u32,
        dcs_mask: u64,
        token: FenceToken,
        owner: NodeId,
        timeout_ms: Option<u64>,
    },
    /// Job-leading gate -> the other gates: DC `dc` reported the job done.
    GateReplicaDone {
        job: JobId,
        dc: DcId,
        /// How it ended there (a gate taking the job over must not read a timeout as a
        /// completion).
        status: DcStatus,
    },
    /// Job-leading gate -> the other gates: the job ended.
    GateReplicaForget {
        job: JobId,
    },
    /// Leader manager -> gate, every 10 s (gate-coordinated jobs), best effort.
    ProgressReport {
        job: JobId,
        dc: DcId,
        manager: NodeId,
        report: ProgressReport,
    },
    /// Leader manager -> gate: the job timed out here; resent each check until the gate
    /// acknowledges it or decides.
    TimeoutReport {
        job: JobId,
        dc: DcId,
        manager: NodeId,
        reason: TimeoutReason,
        elapsed_ms: u64,
        fence: TimeoutFence,
    },
    TimeoutReportAck {
        job: JobId,
        dc: DcId,
    },
    /// Gate -> each DC's leader: the job is timed out everywhere. `fence` is the one
    /// that DC last reported (jobs.md Q3). Resent until the DC's final status arrives.
    GlobalTimeout {
        job: JobId,
        reason: TimeoutReason,
        fence: TimeoutFence,
    },
    /// New leader manager -> gate: it now tracks the job (every job it adopts running;
    /// the gate of a gate-coordinated job sends its timeout decisions there, and the
    /// gate of a job that has ended answers `JobOver`).
    LeaderTransfer {
        job: JobId,
        dc: DcId,
        new_leader: NodeId,
        fence: TimeoutFence,
    },
    /// Leader manager -> gate: the job ended here other than by completing (which
    /// `JobDone` reports), or a correction. Resent until `JobDoneAck`.
    FinalStatus {
        job: JobId,
        dc: DcId,
        manager: NodeId,
        status: DcStatus,
        fence: TimeoutFence,
        token: FenceToken,
    },
    /// Worker -> the DC leader: more healthcheck time, with proof of progress (AD-26).
    ExtensionRequest {
        request: ExtensionRequest,
    },
    ExtensionResponse {
        response: ExtensionResponse,
    },
    /// Leader manager -> worker: stop this workflow (the job timed out, or the worker
    /// was evicted). Resent until `WorkflowCancelled`.
    CancelWorkflow {
        job: JobId,
        workflow: WorkflowIndex,
    },
    WorkflowCancelled {
        job: JobId,
        workflow: WorkflowIndex,
    },
    /// Worker -> the DC leader: `completed` items done by `workflows` workflows of `job`
    /// (one workflow's, or several folded together when batching, AD-37). DATA: may be
    /// delayed, batched or dropped under backpressure; never carries a result.
    WorkflowProgress {
        job: JobId,
        workflow: WorkflowIndex,
        completed: u64,
        workflows: u16,
    },
    /// Leader manager -> worker: the backpressure signal of its stats buffer (AD-23).
    WorkflowProgressAck {
        level: Level,
        delay_ms: u32,
        batch_only: bool,
    },
    /// Manager -> the gates registered with it (and, from the leader, the gates of its
    /// jobs), every 5 s: its load and backpressure level (the level the original dropped
    /// from heartbeats, Q7), and what the gate classifies the DC's health from (AD-16).
    ManagerHeartbeat {
        dc: DcId,
        level: Level,
        delay_ms: u32,
        jobs: u32,
        /// Sent by the DC's leader (whose view of the DC's capacity is authoritative).
        leader: bool,
        load: DcLoad,
    },
    /// Gate -> each manager it sees alive: register for heartbeats (routing.md §1: only
    /// DCs whose managers completed registration are classified). Refreshed every 30 s;
    /// a manager forgets a gate it has not heard from in 90 s.
    GateHello {
        gate: NodeId,
    },
    /// Gate -> every manager of DC `dc` it knows: the job has moved on from this DC (no
    /// answer to its submission came back, and the gate fell back to another DC). A
    /// leader that accepted it after all (its answer lost) cancels it rather than run a
    /// copy whose result the gate ignores, and reports how its copy ended to the gate
    /// that asked. Re-sent, less and less often, until that report comes.
    Withdraw {
        job: JobId,
        dc: DcId,
        gate_token: FenceToken,
    },
    /// Withdrawing gate -> the other gates: it withdraws `job` from `dc` under
    /// `gate_token` until the DC reports. Should it die first, the gate-cluster leader
    /// carries the withdrawal on; else the DC would run its copy, and re-send how it
    /// ended, to a gate that no longer exists. Appended after every earlier kind, so
    /// those keep their encodings.
    GateWithdrawing {
        job: JobId,
        dc: DcId,
        gate_token: FenceToken,
        owner: NodeId,
    },
    /// Withdrawing gate -> the other gates: the withdrawal of `job` from `dc` is over
    /// (the DC reported, or the gate gave up).
    GateWithdrawDone {
        job: JobId,
        dc: DcId,
    },
    /// Gate -> the gate a replica of `job` names as its owner, when that owner has been
    /// heard for `replica_ttl` without a word about the job: does it still lead it? It
    /// answers `GateReplicate` if it does, `GateReplicaForget` if it knows the job
    /// ended or moved on (the first `GateReplicaForget` was lost), and
    /// `GateReplicaUnknown` if it knows nothing of it (it restarted).
    GateReplicaQuery {
        job: JobId,
    },
    /// Owner -> a gate that asked (`GateReplicaQuery`) about `job`: it has no memory of
    /// the job at all: not leading it, not holding a replica, not among the ends it
    /// remembers for `ended_ttl`. A gate that restarted before the others declared it
    /// dead answers this for every job it led: they are orphans, though their owner is
    /// alive. Appended last, so every earlier kind keeps its encoding.
    GateReplicaUnknown {
        job: JobId,
    },
    /// Follower manager -> the DC leader: a replica the leader has not refreshed for
    /// `2 x replica_refresh` since it began to lead. The leader may not know the job:
    /// it restarted with no state and won the election, or took over without this
    /// replica. It answers `Replicate` if it runs the job, `ReplicaForget` if the job
    /// ended (its tombstone), and otherwise adopts the job as it adopts its own replicas
    /// at a takeover. The fields are `Replicate`'s; the done workflows follow as
    /// `ReplicaDone` once the leader's `Replicate` shows it has the job (frames may
    /// overtake one another). Appended last, so every earlier kind keeps its encoding.
    ReplicaOffer {
        job: JobId,
        workflows: u32,
        gate: NodeId,
        gate_addr: Addr,
        gate_token: FenceToken,
        token: FenceToken,
        timeout: TimeoutWire,
        items: u64,
    },
    /// DC leader -> its workers: which workflows of `job` do you run (a `Running` each)?
    /// Sent when it adopts a job from a follower's `ReplicaOffer`: the reports the
    /// workers send a new leader came before it knew the job. Appended last.
    RunningQuery {
        job: JobId,
    },
    /// Follower gate -> the gate-cluster leader: an orphan we hold (its owner dead, or
    /// alive with no memory of it: `lost`) that nobody has taken over twice the orphan
    /// grace after we saw it orphaned. Only the leader takes orphans over, and it may
    /// not hold this one: it restarted with no state and won the election. The fields
    /// are our replica's: `GateReplicate`'s, which DCs reported and how, and how long
    /// ago its owner last spoke of it (`heard_ms_ago`), which bounds, as for
    /// `GateReplicaUnknown`, how late a takeover may still find the DCs' tombstones.
    /// Not a `GateReplicate`: that is the owner's word and would make the job look
    /// fresher than it is. Appended last, so every earlier kind keeps its encoding.
    GateOrphan {
        job: JobId,
        workflows: u32,
        dcs_mask: u64,
        done_mask: u64,
        timed_out_mask: u64,
        failed_mask: u64,
        token: FenceToken,
        owner: NodeId,
        timeout_ms: Option<u64>,
        lost: bool,
        heard_ms_ago: u64,
    },
    /// Worker -> a new DC leader (in answer to its `LeaderHello`): a workflow it
    /// finished whose result an earlier leader acknowledged, remembered as long as its
    /// register (`forget_after`). A leader that took the job over from a replica that
    /// missed the result (the leader that saw it crashed before its `ReplicaDone`
    /// reached anyone) would run the workflow again, and time out or report a job its
    /// gate already recorded complete (`extensions` seed 28 of session 19's leak scan).
    /// Not a `WorkflowDone`: that frees a slot and starts a new extension cycle on the
    /// worker (jobs.md §2), long past. Appended last, so every earlier kind keeps its
    /// encoding.
    DoneEarlier {
        job: JobId,
        workflow: WorkflowIndex,
        items: u64,
    },
    /// AD-24 (backpressure.md §4): the receiver's rate limiter refused a message of
    /// `operation` from us; send no more of it to the receiver for `retry_after_ms`
    /// (`None`: a request over the limit itself, never). Spec's `RateLimitResponse`.
    /// CONTROL, so it is never shed or limited itself. Appended last.
    RateLimited {
        operation: crate::backpressure::rate_limit::Operation,
        retry_after_ms: Option<u64>,
        tokens_remaining: u32,
    },
    /// Gate -> a DC leader that told it it leads `job` (`LeaderTransfer`) after the job
    /// ended at the gate: the job is over everywhere, so the leader's copy was adopted
    /// from a replica that missed its end in the DC (its leader was cut off when the end
    /// was replicated, and the managers that kept the tombstone are out of reach). The
    /// leader stops the copy before it runs anything again. Appended last.
    JobOver {
        job: JobId,
        dc: DcId,
    },
    /// Gate -> a DC leader that told it it leads `job` (`LeaderTransfer`): the job runs,
    /// and runs in that DC; the leader may dispatch what nobody runs (it dispatches
    /// nothing of a job it adopted until its gate says so, or `confirm_give_up`).
    /// Appended last.
    JobLive {
        job: JobId,
        dc: DcId,
    },
}

/// A DC's capacity as one of its managers sees it (routing.md §1, §3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DcLoad {
    /// Workers its membership sees alive or suspected...
    pub workers: u16,
    /// ...and of those, the ones not suspected.
    pub healthy_workers: u16,
    /// Workflow slots of those workers, and how many are free (the leader's count;
    /// a follower, which dispatches nothing, reports what the workers last told it).
    pub total_cores: u32,
    pub available_cores: u32,
    /// Workflows waiting for a slot.
    pub queue_depth: u32,
}

/// What the job plane reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JobEvent {
    /// A gate accepted a job.
    Submitted {
        job: JobId,
        dcs: u16,
    },
    /// A DC's leader manager took the job.
    Accepted {
        job: JobId,
        dc: DcId,
        token: FenceToken,
    },
    /// A worker started a workflow; the shell decides when it finishes
    /// (`WorkflowFinished` input).
    WorkflowStarted {
        job: JobId,
        workflow: WorkflowIndex,
        token: FenceToken,
    },
    /// A fenced message older than the receiver's register was refused (no effect).
    StaleRejected {
        job: JobId,
        token: FenceToken,
    },
    /// A gate recorded the job's final status.
    Finished {
        job: JobId,
        state: JobState,
    },
    /// A job's state left this node (every per-job table entry is gone).
    Forgotten {
        job: JobId,
    },
    /// A new DC leader took over a job its predecessor led, under a newer token.
    TakenOver {
        job: JobId,
        dc: DcId,
        token: FenceToken,
    },
    /// The gate-cluster leader took the job of a dead job-leading gate over.
    GateTakenOver {
        job: JobId,
        token: FenceToken,
    },
    /// A workflow changed state on the DC leader (AD-33; always a legal edge).
    WorkflowTransition {
        job: JobId,
        dc: DcId,
        workflow: WorkflowIndex,
        from: WorkflowState,
        to: WorkflowState,
    },
    /// A manager ran the job's timeout action (at most once per job and DC).
    TimedOut {
        job: JobId,
        dc: DcId,
        by: TimeoutBy,
        reason: TimeoutReason,
    },
    /// A gate-coordinated manager reported a timeout to the gate (first report only).
    TimeoutReported {
        job: JobId,
        dc: DcId,
        reason: TimeoutReason,
    },
    /// A gate declared the job timed out in every DC (at most once per job).
    GlobalTimeout {
        job: JobId,
        reason: TimeoutReason,
    },
    /// A manager refused a gate's decision: its fence was stale, or the job had ended.
    GlobalTimeoutRefused {
        job: JobId,
        dc: DcId,
        fence: TimeoutFence,
        stale: bool,
    },
    ExtensionGranted {
        worker: NodeId,
        grant_us: u64,
        /// Its place in the worker's cycle: 1 for the first grant after a reset.
        nth: u32,
        /// Jobs whose effective timeout grew by it.
        jobs: u16,
    },
    ExtensionDenied {
        worker: NodeId,
        denial: Denial,
    },
    /// A grant lengthened this job's effective timeout (one per job the worker runs).
    JobExtended {
        job: JobId,
        dc: DcId,
        worker: NodeId,
        grant_us: u64,
    },
    /// A lifecycle step the table does not allow was asked for (a bug): nothing changed.
    InvalidTransition {
        job: JobId,
        workflow: WorkflowIndex,
        from: WorkflowState,
        to: WorkflowState,
    },
    /// A gate's record of the items a completed job's DCs reported (with `Finished`).
    Items {
        job: JobId,
        items: u64,
    },
    /// A leader manager's stats buffer changed backpressure level (AD-23).
    BackpressureLevel {
        dc: DcId,
        level: Level,
        fill_ppm: u32,
    },
    /// A worker's effective flush level changed (AD-37).
    FlushLevel {
        level: Level,
    },
    /// A gate's view of a DC's backpressure changed (AD-37).
    DcBackpressure {
        dc: DcId,
        level: Level,
    },
    /// A worker flushed progress: sent, folded into a batch, or dropped at REJECT.
    ProgressFlushed {
        sent: u16,
        batched: u16,
        dropped: u16,
    },
    /// A worker denied three times running, or exhausted past its grace: its workflows
    /// are taken back.
    WorkerEvicted {
        worker: NodeId,
    },
    /// A gate's classification of a DC changed (AD-16; `None`: not classified before).
    DcHealthChanged {
        dc: DcId,
        from: Option<DcHealth>,
        to: DcHealth,
    },
    /// A gate routed a job (AD-36): the primary it chose, the bucket it chose from, why,
    /// in which mode, and the primary's score in thousandths. One `RouteScore` per
    /// eligible DC follows, in chain order.
    Routed {
        job: JobId,
        primary: DcId,
        primaries: u16,
        fallbacks: u16,
        bucket: DcHealth,
        reason: RouteReason,
        bootstrap: bool,
        score_milli: u64,
    },
    /// One candidate's score components in a routing decision.
    RouteScore {
        job: JobId,
        dc: DcId,
        bucket: DcHealth,
        rtt_ucb_ms: u32,
        load_milli: u32,
        quality_milli: u32,
        score_milli: u64,
    },
    /// A gate sent a job to a DC: one of the routed primaries, or (`fallback`) the next
    /// DC of the chain after one failed. `bucket` is the DC's bucket in the gate's view
    /// then, `best` the best bucket with an eligible DC (the checker's safety inputs).
    RouteDispatch {
        job: JobId,
        dc: DcId,
        bucket: DcHealth,
        best: DcHealth,
        fallback: bool,
    },
    /// A job's routing key changed primary DC (`ratio_milli`: new score / old score).
    RouteSwitched {
        job: JobId,
        from: DcId,
        to: DcId,
        reason: RouteReason,
        ratio_milli: u32,
    },
    /// A dispatch to `dc` failed: it ranks with a doubled score for this routing key for
    /// 120 s, and the job moves on down its fallback chain.
    RouteCooldown {
        job: JobId,
        dc: DcId,
    },
    /// A DC leader that took a job over from its replica learned from a peer's tombstone
    /// that the job had already ended in the DC (the replica missed its end): it is
    /// not run again; what the takeover had dispatched is cancelled.
    TakeoverSuperseded {
        job: JobId,
        dc: DcId,
        /// How the job had ended.
        status: crate::timeout::gate::DcStatus,
    },
    /// The DC leader cancelled a job its gate withdrew (`JobMsg::Withdraw`): the gate
    /// had fallen back to another DC.
    Withdrawn {
        job: JobId,
        dc: DcId,
    },
    /// The gate-cluster leader took in an orphan a follower handed it
    /// (`JobMsg::GateOrphan`): it learned of the job's orphanhood only now, and takes
    /// it over at its next orphan check. Last, so the trace keeps every earlier kind's
    /// encoding (and every earlier trace hash).
    GateOrphanTakenIn {
        job: JobId,
        owner: NodeId,
    },
    /// A DC leader gave up the final report of a job that ended, unanswered for
    /// `report_give_up` (600 s): the job is forgotten into its tombstone, which answers
    /// the gate if it asks again.
    FinalReportAbandoned {
        job: JobId,
        dc: DcId,
    },
    /// The gate-cluster leader did not take over an orphan whose owner's last word
    /// about it is older than `ended_ttl - give_up` (300 s): leadership.md §2.2's job
    /// ownerless for 300 s. Had it ended, the DCs' tombstones may be gone, and a
    /// takeover would run it again. The replica is dropped; the job gets no outcome
    /// from the gate cluster (its DCs give their final reports up in time).
    GateOrphanAbandoned {
        job: JobId,
        owner: NodeId,
    },
    /// The job layer declared `worker` dead for `job` (AD-30): the job's workflows on it
    /// (`workflows` of them) were taken back and cancelled on it; its other jobs stay.
    /// (Last, so the variants before it keep their trace encoding.)
    WorkerFailedJob {
        job: JobId,
        worker: NodeId,
        workflows: u32,
    },
    /// AD-22 (backpressure.md §3): a gate too loaded to take new work refused a
    /// client's submission before dispatch (the Python's `JobAck{accepted: false,
    /// "...under load..."}`); the job never entered the system. (Last, as above.)
    SubmissionShed {
        job: JobId,
    },
    /// AD-24 (backpressure.md §4): this node's rate limiter refused a message of
    /// `operation` from `client` (answered with `JobMsg::RateLimited`), or, for a
    /// client's submission to a gate, the submission (`job`): it never entered the
    /// system, and the client is told to wait `retry_after_ms`. (Last, as above.)
    RateLimited {
        client: crate::backpressure::rate_limit::ClientId,
        operation: crate::backpressure::rate_limit::Operation,
        job: Option<JobId>,
        retry_after_ms: Option<u64>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JobState {
    Completed,
    Failed,
    TimedOut,
}

/// What a job machine asks the node to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobOutput {
    Send {
        to: Addr,
        msg: JobMsg,
    },
    Event(JobEvent),
    /// A worker earned an extension: stretch its suspicion timer by as much (AD-26's
    /// membership side; the node passes it to its DC membership).
    ExtendSuspicion {
        node: NodeId,
        by: Duration,
    },
    /// AD-30's job layer, for the node's DC membership: suspect `worker` of failing
    /// `job` (a job running on `job_size` workers; membership.md §9's `SuspectForJob`).
    SuspectForJob {
        job: JobId,
        worker: NodeId,
        job_size: u32,
    },
    /// We heard from `worker` about `job`: its job suspicion or death mark ends.
    RefuteForJob {
        job: JobId,
        worker: NodeId,
    },
    /// We are done with `job`: the job layer drops its entries.
    ClearJob {
        job: JobId,
    },
    /// AD-26: a worker's extension budget runs low: the DC membership probes it now, so
    /// that its answer (a liveness answer, `timeout::extension`) can refill the budget
    /// before the worker's next request.
    ProbeWorker {
        node: NodeId,
    },
}

pub type JobOutputs = SmallVec<[JobOutput; 4]>;
