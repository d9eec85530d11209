//! Role-aware peer confirmation (AD-29, membership.md §7): how long an UNCONFIRMED peer
//! may stay, and whether we proactively ping it before giving up on it.

use crate::id::Role;
use crate::time::{secs, Instant};
use core::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Strategy {
    pub passive: Duration,
    pub proactive: bool,
    pub attempts: u8,
    pub interval: Duration,
    pub vivaldi_aware: bool,
    pub lhm_cap: f64,
}

/// The strategy table of membership.md §7 (from `confirmation_strategy.py`).
pub fn strategy(role: Role) -> Strategy {
    match role {
        Role::Gate => Strategy {
            passive: secs(120),
            proactive: true,
            attempts: 5,
            interval: secs(5),
            vivaldi_aware: true,
            lhm_cap: 3.0,
        },
        Role::Manager => Strategy {
            passive: secs(90),
            proactive: true,
            attempts: 3,
            interval: secs(5),
            vivaldi_aware: true,
            lhm_cap: 5.0,
        },
        Role::Worker | Role::Unknown => Strategy {
            passive: secs(180),
            proactive: false,
            attempts: 0,
            interval: secs(5),
            vivaldi_aware: false,
            lhm_cap: 10.0,
        },
    }
}

impl Strategy {
    /// `discovered_at + passive x min(lhm_mult, cap) x latency_factor` (the latency factor,
    /// latency_mult x confidence_adj, applies only to Vivaldi-aware roles; 1.0 without a
    /// coordinate).
    pub fn removal_deadline(
        &self,
        discovered_at: Instant,
        lhm_mult: f64,
        latency_factor: f64,
    ) -> Instant {
        let lf = if self.vivaldi_aware {
            latency_factor.max(1.0)
        } else {
            1.0
        };
        discovered_at + crate::time::scale(self.passive, lhm_mult.min(self.lhm_cap) * lf)
    }

    /// When proactive attempt number `made` (0-based) is due, if any remain.
    pub fn attempt_at(&self, discovered_at: Instant, made: u8) -> Option<Instant> {
        if !self.proactive || made >= self.attempts {
            return None;
        }
        Some(discovered_at + self.passive / 2 + self.interval * made as u32)
    }
}

/// Why an unconfirmed peer was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum RemovalReason {
    PassiveTimeoutExpired,
    ExhaustedProactiveAttempts,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_numbers_at_lhm_one_without_coordinates() {
        let t0 = Instant::ZERO;
        let gate = strategy(Role::Gate);
        assert_eq!(gate.attempt_at(t0, 0), Some(t0 + secs(60)));
        assert_eq!(gate.attempt_at(t0, 4), Some(t0 + secs(80)));
        assert_eq!(gate.attempt_at(t0, 5), None);
        assert_eq!(gate.removal_deadline(t0, 1.0, 1.0), t0 + secs(120));
        let mgr = strategy(Role::Manager);
        assert_eq!(mgr.attempt_at(t0, 0), Some(t0 + secs(45)));
        assert_eq!(mgr.attempt_at(t0, 2), Some(t0 + secs(55)));
        assert_eq!(mgr.attempt_at(t0, 3), None);
        assert_eq!(mgr.removal_deadline(t0, 1.0, 1.0), t0 + secs(90));
        let worker = strategy(Role::Worker);
        assert_eq!(
            worker.attempt_at(t0, 0),
            None,
            "workers get no proactive pings"
        );
        assert_eq!(worker.removal_deadline(t0, 1.0, 1.0), t0 + secs(180));
        // LHM 9 is capped at 10 for workers (no effect) and at 3 for gates.
        assert_eq!(worker.removal_deadline(t0, 10.0, 1.0), t0 + secs(1800));
        assert_eq!(gate.removal_deadline(t0, 9.0, 1.0), t0 + secs(360));
        // The latency factor stretches only Vivaldi-aware roles.
        assert_eq!(worker.removal_deadline(t0, 1.0, 2.0), t0 + secs(180));
        assert_eq!(mgr.removal_deadline(t0, 1.0, 2.0), t0 + secs(180));
    }
}
