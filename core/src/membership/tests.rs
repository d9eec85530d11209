//! Unit tests of the membership machine, driven by hand with the spec's numbers.

use super::*;
use crate::io::MemberView;
use crate::time::{millis, secs};

pub(super) const CLUSTER: ClusterId = ClusterId(1);

fn ident(node: u32, role: Role) -> Identity {
    Identity {
        node: NodeId(node),
        addr: Addr::from_u32(node),
        role,
        cluster: CLUSTER,
    }
}

/// A machine whose timeouts do not adapt to latency: these tests check the rules of
/// §3-§7 with the spec's numbers at `R_p = 1` (the hand-driven peers carry no
/// coordinates, and without one the RTT bound is 200 ms, `latency_mult` 10). The
/// adaptive timeouts have their own tests below ([`adaptive`]).
pub(super) fn machine(role: Role) -> Membership {
    machine_with(
        role,
        Config {
            adaptive_timeouts: false,
            ..Config::default()
        },
    )
}

pub(super) fn machine_with(role: Role, cfg: Config) -> Membership {
    Membership::new(
        cfg,
        ident(0, role),
        Mode::Member,
        Incarnation(0),
        42,
        Instant::ZERO,
    )
}

pub(super) fn env_from(node: u32, role: Role, inc: u32, body: Body) -> Envelope {
    Envelope {
        version: wire::WIRE_VERSION,
        cluster: CLUSTER,
        sender: NodeId(node),
        sender_addr: Addr::from_u32(node),
        sender_inc: Incarnation(inc),
        sender_role: role,
        flags: 0,
        body,
    }
}

pub(super) fn claim(kind: ClaimKind, node: u32, inc: u32, role: Role, from: u32) -> Claim {
    Claim {
        kind,
        node: NodeId(node),
        addr: Addr::from_u32(node),
        inc: Incarnation(inc),
        role,
        from: NodeId(from),
    }
}

pub(super) fn deliver(m: &mut Membership, env: Envelope, now: Instant) -> Outputs {
    let bytes = wire::encode(&env, Channel::Datagram).unwrap();
    m.step(
        Input::Datagram {
            from: env.sender_addr,
            bytes: &bytes,
        },
        now,
    )
}

/// Tick the machine at each of its deadlines up to `until`; collect all outputs.
pub(super) fn run_until(m: &mut Membership, until: Instant, log: &mut Vec<(Instant, Output)>) {
    while let Some(d) = m.next_deadline() {
        if d > until {
            break;
        }
        for o in m.step(Input::Tick, d) {
            log.push((d, o));
        }
    }
}

pub(super) fn sent(log: &[(Instant, Output)]) -> Vec<(Instant, Addr, Envelope)> {
    log.iter()
        .filter_map(|(t, o)| match o {
            Output::Transmit { to, bytes } => {
                Some((*t, *to, wire::decode(bytes, Channel::Datagram).unwrap()))
            }
            _ => None,
        })
        .collect()
}

pub(super) fn events(log: &[(Instant, Output)]) -> Vec<(Instant, Event)> {
    log.iter()
        .filter_map(|(t, o)| match o {
            Output::Event(e) => Some((*t, e.clone())),
            _ => None,
        })
        .collect()
}

/// Make `node` a confirmed Alive member by a direct PING from it.
pub(super) fn confirm(m: &mut Membership, node: u32, role: Role, now: Instant) {
    deliver(m, plain_ping(node, role, 0), now);
    assert_eq!(m.member(NodeId(node)).unwrap().status, Status::Alive);
}

/// A PING to us (node 0) from `node` at incarnation `inc`, carrying nothing.
pub(super) fn plain_ping(node: u32, role: Role, inc: u32) -> Envelope {
    let body = Body::Ping {
        seq: 1,
        target: NodeId(0),
        buddy: None,
        gossip: vec![],
        coord: None,
        health: vec![],
    };
    env_from(node, role, inc, body)
}

/// `node` learned by gossip only (relayed by an observer, so nothing else joins the table).
/// Gossip `claims` to `m` from node 9, an observer (so 9 itself is not learned).
fn gossip_from_observer(m: &mut Membership, claims: Vec<Claim>, now: Instant) -> Outputs {
    let mut env = env_from(9, Role::Gate, 0, Body::Notice { gossip: claims });
    env.flags = wire::FLAG_OBSERVER;
    deliver(m, env, now)
}

fn learn_by_gossip(m: &mut Membership, node: u32, role: Role, now: Instant) {
    let claims = vec![claim(ClaimKind::Alive, node, 0, role, node)];
    gossip_from_observer(m, claims, now);
    let x = m.member(NodeId(node)).unwrap();
    assert_eq!(x.status, Status::Unconfirmed);
    assert!(!x.confirmed());
}

#[test]
fn gossip_never_confirms_and_unconfirmed_is_never_suspected() {
    let mut m = machine(Role::Worker);
    learn_by_gossip(&mut m, 5, Role::Worker, Instant::ZERO);
    // A SUSPECT claim about an unconfirmed peer is ignored, whatever its incarnation.
    let claims = vec![claim(ClaimKind::Suspect, 5, 7, Role::Worker, 9)];
    gossip_from_observer(&mut m, claims, Instant::ZERO);
    assert_eq!(m.member(NodeId(5)).unwrap().status, Status::Unconfirmed);
    // 5 never answers. Run 170 s: it is probed round-robin, never indirectly, never
    // suspected, and its silence never raises our LHM.
    let mut log = Vec::new();
    run_until(&mut m, Instant::ZERO + secs(170), &mut log);
    let tx = sent(&log);
    assert!(tx
        .iter()
        .any(|(_, to, e)| *to == Addr::from_u32(5) && matches!(e.body, Body::Ping { .. })));
    assert!(!tx
        .iter()
        .any(|(_, _, e)| matches!(e.body, Body::PingReq { target, .. } if target == NodeId(5))));
    for (_, e) in events(&log) {
        if let Event::Member {
            node, to: Some(v), ..
        } = e
        {
            assert!(!(node == NodeId(5) && v.status == Status::Suspect));
        }
        assert!(!matches!(e, Event::Lhm { .. }), "LHM changed: {e:?}");
    }
    assert_eq!(m.lhm_score(), 0);
}

#[test]
fn worker_removed_after_passive_180s_without_proactive_pings() {
    let mut m = machine(Role::Manager);
    learn_by_gossip(&mut m, 5, Role::Worker, Instant::ZERO);
    let mut log = Vec::new();
    run_until(&mut m, Instant::ZERO + secs(180) - millis(1), &mut log);
    assert!(m.member(NodeId(5)).is_some(), "not before passive");
    let ev = events(&log);
    assert!(!ev
        .iter()
        .any(|(_, e)| matches!(e, Event::ProactivePing { .. })));
    assert!(ev.iter().any(
        |(t, e)| matches!(e, Event::UnconfirmedWarning { node, .. } if *node == NodeId(5))
            && *t == Instant::ZERO + secs(60)
    ));
    run_until(&mut m, Instant::ZERO + secs(181), &mut log);
    assert!(m.member(NodeId(5)).is_none());
    let removed: Vec<_> = events(&log)
        .into_iter()
        .filter_map(|(t, e)| match e {
            Event::UnconfirmedRemoved { node, reason, .. } => Some((t, node, reason)),
            _ => None,
        })
        .collect();
    assert_eq!(
        removed,
        vec![(
            Instant::ZERO + secs(180),
            NodeId(5),
            RemovalReason::PassiveTimeoutExpired
        )]
    );
    // Removal leaves nothing behind and emits no DEAD gossip.
    assert!(!sent(&log).iter().any(|(_, _, e)| match &e.body {
        Body::Ping { gossip, .. } | Body::Ack { gossip, .. } | Body::PingReq { gossip, .. } =>
            gossip
                .iter()
                .any(|c| c.node == NodeId(5) && c.kind == ClaimKind::Dead),
        _ => false,
    }));
}

fn proactive_schedule(role: Role) -> (Vec<Instant>, Vec<(Instant, RemovalReason)>) {
    let mut m = machine(Role::Worker);
    learn_by_gossip(&mut m, 5, role, Instant::ZERO);
    let mut log = Vec::new();
    run_until(&mut m, Instant::ZERO + secs(400), &mut log);
    let ev = events(&log);
    let pings = ev
        .iter()
        .filter_map(|(t, e)| {
            matches!(e, Event::ProactivePing { node, .. } if *node == NodeId(5)).then_some(*t)
        })
        .collect();
    let removed = ev
        .iter()
        .filter_map(|(t, e)| match e {
            Event::UnconfirmedRemoved { reason, .. } => Some((*t, *reason)),
            _ => None,
        })
        .collect();
    (pings, removed)
}

#[test]
fn gate_gets_five_proactive_attempts_60_to_80s_and_removal_at_120s() {
    let (pings, removed) = proactive_schedule(Role::Gate);
    let want: Vec<Instant> = [60, 65, 70, 75, 80]
        .iter()
        .map(|s| Instant::ZERO + secs(*s))
        .collect();
    assert_eq!(pings, want);
    assert_eq!(
        removed,
        vec![(
            Instant::ZERO + secs(120),
            RemovalReason::ExhaustedProactiveAttempts
        )]
    );
}

#[test]
fn manager_gets_three_proactive_attempts_45_to_55s_and_removal_at_90s() {
    let (pings, removed) = proactive_schedule(Role::Manager);
    let want: Vec<Instant> = [45, 50, 55]
        .iter()
        .map(|s| Instant::ZERO + secs(*s))
        .collect();
    assert_eq!(pings, want);
    assert_eq!(
        removed,
        vec![(
            Instant::ZERO + secs(90),
            RemovalReason::ExhaustedProactiveAttempts
        )]
    );
}

