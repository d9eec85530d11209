//! Overload protection and backpressure (AD-18, AD-22, AD-23, AD-24, AD-32, AD-37;
//! backpressure.md). Pure state driven by `(input, now)`:
//! - [`class`]: every wire message's class and priority, in one place;
//! - [`overload`]: the hybrid overload detector and the load shedder it feeds;
//! - [`inflight`]: in-flight caps per priority;
//! - [`stats`]: the manager's tiered stats buffer, whose fill is the backpressure level;
//! - [`flush`]: the worker's progress flush per level;
//! - [`gate`]: the gate's per-DC aggregation of manager levels;
//! - [`rate_limit`]: AD-24's per-client, per-operation sliding windows.

pub mod class;
pub mod flush;
pub mod gate;
pub mod inflight;
pub mod overload;
pub mod rate_limit;
pub mod stats;
