//! The simulator's view of backpressure (issue 6): time each manager spends at each
//! level, messages per class (sent, batched, dropped), what was shed, the managers'
//! buffer fill, and when every level was last back to NONE.

use meridian_core::backpressure::class::{body_class, MessageClass};
use meridian_core::backpressure::stats::Level;
use meridian_core::wire::{self, Channel};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct ClassCounts {
    pub sent: u64,
    pub batched: u64,
    pub dropped: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct BackpressureReport {
    /// Per manager: milliseconds at NONE, THROTTLE, BATCH, REJECT.
    pub level_ms: BTreeMap<String, [u64; 4]>,
    /// Per class (control, dispatch, data, telemetry): messages sent; for data, progress
    /// updates folded into a batch and dropped at REJECT too.
    pub updates: BTreeMap<String, ClassCounts>,
    /// Job messages shed on arrival, per priority (critical, high, normal, low).
    pub shed: [u64; 4],
    /// CONTROL messages shed: must be 0.
    pub control_shed: u64,
    /// Per manager: the largest stats-buffer fill seen (0..1).
    pub buffer_max_fill: BTreeMap<String, f64>,
    /// Stats entries lost to a full buffer (only ever non-zero with backpressure off).
    pub buffer_overwritten: u64,
    /// Workers still flushing below NONE when the run ended.
    pub workers_held_back_at_end: usize,
    /// When every manager's level and every worker's flush level was last back to NONE
    /// (None: never raised).
    pub recovered_at_ms: Option<u64>,
    /// The worst level any manager reached.
    pub max_level: String,
}

#[derive(Debug, Default)]
pub struct Tracker {
    /// Per node: (level, since µs), for managers that reported a level.
    current: BTreeMap<usize, (Level, u64)>,
    level_us: BTreeMap<usize, [u64; 4]>,
    max_fill: BTreeMap<usize, f64>,
    updates: [ClassCounts; 4],
    worker_level: BTreeMap<usize, Level>,
    raised: usize,
    recovered_at: Option<u64>,
    max_level: Option<Level>,
}

fn class_name(c: MessageClass) -> &'static str {
    match c {
        MessageClass::Control => "control",
        MessageClass::Dispatch => "dispatch",
        MessageClass::Data => "data",
        MessageClass::Telemetry => "telemetry",
    }
}

impl Tracker {
    /// A message left a node: datagrams are membership (CONTROL); frames are classed by
    /// their body.
    pub fn on_send(&mut self, bytes: &[u8], frame: bool) {
        let class = if frame {
            match wire::decode(bytes, Channel::Frame) {
                Ok(env) => body_class(&env.body),
                Err(_) => return,
            }
        } else {
            MessageClass::Control
        };
        self.updates[class.index()].sent += 1;
    }

    pub fn on_flush(&mut self, batched: u64, dropped: u64) {
        let d = &mut self.updates[MessageClass::Data.index()];
        d.batched += batched;
        d.dropped += dropped;
    }

    /// A worker's flush level (AD-37 §8): counted with the managers' for recovery.
    pub fn on_flush_level(&mut self, node: usize, level: Level, now: u64) {
        let prev = self.worker_level.insert(node, level).unwrap_or(Level::None);
        self.raise(prev, level, now);
    }

    fn raise(&mut self, prev: Level, level: Level, now: u64) {
        match (prev == Level::None, level == Level::None) {
            (true, false) => self.raised += 1,
            (false, true) => {
                self.raised -= 1;
                if self.raised == 0 {
                    self.recovered_at = Some(now);
                }
            }
            _ => {}
        }
    }

    /// Node `node` stopped (crashed or left): it holds no level any more, as its
    /// restart begins at NONE; a level it held counts down for the recovery.
    pub fn on_stop(&mut self, node: usize, now: u64) {
        if let Some((level, since)) = self.current.get(&node).copied() {
            if level != Level::None {
                self.level_us.entry(node).or_default()[level.index()] += now - since;
                self.current.insert(node, (Level::None, now));
                self.raise(level, Level::None, now);
            }
        }
        if let Some(level) = self.worker_level.get_mut(&node) {
            let prev = core::mem::replace(level, Level::None);
            self.raise(prev, Level::None, now);
        }
    }

    /// Workers whose flush level is not NONE now.
    pub fn workers_held_back(&self) -> usize {
        self.worker_level
            .values()
            .filter(|l| **l != Level::None)
            .count()
    }

    pub fn on_level(&mut self, node: usize, level: Level, fill: f64, now: u64) {
        self.on_fill(node, fill);
        self.max_level = self.max_level.max(Some(level));
        let (prev, since) = self.current.get(&node).copied().unwrap_or((Level::None, 0));
        self.level_us.entry(node).or_default()[prev.index()] += now - since;
        self.current.insert(node, (level, now));
        self.raise(prev, level, now);
    }

    pub fn on_fill(&mut self, node: usize, fill: f64) {
        let m = self.max_fill.entry(node).or_insert(0.0);
        *m = m.max(fill);
    }

    /// The report at `end`; `names` are the nodes' names, `shed` and `overwritten` the
    /// nodes' counters summed.
    pub fn report(
        &self,
        end: u64,
        names: &[String],
        shed: [u64; 4],
        overwritten: u64,
    ) -> BackpressureReport {
        let mut level_ms = BTreeMap::new();
        for &node in self.max_fill.keys() {
            let mut us = self.level_us.get(&node).copied().unwrap_or_default();
            let (level, since) = self.current.get(&node).copied().unwrap_or((Level::None, 0));
            us[level.index()] += end - since;
            level_ms.insert(names[node].clone(), us.map(|x| x / 1000));
        }
        BackpressureReport {
            level_ms,
            updates: MessageClass::ALL
                .iter()
                .map(|c| (class_name(*c).to_string(), self.updates[c.index()]))
                .collect(),
            shed,
            control_shed: shed[0],
            buffer_max_fill: self
                .max_fill
                .iter()
                .map(|(n, f)| (names[*n].clone(), (f * 1e4).round() / 1e4))
                .collect(),
            buffer_overwritten: overwritten,
            workers_held_back_at_end: self.workers_held_back(),
            recovered_at_ms: self.recovered_at.map(|t| t / 1000),
            max_level: format!("{:?}", self.max_level.unwrap_or(Level::None)),
        }
    }
}
