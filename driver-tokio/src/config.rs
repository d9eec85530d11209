//! A node's TOML file (`meridian-node run --config FILE`).
//!
//! ```toml
//! id = 1                      # node id, unique in the whole deployment
//! name = "us-east/manager-0"  # for people
//! role = "manager"            # gate | manager | worker
//! dc = 0                      # datacenter id
//! bind = "127.0.0.1:7101"     # UDP (membership) and TCP (frames) on one port
//! seeds = ["127.0.0.1:7102"]  # own cluster: the DC's nodes, or (gates) the gates
//! # The election group: managers list their DC's managers, gates every gate.
//! voters = [{ id = 1, addr = "127.0.0.1:7101" }, { id = 2, addr = "127.0.0.1:7102" }]
//! # Gates only: each DC's managers, which the gate observes and routes jobs to.
//! [[observe]]
//! dc = 1
//! seeds = ["127.0.0.1:7201"]
//! # Protocol overrides (durations in milliseconds), membership.md's names.
//! [membership]
//! probe_interval = 1000
//! ```

use crate::addr::addr_of;
use crate::keyring::Keyring;
use meridian_core::leadership::ElectionConfig;
use meridian_core::membership::Config as MembershipConfig;
use meridian_core::node::NodeConfig;
use meridian_core::{DcId, Incarnation, NodeId, Role};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::Path;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeFile {
    pub id: u32,
    #[serde(default)]
    pub name: String,
    pub role: RoleName,
    #[serde(default)]
    pub dc: u16,
    pub bind: SocketAddr,
    #[serde(default)]
    pub seeds: Vec<SocketAddr>,
    #[serde(default)]
    pub voters: Vec<Voter>,
    #[serde(default)]
    pub observe: Vec<Observe>,
    #[serde(default)]
    pub membership: MembershipConfig,
    /// Seeds the node's randomness (probe order, jitter); defaults to the id.
    #[serde(default)]
    pub seed: Option<u64>,
    #[serde(default)]
    pub security: Security,
    /// Serve Prometheus text metrics on this address (HTTP).
    #[serde(default)]
    pub metrics: Option<SocketAddr>,
    /// `error`, `warn`, `info` (default) or `debug` (every event the machine emits).
    #[serde(default)]
    pub log_level: Option<String>,
    /// Workers: how long each workflow runs, `[min, max]` ms (a stand-in workload).
    #[serde(default)]
    pub workflow_ms: Option<(u64, u64)>,
    /// Mutual TLS for frames: PEM files, relative to this file's directory.
    #[serde(default)]
    pub tls: Option<TlsFiles>,
    /// Send the node this process's CPU and memory use each second (AD-18's resource
    /// signal: above 70/85/95% of the cores or memory it may use, the node grades
    /// itself busy/stressed/overloaded and sheds by priority). On by default.
    #[serde(default = "yes")]
    pub resource_samples: bool,
}

fn yes() -> bool {
    true
}

/// `[tls]`: the cluster CA, this node's certificate (its role in a
/// `meridian://role/<role>` URI SAN) and key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    pub ca: std::path::PathBuf,
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

