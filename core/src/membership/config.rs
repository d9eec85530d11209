//! Membership protocol configuration (membership.md §3.1, §4, §5, §6, §7), with the spec's
//! defaults. Times are `Duration`s; multipliers are plain floats.

use crate::id::Role;
use crate::time::{millis, secs};
use core::time::Duration;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Protocol period I (scaled by L = LHM x degradation).
    #[serde(with = "crate::membership::config::ms")]
    pub probe_interval: Duration,
    /// Base probe timeout T.
    #[serde(with = "crate::membership::config::ms")]
    pub probe_timeout: Duration,
    /// `SWIM_MAX_PROBE_TIMEOUT`: clamp of T x R_p before the LHM factor.
    #[serde(with = "crate::membership::config::ms")]
    pub max_probe_timeout: Duration,
    /// Waits of the direct attempts, as fractions of T_p (Python's 0.5, 0.5, 0.5, 0.8).
    pub direct_attempt_fractions: Vec<f64>,
    /// Indirect helpers k.
    pub indirect_helpers: usize,
    /// Suspicion bounds; `None` takes the per-role default (see [`suspicion_bounds`]).
    #[serde(with = "crate::membership::config::opt_ms")]
    pub suspicion_min: Option<Duration>,
    #[serde(with = "crate::membership::config::opt_ms")]
    pub suspicion_max: Option<Duration>,
    /// Lifeguard on: LHM, dynamic suspicion with confirmations, buddy, nack accounting.
    /// Off: classic SWIM, a fixed suspicion timeout of `suspicion_min`.
    pub lifeguard: bool,
    /// Peer-health awareness (membership.md §9): gossip our overload grade and go easier
    /// on loaded peers. Off: no records sent or used, every `peer_health` factor 1.
    pub peer_health: bool,
    /// The out-of-band probe channel (membership.md §9, optional): one OOB probe before
    /// a suspicion expires; an answer (the process is there, loaded or not) sends the
    /// suspect a buddy SUSPECT and extends the deadline once by `T_p`. Off by default,
    /// like the spec's Python (which never used it): it needs a second port open
    /// between nodes (the driver binds port + 100), and it only ever delays a verdict.
    pub oob: bool,
    /// Retransmit limit `max(1, floor(retransmit_mult x ln(N+1)))`.
    pub retransmit_mult: f64,
    /// Gossip updates per datagram at NORMAL degradation.
    pub gossip_per_datagram: usize,
    pub gossip_queue_cap: usize,
    #[serde(with = "crate::membership::config::ms")]
    pub push_pull_interval: Duration,
    /// Periodic push-pulls start with table digests and swap tables only when the
    /// digests differ (`membership::digest`): in a settled 1,000-member cluster 37% fewer
    /// bytes sent. Off by default because a node without it cannot decode the digest
    /// frame, so it can be switched on only once every node of the cluster has it (the
    /// usual way of rolling out a wire addition); with it off the push-pull is §4's.
    pub sync_digests: bool,
    /// How often to try to reach a member held Dead (serf's reconnect), and to re-join the
    /// seeds when no member is alive: how partitions heal without an operator.
    #[serde(with = "crate::membership::config::ms")]
    pub reconnect_interval: Duration,
    /// Dead/Left tombstones are forgotten after this long; reconnects stop then too.
    #[serde(with = "crate::membership::config::ms")]
    pub tombstone: Duration,
    #[serde(with = "crate::membership::config::ms")]
    pub zombie_window: Duration,
    pub zombie_inc_margin: u32,
    pub max_members: usize,
    pub max_pending_helps: usize,
    pub refutations_per_window: u32,
    #[serde(with = "crate::membership::config::ms")]
    pub refutation_window: Duration,
    pub join_attempts: u32,
    pub protocol_major: u16,
    pub protocol_minor: u16,
    /// Per-sender inbound token bucket: capacity and refill per second (membership.md §5).
    pub rate_limit_burst: f64,
    pub rate_limit_per_sec: f64,
    pub rate_limit_senders: usize,
    /// One warning per peer still unconfirmed after this long (membership.md §7).
    #[serde(with = "crate::membership::config::ms")]
    pub unconfirmed_warning: Duration,
    /// Vivaldi coordinates (AD-35): PINGs and ACKs carry the sender's coordinate and
    /// probers learn from the RTT. Off: neither, and timeouts cannot adapt.
    pub coordinates: bool,
    /// Probe and suspicion timeouts follow the RTT upper confidence bound and coordinate
    /// quality (membership.md §8). Needs `coordinates`.
    pub adaptive_timeouts: bool,
    /// Peer coordinates kept per machine (the stalest is forgotten for a newcomer).
    /// 224 is 7/8 of 256: the hash map's load limit, so a full table fills 256 buckets
    /// (~22 KB) instead of doubling to 512 at one peer more (256 cost ~45 KB a machine,
    /// 45 MB of a 1,000-node simulation).
    pub coord_peers_max: usize,
    /// At most one `Event::Coordinate` per this interval.
    #[serde(with = "crate::membership::config::ms")]
    pub coord_event_interval: Duration,
    /// Test builds only: switches on a deliberately planted bug (a member held Dead or
    /// Left comes back on an ALIVE at the *same* incarnation), so the simulator's
    /// random-fault sweeps and its shrinker can be shown to find and reduce a real
    /// protocol bug. Inert unless meridian-core is built with the `injected-bugs`
    /// feature (see [`INJECTED_BUGS`]), which only the simulator's tests enable.
    pub injected_bug: bool,
}

