//! Message classes and priorities (AD-22, AD-37; backpressure.md §1), decided here and
//! nowhere else: every message on the wire has one class, and the class its priority.
//! CONTROL (membership, leadership, cancellation, and everything that ends or times out
//! a job, Q1) is Critical and never shed.

use crate::jobs::JobMsg;
use crate::wire::Body;
use serde::{Deserialize, Serialize};

/// Lower is more important.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Priority {
    Critical = 0,
    High = 1,
    Normal = 2,
    Low = 3,
}

impl Priority {
    pub const ALL: [Priority; 4] = [
        Priority::Critical,
        Priority::High,
        Priority::Normal,
        Priority::Low,
    ];
    pub fn index(self) -> usize {
        self as usize
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum MessageClass {
    Control,
    Dispatch,
    Data,
    Telemetry,
}

impl MessageClass {
    pub const ALL: [MessageClass; 4] = [
        MessageClass::Control,
        MessageClass::Dispatch,
        MessageClass::Data,
        MessageClass::Telemetry,
    ];

    pub fn priority(self) -> Priority {
        match self {
            MessageClass::Control => Priority::Critical,
            MessageClass::Dispatch => Priority::High,
            MessageClass::Data => Priority::Normal,
            MessageClass::Telemetry => Priority::Low,
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// The class of any envelope body: membership and election traffic is CONTROL.
pub fn body_class(body: &Body) -> MessageClass {
    match body {
        Body::Job(m) => job_class(m),
        _ => MessageClass::Control,
    }
}

/// The class of a job-plane message. Deviations from the Python handler table, per Q1:
/// workflow results, job results, timeout reports and decisions, final statuses and
/// extension requests end jobs or keep workers alive, so they are CONTROL, not DISPATCH
/// or DATA; job submission is DISPATCH.
pub fn job_class(m: &JobMsg) -> MessageClass {
    use JobMsg as J;
    match m {
        // Submission, dispatch, registration and state sync.
        J::Submit { .. }
        | J::SubmitAck { .. }
        | J::Dispatch { .. }
        | J::DispatchAck { .. }
        | J::WorkerHello { .. }
        | J::LeaderHello { .. }
        | J::Running { .. }
        | J::Replicate { .. }
        | J::ReplicaDone { .. }
        | J::ReplicaForget { .. }
        | J::GateReplicate { .. }
        | J::GateReplicaDone { .. }
        | J::GateReplicaForget { .. }
        | J::GateWithdrawing { .. }
        | J::GateWithdrawDone { .. }
        | J::GateReplicaQuery { .. }
        | J::GateReplicaUnknown { .. }
        | J::ReplicaOffer { .. }
        | J::RunningQuery { .. }
        | J::GateOrphan { .. }
        | J::GateHello { .. } => MessageClass::Dispatch,
        // Results, cancellation, leadership, timeouts, extensions.
        J::WorkflowDone { .. }
        | J::DoneEarlier { .. }
        | J::WorkflowDoneAck { .. }
        | J::JobDone { .. }
        | J::JobDoneAck { .. }
        | J::TimeoutReport { .. }
        | J::TimeoutReportAck { .. }
        | J::GlobalTimeout { .. }
        | J::LeaderTransfer { .. }
        | J::FinalStatus { .. }
        | J::Withdraw { .. }
        | J::ExtensionRequest { .. }
        | J::ExtensionResponse { .. }
        | J::CancelWorkflow { .. }
        | J::WorkflowCancelled { .. }
        | J::JobOver { .. }
        | J::JobLive { .. }
        // AD-24's answer protects the node that sends it: never shed nor limited.
        | J::RateLimited { .. } => MessageClass::Control,
        // Progress and load reports.
        J::ProgressReport { .. }
        | J::WorkflowProgress { .. }
        | J::WorkflowProgressAck { .. }
        | J::ManagerHeartbeat { .. } => MessageClass::Data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_map_to_the_specs_priorities() {
        assert_eq!(MessageClass::Control.priority(), Priority::Critical);
        assert_eq!(MessageClass::Dispatch.priority(), Priority::High);
        assert_eq!(MessageClass::Data.priority(), Priority::Normal);
        assert_eq!(MessageClass::Telemetry.priority(), Priority::Low);
        assert!(Priority::Critical < Priority::Low);
    }

    #[test]
    fn every_job_message_has_a_class_and_job_ends_are_control() {
        for m in crate::wire::tests::job_samples(3) {
            let c = job_class(&m);
            let ends_or_cancels = matches!(
                m,
                JobMsg::WorkflowDone { .. }
                    | JobMsg::JobDone { .. }
                    | JobMsg::FinalStatus { .. }
                    | JobMsg::GlobalTimeout { .. }
                    | JobMsg::TimeoutReport { .. }
                    | JobMsg::CancelWorkflow { .. }
                    | JobMsg::LeaderTransfer { .. }
            );
            if ends_or_cancels {
                assert_eq!(c, MessageClass::Control, "{m:?}");
            }
            if matches!(m, JobMsg::Submit { .. } | JobMsg::Dispatch { .. }) {
                assert_eq!(c, MessageClass::Dispatch);
            }
            if matches!(
                m,
                JobMsg::WorkflowProgress { .. } | JobMsg::ProgressReport { .. }
            ) {
                assert_eq!(c, MessageClass::Data);
            }
        }
        assert_eq!(body_class(&Body::Leave), MessageClass::Control);
    }
}
