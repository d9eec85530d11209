//! Operator commands (like serf's `members` and `rtt`), served on the node's TCP port.
//!
//! A connection whose first frame is [`ADMIN_HELLO`] (longer than any node address, so
//! it cannot be mistaken for a peer's introduction) is an admin session: one JSON
//! request frame, one JSON answer frame. The node's task answers from its machine; the
//! driver adds nothing of its own.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The first frame of an admin connection.
pub const ADMIN_HELLO: &[u8] = b"meridian-admin/1 (operator session)";
/// Requests and answers are small.
pub const MAX_ADMIN_FRAME: usize = 4 << 20;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "lowercase")]
pub enum Request {
    /// The node's own-cluster membership table.
    Members,
    /// The node's RTT estimate to `node` (its filtered measurement when fresh, else the
    /// Vivaldi coordinates), in its own cluster.
    Rtt { node: u32 },
    /// Submit a job to this gate.
    Submit(JobFile),
    /// The jobs this gate leads, and those it finished lately.
    Jobs,
}

/// A job as a client describes it (`meridian-node submit JOB.toml`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobFile {
    /// Defaults to a fresh id.
    #[serde(default)]
    pub id: Option<u64>,
    /// Workflows per DC.
    pub workflows: u32,
    /// How many DCs the router picks (default 1)...
    #[serde(default)]
    pub datacenters: Option<u16>,
    /// ...or exactly these DC ids (pinned, not routed).
    #[serde(default)]
    pub dcs: Option<Vec<u16>>,
    /// DCs the router ranks 10 % better.
    #[serde(default)]
    pub prefer: Vec<u16>,
    /// The job's timeout in seconds (none: only stuck detection ends it).
    #[serde(default)]
    pub timeout_s: Option<u64>,
    /// Routing key (runs of the same test share routing state); default the job id.
    #[serde(default)]
    pub key: Option<u64>,
}

impl JobFile {
    /// The submission `client` makes (AD-24 counts each client apart).
    pub fn input(
        &self,
        job: meridian_core::JobId,
        client: u64,
    ) -> meridian_core::node::Input<'static> {
        use meridian_core::node::DcRequest;
        use meridian_core::DcId;
        let dcs = match &self.dcs {
            Some(d) => DcRequest::Pinned(d.iter().map(|x| DcId(*x)).collect()),
            None => DcRequest::Routed {
                count: self.datacenters.unwrap_or(1),
                preferred: self.prefer.iter().map(|x| DcId(*x)).collect(),
                key: self.key,
            },
        };
        meridian_core::node::Input::SubmitJob {
            job,
            dcs,
            workflows: self.workflows,
            timeout: self.timeout_s.map(Duration::from_secs),
            client,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobView {
    pub job: u64,
    pub pending: bool,
    pub timed_out_declared: bool,
    pub dcs: Vec<DcJobView>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DcJobView {
    pub dc: u16,
    pub accepted: bool,
    pub status: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MemberView {
    pub node: u32,
    pub addr: Option<SocketAddr>,
    pub role: String,
    pub status: String,
    pub incarnation: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RttView {
    pub node: u32,
    pub rtt_ms: f64,
    pub sigma_ms: f64,
    pub ucb_ms: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "lowercase")]
pub enum Answer {
    Members {
        members: Vec<MemberView>,
    },
    Rtt {
        estimate: Option<RttView>,
    },
    Submitted {
        job: u64,
        state: String,
    },
    Jobs {
        running: Vec<JobView>,
        finished: Vec<(u64, String)>,
    },
    Error {
        message: String,
    },
}

/// Ask the node at `node` one thing.
pub async fn ask(node: SocketAddr, req: &Request) -> std::io::Result<Answer> {
    let fut = async {
        let mut s = TcpStream::connect(node).await?;
        write(&mut s, ADMIN_HELLO).await?;
        write(
            &mut s,
            &serde_json::to_vec(req).map_err(std::io::Error::other)?,
        )
        .await?;
        let bytes = read(&mut s).await?;
        serde_json::from_slice(&bytes).map_err(std::io::Error::other)
    };
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .map_err(|_| std::io::Error::other("no answer within 10 s"))?
}

pub(crate) async fn write(s: &mut TcpStream, bytes: &[u8]) -> std::io::Result<()> {
    s.write_all(&(bytes.len() as u32).to_be_bytes()).await?;
    s.write_all(bytes).await?;
    s.flush().await
}

pub(crate) async fn read(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_ADMIN_FRAME {
        return Err(std::io::Error::other("frame too large"));
    }
    let mut buf = vec![0u8; len];
    s.read_exact(&mut buf).await?;
    Ok(buf)
}

/// `members` as a table for people.
pub fn members_table(members: &[MemberView]) -> String {
    let mut out = format!(
        "{:<6} {:<22} {:<8} {:<12} {}\n",
        "NODE", "ADDRESS", "ROLE", "STATUS", "INC"
    );
    for m in members {
        out.push_str(&format!(
            "{:<6} {:<22} {:<8} {:<12} {}\n",
            m.node,
            m.addr.map_or_else(|| "-".to_string(), |a| a.to_string()),
            m.role,
            m.status,
            m.incarnation
        ));
    }
    out
}

/// `jobs` as a table for people.
pub fn jobs_table(running: &[JobView], finished: &[(u64, String)]) -> String {
    let mut out = format!("{:<20} {:<10} {}\n", "JOB", "STATE", "DATACENTERS");
    for j in running {
        let dcs: Vec<String> = j
            .dcs
            .iter()
            .map(|d| {
                format!(
                    "dc{} {}",
                    d.dc,
                    if d.accepted {
                        d.status.as_str()
                    } else {
                        "sent"
                    }
                )
            })
            .collect();
        let state = if j.pending {
            "pending"
        } else if j.timed_out_declared {
            "timing-out"
        } else {
            "running"
        };
        out.push_str(&format!("{:<20} {:<10} {}\n", j.job, state, dcs.join(", ")));
    }
    for (job, state) in finished {
        out.push_str(&format!("{job:<20} {state:<10}\n"));
    }
    out
}