/// Whether this build carries the planted bug [`Config::injected_bug`] can switch on.
pub const INJECTED_BUGS: bool = cfg!(feature = "injected-bugs");

impl Default for Config {
    fn default() -> Self {
        Config {
            probe_interval: secs(1),
            probe_timeout: secs(1),
            max_probe_timeout: secs(5),
            direct_attempt_fractions: vec![0.5, 0.5, 0.5, 0.8],
            indirect_helpers: 3,
            suspicion_min: None,
            suspicion_max: None,
            lifeguard: true,
            peer_health: true,
            oob: false,
            retransmit_mult: 3.0,
            gossip_per_datagram: 5,
            gossip_queue_cap: 1000,
            push_pull_interval: secs(30),
            sync_digests: false,
            reconnect_interval: secs(10),
            tombstone: secs(3600),
            zombie_window: secs(60),
            zombie_inc_margin: 5,
            max_members: 10_000,
            max_pending_helps: 100,
            refutations_per_window: 5,
            refutation_window: secs(10),
            join_attempts: 2,
            protocol_major: 1,
            protocol_minor: 0,
            rate_limit_burst: 100.0,
            rate_limit_per_sec: 10.0,
            rate_limit_senders: 500,
            unconfirmed_warning: secs(60),
            coordinates: true,
            adaptive_timeouts: true,
            coord_peers_max: 224,
            coord_event_interval: secs(10),
            injected_bug: false,
        }
    }
}

/// Suspicion min/max per node kind (membership.md §3.1, Q1): gate 30/120, manager 10/60,
/// worker (and unknown) 5/30 seconds. The detector's own kind decides.
pub fn suspicion_bounds(role: Role) -> (Duration, Duration) {
    match role {
        Role::Gate => (secs(30), secs(120)),
        Role::Manager => (secs(10), secs(60)),
        Role::Worker | Role::Unknown => (secs(5), secs(30)),
    }
}

impl Config {
    pub fn suspicion_bounds_for(&self, role: Role) -> (Duration, Duration) {
        let (min, max) = suspicion_bounds(role);
        let min = self.suspicion_min.unwrap_or(min);
        (min, self.suspicion_max.unwrap_or(max).max(min))
    }

    /// Join resend delay: T + 0.5 s, jittered +-20% by the caller.
    pub fn join_retry(&self) -> Duration {
        self.probe_timeout + millis(500)
    }

    /// Reject configurations the machine cannot run with.
    pub fn validate(&self) -> Result<(), String> {
        if self.probe_interval.is_zero() || self.probe_timeout.is_zero() {
            return Err("probe_interval and probe_timeout must be positive".into());
        }
        if self.direct_attempt_fractions.is_empty()
            || self
                .direct_attempt_fractions
                .iter()
                .any(|f| !(f.is_finite() && *f > 0.0))
        {
            return Err("direct_attempt_fractions must be non-empty and positive".into());
        }
        if self.gossip_per_datagram == 0 || self.gossip_per_datagram > 20 {
            return Err("gossip_per_datagram must be in 1..=20".into());
        }
        if self.max_members < 200 {
            return Err("max_members must be at least 200".into());
        }
        Ok(())
    }
}

/// Durations as integer milliseconds in configuration files.
pub(crate) mod ms {
    use core::time::Duration;
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

pub(crate) mod opt_ms {
    use core::time::Duration;
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&(d.as_millis() as u64)),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_millis))
    }
}
