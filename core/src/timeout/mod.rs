//! Workflow progress, healthcheck extensions and fence-tokened adaptive job timeouts
//! (AD-26, AD-33, AD-34; jobs.md §2-§5). Pure machines and state; the job plane
//! (`crate::jobs`) wires them: the leader manager owns a [`workflow::Lifecycle`] and a
//! [`job::JobTimeout`] per job and a [`extension::WorkerExtensions`] per worker; the gate
//! a [`gate::GateTimeouts`].

pub mod extension;
pub mod gate;
pub mod job;
pub mod workflow;
