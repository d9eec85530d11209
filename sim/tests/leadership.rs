//! Cluster leadership in the simulator (issue 4, leadership.md §1, §4): every DC's
//! managers and the gates elect one leader; failover after a crash; an isolated leader
//! steps down and the majority elects another; never two leaders in one term.

mod common;

use serde_json::Value;

/// `(t_ms, node, event)` of every `Election` event of a traced run.
fn election_events(
    s: &meridian_sim::scenario::Scenario,
    seed: u64,
) -> (meridian_sim::report::Report, Vec<(f64, String, Value)>) {
    let mut trace = Vec::new();
    let r = meridian_sim::run_traced(s, seed, &mut trace);
    let events = String::from_utf8(trace)
        .unwrap()
        .lines()
        .filter_map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let e = v["event"].get("Election")?.clone();
            Some((
                v["t_ms"].as_f64().unwrap(),
                v["node"].as_str().unwrap().to_string(),
                e,
            ))
        })
        .collect();
    (r, events)
}

fn elected(events: &[(f64, String, Value)], group: u64) -> Vec<(f64, String, u64)> {
    events
        .iter()
        .filter_map(|(t, n, e)| {
            let le = e.get("LeaderElected")?;
            (le["group"].as_u64() == Some(group))
                .then(|| (*t, n.clone(), le["term"].as_u64().unwrap()))
        })
        .collect()
}

/// The node `group` last elected before `t_ms`.
fn last_leader_before(events: &[(f64, String, Value)], group: u64, t_ms: f64) -> String {
    elected(events, group)
        .into_iter()
        .rfind(|(t, _, _)| *t < t_ms)
        .expect("a leader before the fault")
        .1
}

#[test]
fn every_group_elects_one_leader_and_all_agree() {
    let s = common::load("three-dc-partition.toml", &[]);
    for r in meridian_sim::sweep(&s, 1..21, 2) {
        let l = &r.leadership;
        assert_eq!(l.leaders_per_term_max, 1, "seed {}", r.seed);
        assert_eq!(l.leaders_at_end.len(), 4, "gates + 3 DCs");
        for (g, who) in &l.leaders_at_end {
            assert!(who.is_some(), "seed {}: {g} has no agreed leader", r.seed);
        }
        assert!(r.invariants.violations.is_empty(), "seed {}", r.seed);
    }
}

/// A crashed DC leader is replaced within 16 s (leadership.md §1.4: "about 9-16 s").
#[test]
fn a_crashed_dc_leader_is_replaced_within_16_s() {
    let mut base = common::load("three-dc-partition.toml", &[]);
    base.faults.clear();
    base.duration = std::time::Duration::from_secs(120);
    common::add_faults(
        &mut base,
        "[[fault]]\nat = \"60s\"\naction = \"crash_leader\"\ndc = \"us-east\"\n",
    );
    for seed in 1..6 {
        let (r, events) = election_events(&base, seed);
        // us-east is DC 0: group 1. Its leader at the crash is the last one elected.
        let first = last_leader_before(&events, 1, 60_000.0);
        let after: Vec<_> = elected(&events, 1)
            .into_iter()
            .filter(|(t, _, _)| *t > 60_000.0)
            .collect();
        let (t, who, _) = after.first().cloned().expect("a new leader");
        assert_ne!(who, first);
        assert!(
            t - 60_000.0 <= 16_000.0,
            "seed {seed}: failover took {} ms",
            t - 60_000.0
        );
        assert_eq!(
            r.leadership.leaders_at_end["us-east"].as_deref(),
            Some(who.as_str())
        );
        assert_eq!(r.leadership.leaders_per_term_max, 1);
    }
}

/// Check-quorum at node level (issue 4, acceptance 4): a DC leader cut off from its DC
/// steps down, the majority elects a new leader, and after the heal one leader remains.
#[test]
fn an_isolated_dc_leader_steps_down_and_the_majority_takes_over() {
    let mut base = common::load("three-dc-partition.toml", &[]);
    base.faults.clear();
    base.duration = std::time::Duration::from_secs(240);
    common::add_faults(
        &mut base,
        "[[fault]]\nat = \"60s\"\naction = \"isolate_leader\"\ndc = \"us-east\"\n\
         [[fault]]\nat = \"150s\"\naction = \"heal\"\n",
    );
    for seed in 1..6 {
        let (r, events) = election_events(&base, seed);
        let first = last_leader_before(&events, 1, 60_000.0);
        let stepped_down = events.iter().find(|(t, n, e)| {
            *t > 60_000.0
                && *n == first
                && e.get("SteppedDown")
                    .is_some_and(|sd| sd["reason"] == "LostQuorum")
        });
        let (t_down, _, _) = stepped_down.expect("the isolated leader stepped down");
        assert!(*t_down - 60_000.0 <= 7_100.0, "seed {seed}: {t_down}");
        let new = elected(&events, 1)
            .into_iter()
            .find(|(t, n, _)| *t > 60_000.0 && *n != first)
            .expect("the majority elected a leader");
        assert!(new.0 < 150_000.0, "seed {seed}: during the cut");
        assert_eq!(
            r.leadership.leaders_at_end["us-east"].as_deref(),
            Some(new.1.as_str()),
            "seed {seed}: one leader after the heal"
        );
        assert_eq!(r.leadership.leaders_per_term_max, 1);
        assert!(
            r.invariants.violations.is_empty(),
            "seed {seed}: {:?}",
            r.invariants.violations
        );
    }
}