#[test]
fn a_proactive_ack_confirms_the_peer() {
    let mut m = machine(Role::Worker);
    learn_by_gossip(&mut m, 5, Role::Manager, Instant::ZERO);
    let mut log = Vec::new();
    run_until(&mut m, Instant::ZERO + secs(45), &mut log);
    let (t, _, ping) = sent(&log)
        .into_iter()
        .rfind(|(_, to, _)| *to == Addr::from_u32(5))
        .unwrap();
    assert_eq!(t, Instant::ZERO + secs(45));
    let Body::Ping { seq, .. } = ping.body else {
        panic!()
    };
    let out = deliver(
        &mut m,
        env_from(
            5,
            Role::Manager,
            0,
            Body::Ack {
                seq,
                gossip: vec![],
                coord: None,
                health: vec![],
            },
        ),
        t + millis(20),
    );
    assert!(out.iter().any(|o| matches!(o, Output::Event(Event::Member { node, to: Some(MemberView { status: Status::Alive, confirmed: true, .. }), .. }) if *node == NodeId(5))));
    run_until(&mut m, Instant::ZERO + secs(400), &mut log);
    // Confirmed, so never removed as unconfirmed (its later silence is ordinary SWIM).
    assert!(m.member(NodeId(5)).unwrap().confirmed());
    assert!(!events(&log)
        .iter()
        .any(|(_, e)| matches!(e, Event::UnconfirmedRemoved { .. })));
}

/// Drive `m` at its deadlines until `until` or until `step` returns true. Peer 6 nacks
/// every indirect request and, if `six_acks`, answers every PING; every other peer is
/// silent. `step` sees each step's time, the LHM before it, and its outputs.
fn drive(
    m: &mut Membership,
    until: Instant,
    six_acks: bool,
    mut step: impl FnMut(&Membership, Instant, u8, &[Output]) -> bool,
) {
    let mut now = Instant::ZERO;
    while now < until {
        now = m.next_deadline().unwrap();
        let before = m.lhm_score();
        let outs = m.step(Input::Tick, now);
        for o in &outs {
            let Output::Transmit { to, bytes } = o else {
                continue;
            };
            if *to != Addr::from_u32(6) {
                continue;
            }
            let reply = match wire::decode(bytes, Channel::Datagram).unwrap().body {
                Body::Ping { seq, .. } if six_acks => Body::Ack {
                    seq,
                    gossip: vec![],
                    coord: None,
                    health: vec![],
                },
                Body::PingReq { seq, target, .. } => Body::Nack {
                    seq,
                    target,
                    reason: NackReason::Timeout,
                },
                _ => continue,
            };
            deliver(m, env_from(6, Role::Worker, 0, reply), now + millis(1));
        }
        if step(m, now, before, &outs) {
            return;
        }
    }
}

/// The status `node` moved to in `outs`, if any.
fn status_of(outs: &[Output], node: u32) -> Option<Status> {
    outs.iter().find_map(|o| match o {
        Output::Event(Event::Member {
            node: n,
            to: Some(v),
            ..
        }) if n.0 == node => Some(v.status),
        _ => None,
    })
}

#[test]
fn silent_confirmed_member_is_suspected_then_dead_with_lifeguard_timeout() {
    let mut m = machine(Role::Worker);
    confirm(&mut m, 5, Role::Worker, Instant::ZERO);
    confirm(&mut m, 6, Role::Worker, Instant::ZERO);
    // 6 answers everything; 5 is silent.
    let mut suspected_at = None;
    let mut dead_at = None;
    let mut expired = None;
    drive(
        &mut m,
        Instant::ZERO + secs(200),
        true,
        |_, now, _, outs| {
            match status_of(outs, 5) {
                Some(Status::Suspect) if suspected_at.is_none() => suspected_at = Some(now),
                Some(Status::Dead) => dead_at = Some(now),
                _ => {}
            }
            for o in outs {
                if let Output::Event(Event::SuspicionExpired { earliest, .. }) = o {
                    expired = Some(*earliest);
                }
            }
            dead_at.is_some()
        },
    );
    let s = suspected_at.expect("suspected");
    // The helper nacked, so our LHM stays 0 (a failure every helper vouched for costs
    // nothing). Worker bounds 5/30 s; N = 2 live members, C = 0 -> max = 30 s, then the
    // one last-chance probe extends it once by T_p = 1 s.
    assert_eq!(m.lhm_score(), 0);
    assert_eq!(dead_at.expect("dead"), s + secs(31));
    assert_eq!(expired.unwrap(), s + secs(5) + secs(1));
}

#[test]
fn refutation_bumps_incarnation_and_leads_the_gossip() {
    let mut m = machine(Role::Worker);
    confirm(&mut m, 6, Role::Worker, Instant::ZERO);
    let buddy = claim(ClaimKind::Suspect, 0, 0, Role::Worker, 6);
    let body = Body::Ping {
        seq: 3,
        target: NodeId(0),
        buddy: Some(buddy),
        gossip: vec![],
        coord: None,
        health: vec![],
    };
    let out = deliver(
        &mut m,
        env_from(6, Role::Worker, 0, body),
        Instant::ZERO + secs(1),
    );
    assert_eq!(m.incarnation(), Incarnation(1));
    let ack = out
        .iter()
        .find_map(|o| match o {
            Output::Transmit { bytes, .. } => Some(wire::decode(bytes, Channel::Datagram).unwrap()),
            _ => None,
        })
        .unwrap();
    assert_eq!(ack.sender_inc, Incarnation(1));
    let Body::Ack { gossip, .. } = ack.body else {
        panic!("{ack:?}")
    };
    assert_eq!(gossip[0], claim(ClaimKind::Alive, 0, 1, Role::Worker, 0));
    // DEAD about us at 3: we come back at 3 + 5, past any zombie guard.
    let body = Body::Notice {
        gossip: vec![claim(ClaimKind::Dead, 0, 3, Role::Worker, 6)],
    };
    deliver(
        &mut m,
        env_from(6, Role::Worker, 0, body),
        Instant::ZERO + secs(2),
    );
    assert_eq!(m.incarnation(), Incarnation(8));
    // A stale accusation does not bump.
    let body = Body::Notice {
        gossip: vec![claim(ClaimKind::Suspect, 0, 2, Role::Worker, 6)],
    };
    deliver(
        &mut m,
        env_from(6, Role::Worker, 0, body),
        Instant::ZERO + secs(3),
    );
    assert_eq!(m.incarnation(), Incarnation(8));
    // A plain PING never triggers refutation (D1).
    let body = Body::Ping {
        seq: 4,
        target: NodeId(0),
        buddy: None,
        gossip: vec![],
        coord: None,
        health: vec![],
    };
    deliver(
        &mut m,
        env_from(6, Role::Worker, 0, body),
        Instant::ZERO + secs(4),
    );
    assert_eq!(m.incarnation(), Incarnation(8));
}

#[test]
fn refutations_are_rate_limited_but_never_dropped() {
    let mut m = machine(Role::Worker);
    confirm(&mut m, 6, Role::Worker, Instant::ZERO);
    for i in 0..7u32 {
        let inc = m.incarnation().0;
        let body = Body::Notice {
            gossip: vec![claim(ClaimKind::Suspect, 0, inc, Role::Worker, 6)],
        };
        deliver(
            &mut m,
            env_from(6, Role::Worker, 0, body),
            Instant::ZERO + millis(100 * i as u64),
        );
    }
    assert_eq!(m.incarnation(), Incarnation(5), "5 bumps per 10 s");
    let mut log = Vec::new();
    run_until(&mut m, Instant::ZERO + secs(11), &mut log);
    assert_eq!(
        m.incarnation(),
        Incarnation(6),
        "the deferred accusation is answered"
    );
}

#[test]
fn zombie_guard_and_dead_precedence() {
    let mut m = machine(Role::Worker);
    confirm(&mut m, 5, Role::Worker, Instant::ZERO);
    let t = Instant::ZERO + secs(6);
    let dead = Body::Notice {
        gossip: vec![claim(ClaimKind::Dead, 5, 2, Role::Worker, 6)],
    };
    deliver(&mut m, env_from(6, Role::Worker, 0, dead), t);
    assert_eq!(m.member(NodeId(5)).unwrap().status, Status::Dead);
    // SUSPECT never revives or changes a dead member.
    for (kind, inc) in [
        (ClaimKind::Suspect, 9),
        (ClaimKind::Alive, 2),
        (ClaimKind::Alive, 6),
    ] {
        let body = Body::Notice {
            gossip: vec![claim(kind, 5, inc, Role::Worker, 6)],
        };
        deliver(&mut m, env_from(6, Role::Worker, 0, body), t + secs(10));
        assert_eq!(
            m.member(NodeId(5)).unwrap().status,
            Status::Dead,
            "{kind:?} {inc}"
        );
    }
    // inc >= death inc + 5 passes the guard within 60 s; the peer stays confirmed.
    let body = Body::Notice {
        gossip: vec![claim(ClaimKind::Alive, 5, 7, Role::Worker, 5)],
    };
    deliver(&mut m, env_from(6, Role::Worker, 0, body), t + secs(10));
    let x = m.member(NodeId(5)).unwrap();
    assert_eq!(
        (x.status, x.inc, x.confirmed()),
        (Status::Alive, Incarnation(7), true)
    );
    // Back from the dead: its death is forgotten.
    assert!(m.deaths.is_empty());
    // After the window a plain higher incarnation is enough.
    deliver(
        &mut m,
        env_from(
            6,
            Role::Worker,
            0,
            Body::Notice {
                gossip: vec![claim(ClaimKind::Dead, 5, 7, Role::Worker, 6)],
            },
        ),
        t + secs(20),
    );
    deliver(
        &mut m,
        env_from(
            6,
            Role::Worker,
            0,
            Body::Notice {
                gossip: vec![claim(ClaimKind::Alive, 5, 8, Role::Worker, 5)],
            },
        ),
        t + secs(81),
    );
    assert_eq!(m.member(NodeId(5)).unwrap().status, Status::Alive);
}

