//! The adaptive job timeout, manager side (AD-34, jobs.md §4): one [`JobTimeout`] per job
//! the DC leader runs, replicated with the job. Two strategies, chosen from the
//! submission: a job sent to one DC is timed out by that DC's leader alone (local
//! authority); a job sent to several reports to its gate, which decides once for all of
//! them (gate-coordinated).
//!
//! The spec's corrections over the original, each a test below:
//! - progress reaches the timeout (workflow transitions and extension grants);
//! - `effective_timeout = timeout + total extensions`, never decreasing;
//! - progress reports go out every 10 s on their own schedule (Q5), not from the 30 s
//!   check;
//! - a pending timeout report is re-sent each check until the gate answers, and the
//!   300 s gate-unresponsive fallback fires at most once (Q6);
//! - a gate decision carries the fence the DC last reported (Q3) and one below the
//!   manager's is refused;
//! - instants never cross hosts: replication ships durations relative to the sender's
//!   `now` and the receiver rebases them on its own clock (Q4).

use crate::id::TimeoutFence;
use crate::time::{secs, Instant};
use core::time::Duration;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq)]
pub struct TimeoutConfig {
    /// `JOB_TIMEOUT_CHECK_INTERVAL`.
    pub check_interval: Duration,
    /// No progress (and no extension) for longer than this is stuck.
    pub stuck_threshold: Duration,
    /// Gate-coordinated progress report cadence.
    pub report_interval: Duration,
    /// An unanswered timeout report this old lets the manager act alone.
    pub gate_fallback: Duration,
}

impl Default for TimeoutConfig {
    fn default() -> Self {
        TimeoutConfig {
            check_interval: secs(30),
            stuck_threshold: secs(120),
            report_interval: secs(10),
            gate_fallback: secs(300),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Strategy {
    /// Single DC: the leader manager is the only authority.
    LocalAuthority,
    /// Multi DC: the leader reports; the job's gate decides.
    GateCoordinated,
}

/// Why a job was (or is reported) timed out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TimeoutReason {
    /// Past `timeout + extensions`.
    Timeout,
    /// No progress for the stuck threshold.
    Stuck,
    /// Gate-coordinated, and the gate never answered the report (the fallback).
    GateUnresponsive,
    /// Gate: every running DC reported no progress for 180 s.
    AllDcsStuck,
    /// Gate: more than half the target DCs timed out.
    MajorityTimedOut,
    /// Gate: no DC is running any more and one of them timed out.
    RemainingDcsTimedOut,
}

/// Who ended a job by timeout (the report's `timed_out_by`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TimeoutBy {
    /// A single-DC job's leader manager.
    Local,
    /// The gate's global decision.
    Global,
    /// A manager whose timeout report the gate did not answer for 300 s.
    Fallback,
}

/// What the 30 s check decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    Nothing,
    /// Run the timeout action now (local authority, or the fallback).
    TimeOut {
        reason: TimeoutReason,
        by: TimeoutBy,
    },
    /// Gate-coordinated: report the timeout to the gate (first time).
    Report {
        reason: TimeoutReason,
    },
    /// Gate-coordinated: the report is still unanswered: send it again.
    Resend {
        reason: TimeoutReason,
    },
}

/// A gate's `JobGlobalTimeout` as the manager judges it (jobs.md §4.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GlobalVerdict {
    Apply,
    /// Its fence is below ours: refused (and the current status is sent back).
    Stale,
    /// The job already ended: a correction goes back instead.
    AlreadyTerminal,
}

/// jobs.md §4.2, with instants local to this node.
#[derive(Clone, Debug, PartialEq)]
pub struct JobTimeout {
    pub strategy: Strategy,
    pub started_at: Instant,
    pub last_progress_at: Instant,
    pub last_report_at: Instant,
    /// None: the job has no timeout (only stuck detection applies).
    pub timeout: Option<Duration>,
    pub total_extensions: Duration,
    pub max_worker_extension: Duration,
    pub last_extension_at: Option<Instant>,
    pub locally_timed_out: bool,
    pub globally_timed_out: bool,
    pub reason: Option<TimeoutReason>,
    pub fence: TimeoutFence,
    /// The gate-unresponsive fallback ran (Q6: at most once).
    pub fallback_fired: bool,
    /// A timeout report awaits the gate's answer.
    pub report_pending: bool,
}

