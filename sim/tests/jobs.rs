//! The job plane in the simulator (issue 4): jobs run to completion through gates, DC
//! leader managers and workers; dead workers' workflows are dispatched again; nothing
//! is lost and every per-job table empties.

mod common;

use meridian_sim::report::Report;

fn jobs(r: &Report) -> &meridian_sim::report::JobsReport {
    r.jobs.as_ref().expect("the scenario has jobs")
}

/// Every accepted job completed exactly once, nothing lost, failed or left in flight,
/// and every invariant held.
fn assert_all_completed(r: &Report) {
    let j = jobs(r);
    assert_eq!(
        j.completed,
        j.submitted,
        "seed {}: {:?}",
        r.seed,
        j.per_job
            .iter()
            .find(|e| e.state != "completed" && e.state != "refused")
    );
    assert_eq!(
        (j.lost, j.failed, j.in_flight),
        (0, 0, 0),
        "seed {}",
        r.seed
    );
    assert!(
        r.invariants.violations.is_empty(),
        "seed {}: {:?}",
        r.seed,
        r.invariants.violations
    );
}

/// At least `min_lost` jobs ended `lost`, every other accepted job completed, and at
/// the end no worker runs and no gate or manager holds any of them.
fn assert_lost_and_gone(r: &Report, min_lost: u64) {
    let j = jobs(r);
    assert!(j.lost >= min_lost, "seed {}: {}", r.seed, j.lost);
    assert_eq!(j.lost + j.completed, j.submitted, "seed {}", r.seed);
    for e in &j.per_job {
        assert_eq!(
            (e.running_at_end, e.tracked_at_end),
            (0, 0),
            "seed {}",
            r.seed
        );
    }
}

/// jobs.md §7.10: no live gate or manager holds a job that ended.
fn assert_no_ended_job_held(fixture: &str, r: &Report) {
    let tracked: Vec<(u64, u16)> = jobs(r)
        .per_job
        .iter()
        .filter(|e| e.tracked_at_end > 0)
        .map(|e| (e.id, e.tracked_at_end))
        .collect();
    assert!(
        tracked.is_empty(),
        "{fixture} seed {}: ended jobs still tracked {tracked:?}",
        r.seed
    );
}

/// Every invariant held in `r`, a run of `fixture`.
fn assert_held(fixture: &str, r: &Report) {
    assert!(
        r.invariants.violations.is_empty(),
        "{fixture} seed {}: {:?}",
        r.seed,
        r.invariants.violations
    );
}

/// Issue 4, acceptance 2: `jobs-basic.toml`, 50 seeds: every job completes, none lost.
#[test]
fn jobs_basic_every_job_completes_over_50_seeds() {
    let s = common::load("jobs-basic.toml", &[]);
    for r in meridian_sim::sweep(&s, 1..51, 2) {
        assert_all_completed(&r);
        let j = jobs(&r);
        assert_eq!(j.submitted, 40, "seed {}", r.seed);
        // Each job ended after its workflows could have run (>= 5 s) and well before
        // the end of the run.
        for e in &j.per_job {
            let took = e.ended_ms.unwrap() - e.submitted_ms;
            assert!((5_000..120_000).contains(&took), "seed {}: {e:?}", r.seed);
        }
    }
}

/// Workers that die take their workflows back to the manager: the jobs still complete.
#[test]
fn dead_workers_workflows_are_dispatched_again() {
    let mut s = common::load("jobs-basic.toml", &[]);
    common::add_faults(
        &mut s,
        r#"
        [[fault]]
        at = "40s"
        action = "crash"
        nodes = ["us-east/worker-0", "us-east/worker-1", "eu-west/worker-2"]
        [[fault]]
        at = "90s"
        action = "crash"
        nodes = ["us-east/worker-3", "eu-west/worker-5"]
    "#,
    );
    for seed in 1..11 {
        let r = meridian_sim::run(&s, seed);
        assert_all_completed(&r);
        assert_eq!(jobs(&r).submitted, 40);
    }
}

