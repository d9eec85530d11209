//! The job layer of hierarchical failure detection (AD-30, membership.md §9): suspicion
//! per `(job, node)`, raised by the application (a node can be live and still owe one
//! job its work), kept apart from the global layer so a job death never changes a
//! member's global status.
//!
//! The rules, with the spec's numbers:
//! - A suspicion's timeout is §6.3's formula with `N` = the job size the application
//!   supplies, between the detector kind's bounds: 1/10 s (worker, unknown), 2/15 s
//!   (manager), 5/30 s (gate). It is not scaled by the LHM.
//! - Confirmations (the same suspicion raised from another source) only pull the
//!   deadline in, never before `start + min`.
//! - A higher incarnation of the node refutes it; so does direct evidence the application
//!   reports (the node was heard from about this job).
//! - At the deadline the pair is dead for the job (`Dead` mark), until the job is
//!   cleared, the node is back at a higher incarnation, or the application refutes it.
//! - At most 1,000 entries a job and [`JOB_SUSPICIONS_TOTAL`] in all; excess is
//!   rejected with an event, never silently dropped.
//!
//! Spec contradiction, resolved: §9 gives the total both as 50,000 and as
//! `JobSuspicionConfig`'s default of 10,000. The table takes the smaller: every entry
//! is state an application can create, and the smaller bound is the safer one.
//!
//! This module is pure: the machine's side (inputs, events, the global layer's
//! clearing) is in `jobs_layer.rs`.

use super::suspicion::Suspicion;
use crate::id::{Incarnation, JobId, NodeId, Role};
use crate::time::{secs, Instant};
use crate::FxHashMap;
use core::time::Duration;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Entries (suspected or dead) one job may hold.
pub const JOB_SUSPICIONS_PER_JOB: usize = 1000;
/// Entries all jobs together may hold (see the module doc for the choice).
pub const JOB_SUSPICIONS_TOTAL: usize = 10_000;

/// The job layer's suspicion bounds by the detector's kind (membership.md §9), as the
/// global layer's bounds are chosen by the detector's kind too.
pub fn job_suspicion_bounds(detector: Role) -> (Duration, Duration) {
    match detector {
        Role::Gate => (secs(5), secs(30)),
        Role::Manager => (secs(2), secs(15)),
        Role::Worker | Role::Unknown => (secs(1), secs(10)),
    }
}

/// A pair's state in the job layer (the global layer's status is the member table's).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JobStatus {
    Suspected,
    Dead,
}

/// Why a job suspicion was not started.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JobRejection {
    /// The job already holds [`JOB_SUSPICIONS_PER_JOB`] entries.
    JobFull,
    /// The table holds [`JOB_SUSPICIONS_TOTAL`] entries.
    TableFull,
    /// The node is not a member we track.
    UnknownNode,
    /// The node is not a confirmed live member: UNCONFIRMED peers are never suspected
    /// (§7), and a globally Dead or Left one is already more than job-dead.
    NotLive,
}

/// What happened to a `(job, node)` pair; reported as `Event::JobSuspicion`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JobChange {
    Suspected {
        inc: Incarnation,
        deadline: Instant,
    },
    /// Another source confirmed it: the deadline may have come in.
    Confirmed {
        confirmations: u32,
        deadline: Instant,
    },
    /// The suspicion ran out: the node is dead for this job (its global status is not
    /// touched).
    Dead,
    /// A higher incarnation, or the application's evidence, ended the suspicion or the
    /// death mark.
    Refuted,
    /// The job was cleared, or the node left the global layer (globally dead, left or
    /// forgotten): the global verdict supersedes the job one.
    Cleared,
    Rejected(JobRejection),
}

#[derive(Clone, Debug)]
enum Entry {
    Suspected { inc: Incarnation, s: Suspicion },
    Dead { inc: Incarnation },
}

impl Entry {
    fn inc(&self) -> Incarnation {
        match self {
            Entry::Suspected { inc, .. } | Entry::Dead { inc } => *inc,
        }
    }
}