#[test]
fn a_datagram_from_a_dead_member_is_answered_with_its_death() {
    let mut m = machine(Role::Worker);
    confirm(&mut m, 5, Role::Worker, Instant::ZERO);
    let dead = Body::Notice {
        gossip: vec![claim(ClaimKind::Dead, 5, 0, Role::Worker, 6)],
    };
    deliver(
        &mut m,
        env_from(6, Role::Worker, 0, dead),
        Instant::ZERO + secs(6),
    );
    let ping = Body::Ping {
        seq: 1,
        target: NodeId(0),
        buddy: None,
        gossip: vec![],
        coord: None,
        health: vec![],
    };
    let out = deliver(
        &mut m,
        env_from(5, Role::Worker, 0, ping),
        Instant::ZERO + secs(7),
    );
    let replies: Vec<Envelope> = out
        .iter()
        .filter_map(|o| match o {
            Output::Transmit { bytes, .. } => Some(wire::decode(bytes, Channel::Datagram).unwrap()),
            _ => None,
        })
        .collect();
    assert_eq!(replies.len(), 1);
    assert!(
        matches!(&replies[0].body, Body::Notice { gossip } if gossip[0].kind == ClaimKind::Dead && gossip[0].node == NodeId(5))
    );
}

#[test]
fn join_confirms_the_joiner_at_the_seed_only() {
    let mut seed = machine(Role::Manager);
    let body = Body::Join {
        protocol_major: 1,
        protocol_minor: 0,
    };
    let out = deliver(&mut seed, env_from(5, Role::Worker, 0, body), Instant::ZERO);
    let x = seed.member(NodeId(5)).unwrap();
    assert_eq!(
        (x.status, x.confirmed(), x.role()),
        (Status::Alive, true, Role::Worker)
    );
    let ack = out
        .iter()
        .find_map(|o| match o {
            Output::Transmit { bytes, .. } => Some(wire::decode(bytes, Channel::Datagram).unwrap()),
            _ => None,
        })
        .unwrap();
    assert!(matches!(ack.body, Body::JoinAck { accepted: true, .. }));
    // A third party hears JOIN gossip: unconfirmed there (Q3).
    let mut third = Membership::new(
        Config::default(),
        ident(7, Role::Worker),
        Mode::Member,
        Incarnation(0),
        1,
        Instant::ZERO,
    );
    let body = Body::Notice {
        gossip: vec![claim(ClaimKind::Join, 5, 0, Role::Worker, 5)],
    };
    deliver(
        &mut third,
        env_from(0, Role::Manager, 0, body),
        Instant::ZERO,
    );
    assert_eq!(third.member(NodeId(5)).unwrap().status, Status::Unconfirmed);
    // Version mismatch is refused.
    let body = Body::Join {
        protocol_major: 2,
        protocol_minor: 0,
    };
    let out = deliver(&mut seed, env_from(8, Role::Worker, 0, body), Instant::ZERO);
    assert!(seed.member(NodeId(8)).is_none());
    assert!(out.iter().any(|o| matches!(o, Output::Transmit { bytes, .. } if matches!(wire::decode(bytes, Channel::Datagram).unwrap().body, Body::Nack { reason: NackReason::VersionMismatch, .. }))));
}

#[test]
fn leave_marks_left_not_dead() {
    let mut m = machine(Role::Worker);
    confirm(&mut m, 5, Role::Worker, Instant::ZERO);
    deliver(
        &mut m,
        env_from(5, Role::Worker, 0, Body::Leave),
        Instant::ZERO + secs(1),
    );
    assert_eq!(m.member(NodeId(5)).unwrap().status, Status::Left);
}

#[test]
fn tombstones_are_forgotten_after_an_hour() {
    let mut m = machine(Role::Worker);
    confirm(&mut m, 5, Role::Worker, Instant::ZERO);
    deliver(
        &mut m,
        env_from(5, Role::Worker, 0, Body::Leave),
        Instant::ZERO + secs(1),
    );
    let mut log = Vec::new();
    run_until(&mut m, Instant::ZERO + secs(3600), &mut log);
    assert!(m.member(NodeId(5)).is_some());
    run_until(&mut m, Instant::ZERO + secs(3602), &mut log);
    assert!(m.member(NodeId(5)).is_none());
    let sizes = m.table_sizes();
    assert_eq!((sizes.members, sizes.helps, sizes.proactive), (0, 0, 0));
}

#[test]
fn member_table_is_bounded() {
    let cfg = Config {
        max_members: 300,
        ..Config::default()
    };
    let mut m = Membership::new(
        cfg,
        ident(0, Role::Worker),
        Mode::Member,
        Incarnation(0),
        1,
        Instant::ZERO,
    );
    for batch in 0..100u32 {
        let gossip = (0..5)
            .map(|i| claim(ClaimKind::Alive, 1000 + batch * 5 + i, 0, Role::Worker, 0))
            .collect();
        deliver(
            &mut m,
            env_from(9, Role::Worker, 0, Body::Notice { gossip }),
            Instant::ZERO,
        );
        assert!(m.member_count() <= 300);
    }
    assert!(m.stats().evicted_members > 0);
}

#[test]
fn garbage_is_counted_and_dropped() {
    let mut m = machine(Role::Worker);
    for bytes in [&[][..], &[1, 2, 3][..], &[0xff; 64][..]] {
        let out = m.step(
            Input::Datagram {
                from: Addr::from_u32(3),
                bytes,
            },
            Instant::ZERO,
        );
        assert!(matches!(
            out.as_slice(),
            [Output::Event(Event::DecodeFailed { .. })]
        ));
    }
    assert_eq!(m.stats().decode_errors, 3);
}

#[test]
fn observers_are_answered_but_never_added() {
    let mut m = machine(Role::Manager);
    let mut env = env_from(
        50,
        Role::Gate,
        0,
        Body::Ping {
            seq: 1,
            target: NodeId(0),
            buddy: None,
            gossip: vec![],
            coord: None,
            health: vec![],
        },
    );
    env.flags = wire::FLAG_OBSERVER;
    let out = deliver(&mut m, env, Instant::ZERO);
    assert!(m.member(NodeId(50)).is_none());
    assert!(out.iter().any(|o| matches!(o, Output::Transmit { .. })));
}

#[test]
fn an_observer_only_keeps_and_probes_its_role() {
    let mut obs = Membership::new(
        Config::default(),
        ident(0, Role::Gate),
        Mode::Observer {
            probes: Role::Manager,
        },
        Incarnation(0),
        3,
        Instant::ZERO,
    );
    let body = Body::Notice {
        gossip: vec![
            claim(ClaimKind::Alive, 5, 0, Role::Manager, 5),
            claim(ClaimKind::Alive, 6, 0, Role::Worker, 6),
        ],
    };
    let mut env = env_from(5, Role::Manager, 0, body);
    env.flags = 0;
    deliver(&mut obs, env, Instant::ZERO);
    assert!(obs.member(NodeId(5)).is_some());
    assert!(obs.member(NodeId(6)).is_none());
    let mut log = Vec::new();
    run_until(&mut obs, Instant::ZERO + secs(5), &mut log);
    for (_, to, e) in sent(&log) {
        assert_eq!(e.flags & wire::FLAG_OBSERVER, wire::FLAG_OBSERVER);
        assert_eq!(to, Addr::from_u32(5));
        if let Body::Ping { gossip, .. } = e.body {
            assert!(gossip.is_empty(), "observers gossip nothing");
        }
    }
}

#[test]
fn a_death_contradicted_by_fresh_direct_contact_is_only_a_suspicion() {
    let mut m = machine(Role::Worker);
    confirm(&mut m, 5, Role::Worker, Instant::ZERO);
    let dead = || Body::Notice {
        gossip: vec![claim(ClaimKind::Dead, 5, 0, Role::Worker, 6)],
    };
    // 5 spoke to us 2 s ago (< worker min 5 s): the DEAD verdict becomes a suspicion,
    // and a second copy only confirms it.
    deliver(
        &mut m,
        env_from(6, Role::Worker, 0, dead()),
        Instant::ZERO + secs(2),
    );
    assert_eq!(m.member(NodeId(5)).unwrap().status, Status::Suspect);
    deliver(
        &mut m,
        env_from(7, Role::Worker, 0, dead()),
        Instant::ZERO + secs(3),
    );
    assert_eq!(m.member(NodeId(5)).unwrap().status, Status::Suspect);
    // Once our evidence is older than the minimum, DEAD is DEAD.
    deliver(
        &mut m,
        env_from(6, Role::Worker, 0, dead()),
        Instant::ZERO + secs(5),
    );
    assert_eq!(m.member(NodeId(5)).unwrap().status, Status::Dead);
}

