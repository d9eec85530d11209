//! The JSON report of one run (issue 2's field names).

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: String,
    pub seed: u64,
    pub nodes: usize,
    pub sim_duration_ms: u64,
    pub events: u64,
    pub wall_ms: u64,
    pub trace_hash: String,
    pub throughput: Throughput,
    pub messages: Messages,
    pub membership: MembershipReport,
    /// Cluster leadership (leadership.md §1): one election per DC's managers and one for
    /// the gates.
    pub leadership: LeadershipReport,
    /// The job plane (issue 4); absent without `[[job]]` entries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jobs: Option<JobsReport>,
    /// Vivaldi accuracy (issue 3); absent with coordinates off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coords: Option<CoordsReport>,
    /// Backpressure (issue 6); present with `[[load]]` entries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backpressure: Option<crate::backpressure::BackpressureReport>,
    /// Routing (issue 7); present with routed jobs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routing: Option<crate::routing::RoutingReport>,
    pub invariants: Invariants,
}

/// Relative RTT errors `|estimate - true| / true` over the pairs that share a coordinate
/// space (members of one cluster; a gate's observer of a DC and that DC's members),
/// against the simulator's true RTTs at the end of the run: the network's (a `slow`
/// node's hold is load, which peer health covers, not distance).
#[derive(Debug, Clone, Serialize)]
pub struct CoordsReport {
    /// The coordinates' distance (what serf's client would estimate).
    pub median_rel_error: f64,
    pub p90_rel_error: f64,
    /// Pairs scored (a deterministic sample of at most 20,000).
    pub pairs: usize,
    /// The machines' own estimate: their filtered direct measurement when fresh, else
    /// the coordinates (what timeouts use).
    pub estimate_median_rel_error: f64,
    pub estimate_p90_rel_error: f64,
    /// Probe and suspicion timeouts computed over the run, by every machine, and how many
    /// found the peer's coordinate in the machine's peer table (the others took the
    /// spec's no-coordinate default, the widest timeout).
    pub timeout_lookups: u64,
    pub timeout_lookups_cached: u64,
    /// The coordinates' error every simulated 10 s.
    pub series: Vec<CoordsSample>,
    /// For the HTML report's charts; not in the JSON report.
    #[serde(skip)]
    pub plot: crate::coords::CoordsPlot,
}