impl JobTimeout {
    /// `start`: all three instants `now`, fence 0, flags clear.
    pub fn start(strategy: Strategy, timeout: Option<Duration>, now: Instant) -> JobTimeout {
        JobTimeout {
            strategy,
            started_at: now,
            last_progress_at: now,
            last_report_at: now,
            timeout,
            total_extensions: Duration::ZERO,
            max_worker_extension: Duration::ZERO,
            last_extension_at: None,
            locally_timed_out: false,
            globally_timed_out: false,
            reason: None,
            fence: TimeoutFence(0),
            fallback_fired: false,
            report_pending: false,
        }
    }

    /// Whether the timeout action already ran for the job (by the local authority, the
    /// gate's decision or the fallback): a new leader must not run it again.
    pub fn acted(&self) -> bool {
        match self.strategy {
            Strategy::LocalAuthority => self.locally_timed_out,
            Strategy::GateCoordinated => self.globally_timed_out || self.fallback_fired,
        }
    }

    /// A newer replica of the job replaces `known`: whatever the DC knew had already
    /// run the timeout action stays known (jobs.md §7.3: at most once). A leader cut off
    /// from its DC may act unheard; its successor then replicates the state from before
    /// the action, and without this the first leader, once back in charge, took that
    /// state over and acted a second time (random faults on gate-unreachable-fallback,
    /// seed 170).
    pub fn keep_acted(&mut self, known: &JobTimeout) {
        if self.acted() || !known.acted() {
            return;
        }
        self.locally_timed_out = true;
        self.globally_timed_out |= known.globally_timed_out;
        self.fallback_fired |= known.fallback_fired;
        self.reason = known.reason;
        self.report_pending = false;
    }

    /// `timeout + total extensions` (None: no timeout).
    pub fn effective_timeout(&self) -> Option<Duration> {
        self.timeout.map(|t| t + self.total_extensions)
    }

    /// A workflow of the job changed state (fed by the lifecycle's progress notices).
    pub fn report_progress(&mut self, now: Instant) {
        self.last_progress_at = self.last_progress_at.max(now);
    }

    /// A worker running one of the job's workflows was granted `grant`. (Which workers
    /// hold grants, jobs.md §4.2's set, is the job's: the manager keeps it with the
    /// workflows it dispatched; the totals here outlive a worker leaving, §4.3.)
    pub fn record_worker_extension(&mut self, grant: Duration, now: Instant) {
        self.total_extensions += grant;
        self.max_worker_extension = self.max_worker_extension.max(grant);
        self.last_extension_at = Some(now);
        self.report_progress(now);
    }

    /// A new leader picks the job up: the fence moves on.
    pub fn resume(&mut self) {
        self.fence = TimeoutFence(self.fence.0 + 1);
    }

    fn stuck(&self, cfg: &TimeoutConfig, now: Instant) -> bool {
        let recent_ext = self
            .last_extension_at
            .is_some_and(|t| now.saturating_since(t) < cfg.stuck_threshold);
        !recent_ext && now.saturating_since(self.last_progress_at) > cfg.stuck_threshold
    }

    /// Why the job should end now, if it should: past its effective timeout, or stuck.
    fn expired(&self, cfg: &TimeoutConfig, now: Instant) -> Option<TimeoutReason> {
        if self.overdue(now) {
            Some(TimeoutReason::Timeout)
        } else if self.stuck(cfg, now) {
            Some(TimeoutReason::Stuck)
        } else {
            None
        }
    }

    fn overdue(&self, now: Instant) -> bool {
        self.effective_timeout()
            .is_some_and(|t| now.saturating_since(self.started_at) > t)
    }

    /// When the next gate-coordinated progress report is due (None when none will be).
    pub fn next_report_at(&self, cfg: &TimeoutConfig, terminal: bool) -> Option<Instant> {
        (self.strategy == Strategy::GateCoordinated && !self.locally_timed_out && !terminal)
            .then(|| self.last_report_at + cfg.report_interval)
    }

