//! meridian-sim: a seeded, deterministic discrete-event simulator of Meridian clusters.
//!
//! A scenario (TOML) describes DCs, the network, protocol overrides and a fault schedule;
//! [`run`] plays it for one seed and returns a [`report::Report`]; [`sweep`] plays many
//! seeds in parallel, one world per thread, with results independent of the thread count.

pub mod backpressure;
pub mod check;
pub mod coords;
pub mod html;
pub mod huge_pages;
pub mod network;
pub mod oob;
pub mod random_faults;
pub mod rate_limits;
pub mod report;
pub mod routing;
pub mod scenario;
pub mod shrink;
pub mod trace;
pub mod trace_hash;
pub mod world;

use rayon::prelude::*;
use report::Report;
use scenario::Scenario;
use std::io::Write;

/// Play `scenario` with `seed`.
pub fn run(scenario: &Scenario, seed: u64) -> Report {
    world::World::new(scenario, seed, None).run()
}

/// Play `scenario` with `seed`, writing every event and fault as a JSON line to `trace`.
pub fn run_traced(scenario: &Scenario, seed: u64, trace: &mut dyn Write) -> Report {
    world::World::new(scenario, seed, Some(trace)).run()
}

/// [`run_traced`], keeping in the report what the HTML report draws besides the trace
/// (`CoordsReport::plot`, which other runs leave out).
pub fn run_for_html(scenario: &Scenario, seed: u64, trace: &mut dyn Write) -> Report {
    world::World::new(scenario, seed, Some(trace))
        .with_plot()
        .run()
}

/// Play every seed in `seeds` on `jobs` threads; reports come back in seed order.
///
/// Every seed is its own world, so a range split into parts (across machines, say)
/// gives, part by part, exactly the reports of the whole range: shard a big sweep by
/// giving each machine its own sub-range and concatenate the results.
pub fn sweep(scenario: &Scenario, seeds: std::ops::Range<u64>, jobs: usize) -> Vec<Report> {
    sweep_with_progress(scenario, seeds, jobs, &|| {})
}

/// [`sweep`], calling `done` as each seed finishes (in whatever order threads finish
/// them: for a progress bar, never for results).
pub fn sweep_with_progress(
    scenario: &Scenario,
    seeds: std::ops::Range<u64>,
    jobs: usize,
    done: &(dyn Fn() + Sync),
) -> Vec<Report> {
    // One job runs on the calling thread. glibc backs only the main thread's heap with
    // the huge pages `huge_pages` asks for (a worker thread's malloc arena gets none),
    // and a 1,000-node seed swept on a pool thread took 1.18x the wall of the same
    // seed run on the main thread.
    if jobs <= 1 {
        return seeds
            .map(|seed| {
                let r = run(scenario, seed);
                done();
                r
            })
            .collect();
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(jobs.max(1))
        .build()
        .expect("thread pool");
    pool.install(|| {
        seeds
            .into_par_iter()
            .map(|seed| {
                let r = run(scenario, seed);
                done();
                r
            })
            .collect()
    })
}

/// Per invariant: how many seeds violated it and how many violations they reported
/// (a report keeps its first 200), by name.
pub fn violations_by_invariant(
    reports: &[Report],
) -> std::collections::BTreeMap<String, (u64, u64)> {
    let mut table: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
    for r in reports {
        let mut seen: Vec<&str> = Vec::new();
        for v in &r.invariants.violations {
            let e = table.entry(v.invariant.clone()).or_default();
            e.1 += 1;
            if !seen.contains(&v.invariant.as_str()) {
                seen.push(&v.invariant);
                e.0 += 1;
            }
        }
    }
    table
}

/// Median of a list (None if empty).
pub fn median(mut v: Vec<u64>) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    Some(v[v.len() / 2])
}
