//! The node's side of membership.md §9's out-of-band channel: it answers probes (ahead
//! of anything the shell queues for the main socket) and hands answers to the machine
//! that probed.

use super::*;
use crate::time::millis;

fn node(oob: bool) -> Node {
    let mut cfg = test_worker_config(0, vec![Addr::from_u32(1)]);
    cfg.membership.oob = oob;
    Node::new(cfg, Instant::ZERO).0
}

fn oob_in(n: &mut Node, bytes: &[u8], now: Instant) -> Outputs {
    n.step(
        Input::Oob {
            from: Addr::from_u32(3),
            bytes,
        },
        now,
    )
}

/// The OOB answers in `out`: `(to, frame)`.
fn answers(out: &Outputs) -> Vec<(Addr, OobFrame)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Oob { to, bytes } => Some((*to, OobFrame::decode(bytes).unwrap())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_probe_gets_an_ack_then_a_nack_once_the_node_is_overloaded() {
    let mut n = node(true);
    let probe = OobFrame::new(OobKind::Probe, 41).encode();
    let out = oob_in(&mut n, &probe, Instant::ZERO);
    assert_eq!(
        answers(&out),
        [(Addr::from_u32(3), OobFrame::new(OobKind::Ack, 41))]
    );
    // Messages wait ever longer to be handled: the overload detector grades it up.
    let mut t = Instant::ZERO;
    while n.overload.state() != OverloadState::Overloaded {
        t = t + millis(10);
        assert!(t < Instant::ZERO + millis(10_000), "never overloaded");
        n.step(Input::ProcessingLatency { ms: 20_000.0 }, t);
    }
    let out = oob_in(&mut n, &probe, t);
    assert_eq!(
        answers(&out),
        [(Addr::from_u32(3), OobFrame::new(OobKind::Nack, 41))]
    );
}

#[test]
fn bad_stray_and_unasked_oob_datagrams_are_counted_and_dropped() {
    let mut n = node(true);
    // Not an OOB frame: a typed decode error.
    let out = oob_in(&mut n, &[0xff, 1, 2], Instant::ZERO);
    assert!(answers(&out).is_empty());
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Event(Event::DecodeFailed {
            error: wire::DecodeError::UnsupportedVersion(0xff)
        })
    )));
    assert_eq!(n.decode_errors(), 1);
    // An answer to a probe nobody sent.
    let out = oob_in(
        &mut n,
        &OobFrame::new(OobKind::Ack, 9).encode(),
        Instant::ZERO,
    );
    assert!(out.is_empty());
    assert_eq!(n.oob_counts(), (0, 1));
    // A node with the channel off answers nothing.
    let mut off = node(false);
    let out = oob_in(
        &mut off,
        &OobFrame::new(OobKind::Probe, 1).encode(),
        Instant::ZERO,
    );
    assert!(answers(&out).is_empty());
    assert_eq!(off.oob_counts(), (0, 1));
}

#[test]
fn a_flood_of_probes_gets_100_answers_a_second() {
    let mut n = node(true);
    let probe = OobFrame::new(OobKind::Probe, 1).encode();
    let answered: usize = (0..150)
        .map(|_| answers(&oob_in(&mut n, &probe, Instant::ZERO)).len())
        .sum();
    assert_eq!(answered, 100);
    assert_eq!(n.oob_counts(), (50, 0));
}