    /// Step 3 of the gate-coordinated check, on its own 10 s schedule: `Some(has recent
    /// progress)` if a progress report goes out now.
    pub fn progress_report(
        &mut self,
        cfg: &TimeoutConfig,
        terminal: bool,
        now: Instant,
    ) -> Option<bool> {
        let due = self.next_report_at(cfg, terminal)?;
        if now < due {
            return None;
        }
        self.last_report_at = now;
        Some(now.saturating_since(self.last_progress_at) < cfg.report_interval)
    }

    /// The check (jobs.md §4.4), leader only. `terminal`: the job already ended.
    pub fn check(&mut self, cfg: &TimeoutConfig, terminal: bool, now: Instant) -> Check {
        match self.strategy {
            Strategy::LocalAuthority => {
                if self.locally_timed_out || terminal {
                    return Check::Nothing;
                }
                let Some(reason) = self.expired(cfg, now) else {
                    return Check::Nothing;
                };
                self.locally_timed_out = true;
                self.reason = Some(reason);
                Check::TimeOut {
                    reason,
                    by: TimeoutBy::Local,
                }
            }
            Strategy::GateCoordinated => {
                if self.locally_timed_out {
                    if self.globally_timed_out || self.fallback_fired || terminal {
                        return Check::Nothing;
                    }
                    if now.saturating_since(self.last_report_at) > cfg.gate_fallback {
                        self.fallback_fired = true;
                        self.report_pending = false;
                        self.reason = Some(TimeoutReason::GateUnresponsive);
                        return Check::TimeOut {
                            reason: TimeoutReason::GateUnresponsive,
                            by: TimeoutBy::Fallback,
                        };
                    }
                    return match (self.report_pending, self.reason) {
                        (true, Some(reason)) => Check::Resend { reason },
                        _ => Check::Nothing,
                    };
                }
                if terminal {
                    return Check::Nothing;
                }
                let Some(reason) = self.expired(cfg, now) else {
                    return Check::Nothing;
                };
                self.locally_timed_out = true;
                self.report_pending = true;
                self.reason = Some(reason);
                self.last_report_at = now;
                Check::Report { reason }
            }
        }
    }

    /// The gate acknowledged our timeout report (the fallback clock keeps running
    /// until its decision arrives).
    pub fn report_acked(&mut self) {
        self.report_pending = false;
    }

    /// A `JobGlobalTimeout` with `fence` (jobs.md §4.5).
    pub fn on_global(&mut self, fence: TimeoutFence, terminal: bool) -> GlobalVerdict {
        if fence < self.fence {
            return GlobalVerdict::Stale;
        }
        if terminal {
            return GlobalVerdict::AlreadyTerminal;
        }
        self.globally_timed_out = true;
        self.locally_timed_out = true;
        self.report_pending = false;
        GlobalVerdict::Apply
    }

    /// The state to replicate, relative to `now`.
    pub fn to_wire(&self, now: Instant) -> TimeoutWire {
        let ago = |t: Instant| now.saturating_since(t).as_micros() as u64;
        TimeoutWire {
            gate_coordinated: self.strategy == Strategy::GateCoordinated,
            timeout_us: self.timeout.map(|t| t.as_micros() as u64),
            started_ago_us: ago(self.started_at),
            progress_ago_us: ago(self.last_progress_at),
            report_ago_us: ago(self.last_report_at),
            extension_ago_us: self.last_extension_at.map(ago),
            total_extensions_us: self.total_extensions.as_micros() as u64,
            max_worker_extension_us: self.max_worker_extension.as_micros() as u64,
            locally_timed_out: self.locally_timed_out,
            globally_timed_out: self.globally_timed_out,
            reason: self.reason,
            fence: self.fence,
            fallback_fired: self.fallback_fired,
            report_pending: self.report_pending,
        }
    }

    /// Rebuild from a replica, on the receiver's clock.
    pub fn from_wire(w: &TimeoutWire, now: Instant) -> JobTimeout {
        let at = |ago: u64| Instant::from_micros(now.as_micros().saturating_sub(ago));
        JobTimeout {
            strategy: if w.gate_coordinated {
                Strategy::GateCoordinated
            } else {
                Strategy::LocalAuthority
            },
            started_at: at(w.started_ago_us),
            last_progress_at: at(w.progress_ago_us),
            last_report_at: at(w.report_ago_us),
            timeout: w.timeout_us.map(Duration::from_micros),
            total_extensions: Duration::from_micros(w.total_extensions_us),
            max_worker_extension: Duration::from_micros(w.max_worker_extension_us),
            last_extension_at: w.extension_ago_us.map(at),
            locally_timed_out: w.locally_timed_out,
            globally_timed_out: w.globally_timed_out,
            reason: w.reason,
            fence: w.fence,
            fallback_fired: w.fallback_fired,
            report_pending: w.report_pending,
        }
    }
}

