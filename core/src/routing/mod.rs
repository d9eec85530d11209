//! Latency-aware job routing with health-bucket safety and hysteresis (AD-16, AD-17,
//! AD-36; routing.md). [`health`] classifies a DC from its managers' heartbeats;
//! [`dcs`] is a gate's view of every DC (managers, heartbeats, circuits) that feeds it;
//! [`router`] picks a job's DCs: never UNHEALTHY, never a lower bucket while a higher one
//! has a candidate, ranked by `rtt_ucb x load x quality_penalty` inside the best bucket,
//! sticky per routing key. Pure; the gate ([`crate::jobs::gate`]) drives it.

pub mod dcs;
pub mod health;
pub mod router;

pub use health::DcHealth;
pub use router::{RouteKey, RouteReason};

#[cfg(test)]
mod tests;
