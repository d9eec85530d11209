//! Bounded execution (AD-32, backpressure.md §5): concurrently executing requests are
//! capped per priority and in total; Critical is always admitted (and counted).

use super::class::Priority;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InFlightLimits {
    /// Per priority (index = priority value); 0 = unlimited. Critical is never limited.
    pub per_priority: [usize; 4],
    pub global: usize,
}

impl InFlightLimits {
    /// `PENDING_RESPONSE_*` defaults: high 500, normal 300, low 200, global 1000.
    pub const DEFAULT: InFlightLimits = InFlightLimits {
        per_priority: [0, 500, 300, 200],
        global: 1000,
    };
    /// Recommended per node kind (global / high / normal / low).
    pub const GATE: InFlightLimits = InFlightLimits {
        per_priority: [0, 1000, 600, 400],
        global: 2000,
    };
    pub const MANAGER: InFlightLimits = InFlightLimits {
        per_priority: [0, 2500, 1500, 1000],
        global: 5000,
    };
    pub const WORKER: InFlightLimits = InFlightLimits {
        per_priority: [0, 250, 150, 100],
        global: 500,
    };
}

#[derive(Clone, Debug)]
pub struct InFlightTracker {
    limits: InFlightLimits,
    in_flight: [usize; 4],
    pub acquired: [u64; 4],
    pub shed: [u64; 4],
}

impl InFlightTracker {
    pub fn new(limits: InFlightLimits) -> InFlightTracker {
        InFlightTracker {
            limits,
            in_flight: [0; 4],
            acquired: [0; 4],
            shed: [0; 4],
        }
    }

    pub fn in_flight(&self, p: Priority) -> usize {
        self.in_flight[p.index()]
    }
    pub fn total(&self) -> usize {
        self.in_flight.iter().sum()
    }

    /// Admit a request of priority `p`, or refuse it (counted as shed).
    pub fn try_acquire(&mut self, p: Priority) -> bool {
        let i = p.index();
        if p != Priority::Critical {
            let limit = self.limits.per_priority[i];
            if self.total() >= self.limits.global || (limit != 0 && self.in_flight[i] >= limit) {
                self.shed[i] += 1;
                return false;
            }
        }
        self.in_flight[i] += 1;
        self.acquired[i] += 1;
        true
    }

    /// Never below zero.
    pub fn release(&mut self, p: Priority) {
        let c = &mut self.in_flight[p.index()];
        *c = c.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_priority_and_global_caps_and_critical_always_passes() {
        let mut t = InFlightTracker::new(InFlightLimits::DEFAULT);
        for _ in 0..200 {
            assert!(t.try_acquire(Priority::Low));
        }
        assert!(!t.try_acquire(Priority::Low), "low capped at 200");
        for _ in 0..300 {
            assert!(t.try_acquire(Priority::Normal));
        }
        assert!(!t.try_acquire(Priority::Normal), "normal capped at 300");
        for _ in 0..500 {
            assert!(t.try_acquire(Priority::High));
        }
        // 1000 in flight: the global cap refuses everything but Critical.
        assert_eq!(t.total(), 1000);
        assert!(!t.try_acquire(Priority::High));
        for _ in 0..50 {
            assert!(t.try_acquire(Priority::Critical));
        }
        assert_eq!(t.shed, [0, 1, 1, 1]);
        // Critical in flight counts toward the global cap.
        t.release(Priority::High);
        assert!(
            !t.try_acquire(Priority::High),
            "1049 in flight still >= 1000"
        );
        for _ in 0..50 {
            t.release(Priority::Critical);
        }
        assert!(t.try_acquire(Priority::High));
        // Never negative.
        let mut u = InFlightTracker::new(InFlightLimits::WORKER);
        u.release(Priority::Low);
        assert_eq!(u.in_flight(Priority::Low), 0);
        assert_eq!(InFlightLimits::MANAGER.global, 5000);
    }
}