#[test]
fn a_snapshot_death_is_merged_as_a_suspicion_but_our_own_death_is_refuted() {
    let mut m = machine(Role::Worker);
    confirm(&mut m, 5, Role::Worker, Instant::ZERO);
    let entries = vec![
        claim(ClaimKind::Dead, 5, 0, Role::Worker, 6),
        claim(ClaimKind::Dead, 0, 0, Role::Worker, 6),
    ];
    let env = env_from(
        6,
        Role::Worker,
        0,
        Body::PushPull {
            reply: true,
            entries,
        },
    );
    let bytes = wire::encode(&env, Channel::Frame).unwrap();
    m.step(
        Input::Frame {
            from: env.sender_addr,
            bytes: &bytes,
        },
        Instant::ZERO + secs(60),
    );
    assert_eq!(m.member(NodeId(5)).unwrap().status, Status::Suspect);
    assert_eq!(
        m.incarnation(),
        Incarnation(5),
        "DEAD about us: zombie-safe bump"
    );
}

/// A push-pull from node 6 listing `entries`, delivered at `now`; the datagrams sent.
fn push_pull_from_6(m: &mut Membership, entries: Vec<Claim>, now: Instant) -> Vec<(Addr, Body)> {
    let env = env_from(
        6,
        Role::Worker,
        0,
        Body::PushPull {
            reply: true,
            entries,
        },
    );
    deliver_frame(m, env, now)
        .into_iter()
        .filter_map(|(_, o)| match o {
            Output::Transmit { to, bytes } => {
                Some((to, wire::decode(&bytes, Channel::Datagram).ok()?.body))
            }
            _ => None,
        })
        .collect()
}

/// A machine that holds 7 UNCONFIRMED (learned by gossip) and has just merged node 6's
/// push-pull reporting 7 dead: the machine, the datagrams it sent, and when.
fn unconfirmed_7_reported_dead() -> (Membership, Vec<(Addr, Body)>, Instant) {
    let mut m = machine(Role::Worker);
    confirm(&mut m, 6, Role::Worker, Instant::ZERO);
    learn_by_gossip(&mut m, 7, Role::Worker, Instant::ZERO);
    let t0 = Instant::ZERO + secs(30);
    let sent = push_pull_from_6(
        &mut m,
        vec![claim(ClaimKind::Dead, 7, 0, Role::Worker, 6)],
        t0,
    );
    (m, sent, t0)
}

/// A push-pull's DEAD about a member we hold UNCONFIRMED (learned by gossip, never
/// heard from) can be neither a suspicion (never UNCONFIRMED -> SUSPECT) nor dropped
/// (a node that missed the death's gossip would keep a dead member for ~2,000 s at
/// 1,000 members): we ping it once, and silence for the probe timeout makes it dead
/// (without DEAD gossip: an unconfirmed member's tombstone is ours alone).
#[test]
fn a_snapshot_death_of_an_unconfirmed_member_is_checked_with_one_ping() {
    let (mut m, sent, t0) = unconfirmed_7_reported_dead();
    let pings: Vec<_> = sent
        .iter()
        .filter(|(to, b)| {
            *to == Addr::from_u32(7)
                && matches!(b, Body::Ping { target, .. } if *target == NodeId(7))
        })
        .collect();
    assert_eq!(pings.len(), 1, "{sent:?}");
    assert_eq!(m.member(NodeId(7)).unwrap().status, Status::Unconfirmed);
    assert_eq!(m.stats().death_checks, 1);
    // The same report again while the check is in flight: no second ping.
    let again = push_pull_from_6(
        &mut m,
        vec![claim(ClaimKind::Dead, 7, 0, Role::Worker, 6)],
        t0 + millis(10),
    );
    assert!(!again.iter().any(|(to, _)| *to == Addr::from_u32(7)));
    // Unanswered for the probe timeout (1 s with timeouts that do not adapt): dead.
    m.step(Input::Tick, t0 + millis(999));
    assert_eq!(m.member(NodeId(7)).unwrap().status, Status::Unconfirmed);
    m.step(Input::Tick, t0 + secs(1));
    assert_eq!(m.member(NodeId(7)).unwrap().status, Status::Dead);
    assert!(m.death_checks.is_empty());
    let mut gossip = Vec::new();
    m.gossip.select(100, None, &mut gossip);
    assert!(
        !gossip
            .iter()
            .any(|c| c.node == NodeId(7) && c.kind == ClaimKind::Dead),
        "no DEAD gossip about an unconfirmed member: {gossip:?}"
    );
}

/// The checked member answers: alive and confirmed, and the timeout changes nothing.
#[test]
fn a_snapshot_death_of_an_unconfirmed_member_that_answers_confirms_it() {
    let (mut m, sent, t0) = unconfirmed_7_reported_dead();
    let seq = sent
        .iter()
        .find_map(|(_, b)| match b {
            Body::Ping { seq, target, .. } if *target == NodeId(7) => Some(*seq),
            _ => None,
        })
        .expect("a ping to 7");
    let ack = Body::Ack {
        seq,
        gossip: vec![],
        coord: None,
        health: vec![],
    };
    deliver(&mut m, env_from(7, Role::Worker, 0, ack), t0 + millis(5));
    let x = m.member(NodeId(7)).unwrap();
    assert_eq!((x.status, x.confirmed()), (Status::Alive, true));
    assert!(m.death_checks.is_empty());
    assert_eq!(m.stats().stale_replies, 0, "the ACK matched the check");
    m.step(Input::Tick, t0 + secs(2));
    assert_eq!(m.member(NodeId(7)).unwrap().status, Status::Alive);
}

/// One push-pull listing many such deaths starts at most 16 checks; an older
/// incarnation than ours is no report at all.
#[test]
fn death_checks_are_bounded_and_need_a_current_incarnation() {
    let mut m = machine(Role::Worker);
    confirm(&mut m, 6, Role::Worker, Instant::ZERO);
    for n in 100..130 {
        learn_by_gossip(&mut m, n, Role::Worker, Instant::ZERO);
    }
    let entries = (100..130)
        .map(|n| claim(ClaimKind::Dead, n, 0, Role::Worker, 6))
        .collect();
    let sent = push_pull_from_6(&mut m, entries, Instant::ZERO + secs(30));
    let pings = sent
        .iter()
        .filter(|(_, b)| matches!(b, Body::Ping { .. }))
        .count();
    assert_eq!(pings, unconfirmed::MAX_DEATH_CHECKS);
    assert_eq!(m.table_sizes().proactive, 16);

    let mut m = machine(Role::Worker);
    confirm(&mut m, 6, Role::Worker, Instant::ZERO);
    let claims = vec![claim(ClaimKind::Alive, 7, 3, Role::Worker, 7)];
    gossip_from_observer(&mut m, claims, Instant::ZERO);
    let sent = push_pull_from_6(
        &mut m,
        vec![claim(ClaimKind::Dead, 7, 2, Role::Worker, 6)],
        Instant::ZERO + secs(30),
    );
    assert!(!sent.iter().any(|(to, _)| *to == Addr::from_u32(7)));
    assert_eq!(m.member(NodeId(7)).unwrap().status, Status::Unconfirmed);
}

#[test]
fn an_observers_snapshot_only_counts_for_claims_about_the_receiver() {
    let mut m = machine(Role::Manager);
    confirm(&mut m, 5, Role::Manager, Instant::ZERO);
    let entries = vec![
        claim(ClaimKind::Dead, 5, 0, Role::Manager, 50),
        claim(ClaimKind::Suspect, 0, 0, Role::Manager, 50),
    ];
    let mut env = env_from(
        50,
        Role::Gate,
        0,
        Body::PushPull {
            reply: false,
            entries,
        },
    );
    env.flags = wire::FLAG_OBSERVER;
    let bytes = wire::encode(&env, Channel::Frame).unwrap();
    let out = m.step(
        Input::Frame {
            from: env.sender_addr,
            bytes: &bytes,
        },
        Instant::ZERO + secs(60),
    );
    assert_eq!(
        m.member(NodeId(5)).unwrap().status,
        Status::Alive,
        "observer verdicts ignored"
    );
    assert_eq!(
        m.incarnation(),
        Incarnation(1),
        "but we refute what it says about us"
    );
    assert!(m.member(NodeId(50)).is_none());
    assert!(
        out.iter().any(|o| matches!(o, Output::Frame { .. })),
        "and answer with our table"
    );
}

#[test]
fn the_last_chance_probe_lets_a_live_suspect_refute() {
    let mut m = machine(Role::Worker);
    confirm(&mut m, 5, Role::Worker, Instant::ZERO);
    let suspect = Body::Notice {
        gossip: vec![claim(ClaimKind::Suspect, 5, 0, Role::Worker, 6)],
    };
    deliver(
        &mut m,
        env_from(6, Role::Worker, 0, suspect),
        Instant::ZERO + secs(10),
    );
    assert_eq!(m.member(NodeId(5)).unwrap().status, Status::Suspect);
    // 5 never answers, so the suspicion runs to its deadline: 30 s after it started.
    let mut last_chance = None;
    while let Some(d) = m.next_deadline() {
        if d > Instant::ZERO + secs(100) || last_chance.is_some() {
            break;
        }
        for o in m.step(Input::Tick, d) {
            if let Output::Transmit { to, bytes } = &o {
                let e = wire::decode(bytes, Channel::Datagram).unwrap();
                if let Body::Ping {
                    seq,
                    buddy: Some(b),
                    ..
                } = e.body
                {
                    if *to == Addr::from_u32(5) && d >= Instant::ZERO + secs(40) {
                        assert_eq!(b.node, NodeId(5));
                        last_chance = Some((d, seq));
                    }
                }
            }
        }
    }
    let (t, seq) = last_chance.expect("a last-chance probe at the deadline");
    assert_eq!(t, Instant::ZERO + secs(40));
    assert_eq!(
        m.member(NodeId(5)).unwrap().status,
        Status::Suspect,
        "not dead yet"
    );
    // 5 answers it, refuted (its incarnation is now 1): the suspicion is cleared.
    let ack = Body::Ack {
        seq,
        gossip: vec![],
        coord: None,
        health: vec![],
    };
    deliver(&mut m, env_from(5, Role::Worker, 1, ack), t + millis(5));
    let x = m.member(NodeId(5)).unwrap();
    assert_eq!((x.status, x.inc), (Status::Alive, Incarnation(1)));
}

