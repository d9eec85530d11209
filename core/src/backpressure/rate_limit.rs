//! Rate limiting (AD-24, backpressure.md §4): a sliding-window counter per (client,
//! operation), and the adaptive limiter that picks which counter applies from the
//! node's overload grade.
//!
//! - [`SlidingWindow`]: `effective = current + previous · (1 - elapsed / window)`; a
//!   request of `n` is accepted iff `effective + n <= max`. So within any stretch of one
//!   window a client is accepted at most `max` plus what the previous window still
//!   weighs: never more than `2 · max` (invariant 9, which the simulator checks).
//! - [`AdaptiveLimiter`]: CRITICAL always passes; Overloaded rejects everything else;
//!   Busy rejects LOW; otherwise the (client, operation) counter of the table in
//!   [`Operation::limit`] decides, and while Stressed a per-client counter of 100
//!   requests a minute must allow the request too.
//!
//! Three readings of the spec, all on the safe side:
//! - **Which messages count** is [`Operation::of`]'s: a client's submissions and the
//!   reports lower tiers send up, not commands down the tiers, replies or a cluster's
//!   own coordination.
//! - **Stressed checks both counters.** §4 names only the per-client counter for
//!   Stressed. Checking the per-operation counter as well means a grade change can
//!   never hand a client a fresh allowance for an operation it just used up, which is
//!   what invariant 9 asks ("per client and operation ... never exceed the limit").
//! - **The stress counter is always 100 / 60 s.** Q4: the counter keeps the limit of
//!   the grade it was created in; Overloaded rejects before any counter is consulted,
//!   so the 10 / 60 s variant could never be created, and is not.
//!
//! Bounds: at most [`MAX_CLIENTS`] clients (the least recently active goes first); a
//! client idle [`CLIENT_IDLE`] is forgotten at the next [`AdaptiveLimiter::sweep`] (its
//! counters have long emptied, so forgetting it changes no decision).

use super::class::Priority;
use super::overload::OverloadState;
use crate::id::NodeId;
use crate::jobs::JobMsg;
use crate::time::Instant;
use crate::FxHashMap;
use core::time::Duration;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;
use std::collections::BTreeSet;

/// At most this many clients are tracked (§4).
pub const MAX_CLIENTS: usize = 10_000;
/// A client idle this long is forgotten (§4).
pub const CLIENT_IDLE: Duration = Duration::from_secs(300);
/// The per-client counter consulted while Stressed (§4: 100 requests / 60 s).
pub const STRESS_LIMIT: (u32, Duration) = (100, Duration::from_secs(60));
/// What a refusal without a counter behind it (Overloaded, or LOW while Busy) asks the
/// client to wait: the shortest window of the table, so a client comes back once a
/// grade has had time to change, not in a tight loop.
pub const GRADE_RETRY_AFTER: Duration = Duration::from_secs(1);
/// §4: a computed wait is never shorter than 10 ms.
const MIN_RETRY_AFTER: Duration = Duration::from_millis(10);

/// The sliding-window counter of §4. 24 bytes: a node tracks up to 10,000 clients with
/// one or two of these each (the window is kept in µs as a `u32`: up to 71 minutes).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SlidingWindow {
    max: u32,
    window_us: u32,
    current: u32,
    previous: u32,
    window_start: Instant,
}

impl SlidingWindow {
    /// An empty counter whose first window starts at `now`.
    pub fn new(max: u32, window: Duration, now: Instant) -> SlidingWindow {
        SlidingWindow {
            max,
            window_us: window.as_micros().clamp(1, u32::MAX as u128) as u32,
            current: 0,
            previous: 0,
            window_start: now,
        }
    }

    pub fn max(&self) -> u32 {
        self.max
    }

    pub fn window(&self) -> Duration {
        Duration::from_micros(self.window_us as u64)
    }

    /// Shift whole windows on access: one window passed, the current count becomes the
    /// previous; two or more, both are zero. The start advances by whole windows.
    fn rotate(&mut self, now: Instant) {
        let window_us = self.window_us as u64;
        let elapsed = now
            .as_micros()
            .saturating_sub(self.window_start.as_micros());
        let passed = elapsed / window_us;
        if passed == 0 {
            return;
        }
        if passed == 1 {
            self.previous = self.current;
        } else {
            self.previous = 0;
        }
        self.current = 0;
        self.window_start =
            Instant::from_micros(self.window_start.as_micros() + passed * window_us);
    }

