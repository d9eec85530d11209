//! AD-24 in the simulator (backpressure.md §4, §10 invariant 9), with
//! `submission-flood.toml`: one client submits 80 jobs in 8 s to a gate, another one a
//! second, 50 ms after the flood's.

mod common;

/// The gate allows each client 50 submissions in 10 s: the flood's first 50 go in, its
/// other 30 are refused (all inside the first window), the polite client is never
/// refused, every job taken completes, and no node's limiter refuses anything else
/// (commands down the tiers, replies and replication are not counted). Invariant 9
/// holds on every seed.
#[test]
fn a_flooding_client_is_held_to_50_submissions_in_10_s_and_nobody_else_is() {
    let s = common::load("submission-flood.toml", &[]);
    for r in meridian_sim::sweep(&s, 1..21, 2) {
        assert!(r.ok(), "seed {}: {:?}", r.seed, r.invariants.violations);
        let j = r.jobs.as_ref().expect("the scenario has jobs");
        assert_eq!(
            (j.submitted, j.completed, j.refused),
            (60, 60, 30),
            "seed {}",
            r.seed
        );
        assert_eq!(j.rate_limits.submissions_refused, 30, "seed {}", r.seed);
        assert_eq!(j.rate_limits.refused, 30, "seed {}", r.seed);
        assert_eq!(j.rate_limits.held, 0, "seed {}", r.seed);
        let refused: Vec<u64> = j
            .per_job
            .iter()
            .filter(|e| e.state == "refused")
            .map(|e| e.submitted_ms)
            .collect();
        // The flood submits on whole 100 ms from 20 s on; the polite client at 50 ms
        // past. The flood's 51st is its first refused: at 25 s.
        assert!(
            refused.iter().all(|t| t % 100 == 0),
            "seed {}: {refused:?}",
            r.seed
        );
        assert_eq!(refused.first(), Some(&25_000), "seed {}", r.seed);
        assert_eq!(refused.last(), Some(&27_900), "seed {}", r.seed);
    }
}

/// A client within its allowance (the flood cut to 50 jobs) is never refused.
#[test]
fn within_its_allowance_a_client_is_never_refused() {
    let mut s = common::load("submission-flood.toml", &[]);
    s.jobs[0].count = 50;
    let r = meridian_sim::run(&s, 1);
    let j = r.jobs.as_ref().unwrap();
    assert_eq!((j.submitted, j.refused), (60, 0));
    assert_eq!(j.rate_limits.refused, 0);
}

/// Two workers of `overload-burst` in a retry storm (each report they send up goes out
/// 20 times from 35 s on): their leader refuses what is over each one's allowance and
/// tells it to wait, the workers hold their reports back until then, every job
/// completes, no worker is suspected for a job (AD-30: the leader excuses the silence
/// it asked for), and invariant 9 holds on every admission.
#[test]
fn workers_in_a_retry_storm_are_held_to_their_allowance() {
    let mut s = common::load("overload-burst.toml", &[]);
    common::add_faults(
        &mut s,
        r#"
        [[fault]]
        at = "35s"
        action = "storm"
        nodes = ["us-east/worker-0", "us-east/worker-1"]
        copies = 20
    "#,
    );
    for r in meridian_sim::sweep(&s, 1..11, 2) {
        assert!(r.ok(), "seed {}: {:?}", r.seed, r.invariants.violations);
        let j = r.jobs.as_ref().unwrap();
        assert_eq!((j.submitted, j.completed), (30, 30), "seed {}", r.seed);
        let rl = &j.rate_limits;
        assert!(rl.refused > 0 && rl.held > 0, "seed {}: {rl:?}", r.seed);
        assert_eq!(rl.submissions_refused, 0, "seed {}", r.seed);
        assert_eq!(r.membership.job_layer.suspected, 0, "seed {}", r.seed);
    }
}

#[test]
fn a_storm_needs_1_to_100_copies() {
    let text = std::fs::read_to_string(common::fixture("overload-burst.toml")).unwrap()
        + "\n[[fault]]\nat = \"35s\"\naction = \"storm\"\nnodes = [\"us-east/worker-0\"]\ncopies = 0\n";
    let e = meridian_sim::scenario::parse(&text, std::path::Path::new("storm.toml"), &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("copies") && e.contains("1..=100"), "{e}");
}
