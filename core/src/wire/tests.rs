use super::*;
use proptest::prelude::*;

fn arb_addr() -> impl Strategy<Value = Addr> {
    proptest::collection::vec(any::<u8>(), 0..=Addr::CAPACITY).prop_map(|v| Addr::new(&v).unwrap())
}

fn arb_role() -> impl Strategy<Value = Role> {
    prop_oneof![
        Just(Role::Gate),
        Just(Role::Manager),
        Just(Role::Worker),
        Just(Role::Unknown)
    ]
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
        any::<u32>(),
        arb_addr(),
        any::<u32>(),
        arb_role(),
        any::<u32>(),
    )
        .prop_map(|(kind, node, addr, inc, role, from)| Claim {
            kind,
            node: NodeId(node),
            addr,
            inc: Incarnation(inc),
            role,
            from: NodeId(from),
        })
}

fn arb_reason() -> impl Strategy<Value = NackReason> {
    prop_oneof![
        Just(NackReason::Timeout),
        Just(NackReason::Unknown),
        Just(NackReason::Busy),
        Just(NackReason::VersionRequired),
        Just(NackReason::VersionMismatch),
        Just(NackReason::ZombieRejected),
        Just(NackReason::Oversize),
        Just(NackReason::RateLimited),
    ]
}

/// Any coordinate, including absurd ones (a receiver must reject those, never panic).
pub(crate) fn arb_coord() -> impl Strategy<Value = crate::coords::WireCoord> {
    (
        prop::array::uniform8(any::<i32>()),
        any::<u32>(),
        any::<i32>(),
        any::<u16>(),
    )
        .prop_map(
            |(vec, height, adjustment, error)| crate::coords::WireCoord {
                vec,
                height,
                adjustment,
                error,
            },
        )
}

pub(crate) fn arb_health() -> impl Strategy<Value = crate::wire::HealthClaim> {
    use crate::backpressure::overload::OverloadState;
    (
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        prop_oneof![
            Just(OverloadState::Healthy),
            Just(OverloadState::Busy),
            Just(OverloadState::Stressed),
            Just(OverloadState::Overloaded)
        ],
    )
        .prop_map(|(node, inc, version, state)| crate::wire::HealthClaim {
            node: NodeId(node),
            inc: Incarnation(inc),
            version,
            state,
        })
}

fn arb_body() -> impl Strategy<Value = Body> {
    let gossip = || proptest::collection::vec(arb_claim(), 0..6);
    let health = || proptest::collection::vec(arb_health(), 0..6);
    prop_oneof![
        (
            any::<u32>(),
            any::<u32>(),
            proptest::option::of(arb_claim()),
            gossip(),
            proptest::option::of(arb_coord()),
            health(),
        )
            .prop_map(|(seq, t, buddy, gossip, coord, health)| Body::Ping {
                seq,
                target: NodeId(t),
                buddy,
                gossip,
                coord,
                health,
            }),
        (
            any::<u32>(),
            gossip(),
            proptest::option::of(arb_coord()),
            health()
        )
            .prop_map(|(seq, gossip, coord, health)| Body::Ack {
                seq,
                gossip,
                coord,
                health,
            }),
        (
            any::<u32>(),
            any::<u32>(),
            arb_addr(),
            any::<u32>(),
            any::<bool>(),
            gossip()
        )
            .prop_map(|(seq, t, a, i, w, gossip)| Body::PingReq {
                seq,
                target: NodeId(t),
                target_addr: a,
                target_inc: Incarnation(i),
                want_nack: w,
                gossip
            }),
        (any::<u32>(), any::<u32>()).prop_map(|(seq, t)| Body::IndirectAck {
            seq,
            target: NodeId(t)
        }),
        (any::<u32>(), any::<u32>(), arb_reason()).prop_map(|(seq, t, reason)| Body::Nack {
            seq,
            target: NodeId(t),
            reason
        }),
        (any::<u16>(), any::<u16>()).prop_map(|(a, b)| Body::Join {
            protocol_major: a,
            protocol_minor: b
        }),
        (any::<bool>(), proptest::option::of(arb_reason()), gossip()).prop_map(
            |(accepted, reason, snapshot)| Body::JoinAck {
                accepted,
                reason,
                snapshot
            }
        ),
        Just(Body::Leave),
        (
            any::<u32>(),
            any::<u64>(),
            any::<u8>(),
            any::<bool>(),
            0u8..8
        )
            .prop_map(|(g, term, lhm, granted, kind)| {
                use crate::leadership::ElectionMsg as M;
                let msg = match kind {
                    0 => M::PreVoteReq { term, lhm },
                    1 => M::PreVoteResp { term, granted },
                    2 => M::LeaderClaim { term, lhm },
                    3 => M::LeaderVote { term, granted },
                    4 => M::LeaderElected { term },
                    5 => M::Heartbeat { term },
                    6 => M::HeartbeatAck { term },
                    _ => M::StepDown { term },
                };
                Body::Election {
                    group: crate::leadership::GroupId(g),
                    msg,
                }
            }),
        gossip().prop_map(|gossip| Body::Notice { gossip }),
    ]
}

