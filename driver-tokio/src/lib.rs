//! meridian-driver-tokio: runs Meridian's node machines over real UDP and TCP (issue 8).
//! The driver decides nothing: it feeds bytes, time and commands to the same machines
//! the simulator runs, and carries out what they emit.
//!
//! Built so far: [`addr`] (socket addresses as the core's opaque addresses),
//! [`runner`] (one task per node: UDP datagrams, length-prefixed TCP frames with a
//! sender handshake, `sleep_until(next_deadline)`, members and leave commands) and
//! [`config`] (the node's TOML file). Not yet: operator commands over the network,
//! metrics, the local cluster recipe, the AEAD keyring and mutual TLS, record/replay,
//! the network-namespace test.

pub mod addr;
pub mod admin;
pub mod config;
pub mod keyring;
pub mod metrics;
pub mod runner;

pub use addr::{addr_of, socket_of};
