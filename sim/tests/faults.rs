//! The fault kinds issue 9 added, each shown to do what it says on a small two-DC
//! cluster (a gate, 3 managers and 6 workers per DC, 40 ms between the DCs), against the
//! same run without it.

use meridian_sim::report::Report;
use meridian_sim::scenario;
use std::path::Path;

const BASE: &str = r#"
name = "faults"
duration = "4m"
seed = 3
[[dc]]
name = "dc0"
gates = 1
managers = 3
workers = 6
[[dc]]
name = "dc1"
gates = 1
managers = 3
workers = 6
[network]
intra_dc_rtt_ms = 1.0
default_inter_dc_rtt_ms = 40.0
jitter = 0.1
"#;

fn run_with(faults: &str) -> (Report, String) {
    let text = format!("{BASE}\n{faults}");
    let s = scenario::parse(&text, Path::new("faults.toml"), &[]).unwrap();
    let mut trace = Vec::new();
    let r = meridian_sim::run_for_html(&s, s.seed, &mut trace);
    assert!(r.ok(), "{faults}: {:?}", r.invariants.violations);
    (r, String::from_utf8(trace).unwrap())
}

fn quiet() -> Report {
    run_with("").0
}

#[test]
fn reordering_is_counted_where_it_lands() {
    let (r, _) = run_with(
        r#"
[[fault]]
action = "reorder"
at = "30s"
rate = 0.2
extra_ms = [10, 100]
"#,
    );
    assert!(r.messages.reordered > 10, "{}", r.messages.reordered);
    let q = quiet();
    assert_eq!(q.messages.reordered, 0);
    // Absent from a report without reordering (snapshots of older scenarios stay put).
    let json = serde_json::to_value(&q).unwrap();
    assert!(json["messages"].get("reordered").is_none());
}

#[test]
fn link_loss_drops_on_that_link_and_rate_zero_ends_it() {
    let (lossy, _) = run_with(
        r#"
[[fault]]
action = "link_loss"
at = "30s"
between = ["dc0", "dc1"]
rate = 0.3
"#,
    );
    let (brief, _) = run_with(
        r#"
[[fault]]
action = "link_loss"
at = "30s"
between = ["dc0", "dc1"]
rate = 0.3
[[fault]]
action = "link_loss"
at = "40s"
between = ["dc0", "dc1"]
rate = 0.0
"#,
    );
    assert_eq!(quiet().messages.dropped_loss, 0);
    assert!(
        lossy.messages.dropped_loss > 300,
        "{}",
        lossy.messages.dropped_loss
    );
    assert!(brief.messages.dropped_loss > 0);
    assert!(brief.messages.dropped_loss * 5 < lossy.messages.dropped_loss);
}

#[test]
fn a_one_way_delay_lengthens_the_round_trip_the_nodes_measure() {
    let (r, _) = run_with(
        r#"
[[fault]]
action = "one_way_latency"
at = "10s"
from = "dc0"
to = "dc1"
delay_ms = 150
"#,
    );
    // dc0 -> dc1 150 ms, dc1 -> dc0 still 20 ms: a 170 ms round trip, which is what
    // the coordinates learn for the pairs across.
    let pairs = &r.coords.as_ref().unwrap().plot.pairs;
    let across: Vec<&(f64, f64)> = pairs.iter().filter(|(t, _)| *t > 100.0).collect();
    assert!(!across.is_empty());
    assert!(
        across.iter().all(|(t, _)| (*t - 170.0).abs() < 1.0),
        "{across:?}"
    );
    let mut est: Vec<f64> = across.iter().map(|(_, e)| *e).collect();
    est.sort_by(f64::total_cmp);
    let median = est[est.len() / 2];
    assert!(
        (median - 170.0).abs() < 170.0 * 0.2,
        "median estimate {median}"
    );
}

#[test]
fn a_flapping_link_cuts_on_schedule_and_the_views_heal_after() {
    let (r, trace) = run_with(
        r#"
[[fault]]
action = "flap"
at = "30s"
between = ["dc0", "dc1"]
period = "20s"
down = "8s"
until = "2m"
"#,
    );
    assert_eq!(quiet().messages.dropped_partition, 0);
    assert!(r.messages.dropped_partition > 100);
    // Five cuts (30, 50, 70, 90, 110 s): suspicions across come and go with them...
    assert!(r.membership.suspicions > 0);
    assert!(trace.contains("\"type\":\"flap\""));
    // ...and once it stops flapping, every view agrees again.
    let converged = r.membership.converged_at_ms.unwrap();
    assert!((118_000..180_000).contains(&converged), "{converged}");
}

#[test]
fn a_dc_outage_crashes_the_whole_dc_at_once_and_brings_it_back() {
    let (r, _) = run_with(
        r#"
[[fault]]
action = "dc_outage"
at = "60s"
dcs = ["dc1"]
for = "30s"
"#,
    );
    let crashed: Vec<_> = r
        .membership
        .detections
        .iter()
        .filter(|d| d.crashed_at_ms == 60_000)
        .map(|d| d.node.clone())
        .collect();
    assert_eq!(crashed.len(), 10, "{crashed:?}");
    assert!(crashed.iter().all(|n| n.starts_with("dc1/")));
    assert!(r.membership.converged_at_ms.unwrap() > 90_000);
    assert!(r.leadership.leaders_at_end["dc1"].is_some());
}

#[test]
fn a_restart_with_lost_state_comes_back_as_a_zombie_first() {
    let restart = |state: &str| {
        run_with(&format!(
            r#"
[[fault]]
action = "crash"
at = "60s"
nodes = ["dc0/worker-1"]
[[fault]]
action = "restart"
at = "90s"
nodes = ["dc0/worker-1"]
{state}
"#
        ))
        .1
    };
    let zombie = |trace: &str| {
        trace
            .lines()
            .filter(|l| l.contains("\"node\":\"dc0/worker-1\"") && l.contains("ZombieRejected"))
            .count()
    };
    // Kept: its stored incarnation is past the death, it is back at once.
    assert_eq!(zombie(&restart("")), 0);
    // Lost: back at incarnation 0, refused as a zombie until it outbids its death.
    let lost = restart("state = \"lost\"");
    assert!(zombie(&lost) > 0);
    assert!(lost.contains("\"SelfIncarnation\":{\"cluster\":1,\"inc\":"));
}

#[test]
fn a_forward_clock_jump_expires_pending_suspicions_at_once() {
    // `skew` with an offset is a jump of the node's clock (relative to where it is; a
    // backward one holds the clock still until true time catches up).
    let jump = |offset_ms: i64| {
        run_with(&format!(
            r#"
[[fault]]
action = "crash"
at = "60s"
nodes = ["dc0/worker-1"]
[[fault]]
action = "skew"
at = "66s"
nodes = ["dc0/gate-0", "dc0/manager-0", "dc0/manager-1", "dc0/manager-2", "dc0/worker-0", "dc0/worker-2", "dc0/worker-3", "dc0/worker-4", "dc0/worker-5"]
offset_ms = {offset_ms}
"#
        ))
        .0
        .membership
        .detections[0]
            .first_dead_ms
            .unwrap()
    };
    let steady = jump(0);
    let jumped = jump(60_000);
    assert!(steady > 70_000, "{steady}");
    assert_eq!(
        jumped, 66_000,
        "the suspicions ran out when the clocks jumped"
    );
}
