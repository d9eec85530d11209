//! The trace file (`meridian-sim run --trace FILE`): versioned JSON lines, specified in
//! `sim/TRACE.md`; and the filter behind `meridian-sim trace`.

use serde_json::{json, Value};
use std::io::{BufRead, Write};

/// Bumped on any change a reader of TRACE.md's version could trip over (a key renamed
/// or removed, a meaning changed). New keys and new event kinds are not changes.
pub const TRACE_VERSION: u64 = 1;

/// The first line of every trace.
pub fn header(scenario: &str, seed: u64, nodes: &[String]) -> Value {
    json!({
        "trace": "meridian-sim",
        "version": TRACE_VERSION,
        "scenario": scenario,
        "seed": seed,
        "nodes": nodes,
    })
}

/// A machine's event: `type` is its top-level kind (`Member`, `Election`, `Job`, ...),
/// `event` the event itself (serde's external tagging: `{"Member": {...}}`).
pub fn event_line(t_us: u64, node: &str, event: &meridian_core::io::Event) -> Value {
    let event = serde_json::to_value(event).unwrap_or(Value::Null);
    let kind = event
        .as_object()
        .and_then(|o| o.keys().next().cloned())
        .or_else(|| event.as_str().map(str::to_string))
        .unwrap_or_default();
    json!({ "t_ms": ms(t_us), "kind": "event", "node": node, "type": kind, "event": event })
}

/// A fault as the scenario states it (`action` and its keys, durations as text).
pub fn fault_line(t_us: u64, fault: &crate::scenario::Fault) -> Value {
    let fault = serde_json::to_value(fault).unwrap_or(Value::Null);
    let action = fault.get("action").cloned().unwrap_or(Value::Null);
    json!({ "t_ms": ms(t_us), "kind": "fault", "type": action, "fault": fault })
}

/// A violation, at the moment the check found it (`at_ms` in the report is its whole
/// milliseconds).
pub fn violation_line(t_us: u64, v: &crate::report::Violation) -> Value {
    json!({
        "t_ms": ms(t_us),
        "kind": "violation",
        "type": v.invariant,
        "detail": v.detail,
    })
}

/// A node's process started, crashed or stopped (after a graceful leave): `type` is
/// `started`, `crashed` or `stopped`. A machine that stops takes its views with it.
pub fn node_line(t_us: u64, node: &str, what: &str) -> Value {
    json!({ "t_ms": ms(t_us), "kind": "node", "type": what, "node": node })
}

pub fn end_line(t_us: u64, trace_hash: &str) -> Value {
    json!({ "t_ms": ms(t_us), "kind": "end", "type": "end", "trace_hash": trace_hash })
}

fn ms(t_us: u64) -> f64 {
    t_us as f64 / 1000.0
}

/// What `meridian-sim trace` keeps. Empty lists keep everything.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    /// Node names; `*` at the end matches a prefix (`us-east/*`), a DC's name alone
    /// matches its nodes. Lines without a node (faults, violations, the end) are kept
    /// only when no node is asked for.
    pub nodes: Vec<String>,
    /// Line kinds (`event`, `node`, `fault`, `violation`, `end`) or types (`Member`,
    /// `Election`, `partition`, `dead-ends-by-higher-inc`, ...), case-insensitive.
    pub kinds: Vec<String>,
    pub from_ms: Option<f64>,
    pub to_ms: Option<f64>,
}

impl Filter {
    fn node_ok(&self, line: &Value) -> bool {
        if self.nodes.is_empty() {
            return true;
        }
        let Some(node) = line.get("node").and_then(Value::as_str) else {
            return false;
        };
        self.nodes.iter().any(|want| match want.strip_suffix('*') {
            Some(prefix) => node.starts_with(prefix),
            None => node == want || node.split('/').next() == Some(want.as_str()),
        })
    }

    fn kind_ok(&self, line: &Value) -> bool {
        if self.kinds.is_empty() {
            return true;
        }
        let field = |k: &str| line.get(k).and_then(Value::as_str).unwrap_or("");
        self.kinds.iter().any(|want| {
            want.eq_ignore_ascii_case(field("kind")) || want.eq_ignore_ascii_case(field("type"))
        })
    }

    fn time_ok(&self, line: &Value) -> bool {
        let t = line.get("t_ms").and_then(Value::as_f64).unwrap_or(0.0);
        self.from_ms.is_none_or(|f| t >= f) && self.to_ms.is_none_or(|to| t <= to)
    }

    pub fn keeps(&self, line: &Value) -> bool {
        self.node_ok(line) && self.kind_ok(line) && self.time_ok(line)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("not a meridian-sim trace (its first line is no trace header)")]
    NoHeader,
    #[error("trace version {0}: this build reads version {TRACE_VERSION}")]
    Version(u64),
    #[error("line {line}: {message}")]
    BadLine { line: usize, message: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Copy the header and every line `filter` keeps from `input` to `out`; returns
/// `(kept, read)` counts of lines after the header.
pub fn filter(
    input: impl BufRead,
    out: &mut impl Write,
    filter: &Filter,
) -> Result<(u64, u64), TraceError> {
    let mut lines = input.lines();
    let first = lines.next().ok_or(TraceError::NoHeader)??;
    let header: Value = serde_json::from_str(&first).map_err(|_| TraceError::NoHeader)?;
    if header.get("trace").and_then(Value::as_str) != Some("meridian-sim") {
        return Err(TraceError::NoHeader);
    }
    let version = header.get("version").and_then(Value::as_u64).unwrap_or(0);
    if version != TRACE_VERSION {
        return Err(TraceError::Version(version));
    }
    writeln!(out, "{first}")?;
    let (mut kept, mut read) = (0, 0);
    for (i, line) in lines.enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        read += 1;
        let v: Value = serde_json::from_str(&line).map_err(|e| TraceError::BadLine {
            line: i + 2,
            message: e.to_string(),
        })?;
        if filter.keeps(&v) {
            writeln!(out, "{line}")?;
            kept += 1;
        }
    }
    Ok((kept, read))
}
