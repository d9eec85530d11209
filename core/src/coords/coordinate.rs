//! A Vivaldi coordinate and serf's update rule (AD-35, membership.md §8).
//!
//! Units are seconds, as in the spec. Only IEEE-exact operations are used (`+ - * /`,
//! `sqrt`, comparisons), so every platform computes the same bits.

use crate::rng::DetRng;

/// Dimensions of the Euclidean part (membership.md §8: 8, as serf).
pub const DIMS: usize = 8;

/// Below this, a distance or an RTT counts as zero (serf's `zeroThreshold`).
const ZERO: f64 = 1.0e-6;

/// Tuning of the update rule; the defaults are serf's `DefaultConfig`, which the spec
/// adopts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VivaldiConfig {
    /// Start error and its ceiling.
    pub error_max: f64,
    /// Error EWMA gain (`VivaldiCE`).
    pub ce: f64,
    /// Movement gain (`VivaldiCC`).
    pub cc: f64,
    /// Samples in the adjustment window.
    pub adjustment_window: usize,
    /// Height floor, seconds (10 µs).
    pub height_min: f64,
    /// Samples per peer in the median latency filter.
    pub latency_filter: usize,
    /// Gravity constant rho, seconds: the pull back to the origin grows as
    /// `(|x| / rho)^2`, so it only stops drift.
    pub gravity_rho: f64,
    /// RTT samples above this are rejected, seconds.
    pub max_rtt: f64,
    /// Components, height and adjustment are clamped to this magnitude, seconds; with
    /// `max_rtt` = 10 s nothing real comes near it, and it bounds the wire encoding.
    pub max_component: f64,
    /// Spread of the random starting position, seconds. Nodes start apart (serf starts
    /// everyone at the origin, the seed's Python did too and then moved everyone along
    /// one axis, collapsing 8 dimensions into 1); 1 ms is small next to any WAN RTT.
    pub initial_spread: f64,
}

impl Default for VivaldiConfig {
    fn default() -> Self {
        VivaldiConfig {
            error_max: 1.5,
            ce: 0.25,
            cc: 0.25,
            adjustment_window: 20,
            height_min: 10.0e-6,
            latency_filter: 3,
            gravity_rho: 150.0,
            max_rtt: 10.0,
            max_component: 1.0,
            initial_spread: 0.001,
        }
    }
}

/// A node's estimated position: `vec` (seconds), a height (the node's access-link
/// latency, seconds), an adjustment (a windowed mean of what the Euclidean model misses,
/// seconds), and a dimensionless relative error (1.5 = nothing known, serf's scale).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Coordinate {
    pub vec: [f64; DIMS],
    pub height: f64,
    pub adjustment: f64,
    pub error: f64,
}

impl Coordinate {
    /// The origin with the maximum error.
    pub fn origin(cfg: &VivaldiConfig) -> Coordinate {
        Coordinate {
            vec: [0.0; DIMS],
            height: cfg.height_min,
            adjustment: 0.0,
            error: cfg.error_max,
        }
    }

    /// A random start near the origin (see [`VivaldiConfig::initial_spread`]).
    pub fn random_start(cfg: &VivaldiConfig, rng: &mut DetRng) -> Coordinate {
        let mut c = Coordinate::origin(cfg);
        for x in c.vec.iter_mut() {
            *x = (rng.unit() - 0.5) * 2.0 * cfg.initial_spread;
        }
        c
    }

    /// Every field finite, the error positive and the height at least `height_min`:
    /// what a peer's coordinate must satisfy before we learn from it.
    pub fn is_valid(&self, cfg: &VivaldiConfig) -> bool {
        self.vec
            .iter()
            .all(|x| x.is_finite() && x.abs() <= cfg.max_component)
            && self.height.is_finite()
            && self.height >= cfg.height_min
            && self.height <= cfg.max_component
            && self.adjustment.is_finite()
            && self.adjustment.abs() <= cfg.max_component
            && self.error.is_finite()
            && self.error > 0.0
            && self.error <= cfg.error_max
    }

    /// Euclidean distance plus both heights, seconds.
    pub fn raw_distance(&self, other: &Coordinate) -> f64 {
        magnitude(&diff(&self.vec, &other.vec)) + self.height + other.height
    }

    /// The RTT estimate, seconds: the raw distance plus both adjustments, unless that
    /// would not be positive (then the raw distance).
    pub fn distance(&self, other: &Coordinate) -> f64 {
        let raw = self.raw_distance(other);
        let adjusted = raw + self.adjustment + other.adjustment;
        if adjusted > 0.0 {
            adjusted
        } else {
            raw
        }
    }

