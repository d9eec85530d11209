//! Record and replay (issue 8): a node's journal is how it was built and every input it
//! was given, each with its instant and a digest of what the machine emitted. Replaying
//! a journal builds the same machine and feeds it the same inputs at the same instants;
//! since the machine is a pure function of them, every digest must come out identical,
//! which turns a production incident into a deterministic repro (`meridian-sim replay`).
//!
//! Format: a sequence of records, each a 4-byte big-endian length and a postcard body;
//! the first record is [`Record::Start`]. Pure code: the driver writes the bytes, the
//! simulator's CLI reads them.

use crate::id::{Addr, JobId, NodeId};
use crate::io::{Output, Outputs};
use crate::jobs::gate::DcRequest;
use crate::jobs::WorkflowIndex;
use crate::node::{Input, Node, NodeConfig};
use crate::time::Instant;
use serde::{Deserialize, Serialize};

/// 2: a submission names its client (AD-24).
pub const JOURNAL_VERSION: u8 = 2;
/// Largest record accepted when reading (a frame of a large cluster's push-pull fits).
pub const MAX_RECORD: usize = 32 << 20;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Record {
    /// How the node was built, when, and the digest of what `Node::new` emitted.
    Start {
        version: u8,
        config: Box<NodeConfig>,
        at: Instant,
        digest: u64,
    },
    /// One input, its instant, and the digest of what the step emitted.
    Step {
        at: Instant,
        input: RecordedInput,
        digest: u64,
    },
}

/// An owned [`Input`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum RecordedInput {
    Datagram {
        from: Addr,
        bytes: Vec<u8>,
    },
    Frame {
        from: Addr,
        bytes: Vec<u8>,
    },
    Tick,
    Leave,
    LoopLag {
        ratio: f64,
    },
    HeardFrom(NodeId),
    SubmitJob {
        job: JobId,
        dcs: DcRequest,
        workflows: u32,
        timeout_us: Option<u64>,
        client: u64,
    },
    ProcessingLatency {
        ms: f64,
    },
    WorkflowFinished {
        job: JobId,
        workflow: WorkflowIndex,
        items: u64,
    },
    WorkflowProgress {
        job: JobId,
        workflow: WorkflowIndex,
        completed: u64,
        total: u64,
    },
    /// Last, so journals written before it keep their encoding.
    Oob {
        from: Addr,
        bytes: Vec<u8>,
    },
    /// After `Oob`, for the same reason.
    Resources {
        cpu_percent: f64,
        mem_percent: f64,
    },
}

impl RecordedInput {
    pub fn of(input: &Input<'_>) -> RecordedInput {
        match input {
            Input::Datagram { from, bytes } => RecordedInput::Datagram {
                from: *from,
                bytes: bytes.to_vec(),
            },
            Input::Frame { from, bytes } => RecordedInput::Frame {
                from: *from,
                bytes: bytes.to_vec(),
            },
            Input::Oob { from, bytes } => RecordedInput::Oob {
                from: *from,
                bytes: bytes.to_vec(),
            },
            Input::Tick => RecordedInput::Tick,
            Input::Leave => RecordedInput::Leave,
            Input::LoopLag { ratio } => RecordedInput::LoopLag { ratio: *ratio },
            Input::HeardFrom(n) => RecordedInput::HeardFrom(*n),
            Input::SubmitJob {
                job,
                dcs,
                workflows,
                timeout,
                client,
            } => RecordedInput::SubmitJob {
                job: *job,
                dcs: dcs.clone(),
                workflows: *workflows,
                timeout_us: timeout.map(|t| t.as_micros() as u64),
                client: *client,
            },
            Input::ProcessingLatency { ms } => RecordedInput::ProcessingLatency { ms: *ms },
            Input::Resources {
                cpu_percent,
                mem_percent,
            } => RecordedInput::Resources {
                cpu_percent: *cpu_percent,
                mem_percent: *mem_percent,
            },
            Input::WorkflowFinished {
                job,
                workflow,
                items,
            } => RecordedInput::WorkflowFinished {
                job: *job,
                workflow: *workflow,
                items: *items,
            },
            Input::WorkflowProgress {
                job,
                workflow,
                completed,
                total,
            } => RecordedInput::WorkflowProgress {
                job: *job,
                workflow: *workflow,
                completed: *completed,
                total: *total,
            },
        }
    }

