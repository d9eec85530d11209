//! The `random` fault (issue 9): open-ended chaos from the run's seed. A
//! `[[fault]] action = "random"` entry stands for a schedule of concrete faults drawn at
//! the start of a run, so the same scenario and seed always play the same faults, and
//! `meridian-sim shrink` can write them out one by one and remove them individually.
//!
//! ```toml
//! [[fault]]
//! action = "random"
//! at = "20s"          # first possible fault
//! until = "8m"        # last possible fault (default: the end of the run)
//! rate = 2.0          # faults per simulated minute, on average (exponential gaps)
//! kinds = ["crash", "restart", "partition", "heal", "pause"]   # default: all of KINDS
//! ```

use crate::scenario::{Fault, RestartState, Scenario};
use meridian_core::rng::{derive_seed, DetRng};
use std::time::Duration;

/// The kinds the generator can draw (the `kinds` key takes any subset).
pub const KINDS: &[&str] = &[
    "crash",
    "restart",
    "leave",
    "partition",
    "heal",
    "pause",
    "slow",
    "skew",
    "loss",
    "latency",
    "duplicate",
    "corrupt",
    "crash_leader",
    "isolate_leader",
    "reorder",
    "one_way_latency",
    "link_loss",
    "flap",
    "dc_outage",
];

/// At most this many faults come out of one `random` entry, whatever its rate.
pub const MAX_GENERATED: usize = 1_000;

/// Two ends for a link fault: two DCs when there are several, else two nodes.
fn two_ends(r: &mut DetRng, nodes: &[String], dcs: &[&str]) -> (String, String) {
    let (pool, k): (Vec<&str>, usize) = if dcs.len() > 1 {
        (dcs.to_vec(), dcs.len())
    } else {
        (nodes.iter().map(String::as_str).collect(), nodes.len())
    };
    if k < 2 {
        return (pool[0].to_string(), pool[0].to_string());
    }
    let a = r.below(k);
    let b = (a + 1 + r.below(k - 1)) % k;
    (pool[a].to_string(), pool[b].to_string())
}