/// [`JobTimeout`] on the wire: every instant as "this long before the sender's now".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TimeoutWire {
    pub gate_coordinated: bool,
    pub timeout_us: Option<u64>,
    pub started_ago_us: u64,
    pub progress_ago_us: u64,
    pub report_ago_us: u64,
    pub extension_ago_us: Option<u64>,
    pub total_extensions_us: u64,
    pub max_worker_extension_us: u64,
    pub locally_timed_out: bool,
    pub globally_timed_out: bool,
    pub reason: Option<TimeoutReason>,
    pub fence: TimeoutFence,
    pub fallback_fired: bool,
    pub report_pending: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::millis;

    fn cfg() -> TimeoutConfig {
        TimeoutConfig::default()
    }

    #[test]
    fn local_authority_times_out_after_timeout_plus_extensions_once() {
        let t = Instant::ZERO;
        let mut j = JobTimeout::start(Strategy::LocalAuthority, Some(secs(60)), t);
        j.record_worker_extension(secs(15), t + secs(50));
        j.record_worker_extension(millis(7_500), t + secs(60));
        assert_eq!(j.effective_timeout(), Some(millis(82_500)));
        // Progress keeps it from being stuck; the deadline is what counts.
        j.report_progress(t + secs(80));
        assert_eq!(j.check(&cfg(), false, t + millis(82_500)), Check::Nothing);
        let c = j.check(&cfg(), false, t + millis(82_501));
        assert_eq!(
            c,
            Check::TimeOut {
                reason: TimeoutReason::Timeout,
                by: TimeoutBy::Local
            }
        );
        // Idempotent: timed out at most once.
        assert_eq!(j.check(&cfg(), false, t + secs(200)), Check::Nothing);
        // A terminal job is never timed out.
        let mut done = JobTimeout::start(Strategy::LocalAuthority, Some(secs(1)), t);
        assert_eq!(done.check(&cfg(), true, t + secs(100)), Check::Nothing);
    }

    /// A successor's replica from before the fallback does not undo it (jobs.md §7.3):
    /// the leader that ran it and takes the job back does not run it again.
    #[test]
    fn a_stale_replica_keeps_the_action_already_taken() {
        let t = Instant::ZERO;
        let mut ran = JobTimeout::start(Strategy::GateCoordinated, None, t);
        assert!(matches!(
            ran.check(&cfg(), false, t + secs(130)),
            Check::Report { .. }
        ));
        let before = ran.clone();
        let fired = t + secs(130) + cfg().gate_fallback + secs(1);
        assert!(matches!(
            ran.check(&cfg(), false, fired),
            Check::TimeOut {
                by: TimeoutBy::Fallback,
                ..
            }
        ));
        assert!(!before.acted() && ran.acted());
        let mut newer = before.clone();
        newer.keep_acted(&ran);
        assert!(newer.acted());
        assert_eq!(newer.reason, Some(TimeoutReason::GateUnresponsive));
        assert_eq!(newer.check(&cfg(), false, fired + secs(60)), Check::Nothing);
        // Nothing to keep when nothing ran.
        let mut fresh = before.clone();
        fresh.keep_acted(&before);
        assert!(!fresh.acted());
        assert!(matches!(
            fresh.check(&cfg(), false, fired),
            Check::TimeOut { .. }
        ));
    }

    #[test]
    fn stuck_after_120_s_without_progress_unless_an_extension_is_recent() {
        let t = Instant::ZERO;
        let mut j = JobTimeout::start(Strategy::LocalAuthority, None, t);
        j.report_progress(t + secs(10));
        assert_eq!(j.check(&cfg(), false, t + secs(130)), Check::Nothing);
        // An extension at 100 s suppresses stuck detection until 220 s...
        j.record_worker_extension(secs(1), t + secs(100));
        j.last_progress_at = t + secs(10); // (as if the grant carried no progress)
        assert_eq!(j.check(&cfg(), false, t + secs(219)), Check::Nothing);
        // ...and then, with no progress since 10 s, the job is stuck.
        assert_eq!(
            j.check(&cfg(), false, t + secs(220)),
            Check::TimeOut {
                reason: TimeoutReason::Stuck,
                by: TimeoutBy::Local
            }
        );
    }

    #[test]
    fn gate_coordinated_reports_every_10_s_and_reports_timeouts_until_answered() {
        let t = Instant::ZERO;
        let c = cfg();
        let mut j = JobTimeout::start(Strategy::GateCoordinated, Some(secs(60)), t);
        assert_eq!(j.next_report_at(&c, false), Some(t + secs(10)));
        assert_eq!(j.progress_report(&c, false, t + secs(9)), None);
        j.report_progress(t + secs(5));
        // Progress 5 s ago at the 10 s report: recent. Next report at exactly 20 s.
        assert_eq!(j.progress_report(&c, false, t + secs(10)), Some(true));
        assert_eq!(j.next_report_at(&c, false), Some(t + secs(20)));
        assert_eq!(j.progress_report(&c, false, t + secs(20)), Some(false));
        // Overdue: the manager reports, it does not act.
        assert_eq!(
            j.check(&c, false, t + secs(61)),
            Check::Report {
                reason: TimeoutReason::Timeout
            }
        );
        assert!(j.locally_timed_out && j.report_pending);
        assert_eq!(j.next_report_at(&c, false), None, "no progress reports now");
        // Re-sent each check until the gate acks...
        assert_eq!(
            j.check(&c, false, t + secs(91)),
            Check::Resend {
                reason: TimeoutReason::Timeout
            }
        );
        j.report_acked();
        assert_eq!(j.check(&c, false, t + secs(121)), Check::Nothing);
        // ...and 300 s after the report with no decision: the fallback, once.
        assert_eq!(j.check(&c, false, t + secs(361)), Check::Nothing);
        assert_eq!(
            j.check(&c, false, t + secs(361) + millis(1)),
            Check::TimeOut {
                reason: TimeoutReason::GateUnresponsive,
                by: TimeoutBy::Fallback
            }
        );
        assert_eq!(j.check(&c, false, t + secs(1000)), Check::Nothing);
    }

    #[test]
    fn a_global_decision_below_our_fence_is_stale_and_one_for_a_finished_job_a_correction() {
        let t = Instant::ZERO;
        let mut j = JobTimeout::start(Strategy::GateCoordinated, Some(secs(60)), t);
        j.resume();
        j.resume();
        assert_eq!(j.fence, TimeoutFence(2));
        assert_eq!(j.on_global(TimeoutFence(1), false), GlobalVerdict::Stale);
        assert!(!j.globally_timed_out);
        assert_eq!(
            j.on_global(TimeoutFence(2), true),
            GlobalVerdict::AlreadyTerminal
        );
        assert_eq!(j.on_global(TimeoutFence(2), false), GlobalVerdict::Apply);
        assert!(j.globally_timed_out);
        // After a decision no fallback can fire.
        assert_eq!(j.check(&cfg(), false, t + secs(10_000)), Check::Nothing);
    }

    #[test]
    fn replication_rebases_instants_on_the_receivers_clock() {
        let t = Instant::ZERO;
        let mut j = JobTimeout::start(Strategy::GateCoordinated, Some(secs(60)), t + secs(5));
        j.record_worker_extension(secs(15), t + secs(20));
        let w = j.to_wire(t + secs(30));
        assert_eq!(w.started_ago_us, 25_000_000);
        // The receiver's clock reads 1000 s: the same ages, on its clock.
        let r = JobTimeout::from_wire(&w, t + secs(1000));
        assert_eq!(r.started_at, t + secs(975));
        assert_eq!(r.last_progress_at, t + secs(990));
        assert_eq!(r.last_extension_at, Some(t + secs(990)));
        assert_eq!(r.effective_timeout(), Some(secs(75)));
        assert_eq!(r.to_wire(t + secs(1000)), w);
    }
}
