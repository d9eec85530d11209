//! Shared helpers for the simulator's integration tests.
#![allow(dead_code)]

use meridian_sim::scenario::{self, Scenario};
use std::path::PathBuf;

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/scenarios")
        .join(name)
}

pub fn load(name: &str, overrides: &[&str]) -> Scenario {
    let o: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    scenario::load(&fixture(name), &o).unwrap_or_else(|e| panic!("{e}"))
}

/// Append `[[fault]]` entries written as TOML to a loaded scenario.
pub fn add_faults(s: &mut Scenario, faults_toml: &str) {
    let parsed: toml::Table = faults_toml.parse().expect("fault TOML");
    for f in parsed["fault"].as_array().expect("[[fault]] entries") {
        s.faults.push(f.clone().try_into().expect("a valid fault"));
    }
}