    /// The fraction of the current window already gone, after rotating.
    fn elapsed_fraction(&self, now: Instant) -> f64 {
        let window_us = self.window_us as f64;
        now.saturating_since(self.window_start).as_micros() as f64 / window_us
    }

    /// `current + previous · (1 - elapsed / window)` at `now`.
    pub fn effective(&mut self, now: Instant) -> f64 {
        self.rotate(now);
        self.current as f64 + self.previous as f64 * (1.0 - self.elapsed_fraction(now))
    }

    /// What is left of the limit at `now` (never negative): `tokens_remaining`.
    pub fn remaining(&mut self, now: Instant) -> u32 {
        let left = self.max as f64 - self.effective(now);
        if left <= 0.0 {
            0
        } else {
            left.floor() as u32
        }
    }

    /// Take `n` if `effective + n <= max`; else how long to wait before asking again
    /// (`None`: never, `n` is over the limit itself).
    pub fn try_acquire(&mut self, n: u32, now: Instant) -> Result<(), Option<Duration>> {
        if self.would_accept(n, now) {
            self.take(n);
            Ok(())
        } else {
            Err(self.wait_for(n, now))
        }
    }

    /// Count `n` accepted (the caller checked [`SlidingWindow::would_accept`] at this
    /// instant, so the counter is rotated).
    fn take(&mut self, n: u32) {
        self.current = self.current.saturating_add(n);
    }

    /// Whether `n` would be accepted at `now`, taking nothing.
    pub fn would_accept(&mut self, n: u32, now: Instant) -> bool {
        self.effective(now) + n as f64 <= self.max as f64
    }

    /// §4's wait after a refusal of `n` at `now`. `n > max` never fits: checked first,
    /// because with both counts zero the spec's "time to the window's end" would send
    /// such a client back for a request that can never pass.
    pub fn wait_for(&mut self, n: u32, now: Instant) -> Option<Duration> {
        self.rotate(now);
        if n > self.max {
            return None;
        }
        let window_s = self.window().as_secs_f64();
        let to_end = (window_s - now.saturating_since(self.window_start).as_secs_f64()).max(0.0);
        let total = self.current as f64 + self.previous as f64;
        let wait = if total == 0.0 {
            to_end
        } else {
            let progress = 1.0 - (self.max - n) as f64 / total;
            to_end + progress.max(0.0) * window_s
        };
        Some(Duration::from_secs_f64(wait).max(MIN_RETRY_AFTER))
    }
}

/// An operation of §4's table, each with its own (client, operation) counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Operation {
    StatsUpdate,
    Heartbeat,
    ProgressUpdate,
    JobSubmit,
    JobStatus,
    WorkflowDispatch,
    Cancel,
    Reconnect,
    /// The table's `default`: an operation it does not name.
    Other,
}

impl Operation {
    pub const ALL: [Operation; 9] = [
        Operation::StatsUpdate,
        Operation::Heartbeat,
        Operation::ProgressUpdate,
        Operation::JobSubmit,
        Operation::JobStatus,
        Operation::WorkflowDispatch,
        Operation::Cancel,
        Operation::Reconnect,
        Operation::Other,
    ];

    /// §4's table: (max requests, window).
    pub const fn limit(self) -> (u32, Duration) {
        let ten = Duration::from_secs(10);
        match self {
            Operation::StatsUpdate => (500, ten),
            Operation::Heartbeat => (200, ten),
            Operation::ProgressUpdate => (300, ten),
            Operation::JobSubmit => (50, ten),
            Operation::JobStatus | Operation::WorkflowDispatch | Operation::Other => (100, ten),
            Operation::Cancel => (20, ten),
            Operation::Reconnect => (10, ten),
        }
    }