/// One of every job message, fields drawn from `seed` (the match below fails to compile
/// when a variant is added without a sample here).
pub(crate) fn job_samples(seed: u64) -> Vec<crate::jobs::JobMsg> {
    use crate::id::{DcId, FenceToken, JobId, TimeoutFence};
    use crate::jobs::JobMsg as J;
    use crate::timeout::extension::{Denial, ExtensionRequest, ExtensionResponse};
    use crate::timeout::gate::{DcStatus, ProgressReport};
    use crate::timeout::job::{Strategy, TimeoutReason};
    let job = JobId(seed);
    let dc = DcId(seed as u16);
    let n = NodeId(seed as u32);
    let a = Addr::from_u32(seed as u32);
    let t = FenceToken(seed.rotate_left(7));
    let f = TimeoutFence(seed >> 3);
    let w = seed as u32 % 10_000;
    let timeout = crate::timeout::job::JobTimeout::start(
        Strategy::GateCoordinated,
        Some(core::time::Duration::from_millis(seed % 1_000_000)),
        crate::time::Instant::ZERO,
    )
    .to_wire(crate::time::Instant::from_micros(seed % (1 << 40)));
    let all = vec![
        J::Submit {
            job,
            workflows: w,
            gate: n,
            gate_addr: a,
            gate_token: t,
            timeout_ms: Some(seed),
            dcs: 3,
        },
        J::SubmitAck {
            job,
            dc,
            accepted: seed % 2 == 0,
            leader: Some((n, a)),
        },
        J::Dispatch {
            job,
            workflow: w,
            token: t,
            manager: n,
            manager_addr: a,
        },
        J::DispatchAck {
            job,
            workflow: w,
            token: t,
            accepted: true,
        },
        J::WorkflowDone {
            job,
            workflow: w,
            token: t,
            items: seed,
        },
        J::WorkflowDoneAck { job, workflow: w },
        J::JobDone {
            job,
            dc,
            token: t,
            items: seed,
        },
        J::JobDoneAck { job, dc },
        J::WorkerHello {
            free_slots: seed as u16,
            slots: (seed >> 16) as u16,
        },
        J::LeaderHello { term: seed },
        J::Running {
            job,
            workflow: w,
            token: t,
        },
        J::Replicate {
            job,
            workflows: w,
            gate: n,
            gate_addr: a,
            gate_token: t,
            token: t,
            timeout,
            items: 0,
        },
        J::ReplicaDone {
            job,
            workflow: w,
            items: seed,
        },
        J::ReplicaForget {
            job,
            status: DcStatus::Completed,
            token: t,
            fence: f,
            items: seed,
        },
        J::GateReplicate {
            job,
            workflows: w,
            dcs_mask: seed,
            token: t,
            owner: n,
            timeout_ms: None,
        },
        J::GateReplicaDone {
            job,
            dc,
            status: DcStatus::TimedOut,
        },
        J::GateReplicaForget { job },
        J::ProgressReport {
            job,
            dc,
            manager: n,
            report: ProgressReport {
                workflows_total: w,
                workflows_completed: w / 2,
                workflows_failed: 0,
                has_recent_progress: true,
                fence: f,
                total_extensions_us: seed,
                max_worker_extension_us: seed / 2,
                workers_with_extensions: 3,
            },
        },
        J::TimeoutReport {
            job,
            dc,
            manager: n,
            reason: TimeoutReason::Stuck,
            elapsed_ms: seed,
            fence: f,
        },
        J::TimeoutReportAck { job, dc },
        J::GlobalTimeout {
            job,
            reason: TimeoutReason::RemainingDcsTimedOut,
            fence: f,
        },
        J::LeaderTransfer {
            job,
            dc,
            new_leader: n,
            fence: f,
        },
        J::FinalStatus {
            job,
            dc,
            manager: n,
            status: DcStatus::TimedOut,
            fence: f,
            token: t,
        },
        J::ExtensionRequest {
            request: ExtensionRequest {
                current_progress_ppm: seed as u32 % 1_000_001,
                completed_items: Some(seed),
                total_items: None,
                active_workflows: 2,
                estimated_completion_ms: 5,
            },
        },
        J::ExtensionResponse {
            response: ExtensionResponse {
                granted: false,
                extension_us: 0,
                deadline_in_us: seed,
                remaining_extensions: 0,
                denial: Some(Denial::MaximumExceeded),
                is_exhaustion_warning: false,
                grace_period_remaining_us: 10_000_000,
                in_grace_period: true,
            },
        },
        J::CancelWorkflow { job, workflow: w },
        J::WorkflowCancelled { job, workflow: w },
        J::WorkflowProgress {
            job,
            workflow: w,
            completed: seed,
            workflows: 3,
        },
        J::WorkflowProgressAck {
            level: crate::backpressure::stats::Level::Batch,
            delay_ms: 500,
            batch_only: true,
        },
        J::ManagerHeartbeat {
            dc,
            level: crate::backpressure::stats::Level::Reject,
            delay_ms: 1000,
            jobs: w,
            leader: seed % 2 == 0,
            load: crate::jobs::DcLoad {
                workers: 8,
                healthy_workers: 7,
                total_cores: 32,
                available_cores: seed as u32,
                queue_depth: w,
            },
        },
        J::GateHello { gate: NodeId(w) },
        J::Withdraw {
            job: JobId(seed),
            dc,
            gate_token: t,
        },
        J::GateWithdrawing {
            job: JobId(seed),
            dc,
            gate_token: t,
            owner: n,
        },
        J::GateWithdrawDone {
            job: JobId(seed),
            dc,
        },
        J::GateReplicaQuery { job: JobId(seed) },
        J::GateReplicaUnknown { job: JobId(seed) },
        J::ReplicaOffer {
            job,
            workflows: w,
            gate: n,
            gate_addr: a,
            gate_token: t,
            token: t,
            timeout,
            items: seed,
        },
        J::RunningQuery { job: JobId(seed) },
        J::GateOrphan {
            job,
            workflows: w,
            dcs_mask: seed,
            done_mask: seed.rotate_left(7),
            timed_out_mask: seed >> 3,
            failed_mask: seed << 5,
            token: t,
            owner: n,
            timeout_ms: (seed % 2 == 0).then_some(seed),
            lost: seed % 3 == 0,
            heard_ms_ago: seed,
        },
        J::DoneEarlier {
            job,
            workflow: w,
            items: seed,
        },
        J::RateLimited {
            operation: crate::backpressure::rate_limit::Operation::ALL[(seed % 9) as usize],
            retry_after_ms: (seed % 3 != 0).then_some(seed),
            tokens_remaining: seed as u32,
        },
        J::JobOver { job, dc },
        J::JobLive { job, dc },
    ];
    // Exhaustiveness guard: a new variant must get a sample above.
    for m in &all {
        match m {
            J::Submit { .. }
            | J::SubmitAck { .. }
            | J::Dispatch { .. }
            | J::DispatchAck { .. }
            | J::WorkflowDone { .. }
            | J::WorkflowDoneAck { .. }
            | J::JobDone { .. }
            | J::JobDoneAck { .. }
            | J::WorkerHello { .. }
            | J::LeaderHello { .. }
            | J::Running { .. }
            | J::Replicate { .. }
            | J::ReplicaDone { .. }
            | J::ReplicaForget { .. }
            | J::GateReplicate { .. }
            | J::GateReplicaDone { .. }
            | J::GateReplicaForget { .. }
            | J::ProgressReport { .. }
            | J::TimeoutReport { .. }
            | J::TimeoutReportAck { .. }
            | J::GlobalTimeout { .. }
            | J::LeaderTransfer { .. }
            | J::FinalStatus { .. }
            | J::ExtensionRequest { .. }
            | J::ExtensionResponse { .. }
            | J::CancelWorkflow { .. }
            | J::WorkflowCancelled { .. }
            | J::WorkflowProgress { .. }
            | J::WorkflowProgressAck { .. }
            | J::ManagerHeartbeat { .. }
            | J::GateHello { .. }
            | J::Withdraw { .. }
            | J::GateWithdrawing { .. }
            | J::GateWithdrawDone { .. }
            | J::GateReplicaQuery { .. }
            | J::GateReplicaUnknown { .. }
            | J::ReplicaOffer { .. }
            | J::RunningQuery { .. }
            | J::GateOrphan { .. }
            | J::DoneEarlier { .. }
            | J::RateLimited { .. }
            | J::JobOver { .. }
            | J::JobLive { .. } => {}
        }
    }
    all
}

