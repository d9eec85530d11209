//! A worker's side of the job plane: slots, fenced dispatch acceptance (jobs.md §1:
//! queue bound first, then the fence, per workflow `reject token <= last`), running
//! workflows until the shell says they finished, and results resent until acknowledged.
//!
//! Extensions (AD-26, jobs.md §2): a worker running a workflow that reports item progress
//! (the shell's `Progress` input) asks the DC leader for more healthcheck time once that
//! workflow has run `extension_after`, then every `extension_interval`, showing its
//! completed items; the manager judges whether that is progress. Workflows that report
//! no progress never ask. A cancel from the leader (the job timed out, or this worker
//! was evicted) stops a workflow at once.
//!
//! Backpressure (AD-37, backpressure.md §8): progress goes to the DC leader through a
//! [`WorkerFlush`], which follows the worst level its managers signal (NONE immediate,
//! THROTTLE slower, BATCH one update per job, REJECT dropped). Results never go through
//! it, and carry the workflow's final item count.

use super::{JobEvent, JobMsg, JobOutput, JobOutputs, WorkflowIndex};
use crate::backpressure::flush::{FlushConfig, WorkerFlush};
use crate::id::{Addr, DcId, FenceToken, JobId};
use crate::leadership::{FenceDomain, JobRegistry, Verdict};
use crate::time::{secs, Instant};
use crate::timeout::extension::ExtensionRequest;
use core::time::Duration;
use std::collections::{BTreeMap, VecDeque};

/// At most this many remembered results are told to a new leader (`DoneEarlier`), the
/// most recent first: a leader change costs a bounded burst of frames.
pub const MAX_DONE_EARLIER: usize = 256;

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
    /// A progress-reporting workflow asks for an extension once it has run this long...
    pub extension_after: Duration,
    /// ...and again this often while it runs.
    pub extension_interval: Duration,
    pub flush: FlushConfig,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            slots: 4,
            hello_interval: secs(30),
            retry: secs(2),
            forget_after: secs(600),
            max_jobs: 10_000,
            extension_after: secs(10),
            extension_interval: secs(10),
            flush: FlushConfig::default(),
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Running {
    token: FenceToken,
    manager: Addr,
    started_at: Instant,
    /// Items done and in all, once the workload reported any.
    progress: Option<(u64, u64)>,
}

#[derive(Clone, Copy, Debug)]
struct Unacked {
    token: FenceToken,
    items: u64,
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
    /// Acknowledged (and cancelled) workflows in that order, each forgotten
    /// `forget_after` later (a queue, so expiry costs O(1) per workflow); a finished
    /// one with the items it reported, told to each new leader (`DoneEarlier`).
    forget: VecDeque<(Instant, JobId, WorkflowIndex, Option<u64>)>,
    /// Workflows per job still in `accepted`: a job at 0 loses its register too.
    per_job: BTreeMap<JobId, u32>,
    registry: JobRegistry,
    next_hello: Instant,
    /// No extension request before this.
    next_extension: Instant,
    flush: WorkerFlush,
    /// Progress updates sent, folded into batches, and dropped at REJECT.
    pub progress_sent: u64,
    pub progress_batched: u64,
    pub progress_dropped: u64,
}

pub enum WorkerInput {
    Msg {
        from: Addr,
        msg: JobMsg,
    },
    /// The shell's workload model says this workflow finished, having completed
    /// `items` items.
    Finished {
        job: JobId,
        workflow: WorkflowIndex,
        items: u64,
    },
    /// ...or that it has done `completed` of its `total` items.
    Progress {
        job: JobId,
        workflow: WorkflowIndex,
        completed: u64,
        total: u64,
    },
    Tick,
}

