//! AD-24 at the node (backpressure.md §4): both sides of rate limiting.
//!
//! - **As a server**, every job message a peer sends that requests an operation of
//!   §4's table (a report sent up the tiers; not CONTROL, a reply, a command down the
//!   tiers or a cluster's own coordination: see [`Operation::of`]), and every job a
//!   client submits to a gate, passes the [`AdaptiveLimiter`] after AD-22's shedder. A
//!   refused peer hears `JobMsg::RateLimited` (the spec's `RateLimitResponse`); a
//!   refused client's submission is reported with its wait.
//! - **As a client**, a node that heard `RateLimited` sends no more of that operation
//!   to that receiver until the wait is over ("clients cooperate ... and honour
//!   `retry_after`"). What it does not send is what the receiver would have refused:
//!   progress, stats and heartbeats are superseded by the next (as at AD-37's REJECT),
//!   a registration is sent again at its next period, and CONTROL is never held.
//!
//! Bounds: the limiter's own (10,000 clients, idle ones dropped after 300 s); at most
//! [`MAX_HOLDS`] holds, none longer than [`MAX_HOLD`] (a peer's answer cannot silence
//! us for longer), expired ones dropped every [`SWEEP_EVERY`].

use super::Node;
use crate::backpressure::class::Priority;
use crate::backpressure::rate_limit::{
    AdaptiveLimiter, ClientId, LimiterCounts, Operation, Refusal,
};
use crate::id::Addr;
use crate::io::{Event, Output, Outputs};
use crate::jobs::{JobEvent, JobMsg};
use crate::time::Instant;
use core::time::Duration;
use std::collections::BTreeMap;

/// The longest a `RateLimited` answer holds us back: the longest window of §4 (the
/// stress counter's minute).
pub const MAX_HOLD: Duration = Duration::from_secs(60);
/// At most this many (receiver, operation) holds; beyond, a new one is not kept (we
/// send, and the receiver refuses again).
pub const MAX_HOLDS: usize = 1024;
/// How often idle clients and expired holds are dropped.
pub const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// One request the limiter let through: (client, operation, when). The simulator
/// checks invariant 9 over these.
pub type Admission = (ClientId, Operation, Instant);

/// What an operator reads about AD-24 on this node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateLimitCounts {
    pub limiter: LimiterCounts,
    /// Clients the limiter tracks now.
    pub clients: usize,
    /// Messages this node did not send because the receiver asked it to wait.
    pub held: u64,
    /// (receiver, operation) pairs it is waiting on now.
    pub holds: usize,
}

#[derive(Debug)]
pub(super) struct RateLimits {
    limiter: AdaptiveLimiter,
    holds: BTreeMap<(Addr, Operation), Instant>,
    held: u64,
    sweep_due: Instant,
    /// Every admission since the last drain, kept only when someone drains it.
    admissions: Option<Vec<Admission>>,
}

impl RateLimits {
    pub(super) fn new(now: Instant) -> RateLimits {
        RateLimits {
            limiter: AdaptiveLimiter::default(),
            holds: BTreeMap::new(),
            held: 0,
            sweep_due: now + SWEEP_EVERY,
            admissions: None,
        }
    }

    pub(super) fn sweep_if_due(&mut self, now: Instant) {
        if now < self.sweep_due {
            return;
        }
        self.sweep_due = now + SWEEP_EVERY;
        self.limiter.sweep(now);
        self.holds.retain(|_, until| *until > now);
    }

    fn check(
        &mut self,
        client: ClientId,
        op: Operation,
        priority: Priority,
        grade: crate::backpressure::overload::OverloadState,
        now: Instant,
    ) -> Result<(), Refusal> {
        self.limiter.check(client, op, priority, grade, now)?;
        if let Some(log) = self.admissions.as_mut() {
            log.push((client, op, now));
        }
        Ok(())
    }

    /// The receiver at `to` asked us to send no `op` for `retry_after_ms`.
    fn hold(&mut self, to: Addr, op: Operation, retry_after_ms: Option<u64>, now: Instant) {
        let wait = hold_for(retry_after_ms);
        let key = (to, op);
        if self.holds.len() >= MAX_HOLDS && !self.holds.contains_key(&key) {
            self.holds.retain(|_, until| *until > now);
            if self.holds.len() >= MAX_HOLDS {
                return;
            }
        }
        let until = self.holds.entry(key).or_insert(now);
        *until = (*until).max(now + wait);
    }

    /// Whether a message of `op` to `to` must wait at `now`.
    fn holds_back(&mut self, to: Addr, op: Operation, now: Instant) -> bool {
        match self.holds.get(&(to, op)) {
            Some(until) if *until > now => {
                self.held += 1;
                true
            }
            Some(_) => {
                self.holds.remove(&(to, op));
                false
            }
            None => false,
        }
    }
}