proptest! {
    #[test]
    fn every_job_message_round_trips_as_a_frame(seed in any::<u64>()) {
        for msg in job_samples(seed) {
            let env = Envelope {
                version: WIRE_VERSION,
                cluster: ClusterId(1),
                sender: NodeId(1),
                sender_addr: Addr::from_u32(1),
                sender_inc: Incarnation(0),
                sender_role: Role::Manager,
                flags: 0,
                body: Body::Job(msg),
            };
            let bytes = encode(&env, Channel::Frame).unwrap();
            prop_assert_eq!(decode(&bytes, Channel::Frame), Ok(env), "{:?}", msg);
        }
    }
}

fn arb_envelope() -> impl Strategy<Value = Envelope> {
    (
        any::<u16>(),
        any::<u32>(),
        arb_addr(),
        any::<u32>(),
        arb_role(),
        any::<u8>(),
        arb_body(),
    )
        .prop_map(|(c, s, a, i, r, f, body)| Envelope {
            version: WIRE_VERSION,
            cluster: ClusterId(c),
            sender: NodeId(s),
            sender_addr: a,
            sender_inc: Incarnation(i),
            sender_role: r,
            flags: f,
            body,
        })
}

proptest! {
    #[test]
    fn every_datagram_message_round_trips(env in arb_envelope()) {
        let bytes = encode(&env, Channel::Datagram).unwrap();
        prop_assert_eq!(bytes.len(), encoded_len(&env));
        prop_assert_eq!(decode(&bytes, Channel::Datagram).unwrap(), env);
    }

    #[test]
    fn push_pull_round_trips_on_frames_only(entries in proptest::collection::vec(arb_claim(), 0..20), reply in any::<bool>()) {
        let env = Envelope { version: WIRE_VERSION, cluster: ClusterId(3), sender: NodeId(1),
            sender_addr: Addr::from_u32(1), sender_inc: Incarnation(2), sender_role: Role::Worker,
            flags: 0, body: Body::PushPull { reply, entries } };
        let bytes = encode(&env, Channel::Frame).unwrap();
        prop_assert_eq!(decode(&bytes, Channel::Frame).unwrap(), env);
        prop_assert_eq!(decode(&bytes, Channel::Datagram), Err(DecodeError::WrongChannel));
    }

    #[test]
    fn sync_digest_round_trips_on_frames_only(digest in any::<u64>(), reply in any::<bool>()) {
        let env = Envelope { version: WIRE_VERSION, cluster: ClusterId(3), sender: NodeId(1),
            sender_addr: Addr::from_u32(1), sender_inc: Incarnation(2), sender_role: Role::Worker,
            flags: 0, body: Body::SyncDigest { reply, digest } };
        let bytes = encode(&env, Channel::Frame).unwrap();
        prop_assert_eq!(decode(&bytes, Channel::Frame).unwrap(), env);
        prop_assert_eq!(decode(&bytes, Channel::Datagram), Err(DecodeError::WrongChannel));
    }

    /// Our output flavor writes exactly postcard's own `Vec` encoding (the bytes every
    /// trace hash covers), for datagrams and for frames.
    #[test]
    fn our_encoder_writes_postcards_bytes(env in arb_envelope(), entries in proptest::collection::vec(arb_claim(), 0..50)) {
        prop_assert_eq!(encode_datagram(&env).unwrap(), postcard::to_allocvec(&env).unwrap());
        let frame = Envelope { body: Body::PushPull { reply: false, entries }, ..env };
        prop_assert_eq!(encode(&frame, Channel::Frame).unwrap(), postcard::to_allocvec(&frame).unwrap());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let _ = decode(&bytes, Channel::Datagram);
        let _ = decode(&bytes, Channel::Frame);
    }

    #[test]
    fn truncated_or_corrupted_messages_give_typed_errors(env in arb_envelope(), cut in any::<prop::sample::Index>(), flip in any::<prop::sample::Index>(), bit in 0u8..8) {
        let bytes = encode(&env, Channel::Datagram).unwrap();
        let n = cut.index(bytes.len());
        // Every strict prefix is rejected (postcard has no optional tail).
        prop_assert!(decode(&bytes[..n], Channel::Datagram).is_err());
        let mut corrupt = bytes.clone();
        let i = flip.index(corrupt.len());
        corrupt[i] ^= 1 << bit;
        // Either a typed error or a (different) well-formed message: never a panic.
        if let Ok(other) = decode(&corrupt, Channel::Datagram) { prop_assert_ne!(other, env); }
    }
}

