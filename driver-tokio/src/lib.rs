//! meridian-driver-tokio: runs Meridian's node machines over real UDP and TCP (issue 8).
//! The driver decides nothing: it feeds bytes, time and commands to the same machines
//! the simulator runs, and carries out what they emit.
//!
//! Modules: [`addr`] (socket addresses as the core's opaque addresses), [`runner`] (one
//! task per node: UDP datagrams, length-prefixed TCP frames with a sender handshake,
//! `sleep_until(next_deadline)`, commands, a stand-in workload, journals), [`config`]
//! (the node's TOML file), [`admin`] (operator commands), [`keyring`] (AES-256-GCM
//! gossip encryption), [`tls`] (mutual TLS with roles in certificates), [`metrics`]
//! (Prometheus text), [`recv_stamp`] (how long each datagram waited), [`self_watch`] (the loop lag and resource samples the core's health
//! machines read).

pub mod addr;
pub mod admin;
pub mod config;
pub mod keyring;
pub mod metrics;
pub mod recv_stamp;
pub mod runner;
pub mod self_watch;
pub mod tls;

pub use addr::{addr_of, socket_of};
