//! Vivaldi network coordinates (AD-35, membership.md §8).
//!
//! - [`coordinate`]: the coordinate and serf's update rule (the spec takes serf's, not
//!   the seed's Python: dimensionless error, height with a floor, windowed adjustment,
//!   quadratic gravity, reset on NaN).
//! - [`engine`]: one per membership machine: our coordinate, peers' coordinates, a median
//!   latency filter per peer, RTT estimate and upper confidence bound, quality,
//!   convergence, stale-peer cleanup.
//! - [`wire`]: the compact encoding PINGs and ACKs carry (<= 40 bytes).
//!
//! Each membership machine has its own coordinate space: a cluster's members embed
//! against each other, and a gate's observer of a DC embeds against that DC's managers,
//! which is exactly the RTT the gate needs for that DC.

pub mod coordinate;
pub mod engine;
pub mod wire;

pub use coordinate::{Coordinate, VivaldiConfig, DIMS};
pub use engine::{estimate_between, CoordEngine, RttEstimate, SampleError, DEFAULT_RTT_UCB_MS};
pub use wire::WireCoord;

#[cfg(test)]
mod proptests;
