//! Leadership (AD-3/5/10/12/13, leadership.md): the per-group cluster election
//! ([`election`]) and fenced job leadership ([`fencing`]): the two small machines the
//! spec recommends (§3), instead of a Raft library (openraft is async with its own
//! timers; raft-rs draws its timeouts from an OS-seeded generator).

pub mod election;
pub mod fencing;

pub use election::{
    Election, ElectionConfig, ElectionEvent, ElectionInput, ElectionMsg, ElectionOutput,
    ElectionOutputs, ElectionRole, GroupId, StepDownReason,
};
pub use fencing::{FenceDomain, FenceError, JobRegistry, TokenIssuer, Verdict};

#[cfg(test)]
mod tests;
