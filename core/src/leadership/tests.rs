//! Election tests with leadership.md's numbers: unit rules driven by hand, and small
//! clusters of machines wired through a deterministic in-test network.

use super::*;
use crate::id::NodeId;
use crate::rng::DetRng;
use crate::time::{millis, secs, Instant};
use core::time::Duration;
use proptest::prelude::*;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

const G: GroupId = GroupId(7);

fn node(id: u32, voters: &[u32], seed: u64) -> Election {
    Election::new(
        ElectionConfig::default(),
        G,
        NodeId(id),
        voters.iter().map(|v| NodeId(*v)),
        (0, None),
        seed,
        Instant::ZERO,
    )
}

fn msg(from: u32, m: ElectionMsg) -> ElectionInput {
    ElectionInput::Message {
        from: NodeId(from),
        group: G,
        msg: m,
    }
}

fn sent(out: &ElectionOutputs) -> Vec<ElectionMsg> {
    out.iter()
        .filter_map(|o| match o {
            ElectionOutput::Broadcast(m) | ElectionOutput::Send { msg: m, .. } => Some(*m),
            _ => None,
        })
        .collect()
}

/// A cluster of election machines over an in-test network: 1-3 ms one-way delays,
/// optional loss, cuts, crashes. Deterministic for a seed.
struct Cluster {
    nodes: BTreeMap<u32, Election>,
    up: BTreeMap<u32, bool>,
    queue: BinaryHeap<InFlight>,
    seq: u64,
    now: Instant,
    rng: DetRng,
    loss: f64,
    /// Pairs that cannot talk (both directions).
    cut: Vec<(u32, u32)>,
    events: Vec<(Instant, u32, ElectionEvent)>,
    msgs: BTreeMap<u64, ElectionMsg>,
}

/// A message in flight: `(arrival, sequence, to, from)`; the message itself is kept in
/// `msgs` under its sequence number.
type InFlight = Reverse<(Instant, u64, u32, u32)>;

impl Cluster {
    fn new(ids: &[u32], seed: u64) -> Cluster {
        let mut c = Cluster {
            nodes: ids
                .iter()
                .map(|i| (*i, node(*i, ids, seed ^ (*i as u64) << 8)))
                .collect(),
            up: ids.iter().map(|i| (*i, true)).collect(),
            queue: BinaryHeap::new(),
            seq: 0,
            now: Instant::ZERO,
            rng: DetRng::new(seed),
            loss: 0.0,
            cut: Vec::new(),
            events: Vec::new(),
            msgs: BTreeMap::new(),
        };
        // SWIM sees everyone at once.
        for i in ids {
            for j in ids {
                c.input(
                    *i,
                    ElectionInput::PeerVisible {
                        node: NodeId(*j),
                        visible: true,
                    },
                );
            }
        }
        c
    }

    fn blocked(&self, a: u32, b: u32) -> bool {
        self.cut
            .iter()
            .any(|&(x, y)| (x == a && y == b) || (x == b && y == a))
    }

    fn input(&mut self, i: u32, input: ElectionInput) {
        if !self.up[&i] {
            return;
        }
        let out = self.nodes.get_mut(&i).unwrap().step(input, self.now);
        let ids: Vec<u32> = self.nodes.keys().copied().collect();
        for o in out {
            let targets: Vec<(u32, ElectionMsg)> = match o {
                ElectionOutput::Broadcast(m) => {
                    ids.iter().filter(|j| **j != i).map(|j| (*j, m)).collect()
                }
                ElectionOutput::Send { to, msg } => vec![(to.0, msg)],
                ElectionOutput::Event(e) => {
                    self.events.push((self.now, i, e));
                    continue;
                }
            };
            for (to, m) in targets {
                if self.blocked(i, to) || self.rng.chance(self.loss) {
                    continue;
                }
                let delay = millis(1) + Duration::from_micros(self.rng.range_u64(0, 2000));
                self.seq += 1;
                self.msgs.insert(self.seq, m);
                self.queue
                    .push(Reverse((self.now + delay, self.seq, to, i)));
            }
        }
    }