/// A submission to a gate that is down never enters the system: refused, not lost.
#[test]
fn a_down_gate_refuses_submissions() {
    let mut s = common::load("jobs-basic.toml", &[]);
    common::add_faults(
        &mut s,
        r#"
        [[fault]]
        at = "10s"
        action = "crash"
        nodes = ["us-east/gate-0"]
    "#,
    );
    let r = meridian_sim::run(&s, 1);
    let j = jobs(&r);
    assert_eq!((j.submitted, j.refused, j.lost), (0, 40, 0));
}

/// Issue 4, acceptance 5 (leak check): after 100,000 job lifecycles every per-job table of
/// every node is empty again (gates, managers, and workers once their fence registers'
/// 600 s have passed).
#[test]
fn every_per_job_table_empties_after_many_lifecycles() {
    let text = r#"
        name = "job-churn"
        duration = "25m"
        seed = 1
        [[dc]]
        name = "a"
        gates = 1
        managers = 3
        workers = 12
        [network]
        intra_dc_rtt_ms = 1.0
        [[job]]
        at = "20s"
        gate = "a/gate-0"
        workflows = 1
        workflow_duration = ["50ms", "150ms"]
        count = 100000
        every = "8ms"
        clients = 50
    "#;
    let s = meridian_sim::scenario::parse(text, std::path::Path::new("churn.toml"), &[]).unwrap();
    let r = meridian_sim::run(&s, 1);
    assert_all_completed(&r);
    assert_eq!(jobs(&r).submitted, 100_000);
    assert_eq!(r.membership.tables_at_end.job_entries_max, 0);
}

/// Issue 4, acceptance 3: `leader-failover-mid-job.toml` over seeds 1..500. Both DCs'
/// leaders crash mid-job and restart a minute later: never two leaders in one term, no
/// stale token takes effect (checked on every event), every job ends exactly once
/// (completed: the next leader took the jobs over), nothing lost, and every group
/// agrees on one leader again by the end (>= 100 s after the last restart, well past
/// leadership.md §4.5's 34 s + 2d bound).
#[test]
fn leader_failover_mid_job_500_seeds() {
    let s = common::load("leader-failover-mid-job.toml", &[]);
    let mut takeovers = 0;
    for r in meridian_sim::sweep(&s, 1..501, 2) {
        assert_all_completed(&r);
        let j = jobs(&r);
        assert_eq!(j.submitted, 40, "seed {}", r.seed);
        let l = &r.leadership;
        assert_eq!(l.leaders_per_term_max, 1, "seed {}", r.seed);
        assert!(
            l.leader_changes["eu-west"] >= 2 && l.leader_changes["us-east"] >= 2,
            "seed {}",
            r.seed
        );
        for (g, who) in &l.leaders_at_end {
            assert!(who.is_some(), "seed {}: {g} has no agreed leader", r.seed);
        }
        takeovers += j.takeovers;
    }
    // Jobs were in flight at each crash: the successors took many over.
    assert!(takeovers > 500, "{takeovers} takeovers");
}

/// Gate failover (leadership.md §2.2): the gate that accepted the jobs crashes; the
/// gate-cluster leader takes its jobs over after the grace; every accepted job completes
/// once.
#[test]
fn gate_failover_every_accepted_job_completes() {
    let s = common::load("gate-failover.toml", &[]);
    let mut gate_takeovers = 0;
    for r in meridian_sim::sweep(&s, 1..51, 2) {
        assert_all_completed(&r);
        let j = jobs(&r);
        assert!(j.submitted > 0 && j.refused > 0, "seed {}", r.seed);
        gate_takeovers += j.gate_takeovers;
    }
    assert!(gate_takeovers > 100, "{gate_takeovers}");
}

