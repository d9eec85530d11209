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

# A local 3-DC cluster of 12 nodes on 127.0.0.1:71xx-73xx (fixtures/cluster/), in the
# background; logs and pids in target/cluster/. Then:
#   ./target/release/meridian-node members --node 127.0.0.1:7101
cluster:
    cargo build --release -p meridian-driver-tokio
    mkdir -p target/cluster
    for f in fixtures/cluster/*.toml; do n=$(basename $f .toml); ./target/release/meridian-node run --config $f > target/cluster/$n.log 2>&1 & echo $! > target/cluster/$n.pid; done
    @echo "12 nodes starting; ./target/release/meridian-node members --node 127.0.0.1:7101"

# Stop the local cluster: every node leaves gracefully (SIGTERM).
cluster-down:
    for p in target/cluster/*.pid; do kill -TERM $(cat $p) 2>/dev/null || true; rm -f $p; done
