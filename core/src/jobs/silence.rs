//! The DC leader's caller of the job layer (AD-30, membership.md §9, where suspicion per
//! `(job, node)` is "raised by the app"): a worker that reported progress on a job and
//! then fell silent about it, while it stays alive, is suspected for that job; if the
//! job layer declares it dead for the job, the leader takes that job's workflows back
//! from it (and only that job's).
//!
//! Why a job layer is needed here: AD-26's extension requests sum a worker's progress
//! over all its workflows, so a worker stuck on one job while another job progresses
//! keeps earning grants and is never evicted; the stuck job would wait for its timeout.
//!
//! The rules (jobs.md leaves them open; see the closing note of the session):
//! - A pair is watched from its first progress report (a workflow that never reports
//!   progress owes none: the job's timeout covers it) until the worker runs none of the
//!   job's workflows, or the job is forgotten.
//! - Silence is [`DEFAULT_SILENCE`] without a progress report, a dispatch
//!   acknowledgement or a result from the worker about the job (a cancel confirmation
//!   only answers our cancel: a worker stuck on the workflow may still send one).
//! - Silence we caused does not count: while our backpressure level is REJECT the
//!   workers drop their progress (AD-23), and while we shed messages on arrival
//!   (AD-22) we drop it ourselves, so every clock restarts when that ends.
//! - Any later word from the worker about the job refutes the suspicion, or ends the
//!   death mark (it was slow, not stuck); so does dispatching it the job again.
//! - A pair declared dead is not suspected again until it is watched again.

use crate::id::{JobId, NodeId};
use crate::time::{secs, Instant};
use core::time::Duration;
use std::collections::BTreeMap;

/// How long a watched pair may be silent before it is suspected (the original's
/// job responsiveness threshold).
pub const DEFAULT_SILENCE: Duration = secs(30);

/// Pairs watched at most: the job layer's own total (`JOB_SUSPICIONS_TOTAL`), so every
/// pair we watch can be suspected. Past it new pairs are not watched.
pub const MAX_WATCHED: usize = crate::membership::job_suspicion::JOB_SUSPICIONS_TOTAL;

/// What the leader asks of its DC membership's job layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    Suspect { job: JobId, worker: NodeId },
    Refute { job: JobId, worker: NodeId },
    Clear { job: JobId },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Standing {
    Watching,
    Suspected,
    Dead,
}

#[derive(Clone, Copy, Debug)]
struct Pair {
    heard_at: Instant,
    standing: Standing,
}

#[derive(Clone, Debug)]
pub struct SilenceWatch {
    after: Option<Duration>,
    pairs: BTreeMap<(JobId, NodeId), Pair>,
    /// Silence counts from here at the earliest: the last moment we told the workers to
    /// drop their progress.
    quiet_from: Instant,
    /// No watched pair falls silent before this (exact after each check).
    next_check: Option<Instant>,
}

