//! The manager's stats buffer and its backpressure level (AD-23, backpressure.md §6):
//! progress rates land in a bounded hot tier; every 10 s hot entries older than 60 s are
//! folded into one warm aggregate, every 60 s warm entries older than an hour into one
//! cold aggregate. The level is a pure function of the hot tier's fill: 70 % THROTTLE,
//! 85 % BATCH, 95 % REJECT (no hysteresis). Promotion runs on the clock, not inside an
//! accepted record, so a buffer at REJECT drains once records stop (the original's
//! REJECT latch, Q6).

use crate::time::{millis, secs, Instant};
use core::time::Duration;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Level {
    None = 0,
    Throttle = 1,
    Batch = 2,
    Reject = 3,
}

impl Level {
    pub const ALL: [Level; 4] = [Level::None, Level::Throttle, Level::Batch, Level::Reject];
    pub fn index(self) -> usize {
        self as usize
    }
}

/// What a level asks of the senders (§6 "Signal").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Signal {
    pub level: Level,
    pub suggested_delay_ms: u32,
    pub batch_only: bool,
    pub drop_non_critical: bool,
}

impl Signal {
    pub fn of(level: Level) -> Signal {
        let (suggested_delay_ms, batch_only, drop_non_critical) = match level {
            Level::None => (0, false, false),
            Level::Throttle => (100, false, false),
            Level::Batch => (500, true, false),
            Level::Reject => (1000, true, true),
        };
        Signal {
            level,
            suggested_delay_ms,
            batch_only,
            drop_non_critical,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct StatsConfig {
    pub hot_max: usize,
    pub hot_max_age: Duration,
    pub warm_max: usize,
    pub warm_max_age: Duration,
    pub cold_max: usize,
    pub throttle: f64,
    pub batch: f64,
    pub reject: f64,
    /// Hot -> warm promotion period, and warm -> cold.
    pub hot_promote_every: Duration,
    pub warm_promote_every: Duration,
}

impl Default for StatsConfig {
    fn default() -> Self {
        StatsConfig {
            hot_max: 1000,
            hot_max_age: secs(60),
            warm_max: 360,
            warm_max_age: secs(3600),
            cold_max: 1440,
            throttle: 0.70,
            batch: 0.85,
            reject: 0.95,
            hot_promote_every: secs(10),
            warm_promote_every: secs(60),
        }
    }
}

/// One sample, or an aggregate of many.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Entry {
    pub at: Instant,
    pub value: f64,
    pub count: u64,
    pub min: f64,
    pub max: f64,
    pub sum: f64,
}

impl Entry {
    fn sample(value: f64, at: Instant) -> Entry {
        Entry {
            at,
            value,
            count: 1,
            min: value,
            max: value,
            sum: value,
        }
    }

    /// count = Σcount, sum = Σsum, min/max of the mins/maxes, value = sum / count, at =
    /// the newest.
    pub fn aggregate(entries: impl IntoIterator<Item = Entry>) -> Option<Entry> {
        entries
            .into_iter()
            .reduce(|a, b| Entry {
                at: a.at.max(b.at),
                value: 0.0,
                count: a.count + b.count,
                min: a.min.min(b.min),
                max: a.max.max(b.max),
                sum: a.sum + b.sum,
            })
            .map(|mut e| {
                e.value = e.sum / e.count as f64;
                e
            })
    }
}

#[derive(Clone, Debug)]
pub struct StatsBuffer {
    cfg: StatsConfig,
    hot: VecDeque<Entry>,
    warm: VecDeque<Entry>,
    cold: VecDeque<Entry>,
    next_hot_promotion: Instant,
    next_warm_promotion: Instant,
    pub accepted: u64,
    pub dropped: u64,
    /// Entries lost to a full hot tier (only without backpressure).
    pub overwritten: u64,
}

impl StatsBuffer {
    pub fn new(cfg: StatsConfig, now: Instant) -> StatsBuffer {
        StatsBuffer {
            next_hot_promotion: now + cfg.hot_promote_every,
            next_warm_promotion: now + cfg.warm_promote_every,
            cfg,
            hot: VecDeque::new(),
            warm: VecDeque::new(),
            cold: VecDeque::new(),
            accepted: 0,
            dropped: 0,
            overwritten: 0,
        }
    }

    pub fn fill(&self) -> f64 {
        self.hot.len() as f64 / self.cfg.hot_max.max(1) as f64
    }

    /// The level, from the fill alone.
    pub fn level(&self) -> Level {
        level_of(&self.cfg, self.fill())
    }

    pub fn signal(&self) -> Signal {
        Signal::of(self.level())
    }

    pub fn hot_len(&self) -> usize {
        self.hot.len()
    }
    pub fn tiers(&self) -> (usize, usize, usize) {
        (self.hot.len(), self.warm.len(), self.cold.len())
    }

    /// Record one sample. Refused (counted dropped) at REJECT; the hot tier is a bounded
    /// ring either way.
    pub fn record(&mut self, value: f64, now: Instant) -> bool {
        if self.level() == Level::Reject {
            self.dropped += 1;
            return false;
        }
        if self.hot.len() >= self.cfg.hot_max {
            self.hot.pop_front();
        }
        self.hot.push_back(Entry::sample(value, now));
        self.accepted += 1;
        true
    }

    /// The ablation baseline (backpressure off): always accept, overwriting the oldest
    /// hot entry when full (counted as `overwritten`).
    pub fn record_unbounded(&mut self, value: f64, now: Instant) {
        if self.hot.len() >= self.cfg.hot_max {
            self.hot.pop_front();
            self.overwritten += 1;
        }
        self.hot.push_back(Entry::sample(value, now));
        self.accepted += 1;
    }

    pub fn next_deadline(&self) -> Instant {
        self.next_hot_promotion.min(self.next_warm_promotion)
    }

    /// Promotions due at `now` (call on every tick).
    pub fn tick(&mut self, now: Instant) {
        if now >= self.next_hot_promotion {
            self.next_hot_promotion = now + self.cfg.hot_promote_every;
            let cutoff = self.cfg.hot_max_age;
            let old = self
                .hot
                .iter()
                .take_while(|e| now.saturating_since(e.at) > cutoff)
                .count();
            if let Some(agg) = Entry::aggregate(self.hot.drain(..old)) {
                push_bounded(&mut self.warm, agg, self.cfg.warm_max);
            }
        }
        if now >= self.next_warm_promotion {
            self.next_warm_promotion = now + self.cfg.warm_promote_every;
            let cutoff = self.cfg.warm_max_age;
            let old = self
                .warm
                .iter()
                .take_while(|e| now.saturating_since(e.at) > cutoff)
                .count();
            if let Some(agg) = Entry::aggregate(self.warm.drain(..old)) {
                push_bounded(&mut self.cold, agg, self.cfg.cold_max);
            }
        }
    }

    /// Everything kept, as one aggregate.
    pub fn summary(&self) -> Option<Entry> {
        Entry::aggregate(
            self.cold
                .iter()
                .chain(self.warm.iter())
                .chain(self.hot.iter())
                .copied(),
        )
    }
}

fn push_bounded(q: &mut VecDeque<Entry>, e: Entry, max: usize) {
    if q.len() >= max {
        q.pop_front();
    }
    q.push_back(e);
}

/// `>= 0.95` Reject, `>= 0.85` Batch, `>= 0.70` Throttle, else None.
pub fn level_of(cfg: &StatsConfig, fill: f64) -> Level {
    if fill >= cfg.reject {
        Level::Reject
    } else if fill >= cfg.batch {
        Level::Batch
    } else if fill >= cfg.throttle {
        Level::Throttle
    } else {
        Level::None
    }
}

/// The delay a level stretches flushes by (for tests and reports).
pub fn delay_of(level: Level) -> Duration {
    millis(Signal::of(level).suggested_delay_ms as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn levels_at_70_85_95_percent_and_the_signals() {
        let cfg = StatsConfig::default();
        let t = Instant::ZERO;
        let mut b = StatsBuffer::new(cfg.clone(), t);
        let mut seen = Vec::new();
        for i in 0..1000 {
            let level = b.level();
            if seen.last() != Some(&(level, b.hot_len())) && seen.iter().all(|(l, _)| *l != level) {
                seen.push((level, b.hot_len()));
            }
            b.record(i as f64, t);
        }
        assert_eq!(
            seen,
            vec![
                (Level::None, 0),
                (Level::Throttle, 700),
                (Level::Batch, 850),
                (Level::Reject, 950)
            ]
        );
        // At REJECT records are refused: the hot tier stops at 950 of 1000.
        assert_eq!(b.hot_len(), 950);
        assert_eq!(b.dropped, 50);
        assert_eq!(
            Signal::of(Level::Throttle),
            Signal {
                level: Level::Throttle,
                suggested_delay_ms: 100,
                batch_only: false,
                drop_non_critical: false
            }
        );
        assert_eq!(Signal::of(Level::Batch).suggested_delay_ms, 500);
        assert!(Signal::of(Level::Batch).batch_only);
        let r = Signal::of(Level::Reject);
        assert_eq!(
            (r.suggested_delay_ms, r.batch_only, r.drop_non_critical),
            (1000, true, true)
        );
    }

    /// Q6: promotion runs on the clock, so a buffer at REJECT drains once records stop:
    /// entries older than 60 s leave the hot tier at the next 10 s promotion.
    #[test]
    fn a_full_buffer_drains_on_the_clock_within_70_s() {
        let t = Instant::ZERO;
        let mut b = StatsBuffer::new(StatsConfig::default(), t);
        for _ in 0..1000 {
            b.record(1.0, t + secs(1));
        }
        assert_eq!(b.level(), Level::Reject);
        let mut now = t;
        while b.level() != Level::None {
            now = b.next_deadline();
            b.tick(now);
        }
        // Written at 1 s, older than 60 s after 61 s: promoted at the 70 s tick.
        assert_eq!(now, t + secs(70));
        assert_eq!(b.tiers(), (0, 1, 0));
        let s = b.summary().unwrap();
        assert_eq!((s.count, s.value), (950, 1.0));
    }

    #[test]
    fn aggregates_fold_counts_sums_and_extremes() {
        let e = |v: f64, s: u64| Entry::sample(v, Instant::ZERO + secs(s));
        let a = Entry::aggregate([e(1.0, 1), e(3.0, 5), e(2.0, 3)]).unwrap();
        assert_eq!(
            (a.count, a.sum, a.min, a.max, a.value),
            (3, 6.0, 1.0, 3.0, 2.0)
        );
        assert_eq!(a.at, Instant::ZERO + secs(5));
        let b = Entry::aggregate([a, e(6.0, 9)]).unwrap();
        assert_eq!((b.count, b.value), (4, 3.0));
    }

    proptest! {
        /// Issue 6, acceptance 4: whatever the sequence of records and ticks, the level
        /// is the function of the hot fill (no hidden state), and the hot tier never goes
        /// past the REJECT bound.
        #[test]
        fn the_level_is_a_function_of_fill_and_reject_is_never_skipped(
            ops in proptest::collection::vec((0u8..4, 0u64..30_000), 1..3000)
        ) {
            let cfg = StatsConfig { hot_max: 200, ..StatsConfig::default() };
            let mut now = Instant::ZERO;
            let mut b = StatsBuffer::new(cfg.clone(), now);
            let bound = (cfg.hot_max as f64 * cfg.reject).ceil() as usize;
            for (op, dt) in ops {
                now = now + Duration::from_millis(dt / 100);
                if op == 0 {
                    b.tick(now);
                } else {
                    let before = b.level();
                    let took = b.record(op as f64, now);
                    prop_assert_eq!(took, before != Level::Reject);
                }
                prop_assert_eq!(b.level(), level_of(&cfg, b.fill()));
                prop_assert!(b.hot_len() <= bound, "hot {} > {}", b.hot_len(), bound);
            }
        }
    }
}
