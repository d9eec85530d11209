//! The per-machine coordinate engine (AD-35, membership.md §8): our coordinate, what we
//! know of each peer's, a median latency filter per peer, the adjustment window, RTT
//! estimates with an upper confidence bound, quality, convergence and stale-peer cleanup.

use super::coordinate::{Coordinate, VivaldiConfig};
use super::wire::WireCoord;
use crate::id::NodeId;
use crate::rng::DetRng;
use crate::time::{secs, CompactInstant, CompactOptInstant, Instant};
use crate::FxHashMap;
use core::cell::Cell;
use core::time::Duration;
use smallvec::SmallVec;

/// RTT UCB assumed without a coordinate: `100 + 2 x 50` ms (membership.md §8).
pub const DEFAULT_RTT_UCB_MS: f64 = 200.0;
/// A peer's coordinate (and its filter) is forgotten this long after it was last seen.
pub const PEER_TTL: Duration = secs(300);
/// Samples after which a coordinate counts as converged / of full quality.
pub const CONVERGED_SAMPLES: u64 = 10;
/// Error at or below which a coordinate counts as converged.
pub const CONVERGED_ERROR: f64 = 0.35;
/// Error at or below which the error factor of quality is 1.
pub const QUALITY_ERROR: f64 = 0.25;
/// Relative uncertainty floor of a direct measurement.
pub const MEASURED_SIGMA: f64 = 0.1;

/// Why an RTT sample was not used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SampleError {
    #[error("RTT outside (0, max_rtt]")]
    RttOutOfRange,
    #[error("no valid coordinate known for the peer")]
    UnknownPeer,
}

/// Our estimate of the RTT to a peer, milliseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RttEstimate {
    /// `dist` between the two coordinates.
    pub rtt_ms: f64,
    /// `clamp(max(e, e_p) x rtt, 1, 500)`.
    pub sigma_ms: f64,
    /// `clamp(rtt + 2 sigma, 1, 10000)`.
    pub ucb_ms: f64,
}

/// What we keep per peer: 76 bytes, since a node of a large cluster keeps up to
/// `coord_peers_max` of these (the coordinate is stored as received and decoded when
/// used, the instants in 6 bytes each).
#[derive(Clone, Debug)]
struct Peer {
    /// The peer's coordinate as received (validated when it arrived).
    wire: WireCoord,
    last_seen: CompactInstant,
    /// When the latest sample went into `filter`.
    last_sample: CompactOptInstant,
    /// The latest raw RTT samples, whole µs (exact in an f32 up to 16 s, beyond
    /// `max_rtt`), a ring of `latency_filter` entries.
    filter: [f32; MAX_FILTER],
    filter_len: u8,
    filter_next: u8,
}

/// The latency filter holds at most this many samples per peer.
pub const MAX_FILTER: usize = 4;

impl Peer {
    fn coord(&self) -> Coordinate {
        self.wire.to_coordinate()
    }
    fn samples(&self) -> SmallVec<[f64; MAX_FILTER]> {
        self.filter[..self.filter_len as usize]
            .iter()
            .map(|us| *us as f64 / 1e6)
            .collect()
    }
}

