//! Fenced job leadership (AD-10, leadership.md §2.4): issuing a job's tokens, and the
//! receivers' registers that keep a stale token from ever taking effect.
//!
//! Three domains, never compared with each other: the gate's job leadership, each DC's
//! manager job leadership, and the gate's timeout decisions (jobs.md §4-5; comparing
//! them across domains is how the original rejected a gate's first global timeout
//! forever after two manager failovers).

use crate::id::{DcId, FenceToken, JobId, NodeId};
use crate::FxHashMap;

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum FenceDomain {
    GateJob,
    ManagerJob(DcId),
    TimeoutDecision,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FenceError {
    /// A job's 32-bit counter is exhausted (jobs.md §1: a typed error, never a wrap).
    #[error("fence counter of the job overflowed")]
    CounterOverflow,
    /// Terms above 2^32 - 1 do not fit the token layout.
    #[error("term does not fit the token layout")]
    TermTooLarge,
    /// The registry is full and does not know this job: refused rather than forgetting
    /// a register (forgetting one could let a stale token take effect later).
    #[error("fence registry full")]
    Full,
}

/// The issuing side: each job's counter, on the node leading it.
#[derive(Clone, Debug, Default)]
pub struct TokenIssuer {
    counters: FxHashMap<JobId, u32>,
}

impl TokenIssuer {
    /// The job's next token under `term`. A new leader that never saw the job starts
    /// its counter from `seen` (the highest token it knows, e.g. from a state sync), so
    /// counters never go back even within one term.
    pub fn next(
        &mut self,
        job: JobId,
        term: u64,
        seen: Option<FenceToken>,
    ) -> Result<FenceToken, FenceError> {
        let term = u32::try_from(term).map_err(|_| FenceError::TermTooLarge)?;
        let base = seen.map_or(0, |t| t.counter());
        let c = self.counters.entry(job).or_insert(base);
        *c = (*c)
            .max(base)
            .checked_add(1)
            .ok_or(FenceError::CounterOverflow)?;
        Ok(FenceToken::new(term, *c))
    }

    /// The job ended (or leadership moved away): drop its counter.
    pub fn forget(&mut self, job: JobId) {
        self.counters.remove(&job);
    }

    pub fn len(&self) -> usize {
        self.counters.len()
    }
    pub fn is_empty(&self) -> bool {
        self.counters.is_empty()
    }
}

/// What a receiver does with a fenced message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Take effect; the register now holds this token.
    Accepted,
    /// The same claim again from the same leader: acknowledge, change nothing.
    Resend,
    /// Older than what this receiver has seen: no effect (`OpRejectedStale`).
    Stale,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Register {
    token: FenceToken,
    holder: NodeId,
}

/// The receiving side: one register per `(domain, job)`.
#[derive(Clone, Debug)]
pub struct JobRegistry {
    registers: FxHashMap<(FenceDomain, JobId), Register>,
    max_registers: usize,
    /// Stale messages rejected, by count (observability).
    pub rejected_stale: u64,
}

impl JobRegistry {
    pub fn new(max_registers: usize) -> JobRegistry {
        JobRegistry {
            registers: FxHashMap::default(),
            max_registers,
            rejected_stale: 0,
        }
    }

    /// The register of `(domain, job)`, if any.
    pub fn token(&self, domain: FenceDomain, job: JobId) -> Option<FenceToken> {
        self.registers.get(&(domain, job)).map(|r| r.token)
    }

    /// A claim or transfer of leadership: needs `t > register`; `t == register` from the
    /// holder is an idempotent resend. Raises the register.
    pub fn claim(
        &mut self,
        domain: FenceDomain,
        job: JobId,
        token: FenceToken,
        from: NodeId,
    ) -> Result<Verdict, FenceError> {
        match self.registers.get_mut(&(domain, job)) {
            Some(r) if token > r.token => {
                *r = Register {
                    token,
                    holder: from,
                };
                Ok(Verdict::Accepted)
            }
            Some(r) if token == r.token && r.holder == from => Ok(Verdict::Resend),
            Some(_) => {
                self.rejected_stale += 1;
                Ok(Verdict::Stale)
            }
            None => self.insert(domain, job, token, from),
        }
    }

    /// An operation under a token (dispatch, progress, status): needs `t >= register`.
    /// Raises the register.
    pub fn operation(
        &mut self,
        domain: FenceDomain,
        job: JobId,
        token: FenceToken,
        from: NodeId,
    ) -> Result<Verdict, FenceError> {
        match self.registers.get_mut(&(domain, job)) {
            Some(r) if token >= r.token => {
                if token > r.token {
                    *r = Register {
                        token,
                        holder: from,
                    };
                }
                Ok(Verdict::Accepted)
            }
            Some(_) => {
                self.rejected_stale += 1;
                Ok(Verdict::Stale)
            }
            None => self.insert(domain, job, token, from),
        }
    }

    fn insert(
        &mut self,
        domain: FenceDomain,
        job: JobId,
        token: FenceToken,
        from: NodeId,
    ) -> Result<Verdict, FenceError> {
        if self.registers.len() >= self.max_registers {
            return Err(FenceError::Full);
        }
        self.registers.insert(
            (domain, job),
            Register {
                token,
                holder: from,
            },
        );
        Ok(Verdict::Accepted)
    }

    /// The job reached a terminal state everywhere: drop its registers in every domain.
    pub fn forget_job(&mut self, job: JobId) {
        self.registers.retain(|(_, j), _| *j != job);
    }

    pub fn len(&self) -> usize {
        self.registers.len()
    }
    pub fn is_empty(&self) -> bool {
        self.registers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const J: JobId = JobId(42);
    const A: NodeId = NodeId(1);
    const B: NodeId = NodeId(2);

    #[test]
    fn token_layout_is_term_high_counter_low() {
        let t = FenceToken::new(3, 7);
        assert_eq!(t.0, (3u64 << 32) | 7);
        assert_eq!((t.term(), t.counter()), (3, 7));
        // Every term-4 token beats every term-3 token, whatever the counters.
        assert!(FenceToken::new(4, 0) > FenceToken::new(3, u32::MAX));
    }

    #[test]
    fn the_counter_survives_a_term_change_and_overflow_is_an_error() {
        let mut i = TokenIssuer::default();
        assert_eq!(i.next(J, 1, None), Ok(FenceToken::new(1, 1)));
        assert_eq!(i.next(J, 1, None), Ok(FenceToken::new(1, 2)));
        // New term: the counter goes on (not reset), the token outranks term 1.
        assert_eq!(i.next(J, 2, None), Ok(FenceToken::new(2, 3)));
        // A takeover by a node that never saw the job continues from what it learned.
        let mut fresh = TokenIssuer::default();
        assert_eq!(
            fresh.next(J, 3, Some(FenceToken::new(2, 3))),
            Ok(FenceToken::new(3, 4))
        );
        assert_eq!(i.next(J, 1 << 32, None), Err(FenceError::TermTooLarge));
        let mut o = TokenIssuer::default();
        o.next(J, 1, Some(FenceToken::new(1, u32::MAX - 1)))
            .unwrap();
        assert_eq!(o.next(J, 1, None), Err(FenceError::CounterOverflow));
        i.forget(J);
        assert!(i.is_empty());
    }

    #[test]
    fn claims_need_a_newer_token_operations_an_equal_or_newer_one() {
        let d = FenceDomain::ManagerJob(DcId(0));
        let mut r = JobRegistry::new(100);
        let t1 = FenceToken::new(1, 1);
        let t2 = FenceToken::new(1, 2);
        let t3 = FenceToken::new(2, 3);
        assert_eq!(r.claim(d, J, t1, A), Ok(Verdict::Accepted));
        // The same claim again from the same leader: an idempotent resend.
        assert_eq!(r.claim(d, J, t1, A), Ok(Verdict::Resend));
        // The same token from someone else: stale (two owners of one token never).
        assert_eq!(r.claim(d, J, t1, B), Ok(Verdict::Stale));
        // Operations: equal accepted, newer raises, older rejected.
        assert_eq!(r.operation(d, J, t1, A), Ok(Verdict::Accepted));
        assert_eq!(r.operation(d, J, t2, A), Ok(Verdict::Accepted));
        assert_eq!(r.token(d, J), Some(t2));
        assert_eq!(r.operation(d, J, t1, A), Ok(Verdict::Stale));
        // A takeover under a higher term wins; the deposed leader's dispatches are stale.
        assert_eq!(r.claim(d, J, t3, B), Ok(Verdict::Accepted));
        assert_eq!(r.operation(d, J, t2, A), Ok(Verdict::Stale));
        assert_eq!(r.rejected_stale, 3);
        // Domains are never compared: a timeout decision's small token is fine.
        assert_eq!(
            r.operation(FenceDomain::TimeoutDecision, J, FenceToken::new(0, 1), A),
            Ok(Verdict::Accepted)
        );
        // The job ends: every domain's register goes.
        r.forget_job(J);
        assert!(r.is_empty());
    }

    #[test]
    fn a_full_registry_refuses_new_jobs_but_keeps_serving_known_ones() {
        let mut r = JobRegistry::new(2);
        let t = FenceToken::new(1, 1);
        r.claim(FenceDomain::GateJob, JobId(1), t, A).unwrap();
        r.claim(FenceDomain::GateJob, JobId(2), t, A).unwrap();
        assert_eq!(
            r.claim(FenceDomain::GateJob, JobId(3), t, A),
            Err(FenceError::Full)
        );
        assert_eq!(
            r.operation(FenceDomain::GateJob, JobId(1), t, A),
            Ok(Verdict::Accepted)
        );
    }

    proptest! {
        /// Registers never decrease and nothing older than the register takes effect
        /// (leadership.md §4.2-4.3).
        #[test]
        fn registers_are_monotone_and_stale_tokens_never_take_effect(
            ops in prop::collection::vec((any::<bool>(), 0u32..4, 0u32..6, 0u32..3, 0u64..3), 1..200)
        ) {
            let mut r = JobRegistry::new(1000);
            for (is_claim, term, counter, from, job) in ops {
                let d = FenceDomain::ManagerJob(DcId(0));
                let job = JobId(job);
                let t = FenceToken::new(term, counter);
                let before = r.token(d, job);
                let v = if is_claim {
                    r.claim(d, job, t, NodeId(from)).unwrap()
                } else {
                    r.operation(d, job, t, NodeId(from)).unwrap()
                };
                let after = r.token(d, job).unwrap();
                if let Some(b) = before {
                    prop_assert!(after >= b);
                    if t < b {
                        prop_assert_eq!(v, Verdict::Stale);
                        prop_assert_eq!(after, b);
                    }
                }
                if v == Verdict::Accepted {
                    prop_assert_eq!(after, t);
                }
            }
        }
    }
}
