//! Issue 3 acceptance: Vivaldi accuracy on the world-cities matrix, adaptive timeouts
//! with far DCs, and re-convergence after a latency shift, with the numbers.

mod common;

use meridian_sim::report::{CoordsReport, CoordsSample};

fn at(c: &CoordsReport, ms: u64) -> &CoordsSample {
    c.series
        .iter()
        .find(|s| s.at_ms == ms)
        .unwrap_or_else(|| panic!("no series point at {ms} ms"))
}

/// Acceptance 2: 100 nodes on the world-cities matrix. After 5 minutes the coordinates'
/// median relative error is <= 0.09 and p90 <= 0.26; after 20 minutes their median is
/// <= 0.07, and so is that of the machines' RTT estimates (coordinates plus their own
/// fresh measurements, which reach ~0.01). The matrix's route inflation is triangular
/// on [1.6, 2.2]: on a uniform draw no embedding reaches 0.07 (the generator's
/// docstring and BENCHMARKS.md say why).
#[test]
fn world_cities_accuracy() {
    let s = common::load("world-cities.toml", &[]);
    for seed in 1..3 {
        let r = meridian_sim::run(&s, seed);
        assert!(r.invariants.violations.is_empty(), "seed {seed}");
        let c = r.coords.as_ref().expect("coordinates are on by default");
        assert_eq!(c.pairs, 100 * 99 / 2);
        let five = at(c, 300_000);
        assert!(five.median_rel_error <= 0.09, "seed {seed}: {five:?}");
        assert!(five.p90_rel_error <= 0.26, "seed {seed}: {five:?}");
        assert!(
            c.median_rel_error <= 0.07,
            "seed {seed}: {}",
            c.median_rel_error
        );
        assert!(c.estimate_median_rel_error <= 0.07, "seed {seed}: {c:?}");
        assert!(c.estimate_p90_rel_error <= 0.26, "seed {seed}");
        // The series covers the run every 10 s and shows convergence.
        assert_eq!(c.series.len(), 120);
        assert!(at(c, 10_000).median_rel_error > 2.0 * five.median_rel_error);
    }
}

/// Acceptance 3: DCs 300 ms apart, base probe timeout 500 ms: zero false positives over
/// 20 seeds with adaptive timeouts. (Without them it is zero too at 300 ms: an ACK to
/// any attempt of a round counts, so 1.15 s of direct attempts absorb the RTT; the
/// difference shows at 1.2 s, asserted below over 100 seeds and recorded in
/// BENCHMARKS.md.) Suspicions come in bursts (one failed probe, gossiped to every
/// member), so over 20 seeds their count is a handful of episodes and too noisy to
/// compare; refutations count the episodes themselves.
#[test]
fn adaptive_timeouts_far_dcs_no_false_positives() {
    let s = common::load("adaptive-timeouts.toml", &[]);
    for r in meridian_sim::sweep(&s, 1..21, 2) {
        assert!(r.invariants.violations.is_empty(), "seed {}", r.seed);
        assert_eq!(r.membership.false_positives, 0, "seed {}", r.seed);
    }
    let far = |adaptive: &str| -> (u64, u64, u64) {
        let set = format!("membership.adaptive_timeouts={adaptive}");
        let s = common::load(
            "adaptive-timeouts.toml",
            &[&set, "network.default_inter_dc_rtt_ms=1200"],
        );
        meridian_sim::sweep(&s, 1..101, 2)
            .iter()
            .fold((0, 0, 0), |(fp, su, re), r| {
                (
                    fp + r.membership.false_positives,
                    su + r.membership.suspicions,
                    re + r.membership.refutations,
                )
            })
    };
    let (fp_on, sus_on, ref_on) = far("true");
    let (_, sus_off, ref_off) = far("false");
    assert_eq!(fp_on, 0);
    assert!(
        ref_on * 2 < ref_off && sus_on < sus_off,
        "adaptive {sus_on} suspicions / {ref_on} refutations vs fixed {sus_off} / {ref_off}"
    );
}