#[test]
fn version_mismatch_and_oversize_are_typed() {
    assert_eq!(decode(&[], Channel::Datagram), Err(DecodeError::Empty));
    assert_eq!(
        decode(&[9, 0, 0], Channel::Datagram),
        Err(DecodeError::UnsupportedVersion(9))
    );
    let big = vec![WIRE_VERSION; MAX_DATAGRAM + 1];
    assert_eq!(
        decode(&big, Channel::Datagram),
        Err(DecodeError::TooLarge {
            len: MAX_DATAGRAM + 1,
            max: MAX_DATAGRAM
        })
    );
}

/// `body` fits a datagram but lists `max + 1` entries: decoding rejects it, typed.
fn assert_too_many_entries(body: Body, max: usize) {
    let env = Envelope {
        version: WIRE_VERSION,
        cluster: ClusterId(0),
        sender: NodeId(0),
        sender_addr: Addr::from_u32(0),
        sender_inc: Incarnation(0),
        sender_role: Role::Gate,
        flags: 0,
        body,
    };
    let bytes = postcard::to_allocvec(&env).unwrap();
    assert!(bytes.len() <= MAX_DATAGRAM);
    assert_eq!(
        decode(&bytes, Channel::Datagram),
        Err(DecodeError::TooManyEntries {
            count: max + 1,
            max
        })
    );
}

