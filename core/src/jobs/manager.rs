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
//! to whoever leads), so nothing is lost and little runs twice.

use super::{JobEvent, JobMsg, JobOutput, JobOutputs, WorkflowIndex};
use crate::id::{Addr, DcId, FenceToken, JobId, NodeId};
use crate::leadership::{FenceDomain, JobRegistry, TokenIssuer, Verdict};
use crate::time::{secs, Instant};
use core::time::Duration;
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
    /// The leader re-announces its live jobs to the other managers this often...
    pub replica_refresh: Duration,
    /// ...and a replica not re-announced for this long is dropped (a job that ended
    /// while we could not hear the leader must not stay with us for ever).
    pub replica_ttl: Duration,
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
            replica_refresh: secs(30),
            replica_ttl: secs(95),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wf {
    Pending,
    Dispatched {
        worker: NodeId,
        token: FenceToken,
        at: Instant,
        acked: bool,
    },
    Done,
}

#[derive(Clone, Debug)]
struct Job {
    gate: NodeId,
    gate_addr: Addr,
    workflows: Vec<Wf>,
    /// The latest token issued for the job.
    token: FenceToken,
    /// Set once every workflow is done: when to resend `JobDone`.
    report_next: Option<Instant>,
    /// A job just taken over is not dispatched before this (see `takeover_grace`).
    hold_until: Option<Instant>,
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
    refreshed_at: Instant,
}

#[derive(Clone, Copy, Debug)]
struct Worker {
    addr: Addr,
    free_slots: u16,
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
    /// No unanswered dispatch times out before this (a lower bound; see `tick`).
    dispatch_due: Option<Instant>,
    /// When the stalest replica would expire (followers).
    next_replica_expiry: Option<Instant>,
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
    /// A worker of the DC became reachable (or stopped being so), per membership.
    Worker {
        node: NodeId,
        addr: Addr,
        alive: bool,
    },
    Tick,
}