/// The same crash, but the gate restarts 1-4 s later, before any other gate sees it
/// dead: nothing orphans its jobs, and it has forgotten them. Asked about each by the
/// other gates (95 s after its last word), it says it knows nothing of it, and the
/// gate-cluster leader (the restarted gate itself, on some seeds) takes it over. Before,
/// no gate ever recorded how the jobs running at the crash ended (5 of them on seed 1).
#[test]
fn a_gate_that_restarts_before_it_is_seen_dead_loses_no_job() {
    let mut gate_takeovers = 0;
    for restart_at in [61, 64] {
        let mut s = common::load("gate-failover.toml", &[]);
        common::add_faults(
            &mut s,
            &format!(
                r#"
                [[fault]]
                at = "{restart_at}s"
                action = "restart"
                nodes = ["us-east/gate-0"]
                "#
            ),
        );
        s.duration = std::time::Duration::from_secs(900);
        for r in meridian_sim::sweep(&s, 1..21, 2) {
            assert_all_completed(&r);
            let crash = &r.membership.detections[0];
            assert_eq!(crash.first_dead_ms, None, "seed {}: seen dead", r.seed);
            gate_takeovers += jobs(&r).gate_takeovers;
        }
    }
    assert!(gate_takeovers > 100, "{gate_takeovers}");
}

/// leadership.md §4.4, "no two nodes claim the same `(job, t)`", while the gates' views
/// of who is alive differ (`gate-split-views.toml`, shrunk from a chaos run). With the
/// spec's hash ring, two gates that each saw themselves as a job's owner took it over
/// under one token on 42 of seeds 1..200 (14 of these 100); with the gate-cluster leader
/// as the one arbiter, every invariant holds on every seed, and the gates still take
/// the dead gate's jobs over.
#[test]
fn gates_with_different_views_never_take_a_job_over_under_one_token() {
    let s = common::load("gate-split-views.toml", &[]);
    let mut gate_takeovers = 0;
    for r in meridian_sim::sweep(&s, 1..101, 2) {
        assert!(
            r.invariants.violations.is_empty(),
            "seed {}: {:?}",
            r.seed,
            r.invariants.violations
        );
        gate_takeovers += jobs(&r).gate_takeovers;
    }
    assert!(gate_takeovers > 500, "{gate_takeovers}");
}

/// Issue 4, acceptance 4 with jobs running: the eu-west leader is cut off from every
/// other node mid-stream. It steps down (check-quorum), the majority elects a leader that
/// takes its jobs over, and after the heal there is one leader; every job completes once,
/// and no stale dispatch ever starts a workflow (checked on every event).
#[test]
fn an_isolated_dc_leader_with_jobs_running() {
    let mut s = common::load("jobs-basic.toml", &[]);
    common::add_faults(
        &mut s,
        r#"
        [[fault]]
        at = "60s"
        action = "isolate_leader"
        dc = "eu-west"
        [[fault]]
        at = "150s"
        action = "heal"
    "#,
    );
    let mut takeovers = 0;
    for r in meridian_sim::sweep(&s, 1..51, 2) {
        assert_all_completed(&r);
        let j = jobs(&r);
        assert_eq!(j.submitted, 40, "seed {}", r.seed);
        assert_eq!(r.leadership.leaders_per_term_max, 1);
        assert!(
            r.leadership.leader_changes["eu-west"] >= 2,
            "seed {}",
            r.seed
        );
        assert!(
            r.leadership.leaders_at_end["eu-west"].is_some(),
            "seed {}",
            r.seed
        );
        takeovers += j.takeovers;
    }
    assert!(takeovers > 50, "{takeovers}");
}

/// `jobs-basic.toml` without job timeouts, for 10 minutes: a job the DC forgot stays in
/// flight for ever instead of timing out, so nothing hides a loss.
fn jobs_basic_untimed() -> meridian_sim::scenario::Scenario {
    let mut s = common::load("jobs-basic.toml", &[]);
    for j in &mut s.jobs {
        j.timeout = None;
    }
    s.duration = std::time::Duration::from_secs(600);
    s
}

/// [`jobs_basic_untimed`] with `faults` (TOML), seeds 1..20: every job completes.
fn untimed_jobs_all_complete_despite(faults: &str) {
    let mut s = jobs_basic_untimed();
    common::add_faults(&mut s, faults);
    for r in meridian_sim::sweep(&s, 1..21, 2) {
        assert_all_completed(&r);
    }
}

