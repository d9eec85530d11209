//! The `random` fault generator and failure shrinking (issue 9): random faults come from
//! the seed and can be written out without changing the run; a planted bug (test builds
//! only) is found by a 1,000-seed random-fault sweep and shrunk to a small repro.

mod common;

use meridian_sim::random_faults::{concrete_faults, KINDS};
use meridian_sim::scenario::{self, Fault};
use meridian_sim::shrink::{materialize, shrink};
use std::path::Path;

fn fixture_text() -> String {
    std::fs::read_to_string(common::fixture("random-faults.toml")).unwrap()
}

/// The random-faults fixture with the planted bug switched on
/// (`membership::Config::injected_bug`: a death undone at the same incarnation).
fn with_planted_bug() -> String {
    format!("{}\n[membership]\ninjected_bug = true\n", fixture_text())
}

/// A scenario `shrink` wrote (its text): played with its own seed, every invariant must
/// hold. The report, for what a test checks beyond that.
fn replay_shrunk(text: &str) -> meridian_sim::report::Report {
    let s = scenario::parse(text, Path::new("regression.toml"), &[]).unwrap();
    let r = meridian_sim::run(&s, s.seed);
    assert!(r.ok(), "{}: {:?}", s.name, r.invariants.violations);
    r
}

fn here() -> std::path::PathBuf {
    common::fixture("random-faults.toml")
}

