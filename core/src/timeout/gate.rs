//! The gate's global timeout tracker (AD-34, jobs.md §5): for each multi-DC job, what
//! each DC's leader last said; every 15 s one decision for the whole job, made at most
//! once, echoing to each DC the fence that DC last reported (Q3).
//!
//! Decisions, first that holds wins (the original's code order, Q9):
//! 1. the job is past `timeout + the largest DC extension total`;
//! 2. every running DC *reported* no progress for 180 s. A DC the gate has not heard
//!    from lately is not counted as stuck but as unreachable: the gate cannot tell a
//!    working DC behind a partition from a stuck one, and a decision it cannot deliver
//!    would only end the job at the gate while the DC runs on (its own 300 s fallback
//!    covers a DC that is truly stuck). Q9's proposal, judged on `has_recent_progress`;
//! 3. more than half of the target DCs timed out;
//! 4. (added) no DC is running any more and at least one timed out. The spec's check
//!    does nothing once no DC runs, so a DC that reported its stall while the others
//!    completed would wait 300 s for the fallback; deciding at once is what its report
//!    asked for.

use crate::id::{Addr, DcId, JobId, TimeoutFence};
use crate::time::{secs, Instant};
use crate::timeout::job::TimeoutReason;
use core::time::Duration;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq)]
pub struct GateTimeoutConfig {
    /// `GATE_TIMEOUT_CHECK_INTERVAL`.
    pub check_interval: Duration,
    /// `GATE_ALL_DC_STUCK_THRESHOLD`.
    pub stuck_threshold: Duration,
    /// A DC whose last report is older than this is unreachable, not stuck (rule 2).
    pub heard_within: Duration,
    pub max_jobs: usize,
}

impl Default for GateTimeoutConfig {
    fn default() -> Self {
        GateTimeoutConfig {
            check_interval: secs(15),
            stuck_threshold: secs(180),
            heard_within: secs(30),
            max_jobs: 10_000,
        }
    }
}

/// A DC's status for a job: one enum for the manager's "timeout" and the gate's
/// "timed_out" (jobs.md §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DcStatus {
    Running,
    Completed,
    Failed,
    TimedOut,
    Cancelled,
}

impl DcStatus {
    pub fn is_terminal(self) -> bool {
        self != DcStatus::Running
    }
}

/// A manager's progress report (jobs.md §6's `JobProgressReport`, the gate's part).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProgressReport {
    pub workflows_total: u32,
    pub workflows_completed: u32,
    pub workflows_failed: u32,
    pub has_recent_progress: bool,
    pub fence: TimeoutFence,
    pub total_extensions_us: u64,
    pub max_worker_extension_us: u64,
    pub workers_with_extensions: u32,
}

#[derive(Clone, Debug, PartialEq)]
struct DcTrack {
    dc: DcId,
    status: DcStatus,
    last_progress: Instant,
    last_heard: Instant,
    manager: Option<Addr>,
    fence: TimeoutFence,
    total_extensions: Duration,
}