/// eu-west loses two managers in turn (60 s, 80 s) and has no leader until they come
/// back (180 s). The one left holds the DC's jobs as replicas, which expire 95 s after
/// their last refresh, before any manager can win an election. Before, the jobs running
/// at the crash stayed in flight for ever (1-2 a seed). Now their gate sends them again
/// (every 120 s, `GateJobs::reclaim`) and the new leader runs them. (Keeping replicas
/// through a DC with no leader did this too, but let a replica that missed its job's
/// end outlive the job's tombstones: see `ManagerJobs::replica_upkeep`.)
#[test]
fn a_dc_without_a_leader_for_100_s_gets_its_jobs_back() {
    untimed_jobs_all_complete_despite(
        r#"
        [[fault]]
        at = "60s"
        action = "crash_leader"
        dc = "eu-west"
        restart_after = "120s"
        [[fault]]
        at = "80s"
        action = "crash_leader"
        dc = "eu-west"
        restart_after = "100s"
        "#,
    );
}

/// A manager that restarted with no state wins its DC's election while the follower
/// that holds the DC's jobs is paused: the follower offers the new leader each replica
/// it does not refresh (20 s after it began to lead), and the leader adopts it, asks the
/// workers what they run of it and learns the done workflows from the follower. Before,
/// the jobs running at the crash stayed in flight for ever (4 a seed). (eu-west is cut
/// off from the gates meanwhile, 90-200 s: their re-claims (every 120 s) would reach
/// the new leader first, and it would run the jobs again from the start.)
#[test]
fn a_restarted_manager_that_wins_the_election_adopts_the_followers_jobs() {
    let mut s = jobs_basic_untimed();
    common::add_faults(
        &mut s,
        r#"
        [[fault]]
        at = "80s"
        action = "crash"
        nodes = ["eu-west/manager-0", "eu-west/manager-1"]
        [[fault]]
        at = "90s"
        action = "partition"
        groups = [["us-east"], ["eu-west"]]
        [[fault]]
        at = "95s"
        action = "pause"
        nodes = ["eu-west/manager-2"]
        for = "25s"
        [[fault]]
        at = "100s"
        action = "restart"
        nodes = ["eu-west/manager-0", "eu-west/manager-1"]
        [[fault]]
        at = "200s"
        action = "heal"
        "#,
    );
    let mut completed = 0;
    for r in meridian_sim::sweep(&s, 1..21, 2) {
        let j = jobs(&r);
        // No progress reached a leader for a minute or more: a job whose last progress
        // came long before may be found stuck (120 s, jobs.md §4.4): an end too.
        assert_eq!(
            (j.lost, j.failed, j.in_flight),
            (0, 0, 0),
            "seed {}",
            r.seed
        );
        assert_eq!(j.completed + j.timed_out, j.submitted, "seed {}", r.seed);
        assert!(r.invariants.violations.is_empty(), "seed {}", r.seed);
        let leader = r.leadership.leaders_at_end["eu-west"].as_deref();
        assert_ne!(leader, Some("eu-west/manager-2"), "seed {}", r.seed);
        assert!(j.takeovers > 0, "seed {}: adopted from offers", r.seed);
        completed += j.completed;
    }
    assert!(completed >= 20 * 38, "{completed}");
}

/// The gate that accepted the jobs dies for good (60 s); the other two us-east gates
/// (one of them the gate-cluster leader) crash a second later and restart with no
/// state, while eu-west's gate, the only one left holding the jobs' replicas, is paused
/// (61-81 s): a restarted gate wins the election, holding none of the orphans, and
/// only the leader takes orphans over. eu-west's gate hands it each orphan
/// (`GateOrphan`) once the leader has let twice the grace pass; the leader takes them
/// over and every job completes, on time by the checker's orphan-liveness rule. Before
/// (`gate-failover` seed 50 of session 18's lost-job scan), the 5 jobs running at the
/// crash stayed in flight for ever, in every seed. Every seed here makes a restarted
/// gate the leader, so every seed takes this path.
#[test]
fn orphans_only_a_follower_holds_are_handed_to_a_restarted_leader() {
    let mut s = common::load("gate-failover.toml", &[]);
    common::add_faults(
        &mut s,
        r#"
        [[fault]]
        at = "61s"
        action = "crash"
        nodes = ["us-east/gate-1", "us-east/gate-2"]
        [[fault]]
        at = "61s"
        action = "pause"
        nodes = ["eu-west/gate-0"]
        for = "20s"
        [[fault]]
        at = "62s"
        action = "restart"
        nodes = ["us-east/gate-1", "us-east/gate-2"]
        "#,
    );
    for r in meridian_sim::sweep(&s, 1..11, 2) {
        assert_all_completed(&r);
        let leader = r.leadership.leaders_at_end["gates"].as_deref();
        assert!(
            matches!(leader, Some("us-east/gate-1" | "us-east/gate-2")),
            "seed {}: {leader:?}",
            r.seed
        );
        assert!(jobs(&r).gate_takeovers >= 4, "seed {}", r.seed);
    }
}

