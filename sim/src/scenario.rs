//! Scenario files (TOML): the cluster, the network, protocol overrides and the fault
//! schedule. Every mistake is reported with the file, the key and what is wrong.

use meridian_core::membership::Config;
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
#[error("{file}: {key}: {message}")]
pub struct ScenarioError {
    pub file: String,
    pub key: String,
    pub message: String,
}

pub(crate) fn err(
    file: &Path,
    key: impl Into<String>,
    message: impl Into<String>,
) -> ScenarioError {
    ScenarioError {
        file: file.display().to_string(),
        key: key.into(),
        message: message.into(),
    }
}

/// Humantime durations ("10m", "250ms").
pub fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s)
        .map_err(|e| serde::de::Error::custom(format!("bad duration {s:?}: {e}")))
}

fn de_opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    de_duration(d).map(Some)
}

/// A duration as humantime text both ways (`#[serde(with = "text_duration")]`): what a
/// scenario file says, and what `shrink` writes back (read back exactly).
mod text_duration {
    use serde::{Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        super::de_duration(d)
    }
}

/// As [`text_duration`], for an optional key.
mod opt_text_duration {
    use serde::{Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::text_duration::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        super::de_opt_duration(d)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(deserialize_with = "de_duration")]
    pub duration: Duration,
    pub seed: u64,
    #[serde(rename = "dc")]
    pub dcs: Vec<DcSpec>,
    #[serde(default)]
    pub network: NetworkSpec,
    #[serde(default)]
    pub membership: MembershipOverrides,
    #[serde(default, rename = "fault")]
    pub faults: Vec<Fault>,
    #[serde(default, rename = "job")]
    pub jobs: Vec<JobSpec>,
    /// Load bursts (issue 6): each becomes a series of jobs appended to `jobs`.
    #[serde(default, rename = "load")]
    pub loads: Vec<LoadSpec>,
    /// Stats backpressure (AD-23/37) on (the default); `false` for ablation runs.
    #[serde(default = "yes")]
    pub backpressure: bool,
    /// The DC leaders' job-silence watch (AD-30's job layer) on (the default); `false`
    /// for ablation runs.
    #[serde(default = "yes")]
    pub job_silence: bool,
    /// Routing knobs (AD-36).
    #[serde(default)]
    pub routing: RoutingSpec,
    /// Filled in by [`load`]: where relative paths (the RTT matrix) are resolved.
    #[serde(skip)]
    pub base_dir: PathBuf,
    #[serde(skip)]
    pub file: PathBuf,
}

/// `[routing]`: `hysteresis = false` turns the router's stickiness off (every decision
/// takes the best-scoring DC), for ablation runs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingSpec {
    #[serde(default = "yes")]
    pub hysteresis: bool,
}

impl Default for RoutingSpec {
    fn default() -> Self {
        RoutingSpec { hysteresis: true }
    }
}

/// A `[[job]]` entry: a job (or a series of `count` jobs, one every `every`) submitted to
/// `gate`, run in `datacenters` DCs with `workflows` workflows each, every workflow
/// lasting `U[workflow_duration]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    #[serde(deserialize_with = "de_duration")]
    pub at: Duration,
    pub gate: String,
    #[serde(default = "one")]
    pub datacenters: usize,
    pub workflows: u32,
    #[serde(deserialize_with = "de_duration_range")]
    pub workflow_duration: (Duration, Duration),
    /// The job's timeout (AD-34): past it (plus extensions granted) the job is timed
    /// out. Without one only stuck detection (no progress for 120 s) ends a job.
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub timeout: Option<Duration>,
    /// The DCs to run in, by name (instead of `datacenters` consecutive ones from a
    /// rotating start).
    #[serde(default)]
    pub dcs: Option<Vec<String>>,
    /// DCs the router ranks 10 % better inside their health bucket (routed jobs only).
    #[serde(default)]
    pub prefer: Option<Vec<String>>,
    /// Each workflow reports one more completed item this often (of `duration / every`
    /// items): the progress a worker shows to earn healthcheck extensions (AD-26).
    /// Without it workflows report nothing and never ask for extensions.
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub progress_every: Option<Duration>,
    #[serde(default = "one_u32")]
    pub count: u32,
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub every: Option<Duration>,
    /// From `after` on, the job's workflows running in DC `dc`, or on the workers named
    /// in `nodes`, make no progress: they report no more items and never finish (those
    /// started earlier included): what the timeouts, and for single workers the job
    /// layer (AD-30), must catch. The nodes stay up and run their other jobs.
    #[serde(default)]
    pub stall: Option<Stall>,
    /// Who submits the entry's jobs, as AD-24's rate limiter counts clients (each
    /// client may submit 50 jobs in 10 s to a gate). Default: the entry's own index,
    /// so every `[[job]]` entry is a client of its own.
    #[serde(default)]
    pub client: Option<u32>,
    /// The entry's jobs come from this many clients in turn (default 1): a series
    /// faster than one client's allowance (5 jobs a second) needs several.
    #[serde(default = "one_u32")]
    pub clients: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stall {
    #[serde(default)]
    pub dc: Option<String>,
    #[serde(default)]
    pub nodes: Vec<String>,
    #[serde(deserialize_with = "de_duration")]
    pub after: Duration,
}