/// The job layer's table: bounded, ordered (iteration is deterministic), with its own
/// deadline schedule.
#[derive(Clone, Debug, Default)]
pub struct JobSuspicions {
    entries: BTreeMap<(JobId, NodeId), Entry>,
    /// The same pairs by node, for the global layer's clearing and refutation.
    by_node: BTreeSet<(NodeId, JobId)>,
    per_job: FxHashMap<JobId, u32>,
    /// Deadlines of the suspected pairs.
    schedule: BTreeSet<(Instant, JobId, NodeId)>,
}

impl JobSuspicions {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn status(&self, job: JobId, node: NodeId) -> Option<JobStatus> {
        self.entries.get(&(job, node)).map(|e| match e {
            Entry::Suspected { .. } => JobStatus::Suspected,
            Entry::Dead { .. } => JobStatus::Dead,
        })
    }

    /// Whether any job holds an entry about `node`.
    pub fn holds_node(&self, node: NodeId) -> bool {
        self.by_node
            .range((node, JobId(0))..=(node, JobId(u64::MAX)))
            .next()
            .is_some()
    }

    /// The deadline of a suspected pair.
    pub fn deadline(&self, job: JobId, node: NodeId) -> Option<Instant> {
        match self.entries.get(&(job, node)) {
            Some(Entry::Suspected { s, .. }) => Some(s.deadline()),
            _ => None,
        }
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.schedule.first().map(|(t, _, _)| *t)
    }

