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
    // The cost of Vivaldi (issue 3): the same 100-node run with coordinates off.
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/bench/nodes-100.toml");
    let off = scenario::load(&path, &["membership.coordinates=false".to_string()]).expect("bench");
    let msgs = meridian_sim::run(&off, 1).messages.sent;
    g.throughput(Throughput::Elements(msgs));
    g.bench_function("nodes-100.toml x 10m, coordinates off", |b| {
        b.iter(|| meridian_sim::run(&off, 1))
    });
    g.finish();
}

/// Coordinate updates per second: one RTT sample through the filter, Vivaldi step,
/// adjustment window and gravity.
fn vivaldi(c: &mut Criterion) {
    use meridian_core::coords::{CoordEngine, Coordinate, VivaldiConfig, WireCoord};
    use meridian_core::rng::DetRng;
    use meridian_core::{Instant, NodeId};
    use std::time::Duration;
    let cfg = VivaldiConfig::default();
    let mut rng = DetRng::new(1);
    let mut engine = CoordEngine::new(cfg, 1000, &mut rng);
    for p in 0..64u32 {
        let mut c = Coordinate::origin(&cfg);
        c.vec[(p % 8) as usize] = 0.001 * p as f64;
        c.error = 0.2;
        engine.observe(NodeId(p), &WireCoord::from_coordinate(&c), Instant::ZERO);
    }
    let mut g = c.benchmark_group("vivaldi");
    g.throughput(Throughput::Elements(1));
    let mut i = 0u32;
    g.bench_function("update from one RTT sample", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            let p = NodeId(i % 64);
            let rtt = Duration::from_micros(20_000 + (i % 97) as u64 * 100);
            engine.sample(p, rtt, Instant::ZERO, &mut rng)
        })
    });
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
            coord: Some(meridian_core::coords::WireCoord {
                vec: [31_000, -12_000, 4_000, 0, -2_000, 1_000, 0, 0],
                height: 2_100,
                adjustment: -300,
                error: 800,
            }),
            health: vec![],
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

criterion_group!(benches, bench, codec, vivaldi);
criterion_main!(benches);
