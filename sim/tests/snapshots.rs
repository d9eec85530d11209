//! Regression snapshots of seeded reports; wall-clock fields are redacted.

mod common;

fn snapshot(name: &str) {
    let s = common::load(&format!("{name}.toml"), &[]);
    let r = meridian_sim::run(&s, s.seed);
    insta::assert_json_snapshot!(name, r, {
        ".wall_ms" => "[wall]",
        ".throughput" => "[wall]",
    });
}

#[test]
fn single_dc_crash_report() {
    snapshot("single-dc-crash");
}

#[test]
fn three_dc_partition_report() {
    snapshot("three-dc-partition");
}

#[test]
fn lifeguard_slow_node_report() {
    snapshot("lifeguard-slow-node");
}

#[test]
fn world_cities_report_with_coords() {
    snapshot("world-cities");
}

#[test]
fn jobs_basic_report() {
    snapshot("jobs-basic");
}

#[test]
fn leader_failover_mid_job_report() {
    snapshot("leader-failover-mid-job");
}

#[test]
fn gate_failover_report() {
    snapshot("gate-failover");
}

#[test]
fn single_dc_timeouts_report() {
    snapshot("single-dc-timeouts");
}

#[test]
fn multi_dc_global_timeout_report() {
    snapshot("multi-dc-global-timeout");
}

#[test]
fn gate_unreachable_fallback_report() {
    snapshot("gate-unreachable-fallback");
}

#[test]
fn extensions_report() {
    snapshot("extensions");
}

#[test]
fn job_silence_report() {
    snapshot("job-silence");
}

#[test]
fn long_workflows_report() {
    snapshot("long-workflows");
}

#[test]
fn timeout_leader_failover_report() {
    snapshot("timeout-leader-failover");
}

#[test]
fn overload_burst_report() {
    snapshot("overload-burst");
}

#[test]
fn routing_latency_shift_report() {
    snapshot("routing-latency-shift");
}

#[test]
fn routing_dc_degrades_report() {
    snapshot("routing-dc-degrades");
}

#[test]
fn routing_flapping_report() {
    snapshot("routing-flapping");
}

#[test]
fn routing_cold_start_report() {
    snapshot("routing-cold-start");
}

#[test]
fn random_faults_report() {
    snapshot("random-faults");
}
