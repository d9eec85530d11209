//! Healthcheck extensions (AD-26, jobs.md §2): a busy worker buys more time by proving
//! progress. Grants halve each time (`base / 2^(n+1)`: 15, 7.5, 3.75, 1.875, then the
//! 1 s floor), at most five per cycle; a request without strictly more progress is
//! denied; a worker denied three times in a row, or exhausted and past its 10 s grace,
//! is evicted. A new cycle starts when the worker completes a workflow or answers a
//! liveness check.
//!
//! Spec conflict (jobs.md §2's reset, taken literally): if answering a liveness probe
//! zeroed every field, a worker that is responsive but stuck would get a fresh first
//! grant (which needs no progress) after every probe and never be evicted, while with
//! no reset on liveness at all (this module's first cut) a healthy worker whose
//! workflows run past ~60 s exhausts its five grants and is evicted. So the two resets
//! differ here: a completed workflow (or a refuted suspicion) starts a clean cycle;
//! an answered liveness probe ([`WorkerExtensions::heard`]: membership heard from the
//! worker directly since its last grant) refills the grant budget only, and the
//! progress to beat and the run of denials stay. A stuck worker is still evicted after
//! three denials; a progressing one is never exhausted while it answers probes; one
//! that cannot answer them keeps AD-26's bounded budget.
//!
//! One [`WorkerExtensions`] per worker lives on the DC's leader manager; the manager
//! also passes every grant to the timeout state of each job with a workflow on that
//! worker (`record_worker_extension`) and to membership (the worker's suspicion timer
//! is stretched by the same amount).

use crate::time::{secs, Instant};
use core::time::Duration;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq)]
pub struct ExtensionConfig {
    pub base_deadline: Duration,
    pub min_grant: Duration,
    pub max_extensions: u32,
    /// A grant that leaves this many (or fewer) extensions carries a one-off warning.
    pub warning_threshold: u32,
    /// After exhaustion the worker has this long before eviction.
    pub grace_period: Duration,
    /// Consecutive denials that evict.
    pub eviction_threshold: u32,
    /// Grant `n` (0-based) is `base / 2^(n + exponent_offset)`. jobs.md Q1: AD-26's
    /// text uses offset 0 (30, 15, ...), the tracker the spec follows offset 1.
    pub exponent_offset: u32,
    /// Requests from one worker closer together than this are refused before they reach
    /// the tracker (the per-client limiter); they count as no denial.
    pub min_request_interval: Duration,
}

impl Default for ExtensionConfig {
    fn default() -> Self {
        ExtensionConfig {
            base_deadline: secs(30),
            min_grant: secs(1),
            max_extensions: 5,
            warning_threshold: 1,
            grace_period: secs(10),
            eviction_threshold: 3,
            exponent_offset: 1,
            min_request_interval: secs(1),
        }
    }
}

/// What a worker shows to earn an extension (jobs.md §2, "what a worker must show").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ExtensionRequest {
    /// Progress 0..1 in millionths, used when completed items are not comparable (an
    /// integer, so comparisons are exact and messages hashable).
    pub current_progress_ppm: u32,
    /// Absolute progress, preferred over the float.
    pub completed_items: Option<u64>,
    pub total_items: Option<u64>,
    pub active_workflows: u16,
    /// The worker's estimate of how long it still needs, in milliseconds.
    pub estimated_completion_ms: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Denial {
    /// Five grants this cycle already.
    MaximumExceeded,
    /// Not strictly more progress than at the previous grant.
    NoProgress,
    /// The request does not come from a registered worker.
    UnknownWorker,
    /// Too soon after the previous request (per-client limiter).
    RateLimited,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ExtensionResponse {
    pub granted: bool,
    /// The grant, in microseconds (0 if denied).
    pub extension_us: u64,
    /// The worker's healthcheck deadline after this answer, as microseconds from the
    /// manager's `now` (instants do not cross hosts).
    pub deadline_in_us: u64,
    pub remaining_extensions: u32,
    pub denial: Option<Denial>,
    pub is_exhaustion_warning: bool,
    pub grace_period_remaining_us: u64,
    pub in_grace_period: bool,
}

/// One cycle's state (jobs.md §2's tracker).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExtensionTracker {
    pub extension_count: u32,
    pub last_progress_ppm: u32,
    pub last_completed_items: Option<u64>,
    pub total_extended: Duration,
    pub last_extension_at: Option<Instant>,
    pub exhaustion_at: Option<Instant>,
    pub warning_sent: bool,
    /// The progress to beat was carried over from an earlier cycle (a liveness refill),
    /// so even this cycle's first request must show more.
    pub progress_carried: bool,
}

