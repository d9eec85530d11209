//! The worker's progress flush (AD-37, backpressure.md §8): progress updates wait in a
//! buffer holding the latest update per workflow, flushed every `flush_interval + D`
//! where the level L and delay D are the worst each of its managers last signalled
//! (both fall again as soon as the managers report lower values: the original kept the
//! delay for ever and ignored level 0, Q8). NONE and THROTTLE send every update (THROTTLE
//! at the stretched period); BATCH sends one update per job with every workflow's count
//! folded in (Q9); REJECT drops them. Only progress goes through here: results, cancels
//! and acknowledgements never do.

use super::stats::Level;
use crate::id::{Addr, JobId};
use crate::jobs::WorkflowIndex;
use crate::time::{millis, Instant};
use core::time::Duration;
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq)]
pub struct FlushConfig {
    /// `WORKER_PROGRESS_FLUSH_INTERVAL` (Q10: the env's 50 ms).
    pub flush_interval: Duration,
    /// Workflows buffered at most (a bound: the latest update per workflow).
    pub max_buffered: usize,
}

impl Default for FlushConfig {
    fn default() -> Self {
        FlushConfig {
            flush_interval: millis(50),
            max_buffered: 10_000,
        }
    }
}

/// One progress update to send: `completed` items of `workflows` workflows of `job`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Update {
    pub to: Addr,
    pub job: JobId,
    pub workflow: WorkflowIndex,
    pub completed: u64,
    pub workflows: u16,
}

/// What one flush does.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Flush {
    pub send: Vec<Update>,
    /// Updates folded into another (BATCH) or dropped (REJECT).
    pub batched: u64,
    pub dropped: u64,
}

#[derive(Clone, Debug)]
pub struct WorkerFlush {
    cfg: FlushConfig,
    /// Latest level and delay per manager.
    managers: BTreeMap<Addr, (Level, u32)>,
    buffer: BTreeMap<(JobId, WorkflowIndex), (Addr, u64)>,
    next_flush: Option<Instant>,
}

impl WorkerFlush {
    pub fn new(cfg: FlushConfig) -> WorkerFlush {
        WorkerFlush {
            cfg,
            managers: BTreeMap::new(),
            buffer: BTreeMap::new(),
            next_flush: None,
        }
    }

    /// `L` and `D`: the worst over the managers' latest signals.
    pub fn effective(&self) -> (Level, u32) {
        self.managers
            .values()
            .fold((Level::None, 0), |(l, d), (ml, md)| {
                (l.max(*ml), d.max(*md))
            })
    }

    /// A manager's ack carried `level` and `delay_ms` (level 0 included: it clears).
    /// Returns the new effective level if it changed.
    pub fn on_signal(&mut self, manager: Addr, level: Level, delay_ms: u32) -> Option<Level> {
        let before = self.effective().0;
        if level == Level::None && delay_ms == 0 {
            self.managers.remove(&manager);
        } else {
            self.managers.insert(manager, (level, delay_ms));
        }
        let after = self.effective().0;
        (after != before).then_some(after)
    }

    /// `leader` leads the DC now: every other manager's signal stops counting. Progress
    /// goes to the leader alone, so only its buffer is one this worker fills; a former
    /// leader, dead or stepped down, never signals again (a follower pushes no level),
    /// and its last REJECT would hold this worker back for good. Returns the new
    /// effective level if it changed.
    pub fn keep_only(&mut self, leader: Addr) -> Option<Level> {
        let before = self.effective().0;
        self.managers.retain(|m, _| *m == leader);
        let after = self.effective().0;
        (after != before).then_some(after)
    }

    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// Keep the latest update of a workflow, to be flushed to `to` (its job's leader).
    pub fn push(
        &mut self,
        to: Addr,
        job: JobId,
        workflow: WorkflowIndex,
        completed: u64,
        now: Instant,
    ) {
        let key = (job, workflow);
        if !self.buffer.contains_key(&key) && self.buffer.len() >= self.cfg.max_buffered {
            return;
        }
        self.buffer.insert(key, (to, completed));
        if self.next_flush.is_none() {
            self.next_flush = Some(now + self.period());
        }
    }

    /// A workflow ended here: its pending progress is moot.
    pub fn discard(&mut self, job: JobId, workflow: WorkflowIndex) {
        self.buffer.remove(&(job, workflow));
    }

    pub fn period(&self) -> Duration {
        self.cfg.flush_interval + millis(self.effective().1 as u64)
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.next_flush
    }

