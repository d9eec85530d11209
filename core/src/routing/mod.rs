//! Latency-aware job routing with health-bucket safety and hysteresis (AD-16, AD-17,
//! AD-36; routing.md). [`health`] classifies a DC from its managers' heartbeats;
//! [`router`] picks a job's DCs: never UNHEALTHY, never a lower bucket while a higher one
//! has a candidate, ranked by `rtt_ucb x load x quality_penalty` inside the best bucket,
//! sticky per job. Pure; the gate wires it (not yet: issue 7 continues).

pub mod health;
pub mod router;

#[cfg(test)]
mod tests;