impl SilenceWatch {
    /// `after = None` switches the watch off.
    pub fn new(after: Option<Duration>) -> Self {
        SilenceWatch {
            after,
            pairs: BTreeMap::new(),
            quiet_from: Instant::ZERO,
            next_check: None,
        }
    }

    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.next_check
    }

    /// A progress report from `worker` about `job`: the pair is watched from now on.
    pub fn progress(&mut self, job: JobId, worker: NodeId, now: Instant) -> Option<Call> {
        let after = self.after?;
        if !self.pairs.contains_key(&(job, worker)) {
            if self.pairs.len() >= MAX_WATCHED {
                return None;
            }
            self.pairs.insert(
                (job, worker),
                Pair {
                    heard_at: now,
                    standing: Standing::Watching,
                },
            );
            self.arm(now + after);
            return None;
        }
        self.heard(job, worker, now)
    }

    /// Any word from `worker` about `job` (progress, a dispatch acknowledgement, a
    /// result): refreshes a watched pair, and refutes it if it was suspected or dead.
    /// Never starts watching one.
    pub fn heard(&mut self, job: JobId, worker: NodeId, now: Instant) -> Option<Call> {
        let after = self.after?;
        let p = self.pairs.get_mut(&(job, worker))?;
        p.heard_at = now;
        let was = core::mem::replace(&mut p.standing, Standing::Watching);
        // Watched from now: its next silence is due then (and a check then also drops
        // it once the worker runs none of the job's workflows).
        self.arm(now + after);
        (was != Standing::Watching).then_some(Call::Refute { job, worker })
    }

    /// A pair falls silent at `due` at the earliest: check by then.
    fn arm(&mut self, due: Instant) {
        self.next_check = Some(self.next_check.map_or(due, |t| t.min(due)));
    }

    /// Whether the job layer declared `worker` dead for `job` (and it has not spoken
    /// about the job since): the last worker to give the job's workflows to.
    pub fn is_dead(&self, job: JobId, worker: NodeId) -> bool {
        self.pairs
            .get(&(job, worker))
            .is_some_and(|p| p.standing == Standing::Dead)
    }

    /// The job goes to `worker` again: a pair dead for it is watched again from now.
    pub fn dispatched(&mut self, job: JobId, worker: NodeId, now: Instant) -> Option<Call> {
        match self.pairs.get(&(job, worker)) {
            Some(p) if p.standing == Standing::Dead => self.heard(job, worker, now),
            _ => None,
        }
    }

    /// Our level tells the workers to drop their progress (AD-23), we drop it on
    /// arrival (AD-22 shedding), or we asked a worker to wait (AD-24): no silence counts
    /// from before `until` (called each time; `until` may be ahead of the clock).
    pub fn excuse(&mut self, until: Instant) {
        self.quiet_from = self.quiet_from.max(until);
        if let (Some(after), Some(t)) = (self.after, self.next_check) {
            self.next_check = Some(t.max(until + after));
        }
    }

    /// No silence counts from before this instant (the last excuse).
    #[cfg(test)]
    pub(crate) fn quiet_from(&self) -> Instant {
        self.quiet_from
    }

    /// The pairs silent for the threshold, to be suspected (`calls`). `runs(job,
    /// worker)`: whether the worker still runs a workflow of the job; a watched pair
    /// that no longer does is dropped (a suspected one refuted: it owes nothing now).
    pub fn check(
        &mut self,
        now: Instant,
        runs: impl Fn(JobId, NodeId) -> bool,
        calls: &mut Vec<Call>,
    ) {
        let Some(after) = self.after else {
            return;
        };
        if self.next_check.is_none_or(|t| t > now) {
            return;
        }
        let mut next: Option<Instant> = None;
        let quiet_from = self.quiet_from;
        self.pairs.retain(|&(job, worker), p| {
            if p.standing == Standing::Dead {
                return true;
            }
            if !runs(job, worker) {
                if p.standing == Standing::Suspected {
                    calls.push(Call::Refute { job, worker });
                }
                return false;
            }
            if p.standing == Standing::Watching {
                let due = p.heard_at.max(quiet_from) + after;
                if due <= now {
                    p.standing = Standing::Suspected;
                    calls.push(Call::Suspect { job, worker });
                } else {
                    next = Some(next.map_or(due, |t| t.min(due)));
                }
            }
            true
        });
        self.next_check = next;
    }

    /// The job layer ended or refused our suspicion of `worker` for `job` on its own (a
    /// higher incarnation refuted it, the node left the global layer, the table was
    /// full): a pair we still hold suspected or dead is watched afresh from now, so
    /// the two never disagree for good (a worker back at a higher incarnation that
    /// stays silent about the job is suspected again 30 s later).
    pub fn lifted(&mut self, job: JobId, worker: NodeId, now: Instant) {
        let Some(after) = self.after else {
            return;
        };
        if let Some(p) = self.pairs.get_mut(&(job, worker)) {
            if p.standing != Standing::Watching {
                p.standing = Standing::Watching;
                p.heard_at = now;
                self.arm(now + after);
            }
        }
    }

    /// The job layer declared `worker` dead for `job`. True if we suspected the pair
    /// (take the job's workflows back from it); false for a verdict we no longer stand
    /// by (the caller refutes it).
    pub fn died(&mut self, job: JobId, worker: NodeId) -> bool {
        match self.pairs.get_mut(&(job, worker)) {
            Some(p) if p.standing == Standing::Suspected => {
                p.standing = Standing::Dead;
                true
            }
            _ => false,
        }
    }

    /// The job is forgotten: its pairs go, and so do the job layer's entries.
    pub fn forget_job(&mut self, job: JobId) -> Option<Call> {
        let keys: Vec<_> = self
            .pairs
            .range((job, NodeId(0))..=(job, NodeId(u32::MAX)))
            .map(|(k, _)| *k)
            .collect();
        for k in &keys {
            self.pairs.remove(k);
        }
        (!keys.is_empty()).then_some(Call::Clear { job })
    }

    /// The worker is gone or evicted: its pairs go (with their job-layer entries).
    pub fn forget_worker(&mut self, worker: NodeId, calls: &mut Vec<Call>) {
        self.pairs.retain(|&(job, w), p| {
            if w != worker {
                return true;
            }
            if p.standing != Standing::Watching {
                calls.push(Call::Refute { job, worker });
            }
            false
        });
    }

    /// We no longer lead: nothing is watched, and the job layer forgets what we raised.
    pub fn clear(&mut self, calls: &mut Vec<Call>) {
        let mut last = None;
        for &(job, _) in self.pairs.keys() {
            if last != Some(job) {
                calls.push(Call::Clear { job });
                last = Some(job);
            }
        }
        self.pairs.clear();
        self.next_check = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: JobId = JobId(1);
    const B: JobId = JobId(2);
    const W: NodeId = NodeId(5);
    const T0: Instant = Instant::from_micros(10_000_000);

    fn check(s: &mut SilenceWatch, now: Instant) -> Vec<Call> {
        let mut calls = Vec::new();
        s.check(now, |_, _| true, &mut calls);
        calls
    }

    #[test]
    fn a_pair_silent_for_30_s_after_reporting_is_suspected_once() {
        let mut s = SilenceWatch::new(Some(DEFAULT_SILENCE));
        assert_eq!(DEFAULT_SILENCE, secs(30));
        assert_eq!(s.progress(A, W, T0), None);
        assert_eq!(s.progress(B, W, T0 + secs(5)), None);
        assert_eq!(s.next_deadline(), Some(T0 + secs(30)));
        // B keeps reporting; A does not.
        s.progress(B, W, T0 + secs(25));
        assert!(check(&mut s, T0 + secs(29)).is_empty());
        assert_eq!(
            check(&mut s, T0 + secs(30)),
            vec![Call::Suspect { job: A, worker: W }]
        );
        assert_eq!(s.next_deadline(), Some(T0 + secs(55)));
        assert!(check(&mut s, T0 + secs(40)).is_empty(), "suspected once");
    }

    #[test]
    fn a_word_about_the_job_refutes_and_a_death_is_not_suspected_again() {
        let mut s = SilenceWatch::new(Some(DEFAULT_SILENCE));
        s.progress(A, W, T0);
        check(&mut s, T0 + secs(30));
        // A result about the job: refuted, watched from now.
        assert_eq!(
            s.heard(A, W, T0 + secs(31)),
            Some(Call::Refute { job: A, worker: W })
        );
        assert_eq!(s.next_deadline(), Some(T0 + secs(61)));
        check(&mut s, T0 + secs(61));
        assert!(s.died(A, W));
        assert!(!s.died(A, W), "once");
        assert!(check(&mut s, T0 + secs(200)).is_empty());
        // Given the job again: watched again, its death mark refuted.
        assert_eq!(
            s.dispatched(A, W, T0 + secs(200)),
            Some(Call::Refute { job: A, worker: W })
        );
        assert_eq!(
            check(&mut s, T0 + secs(230)),
            vec![Call::Suspect { job: A, worker: W }]
        );
    }

    #[test]
    fn a_suspicion_the_job_layer_lifts_is_watched_afresh() {
        let mut s = SilenceWatch::new(Some(DEFAULT_SILENCE));
        s.progress(A, W, T0);
        assert_eq!(check(&mut s, T0 + secs(30)).len(), 1);
        assert_eq!(s.next_deadline(), None);
        s.lifted(A, W, T0 + secs(33));
        assert!(!s.died(A, W), "no longer ours to act on");
        assert_eq!(
            check(&mut s, T0 + secs(63)),
            vec![Call::Suspect { job: A, worker: W }]
        );
    }

    #[test]
    fn silence_under_our_reject_level_is_excused() {
        let mut s = SilenceWatch::new(Some(DEFAULT_SILENCE));
        s.progress(A, W, T0);
        s.excuse(T0 + secs(20));
        assert!(check(&mut s, T0 + secs(30)).is_empty());
        assert_eq!(s.next_deadline(), Some(T0 + secs(50)));
        assert_eq!(
            check(&mut s, T0 + secs(50)),
            vec![Call::Suspect { job: A, worker: W }]
        );
    }

    #[test]
    fn pairs_go_with_their_workflows_their_job_their_worker_and_our_lead() {
        let mut s = SilenceWatch::new(Some(DEFAULT_SILENCE));
        s.progress(A, W, T0);
        s.progress(B, W, T0);
        s.progress(B, NodeId(6), T0);
        assert_eq!(check(&mut s, T0 + secs(30)).len(), 3);
        // W's result for A: refuted; at the next check W runs nothing of A: dropped.
        assert!(s.heard(A, W, T0 + secs(31)).is_some());
        let mut calls = Vec::new();
        s.check(T0 + secs(61), |job, _| job != A, &mut calls);
        assert!(calls.is_empty());
        assert_eq!(s.len(), 2);
        assert_eq!(s.forget_job(B), Some(Call::Clear { job: B }));
        assert_eq!(s.forget_job(B), None);
        assert!(s.is_empty());
        s.progress(A, W, T0 + secs(100));
        s.progress(B, NodeId(6), T0 + secs(100));
        assert_eq!(check(&mut s, T0 + secs(130)).len(), 2);
        let mut calls = Vec::new();
        s.forget_worker(W, &mut calls);
        assert_eq!(calls, vec![Call::Refute { job: A, worker: W }]);
        let mut calls = Vec::new();
        s.clear(&mut calls);
        assert_eq!(calls, vec![Call::Clear { job: B }]);
        assert!(s.is_empty() && s.next_deadline().is_none());
    }

    #[test]
    fn off_watches_nothing() {
        let mut s = SilenceWatch::new(None);
        s.progress(A, W, T0);
        assert!(s.is_empty());
        assert!(check(&mut s, T0 + secs(300)).is_empty());
    }
}