    fn run_until(&mut self, until: Instant) {
        loop {
            let next_msg = self.queue.peek().map(|Reverse((t, ..))| *t);
            let next_tick = self
                .nodes
                .iter()
                .filter(|(i, _)| self.up[i])
                .filter_map(|(i, n)| n.next_deadline().map(|d| (d, *i)))
                .min();
            let t = match (next_msg, next_tick) {
                (Some(m), Some((d, _))) => m.min(d),
                (Some(m), None) => m,
                (None, Some((d, _))) => d,
                (None, None) => break,
            };
            if t > until {
                break;
            }
            self.now = t.max(self.now);
            if next_msg == Some(t) {
                let Reverse((_, key, to, from)) = self.queue.pop().unwrap();
                let m = self.msgs.remove(&key).unwrap();
                if !self.blocked(from, to) {
                    self.input(to, msg(from, m));
                }
            } else if let Some((_, i)) = next_tick {
                self.input(i, ElectionInput::Tick);
            }
        }
        self.now = until;
    }

    fn leaders(&self) -> Vec<u32> {
        self.nodes
            .iter()
            .filter(|(i, n)| self.up[i] && n.role() == ElectionRole::Leader)
            .map(|(i, _)| *i)
            .collect()
    }

    fn elected(&self) -> Vec<(Instant, u32, u64)> {
        self.events
            .iter()
            .filter_map(|(t, _, e)| match e {
                ElectionEvent::LeaderElected { term, node, .. } => Some((*t, node.0, *term)),
                _ => None,
            })
            .collect()
    }

    fn crash(&mut self, i: u32) {
        self.up.insert(i, false);
    }
}

/// Election safety (leadership.md §4.1): at most one `LeaderElected` per term.
fn assert_one_leader_per_term(c: &Cluster) {
    let mut by_term: BTreeMap<u64, u32> = BTreeMap::new();
    for (_, node, term) in c.elected() {
        if let Some(prev) = by_term.insert(term, node) {
            assert_eq!(prev, node, "two leaders in term {term}");
        }
    }
}

#[test]
fn quorum_is_a_majority_of_the_configured_voters() {
    assert_eq!(node(1, &[1], 1).quorum(), 1);
    assert_eq!(node(1, &[1, 2, 3], 1).quorum(), 2);
    assert_eq!(node(1, &[1, 2, 3, 4], 1).quorum(), 3);
    assert_eq!(node(1, &[1, 2, 3, 4, 5], 1).quorum(), 3);
    // Self is always a voter, even if the configuration forgot it.
    assert_eq!(node(9, &[1, 2], 1).quorum(), 2);
}

#[test]
fn three_managers_elect_one_leader_everyone_follows() {
    for seed in 1..20 {
        let mut c = Cluster::new(&[1, 2, 3], seed);
        c.run_until(Instant::ZERO + secs(30));
        let leaders = c.leaders();
        assert_eq!(leaders.len(), 1, "seed {seed}");
        let l = leaders[0];
        for (i, n) in &c.nodes {
            assert_eq!(n.leader(), Some(NodeId(l)), "seed {seed}: node {i}");
            assert_eq!(n.term(), c.nodes[&l].term());
        }
        // Everyone visible at once: first election after U[0,3) s, a 2 s pre-vote,
        // then the claim wins within a few ms.
        let (t, _, _) = c.elected()[0];
        assert!(
            t <= Instant::ZERO + secs(5) + millis(50),
            "seed {seed}: {t:?}"
        );
        assert_one_leader_per_term(&c);
    }
}

#[test]
fn the_first_election_waits_for_all_voters_or_10_s() {
    // Node 1 alone sees nobody else: it waits the full 10 s before trying.
    let mut e = node(1, &[1, 2, 3], 5);
    assert_eq!(e.next_deadline(), Some(Instant::ZERO + secs(10)));
    let out = e.step(ElectionInput::Tick, Instant::ZERO + secs(10));
    assert!(sent(&out).is_empty());
    let d = e.next_deadline().unwrap();
    assert!(d >= Instant::ZERO + secs(10) && d < Instant::ZERO + secs(13));
    // Once the others are visible it schedules within U[0, 3) s.
    let mut e = node(1, &[1, 2, 3], 5);
    for v in [2, 3] {
        e.step(
            ElectionInput::PeerVisible {
                node: NodeId(v),
                visible: true,
            },
            Instant::ZERO + secs(1),
        );
    }
    let d = e.next_deadline().unwrap();
    assert!(
        d >= Instant::ZERO + secs(1) && d < Instant::ZERO + secs(4),
        "{d:?}"
    );
}

