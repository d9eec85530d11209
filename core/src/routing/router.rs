//! The AD-36 router (routing.md §3-§9): filter the candidates (hard excludes, soft
//! demotions), take the best non-empty health bucket, rank it by
//! `rtt_ucb x load x quality_penalty x severity` (x 0.9 if preferred, x 2 in cooldown),
//! or by spare capacity while the gate's own coordinate is immature (bootstrap), keep each
//! job's primary DC sticky (30 s hold-down, 20 % minimum improvement, forced switches on
//! exclusion, bucket drop or 10 s of 1.5x degradation), and return the primaries plus an
//! ordered fallback chain. Pure: same inputs, same state, same `now`, same decision; ties
//! are broken by DC id.

use super::health::DcHealth;
use crate::id::DcId;
use crate::time::{secs, Instant};
use core::time::Duration;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What per-job routing state is kept under (§7). The spec keys it by job; a job is
/// routed once, so hysteresis only means something across the submissions of one
/// workload: the gate keys it by the client's routing key (the job's name: every run of
/// the same load test shares it), the job id when the client gives none. States are
/// swept after an hour, not at job end (the next run of the series needs them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RouteKey(pub u64);

/// routing.md §12, as defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct RoutingConfig {
    pub a_util: f64,
    pub a_queue: f64,
    pub a_cb: f64,
    pub queue_smoothing: f64,
    pub load_factor_max: f64,
    pub a_quality: f64,
    pub quality_penalty_max: f64,
    pub preference_mult: f64,
    pub rtt_default_ms: f64,
    pub hold_down: Duration,
    pub improvement_ratio: f64,
    pub degrade_ratio: f64,
    pub degrade_confirm: Duration,
    pub cooldown: Duration,
    pub cooldown_penalty: f64,
    pub max_primary_dcs: usize,
    pub state_max_age: Duration,
    /// Jobs with routing state at most (a bound; the oldest selection goes first).
    pub max_jobs: usize,
    /// Hysteresis on (the default); off for ablation runs (every call takes the best).
    pub hysteresis: bool,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig {
            a_util: 0.5,
            a_queue: 0.3,
            a_cb: 0.2,
            queue_smoothing: 10.0,
            load_factor_max: 5.0,
            a_quality: 0.5,
            quality_penalty_max: 2.0,
            preference_mult: 0.9,
            rtt_default_ms: 100.0,
            hold_down: secs(30),
            improvement_ratio: 0.8,
            degrade_ratio: 1.5,
            degrade_confirm: secs(10),
            cooldown: secs(120),
            cooldown_penalty: 2.0,
            max_primary_dcs: 2,
            state_max_age: secs(3600),
            max_jobs: 10_000,
            hysteresis: true,
        }
    }
}

/// A DC as the gate sees it when routing (§3).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Candidate {
    pub dc: DcId,
    pub health: DcHealth,
    /// The freshest heartbeat is stale: demoted to DEGRADED, never excluded (Q5).
    pub stale: bool,
    pub available_cores: u32,
    pub total_cores: u32,
    pub queue_depth: u32,
    /// Open managers / total managers, 0..1.
    pub circuit_pressure: f64,
    pub total_managers: u32,
    /// Managers whose circuit is not open.
    pub healthy_managers: u32,
    /// The RTT upper confidence bound to the DC's leader (None: no coordinate).
    pub rtt_ucb_ms: Option<f64>,
    /// Coordinate quality 0..1 (0 without a coordinate).
    pub quality: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Exclusion {
    Unhealthy,
    NoRegisteredManagers,
    AllManagersCircuitOpen,
}

/// The hard excludes (§3).
pub fn exclusion(c: &Candidate) -> Option<Exclusion> {
    if c.health == DcHealth::Unhealthy {
        Some(Exclusion::Unhealthy)
    } else if c.total_managers == 0 {
        Some(Exclusion::NoRegisteredManagers)
    } else if c.healthy_managers == 0 {
        Some(Exclusion::AllManagersCircuitOpen)
    } else {
        None
    }
}

/// The bucket routing uses: stale health is demoted to DEGRADED (never excluded).
pub fn bucket(c: &Candidate) -> DcHealth {
    if c.stale {
        c.health.max(DcHealth::Degraded)
    } else {
        c.health
    }
}

/// `min(5, 1 + 0.5 util + 0.3 queue/(queue+10) + 0.2 cb)`.
pub fn load_factor(cfg: &RoutingConfig, c: &Candidate) -> f64 {
    let util = if c.total_cores == 0 {
        1.0
    } else {
        1.0 - c.available_cores.min(c.total_cores) as f64 / c.total_cores as f64
    };
    let q = c.queue_depth as f64;
    let queue = q / (q + cfg.queue_smoothing);
    let cb = c.circuit_pressure.clamp(0.0, 1.0);
    (1.0 + cfg.a_util * util + cfg.a_queue * queue + cfg.a_cb * cb).min(cfg.load_factor_max)
}

