//! A worker's side of the job plane: slots, fenced dispatch acceptance (jobs.md §1:
//! queue bound first, then the fence, per workflow `reject token <= last`), running
//! workflows until the shell says they finished, and results resent until acknowledged.

use super::{JobEvent, JobMsg, JobOutput, JobOutputs, WorkflowIndex};
use crate::id::{Addr, DcId, FenceToken, JobId};
use crate::leadership::{FenceDomain, JobRegistry, Verdict};
use crate::time::{secs, Instant};
use core::time::Duration;
use std::collections::{BTreeMap, VecDeque};

#[derive(Clone, Debug, PartialEq)]
pub struct WorkerConfig {
    /// Workflows run at once.
    pub slots: u16,
    /// How often the worker re-tells the DC leader its free slots (it also does on
    /// every new leader; each result frees a slot the manager counts itself).
    pub hello_interval: Duration,
    /// An unacknowledged result is resent after this long.
    pub retry: Duration,
    /// How long a workflow's fence register outlives its acknowledged result (late
    /// duplicates of a dispatch arrive well before; then the state goes).
    pub forget_after: Duration,
    /// Bound on the per-job fence registers.
    pub max_jobs: usize,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            slots: 4,
            hello_interval: secs(30),
            retry: secs(2),
            forget_after: secs(600),
            max_jobs: 10_000,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Running {
    token: FenceToken,
    manager: Addr,
}

#[derive(Clone, Copy, Debug)]
struct Unacked {
    token: FenceToken,
    manager: Addr,
    next_send: Instant,
}

#[derive(Clone, Debug)]
pub struct WorkerJobs {
    cfg: WorkerConfig,
    dc: DcId,
    leader: Option<Addr>,
    running: BTreeMap<(JobId, WorkflowIndex), Running>,
    unacked: BTreeMap<(JobId, WorkflowIndex), Unacked>,
    /// Highest dispatch token accepted per workflow.
    accepted: BTreeMap<(JobId, WorkflowIndex), FenceToken>,
    /// Acknowledged workflows in acknowledgement order, each forgotten `forget_after`
    /// later (a queue, so expiry costs O(1) per workflow).
    forget: VecDeque<(Instant, JobId, WorkflowIndex)>,
    /// Workflows per job still in `accepted`: a job at 0 loses its register too.
    per_job: BTreeMap<JobId, u32>,
    registry: JobRegistry,
    next_hello: Instant,
}

pub enum WorkerInput {
    Msg {
        from: Addr,
        msg: JobMsg,
    },
    /// The shell's workload model says this workflow finished.
    Finished {
        job: JobId,
        workflow: WorkflowIndex,
    },
    Tick,
}

impl WorkerJobs {
    pub fn new(cfg: WorkerConfig, dc: DcId, now: Instant) -> WorkerJobs {
        WorkerJobs {
            registry: JobRegistry::new(cfg.max_jobs),
            next_hello: now + cfg.hello_interval,
            cfg,
            dc,
            leader: None,
            running: BTreeMap::new(),
            unacked: BTreeMap::new(),
            accepted: BTreeMap::new(),
            forget: VecDeque::new(),
            per_job: BTreeMap::new(),
        }
    }

    pub fn free_slots(&self) -> u16 {
        self.cfg.slots.saturating_sub(self.running.len() as u16)
    }

    /// Per-job entries held (running, unacknowledged, registers): 0 once all are done.
    pub fn table_len(&self) -> usize {
        self.running.len()
            + self.unacked.len()
            + self.accepted.len()
            + self.forget.len()
            + self.per_job.len()
            + self.registry.len()
    }

    /// Whether a workflow of `job` runs here or awaits its acknowledgement.
    pub fn has_job(&self, job: JobId) -> bool {
        self.running
            .keys()
            .chain(self.unacked.keys())
            .any(|(j, _)| *j == job)
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        let resend = self.unacked.values().map(|u| u.next_send).min();
        let forget = self
            .forget
            .front()
            .map(|(t, ..)| *t + self.cfg.forget_after);
        [Some(self.next_hello), resend, forget]
            .into_iter()
            .flatten()
            .min()
    }

    pub fn step(&mut self, input: WorkerInput, now: Instant) -> JobOutputs {
        let mut out = JobOutputs::new();
        match input {
            WorkerInput::Msg { from, msg } => self.on_msg(from, msg, now, &mut out),
            WorkerInput::Finished { job, workflow } => {
                if let Some(r) = self.running.remove(&(job, workflow)) {
                    let to = self.leader.unwrap_or(r.manager);
                    out.push(JobOutput::Send {
                        to,
                        msg: JobMsg::WorkflowDone {
                            job,
                            workflow,
                            token: r.token,
                        },
                    });
                    self.unacked.insert(
                        (job, workflow),
                        Unacked {
                            token: r.token,
                            manager: to,
                            next_send: now + self.cfg.retry,
                        },
                    );
                }
            }
            WorkerInput::Tick => self.tick(now, &mut out),
        }
        out
    }