/// The concrete faults a `random` entry (the `index`-th fault of `s`) stands for in the
/// run with `seed`, in time order.
pub fn expand(
    s: &Scenario,
    seed: u64,
    index: usize,
    from: Duration,
    until: Option<Duration>,
    rate_per_min: f64,
    kinds: Option<&[String]>,
) -> Vec<Fault> {
    let mut r = DetRng::new(derive_seed(seed, 0xFA17_0000 + index as u64));
    let until = until.unwrap_or(s.duration).min(s.duration);
    let kinds: Vec<&str> = match kinds {
        Some(k) => k.iter().map(String::as_str).collect(),
        None => KINDS.to_vec(),
    };
    let nodes: Vec<String> = s.nodes().into_iter().map(|n| n.name).collect();
    let dcs: Vec<&str> = s.dcs.iter().map(|d| d.name.as_str()).collect();
    let managed: Vec<&str> = s
        .dcs
        .iter()
        .filter(|d| d.managers > 0)
        .map(|d| d.name.as_str())
        .collect();
    let mean_gap_us = 60e6 / rate_per_min;
    let mut crashed: Vec<String> = Vec::new();
    let mut out = Vec::new();
    let mut t_us = from.as_micros() as f64;
    while out.len() < MAX_GENERATED && !kinds.is_empty() && !nodes.is_empty() {
        // Exponential gaps: a Poisson process of `rate` faults a minute.
        t_us += -libm::log(1.0 - r.unit()) * mean_gap_us;
        let at = Duration::from_micros(t_us as u64);
        if at > until {
            break;
        }
        let one = |r: &mut DetRng| vec![nodes[r.below(nodes.len())].clone()];
        let pick = |r: &mut DetRng, xs: &[f64]| xs[r.below(xs.len())];
        let fault = match kinds[r.below(kinds.len())] {
            "crash" => {
                let n = one(&mut r);
                crashed.push(n[0].clone());
                Some(Fault::Crash { at, nodes: n })
            }
            "restart" if !crashed.is_empty() => {
                let n = crashed.swap_remove(r.below(crashed.len()));
                Some(Fault::Restart {
                    at,
                    nodes: vec![n],
                    state: RestartState::Kept,
                })
            }
            "leave" => Some(Fault::Leave {
                at,
                nodes: one(&mut r),
            }),
            "partition" => {
                // With several DCs, cut one DC off; otherwise a random minority of nodes.
                let groups = if dcs.len() > 1 {
                    vec![vec![dcs[r.below(dcs.len())].to_string()]]
                } else {
                    let k = 1 + r.below((nodes.len() / 2).max(1));
                    let mut side = nodes.clone();
                    r.shuffle(&mut side);
                    side.truncate(k);
                    side.sort();
                    vec![side]
                };
                Some(Fault::Partition {
                    at,
                    groups,
                    one_way: r.chance(0.25),
                })
            }
            "heal" => Some(Fault::Heal { at }),
            "pause" => Some(Fault::Pause {
                at,
                nodes: one(&mut r),
                duration: Duration::from_secs(r.range_u64(2, 90)),
            }),
            "slow" => {
                let lo = r.range_u64(1, 200);
                Some(Fault::Slow {
                    at,
                    nodes: one(&mut r),
                    delay_ms: [lo, lo + r.range_u64(0, 400)],
                })
            }
            "skew" => Some(Fault::Skew {
                at,
                nodes: one(&mut r),
                offset_ms: r.range_u64(0, 10_000) as i64 - 5_000,
                drift_ppm: pick(&mut r, &[0.0, 50.0, -50.0, 500.0]),
            }),
            "loss" => Some(Fault::Loss {
                at,
                rate: pick(&mut r, &[0.0, 0.01, 0.05, 0.2]),
                nodes: r.chance(0.5).then(|| one(&mut r)),
            }),
            "latency" if dcs.len() > 1 => {
                let a = r.below(dcs.len());
                let b = (a + 1 + r.below(dcs.len() - 1)) % dcs.len();
                Some(Fault::Latency {
                    at,
                    between: [dcs[a].to_string(), dcs[b].to_string()],
                    rtt_ms: pick(&mut r, &[20.0, 80.0, 200.0, 400.0]),
                })
            }
            "duplicate" => Some(Fault::Duplicate {
                at,
                rate: pick(&mut r, &[0.0, 0.01, 0.05]),
            }),
            "corrupt" => Some(Fault::Corrupt {
                at,
                rate: pick(&mut r, &[0.0, 0.01, 0.05]),
            }),
            "crash_leader" if !managed.is_empty() => Some(Fault::CrashLeader {
                at,
                dc: managed[r.below(managed.len())].to_string(),
                restart_after: r
                    .chance(0.5)
                    .then(|| Duration::from_secs(r.range_u64(5, 120))),
            }),
            "isolate_leader" if !managed.is_empty() => Some(Fault::IsolateLeader {
                at,
                dc: managed[r.below(managed.len())].to_string(),
            }),
            "reorder" => Some(Fault::Reorder {
                at,
                rate: pick(&mut r, &[0.0, 0.05, 0.2]),
                extra_ms: [5, 5 + r.range_u64(0, 200)],
            }),
            "one_way_latency" if dcs.len() > 1 => {
                let a = r.below(dcs.len());
                let b = (a + 1 + r.below(dcs.len() - 1)) % dcs.len();
                Some(Fault::OneWayLatency {
                    at,
                    from: dcs[a].to_string(),
                    to: dcs[b].to_string(),
                    delay_ms: pick(&mut r, &[5.0, 50.0, 150.0, 300.0]),
                })
            }
            "link_loss" => {
                let (a, b) = two_ends(&mut r, &nodes, &dcs);
                Some(Fault::LinkLoss {
                    at,
                    between: [a, b],
                    rate: pick(&mut r, &[0.0, 0.1, 0.5, 1.0]),
                    one_way: r.chance(0.3),
                })
            }
            "flap" => {
                let (a, b) = two_ends(&mut r, &nodes, &dcs);
                let period = r.range_u64(4, 30);
                Some(Fault::Flap {
                    at,
                    between: [a, b],
                    period: Duration::from_secs(period),
                    down: Duration::from_millis(r.range_u64(500, period * 1000 / 2)),
                    until: Some(at + Duration::from_secs(r.range_u64(20, 180))),
                    one_way: r.chance(0.2),
                })
            }
            "dc_outage" => Some(Fault::DcOutage {
                at,
                dcs: vec![dcs[r.below(dcs.len())].to_string()],
                duration: Duration::from_secs(r.range_u64(5, 90)),
            }),
            // A kind with nothing to act on here (a restart before any crash, latency
            // with one DC): this draw adds no fault.
            _ => None,
        };
        out.extend(fault);
    }
    out
}

/// `s`'s fault list for the run with `seed`: every `random` entry replaced, in place,
/// by the faults it stands for.
pub fn concrete_faults(s: &Scenario, seed: u64) -> Vec<Fault> {
    let mut out = Vec::with_capacity(s.faults.len());
    for (index, f) in s.faults.iter().enumerate() {
        match f {
            Fault::Random {
                at,
                until,
                rate,
                kinds,
            } => out.extend(expand(s, seed, index, *at, *until, *rate, kinds.as_deref())),
            other => out.push(other.clone()),
        }
    }
    out
}