#[test]
fn member_records_stay_compact() {
    // A node keeps one record per peer: 1000 peers x 1000 nodes in a simulation.
    assert!(
        std::mem::size_of::<Member>() <= 72,
        "{}",
        std::mem::size_of::<Member>()
    );
}

#[test]
fn a_burial_below_our_incarnation_is_still_refuted_past_the_zombie_guard() {
    let mut m = machine(Role::Worker);
    confirm(&mut m, 6, Role::Worker, Instant::ZERO);
    // We refuted a suspicion: incarnation 1.
    let suspect = Body::Notice {
        gossip: vec![claim(ClaimKind::Suspect, 0, 0, Role::Worker, 6)],
    };
    deliver(
        &mut m,
        env_from(6, Role::Worker, 0, suspect),
        Instant::ZERO + secs(1),
    );
    assert_eq!(m.incarnation(), Incarnation(1));
    // Someone buried us at 0: its guard wants >= 5, so we go to 5, not stay at 1.
    let dead = Body::Notice {
        gossip: vec![claim(ClaimKind::Dead, 0, 0, Role::Worker, 6)],
    };
    deliver(
        &mut m,
        env_from(6, Role::Worker, 0, dead),
        Instant::ZERO + secs(2),
    );
    assert_eq!(m.incarnation(), Incarnation(5));
    // An old burial we are already past does not bump again.
    let dead = Body::Notice {
        gossip: vec![claim(ClaimKind::Dead, 0, 0, Role::Worker, 6)],
    };
    deliver(
        &mut m,
        env_from(6, Role::Worker, 0, dead),
        Instant::ZERO + secs(3),
    );
    assert_eq!(m.incarnation(), Incarnation(5));
}

#[test]
fn a_stray_ack_does_not_cancel_a_help_we_owe() {
    let mut m = machine(Role::Worker);
    confirm(&mut m, 5, Role::Worker, Instant::ZERO);
    confirm(&mut m, 6, Role::Worker, Instant::ZERO);
    // 6 asks us to probe 5.
    let req = Body::PingReq {
        seq: 40,
        target: NodeId(5),
        target_addr: Addr::from_u32(5),
        target_inc: Incarnation(0),
        want_nack: true,
        gossip: vec![],
    };
    let out = deliver(
        &mut m,
        env_from(6, Role::Worker, 0, req),
        Instant::ZERO + secs(1),
    );
    let our_seq = out
        .iter()
        .find_map(|o| match o {
            Output::Transmit { to, bytes } if *to == Addr::from_u32(5) => {
                match wire::decode(bytes, Channel::Datagram).unwrap().body {
                    Body::Ping { seq, .. } => Some(seq),
                    _ => None,
                }
            }
            _ => None,
        })
        .expect("we probe 5 for 6");
    // An ACK with that seq but from someone else: ignored, the help stays.
    let stray = Body::Ack {
        seq: our_seq,
        gossip: vec![],
        coord: None,
        health: vec![],
    };
    let out = deliver(
        &mut m,
        env_from(6, Role::Worker, 0, stray),
        Instant::ZERO + secs(1) + millis(5),
    );
    assert!(!out.iter().any(|o| matches!(o, Output::Transmit { .. })));
    assert_eq!(m.table_sizes().helps, 1);
    // 5's own ACK completes it: 6 gets its INDIRECT_ACK.
    let ack = Body::Ack {
        seq: our_seq,
        gossip: vec![],
        coord: None,
        health: vec![],
    };
    let out = deliver(
        &mut m,
        env_from(5, Role::Worker, 0, ack),
        Instant::ZERO + secs(1) + millis(10),
    );
    let sent: Vec<Envelope> = out
        .iter()
        .filter_map(|o| match o {
            Output::Transmit { bytes, .. } => Some(wire::decode(bytes, Channel::Datagram).unwrap()),
            _ => None,
        })
        .collect();
    assert!(matches!(
        sent[0].body,
        Body::IndirectAck {
            seq: 40,
            target: NodeId(5)
        }
    ));
    assert_eq!(m.table_sizes().helps, 0);
}

#[test]
fn a_duplicated_nack_counts_once() {
    let mut m = machine(Role::Worker);
    for n in [5, 6, 7] {
        confirm(&mut m, n, Role::Worker, Instant::ZERO);
    }
    // 5 is silent; 6 and 7 answer pings. Asked to help probe 5, 6 nacks twice (a
    // duplicated datagram) and 7 stays silent: one nack is missing, so LHM +1.
    let mut now = Instant::ZERO;
    let mut score_at_suspicion = None;
    while score_at_suspicion.is_none() && now < Instant::ZERO + secs(120) {
        now = m.next_deadline().unwrap();
        let outs = m.step(Input::Tick, now);
        if m.member(NodeId(5)).unwrap().status == Status::Suspect {
            score_at_suspicion = Some(m.lhm_score());
            break;
        }
        for o in outs {
            let Output::Transmit { to, bytes } = o else {
                continue;
            };
            let e = wire::decode(&bytes, Channel::Datagram).unwrap();
            let helper = to.to_u32().unwrap();
            let replies: Vec<Body> = match e.body {
                Body::Ping { seq, .. } if helper != 5 => vec![Body::Ack {
                    seq,
                    gossip: vec![],
                    coord: None,
                    health: vec![],
                }],
                Body::PingReq { seq, target, .. } if helper == 6 => {
                    let nack = Body::Nack {
                        seq,
                        target,
                        reason: NackReason::Timeout,
                    };
                    vec![nack.clone(), nack]
                }
                _ => vec![],
            };
            for r in replies {
                deliver(
                    &mut m,
                    env_from(helper, Role::Worker, 0, r),
                    now + millis(1),
                );
            }
        }
    }
    assert_eq!(score_at_suspicion, Some(1));
}

/// Spec deviation test (membership.md §6.3, see `Suspicion::relax`): a suspicion started
/// while our LHM was high is shortened once our own probes succeed again, never lengthened.
#[test]
fn a_suspicion_started_while_unhealthy_shortens_when_local_health_recovers() {
    let mut m = machine(Role::Worker);
    confirm(&mut m, 5, Role::Worker, Instant::ZERO);
    confirm(&mut m, 6, Role::Worker, Instant::ZERO);
    m.step(Input::SetLocalHealth { score: 3 }, Instant::ZERO);
    let mut suspected = None;
    let mut dead_at = None;
    let mut lowest_after_suspicion = u8::MAX;
    drive(
        &mut m,
        Instant::ZERO + secs(400),
        true,
        |m, now, _, outs| {
            match status_of(outs, 5) {
                Some(Status::Suspect) if suspected.is_none() => {
                    suspected = Some((now, m.lhm_score()));
                }
                Some(Status::Dead) => dead_at = Some(now),
                _ => {}
            }
            if suspected.is_some() {
                lowest_after_suspicion = lowest_after_suspicion.min(m.lhm_score());
            }
            dead_at.is_some()
        },
    );
    let (s, score_at_start) = suspected.expect("suspected");
    let dead = dead_at.expect("dead");
    // Our probes of 6 keep succeeding, so the LHM falls back to 0 during the suspicion.
    assert!(score_at_start >= 1, "suspected while unhealthy");
    assert_eq!(lowest_after_suspicion, 0);
    // Snapshot semantics would wait 30 s x (1 + score) + T_p; recovered health gives the
    // plain worker maximum 30 s plus one last-chance probe (T_p = 1 s at LHM 0).
    let snapshot_deadline = s + scale(secs(30), 1.0 + score_at_start as f64);
    assert!(
        dead < snapshot_deadline,
        "{dead:?} vs {snapshot_deadline:?}"
    );
    assert_eq!(dead, s + secs(31));
}

/// Spec deviation test (membership.md §6.1): a failed probe that every helper nacked in
/// time shows our own networking works, so it lowers the LHM like a success does.
#[test]
fn a_failed_probe_every_helper_nacked_counts_for_our_health() {
    let mut m = machine(Role::Worker);
    confirm(&mut m, 5, Role::Worker, Instant::ZERO);
    confirm(&mut m, 6, Role::Worker, Instant::ZERO);
    m.step(Input::SetLocalHealth { score: 3 }, Instant::ZERO);
    let mut checked = false;
    // 6 nacks every indirect request but never answers a direct ping, so no round
    // against 6 ever succeeds: only the vouched rounds can lower the LHM.
    drive(
        &mut m,
        Instant::ZERO + secs(120),
        false,
        |_, _, before, outs| {
            if status_of(outs, 5) == Some(Status::Suspect) {
                let lhm_now = outs.iter().rev().find_map(|o| match o {
                    Output::Event(Event::Lhm { score, .. }) => Some(*score),
                    _ => None,
                });
                assert_eq!(
                    lhm_now,
                    Some(before - 1),
                    "the vouched round lowers the LHM"
                );
                checked = true;
            }
            checked
        },
    );
    assert!(checked, "5 was suspected");
}

/// Latency-adaptive timeouts (AD-35, membership.md §8, issue 3), with the spec's numbers.
mod adaptive {
    use super::*;
    use crate::coords::{Coordinate, VivaldiConfig, WireCoord};