#[test]
fn pre_vote_changes_no_term_and_grants_by_the_rules() {
    let t = Instant::ZERO + secs(20);
    let mut e = node(1, &[1, 2, 3], 1);
    // A pre-vote request for term 1 (our term 0 + 1) with a healthy candidate: granted,
    // and nothing changes here.
    let out = e.step(msg(2, ElectionMsg::PreVoteReq { term: 1, lhm: 0 }), t);
    assert_eq!(
        sent(&out),
        vec![ElectionMsg::PreVoteResp {
            term: 1,
            granted: true
        }]
    );
    assert_eq!(e.term(), 0);
    // A candidate with LHM 5 (> 4) is refused.
    let out = e.step(msg(2, ElectionMsg::PreVoteReq { term: 1, lhm: 5 }), t);
    assert_eq!(
        sent(&out),
        vec![ElectionMsg::PreVoteResp {
            term: 1,
            granted: false
        }]
    );
    // While a leader's lease is valid, refused.
    e.step(msg(3, ElectionMsg::LeaderElected { term: 4 }), t);
    let out = e.step(
        msg(2, ElectionMsg::PreVoteReq { term: 5, lhm: 0 }),
        t + secs(1),
    );
    assert_eq!(
        sent(&out),
        vec![ElectionMsg::PreVoteResp {
            term: 5,
            granted: false
        }]
    );
    // The lease is 5 s: afterwards the same request is granted.
    let out = e.step(
        msg(2, ElectionMsg::PreVoteReq { term: 5, lhm: 0 }),
        t + secs(5),
    );
    assert_eq!(
        sent(&out),
        vec![ElectionMsg::PreVoteResp {
            term: 5,
            granted: true
        }]
    );
    // A request for an older term is refused.
    let out = e.step(
        msg(2, ElectionMsg::PreVoteReq { term: 3, lhm: 0 }),
        t + secs(6),
    );
    assert_eq!(
        sent(&out),
        vec![ElectionMsg::PreVoteResp {
            term: 3,
            granted: false
        }]
    );
    assert_eq!(e.term(), 4);
}

#[test]
fn a_pre_candidate_needs_a_majority_within_2_s_then_claims_a_new_term() {
    let mut e = node(1, &[1, 2, 3], 3);
    for v in [2, 3] {
        e.step(
            ElectionInput::PeerVisible {
                node: NodeId(v),
                visible: true,
            },
            Instant::ZERO,
        );
    }
    let start = e.next_deadline().unwrap();
    let out = e.step(ElectionInput::Tick, start);
    assert_eq!(e.role(), ElectionRole::PreCandidate);
    assert_eq!(
        sent(&out),
        vec![ElectionMsg::PreVoteReq { term: 1, lhm: 0 }]
    );
    assert_eq!(e.term(), 0, "a pre-vote changes no term");
    assert_eq!(e.next_deadline(), Some(start + secs(2)));
    e.step(
        msg(
            2,
            ElectionMsg::PreVoteResp {
                term: 1,
                granted: true,
            },
        ),
        start + millis(5),
    );
    let out = e.step(ElectionInput::Tick, start + secs(2));
    assert_eq!(e.role(), ElectionRole::Candidate);
    assert_eq!(e.term(), 1);
    assert_eq!(e.fencing_token(), 1);
    // Persist (term, vote) before the claim goes out.
    assert_eq!(
        out[0],
        ElectionOutput::Event(ElectionEvent::Persist {
            term: 1,
            voted_for: Some(NodeId(1))
        })
    );
    assert_eq!(
        sent(&out),
        vec![ElectionMsg::LeaderClaim { term: 1, lhm: 0 }]
    );
    // Vote window 5 + U[0, 2) s.
    let w = e.next_deadline().unwrap().saturating_since(start + secs(2));
    assert!(w >= secs(5) && w < secs(7), "{w:?}");
    // One vote more: majority, leader at once.
    let out = e.step(
        msg(
            3,
            ElectionMsg::LeaderVote {
                term: 1,
                granted: true,
            },
        ),
        start + secs(3),
    );
    assert_eq!(e.role(), ElectionRole::Leader);
    assert!(sent(&out).contains(&ElectionMsg::LeaderElected { term: 1 }));
    assert!(
        out.contains(&ElectionOutput::Event(ElectionEvent::LeaderElected {
            group: G,
            term: 1,
            node: NodeId(1)
        }))
    );
    // Heartbeat every 2 s.
    assert_eq!(e.next_deadline(), Some(start + secs(5)));
}

