//! A gate's side of the job plane: it accepts a job under a fresh gate token, sends it to
//! each target DC (to a manager it sees alive there; a follower redirects it to the
//! leader), retries until a DC accepts, records each DC's fenced result, and once every
//! DC has reported records the job's final status and forgets it.
//!
//! Not yet here (issue 4, next part): gate job leadership by the hash ring and takeover
//! when the accepting gate dies (leadership.md §2.2).

use super::{JobEvent, JobMsg, JobOutput, JobOutputs, JobState};
use crate::id::{Addr, DcId, FenceToken, JobId, NodeId};
use crate::leadership::{FenceDomain, JobRegistry, TokenIssuer, Verdict};
use crate::time::{secs, Instant};
use core::time::Duration;
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq)]
pub struct GateConfig {
    /// A DC that has not accepted is asked again (another manager) after this long.
    pub retry: Duration,
    /// A job no DC accepts for this long fails (leadership.md §2.2: ownerless 300 s).
    pub give_up: Duration,
    pub max_jobs: usize,
}

impl Default for GateConfig {
    fn default() -> Self {
        GateConfig {
            retry: secs(5),
            give_up: secs(300),
            max_jobs: 10_000,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Target {
    dc: DcId,
    /// The manager asked last.
    to: Option<Addr>,
    accepted: bool,
    done: bool,
    next_try: Instant,
    tries: u32,
}

#[derive(Clone, Debug)]
struct Job {
    token: FenceToken,
    workflows: u32,
    targets: Vec<Target>,
    submitted_at: Instant,
}

#[derive(Clone, Debug)]
pub struct GateJobs {
    cfg: GateConfig,
    me: NodeId,
    addr: Addr,
    /// The gate cluster's term (for the tokens' high half).
    term: u64,
    /// Alive managers per DC, from the gate's observer memberships.
    managers: BTreeMap<DcId, Vec<(NodeId, Addr)>>,
    jobs: BTreeMap<JobId, Job>,
    issuer: TokenIssuer,
    /// Each DC's result token per job (`JobDone` older than one seen is stale).
    results: JobRegistry,
}

pub enum GateInput {
    /// A client's submission: run `workflows` workflows in each of `dcs`.
    Submit {
        job: JobId,
        dcs: Vec<DcId>,
        workflows: u32,
    },
    Msg {
        from: Addr,
        msg: JobMsg,
    },
    /// A DC's manager became reachable or stopped being so.
    Manager {
        dc: DcId,
        node: NodeId,
        addr: Addr,
        alive: bool,
    },
    /// The gate cluster's term changed.
    Term(u64),
    Tick,
}

impl GateJobs {
    pub fn new(cfg: GateConfig, me: NodeId, addr: Addr) -> GateJobs {
        GateJobs {
            results: JobRegistry::new(cfg.max_jobs),
            cfg,
            me,
            addr,
            term: 0,
            managers: BTreeMap::new(),
            jobs: BTreeMap::new(),
            issuer: TokenIssuer::default(),
        }
    }

    pub fn table_len(&self) -> usize {
        self.jobs.len() + self.issuer.len() + self.results.len()
    }
    pub fn has_job(&self, job: JobId) -> bool {
        self.jobs.contains_key(&job)
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.jobs
            .values()
            .flat_map(|j| {
                let give_up = j.submitted_at + self.cfg.give_up;
                j.targets
                    .iter()
                    .filter(|t| !t.accepted)
                    .map(move |t| t.next_try.min(give_up))
            })
            .min()
    }

    pub fn step(&mut self, input: GateInput, now: Instant) -> JobOutputs {
        let mut out = JobOutputs::new();
        match input {
            GateInput::Submit {
                job,
                dcs,
                workflows,
            } => {
                if self.jobs.contains_key(&job) || dcs.is_empty() {
                    return out;
                }
                let Ok(token) = self.issuer.next(job, self.term, None) else {
                    return out;
                };
                if self.jobs.len() >= self.cfg.max_jobs {
                    out.push(JobOutput::Event(JobEvent::Finished {
                        job,
                        state: JobState::Failed,
                    }));
                    self.issuer.forget(job);
                    return out;
                }
                out.push(JobOutput::Event(JobEvent::Submitted {
                    job,
                    dcs: dcs.len() as u16,
                }));
                let targets = dcs
                    .into_iter()
                    .map(|dc| Target {
                        dc,
                        to: None,
                        accepted: false,
                        done: false,
                        next_try: now,
                        tries: 0,
                    })
                    .collect();
                self.jobs.insert(
                    job,
                    Job {
                        token,
                        workflows,
                        targets,
                        submitted_at: now,
                    },
                );
                self.tick(now, &mut out);
            }
            GateInput::Msg { from, msg } => self.on_msg(from, msg, now, &mut out),
            GateInput::Manager {
                dc,
                node,
                addr,
                alive,
            } => {
                let list = self.managers.entry(dc).or_default();
                list.retain(|(n, _)| *n != node);
                if alive {
                    list.push((node, addr));
                    list.sort_unstable_by_key(|(n, _)| *n);
                }
            }
            GateInput::Term(term) => self.term = self.term.max(term),
            GateInput::Tick => self.tick(now, &mut out),
        }
        out
    }

    fn submit_msg(&self, job: JobId, j: &Job) -> JobMsg {
        JobMsg::Submit {
            job,
            workflows: j.workflows,
            gate: self.me,
            gate_addr: self.addr,
            gate_token: j.token,
        }
    }

    fn on_msg(&mut self, from: Addr, msg: JobMsg, now: Instant, out: &mut JobOutputs) {
        match msg {
            JobMsg::SubmitAck {
                job,
                dc,
                accepted,
                leader,
            } => {
                let Some(j) = self.jobs.get(&job) else {
                    return;
                };
                let submit = self.submit_msg(job, j);
                let Some(t) = self
                    .jobs
                    .get_mut(&job)
                    .and_then(|j| j.targets.iter_mut().find(|t| t.dc == dc))
                else {
                    return;
                };
                if accepted {
                    t.accepted = true;
                } else if let Some((_, addr)) = leader.filter(|(_, a)| Some(*a) != t.to) {
                    // Redirected to the DC's leader: ask it at once.
                    t.to = Some(addr);
                    t.next_try = now + self.cfg.retry;
                    out.push(JobOutput::Send {
                        to: addr,
                        msg: submit,
                    });
                }
            }
            JobMsg::JobDone { job, dc, token } => {
                let ack = JobOutput::Send {
                    to: from,
                    msg: JobMsg::JobDoneAck { job, dc },
                };
                let Some(j) = self.jobs.get_mut(&job) else {
                    // Already recorded (a resend after our ack was lost): ack again.
                    out.push(ack);
                    return;
                };
                let Some(t) = j.targets.iter_mut().find(|t| t.dc == dc) else {
                    return;
                };
                match self
                    .results
                    .operation(FenceDomain::ManagerJob(dc), job, token, NodeId(0))
                {
                    Ok(Verdict::Stale) => {
                        out.push(JobOutput::Event(JobEvent::StaleRejected { job, token }));
                        return;
                    }
                    Err(_) => return,
                    _ => {}
                }
                t.accepted = true;
                t.done = true;
                out.push(ack);
                if j.targets.iter().all(|t| t.done) {
                    self.finish(job, JobState::Completed, out);
                }
            }
            _ => {}
        }
    }

    fn finish(&mut self, job: JobId, state: JobState, out: &mut JobOutputs) {
        self.jobs.remove(&job);
        self.issuer.forget(job);
        self.results.forget_job(job);
        out.push(JobOutput::Event(JobEvent::Finished { job, state }));
        out.push(JobOutput::Event(JobEvent::Forgotten { job }));
    }

    fn tick(&mut self, now: Instant, out: &mut JobOutputs) {
        let mut failed = Vec::new();
        let give_up = self.cfg.give_up;
        let retry = self.cfg.retry;
        let jobs: Vec<JobId> = self.jobs.keys().copied().collect();
        for job in jobs {
            let j = &self.jobs[&job];
            if now >= j.submitted_at + give_up && j.targets.iter().any(|t| !t.accepted) {
                failed.push(job);
                continue;
            }
            let submit = self.submit_msg(job, j);
            let managers = &self.managers;
            let j = self.jobs.get_mut(&job).expect("listed");
            for t in j
                .targets
                .iter_mut()
                .filter(|t| !t.accepted && t.next_try <= now)
            {
                // Rotate through the DC's alive managers; a follower redirects us.
                let Some(list) = managers.get(&t.dc).filter(|l| !l.is_empty()) else {
                    t.next_try = now + retry;
                    continue;
                };
                let (_, addr) = list[t.tries as usize % list.len()];
                t.tries += 1;
                t.to = Some(addr);
                t.next_try = now + retry;
                out.push(JobOutput::Send {
                    to: addr,
                    msg: submit,
                });
            }
        }
        for job in failed {
            self.finish(job, JobState::Failed, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: NodeId = NodeId(100);
    const M1: Addr = Addr::from_u32(1);
    const M2: Addr = Addr::from_u32(2);

    fn gate() -> GateJobs {
        let mut g = GateJobs::new(GateConfig::default(), ME, Addr::from_u32(100));
        for (n, a) in [(1, M1), (2, M2)] {
            g.step(
                GateInput::Manager {
                    dc: DcId(0),
                    node: NodeId(n),
                    addr: a,
                    alive: true,
                },
                Instant::ZERO,
            );
        }
        g.step(GateInput::Term(2), Instant::ZERO);
        g
    }

    fn sends(out: &JobOutputs) -> Vec<(Addr, JobMsg)> {
        out.iter()
            .filter_map(|o| match o {
                JobOutput::Send { to, msg } => Some((*to, *msg)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_job_is_submitted_redirected_to_the_leader_and_finished_once() {
        let t = Instant::ZERO;
        let mut g = gate();
        let out = g.step(
            GateInput::Submit {
                job: JobId(1),
                dcs: vec![DcId(0)],
                workflows: 3,
            },
            t,
        );
        let submit = JobMsg::Submit {
            job: JobId(1),
            workflows: 3,
            gate: ME,
            gate_addr: Addr::from_u32(100),
            gate_token: FenceToken::new(2, 1),
        };
        assert_eq!(sends(&out), vec![(M1, submit)]);
        // M1 follows M2: redirected at once.
        let out = g.step(
            GateInput::Msg {
                from: M1,
                msg: JobMsg::SubmitAck {
                    job: JobId(1),
                    dc: DcId(0),
                    accepted: false,
                    leader: Some((NodeId(2), M2)),
                },
            },
            t + secs(1),
        );
        assert_eq!(sends(&out), vec![(M2, submit)]);
        g.step(
            GateInput::Msg {
                from: M2,
                msg: JobMsg::SubmitAck {
                    job: JobId(1),
                    dc: DcId(0),
                    accepted: true,
                    leader: None,
                },
            },
            t + secs(1),
        );
        assert_eq!(g.next_deadline(), None, "accepted: nothing to retry");
        let done = |token| GateInput::Msg {
            from: M2,
            msg: JobMsg::JobDone {
                job: JobId(1),
                dc: DcId(0),
                token,
            },
        };
        let out = g.step(done(FenceToken::new(5, 9)), t + secs(30));
        assert!(out.contains(&JobOutput::Event(JobEvent::Finished {
            job: JobId(1),
            state: JobState::Completed
        })));
        assert!(sends(&out).contains(&(
            M2,
            JobMsg::JobDoneAck {
                job: JobId(1),
                dc: DcId(0)
            }
        )));
        assert_eq!(g.table_len(), 0);
        // A resend after the job is gone is acknowledged and changes nothing.
        let out = g.step(done(FenceToken::new(5, 9)), t + secs(31));
        assert!(!out.iter().any(|o| matches!(o, JobOutput::Event(_))));
        assert_eq!(sends(&out).len(), 1);
    }

    #[test]
    fn an_unanswered_dc_is_retried_on_another_manager_and_given_up_after_300_s() {
        let t = Instant::ZERO;
        let mut g = gate();
        g.step(
            GateInput::Submit {
                job: JobId(2),
                dcs: vec![DcId(0)],
                workflows: 1,
            },
            t,
        );
        assert_eq!(g.next_deadline(), Some(t + secs(5)));
        let out = g.step(GateInput::Tick, t + secs(5));
        assert_eq!(sends(&out)[0].0, M2, "rotates to the next manager");
        let mut now = t + secs(5);
        let mut finished = None;
        while finished.is_none() {
            now = g.next_deadline().unwrap();
            for o in g.step(GateInput::Tick, now) {
                if let JobOutput::Event(JobEvent::Finished { state, .. }) = o {
                    finished = Some(state);
                }
            }
        }
        assert_eq!(finished, Some(JobState::Failed));
        assert_eq!(now, t + secs(300));
        assert_eq!(g.table_len(), 0);
    }

    #[test]
    fn a_stale_result_is_refused() {
        let t = Instant::ZERO;
        let mut g = gate();
        g.step(
            GateInput::Submit {
                job: JobId(3),
                dcs: vec![DcId(0), DcId(1)],
                workflows: 1,
            },
            t,
        );
        let done = |dc, token| GateInput::Msg {
            from: M1,
            msg: JobMsg::JobDone {
                job: JobId(3),
                dc: DcId(dc),
                token,
            },
        };
        g.step(done(0, FenceToken::new(3, 5)), t + secs(1));
        let out = g.step(done(0, FenceToken::new(2, 9)), t + secs(2));
        assert!(out.contains(&JobOutput::Event(JobEvent::StaleRejected {
            job: JobId(3),
            token: FenceToken::new(2, 9)
        })));
        assert!(g.has_job(JobId(3)), "DC 1 has not reported");
    }
}