    /// Move by `force` (seconds; positive = away from `other`) along the unit vector from
    /// `other` to us, and let the height take its share (serf's `ApplyForce`).
    fn apply_force(
        &mut self,
        cfg: &VivaldiConfig,
        force: f64,
        other: &Coordinate,
        rng: &mut DetRng,
    ) {
        let (unit, mag) = unit_vector_at(&self.vec, &other.vec, rng);
        for (x, u) in self.vec.iter_mut().zip(unit.iter()) {
            *x += u * force;
        }
        if mag > ZERO {
            self.height += (self.height + other.height) * force / mag;
            if self.height < cfg.height_min {
                self.height = cfg.height_min;
            }
        }
    }

    /// One Vivaldi step from a (filtered) RTT sample to `other`: the error EWMA, then the
    /// move, weighted by our share of the total error (serf's `updateVivaldi`).
    pub fn update(&mut self, cfg: &VivaldiConfig, other: &Coordinate, rtt: f64, rng: &mut DetRng) {
        let rtt = rtt.max(ZERO);
        let dist = self.distance(other);
        let wrongness = (dist - rtt).abs() / rtt;
        let total_error = (self.error + other.error).max(ZERO);
        let weight = self.error / total_error;
        self.error =
            (cfg.ce * weight * wrongness + self.error * (1.0 - cfg.ce * weight)).min(cfg.error_max);
        let force = cfg.cc * weight * (rtt - dist);
        self.apply_force(cfg, force, other, rng);
    }

    /// The pull towards the origin, `-(|x| / rho)^2` (serf's gravity).
    pub fn apply_gravity(&mut self, cfg: &VivaldiConfig, rng: &mut DetRng) {
        let origin = Coordinate {
            vec: [0.0; DIMS],
            height: cfg.height_min,
            adjustment: 0.0,
            error: cfg.error_max,
        };
        let d = self.distance(&origin) / cfg.gravity_rho;
        self.apply_force(cfg, -(d * d), &origin, rng);
    }

    /// Clamp every field into its valid range (the last defence against absurd input;
    /// the update rule itself keeps real samples far inside).
    pub fn clamp(&mut self, cfg: &VivaldiConfig) {
        let m = cfg.max_component;
        for x in self.vec.iter_mut() {
            *x = x.clamp(-m, m);
        }
        self.height = self.height.clamp(cfg.height_min, m);
        self.adjustment = self.adjustment.clamp(-m, m);
        self.error = self.error.clamp(ZERO, cfg.error_max);
    }

    fn is_finite(&self) -> bool {
        self.vec.iter().all(|x| x.is_finite())
            && self.height.is_finite()
            && self.adjustment.is_finite()
            && self.error.is_finite()
    }

    /// After an update: NaN or infinity resets to a fresh start (serf resets too), then
    /// everything is clamped. Returns whether a reset happened.
    pub fn sanitize(&mut self, cfg: &VivaldiConfig, rng: &mut DetRng) -> bool {
        let reset = !self.is_finite();
        if reset {
            *self = Coordinate::random_start(cfg, rng);
        }
        self.clamp(cfg);
        reset
    }
}

fn diff(a: &[f64; DIMS], b: &[f64; DIMS]) -> [f64; DIMS] {
    let mut d = [0.0; DIMS];
    for i in 0..DIMS {
        d[i] = a[i] - b[i];
    }
    d
}

