//! Datacenter health (AD-16, routing.md §1): four buckets, best first. Routing never
//! picks UNHEALTHY, and never a lower bucket while a higher one has a candidate.

use serde::{Deserialize, Serialize};

/// Ordered best to worst: `Healthy < Busy < Degraded < Unhealthy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum DcHealth {
    Healthy,
    Busy,
    Degraded,
    Unhealthy,
}

impl DcHealth {
    /// The score weight of a bucket (HEAD's severity; UNHEALTHY is never scored).
    pub fn severity_weight(self) -> f64 {
        match self {
            DcHealth::Healthy => 1.0,
            DcHealth::Busy => 1.5,
            DcHealth::Degraded => 3.0,
            DcHealth::Unhealthy => f64::INFINITY,
        }
    }
}

/// What a gate knows of a DC from its managers' heartbeats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DcView {
    pub alive_managers: u32,
    /// `max(known, configured)`.
    pub total_managers: u32,
    pub worker_count: u32,
    pub healthy_worker_count: u32,
    pub available_cores: u32,
}

/// AD-16's rule, in order: no alive manager or no worker → UNHEALTHY; fewer than a
/// majority of healthy workers or of alive managers → DEGRADED; no free core → BUSY
/// (jobs queue: still routable, Q1 takes AD-16's side); else HEALTHY.
pub fn classify(v: &DcView) -> DcHealth {
    if v.alive_managers == 0 || v.worker_count == 0 {
        DcHealth::Unhealthy
    } else if v.healthy_worker_count < v.worker_count / 2 + 1
        || v.alive_managers < v.total_managers / 2 + 1
    {
        DcHealth::Degraded
    } else if v.available_cores == 0 {
        DcHealth::Busy
    } else {
        DcHealth::Healthy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ad16_in_order_with_majorities() {
        let ok = DcView {
            alive_managers: 3,
            total_managers: 3,
            worker_count: 10,
            healthy_worker_count: 10,
            available_cores: 8,
        };
        assert_eq!(classify(&ok), DcHealth::Healthy);
        assert_eq!(
            classify(&DcView {
                available_cores: 0,
                ..ok
            }),
            DcHealth::Busy
        );
        // 5 of 10 healthy workers is not a majority (10 / 2 + 1 = 6).
        assert_eq!(
            classify(&DcView {
                healthy_worker_count: 5,
                ..ok
            }),
            DcHealth::Degraded
        );
        assert_eq!(
            classify(&DcView {
                healthy_worker_count: 6,
                ..ok
            }),
            DcHealth::Healthy
        );
        // 1 of 3 managers alive (3 / 2 + 1 = 2): DEGRADED, before BUSY.
        assert_eq!(
            classify(&DcView {
                alive_managers: 1,
                available_cores: 0,
                ..ok
            }),
            DcHealth::Degraded
        );
        assert_eq!(
            classify(&DcView {
                alive_managers: 0,
                ..ok
            }),
            DcHealth::Unhealthy
        );
        assert_eq!(
            classify(&DcView {
                worker_count: 0,
                ..ok
            }),
            DcHealth::Unhealthy
        );
        assert!(DcHealth::Healthy < DcHealth::Busy && DcHealth::Busy < DcHealth::Degraded);
        assert_eq!(DcHealth::Degraded.severity_weight(), 3.0);
    }
}
