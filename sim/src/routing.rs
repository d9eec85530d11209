//! The simulator's view of routing (issue 7, AD-16/17/36): every dispatch a gate makes,
//! checked against that gate's own view of DC health (rebuilt from its
//! `DcHealthChanged` events, not read off the decision) and scored against the true
//! RTTs of the network and an oracle that always takes the truly nearest DC of the best
//! bucket. Invariants (routing.md §14.1-2): never a dispatch to a DC the gate holds
//! UNHEALTHY (or has not classified), and never to a worse bucket than the best one
//! holding a DC the job has not tried yet.

use meridian_core::jobs::JobEvent;
use meridian_core::routing::DcHealth;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, Serialize)]
pub struct RoutingReport {
    /// Routing decisions (one per routed job).
    pub decisions: u64,
    /// Dispatches per DC (routed primaries and fallbacks; pinned jobs are not routed).
    pub dispatches: BTreeMap<String, u64>,
    /// Fallback dispatches among them (a DC did not take the job).
    pub fallbacks: u64,
    /// Routing keys (job series) that changed primary DC, and of those the forced ones
    /// (exclusion, bucket drop, confirmed degradation, a failed dispatch).
    pub switches: u64,
    pub forced_switches: u64,
    /// Decisions that kept the routing key's current primary (`hold_down_retained`: it
    /// is still the best, or nothing beat it by 20 % after its 30 s hold-down).
    pub held: u64,
    /// Decisions taken in bootstrap mode (the gate's coordinates immature).
    pub bootstrap_decisions: u64,
    /// Must be 0.
    pub unhealthy_dispatches: u64,
    /// Must be 0.
    pub bucket_violations: u64,
    /// True RTT from the submitting gate to the chosen DC (mean over its managers).
    pub rtt_mean_ms: f64,
    pub rtt_p99_ms: f64,
    /// The same for an oracle choosing the truly nearest DC of the gate's best bucket.
    pub oracle_rtt_mean_ms: f64,
    /// Routed dispatches that went elsewhere than the oracle's choice (more than 1 ms
    /// farther), and the last one's time.
    pub off_oracle_dispatches: u64,
    pub last_off_oracle_ms: Option<u64>,
    /// Jobs no DC could take when submitted (every classified DC excluded).
    pub unroutable: u64,
    /// Every bucket any gate put each DC in during the run, best first.
    pub dc_health_seen: BTreeMap<String, Vec<DcHealth>>,
}

#[derive(Debug, Default)]
pub struct Tracker {
    /// Per (gate node, DC): the gate's bucket for it.
    view: BTreeMap<(usize, u16), DcHealth>,
    /// Per job: the DCs dispatched to so far.
    tried: BTreeMap<u64, Vec<u16>>,
    report: RoutingReport,
    rtts: Vec<f64>,
    oracle: Vec<f64>,
}

/// A violation the tracker found: (invariant, detail).
pub type Violation = (&'static str, String);

impl Tracker {
    /// Node `node` stopped (crash or leave): a gate that comes back is a new machine that
    /// knows no DC until it classifies them again (`DcHealthChanged` from `None`), so its
    /// view starts empty too. (Kept, a restarted gate that had met only its own DC was
    /// held to the buckets its previous life had seen: a false `routing-bucket`.)
    pub fn on_stop(&mut self, node: usize) {
        self.view.retain(|(gate, _), _| *gate != node);
    }

    /// A gate's job event. `rtt_ms(gate, dc)`: the true RTT now; `dc_name(dc)`.
    pub fn on_event(
        &mut self,
        gate: usize,
        e: &JobEvent,
        now_us: u64,
        rtt_ms: &dyn Fn(usize, u16) -> f64,
        dc_name: &dyn Fn(u16) -> String,
    ) -> Option<Violation> {
        match e {
            JobEvent::DcHealthChanged { dc, to, .. } => {
                self.view.insert((gate, dc.0), *to);
                let seen = self.report.dc_health_seen.entry(dc_name(dc.0)).or_default();
                if !seen.contains(to) {
                    seen.push(*to);
                    seen.sort();
                }
            }
            JobEvent::Routed {
                reason, bootstrap, ..
            } => {
                self.report.decisions += 1;
                if *reason == meridian_core::routing::RouteReason::HoldDownRetained {
                    self.report.held += 1;
                }
                self.report.bootstrap_decisions += *bootstrap as u64;
            }
            JobEvent::RouteSwitched { reason, .. } => {
                self.report.switches += 1;
                self.report.forced_switches += reason.forced() as u64;
            }
            JobEvent::Submitted { job, .. } => {
                self.tried.entry(job.0).or_default();
            }
            JobEvent::Finished { job, .. } => {
                if !self.tried.contains_key(&job.0) {
                    self.report.unroutable += 1;
                }
                self.tried.remove(&job.0);
            }
            JobEvent::RouteDispatch {
                job, dc, fallback, ..
            } => {
                let tried = self.tried.entry(job.0).or_default();
                let bucket = self
                    .view
                    .get(&(gate, dc.0))
                    .copied()
                    .unwrap_or(DcHealth::Unhealthy);
                let open: Vec<(u16, DcHealth)> = self
                    .view
                    .range((gate, 0)..=(gate, u16::MAX))
                    .map(|((_, d), h)| (*d, *h))
                    .filter(|(d, h)| *h != DcHealth::Unhealthy && !tried.contains(d))
                    .collect();
                let best = open.iter().map(|(_, h)| *h).min();
                tried.push(dc.0);
                *self.report.dispatches.entry(dc_name(dc.0)).or_default() += 1;
                self.report.fallbacks += *fallback as u64;
                let rtt = rtt_ms(gate, dc.0);
                self.rtts.push(rtt);
                let oracle = open
                    .iter()
                    .filter(|(_, h)| Some(*h) == best)
                    .map(|(d, _)| rtt_ms(gate, *d))
                    .fold(f64::INFINITY, f64::min);
                if oracle.is_finite() {
                    self.oracle.push(oracle);
                    if rtt > oracle + 1.0 {
                        self.report.off_oracle_dispatches += 1;
                        self.report.last_off_oracle_ms = Some(now_us / 1000);
                    }
                }
                if bucket == DcHealth::Unhealthy {
                    self.report.unhealthy_dispatches += 1;
                    return Some((
                        "routing-unhealthy",
                        format!(
                            "job {} sent to {} which its gate holds UNHEALTHY",
                            job.0,
                            dc_name(dc.0)
                        ),
                    ));
                }
                if best.is_some_and(|b| bucket > b) {
                    self.report.bucket_violations += 1;
                    return Some((
                        "routing-bucket",
                        format!(
                            "job {} sent to {} ({bucket:?}) while a {:?} DC was open",
                            job.0,
                            dc_name(dc.0),
                            best.expect("checked")
                        ),
                    ));
                }
            }
            _ => {}
        }
        None
    }

    pub fn report(&self) -> RoutingReport {
        let mut r = self.report.clone();
        let mean = |v: &[f64]| {
            if v.is_empty() {
                0.0
            } else {
                v.iter().sum::<f64>() / v.len() as f64
            }
        };
        r.rtt_mean_ms = round3(mean(&self.rtts));
        r.oracle_rtt_mean_ms = round3(mean(&self.oracle));
        let mut sorted = self.rtts.clone();
        sorted.sort_by(f64::total_cmp);
        r.rtt_p99_ms = sorted
            .get(((sorted.len() as f64 * 0.99).ceil() as usize).saturating_sub(1))
            .map_or(0.0, |x| round3(*x));
        r
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
