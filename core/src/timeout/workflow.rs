//! The workflow lifecycle machine (AD-33, jobs.md §3): every state change of a job's
//! workflows goes through [`Lifecycle::transition`], which refuses any edge the table does
//! not have, keeps a bounded history, stamps the workflow's last-progress time and tells
//! every registered progress listener. Sans-IO, a listener is not a callback: a legal
//! transition returns one [`Progressed`] notice per listener, and the manager routes each
//! to the job's timeout state (`report_progress`). A failing listener cannot block the
//! others or undo the transition because there is nothing to fail: notices are data.
//!
//! Workflows are numbered `0..n` inside their job (see [`crate::jobs::WorkflowIndex`]).

use crate::jobs::WorkflowIndex;
use crate::time::Instant;
use core::time::Duration;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;
use std::collections::VecDeque;

/// AD-33's states; the wire strings are the original's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum WorkflowState {
    Pending,
    Dispatched,
    Running,
    Completed,
    Failed,
    FailedCancelingDependents,
    FailedReadyForRetry,
    Cancelling,
    Cancelled,
    Aggregated,
}

impl WorkflowState {
    pub const ALL: [WorkflowState; 10] = [
        WorkflowState::Pending,
        WorkflowState::Dispatched,
        WorkflowState::Running,
        WorkflowState::Completed,
        WorkflowState::Failed,
        WorkflowState::FailedCancelingDependents,
        WorkflowState::FailedReadyForRetry,
        WorkflowState::Cancelling,
        WorkflowState::Cancelled,
        WorkflowState::Aggregated,
    ];

    /// Completed, Cancelled and Aggregated: never left. (The Failed* states are not
    /// terminal: they lead back to Pending.)
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            WorkflowState::Completed | WorkflowState::Cancelled | WorkflowState::Aggregated
        )
    }

    pub fn wire_name(self) -> &'static str {
        match self {
            WorkflowState::Pending => "pending",
            WorkflowState::Dispatched => "dispatched",
            WorkflowState::Running => "running",
            WorkflowState::Completed => "completed",
            WorkflowState::Failed => "failed",
            WorkflowState::FailedCancelingDependents => "failed_canceling_deps",
            WorkflowState::FailedReadyForRetry => "failed_ready",
            WorkflowState::Cancelling => "cancelling",
            WorkflowState::Cancelled => "cancelled",
            WorkflowState::Aggregated => "aggregated",
        }
    }

    /// The transition table of jobs.md §3, nothing more.
    pub fn can_become(self, to: WorkflowState) -> bool {
        use WorkflowState::*;
        matches!(
            (self, to),
            (Pending, Dispatched | Cancelling | Failed)
                | (Dispatched, Running | Cancelling | Failed)
                | (Running, Completed | Failed | Cancelling | Aggregated)
                | (Failed, FailedCancelingDependents | Cancelled)
                | (FailedCancelingDependents, FailedReadyForRetry)
                | (FailedReadyForRetry, Pending)
                | (Cancelling, Cancelled)
        )
    }
}

/// Why a workflow changed state (kept in the history).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TransitionReason {
    Dispatched,
    /// The worker took the dispatch.
    Accepted,
    /// The worker refused the dispatch (no free slot).
    Refused,
    /// No answer to the dispatch within the dispatch timeout.
    DispatchLost,
    /// Its worker died or was evicted.
    WorkerFailed,
    /// Recovery step: dependents cancelled (our workflows have none), ready to retry.
    Recovery,
    Finished,
    /// The job timed out (or was cancelled): stop it.
    Cancel,
    /// The worker confirmed the cancel, or is gone.
    CancelConfirmed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    pub workflow: WorkflowIndex,
    pub from: WorkflowState,
    pub to: WorkflowState,
    pub at: Instant,
    pub reason: TransitionReason,
}

/// A registered progress listener's notice of one legal transition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progressed {
    pub listener: ListenerId,
    pub workflow: WorkflowIndex,
    pub from: WorkflowState,
    pub to: WorkflowState,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ListenerId(pub u32);

/// A refused transition (the table has no such edge): nothing changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidTransition {
    pub workflow: WorkflowIndex,
    pub from: WorkflowState,
    pub to: WorkflowState,
}

