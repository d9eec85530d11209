//! meridian-sim: a seeded, deterministic discrete-event simulator of Meridian clusters.
//!
//! A scenario (TOML) describes DCs, the network, protocol overrides and a fault schedule;
//! [`run`] plays it for one seed and returns a [`report::Report`]; [`sweep`] plays many
//! seeds in parallel, one world per thread, with results independent of the thread count.

pub mod backpressure;
pub mod check;
pub mod coords;
pub mod network;
pub mod report;
pub mod routing;
pub mod scenario;
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

/// Play every seed in `seeds` on `jobs` threads; reports come back in seed order.
pub fn sweep(scenario: &Scenario, seeds: std::ops::Range<u64>, jobs: usize) -> Vec<Report> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(jobs.max(1))
        .build()
        .expect("thread pool");
    pool.install(|| {
        seeds
            .into_par_iter()
            .map(|seed| run(scenario, seed))
            .collect()
    })
}

/// Median of a list (None if empty).
pub fn median(mut v: Vec<u64>) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    Some(v[v.len() / 2])
}
