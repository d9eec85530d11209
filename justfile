# Everyday recipes. `just --list` shows them.

# The whole test suite (what CI runs, after fmt and clippy).
test:
    cargo test --workspace

# Play a scenario once: just sim fixtures/scenarios/three-dc-partition.toml
sim scenario="fixtures/scenarios/three-dc-partition.toml" *args="":
    cargo run --release -p meridian-sim -- run {{scenario}} {{args}}

# Sweep a scenario over seeds: just sweep fixtures/scenarios/single-dc-crash.toml 1..21
sweep scenario="fixtures/scenarios/three-dc-partition.toml" seeds="1..201" *args="":
    cargo run --release -p meridian-sim -- sweep {{scenario}} --seeds {{seeds}} {{args}}

# Formatting and lints, as CI checks them.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# Criterion benchmarks (core hot paths and whole-simulation throughput).
bench:
    cargo bench --workspace

# Everything CI does.
ci:
    bash .ci/run
