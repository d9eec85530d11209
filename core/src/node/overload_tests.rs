//! The node's AD-18 grade from the shell's resource samples (backpressure.md §2's third
//! signal): graded at once on the way up, after two better samples on the way down, and
//! told to the memberships like a latency grade; an Overloaded gate sheds a client's
//! submission (AD-22). And AD-32's admission: what a manager refuses excuses the job
//! silence it causes.

use super::*;

/// Node 0 of DC 0 in `role`, seeded with node 1.
fn node_as(role: Role) -> Node {
    let mut cfg = test_worker_config(0, vec![Addr::from_u32(1)]);
    cfg.role = role;
    Node::new(cfg, Instant::ZERO).0
}

fn node() -> Node {
    node_as(Role::Worker)
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

/// A worker's progress report (a job message), as a frame from node 9.
fn progress_frame() -> Vec<u8> {
    wire::encode(
        &Envelope {
            version: wire::WIRE_VERSION,
            cluster: ClusterId(1),
            sender: NodeId(9),
            sender_addr: Addr::from_u32(9),
            sender_inc: Incarnation(0),
            sender_role: Role::Worker,
            flags: 0,
            body: Body::Job(crate::jobs::JobMsg::WorkflowProgress {
                job: JobId(1),
                workflow: 0,
                completed: 1,
                workflows: 1,
            }),
        },
        Channel::Frame,
    )
    .unwrap()
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

#[test]
fn a_manager_that_refuses_a_message_excuses_the_silence_it_causes() {
    let mut n = node_as(Role::Manager);
    let progress = progress_frame();
    let excused = |n: &Node| match &n.jobs {
        JobPlane::Manager(m) => m.silence_excused_until(),
        _ => unreachable!("a manager"),
    };
    // Within the manager's cap for the message's priority: admitted, nothing excused.
    let p = Node::priority_of(&progress, true);
    assert_ne!(p, Priority::Critical, "Critical is never refused");
    let t = Instant::ZERO + crate::time::secs(5);
    for _ in 0..InFlightLimits::MANAGER.per_priority[p.index()] {
        assert!(n.admit(&progress, true, t));
    }
    assert_eq!(excused(&n), Instant::ZERO);
    // The next is refused: the worker's silence from now on is ours, not its.
    let later = t + crate::time::secs(1);
    assert!(!n.admit(&progress, true, later));
    assert_eq!(excused(&n), later);
}

#[test]
fn an_overloaded_gate_sheds_client_submissions_before_dispatch() {
    let mut n = node_as(Role::Gate);
    let submit = |n: &mut Node, job: u64| {
        n.step(
            Input::SubmitJob {
                job: JobId(job),
                dcs: crate::jobs::gate::DcRequest::Pinned(vec![DcId(0)]),
                workflows: 1,
                timeout: None,
                client: 0,
            },
            Instant::ZERO,
        )
    };
    let shed = |out: &Outputs| {
        out.iter()
            .filter(|o| {
                matches!(
                    o,
                    Output::Event(Event::Job(crate::jobs::JobEvent::SubmissionShed { .. }))
                )
            })
            .count()
    };
    // Stressed sheds DATA, not DISPATCH: the submission goes through.
    resources(&mut n, 90.0, 10.0);
    assert_eq!(n.overload_state(), OverloadState::Stressed);
    assert_eq!(shed(&submit(&mut n, 1)), 0);
    let one_job = n.job_table_len();
    assert!(one_job > 0);
    // Overloaded: refused before the gate's job plane sees it.
    resources(&mut n, 99.0, 10.0);
    assert_eq!(shed(&submit(&mut n, 2)), 1);
    assert_eq!(n.job_table_len(), one_job);
    assert_eq!(n.shed_counts()[Priority::High.index()], 1);
    // Healthy again (two good samples): taken.
    resources(&mut n, 10.0, 10.0);
    resources(&mut n, 10.0, 10.0);
    assert_eq!(shed(&submit(&mut n, 3)), 0);
    assert!(n.job_table_len() > one_job);
}

#[test]
fn a_manager_also_sheds_by_its_pending_requests() {
    let mut n = node_as(Role::Manager);
    let progress = progress_frame();
    let p = Node::priority_of(&progress, true);
    let route = |n: &mut Node| {
        n.step(
            Input::Frame {
                from: Addr::from_u32(9),
                bytes: &progress,
            },
            Instant::ZERO,
        );
        n.shed_counts()[p.index()]
    };
    // Healthy by every signal: handled.
    assert_eq!(route(&mut n), 0);
    // 900 of 1000 pending (backpressure.md §3: >= 0.9 is Overloaded), the hybrid grade
    // still healthy: shed all but Critical.
    for _ in 0..900 {
        assert!(n.admit(&progress, true, Instant::ZERO));
    }
    assert_eq!(n.overload_state(), OverloadState::Healthy);
    assert_eq!(route(&mut n), 1);
    // Handled and released: below half pending, healthy again.
    for _ in 0..900 {
        n.release(&progress, true);
    }
    assert_eq!(route(&mut n), 1);
}
