//! The out-of-band probe, the prober's side (membership.md §9, optional; `Config::oob`).
//!
//! When a suspicion is about to expire, the detector sends the suspect one OOB probe on
//! the separate OOB channel (`wire::oob`), beside the in-band last-chance PING. A node
//! whose main socket is backed up (a long receive queue, a slow handler) still answers
//! it, since the shell serves the OOB socket first. The answer says only that the
//! process is there, loaded (nack) or not (ack). So it neither confirms nor refutes:
//! it sends the suspect a buddy SUSPECT (a PING carrying its suspicion, which a live
//! suspect refutes) and extends the deadline once by `T_p`, so the refutation has time
//! to come back. A crashed or paused process does not answer, and the verdict stands.
//!
//! Bounds: at most [`OOB_PROBES_PER_SEC`] probes a second (a token bucket), none to a
//! member whose probe of less than [`OOB_TARGET_GAP`] ago still awaits its answer (a
//! suspicion, the only sender, lasts seconds, so in practice a member gets one probe
//! per suspicion), and at most [`MAX_OOB_OUTSTANDING`] awaiting an answer; each waits
//! [`OOB_TIMEOUT`], then its entry goes. An answer that
//! matches no outstanding probe (late, duplicated, forged) is counted and dropped.

use super::*;
use crate::wire::{OobFrame, OobKind};
use suspicion::OobProbeState;

/// How long a probe waits for its answer (membership.md §9: 0.5 s).
pub const OOB_TIMEOUT: Duration = Duration::from_millis(500);
/// At most this many OOB probes a second (membership.md §9: 100 probes/s).
pub const OOB_PROBES_PER_SEC: f64 = 100.0;
/// At least this long between two OOB probes of one member (membership.md §9: 10 ms
/// per target).
pub const OOB_TARGET_GAP: Duration = Duration::from_millis(10);
/// Probes awaiting an answer at most: the rate times the timeout.
pub const MAX_OOB_OUTSTANDING: usize = 50;

/// One probe awaiting its answer.
#[derive(Clone, Debug)]
pub(super) struct OobProbe {
    seq: u32,
    node: NodeId,
    addr: Addr,
    sent_at: Instant,
    timer: TimerKey,
}

/// The prober's state: the rate limit and the probes in flight.
#[derive(Clone, Debug)]
pub(super) struct OobProber {
    bucket: rate::Bucket,
    /// A `Vec`: empty (no allocation) unless a suspicion is about to expire.
    in_flight: Vec<OobProbe>,
}

impl OobProber {
    pub fn new(now: Instant) -> OobProber {
        OobProber {
            bucket: rate::Bucket::full(OOB_PROBES_PER_SEC, now),
            in_flight: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.in_flight.len()
    }
}

impl Membership {
    /// Send `node` one OOB probe, within the bounds above. Returns its sequence number,
    /// or `None` when a bound held it back.
    pub(super) fn send_oob_probe(
        &mut self,
        node: NodeId,
        addr: Addr,
        now: Instant,
        out: &mut Outputs,
    ) -> Option<u32> {
        let o = &mut self.oob;
        let recent = o
            .in_flight
            .iter()
            .any(|p| p.node == node && now.saturating_since(p.sent_at) < OOB_TARGET_GAP);
        if recent
            || o.in_flight.len() >= MAX_OOB_OUTSTANDING
            || !o.bucket.take(now, OOB_PROBES_PER_SEC, OOB_PROBES_PER_SEC)
        {
            self.stats.oob_held_back += 1;
            return None;
        }
        let seq = self.seq();
        let timer = self.at(now + OOB_TIMEOUT, Timer::OobTimeout { seq });
        self.oob.in_flight.push(OobProbe {
            seq,
            node,
            addr,
            sent_at: now,
            timer,
        });
        self.stats.oob_probes += 1;
        out.push(Output::Oob {
            to: addr,
            bytes: OobFrame::new(OobKind::Probe, seq).encode(),
        });
        Some(seq)
    }

    /// The probe `seq` went unanswered for [`OOB_TIMEOUT`]: forget it.
    pub(super) fn oob_timeout(&mut self, seq: u32) {
        if let Some(i) = self.oob.in_flight.iter().position(|p| p.seq == seq) {
            self.oob.in_flight.swap_remove(i);
            self.stats.oob_unanswered += 1;
        }
    }