    /// Converge our own coordinate against a far peer (node 5, 300 ms), then add a near
    /// peer (node 6) placed 1 ms from us, both with low error.
    fn converged_machine(cfg: Config) -> Membership {
        let mut m = machine_with(Role::Worker, cfg);
        confirm(&mut m, 5, Role::Worker, Instant::ZERO);
        confirm(&mut m, 6, Role::Worker, Instant::ZERO);
        let vcfg = VivaldiConfig::default();
        let mut far = Coordinate::origin(&vcfg);
        far.vec[0] = 0.300;
        far.error = 0.05;
        let far = WireCoord::from_coordinate(&far);
        let mut rng = DetRng::new(7);
        for i in 0..60 {
            let now = Instant::ZERO + secs(i);
            m.coords.observe(NodeId(5), &far, now);
            m.coords
                .sample(NodeId(5), millis(300), now, &mut rng)
                .unwrap();
        }
        let mut near = *m.coords.own();
        near.vec[1] += 0.001;
        near.error = 0.05;
        m.coords.observe(
            NodeId(6),
            &WireCoord::from_coordinate(&near),
            Instant::ZERO + secs(59),
        );
        assert!(m.coords.converged(), "{:?}", m.coords.own());
        m
    }

    #[test]
    fn near_peers_keep_aggressive_timeouts_far_ones_get_conservative_ones() {
        // Issue 3's numbers: base probe timeout 500 ms, far peer 300 ms away.
        let cfg = Config {
            probe_timeout: millis(500),
            ..Config::default()
        };
        let m = converged_machine(cfg);
        let now = Instant::ZERO + secs(60);
        let near_ucb = m.coords.rtt_ucb_ms(NodeId(6), now);
        let far_ucb = m.coords.rtt_ucb_ms(NodeId(5), now);
        assert!(near_ucb < 10.0, "{near_ucb}");
        // Measured 300 ms; sigma = max(e, e_p) x 300 ms with both errors small.
        assert!((300.0..400.0).contains(&far_ucb), "{far_ucb}");
        // Converged (quality 1): confidence_adj 1. Near: latency_mult 1 -> T_p = T.
        assert_eq!(m.latency_factors(NodeId(6), now), (1.0, 1.0));
        assert_eq!(m.probe_timeout_for(NodeId(6), now), millis(500));
        // Far: latency_mult = 2 x UCB / T, so the first attempt (0.5 T_p) covers the UCB.
        let (lat, conf) = m.latency_factors(NodeId(5), now);
        assert_eq!(conf, 1.0);
        assert_eq!(lat, 2.0 * far_ucb / 500.0);
        let far = m.probe_timeout_for(NodeId(5), now);
        assert_eq!(far, scale(millis(500), lat));
        assert!(far.as_secs_f64() * 0.5 * 1000.0 >= far_ucb - 1e-6);
        assert!(far > millis(600), "{far:?}");
        // No coordinate: UCB 200 ms -> 2 x 200 / 500 < 1 -> 1; quality 0 -> x1.5.
        assert_eq!(m.latency_factors(NodeId(9), now), (1.0, 1.5));
        assert_eq!(m.probe_timeout_for(NodeId(9), now), millis(750));
        // Never above 10x, never above the 5 s clamp: a 10 ms base and a 300 ms peer.
        let mut m = m;
        m.cfg.probe_timeout = millis(10);
        assert_eq!(m.latency_factors(NodeId(5), now).0, 10.0);
        assert_eq!(m.probe_timeout_for(NodeId(5), now), millis(100));
    }

    /// A ping from `node` carrying coordinate `c`.
    fn ping_with_coord(node: u32, seq: u32, c: WireCoord) -> Envelope {
        let body = Body::Ping {
            seq,
            target: NodeId(0),
            buddy: None,
            gossip: vec![],
            coord: Some(c),
            health: vec![],
        };
        env_from(node, Role::Worker, 0, body)
    }

    /// The ACK from `node` to our PING `seq`, carrying coordinate `c`.
    fn ack_with_coord(node: NodeId, seq: u32, c: WireCoord) -> Envelope {
        let body = Body::Ack {
            seq,
            gossip: vec![],
            coord: Some(c),
            health: vec![],
        };
        env_from(node.0, Role::Worker, 0, body)
    }

    /// A machine with 20 confirmed workers (nodes 1..=20) whose first probe round has
    /// started: the machine, the round's target and seq, and when it started.
    fn twenty_members_first_probe(cfg: Config) -> (Membership, NodeId, u32, Instant) {
        let mut m = machine_with(Role::Worker, cfg);
        for n in 1..=20 {
            confirm(&mut m, n, Role::Worker, Instant::ZERO);
        }
        let (target, seq, at) = first_probe(&mut m);
        (m, target, seq, at)
    }

    /// Start the first probe round; returns its target and seq.
    fn first_probe(m: &mut Membership) -> (NodeId, u32, Instant) {
        while let Some(d) = m.next_deadline() {
            m.step(Input::Tick, d);
            if let Some(r) = &m.round {
                return (r.target, r.seq, d);
            }
            assert!(d < Instant::ZERO + secs(600), "no probe round");
        }
        panic!("no deadline")
    }

    /// membership.md §8 keeps a peer's coordinate 300 s; it serves a timeout only if
    /// the peer is probed within that time. With a 60 s probe interval that is the next
    /// 5 probes: in a 20-member cluster a coordinate from a member further down the
    /// probe list is not kept, one from the next few is, and the probe target's entry
    /// is dropped once its ACK has taught us a sample (its next turn is a round away).
    #[test]
    fn only_peers_probed_before_their_coordinate_expires_keep_it() {
        let cfg = Config {
            probe_interval: secs(60),
            ..Config::default()
        };
        let (mut m, target, seq, at) = twenty_members_first_probe(cfg);
        assert_eq!((m.probe_idx, m.probe_list.len()), (1, 20));
        let mut c = Coordinate::origin(&VivaldiConfig::default());
        c.vec[0] = 0.001;
        let wire = WireCoord::from_coordinate(&c);
        let (near, far) = (m.probe_list[3], m.probe_list[15]);
        assert_eq!(m.members[&near].probe_pos(), Some(3));
        let now = at + millis(1);
        deliver(&mut m, ping_with_coord(near.0, 7, wire), now);
        deliver(&mut m, ping_with_coord(far.0, 8, wire), now);
        assert!(m.coords.has_peer(near), "probed within 5 rounds");
        assert!(!m.coords.has_peer(far), "not probed for 14 rounds");
        assert_eq!(m.coords.stats.not_admitted, 1);
        // The target's ACK: admitted, sampled, then dropped.
        deliver(&mut m, ack_with_coord(target, seq, wire), at + millis(2));
        assert_eq!(m.coords.samples(), 1, "the ACK was a sample");
        assert!(!m.coords.has_peer(target));
        assert!(m.coords.has_peer(near));
        // The timeout towards `near` now finds its coordinate; towards `far` it does not.
        let before = m.coords.timeout_lookups();
        m.probe_timeout_for(near, now);
        m.probe_timeout_for(far, now);
        let after = m.coords.timeout_lookups();
        assert_eq!((after.0 - before.0, after.1 - before.1), (2, 1));
    }

    /// In a cluster no larger than the window (300 members at the default 1 s
    /// interval) every coordinate is kept, and a sampled target keeps its entry.
    #[test]
    fn in_a_cluster_within_the_window_every_coordinate_is_kept() {
        let (mut m, target, seq, at) = twenty_members_first_probe(Config::default());
        let wire = WireCoord::from_coordinate(&Coordinate::origin(&VivaldiConfig::default()));
        for n in 1..=20 {
            deliver(&mut m, ping_with_coord(n, 100 + n, wire), at + millis(1));
        }
        deliver(&mut m, ack_with_coord(target, seq, wire), at + millis(2));
        assert_eq!(m.coords.samples(), 1);
        assert_eq!(m.coords.peer_count(), 20);
        assert_eq!(m.coords.stats.not_admitted, 0);
    }

    /// Every member's recorded place in the probe list is where the list holds it, as
    /// members join mid-round (swapped into random places) and rounds are rebuilt.
    #[test]
    fn probe_positions_follow_the_list() {
        let mut m = machine_with(Role::Worker, Config::default());
        for n in 1..=10 {
            confirm(&mut m, n, Role::Worker, Instant::ZERO);
        }
        let (_, _, mut at) = first_probe(&mut m);
        for n in 11..=40 {
            at = at + millis(300);
            confirm(&mut m, n, Role::Worker, at);
            m.step(Input::Tick, at);
            for (pos, id) in m.probe_list.iter().enumerate() {
                assert_eq!(
                    m.members[id].probe_pos(),
                    Some(pos),
                    "{id:?} after {n} joined"
                );
            }
        }
        // Then 100 s of probes, answered: two more rounds, each rebuilding the list.
        let rebuilt_at = m.probe_list.clone();
        let (end, mut log) = (at + secs(100), Vec::new());
        while let Some(d) = m.next_deadline().filter(|d| *d < end) {
            tick_answering_probes(&mut m, d, &mut log);
            for (pos, id) in m.probe_list.iter().enumerate() {
                assert_eq!(m.members[id].probe_pos(), Some(pos), "{id:?} at {d:?}");
            }
        }
        assert_ne!(m.probe_list, rebuilt_at, "the list was rebuilt");
    }

