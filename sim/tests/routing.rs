//! Issue 7 (AD-16/17/36): the gate routes every job through the router; the simulator
//! checks each dispatch against the gate's own health view and scores it against the
//! true RTTs and an oracle.

mod common;

use meridian_core::routing::DcHealth;
use meridian_sim::report::Report;

fn routing(r: &Report) -> &meridian_sim::routing::RoutingReport {
    r.routing
        .as_ref()
        .expect("routed jobs give a routing report")
}

fn clean(r: &Report) {
    assert!(
        r.invariants.violations.is_empty(),
        "seed {}: {:?}",
        r.seed,
        r.invariants.violations
    );
    let rt = routing(r);
    assert_eq!(
        (rt.unhealthy_dispatches, rt.bucket_violations),
        (0, 0),
        "seed {}",
        r.seed
    );
}

/// Acceptance 2: a DC whose RTT swings across its rival's every 15 s. With hysteresis
/// the series switches at most once per 30 s hold-down (here: once, when the first swing
/// makes `b` better by more than 20 %); without it, it follows the swings.
#[test]
fn flapping_switches_stay_within_one_per_hold_down() {
    let on = meridian_sim::sweep(&common::load("routing-flapping.toml", &[]), 1..6, 2);
    let off = meridian_sim::sweep(
        &common::load("routing-flapping.toml", &["routing.hysteresis=false"]),
        1..6,
        2,
    );
    let hold_downs = |r: &Report| r.sim_duration_ms / 30_000;
    let (mut with, mut without) = (0, 0);
    for (a, b) in on.iter().zip(&off) {
        clean(a);
        clean(b);
        let (sa, sb) = (routing(a).switches, routing(b).switches);
        assert!(sa <= hold_downs(a), "seed {}: {sa} switches", a.seed);
        assert!(
            sa <= 2,
            "seed {}: hysteresis should hold, {sa} switches",
            a.seed
        );
        assert!(
            sb >= 10,
            "seed {}: the swings cross the threshold, {sb}",
            b.seed
        );
        with += sa;
        without += sb;
    }
    assert!(without > 5 * with, "{with} vs {without}");
}

/// Acceptance 3: dc-a (30 ms) turns 200 ms at 4 min; dc-b (60 ms) is then nearest. New
/// jobs move within hold-down plus the time the RTT estimate needs, and over the run the
/// chosen DCs' true RTT stays within 15 % of the oracle's.
#[test]
fn latency_shift_moves_jobs_to_the_new_nearest_dc() {
    let s = common::load("routing-latency-shift.toml", &[]);
    for r in meridian_sim::sweep(&s, 1..6, 2) {
        clean(&r);
        let rt = routing(&r);
        let jobs = r.jobs.as_ref().expect("jobs");
        assert_eq!(jobs.completed, jobs.submitted, "seed {}", r.seed);
        assert!(
            rt.dispatches["dc-a"] > 0 && rt.dispatches["dc-b"] > 0,
            "{rt:?}"
        );
        // Shift at 240 s; hold-down 30 s; the estimate needs its filter window (at most
        // 2 min, the coordinates' re-convergence bound).
        let settled = rt.last_off_oracle_ms.unwrap_or(0);
        assert!(
            settled <= 240_000 + 30_000 + 120_000,
            "seed {}: {settled}",
            r.seed
        );
        assert!(
            rt.rtt_mean_ms <= 1.15 * rt.oracle_rtt_mean_ms,
            "seed {}: {} vs oracle {}",
            r.seed,
            rt.rtt_mean_ms,
            rt.oracle_rtt_mean_ms
        );
    }
}