    /// `from` suspects `node` (at incarnation `inc`, the one the global layer holds) of
    /// failing `job`, a job of `job_size` nodes. The first report starts the suspicion
    /// with `from` as its originator; later ones from other sources confirm it. A pair
    /// already dead for the job, or held at a higher incarnation, is left as it is
    /// (returns `None`).
    #[allow(clippy::too_many_arguments)]
    pub fn suspect(
        &mut self,
        job: JobId,
        node: NodeId,
        inc: Incarnation,
        from: NodeId,
        me: NodeId,
        job_size: u32,
        bounds: (Duration, Duration),
        now: Instant,
    ) -> Option<JobChange> {
        match self.entries.get_mut(&(job, node)) {
            Some(Entry::Dead { .. }) => None,
            Some(Entry::Suspected { inc: held, s }) if *held >= inc => {
                if *held > inc {
                    return None;
                }
                let before = s.deadline();
                if !s.confirm(from, me) {
                    return None;
                }
                let deadline = s.deadline();
                let confirmations = u32::try_from(s.confirmations()).unwrap_or(u32::MAX);
                if deadline != before {
                    self.schedule.remove(&(before, job, node));
                    self.schedule.insert((deadline, job, node));
                }
                Some(JobChange::Confirmed {
                    confirmations,
                    deadline,
                })
            }
            Some(Entry::Suspected { .. }) => {
                // A suspicion held at a lower incarnation is refuted by this one's; a
                // fresh suspicion at the new incarnation takes its place.
                self.remove(job, node);
                Some(self.start(job, node, inc, from, job_size, bounds, now))
            }
            None => {
                if self.entries.len() >= JOB_SUSPICIONS_TOTAL {
                    return Some(JobChange::Rejected(JobRejection::TableFull));
                }
                if self.per_job.get(&job).copied().unwrap_or(0) as usize >= JOB_SUSPICIONS_PER_JOB {
                    return Some(JobChange::Rejected(JobRejection::JobFull));
                }
                Some(self.start(job, node, inc, from, job_size, bounds, now))
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn start(
        &mut self,
        job: JobId,
        node: NodeId,
        inc: Incarnation,
        from: NodeId,
        job_size: u32,
        bounds: (Duration, Duration),
        now: Instant,
    ) -> JobChange {
        // Not LHM-scaled (§9): the health multiplier is 1. Always dynamic: the job layer
        // has no classic-SWIM mode.
        let s = Suspicion::new(now, bounds, 1.0, job_size as usize, from, true);
        let deadline = s.deadline();
        self.entries
            .insert((job, node), Entry::Suspected { inc, s });
        self.by_node.insert((node, job));
        *self.per_job.entry(job).or_insert(0) += 1;
        self.schedule.insert((deadline, job, node));
        JobChange::Suspected { inc, deadline }
    }

    fn remove(&mut self, job: JobId, node: NodeId) -> Option<Entry> {
        let e = self.entries.remove(&(job, node))?;
        self.by_node.remove(&(node, job));
        if let Entry::Suspected { s, .. } = &e {
            self.schedule.remove(&(s.deadline(), job, node));
        }
        if let Some(n) = self.per_job.get_mut(&job) {
            *n -= 1;
            if *n == 0 {
                self.per_job.remove(&job);
            }
        }
        Some(e)
    }

    /// The application's evidence that `node` works on `job` (`inc = None`), or the
    /// node's incarnation `inc`: either ends an entry held at a lower incarnation.
    pub fn refute(&mut self, job: JobId, node: NodeId, inc: Option<Incarnation>) -> bool {
        match (self.entries.get(&(job, node)), inc) {
            (None, _) => false,
            (Some(e), Some(inc)) if inc <= e.inc() => false,
            _ => self.remove(job, node).is_some(),
        }
    }

    /// The global layer holds `node` at `inc`: entries about it at a lower incarnation
    /// are refuted. Returns the jobs whose entry went.
    pub fn refute_node_below(&mut self, node: NodeId, inc: Incarnation) -> Vec<JobId> {
        let jobs: Vec<JobId> = self
            .jobs_of(node)
            .filter(|job| {
                self.entries
                    .get(&(*job, node))
                    .is_some_and(|e| e.inc() < inc)
            })
            .collect();
        for job in &jobs {
            self.remove(*job, node);
        }
        jobs
    }

    /// The node left the global layer: every entry about it goes. Returns the jobs.
    pub fn clear_node(&mut self, node: NodeId) -> Vec<JobId> {
        let jobs: Vec<JobId> = self.jobs_of(node).collect();
        for job in &jobs {
            self.remove(*job, node);
        }
        jobs
    }

    /// The application is done with `job`: its entries go. Returns the nodes.
    pub fn clear_job(&mut self, job: JobId) -> Vec<NodeId> {
        let nodes: Vec<NodeId> = self
            .entries
            .range((job, NodeId(0))..=(job, NodeId(u32::MAX)))
            .map(|((_, n), _)| *n)
            .collect();
        for node in &nodes {
            self.remove(job, *node);
        }
        nodes
    }

    fn jobs_of(&self, node: NodeId) -> impl Iterator<Item = JobId> + '_ {
        self.by_node
            .range((node, JobId(0))..=(node, JobId(u64::MAX)))
            .map(|(_, j)| *j)
    }

    /// The next suspicion due at or before `now`: it becomes a death mark. Deadlines
    /// fire once, at the exact instant (Python polled).
    pub fn expire_due(&mut self, now: Instant) -> Option<(JobId, NodeId)> {
        let &(at, job, node) = self.schedule.first()?;
        if at > now {
            return None;
        }
        self.schedule.remove(&(at, job, node));
        let e = self.entries.get_mut(&(job, node))?;
        let inc = e.inc();
        *e = Entry::Dead { inc };
        Some((job, node))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::millis;

    const ME: NodeId = NodeId(1);
    const T0: Instant = Instant::from_micros(1_000_000);

    fn suspect(
        t: &mut JobSuspicions,
        job: u64,
        node: u32,
        from: u32,
        size: u32,
        now: Instant,
    ) -> Option<JobChange> {
        t.suspect(
            JobId(job),
            NodeId(node),
            Incarnation(3),
            NodeId(from),
            ME,
            size,
            job_suspicion_bounds(Role::Worker),
            now,
        )
    }

    #[test]
    fn bounds_by_detector_kind_are_the_specs() {
        assert_eq!(job_suspicion_bounds(Role::Worker), (secs(1), secs(10)));
        assert_eq!(job_suspicion_bounds(Role::Unknown), (secs(1), secs(10)));
        assert_eq!(job_suspicion_bounds(Role::Manager), (secs(2), secs(15)));
        assert_eq!(job_suspicion_bounds(Role::Gate), (secs(5), secs(30)));
    }

    #[test]
    fn a_suspicion_runs_the_dynamic_timeout_over_the_job_size() {
        let mut t = JobSuspicions::default();
        // No confirmation: max (10 s), whatever N.
        assert_eq!(
            suspect(&mut t, 7, 5, 1, 3, T0),
            Some(JobChange::Suspected {
                inc: Incarnation(3),
                deadline: T0 + secs(10)
            })
        );
        // N = 3, C = 1: 10 - 9 ln2/ln4 = 5.5 s.
        assert_eq!(
            suspect(&mut t, 7, 5, 2, 3, T0 + secs(1)),
            Some(JobChange::Confirmed {
                confirmations: 1,
                deadline: T0 + millis(5_500)
            })
        );
        // The same source again is no new confirmation; the originator never is.
        assert_eq!(suspect(&mut t, 7, 5, 2, 3, T0 + secs(1)), None);
        assert_eq!(suspect(&mut t, 7, 5, 1, 3, T0 + secs(1)), None);
        // C = N = 3: min, 1 s, which has passed: the deadline is start + min.
        suspect(&mut t, 7, 5, 3, 3, T0 + secs(2));
        suspect(&mut t, 7, 5, 4, 3, T0 + secs(2));
        assert_eq!(t.deadline(JobId(7), NodeId(5)), Some(T0 + secs(1)));
        assert_eq!(t.expire_due(T0 + secs(2)), Some((JobId(7), NodeId(5))));
        assert_eq!(t.status(JobId(7), NodeId(5)), Some(JobStatus::Dead));
        assert_eq!(t.expire_due(T0 + secs(60)), None, "fires once");
        // A dead pair is not suspected anew until it is refuted or cleared.
        assert_eq!(suspect(&mut t, 7, 5, 2, 3, T0 + secs(3)), None);
    }

    #[test]
    fn deadlines_fire_in_order_and_not_before_they_are_due() {
        let mut t = JobSuspicions::default();
        suspect(&mut t, 1, 5, 1, 1, T0);
        suspect(&mut t, 2, 6, 1, 1, T0 + secs(1));
        assert_eq!(t.next_deadline(), Some(T0 + secs(10)));
        assert_eq!(t.expire_due(T0 + millis(9_999)), None);
        assert_eq!(t.expire_due(T0 + secs(20)), Some((JobId(1), NodeId(5))));
        assert_eq!(t.expire_due(T0 + secs(20)), Some((JobId(2), NodeId(6))));
        assert_eq!(t.next_deadline(), None);
        assert_eq!(t.len(), 2, "death marks stay until cleared");
    }

    #[test]
    fn refutation_needs_a_higher_incarnation_or_the_applications_evidence() {
        let mut t = JobSuspicions::default();
        suspect(&mut t, 7, 5, 1, 3, T0);
        assert!(!t.refute(JobId(7), NodeId(5), Some(Incarnation(3))));
        assert!(!t.refute(JobId(7), NodeId(5), Some(Incarnation(2))));
        assert!(t.refute(JobId(7), NodeId(5), Some(Incarnation(4))));
        assert_eq!(t.status(JobId(7), NodeId(5)), None);
        assert_eq!(t.next_deadline(), None);
        suspect(&mut t, 7, 5, 1, 3, T0);
        t.expire_due(T0 + secs(10));
        assert!(
            t.refute(JobId(7), NodeId(5), None),
            "evidence ends a death mark"
        );
        assert!(t.is_empty());
        // The global layer's higher incarnation refutes every job's entry below it.
        suspect(&mut t, 7, 5, 1, 3, T0);
        suspect(&mut t, 8, 5, 1, 3, T0);
        suspect(&mut t, 8, 6, 1, 3, T0);
        assert!(t.refute_node_below(NodeId(5), Incarnation(3)).is_empty());
        assert_eq!(
            t.refute_node_below(NodeId(5), Incarnation(4)),
            vec![JobId(7), JobId(8)]
        );
        assert!(!t.holds_node(NodeId(5)));
        assert_eq!(t.status(JobId(8), NodeId(6)), Some(JobStatus::Suspected));
    }

    #[test]
    fn a_suspicion_at_a_higher_incarnation_replaces_the_older_one() {
        let mut t = JobSuspicions::default();
        suspect(&mut t, 7, 5, 1, 3, T0);
        let newer = t.suspect(
            JobId(7),
            NodeId(5),
            Incarnation(4),
            ME,
            ME,
            3,
            job_suspicion_bounds(Role::Worker),
            T0 + secs(4),
        );
        assert_eq!(
            newer,
            Some(JobChange::Suspected {
                inc: Incarnation(4),
                deadline: T0 + secs(14)
            })
        );
        assert_eq!(t.len(), 1);
        assert_eq!(t.next_deadline(), Some(T0 + secs(14)));
        // A report at the older incarnation is stale.
        assert_eq!(suspect(&mut t, 7, 5, 2, 3, T0 + secs(5)), None);
    }

    #[test]
    fn clearing_a_job_or_a_node_removes_exactly_its_entries() {
        let mut t = JobSuspicions::default();
        suspect(&mut t, 7, 5, 1, 3, T0);
        suspect(&mut t, 7, 6, 1, 3, T0);
        suspect(&mut t, 8, 5, 1, 3, T0);
        assert_eq!(t.clear_job(JobId(7)), vec![NodeId(5), NodeId(6)]);
        assert_eq!(t.len(), 1);
        assert_eq!(t.clear_node(NodeId(5)), vec![JobId(8)]);
        assert!(t.is_empty());
        assert!(t.per_job.is_empty() && t.by_node.is_empty() && t.schedule.is_empty());
    }

    #[derive(Clone, Debug)]
    enum Op {
        Suspect {
            job: u64,
            node: u32,
            inc: u32,
            from: u32,
            size: u32,
        },
        Refute {
            job: u64,
            node: u32,
            inc: Option<u32>,
        },
        RefuteBelow {
            node: u32,
            inc: u32,
        },
        ClearJob(u64),
        ClearNode(u32),
        Expire,
    }

    fn arb_op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            4 => (0..4u64, 0..6u32, 0..3u32, 0..5u32, 0..8u32).prop_map(
                |(job, node, inc, from, size)| Op::Suspect { job, node, inc, from, size }
            ),
            1 => (0..4u64, 0..6u32, proptest::option::of(0..4u32))
                .prop_map(|(job, node, inc)| Op::Refute { job, node, inc }),
            1 => (0..6u32, 0..4u32).prop_map(|(node, inc)| Op::RefuteBelow { node, inc }),
            1 => (0..4u64).prop_map(Op::ClearJob),
            1 => (0..6u32).prop_map(Op::ClearNode),
            2 => Just(Op::Expire),
        ]
    }

    /// The table's four indexes agree after any sequence of operations; every
    /// suspected pair has exactly its deadline scheduled, never before `start + min`
    /// (invariant 7); a deadline fires once.
    fn assert_consistent(t: &JobSuspicions) {
        assert_eq!(t.by_node.len(), t.entries.len());
        for (job, node) in t.entries.keys() {
            assert!(t.by_node.contains(&(*node, *job)));
        }
        let per_job: u32 = t.per_job.values().sum();
        assert_eq!(per_job as usize, t.entries.len());
        assert!(t.per_job.values().all(|n| *n > 0));
        let suspected: Vec<_> = t
            .entries
            .iter()
            .filter_map(|(k, e)| match e {
                Entry::Suspected { s, .. } => Some((k, s)),
                Entry::Dead { .. } => None,
            })
            .collect();
        assert_eq!(suspected.len(), t.schedule.len());
        for ((job, node), s) in suspected {
            assert!(t.schedule.contains(&(s.deadline(), *job, *node)));
            assert!(s.deadline() >= s.floor());
        }
    }

    proptest::proptest! {
        #[test]
        fn any_sequence_keeps_the_indexes_in_step(
            ops in proptest::collection::vec((arb_op(), 0..3_000u64), 1..120)
        ) {
            let mut t = JobSuspicions::default();
            let mut now = T0;
            let mut fired = std::collections::BTreeSet::new();
            for (op, dt_ms) in ops {
                now = now + millis(dt_ms);
                match op {
                    Op::Suspect { job, node, inc, from, size } => {
                        let change = t.suspect(
                            JobId(job),
                            NodeId(node),
                            Incarnation(inc),
                            NodeId(from),
                            ME,
                            size,
                            job_suspicion_bounds(Role::Manager),
                            now,
                        );
                        if let Some(JobChange::Suspected { .. }) = change {
                            fired.remove(&(job, node));
                        }
                    }
                    Op::Refute { job, node, inc } => {
                        if t.refute(JobId(job), NodeId(node), inc.map(Incarnation)) {
                            fired.remove(&(job, node));
                        }
                    }
                    Op::RefuteBelow { node, inc } => {
                        for job in t.refute_node_below(NodeId(node), Incarnation(inc)) {
                            fired.remove(&(job.0, node));
                        }
                    }
                    Op::ClearJob(job) => {
                        for node in t.clear_job(JobId(job)) {
                            fired.remove(&(job, node.0));
                        }
                    }
                    Op::ClearNode(node) => {
                        for job in t.clear_node(NodeId(node)) {
                            fired.remove(&(job.0, node));
                        }
                    }
                    Op::Expire => {
                        while let Some((job, node)) = t.expire_due(now) {
                            proptest::prop_assert!(
                                fired.insert((job.0, node.0)),
                                "a deadline fired twice"
                            );
                            proptest::prop_assert_eq!(
                                t.status(job, node),
                                Some(JobStatus::Dead)
                            );
                        }
                        proptest::prop_assert!(t.next_deadline().is_none_or(|d| d > now));
                    }
                }
                assert_consistent(&t);
            }
        }
    }

    #[test]
    fn the_table_is_bounded_per_job_and_in_all() {
        let mut t = JobSuspicions::default();
        for n in 0..JOB_SUSPICIONS_PER_JOB as u32 {
            assert!(matches!(
                suspect(&mut t, 1, 100 + n, 1, 10, T0),
                Some(JobChange::Suspected { .. })
            ));
        }
        assert_eq!(
            suspect(&mut t, 1, 99_999, 1, 10, T0),
            Some(JobChange::Rejected(JobRejection::JobFull))
        );
        let mut job = 2;
        while t.len() < JOB_SUSPICIONS_TOTAL {
            for n in 0..JOB_SUSPICIONS_PER_JOB as u32 {
                if t.len() == JOB_SUSPICIONS_TOTAL {
                    break;
                }
                suspect(&mut t, job, 100 + n, 1, 10, T0);
            }
            job += 1;
        }
        assert_eq!(
            suspect(&mut t, job + 1, 5, 1, 10, T0),
            Some(JobChange::Rejected(JobRejection::TableFull))
        );
        // Room again once a job is cleared.
        t.clear_job(JobId(1));
        assert!(matches!(
            suspect(&mut t, job + 1, 5, 1, 10, T0),
            Some(JobChange::Suspected { .. })
        ));
    }
}