#[test]
fn a_failed_pre_vote_retries_after_a_random_delay() {
    let mut e = node(1, &[1, 2, 3], 4);
    let t = Instant::ZERO + secs(10);
    e.step(ElectionInput::Tick, t);
    let start = e.next_deadline().unwrap();
    e.step(ElectionInput::Tick, start);
    assert_eq!(e.role(), ElectionRole::PreCandidate);
    // Nobody answers.
    e.step(ElectionInput::Tick, start + secs(2));
    assert_eq!(e.role(), ElectionRole::Follower);
    assert_eq!(e.term(), 0);
    let retry = e.next_deadline().unwrap().saturating_since(start + secs(2));
    assert!(retry < secs(2), "{retry:?}");
}

#[test]
fn one_vote_per_term_persisted_and_a_higher_term_deposes_a_leader() {
    let t = Instant::ZERO + secs(20);
    let mut e = node(1, &[1, 2, 3], 1);
    let out = e.step(msg(2, ElectionMsg::LeaderClaim { term: 3, lhm: 0 }), t);
    assert_eq!(
        out.to_vec(),
        vec![
            ElectionOutput::Event(ElectionEvent::Persist {
                term: 3,
                voted_for: Some(NodeId(2))
            }),
            ElectionOutput::Send {
                to: NodeId(2),
                msg: ElectionMsg::LeaderVote {
                    term: 3,
                    granted: true
                }
            },
        ]
    );
    // Another candidate in the same term: refused.
    let out = e.step(msg(3, ElectionMsg::LeaderClaim { term: 3, lhm: 0 }), t);
    assert_eq!(
        sent(&out),
        vec![ElectionMsg::LeaderVote {
            term: 3,
            granted: false
        }]
    );
    // A stale claim: ignored.
    assert!(e
        .step(msg(3, ElectionMsg::LeaderClaim { term: 2, lhm: 0 }), t)
        .is_empty());
    // A restarted node keeps its persisted vote.
    let mut r = Election::new(
        ElectionConfig::default(),
        G,
        NodeId(1),
        [1, 2, 3].map(NodeId),
        (3, Some(NodeId(2))),
        9,
        t,
    );
    let out = r.step(msg(3, ElectionMsg::LeaderClaim { term: 3, lhm: 0 }), t);
    assert_eq!(
        sent(&out),
        vec![ElectionMsg::LeaderVote {
            term: 3,
            granted: false
        }]
    );
    // A leader meeting a higher term steps down (Python stayed leader).
    let mut c = Cluster::new(&[1, 2, 3], 11);
    c.run_until(Instant::ZERO + secs(20));
    let l = c.leaders()[0];
    let term = c.nodes[&l].term();
    let other = [1, 2, 3].into_iter().find(|i| *i != l).unwrap();
    let out = c.nodes.get_mut(&l).unwrap().step(
        msg(
            other,
            ElectionMsg::LeaderClaim {
                term: term + 1,
                lhm: 0,
            },
        ),
        c.now,
    );
    assert!(
        out.contains(&ElectionOutput::Event(ElectionEvent::SteppedDown {
            group: G,
            term,
            reason: StepDownReason::HigherTerm
        }))
    );
    assert_eq!(c.nodes[&l].role(), ElectionRole::Follower);
    assert_eq!(c.nodes[&l].term(), term + 1);
}

