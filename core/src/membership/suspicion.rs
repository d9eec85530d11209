//! Lifeguard's dynamic suspicion timeout (AD-30, membership.md §6.3).
//!
//! `timeout(C) = max(min, max - (max - min) ln(C+1) / ln(N+1))`, `= max` when N <= 1, with
//! C the independent confirmations (the originator excluded) and N the members Alive or
//! Suspect when the suspicion started. Grants (AD-26) only ever push the deadline out.

use crate::id::NodeId;
use crate::time::micros_f64;
use crate::time::{scale, Instant};
use core::time::Duration;
use smallvec::SmallVec;

/// At most this many confirmers are remembered; extra ones are only counted.
pub const MAX_CONFIRMERS: usize = 1000;

pub fn timeout(min: Duration, max: Duration, confirmations: usize, n: usize) -> Duration {
    if n <= 1 || max <= min {
        return max.max(min);
    }
    let frac = libm::log((confirmations + 1) as f64) / libm::log((n + 1) as f64);
    let span = micros_f64(max - min);
    let t = micros_f64(max) - span * frac;
    Duration::from_micros((t.max(micros_f64(min))) as u64)
}

#[derive(Clone, Debug)]
pub struct Suspicion {
    pub started_at: Instant,
    /// The bounds in force: the role's bounds times `health_mult`.
    pub min: Duration,
    pub max: Duration,
    /// The role's bounds before the local-health factor.
    base_min: Duration,
    base_max: Duration,
    /// The local health multiplier the bounds are scaled by: the LHM snapshot taken when
    /// the suspicion started, lowered (never raised) as the local health recovers.
    health_mult: f64,
    pub n: usize,
    /// Whether confirmations shorten the timeout (Lifeguard on).
    pub dynamic: bool,
    pub originator: NodeId,
    confirmers: SmallVec<[NodeId; 4]>,
    extra_confirmations: usize,
    pub granted: Duration,
    /// The one last probe before expiry was sent (membership.md §9).
    pub last_chance: bool,
    /// When the latest last-chance probe went out.
    pub last_probe_at: Option<Instant>,
    /// §9's one OOB probe of this suspicion.
    pub oob: OobProbeState,
}

/// Where a suspicion's one out-of-band probe stands (membership.md §9).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OobProbeState {
    Unsent,
    /// Sent with this sequence number; its answer may still extend the suspicion.
    Awaiting(u32),
    /// Its answer came and extended the suspicion (once only).
    Answered,
}

impl Suspicion {
    /// `min`/`max` are the role's bounds; `health_mult` the local health multiplier now.
    pub fn new(
        started_at: Instant,
        (min, max): (Duration, Duration),
        health_mult: f64,
        n: usize,
        originator: NodeId,
        dynamic: bool,
    ) -> Self {
        Suspicion {
            started_at,
            min: scale(min, health_mult),
            max: scale(max, health_mult),
            base_min: min,
            base_max: max,
            health_mult,
            n,
            dynamic,
            originator,
            confirmers: SmallVec::new(),
            extra_confirmations: 0,
            granted: Duration::ZERO,
            last_chance: false,
            last_probe_at: None,
            oob: OobProbeState::Unsent,
        }
    }

    /// A probe the suspect may answer within `t_p` went out at `now`: the verdict
    /// rests on the silence since, and waits a full `t_p` from now, even if the
    /// deadline has passed (a recovered local health just shortened the suspicion, or
    /// its timer is queued behind the answer that sent this probe).
    pub fn probed(&mut self, now: Instant, t_p: Duration) {
        self.last_probe_at = Some(now);
        self.granted += t_p + now.saturating_since(self.deadline());
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

    /// The local health multiplier fell to `health_mult`: if that is below the one the
    /// bounds were scaled by, rescale them (the deadline only moves earlier, and never
    /// before `start + min` at the new multiplier). Returns whether anything changed.
    ///
    /// Spec deviation (membership.md §6.3 snapshots the multiplier at start): the
    /// multiplier exists because a node whose own probes fail cannot tell a dead peer from
    /// its own sickness. Once its probes succeed again (its LHM falls), that doubt is
    /// gone, and keeping the snapshot only delays a true verdict; an isolated minority
    /// (whose LHM rises while it loses its peers, then falls once only reachable peers are
    /// probed successfully) would otherwise not declare an unreachable majority dead for
    /// up to 9x the role's maximum. Raising is never applied: a suspicion only gets
    /// shorter, so no timer starves (AD-30).
    pub fn relax(&mut self, health_mult: f64) -> bool {
        if health_mult >= self.health_mult {
            return false;
        }
        self.health_mult = health_mult;
        self.min = scale(self.base_min, health_mult);
        self.max = scale(self.base_max, health_mult);
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
        let mut s = Suspicion::new(Instant::ZERO, (secs(5), secs(30)), 1.0, 50, NodeId(1), true);
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
        let mut s = Suspicion::new(
            Instant::ZERO,
            (secs(5), secs(30)),
            1.0,
            50,
            NodeId(1),
            false,
        );
        s.confirm(NodeId(2), NodeId(0));
        assert_eq!(s.deadline(), Instant::ZERO + secs(5));
    }

    #[test]
    fn a_recovered_local_health_shortens_but_never_lengthens() {
        // Gate bounds 30/120 s, N = 5, started with LHM 2 (multiplier 3): max 360 s.
        let mut s = Suspicion::new(
            Instant::ZERO,
            (secs(30), secs(120)),
            3.0,
            5,
            NodeId(1),
            true,
        );
        assert_eq!(s.deadline(), Instant::ZERO + secs(360));
        assert!(!s.relax(4.0), "a sicker node never lengthens a suspicion");
        assert_eq!(s.deadline(), Instant::ZERO + secs(360));
        assert!(s.relax(1.0));
        assert_eq!(s.deadline(), Instant::ZERO + secs(120));
        assert_eq!(s.floor(), Instant::ZERO + secs(30));
        // One confirmation: 120 - 90 ln2/ln6 = 85.18 s.
        s.confirm(NodeId(2), NodeId(0));
        let d = s.deadline().saturating_since(Instant::ZERO);
        assert!((d.as_secs_f64() - 85.18).abs() < 0.01, "{d:?}");
        assert!(!s.relax(1.0));
    }
}