    pub fn as_input(&self) -> Input<'_> {
        match self {
            RecordedInput::Datagram { from, bytes } => Input::Datagram { from: *from, bytes },
            RecordedInput::Frame { from, bytes } => Input::Frame { from: *from, bytes },
            RecordedInput::Oob { from, bytes } => Input::Oob { from: *from, bytes },
            RecordedInput::Tick => Input::Tick,
            RecordedInput::Leave => Input::Leave,
            RecordedInput::LoopLag { ratio } => Input::LoopLag { ratio: *ratio },
            RecordedInput::HeardFrom(n) => Input::HeardFrom(*n),
            RecordedInput::SubmitJob {
                job,
                dcs,
                workflows,
                timeout_us,
                client,
            } => Input::SubmitJob {
                job: *job,
                dcs: dcs.clone(),
                workflows: *workflows,
                timeout: timeout_us.map(core::time::Duration::from_micros),
                client: *client,
            },
            RecordedInput::ProcessingLatency { ms } => Input::ProcessingLatency { ms: *ms },
            RecordedInput::Resources {
                cpu_percent,
                mem_percent,
            } => Input::Resources {
                cpu_percent: *cpu_percent,
                mem_percent: *mem_percent,
            },
            RecordedInput::WorkflowFinished {
                job,
                workflow,
                items,
            } => Input::WorkflowFinished {
                job: *job,
                workflow: *workflow,
                items: *items,
            },
            RecordedInput::WorkflowProgress {
                job,
                workflow,
                completed,
                total,
            } => Input::WorkflowProgress {
                job: *job,
                workflow: *workflow,
                completed: *completed,
                total: *total,
            },
        }
    }

    /// A short name for reports.
    pub fn kind(&self) -> &'static str {
        match self {
            RecordedInput::Datagram { .. } => "datagram",
            RecordedInput::Frame { .. } => "frame",
            RecordedInput::Oob { .. } => "oob",
            RecordedInput::Tick => "tick",
            RecordedInput::Leave => "leave",
            RecordedInput::LoopLag { .. } => "loop-lag",
            RecordedInput::HeardFrom(_) => "heard-from",
            RecordedInput::SubmitJob { .. } => "submit-job",
            RecordedInput::ProcessingLatency { .. } => "processing-latency",
            RecordedInput::Resources { .. } => "resources",
            RecordedInput::WorkflowFinished { .. } => "workflow-finished",
            RecordedInput::WorkflowProgress { .. } => "workflow-progress",
        }
    }
}

/// A digest of one step's outputs, in order: every datagram and frame (destination and
/// bytes) and every event (its postcard encoding).
pub fn digest(out: &Outputs) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for o in out {
        match o {
            Output::Transmit { to, bytes } => {
                h.update(&[1]);
                h.update(to.as_bytes());
                h.update(&(bytes.len() as u64).to_le_bytes());
                h.update(bytes);
            }
            Output::Frame { to, bytes } => {
                h.update(&[2]);
                h.update(to.as_bytes());
                h.update(&(bytes.len() as u64).to_le_bytes());
                h.update(bytes);
            }
            Output::Oob { to, bytes } => {
                h.update(&[4]);
                h.update(to.as_bytes());
                h.update(&(bytes.len() as u64).to_le_bytes());
                h.update(bytes);
            }
            Output::Event(e) => {
                h.update(&[3]);
                let bytes = postcard::to_allocvec(e).unwrap_or_default();
                h.update(&(bytes.len() as u64).to_le_bytes());
                h.update(&bytes);
            }
        }
    }
    h.digest()
}