impl ExtensionTracker {
    /// The grant the `n`-th extension (0-based) of a cycle gets.
    pub fn grant_for(cfg: &ExtensionConfig, n: u32) -> Duration {
        let shift = (n + cfg.exponent_offset).min(63);
        let g = cfg.base_deadline.as_micros() as u64 >> shift;
        Duration::from_micros(g).max(cfg.min_grant)
    }

    /// The grant rule. `Ok((grant, is_warning))` or the denial.
    pub fn request(
        &mut self,
        cfg: &ExtensionConfig,
        req: &ExtensionRequest,
        now: Instant,
    ) -> Result<(Duration, bool), Denial> {
        if self.extension_count >= cfg.max_extensions {
            self.exhaustion_at.get_or_insert(now);
            return Err(Denial::MaximumExceeded);
        }
        if self.extension_count > 0 || self.progress_carried {
            let progressed = match (req.completed_items, self.last_completed_items) {
                (Some(now_items), Some(before)) => now_items > before,
                _ => req.current_progress_ppm > self.last_progress_ppm,
            };
            if !progressed {
                return Err(Denial::NoProgress);
            }
        }
        let grant = Self::grant_for(cfg, self.extension_count);
        self.extension_count += 1;
        self.last_progress_ppm = req.current_progress_ppm;
        if req.completed_items.is_some() {
            self.last_completed_items = req.completed_items;
        }
        self.total_extended += grant;
        self.last_extension_at = Some(now);
        let remaining = cfg.max_extensions - self.extension_count;
        let warning = remaining <= cfg.warning_threshold && !self.warning_sent;
        if warning {
            self.warning_sent = true;
        }
        Ok((grant, warning))
    }

    pub fn remaining(&self, cfg: &ExtensionConfig) -> u32 {
        cfg.max_extensions.saturating_sub(self.extension_count)
    }

    pub fn in_grace_period(&self, cfg: &ExtensionConfig, now: Instant) -> bool {
        self.exhaustion_at
            .is_some_and(|t| now.saturating_since(t) < cfg.grace_period)
    }

    pub fn grace_period_remaining(&self, cfg: &ExtensionConfig, now: Instant) -> Duration {
        self.exhaustion_at.map_or(Duration::ZERO, |t| {
            cfg.grace_period.saturating_sub(now.saturating_since(t))
        })
    }
}

/// A worker as the leader manager sees it for extensions.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WorkerExtensions {
    pub tracker: ExtensionTracker,
    pub consecutive_denials: u32,
    /// The worker's healthcheck deadline (set by the first grant).
    pub deadline: Option<Instant>,
    pub last_request_at: Option<Instant>,
    /// When membership last heard from the worker directly (it answered a probe, or
    /// probed us), as the node last told us.
    pub heard_at: Option<Instant>,
}

/// A request's outcome on the manager: the answer to send, and the grant to pass on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Handled {
    pub response: ExtensionResponse,
    pub grant: Option<Duration>,
}

impl WorkerExtensions {
    pub fn handle(
        &mut self,
        cfg: &ExtensionConfig,
        req: &ExtensionRequest,
        now: Instant,
    ) -> Handled {
        let limited = self
            .last_request_at
            .is_some_and(|t| now.saturating_since(t) < cfg.min_request_interval);
        let answered_since_grant = self
            .heard_at
            .zip(self.tracker.last_extension_at)
            .is_some_and(|(heard, granted)| heard > granted);
        if answered_since_grant && !limited {
            self.refill();
        }
        let result = if limited {
            Err(Denial::RateLimited)
        } else {
            self.last_request_at = Some(now);
            self.tracker.request(cfg, req, now)
        };
        match result {
            Ok((grant, warning)) => {
                self.consecutive_denials = 0;
                let deadline = self.deadline.unwrap_or(now + cfg.base_deadline) + grant;
                self.deadline = Some(deadline);
                Handled {
                    response: self.response(cfg, now, Some(grant), None, warning),
                    grant: Some(grant),
                }
            }
            Err(denial) => {
                if denial != Denial::RateLimited {
                    self.consecutive_denials += 1;
                }
                Handled {
                    response: self.response(cfg, now, None, Some(denial), false),
                    grant: None,
                }
            }
        }
    }

    fn response(
        &self,
        cfg: &ExtensionConfig,
        now: Instant,
        grant: Option<Duration>,
        denial: Option<Denial>,
        warning: bool,
    ) -> ExtensionResponse {
        ExtensionResponse {
            granted: grant.is_some(),
            extension_us: grant.map_or(0, |g| g.as_micros() as u64),
            deadline_in_us: self
                .deadline
                .map_or(0, |d| d.saturating_since(now).as_micros() as u64),
            remaining_extensions: self.tracker.remaining(cfg),
            denial,
            is_exhaustion_warning: warning,
            grace_period_remaining_us: self.tracker.grace_period_remaining(cfg, now).as_micros()
                as u64,
            in_grace_period: self.tracker.in_grace_period(cfg, now),
        }
    }