impl ManagerJobs {
    /// `peers`: the DC's configured managers (ourselves excluded or not).
    pub fn new(
        cfg: ManagerConfig,
        me: NodeId,
        dc: DcId,
        peers: Vec<(NodeId, Addr)>,
    ) -> ManagerJobs {
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
            dispatch_due: None,
            next_replica_expiry: None,
        }
    }

    /// Per-job entries held: 0 once every job is reported and acknowledged.
    pub fn table_len(&self) -> usize {
        self.jobs.len() + self.replicas.len() + self.issuer.len() + self.gates.len()
    }
    pub fn has_job(&self, job: JobId) -> bool {
        self.jobs.contains_key(&job) || self.replicas.contains_key(&job)
    }

    /// O(jobs), not O(workflows): the node asks after every step. The dispatch-timeout
    /// deadline is kept as a lower bound (`dispatch_due`), exact after each scan.
    pub fn next_deadline(&self) -> Option<Instant> {
        let dispatch = self.dispatch_due;
        let report = self.jobs.values().filter_map(|j| j.report_next).min();
        let hold = self.jobs.values().filter_map(|j| j.hold_until).min();
        [
            self.next_hello,
            dispatch,
            report,
            hold,
            self.next_refresh,
            self.next_replica_expiry,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub fn step(&mut self, input: ManagerInput, now: Instant) -> JobOutputs {
        let mut out = JobOutputs::new();
        match input {
            ManagerInput::Msg { from, msg } => self.on_msg(from, msg, now, &mut out),
            ManagerInput::Leader { leader, term } => {
                self.leader = leader;
                let lead = leader.is_some_and(|(n, _)| n == self.me);
                let was = self.leading.is_some();
                self.leading = lead.then_some(term);
                self.next_hello = lead.then_some(now);
                self.next_refresh = lead.then_some(now + self.cfg.replica_refresh);
                if lead && !was {
                    self.take_over(term, now, &mut out);
                } else if !lead && was {
                    self.step_aside(now);
                }
                if lead {
                    self.tick(now, &mut out);
                }
            }
            ManagerInput::Worker { node, addr, alive } => {
                if alive {
                    let new = !self.workers.contains_key(&node);
                    self.workers.entry(node).or_insert(Worker {
                        addr,
                        free_slots: 0,
                    });
                    if let (true, Some(term)) = (new, self.leading) {
                        out.push(JobOutput::Send {
                            to: addr,
                            msg: JobMsg::LeaderHello { term },
                        });
                    }
                } else if self.workers.remove(&node).is_some() {
                    // Its workflows go back to the queue (a late result still counts).
                    for job in self.jobs.values_mut() {
                        for w in job.workflows.iter_mut() {
                            if matches!(w, Wf::Dispatched { worker, .. } if *worker == node) {
                                *w = Wf::Pending;
                            }
                        }
                    }
                    self.dispatch(now, &mut out);
                }
            }
            ManagerInput::Tick => self.tick(now, &mut out),
        }
        out
    }

    fn on_msg(&mut self, from: Addr, msg: JobMsg, now: Instant, out: &mut JobOutputs) {
        match msg {
            JobMsg::Submit {
                job,
                workflows,
                gate,
                gate_addr,
                gate_token,
            } => {
                let ack = |accepted, leader| JobOutput::Send {
                    to: gate_addr,
                    msg: JobMsg::SubmitAck {
                        job,
                        dc: self.dc,
                        accepted,
                        leader,
                    },
                };
                let Some(term) = self.leading else {
                    out.push(ack(false, self.leader));
                    return;
                };
                if workflows == 0 || workflows > self.cfg.max_workflows {
                    out.push(ack(false, None));
                    return;
                }
                match self
                    .gates
                    .claim(FenceDomain::GateJob, job, gate_token, gate)
                {
                    Ok(Verdict::Resend) => out.push(ack(true, None)),
                    Ok(Verdict::Accepted) if !self.jobs.contains_key(&job) => {
                        let Ok(token) = self.issuer.next(job, term, None) else {
                            out.push(ack(false, None));
                            return;
                        };
                        self.jobs.insert(
                            job,
                            Job {
                                gate,
                                gate_addr,
                                workflows: vec![Wf::Pending; workflows as usize],
                                token,
                                report_next: None,
                                hold_until: None,
                            },
                        );
                        out.push(JobOutput::Event(JobEvent::Accepted {
                            job,
                            dc: self.dc,
                            token,
                        }));
                        out.push(ack(true, None));
                        self.to_peers(
                            JobMsg::Replicate {
                                job,
                                workflows,
                                gate,
                                gate_addr,
                                gate_token,
                                token,
                            },
                            out,
                        );
                        self.dispatch(now, out);
                    }
                    // A newer claim for a job we hold (a gate took it over): re-point.
                    Ok(Verdict::Accepted) => {
                        if let Some(j) = self.jobs.get_mut(&job) {
                            j.gate = gate;
                            j.gate_addr = gate_addr;
                        }
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
                let Some(w) = self
                    .jobs
                    .get_mut(&job)
                    .and_then(|j| j.workflows.get_mut(workflow as usize))
                else {
                    return;
                };
                if let Wf::Dispatched {
                    worker,
                    token: t,
                    acked,
                    ..
                } = w
                {
                    if *t == token {
                        if accepted {
                            *acked = true;
                        } else {
                            let worker = *worker;
                            *w = Wf::Pending;
                            if let Some(wk) = self.workers.get_mut(&worker) {
                                wk.free_slots = 0; // full: wait for its next hello
                            }
                            self.dispatch(now, out);
                        }
                    }
                }
            }
            JobMsg::WorkflowDone { job, workflow, .. } => {
                out.push(JobOutput::Send {
                    to: from,
                    msg: JobMsg::WorkflowDoneAck { job, workflow },
                });
                if let Some(wk) = self.workers.values_mut().find(|w| w.addr == from) {
                    wk.free_slots = wk.free_slots.saturating_add(1);
                }
                let Some(j) = self.jobs.get_mut(&job) else {
                    return;
                };
                let newly = j
                    .workflows
                    .get(workflow as usize)
                    .is_some_and(|w| *w != Wf::Done);
                if let Some(w) = j.workflows.get_mut(workflow as usize) {
                    *w = Wf::Done;
                }
                if newly {
                    let msg = JobMsg::ReplicaDone { job, workflow };
                    for (_, addr) in &self.peers {
                        out.push(JobOutput::Send { to: *addr, msg });
                    }
                }
                let Some(j) = self.jobs.get_mut(&job) else {
                    return;
                };
                if j.report_next.is_none() && j.workflows.iter().all(|w| *w == Wf::Done) {
                    j.report_next = Some(now + self.cfg.retry);
                    out.push(JobOutput::Send {
                        to: j.gate_addr,
                        msg: JobMsg::JobDone {
                            job,
                            dc: self.dc,
                            token: j.token,
                        },
                    });
                }
                self.dispatch(now, out);
            }
            JobMsg::JobDoneAck { job, dc }
                if dc == self.dc
                    && self.jobs.get(&job).is_some_and(|j| j.report_next.is_some()) =>
            {
                self.jobs.remove(&job);
                self.issuer.forget(job);
                self.gates.forget_job(job);
                out.push(JobOutput::Event(JobEvent::Forgotten { job }));
                self.to_peers(JobMsg::ReplicaForget { job }, out);
            }
            JobMsg::Replicate {
                job,
                workflows,
                gate,
                gate_addr,
                gate_token,
                token,
            } => {
                let known = self.replicas.contains_key(&job);
                if !known && self.replicas.len() >= self.cfg.max_jobs {
                    return;
                }
                let r = self.replicas.entry(job).or_insert(Replica {
                    workflows,
                    gate,
                    gate_addr,
                    gate_token,
                    token,
                    done: Default::default(),
                    refreshed_at: now,
                });
                r.token = r.token.max(token);
                r.refreshed_at = now;
                self.next_replica_expiry
                    .get_or_insert(now + self.cfg.replica_ttl);
            }
            JobMsg::ReplicaDone { job, workflow } => {
                if let Some(r) = self.replicas.get_mut(&job) {
                    r.done.insert(workflow);
                }
            }
            JobMsg::ReplicaForget { job } => {
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
                let worker = self
                    .workers
                    .iter()
                    .find(|(_, w)| w.addr == from)
                    .map(|(n, _)| *n);
                let w = self
                    .jobs
                    .get_mut(&job)
                    .and_then(|j| j.workflows.get_mut(workflow as usize));
                if let (Some(w), Some(worker)) = (w, worker) {
                    if *w != Wf::Done {
                        *w = Wf::Dispatched {
                            worker,
                            token,
                            at: now,
                            acked: true,
                        };
                    }
                }
            }
            JobMsg::WorkerHello { free_slots } => {
                if let Some(wk) = self.workers.values_mut().find(|w| w.addr == from) {
                    wk.free_slots = free_slots;
                }
                self.dispatch(now, out);
            }
            _ => {}
        }
    }

    fn tick(&mut self, now: Instant, out: &mut JobOutputs) {
        if self.next_refresh.is_some_and(|t| t <= now) {
            self.next_refresh = Some(now + self.cfg.replica_refresh);
            let announce: Vec<JobMsg> = self
                .jobs
                .iter()
                .map(|(job, j)| JobMsg::Replicate {
                    job: *job,
                    workflows: j.workflows.len() as u32,
                    gate: j.gate,
                    gate_addr: j.gate_addr,
                    gate_token: self
                        .gates
                        .token(FenceDomain::GateJob, *job)
                        .unwrap_or_default(),
                    token: j.token,
                })
                .collect();
            for msg in announce {
                self.to_peers(msg, out);
            }
        }
        if self.next_replica_expiry.is_some_and(|t| t <= now) {
            let ttl = self.cfg.replica_ttl;
            let stale: Vec<JobId> = self
                .replicas
                .iter()
                .filter(|(_, r)| now.saturating_since(r.refreshed_at) >= ttl)
                .map(|(j, _)| *j)
                .collect();
            for job in stale {
                self.replicas.remove(&job);
                out.push(JobOutput::Event(JobEvent::Forgotten { job }));
            }
            self.next_replica_expiry = self.replicas.values().map(|r| r.refreshed_at + ttl).min();
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
        for (job, j) in self.jobs.iter_mut() {
            if scan {
                for w in j.workflows.iter_mut() {
                    if let Wf::Dispatched {
                        at, acked: false, ..
                    } = w
                    {
                        let due = *at + timeout;
                        if due <= now {
                            *w = Wf::Pending; // no answer: the dispatch was lost
                        } else {
                            self.dispatch_due = Some(self.dispatch_due.map_or(due, |d| d.min(due)));
                        }
                    }
                }
            }
            if j.report_next.is_some_and(|t| t <= now) {
                j.report_next = Some(now + self.cfg.retry);
                out.push(JobOutput::Send {
                    to: j.gate_addr,
                    msg: JobMsg::JobDone {
                        job: *job,
                        dc: self.dc,
                        token: j.token,
                    },
                });
            }
        }
        self.dispatch(now, out);
    }

    fn to_peers(&self, msg: JobMsg, out: &mut JobOutputs) {
        for (_, addr) in &self.peers {
            out.push(JobOutput::Send { to: *addr, msg });
        }
    }

    /// We now lead: adopt every replicated job under the next token of our term, and
    /// give the workers `takeover_grace` to say what they run before dispatching.
    fn take_over(&mut self, term: u64, now: Instant, out: &mut JobOutputs) {
        let replicas = core::mem::take(&mut self.replicas);
        for (job, r) in replicas {
            if self.jobs.contains_key(&job) {
                continue;
            }
            let Ok(token) = self.issuer.next(job, term, Some(r.token)) else {
                continue;
            };
            if self
                .gates
                .claim(FenceDomain::GateJob, job, r.gate_token, r.gate)
                .is_err()
            {
                continue;
            }
            let workflows = (0..r.workflows)
                .map(|i| {
                    if r.done.contains(&i) {
                        Wf::Done
                    } else {
                        Wf::Pending
                    }
                })
                .collect();
            self.jobs.insert(
                job,
                Job {
                    gate: r.gate,
                    gate_addr: r.gate_addr,
                    workflows,
                    token,
                    report_next: None,
                    hold_until: Some(now + self.cfg.takeover_grace),
                },
            );
            out.push(JobOutput::Event(JobEvent::TakenOver {
                job,
                dc: self.dc,
                token,
            }));
            // The others keep it as a replica of ours now.
            self.to_peers(
                JobMsg::Replicate {
                    job,
                    workflows: r.workflows,
                    gate: r.gate,
                    gate_addr: r.gate_addr,
                    gate_token: r.gate_token,
                    token,
                },
                out,
            );
            for i in r.done.iter() {
                self.to_peers(JobMsg::ReplicaDone { job, workflow: *i }, out);
            }
        }
    }

    /// We no longer lead: our jobs become replicas (the new leader took them over, or
    /// will; should we lead again, we adopt them again).
    fn step_aside(&mut self, now: Instant) {
        self.next_refresh = None;
        self.next_replica_expiry = Some(now + self.cfg.replica_ttl);
        let jobs = core::mem::take(&mut self.jobs);
        for (job, j) in jobs {
            let done = j
                .workflows
                .iter()
                .enumerate()
                .filter(|(_, w)| **w == Wf::Done)
                .map(|(i, _)| i as WorkflowIndex)
                .collect();
            let gate_token = self
                .gates
                .token(FenceDomain::GateJob, job)
                .unwrap_or_default();
            self.replicas.insert(
                job,
                Replica {
                    workflows: j.workflows.len() as u32,
                    gate: j.gate,
                    gate_addr: j.gate_addr,
                    gate_token,
                    token: j.token,
                    done,
                    refreshed_at: now,
                },
            );
            self.issuer.forget(job);
            self.gates.forget_job(job);
        }
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
            if j.hold_until.is_some() {
                continue;
            }
            for (i, w) in j.workflows.iter_mut().enumerate() {
                if *w != Wf::Pending {
                    continue;
                }
                let Some((&node, wk)) = self
                    .workers
                    .iter_mut()
                    .filter(|(_, w)| w.free_slots > 0)
                    .max_by_key(|(id, w)| (w.free_slots, core::cmp::Reverse(**id)))
                else {
                    return;
                };
                let Ok(token) = self.issuer.next(*job, term, Some(j.token)) else {
                    continue;
                };
                j.token = token;
                wk.free_slots -= 1;
                *w = Wf::Dispatched {
                    worker: node,
                    token,
                    at: now,
                    acked: false,
                };
                let due = now + self.cfg.dispatch_timeout;
                self.dispatch_due = Some(self.dispatch_due.map_or(due, |d| d.min(due)));
                out.push(JobOutput::Send {
                    to: wk.addr,
                    msg: JobMsg::Dispatch {
                        job: *job,
                        workflow: i as WorkflowIndex,
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

    const ME: NodeId = NodeId(1);
    const GATE: Addr = Addr::from_u32(100);

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
            },
        }
    }

    fn hello(worker: u32, free: u16) -> ManagerInput {
        ManagerInput::Msg {
            from: Addr::from_u32(worker),
            msg: JobMsg::WorkerHello { free_slots: free },
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
                },
                t,
            );
        }
        m
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
            ManagerInput::Msg {
                from: Addr::from_u32(11),
                msg: JobMsg::WorkflowDone {
                    job: JobId(5),
                    workflow: 2,
                    token: FenceToken::new(3, 4),
                },
            },
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
            },
            t + secs(1),
        );
        let done = |wf, token| ManagerInput::Msg {
            from: Addr::from_u32(11),
            msg: JobMsg::WorkflowDone {
                job: JobId(9),
                workflow: wf,
                token,
            },
        };
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
            }),
            t,
        );
        f.step(
            from(JobMsg::ReplicaDone {
                job: JobId(9),
                workflow: 0,
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
        // After the 3 s grace only workflow 2 (nobody runs it) is dispatched.
        let out = f.step(ManagerInput::Tick, t + secs(13));
        assert_eq!(
            dispatches(&out),
            vec![(Addr::from_u32(10), 2, FenceToken::new(2, 5))]
        );
        // Both results come in: the job is reported to the gate under the new token.
        let done = |wf, token| ManagerInput::Msg {
            from: Addr::from_u32(10),
            msg: JobMsg::WorkflowDone {
                job: JobId(9),
                workflow: wf,
                token,
            },
        };
        f.step(done(1, FenceToken::new(1, 3)), t + secs(14));
        let out = f.step(done(2, FenceToken::new(2, 5)), t + secs(15));
        assert!(out.contains(&JobOutput::Send {
            to: GATE,
            msg: JobMsg::JobDone {
                job: JobId(9),
                dc: DcId(0),
                token: FenceToken::new(2, 5)
            }
        }));
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
}