/// The estimate from a fresh direct measurement: its filtered RTT, with
/// `sigma = clamp(max(spread, 10% of the RTT), 1, 500)` ms.
fn measured_estimate(rtt_ms: f64, spread_ms: f64) -> RttEstimate {
    let sigma_ms = spread_ms.max(MEASURED_SIGMA * rtt_ms).clamp(1.0, 500.0);
    RttEstimate {
        rtt_ms,
        sigma_ms,
        ucb_ms: (rtt_ms + 2.0 * sigma_ms).clamp(1.0, 10_000.0),
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CoordStats {
    pub updates: u64,
    pub rejected: u64,
    pub resets: u64,
    pub peers_expired: u64,
    /// Peers forgotten to make room in a full table.
    pub evicted: u64,
    /// Coordinates of peers not in the table that the caller chose not to keep.
    pub not_admitted: u64,
}

#[derive(Clone, Debug)]
pub struct CoordEngine {
    cfg: VivaldiConfig,
    own: Coordinate,
    own_wire: WireCoord,
    samples: u64,
    last_update: Option<Instant>,
    adjustment: SmallVec<[f64; 20]>,
    adjustment_next: usize,
    peers: FxHashMap<NodeId, Peer>,
    max_peers: usize,
    pub stats: CoordStats,
    /// Timeout lookups ([`CoordEngine::timeout_inputs`]) and how many found the peer
    /// cached: what the peer table buys. Counted through `&self`, since a lookup changes
    /// nothing else.
    timeout_lookups: Cell<u64>,
    timeout_hits: Cell<u64>,
}

impl CoordEngine {
    /// A fresh engine at a random start; at most `max_peers` peer coordinates are kept.
    pub fn new(cfg: VivaldiConfig, max_peers: usize, rng: &mut DetRng) -> Self {
        let own = Coordinate::random_start(&cfg, rng);
        CoordEngine {
            own,
            own_wire: WireCoord::from_coordinate(&own),
            cfg,
            samples: 0,
            last_update: None,
            adjustment: SmallVec::new(),
            adjustment_next: 0,
            peers: FxHashMap::default(),
            max_peers,
            stats: CoordStats::default(),
            timeout_lookups: Cell::new(0),
            timeout_hits: Cell::new(0),
        }
    }

    /// `(lookups, hits)`: how many timeout computations asked for a peer's coordinate,
    /// and how many found it in the table (a miss means the spec's 200 ms default and
    /// quality 0, the widest timeout).
    pub fn timeout_lookups(&self) -> (u64, u64) {
        (self.timeout_lookups.get(), self.timeout_hits.get())
    }

    pub fn own(&self) -> &Coordinate {
        &self.own
    }
    pub fn samples(&self) -> u64 {
        self.samples
    }
    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }
    pub fn has_peer(&self, node: NodeId) -> bool {
        self.peers.contains_key(&node)
    }
    pub fn peer(&self, node: NodeId) -> Option<Coordinate> {
        self.peers.get(&node).map(Peer::coord)
    }
    /// Our coordinate as PINGs and ACKs carry it (encoded once per update, not per send).
    pub fn to_wire(&self) -> WireCoord {
        self.own_wire
    }

    /// A coordinate `node` sent us (in a PING or ACK): kept for estimates and for the
    /// next sample. Invalid coordinates are counted and ignored. A full table makes room
    /// by forgetting the quarter of its peers heard from longest ago (in one pass, so the
    /// cost per newcomer stays O(1) amortised): in a cluster larger than the table the
    /// recent peers are the useful ones, and every ACK brings its sender's coordinate
    /// anew, so learning never depends on what was evicted.
    pub fn observe(&mut self, node: NodeId, wire: &WireCoord, now: Instant) -> bool {
        self.observe_if(node, wire, now, true)
    }

    /// As [`CoordEngine::observe`], but a peer not yet in the table is added only when
    /// `admit_new` (the caller knows whether the coordinate can serve before it
    /// expires); a known peer's coordinate is always refreshed. Returns whether the
    /// coordinate is now in the table.
    pub fn observe_if(
        &mut self,
        node: NodeId,
        wire: &WireCoord,
        now: Instant,
        admit_new: bool,
    ) -> bool {
        if let Some(p) = self.peers.get_mut(&node) {
            if p.wire == *wire {
                p.last_seen.set(now); // unchanged since last time: already validated
                return true;
            }
        } else if !admit_new {
            self.stats.not_admitted += 1;
            return false;
        }
        let coord = wire.to_coordinate();
        if !coord.is_valid(&self.cfg) {
            self.stats.rejected += 1;
            return false;
        }
        if let Some(p) = self.peers.get_mut(&node) {
            p.wire = *wire;
            p.last_seen.set(now);
            return true;
        }
        if self.peers.len() >= self.max_peers {
            if self.max_peers == 0 {
                self.stats.rejected += 1;
                return false;
            }
            let mut ages: Vec<(Instant, NodeId)> = self
                .peers
                .iter()
                .map(|(id, p)| (p.last_seen.get(), *id))
                .collect();
            let drop = ages.len().div_ceil(4);
            ages.select_nth_unstable(drop - 1);
            // The survivors move to a fresh map sized for the cap: removing in place
            // leaves tombstones, and the map would soon rehash into twice the buckets.
            let mut kept = FxHashMap::with_capacity_and_hasher(self.max_peers, Default::default());
            for (_, id) in &ages[drop..] {
                if let Some(p) = self.peers.remove(id) {
                    kept.insert(*id, p);
                }
            }
            self.peers = kept;
            self.stats.evicted += drop as u64;
        }
        self.peers.insert(
            node,
            Peer {
                wire: *wire,
                last_seen: CompactInstant::new(now),
                last_sample: CompactOptInstant::NONE,
                filter: [0.0; MAX_FILTER],
                filter_len: 0,
                filter_next: 0,
            },
        );
        true
    }

    /// One RTT measurement to `node` (whose coordinate was just observed): median
    /// filter, Vivaldi update, adjustment window, gravity; a non-finite result resets.
    pub fn sample(
        &mut self,
        node: NodeId,
        rtt: Duration,
        now: Instant,
        rng: &mut DetRng,
    ) -> Result<(), SampleError> {
        let raw = rtt.as_secs_f64();
        if !(raw > 0.0 && raw <= self.cfg.max_rtt) {
            self.stats.rejected += 1;
            return Err(SampleError::RttOutOfRange);
        }
        let cfg = self.cfg;
        let Some(peer) = self.peers.get_mut(&node) else {
            self.stats.rejected += 1;
            return Err(SampleError::UnknownPeer);
        };
        peer.last_seen.set(now);
        peer.last_sample.set(now);
        let size = cfg.latency_filter.clamp(1, MAX_FILTER);
        // Through `f64` (exact below 2^53 µs): `u128 as f32` is a library call.
        peer.filter[peer.filter_next as usize] = crate::time::micros_f64(rtt) as f32;
        peer.filter_len = (peer.filter_len + 1).min(size as u8);
        peer.filter_next = ((peer.filter_next as usize + 1) % size) as u8;
        let filtered = median(&peer.samples());
        let other = peer.coord();
        self.own.update(&cfg, &other, filtered, rng);
        // The adjustment: mean over the window of what the raw distance misses, halved
        // (serf's `updateAdjustment`).
        let miss = filtered - self.own.raw_distance(&other);
        let window = cfg.adjustment_window;
        if window > 0 {
            if self.adjustment.len() < window {
                self.adjustment.push(miss);
            } else {
                self.adjustment[self.adjustment_next] = miss;
            }
            self.adjustment_next = (self.adjustment_next + 1) % window;
            let sum: f64 = self.adjustment.iter().sum();
            self.own.adjustment = sum / (2.0 * window as f64);
        }
        self.own.apply_gravity(&cfg, rng);
        if self.own.sanitize(&cfg, rng) {
            self.stats.resets += 1;
            self.adjustment.clear();
            self.adjustment_next = 0;
            self.samples = 0;
        }
        self.own_wire = WireCoord::from_coordinate(&self.own);
        self.samples += 1;
        self.stats.updates += 1;
        self.last_update = Some(now);
        Ok(())
    }

    /// Our RTT estimate to `node`, or `None` while we have no sample of our own or no
    /// coordinate of the peer.
    ///
    /// Beyond serf (spec deviation, membership.md §8): a peer we measured ourselves
    /// within [`PEER_TTL`] is estimated by its filtered measurement, not by the
    /// coordinates. Coordinates cannot represent what is particular to one path (a
    /// detour, a slow peering: per-pair route inflation of 1.6-2.2 keeps Vivaldi on a
    /// world-wide matrix at 6.5-8.5% median error, an ideal embedding at 5-7.4%; a
    /// cluster mixing LAN and WAN peers keeps its Vivaldi error near 1), and the peers
    /// whose RTT matters most, those we probe and whose timeouts it sets, are exactly
    /// those we measure. Its uncertainty is the measurement's: `sigma = clamp(max(spread
    /// of the filter, 10% of the RTT), 1, 500)` ms, so the UCB is at least 1.2x the
    /// measured RTT.
    /// Unmeasured peers get the spec's coordinate estimate and `sigma = max(e, e_p) x rtt`.
    pub fn estimate(&self, node: NodeId, now: Instant) -> Option<RttEstimate> {
        if self.samples == 0 {
            return None;
        }
        let peer = self.peers.get(&node)?;
        Some(match self.measured(peer, now) {
            Some((rtt_ms, spread_ms)) => measured_estimate(rtt_ms, spread_ms),
            None => estimate_between(&self.own, &peer.coord()),
        })
    }

    /// `(rtt_ucb_ms(node), pair_quality(node))` with one lookup and one pass over the
    /// peer's filter: what a probe's timeout needs, once per probe (the hot path).
    pub fn timeout_inputs(&self, node: NodeId, now: Instant) -> (f64, f64) {
        self.timeout_lookups.set(self.timeout_lookups.get() + 1);
        let Some(p) = self.peers.get(&node) else {
            return (DEFAULT_RTT_UCB_MS, 0.0);
        };
        self.timeout_hits.set(self.timeout_hits.get() + 1);
        // As `rtt_ucb_ms`, no estimate before our own first sample.
        let no_sample = self.samples == 0;
        match self.measured(p, now) {
            Some((rtt_ms, spread_ms)) => {
                let ucb = if no_sample {
                    DEFAULT_RTT_UCB_MS
                } else {
                    measured_estimate(rtt_ms, spread_ms).ucb_ms
                };
                (ucb, 1.0)
            }
            None => {
                let c = p.coord();
                let ucb = if no_sample {
                    DEFAULT_RTT_UCB_MS
                } else {
                    estimate_between(&self.own, &c).ucb_ms
                };
                (
                    ucb,
                    self.quality(now).min((QUALITY_ERROR / c.error).min(1.0)),
                )
            }
        }
    }

    /// The RTT upper confidence bound to `node`, ms ([`DEFAULT_RTT_UCB_MS`] without an
    /// estimate).
    pub fn rtt_ucb_ms(&self, node: NodeId, now: Instant) -> f64 {
        self.estimate(node, now)
            .map_or(DEFAULT_RTT_UCB_MS, |e| e.ucb_ms)
    }

    /// `min(1, samples/10) x min(1, 0.25/e) x (1 if age <= 300 s else 300 s/age)`, with
    /// age the time since our last update.
    pub fn quality(&self, now: Instant) -> f64 {
        let Some(last) = self.last_update else {
            return 0.0;
        };
        let samples = (self.samples as f64 / CONVERGED_SAMPLES as f64).min(1.0);
        let error = (QUALITY_ERROR / self.own.error).min(1.0);
        let age = now.saturating_since(last).as_secs_f64();
        let ttl = PEER_TTL.as_secs_f64();
        let fresh = if age <= ttl { 1.0 } else { ttl / age };
        samples * error * fresh
    }

    /// The quality the timeout towards `node` relies on. Measured peers (see
    /// [`CoordEngine::estimate`]): 1, direct evidence (its uncertainty is in sigma, at
    /// least 10% of the RTT). Others: our coordinate's quality, no better than the
    /// peer's error allows (an estimate is only as good as its worse end).
    pub fn pair_quality(&self, node: NodeId, now: Instant) -> f64 {
        let Some(p) = self.peers.get(&node) else {
            return 0.0;
        };
        if self.measured(p, now).is_some() {
            return 1.0;
        }
        self.quality(now)
            .min((QUALITY_ERROR / p.coord().error).min(1.0))
    }

    /// The filtered direct measurement of `p`, ms, if its latest sample is fresh.
    fn measured(&self, p: &Peer, now: Instant) -> Option<(f64, f64)> {
        p.last_sample
            .get()
            .filter(|t| now.saturating_since(*t) <= PEER_TTL)
            .map(|_| {
                let v = p.samples();
                let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
                let hi = v.iter().copied().fold(0.0, f64::max);
                (median(&v) * 1000.0, (hi - lo) * 1000.0)
            })
    }

    /// `samples >= 10` and `e <= 0.35`.
    pub fn converged(&self) -> bool {
        self.samples >= CONVERGED_SAMPLES && self.own.error <= CONVERGED_ERROR
    }

    /// A member left the table: its coordinate and filter go with it.
    pub fn remove(&mut self, node: NodeId) {
        self.peers.remove(&node);
    }

    /// Forget peers not seen for [`PEER_TTL`]. Returns how many were dropped.
    pub fn expire(&mut self, now: Instant) -> usize {
        let before = self.peers.len();
        self.peers
            .retain(|_, p| now.saturating_since(p.last_seen.get()) <= PEER_TTL);
        let dropped = before - self.peers.len();
        self.stats.peers_expired += dropped as u64;
        if self.peers.is_empty() {
            self.peers = FxHashMap::default();
        }
        dropped
    }
}

/// The estimate between two coordinates (also what the simulator scores).
pub fn estimate_between(a: &Coordinate, b: &Coordinate) -> RttEstimate {
    let rtt_ms = a.distance(b) * 1000.0;
    let sigma_ms = (a.error.max(b.error) * rtt_ms).clamp(1.0, 500.0);
    let ucb_ms = (rtt_ms + 2.0 * sigma_ms).clamp(1.0, 10_000.0);
    RttEstimate {
        rtt_ms,
        sigma_ms,
        ucb_ms,
    }
}

fn median(v: &[f64]) -> f64 {
    // The common case, the default filter of 3, without sorting.
    if let [a, b, c] = *v {
        return a.max(b).min(a.min(b).max(c));
    }
    let mut s: SmallVec<[f64; 8]> = v.iter().copied().collect();
    s.sort_unstable_by(|a, b| a.total_cmp(b));
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::millis;

    /// A node keeps up to `coord_peers_max` of these (224 by default).
    #[test]
    fn a_peer_entry_is_76_bytes() {
        assert_eq!(core::mem::size_of::<Peer>(), 76);
    }

    fn engine(seed: u64) -> (CoordEngine, DetRng) {
        let mut rng = DetRng::new(seed);
        (
            CoordEngine::new(VivaldiConfig::default(), 100, &mut rng),
            rng,
        )
    }

    fn wire_at(x_s: f64, error: f64) -> WireCoord {
        let mut c = Coordinate::origin(&VivaldiConfig::default());
        c.vec[0] = x_s;
        c.error = error;
        WireCoord::from_coordinate(&c)
    }

    #[test]
    fn rtt_ucb_with_spec_numbers() {
        let cfg = VivaldiConfig::default();
        let mut a = Coordinate::origin(&cfg);
        let mut b = Coordinate::origin(&cfg);
        a.height = 0.0;
        b.height = 0.0;
        b.vec[0] = 0.100;
        a.error = 0.1;
        b.error = 0.2;
        // rtt 100 ms, sigma = max(0.1, 0.2) x 100 = 20 ms, ucb = 140 ms.
        let e = estimate_between(&a, &b);
        assert!((e.rtt_ms - 100.0).abs() < 1e-9);
        assert!((e.sigma_ms - 20.0).abs() < 1e-9);
        assert!((e.ucb_ms - 140.0).abs() < 1e-9);
        // sigma floor 1 ms: 0.5 ms apart, error 0.1 -> sigma 1, ucb 2.5 ms.
        b.vec[0] = 0.0005;
        let e = estimate_between(&a, &b);
        assert!((e.sigma_ms - 1.0).abs() < 1e-9 && (e.ucb_ms - 2.5).abs() < 1e-9);
        // sigma cap 500 ms, ucb cap 10 s.
        b.vec[0] = 0.9;
        b.error = 1.5;
        let e = estimate_between(&a, &b);
        assert_eq!(e.sigma_ms, 500.0);
        assert!((e.ucb_ms - 1900.0).abs() < 1e-6);
        // No estimate: 200 ms.
        let (eng, _) = engine(1);
        assert_eq!(eng.rtt_ucb_ms(NodeId(9), Instant::ZERO), DEFAULT_RTT_UCB_MS);
        assert_eq!(DEFAULT_RTT_UCB_MS, 100.0 + 2.0 * 50.0);
    }

    #[test]
    fn quality_and_convergence_with_spec_numbers() {
        let (mut eng, mut rng) = engine(2);
        let t0 = Instant::ZERO;
        assert_eq!(eng.quality(t0), 0.0);
        assert!(!eng.converged());
        eng.observe(NodeId(1), &wire_at(0.020, 0.05), t0);
        // Samples that agree with the coordinates exactly.
        let mut consistent = |eng: &mut CoordEngine, i: u64| {
            let rtt = eng.own().distance(&eng.peer(NodeId(1)).unwrap());
            eng.sample(
                NodeId(1),
                Duration::from_secs_f64(rtt),
                t0 + secs(i),
                &mut rng,
            )
            .unwrap();
        };
        for i in 0..5 {
            consistent(&mut eng, i);
        }
        // 5 samples: factor 0.5; the error factor is min(1, 0.25/e).
        let e = eng.own().error;
        let expect = 0.5 * (0.25 / e).min(1.0);
        assert!((eng.quality(t0 + secs(4)) - expect).abs() < 1e-12);
        assert!(!eng.converged(), "5 samples are not enough");
        for i in 5..40 {
            consistent(&mut eng, i);
        }
        assert!(eng.own().error <= 0.25, "{}", eng.own().error);
        assert!(eng.converged());
        let last = t0 + secs(39);
        assert_eq!(eng.quality(last), 1.0);
        assert_eq!(eng.quality(last + secs(300)), 1.0);
        // Staleness: 600 s without an update halves it.
        assert!((eng.quality(last + secs(600)) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn the_median_filter_ignores_one_late_ack() {
        let (mut eng, mut rng) = engine(3);
        let (mut spiked, _) = engine(3);
        let t = Instant::ZERO;
        for e in [&mut eng, &mut spiked] {
            e.observe(NodeId(1), &wire_at(0.050, 0.1), t);
        }
        let mut rng2 = rng.clone();
        for i in 0..30u64 {
            eng.sample(NodeId(1), millis(50), t + secs(i), &mut rng)
                .unwrap();
            // One GC-pause-like sample of 2 s in the middle.
            let rtt = if i == 15 { secs(2) } else { millis(50) };
            spiked
                .sample(NodeId(1), rtt, t + secs(i), &mut rng2)
                .unwrap();
        }
        // The coordinates barely notice the spike.
        let d1 = eng.own().distance(&eng.peer(NodeId(1)).unwrap()) * 1000.0;
        let d2 = spiked.own().distance(&spiked.peer(NodeId(1)).unwrap()) * 1000.0;
        assert!((d1 - d2).abs() < 1.0, "{d1} vs {d2}");
        assert_eq!(median(&[0.05, 2.0, 0.05]), 0.05);
        assert_eq!(median(&[0.01, 0.03]), 0.02);
    }

    #[test]
    fn bad_samples_and_bad_coordinates_are_rejected() {
        let (mut eng, mut rng) = engine(4);
        let t = Instant::ZERO;
        assert_eq!(
            eng.sample(NodeId(1), millis(10), t, &mut rng),
            Err(SampleError::UnknownPeer)
        );
        eng.observe(NodeId(1), &wire_at(0.01, 0.5), t);
        assert_eq!(
            eng.sample(NodeId(1), Duration::ZERO, t, &mut rng),
            Err(SampleError::RttOutOfRange)
        );
        assert_eq!(
            eng.sample(NodeId(1), secs(11), t, &mut rng),
            Err(SampleError::RttOutOfRange)
        );
        let mut bad = wire_at(0.01, 0.5);
        bad.error = 0;
        assert!(!eng.observe(NodeId(2), &bad, t));
        assert_eq!(eng.stats.rejected, 4);
        assert_eq!(eng.samples(), 0);
    }

    #[test]
    fn peers_are_bounded_and_forgotten_after_300_s() {
        let mut rng = DetRng::new(5);
        let mut eng = CoordEngine::new(VivaldiConfig::default(), 2, &mut rng);
        let t = Instant::ZERO;
        assert!(eng.observe(NodeId(1), &wire_at(0.01, 0.5), t));
        assert!(eng.observe(NodeId(2), &wire_at(0.02, 0.5), t + secs(100)));
        assert_eq!(eng.expire(t + secs(300)), 0, "300 s is still fresh");
        assert_eq!(eng.expire(t + secs(301)), 1);
        assert!(eng.peer(NodeId(1)).is_none() && eng.peer(NodeId(2)).is_some());
        eng.remove(NodeId(2));
        assert_eq!(eng.peer_count(), 0);
        // Full: a newcomer evicts the stalest quarter (here: one of two).
        assert!(eng.observe(NodeId(4), &wire_at(0.01, 0.5), t + secs(400)));
        assert!(eng.observe(NodeId(5), &wire_at(0.01, 0.5), t + secs(401)));
        assert!(eng.observe(NodeId(4), &wire_at(0.01, 0.5), t + secs(402)));
        assert!(eng.observe(NodeId(6), &wire_at(0.01, 0.5), t + secs(403)));
        assert_eq!(eng.peer_count(), 2);
        assert!(eng.peer(NodeId(5)).is_none(), "5 was the stalest");
        assert!(eng.peer(NodeId(4)).is_some() && eng.peer(NodeId(6)).is_some());
        assert_eq!(eng.stats.evicted, 1);
        // A bigger table drops its stalest quarter at once, never more than it holds.
        let mut big = CoordEngine::new(VivaldiConfig::default(), 8, &mut rng);
        for i in 0..8u32 {
            big.observe(NodeId(i), &wire_at(0.01, 0.5), t + secs(i as u64));
        }
        big.observe(NodeId(100), &wire_at(0.01, 0.5), t + secs(50));
        assert_eq!(big.peer_count(), 7);
        assert!((0..2).all(|i| big.peer(NodeId(i)).is_none()));
        assert!((2..8).all(|i| big.peer(NodeId(i)).is_some()));
    }

    #[test]
    fn timeout_inputs_are_the_ucb_and_the_pair_quality() {
        let (mut eng, mut rng) = engine(9);
        let t = Instant::ZERO;
        let check = |eng: &CoordEngine, now: Instant| {
            for n in 0..6 {
                let id = NodeId(n);
                assert_eq!(
                    eng.timeout_inputs(id, now),
                    (eng.rtt_ucb_ms(id, now), eng.pair_quality(id, now)),
                    "peer {n} at {now:?}"
                );
            }
        };
        check(&eng, t); // nobody known
        for n in 1..5 {
            eng.observe(NodeId(n), &wire_at(0.01 * n as f64, 0.3), t);
        }
        check(&eng, t); // known peers, no sample of our own yet
        eng.sample(NodeId(1), millis(20), t + secs(1), &mut rng)
            .unwrap();
        eng.sample(NodeId(2), millis(35), t + secs(2), &mut rng)
            .unwrap();
        check(&eng, t + secs(3)); // measured (1, 2), estimated (3, 4), unknown (0, 5)
        check(&eng, t + secs(400)); // the measurements have gone stale
    }

    #[test]
    fn a_full_table_at_the_default_cap_never_outgrows_256_buckets() {
        let cap = crate::membership::Config::default().coord_peers_max;
        let mut rng = DetRng::new(6);
        let mut eng = CoordEngine::new(VivaldiConfig::default(), cap, &mut rng);
        for i in 0..1_000u32 {
            eng.observe(
                NodeId(i),
                &wire_at(0.01, 0.5),
                Instant::ZERO + secs(i as u64),
            );
        }
        assert!(eng.peer_count() <= cap);
        // 256 buckets hold 224 entries; one more and the map would double to 512.
        assert!(eng.peers.capacity() <= 224, "{}", eng.peers.capacity());
    }

    #[test]
    fn a_fresh_measurement_beats_the_coordinates_then_expires() {
        let (mut eng, mut rng) = engine(6);
        let t = Instant::ZERO;
        // The peer claims to sit 10 ms away, but the path measures 30 ms (a detour no
        // coordinate can show).
        eng.observe(NodeId(1), &wire_at(0.010, 0.1), t);
        for i in 0..3 {
            eng.sample(NodeId(1), millis(30), t + secs(i), &mut rng)
                .unwrap();
        }
        let e = eng.estimate(NodeId(1), t + secs(2)).unwrap();
        assert_eq!(e.rtt_ms, 30.0);
        // Identical samples: sigma is the 10% floor, 3 ms; the UCB 36 ms.
        assert!((e.sigma_ms - 3.0).abs() < 1e-9 && (e.ucb_ms - 36.0).abs() < 1e-9);
        assert_eq!(eng.pair_quality(NodeId(1), t + secs(2)), 1.0);
        // A spread of 10 ms in the filter widens it: sigma 10 ms.
        eng.sample(NodeId(1), millis(40), t + secs(3), &mut rng)
            .unwrap();
        let e = eng.estimate(NodeId(1), t + secs(3)).unwrap();
        assert!((e.sigma_ms - 10.0).abs() < 1e-9, "{e:?}");
        // 300 s after the last sample the measurement no longer counts.
        eng.observe(NodeId(1), &wire_at(0.010, 0.1), t + secs(200));
        let later = eng.estimate(NodeId(1), t + secs(304)).unwrap();
        let coord = estimate_between(eng.own(), &eng.peer(NodeId(1)).unwrap());
        assert_eq!(later, coord);
    }
}