#[test]
fn heartbeats_keep_followers_and_stale_ones_are_ignored() {
    let t = Instant::ZERO + secs(20);
    let mut e = node(1, &[1, 2, 3], 1);
    e.step(msg(2, ElectionMsg::LeaderElected { term: 2 }), t);
    assert_eq!(e.leader(), Some(NodeId(2)));
    // Heartbeats every 2 s renew the 5 s lease; each is acknowledged.
    for k in 1..10 {
        let out = e.step(msg(2, ElectionMsg::Heartbeat { term: 2 }), t + secs(2 * k));
        assert_eq!(sent(&out), vec![ElectionMsg::HeartbeatAck { term: 2 }]);
        e.step(ElectionInput::Tick, t + secs(2 * k) + millis(1));
        assert_eq!(e.role(), ElectionRole::Follower);
    }
    // A heartbeat from an older term changes nothing (compared with the current term).
    assert!(e
        .step(msg(3, ElectionMsg::Heartbeat { term: 1 }), t + secs(19))
        .is_empty());
    assert_eq!(e.leader(), Some(NodeId(2)));
    // Silence: the lease (5 s) runs out; the next poll (<= 2 s later) starts a pre-vote.
    let mut now = t + secs(19);
    while e.role() == ElectionRole::Follower {
        now = e.next_deadline().unwrap();
        e.step(ElectionInput::Tick, now);
    }
    assert_eq!(e.role(), ElectionRole::PreCandidate);
    let silent_for = now.saturating_since(t + secs(18));
    assert!(
        silent_for >= secs(5) && silent_for <= secs(7) + millis(500),
        "{silent_for:?}"
    );
}

#[test]
fn a_leader_crash_fails_over_within_16_s() {
    for seed in 1..20 {
        let mut c = Cluster::new(&[1, 2, 3], seed);
        c.run_until(Instant::ZERO + secs(30));
        let old = c.leaders()[0];
        c.crash(old);
        c.run_until(Instant::ZERO + secs(60));
        let elected_after: Vec<_> = c
            .elected()
            .into_iter()
            .filter(|(t, _, _)| *t > Instant::ZERO + secs(30))
            .collect();
        let (t, new, _) = elected_after[0];
        assert_ne!(new, old);
        let took = t.saturating_since(Instant::ZERO + secs(30));
        assert!(took <= secs(16), "seed {seed}: failover took {took:?}");
        assert_eq!(c.leaders(), vec![new]);
        assert_one_leader_per_term(&c);
    }
}

#[test]
fn an_isolated_leader_steps_down_and_the_majority_elects_another() {
    for seed in 1..10 {
        let mut c = Cluster::new(&[1, 2, 3, 4, 5], seed);
        c.run_until(Instant::ZERO + secs(30));
        let old = c.leaders()[0];
        let old_term = c.nodes[&old].term();
        // Cut the leader off from everyone.
        for j in [1, 2, 3, 4, 5] {
            if j != old {
                c.cut.push((old, j));
            }
        }
        c.run_until(Instant::ZERO + secs(90));
        // Check-quorum: it stepped down within about a lease and a heartbeat.
        let down = c
            .events
            .iter()
            .find(|(_, i, e)| {
                *i == old
                    && matches!(
                        e,
                        ElectionEvent::SteppedDown {
                            reason: StepDownReason::LostQuorum,
                            ..
                        }
                    )
            })
            .map(|(t, ..)| *t)
            .expect("stepped down");
        let took = down.saturating_since(Instant::ZERO + secs(30));
        assert!(
            took <= secs(5) + secs(2) + millis(100),
            "seed {seed}: {took:?}"
        );
        // The majority elected a new leader in a higher term...
        let majority_leaders: Vec<u32> = c.leaders().into_iter().filter(|l| *l != old).collect();
        assert_eq!(majority_leaders.len(), 1, "seed {seed}");
        let new = majority_leaders[0];
        assert!(c.nodes[&new].term() > old_term);
        // ...and the isolated minority never raised its term (pre-vote).
        assert_eq!(c.nodes[&old].term(), old_term, "seed {seed}");
        assert_ne!(c.nodes[&old].role(), ElectionRole::Leader);
        // Heal: one leader, everyone follows it.
        c.cut.clear();
        c.run_until(Instant::ZERO + secs(120));
        assert_eq!(c.leaders(), vec![new], "seed {seed}");
        for n in c.nodes.values() {
            assert_eq!(n.leader(), Some(NodeId(new)));
        }
        assert_one_leader_per_term(&c);
    }
}

