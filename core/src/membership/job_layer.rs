//! The membership machine's side of the job layer (AD-30, membership.md §9; the pure
//! table is `job_suspicion`): the application's `SuspectForJob`, `RefuteForJob` and
//! `ClearJob`, the deadlines, and the global layer's precedence over it: a member that
//! goes Dead, Left or is forgotten takes its job entries with it (invariant 12), and a
//! higher incarnation refutes those held below it. Nothing here touches a member's
//! global status, and nothing goes on the wire.

use super::job_suspicion::{job_suspicion_bounds, JobChange, JobRejection, JobStatus};
use super::*;
use crate::id::JobId;

impl Membership {
    /// `from` (normally this node; another source when the application relays its
    /// report) suspects `node` of failing `job`, a job of `job_size` nodes.
    pub(super) fn suspect_for_job(
        &mut self,
        job: JobId,
        node: NodeId,
        job_size: u32,
        from: NodeId,
        now: Instant,
        out: &mut Outputs,
    ) {
        let change = match self.members.get(&node) {
            None => JobChange::Rejected(JobRejection::UnknownNode),
            Some(m) if !(m.status.is_live() && m.confirmed()) => {
                JobChange::Rejected(JobRejection::NotLive)
            }
            Some(m) => {
                let inc = m.inc;
                let bounds = job_suspicion_bounds(self.detector_role());
                match self.job_suspicions.suspect(
                    job,
                    node,
                    inc,
                    from,
                    self.me.node,
                    job_size,
                    bounds,
                    now,
                ) {
                    Some(change) => change,
                    None => return,
                }
            }
        };
        if let JobChange::Rejected(_) = change {
            self.stats.job_suspicions_rejected += 1;
        }
        self.job_event(job, node, change, out);
    }

    /// The application's evidence that `node` works on `job` (`inc = None`), or the
    /// node's incarnation `inc`, refutes an entry held below it.
    pub(super) fn refute_for_job(
        &mut self,
        job: JobId,
        node: NodeId,
        inc: Option<Incarnation>,
        out: &mut Outputs,
    ) {
        if self.job_suspicions.refute(job, node, inc) {
            self.job_event(job, node, JobChange::Refuted, out);
        }
    }

    pub(super) fn clear_job(&mut self, job: JobId, out: &mut Outputs) {
        if self.job_suspicions.is_empty() {
            return;
        }
        for node in self.job_suspicions.clear_job(job) {
            self.job_event(job, node, JobChange::Cleared, out);
        }
    }

    /// The global layer's verdict on `node` changed to `status` at `inc` (called from
    /// `transition` and `remove_member`; `None` = forgotten). Gone members lose every
    /// job entry; a higher incarnation refutes those held below it.
    pub(super) fn job_layer_follows(
        &mut self,
        node: NodeId,
        status: Option<(Status, Incarnation)>,
        out: &mut Outputs,
    ) {
        if self.job_suspicions.is_empty() || !self.job_suspicions.holds_node(node) {
            return;
        }
        let (jobs, change) = match status {
            Some((status, inc)) if !status.is_gone() => (
                self.job_suspicions.refute_node_below(node, inc),
                JobChange::Refuted,
            ),
            _ => (self.job_suspicions.clear_node(node), JobChange::Cleared),
        };
        for job in jobs {
            self.job_event(job, node, change, out);
        }
    }

    /// Job suspicions due by `now` become death marks (`JobChange::Dead`).
    pub(super) fn expire_job_suspicions(&mut self, now: Instant, out: &mut Outputs) {
        while let Some((job, node)) = self.job_suspicions.expire_due(now) {
            self.job_event(job, node, JobChange::Dead, out);
        }
    }

    fn job_event(&self, job: JobId, node: NodeId, change: JobChange, out: &mut Outputs) {
        self.event(
            out,
            Event::JobSuspicion {
                cluster: self.me.cluster,
                job,
                node,
                change,
            },
        );
    }

