//! Issue 6: backpressure from worker to gate in the simulator. `overload-burst.toml`
//! drives ~14x a leader's stats capacity; these tests hold the system to
//! backpressure.md's promises with its numbers.

mod common;

use meridian_sim::backpressure::BackpressureReport;
use meridian_sim::report::Report;

fn bp(r: &Report) -> &BackpressureReport {
    r.backpressure.as_ref().expect("the scenario has [[load]]")
}

/// `overload-burst.toml` with the faults `faults` (TOML `[[fault]]` entries) added.
fn burst_with(faults: &str) -> meridian_sim::scenario::Scenario {
    let mut s = common::load("overload-burst.toml", &[]);
    common::add_faults(&mut s, faults);
    s
}

/// 60 s hot max age + one 10 s promotion period (backpressure.md §6).
const RECOVERY_MS: u64 = 70_000;

/// All 30 jobs of the burst completed, no worker is held back at the end, and every
/// level was back to NONE within `RECOVERY_MS` of the last job's end.
fn completed_and_recovered(r: &Report) {
    let (b, j) = (bp(r), r.jobs.as_ref().unwrap());
    assert_eq!((j.completed, j.submitted), (30, 30), "seed {}", r.seed);
    assert_eq!(b.workers_held_back_at_end, 0, "seed {}", r.seed);
    let last = j.per_job.iter().filter_map(|e| e.ended_ms).max().unwrap();
    let back = b.recovered_at_ms.expect("levels came back down");
    assert!(
        back <= last + RECOVERY_MS,
        "seed {}: NONE at {back} ms, last job ended at {last} ms",
        r.seed
    );
}

/// Issue 6, acceptance 2, over 50 seeds: no CONTROL message shed (and none goes through
/// the flush buffer, so none is delayed by it); no false dead declaration; the leader's
/// buffer never passes its REJECT bound (95 % of 1000); every manager and worker is back
/// to NONE within 70 s of the last progress; every completed job's final status carries
/// all its items (batched or dropped progress is not lost from results).
#[test]
fn an_overload_burst_is_absorbed_over_50_seeds() {
    let s = common::load("overload-burst.toml", &[]);
    for r in meridian_sim::sweep(&s, 1..51, 2) {
        assert!(r.ok(), "seed {}: {:?}", r.seed, r.invariants.violations);
        let b = bp(&r);
        assert_eq!(b.control_shed, 0, "seed {}", r.seed);
        assert_eq!(r.membership.false_positives, 0, "seed {}", r.seed);
        assert_eq!(
            b.max_level, "Reject",
            "seed {}: the burst must saturate",
            r.seed
        );
        for (m, fill) in &b.buffer_max_fill {
            assert!(*fill <= 0.95, "seed {}: {m} filled to {fill}", r.seed);
        }
        assert_eq!(b.buffer_overwritten, 0, "seed {}", r.seed);
        completed_and_recovered(&r);
        let j = r.jobs.as_ref().unwrap();
        for (m, ms) in &b.level_ms {
            // Every millisecond of the run is at some level (up to 1 ms of rounding each).
            let total: u64 = ms.iter().sum();
            assert!(r.sim_duration_ms - total <= 4, "{m}: {ms:?}");
        }
        for e in &j.per_job {
            assert_eq!(e.items, Some(e.items_expected), "seed {}: {e:?}", r.seed);
            assert!(e.items_expected > 0);
        }
        // Progress was slowed, batched and dropped, and it was the only thing dropped.
        let data = b.updates["data"];
        assert!(data.dropped > 0, "seed {}", r.seed);
        for class in ["control", "dispatch", "telemetry"] {
            assert_eq!(b.updates[class].dropped, 0);
        }
    }
}

/// Issue 6, acceptance 3 (the ablation in BENCHMARKS.md): the same burst with
/// backpressure off floods the leader with progress and overwrites its stats.
#[test]
fn without_backpressure_the_same_burst_overflows_the_buffer() {
    let s = common::load("overload-burst.toml", &[]);
    let off = common::load("overload-burst.toml", &["backpressure=false"]);
    let (on, off) = (meridian_sim::run(&s, 1), meridian_sim::run(&off, 1));
    let (b_on, b_off) = (bp(&on), bp(&off));
    assert_eq!(b_off.max_level, "None");
    assert!(
        b_off.buffer_overwritten > 1000,
        "{}",
        b_off.buffer_overwritten
    );
    assert_eq!(b_on.buffer_overwritten, 0);
    assert!(b_off.buffer_max_fill.values().any(|f| *f == 1.0));
    let (d_on, d_off) = (b_on.updates["data"].sent, b_off.updates["data"].sent);
    assert!(d_off > 5 * d_on, "data sent: {d_on} with, {d_off} without");
}

/// AD-18/22: managers slowed to 300-900 ms per message grade themselves overloaded and
/// shed DATA on arrival; CONTROL is never shed, and every job still completes.
#[test]
fn slow_managers_shed_data_and_never_control() {
    let s = burst_with(
        r#"
        [[fault]]
        at = "40s"
        action = "slow"
        nodes = ["us-east/manager-0", "us-east/manager-1", "us-east/manager-2"]
        delay_ms = [300, 900]
        "#,
    );
    for r in meridian_sim::sweep(&s, 1..6, 2) {
        let b = bp(&r);
        assert_eq!(b.control_shed, 0, "seed {}", r.seed);
        assert!(b.shed[2] > 0, "seed {}: no DATA shed: {:?}", r.seed, b.shed);
        let j = r.jobs.as_ref().unwrap();
        assert_eq!(j.completed, j.submitted, "seed {}", r.seed);
        assert!(
            r.invariants.violations.is_empty(),
            "seed {}: {:?}",
            r.seed,
            r.invariants.violations
        );
    }
}

/// AD-22 at the gate (backpressure.md §3): a client's submission is checked before
/// dispatch and refused while the gate is Overloaded. `us-east/gate-0` takes every
/// submission of the burst; from 20 s each message it receives waits 2.5-3.5 s to be
/// handled, above AD-18's 2,000 ms absolute bound, so it sheds all 30 (they never enter
/// the system: `refused`), and nothing else breaks.
#[test]
fn an_overloaded_gate_refuses_new_submissions() {
    let s = burst_with(
        r#"
        [[fault]]
        at = "20s"
        action = "slow"
        nodes = ["us-east/gate-0"]
        delay_ms = [2500, 3500]
        "#,
    );
    for r in meridian_sim::sweep(&s, 1..4, 2) {
        assert!(r.ok(), "seed {}: {:?}", r.seed, r.invariants.violations);
        let j = r.jobs.as_ref().unwrap();
        assert_eq!((j.refused, j.submitted), (30, 0), "seed {}", r.seed);
    }
}

/// backpressure.md §10.6: a worker's level is the live managers'. The DC leader crashes
/// at 50 s, at REJECT: before, every worker kept its last REJECT for good and dropped
/// its progress to the new leader for the rest of the run. Now a new leader's hello
/// ends the old signal, and every level is back to NONE within 70 s of the last job's
/// end, as without the crash.
#[test]
fn a_leader_lost_at_reject_does_not_hold_its_workers_back() {
    let s = burst_with(
        r#"
        [[fault]]
        at = "50s"
        action = "crash_leader"
        dc = "us-east"
        "#,
    );
    for r in meridian_sim::sweep(&s, 1..6, 2) {
        assert!(r.ok(), "seed {}: {:?}", r.seed, r.invariants.violations);
        let b = bp(&r);
        assert_eq!(b.max_level, "Reject", "seed {}", r.seed);
        completed_and_recovered(&r);
    }
}