impl Stall {
    /// Whether the stall covers a node of DC `dc` named `node`.
    pub fn covers(&self, dc: &str, node: &str) -> bool {
        self.dc.as_deref() == Some(dc) || self.nodes.iter().any(|n| n == node)
    }
}

fn one() -> usize {
    1
}
fn yes() -> bool {
    true
}

/// A `[[load]]` entry: from `at`, for `for`, `jobs_per_s` jobs a second submitted to
/// `gate` (or, with `dc`, run in that DC through its first gate, or the first gate of
/// the scenario), each of `workflows` workflows lasting `U[workflow_duration]`, each
/// workflow reporting `progress_per_s_per_workflow` progress updates a second.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadSpec {
    #[serde(deserialize_with = "de_duration")]
    pub at: Duration,
    #[serde(rename = "for", deserialize_with = "de_duration")]
    pub duration: Duration,
    #[serde(default)]
    pub gate: Option<String>,
    #[serde(default)]
    pub dc: Option<String>,
    pub jobs_per_s: f64,
    pub progress_per_s_per_workflow: f64,
    #[serde(default = "four")]
    pub workflows: u32,
    #[serde(default = "ten_to_twenty", deserialize_with = "de_duration_range")]
    pub workflow_duration: (Duration, Duration),
    /// The clients the series' jobs come from in turn. Default: one per job a second
    /// (rounded up), each well inside AD-24's allowance of 5 jobs a second.
    #[serde(default)]
    pub clients: Option<u32>,
}

fn four() -> u32 {
    4
}
fn ten_to_twenty() -> (Duration, Duration) {
    (Duration::from_secs(10), Duration::from_secs(20))
}

/// The job series a load entry stands for.
fn load_jobs(s: &Scenario, path: &Path) -> Result<Vec<JobSpec>, ScenarioError> {
    let gates: Vec<String> = s
        .dcs
        .iter()
        .flat_map(|d| (0..d.gates).map(move |k| format!("{}/gate-{k}", d.name)))
        .collect();
    let mut out = Vec::new();
    for (i, l) in s.loads.iter().enumerate() {
        let key = |k: &str| format!("load[{i}].{k}");
        let ok = |x: f64| x.is_finite() && x > 0.0 && x <= 1000.0;
        if !ok(l.jobs_per_s) {
            return Err(err(path, key("jobs_per_s"), "must be in (0, 1000]"));
        }
        if !ok(l.progress_per_s_per_workflow) {
            return Err(err(
                path,
                key("progress_per_s_per_workflow"),
                "must be in (0, 1000]",
            ));
        }
        if l.clients == Some(0) {
            return Err(err(path, key("clients"), "must be at least 1"));
        }
        let gate = match (&l.gate, &l.dc) {
            (Some(g), _) => g.clone(),
            (None, Some(dc)) => gates
                .iter()
                .find(|g| g.starts_with(&format!("{dc}/")))
                .or(gates.first())
                .cloned()
                .ok_or_else(|| err(path, key("dc"), "the scenario has no gate"))?,
            (None, None) => return Err(err(path, key("gate"), "needs a gate or a dc")),
        };
        let count = (l.jobs_per_s * l.duration.as_secs_f64()).round().max(1.0) as u32;
        out.push(JobSpec {
            at: l.at,
            gate,
            datacenters: 1,
            workflows: l.workflows,
            workflow_duration: l.workflow_duration,
            timeout: None,
            dcs: l.dc.clone().map(|d| vec![d]),
            prefer: None,
            progress_every: Some(Duration::from_secs_f64(1.0 / l.progress_per_s_per_workflow)),
            count,
            every: Some(Duration::from_secs_f64(1.0 / l.jobs_per_s)),
            stall: None,
            client: None,
            clients: l.clients.unwrap_or(l.jobs_per_s.ceil() as u32),
        });
    }
    Ok(out)
}
fn one_u32() -> u32 {
    1
}

