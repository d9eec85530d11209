//! Property tests: arbitrary input sequences (hostile peers, garbage, late ticks, loop
//! lag) never break the membership machine's safety rules (membership.md §11).

use super::*;
use crate::io::MemberView;
use crate::time::millis;
use proptest::prelude::*;

const CLUSTER: ClusterId = ClusterId(1);

#[derive(Clone, Debug)]
enum Step {
    Datagram(Envelope, u64),
    Frame(Envelope, u64),
    Garbage(Vec<u8>, u64),
    Tick(u64),
    LoopLag(f64),
}

fn arb_role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::Gate), Just(Role::Manager), Just(Role::Worker)]
}

fn arb_claim() -> impl Strategy<Value = Claim> {
    (
        prop_oneof![
            Just(ClaimKind::Alive),
            Just(ClaimKind::Join),
            Just(ClaimKind::Suspect),
            Just(ClaimKind::Dead),
            Just(ClaimKind::Left)
        ],
        0u32..8,
        0u32..12,
        arb_role(),
        0u32..8,
    )
        .prop_map(|(kind, node, inc, role, from)| Claim {
            kind,
            node: NodeId(node),
            addr: Addr::from_u32(node),
            inc: Incarnation(inc),
            role,
            from: NodeId(from),
        })
}

fn arb_body() -> impl Strategy<Value = Body> {
    let gossip = || proptest::collection::vec(arb_claim(), 0..5);
    prop_oneof![
        (
            0u32..30,
            0u32..3,
            proptest::option::of(arb_claim()),
            gossip(),
            proptest::option::of(crate::wire::tests::arb_coord()),
        )
            .prop_map(|(seq, t, buddy, gossip, coord)| Body::Ping {
                seq,
                target: NodeId(t),
                buddy,
                gossip,
                coord,
                health: vec![],
            }),
        (
            0u32..30,
            gossip(),
            proptest::option::of(crate::wire::tests::arb_coord())
        )
            .prop_map(|(seq, gossip, coord)| Body::Ack {
                seq,
                gossip,
                coord,
                health: vec![],
            }),
        (0u32..30, 1u32..8, 0u32..12, any::<bool>(), gossip()).prop_map(
            |(seq, t, inc, want_nack, gossip)| Body::PingReq {
                seq,
                target: NodeId(t),
                target_addr: Addr::from_u32(t),
                target_inc: Incarnation(inc),
                want_nack,
                gossip
            }
        ),
        (0u32..30, 1u32..8).prop_map(|(seq, t)| Body::IndirectAck {
            seq,
            target: NodeId(t)
        }),
        (0u32..30, 1u32..8).prop_map(|(seq, t)| Body::Nack {
            seq,
            target: NodeId(t),
            reason: NackReason::Timeout
        }),
        (1u16..3).prop_map(|major| Body::Join {
            protocol_major: major,
            protocol_minor: 0
        }),
        (any::<bool>(), gossip()).prop_map(|(accepted, snapshot)| Body::JoinAck {
            accepted,
            reason: None,
            snapshot
        }),
        Just(Body::Leave),
        gossip().prop_map(|gossip| Body::Notice { gossip }),
    ]
}

fn arb_envelope(body: impl Strategy<Value = Body>) -> impl Strategy<Value = Envelope> {
    (
        1u32..8,
        0u32..12,
        arb_role(),
        prop::bool::weighted(0.1),
        body,
    )
        .prop_map(|(sender, inc, role, observer, body)| Envelope {
            version: wire::WIRE_VERSION,
            cluster: CLUSTER,
            sender: NodeId(sender),
            sender_addr: Addr::from_u32(sender),
            sender_inc: Incarnation(inc),
            sender_role: role,
            flags: if observer { wire::FLAG_OBSERVER } else { 0 },
            body,
        })
}