    fn on_msg(&mut self, from: Addr, msg: JobMsg, now: Instant, out: &mut JobOutputs) {
        match msg {
            JobMsg::Dispatch {
                job,
                workflow,
                token,
                manager,
                manager_addr,
            } => {
                let reply = |accepted| JobOutput::Send {
                    to: manager_addr,
                    msg: JobMsg::DispatchAck {
                        job,
                        workflow,
                        token,
                        accepted,
                    },
                };
                let key = (job, workflow);
                // The same dispatch again while it runs (a resend): acknowledge it.
                if self.running.get(&key).is_some_and(|r| r.token == token) {
                    out.push(reply(true));
                    return;
                }
                // Queue bound first (jobs.md §1), then the fence.
                if self.free_slots() == 0 {
                    out.push(reply(false));
                    return;
                }
                let stale_for_workflow = self.accepted.get(&key).is_some_and(|t| token <= *t);
                let verdict = if stale_for_workflow {
                    Ok(Verdict::Stale)
                } else {
                    self.registry
                        .operation(FenceDomain::ManagerJob(self.dc), job, token, manager)
                };
                match verdict {
                    Ok(Verdict::Accepted | Verdict::Resend) => {
                        if self.accepted.insert(key, token).is_none() {
                            *self.per_job.entry(job).or_default() += 1;
                        }
                        self.running.insert(
                            key,
                            Running {
                                token,
                                manager: manager_addr,
                            },
                        );
                        out.push(JobOutput::Event(JobEvent::WorkflowStarted {
                            job,
                            workflow,
                            token,
                        }));
                        out.push(reply(true));
                    }
                    Ok(Verdict::Stale) => {
                        out.push(JobOutput::Event(JobEvent::StaleRejected { job, token }));
                        out.push(reply(false));
                    }
                    Err(_) => out.push(reply(false)),
                }
            }
            JobMsg::WorkflowDoneAck { job, workflow } => {
                let was_unacked = self.unacked.remove(&(job, workflow)).is_some();
                if was_unacked {
                    self.forget.push_back((now, job, workflow));
                }
            }
            JobMsg::LeaderHello { .. } if self.leader != Some(from) => {
                self.leader = Some(from);
                // Tell the new leader at once what we can take and what we run (it may
                // have just taken those jobs over).
                out.push(JobOutput::Send {
                    to: from,
                    msg: JobMsg::WorkerHello {
                        free_slots: self.free_slots(),
                    },
                });
                for ((job, workflow), r) in &self.running {
                    out.push(JobOutput::Send {
                        to: from,
                        msg: JobMsg::Running {
                            job: *job,
                            workflow: *workflow,
                            token: r.token,
                        },
                    });
                }
            }
            _ => {}
        }
    }