    /// `node`'s standing for `job` in the job layer (`None`: neither suspected nor dead
    /// for it; its global status is the member table's).
    pub fn job_status(&self, job: JobId, node: NodeId) -> Option<JobStatus> {
        self.job_suspicions.status(job, node)
    }

    /// Entries in the job layer (suspected or dead pairs), for reports and leak checks.
    pub fn job_suspicions_len(&self) -> usize {
        self.job_suspicions.len()
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{
        confirm, deliver, env_from, events, machine, plain_ping, run_until, sent,
    };
    use super::*;
    use crate::time::secs;

    const JOB: JobId = JobId(7);

    fn suspect(m: &mut Membership, node: u32, from: u32, size: u32, now: Instant) -> Outputs {
        m.step(
            Input::SuspectForJob {
                job: JOB,
                node: NodeId(node),
                job_size: size,
                from: NodeId(from),
            },
            now,
        )
    }

    fn job_changes(out: &[Output]) -> Vec<(JobId, NodeId, JobChange)> {
        out.iter()
            .filter_map(|o| match o {
                Output::Event(Event::JobSuspicion {
                    job, node, change, ..
                }) => Some((*job, *node, *change)),
                _ => None,
            })
            .collect()
    }

    fn ping_from(node: u32, inc: u32) -> Envelope {
        plain_ping(node, Role::Worker, inc)
    }

    /// A manager's machine with workers 5 and 6 confirmed and suspected for `JOB` at
    /// `t0` (job size 4).
    fn two_suspected_workers() -> (Membership, Instant) {
        let mut m = machine(Role::Manager);
        let t0 = Instant::ZERO + secs(1);
        for w in [5, 6] {
            confirm(&mut m, w, Role::Worker, t0);
            suspect(&mut m, w, 0, 4, t0);
        }
        (m, t0)
    }

    #[test]
    fn a_job_death_comes_at_the_managers_bound_and_leaves_the_global_status_alone() {
        let mut m = machine(Role::Manager);
        let t0 = Instant::ZERO + secs(1);
        confirm(&mut m, 5, Role::Worker, t0);
        let out = suspect(&mut m, 5, 0, 4, t0);
        // A manager detects with 2/15 s; no confirmation yet: the maximum.
        assert_eq!(
            job_changes(&out),
            vec![(
                JOB,
                NodeId(5),
                JobChange::Suspected {
                    inc: Incarnation(0),
                    deadline: t0 + secs(15)
                }
            )]
        );
        // Node 5 answers every probe, so the global layer has nothing to say.
        let mut log = Vec::new();
        let mut t = t0;
        while t < t0 + secs(20) {
            t = t + crate::time::millis(100);
            let from = log.len();
            run_until(&mut m, t, &mut log);
            for (_, to, env) in sent(&log[from..]) {
                if let (true, Body::Ping { seq, .. }) = (to == Addr::from_u32(5), env.body) {
                    let ack = Body::Ack {
                        seq,
                        gossip: vec![],
                        coord: None,
                        health: vec![],
                    };
                    deliver(&mut m, env_from(5, Role::Worker, 0, ack), t);
                }
            }
        }
        let deaths: Vec<_> = log
            .iter()
            .filter_map(|(at, o)| match o {
                Output::Event(Event::JobSuspicion {
                    change: JobChange::Dead,
                    node,
                    ..
                }) => Some((*at, *node)),
                _ => None,
            })
            .collect();
        assert_eq!(deaths, vec![(t0 + secs(15), NodeId(5))]);
        assert_eq!(m.job_status(JOB, NodeId(5)), Some(JobStatus::Dead));
        assert_eq!(m.member(NodeId(5)).unwrap().status, Status::Alive);
        assert!(
            !events(&log)
                .iter()
                .any(|(_, e)| matches!(e, Event::Member { node, .. } if *node == NodeId(5))),
            "a job death is no global verdict"
        );
    }

    #[test]
    fn confirmations_from_other_sources_pull_the_deadline_in() {
        let mut m = machine(Role::Worker);
        let t0 = Instant::ZERO + secs(1);
        confirm(&mut m, 5, Role::Worker, t0);
        suspect(&mut m, 5, 0, 3, t0);
        // Worker bounds 1/10 s, N = 3, C = 1: 10 - 9 ln2/ln4 = 5.5 s.
        let out = suspect(&mut m, 5, 8, 3, t0 + secs(1));
        assert_eq!(
            job_changes(&out),
            vec![(
                JOB,
                NodeId(5),
                JobChange::Confirmed {
                    confirmations: 1,
                    deadline: t0 + crate::time::millis(5_500)
                }
            )]
        );
        // It fires then, not at the 10 s the unconfirmed suspicion had.
        let mut log = Vec::new();
        run_until(&mut m, t0 + secs(11), &mut log);
        let deaths: Vec<Instant> = events(&log)
            .into_iter()
            .filter_map(|(at, e)| match e {
                Event::JobSuspicion {
                    change: JobChange::Dead,
                    ..
                } => Some(at),
                _ => None,
            })
            .collect();
        assert_eq!(deaths, vec![t0 + crate::time::millis(5_500)]);
    }

    #[test]
    fn only_confirmed_live_members_are_suspected_for_a_job() {
        let mut m = machine(Role::Manager);
        let t0 = Instant::ZERO + secs(1);
        let out = suspect(&mut m, 5, 0, 4, t0);
        assert_eq!(
            job_changes(&out),
            vec![(
                JOB,
                NodeId(5),
                JobChange::Rejected(JobRejection::UnknownNode)
            )]
        );
        confirm(&mut m, 5, Role::Worker, t0);
        deliver(&mut m, env_from(5, Role::Worker, 0, Body::Leave), t0);
        let out = suspect(&mut m, 5, 0, 4, t0);
        assert_eq!(
            job_changes(&out),
            vec![(JOB, NodeId(5), JobChange::Rejected(JobRejection::NotLive))]
        );
        assert_eq!(m.stats().job_suspicions_rejected, 2);
        assert_eq!(m.job_suspicions_len(), 0);
    }

    #[test]
    fn the_global_layer_clears_a_gone_node_and_refutes_an_older_incarnation() {
        let (mut m, t0) = two_suspected_workers();
        m.step(
            Input::SuspectForJob {
                job: JobId(8),
                node: NodeId(6),
                job_size: 4,
                from: NodeId(0),
            },
            t0,
        );
        // Node 5 is back at a higher incarnation: refuted.
        let out = deliver(&mut m, ping_from(5, 1), t0 + secs(1));
        assert_eq!(
            job_changes(&out),
            vec![(JOB, NodeId(5), JobChange::Refuted)]
        );
        // Node 6 leaves: every job's entry about it goes (invariant 12).
        let out = deliver(
            &mut m,
            env_from(6, Role::Worker, 0, Body::Leave),
            t0 + secs(2),
        );
        assert_eq!(
            job_changes(&out),
            vec![
                (JOB, NodeId(6), JobChange::Cleared),
                (JobId(8), NodeId(6), JobChange::Cleared)
            ]
        );
        assert_eq!(m.job_suspicions_len(), 0);
    }

    #[test]
    fn clear_job_and_the_applications_evidence_end_entries() {
        let (mut m, t0) = two_suspected_workers();
        let out = m.step(
            Input::RefuteForJob {
                job: JOB,
                node: NodeId(5),
                inc: None,
            },
            t0 + secs(1),
        );
        assert_eq!(
            job_changes(&out),
            vec![(JOB, NodeId(5), JobChange::Refuted)]
        );
        let out = m.step(
            Input::RefuteForJob {
                job: JOB,
                node: NodeId(6),
                inc: Some(Incarnation(0)),
            },
            t0 + secs(1),
        );
        assert!(
            job_changes(&out).is_empty(),
            "not above the held incarnation"
        );
        let out = m.step(Input::ClearJob { job: JOB }, t0 + secs(2));
        assert_eq!(
            job_changes(&out),
            vec![(JOB, NodeId(6), JobChange::Cleared)]
        );
        assert_eq!(m.job_suspicions_len(), 0);
    }
}