/// One record, framed.
pub fn encode(r: &Record) -> Vec<u8> {
    let body = postcard::to_allocvec(r).expect("records serialize");
    let mut v = Vec::with_capacity(4 + body.len());
    v.extend_from_slice(&(body.len() as u32).to_be_bytes());
    v.extend_from_slice(&body);
    v
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JournalError {
    #[error("record {index}: truncated")]
    Truncated { index: usize },
    #[error("record {index}: {len} bytes, more than the {MAX_RECORD} allowed")]
    TooLarge { index: usize, len: usize },
    #[error("record {index}: undecodable ({reason})")]
    Undecodable { index: usize, reason: String },
    #[error("the journal does not start with a Start record")]
    NoStart,
    #[error("journal version {0}, this build reads {JOURNAL_VERSION}")]
    Version(u8),
}

/// Every record of a journal.
pub fn decode_all(mut bytes: &[u8]) -> Result<Vec<Record>, JournalError> {
    let mut v = Vec::new();
    while !bytes.is_empty() {
        let index = v.len();
        let Some((len, rest)) = bytes.split_first_chunk::<4>() else {
            return Err(JournalError::Truncated { index });
        };
        let len = u32::from_be_bytes(*len) as usize;
        if len > MAX_RECORD {
            return Err(JournalError::TooLarge { index, len });
        }
        if rest.len() < len {
            return Err(JournalError::Truncated { index });
        }
        let r = postcard::from_bytes(&rest[..len]).map_err(|e| JournalError::Undecodable {
            index,
            reason: e.to_string(),
        })?;
        v.push(r);
        bytes = &rest[len..];
    }
    Ok(v)
}

/// What a replay found.
#[derive(Debug, Clone, PartialEq)]
pub enum Replay {
    /// Every step emitted exactly what was recorded.
    Identical {
        steps: usize,
        span: core::time::Duration,
    },
    /// Step `step` (0: construction) emitted something else.
    Diverged {
        step: usize,
        at: Instant,
        input: &'static str,
    },
}

/// Build the recorded machine and feed it the recorded inputs.
pub fn replay(records: &[Record]) -> Result<Replay, JournalError> {
    let Some(Record::Start {
        version,
        config,
        at,
        digest: d0,
    }) = records.first()
    else {
        return Err(JournalError::NoStart);
    };
    if *version != JOURNAL_VERSION {
        return Err(JournalError::Version(*version));
    }
    let (mut node, out) = Node::new((**config).clone(), *at);
    if digest(&out) != *d0 {
        return Ok(Replay::Diverged {
            step: 0,
            at: *at,
            input: "construction",
        });
    }
    let mut last = *at;
    for (i, r) in records.iter().enumerate().skip(1) {
        let Record::Step {
            at,
            input,
            digest: d,
        } = r
        else {
            return Err(JournalError::Undecodable {
                index: i,
                reason: "a second Start record".into(),
            });
        };
        let out = node.step(input.as_input(), *at);
        if digest(&out) != *d {
            return Ok(Replay::Diverged {
                step: i,
                at: *at,
                input: input.kind(),
            });
        }
        last = *at;
    }
    Ok(Replay::Identical {
        steps: records.len() - 1,
        span: last.saturating_since(*at),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(i: u32) -> NodeConfig {
        crate::node::test_worker_config(i, vec![Addr::from_u32(1 - i)])
    }

    /// Two machines talk for a minute of virtual time; node 0's journal replays
    /// identically, and a changed input or config is caught at the step it matters.
    #[test]
    fn a_journal_replays_identically_and_a_change_is_caught() {
        let mut journal = Vec::new();
        let t0 = Instant::ZERO;
        let (a, out_a) = Node::new(config(0), t0);
        let (b, out_b) = Node::new(config(1), t0);
        journal.extend(encode(&Record::Start {
            version: JOURNAL_VERSION,
            config: Box::new(config(0)),
            at: t0,
            digest: digest(&out_a),
        }));
        let mut nodes = [a, b];
        // Per node: (due, from, bytes, is_frame), delivered 1 ms after they left.
        type Inbox = Vec<(Instant, Addr, Vec<u8>, bool)>;
        let mut inbox: [Inbox; 2] = [Vec::new(), Vec::new()];
        let route = |out: Outputs, from: usize, now: Instant, q: &mut Vec<_>| {
            for o in out {
                let due = now + crate::time::millis(1);
                match o {
                    Output::Transmit { bytes, .. } => {
                        q.push((due, Addr::from_u32(from as u32), bytes, false))
                    }
                    Output::Frame { bytes, .. } => {
                        q.push((due, Addr::from_u32(from as u32), bytes, true))
                    }
                    Output::Event(_) | Output::Oob { .. } => {}
                }
            }
        };
        route(out_a, 0, t0, &mut inbox[1]);
        route(out_b, 1, t0, &mut inbox[0]);
        let mut now = t0;
        let end = t0 + crate::time::secs(60);
        while now < end {
            now = now + crate::time::millis(100);
            for i in 0..2 {
                let due: Vec<_> = inbox[i].iter().filter(|m| m.0 <= now).cloned().collect();
                inbox[i].retain(|m| m.0 > now);
                let mut inputs: Vec<RecordedInput> = due
                    .into_iter()
                    .map(|(_, f, bytes, frame)| {
                        if frame {
                            RecordedInput::Frame { from: f, bytes }
                        } else {
                            RecordedInput::Datagram { from: f, bytes }
                        }
                    })
                    .collect();
                if nodes[i].next_deadline().is_some_and(|d| d <= now) {
                    inputs.push(RecordedInput::Tick);
                }
                for input in inputs {
                    let out = nodes[i].step(input.as_input(), now);
                    if i == 0 {
                        journal.extend(encode(&Record::Step {
                            at: now,
                            input: input.clone(),
                            digest: digest(&out),
                        }));
                    }
                    route(out, i, now, &mut inbox[1 - i]);
                }
            }
        }
        let records = decode_all(&journal).unwrap();
        assert!(records.len() > 100, "{} records", records.len());
        match replay(&records).unwrap() {
            Replay::Identical { steps, span } => {
                assert_eq!(steps, records.len() - 1);
                assert!(span >= crate::time::secs(59));
            }
            d => panic!("{d:?}"),
        }
        // One datagram changed: caught at that step.
        let mut bent = records.clone();
        let k = bent
            .iter()
            .position(|r| {
                matches!(
                    r,
                    Record::Step {
                        input: RecordedInput::Datagram { .. },
                        ..
                    }
                )
            })
            .unwrap();
        if let Record::Step {
            input: RecordedInput::Datagram { bytes, .. },
            ..
        } = &mut bent[k]
        {
            bytes.truncate(3);
        }
        assert!(matches!(replay(&bent).unwrap(), Replay::Diverged { step, .. } if step == k));
        // Another seed: caught at construction or at the first step it shows.
        let mut other = records.clone();
        if let Record::Start { config, .. } = &mut other[0] {
            config.seed += 1;
        }
        assert!(matches!(replay(&other).unwrap(), Replay::Diverged { .. }));
        // Hostile bytes: typed errors, never a panic.
        assert!(matches!(
            decode_all(&journal[..journal.len() - 1]),
            Err(JournalError::Truncated { .. })
        ));
        assert!(matches!(
            decode_all(&[0xFF, 0xFF, 0xFF, 0xFF]),
            Err(JournalError::TooLarge { .. })
        ));
        assert!(matches!(replay(&records[1..]), Err(JournalError::NoStart)));
    }
}