fn arb_step() -> impl Strategy<Value = Step> {
    let frame_body = prop_oneof![
        3 => (any::<bool>(), proptest::collection::vec(arb_claim(), 0..8))
            .prop_map(|(reply, entries)| Body::PushPull { reply, entries }),
        1 => (any::<bool>(), any::<u64>())
            .prop_map(|(reply, digest)| Body::SyncDigest { reply, digest }),
    ];
    prop_oneof![
        6 => (arb_envelope(arb_body()), 0u64..3000).prop_map(|(e, dt)| Step::Datagram(e, dt)),
        1 => (arb_envelope(frame_body), 0u64..3000).prop_map(|(e, dt)| Step::Frame(e, dt)),
        1 => (proptest::collection::vec(any::<u8>(), 0..80), 0u64..500).prop_map(|(b, dt)| Step::Garbage(b, dt)),
        3 => (0u64..90_000).prop_map(Step::Tick),
        1 => (0.0f64..4.0).prop_map(Step::LoopLag),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_input_sequences_keep_the_safety_rules(
        role in arb_role(),
        steps in proptest::collection::vec(arb_step(), 1..80),
    ) {
        let me = Identity { node: NodeId(0), addr: Addr::from_u32(0), role, cluster: CLUSTER };
        let mut m = Membership::new(Config::default(), me, Mode::Member, Incarnation(0), 9, Instant::ZERO);
        let mut now = Instant::ZERO;
        let mut own_inc = m.incarnation();
        let mut heard_from = [false; 8];
        for step in steps {
            let ticked = matches!(step, Step::Tick(_));
            let out = match step {
                Step::Datagram(env, dt) => {
                    now = now + millis(dt);
                    if env.flags == 0 { heard_from[env.sender.0 as usize] = true; }
                    let bytes = wire::encode(&env, Channel::Datagram).unwrap();
                    m.step(Input::Datagram { from: env.sender_addr, bytes: &bytes }, now)
                }
                Step::Frame(env, dt) => {
                    now = now + millis(dt);
                    if env.flags == 0 { heard_from[env.sender.0 as usize] = true; }
                    let bytes = wire::encode(&env, Channel::Frame).unwrap();
                    m.step(Input::Frame { from: env.sender_addr, bytes: &bytes }, now)
                }
                Step::Garbage(bytes, dt) => {
                    now = now + millis(dt);
                    m.step(Input::Datagram { from: Addr::from_u32(3), bytes: &bytes }, now)
                }
                Step::Tick(dt) => {
                    now = now + millis(dt);
                    m.step(Input::Tick, now)
                }
                Step::LoopLag(ratio) => m.step(Input::LoopLag { ratio }, now),
            };
            for o in &out {
                match o {
                    Output::Transmit { bytes, .. } => {
                        prop_assert!(bytes.len() <= wire::MAX_DATAGRAM);
                        prop_assert!(wire::decode(bytes, Channel::Datagram).is_ok());
                    }
                    Output::Frame { bytes, .. } => {
                        prop_assert!(wire::decode(bytes, Channel::Frame).is_ok());
                    }
                    Output::Event(Event::Member { node, from, to, .. }) => {
                        if let (Some(f), Some(t)) = (from, to) {
                            prop_assert!(!(f.status == Status::Unconfirmed && t.status == Status::Suspect),
                                "unconfirmed {node:?} suspected");
                            prop_assert!(t.inc >= f.inc, "incarnation of {node:?} went down");
                            if f.status.is_gone() && !t.status.is_gone() {
                                prop_assert!(t.inc > f.inc, "{node:?} back from the dead at the same inc");
                            }
                        }
                        if let Some(MemberView { confirmed: true, .. }) = to {
                            if !from.is_some_and(|f| f.confirmed) {
                                prop_assert!(heard_from[node.0 as usize], "{node:?} confirmed without contact");
                            }
                        }
                    }
                    Output::Event(Event::Lhm { score, .. }) => prop_assert!(*score <= 8),
                    Output::Event(Event::ProactivePing { role, .. }) => {
                        prop_assert!(*role != Role::Worker, "workers get no proactive pings");
                    }
                    _ => {}
                }
            }
            prop_assert!(m.incarnation() >= own_inc, "own incarnation went down");
            own_inc = m.incarnation();
            prop_assert!(m.lhm_score() <= 8);
            let t = m.table_sizes();
            prop_assert!(t.members < 8);
            prop_assert!(t.helps <= Config::default().max_pending_helps);
            prop_assert!(t.gossip <= Config::default().gossip_queue_cap);
            prop_assert!(m.member(NodeId(0)).is_none(), "never a member of our own table");
            if ticked {
                // A Tick fires everything due: what remains lies in the future.
                prop_assert!(m.next_deadline().is_none_or(|d| d > now));
            }
        }
    }
}
