//! The gate's view of each DC's backpressure (AD-37, backpressure.md §9): the latest
//! level each manager signalled in its heartbeat, and per DC the worst of them (the
//! original dropped the level from heartbeats, Q7, so gates always saw NONE).

use super::stats::Level;
use crate::id::{Addr, DcId};
use std::collections::BTreeMap;

#[derive(Clone, Debug, Default)]
pub struct GateBackpressure {
    managers: BTreeMap<Addr, (DcId, Level)>,
    dc_level: BTreeMap<DcId, Level>,
    /// The largest delay any manager suggested.
    pub delay_ms: u32,
}

impl GateBackpressure {
    /// A manager's heartbeat. Returns the DC's new level if it changed.
    pub fn on_heartbeat(
        &mut self,
        dc: DcId,
        manager: Addr,
        level: Level,
        delay_ms: u32,
    ) -> Option<Level> {
        let before = self.dc_level(dc);
        if level == Level::None && delay_ms == 0 {
            self.managers.insert(manager, (dc, Level::None));
        } else {
            self.managers.insert(manager, (dc, level));
            self.delay_ms = self.delay_ms.max(delay_ms);
        }
        self.recompute(dc);
        let after = self.dc_level(dc);
        (after != before).then_some(after)
    }

    /// A manager left (its level no longer counts).
    pub fn remove(&mut self, manager: Addr) -> Option<(DcId, Level)> {
        let (dc, _) = self.managers.remove(&manager)?;
        let before = self.dc_level(dc);
        self.recompute(dc);
        let after = self.dc_level(dc);
        (after != before).then_some((dc, after))
    }

    fn recompute(&mut self, dc: DcId) {
        let worst = self
            .managers
            .values()
            .filter(|(d, _)| *d == dc)
            .map(|(_, l)| *l)
            .max();
        match worst {
            Some(l) => self.dc_level.insert(dc, l),
            None => self.dc_level.remove(&dc),
        };
    }

    /// None if unknown.
    pub fn dc_level(&self, dc: DcId) -> Level {
        self.dc_level.get(&dc).copied().unwrap_or(Level::None)
    }

    pub fn max_level(&self) -> Level {
        self.dc_level.values().copied().max().unwrap_or(Level::None)
    }

    /// Non-critical DATA forwarded toward `dc` is dropped at REJECT.
    pub fn should_throttle_forwarded(&self, dc: DcId) -> bool {
        self.dc_level(dc) >= Level::Reject
    }

    pub fn len(&self) -> usize {
        self.managers.len()
    }
    pub fn is_empty(&self) -> bool {
        self.managers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dc_is_as_backed_up_as_its_worst_manager() {
        let mut g = GateBackpressure::default();
        let (a, b) = (Addr::from_u32(1), Addr::from_u32(2));
        assert_eq!(g.dc_level(DcId(0)), Level::None);
        assert_eq!(
            g.on_heartbeat(DcId(0), a, Level::Batch, 500),
            Some(Level::Batch)
        );
        assert_eq!(g.on_heartbeat(DcId(0), b, Level::Throttle, 100), None);
        assert_eq!(
            g.on_heartbeat(DcId(1), Addr::from_u32(3), Level::Reject, 1000),
            Some(Level::Reject)
        );
        assert_eq!(g.max_level(), Level::Reject);
        assert!(g.should_throttle_forwarded(DcId(1)));
        assert!(!g.should_throttle_forwarded(DcId(0)));
        // Manager a recovers: the DC falls to b's level; b leaves: NONE.
        assert_eq!(
            g.on_heartbeat(DcId(0), a, Level::None, 0),
            Some(Level::Throttle)
        );
        assert_eq!(g.remove(b), Some((DcId(0), Level::None)));
        assert_eq!(g.dc_level(DcId(0)), Level::None);
        assert_eq!(g.delay_ms, 1000);
    }
}