/// The gate that accepted the jobs and a second us-east gate die at 60 s, leaving 2
/// of the 4 gates: no majority, so nobody may take the orphans over. The second comes
/// back at 1,400 s and a leader is elected. By then the jobs running at the crash have
/// long ended in their DCs, which gave up their unanswered final reports after 600 s
/// and then their tombstones after 600 s more: the DCs have forgotten them. Before, the
/// new leader took them over (its own replicas had no age limit), and the DCs ran them
/// again under tokens older than their workers had seen: `monotone-register` and
/// `stale-dispatch-effect` violations in every seed, the 5 jobs run a second time
/// (completing at ~1,415 s). Now a leader gives up an orphan whose owner's last word is older than
/// 300 s (leadership.md §2.2's job ownerless for 300 s), as its followers, and a
/// leader handed an orphan, already did: the jobs end `lost`, held by nobody.
#[test]
fn a_leader_elected_long_after_the_owners_death_gives_its_orphans_up() {
    let mut s = common::load("gate-failover.toml", &[]);
    s.duration = std::time::Duration::from_secs(1_500);
    common::add_faults(
        &mut s,
        r#"
        [[fault]]
        at = "60s"
        action = "crash"
        nodes = ["us-east/gate-2"]
        [[fault]]
        at = "1400s"
        action = "restart"
        nodes = ["us-east/gate-2"]
        "#,
    );
    for r in meridian_sim::sweep(&s, 1..6, 2) {
        assert_held("gate-failover.toml", &r);
        assert!(
            r.leadership.leaders_at_end["gates"].is_some(),
            "seed {}",
            r.seed
        );
        let j = jobs(&r);
        assert_eq!(j.gate_takeovers, 0, "seed {}", r.seed);
        assert_lost_and_gone(&r, 4);
        for e in &j.per_job {
            assert!(
                e.ended_ms.is_none_or(|t| t < 1_400_000),
                "seed {}: job {} ended at {:?}",
                r.seed,
                e.id,
                e.ended_ms
            );
        }
    }
}

/// Both gates crash for good at 40 s while the jobs they accepted run in the DCs:
/// nobody will ever acknowledge the DCs' final reports. Each DC leader resends them for
/// 600 s, then gives them up into their tombstones, so at the end no node holds any of
/// those jobs: they end `lost` (no gate recorded an outcome, and none ever will).
/// Before, each DC leader resent every report to the dead gate every 2 s for ever and
/// the jobs stayed `in_flight` (4-5 a seed). (The checker's completeness rule now
/// holds a crashed gate whose only tracker crashed with it as buried: nobody is left
/// to declare it dead.)
#[test]
fn a_dc_gives_up_the_final_reports_of_a_dead_gates_jobs_after_600_s() {
    let mut s = jobs_basic_untimed();
    s.duration = std::time::Duration::from_secs(1_200);
    common::add_faults(
        &mut s,
        r#"
        [[fault]]
        at = "40s"
        action = "crash"
        nodes = ["us-east/gate-0", "us-east/gate-1"]
        "#,
    );
    for r in meridian_sim::sweep(&s, 1..6, 2) {
        assert_held("jobs-basic.toml", &r);
        let j = jobs(&r);
        assert_eq!(j.in_flight, 0, "seed {}", r.seed);
        assert_lost_and_gone(&r, 4);
    }
}