/// Acceptance 4: us-east <-> eu-west jumps from 40 to 200 ms at 5 min; within 2 minutes
/// the median error is back under 0.15 and stays there. The shift must be visible first
/// (else the test would prove nothing).
#[test]
fn coordinates_reconverge_after_a_latency_shift() {
    let s = common::load("latency-shift.toml", &[]);
    for seed in 1..4 {
        let r = meridian_sim::run(&s, seed);
        let c = r.coords.as_ref().expect("coords");
        let before = at(c, 300_000).median_rel_error;
        let peak = c
            .series
            .iter()
            .filter(|p| (300_000..=420_000).contains(&p.at_ms))
            .map(|p| p.median_rel_error)
            .fold(0.0, f64::max);
        assert!(
            peak > 3.0 * before,
            "seed {seed}: shift not visible ({before} -> {peak})"
        );
        for p in c.series.iter().filter(|p| p.at_ms >= 420_000) {
            assert!(p.median_rel_error < 0.15, "seed {seed}: {p:?}");
        }
    }
}

/// Coordinates off: no coordinate on the wire, no `coords` in the report, and nothing
/// else random changes (the engine has its own random stream): same membership verdicts.
#[test]
fn coordinates_can_be_switched_off() {
    let on = common::load("single-dc-crash.toml", &["duration=\"5m\""]);
    let off = common::load(
        "single-dc-crash.toml",
        &["duration=\"5m\"", "membership.coordinates=false"],
    );
    let (a, b) = (meridian_sim::run(&on, 3), meridian_sim::run(&off, 3));
    assert!(a.coords.is_some() && b.coords.is_none());
    assert!(
        b.messages.bytes < a.messages.bytes,
        "PINGs and ACKs are smaller"
    );
    assert_eq!(a.membership.false_positives, b.membership.false_positives);
}

/// Coordinate updates are observable: sampled `Coordinate` events, at most one per node
/// and cluster every 10 s, so a node's coordinate can be plotted over time.
#[test]
fn coordinate_updates_are_sampled_events() {
    let mut s = common::load("latency-shift.toml", &[]);
    s.faults.clear();
    s.duration = std::time::Duration::from_secs(120);
    let mut trace = Vec::new();
    meridian_sim::run_traced(&s, 1, &mut trace);
    let mut last: std::collections::HashMap<(String, u64), f64> = Default::default();
    let mut events = 0;
    for line in String::from_utf8(trace).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let Some(c) = v["event"].get("Coordinate") else {
            continue;
        };
        events += 1;
        let key = (
            v["node"].as_str().unwrap().to_string(),
            c["cluster"].as_u64().unwrap(),
        );
        let t = v["t_ms"].as_f64().unwrap();
        if let Some(prev) = last.insert(key.clone(), t) {
            // (t_ms are printed with µs precision: allow for the float rounding.)
            assert!(t - prev >= 9_999.999, "{key:?}: {prev} then {t}");
        }
        assert_eq!(c["coord"]["vec"].as_array().unwrap().len(), 8);
        assert!(c["samples"].as_u64().unwrap() >= 1);
    }
    // 33 nodes over 2 minutes: every prober reports about every 10 s.
    assert!(events > 33 * 8, "{events} coordinate events");
}

/// Slow nodes do not bend the coordinates (membership.md §8 with §9): a loaded node's
/// RTT samples, and samples of it, measure its queue (1.5-3 s here, on a 1 ms network)
/// and are not fed to Vivaldi. Measured against the network's RTTs the coordinates stay
/// within ~10% (median) and 30% (p90) on seeds 1-3; without peer health the same runs
/// end at a median of 9-17x and a p90 of 160-1,600x, every healthy pair dragged along.
#[test]
fn slow_nodes_do_not_bend_the_coordinates() {
    let on = common::load("lifeguard-slow-node.toml", &[]);
    let off = common::load(
        "lifeguard-slow-node.toml",
        &["membership.peer_health=false"],
    );
    for seed in 1..4 {
        let c = meridian_sim::run(&on, seed)
            .coords
            .expect("coordinates are on");
        assert!(c.median_rel_error <= 0.15, "seed {seed}: {c:?}");
        assert!(c.p90_rel_error <= 0.5, "seed {seed}: {c:?}");
        assert!(c.estimate_p90_rel_error <= 0.5, "seed {seed}: {c:?}");
        let bent = meridian_sim::run(&off, seed)
            .coords
            .expect("coordinates are on");
        assert!(bent.median_rel_error > 1.0, "seed {seed}: {bent:?}");
    }
}