    /// The name the spec's table gives it (logs, reports).
    pub const fn name(self) -> &'static str {
        match self {
            Operation::StatsUpdate => "stats_update",
            Operation::Heartbeat => "heartbeat",
            Operation::ProgressUpdate => "progress_update",
            Operation::JobSubmit => "job_submit",
            Operation::JobStatus => "job_status",
            Operation::WorkflowDispatch => "workflow_dispatch",
            Operation::Cancel => "cancel",
            Operation::Reconnect => "reconnect",
            Operation::Other => "default",
        }
    }

    /// The operation of the table a job-plane message requests, if a limiter counts
    /// it. AD-24 counts requests where load comes from: a client's submissions at the
    /// gate (`job_submit`, [`crate::node::Input::SubmitJob`]), and what a lower tier
    /// reports up: a worker's progress and registration to its manager, a manager's
    /// stats and heartbeats to a gate, a gate's registration with a manager.
    ///
    /// Not counted (`None`), a reading of the spec on the safe side:
    /// - **commands down the tiers**: a gate's `Submit` of a job it admitted, a
    ///   manager's `Dispatch` of a workflow. Counted, they would cap every client
    ///   behind one gate at one client's allowance (50 jobs in 10 s per gate and DC:
    ///   in `submission-flood`, one client's burst, within its own allowance, held the
    ///   other client's jobs back), undoing the per-client limit at the edge that §9
    ///   says governs intake. The receiver's slots, AD-22's shedder and AD-32's
    ///   in-flight caps bound them.
    /// - **replies** (`SubmitAck`, `DispatchAck`, `WorkflowProgressAck`, `Running`,
    ///   ...): our own requests bound them, and refusing one only makes its request be
    ///   sent again;
    /// - **a cluster's own coordination**: replication between a DC's managers or
    ///   between gates, takeover queries and offers, a leader's hello, withdrawals.
    ///   Refusing it costs durability (a follower missing a job's replica) and protects
    ///   nothing the edge has not bounded: counted under `default`, a burst of 60 jobs
    ///   in 8 s had a DC leader's replication refused 49 times by its followers.
    /// - CONTROL (cancellation among it) is Critical, always allowed.
    ///
    /// So `job_status`, `workflow_dispatch`, `cancel` and `default` are in the table
    /// (and the limiter) but no job message of ours is counted under them.
    pub fn of(msg: &JobMsg) -> Option<Operation> {
        use JobMsg as J;
        Some(match msg {
            J::WorkflowProgress { .. } => Operation::ProgressUpdate,
            J::ProgressReport { .. } => Operation::StatsUpdate,
            J::ManagerHeartbeat { .. } => Operation::Heartbeat,
            J::WorkerHello { .. } | J::GateHello { .. } => Operation::Reconnect,
            _ => return None,
        })
    }
}

/// Who a counter belongs to: a peer node (job-plane messages), or a client submitting
/// jobs to a gate (the shell names it: the driver by the client's IP, the simulator by
/// the submission's `client`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ClientId {
    Node(NodeId),
    Submitter(u64),
}

/// Why a request was refused, and when to ask again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub operation: Operation,
    /// `None`: never (the request is larger than the limit).
    pub retry_after: Option<Duration>,
    /// What is left of the (client, operation) limit now.
    pub tokens_remaining: u32,
    pub grade: OverloadState,
}

#[derive(Clone, Debug)]
struct ClientState {
    last_active: Instant,
    /// Created the first time the client is checked while Stressed (Q4).
    stress: Option<SlidingWindow>,
    /// Counters of the operations this client used: one or two in practice.
    ops: SmallVec<[(Operation, SlidingWindow); 2]>,
}

impl ClientState {
    fn op_counter(&mut self, op: Operation, now: Instant) -> &mut SlidingWindow {
        let i = match self.ops.iter().position(|(o, _)| *o == op) {
            Some(i) => i,
            None => {
                let (max, window) = op.limit();
                self.ops.push((op, SlidingWindow::new(max, window, now)));
                self.ops.len() - 1
            }
        };
        &mut self.ops[i].1
    }
}

/// Counters an operator reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LimiterCounts {
    pub allowed: u64,
    pub rejected: u64,
    /// Clients dropped for room (the table was full).
    pub evicted: u64,
}