/// A wait in whole milliseconds, rounded up: a client that waits exactly this long is
/// not refused again for having come back a fraction of a millisecond early.
fn ceil_ms(d: Duration) -> u64 {
    d.as_micros().div_ceil(1000).min(u64::MAX as u128) as u64
}

/// How long an answer of `retry_after_ms` holds the client back: as long as it says,
/// but never more than [`MAX_HOLD`] ("never" included).
fn hold_for(retry_after_ms: Option<u64>) -> Duration {
    retry_after_ms
        .map(Duration::from_millis)
        .unwrap_or(MAX_HOLD)
        .min(MAX_HOLD)
}

impl Node {
    /// AD-24 for a job message from a peer, after the shedder let it through: whether
    /// it may be handled. A refusal is answered; a `RateLimited` answer is taken.
    pub(super) fn limit_job_message(
        &mut self,
        from: (crate::id::NodeId, Addr),
        msg: &JobMsg,
        priority: Priority,
        now: Instant,
        out: &mut Outputs,
    ) -> bool {
        let (sender, sender_addr) = from;
        if let JobMsg::RateLimited {
            operation,
            retry_after_ms,
            ..
        } = *msg
        {
            self.limits
                .hold(sender_addr, operation, retry_after_ms, now);
            return false;
        }
        // CONTROL is never counted: `Operation::of` names no CONTROL message.
        let Some(operation) = Operation::of(msg) else {
            return true;
        };
        let client = ClientId::Node(sender);
        let grade = self.shed_grade();
        let Err(refusal) = self.limits.check(client, operation, priority, grade, now) else {
            return true;
        };
        // Like a shed message, a refused one silences its sender, and so does the wait
        // we ask of it: neither is the sender's silence (AD-30's watch must not count
        // it). A refused progress report is refused only while Healthy or Busy (AD-22
        // sheds DATA before the limiter when Stressed), so today its wait is under the
        // watch's 30 s; the excuse keeps the watch honest whatever the wait. It is
        // every worker's, as for shedding: a refusal delays the watch by at most a
        // minute.
        let retry_after_ms = refusal.retry_after.map(ceil_ms);
        if let super::JobPlane::Manager(m) = &mut self.jobs {
            m.excuse_silence(now + hold_for(retry_after_ms));
        }
        let answer = JobMsg::RateLimited {
            operation: refusal.operation,
            retry_after_ms,
            tokens_remaining: refusal.tokens_remaining,
        };
        if let Some(frame) = self.job_frame(sender_addr, answer) {
            out.push(frame);
        }
        out.push(Output::Event(Event::Job(JobEvent::RateLimited {
            client,
            operation: refusal.operation,
            job: None,
            retry_after_ms,
        })));
        false
    }

    /// AD-24 for a client's submission to this gate (`job_submit`, DISPATCH): whether
    /// it may go on; a refusal is reported with the client's wait.
    pub(super) fn limit_submission(
        &mut self,
        client: u64,
        job: crate::id::JobId,
        now: Instant,
        out: &mut Outputs,
    ) -> bool {
        let client = ClientId::Submitter(client);
        let op = Operation::JobSubmit;
        let grade = self.shed_grade();
        match self.limits.check(client, op, Priority::High, grade, now) {
            Ok(()) => true,
            Err(refusal) => {
                out.push(Output::Event(Event::Job(JobEvent::RateLimited {
                    client,
                    operation: op,
                    job: Some(job),
                    retry_after_ms: refusal.retry_after.map(ceil_ms),
                })));
                false
            }
        }
    }

    /// AD-24, the client's side: whether a job message to `to` must wait, because `to`
    /// asked us to hold its operation back. CONTROL never waits.
    pub(super) fn held_back(&mut self, to: Addr, msg: &JobMsg, now: Instant) -> bool {
        // Most nodes never hold anything: no lookup then. CONTROL has no operation.
        !self.limits.holds.is_empty()
            && Operation::of(msg).is_some_and(|op| self.limits.holds_back(to, op, now))
    }

    pub fn rate_limit_counts(&self) -> RateLimitCounts {
        RateLimitCounts {
            limiter: self.limits.limiter.counts(),
            clients: self.limits.limiter.len(),
            held: self.limits.held,
            holds: self.limits.holds.len(),
        }
    }

    /// Keep every admission of the rate limiter from now on, for
    /// [`Node::drain_admissions`] (the simulator's invariant 9). Off by default: a
    /// node nobody drains keeps nothing.
    pub fn record_admissions(&mut self) {
        self.limits.admissions.get_or_insert_with(Vec::new);
    }

    /// Move the admissions kept since the last call into `into`.
    pub fn drain_admissions(&mut self, into: &mut Vec<Admission>) {
        if let Some(log) = self.limits.admissions.as_mut() {
            into.append(log);
        }
    }
}