    /// An OOB frame that is not a probe arrived from `from` (the node hands every
    /// machine the answers; the one that sent the probe takes it). Returns whether it
    /// answered one of this machine's probes.
    pub fn oob_answer(
        &mut self,
        from: Addr,
        frame: OobFrame,
        now: Instant,
        out: &mut Outputs,
    ) -> bool {
        let Some(i) = self
            .oob
            .in_flight
            .iter()
            .position(|p| p.seq == frame.seq && p.addr == from)
        else {
            return false;
        };
        let probe = self.oob.in_flight.swap_remove(i);
        self.timers.cancel(probe.timer);
        let node = probe.node;
        let extended = self.extend_for_oob(node, probe.seq, now, out);
        self.stats.oob_answers += 1;
        let overloaded = frame.kind == OobKind::Nack;
        self.event(
            out,
            Event::OobAnswer {
                cluster: self.me.cluster,
                node,
                overloaded,
                extended,
            },
        );
        true
    }

    /// §9: the suspect's process answered the probe `seq`: send it a buddy SUSPECT and
    /// give its suspicion, if it is the one the probe was sent for, its one extension
    /// by `T_p`.
    fn extend_for_oob(&mut self, node: NodeId, seq: u32, now: Instant, out: &mut Outputs) -> bool {
        let Some(m) = self.members.get(&node) else {
            return false;
        };
        if m.status != Status::Suspect {
            return false;
        }
        let addr = self.members.addr_of(m);
        let t = self.probe_timeout_for(node, now);
        let Some(s) = self.suspicions.get_mut(&node) else {
            return false;
        };
        if s.oob != OobProbeState::Awaiting(seq) {
            return false;
        }
        s.oob = OobProbeState::Answered;
        s.probed(now, t);
        let deadline = s.deadline();
        let ping = self.seq();
        self.ping_with_buddy(ping, node, addr, true, now, out);
        self.at(deadline.max(now), Timer::Suspicion { node });
        self.stats.oob_extensions += 1;
        true
    }
}

/// The answering side: a node answers OOB probes at most [`OOB_PROBES_PER_SEC`] a
/// second (a flood of probes costs it a token check each, nothing more), with an ack,
/// or a nack while it is overloaded.
#[derive(Clone, Debug)]
pub struct OobResponder {
    bucket: rate::Bucket,
    /// Probes left unanswered for the rate limit.
    pub refused: u64,
}

impl OobResponder {
    pub fn new(now: Instant) -> OobResponder {
        OobResponder {
            bucket: rate::Bucket::full(OOB_PROBES_PER_SEC, now),
            refused: 0,
        }
    }