pub type Notices = SmallVec<[Progressed; 2]>;

#[derive(Clone, Debug)]
struct Slot {
    state: WorkflowState,
    /// None once cleaned up, or never transitioned.
    last_progress_at: Option<Instant>,
}

/// The lifecycle of one job's workflows.
#[derive(Clone, Debug)]
pub struct Lifecycle {
    slots: Vec<Slot>,
    history: VecDeque<Transition>,
    history_cap: usize,
    listeners: SmallVec<[ListenerId; 2]>,
}

impl Lifecycle {
    /// `workflows` workflows, all Pending; the history keeps the last `history_cap`
    /// transitions of the job (a bound: a job's state never grows without limit).
    pub fn new(workflows: u32, history_cap: usize) -> Lifecycle {
        Lifecycle {
            slots: vec![
                Slot {
                    state: WorkflowState::Pending,
                    last_progress_at: None,
                };
                workflows as usize
            ],
            history: VecDeque::new(),
            history_cap,
            listeners: SmallVec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Idempotent.
    pub fn register_progress_listener(&mut self, id: ListenerId) {
        if !self.listeners.contains(&id) {
            self.listeners.push(id);
        }
    }

    /// Whether it was registered.
    pub fn unregister_progress_listener(&mut self, id: ListenerId) -> bool {
        let before = self.listeners.len();
        self.listeners.retain(|l| *l != id);
        self.listeners.len() != before
    }

    /// An unknown workflow reads as Pending (jobs.md §3).
    pub fn state(&self, wf: WorkflowIndex) -> WorkflowState {
        self.slots
            .get(wf as usize)
            .map_or(WorkflowState::Pending, |s| s.state)
    }

    pub fn states(&self) -> impl Iterator<Item = (WorkflowIndex, WorkflowState)> + '_ {
        self.slots
            .iter()
            .enumerate()
            .map(|(i, s)| (i as WorkflowIndex, s.state))
    }

    pub fn transition(
        &mut self,
        wf: WorkflowIndex,
        to: WorkflowState,
        reason: TransitionReason,
        now: Instant,
    ) -> Result<Notices, InvalidTransition> {
        let Some(slot) = self.slots.get_mut(wf as usize) else {
            return Err(InvalidTransition {
                workflow: wf,
                from: WorkflowState::Pending,
                to,
            });
        };
        let from = slot.state;
        if !from.can_become(to) {
            return Err(InvalidTransition {
                workflow: wf,
                from,
                to,
            });
        }
        slot.state = to;
        slot.last_progress_at = Some(now);
        if self.history.len() >= self.history_cap {
            self.history.pop_front();
        }
        if self.history_cap > 0 {
            self.history.push_back(Transition {
                workflow: wf,
                from,
                to,
                at: now,
                reason,
            });
        }
        Ok(self
            .listeners
            .iter()
            .map(|&listener| Progressed {
                listener,
                workflow: wf,
                from,
                to,
            })
            .collect())
    }

    /// Rebuild a workflow's state without a transition (a new leader reconstructing a
    /// job it took over: what it learns is not progress, and no edge was taken here).
    pub fn restore(&mut self, wf: WorkflowIndex, state: WorkflowState) {
        if let Some(s) = self.slots.get_mut(wf as usize) {
            s.state = state;
        }
    }

    pub fn time_since_progress(&self, wf: WorkflowIndex, now: Instant) -> Option<Duration> {
        self.slots
            .get(wf as usize)?
            .last_progress_at
            .map(|t| now.saturating_since(t))
    }

    /// Workflows without a transition for at least `threshold`, most stuck first (ties
    /// by index); terminal ones skipped if `exclude_terminal`.
    pub fn stuck_workflows(
        &self,
        threshold: Duration,
        exclude_terminal: bool,
        now: Instant,
    ) -> Vec<(WorkflowIndex, WorkflowState, Duration)> {
        let mut v: Vec<_> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| !(exclude_terminal && s.state.is_terminal()))
            .filter_map(|(i, s)| {
                let t = s.last_progress_at?;
                let elapsed = now.saturating_since(t);
                (elapsed >= threshold).then_some((i as WorkflowIndex, s.state, elapsed))
            })
            .collect();
        v.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
        v
    }