    fn tick(&mut self, now: Instant, out: &mut JobOutputs) {
        if now >= self.next_hello {
            self.next_hello = now + self.cfg.hello_interval;
            if let Some(leader) = self.leader {
                out.push(JobOutput::Send {
                    to: leader,
                    msg: JobMsg::WorkerHello {
                        free_slots: self.free_slots(),
                    },
                });
            }
        }
        let leader = self.leader;
        for ((job, workflow), u) in self.unacked.iter_mut() {
            if u.next_send <= now {
                // Resend to whoever leads the DC now (a result outlives its manager).
                u.manager = leader.unwrap_or(u.manager);
                u.next_send = now + self.cfg.retry;
                out.push(JobOutput::Send {
                    to: u.manager,
                    msg: JobMsg::WorkflowDone {
                        job: *job,
                        workflow: *workflow,
                        token: u.token,
                    },
                });
            }
        }
        // Forget acknowledged workflows after `forget_after`; a job with nothing left
        // loses its register too.
        while let Some(&(at, job, workflow)) = self.forget.front() {
            if now < at + self.cfg.forget_after {
                break;
            }
            self.forget.pop_front();
            let key = (job, workflow);
            if self.running.contains_key(&key) || self.unacked.contains_key(&key) {
                continue; // dispatched again since: keep its register
            }
            if self.accepted.remove(&key).is_none() {
                continue;
            }
            let left = self.per_job.get_mut(&job).map(|n| {
                *n -= 1;
                *n
            });
            if left == Some(0) {
                self.per_job.remove(&job);
                self.registry.forget_job(job);
                out.push(JobOutput::Event(JobEvent::Forgotten { job }));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::NodeId;

    const DC: DcId = DcId(0);
    const M: Addr = Addr::from_u32(10);

    fn dispatch(job: u64, wf: u32, term: u32, counter: u32) -> WorkerInput {
        WorkerInput::Msg {
            from: M,
            msg: JobMsg::Dispatch {
                job: JobId(job),
                workflow: wf,
                token: FenceToken::new(term, counter),
                manager: NodeId(10),
                manager_addr: M,
            },
        }
    }

    fn accepted(out: &JobOutputs) -> Option<bool> {
        out.iter().find_map(|o| match o {
            JobOutput::Send {
                msg: JobMsg::DispatchAck { accepted, .. },
                ..
            } => Some(*accepted),
            _ => None,
        })
    }

    #[test]
    fn slots_bound_what_runs_and_stale_dispatches_never_start() {
        let t = Instant::ZERO;
        let mut w = WorkerJobs::new(
            WorkerConfig {
                slots: 2,
                ..WorkerConfig::default()
            },
            DC,
            t,
        );
        assert_eq!(accepted(&w.step(dispatch(1, 0, 1, 1), t)), Some(true));
        assert_eq!(accepted(&w.step(dispatch(1, 1, 1, 2), t)), Some(true));
        assert_eq!(w.free_slots(), 0);
        assert_eq!(
            accepted(&w.step(dispatch(1, 2, 1, 3), t)),
            Some(false),
            "full"
        );
        // A resend of a running dispatch is acknowledged, not run twice.
        let out = w.step(dispatch(1, 0, 1, 1), t);
        assert_eq!(accepted(&out), Some(true));
        assert!(!out
            .iter()
            .any(|o| matches!(o, JobOutput::Event(JobEvent::WorkflowStarted { .. }))));
        // Workflow 0 finishes; a duplicate of its old dispatch is stale (token <= last).
        w.step(
            WorkerInput::Finished {
                job: JobId(1),
                workflow: 0,
            },
            t,
        );
        let out = w.step(dispatch(1, 0, 1, 1), t);
        assert_eq!(accepted(&out), Some(false));
        assert!(out.contains(&JobOutput::Event(JobEvent::StaleRejected {
            job: JobId(1),
            token: FenceToken::new(1, 1)
        })));
        // A newer leader's re-dispatch of it runs; afterwards the old leader's newer
        // dispatch of another workflow is stale (the job's register moved on).
        assert_eq!(accepted(&w.step(dispatch(1, 0, 2, 4), t)), Some(true));
        w.step(
            WorkerInput::Finished {
                job: JobId(1),
                workflow: 1,
            },
            t,
        );
        assert_eq!(accepted(&w.step(dispatch(1, 3, 1, 5), t)), Some(false));
    }

    #[test]
    fn results_are_resent_until_acknowledged_then_all_state_goes() {
        let t = Instant::ZERO;
        let mut w = WorkerJobs::new(WorkerConfig::default(), DC, t);
        w.step(dispatch(7, 0, 1, 1), t);
        let out = w.step(
            WorkerInput::Finished {
                job: JobId(7),
                workflow: 0,
            },
            t + secs(1),
        );
        let done = JobMsg::WorkflowDone {
            job: JobId(7),
            workflow: 0,
            token: FenceToken::new(1, 1),
        };
        assert!(out.contains(&JobOutput::Send { to: M, msg: done }));
        // Unacknowledged: resent every 2 s.
        let out = w.step(WorkerInput::Tick, t + secs(3));
        assert!(out.contains(&JobOutput::Send { to: M, msg: done }));
        w.step(
            WorkerInput::Msg {
                from: M,
                msg: JobMsg::WorkflowDoneAck {
                    job: JobId(7),
                    workflow: 0,
                },
            },
            t + secs(4),
        );
        let out = w.step(WorkerInput::Tick, t + secs(6));
        assert!(!out.iter().any(|o| matches!(o, JobOutput::Send { .. })));
        assert!(w.table_len() > 0, "the fence register outlives the result");
        let out = w.step(WorkerInput::Tick, t + secs(4) + secs(600));
        assert!(out.contains(&JobOutput::Event(JobEvent::Forgotten { job: JobId(7) })));
        assert_eq!(w.table_len(), 0);
    }

    #[test]
    fn results_follow_the_dc_leader() {
        let t = Instant::ZERO;
        let mut w = WorkerJobs::new(WorkerConfig::default(), DC, t);
        let new_leader = Addr::from_u32(11);
        w.step(dispatch(3, 0, 1, 1), t);
        w.step(
            WorkerInput::Finished {
                job: JobId(3),
                workflow: 0,
            },
            t,
        );
        let out = w.step(
            WorkerInput::Msg {
                from: new_leader,
                msg: JobMsg::LeaderHello { term: 2 },
            },
            t + secs(1),
        );
        assert!(out.contains(&JobOutput::Send {
            to: new_leader,
            msg: JobMsg::WorkerHello { free_slots: 4 }
        }));
        let out = w.step(WorkerInput::Tick, t + secs(2));
        assert!(out.iter().any(|o| matches!(
            o,
            JobOutput::Send {
                to,
                msg: JobMsg::WorkflowDone { .. }
            } if *to == new_leader
        )));
    }
}