#[test]
fn more_gossip_than_allowed_is_rejected_not_truncated() {
    let claim = Claim {
        kind: ClaimKind::Alive,
        node: NodeId(1),
        addr: Addr::from_u32(1),
        inc: Incarnation(1),
        role: Role::Worker,
        from: NodeId(0),
    };
    // 101 small claims still fit 1400 bytes: the entry bound, not the size, rejects it.
    let gossip = vec![claim; MAX_GOSSIP_PER_DATAGRAM + 1];
    assert_too_many_entries(Body::Notice { gossip }, MAX_GOSSIP_PER_DATAGRAM);
}

#[test]
fn a_loaded_ping_fits_the_spec_budget() {
    // membership.md §10: a PING with 5 gossip entries and 5 health records stays far
    // below 1400 B.
    let claim = Claim {
        kind: ClaimKind::Suspect,
        node: NodeId(999_999),
        addr: Addr::new(&[0xff; 18]).unwrap(),
        inc: Incarnation(1 << 30),
        role: Role::Manager,
        from: NodeId(999_998),
    };
    let env = Envelope {
        version: WIRE_VERSION,
        cluster: ClusterId(4),
        sender: NodeId(999_997),
        sender_addr: Addr::new(&[0xff; 18]).unwrap(),
        sender_inc: Incarnation(1 << 30),
        sender_role: Role::Gate,
        flags: 0,
        body: Body::Ping {
            seq: u32::MAX,
            target: NodeId(999_999),
            buddy: Some(claim),
            gossip: vec![claim; 5],
            coord: None,
            health: vec![worst_health(); 5],
        },
    };
    // ~70 B + 5 gossip (65-100 B) + 5 health (150 B), every field at its widest here.
    let len = encode(&env, Channel::Datagram).unwrap().len();
    assert!(len <= 70 + 100 + 150, "loaded ping is {len} bytes");
}

fn worst_health() -> HealthClaim {
    HealthClaim {
        node: NodeId(u32::MAX),
        inc: Incarnation(u32::MAX),
        version: u32::MAX,
        state: crate::backpressure::overload::OverloadState::Overloaded,
    }
}

#[test]
fn a_health_record_fits_the_spec_entry_and_a_healthy_ping_pays_one_byte() {
    // membership.md §10: a health entry is ~30 B; ours is at most 16.
    let one = postcard::to_allocvec(&worst_health()).unwrap().len();
    assert!(one <= 16, "{one} bytes");
    let ping = |health: Vec<HealthClaim>| Body::Ping {
        seq: 1,
        target: NodeId(2),
        buddy: None,
        gossip: vec![],
        coord: None,
        health,
    };
    let without = postcard::to_allocvec(&ping(vec![])).unwrap().len();
    let with = postcard::to_allocvec(&ping(vec![worst_health()]))
        .unwrap()
        .len();
    assert_eq!(with, without + one);
}

#[test]
fn more_health_records_than_allowed_are_rejected() {
    let body = Body::Ack {
        seq: 1,
        gossip: vec![],
        coord: None,
        health: vec![worst_health(); MAX_HEALTH_PER_DATAGRAM + 1],
    };
    assert_too_many_entries(body, MAX_HEALTH_PER_DATAGRAM);
}
