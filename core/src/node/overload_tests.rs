//! The node's AD-18 grade from the shell's resource samples (backpressure.md §2's third
//! signal): graded at once on the way up, after two better samples on the way down, and
//! told to the memberships like a latency grade.

use super::*;

fn node() -> Node {
    Node::new(
        test_worker_config(0, vec![Addr::from_u32(1)]),
        Instant::ZERO,
    )
    .0
}

fn resources(n: &mut Node, cpu_percent: f64, mem_percent: f64) -> Outputs {
    n.step(
        Input::Resources {
            cpu_percent,
            mem_percent,
        },
        Instant::ZERO,
    )
}

fn graded(out: &Outputs) -> Vec<OverloadState> {
    out.iter()
        .filter_map(|o| match o {
            Output::Event(Event::Overload { state }) => Some(*state),
            _ => None,
        })
        .collect()
}

#[test]
fn resource_samples_grade_the_node_with_the_spec_thresholds() {
    let mut n = node();
    // Thresholds are strict: 70% CPU is still healthy, 71% is busy (0.70, 0.85, 0.95).
    assert!(graded(&resources(&mut n, 70.0, 10.0)).is_empty());
    assert_eq!(n.overload_state(), OverloadState::Healthy);
    assert_eq!(
        graded(&resources(&mut n, 71.0, 10.0)),
        [OverloadState::Busy]
    );
    // Memory above 95%: overloaded at once.
    assert_eq!(
        graded(&resources(&mut n, 10.0, 96.0)),
        [OverloadState::Overloaded]
    );
    assert_eq!(n.overload_state(), OverloadState::Overloaded);
    // Down only after `hysteresis_samples` (2) better samples in a row.
    assert!(graded(&resources(&mut n, 10.0, 10.0)).is_empty());
    assert_eq!(n.overload_state(), OverloadState::Overloaded);
    assert_eq!(
        graded(&resources(&mut n, 10.0, 10.0)),
        [OverloadState::Healthy]
    );
}

#[test]
fn a_node_overloaded_by_its_resources_nacks_out_of_band_probes() {
    let mut cfg = test_worker_config(0, vec![Addr::from_u32(1)]);
    cfg.membership.oob = true;
    let mut n = Node::new(cfg, Instant::ZERO).0;
    let probe = OobFrame::new(OobKind::Probe, 7).encode();
    let answer = |n: &mut Node| -> Vec<OobKind> {
        n.step(
            Input::Oob {
                from: Addr::from_u32(3),
                bytes: &probe,
            },
            Instant::ZERO,
        )
        .iter()
        .filter_map(|o| match o {
            Output::Oob { bytes, .. } => Some(OobFrame::decode(bytes).unwrap().kind),
            _ => None,
        })
        .collect()
    };
    assert_eq!(answer(&mut n), [OobKind::Ack]);
    resources(&mut n, 96.0, 10.0);
    assert_eq!(answer(&mut n), [OobKind::Nack]);
}
