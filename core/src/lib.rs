//! meridian-core: every protocol decision of Meridian as a pure, deterministic machine.
//!
//! The machine contract (ARCHITECTURE.md): `step(input, now) -> Outputs` and
//! `next_deadline()`. No I/O, no clock (`now` is the only time), no OS randomness
//! (each machine owns a seeded ChaCha generator), no randomly seeded hash maps.

pub mod backpressure;
pub mod coords;
pub mod id;
pub mod io;
pub mod jobs;
pub mod journal;
pub mod leadership;
pub mod membership;
pub mod node;
pub mod rng;
pub mod routing;
pub mod time;
pub mod timeout;
pub mod wire;

pub use id::{Addr, ClusterId, DcId, FenceToken, Incarnation, JobId, NodeId, Role};
pub use time::Instant;

/// A hash map with a fixed (non-random) hasher, so iteration order depends only on
/// the sequence of insertions: a determinism requirement.
pub type FxHashMap<K, V> = hashbrown::HashMap<K, V, rustc_hash::FxBuildHasher>;
/// See [`FxHashMap`].
pub type FxHashSet<K> = hashbrown::HashSet<K, rustc_hash::FxBuildHasher>;
