//! Whole-simulation throughput: a 100-node and a 1000-node DC, from boot, with the
//! invariant checkers on (as every run has them). Criterion reports time per run; the
//! simulated message count per run is printed once so msg/s can be derived.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use meridian_sim::scenario;
use std::path::PathBuf;

fn load(name: &str, duration: &str) -> scenario::Scenario {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/bench")
        .join(name);
    scenario::load(&path, &[format!("duration=\"{duration}\"")]).expect("bench scenario")
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("simulate");
    g.sample_size(10);
    for (name, duration) in [("nodes-100.toml", "10m"), ("nodes-1000.toml", "1m")] {
        let s = load(name, duration);
        let msgs = meridian_sim::run(&s, 1).messages.sent;
        g.throughput(Throughput::Elements(msgs));
        g.bench_function(format!("{name} x {duration}"), |b| {
            b.iter(|| meridian_sim::run(&s, 1))
        });
    }
    g.finish();
}

fn codec(c: &mut Criterion) {
    use meridian_core::wire::{self, Body, Channel, Claim, ClaimKind, Envelope};
    use meridian_core::{Addr, ClusterId, Incarnation, NodeId, Role};
    let claim = |n: u32| Claim {
        kind: ClaimKind::Alive,
        node: NodeId(n),
        addr: Addr::from_u32(n),
        inc: Incarnation(3),
        role: Role::Worker,
        from: NodeId(n),
    };
    let env = Envelope {
        version: wire::WIRE_VERSION,
        cluster: ClusterId(1),
        sender: NodeId(7),
        sender_addr: Addr::from_u32(7),
        sender_inc: Incarnation(2),
        sender_role: Role::Worker,
        flags: 0,
        body: Body::Ping {
            seq: 99,
            target: NodeId(8),
            buddy: None,
            gossip: (0..5).map(claim).collect(),
        },
    };
    let bytes = wire::encode_datagram(&env).unwrap();
    c.bench_function("wire: encode loaded ping", |b| {
        b.iter(|| wire::encode_datagram(&env))
    });
    c.bench_function("wire: decode loaded ping", |b| {
        b.iter(|| wire::decode(&bytes, Channel::Datagram))
    });
}

criterion_group!(benches, bench, codec);
criterion_main!(benches);
