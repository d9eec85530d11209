//! Determinism is a feature: same seed, same bytes; different seed, different bytes;
//! sweeps give the same per-seed results whatever the thread count.

mod common;

#[test]
fn same_seed_gives_the_same_trace_hash_and_report() {
    let s = common::load("three-dc-partition.toml", &[]);
    let a = meridian_sim::run(&s, 7);
    let b = meridian_sim::run(&s, 7);
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_eq!(a.events, b.events);
    assert_eq!(a.messages.bytes, b.messages.bytes);
    let c = meridian_sim::run(&s, 8);
    assert_ne!(
        a.trace_hash, c.trace_hash,
        "a different seed must give a different trace"
    );
}

#[test]
fn the_trace_file_is_byte_identical_across_runs() {
    let s = common::load("single-dc-crash.toml", &["duration=\"200s\""]);
    let mut a = Vec::new();
    let mut b = Vec::new();
    let ra = meridian_sim::run_traced(&s, 3, &mut a);
    let rb = meridian_sim::run_traced(&s, 3, &mut b);
    assert!(!a.is_empty());
    assert_eq!(a, b);
    assert_eq!(ra.trace_hash, rb.trace_hash);
    // Writing a trace does not change what happens.
    assert_eq!(meridian_sim::run(&s, 3).trace_hash, ra.trace_hash);
}

#[test]
fn sweep_results_do_not_depend_on_thread_count() {
    let s = common::load("lifeguard-slow-node.toml", &["duration=\"2m\""]);
    let one: Vec<String> = meridian_sim::sweep(&s, 1..7, 1)
        .into_iter()
        .map(|r| r.trace_hash)
        .collect();
    let two: Vec<String> = meridian_sim::sweep(&s, 1..7, 2)
        .into_iter()
        .map(|r| r.trace_hash)
        .collect();
    assert_eq!(one, two);
    let singles: Vec<String> = (1..7)
        .map(|seed| meridian_sim::run(&s, seed).trace_hash)
        .collect();
    assert_eq!(one, singles);
}

#[test]
fn faults_of_every_kind_replay_identically() {
    let s = common::load(
        "three-dc-partition.toml",
        &["duration=\"4m\"", "network.corrupt=0.01"],
    );
    let mut s = s;
    let extra = r#"
        [[fault]]
        at = "20s"
        action = "pause"
        nodes = ["us-east/worker-1"]
        for = "8s"
        [[fault]]
        at = "25s"
        action = "skew"
        nodes = ["eu-west/manager-1"]
        offset_ms = -700
        drift_ppm = 300
        [[fault]]
        at = "30s"
        action = "slow"
        nodes = ["ap-south/worker-2"]
        delay_ms = [100, 400]
        [[fault]]
        at = "40s"
        action = "crash"
        nodes = ["ap-south/manager-0"]
        [[fault]]
        at = "100s"
        action = "restart"
        nodes = ["ap-south/manager-0"]
        [[fault]]
        at = "50s"
        action = "latency"
        between = ["us-east", "eu-west"]
        rtt_ms = 300
        [[fault]]
        at = "55s"
        action = "loss"
        rate = 0.05
        nodes = ["us-east/gate-1"]
        [[fault]]
        at = "200s"
        action = "leave"
        nodes = ["us-east/worker-3"]
        [[fault]]
        at = "60s"
        until = "3m"
        action = "random"
        rate = 3.0
        [[fault]]
        at = "30s"
        action = "reorder"
        rate = 0.1
        [[fault]]
        at = "35s"
        action = "one_way_latency"
        from = "us-east"
        to = "ap-south"
        delay_ms = 120
        [[fault]]
        at = "45s"
        action = "link_loss"
        between = ["eu-west", "us-east/worker-2"]
        rate = 0.2
        one_way = true
        [[fault]]
        at = "70s"
        action = "flap"
        between = ["us-east", "ap-south"]
        period = "15s"
        down = "4s"
        until = "150s"
        [[fault]]
        at = "120s"
        action = "dc_outage"
        dcs = ["ap-south"]
        for = "20s"
        [[fault]]
        at = "160s"
        action = "crash"
        nodes = ["eu-west/worker-4"]
        [[fault]]
        at = "175s"
        action = "restart"
        nodes = ["eu-west/worker-4"]
        state = "lost"
    "#;
    common::add_faults(&mut s, extra);
    let a = meridian_sim::run(&s, 11);
    let b = meridian_sim::run(&s, 11);
    assert_eq!(a.trace_hash, b.trace_hash);
    // The random entry drew different faults for another seed.
    let drawn = |seed| {
        format!(
            "{:?}",
            meridian_sim::random_faults::concrete_faults(&s, seed)
        )
    };
    assert_ne!(drawn(11), drawn(12));
    assert!(a.messages.decode_errors > 0, "corruption reached the nodes");
    assert!(a.messages.reordered > 0, "reordering was measured");
    assert!(a.ok(), "{:?}", a.invariants.violations);
}

/// The job-timeout machinery (extensions, cancels, fallbacks, failover resumes) replays
/// byte for byte, and a sweep's results do not depend on its thread count.
#[test]
fn job_timeouts_replay_identically_whatever_the_thread_count() {
    for name in [
        "extensions.toml",
        "timeout-leader-failover.toml",
        "gate-unreachable-fallback.toml",
    ] {
        let s = common::load(name, &[]);
        let a = meridian_sim::run(&s, 11);
        let b = meridian_sim::run(&s, 11);
        assert_eq!(a.trace_hash, b.trace_hash, "{name}");
        assert_eq!(a.events, b.events, "{name}");
        let one: Vec<String> = meridian_sim::sweep(&s, 1..5, 1)
            .into_iter()
            .map(|r| r.trace_hash)
            .collect();
        let two: Vec<String> = meridian_sim::sweep(&s, 1..5, 2)
            .into_iter()
            .map(|r| r.trace_hash)
            .collect();
        assert_eq!(one, two, "{name}");
    }
}

/// A sweep split into shards (one per machine, say) gives, shard by shard, exactly the
/// reports of the whole range (README: sharding a big sweep).
#[test]
fn a_sweep_split_into_shards_gives_the_whole_sweeps_results() {
    let s = common::load("random-faults.toml", &["duration=\"3m\""]);
    let whole: Vec<String> = meridian_sim::sweep(&s, 1..13, 2)
        .into_iter()
        .map(|r| format!("{} {}", r.seed, r.trace_hash))
        .collect();
    let mut shards = Vec::new();
    for part in [1..5, 5..6, 6..13] {
        shards.extend(
            meridian_sim::sweep(&s, part, 1)
                .into_iter()
                .map(|r| format!("{} {}", r.seed, r.trace_hash)),
        );
    }
    assert_eq!(whole, shards);
}