impl DcTrack {
    /// A DC the job was just sent to.
    fn sent(dc: DcId, now: Instant) -> DcTrack {
        DcTrack {
            dc,
            status: DcStatus::Running,
            last_progress: now,
            last_heard: now,
            manager: None,
            fence: TimeoutFence(0),
            total_extensions: Duration::ZERO,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
struct Tracking {
    submitted_at: Instant,
    timeout: Option<Duration>,
    dcs: Vec<DcTrack>,
    globally_timed_out: bool,
    reason: Option<TimeoutReason>,
    /// The gate's own declaration counter (not sent: each DC gets its own fence back).
    declarations: u64,
}

/// A global decision: send `JobGlobalTimeout` with each fence to each manager.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Declaration {
    pub job: JobId,
    pub reason: TimeoutReason,
    /// (DC, its manager if known, the fence that DC last reported) for every DC not
    /// completed, failed or cancelled.
    pub to: Vec<(DcId, Option<Addr>, TimeoutFence)>,
}

#[derive(Clone, Debug)]
pub struct GateTimeouts {
    cfg: GateTimeoutConfig,
    jobs: BTreeMap<JobId, Tracking>,
}

impl GateTimeouts {
    pub fn new(cfg: GateTimeoutConfig) -> GateTimeouts {
        GateTimeouts {
            cfg,
            jobs: BTreeMap::new(),
        }
    }

    pub fn config(&self) -> &GateTimeoutConfig {
        &self.cfg
    }
    pub fn len(&self) -> usize {
        self.jobs.len()
    }
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }
    pub fn tracks(&self, job: JobId) -> bool {
        self.jobs.contains_key(&job)
    }

    /// Start tracking a job sent to `dcs` (all running, progress now). False if the table
    /// is full (the job then runs without a global timeout; its DCs still report and
    /// fall back on their own).
    pub fn start(
        &mut self,
        job: JobId,
        timeout: Option<Duration>,
        dcs: &[DcId],
        now: Instant,
    ) -> bool {
        if self.jobs.len() >= self.cfg.max_jobs && !self.jobs.contains_key(&job) {
            return false;
        }
        self.jobs.insert(
            job,
            Tracking {
                submitted_at: now,
                timeout,
                dcs: dcs.iter().map(|&dc| DcTrack::sent(dc, now)).collect(),
                globally_timed_out: false,
                reason: None,
                declarations: 0,
            },
        );
        true
    }

    fn dc(&mut self, job: JobId, dc: DcId) -> Option<&mut DcTrack> {
        self.jobs
            .get_mut(&job)
            .and_then(|t| t.dcs.iter_mut().find(|d| d.dc == dc))
    }

    /// A `JobProgressReport`: dropped if the DC ended or its fence is below the last one.
    pub fn on_progress(
        &mut self,
        job: JobId,
        dc: DcId,
        from: Addr,
        r: &ProgressReport,
        now: Instant,
    ) {
        let Some(d) = self.dc(job, dc) else { return };
        if d.status.is_terminal() || r.fence < d.fence {
            return;
        }
        d.manager = Some(from);
        d.fence = r.fence;
        d.total_extensions = Duration::from_micros(r.total_extensions_us);
        d.last_heard = now;
        // Receipt time, on the gate's clock (Q4); a report of no progress does not move it.
        if r.has_recent_progress {
            d.last_progress = now;
        }
        if r.workflows_total > 0 && r.workflows_completed == r.workflows_total {
            d.status = DcStatus::Completed;
        }
    }

    /// A `JobTimeoutReport`: the DC timed out. Returns whether to acknowledge it.
    pub fn on_timeout_report(
        &mut self,
        job: JobId,
        dc: DcId,
        from: Addr,
        fence: TimeoutFence,
        now: Instant,
    ) -> bool {
        let Some(d) = self.dc(job, dc) else {
            return false;
        };
        if fence < d.fence {
            return false;
        }
        d.manager = Some(from);
        d.fence = fence;
        d.last_heard = now;
        if d.status == DcStatus::Running {
            d.status = DcStatus::TimedOut;
        }
        true
    }

    /// A `JobLeaderTransfer`: the DC's new leader, if its fence is newer.
    pub fn on_leader_transfer(&mut self, job: JobId, dc: DcId, to: Addr, fence: TimeoutFence) {
        if let Some(d) = self.dc(job, dc) {
            if fence > d.fence {
                d.manager = Some(to);
                d.fence = fence;
            }
        }
    }

    /// The gate moved `job` from DC `old` (which never took it) to `new` (routing
    /// fallback): `new` is tracked from `now`, as a DC just sent the job.
    pub fn replace_dc(&mut self, job: JobId, old: DcId, new: DcId, now: Instant) {
        if let Some(d) = self.dc(job, old) {
            *d = DcTrack::sent(new, now);
        }
    }

    /// A DC's final status. Returns true when every target DC has ended (the entry is
    /// then dropped).
    pub fn on_final_status(&mut self, job: JobId, dc: DcId, status: DcStatus) -> bool {
        let Some(t) = self.jobs.get_mut(&job) else {
            return false;
        };
        if let Some(d) = t.dcs.iter_mut().find(|d| d.dc == dc) {
            d.status = status;
        }
        let done = t.dcs.iter().all(|d| d.status.is_terminal());
        if done {
            self.jobs.remove(&job);
        }
        done
    }

    pub fn forget(&mut self, job: JobId) {
        self.jobs.remove(&job);
    }

    /// The 15 s check: every decision made now. Each job is declared at most once, and
    /// its entry then dropped (the gate's job record carries the rest).
    pub fn check(&mut self, now: Instant) -> Vec<Declaration> {
        let cfg = &self.cfg;
        let mut out = Vec::new();
        for (&job, t) in self.jobs.iter_mut() {
            if t.globally_timed_out {
                continue;
            }
            let target = t.dcs.len();
            let timed_out = t
                .dcs
                .iter()
                .filter(|d| d.status == DcStatus::TimedOut)
                .count();
            let running: Vec<&DcTrack> = t.dcs.iter().filter(|d| !d.status.is_terminal()).collect();
            let reason = if running.is_empty() {
                if timed_out == 0 {
                    continue;
                }
                TimeoutReason::RemainingDcsTimedOut
            } else {
                let max_ext = t
                    .dcs
                    .iter()
                    .map(|d| d.total_extensions)
                    .max()
                    .unwrap_or_default();
                let overdue = t
                    .timeout
                    .is_some_and(|to| now.saturating_since(t.submitted_at) > to + max_ext);
                let all_stuck = running.iter().all(|d| {
                    now.saturating_since(d.last_progress) >= cfg.stuck_threshold
                        && now.saturating_since(d.last_heard) < cfg.heard_within
                });
                if overdue {
                    TimeoutReason::Timeout
                } else if all_stuck {
                    TimeoutReason::AllDcsStuck
                } else if timed_out * 2 > target {
                    TimeoutReason::MajorityTimedOut
                } else {
                    continue;
                }
            };
            t.globally_timed_out = true;
            t.reason = Some(reason);
            t.declarations += 1;
            out.push(Declaration {
                job,
                reason,
                to: t
                    .dcs
                    .iter()
                    .filter(|d| {
                        !matches!(
                            d.status,
                            DcStatus::Completed | DcStatus::Failed | DcStatus::Cancelled
                        )
                    })
                    .map(|d| (d.dc, d.manager, d.fence))
                    .collect(),
            });
        }
        for d in &out {
            self.jobs.remove(&d.job);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: DcId = DcId(0);
    const B: DcId = DcId(1);
    const C: DcId = DcId(2);
    const M: Addr = Addr::from_u32(7);

    fn report(recent: bool, fence: u64) -> ProgressReport {
        ProgressReport {
            workflows_total: 4,
            workflows_completed: 1,
            workflows_failed: 0,
            has_recent_progress: recent,
            fence: TimeoutFence(fence),
            total_extensions_us: 0,
            max_worker_extension_us: 0,
            workers_with_extensions: 0,
        }
    }

    #[test]
    fn overall_timeout_counts_the_largest_dc_extension_and_is_declared_once() {
        let t = Instant::ZERO;
        let mut g = GateTimeouts::new(GateTimeoutConfig::default());
        g.start(JobId(1), Some(secs(100)), &[A, B], t);
        let mut r = report(true, 3);
        r.total_extensions_us = 20_000_000;
        g.on_progress(JobId(1), A, M, &r, t + secs(10));
        // Keep both DCs fresh.
        for s in (20..=120).step_by(10) {
            g.on_progress(JobId(1), B, M, &report(true, 1), t + secs(s));
            g.on_progress(JobId(1), A, M, &r, t + secs(s));
        }
        assert!(g.check(t + secs(120)).is_empty(), "100 s + 20 s not passed");
        let d = g.check(t + secs(121));
        assert_eq!(
            d,
            vec![Declaration {
                job: JobId(1),
                reason: TimeoutReason::Timeout,
                // Each DC's own fence echoed back (Q3).
                to: vec![(A, Some(M), TimeoutFence(3)), (B, Some(M), TimeoutFence(1))],
            }]
        );
        assert!(g.check(t + secs(500)).is_empty());
        assert!(g.is_empty(), "tracking ends at the declaration");
    }

    #[test]
    fn all_running_dcs_reporting_no_progress_for_180_s_are_stuck_but_silence_is_not() {
        let t = Instant::ZERO;
        let mut g = GateTimeouts::new(GateTimeoutConfig::default());
        g.start(JobId(1), None, &[A, B], t);
        g.start(JobId(2), None, &[A, B], t);
        for s in (10..=200).step_by(10) {
            for dc in [A, B] {
                g.on_progress(JobId(1), dc, M, &report(false, 0), t + secs(s));
            }
        }
        // Job 2's DCs are never heard from: unreachable, not stuck.
        assert!(g.check(t + secs(179)).is_empty());
        let d = g.check(t + secs(180));
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].job, JobId(1));
        assert_eq!(d[0].reason, TimeoutReason::AllDcsStuck);
        assert!(g.check(t + secs(1000)).is_empty());
        assert!(g.tracks(JobId(2)));
    }

    #[test]
    fn a_majority_of_timed_out_dcs_or_none_left_running_decides() {
        let t = Instant::ZERO;
        let mut g = GateTimeouts::new(GateTimeoutConfig::default());
        g.start(JobId(1), None, &[A, B, C], t);
        assert!(g.on_timeout_report(JobId(1), A, M, TimeoutFence(0), t));
        assert!(g.check(t + secs(15)).is_empty(), "1 of 3 is no majority");
        g.on_timeout_report(JobId(1), B, M, TimeoutFence(0), t);
        let d = g.check(t + secs(30));
        assert_eq!(d[0].reason, TimeoutReason::MajorityTimedOut);
        // Two DCs: one completed, the other timed out: nothing runs, decide now.
        g.start(JobId(2), None, &[A, B], t);
        assert!(!g.on_final_status(JobId(2), A, DcStatus::Completed));
        g.on_timeout_report(JobId(2), B, M, TimeoutFence(2), t);
        let d = g.check(t + secs(45));
        assert_eq!(
            d,
            vec![Declaration {
                job: JobId(2),
                reason: TimeoutReason::RemainingDcsTimedOut,
                to: vec![(B, Some(M), TimeoutFence(2))]
            }]
        );
    }

    #[test]
    fn stale_fences_are_ignored_and_tracking_ends_when_every_dc_has_ended() {
        let t = Instant::ZERO;
        let mut g = GateTimeouts::new(GateTimeoutConfig::default());
        g.start(JobId(1), Some(secs(100)), &[A, B], t);
        g.on_leader_transfer(JobId(1), A, Addr::from_u32(9), TimeoutFence(2));
        // A report under an older fence changes nothing.
        assert!(!g.on_timeout_report(JobId(1), A, M, TimeoutFence(1), t));
        g.on_leader_transfer(JobId(1), A, M, TimeoutFence(2)); // not greater: ignored
        let d = {
            let mut g2 = g.clone();
            g2.check(t + secs(101))
        };
        assert_eq!(d[0].to[0], (A, Some(Addr::from_u32(9)), TimeoutFence(2)));
        assert!(!g.on_final_status(JobId(1), A, DcStatus::Completed));
        assert!(g.on_final_status(JobId(1), B, DcStatus::TimedOut));
        assert!(g.is_empty());
        // A full table refuses new jobs.
        let mut small = GateTimeouts::new(GateTimeoutConfig {
            max_jobs: 1,
            ..GateTimeoutConfig::default()
        });
        assert!(small.start(JobId(1), None, &[A], t));
        assert!(!small.start(JobId(2), None, &[A], t));
    }
}