#[derive(Debug, Clone, Serialize)]
pub struct CoordsSample {
    pub at_ms: u64,
    pub median_rel_error: f64,
    pub p90_rel_error: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    /// Simulated messages (datagrams and frames sent) per wall-clock second.
    pub messages_per_wall_sec: f64,
    pub events_per_wall_sec: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Messages {
    pub sent: u64,
    pub delivered: u64,
    pub dropped: u64,
    pub bytes: u64,
    pub dropped_loss: u64,
    pub dropped_partition: u64,
    pub dropped_down: u64,
    /// Datagrams corrupted in flight by the network model.
    pub corrupted: u64,
    /// Datagrams the network delivered twice.
    pub duplicated: u64,
    /// Datagrams delivered after a later one on the same link (measured while a reorder
    /// fault is on; absent when zero).
    #[serde(skip_serializing_if = "is_zero")]
    pub reordered: u64,
    /// Datagrams and frames the receiving node could not decode (counted and dropped).
    pub decode_errors: u64,
    /// Of `sent`, datagrams on the out-of-band probe channel (membership.md §9;
    /// absent when zero).
    #[serde(skip_serializing_if = "is_zero")]
    pub oob: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct MembershipReport {
    pub false_positives: u64,
    pub false_positive_details: Vec<FalsePositive>,
    pub detections: Vec<Detection>,
    pub converged_at_ms: Option<u64>,
    pub consistent_at_end: bool,
    pub suspicions: u64,
    pub refutations: u64,
    /// One entry per partition fault: the tracked pairs it cut, how many of them held the
    /// other side dead when it healed, and when all views were consistent again.
    pub partitions: Vec<PartitionReport>,
    /// Table sizes of the live nodes' membership machines at the end of the run, so
    /// leaks (state kept for departed members) show up in reports and tests.
    pub tables_at_end: TablesAtEnd,
    /// Anti-entropy done by the machines running at the end (membership.md §4).
    pub anti_entropy: AntiEntropy,
    /// §9's job layer: what the DC leaders' job-silence watch raised, and its verdicts.
    pub job_layer: crate::check::JobLayerReport,
    /// §9's out-of-band probes (present when `membership.oob` is on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oob: Option<crate::oob::OobReport>,
}

/// Periodic syncs begin with table digests; a full push-pull follows only when they
/// differ (or when one is known to be needed: after a join, to reconnect, to observe).
#[derive(Debug, Clone, Default, Serialize)]
pub struct AntiEntropy {
    /// Digest offers sent.
    pub digest_offers: u64,
    /// Offers answered with an equal digest (no full exchange).
    pub in_step: u64,
    /// Full push-pull frames sent (offers and replies).
    pub full_push_pulls: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct TablesAtEnd {
    pub members_min: usize,
    pub members_max: usize,
    pub gossip_max: usize,
    pub timers_max: usize,
    pub helps_max: usize,
    pub proactive_max: usize,
    pub rate_buckets_max: usize,
    pub coord_peers_max: usize,
    /// Peer-health records (membership.md §9) kept by the busiest machine: 0 once every
    /// loaded node has recovered for 30 s.
    pub health_records_max: usize,
    /// §9's job-layer entries kept by the busiest machine: 0 once every job that raised
    /// one is cleared.
    pub job_suspicions_max: usize,
    /// Per-job entries (gate, manager or worker job tables) of the busiest live node.
    pub job_entries_max: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct PartitionReport {
    pub at_ms: u64,
    pub healed_at_ms: Option<u64>,
    pub cut_pairs: u64,
    pub declared_dead_pairs: u64,
    /// Cut pairs whose view was no longer Alive at the heal (suspected or dead).
    pub suspected_or_dead_pairs: u64,
    pub reconverged_at_ms: Option<u64>,
    /// Per side of the cut: its nodes that others track across the cut, and how many of
    /// them at least one node on the other side held dead at the heal.
    pub sides: Vec<SideReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SideReport {
    pub nodes: u64,
    pub tracked_across: u64,
    pub declared_dead_across: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct FalsePositive {
    pub at_ms: u64,
    pub declarer: String,
    pub node: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Detection {
    pub node: String,
    pub crashed_at_ms: u64,
    pub first_suspect_ms: Option<u64>,
    pub first_dead_ms: Option<u64>,
    pub all_dead_ms: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct JobsReport {
    /// Jobs a gate accepted.
    pub submitted: u64,
    pub completed: u64,
    /// Jobs whose final status is timed out (by any DC, or by the gate's decision).
    pub timed_out: u64,
    /// Gate declarations of a global timeout (jobs.md §5), all jobs.
    pub global_timeouts: u64,
    /// Extensions (AD-26) that lengthened some job's timeout, all jobs.
    pub extensions: u64,
    pub failed: u64,
    /// Submitted, in no terminal state, and tracked by no live node at the end.
    pub lost: u64,
    /// Submitted, not yet terminal, still tracked somewhere at the end.
    pub in_flight: u64,
    /// Submissions that never entered the system: the gate was down, or too loaded to
    /// take new work (AD-22 sheds a client's submission while the gate is Overloaded),
    /// or the client was over its allowance (AD-24's `job_submit`).
    pub refused: u64,
    /// AD-24: what the nodes' rate limiters refused, and what senders held back.
    pub rate_limits: crate::rate_limits::RateLimitReport,
    /// Jobs a new DC leader took over from its predecessor.
    pub takeovers: u64,
    /// Jobs a gate took over from a dead job-leading gate.
    pub gate_takeovers: u64,
    pub per_job: Vec<JobEntry>,
}

#[derive(Debug, Clone, Serialize)]
pub struct JobEntry {
    pub id: u64,
    pub submitted_ms: u64,
    pub ended_ms: Option<u64>,
    /// completed | failed | timed_out | in_flight | lost | refused
    pub state: String,
    pub dcs: u16,
    /// Who timed the job out: `local` (a single-DC job's leader manager), `global` (its
    /// gate's decision) or `fallback` (a manager whose gate did not answer for 300 s).
    pub timed_out_by: Option<String>,
    /// Extensions granted to workers running this job, and their sum.
    pub extensions: u64,
    pub extended_ms: u64,
    /// DCs that ran the timeout action for this job.
    pub dcs_timed_out: u16,
    /// Workers still running (or reporting) one of its workflows when the run ended:
    /// 0 once a timed-out job has been stopped everywhere.
    pub running_at_end: u16,
    /// For a job that ended: gates and managers still holding any state of it at the end
    /// (jobs.md §7.10: tracking always ends; replicas go within their 95 s TTL).
    pub tracked_at_end: u16,
    /// Items its gate recorded with the outcome (from the DCs' results), and the items
    /// its workflows really completed (their first finished runs).
    pub items: Option<u64>,
    pub items_expected: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct LeadershipReport {
    /// `LeaderElected` events, all groups.
    pub elections: u64,
    /// The most distinct leaders any `(group, term)` had (election safety: at most 1).
    pub leaders_per_term_max: u64,
    /// Per group ("gates" or the DC's name): how many leaders were elected.
    pub leader_changes: std::collections::BTreeMap<String, u64>,
    /// Per group, the leader every live voter follows at the end (null if they do not
    /// agree, or follow nobody).
    pub leaders_at_end: std::collections::BTreeMap<String, Option<String>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Invariants {
    pub checked: u64,
    pub violations_total: u64,
    pub violations: Vec<Violation>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Violation {
    pub at_ms: u64,
    pub invariant: String,
    pub detail: String,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.invariants.violations_total == 0
    }

    /// A short human summary.
    pub fn summary(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "scenario {} (seed {}), {} nodes, {:.1} simulated s in {} ms wall",
            self.scenario,
            self.seed,
            self.nodes,
            self.sim_duration_ms as f64 / 1000.0,
            self.wall_ms
        );
        let m = &self.messages;
        let _ = writeln!(s, "  messages: {} sent, {} delivered, {} dropped ({} loss, {} partition, {} to down nodes), {} bytes; {:.2} M msg/wall-s", m.sent, m.delivered, m.dropped, m.dropped_loss, m.dropped_partition, m.dropped_down, m.bytes, self.throughput.messages_per_wall_sec / 1e6);
        let mb = &self.membership;
        let conv = match mb.converged_at_ms {
            Some(t) if mb.consistent_at_end => {
                format!("views consistent since {:.1} s", t as f64 / 1000.0)
            }
            Some(t) => format!(
                "views last consistent at {:.1} s, not at the end",
                t as f64 / 1000.0
            ),
            None => "views never consistent".to_string(),
        };
        let _ = writeln!(
            s,
            "  membership: {} suspicions, {} refutations, {} false positives; {}",
            mb.suspicions, mb.refutations, mb.false_positives, conv
        );
        let jl = &mb.job_layer;
        if jl.suspected + jl.rejected > 0 {
            let _ = writeln!(
                s,
                "  job layer: {} (job, worker) suspicions, {} dead for their job, {} refuted, {} cleared, {} refused",
                jl.suspected, jl.dead, jl.refuted, jl.cleared, jl.rejected
            );
        }
        if let Some(o) = &mb.oob {
            let _ = writeln!(
                s,
                "  out-of-band: {} probes, {} acks, {} nacks; {} suspicions extended ({} then refuted, {} declared dead)",
                o.probes, o.acks, o.nacks, o.extended, o.then_refuted, o.then_dead
            );
        }
        for p in &mb.partitions {
            let heal = p.healed_at_ms.map_or("never healed".into(), |h| {
                format!("healed at {:.1} s", h as f64 / 1000.0)
            });
            let back = match (p.healed_at_ms, p.reconverged_at_ms) {
                (Some(h), Some(r)) => format!(
                    "views consistent {:.1} s after the heal",
                    (r - h) as f64 / 1000.0
                ),
                (Some(_), None) => "views NOT consistent again".into(),
                _ => String::new(),
            };
            let _ = writeln!(s, "  partition at {:.1} s, {heal}: {}/{} cut pairs declared the other side dead; {back}", p.at_ms as f64 / 1000.0, p.declared_dead_pairs, p.cut_pairs);
        }
        for d in &mb.detections {
            let rel = |t: Option<u64>| {
                t.map_or("-".to_string(), |t| {
                    format!("+{:.1}s", (t - d.crashed_at_ms) as f64 / 1000.0)
                })
            };
            let _ = writeln!(
                s,
                "  crash {} at {:.1} s: first suspect {}, first dead {}, dead everywhere {}",
                d.node,
                d.crashed_at_ms as f64 / 1000.0,
                rel(d.first_suspect_ms),
                rel(d.first_dead_ms),
                rel(d.all_dead_ms)
            );
        }
        let l = &self.leadership;
        if l.elections > 0 {
            let leaders: Vec<String> = l
                .leaders_at_end
                .iter()
                .map(|(g, who)| format!("{g}: {}", who.as_deref().unwrap_or("none agreed")))
                .collect();
            let _ = writeln!(
                s,
                "  leadership: {} elections; leaders at the end: {}",
                l.elections,
                leaders.join(", ")
            );
        }
        if let Some(j) = &self.jobs {
            let _ = writeln!(
                s,
                "  jobs: {} submitted, {} completed, {} timed out, {} failed, {} lost, {} in flight, {} refused; {} DC-leader and {} gate takeovers",
                j.submitted, j.completed, j.timed_out, j.failed, j.lost, j.in_flight, j.refused, j.takeovers, j.gate_takeovers
            );
            let rl = &j.rate_limits;
            if rl.refused > 0 || rl.held > 0 {
                let _ = writeln!(
                    s,
                    "  rate limits (AD-24): {} requests refused ({} of them submissions), {} messages held back by their senders",
                    rl.refused, rl.submissions_refused, rl.held
                );
            }
            if j.timed_out > 0 || j.extensions > 0 {
                let by = |k: &str| {
                    j.per_job
                        .iter()
                        .filter(|e| e.timed_out_by.as_deref() == Some(k))
                        .count()
                };
                let _ = writeln!(
                    s,
                    "  timeouts: {} local, {} global, {} fallback; {} extensions granted",
                    by("local"),
                    by("global"),
                    by("fallback"),
                    j.extensions
                );
            }
        }
        if let Some(r) = &self.routing {
            let per_dc: Vec<String> = r
                .dispatches
                .iter()
                .map(|(dc, n)| format!("{dc} {n}"))
                .collect();
            let _ = writeln!(
                s,
                "  routing: {} decisions ({} bootstrap), dispatches {}; {} switches ({} forced), {} fallbacks; true RTT {:.1} ms vs oracle {:.1} ms; {} to UNHEALTHY, {} below the best bucket",
                r.decisions,
                r.bootstrap_decisions,
                per_dc.join(", "),
                r.switches,
                r.forced_switches,
                r.fallbacks,
                r.rtt_mean_ms,
                r.oracle_rtt_mean_ms,
                r.unhealthy_dispatches,
                r.bucket_violations
            );
        }
        if let Some(c) = &self.coords {
            let _ = writeln!(
                s,
                "  coordinates: median relative RTT error {:.3} (p90 {:.3}) over {} pairs; the nodes' own estimates {:.3} (p90 {:.3})",
                c.median_rel_error, c.p90_rel_error, c.pairs, c.estimate_median_rel_error, c.estimate_p90_rel_error
            );
            if c.timeout_lookups > 0 {
                let _ = writeln!(
                    s,
                    "  coordinates: {:.1}% of {} timeout lookups found the peer cached",
                    100.0 * c.timeout_lookups_cached as f64 / c.timeout_lookups as f64,
                    c.timeout_lookups
                );
            }
        }
        let inv = &self.invariants;
        if inv.violations_total == 0 {
            let _ = writeln!(s, "  invariants: {} checks, all held", inv.checked);
        } else {
            let _ = writeln!(
                s,
                "  invariants: {} checks, {} VIOLATED",
                inv.checked, inv.violations_total
            );
            for v in inv.violations.iter().take(10) {
                let _ = writeln!(s, "    {} ms {}: {}", v.at_ms, v.invariant, v.detail);
            }
        }
        let _ = write!(s, "  trace hash {}", self.trace_hash);
        s
    }
}

fn is_zero(x: &u64) -> bool {
    *x == 0
}