/// Acceptance 4: `near` goes BUSY (full), then UNHEALTHY (no workers), then recovers.
/// Over 200 seeds no job is sent to a DC its gate holds UNHEALTHY, nor to a worse
/// bucket than the best one open; and the scenario does what it says.
#[test]
fn dc_degrades_never_routes_unhealthy_or_below_the_best_bucket() {
    let s = common::load("routing-dc-degrades.toml", &[]);
    let runs = meridian_sim::sweep(&s, 1..201, 2);
    for r in &runs {
        clean(r);
    }
    let r = &runs[0];
    let rt = routing(r);
    let near = &rt.dc_health_seen["near"];
    for h in [DcHealth::Healthy, DcHealth::Busy, DcHealth::Unhealthy] {
        assert!(near.contains(&h), "near was never {h:?}: {near:?}");
    }
    assert!(
        rt.dispatches["near"] > 0 && rt.dispatches["mid"] > 0,
        "{rt:?}"
    );
}

/// Acceptance 5: jobs from the first seconds, before registration and with immature
/// coordinates: none fails for it, some are routed in bootstrap mode; and with
/// coordinates off altogether every decision is a bootstrap one and every DC still takes
/// jobs (none is excluded for lacking a coordinate).
#[test]
fn cold_start_routes_every_job() {
    for overrides in [&[][..], &["membership.coordinates=false"][..]] {
        let s = common::load("routing-cold-start.toml", overrides);
        for r in meridian_sim::sweep(&s, 1..6, 2) {
            clean(&r);
            let rt = routing(&r);
            let jobs = r.jobs.as_ref().expect("jobs");
            assert_eq!(jobs.submitted, 40, "seed {}", r.seed);
            assert_eq!(jobs.completed, 40, "seed {}: {jobs:?}", r.seed);
            assert_eq!(rt.unroutable, 0);
            assert!(rt.bootstrap_decisions > 0, "seed {}", r.seed);
            if !overrides.is_empty() {
                assert_eq!(rt.bootstrap_decisions, rt.decisions);
                assert_eq!(rt.dispatches.len(), 3, "{:?}", rt.dispatches);
            }
        }
    }
}

/// What a routed run's trace says about the DC named `dc`: the jobs the gate fell back
/// from it for, the ones it then withdrew (and when, ms), and the ones it timed out
/// after they had completed elsewhere.
#[derive(Default, Debug)]
struct FellBack {
    cooled: Vec<u64>,
    withdrawn: Vec<u64>,
    withdrawn_at_ms: Vec<f64>,
    timed_out_after_completion: Vec<u64>,
}

fn fell_back_from(s: &meridian_sim::scenario::Scenario, dc: &str) -> (Report, FellBack) {
    let mut trace = Vec::new();
    let r = meridian_sim::run_traced(s, 1, &mut trace);
    let d = s.dcs.iter().position(|x| x.name == dc).unwrap() as u64;
    let (mut f, mut completed) = (FellBack::default(), Vec::new());
    for line in String::from_utf8(trace).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let Some(job) = v["event"].get("Job") else {
            continue;
        };
        let id = |e: &serde_json::Value| e["job"].as_u64().unwrap();
        if let Some(c) = job.get("RouteCooldown").filter(|c| c["dc"] == d) {
            f.cooled.push(id(c));
        }
        if let Some(w) = job.get("Withdrawn").filter(|w| w["dc"] == d) {
            f.withdrawn.push(id(w));
            f.withdrawn_at_ms.push(v["t_ms"].as_f64().unwrap());
        }
        if let Some(e) = job.get("Finished").filter(|e| e["state"] == "Completed") {
            completed.push(id(e));
        }
        if let Some(t) = job.get("TimedOut").filter(|t| t["dc"] == d) {
            if completed.contains(&id(t)) {
                f.timed_out_after_completion.push(id(t));
            }
        }
    }
    (r, f)
}

/// `routing-dc-degrades` (seed 1) with `near` cut off one way from 56 s (it hears,
/// nobody hears it) and `then` the faults that follow, read as [`fell_back_from`] `near`.
fn near_cut_off(then: &str) -> (Report, FellBack) {
    near_cut_off_with_gates(1, then)
}