/// Every manager of eu-west goes down at once (a 30 s outage at 80 s, its workers
/// with them) and comes back with no trace of the jobs it ran: no replica, no
/// tombstone. The gate sends each job whose end it has not heard again every 120 s, and
/// the DC runs it again. Before, those jobs (they have no timeout) stayed in flight for
/// ever.
#[test]
fn a_dc_that_lost_every_trace_of_its_jobs_runs_them_again() {
    untimed_jobs_all_complete_despite(
        r#"
        [[fault]]
        at = "80s"
        action = "dc_outage"
        dcs = ["eu-west"]
        for = "30s"
        "#,
    );
}

/// The failover scenario on a hostile network (5% loss, 25% duplicated and 2% corrupted
/// datagrams): still every job completes once and every invariant holds, including the
/// simulator's own check that no machine's deadline stops advancing (a manager whose
/// takeover hold ran out while no worker had room once spun here at one instant).
#[test]
fn leader_failover_on_a_hostile_network() {
    let s = common::load(
        "leader-failover-mid-job.toml",
        &[
            "network.loss=0.05",
            "network.duplicate=0.25",
            "network.corrupt=0.02",
        ],
    );
    for r in meridian_sim::sweep(&s, 1..41, 2) {
        assert_all_completed(&r);
        assert_eq!(jobs(&r).submitted, 40);
    }
}

/// The fault kinds of the lost-job and leak scans (sessions 18-20): every kind but
/// `loss`, `link_loss` and `dc_outage`.
const SCAN_KINDS: &str = r#"["crash", "restart", "leave", "partition", "heal", "pause", "slow",
    "skew", "latency", "duplicate", "corrupt", "crash_leader", "isolate_leader", "reorder",
    "one_way_latency", "flap"]"#;

/// `fixture` with random faults of `kinds` (a TOML list), 6 a simulated minute, from
/// 20 s to the fixture's end; a `heal` `heal_after` s after the end; then 15 quiet
/// minutes for every job to end and every trace of it to go.
fn chaos_then_quiet(
    fixture: &str,
    kinds: &str,
    heal_after: u64,
) -> meridian_sim::scenario::Scenario {
    let mut s = common::load(fixture, &[]);
    let end = s.duration.as_secs();
    common::add_faults(
        &mut s,
        &format!(
            r#"
            [[fault]]
            action = "random"
            at = "20s"
            until = "{end}s"
            rate = 6.0
            kinds = {kinds}

            [[fault]]
            at = "{}s"
            action = "heal"
            "#,
            end + heal_after
        ),
    );
    s.duration += std::time::Duration::from_secs(900);
    s
}

/// jobs.md §7.2-7.3 under the same chaos with graceful leaves added (the lost-job scan
/// of session 18), on seeds where it found two violations:
/// - `gate-failover` seed 44, "job 5 ended Completed and then Failed": a gate cut off
///   from the others missed a finished job's `GateReplicaForget`, became the
///   gate-cluster leader after the heal and took the job over again; its eu-west copy
///   could no longer answer (that DC had lost its quorum), so 300 s later it failed the
///   job. Now the gate that saw the end answers the takeover's `GateReplicate` with
///   `GateReplicaForget`, and the taker drops the job without an outcome.
/// - `leader-failover-mid-job` seed 78, "declared job 14 timed out twice": one gate
///   declared, crashed, restarted with no memory and, taking the job back over from a
///   replica, declared again. The checker counted the restarted gate as the same one;
///   it now forgets a gate's decisions when it restarts, as it already forgot a
///   manager's timeout actions (a restarted gate is another gate across a failover).
#[test]
fn chaos_with_a_quiet_tail_never_ends_a_job_twice() {
    for (fixture, seeds) in [
        ("gate-failover.toml", 41..51),
        ("leader-failover-mid-job.toml", 71..81),
    ] {
        let s = chaos_then_quiet(fixture, SCAN_KINDS, 0);
        for r in meridian_sim::sweep(&s, seeds, 2) {
            assert_held(fixture, &r);
        }
    }
}