    #[test]
    fn low_confidence_stretches_by_up_to_half() {
        let mut m = machine_with(Role::Worker, Config::default());
        confirm(&mut m, 6, Role::Worker, Instant::ZERO);
        confirm(&mut m, 7, Role::Worker, Instant::ZERO);
        let mut rng = DetRng::new(8);
        let mut peer = Coordinate::origin(&VivaldiConfig::default());
        peer.vec[0] = 0.002;
        peer.error = 0.05;
        let wire = WireCoord::from_coordinate(&peer);
        m.coords.observe(NodeId(6), &wire, Instant::ZERO);
        m.coords.observe(NodeId(7), &wire, Instant::ZERO);
        // Five samples of 6, none of 7: 7 is estimated by coordinates whose quality is
        // at most 5/10, so confidence_adj >= 1.25.
        for i in 0..5 {
            m.coords
                .sample(NodeId(6), millis(2), Instant::ZERO + secs(i), &mut rng)
                .unwrap();
        }
        let now = Instant::ZERO + secs(5);
        let q = m.coords.pair_quality(NodeId(7), now);
        let (_, conf) = m.latency_factors(NodeId(7), now);
        assert!(q <= 0.5);
        assert_eq!(conf, 1.0 + 0.5 * (1.0 - q));
        assert!((1.25..=1.5).contains(&conf));
        // 6 is measured with a full filter: full confidence.
        assert_eq!(m.latency_factors(NodeId(6), now), (1.0, 1.0));
        // Off: R_p = 1 whatever the coordinates say.
        m.cfg.adaptive_timeouts = false;
        assert_eq!(m.latency_factors(NodeId(7), now), (1.0, 1.0));
        assert_eq!(m.probe_timeout_for(NodeId(7), now), secs(1));
    }

    #[test]
    fn far_suspicions_get_latency_headroom_not_a_tenfold_wait() {
        // Worker bounds 5/30 s, T = 200 ms. Near peer: no stretch, the spec's bounds.
        let cfg = Config {
            probe_timeout: millis(200),
            ..Config::default()
        };
        let m = converged_machine(cfg);
        let now = Instant::ZERO + secs(60);
        assert_eq!(
            m.suspicion_bounds_towards(NodeId(6), now),
            (secs(5), secs(30))
        );
        // Far peer: the bounds grow by exactly what the probe timeout grew by.
        let headroom = m.probe_timeout_for(NodeId(5), now) - millis(200);
        assert!(headroom > millis(400), "{headroom:?}");
        assert_eq!(
            m.suspicion_bounds_towards(NodeId(5), now),
            (secs(5) + headroom, secs(30) + headroom)
        );
        // Unknown peer: 2 x 200 / 200 = 2, x1.5 for no quality: T_p = 600 ms, +400 ms.
        assert_eq!(
            m.suspicion_bounds_towards(NodeId(9), now),
            (secs(5) + millis(400), secs(30) + millis(400))
        );
    }

    /// The prober learns from the ACK of a round's first PING, and only from it (Karn).
    #[test]
    fn rtt_samples_come_from_unambiguous_acks_only() {
        let mut m = machine_with(Role::Worker, Config::default());
        confirm(&mut m, 6, Role::Worker, Instant::ZERO);
        let mut peer = Coordinate::origin(&VivaldiConfig::default());
        peer.vec[0] = 0.02;
        peer.error = 0.3;
        let coord = Some(WireCoord::from_coordinate(&peer));
        let mut answered_first = false;
        let mut answered_retry = false;
        let mut pings_this_round = 0;
        let mut now = Instant::ZERO;
        while !(answered_first && answered_retry) && now < Instant::ZERO + secs(60) {
            now = m.next_deadline().unwrap();
            let outs = m.step(Input::Tick, now);
            for o in outs {
                let Output::Transmit { bytes, .. } = o else {
                    continue;
                };
                let e = wire::decode(&bytes, Channel::Datagram).unwrap();
                let Body::Ping {
                    seq, coord: ours, ..
                } = e.body
                else {
                    continue;
                };
                assert!(ours.is_some(), "every PING carries our coordinate");
                pings_this_round += 1;
                let ack = |seq| Body::Ack {
                    seq,
                    gossip: vec![],
                    coord,
                    health: vec![],
                };
                if !answered_first {
                    // First round: answer the first PING after 20 ms.
                    deliver(
                        &mut m,
                        env_from(6, Role::Worker, 0, ack(seq)),
                        now + millis(20),
                    );
                    answered_first = true;
                    assert_eq!(m.coords.samples(), 1);
                    assert!(m.coords.estimate(NodeId(6), now).is_some());
                    pings_this_round = 0;
                } else if pings_this_round == 2 {
                    // Next round: the first PING goes unanswered, the retry is answered.
                    deliver(
                        &mut m,
                        env_from(6, Role::Worker, 0, ack(seq)),
                        now + millis(20),
                    );
                    answered_retry = true;
                }
            }
        }
        assert!(answered_retry);
        assert_eq!(
            m.coords.samples(),
            1,
            "an ACK after a retry is not a sample"
        );
    }
}

/// AD-26's membership side (membership.md §6.3, `deadline = start + timeout(C) +
/// sum(grants)`): a healthcheck extension granted to a suspected worker pushes its
/// suspicion's deadline (and so its death) back by the grant.
#[test]
fn an_extension_grant_stretches_a_suspicion_by_as_much() {
    let dead_at = |grant: Option<Duration>| {
        let mut m = machine(Role::Worker);
        confirm(&mut m, 5, Role::Worker, Instant::ZERO);
        let suspect = Body::Notice {
            gossip: vec![claim(ClaimKind::Suspect, 5, 0, Role::Worker, 6)],
        };
        deliver(
            &mut m,
            env_from(6, Role::Worker, 0, suspect),
            Instant::ZERO + secs(10),
        );
        if let Some(by) = grant {
            let before = m.suspicions[&NodeId(5)].deadline();
            m.step(
                Input::ExtensionGranted {
                    node: NodeId(5),
                    by,
                },
                Instant::ZERO + secs(12),
            );
            assert_eq!(m.suspicions[&NodeId(5)].deadline(), before + by);
        }
        while let Some(d) = m.next_deadline() {
            if d > Instant::ZERO + secs(100) {
                break;
            }
            for o in m.step(Input::Tick, d) {
                if let Output::Event(Event::SuspicionExpired { earliest, .. }) = o {
                    return (earliest, d);
                }
            }
        }
        panic!("the suspicion never expired");
    };
    // The deadline moves by exactly the grant (asserted inside), and so the verdict (the
    // 30 s worker maximum from 10 s, then the last-chance probe) by at least as much.
    let (_, verdict) = dead_at(None);
    let (_, verdict_ext) = dead_at(Some(secs(15)));
    assert!(verdict >= Instant::ZERO + secs(40), "{verdict:?}");
    assert!(
        verdict_ext >= verdict + secs(15),
        "{verdict_ext:?} vs {verdict:?}"
    );
    // A grant for a member nobody suspects changes nothing.
    let mut m = machine(Role::Worker);
    confirm(&mut m, 5, Role::Worker, Instant::ZERO);
    let before = m.next_deadline();
    m.step(
        Input::ExtensionGranted {
            node: NodeId(5),
            by: secs(15),
        },
        Instant::ZERO,
    );
    assert_eq!(m.next_deadline(), before);
}

/// A mass discovery queues a passive-confirmation entry per worker; once the entries
/// are done with (here: the workers never confirmed and were removed) the
/// queues hold no memory, rather than a mass join's capacity for the machine's life.
#[test]
fn passive_confirmation_queues_give_their_memory_back_once_drained() {
    let mut m = machine(Role::Manager);
    // Three datagrams of 100 claims each, relayed by an observer.
    for batch in 0..3u32 {
        let gossip = (1..=100)
            .map(|i| claim(ClaimKind::Alive, batch * 100 + i, 0, Role::Worker, 0))
            .collect();
        gossip_from_observer(&mut m, gossip, Instant::ZERO);
    }
    assert!(m.passive_warn.len() + m.passive_remove.len() >= 300);
    let mut log = Vec::new();
    run_until(&mut m, Instant::ZERO + secs(3600), &mut log);
    assert!((1..=300).all(|w| m.member(NodeId(w)).is_none()));
    assert_eq!(m.passive_warn.capacity(), 0);
    assert_eq!(m.passive_remove.capacity(), 0);
}

/// A member buried for good leaves nothing behind: its death incarnation (kept beside
/// the table for the zombie guard) goes with its tombstone.
#[test]
fn a_forgotten_tombstone_takes_its_death_with_it() {
    let mut m = machine(Role::Worker);
    confirm(&mut m, 5, Role::Worker, Instant::ZERO);
    let dead = Body::Notice {
        gossip: vec![claim(ClaimKind::Dead, 5, 2, Role::Worker, 6)],
    };
    // Not heard from for 6 s: the claim buries it (earlier it would only suspect).
    deliver(
        &mut m,
        env_from(6, Role::Worker, 0, dead),
        Instant::ZERO + secs(6),
    );
    assert_eq!(m.member(NodeId(5)).unwrap().status, Status::Dead);
    assert_eq!(m.deaths.get(&NodeId(5)), Some(&Incarnation(2)));
    let mut log = Vec::new();
    run_until(&mut m, Instant::ZERO + secs(3700), &mut log);
    assert!(m.member(NodeId(5)).is_none());
    assert!(m.deaths.is_empty());
}

