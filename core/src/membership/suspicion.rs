//! Lifeguard's dynamic suspicion timeout (AD-30, membership.md §6.3).
//!
//! `timeout(C) = max(min, max - (max - min) ln(C+1) / ln(N+1))`, `= max` when N <= 1, with
//! C the independent confirmations (the originator excluded) and N the members Alive or
//! Suspect when the suspicion started. Grants (AD-26) only ever push the deadline out.

use crate::id::NodeId;
use crate::time::Instant;
use core::time::Duration;
use smallvec::SmallVec;

/// At most this many confirmers are remembered; extra ones are only counted.
pub const MAX_CONFIRMERS: usize = 1000;

pub fn timeout(min: Duration, max: Duration, confirmations: usize, n: usize) -> Duration {
    if n <= 1 || max <= min {
        return max.max(min);
    }
    let frac = libm::log((confirmations + 1) as f64) / libm::log((n + 1) as f64);
    let span = (max - min).as_micros() as f64;
    let t = max.as_micros() as f64 - span * frac;
    Duration::from_micros((t.max(min.as_micros() as f64)) as u64)
}

#[derive(Clone, Debug)]
pub struct Suspicion {
    pub started_at: Instant,
    pub min: Duration,
    pub max: Duration,
    pub n: usize,
    /// Whether confirmations shorten the timeout (Lifeguard on).
    pub dynamic: bool,
    pub originator: NodeId,
    confirmers: SmallVec<[NodeId; 4]>,
    extra_confirmations: usize,
    pub granted: Duration,
    /// The one last probe before expiry was sent (membership.md §9).
    pub last_chance: bool,
}

impl Suspicion {
    pub fn new(
        started_at: Instant,
        min: Duration,
        max: Duration,
        n: usize,
        originator: NodeId,
        dynamic: bool,
    ) -> Self {
        Suspicion {
            started_at,
            min,
            max,
            n,
            dynamic,
            originator,
            confirmers: SmallVec::new(),
            extra_confirmations: 0,
            granted: Duration::ZERO,
            last_chance: false,
        }
    }

    pub fn confirmations(&self) -> usize {
        self.confirmers.len() + self.extra_confirmations
    }

    /// A SUSPECT at the same incarnation from `from`. Returns true if it was new (and so
    /// may have pulled the deadline in). Never counts the originator or `me`.
    pub fn confirm(&mut self, from: NodeId, me: NodeId) -> bool {
        if from == me || from == self.originator || self.confirmers.contains(&from) {
            return false;
        }
        if self.confirmers.len() < MAX_CONFIRMERS {
            self.confirmers.push(from);
        } else {
            self.extra_confirmations += 1;
        }
        true
    }

    pub fn deadline(&self) -> Instant {
        let t = if self.dynamic {
            timeout(self.min, self.max, self.confirmations(), self.n)
        } else {
            self.min
        };
        self.started_at + t + self.granted
    }

    /// The earliest the suspicion may ever expire (invariant 7).
    pub fn floor(&self) -> Instant {
        self.started_at + self.min + self.granted
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::secs;

    #[test]
    fn formula_with_spec_numbers() {
        // Worker bounds 5/30, N = 100 members: no confirmation -> max.
        assert_eq!(timeout(secs(5), secs(30), 0, 100), secs(30));
        // C = N reaches min exactly.
        assert_eq!(timeout(secs(5), secs(30), 100, 100), secs(5));
        // N = 3, C = 1: 30 - 25 ln2/ln4 = 17.5 s.
        assert_eq!(
            timeout(secs(5), secs(30), 1, 3),
            Duration::from_millis(17_500)
        );
        // N <= 1 -> max.
        assert_eq!(timeout(secs(5), secs(30), 5, 1), secs(30));
        // Never below min.
        assert_eq!(timeout(secs(5), secs(30), 10_000, 3), secs(5));
    }

    #[test]
    fn deadlines_are_non_increasing_in_confirmations_and_never_before_min() {
        let me = NodeId(0);
        let mut s = Suspicion::new(Instant::ZERO, secs(5), secs(30), 50, NodeId(1), true);
        let mut last = s.deadline();
        assert_eq!(last, Instant::ZERO + secs(30));
        assert!(
            !s.confirm(NodeId(1), me),
            "originator is not a confirmation"
        );
        assert!(!s.confirm(me, me), "self is not a confirmation");
        for i in 2..60 {
            assert!(s.confirm(NodeId(i), me));
            assert!(!s.confirm(NodeId(i), me), "duplicates are not counted");
            let d = s.deadline();
            assert!(d <= last);
            assert!(d >= s.floor());
            last = d;
        }
        assert_eq!(last, s.floor());
        s.granted = secs(10);
        assert_eq!(s.deadline(), Instant::ZERO + secs(15), "grants only delay");
    }

    #[test]
    fn without_lifeguard_the_timeout_is_fixed() {
        let mut s = Suspicion::new(Instant::ZERO, secs(5), secs(30), 50, NodeId(1), false);
        s.confirm(NodeId(2), NodeId(0));
        assert_eq!(s.deadline(), Instant::ZERO + secs(5));
    }
}