/// `min(2, 1 + 0.5 (1 - quality))`.
pub fn quality_penalty(cfg: &RoutingConfig, quality: f64) -> f64 {
    (1.0 + cfg.a_quality * (1.0 - quality.clamp(0.0, 1.0))).min(cfg.quality_penalty_max)
}

/// The RTT bound a candidate is scored with: its own, clamped to 1..10 000 ms, or the
/// 100 ms default without a coordinate (a soft demotion through the quality penalty).
pub fn rtt_ucb(cfg: &RoutingConfig, c: &Candidate) -> f64 {
    c.rtt_ucb_ms
        .filter(|r| r.is_finite())
        .map_or(cfg.rtt_default_ms, |r| r.clamp(1.0, 10_000.0))
}

/// A candidate's score (§6; lower is better): `rtt_ucb x load x quality_penalty x
/// severity`, x 0.9 if `preferred`, x 2 while `cooling` down. Without a coordinate the
/// quality counts as 0.
pub fn score(cfg: &RoutingConfig, c: &Candidate, preferred: bool, cooling: bool) -> f64 {
    let quality = if c.rtt_ucb_ms.is_some() {
        c.quality
    } else {
        0.0
    };
    let mut s = rtt_ucb(cfg, c)
        * load_factor(cfg, c)
        * quality_penalty(cfg, quality)
        * bucket(c).severity_weight();
    if preferred {
        s *= cfg.preference_mult;
    }
    if cooling {
        s *= cfg.cooldown_penalty;
    }
    s
}

/// Why a job's primary is what it is (§7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RouteReason {
    InitialSelection,
    HoldDownRetained,
    ImprovementThresholdMet,
    BucketDropForced,
    ExclusionForced,
    DegradationForced,
    /// A dispatch to the primary failed: switched despite the hold-down (Q4).
    CooldownPenalty,
    /// Nothing eligible.
    NoCandidate,
}