/// Gossip about a member goes out with the role the table holds when it is sent: a role
/// learned after the update was queued is the one carried (membership.md §7, roles are
/// relayed verbatim once known).
#[test]
fn queued_gossip_carries_a_role_learned_after_it_was_queued() {
    let mut m = machine(Role::Worker);
    confirm(&mut m, 1, Role::Worker, Instant::ZERO);
    // Node 5 first heard of without a role: its ALIVE is queued for onward gossip.
    learn_by_gossip(&mut m, 5, Role::Unknown, Instant::ZERO);
    // Then a claim of the same incarnation names its role.
    learn_by_gossip(&mut m, 5, Role::Manager, Instant::from_millis(10));
    assert_eq!(m.member(NodeId(5)).unwrap().role(), Role::Manager);
    // The next datagram (our ACK to a PING from 1) carries 5's ALIVE with that role.
    let ping = Body::Ping {
        seq: 7,
        target: NodeId(0),
        buddy: None,
        gossip: vec![],
        coord: None,
        health: vec![],
    };
    let at = Instant::from_millis(20);
    let log: Vec<(Instant, Output)> = deliver(&mut m, env_from(1, Role::Worker, 0, ping), at)
        .into_iter()
        .map(|o| (at, o))
        .collect();
    let gossip: Vec<Claim> = sent(&log)
        .into_iter()
        .filter_map(|(_, _, env)| match env.body {
            Body::Ack { gossip, .. } => Some(gossip),
            _ => None,
        })
        .flatten()
        .filter(|c| c.node == NodeId(5))
        .collect();
    assert_eq!(gossip.len(), 1, "{gossip:?}");
    assert_eq!(gossip[0].role, Role::Manager);
}

fn frames(log: &[(Instant, Output)]) -> Vec<(Addr, Body)> {
    log.iter()
        .filter_map(|(_, o)| match o {
            Output::Frame { to, bytes } => {
                Some((*to, wire::decode(bytes, Channel::Frame).unwrap().body))
            }
            _ => None,
        })
        .collect()
}

fn deliver_frame(m: &mut Membership, env: Envelope, now: Instant) -> Vec<(Instant, Output)> {
    let bytes = wire::encode(&env, Channel::Frame).unwrap();
    m.step(
        Input::Frame {
            from: env.sender_addr,
            bytes: &bytes,
        },
        now,
    )
    .into_iter()
    .map(|o| (now, o))
    .collect()
}

fn digest_machine() -> Membership {
    machine_with(
        Role::Worker,
        Config {
            adaptive_timeouts: false,
            sync_digests: true,
            ..Config::default()
        },
    )
}

/// One tick of `m` at `d`; every member it probes answers at once, so it stays Alive.
fn tick_answering_probes(m: &mut Membership, d: Instant, log: &mut Vec<(Instant, Output)>) {
    let outs = m.step(Input::Tick, d);
    for o in &outs {
        if let Output::Transmit { to, bytes } = o {
            if let Ok(Envelope {
                body: Body::Ping { seq, target, .. },
                ..
            }) = wire::decode(bytes, Channel::Datagram)
            {
                assert_eq!(Addr::from_u32(target.0), *to);
                let ack = Body::Ack {
                    seq,
                    gossip: vec![],
                    coord: None,
                    health: vec![],
                };
                deliver(m, env_from(target.0, Role::Worker, 0, ack), d);
            }
        }
    }
    log.extend(outs.into_iter().map(|o| (d, o)));
}

/// Run `m` until its periodic sync offers a digest; returns when and to whom.
fn next_offer(m: &mut Membership, log: &mut Vec<(Instant, Output)>) -> (Instant, Addr, u64) {
    let start = log.len();
    while let Some(d) = m.next_deadline() {
        assert!(
            d <= Instant::ZERO + secs(120),
            "no sync offer in two minutes"
        );
        tick_answering_probes(m, d, log);
        let offers: Vec<(Addr, u64)> = frames(&log[start..])
            .into_iter()
            .filter_map(|(to, b)| match b {
                Body::SyncDigest {
                    reply: false,
                    digest,
                } => Some((to, digest)),
                _ => None,
            })
            .collect();
        if let Some((to, digest)) = offers.first() {
            assert_eq!(offers.len(), 1);
            return (d, *to, *digest);
        }
    }
    panic!("no sync offer");
}

#[test]
fn periodic_sync_offers_a_digest_and_a_matching_answer_ends_it() {
    let mut m = digest_machine();
    confirm(&mut m, 5, Role::Worker, Instant::ZERO);
    let mut log = Vec::new();
    let (at, to, digest) = next_offer(&mut m, &mut log);
    // §4's interval 30 s, scaled by memberlist's factor (1 below 32 members), the first
    // one drawn from its second half.
    assert!(at >= Instant::ZERO + secs(15) && at <= Instant::ZERO + secs(30));
    assert_eq!(to, Addr::from_u32(5));
    assert_eq!(digest, m.table_digest());
    assert!(
        !frames(&log)
            .iter()
            .any(|(_, b)| matches!(b, Body::PushPull { .. })),
        "no table is sent up front"
    );
    let answer = Body::SyncDigest {
        reply: true,
        digest,
    };
    let out = deliver_frame(&mut m, env_from(5, Role::Worker, 0, answer), at);
    assert!(
        frames(&out).is_empty(),
        "equal tables: nothing more to send"
    );
    assert_eq!(m.stats().syncs_in_step, 1);
    assert_eq!(m.stats().push_pulls, 0);
}

#[test]
fn a_differing_answer_starts_the_full_push_pull() {
    let mut m = digest_machine();
    confirm(&mut m, 5, Role::Worker, Instant::ZERO);
    let mut log = Vec::new();
    let (at, _, digest) = next_offer(&mut m, &mut log);
    let answer = Body::SyncDigest {
        reply: true,
        digest: digest ^ 1,
    };
    let out = deliver_frame(&mut m, env_from(5, Role::Worker, 0, answer.clone()), at);
    let sent = frames(&out);
    assert_eq!(sent.len(), 1);
    let (to, Body::PushPull { reply, entries }) = &sent[0] else {
        panic!("expected a push-pull, got {sent:?}");
    };
    assert_eq!(*to, Addr::from_u32(5));
    assert!(!reply, "the peer must answer with its own table");
    let nodes: Vec<u32> = entries.iter().map(|c| c.node.0).collect();
    assert_eq!(nodes, vec![0, 5], "our ALIVE, then the table");
    // The offer is used up: a second answer is not acted on.
    let again = deliver_frame(&mut m, env_from(5, Role::Worker, 0, answer), at);
    assert!(frames(&again).is_empty());
    assert_eq!(m.stats().syncs_in_step, 0);
}

#[test]
fn an_answer_to_no_offer_of_ours_is_ignored() {
    let mut m = digest_machine();
    confirm(&mut m, 5, Role::Worker, Instant::ZERO);
    confirm(&mut m, 6, Role::Worker, Instant::ZERO);
    let mut log = Vec::new();
    let (at, to, _) = next_offer(&mut m, &mut log);
    let other = if to == Addr::from_u32(5) { 6 } else { 5 };
    let stale = m.stats().stale_replies;
    let answer = Body::SyncDigest {
        reply: true,
        digest: 1,
    };
    let out = deliver_frame(&mut m, env_from(other, Role::Worker, 0, answer), at);
    assert!(
        frames(&out).is_empty(),
        "no table sent on a stranger's request"
    );
    assert_eq!(m.stats().stale_replies, stale + 1);
}

#[test]
fn an_offer_is_answered_with_our_digest_and_equal_views_digest_alike() {
    let mut a = machine(Role::Worker);
    let mut b = Membership::new(
        Config {
            adaptive_timeouts: false,
            ..Config::default()
        },
        ident(5, Role::Worker),
        Mode::Member,
        Incarnation(0),
        43,
        Instant::ZERO,
    );
    confirm(&mut a, 5, Role::Worker, Instant::ZERO);
    let ping = Body::Ping {
        seq: 1,
        target: NodeId(5),
        buddy: None,
        gossip: vec![],
        coord: None,
        health: vec![],
    };
    deliver(&mut b, env_from(0, Role::Worker, 0, ping), Instant::ZERO);
    assert_eq!(a.table_digest(), b.table_digest(), "{{0, 5}} both ways");

    let offer = Body::SyncDigest {
        reply: false,
        digest: a.table_digest(),
    };
    let out = deliver_frame(&mut b, env_from(0, Role::Worker, 0, offer), Instant::ZERO);
    let sent = frames(&out);
    assert_eq!(
        sent,
        vec![(
            Addr::from_u32(0),
            Body::SyncDigest {
                reply: true,
                digest: b.table_digest()
            }
        )]
    );

    // A third member b has not heard of: the views, and so the digests, differ.
    learn_by_gossip(&mut a, 7, Role::Worker, Instant::ZERO + secs(1));
    assert_ne!(a.table_digest(), b.table_digest());
}

#[test]
fn without_sync_digests_the_periodic_sync_swaps_whole_tables() {
    let mut m = machine(Role::Worker);
    confirm(&mut m, 5, Role::Worker, Instant::ZERO);
    let mut log = Vec::new();
    while let Some(d) = m.next_deadline().filter(|d| *d <= Instant::ZERO + secs(30)) {
        tick_answering_probes(&mut m, d, &mut log);
    }
    let sent = frames(&log);
    assert!(
        sent.iter()
            .any(|(to, b)| *to == Addr::from_u32(5)
                && matches!(b, Body::PushPull { reply: false, .. })),
        "{sent:?}"
    );
    assert!(!sent
        .iter()
        .any(|(_, b)| matches!(b, Body::SyncDigest { .. })));
    // An offer from a peer that has them is still answered.
    let offer = Body::SyncDigest {
        reply: false,
        digest: 7,
    };
    let out = deliver_frame(
        &mut m,
        env_from(5, Role::Worker, 0, offer),
        Instant::ZERO + secs(30),
    );
    assert!(matches!(
        frames(&out).as_slice(),
        [(_, Body::SyncDigest { reply: true, .. })]
    ));
}
