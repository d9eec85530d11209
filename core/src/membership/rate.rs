//! Per-sender inbound rate limiting (membership.md §5): a token bucket per source
//! address, `burst` tokens, refilled at `rate` a second; a datagram that finds its
//! sender's bucket empty is dropped before it is decoded further.
//!
//! A node of a large cluster hears from hundreds of senders a minute, so what the table
//! keeps is chosen with care:
//! - A bucket idle for `burst / rate` seconds has refilled completely: exactly the state
//!   a new bucket starts in, so forgetting it changes no decision. Such buckets are
//!   dropped at every sweep (the machine calls [`RateLimiter::sweep`] every reconnect
//!   interval) and, before the table would grow, on the spot (at most every eighth of
//!   the refill time). So the table holds the senders of the last `burst / rate` seconds
//!   and a little more, not of the last two sweeps.
//! - Senders whose address packs inline (IPv4 and a port, the simulator's ids) are keyed
//!   by that packed form (a `u64`): a bucket is 24 bytes instead of 40.
//! - The table is bounded by `max_senders` all the same: when every entry is recent, the
//!   least recently active tenth goes.

use crate::id::{Addr, PackedAddr};
use crate::time::{CompactInstant, Instant};
use crate::FxHashMap;
use core::time::Duration;

/// One token bucket (also the OOB channel's probe and answer limits).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bucket {
    tokens: f64,
    last: CompactInstant,
}

impl Bucket {
    /// A bucket holding `burst` tokens at `now`.
    pub fn full(burst: f64, now: Instant) -> Bucket {
        Bucket {
            tokens: burst,
            last: CompactInstant::new(now),
        }
    }