    /// Flush if due.
    pub fn tick(&mut self, now: Instant) -> Flush {
        if self.next_flush.is_none_or(|t| now < t) {
            return Flush::default();
        }
        self.next_flush = None;
        let buffer = core::mem::take(&mut self.buffer);
        let mut f = Flush::default();
        match self.effective().0 {
            Level::None | Level::Throttle => {
                f.send = buffer
                    .into_iter()
                    .map(|((job, workflow), (to, completed))| Update {
                        to,
                        job,
                        workflow,
                        completed,
                        workflows: 1,
                    })
                    .collect();
            }
            Level::Batch => {
                // One update per job, every workflow's count folded in.
                let mut per_job: BTreeMap<JobId, Update> = BTreeMap::new();
                for ((job, workflow), (to, completed)) in buffer {
                    match per_job.get_mut(&job) {
                        Some(u) => {
                            u.completed += completed;
                            u.workflows += 1;
                            f.batched += 1;
                        }
                        None => {
                            per_job.insert(
                                job,
                                Update {
                                    to,
                                    job,
                                    workflow,
                                    completed,
                                    workflows: 1,
                                },
                            );
                        }
                    }
                }
                f.send = per_job.into_values().collect();
            }
            Level::Reject => f.dropped = buffer.len() as u64,
        }
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::secs;

    const M1: Addr = Addr::from_u32(1);
    const M2: Addr = Addr::from_u32(2);

    #[test]
    fn the_worst_manager_sets_level_and_delay_and_both_fall_again() {
        let mut w = WorkerFlush::new(FlushConfig::default());
        assert_eq!(w.period(), millis(50));
        assert_eq!(w.on_signal(M1, Level::Throttle, 100), Some(Level::Throttle));
        assert_eq!(w.on_signal(M2, Level::Batch, 500), Some(Level::Batch));
        assert_eq!(w.effective(), (Level::Batch, 500));
        assert_eq!(w.period(), millis(550));
        // M2 recovers: back to M1's THROTTLE, delay 100 (not the old 500).
        assert_eq!(w.on_signal(M2, Level::None, 0), Some(Level::Throttle));
        assert_eq!(w.period(), millis(150));
        assert_eq!(w.on_signal(M1, Level::None, 0), Some(Level::None));
        assert_eq!(w.effective(), (Level::None, 0));
        assert_eq!(w.period(), millis(50));
        // A new leader (M2) ends the former leader's REJECT; its own signal stays.
        w.on_signal(M1, Level::Reject, 1000);
        w.on_signal(M2, Level::Throttle, 100);
        assert_eq!(w.keep_only(M2), Some(Level::Throttle));
        assert_eq!(w.effective(), (Level::Throttle, 100));
        assert_eq!(w.keep_only(M2), None);
    }

    #[test]
    fn none_sends_everything_batch_folds_per_job_and_reject_drops() {
        let t = Instant::ZERO;
        let fill = |w: &mut WorkerFlush| {
            w.push(M1, JobId(1), 0, 5, t);
            w.push(M1, JobId(1), 1, 7, t);
            w.push(M1, JobId(1), 0, 6, t); // the latest per workflow wins
            w.push(M1, JobId(2), 0, 3, t);
        };
        let mut w = WorkerFlush::new(FlushConfig::default());
        fill(&mut w);
        assert_eq!(w.next_deadline(), Some(t + millis(50)));
        assert!(w.tick(t + millis(49)).send.is_empty(), "not due");
        let f = w.tick(t + millis(50));
        assert_eq!(f.send.len(), 3);
        assert_eq!(f.send[0].completed, 6);
        assert_eq!(w.next_deadline(), None, "nothing buffered");
        // BATCH: one update per job, counts folded in (6 + 7), none lost.
        w.on_signal(M1, Level::Batch, 500);
        fill(&mut w);
        assert_eq!(w.next_deadline(), Some(t + millis(550)));
        let f = w.tick(t + secs(1));
        assert_eq!(f.send.len(), 2);
        assert_eq!((f.send[0].completed, f.send[0].workflows), (13, 2));
        assert_eq!(f.batched, 1);
        // REJECT: progress dropped, counted.
        w.on_signal(M1, Level::Reject, 1000);
        fill(&mut w);
        let f = w.tick(t + secs(2));
        assert!(f.send.is_empty());
        assert_eq!(f.dropped, 3);
    }
}