fn de_duration_range<'de, D: Deserializer<'de>>(d: D) -> Result<(Duration, Duration), D::Error> {
    let v = <[String; 2]>::deserialize(d)?;
    let parse = |s: &str| {
        humantime::parse_duration(s)
            .map_err(|e| serde::de::Error::custom(format!("bad duration {s:?}: {e}")))
    };
    let (lo, hi) = (parse(&v[0])?, parse(&v[1])?);
    if lo > hi {
        return Err(serde::de::Error::custom(
            "the range's low end exceeds its high end",
        ));
    }
    Ok((lo, hi))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DcSpec {
    pub name: String,
    #[serde(default)]
    pub gates: usize,
    #[serde(default)]
    pub managers: usize,
    #[serde(default)]
    pub workers: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    #[serde(default = "default_intra")]
    pub intra_dc_rtt_ms: f64,
    /// Keyed "dcA/dcB", symmetric.
    #[serde(default)]
    pub inter_dc_rtt_ms: BTreeMap<String, f64>,
    /// RTT between DC pairs the table does not name.
    #[serde(default = "default_inter")]
    pub default_inter_dc_rtt_ms: f64,
    /// Path (relative to the scenario) of a square CSV of RTTs in ms between node names.
    pub matrix: Option<String>,
    /// Each one-way delay is scaled by a uniform factor in `1 ± jitter`.
    #[serde(default)]
    pub jitter: f64,
    #[serde(default)]
    pub loss: f64,
    /// Probability that a datagram arrives corrupted (truncated, or replaced by garbage
    /// that fails the envelope's version check, as a checksum would): the receiver must
    /// count and drop it.
    #[serde(default)]
    pub corrupt: f64,
    /// Probability that a datagram is delivered twice (the copy with its own delay).
    #[serde(default)]
    pub duplicate: f64,
}

fn default_intra() -> f64 {
    1.0
}
fn default_inter() -> f64 {
    100.0
}

impl Default for NetworkSpec {
    fn default() -> Self {
        NetworkSpec {
            intra_dc_rtt_ms: default_intra(),
            inter_dc_rtt_ms: BTreeMap::new(),
            default_inter_dc_rtt_ms: default_inter(),
            matrix: None,
            jitter: 0.0,
            loss: 0.0,
            corrupt: 0.0,
            duplicate: 0.0,
        }
    }
}

/// Protocol overrides; anything unset keeps the spec's default.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MembershipOverrides {
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub probe_interval: Option<Duration>,
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub probe_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub suspicion_min: Option<Duration>,
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub suspicion_max: Option<Duration>,
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub push_pull_interval: Option<Duration>,
    /// Periodic push-pulls start with table digests (default off; `membership::digest`).
    pub sync_digests: Option<bool>,
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub reconnect_interval: Option<Duration>,
    /// How long Dead/Left tombstones are kept (default 1 h).
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub tombstone: Option<Duration>,
    pub lifeguard: Option<bool>,
    /// Peer-health gossip and its effects (membership.md §9; default on).
    pub peer_health: Option<bool>,
    /// The out-of-band probe channel (membership.md §9; default off).
    pub oob: Option<bool>,
    pub indirect_helpers: Option<usize>,
    pub retransmit_mult: Option<f64>,
    pub gossip_per_datagram: Option<usize>,
    /// Vivaldi coordinates on PINGs and ACKs (default on).
    pub coordinates: Option<bool>,
    /// Probe and suspicion timeouts follow the RTT bound (default on).
    pub adaptive_timeouts: Option<bool>,
    /// Switch on the planted bug (`membership::Config::injected_bug`); refused unless
    /// this is a test build of the simulator (meridian-core's `injected-bugs` feature).
    pub injected_bug: Option<bool>,
}