    /// Refill for the time since the last datagram, then take a token if there is one.
    pub fn take(&mut self, now: Instant, burst: f64, rate: f64) -> bool {
        let elapsed = crate::time::micros_f64(now.saturating_since(self.last.get())) / 1e6;
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.last = CompactInstant::new(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The token buckets of one membership machine.
#[derive(Clone, Debug, Default)]
pub(crate) struct RateLimiter {
    /// Senders whose address packs inline, by the packed bytes.
    packed: FxHashMap<u64, Bucket>,
    /// The rest (IPv6), by address.
    long: FxHashMap<Addr, Bucket>,
    /// When the last sweep ran: a full table is swept again before it grows only
    /// once an eighth of the refill time has passed (a table at its capacity would
    /// otherwise be swept for every new sender, in vain when none has refilled).
    swept_at: Option<Instant>,
}

impl RateLimiter {
    pub fn len(&self) -> usize {
        self.packed.len() + self.long.len()
    }

    /// One datagram from `from` at `now`: whether it may be processed. `max_senders`
    /// bounds the table.
    pub fn admit(
        &mut self,
        from: Addr,
        now: Instant,
        burst: f64,
        rate: f64,
        max_senders: usize,
    ) -> bool {
        let key = PackedAddr::pack(&from).map(PackedAddr::to_u64);
        // A known sender (nearly every datagram) costs one lookup.
        let known = match key {
            Some(k) => self.packed.get_mut(&k),
            None => self.long.get_mut(&from),
        };
        if let Some(b) = known {
            return b.take(now, burst, rate);
        }
        let full = match key {
            Some(_) => self.packed.len() == self.packed.capacity(),
            None => self.long.len() == self.long.capacity(),
        };
        let swept_lately = match (self.swept_at, refill_time(burst, rate)) {
            (Some(at), Some(refill)) => now.saturating_since(at) < refill / 8,
            _ => false,
        };
        if (full && !swept_lately) || self.len() >= max_senders {
            self.sweep(now, burst, rate);
        }
        if self.len() >= max_senders {
            self.evict_least_recent(max_senders / 10 + 1);
        }
        let mut fresh = Bucket::full(burst, now);
        let admitted = fresh.take(now, burst, rate);
        match key {
            Some(k) => self.packed.insert(k, fresh),
            None => self.long.insert(from, fresh),
        };
        admitted
    }

    /// Forget every bucket that has refilled completely by `now` (see the module doc).
    pub fn sweep(&mut self, now: Instant, burst: f64, rate: f64) {
        let Some(idle) = refill_time(burst, rate) else {
            return;
        };
        self.swept_at = Some(now);
        let recent = |b: &mut Bucket| now.saturating_since(b.last.get()) < idle;
        self.packed.retain(|_, b| recent(b));
        self.long.retain(|_, b| recent(b));
    }

    /// Drop the `n` least recently active buckets (ties by address: deterministic).
    fn evict_least_recent(&mut self, n: usize) {
        let mut by_age: Vec<(Instant, Addr)> = self
            .packed
            .iter()
            .map(|(k, b)| (b.last.get(), PackedAddr::from_u64(*k).unpack()))
            .chain(self.long.iter().map(|(a, b)| (b.last.get(), *a)))
            .collect();
        by_age.sort_unstable();
        for (_, a) in by_age.into_iter().take(n) {
            match PackedAddr::pack(&a) {
                Some(p) => self.packed.remove(&p.to_u64()),
                None => self.long.remove(&a),
            };
        }
    }
}

/// The time a bucket takes to refill from empty, `burst / rate`, rounded up to the
/// microsecond so that a bucket this idle has surely refilled (`None`: it never does).
fn refill_time(burst: f64, rate: f64) -> Option<Duration> {
    let secs = burst / rate;
    (rate > 0.0 && secs.is_finite() && secs >= 0.0)
        .then(|| Duration::from_micros((secs * 1e6).ceil() as u64 + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::secs;

    const BURST: f64 = 100.0;
    const RATE: f64 = 10.0;

    fn v6(k: u8) -> Addr {
        Addr::new(&[k; 18]).unwrap()
    }

    /// A sender gets its burst at once, then `rate` a second (the spec's 100 and 10/s).
    #[test]
    fn a_sender_gets_its_burst_then_its_rate() {
        for from in [Addr::from_u32(7), v6(7)] {
            let mut r = RateLimiter::default();
            let t0 = Instant::from_millis(1_000);
            let admitted = (0..150)
                .filter(|_| r.admit(from, t0, BURST, RATE, 500))
                .count();
            assert_eq!(admitted, 100);
            // Half a second refills 5 tokens.
            let t1 = t0 + Duration::from_millis(500);
            let admitted = (0..10)
                .filter(|_| r.admit(from, t1, BURST, RATE, 500))
                .count();
            assert_eq!(admitted, 5);
            // Another sender is not affected.
            assert!(r.admit(Addr::from_u32(8), t1, BURST, RATE, 500));
        }
    }

    /// Forgetting idle buckets changes no decision: the limiter admits exactly what a
    /// table that remembers every sender forever admits.
    #[test]
    fn forgetting_refilled_buckets_changes_no_decision() {
        let mut limiter = RateLimiter::default();
        let mut forever: FxHashMap<Addr, (f64, Instant)> = FxHashMap::default();
        let mut rng = crate::rng::DetRng::new(5);
        let mut now = Instant::ZERO;
        let mut refused = 0;
        for step in 0..20_000u32 {
            now = now + Duration::from_micros(rng.range_u64(0, 20_000));
            // Two busy senders taking turns of 7 s (each runs dry in its turn, then
            // is idle for 7 s: not refilled by then), many occasional ones, some IPv6.
            let turn = now.as_micros() / 7_000_000 % 2;
            let from = match rng.below(10) {
                0..=5 => Addr::from_u32(turn as u32),
                6 => v6(rng.below(40) as u8),
                _ => Addr::from_u32(100 + rng.below(4_000) as u32),
            };
            if step % 500 == 0 {
                limiter.sweep(now, BURST, RATE);
            }
            let (tokens, last) = forever.entry(from).or_insert((BURST, now));
            let elapsed = now.saturating_since(*last).as_micros() as f64 / 1e6;
            *tokens = (*tokens + elapsed * RATE).min(BURST);
            *last = now;
            let expected = *tokens >= 1.0;
            if expected {
                *tokens -= 1.0;
            }
            assert_eq!(
                limiter.admit(from, now, BURST, RATE, 10_000),
                expected,
                "step {step}"
            );
            refused += usize::from(!expected);
        }
        assert!(refused > 100, "the busy senders must run dry: {refused}");
        assert!(
            limiter.len() * 4 < forever.len(),
            "{} vs {}",
            limiter.len(),
            forever.len()
        );
    }

    /// Sweeping keeps the table to the senders of the last `burst / rate` seconds.
    #[test]
    fn a_sweep_forgets_senders_idle_for_the_refill_time() {
        let mut r = RateLimiter::default();
        let t0 = Instant::from_millis(5_000);
        for k in 0..50 {
            r.admit(Addr::from_u32(k), t0, BURST, RATE, 500);
        }
        r.admit(v6(1), t0, BURST, RATE, 500);
        let t1 = t0 + secs(6);
        r.admit(Addr::from_u32(1_000), t1, BURST, RATE, 500);
        r.sweep(t0 + secs(9), BURST, RATE);
        assert_eq!(r.len(), 52, "nothing has refilled yet");
        r.sweep(t0 + secs(10) + Duration::from_micros(1), BURST, RATE);
        assert_eq!(r.len(), 1, "only the later sender is left");
        // A rate of zero never refills: nothing is forgotten.
        let mut r = RateLimiter::default();
        r.admit(Addr::from_u32(1), t0, BURST, 0.0, 500);
        r.sweep(t0 + secs(1_000_000), BURST, 0.0);
        assert_eq!(r.len(), 1);
    }

    /// With more recent senders than `max_senders`, the least recently active tenth
    /// goes: the table never exceeds the bound.
    #[test]
    fn the_table_never_exceeds_max_senders() {
        let mut r = RateLimiter::default();
        let t0 = Instant::from_millis(1_000);
        for k in 0..1_000u32 {
            let now = t0 + Duration::from_millis(u64::from(k));
            let from = if k % 7 == 0 {
                v6(k as u8)
            } else {
                Addr::from_u32(k)
            };
            assert!(r.admit(from, now, BURST, RATE, 100));
            assert!(r.len() <= 100, "{} senders at {k}", r.len());
        }
        // The most recent sender is kept, the oldest ones went.
        assert!(r
            .packed
            .contains_key(&PackedAddr::pack(&Addr::from_u32(999)).unwrap().to_u64()));
        assert!(!r
            .packed
            .contains_key(&PackedAddr::pack(&Addr::from_u32(1)).unwrap().to_u64()));
    }
}