/// [`near_cut_off`] with `gates` gates in `edge` (the jobs go to `edge/gate-0`).
fn near_cut_off_with_gates(gates: usize, then: &str) -> (Report, FellBack) {
    let mut s = common::load("routing-dc-degrades.toml", &[]);
    s.dcs[0].gates = gates;
    common::add_faults(
        &mut s,
        r#"
        [[fault]]
        at = "56s"
        action = "partition"
        groups = [["near"]]
        one_way = true
        "#,
    );
    common::add_faults(&mut s, then);
    fell_back_from(&s, "near")
}

/// `near` cut off one way (it hears, nobody hears it) from 56 s to 78 s, while routed
/// jobs are sent to it: it accepts them, its answers are lost, and the gate falls back
/// to the next DC. The gate withdraws each job from `near` as it moves on, and `near`,
/// which hears it, cancels the copy it holds instead of running it and timing it out
/// (found by a chaos sweep: seed 30012 of this scenario with `--chaos 5`).
#[test]
fn a_dc_the_job_fell_back_from_is_told_to_withdraw_it() {
    let (r, f) = near_cut_off(
        r#"
        [[fault]]
        at = "78s"
        action = "heal"
        "#,
    );
    clean(&r);
    assert!(!f.withdrawn.is_empty(), "{f:?}");
    assert!(f.withdrawn.iter().all(|j| f.cooled.contains(j)), "{f:?}");
    assert!(f.timed_out_after_completion.is_empty(), "{f:?}");
}

/// The same, but the cut turns two-way from 70 s to 90 s, so the first withdrawals are
/// lost too. The gate sends each again (5 s, then doubling) until the DC reports how
/// its copy ended: after the heal `near` hears it and cancels the copies it holds,
/// rather than time out jobs that completed elsewhere (which it did while the gate
/// withdrew once).
#[test]
fn a_dc_cut_off_from_the_withdrawal_cancels_its_copy_once_it_hears_again() {
    let (r, f) = near_cut_off(
        r#"
        [[fault]]
        at = "70s"
        action = "partition"
        groups = [["near"], ["edge", "mid", "far"]]

        [[fault]]
        at = "90s"
        action = "heal"
        "#,
    );
    assert!(!f.withdrawn.is_empty(), "{f:?}");
    assert!(f.withdrawn.iter().all(|j| f.cooled.contains(j)), "{f:?}");
    assert!(
        f.withdrawn_at_ms.iter().all(|t| *t >= 90_000.0),
        "only after the heal: {f:?}"
    );
    assert!(f.timed_out_after_completion.is_empty(), "{f:?}");
    clean(&r);
}

/// `near` accepts routed jobs while cut off one way (from 56 s), the cut turns two-way
/// from 70 s to 120 s, and `edge/gate-0`, which took the jobs and is withdrawing them
/// from `near`, crashes at 82 s, inside the cut (`edge` has three gates here). The
/// gate-cluster leader carries those withdrawals on once it sees `edge/gate-0` dead:
/// `near` tells it how its copies ended and forgets them. Before, nobody carried them
/// on: `near`'s managers re-sent those reports to the dead gate until the run ended,
/// and still tracked two ended jobs then (jobs.md §7.10: tracking always ends).
#[test]
fn a_dead_gates_withdrawals_are_carried_on_by_the_gate_cluster_leader() {
    let (r, f) = near_cut_off_with_gates(
        3,
        r#"
        [[fault]]
        at = "70s"
        action = "partition"
        groups = [["near"], ["edge", "mid", "far"]]

        [[fault]]
        at = "82s"
        action = "crash"
        nodes = ["edge/gate-0"]

        [[fault]]
        at = "120s"
        action = "heal"
        "#,
    );
    clean(&r);
    assert!(!f.cooled.is_empty(), "{f:?}");
    let jobs = r.jobs.as_ref().expect("jobs");
    let tracked: Vec<(u64, u16)> = jobs
        .per_job
        .iter()
        .filter(|j| j.tracked_at_end > 0)
        .map(|j| (j.id, j.tracked_at_end))
        .collect();
    assert!(tracked.is_empty(), "ended jobs still tracked: {tracked:?}");
}