/// `[security]`: `keys`, 64 hex digits each, the first the primary (gossip datagrams are
/// sealed with it and opened with any). Without keys datagrams travel in the clear.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Security {
    #[serde(default)]
    pub keys: Vec<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RoleName {
    Gate,
    Manager,
    Worker,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Voter {
    pub id: u32,
    pub addr: SocketAddr,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Observe {
    pub dc: u16,
    pub seeds: Vec<SocketAddr>,
}

#[derive(Debug)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl NodeFile {
    pub fn load(path: &Path) -> Result<NodeFile, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
        Self::parse(&text).map_err(|e| ConfigError(format!("{}: {e}", path.display())))
    }

    pub fn parse(text: &str) -> Result<NodeFile, ConfigError> {
        let f: NodeFile = toml::from_str(text).map_err(|e| ConfigError(e.to_string()))?;
        if f.role != RoleName::Gate && !f.observe.is_empty() {
            return Err(ConfigError("`observe` is for gates only".into()));
        }
        if f.role == RoleName::Worker && !f.voters.is_empty() {
            return Err(ConfigError(
                "workers have no election group (`voters`)".into(),
            ));
        }
        f.keyring()?;
        f.log_level()?;
        Ok(f)
    }

    /// The log level (`info` unless set).
    pub fn log_level(&self) -> Result<tracing::Level, ConfigError> {
        match self.log_level.as_deref().unwrap_or("info") {
            "error" => Ok(tracing::Level::ERROR),
            "warn" => Ok(tracing::Level::WARN),
            "info" => Ok(tracing::Level::INFO),
            "debug" => Ok(tracing::Level::DEBUG),
            "trace" => Ok(tracing::Level::TRACE),
            other => Err(ConfigError(format!(
                "log_level {other:?}: error, warn, info, debug or trace"
            ))),
        }
    }

    /// The TLS identity, if `[tls]` names one; paths relative to `base`.
    pub fn tls(&self, base: &Path) -> Result<Option<crate::tls::Tls>, ConfigError> {
        let Some(t) = &self.tls else {
            return Ok(None);
        };
        crate::tls::Tls::from_files(
            &base.join(&t.ca),
            &base.join(&t.cert),
            &base.join(&t.key),
            self.role(),
        )
        .map(Some)
        .map_err(|e| ConfigError(format!("tls: {e}")))
    }

    /// The gossip keyring, if `[security] keys` names any.
    pub fn keyring(&self) -> Result<Option<Keyring>, ConfigError> {
        if self.security.keys.is_empty() {
            return Ok(None);
        }
        Keyring::from_hex(&self.security.keys)
            .map(Some)
            .map_err(|e| ConfigError(format!("security.keys: {e}")))
    }

    pub fn role(&self) -> Role {
        match self.role {
            RoleName::Gate => Role::Gate,
            RoleName::Manager => Role::Manager,
            RoleName::Worker => Role::Worker,
        }
    }

    /// The machine's configuration, for a node bound at `bound` (the configured address,
    /// or the one the OS picked for port 0). No store yet: incarnation and vote start at
    /// zero (a restarted node refutes its old incarnation like any rejoining member).
    pub fn node_config(&self, bound: SocketAddr) -> NodeConfig {
        NodeConfig {
            node: NodeId(self.id),
            role: self.role(),
            dc: DcId(self.dc),
            addr: addr_of(bound),
            seeds: self
                .seeds
                .iter()
                .filter(|s| **s != bound)
                .map(|s| addr_of(*s))
                .collect(),
            observe: self
                .observe
                .iter()
                .map(|o| (DcId(o.dc), o.seeds.iter().map(|s| addr_of(*s)).collect()))
                .collect(),
            membership: self.membership.clone(),
            incarnation: Incarnation(0),
            seed: self.seed.unwrap_or(self.id as u64),
            voters: self
                .voters
                .iter()
                .map(|v| (NodeId(v.id), addr_of(v.addr)))
                .collect(),
            election: ElectionConfig::default(),
            persisted_vote: (0, None),
            backpressure: true,
            job_silence: true,
            routing_hysteresis: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manager_file_becomes_its_machine_config() {
        let f = NodeFile::parse(
            r#"
            id = 7
            name = "us-east/manager-0"
            role = "manager"
            dc = 2
            bind = "127.0.0.1:7101"
            seeds = ["127.0.0.1:7101", "127.0.0.1:7102"]
            voters = [{ id = 7, addr = "127.0.0.1:7101" }, { id = 8, addr = "127.0.0.1:7102" }]
            [membership]
            probe_interval = 500
            "#,
        )
        .unwrap();
        let c = f.node_config("127.0.0.1:7101".parse().unwrap());
        assert_eq!((c.node, c.role, c.dc), (NodeId(7), Role::Manager, DcId(2)));
        assert_eq!(c.seeds, vec![addr_of("127.0.0.1:7102".parse().unwrap())]);
        assert_eq!(c.voters.len(), 2);
        assert_eq!(c.membership.probe_interval.as_millis(), 500);
        assert_eq!(
            c.membership.probe_timeout,
            MembershipConfig::default().probe_timeout
        );
    }

    #[test]
    fn bad_files_name_what_is_wrong() {
        let e = NodeFile::parse("id = 1\nrole = \"boss\"\nbind = \"127.0.0.1:1\"").unwrap_err();
        assert!(e.0.contains("role"), "{e}");
        let e = NodeFile::parse("id = 1\nrole = \"worker\"\nbind = \"127.0.0.1:1\"\nfoo = 2")
            .unwrap_err();
        assert!(e.0.contains("foo"), "{e}");
        let e = NodeFile::parse(
            "id = 1\nrole = \"worker\"\nbind = \"127.0.0.1:1\"\n[[observe]]\ndc = 1\nseeds = []",
        )
        .unwrap_err();
        assert!(e.0.contains("gates only"), "{e}");
    }
}
