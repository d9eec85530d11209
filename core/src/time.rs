//! Time for machines: `Instant` is integer microseconds from an arbitrary origin.
//! The simulator starts at zero; the driver maps its runtime's clock onto it. Durations are
//! `core::time::Duration` (pure arithmetic, no clock).

use core::time::Duration;
use serde::{Deserialize, Serialize};

/// A point in time, microseconds since an arbitrary origin. Only ever passed in.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Instant(pub u64);

impl Instant {
    pub const ZERO: Instant = Instant(0);

    pub const fn from_micros(us: u64) -> Self {
        Instant(us)
    }
    pub const fn from_millis(ms: u64) -> Self {
        Instant(ms * 1000)
    }
    pub const fn as_micros(self) -> u64 {
        self.0
    }
    pub const fn as_millis(self) -> u64 {
        self.0 / 1000
    }
    /// Time elapsed since `earlier`, zero if `earlier` is in the future.
    pub fn saturating_since(self, earlier: Instant) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }
}

impl core::ops::Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        Instant(
            self.0
                .saturating_add(d.as_micros().min(u64::MAX as u128) as u64),
        )
    }
}

impl core::ops::Sub<Duration> for Instant {
    type Output = Instant;
    fn sub(self, d: Duration) -> Instant {
        Instant(
            self.0
                .saturating_sub(d.as_micros().min(u64::MAX as u128) as u64),
        )
    }
}

/// An instant in 6 bytes with byte alignment, for records a node holds one of per peer
/// (a member record holds two, a peer coordinate two, a pending gossip update one: with
/// 8-byte instants each record needed 8-byte alignment, and 1,000 nodes of 1,000
/// members hold a million member records). 2^48 µs is 8.9 years from the origin (the
/// simulator's start, the driver's process start); an instant beyond that is stored as
/// the last representable one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CompactInstant([u8; 6]);

impl CompactInstant {
    /// The largest instant stored exactly; one more is [`CompactOptInstant::NONE`]'s mark.
    pub const MAX: Instant = Instant((1 << 48) - 2);

    pub fn new(t: Instant) -> Self {
        let [a, b, c, d, e, f, _, _] = t.0.min(Self::MAX.0).to_le_bytes();
        CompactInstant([a, b, c, d, e, f])
    }
    pub fn get(self) -> Instant {
        let [a, b, c, d, e, f] = self.0;
        Instant(u64::from_le_bytes([a, b, c, d, e, f, 0, 0]))
    }
    pub fn set(&mut self, t: Instant) {
        *self = Self::new(t);
    }
}

/// An optional [`CompactInstant`], also 6 bytes: all ones is "none".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CompactOptInstant([u8; 6]);

impl CompactOptInstant {
    pub const NONE: CompactOptInstant = CompactOptInstant([0xFF; 6]);
    pub fn get(self) -> Option<Instant> {
        (self != Self::NONE).then(|| CompactInstant(self.0).get())
    }
    pub fn set(&mut self, t: Instant) {
        self.0 = CompactInstant::new(t).0;
    }
}

/// `d` in whole microseconds as an `f64`: the value of `d.as_micros() as f64`, which
/// converts a `u128` in a library routine, through `u64` (one instruction or two) for
/// every duration under 584,000 years. Both round the same integer the same way.
#[inline]
pub fn micros_f64(d: Duration) -> f64 {
    let us = d.as_micros();
    match u64::try_from(us) {
        Ok(small) => small as f64,
        Err(_) => us as f64,
    }
}

/// Scale a duration by a float factor, exactly reproducible (IEEE-754 multiply only).
pub fn scale(d: Duration, factor: f64) -> Duration {
    let us = micros_f64(d) * factor;
    Duration::from_micros(if us.is_finite() && us > 0.0 {
        us as u64
    } else {
        0
    })
}

pub const fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}
pub const fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates_instead_of_wrapping() {
        let t = Instant::from_millis(5);
        assert_eq!(t - secs(1), Instant::ZERO);
        assert_eq!(Instant(u64::MAX) + secs(1), Instant(u64::MAX));
        assert_eq!(Instant::from_millis(3).saturating_since(t), Duration::ZERO);
        assert_eq!(t.saturating_since(Instant::from_millis(2)), millis(3));
    }

    /// Compact instants are exact up to 2^48 - 2 µs and saturate there; "none" never
    /// collides with a stored instant.
    #[test]
    fn compact_instants_are_exact_below_2_pow_48_and_saturate_above() {
        for us in [0, 1, 999_999, 0x1234_5678_9ABC, (1 << 48) - 2] {
            assert_eq!(CompactInstant::new(Instant(us)).get(), Instant(us));
            let mut o = CompactOptInstant::NONE;
            assert_eq!(o.get(), None);
            o.set(Instant(us));
            assert_eq!(o.get(), Some(Instant(us)));
        }
        for us in [(1 << 48) - 1, 1 << 48, u64::MAX] {
            assert_eq!(CompactInstant::new(Instant(us)).get(), CompactInstant::MAX);
            let mut o = CompactOptInstant::NONE;
            o.set(Instant(us));
            assert_eq!(o.get(), Some(CompactInstant::MAX));
        }
        assert_eq!(core::mem::size_of::<CompactOptInstant>(), 6);
        assert_eq!(core::mem::align_of::<CompactInstant>(), 1);
    }

    #[test]
    fn scale_is_exact_and_never_negative() {
        assert_eq!(scale(secs(2), 1.5), secs(3));
        assert_eq!(scale(secs(2), -1.0), Duration::ZERO);
        assert_eq!(scale(secs(2), f64::NAN), Duration::ZERO);
    }
}
