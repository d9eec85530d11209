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
pub mod worker;

use crate::id::{Addr, DcId, FenceToken, JobId, NodeId};
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
    },
    JobDoneAck {
        job: JobId,
        dc: DcId,
    },
    /// Worker -> the DC leader it knows, periodically: its capacity.
    WorkerHello {
        free_slots: u16,
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
    },
    /// Leader -> the other managers: one of the job's workflows is done.
    ReplicaDone {
        job: JobId,
        workflow: WorkflowIndex,
    },
    /// Leader -> the other managers: the job is reported and acknowledged: forget it.
    ReplicaForget {
        job: JobId,
    },
    /// Job-leading gate -> the other gates: the job, its DCs (bit `d` = DC `d`), its
    /// token and owner, so the hash-ring successor can take it over.
    GateReplicate {
        job: JobId,
        workflows: u32,
        dcs_mask: u64,
        token: FenceToken,
        owner: NodeId,
    },
    /// Job-leading gate -> the other gates: DC `dc` reported the job done.
    GateReplicaDone {
        job: JobId,
        dc: DcId,
    },
    /// Job-leading gate -> the other gates: the job ended.
    GateReplicaForget {
        job: JobId,
    },
}

/// What the job plane reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JobEvent {
    /// A gate accepted a job.
    Submitted { job: JobId, dcs: u16 },
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
    StaleRejected { job: JobId, token: FenceToken },
    /// A gate recorded the job's final status.
    Finished { job: JobId, state: JobState },
    /// A job's state left this node (every per-job table entry is gone).
    Forgotten { job: JobId },
    /// A new DC leader took over a job its predecessor led, under a newer token.
    TakenOver {
        job: JobId,
        dc: DcId,
        token: FenceToken,
    },
    /// The hash-ring successor of a dead job-leading gate took the job over.
    GateTakenOver { job: JobId, token: FenceToken },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JobState {
    Completed,
    Failed,
}

/// What a job machine asks the node to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobOutput {
    Send { to: Addr, msg: JobMsg },
    Event(JobEvent),
}

pub type JobOutputs = SmallVec<[JobOutput; 4]>;
