//! The report's view of membership.md §9's out-of-band probe channel
//! (`membership.oob`): what the probes found, and what became of the suspicions their
//! answers extended.

use meridian_core::io::Event;
use meridian_core::membership::Status;
use meridian_core::wire::{OobFrame, OobKind};
use serde::Serialize;
use std::collections::BTreeSet;

#[derive(Debug, Clone, Default, Serialize)]
pub struct OobReport {
    /// Probes sent: at most one a suspicion, when it was about to expire.
    pub probes: u64,
    /// Answers the probed nodes sent: acks (alive) and nacks (alive, overloaded).
    pub acks: u64,
    pub nacks: u64,
    /// Answers that reached their prober in time.
    pub answered: u64,
    /// Suspicions an answer extended by `T_p` (the others had ended meanwhile).
    pub extended: u64,
    /// What the extended suspicions then came to: refuted (the suspect lived and said
    /// so), or declared dead all the same.
    pub then_refuted: u64,
    pub then_dead: u64,
}

#[derive(Debug, Default)]
pub struct OobTally {
    report: OobReport,
    /// `(observer, suspect)` pairs whose suspicion an answer extended, until it ends.
    extended: BTreeSet<(usize, u32)>,
}

impl OobTally {
    /// Node `_from` sent an OOB datagram.
    pub fn on_send(&mut self, bytes: &[u8]) {
        match OobFrame::decode(bytes).map(|f| f.kind) {
            Ok(OobKind::Probe) => self.report.probes += 1,
            Ok(OobKind::Ack) => self.report.acks += 1,
            Ok(OobKind::Nack) => self.report.nacks += 1,
            Err(_) => {}
        }
    }

    /// Node `i` emitted `e`.
    pub fn on_event(&mut self, i: usize, e: &Event) {
        match e {
            Event::OobAnswer { node, extended, .. } => {
                self.report.answered += 1;
                if *extended {
                    self.report.extended += 1;
                    self.extended.insert((i, node.0));
                }
            }
            Event::Member { node, to, .. } if !self.extended.is_empty() => {
                let status = to.map(|v| v.status);
                if status == Some(Status::Suspect) || !self.extended.remove(&(i, node.0)) {
                    return;
                }
                match status {
                    Some(Status::Alive) => self.report.then_refuted += 1,
                    Some(Status::Dead) => self.report.then_dead += 1,
                    _ => {}
                }
            }
            _ => {}
        }
    }

    /// Node `i` stopped: its suspicions ended with it.
    pub fn forget(&mut self, i: usize) {
        self.extended.retain(|&(o, _)| o != i);
    }

    pub fn report(&self) -> OobReport {
        self.report.clone()
    }
}