/// §4's adaptive limiter: per client, per operation, by overload grade.
#[derive(Clone, Debug, Default)]
pub struct AdaptiveLimiter {
    clients: FxHashMap<ClientId, ClientState>,
    /// (last active, client): the least recently active first, for eviction and the
    /// idle sweep.
    by_activity: BTreeSet<(Instant, ClientId)>,
    counts: LimiterCounts,
}

impl AdaptiveLimiter {
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    pub fn counts(&self) -> LimiterCounts {
        self.counts
    }

    /// One request of `op` at priority `priority` from `client` at `now`, graded
    /// `grade`.
    pub fn check(
        &mut self,
        client: ClientId,
        op: Operation,
        priority: Priority,
        grade: OverloadState,
        now: Instant,
    ) -> Result<(), Refusal> {
        if priority == Priority::Critical {
            self.counts.allowed += 1;
            return Ok(());
        }
        let refuse_for_grade = match grade {
            OverloadState::Overloaded => true,
            OverloadState::Busy => priority == Priority::Low,
            _ => false,
        };
        if refuse_for_grade {
            self.counts.rejected += 1;
            let tokens_remaining = match self.clients.get_mut(&client) {
                Some(c) => c.op_counter(op, now).remaining(now),
                None => op.limit().0,
            };
            return Err(Refusal {
                operation: op,
                retry_after: Some(GRADE_RETRY_AFTER),
                tokens_remaining,
                grade,
            });
        }
        let state = self.touch(client, now);
        let stressed = grade == OverloadState::Stressed;
        let op_ok = state.op_counter(op, now).would_accept(1, now);
        let stress = stressed.then(|| {
            let (max, window) = STRESS_LIMIT;
            state
                .stress
                .get_or_insert_with(|| SlidingWindow::new(max, window, now))
        });
        let stress_ok = stress.is_none_or(|s| s.would_accept(1, now));
        let verdict = if !stress_ok {
            Err(state.stress.as_mut().and_then(|s| s.wait_for(1, now)))
        } else if !op_ok {
            Err(state.op_counter(op, now).wait_for(1, now))
        } else {
            if let Some(s) = state.stress.as_mut().filter(|_| stressed) {
                s.take(1);
            }
            state.op_counter(op, now).take(1);
            Ok(())
        };
        match verdict {
            Ok(()) => {
                self.counts.allowed += 1;
                Ok(())
            }
            Err(retry_after) => {
                self.counts.rejected += 1;
                let tokens_remaining = self
                    .clients
                    .get_mut(&client)
                    .map(|c| c.op_counter(op, now).remaining(now))
                    .unwrap_or(0);
                Err(Refusal {
                    operation: op,
                    retry_after,
                    tokens_remaining,
                    grade,
                })
            }
        }
    }

    /// The client's state, marked active at `now`; a new client makes room first.
    fn touch(&mut self, client: ClientId, now: Instant) -> &mut ClientState {
        if !self.clients.contains_key(&client) {
            if self.clients.len() >= MAX_CLIENTS {
                self.sweep(now);
            }
            while self.clients.len() >= MAX_CLIENTS {
                let Some((_, oldest)) = self.by_activity.pop_first() else {
                    break;
                };
                self.clients.remove(&oldest);
                self.counts.evicted += 1;
            }
        }
        let by_activity = &mut self.by_activity;
        let state = self.clients.entry(client).or_insert_with(|| {
            by_activity.insert((now, client));
            ClientState {
                last_active: now,
                stress: None,
                ops: SmallVec::new(),
            }
        });
        if state.last_active != now {
            by_activity.remove(&(state.last_active, client));
            by_activity.insert((now, client));
            state.last_active = now;
        }
        state
    }

    /// Forget clients idle [`CLIENT_IDLE`] or longer.
    pub fn sweep(&mut self, now: Instant) {
        while let Some(&(at, client)) = self.by_activity.first() {
            if now.saturating_since(at) < CLIENT_IDLE {
                break;
            }
            self.by_activity.pop_first();
            self.clients.remove(&client);
        }
    }
}

#[cfg(test)]
mod tests;
