//! AD-24 at the node, with the spec's numbers: a leader manager allows a worker 300
//! progress updates in 10 s and answers the next with `RateLimited`; a node told to
//! wait sends no more of that operation to that receiver until the wait is over, and
//! no wait lasts longer than a minute; a gate allows a client 50 submissions in 10 s.

use super::*;
use crate::backpressure::rate_limit::{ClientId, Operation};
use crate::jobs::JobMsg;
use core::time::Duration;

/// A manager that leads its DC alone (its only voter), and the instant it does.
fn leader_manager() -> (Node, Instant) {
    let mut cfg = test_worker_config(0, vec![Addr::from_u32(1)]);
    cfg.role = Role::Manager;
    cfg.voters = vec![(NodeId(0), Addr::from_u32(0))];
    let (mut n, _) = Node::new(cfg, Instant::ZERO);
    let mut now = Instant::ZERO;
    for _ in 0..1_000 {
        now = n.next_deadline().unwrap_or(now).max(now);
        let out = n.step(Input::Tick, now);
        if out.iter().any(|o| {
            matches!(
                o,
                Output::Event(Event::Election(ElectionEvent::LeaderElected { .. }))
            )
        }) {
            return (n, now);
        }
    }
    panic!("a sole voter elects itself");
}

/// `msg` as a frame from worker `from` (node and address `from`).
fn job_frame(from: u32, msg: JobMsg) -> Vec<u8> {
    wire::encode(
        &Envelope {
            version: wire::WIRE_VERSION,
            cluster: ClusterId::dc(DcId(0)),
            sender: NodeId(from),
            sender_addr: Addr::from_u32(from),
            sender_inc: Incarnation(0),
            sender_role: Role::Worker,
            flags: 0,
            body: Body::Job(msg),
        },
        Channel::Frame,
    )
    .unwrap()
}

fn progress(from: u32) -> Vec<u8> {
    job_frame(
        from,
        JobMsg::WorkflowProgress {
            job: JobId(1),
            workflow: 0,
            completed: 1,
            workflows: 1,
        },
    )
}

fn deliver(n: &mut Node, from: u32, bytes: &[u8], now: Instant) -> Outputs {
    n.step(
        Input::Frame {
            from: Addr::from_u32(from),
            bytes,
        },
        now,
    )
}