impl MembershipOverrides {
    pub fn apply(&self, mut c: Config) -> Config {
        // Every override that is set replaces the default of the same name.
        macro_rules! take {
            ($($field:ident),*) => {$(
                if let Some(v) = self.$field {
                    c.$field = v;
                }
            )*};
        }
        take!(
            probe_interval,
            probe_timeout,
            push_pull_interval,
            sync_digests,
            reconnect_interval,
            tombstone,
            lifeguard,
            peer_health,
            oob,
            indirect_helpers,
            retransmit_mult,
            gossip_per_datagram,
            coordinates,
            adaptive_timeouts,
            injected_bug
        );
        c.suspicion_min = self.suspicion_min.or(c.suspicion_min);
        c.suspicion_max = self.suspicion_max.or(c.suspicion_max);
        c
    }
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    Crash {
        #[serde(with = "text_duration")]
        at: Duration,
        nodes: Vec<String>,
    },
    /// Start crashed nodes again. `state = "kept"` (the default): what a node persists
    /// (its incarnation, its election vote) survived; `"lost"`: its disk did not, and it
    /// comes back at incarnation 0 having never voted.
    Restart {
        #[serde(with = "text_duration")]
        at: Duration,
        nodes: Vec<String>,
        #[serde(default, skip_serializing_if = "RestartState::is_kept")]
        state: RestartState,
    },
    /// From now on each datagram is, with probability `rate`, held back an extra
    /// `extra_ms = [lo, hi]` (uniform; default [10, 100]) so later ones overtake it.
    Reorder {
        #[serde(with = "text_duration")]
        at: Duration,
        rate: f64,
        #[serde(default = "default_reorder_ms")]
        extra_ms: [u64; 2],
    },
    /// The one-way delay from DC `from` to DC `to` becomes `delay_ms` (the way back
    /// keeps its own).
    OneWayLatency {
        #[serde(with = "text_duration")]
        at: Duration,
        from: String,
        to: String,
        delay_ms: f64,
    },
    /// Loss on one link: between two nodes or DCs (names of either), both ways, or
    /// only from the first to the second with `one_way`. Rate 0 ends it.
    LinkLoss {
        #[serde(with = "text_duration")]
        at: Duration,
        between: [String; 2],
        rate: f64,
        #[serde(default)]
        one_way: bool,
    },
    /// A flapping link: from `at` to `until` (default: the end), the link between two
    /// nodes or DCs is cut for `down` at the start of every `period`.
    Flap {
        #[serde(with = "text_duration")]
        at: Duration,
        between: [String; 2],
        #[serde(with = "text_duration")]
        period: Duration,
        #[serde(with = "text_duration")]
        down: Duration,
        #[serde(
            default,
            with = "opt_text_duration",
            skip_serializing_if = "Option::is_none"
        )]
        until: Option<Duration>,
        #[serde(default)]
        one_way: bool,
    },
    /// A correlated outage: every node of the given DCs crashes at once and restarts
    /// (state kept) `for` later.
    DcOutage {
        #[serde(with = "text_duration")]
        at: Duration,
        dcs: Vec<String>,
        #[serde(rename = "for", with = "text_duration")]
        duration: Duration,
    },
    /// Cut whichever manager leads DC `dc` at that moment (or the gate leader with
    /// `dc = "gates"`) off from every other node (a partition; `heal` ends it).
    IsolateLeader {
        #[serde(with = "text_duration")]
        at: Duration,
        dc: String,
    },
    /// Crash whichever manager leads DC `dc` at that moment (or the gate leader with
    /// `dc = "gates"`); with `restart_after`, restart the same node that much later.
    CrashLeader {
        #[serde(with = "text_duration")]
        at: Duration,
        dc: String,
        #[serde(
            default,
            with = "opt_text_duration",
            skip_serializing_if = "Option::is_none"
        )]
        restart_after: Option<Duration>,
    },
    /// Graceful leave (the node announces it, then stops).
    Leave {
        #[serde(with = "text_duration")]
        at: Duration,
        nodes: Vec<String>,
    },
    Partition {
        #[serde(with = "text_duration")]
        at: Duration,
        groups: Vec<Vec<String>>,
        #[serde(default)]
        one_way: bool,
    },
    Heal {
        #[serde(with = "text_duration")]
        at: Duration,
    },
    Loss {
        #[serde(with = "text_duration")]
        at: Duration,
        rate: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        nodes: Option<Vec<String>>,
    },
    Corrupt {
        #[serde(with = "text_duration")]
        at: Duration,
        rate: f64,
    },
    Duplicate {
        #[serde(with = "text_duration")]
        at: Duration,
        rate: f64,
    },
    Latency {
        #[serde(with = "text_duration")]
        at: Duration,
        between: [String; 2],
        rtt_ms: f64,
    },
    Pause {
        #[serde(with = "text_duration")]
        at: Duration,
        nodes: Vec<String>,
        #[serde(rename = "for", with = "text_duration")]
        duration: Duration,
    },
    Slow {
        #[serde(with = "text_duration")]
        at: Duration,
        nodes: Vec<String>,
        delay_ms: [u64; 2],
    },
    Skew {
        #[serde(with = "text_duration")]
        at: Duration,
        nodes: Vec<String>,
        offset_ms: i64,
        #[serde(default)]
        drift_ppm: f64,
    },
    /// From `at` on, every report the nodes send up the tiers (progress, stats,
    /// heartbeats, registrations: what AD-24's limiters count) goes out `copies` times:
    /// a client in a retry storm, what rate limiting is for. `copies = 1` ends it.
    Storm {
        #[serde(with = "text_duration")]
        at: Duration,
        nodes: Vec<String>,
        copies: u32,
    },
    /// Open-ended chaos (see [`crate::random_faults`]): stands for faults drawn from the
    /// run's seed, about `rate` a simulated minute from `at` to `until` (default, and
    /// at most: the end), of the given `kinds` (default: all).
    Random {
        #[serde(with = "text_duration")]
        at: Duration,
        #[serde(
            default,
            with = "opt_text_duration",
            skip_serializing_if = "Option::is_none"
        )]
        until: Option<Duration>,
        rate: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kinds: Option<Vec<String>>,
    },
}

