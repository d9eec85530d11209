//! Lifeguard (AD-30, membership.md §6): the local health multiplier (LHM) and the
//! degradation level derived from it and from event-loop lag.

use crate::time::{secs, Instant};
use serde::{Deserialize, Serialize};

/// Lifeguard's S: the score saturates at 8, multiplier `1 + score` in 1..=9.
pub const LHM_MAX_SCORE: u8 = 8;

#[derive(Clone, Debug)]
pub struct Lhm {
    score: u8,
    enabled: bool,
}

impl Lhm {
    pub fn new(enabled: bool) -> Self {
        Lhm { score: 0, enabled }
    }
    pub fn score(&self) -> u8 {
        self.score
    }
    pub fn multiplier(&self) -> f64 {
        1.0 + self.score as f64
    }
    /// Returns true if the score changed.
    pub fn raise(&mut self, by: u8) -> bool {
        let next = self.score.saturating_add(by).min(LHM_MAX_SCORE);
        self.set(next)
    }
    pub fn lower(&mut self, by: u8) -> bool {
        let next = self.score.saturating_sub(by);
        self.set(next)
    }
    /// Take a score given by the node (observers borrow the node's own score).
    pub fn set_score(&mut self, score: u8) -> bool {
        self.set(score.min(LHM_MAX_SCORE))
    }
    fn set(&mut self, next: u8) -> bool {
        if !self.enabled || next == self.score {
            return false;
        }
        self.score = next;
        true
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum DegradationLevel {
    Normal,
    Light,
    Moderate,
    Heavy,
    Critical,
}

impl DegradationLevel {
    const ALL: [DegradationLevel; 5] = [
        DegradationLevel::Normal,
        DegradationLevel::Light,
        DegradationLevel::Moderate,
        DegradationLevel::Heavy,
        DegradationLevel::Critical,
    ];
    /// Fraction of probe rounds run (membership.md §6.2 table).
    pub fn probe_rate(self) -> f64 {
        [1.0, 0.9, 0.7, 0.5, 0.25][self as usize]
    }
    pub fn piggyback(self, normal: usize) -> usize {
        normal.saturating_sub(self as usize).max(1)
    }
    pub fn timeout_mult(self) -> f64 {
        [1.0, 1.2, 1.5, 2.0, 3.0][self as usize]
    }
    /// Whether this node still helps others with PING_REQ.
    pub fn helps_indirect(self) -> bool {
        self < DegradationLevel::Heavy
    }
    /// Round `k` is skipped iff `floor((k+1)(1-r)) > floor(k(1-r))`: evenly spread skips
    /// (Python's `int(1/(1-r))` skips every round at r = 0.25, D10).
    pub fn skips_round(self, k: u64) -> bool {
        // In integer per-mille, so 0.9 does not round into an extra skip.
        let skip = [0u64, 100, 300, 500, 750][self as usize];
        (k + 1) * skip / 1000 > k * skip / 1000
    }
}

const SCORE_THRESHOLDS: [f64; 4] = [2.0, 4.0, 6.0, 7.0];
const LAG_THRESHOLDS: [f64; 4] = [0.5, 1.0, 1.5, 2.0];
const LAG_WINDOW: usize = 10;

/// Loop-lag tracking and the degradation level (membership.md §6.1, §6.2).
#[derive(Clone, Debug)]
pub struct Degradation {
    level: DegradationLevel,
    /// The level loop lag alone calls for: what paces probing (see [`Degradation::pace`]).
    lag_level: DegradationLevel,
    changed_at: Instant,
    lag: [f64; LAG_WINDOW],
    lag_len: usize,
    lag_next: usize,
    lagging_run: u32,
    ok_run: u32,
    loop_degraded: bool,
}

/// What one loop-lag sample does to the LHM score.
#[derive(Debug, PartialEq, Eq)]
pub enum LagEffect {
    Raise(u8),
    Lower,
    None,
}

impl Degradation {
    pub fn new(now: Instant) -> Self {
        Degradation {
            level: DegradationLevel::Normal,
            lag_level: DegradationLevel::Normal,
            changed_at: now,
            lag: [0.0; LAG_WINDOW],
            lag_len: 0,
            lag_next: 0,
            lagging_run: 0,
            ok_run: 0,
            loop_degraded: false,
        }
    }
    pub fn level(&self) -> DegradationLevel {
        self.level
    }

    /// The level that paces probing: round skipping and the interval and timeout
    /// multipliers. Spec deviation: only the loop-lag part of the level counts here.
    /// The LHM part is already in the LHM multiplier; applying the level derived from
    /// the same score again (x3 and 75% of rounds skipped at CRITICAL, on top of x8)
    /// made a node at LHM 7 probe about once in 96 s, so it needed minutes to earn its
    /// health back after a partition healed. Piggyback size, helping and leadership
    /// still follow the full level.
    pub fn pace(&self) -> DegradationLevel {
        self.lag_level.min(self.level)
    }

    /// A loop-lag sample `(actual - 10 ms) / 10 ms`. Each lagging sample (> 0.5) raises the
    /// LHM by 1, a critical one (> 2.0) by 2; after 5 OK samples following a degraded
    /// stretch (3 lagging in a row) the loop has recovered: LHM -1.
    pub fn sample_lag(&mut self, ratio: f64) -> LagEffect {
        let ratio = if ratio.is_finite() {
            ratio.max(0.0)
        } else {
            0.0
        };
        self.lag[self.lag_next] = ratio;
        self.lag_next = (self.lag_next + 1) % LAG_WINDOW;
        self.lag_len = (self.lag_len + 1).min(LAG_WINDOW);
        if ratio > 0.5 {
            self.ok_run = 0;
            self.lagging_run += 1;
            if self.lagging_run >= 3 {
                self.loop_degraded = true;
            }
            LagEffect::Raise(if ratio > 2.0 { 2 } else { 1 })
        } else {
            self.lagging_run = 0;
            self.ok_run += 1;
            if self.loop_degraded && self.ok_run >= 5 {
                self.loop_degraded = false;
                LagEffect::Lower
            } else {
                LagEffect::None
            }
        }
    }

    /// Whether recent loop-lag samples still bear on the level (re-evaluate while true).
    pub fn lagging(&self) -> bool {
        self.loop_degraded || self.mean_lag() > 0.0
    }

    fn mean_lag(&self) -> f64 {
        if self.lag_len == 0 {
            return 0.0;
        }
        self.lag[..self.lag_len].iter().sum::<f64>() / self.lag_len as f64
    }

    /// Re-evaluate; returns the new level if it changed. Thresholds of the current level
    /// and those below it are x0.8 (hysteresis). Escalation is immediate; a level is held
    /// at least 5 s before it may drop (the spec's hold protects against flapping, and
    /// delaying escalation would only let an overloaded node keep accusing others).
    pub fn evaluate(&mut self, lhm_score: u8, now: Instant) -> Option<DegradationLevel> {
        let level_of = |value: f64, thresholds: &[f64; 4]| {
            let mut level = DegradationLevel::Normal;
            for (i, t) in thresholds.iter().enumerate() {
                let candidate = DegradationLevel::ALL[i + 1];
                let t = if candidate <= self.level { t * 0.8 } else { *t };
                if value >= t {
                    level = candidate;
                }
            }
            level
        };
        let by_lag = level_of(self.mean_lag(), &LAG_THRESHOLDS);
        let target = level_of(lhm_score as f64, &SCORE_THRESHOLDS).max(by_lag);
        self.lag_level = by_lag;
        let may_drop = now.saturating_since(self.changed_at) >= secs(5);
        if target > self.level || (target < self.level && may_drop) {
            self.level = target;
            self.changed_at = now;
            return Some(target);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lhm_saturates_at_eight_and_never_underflows() {
        let mut l = Lhm::new(true);
        assert!(!l.lower(1));
        for _ in 0..20 {
            l.raise(1);
        }
        assert_eq!(l.score(), 8);
        assert_eq!(l.multiplier(), 9.0);
        let mut off = Lhm::new(false);
        assert!(!off.raise(3));
        assert_eq!(off.multiplier(), 1.0);
    }

    #[test]
    fn degradation_table_matches_spec() {
        use DegradationLevel::*;
        assert_eq!(Normal.piggyback(5), 5);
        assert_eq!(Light.piggyback(5), 4);
        assert_eq!(Critical.piggyback(5), 1);
        assert_eq!(Heavy.timeout_mult(), 2.0);
        assert!(Moderate.helps_indirect());
        assert!(!Heavy.helps_indirect());
        // CRITICAL runs a quarter of the rounds, not none (D10).
        let run = (0..100).filter(|k| !Critical.skips_round(*k)).count();
        assert_eq!(run, 25);
        let run = (0..100).filter(|k| !Light.skips_round(*k)).count();
        assert_eq!(run, 90);
        assert!((0..100).all(|k| !Normal.skips_round(k)));
    }

    #[test]
    fn score_thresholds_with_hysteresis_and_hold() {
        let mut d = Degradation::new(Instant::ZERO);
        let t = Instant::from_millis(1000);
        assert_eq!(d.evaluate(4, t), Some(DegradationLevel::Moderate));
        // 3.2 = 4 x 0.8 keeps MODERATE; and a drop waits 5 s anyway.
        assert_eq!(d.evaluate(3, Instant::from_millis(2000)), None);
        assert_eq!(
            d.evaluate(3, Instant::from_millis(7000)),
            Some(DegradationLevel::Light)
        );
        assert_eq!(
            d.evaluate(7, Instant::from_millis(7001)),
            Some(DegradationLevel::Critical)
        );
    }

    #[test]
    fn only_loop_lag_paces_probing() {
        let mut d = Degradation::new(Instant::ZERO);
        d.evaluate(7, Instant::from_millis(1000));
        assert_eq!(d.level(), DegradationLevel::Critical);
        assert_eq!(
            d.pace(),
            DegradationLevel::Normal,
            "the LHM already slows probing"
        );
        for _ in 0..10 {
            d.sample_lag(2.5);
        }
        d.evaluate(7, Instant::from_millis(2000));
        assert_eq!(d.pace(), DegradationLevel::Critical);
    }

    #[test]
    fn lag_samples_raise_and_recover() {
        let mut d = Degradation::new(Instant::ZERO);
        assert_eq!(d.sample_lag(0.6), LagEffect::Raise(1));
        assert_eq!(d.sample_lag(2.5), LagEffect::Raise(2));
        assert_eq!(d.sample_lag(0.7), LagEffect::Raise(1));
        for _ in 0..4 {
            assert_eq!(d.sample_lag(0.0), LagEffect::None);
        }
        assert_eq!(d.sample_lag(0.0), LagEffect::Lower);
    }
}
