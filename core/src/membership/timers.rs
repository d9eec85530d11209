//! The machine's timers: absolute deadlines in one binary heap ordered by (instant,
//! sequence), with lazy cancellation. Contiguous 24-byte entries: a node that tracks
//! 1000 unconfirmed peers holds 1000 confirmation timers, so this is memory that counts.
//! A late Tick pops every due entry in order.

use crate::time::Instant;
use crate::FxHashSet;
use core::cmp::Reverse;
use std::collections::BinaryHeap;

/// Identifies a scheduled timer, for cancellation.
pub type TimerKey = u64;

#[derive(Clone, Debug)]
pub struct TimerQueue<T: Ord> {
    heap: BinaryHeap<Reverse<(Instant, TimerKey, T)>>,
    cancelled: FxHashSet<TimerKey>,
    next_key: TimerKey,
}

impl<T: Ord + Copy> Default for TimerQueue<T> {
    fn default() -> Self {
        TimerQueue {
            heap: BinaryHeap::new(),
            cancelled: FxHashSet::default(),
            next_key: 0,
        }
    }
}

impl<T: Ord + Copy> TimerQueue<T> {
    pub fn at(&mut self, when: Instant, timer: T) -> TimerKey {
        self.next_key += 1;
        self.heap.push(Reverse((when, self.next_key, timer)));
        self.next_key
    }

    /// Cancel a timer that has not fired yet (a key that already fired is ignored).
    pub fn cancel(&mut self, key: TimerKey) {
        if !self.heap.is_empty() && key <= self.next_key {
            self.cancelled.insert(key);
            self.purge_head();
        }
    }

    fn purge_head(&mut self) {
        if self.cancelled.is_empty() {
            return;
        }
        while let Some(Reverse((_, key, _))) = self.heap.peek() {
            if !self.cancelled.remove(key) {
                break;
            }
            self.heap.pop();
        }
    }

    /// The next live timer due at or before `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<T> {
        self.purge_head();
        match self.heap.peek() {
            Some(Reverse((when, _, _))) if *when <= now => {
                let Reverse((_, _, timer)) = self.heap.pop().expect("peeked");
                self.purge_head();
                Some(timer)
            }
            _ => None,
        }
    }

    /// When the next live timer is due.
    pub fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((when, _, _))| *when)
    }

    pub fn len(&self) -> usize {
        self.heap.len() - self.cancelled.len().min(self.heap.len())
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn clear(&mut self) {
        self.heap.clear();
        self.cancelled.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_in_order_and_skips_cancelled() {
        let mut q: TimerQueue<u8> = TimerQueue::default();
        let t = |ms| Instant::from_millis(ms);
        q.at(t(30), 3);
        let k = q.at(t(10), 1);
        q.at(t(20), 2);
        q.at(t(20), 4);
        q.cancel(k);
        assert_eq!(q.next(), Some(t(20)), "a cancelled head is not reported");
        assert_eq!(q.pop_due(t(25)), Some(2));
        assert_eq!(q.pop_due(t(25)), Some(4), "same instant: scheduling order");
        assert_eq!(q.pop_due(t(25)), None);
        assert_eq!(q.pop_due(t(30)), Some(3));
        assert!(q.is_empty());
    }
}