fn magnitude(v: &[f64; DIMS]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// The unit vector from `b` towards `a` and the distance between them; coincident points
/// get a random direction (so dimensions never collapse into one axis) and distance 0.
fn unit_vector_at(a: &[f64; DIMS], b: &[f64; DIMS], rng: &mut DetRng) -> ([f64; DIMS], f64) {
    let d = diff(a, b);
    let mag = magnitude(&d);
    if mag > ZERO {
        let mut u = d;
        for x in u.iter_mut() {
            *x /= mag;
        }
        return (u, mag);
    }
    let mut r = [0.0; DIMS];
    for x in r.iter_mut() {
        *x = rng.unit() - 0.5;
    }
    let m = magnitude(&r);
    if m > ZERO {
        for x in r.iter_mut() {
            *x /= m;
        }
    } else {
        r = [0.0; DIMS];
        r[0] = 1.0;
    }
    (r, 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(x: f64) -> Coordinate {
        let mut c = Coordinate::origin(&VivaldiConfig::default());
        c.vec[0] = x;
        c
    }

    #[test]
    fn distance_is_euclidean_plus_heights_plus_adjustments() {
        let cfg = VivaldiConfig::default();
        let mut a = at(0.0);
        let mut b = at(0.0);
        b.vec[1] = 0.003;
        b.vec[0] = 0.004;
        a.height = 0.001;
        b.height = 0.002;
        // 5 ms (3-4-5) + 1 ms + 2 ms.
        assert!((a.raw_distance(&b) - 0.008).abs() < 1e-12);
        a.adjustment = 0.001;
        assert!((a.distance(&b) - 0.009).abs() < 1e-12);
        // An adjustment that would make it non-positive falls back to the raw distance.
        a.adjustment = -0.5;
        assert!((a.distance(&b) - 0.008).abs() < 1e-12);
        assert!(a.is_valid(&cfg) && b.is_valid(&cfg));
    }

    #[test]
    fn update_follows_serfs_rule_with_spec_constants() {
        // Us at 0 with error 1.5 (fresh), peer at 10 ms with error 0.5, heights at the
        // 10 µs floor, RTT 20 ms. dist = 10 ms + 20 µs = 0.01002 s.
        let cfg = VivaldiConfig::default();
        let mut rng = DetRng::new(1);
        let mut me = at(0.0);
        let mut peer = at(0.010);
        peer.error = 0.5;
        let dist = me.distance(&peer);
        assert!((dist - 0.01002).abs() < 1e-12);
        me.update(&cfg, &peer, 0.020, &mut rng);
        // w = 1.5 / 2.0 = 0.75; wrongness = |0.01002 - 0.02| / 0.02 = 0.499;
        // error = 0.25 * 0.75 * 0.499 + 1.5 * (1 - 0.1875) = 1.3123125.
        assert!((me.error - 1.312_312_5).abs() < 1e-9, "{}", me.error);
        // force = 0.25 * 0.75 * (0.02 - 0.01002) = 0.00187125, away from the peer (-x).
        assert!((me.vec[0] + 0.001_871_25).abs() < 1e-12, "{}", me.vec[0]);
        // height += (h + h_p) * force / |v - v_p| = 20e-6 * 0.00187125 / 0.01.
        let h = 10e-6 + 20e-6 * 0.001_871_25 / 0.010;
        assert!((me.height - h).abs() < 1e-15);
    }

    #[test]
    fn height_never_falls_below_its_floor() {
        let cfg = VivaldiConfig::default();
        let mut rng = DetRng::new(2);
        let mut me = at(0.0);
        let peer = at(0.010);
        // The peer is much closer than we think: a strong pull, which would drive the
        // height negative without the 10 µs floor.
        for _ in 0..100 {
            me.update(&cfg, &peer, 0.000_001, &mut rng);
            assert!(me.height >= cfg.height_min);
        }
        assert_eq!(me.height, cfg.height_min);
    }

    #[test]
    fn error_stays_within_its_bounds() {
        let cfg = VivaldiConfig::default();
        let mut rng = DetRng::new(3);
        let mut me = at(0.0);
        let mut peer = at(0.010);
        peer.error = 0.1;
        // Absurdly wrong: error saturates at 1.5, never above.
        for _ in 0..50 {
            me.update(&cfg, &peer, 5.0, &mut rng);
            assert!(me.error <= cfg.error_max && me.error > 0.0);
        }
        // Consistent samples drive it down towards 0.
        let mut me = at(0.0);
        for _ in 0..400 {
            let rtt = me.distance(&peer);
            me.update(&cfg, &peer, rtt, &mut rng);
        }
        assert!(me.error < 0.01, "{}", me.error);
    }

    #[test]
    fn coincident_points_separate_in_a_random_direction_not_along_one_axis() {
        let cfg = VivaldiConfig::default();
        let mut rng = DetRng::new(4);
        let mut me = Coordinate::origin(&cfg);
        let peer = Coordinate::origin(&cfg);
        me.update(&cfg, &peer, 0.050, &mut rng);
        let moved_axes = me.vec.iter().filter(|x| x.abs() > 0.0).count();
        assert_eq!(moved_axes, DIMS, "{:?}", me.vec);
        let mag = magnitude(&me.vec);
        // force = 0.25 * 0.5 * (0.05 - 0.00002) along a unit vector.
        assert!((mag - 0.25 * 0.5 * (0.05 - 0.00002)).abs() < 1e-12);
    }

    #[test]
    fn gravity_only_pulls_back_what_drifted_far() {
        let cfg = VivaldiConfig::default();
        let mut rng = DetRng::new(5);
        // At 100 ms from the origin the pull is (0.1/150)^2: nothing.
        let mut near = at(0.100);
        near.apply_gravity(&cfg, &mut rng);
        assert!((near.vec[0] - 0.100).abs() < 1e-6);
        // At 100 s (absurd) it is (100/150)^2 = 0.44 s.
        let mut far = at(100.0);
        far.apply_gravity(&cfg, &mut rng);
        assert!(far.vec[0] < 100.0 - 0.4);
    }

    #[test]
    fn non_finite_results_reset_and_everything_is_clamped() {
        let cfg = VivaldiConfig::default();
        let mut rng = DetRng::new(6);
        let mut c = at(f64::NAN);
        assert!(c.sanitize(&cfg, &mut rng));
        assert!(c.is_valid(&cfg));
        assert_eq!(c.error, cfg.error_max);
        let mut c = at(50.0);
        c.height = -1.0;
        assert!(!c.sanitize(&cfg, &mut rng));
        assert_eq!(c.vec[0], cfg.max_component);
        assert_eq!(c.height, cfg.height_min);
    }
}