#[test]
fn random_faults_come_from_the_seed_within_their_window() {
    let s = common::load("random-faults.toml", &[]);
    let a = concrete_faults(&s, 7);
    assert_eq!(format!("{a:?}"), format!("{:?}", concrete_faults(&s, 7)));
    assert_ne!(format!("{a:?}"), format!("{:?}", concrete_faults(&s, 8)));
    // ~2 a minute over 5m40s: about 11 draws (a draw with nothing to act on adds none).
    let mut total = 0;
    for seed in 1..=50 {
        let faults = concrete_faults(&s, seed);
        total += faults.len();
        for f in &faults {
            assert!(!matches!(f, Fault::Random { .. }));
            let at = f.at().as_secs_f64();
            assert!((20.0..=360.0).contains(&at), "{f:?}");
        }
    }
    let mean = total as f64 / 50.0;
    assert!((7.0..=14.0).contains(&mean), "mean faults per run {mean}");
    // `kinds` restricts the draw.
    let only = common::load(
        "random-faults.toml",
        &[r#"fault=[{action="random", at="10s", rate=6.0, kinds=["pause", "heal"]}]"#],
    );
    let faults = concrete_faults(&only, 3);
    assert!(faults.len() > 20);
    assert!(faults
        .iter()
        .all(|f| matches!(f, Fault::Pause { .. } | Fault::Heal { .. })));
}

#[test]
fn every_kind_the_generator_knows_is_drawn() {
    let s = common::load(
        "random-faults.toml",
        &[r#"fault=[{action="random", at="10s", rate=30.0}]"#],
    );
    let all: String = (1..=5)
        .map(|seed| format!("{:?}", concrete_faults(&s, seed)))
        .collect();
    for kind in KINDS {
        let variant: String = kind
            .split('_')
            .map(|w| w[..1].to_uppercase() + &w[1..])
            .collect();
        assert!(all.contains(&format!("{variant} {{")), "no {kind} drawn");
    }
}

#[test]
fn bad_random_faults_are_refused_naming_the_key() {
    for (set, key) in [
        (
            r#"fault=[{action="random", at="10s", rate=0.0}]"#,
            "fault[0].rate",
        ),
        (
            r#"fault=[{action="random", at="10s", rate=1.0, kinds=["meteor"]}]"#,
            "fault[0].kinds",
        ),
        (
            r#"fault=[{action="random", at="2m", until="1m", rate=1.0}]"#,
            "fault[0].until",
        ),
    ] {
        let e = scenario::parse(&fixture_text(), &here(), &[set.to_string()]).unwrap_err();
        assert_eq!(e.key, key, "{e}");
    }
}

#[test]
fn written_out_random_faults_replay_the_same_run() {
    for seed in [1, 2, 3] {
        let s = scenario::parse(&fixture_text(), &here(), &[]).unwrap();
        let spelled = materialize(&fixture_text(), &here(), seed).unwrap();
        assert!(!spelled.contains("\"random\""));
        let t = scenario::parse(&spelled, &here(), &[]).unwrap();
        assert_eq!(
            meridian_sim::run(&s, seed).trace_hash,
            meridian_sim::run(&t, seed).trace_hash,
            "seed {seed}:\n{spelled}"
        );
    }
}

#[test]
fn release_builds_refuse_the_planted_bug_and_test_builds_have_it() {
    // This test binary links the core built with `injected-bugs` (a dev-dependency
    // feature); `cargo build --release -p meridian-sim` does not, and refuses the key.
    const { assert!(meridian_core::membership::INJECTED_BUGS) };
    assert!(scenario::parse(&with_planted_bug(), &here(), &[]).is_ok());
}

#[test]
fn a_planted_bug_is_found_by_a_1000_seed_sweep_and_shrunk_to_a_small_repro() {
    let buggy = scenario::parse(&with_planted_bug(), &here(), &[]).unwrap();
    let clean = scenario::parse(&fixture_text(), &here(), &[]).unwrap();
    let reports = meridian_sim::sweep(&buggy, 1..1001, 2);
    let found: Vec<u64> = reports
        .iter()
        .filter(|r| {
            r.invariants
                .violations
                .iter()
                .any(|v| v.invariant == "dead-ends-by-higher-inc")
        })
        .map(|r| r.seed)
        .collect();
    assert!(!found.is_empty(), "the sweep missed the planted bug");
    // The sweep's per-invariant table counts the seeds that broke it.
    let table = meridian_sim::violations_by_invariant(&reports);
    let (seeds, violations) = table["dead-ends-by-higher-inc"];
    assert_eq!(seeds, found.len() as u64);
    assert!(violations >= seeds);
    // Without the bug the same seeds break nothing: it is the bug that was found.
    for r in meridian_sim::sweep(&clean, 1..1001, 2) {
        assert!(r.ok(), "seed {}: {:?}", r.seed, r.invariants.violations);
    }
    // The first three failing seeds each shrink to a small repro.
    for &seed in found.iter().take(3) {
        let mut steps = Vec::new();
        let shrunk = shrink(&with_planted_bug(), &here(), seed, 600, &mut |l: &str| {
            steps.push(l.to_string())
        })
        .unwrap();
        assert_eq!(shrunk.invariant, "dead-ends-by-higher-inc");
        assert!(
            shrunk.faults.1 <= 5 && shrunk.nodes.1 <= 10,
            "seed {seed}: {} faults, {} nodes after {} runs:\n{}",
            shrunk.faults.1,
            shrunk.nodes.1,
            shrunk.runs,
            shrunk.text
        );
        assert!(shrunk.duration_ms.1 < shrunk.duration_ms.0);
        assert!(!steps.is_empty());
        // The repro is a scenario file that fails the same way on its own, with the
        // seed it names.
        let repro = scenario::parse(&shrunk.text, &here(), &[]).unwrap();
        assert_eq!(repro.seed, shrunk.seed);
        let r = meridian_sim::run(&repro, repro.seed);
        assert!(
            r.invariants
                .violations
                .iter()
                .any(|v| v.invariant == "dead-ends-by-higher-inc"),
            "{}",
            shrunk.text
        );
        assert!(repro.faults.len() <= 5 && repro.nodes().len() <= 10);
    }
}

#[test]
fn shrinking_a_run_that_holds_every_invariant_is_refused() {
    let e = shrink(&fixture_text(), &here(), 1, 50, &mut |_: &str| {});
    assert!(matches!(
        e,
        Err(meridian_sim::shrink::ShrinkError::NoViolation(1))
    ));
}

/// Two false alarms the random-fault sweep found in the heal-convergence check, as the
/// shrinker reduced them (kept as regressions).
#[test]
fn heal_convergence_waits_for_restarts_and_for_voters_to_recover() {
    // A DC's only manager crashed and restarted 34 s later: the check for the crash
    // fired 60 ms after the restart, as if the restart were no fault.
    let restart = r#"
name = "shrunk-676"
duration = "1m 19s 438ms"
seed = 676
[[dc]]
name = "dc1"
managers = 1
[[fault]]
action = "crash_leader"
at = "44s 437ms 266us"
dc = "dc1"
restart_after = "34s"
[network]
default_inter_dc_rtt_ms = 60.0
intra_dc_rtt_ms = 1.0
"#;
    // Two gates cut apart for 116 s end with LHM 8: they may not stand or vote until it
    // is back to 4, 24 s after the heal; the 34 s bound starts from then.
    let recovery = r#"
name = "shrunk-927"
duration = "3m 30s"
seed = 927
[[dc]]
name = "dc0"
gates = 1
managers = 3
workers = 6
[[dc]]
name = "dc1"
gates = 1
[[fault]]
action = "partition"
at = "35s 387ms 524us"
groups = [["dc1"]]
[[fault]]
action = "heal"
at = "2m 31s 429ms 832us"
[network]
default_inter_dc_rtt_ms = 60.0
intra_dc_rtt_ms = 1.0
"#;
    replay_shrunk(restart);
    // ...and the gates do agree on a leader by the end, so the check had to wait, not
    // give up.
    let r = replay_shrunk(recovery);
    let gates = &r.leadership.leaders_at_end;
    assert!(gates.get("gates").is_some_and(|l| l.is_some()), "{gates:?}");
}

/// The shrunk scenario of the two regressions below (`shrunk-5618`).
const SHRUNK_5618: &str = r#"
name = "shrunk-5618"
duration = "1m 35s 88ms"
seed = 1993
[[dc]]
name = "us-east"
gates = 2
managers = 3
workers = 8
[[dc]]
name = "eu-west"
managers = 3
workers = 8
[[fault]]
action = "crash_leader"
at = "1m"
dc = "eu-west"
restart_after = "1m"
[[job]]
at = "20s"
count = 40
datacenters = 2
every = "3s"
gate = "us-east/gate-0"
timeout = "2m"
workflow_duration = ["5s", "15s"]
workflows = 6
[network]
intra_dc_rtt_ms = 1.0
jitter = 0.1
loss = 0.01
[network.inter_dc_rtt_ms]
"us-east/eu-west" = 80
"#;

/// The third false alarm the 10,000-seed sweeps found (leader-failover-mid-job, seed
/// 5618, shrunk to one fault): with 0.1% loss, two heartbeats or acks between the two
/// gates were lost in a row, the leader stepped down (check-quorum) at 92.2 s and the
/// gates elected again at 94.2 s, 0.1 s after the check for a crash elsewhere came due.
/// On a lossy network such a step-down starts the group's bound afresh.
///
/// Session 20's `DoneEarlier` frames (sent in eu-west after its leader's crash) moved
/// the network's later random draws, and seed 5618 no longer lost those two messages.
/// The same shrunk scenario at 1% loss (the most the check still counts as clean)
/// shows the same false alarm on seed 1518 of 3,000: gate-1, the gates' leader, steps
/// down at 93.1 s, and the check armed by eu-west's crash at 60 s comes due at 94.1 s;
/// with the step-down not starting the bound afresh, `heal-convergence` fires there.
///
/// Session 26's job-confirmation messages (`LeaderTransfer`, `JobLive`) moved the draws
/// again. With the step-down's fresh start switched off, 7 of seeds 1..12,000 fire;
/// seed 1993 is one: gate-1 steps down at 93.4 s, 0.7 s before the check comes due.
#[test]
fn heal_convergence_starts_again_after_a_step_down_on_a_lossy_network() {
    let text = SHRUNK_5618;
    let s = scenario::parse(text, Path::new("regression.toml"), &[]).unwrap();
    let mut trace = Vec::new();
    let r = meridian_sim::run_traced(&s, s.seed, &mut trace);
    assert!(r.ok(), "{:?}", r.invariants.violations);
    // The step-down this is about did happen, a second before the check came due.
    let trace = String::from_utf8(trace).unwrap();
    assert!(trace
        .lines()
        .any(|l| l.contains("us-east/gate-1") && l.contains("\"LostQuorum\"")));
}

/// The same shrunk scenario, seed 26601: eu-west's new leader (term 3) loses heartbeats
/// to manager-0 in a row (at 1% loss), whose lease runs out at 93.8 s; it follows again
/// at the next heartbeat. The check for the crash at 60 s came due at 94.1 s, inside
/// that gap, and called it no agreed leader. A follower's lapse while its leader still
/// leads is the follower's side of a step-down for want of a quorum, and starts the
/// bound afresh the same way on a lossy network. (Found while re-finding the seed
/// above in session 26, then as seed 4006; with the lapse's fresh start switched off,
/// 4 of seeds 1..40,000 fire now.)
#[test]
fn heal_convergence_starts_again_after_a_followers_lease_lapses_on_a_lossy_network() {
    let text = SHRUNK_5618.replace("seed = 1993", "seed = 26601");
    let s = scenario::parse(&text, Path::new("regression.toml"), &[]).unwrap();
    let mut trace = Vec::new();
    let r = meridian_sim::run_traced(&s, s.seed, &mut trace);
    assert!(r.ok(), "{:?}", r.invariants.violations);
    // The lapse this is about did happen, with the leader still leading.
    let trace = String::from_utf8(trace).unwrap();
    assert!(trace.lines().any(|l| l.contains("eu-west/manager-0")
        && l.contains("\"LeaderChanged\":{\"group\":2,\"leader\":null,\"term\":3}")
        && l.contains("\"t_ms\":938")));
}

/// A real protocol bug the random-fault sweep found (random-faults, seed 4579; `shrink`
/// made it 9 nodes and 4 faults): a link between the two DCs flapping for minutes left
/// both gates flapping, with the cooldown at its cap. A candidate's vote window was
/// then the bare cooldown, the same on both, and from the first time they stood
/// together they split the vote every 13.25 s to the end of the run. The window keeps
/// its jitter now (core's `a_flapping_candidates_vote_window_keeps_its_jitter`), and
/// the gates agree on a leader.
#[test]
fn two_flapping_gates_do_not_split_the_vote_for_ever() {
    let text = r#"
name = "shrunk-4579"
duration = "5m 51s 328ms"
seed = 4580
[[dc]]
name = "dc0"
gates = 1
managers = 1
workers = 6
[[dc]]
name = "dc1"
gates = 1
[[fault]]
action = "flap"
at = "1m 40s 833ms 391us"
between = ["dc0", "dc1"]
down = "6s 68ms"
period = "28s"
until = "2m 29s 833ms 391us"
[[fault]]
action = "flap"
at = "2m 48s 72ms 507us"
between = ["dc0", "dc1"]
down = "4s 956ms"
period = "13s"
until = "5m 13s 72ms 507us"
[[fault]]
action = "one_way_latency"
at = "2m 51s 419ms 807us"
delay_ms = 150.0
from = "dc0"
to = "dc1"
[[fault]]
action = "skew"
at = "3m 9s 344ms 942us"
drift_ppm = 50.0
nodes = ["dc0/gate-0"]
offset_ms = -4392
[network]
default_inter_dc_rtt_ms = 60.0
intra_dc_rtt_ms = 1.0
"#;
    let r = replay_shrunk(text);
    assert!(r.leadership.leaders_at_end["gates"].is_some());
}

/// Another flapping bug the random-fault sweep found (random-faults, seed 19233; `shrink`
/// made it two gates and two faults): after a link between the DCs flapped for two
/// minutes, the gates' first vote split (each for itself). Their flapping had ended a
/// minute earlier, but it was judged on changes never pruned since, so the retry waited
/// the stretched vote window, a whole 25 s cooldown, and the gates agreed only 35 s
/// after the heal (bound: 34 s). Flapping is a rate now (core's
/// `flapping_ends_a_minute_after_the_changes`).
#[test]
fn gates_agree_within_the_heal_bound_once_flapping_is_over() {
    let text = r#"
name = "shrunk-19233"
duration = "6m 6s 488ms"
seed = 19234
[[dc]]
name = "dc0"
gates = 1
[[dc]]
name = "dc1"
gates = 1
[[fault]]
action = "dc_outage"
at = "2m 53s 474ms 932us"
dcs = ["dc0"]
for = "37s"
[[fault]]
action = "flap"
at = "3m 1s 936ms 526us"
between = ["dc1", "dc0"]
down = "5s 492ms"
period = "12s"
until = "5m 34s 936ms 526us"
[network]
default_inter_dc_rtt_ms = 60.0
intra_dc_rtt_ms = 1.0
"#;
    let r = replay_shrunk(text);
    assert!(r.leadership.leaders_at_end["gates"].is_some());
}

/// A checker false alarm a sweep of `jobs-basic` with random faults found (seed 222;
/// `shrink` made it 13 nodes and 2 faults): us-east went down and came back, and its
/// restarted gate, which had met only its own DC so far, routed the next job there. The
/// routing tracker still held the eu-west bucket the gate's previous life had seen, and
/// called the dispatch `routing-bucket`. A stopped gate's view is forgotten now.
#[test]
fn a_restarted_gate_is_judged_on_what_it_knows_now() {
    let text = r#"
name = "shrunk-jobs-222"
duration = "1m 18s"
seed = 229
[[dc]]
name = "us-east"
gates = 2
managers = 2
workers = 6
[[dc]]
name = "eu-west"
managers = 2
workers = 1
[[fault]]
action = "partition"
at = "55s 419ms 600us"
groups = [["us-east"]]
[[fault]]
action = "dc_outage"
at = "1m 2s 139ms 532us"
dcs = ["us-east"]
for = "14s"
[[job]]
at = "20s"
count = 40
datacenters = 2
every = "3s"
gate = "us-east/gate-0"
timeout = "2m"
workflow_duration = ["5s", "15s"]
workflows = 6
[network]
intra_dc_rtt_ms = 1.0
[network.inter_dc_rtt_ms]
"us-east/eu-west" = 80
"#;
    let r = replay_shrunk(text);
    let routing = r.routing.as_ref().expect("jobs are routed");
    assert_eq!(routing.bucket_violations, 0);
    assert!(routing.decisions > 0, "{routing:?}");
}

/// A real jobs bug a sweep of `gate-unreachable-fallback` with random faults found (seed
/// 170; `shrink` made it 6 nodes and 7 faults): eu-west's leader, cut off from its DC,
/// ran the fallback timeout unheard; its successor, holding the state from before,
/// replicated it back, and when the first leader led again it took that state over and
/// timed the job out a second time. A replica now keeps the action the DC already took
/// (core's `a_stale_replica_keeps_the_action_already_taken`).
#[test]
fn a_manager_back_in_charge_does_not_time_a_job_out_twice() {
    let text = r#"
duration = "9m 53s 778ms"
name = "shrunk-fallback-170"
seed = 170

[[dc]]
gates = 1
name = "global"

[[dc]]
managers = 1
name = "us-east"
workers = 1

[[dc]]
managers = 3
name = "eu-west"
workers = 0

[[fault]]
action = "partition"
at = "30s"
groups = [["global"], ["us-east", "eu-west"]]
one_way = false

[[fault]]
action = "heal"
at = "8m 30s"

[[fault]]
action = "leave"
at = "26s 548ms 149us"
nodes = ["eu-west/manager-0"]

[[fault]]
action = "link_loss"
at = "3m 18s 308ms 855us"
between = ["us-east", "global"]
one_way = false
rate = 1.0

[[fault]]
action = "isolate_leader"
at = "8m 8s 900ms 680us"
dc = "eu-west"

[[fault]]
action = "isolate_leader"
at = "9m 1s 799ms 464us"
dc = "eu-west"

[[fault]]
action = "partition"
at = "9m 20s 490ms 375us"
groups = [["us-east"]]
one_way = false

[[job]]
at = "20s"
dcs = ["us-east", "eu-west"]
gate = "global/gate-0"
workflow_duration = ["5s", "15s"]
workflows = 4

[job.stall]
after = "22s"
dc = "eu-west"

[network]
intra_dc_rtt_ms = 1.0

[network.inter_dc_rtt_ms]
"global/eu-west" = 80
"global/us-east" = 10
"us-east/eu-west" = 80
"#;
    replay_shrunk(text);
}

/// A checker false alarm a sweep of `gate-unreachable-fallback` with random faults found
/// (seed 130; `shrink` made it 5 nodes and 3 faults): eu-west's leader reported the
/// stuck job, then its clock jumped 3.2 s ahead (`skew`), so the report's age it
/// replicated grew by as much; when it crashed, its successor ran the fallback 300 s
/// after the report by the DC's clocks, 0.65 s early by true time. Machines have only
/// their clocks: the check now allows the skew the DC's clocks took in between.
#[test]
fn the_fallback_is_timed_by_the_dcs_clocks() {
    let text = r#"
duration = "7m 33s 869ms"
name = "shrunk-fallback-130"
seed = 133

[[dc]]
gates = 1
name = "global"

[[dc]]
managers = 1
name = "us-east"
workers = 0

[[dc]]
managers = 3
name = "eu-west"
workers = 0

[[fault]]
action = "partition"
at = "30s"
groups = [["global"], ["us-east", "eu-west"]]
one_way = false

[[fault]]
action = "skew"
at = "4m 21s 816ms 242us"
drift_ppm = -50.0
nodes = ["eu-west/manager-0"]
offset_ms = 3178

[[fault]]
action = "crash_leader"
at = "6m 49s 445ms 181us"
dc = "eu-west"

[[job]]
at = "20s"
dcs = ["us-east", "eu-west"]
gate = "global/gate-0"
workflow_duration = ["5s", "15s"]
workflows = 4

[job.stall]
after = "22s"
dc = "eu-west"

[network]
intra_dc_rtt_ms = 1.0

[network.inter_dc_rtt_ms]
"global/eu-west" = 80
"global/us-east" = 10
"us-east/eu-west" = 80
"#;
    let r = replay_shrunk(text);
    // The fallback did run (by the successor), the case the check is about.
    let job = &r.jobs.as_ref().expect("one job").per_job[0];
    assert!(job.dcs_timed_out >= 1, "{job:?}");
}