#[test]
fn an_unhealthy_leader_steps_down_and_an_unhealthy_node_never_runs() {
    let mut c = Cluster::new(&[1, 2, 3], 2);
    c.run_until(Instant::ZERO + secs(30));
    let l = c.leaders()[0];
    c.input(
        l,
        ElectionInput::Health {
            lhm: 5,
            refuse_new: false,
            step_down: false,
        },
    );
    assert!(c.events.iter().any(|(_, i, e)| *i == l
        && matches!(
            e,
            ElectionEvent::SteppedDown {
                reason: StepDownReason::Unhealthy,
                ..
            }
        )));
    c.run_until(Instant::ZERO + secs(60));
    let leaders = c.leaders();
    assert_eq!(leaders.len(), 1);
    assert_ne!(leaders[0], l, "LHM 5 > 4: not eligible");
    // Degradation that refuses new leadership: a lone node never becomes a candidate.
    let mut e = node(1, &[1], 3);
    e.step(
        ElectionInput::Health {
            lhm: 0,
            refuse_new: true,
            step_down: false,
        },
        Instant::ZERO,
    );
    let mut now = Instant::ZERO;
    for _ in 0..20 {
        now = e.next_deadline().unwrap();
        e.step(ElectionInput::Tick, now);
        assert_eq!(e.role(), ElectionRole::Follower);
    }
    assert!(now > Instant::ZERO + secs(20));
}

#[test]
fn split_brain_the_lower_id_keeps_the_term() {
    let t = Instant::ZERO + secs(20);
    let mut e = node(2, &[2], 1);
    // A group of one elects itself.
    let mut now = Instant::ZERO;
    while e.role() != ElectionRole::Leader {
        now = e.next_deadline().unwrap();
        e.step(ElectionInput::Tick, now);
    }
    let term = e.term();
    // A heartbeat for the same term from node 1 (lower id): yield.
    let out = e.step(msg(1, ElectionMsg::Heartbeat { term }), t);
    assert!(
        out.is_empty(),
        "node 1 is not a configured voter of this group: dropped"
    );
    let mut e = node(2, &[1, 2], 1);
    e.step(
        msg(
            1,
            ElectionMsg::LeaderVote {
                term: 1,
                granted: true,
            },
        ),
        t,
    );
    while e.role() != ElectionRole::Leader {
        now = e.next_deadline().unwrap();
        if e.role() == ElectionRole::Candidate {
            e.step(
                msg(
                    1,
                    ElectionMsg::LeaderVote {
                        term: e.term(),
                        granted: true,
                    },
                ),
                now,
            );
            continue;
        }
        e.step(ElectionInput::Tick, now);
        if e.role() == ElectionRole::PreCandidate {
            e.step(
                msg(
                    1,
                    ElectionMsg::PreVoteResp {
                        term: e.term() + 1,
                        granted: true,
                    },
                ),
                now,
            );
        }
    }
    let term = e.term();
    let out = e.step(msg(1, ElectionMsg::Heartbeat { term }), now + millis(1));
    assert!(
        out.contains(&ElectionOutput::Event(ElectionEvent::SplitBrainDetected {
            group: G,
            term,
            other: NodeId(1)
        }))
    );
    assert_eq!(e.role(), ElectionRole::Follower);
    assert_eq!(e.leader(), Some(NodeId(1)));
}

#[test]
fn flapping_raises_the_cooldown_and_calm_relaxes_it() {
    let mut e = node(1, &[1, 2, 3], 1);
    let mut now = Instant::ZERO + secs(1);
    let mut term = 1;
    let change = |e: &mut Election, now: Instant, term: u64| {
        let from = if term % 2 == 0 { 2 } else { 3 };
        e.step(msg(from, ElectionMsg::LeaderElected { term }), now)
    };
    // Changes 1-4 within a minute: cooldown stays 5 s (warning from the 3rd).
    for _ in 0..4 {
        change(&mut e, now, term);
        term += 1;
        now = now + secs(1);
    }
    assert_eq!(e.cooldown(), secs(5));
    // The 5th raises it x1.5.
    change(&mut e, now, term);
    term += 1;
    now = now + secs(1);
    assert_eq!(e.cooldown(), millis(7500));
    // 10 within the window: 60 s.
    for _ in 0..5 {
        change(&mut e, now, term);
        term += 1;
        now = now + secs(1);
    }
    assert_eq!(e.cooldown(), secs(60));
    // A change after a calm minute (fewer than 3 in the window): /1.5.
    now = now + secs(120);
    change(&mut e, now, term);
    assert_eq!(e.cooldown(), secs(40));
}