    /// The answer to the probe `seq`, or `None` over the rate limit.
    pub fn answer(&mut self, seq: u32, overloaded: bool, now: Instant) -> Option<Vec<u8>> {
        if !self
            .bucket
            .take(now, OOB_PROBES_PER_SEC, OOB_PROBES_PER_SEC)
        {
            self.refused += 1;
            return None;
        }
        let kind = if overloaded {
            OobKind::Nack
        } else {
            OobKind::Ack
        };
        Some(OobFrame::new(kind, seq).encode())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{confirm, deliver, env_from, events, run_until, sent};
    use super::*;
    use crate::time::millis;

    fn machine(lifeguard: bool, oob: bool) -> Membership {
        super::super::tests::machine_with(
            Role::Worker,
            Config {
                adaptive_timeouts: false,
                lifeguard,
                oob,
                ..Config::default()
            },
        )
    }

    fn at(ms: u64) -> Instant {
        Instant::ZERO + millis(ms)
    }

    /// Node 5, confirmed at 0, suspected by 6 at 10 s.
    fn suspect_5(m: &mut Membership) {
        confirm(m, 5, Role::Worker, Instant::ZERO);
        let body = Body::Notice {
            gossip: vec![super::super::tests::claim(
                ClaimKind::Suspect,
                5,
                0,
                Role::Worker,
                6,
            )],
        };
        deliver(m, env_from(6, Role::Worker, 0, body), at(10_000));
        assert_eq!(m.member(NodeId(5)).unwrap().status, Status::Suspect);
    }

    /// The OOB probes in `log`: `(when, to, seq)`.
    fn oob_probes(log: &[(Instant, Output)]) -> Vec<(Instant, Addr, u32)> {
        log.iter()
            .filter_map(|(t, o)| match o {
                Output::Oob { to, bytes } => {
                    let f = OobFrame::decode(bytes).unwrap();
                    assert_eq!(f.kind, OobKind::Probe);
                    Some((*t, *to, f.seq))
                }
                _ => None,
            })
            .collect()
    }

    /// When `node` was declared dead in `log`.
    fn death_of(log: &[(Instant, Output)], node: u32) -> Option<Instant> {
        events(log).into_iter().find_map(|(t, e)| match e {
            Event::Member {
                node: n,
                to: Some(v),
                ..
            } if n == NodeId(node) && v.status == Status::Dead => Some(t),
            _ => None,
        })
    }

    fn answer(seq: u32) -> OobFrame {
        OobFrame::new(OobKind::Nack, seq)
    }

    #[test]
    fn an_answer_extends_the_suspicion_once_by_t_p_and_sends_a_buddy_suspect() {
        let mut m = machine(true, true);
        suspect_5(&mut m);
        // The worker maximum, 30 s from 10 s: the in-band last chance and the OOB probe
        // go out together.
        let mut log = Vec::new();
        run_until(&mut m, at(40_000), &mut log);
        let probes = oob_probes(&log);
        assert_eq!(probes.len(), 1);
        let (t, to, seq) = probes[0];
        assert_eq!((t, to), (at(40_000), Addr::from_u32(5)));
        // A nack (alive, overloaded) 300 ms later: a buddy SUSPECT, and the deadline
        // (the last chance's: 40 s + T_p) moves once by T_p.
        let t_p = m.probe_timeout_for(NodeId(5), at(40_300));
        let deadline = at(40_000) + t_p + t_p;
        let mut out = Outputs::new();
        assert!(m.oob_answer(Addr::from_u32(5), answer(seq), at(40_300), &mut out));
        let log2: Vec<_> = out.into_iter().map(|o| (at(40_300), o)).collect();
        assert!(events(&log2).iter().any(|(_, e)| *e
            == Event::OobAnswer {
                cluster: super::super::tests::CLUSTER,
                node: NodeId(5),
                overloaded: true,
                extended: true,
            }));
        let buddy = sent(&log2).into_iter().any(|(_, to, e)| {
            to == Addr::from_u32(5)
                && matches!(e.body, Body::Ping { buddy: Some(b), .. } if b.node == NodeId(5) && b.kind == ClaimKind::Suspect)
        });
        assert!(buddy, "the answer sends 5 its suspicion");
        // The same answer again, or from another address: not ours any more.
        let mut out = Outputs::new();
        assert!(!m.oob_answer(Addr::from_u32(5), answer(seq), at(40_310), &mut out));
        assert!(!m.oob_answer(Addr::from_u32(7), answer(seq), at(40_310), &mut out));
        assert!(out.is_empty());
        let mut log = Vec::new();
        run_until(&mut m, deadline - millis(1), &mut log);
        assert_eq!(m.member(NodeId(5)).unwrap().status, Status::Suspect);
        run_until(&mut m, deadline, &mut log);
        assert_eq!(
            death_of(&log, 5),
            Some(deadline),
            "never confirms or refutes"
        );
        let expired = events(&log).into_iter().find_map(|(_, e)| match e {
            Event::SuspicionExpired { last_probe_at, .. } => Some(last_probe_at),
            _ => None,
        });
        assert_eq!(
            expired,
            Some(Some(at(40_300))),
            "the verdict rests on the buddy"
        );
        assert_eq!(
            (
                m.stats().oob_probes,
                m.stats().oob_answers,
                m.stats().oob_extensions
            ),
            (1, 1, 1)
        );
    }

    #[test]
    fn an_unanswered_probe_moves_no_verdict_and_is_forgotten() {
        let mut deaths = Vec::new();
        for oob in [false, true] {
            let mut m = machine(true, oob);
            suspect_5(&mut m);
            let mut log = Vec::new();
            run_until(&mut m, at(60_000), &mut log);
            assert_eq!(oob_probes(&log).len(), oob as usize);
            deaths.push(death_of(&log, 5));
            assert_eq!(m.table_sizes().proactive, 0, "the probe's entry went");
            assert_eq!(m.stats().oob_unanswered, oob as u64);
        }
        // T_p (at least 1 s) outlasts the OOB timeout (0.5 s): a dead process dies on
        // time.
        assert!(deaths[0].is_some_and(|d| d >= at(41_000)));
        assert_eq!(deaths[0], deaths[1]);
    }

    #[test]
    fn without_lifeguard_the_probe_alone_holds_the_verdict_and_a_live_suspect_refutes() {
        let mut m = machine(false, true);
        suspect_5(&mut m);
        // Classic SWIM: a fixed 5 s suspicion, then only the OOB probe, and the verdict
        // waits its 0.5 s.
        let mut log = Vec::new();
        run_until(&mut m, at(15_000), &mut log);
        // (6, which never answers our probes either, has its own.)
        let probes: Vec<_> = oob_probes(&log)
            .into_iter()
            .filter(|p| p.1 == Addr::from_u32(5))
            .collect();
        assert_eq!(probes.iter().map(|p| p.0).collect::<Vec<_>>(), [at(15_000)]);
        assert!(!sent(&log).iter().any(|(t, to, e)| *t == at(15_000)
            && *to == Addr::from_u32(5)
            && matches!(e.body, Body::Ping { .. })));
        run_until(&mut m, at(15_499), &mut log);
        assert_eq!(death_of(&log, 5), None);
        // The answer at 15.2 s sends the buddy SUSPECT even without Lifeguard; 5 refutes.
        let mut out = Outputs::new();
        assert!(m.oob_answer(Addr::from_u32(5), answer(probes[0].2), at(15_200), &mut out));
        let log2: Vec<_> = out.into_iter().map(|o| (at(15_200), o)).collect();
        let ping = sent(&log2)
            .into_iter()
            .find_map(|(_, _, e)| match e.body {
                Body::Ping {
                    seq,
                    buddy: Some(_),
                    ..
                } => Some(seq),
                _ => None,
            })
            .expect("a buddy SUSPECT");
        let ack = Body::Ack {
            seq: ping,
            gossip: vec![],
            coord: None,
            health: vec![],
        };
        deliver(&mut m, env_from(5, Role::Worker, 1, ack), at(15_400));
        let x = m.member(NodeId(5)).unwrap();
        assert_eq!((x.status, x.inc), (Status::Alive, Incarnation(1)));
    }

    #[test]
    fn probes_keep_to_10_ms_per_member_50_in_flight_and_100_a_second() {
        let mut m = machine(true, true);
        let mut out = Outputs::new();
        let a = |n: u32| Addr::from_u32(n);
        assert!(m.send_oob_probe(NodeId(5), a(5), at(0), &mut out).is_some());
        assert!(m.send_oob_probe(NodeId(5), a(5), at(9), &mut out).is_none());
        assert!(m
            .send_oob_probe(NodeId(5), a(5), at(10), &mut out)
            .is_some());
        // Unanswered, at most 50 wait at once.
        let sent = (100..200)
            .filter(|n| {
                m.send_oob_probe(NodeId(*n), a(*n), at(10), &mut out)
                    .is_some()
            })
            .count();
        assert_eq!(sent, 48);
        assert_eq!(m.table_sizes().proactive, 50);
        // Their timers forget them 0.5 s after they left.
        let mut log = Vec::new();
        run_until(&mut m, at(509), &mut log);
        assert_eq!(m.table_sizes().proactive, 49);
        run_until(&mut m, at(510), &mut log);
        assert_eq!(m.table_sizes().proactive, 0);
        assert_eq!(m.stats().oob_unanswered, 50);
        // Answered at once, they are bounded by the rate: the bucket is full again
        // (100 tokens) 0.5 s later, and refills at 100 a second.
        let mut answered = 0;
        for n in 200..400 {
            if let Some(seq) = m.send_oob_probe(NodeId(n), a(n), at(2_000), &mut out) {
                assert!(m.oob_answer(a(n), answer(seq), at(2_000), &mut out));
                answered += 1;
            }
        }
        assert_eq!(answered, 100);
        assert!(m
            .send_oob_probe(NodeId(400), a(400), at(2_009), &mut out)
            .is_none());
        assert!(m
            .send_oob_probe(NodeId(400), a(400), at(2_011), &mut out)
            .is_some());
        assert_eq!(m.stats().oob_held_back, 1 + 52 + 100 + 1);
    }

    #[test]
    fn the_responder_answers_100_a_second_with_a_nack_when_overloaded() {
        let mut r = OobResponder::new(at(0));
        let decode = |b: Option<Vec<u8>>| OobFrame::decode(&b.unwrap()).unwrap();
        assert_eq!(
            decode(r.answer(7, false, at(0))),
            OobFrame::new(OobKind::Ack, 7)
        );
        assert_eq!(
            decode(r.answer(8, true, at(0))),
            OobFrame::new(OobKind::Nack, 8)
        );
        let more = (0..200)
            .filter(|_| r.answer(9, false, at(0)).is_some())
            .count();
        assert_eq!(more, 98);
        assert_eq!(r.refused, 102);
        assert!(r.answer(9, false, at(10)).is_some(), "one token in 10 ms");
        assert!(r.answer(9, false, at(10)).is_none());
    }
}