/// jobs.md §7.10 across DC leader changes: in seed 12 of `jobs-basic` and of
/// `single-dc-timeouts` under session 19's leak scan (these faults, a final heal, 15
/// quiet minutes), a 5% corruption fault outlives the heal and the DC leader, with two
/// live voters, loses its check-quorum every ~190 s. Each new leader restarted the
/// 600 s give-up of a dead gate's final report, so the ended jobs were held for ever.
/// Now the clock passes from leader to leader with the replicas: nothing is held.
#[test]
fn a_dcs_report_give_up_survives_leader_churn() {
    for fixture in ["jobs-basic.toml", "single-dc-timeouts.toml"] {
        let s = chaos_then_quiet(fixture, SCAN_KINDS, 0);
        for r in meridian_sim::sweep(&s, 12..13, 1) {
            assert_held(fixture, &r);
            assert_no_ended_job_held(fixture, &r);
        }
    }
}

/// jobs.md §7's "a terminal job is never timed out", in `extensions` seed 28 of session
/// 19's leak scan: the DC leader that acknowledged job 0's only result crashed before
/// its `ReplicaDone` reached anyone; the next leaders took the job over from replicas
/// without it and ran the workflow again, and the second run was timed out after the
/// gate had recorded the job complete. Now the worker that finished it tells each new
/// leader the results it remembers (`DoneEarlier`), and the workflow is not run again.
#[test]
fn a_result_acknowledged_by_a_crashed_leader_is_not_run_again() {
    let s = chaos_then_quiet("extensions.toml", SCAN_KINDS, 0);
    for r in meridian_sim::sweep(&s, 28..29, 1) {
        assert_held("extensions.toml", &r);
        assert_eq!(jobs(&r).completed, 1);
    }
}

/// jobs.md §7.10, tracking always ends, under chaos: random faults (6 a minute, of the
/// kinds a final `heal` undoes or that end by themselves) for a fixture's run, every
/// cut healed at its end, then 15 quiet minutes: no live gate or manager still holds a
/// job that ended. Before, 6 of these 90 runs ended with such jobs: gates kept
/// replicas of finished jobs whose `GateReplicaForget` a cut or a flap had dropped
/// (taken over, and run again, once their owner died), and a DC leader kept a
/// timed-out job whose last cancel died with its worker.
#[test]
fn ended_jobs_are_forgotten_everywhere_once_the_faults_stop() {
    for (fixture, seeds) in [
        ("gate-failover.toml", 1..61),
        ("multi-dc-global-timeout.toml", 1..31),
    ] {
        let s = chaos_then_quiet(
            fixture,
            r#"["crash", "restart", "partition", "heal", "pause", "slow", "skew",
                "duplicate", "reorder", "crash_leader", "isolate_leader", "flap",
                "corrupt", "latency", "one_way_latency"]"#,
            1,
        );
        for r in meridian_sim::sweep(&s, seeds, 2) {
            assert_held(fixture, &r);
            assert_no_ended_job_held(fixture, &r);
        }
    }
}

/// A DC leader cut off from its majority steps aside and keeps its jobs as replicas,
/// dated to the last majority it heard: one of them completed under the next leader
/// while it was cut off, and a third leader (restarted without tombstones, partitioned
/// from the node that had them) adopted that stale replica and timed the completed job
/// out, when the replica was dated to the step-down six seconds later
/// (`overload-burst`, `--chaos 6`, seed 281052 of session 25's sweep).
#[test]
fn a_replica_that_missed_its_job_s_end_is_not_adopted_after_a_lost_quorum() {
    let text = std::fs::read_to_string(common::fixture("overload-burst.toml")).unwrap();
    let text = meridian_sim::scenario::with_chaos(&text, 6.0);
    let s =
        meridian_sim::scenario::parse(&text, &common::fixture("overload-burst.toml"), &[]).unwrap();
    let r = meridian_sim::run(&s, 281_052);
    assert!(r.ok(), "{:?}", r.invariants.violations);
}