/// The job messages in `out`, by receiver.
fn sent(out: &Outputs) -> Vec<(Addr, JobMsg)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Frame { to, bytes } => match wire::decode(bytes, Channel::Frame) {
                Ok(Envelope {
                    body: Body::Job(m), ..
                }) => Some((*to, m)),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

fn acked(out: &Outputs, to: u32) -> bool {
    sent(out)
        .iter()
        .any(|(a, m)| *a == Addr::from_u32(to) && matches!(m, JobMsg::WorkflowProgressAck { .. }))
}

fn limited(out: &Outputs) -> Vec<JobEvent> {
    out.iter()
        .filter_map(|o| match o {
            Output::Event(Event::Job(e @ JobEvent::RateLimited { .. })) => Some(*e),
            _ => None,
        })
        .collect()
}

#[test]
fn a_leader_allows_a_worker_300_progress_updates_in_10_s_and_answers_the_next() {
    let (mut n, start) = leader_manager();
    let ms = |k: u64| start + Duration::from_millis(k);
    for k in 0..300 {
        let out = deliver(&mut n, 9, &progress(9), ms(k * 30));
        assert!(acked(&out, 9), "update {k} is handled");
        assert!(limited(&out).is_empty());
    }
    // The 301st, 9 s after the first: refused, answered, reported, not handled.
    let out = deliver(&mut n, 9, &progress(9), ms(9_000));
    assert!(!acked(&out, 9));
    let answers = sent(&out);
    assert_eq!(answers.len(), 1, "{answers:?}");
    let (
        to,
        JobMsg::RateLimited {
            operation,
            retry_after_ms,
            tokens_remaining,
        },
    ) = answers[0]
    else {
        panic!("{answers:?}");
    };
    assert_eq!(to, Addr::from_u32(9));
    assert_eq!(operation, Operation::ProgressUpdate);
    assert_eq!(tokens_remaining, 0);
    // 1 s to the window's end plus p = 1 - 299 / 300 of a window (33.3 ms), rounded
    // up to the millisecond.
    assert_eq!(retry_after_ms, Some(1_034));
    assert_eq!(
        limited(&out),
        [JobEvent::RateLimited {
            client: ClientId::Node(NodeId(9)),
            operation: Operation::ProgressUpdate,
            job: None,
            retry_after_ms: Some(1_034),
        }]
    );
    // AD-30's silence watch counts no worker's silence before the wait it asked for
    // is over.
    let JobPlane::Manager(m) = &n.jobs else {
        unreachable!()
    };
    assert_eq!(m.silence_excused_until(), ms(10_034));
    // Another worker has its own allowance.
    assert!(acked(&deliver(&mut n, 8, &progress(8), ms(9_000)), 8));
    // Once the wait is over the worker is heard again, not a millisecond before.
    assert!(!acked(&deliver(&mut n, 9, &progress(9), ms(10_033)), 9));
    assert!(acked(&deliver(&mut n, 9, &progress(9), ms(10_034)), 9));
    let counts = n.rate_limit_counts();
    assert_eq!(counts.limiter.rejected, 2);
    assert_eq!(counts.clients, 2);
}

/// A gate's hello (registers it for the leader's heartbeats), as a frame from `gate`.
fn gate_hello(gate: u32) -> Vec<u8> {
    job_frame(gate, JobMsg::GateHello { gate: NodeId(gate) })
}

fn wait_frame(from: u32, operation: Operation, retry_after_ms: Option<u64>) -> Vec<u8> {
    job_frame(
        from,
        JobMsg::RateLimited {
            operation,
            retry_after_ms,
            tokens_remaining: 0,
        },
    )
}

/// Step `n` through its deadlines from `from` to `to`: when each heartbeat left, and
/// for which gate.
fn heartbeats(n: &mut Node, from: Instant, to: Instant) -> Vec<(Instant, Addr)> {
    let mut beats = Vec::new();
    let mut now = from;
    while let Some(d) = n.next_deadline().filter(|d| *d < to) {
        now = d.max(now);
        for (a, m) in sent(&n.step(Input::Tick, now)) {
            if matches!(m, JobMsg::ManagerHeartbeat { .. }) {
                beats.push((now, a));
            }
        }
    }
    beats
}

/// A leader with gates 5 and 6 registered, and the instant after.
fn leader_with_gates() -> (Node, Instant) {
    let (mut n, start) = leader_manager();
    deliver(&mut n, 5, &gate_hello(5), start);
    deliver(&mut n, 6, &gate_hello(6), start);
    (n, start)
}

#[test]
fn told_to_wait_a_node_sends_no_more_of_that_operation_until_the_wait_is_over() {
    let (mut n, start) = leader_with_gates();
    let s = |k: u64| start + Duration::from_secs(k);
    // Heartbeats go to both gates every 5 s.
    let before = heartbeats(&mut n, start, s(20));
    let to = |beats: &[(Instant, Addr)], g: u32| {
        beats
            .iter()
            .filter(|(_, a)| *a == Addr::from_u32(g))
            .map(|(t, _)| *t)
            .collect::<Vec<_>>()
    };
    assert!(
        to(&before, 5).len() >= 3 && to(&before, 6).len() >= 3,
        "{before:?}"
    );
    // Gate 5 asks for no heartbeats for 12 s: none goes to it until then, gate 6
    // hears them all.
    assert!(deliver(
        &mut n,
        5,
        &wait_frame(5, Operation::Heartbeat, Some(12_000)),
        s(20)
    )
    .is_empty());
    assert_eq!(n.rate_limit_counts().holds, 1);
    let during = heartbeats(&mut n, s(20), s(32));
    assert!(to(&during, 5).is_empty(), "{during:?}");
    assert!(to(&during, 6).len() >= 2, "{during:?}");
    assert!(n.rate_limit_counts().held >= 2);
    let after = heartbeats(&mut n, s(32), s(45));
    assert!(to(&after, 5).len() >= 2, "{after:?}");
    assert_eq!(n.rate_limit_counts().holds, 0);
    // A wait for another operation holds no heartbeat back.
    deliver(
        &mut n,
        6,
        &wait_frame(6, Operation::StatsUpdate, Some(30_000)),
        s(45),
    );
    assert!(to(&heartbeats(&mut n, s(45), s(60)), 6).len() >= 2);
}

#[test]
fn no_answer_holds_a_node_back_longer_than_a_minute() {
    let (mut n, start) = leader_with_gates();
    let s = |k: u64| start + Duration::from_secs(k);
    // Ten hours, and "never" (a request over the limit itself): a minute each.
    for (round, retry_after_ms) in [Some(36_000_000), None].into_iter().enumerate() {
        let t0 = 100 * round as u64;
        deliver(
            &mut n,
            5,
            &wait_frame(5, Operation::Heartbeat, retry_after_ms),
            s(t0),
        );
        let beats = heartbeats(&mut n, s(t0), s(t0 + 80));
        let to_5: Vec<_> = beats
            .iter()
            .filter(|(_, a)| *a == Addr::from_u32(5))
            .map(|(t, _)| *t)
            .collect();
        assert!(to_5.iter().all(|t| *t >= s(t0 + 60)), "{to_5:?}");
        assert!(!to_5.is_empty());
        // Gate 5's registration lapses after 90 s without a hello: renew it.
        deliver(&mut n, 5, &gate_hello(5), s(t0 + 80));
    }
}

#[test]
fn the_answer_itself_is_never_limited_nor_held() {
    let (mut n, start) = leader_manager();
    let ms = |k: u64| start + Duration::from_millis(k);
    // A node that keeps being refused keeps being told, and CONTROL is never held.
    for k in 0..300 {
        deliver(&mut n, 9, &progress(9), ms(k));
    }
    for k in 0..500 {
        let out = deliver(&mut n, 9, &progress(9), ms(300 + k));
        assert!(sent(&out)
            .iter()
            .any(|(_, m)| matches!(m, JobMsg::RateLimited { .. })));
    }
    assert_eq!(
        crate::backpressure::class::job_class(&JobMsg::RateLimited {
            operation: Operation::Other,
            retry_after_ms: None,
            tokens_remaining: 0,
        }),
        MessageClass::Control
    );
}

#[test]
fn a_gate_allows_a_client_50_submissions_in_10_s() {
    let mut cfg = test_worker_config(0, vec![Addr::from_u32(1)]);
    cfg.role = Role::Gate;
    let (mut g, _) = Node::new(cfg, Instant::ZERO);
    let submit = |g: &mut Node, job: u64, client: u64, at_ms: u64| {
        g.step(
            Input::SubmitJob {
                job: JobId(job),
                dcs: crate::jobs::gate::DcRequest::Pinned(vec![DcId(0)]),
                workflows: 1,
                timeout: None,
                client,
            },
            Instant::from_millis(at_ms),
        )
    };
    for job in 0..50 {
        assert!(limited(&submit(&mut g, job, 7, job * 100)).is_empty());
    }
    let out = submit(&mut g, 50, 7, 5_000);
    assert_eq!(
        limited(&out),
        [JobEvent::RateLimited {
            client: ClientId::Submitter(7),
            operation: Operation::JobSubmit,
            job: Some(JobId(50)),
            // 5 s to the window's end plus p = 1 - 49 / 50 of a window (200 ms).
            retry_after_ms: Some(5_200),
        }]
    );
    assert!(
        !g.tracks_job(JobId(50)),
        "a refused job never enters the system"
    );
    // Another client is not held back.
    assert!(limited(&submit(&mut g, 51, 8, 5_000)).is_empty());
    assert!(g.tracks_job(JobId(51)));
}