/// What a restarted node still has (see [`Fault::Restart`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RestartState {
    #[default]
    Kept,
    Lost,
}

impl RestartState {
    fn is_kept(&self) -> bool {
        *self == RestartState::Kept
    }
}

fn default_reorder_ms() -> [u64; 2] {
    [10, 100]
}

impl Fault {
    pub fn at(&self) -> Duration {
        match self {
            Fault::Crash { at, .. }
            | Fault::Restart { at, .. }
            | Fault::CrashLeader { at, .. }
            | Fault::IsolateLeader { at, .. }
            | Fault::Leave { at, .. }
            | Fault::Partition { at, .. }
            | Fault::Heal { at }
            | Fault::Loss { at, .. }
            | Fault::Corrupt { at, .. }
            | Fault::Duplicate { at, .. }
            | Fault::Latency { at, .. }
            | Fault::Pause { at, .. }
            | Fault::Slow { at, .. }
            | Fault::Skew { at, .. }
            | Fault::Reorder { at, .. }
            | Fault::OneWayLatency { at, .. }
            | Fault::LinkLoss { at, .. }
            | Fault::Flap { at, .. }
            | Fault::DcOutage { at, .. }
            | Fault::Storm { at, .. }
            | Fault::Random { at, .. } => *at,
        }
    }
}

/// Parse a value given on the command line (`--set key=value`): TOML if it parses as a
/// TOML value, a string otherwise.
fn parse_cli_value(raw: &str) -> toml::Value {
    let doc = format!("v = {raw}");
    match doc.parse::<toml::Table>() {
        Ok(mut t) => t.remove("v").expect("just set"),
        Err(_) => toml::Value::String(raw.to_string()),
    }
}

/// Load and validate a scenario. `overrides` are `dotted.key=value` pairs applied on top.
pub fn load(path: &Path, overrides: &[String]) -> Result<Scenario, ScenarioError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| err(path, "(file)", format!("cannot read: {e}")))?;
    parse(&text, path, overrides)
}

/// When `--chaos` faults start: after a cluster has joined and settled.
pub const CHAOS_FROM: &str = "20s";

/// A scenario's text with `--chaos RATE` applied: one `random` fault entry appended,
/// `rate` faults per simulated minute from [`CHAOS_FROM`] to the end, of every kind the
/// generator knows (`random_faults.rs`). Any fixture becomes a chaos variant of itself,
/// written out like any other entry (so `shrink` keeps what it needs of it).
pub fn with_chaos(text: &str, rate: f64) -> String {
    format!(
        "{text}\n\n# added by --chaos\n[[fault]]\naction = \"random\"\nat = \"{CHAOS_FROM}\"\nrate = {rate:?}\n"
    )
}

pub fn parse(text: &str, path: &Path, overrides: &[String]) -> Result<Scenario, ScenarioError> {
    let mut table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| err(path, "(syntax)", e.to_string().replace('\n', " ")))?;
    for ov in overrides {
        let (key, value) = ov
            .split_once('=')
            .ok_or_else(|| err(path, ov.as_str(), "an override is key=value"))?;
        let parts: Vec<&str> = key.trim().split('.').collect();
        let mut t = &mut table;
        for p in &parts[..parts.len() - 1] {
            t = t
                .entry(p.to_string())
                .or_insert_with(|| toml::Value::Table(Default::default()))
                .as_table_mut()
                .ok_or_else(|| err(path, key, "is not a table"))?;
        }
        t.insert(
            parts[parts.len() - 1].to_string(),
            parse_cli_value(value.trim()),
        );
    }
    let mut scenario: Scenario = serde_path_to_error::deserialize(toml::Value::Table(table))
        .map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner().to_string();
            // serde names a missing field in the message; point the key at it.
            let key = match inner.split('`').nth(1) {
                Some(field) if inner.starts_with("missing field") => {
                    if key == "." {
                        field.to_string()
                    } else {
                        format!("{key}.{field}")
                    }
                }
                _ => key,
            };
            err(path, key, inner.replace('\n', " "))
        })?;
    scenario.base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    scenario.file = path.to_path_buf();
    let load = load_jobs(&scenario, path)?;
    scenario.jobs.extend(load);
    validate(&scenario, path)?;
    Ok(scenario)
}

