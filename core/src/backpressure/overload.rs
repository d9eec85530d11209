//! The hybrid overload detector (AD-18, backpressure.md §2) and the load shedder it
//! feeds (AD-22, §3). Three signals, the worst wins: latency against its own fast
//! baseline (with the slow baseline's drift catching a "boiled frog"), absolute
//! latency, and resource use. Escalation is immediate; de-escalation needs two
//! consecutive better evaluations, counted per sample (not per query, Q2).

use super::class::Priority;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum OverloadState {
    Healthy,
    Busy,
    Stressed,
    Overloaded,
}

impl OverloadState {
    fn up(self) -> OverloadState {
        match self {
            OverloadState::Healthy => OverloadState::Busy,
            OverloadState::Busy => OverloadState::Stressed,
            _ => OverloadState::Overloaded,
        }
    }

    /// Grade `x` against a non-decreasing triple with strict `>`.
    fn grade(x: f64, (busy, stressed, overloaded): (f64, f64, f64)) -> OverloadState {
        if x > overloaded {
            OverloadState::Overloaded
        } else if x > stressed {
            OverloadState::Stressed
        } else if x > busy {
            OverloadState::Busy
        } else {
            OverloadState::Healthy
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct OverloadConfig {
    pub ema_alpha: f64,
    pub slow_ema_alpha: f64,
    pub current_window: usize,
    pub delta_thresholds: (f64, f64, f64),
    pub absolute_bounds_ms: (f64, f64, f64),
    pub cpu_thresholds: (f64, f64, f64),
    pub memory_thresholds: (f64, f64, f64),
    pub drift_threshold: f64,
    pub high_drift_threshold: f64,
    pub min_samples: usize,
    pub warmup_samples: u64,
    pub hysteresis_samples: u32,
}

impl Default for OverloadConfig {
    fn default() -> Self {
        OverloadConfig {
            ema_alpha: 0.1,
            slow_ema_alpha: 0.02,
            current_window: 10,
            delta_thresholds: (0.2, 0.5, 1.0),
            absolute_bounds_ms: (200.0, 500.0, 2000.0),
            cpu_thresholds: (0.70, 0.85, 0.95),
            memory_thresholds: (0.70, 0.85, 0.95),
            drift_threshold: 0.15,
            high_drift_threshold: 0.30,
            min_samples: 3,
            warmup_samples: 10,
            hysteresis_samples: 2,
        }
    }
}

/// A triple that is not non-decreasing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadThresholds;

impl OverloadConfig {
    pub fn validate(&self) -> Result<(), BadThresholds> {
        let ok = |(a, b, c): (f64, f64, f64)| a <= b && b <= c;
        if ok(self.delta_thresholds)
            && ok(self.absolute_bounds_ms)
            && ok(self.cpu_thresholds)
            && ok(self.memory_thresholds)
        {
            Ok(())
        } else {
            Err(BadThresholds)
        }
    }
}

#[derive(Clone, Debug)]
pub struct OverloadDetector {
    cfg: OverloadConfig,
    ring: VecDeque<f64>,
    count: u64,
    fast: f64,
    slow: f64,
    cpu: f64,
    mem: f64,
    state: OverloadState,
    /// Consecutive evaluations that found a better raw state.
    better_for: u32,
}

impl OverloadDetector {
    pub fn new(cfg: OverloadConfig) -> Result<OverloadDetector, BadThresholds> {
        cfg.validate()?;
        Ok(OverloadDetector {
            cfg,
            ring: VecDeque::new(),
            count: 0,
            fast: 0.0,
            slow: 0.0,
            cpu: 0.0,
            mem: 0.0,
            state: OverloadState::Healthy,
            better_for: 0,
        })
    }

    pub fn state(&self) -> OverloadState {
        self.state
    }

    /// One latency sample (negative clamped to 0), then one evaluation.
    pub fn record_latency(&mut self, ms: f64) -> OverloadState {
        let x = if ms.is_finite() { ms.max(0.0) } else { 0.0 };
        self.count += 1;
        if self.ring.len() >= self.cfg.current_window {
            self.ring.pop_front();
        }
        self.ring.push_back(x);
        if self.count == 1 {
            self.fast = x;
            self.slow = x;
        } else {
            self.fast = self.cfg.ema_alpha * x + (1.0 - self.cfg.ema_alpha) * self.fast;
            self.slow = self.cfg.slow_ema_alpha * x + (1.0 - self.cfg.slow_ema_alpha) * self.slow;
        }
        self.evaluate()
    }

    /// A resource sample (percent), then one evaluation.
    pub fn record_resources(&mut self, cpu_percent: f64, mem_percent: f64) -> OverloadState {
        self.cpu = cpu_percent / 100.0;
        self.mem = mem_percent / 100.0;
        self.evaluate()
    }

    fn raw(&self) -> OverloadState {
        let c = &self.cfg;
        let avg = if self.ring.is_empty() {
            0.0
        } else {
            self.ring.iter().sum::<f64>() / self.ring.len() as f64
        };
        let delta_state =
            if self.count < c.warmup_samples || self.ring.len() < c.min_samples || self.fast <= 0.0
            {
                OverloadState::Healthy
            } else {
                let delta = (avg - self.fast) / self.fast;
                let base = OverloadState::grade(delta, c.delta_thresholds);
                let drift = if self.slow <= 0.0 {
                    0.0
                } else {
                    (self.fast - self.slow) / self.slow
                };
                if base == OverloadState::Healthy {
                    if drift > c.high_drift_threshold && avg > self.slow {
                        OverloadState::Busy
                    } else {
                        base
                    }
                } else if drift > c.drift_threshold {
                    base.up()
                } else {
                    base
                }
            };
        let absolute = if self.ring.is_empty() {
            OverloadState::Healthy
        } else {
            OverloadState::grade(avg, c.absolute_bounds_ms)
        };
        let resources = OverloadState::grade(self.cpu, c.cpu_thresholds)
            .max(OverloadState::grade(self.mem, c.memory_thresholds));
        delta_state.max(absolute).max(resources)
    }

    fn evaluate(&mut self) -> OverloadState {
        let raw = self.raw();
        if raw > self.state {
            self.state = raw;
            self.better_for = 0;
        } else if raw < self.state {
            self.better_for += 1;
            if self.better_for >= self.cfg.hysteresis_samples {
                self.state = raw;
                self.better_for = 0;
            }
        } else {
            self.better_for = 0;
        }
        self.state
    }
}

/// The lowest priority value shed in `state` (None: nothing is shed). Critical is never.
pub fn shed_threshold(state: OverloadState) -> Option<Priority> {
    match state {
        OverloadState::Healthy => None,
        OverloadState::Busy => Some(Priority::Low),
        OverloadState::Stressed => Some(Priority::Normal),
        OverloadState::Overloaded => Some(Priority::High),
    }
}

/// `max_pending` for a manager's pending-request detector (backpressure.md §3).
pub const MANAGER_MAX_PENDING: usize = 1000;

/// The manager's simpler detector: `in_flight / max_pending`.
pub fn pending_state(in_flight: usize, max_pending: usize) -> OverloadState {
    let r = in_flight as f64 / max_pending.max(1) as f64;
    if r < 0.5 {
        OverloadState::Healthy
    } else if r < 0.7 {
        OverloadState::Busy
    } else if r < 0.9 {
        OverloadState::Stressed
    } else {
        OverloadState::Overloaded
    }
}

/// Sheds by priority for an overload state, with counters.
#[derive(Clone, Debug, Default)]
pub struct LoadShedder {
    pub total: u64,
    /// Shed per priority (index = priority value).
    pub shed: [u64; 4],
}

impl LoadShedder {
    /// Whether a request of `p` is shed in `state` (and count it).
    pub fn should_shed(&mut self, state: OverloadState, p: Priority) -> bool {
        self.total += 1;
        let shed = shed_threshold(state).is_some_and(|t| p >= t);
        if shed {
            self.shed[p.index()] += 1;
        }
        shed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det() -> OverloadDetector {
        OverloadDetector::new(OverloadConfig::default()).unwrap()
    }

    #[test]
    fn absolute_bounds_escalate_at_once_and_fall_after_two_better_samples() {
        let mut d = det();
        // 300 ms average: over 200 -> Busy, immediately.
        assert_eq!(d.record_latency(300.0), OverloadState::Busy);
        for _ in 0..9 {
            d.record_latency(300.0);
        }
        // 2500 ms pushes the 10-sample average over 500 ms: Stressed at once.
        assert_eq!(d.record_latency(2500.0), OverloadState::Stressed);
        // Fast samples: the average falls below 500 and 200, but a better state needs
        // two consecutive evaluations.
        let mut states = Vec::new();
        for _ in 0..12 {
            states.push(d.record_latency(10.0));
        }
        assert_eq!(states.last(), Some(&OverloadState::Healthy));
        // Never straight down without the second confirming sample.
        let first_drop = states
            .iter()
            .position(|s| *s < OverloadState::Stressed)
            .unwrap();
        assert!(first_drop >= 1);
    }

    #[test]
    fn delta_against_the_baseline_after_warmup_and_drift_escalates() {
        let mut d = det();
        for _ in 0..20 {
            assert_eq!(d.record_latency(50.0), OverloadState::Healthy);
        }
        // A jump to 150 ms (below the absolute bounds). After 10 samples the window
        // average is 150 while the fast EMA (a = 0.1) is ~115: delta ~0.30 > 0.2, Busy;
        // the slow EMA (a = 0.02) is ~68, a drift of ~0.69 > 0.15: one level up.
        let mut states = Vec::new();
        for _ in 0..10 {
            states.push(d.record_latency(150.0));
        }
        assert_eq!(states[0], OverloadState::Healthy);
        assert_eq!(states[9], OverloadState::Stressed, "{states:?}");
    }

    #[test]
    fn resources_and_config_validation() {
        let mut d = det();
        assert_eq!(d.record_resources(71.0, 10.0), OverloadState::Busy);
        assert_eq!(d.record_resources(10.0, 96.0), OverloadState::Overloaded);
        // Exactly at a bound is not over it (strict >).
        let mut e = det();
        assert_eq!(e.record_resources(70.0, 70.0), OverloadState::Healthy);
        let bad = OverloadConfig {
            cpu_thresholds: (0.9, 0.8, 0.95),
            ..OverloadConfig::default()
        };
        assert_eq!(OverloadDetector::new(bad).err(), Some(BadThresholds));
    }

    #[test]
    fn the_shed_table_never_sheds_critical_and_is_monotone() {
        use OverloadState::*;
        let states = [Healthy, Busy, Stressed, Overloaded];
        let mut s = LoadShedder::default();
        for (i, st) in states.iter().enumerate() {
            assert!(!s.should_shed(*st, Priority::Critical));
            for p in Priority::ALL {
                let shed = shed_threshold(*st).is_some_and(|t| p >= t);
                // Monotone: shed here => every lower priority here, and in every
                // worse state.
                if shed {
                    for q in Priority::ALL.iter().filter(|q| **q > p) {
                        assert!(shed_threshold(*st).is_some_and(|t| *q >= t));
                    }
                    for worse in &states[i..] {
                        assert!(shed_threshold(*worse).is_some_and(|t| p >= t));
                    }
                }
            }
        }
        assert!(s.should_shed(Busy, Priority::Low));
        assert!(!s.should_shed(Busy, Priority::Normal));
        assert!(s.should_shed(Stressed, Priority::Normal));
        assert!(s.should_shed(Overloaded, Priority::High));
        assert_eq!(s.shed, [0, 1, 1, 1]);
        // The manager's pending ratio: < 0.5, < 0.7, < 0.9 of 1000.
        assert_eq!(pending_state(499, 1000), Healthy);
        assert_eq!(pending_state(500, 1000), Busy);
        assert_eq!(pending_state(700, 1000), Stressed);
        assert_eq!(pending_state(900, 1000), Overloaded);
    }
}