impl RouteReason {
    pub fn forced(self) -> bool {
        matches!(
            self,
            RouteReason::BucketDropForced
                | RouteReason::ExclusionForced
                | RouteReason::DegradationForced
                | RouteReason::CooldownPenalty
        )
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct RoutingDecision {
    pub job: RouteKey,
    /// The DCs to run the job in, best first (the kept primary first).
    pub primaries: Vec<DcId>,
    /// The rest, in order: the primary bucket's other DCs, then BUSY, then DEGRADED.
    pub fallbacks: Vec<DcId>,
    pub primary_bucket: Option<DcHealth>,
    pub reason: RouteReason,
    pub bootstrap: bool,
    /// Every eligible DC's score (bootstrap: its rank), in chain order.
    pub scores: Vec<(DcId, f64)>,
    /// `(from, to)` when the primary changed from a previous one.
    pub switched: Option<(DcId, DcId)>,
}

/// Per-job routing state (§7).
#[derive(Clone, Debug, PartialEq)]
pub struct JobRouting {
    pub primary: Option<DcId>,
    pub selected_at: Instant,
    pub selected_score: f64,
    pub switch_count: u32,
    degrade_since: Option<Instant>,
    cooldown_until: BTreeMap<DcId, Instant>,
    /// The primary's dispatch failed since the last call: switch despite hold-down.
    primary_failed: bool,
    /// The mode `selected_score` was measured in.
    scored_in_bootstrap: bool,
}

#[derive(Clone, Debug)]
pub struct Router {
    cfg: RoutingConfig,
    jobs: BTreeMap<RouteKey, JobRouting>,
}

impl Router {
    pub fn new(cfg: RoutingConfig) -> Router {
        Router {
            cfg,
            jobs: BTreeMap::new(),
        }
    }

    pub fn config(&self) -> &RoutingConfig {
        &self.cfg
    }
    pub fn len(&self) -> usize {
        self.jobs.len()
    }
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }
    pub fn state(&self, job: RouteKey) -> Option<&JobRouting> {
        self.jobs.get(&job)
    }

    /// A dispatch of `job` to `dc` failed: `dc` ranks with a doubled score for this job
    /// for 120 s; if it is the job's primary, the next call switches despite hold-down.
    pub fn record_dispatch_failure(&mut self, job: RouteKey, dc: DcId, now: Instant) {
        if let Some(s) = self.jobs.get_mut(&job) {
            s.cooldown_until.insert(dc, now + self.cfg.cooldown);
            if s.primary == Some(dc) {
                s.primary_failed = true;
            }
        }
    }

    pub fn cleanup_job(&mut self, job: RouteKey) {
        self.jobs.remove(&job);
    }

    /// DCs that became partitioned: every job whose primary is one of them is re-selected
    /// at its next call. Returns those jobs.
    pub fn reset_primary_for(&mut self, dcs: &[DcId]) -> Vec<RouteKey> {
        let mut v = Vec::new();
        for (job, s) in self.jobs.iter_mut() {
            if s.primary.is_some_and(|p| dcs.contains(&p)) {
                s.primary = None;
                v.push(*job);
            }
        }
        v
    }

    /// Route `job` to `count` DCs. `mature`: the gate's own coordinate is good enough to
    /// rank by RTT (else bootstrap mode).
    pub fn route(
        &mut self,
        job: RouteKey,
        candidates: &[Candidate],
        preferred: &[DcId],
        count: usize,
        mature: bool,
        now: Instant,
    ) -> RoutingDecision {
        let cfg = self.cfg.clone();
        self.sweep(now);
        // Filter, then bucket (§3, §4).
        let mut eligible: Vec<&Candidate> = candidates
            .iter()
            .filter(|c| exclusion(c).is_none())
            .collect();
        eligible.sort_by_key(|c| c.dc);
        eligible.dedup_by_key(|c| c.dc);
        let primary_bucket = eligible.iter().map(|c| bucket(c)).min();
        let Some(pb) = primary_bucket else {
            if let Some(s) = self.jobs.get_mut(&job) {
                s.primary = None;
            }
            return RoutingDecision {
                job,
                primaries: Vec::new(),
                fallbacks: Vec::new(),
                primary_bucket: None,
                reason: RouteReason::NoCandidate,
                bootstrap: !mature,
                scores: Vec::new(),
                switched: None,
            };
        };
        let cooling: Vec<DcId> = self
            .jobs
            .get(&job)
            .map(|s| {
                s.cooldown_until
                    .iter()
                    .filter(|(_, t)| now < **t)
                    .map(|(dc, _)| *dc)
                    .collect()
            })
            .unwrap_or_default();
        let cooldown = |dc: DcId| cooling.contains(&dc);
        let score = |c: &Candidate| score(&cfg, c, preferred.contains(&c.dc), cooldown(c.dc));
        // The primary bucket, ranked (§6, §8).
        let mut primary: Vec<(DcId, f64)> = if mature {
            eligible
                .iter()
                .filter(|c| bucket(c) == pb)
                .map(|c| (c.dc, score(c)))
                .collect()
        } else {
            let mut v: Vec<&&Candidate> = eligible.iter().filter(|c| bucket(c) == pb).collect();
            let key = |c: &Candidate| {
                let spare = if c.total_cores == 0 {
                    0.0
                } else {
                    -(c.available_cores as f64 / c.total_cores as f64)
                };
                let q = c.queue_depth as f64;
                (spare, q / (q + cfg.queue_smoothing), c.circuit_pressure)
            };
            v.sort_by(|a, b| {
                key(a)
                    .partial_cmp(&key(b))
                    .unwrap_or(core::cmp::Ordering::Equal)
                    .then(a.dc.cmp(&b.dc))
            });
            v.iter()
                .enumerate()
                .map(|(i, c)| {
                    let mut s = i as f64 + 1.0;
                    if cooldown(c.dc) {
                        s *= cfg.cooldown_penalty;
                    }
                    (c.dc, s)
                })
                .collect()
        };
        primary.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        let (best, best_score) = primary[0];
        // Hysteresis (§7).
        let eligible_dcs: Vec<DcId> = eligible.iter().map(|c| c.dc).collect();
        let st = self.jobs.entry(job).or_insert(JobRouting {
            primary: None,
            selected_at: now,
            selected_score: best_score,
            switch_count: 0,
            degrade_since: None,
            cooldown_until: BTreeMap::new(),
            primary_failed: false,
            scored_in_bootstrap: !mature,
        });
        // A change of mode rebases the stored score to the current primary's (§8, Q8).
        let cur_score = st
            .primary
            .and_then(|p| primary.iter().find(|(d, _)| *d == p).map(|(_, s)| *s));
        if st.scored_in_bootstrap == mature {
            st.scored_in_bootstrap = !mature;
            if let Some(s) = cur_score {
                st.selected_score = s;
            }
        }
        let (keep, reason) = match st.primary {
            None => (false, RouteReason::InitialSelection),
            Some(cur) if !eligible_dcs.contains(&cur) => (false, RouteReason::ExclusionForced),
            Some(_) if cur_score.is_none() => (false, RouteReason::BucketDropForced),
            Some(_) if st.primary_failed => (false, RouteReason::CooldownPenalty),
            Some(cur) => {
                let cur_s = cur_score.expect("checked");
                let degraded = cur_s >= cfg.degrade_ratio * st.selected_score;
                if degraded {
                    st.degrade_since.get_or_insert(now);
                } else {
                    st.degrade_since = None;
                }
                let confirmed = st
                    .degrade_since
                    .is_some_and(|t| now.saturating_since(t) >= cfg.degrade_confirm);
                if !cfg.hysteresis {
                    (best == cur, RouteReason::ImprovementThresholdMet)
                } else if confirmed {
                    if best == cur {
                        // Degraded but still the best: keep it, rebase the score.
                        st.selected_score = cur_s;
                        st.degrade_since = None;
                        (true, RouteReason::HoldDownRetained)
                    } else {
                        (false, RouteReason::DegradationForced)
                    }
                } else if best == cur || now.saturating_since(st.selected_at) < cfg.hold_down {
                    (true, RouteReason::HoldDownRetained)
                } else if best_score < cfg.improvement_ratio * cur_s {
                    (false, RouteReason::ImprovementThresholdMet)
                } else {
                    (true, RouteReason::HoldDownRetained)
                }
            }
        };
        st.primary_failed = false;
        let previous = st.primary;
        let mut switched = None;
        if !keep {
            st.primary = Some(best);
            st.selected_at = now;
            st.selected_score = best_score;
            st.degrade_since = None;
            if let Some(p) = previous.filter(|p| *p != best) {
                st.switch_count += 1;
                switched = Some((p, best));
            }
        }
        let reason = if keep {
            RouteReason::HoldDownRetained
        } else {
            reason
        };
        let chosen = st.primary.expect("set above");
        // The kept primary first, the rest of the bucket in score order (§7).
        let mut order: Vec<(DcId, f64)> = primary
            .iter()
            .filter(|(d, _)| *d == chosen)
            .chain(primary.iter().filter(|(d, _)| *d != chosen))
            .copied()
            .collect();
        let n = count.clamp(1, cfg.max_primary_dcs.max(1)).min(order.len());
        // Lower buckets, scored, BUSY before DEGRADED (§9).
        let mut lower: Vec<(DcHealth, DcId, f64)> = eligible
            .iter()
            .filter(|c| bucket(c) != pb)
            .map(|c| (bucket(c), c.dc, score(c)))
            .collect();
        lower.sort_by(|a, b| a.0.cmp(&b.0).then(a.2.total_cmp(&b.2)).then(a.1.cmp(&b.1)));
        order.extend(lower.iter().map(|(_, d, s)| (*d, *s)));
        let primaries: Vec<DcId> = order[..n].iter().map(|(d, _)| *d).collect();
        let fallbacks: Vec<DcId> = order[n..].iter().map(|(d, _)| *d).collect();
        self.bound();
        RoutingDecision {
            job,
            primaries,
            fallbacks,
            primary_bucket: Some(pb),
            reason,
            bootstrap: !mature,
            scores: order,
            switched,
        }
    }

    /// The next DC for `key` after a failed dispatch (§9, §11): the first eligible DC not
    /// in `exclude` (the DCs the job already uses or tried), from the best bucket that
    /// still has one, by score (cooldown and preference applied). Does not touch the
    /// key's primary: a fallback is one job's detour, not the series' new choice (the
    /// failure itself makes the next [`Router::route`] switch, `CooldownPenalty`).
    /// Re-ranked from the gate's current view rather than read off the chain computed
    /// at dispatch: health may have changed since, and safety is judged now.
    pub fn fallback(
        &self,
        key: RouteKey,
        candidates: &[Candidate],
        exclude: &[DcId],
        preferred: &[DcId],
        now: Instant,
    ) -> Option<(DcId, DcHealth, f64)> {
        let cfg = &self.cfg;
        let cooling = |dc: DcId| {
            self.jobs
                .get(&key)
                .and_then(|s| s.cooldown_until.get(&dc))
                .is_some_and(|t| now < *t)
        };
        candidates
            .iter()
            .filter(|c| exclusion(c).is_none() && !exclude.contains(&c.dc))
            .map(|c| {
                let s = score(cfg, c, preferred.contains(&c.dc), cooling(c.dc));
                (c.dc, bucket(c), s)
            })
            .min_by(|a, b| a.1.cmp(&b.1).then(a.2.total_cmp(&b.2)).then(a.0.cmp(&b.0)))
    }

    /// Purge expired cooldowns; forget selections older than an hour.
    fn sweep(&mut self, now: Instant) {
        let max_age = self.cfg.state_max_age;
        self.jobs
            .retain(|_, s| now.saturating_since(s.selected_at) < max_age);
        for s in self.jobs.values_mut() {
            s.cooldown_until.retain(|_, t| now < *t);
        }
    }

    /// At most `max_jobs` states: the oldest selections go first.
    fn bound(&mut self) {
        while self.jobs.len() > self.cfg.max_jobs {
            let oldest = self
                .jobs
                .iter()
                .min_by_key(|(j, s)| (s.selected_at, **j))
                .map(|(j, _)| *j)
                .expect("non-empty");
            self.jobs.remove(&oldest);
        }
    }
}