fn validate(s: &Scenario, path: &Path) -> Result<(), ScenarioError> {
    if s.dcs.is_empty() {
        return Err(err(path, "dc", "at least one [[dc]] is required"));
    }
    let mut names = std::collections::BTreeSet::new();
    for (i, dc) in s.dcs.iter().enumerate() {
        if dc.name.is_empty() || dc.name.contains('/') || !names.insert(dc.name.clone()) {
            return Err(err(
                path,
                format!("dc[{i}].name"),
                format!("{:?} must be non-empty, unique and contain no '/'", dc.name),
            ));
        }
        if dc.gates + dc.managers + dc.workers == 0 {
            return Err(err(
                path,
                format!("dc[{i}]"),
                "a DC needs at least one node",
            ));
        }
    }
    let n = s.nodes().len();
    if n > 20_000 {
        return Err(err(path, "dc", format!("{n} nodes: at most 20000")));
    }
    let net = &s.network;
    if !(0.0..=1.0).contains(&net.loss) {
        return Err(err(path, "network.loss", "must be a probability in [0, 1]"));
    }
    if !(0.0..=1.0).contains(&net.duplicate) {
        return Err(err(
            path,
            "network.duplicate",
            "must be a probability in [0, 1]",
        ));
    }
    if !(0.0..=1.0).contains(&net.corrupt) {
        return Err(err(
            path,
            "network.corrupt",
            "must be a probability in [0, 1]",
        ));
    }
    if !(0.0..1.0).contains(&net.jitter) {
        return Err(err(path, "network.jitter", "must be a fraction in [0, 1)"));
    }
    if [net.intra_dc_rtt_ms, net.default_inter_dc_rtt_ms]
        .iter()
        .any(|v| v.is_nan() || *v < 0.0)
    {
        return Err(err(path, "network", "RTTs must be non-negative"));
    }
    for (k, v) in &net.inter_dc_rtt_ms {
        let ok = k
            .split_once('/')
            .is_some_and(|(a, b)| names.contains(a) && names.contains(b));
        if !ok || v.is_nan() || *v < 0.0 {
            return Err(err(
                path,
                format!("network.inter_dc_rtt_ms.{k}"),
                "keys are \"dcA/dcB\" with known DC names, values non-negative",
            ));
        }
    }
    let nodes = s.nodes();
    let known_node = |name: &str| nodes.iter().any(|n| n.name == name);
    for (i, j) in s.jobs.iter().enumerate() {
        let key = |k: &str| format!("job[{i}].{k}");
        if !nodes
            .iter()
            .any(|n| n.name == j.gate && n.role == meridian_core::Role::Gate)
        {
            return Err(err(
                path,
                key("gate"),
                format!("{:?} is not a gate", j.gate),
            ));
        }
        let with_managers = s.dcs.iter().filter(|d| d.managers > 0).count();
        if j.datacenters == 0 || j.datacenters > with_managers {
            return Err(err(
                path,
                key("datacenters"),
                format!("must be 1..={with_managers} (DCs with managers)"),
            ));
        }
        if j.workflows == 0 || j.workflows > 10_000 {
            return Err(err(path, key("workflows"), "must be 1..=10000"));
        }
        if j.clients == 0 {
            return Err(err(path, key("clients"), "must be at least 1"));
        }
        if j.count == 0 || (j.count > 1 && j.every.is_none_or(|e| e.is_zero())) {
            return Err(err(
                path,
                key("every"),
                "a series (count > 1) needs a positive `every`",
            ));
        }
        if let Some(names) = &j.dcs {
            if names.is_empty() {
                return Err(err(path, key("dcs"), "must name at least one DC"));
            }
            for n in names {
                if !s.dcs.iter().any(|d| d.name == *n && d.managers > 0) {
                    return Err(err(
                        path,
                        key("dcs"),
                        format!("{n:?} is not a DC with managers"),
                    ));
                }
            }
        }
        for n in j.prefer.iter().flatten() {
            if !s.dcs.iter().any(|d| d.name == *n) {
                return Err(err(path, key("prefer"), format!("{n:?} is not a DC")));
            }
        }
        if j.progress_every.is_some_and(|e| e.is_zero()) {
            return Err(err(path, key("progress_every"), "must be positive"));
        }
        if let Some(st) = &j.stall {
            if let Some(dc) = st
                .dc
                .as_ref()
                .filter(|dc| !s.dcs.iter().any(|d| d.name == **dc))
            {
                return Err(err(path, key("stall.dc"), format!("unknown DC {dc:?}")));
            }
            if let Some(bad) = st.nodes.iter().find(|n| !known_node(n)) {
                return Err(err(
                    path,
                    key("stall.nodes"),
                    format!("unknown node {bad:?} (names are <dc>/<role>-<index>)"),
                ));
            }
            if st.dc.is_none() && st.nodes.is_empty() {
                return Err(err(path, key("stall"), "needs `dc` or `nodes`"));
            }
        }
    }
    for (i, f) in s.faults.iter().enumerate() {
        let key = |k: &str| format!("fault[{i}].{k}");
        if f.at() > s.duration {
            return Err(err(path, key("at"), "is after the end of the scenario"));
        }
        let check_nodes = |list: &[String]| -> Result<(), ScenarioError> {
            match list.iter().find(|n| !known_node(n)) {
                Some(bad) => Err(err(
                    path,
                    key("nodes"),
                    format!("unknown node {bad:?} (names are <dc>/<role>-<index>)"),
                )),
                None => Ok(()),
            }
        };
        // A link's two ends: each a DC or a node.
        let check_ends = |between: &[String; 2]| -> Result<(), ScenarioError> {
            match between
                .iter()
                .find(|e| !names.contains(*e) && !known_node(e))
            {
                Some(bad) => Err(err(
                    path,
                    key("between"),
                    format!("{bad:?} is neither a DC nor a node"),
                )),
                None => Ok(()),
            }
        };
        match f {
            Fault::Crash { nodes, .. }
            | Fault::Restart { nodes, .. }
            | Fault::Leave { nodes, .. }
            | Fault::Pause { nodes, .. }
            | Fault::Skew { nodes, .. } => check_nodes(nodes)?,
            Fault::CrashLeader { dc, .. } | Fault::IsolateLeader { dc, .. } => {
                if dc != "gates" && !s.dcs.iter().any(|d| d.name == *dc) {
                    return Err(err(
                        path,
                        key("dc"),
                        format!("unknown DC {dc:?} (or \"gates\")"),
                    ));
                }
            }
            Fault::Storm { nodes, copies, .. } => {
                check_nodes(nodes)?;
                if !(1..=100).contains(copies) {
                    return Err(err(path, key("copies"), "must be 1..=100"));
                }
            }
            Fault::Slow {
                nodes, delay_ms, ..
            } => {
                check_nodes(nodes)?;
                if delay_ms[0] > delay_ms[1] {
                    return Err(err(path, key("delay_ms"), "range must be [low, high]"));
                }
            }
            Fault::Loss { rate, nodes, .. } => {
                if !(0.0..=1.0).contains(rate) {
                    return Err(err(path, key("rate"), "must be a probability in [0, 1]"));
                }
                if let Some(n) = nodes {
                    check_nodes(n)?;
                }
            }
            Fault::Partition { groups, .. } => {
                if groups.is_empty() || groups.iter().any(|g| g.is_empty()) {
                    return Err(err(path, key("groups"), "needs non-empty groups"));
                }
                for g in groups {
                    for member in g {
                        if !names.contains(member) && !known_node(member) {
                            return Err(err(
                                path,
                                key("groups"),
                                format!("{member:?} is neither a DC nor a node"),
                            ));
                        }
                    }
                }
            }
            Fault::Latency {
                between, rtt_ms, ..
            } => {
                if !between.iter().all(|d| names.contains(d)) || rtt_ms.is_nan() || *rtt_ms < 0.0 {
                    return Err(err(
                        path,
                        key("between"),
                        "must name two known DCs, with rtt_ms >= 0",
                    ));
                }
            }
            Fault::Corrupt { rate, .. } | Fault::Duplicate { rate, .. } => {
                if !(0.0..=1.0).contains(rate) {
                    return Err(err(path, key("rate"), "must be a probability in [0, 1]"));
                }
            }
            Fault::Heal { .. } => {}
            Fault::Reorder { rate, extra_ms, .. } => {
                if !(0.0..=1.0).contains(rate) {
                    return Err(err(path, key("rate"), "must be a probability in [0, 1]"));
                }
                if extra_ms[0] > extra_ms[1] || extra_ms[1] > 60_000 {
                    return Err(err(
                        path,
                        key("extra_ms"),
                        "must be a range [lo, hi] of at most 60,000 ms",
                    ));
                }
            }
            Fault::OneWayLatency {
                from, to, delay_ms, ..
            } => {
                for (k, dc) in [("from", from), ("to", to)] {
                    if !names.contains(dc) {
                        return Err(err(path, key(k), format!("{dc:?} is not a DC")));
                    }
                }
                if !(delay_ms.is_finite() && *delay_ms >= 0.0) {
                    return Err(err(path, key("delay_ms"), "must be a delay >= 0"));
                }
            }
            Fault::LinkLoss { between, rate, .. } => {
                check_ends(between)?;
                if !(0.0..=1.0).contains(rate) {
                    return Err(err(path, key("rate"), "must be a probability in [0, 1]"));
                }
            }
            Fault::Flap {
                at,
                between,
                period,
                down,
                until,
                ..
            } => {
                check_ends(between)?;
                if down.is_zero() || *down >= *period {
                    return Err(err(
                        path,
                        key("down"),
                        "must be positive and shorter than `period`",
                    ));
                }
                if period.as_millis() < 100 {
                    return Err(err(path, key("period"), "must be at least 100ms"));
                }
                if until.is_some_and(|u| u < *at) {
                    return Err(err(path, key("until"), "must not be before `at`"));
                }
            }
            Fault::DcOutage { dcs, duration, .. } => {
                if dcs.is_empty() {
                    return Err(err(path, key("dcs"), "needs at least one DC"));
                }
                if let Some(bad) = dcs.iter().find(|d| !names.contains(*d)) {
                    return Err(err(path, key("dcs"), format!("{bad:?} is not a DC")));
                }
                if duration.is_zero() {
                    return Err(err(path, key("for"), "must be positive"));
                }
            }
            Fault::Random {
                at,
                until,
                rate,
                kinds,
            } => {
                if !(rate.is_finite() && *rate > 0.0 && *rate <= 600.0) {
                    return Err(err(
                        path,
                        key("rate"),
                        "must be a number of faults per simulated minute in (0, 600]",
                    ));
                }
                // An `until` past the end is cut to the end (so `--set duration=...`
                // can shorten a run without editing its faults).
                if until.is_some_and(|u| u < *at) {
                    return Err(err(path, key("until"), "must not be before `at`"));
                }
                for k in kinds.iter().flatten() {
                    if !crate::random_faults::KINDS.contains(&k.as_str()) {
                        return Err(err(
                            path,
                            key("kinds"),
                            format!(
                                "unknown kind {k:?} (one of {})",
                                crate::random_faults::KINDS.join(", ")
                            ),
                        ));
                    }
                }
            }
        }
    }
    if s.membership.injected_bug == Some(true) && !meridian_core::membership::INJECTED_BUGS {
        return Err(err(
            path,
            "membership.injected_bug",
            "this build has no planted bug (only the simulator's tests have one)",
        ));
    }
    s.membership_config()
        .validate()
        .map_err(|m| err(path, "membership", m))?;
    if let Some(m) = &net.matrix {
        crate::network::read_matrix(&s.base_dir.join(m), &nodes)
            .map_err(|m| err(path, "network.matrix", m))?;
    }
    Ok(())
}

/// One simulated node as the scenario defines it.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    pub name: String,
    pub dc: usize,
    pub role: meridian_core::Role,
}

impl Scenario {
    /// All nodes, DC by DC: gates, then managers, then workers. The index is the NodeId.
    pub fn nodes(&self) -> Vec<NodeSpec> {
        use meridian_core::Role;
        let mut v = Vec::new();
        for (d, dc) in self.dcs.iter().enumerate() {
            for (role, count, word) in [
                (Role::Gate, dc.gates, "gate"),
                (Role::Manager, dc.managers, "manager"),
                (Role::Worker, dc.workers, "worker"),
            ] {
                for i in 0..count {
                    v.push(NodeSpec {
                        name: format!("{}/{}-{}", dc.name, word, i),
                        dc: d,
                        role,
                    });
                }
            }
        }
        v
    }

    pub fn membership_config(&self) -> Config {
        self.membership.apply(Config::default())
    }
}