    /// Drop a workflow's progress time and history (its state reads Pending again only
    /// through `state` of an unknown index: the slot stays, so indices stay stable).
    pub fn cleanup(&mut self, wf: WorkflowIndex) {
        if let Some(s) = self.slots.get_mut(wf as usize) {
            s.last_progress_at = None;
        }
        self.history.retain(|t| t.workflow != wf);
    }

    pub fn state_counts(&self) -> [(WorkflowState, u32); 10] {
        let mut counts = WorkflowState::ALL.map(|s| (s, 0u32));
        for s in &self.slots {
            let i = WorkflowState::ALL
                .iter()
                .position(|x| *x == s.state)
                .expect("every state is listed");
            counts[i].1 += 1;
        }
        counts
    }

    pub fn workflows_in(&self, state: WorkflowState) -> impl Iterator<Item = WorkflowIndex> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(move |(_, s)| s.state == state)
            .map(|(i, _)| i as WorkflowIndex)
    }

    pub fn count_in(&self, state: WorkflowState) -> u32 {
        self.slots.iter().filter(|s| s.state == state).count() as u32
    }

    pub fn history(&self) -> impl Iterator<Item = &Transition> {
        self.history.iter()
    }

    /// Worker-failure recovery for a workflow that was Dispatched or Running (jobs.md
    /// §3): Failed, FailedCancelingDependents (our workflows have no dependents, so
    /// nothing to cancel), FailedReadyForRetry, then Pending again. All four edges are in
    /// the table; a workflow in any other state is left alone.
    pub fn recover(
        &mut self,
        wf: WorkflowIndex,
        reason: TransitionReason,
        now: Instant,
    ) -> Result<Notices, InvalidTransition> {
        let from = self.state(wf);
        if !matches!(from, WorkflowState::Dispatched | WorkflowState::Running) {
            return Err(InvalidTransition {
                workflow: wf,
                from,
                to: WorkflowState::Failed,
            });
        }
        let mut notices = self.transition(wf, WorkflowState::Failed, reason, now)?;
        for to in [
            WorkflowState::FailedCancelingDependents,
            WorkflowState::FailedReadyForRetry,
            WorkflowState::Pending,
        ] {
            notices.extend(self.transition(wf, to, TransitionReason::Recovery, now)?);
        }
        Ok(notices)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::secs;
    use WorkflowState::*;

    #[test]
    fn the_table_is_the_specs_and_nothing_else() {
        let legal = [
            (Pending, Dispatched),
            (Pending, Cancelling),
            (Pending, Failed),
            (Dispatched, Running),
            (Dispatched, Cancelling),
            (Dispatched, Failed),
            (Running, Completed),
            (Running, Failed),
            (Running, Cancelling),
            (Running, Aggregated),
            (Failed, FailedCancelingDependents),
            (Failed, Cancelled),
            (FailedCancelingDependents, FailedReadyForRetry),
            (FailedReadyForRetry, Pending),
            (Cancelling, Cancelled),
        ];
        for from in WorkflowState::ALL {
            for to in WorkflowState::ALL {
                assert_eq!(
                    from.can_become(to),
                    legal.contains(&(from, to)),
                    "{from:?} -> {to:?}"
                );
            }
            if from.is_terminal() {
                assert!(WorkflowState::ALL.iter().all(|t| !from.can_become(*t)));
            }
        }
        assert_eq!(
            WorkflowState::ALL
                .iter()
                .filter(|s| s.is_terminal())
                .count(),
            3
        );
        assert_eq!(
            FailedCancelingDependents.wire_name(),
            "failed_canceling_deps"
        );
    }

    #[test]
    fn an_illegal_transition_changes_nothing_and_a_legal_one_tells_every_listener() {
        let t = Instant::ZERO;
        let mut l = Lifecycle::new(2, 8);
        l.register_progress_listener(ListenerId(1));
        l.register_progress_listener(ListenerId(1)); // idempotent
        l.register_progress_listener(ListenerId(2));
        let err = l.transition(0, Running, TransitionReason::Accepted, t);
        assert_eq!(
            err,
            Err(InvalidTransition {
                workflow: 0,
                from: Pending,
                to: Running
            })
        );
        assert_eq!(l.state(0), Pending);
        assert_eq!(l.time_since_progress(0, t), None);
        assert_eq!(l.history().count(), 0);
        let n = l
            .transition(0, Dispatched, TransitionReason::Dispatched, t + secs(1))
            .unwrap();
        assert_eq!(n.len(), 2);
        assert_eq!(
            n[1],
            Progressed {
                listener: ListenerId(2),
                workflow: 0,
                from: Pending,
                to: Dispatched
            }
        );
        assert_eq!(l.time_since_progress(0, t + secs(4)), Some(secs(3)));
        assert!(l.unregister_progress_listener(ListenerId(1)));
        assert!(!l.unregister_progress_listener(ListenerId(1)));
        let n = l
            .transition(0, Running, TransitionReason::Accepted, t + secs(2))
            .unwrap();
        assert_eq!(n.len(), 1);
        // An index past the job reads Pending and cannot move.
        assert_eq!(l.state(7), Pending);
        assert!(l
            .transition(7, Dispatched, TransitionReason::Dispatched, t)
            .is_err());
    }

    #[test]
    fn stuck_workflows_most_stuck_first_terminal_skipped_on_request() {
        let t = Instant::ZERO;
        let mut l = Lifecycle::new(4, 16);
        for wf in 0..4 {
            l.transition(
                wf,
                Dispatched,
                TransitionReason::Dispatched,
                t + secs(wf as u64),
            )
            .unwrap();
        }
        l.transition(0, Running, TransitionReason::Accepted, t + secs(5))
            .unwrap();
        l.transition(0, Completed, TransitionReason::Finished, t + secs(5))
            .unwrap();
        // At 130 s with a 120 s threshold: wf 1 idle 129 s, wf 2 128 s, wf 3 127 s; wf 0
        // (completed at 5 s, idle 125 s) is terminal.
        let now = t + secs(130);
        let stuck = l.stuck_workflows(secs(120), true, now);
        assert_eq!(
            stuck,
            vec![
                (1, Dispatched, secs(129)),
                (2, Dispatched, secs(128)),
                (3, Dispatched, secs(127)),
            ]
        );
        let all = l.stuck_workflows(secs(120), false, now);
        assert_eq!(all.len(), 4);
        assert_eq!(all[3], (0, Completed, secs(125)));
        // Ties broken by index.
        let mut l = Lifecycle::new(2, 0);
        l.transition(1, Failed, TransitionReason::WorkerFailed, t)
            .unwrap();
        l.transition(0, Failed, TransitionReason::WorkerFailed, t)
            .unwrap();
        let s = l.stuck_workflows(secs(1), true, t + secs(1));
        assert_eq!(s, vec![(0, Failed, secs(1)), (1, Failed, secs(1))]);
        // Cleanup forgets the progress time.
        l.cleanup(0);
        assert_eq!(l.time_since_progress(0, t), None);
        assert_eq!(l.stuck_workflows(secs(1), true, t + secs(1)).len(), 1);
    }

    #[test]
    fn recovery_walks_the_table_back_to_pending_and_history_is_bounded() {
        let t = Instant::ZERO;
        let mut l = Lifecycle::new(1, 3);
        l.register_progress_listener(ListenerId(0));
        l.transition(0, Dispatched, TransitionReason::Dispatched, t)
            .unwrap();
        let n = l.recover(0, TransitionReason::WorkerFailed, t).unwrap();
        assert_eq!(
            n.iter().map(|p| p.to).collect::<Vec<_>>(),
            vec![
                Failed,
                FailedCancelingDependents,
                FailedReadyForRetry,
                Pending
            ]
        );
        assert_eq!(l.state(0), Pending);
        assert_eq!(l.history().count(), 3, "the oldest transitions drop out");
        assert_eq!(l.history().last().unwrap().to, Pending);
        // Only a dispatched or running workflow is recovered.
        assert!(l.recover(0, TransitionReason::WorkerFailed, t).is_err());
        assert_eq!(l.state_counts()[0], (Pending, 1));
        assert_eq!(l.count_in(Pending), 1);
        assert_eq!(l.workflows_in(Pending).collect::<Vec<_>>(), vec![0]);
    }
}