    /// Checked after a denial and on tick.
    pub fn should_evict(&self, cfg: &ExtensionConfig, now: Instant) -> bool {
        self.consecutive_denials >= cfg.eviction_threshold
            || self
                .tracker
                .exhaustion_at
                .is_some_and(|t| now.saturating_since(t) >= cfg.grace_period)
    }

    /// When an exhausted worker's grace runs out (for the manager's deadline).
    pub fn grace_ends_at(&self, cfg: &ExtensionConfig) -> Option<Instant> {
        self.tracker.exhaustion_at.map(|t| t + cfg.grace_period)
    }

    /// A clean new cycle: the worker completed a workflow, or refuted a suspicion.
    pub fn reset(&mut self) {
        self.tracker = ExtensionTracker::default();
        self.consecutive_denials = 0;
        self.deadline = None;
    }

    /// Membership heard from the worker directly at `at` (see the module doc).
    pub fn heard(&mut self, at: Instant) {
        self.heard_at = Some(self.heard_at.map_or(at, |h| h.max(at)));
    }

    /// The worker answered a liveness probe since its last grant: a new cycle whose
    /// budget is full, but which keeps the progress to beat and the denials.
    fn refill(&mut self) {
        let t = &self.tracker;
        self.tracker = ExtensionTracker {
            last_progress_ppm: t.last_progress_ppm,
            last_completed_items: t.last_completed_items,
            progress_carried: t.extension_count > 0 || t.progress_carried,
            ..ExtensionTracker::default()
        };
        self.deadline = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::millis;

    fn req(items: u64) -> ExtensionRequest {
        ExtensionRequest {
            current_progress_ppm: 0,
            completed_items: Some(items),
            total_items: Some(100),
            active_workflows: 1,
            estimated_completion_ms: 60_000,
        }
    }

    #[test]
    fn grants_halve_from_15_s_to_the_1_s_floor_and_stop_at_five() {
        let cfg = ExtensionConfig::default();
        let t = Instant::ZERO;
        let mut w = WorkerExtensions::default();
        let mut grants = Vec::new();
        for i in 0..5u64 {
            let h = w.handle(&cfg, &req(i + 1), t + secs(10 * i));
            grants.push(h.grant.expect("granted"));
            assert_eq!(h.response.remaining_extensions, 4 - i as u32);
            // The warning fires once, at the grant that leaves 1.
            assert_eq!(h.response.is_exhaustion_warning, i == 3, "grant {i}");
        }
        assert_eq!(
            grants,
            vec![
                millis(15_000),
                millis(7_500),
                millis(3_750),
                millis(1_875),
                secs(1)
            ]
        );
        assert_eq!(w.tracker.total_extended, millis(29_125));
        // Deadline: now + 30 s at the first grant, then each grant added on.
        assert_eq!(w.deadline, Some(t + secs(30) + millis(29_125)));
        // The sixth request is denied, starts the grace period...
        let at = t + secs(60);
        let h = w.handle(&cfg, &req(99), at);
        assert_eq!(h.response.denial, Some(Denial::MaximumExceeded));
        assert!(h.response.in_grace_period);
        assert_eq!(h.response.grace_period_remaining_us, 10_000_000);
        assert!(!w.should_evict(&cfg, at + millis(9_999)));
        // ...and 10 s later the worker is evicted.
        assert!(w.should_evict(&cfg, at + secs(10)));
        // Offset 0 (AD-26's text): 30, 15, ...
        let ad = ExtensionConfig {
            exponent_offset: 0,
            ..cfg
        };
        assert_eq!(ExtensionTracker::grant_for(&ad, 0), secs(30));
    }

    #[test]
    fn later_grants_need_strictly_more_progress_and_three_denials_evict() {
        let cfg = ExtensionConfig::default();
        let t = Instant::ZERO;
        let mut w = WorkerExtensions::default();
        // The first request of a cycle needs no progress.
        assert!(w.handle(&cfg, &req(5), t).grant.is_some());
        for k in 1..=3u64 {
            let h = w.handle(&cfg, &req(5), t + secs(10 * k));
            assert_eq!(h.response.denial, Some(Denial::NoProgress));
            assert_eq!(w.consecutive_denials, k as u32);
        }
        assert!(w.should_evict(&cfg, t + secs(30)));
        // A denial keeps the deadline; a grant clears the denials.
        assert_eq!(w.deadline, Some(t + secs(45)));
        let h = w.handle(&cfg, &req(6), t + secs(40));
        assert_eq!(h.grant, Some(millis(7_500)));
        assert_eq!(w.consecutive_denials, 0);
        // Without item counts the fraction decides, strictly.
        let mut f = WorkerExtensions::default();
        let float = |p| ExtensionRequest {
            current_progress_ppm: p,
            completed_items: None,
            ..req(0)
        };
        assert!(f.handle(&cfg, &float(500_000), t).grant.is_some());
        assert!(f.handle(&cfg, &float(500_000), t + secs(5)).grant.is_none());
        assert!(f
            .handle(&cfg, &float(600_000), t + secs(10))
            .grant
            .is_some());
    }

    #[test]
    fn the_limiter_refuses_bursts_without_counting_them_and_reset_starts_a_cycle() {
        let cfg = ExtensionConfig::default();
        let t = Instant::ZERO;
        let mut w = WorkerExtensions::default();
        w.handle(&cfg, &req(1), t);
        let h = w.handle(&cfg, &req(2), t + millis(500));
        assert_eq!(h.response.denial, Some(Denial::RateLimited));
        assert_eq!(w.consecutive_denials, 0);
        w.handle(&cfg, &req(2), t + secs(2));
        assert_eq!(w.tracker.extension_count, 2);
        w.reset();
        assert_eq!(w.tracker, ExtensionTracker::default());
        assert_eq!((w.consecutive_denials, w.deadline), (0, None));
        // A fresh cycle starts at 15 s again, whatever the progress.
        assert_eq!(w.handle(&cfg, &req(0), t + secs(5)).grant, Some(secs(15)));
    }

    #[test]
    fn a_liveness_answer_refills_the_budget_but_keeps_the_progress_to_beat() {
        let cfg = ExtensionConfig::default();
        let t = Instant::ZERO;
        let mut w = WorkerExtensions::default();
        assert_eq!(w.handle(&cfg, &req(10), t).grant, Some(secs(15)));
        // Heard from it after the grant: the next grant is a cycle's first again.
        w.heard(t + secs(3));
        assert_eq!(w.handle(&cfg, &req(20), t + secs(10)).grant, Some(secs(15)));
        assert_eq!(w.tracker.extension_count, 1);
        // Heard only before the latest grant: no refill, the halving goes on.
        assert_eq!(
            w.handle(&cfg, &req(30), t + secs(20)).grant,
            Some(millis(7_500))
        );
        // A refill never forgets the progress to beat: no more items, no grant.
        w.heard(t + secs(25));
        let h = w.handle(&cfg, &req(30), t + secs(30));
        assert_eq!(h.response.denial, Some(Denial::NoProgress));
        assert_eq!(w.tracker.extension_count, 0, "refilled all the same");
    }

    #[test]
    fn a_worker_that_answers_probes_but_is_stuck_is_still_evicted() {
        let cfg = ExtensionConfig::default();
        let t = Instant::ZERO;
        let mut w = WorkerExtensions::default();
        assert!(w.handle(&cfg, &req(5), t).grant.is_some());
        for k in 1..=3u64 {
            w.heard(t + secs(10 * k) - secs(1));
            let h = w.handle(&cfg, &req(5), t + secs(10 * k));
            assert_eq!(h.response.denial, Some(Denial::NoProgress));
            assert_eq!(w.consecutive_denials, k as u32, "a refill keeps denials");
        }
        assert!(w.should_evict(&cfg, t + secs(30)));
    }

    #[test]
    fn an_exhausted_worker_that_answers_a_probe_and_progressed_is_granted_again() {
        let cfg = ExtensionConfig::default();
        let t = Instant::ZERO;
        let mut w = WorkerExtensions::default();
        for i in 0..5u64 {
            assert!(w
                .handle(&cfg, &req(i + 1), t + secs(10 * i))
                .grant
                .is_some());
        }
        let h = w.handle(&cfg, &req(6), t + secs(50));
        assert_eq!(h.response.denial, Some(Denial::MaximumExceeded));
        assert!(h.response.in_grace_period);
        // In its grace it answers a probe: a full budget, no exhaustion, no eviction.
        w.heard(t + secs(52));
        let h = w.handle(&cfg, &req(7), t + secs(55));
        assert_eq!(h.grant, Some(secs(15)));
        assert!(!h.response.in_grace_period);
        assert_eq!(w.tracker.exhaustion_at, None);
        assert!(!w.should_evict(&cfg, t + secs(100)));
    }
}
