//! The simulator's view of AD-24 (backpressure.md §4): what each node's rate limiter
//! admitted and refused, and §10's invariant 9 over its admissions: per client and
//! operation, the requests a node accepts within any stretch of one window never exceed
//! the limit plus the previous window's weight, so never twice the limit.
//!
//! The check is the invariant's, not the limiter's arithmetic: it keeps each (node,
//! client, operation)'s admissions of the last window, on the node's own clock (the
//! limiter's windows run on it, skewed or not), and counts them.

use meridian_core::backpressure::rate_limit::{ClientId, Operation};
use meridian_core::node::Admission;
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct RateLimitReport {
    /// Requests any node's limiter refused: peers' job messages and clients'
    /// submissions.
    pub refused: u64,
    /// Of which clients' submissions to a gate (`job_submit`).
    pub submissions_refused: u64,
    /// Job messages a node did not send because the receiver asked it to wait.
    pub held: u64,
}

#[derive(Debug, Default)]
pub struct Tracker {
    /// (node, client, operation) -> the admissions of its last window, local µs.
    recent: BTreeMap<(usize, ClientId, Operation), VecDeque<u64>>,
    pub refused: u64,
    pub submissions_refused: u64,
    /// Held back by nodes that have stopped since (a live node's own count is added at
    /// the end).
    held_by_stopped: u64,
    /// Drained admissions, reused.
    scratch: Vec<Admission>,
}

impl Tracker {
    /// Scratch space for a node's admissions; give it back with [`Tracker::check`].
    pub fn take_scratch(&mut self) -> Vec<Admission> {
        std::mem::take(&mut self.scratch)
    }

    /// Node `node` (named `name`) admitted `admissions`; each over-limit admission is
    /// reported to `violation`.
    pub fn check(
        &mut self,
        node: usize,
        name: &str,
        mut admissions: Vec<Admission>,
        mut violation: impl FnMut(String),
    ) {
        for (client, op, at) in admissions.drain(..) {
            let (max, window) = op.limit();
            let window_us = window.as_micros() as u64;
            let at = at.as_micros();
            let times = self.recent.entry((node, client, op)).or_default();
            while times.front().is_some_and(|&t| t + window_us <= at) {
                times.pop_front();
            }
            times.push_back(at);
            if times.len() > 2 * max as usize {
                violation(format!(
                    "{name} admitted {} {} requests from {client:?} within {} s (limit {max})",
                    times.len(),
                    op.name(),
                    window.as_secs()
                ));
                // One report per excess, not one per admission after it.
                times.clear();
            }
        }
        self.scratch = admissions;
    }

    /// A node that held back `held` messages stopped: a restarted node's limiter
    /// starts empty, so its admissions are forgotten.
    pub fn on_stop(&mut self, node: usize, held: u64) {
        self.recent.retain(|(n, _, _), _| *n != node);
        self.held_by_stopped += held;
    }

    /// The report, with what the live nodes held back (`held_by_live`).
    pub fn report(&self, held_by_live: u64) -> RateLimitReport {
        RateLimitReport {
            refused: self.refused,
            submissions_refused: self.submissions_refused,
            held: self.held_by_stopped + held_by_live,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meridian_core::id::NodeId;
    use meridian_core::time::Instant;

    fn check(t: &mut Tracker, times_ms: &[u64]) -> Vec<String> {
        let admissions = times_ms
            .iter()
            .map(|ms| {
                (
                    ClientId::Node(NodeId(3)),
                    Operation::Reconnect,
                    Instant::from_millis(*ms),
                )
            })
            .collect();
        let mut found = Vec::new();
        t.check(0, "dc/manager-0", admissions, |d| found.push(d));
        found
    }

    /// Reconnect allows 10 in 10 s: 20 inside one stretch of 10 s is the most the
    /// previous window's weight can add; a 21st is a violation.
    #[test]
    fn more_than_twice_the_limit_inside_one_window_is_a_violation() {
        let mut t = Tracker::default();
        let twenty: Vec<u64> = (0..20).map(|k| k * 400).collect();
        assert!(check(&mut t, &twenty).is_empty());
        let found = check(&mut t, &[9_999]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("21 reconnect requests"), "{found:?}");
    }

    #[test]
    fn admissions_spread_over_more_than_a_window_are_not() {
        let mut t = Tracker::default();
        let spread: Vec<u64> = (0..100).map(|k| k * 500).collect();
        assert!(check(&mut t, &spread).is_empty());
        // A restarted node starts over.
        t.on_stop(0, 4);
        assert!(check(&mut t, &(0..20).collect::<Vec<_>>()).is_empty());
        assert_eq!(t.report(1).held, 5);
    }
}