impl WorkerJobs {
    pub fn new(cfg: WorkerConfig, dc: DcId, now: Instant) -> WorkerJobs {
        WorkerJobs {
            registry: JobRegistry::new(cfg.max_jobs),
            next_hello: now + cfg.hello_interval,
            next_extension: Instant::ZERO,
            flush: WorkerFlush::new(cfg.flush.clone()),
            progress_sent: 0,
            progress_batched: 0,
            progress_dropped: 0,
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
        // Asked after every step of every worker, most of them idle: each source is
        // looked at only if it can hold a deadline.
        let mut next = self.next_hello;
        if let Some(resend) = self.unacked.values().map(|u| u.next_send).min() {
            next = next.min(resend);
        }
        if let Some((t, ..)) = self.forget.front() {
            next = next.min(*t + self.cfg.forget_after);
        }
        if !self.running.is_empty() {
            if let Some(extension) = self.extension_due() {
                next = next.min(extension);
            }
        }
        if let Some(flush) = self.flush.next_deadline() {
            next = next.min(flush);
        }
        Some(next)
    }

    /// When the next extension request is due: a progress-reporting workflow has run
    /// `extension_after`, and the last request is `extension_interval` old.
    fn extension_due(&self) -> Option<Instant> {
        self.leader?;
        let eligible = self
            .running
            .values()
            .filter(|r| r.progress.is_some())
            .map(|r| r.started_at + self.cfg.extension_after)
            .min()?;
        Some(eligible.max(self.next_extension))
    }

    /// The request: everything the progress-reporting workflows have done.
    fn extension_request(&self, now: Instant) -> ExtensionRequest {
        let after = self.cfg.extension_after;
        let (done, total) = self
            .running
            .values()
            .filter(|r| now.saturating_since(r.started_at) >= after)
            .filter_map(|r| r.progress)
            .fold((0u64, 0u64), |(d, t), (rd, rt)| {
                (d.saturating_add(rd), t.saturating_add(rt))
            });
        let ppm = if total == 0 {
            0
        } else {
            (done.min(total) as u128 * 1_000_000 / total as u128) as u32
        };
        ExtensionRequest {
            current_progress_ppm: ppm,
            completed_items: Some(done),
            total_items: Some(total),
            active_workflows: self.running.len().min(u16::MAX as usize) as u16,
            estimated_completion_ms: 0,
        }
    }

    pub fn step(&mut self, input: WorkerInput, now: Instant) -> JobOutputs {
        let mut out = JobOutputs::new();
        match input {
            WorkerInput::Msg { from, msg } => self.on_msg(from, msg, now, &mut out),
            WorkerInput::Finished {
                job,
                workflow,
                items,
            } => {
                if let Some(r) = self.running.remove(&(job, workflow)) {
                    self.flush.discard(job, workflow);
                    let items = items.max(r.progress.map_or(0, |(done, _)| done));
                    let to = self.leader.unwrap_or(r.manager);
                    out.push(JobOutput::Send {
                        to,
                        msg: JobMsg::WorkflowDone {
                            job,
                            workflow,
                            token: r.token,
                            items,
                        },
                    });
                    self.unacked.insert(
                        (job, workflow),
                        Unacked {
                            token: r.token,
                            items,
                            manager: to,
                            next_send: now + self.cfg.retry,
                        },
                    );
                }
            }
            WorkerInput::Progress {
                job,
                workflow,
                completed,
                total,
            } => {
                if let Some(r) = self.running.get_mut(&(job, workflow)) {
                    r.progress = Some((completed, total.max(completed)));
                    let to = self.leader.unwrap_or(r.manager);
                    self.flush.push(to, job, workflow, completed, now);
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
                                started_at: now,
                                progress: None,
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
            JobMsg::WorkflowProgressAck {
                level, delay_ms, ..
            } => {
                if let Some(level) = self.flush.on_signal(from, level, delay_ms) {
                    out.push(JobOutput::Event(JobEvent::FlushLevel { level }));
                }
            }
            JobMsg::CancelWorkflow { job, workflow } => {
                // Stop it if it runs (it is answered either way: the manager waits for
                // the confirmation, and a lost one is asked for again). Its register
                // is forgotten like an acknowledged workflow's.
                if self.running.remove(&(job, workflow)).is_some() {
                    self.forget.push_back((now, job, workflow, None));
                }
                out.push(JobOutput::Send {
                    to: from,
                    msg: JobMsg::WorkflowCancelled { job, workflow },
                });
            }
            JobMsg::WorkflowDoneAck { job, workflow } => {
                if let Some(u) = self.unacked.remove(&(job, workflow)) {
                    self.forget.push_back((now, job, workflow, Some(u.items)));
                }
            }
            JobMsg::LeaderHello { .. } if self.leader != Some(from) => {
                self.leader = Some(from);
                // backpressure.md §10.6: the level is the live managers'; a former
                // leader's last signal must not outlive its leadership.
                if let Some(level) = self.flush.keep_only(from) {
                    out.push(JobOutput::Event(JobEvent::FlushLevel { level }));
                }
                // Tell the new leader at once what we can take and what we run (it may
                // have just taken those jobs over).
                out.push(JobOutput::Send {
                    to: from,
                    msg: JobMsg::WorkerHello {
                        free_slots: self.free_slots(),
                        slots: self.cfg.slots,
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
                // ...and what we finished that an earlier leader acknowledged: it may
                // lead the job from a replica that missed those results.
                self.tell_done_earlier(from, None, out);
            }
            JobMsg::RunningQuery { job } => {
                // A leader adopted the job from a follower's replica after our reports
                // to it as a new leader: tell it again what we run of that job.
                for ((_, workflow), r) in self.running.range((job, 0)..=(job, WorkflowIndex::MAX)) {
                    out.push(JobOutput::Send {
                        to: from,
                        msg: JobMsg::Running {
                            job,
                            workflow: *workflow,
                            token: r.token,
                        },
                    });
                }
                // The follower's replica it adopted may miss a result, as a new
                // leader's may.
                self.tell_done_earlier(from, Some(job), out);
            }
            _ => {}
        }
    }

    /// `DoneEarlier` to `to` for the results an earlier leader acknowledged that we
    /// still remember (of `job` only, if given): the most recent first, at most
    /// `MAX_DONE_EARLIER`, to bound the burst. A leader that knows a result already
    /// ignores it.
    fn tell_done_earlier(&self, to: Addr, job: Option<JobId>, out: &mut JobOutputs) {
        let done = self
            .forget
            .iter()
            .rev()
            .filter_map(|&(_, j, workflow, items)| Some((j, workflow, items?)))
            .filter(|(j, workflow, _)| {
                let key = (*j, *workflow);
                job.is_none_or(|job| job == *j)
                    && !self.running.contains_key(&key)
                    && !self.unacked.contains_key(&key)
            })
            .take(MAX_DONE_EARLIER);
        for (job, workflow, items) in done {
            out.push(JobOutput::Send {
                to,
                msg: JobMsg::DoneEarlier {
                    job,
                    workflow,
                    items,
                },
            });
        }
    }

    fn tick(&mut self, now: Instant, out: &mut JobOutputs) {
        let f = self.flush.tick(now);
        if !f.send.is_empty() || f.dropped > 0 {
            for u in &f.send {
                out.push(JobOutput::Send {
                    to: u.to,
                    msg: JobMsg::WorkflowProgress {
                        job: u.job,
                        workflow: u.workflow,
                        completed: u.completed,
                        workflows: u.workflows,
                    },
                });
            }
            self.progress_sent += f.send.len() as u64;
            self.progress_batched += f.batched;
            self.progress_dropped += f.dropped;
            let c = |n: u64| n.min(u16::MAX as u64) as u16;
            out.push(JobOutput::Event(JobEvent::ProgressFlushed {
                sent: c(f.send.len() as u64),
                batched: c(f.batched),
                dropped: c(f.dropped),
            }));
        }
        if let (Some(due), Some(leader)) = (self.extension_due(), self.leader) {
            if due <= now {
                self.next_extension = now + self.cfg.extension_interval;
                out.push(JobOutput::Send {
                    to: leader,
                    msg: JobMsg::ExtensionRequest {
                        request: self.extension_request(now),
                    },
                });
            }
        }
        if now >= self.next_hello {
            self.next_hello = now + self.cfg.hello_interval;
            if let Some(leader) = self.leader {
                out.push(JobOutput::Send {
                    to: leader,
                    msg: JobMsg::WorkerHello {
                        free_slots: self.free_slots(),
                        slots: self.cfg.slots,
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
                        items: u.items,
                    },
                });
            }
        }
        // Forget acknowledged workflows after `forget_after`; a job with nothing left
        // loses its register too.
        while let Some(&(at, job, workflow, _)) = self.forget.front() {
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
                items: 0,
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
                items: 0,
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
                items: 0,
            },
            t + secs(1),
        );
        let done = JobMsg::WorkflowDone {
            job: JobId(7),
            workflow: 0,
            token: FenceToken::new(1, 1),
            items: 0,
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
                items: 0,
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
            msg: JobMsg::WorkerHello {
                free_slots: 4,
                slots: 4
            }
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

    /// A new leader hears, with our slots and what we run, the results an earlier
    /// leader acknowledged that we still remember (it may lead their jobs from a
    /// replica that missed them): with their items, the most recent first, at most
    /// `MAX_DONE_EARLIER`; not cancelled workflows (they never finished), not the
    /// leader we already follow, and none once forgotten (600 s). A leader asking about
    /// one job (`RunningQuery`) hears that job's.
    #[test]
    fn a_new_leader_hears_the_results_we_remember() {
        let t = Instant::ZERO;
        let mut w = WorkerJobs::new(WorkerConfig::default(), DC, t);
        let hello = |w: &mut WorkerJobs, from: Addr, at: Instant| {
            let out = w.step(
                WorkerInput::Msg {
                    from,
                    msg: JobMsg::LeaderHello { term: 2 },
                },
                at,
            );
            out.into_iter()
                .filter_map(|o| match o {
                    JobOutput::Send {
                        to,
                        msg:
                            JobMsg::DoneEarlier {
                                job,
                                workflow,
                                items,
                            },
                    } if to == from => Some((job.0, workflow, items)),
                    _ => None,
                })
                .collect::<Vec<_>>()
        };
        hello(&mut w, M, t);
        // Job 3: workflow 0 finishes (5 items) and is acknowledged; workflow 1 is
        // cancelled; job 4's workflow 0 finishes (2 items), acknowledged.
        for (job, wf) in [(3, 0), (3, 1), (4, 0)] {
            w.step(dispatch(job, wf, 1, 1 + wf), t);
        }
        for (job, items) in [(3, 5), (4, 2)] {
            w.step(
                WorkerInput::Finished {
                    job: JobId(job),
                    workflow: 0,
                    items,
                },
                t + secs(1),
            );
            w.step(
                WorkerInput::Msg {
                    from: M,
                    msg: JobMsg::WorkflowDoneAck {
                        job: JobId(job),
                        workflow: 0,
                    },
                },
                t + secs(2),
            );
        }
        w.step(
            WorkerInput::Msg {
                from: M,
                msg: JobMsg::CancelWorkflow {
                    job: JobId(3),
                    workflow: 1,
                },
            },
            t + secs(3),
        );
        let other = Addr::from_u32(11);
        assert_eq!(
            hello(&mut w, other, t + secs(10)),
            vec![(4, 0, 2), (3, 0, 5)]
        );
        // A leader that adopted job 3 from a follower's offer asks about that job only.
        let out = w.step(
            WorkerInput::Msg {
                from: other,
                msg: JobMsg::RunningQuery { job: JobId(3) },
            },
            t + secs(10),
        );
        assert_eq!(
            out.into_vec(),
            vec![JobOutput::Send {
                to: other,
                msg: JobMsg::DoneEarlier {
                    job: JobId(3),
                    workflow: 0,
                    items: 5
                }
            }]
        );
        assert!(
            hello(&mut w, other, t + secs(11)).is_empty(),
            "already our leader"
        );
        // Forgotten with their registers, 600 s after the acknowledgement.
        w.step(WorkerInput::Tick, t + secs(2) + secs(600));
        assert!(hello(&mut w, M, t + secs(700)).is_empty());
        // A burst is bounded: 300 remembered results, 256 told.
        let mut w = WorkerJobs::new(WorkerConfig::default(), DC, t);
        hello(&mut w, M, t);
        for job in 0..300 {
            w.step(dispatch(100 + job, 0, 1, 1), t);
            w.step(
                WorkerInput::Finished {
                    job: JobId(100 + job),
                    workflow: 0,
                    items: 1,
                },
                t,
            );
            w.step(
                WorkerInput::Msg {
                    from: M,
                    msg: JobMsg::WorkflowDoneAck {
                        job: JobId(100 + job),
                        workflow: 0,
                    },
                },
                t,
            );
        }
        let told = hello(&mut w, other, t + secs(1));
        assert_eq!(told.len(), MAX_DONE_EARLIER);
        assert_eq!(told[0].0, 399, "the most recent first");
    }

    fn requests(out: &JobOutputs) -> Vec<ExtensionRequest> {
        out.iter()
            .filter_map(|o| match o {
                JobOutput::Send {
                    msg: JobMsg::ExtensionRequest { request },
                    to,
                } if *to == M => Some(*request),
                _ => None,
            })
            .collect()
    }

    /// AD-26, the worker's side: a workflow that reports item progress asks the leader
    /// for an extension 10 s after it started, then every 10 s, with its items; one that
    /// reports nothing never asks.
    #[test]
    fn progress_reporting_workflows_ask_for_extensions_every_10_s() {
        let t = Instant::ZERO;
        let mut w = WorkerJobs::new(WorkerConfig::default(), DC, t);
        w.step(
            WorkerInput::Msg {
                from: M,
                msg: JobMsg::LeaderHello { term: 1 },
            },
            t,
        );
        w.step(dispatch(1, 0, 1, 1), t);
        w.step(dispatch(2, 0, 1, 1), t);
        // Without progress reports: no request, and no deadline for one.
        assert!(requests(&w.step(WorkerInput::Tick, t + secs(10))).is_empty());
        assert!(w.next_deadline().is_some_and(|d| d >= t + secs(30)));
        let progress = |completed| WorkerInput::Progress {
            job: JobId(1),
            workflow: 0,
            completed,
            total: 10,
        };
        w.step(progress(2), t + secs(11));
        assert_eq!(w.next_deadline(), Some(t + secs(10)), "due since 10 s in");
        let r = requests(&w.step(WorkerInput::Tick, t + secs(11)));
        assert_eq!(r.len(), 1);
        assert_eq!(
            (
                r[0].completed_items,
                r[0].total_items,
                r[0].current_progress_ppm
            ),
            (Some(2), Some(10), 200_000)
        );
        assert_eq!(r[0].active_workflows, 2);
        assert!(requests(&w.step(WorkerInput::Tick, t + secs(20))).is_empty());
        w.step(progress(3), t + secs(20));
        let r = requests(&w.step(WorkerInput::Tick, t + secs(21)));
        assert_eq!(r[0].completed_items, Some(3));
    }

    /// A cancel stops a running workflow at once and is always confirmed; its register
    /// is forgotten later like an acknowledged workflow's.
    /// A leader that adopted a job from a follower's offer asks what runs of it: the
    /// worker names each workflow of that job it runs, under its token, and no other.
    #[test]
    fn a_running_query_is_answered_with_the_workflows_of_that_job() {
        let t = Instant::ZERO;
        let mut w = WorkerJobs::new(WorkerConfig::default(), DC, t);
        w.step(dispatch(1, 0, 1, 1), t);
        w.step(dispatch(2, 0, 1, 1), t);
        w.step(dispatch(2, 3, 1, 2), t);
        w.step(dispatch(3, 1, 1, 1), t);
        let leader = Addr::from_u32(11);
        let out = w.step(
            WorkerInput::Msg {
                from: leader,
                msg: JobMsg::RunningQuery { job: JobId(2) },
            },
            t,
        );
        assert_eq!(
            out.to_vec(),
            vec![
                JobOutput::Send {
                    to: leader,
                    msg: JobMsg::Running {
                        job: JobId(2),
                        workflow: 0,
                        token: FenceToken::new(1, 1)
                    }
                },
                JobOutput::Send {
                    to: leader,
                    msg: JobMsg::Running {
                        job: JobId(2),
                        workflow: 3,
                        token: FenceToken::new(1, 2)
                    }
                },
            ]
        );
    }

    #[test]
    fn a_cancel_stops_the_workflow_and_is_confirmed() {
        let t = Instant::ZERO;
        let mut w = WorkerJobs::new(WorkerConfig::default(), DC, t);
        w.step(dispatch(1, 0, 1, 1), t);
        assert!(w.has_job(JobId(1)));
        let cancel = WorkerInput::Msg {
            from: M,
            msg: JobMsg::CancelWorkflow {
                job: JobId(1),
                workflow: 0,
            },
        };
        let confirmed = JobOutput::Send {
            to: M,
            msg: JobMsg::WorkflowCancelled {
                job: JobId(1),
                workflow: 0,
            },
        };
        assert!(w.step(cancel, t + secs(1)).contains(&confirmed));
        assert!(!w.has_job(JobId(1)));
        assert_eq!(w.free_slots(), WorkerConfig::default().slots);
        // Its late finish is ignored (nothing to report).
        let out = w.step(
            WorkerInput::Finished {
                job: JobId(1),
                workflow: 0,
                items: 0,
            },
            t + secs(2),
        );
        assert!(out.is_empty());
        // A repeated cancel is confirmed again.
        let again = WorkerInput::Msg {
            from: M,
            msg: JobMsg::CancelWorkflow {
                job: JobId(1),
                workflow: 0,
            },
        };
        assert!(w.step(again, t + secs(3)).contains(&confirmed));
        // forget_after (600 s) later every register is gone.
        w.step(WorkerInput::Tick, t + secs(602));
        assert_eq!(w.table_len(), 0);
    }

    /// backpressure.md §8/§10.7: at REJECT progress is dropped, but a workflow's result
    /// (CONTROL) leaves in the very step it finishes, never through the flush buffer;
    /// and a pushed NONE from the manager brings the worker back at once.
    #[test]
    fn results_never_wait_behind_backpressure() {
        let t = Instant::ZERO;
        let mut w = WorkerJobs::new(WorkerConfig::default(), DC, t);
        w.step(dispatch(1, 0, 1, 1), t);
        let signal = |level| WorkerInput::Msg {
            from: M,
            msg: JobMsg::WorkflowProgressAck {
                level,
                delay_ms: 1000,
                batch_only: true,
            },
        };
        let out = w.step(signal(crate::backpressure::stats::Level::Reject), t);
        assert!(out.contains(&JobOutput::Event(JobEvent::FlushLevel {
            level: crate::backpressure::stats::Level::Reject
        })));
        w.step(
            WorkerInput::Progress {
                job: JobId(1),
                workflow: 0,
                completed: 3,
                total: 10,
            },
            t + secs(1),
        );
        let out = w.step(
            WorkerInput::Finished {
                job: JobId(1),
                workflow: 0,
                items: 10,
            },
            t + secs(2),
        );
        assert!(out.contains(&JobOutput::Send {
            to: M,
            msg: JobMsg::WorkflowDone {
                job: JobId(1),
                workflow: 0,
                token: FenceToken::new(1, 1),
                items: 10
            }
        }));
        // The progress buffered before the finish is discarded, not sent later.
        assert_eq!(w.progress_dropped + w.progress_sent, 0);
        let out = w.step(
            WorkerInput::Msg {
                from: M,
                msg: JobMsg::WorkflowProgressAck {
                    level: crate::backpressure::stats::Level::None,
                    delay_ms: 0,
                    batch_only: false,
                },
            },
            t + secs(3),
        );
        assert!(out.contains(&JobOutput::Event(JobEvent::FlushLevel {
            level: crate::backpressure::stats::Level::None
        })));
    }
}