/// A replica that missed its job's end in the DC is adopted by a leader cut off from the
/// managers that kept the tombstone, with workers that restarted and remember nothing
/// (`stale-replica-takeover.toml`, told in the file). The job's gate answers the new
/// leader's `LeaderTransfer` with `JobOver`: the takeover is superseded and no workflow
/// of the completed job starts again. Before, all four ran a second time at 89.4 s
/// (after the takeover grace), and no invariant noticed.
#[test]
fn a_stale_replica_adopted_out_of_reach_of_its_tombstone_is_stopped_by_the_gate() {
    let path = common::fixture("stale-replica-takeover.toml");
    let trace = run_stale_replica(&std::fs::read_to_string(&path).unwrap());
    let job_events = |kind: &str| job_events(&trace, kind);
    let finished = job_events("Finished");
    assert_eq!(finished.len(), 1);
    let ended_at = finished[0].1;
    // The race happened: a second takeover, after the end, superseded at once.
    let takeovers = job_events("TakenOver");
    assert_eq!(takeovers.len(), 2, "{takeovers:?}");
    let (leader, taken_at) = takeovers[1].clone();
    assert!(taken_at > ended_at + 30_000.0, "{takeovers:?}");
    // Superseded by the gate's answer, a round trip later: well inside the grace.
    let superseded = job_events("TakeoverSuperseded");
    assert_eq!(superseded.len(), 1, "{superseded:?}");
    assert_eq!(superseded[0].0, leader);
    assert!(
        superseded[0].1 - taken_at < 100.0,
        "{superseded:?} {taken_at}"
    );
    let started = job_events("WorkflowStarted");
    assert_eq!(started.len(), 4, "{started:?}");
    assert!(started.iter().all(|(_, t)| *t < ended_at));
}

/// The same race with the job's gate out of reach too (cut off with manager-1 from
/// 60 s to 150 s): the new leader's `LeaderTransfer` goes unanswered, so it dispatches
/// nothing (asking again, 2 s later, then twice as long each time up to 16 s) until the
/// cut has healed and the gate answers its next ask with `JobOver` (156.4 s).
/// Before, it dispatched after the 3 s grace, and the `run-after-end` invariant (the
/// workflows of a job its gate had finished, started again in a DC where they
/// completed) fired at 89.4 s.
#[test]
fn a_stale_replica_waits_for_its_unreachable_gate_and_never_runs_again() {
    let path = common::fixture("stale-replica-takeover.toml");
    let text = std::fs::read_to_string(&path).unwrap().replace(
        r#"groups = [["dc1/manager-1"]]"#,
        r#"groups = [["dc1/manager-1", "dc1/gate-0"]]"#,
    ) + "\n[[fault]]\nat = \"150s\"\naction = \"heal\"\n";
    let trace = run_stale_replica(&text);
    let at = |kind: &str| -> Vec<f64> {
        job_events(&trace, kind)
            .into_iter()
            .map(|(_, t)| t)
            .collect()
    };
    let ended_at = at("Finished")[0];
    assert_eq!(at("TakenOver").len(), 2);
    let superseded = at("TakeoverSuperseded");
    assert_eq!(superseded.len(), 1);
    // The first ask after the heal: at most 16 s later.
    assert!(
        (150_000.0..166_000.0).contains(&superseded[0]),
        "{superseded:?}"
    );
    assert!(at("WorkflowStarted").iter().all(|t| *t < ended_at));
}

/// Seed 1 of `text` (a version of `stale-replica-takeover.toml`): every job completes
/// and every invariant holds; the trace, one JSON value a line.
fn run_stale_replica(text: &str) -> Vec<serde_json::Value> {
    let path = common::fixture("stale-replica-takeover.toml");
    let s = meridian_sim::scenario::parse(text, &path, &[]).unwrap();
    let mut trace = Vec::new();
    let r = meridian_sim::run_traced(&s, 1, &mut trace);
    assert_all_completed(&r);
    std::str::from_utf8(&trace)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// `(node, ms)` of each job-plane event of `kind` in `trace`, in order.
fn job_events(trace: &[serde_json::Value], kind: &str) -> Vec<(String, f64)> {
    trace
        .iter()
        .filter(|e| e["event"]["Job"][kind].is_object())
        .map(|e| {
            (
                e["node"].as_str().unwrap().to_string(),
                e["t_ms"].as_f64().unwrap(),
            )
        })
        .collect()
}