/// `changes` leader changes one second apart (a leader elected, then stepping down),
/// then the candidate's stand at `stand_after` past the last of them or later (ticking
/// to each deadline, its pre-vote granted): the vote window it opens.
fn vote_window_after_changes(seed: u64, changes: u64, stand_after: Duration) -> Duration {
    let mut e = node(1, &[1, 2], seed);
    let mut now = Instant::ZERO + secs(1);
    for term in 1..=changes {
        e.step(msg(2, ElectionMsg::LeaderElected { term }), now);
        e.step(msg(2, ElectionMsg::StepDown { term }), now + millis(10));
        now = now + secs(1);
    }
    now = now + stand_after;
    let mut guard = 0;
    while e.role() != ElectionRole::Candidate {
        now = e.next_deadline().unwrap_or(now + secs(1)).max(now);
        e.step(ElectionInput::Tick, now);
        if e.role() == ElectionRole::PreCandidate {
            let term = e.term() + 1;
            e.step(
                msg(
                    2,
                    ElectionMsg::PreVoteResp {
                        term,
                        granted: true,
                    },
                ),
                now,
            );
        }
        guard += 1;
        assert!(guard < 100, "never stood");
    }
    e.next_deadline().unwrap().saturating_since(now)
}

/// While flapping, a candidate's vote window is stretched to the cooldown and keeps its
/// jitter: `max(vote window, cooldown) + U[0, 2 s)`. Five changes within a minute raise
/// the cooldown to 7.5 s, and the candidate stands when it ends, still within the
/// minute. Found by the simulator's random faults (a flapping link between two DCs):
/// without the jitter two gates with the same cooldown stood at the same moment every
/// round and split the vote for ever (each votes for itself; a group of two needs both).
#[test]
fn a_flapping_candidates_vote_window_keeps_its_jitter() {
    let mut windows: Vec<Duration> = (1..=8)
        .map(|seed| vote_window_after_changes(seed, 5, Duration::ZERO))
        .collect();
    for w in &windows {
        assert!(*w >= millis(7500) && *w < millis(9500), "{w:?}");
    }
    windows.sort();
    windows.dedup();
    assert!(windows.len() > 4, "the jitter is gone: {windows:?}");
}

/// Flapping is a rate (leadership.md §1.2: changes per 60 s): a minute after the last
/// of five changes the group is calm, and a candidate's window is the plain `5 s +
/// U[0, 2 s)` although no change has come since to relax the 7.5 s cooldown. (Judged
/// on the unpruned count, the window stayed stretched: two gates that split their first
/// vote after a flapping link healed waited the whole cooldown to try again, beyond the
/// heal bound; random-faults seed 19233.)
#[test]
fn flapping_ends_a_minute_after_the_changes() {
    for seed in 1..=8 {
        let w = vote_window_after_changes(seed, 5, secs(61));
        assert!(w >= secs(5) && w < secs(7), "seed {seed}: {w:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    /// Election safety under loss, cuts and crashes: never two leaders in one term.
    #[test]
    fn never_two_leaders_in_one_term(
        seed in any::<u64>(),
        loss in 0.0f64..0.3,
        faults in prop::collection::vec((0u32..5, 0u32..5, 1u64..120, any::<bool>()), 0..6),
    ) {
        let mut c = Cluster::new(&[1, 2, 3, 4, 5], seed);
        c.loss = loss;
        let mut t = 0;
        let mut faults = faults;
        faults.sort_by_key(|f| f.2);
        for (a, b, at, crash) in faults {
            c.run_until(Instant::ZERO + secs(at.max(t)));
            t = at.max(t);
            if crash {
                c.crash(a + 1);
            } else if a != b {
                c.cut.push((a + 1, b + 1));
            }
        }
        c.run_until(Instant::ZERO + secs(180));
        let mut by_term: BTreeMap<u64, u32> = BTreeMap::new();
        for (_, node, term) in c.elected() {
            if let Some(prev) = by_term.insert(term, node) {
                prop_assert_eq!(prev, node, "two leaders in term {}", term);
            }
        }
    }
}
