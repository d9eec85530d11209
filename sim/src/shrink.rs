//! Failure shrinking (issue 9): from a scenario and a seed whose run violates an
//! invariant, find a smaller scenario whose run violates the same one, so a
//! researcher gets a short, readable repro.
//!
//! It works on the scenario's TOML document, so every key it does not shrink is kept as
//! written. First the `random` faults are written out as the concrete faults they drew
//! (same seed, same run: the trace is unchanged), then, until nothing more can go or the
//! run budget is spent, it tries in turn:
//! - cutting the run just after the violation (faults after it go too);
//! - removing faults, jobs and load bursts: halves, then quarters, ... then one at a
//!   time (delta debugging);
//! - removing nodes: each DC's gates, managers and workers counted down (0, 1, a quarter,
//!   a half, three quarters, one fewer), whole DCs; faults naming a node or DC that no
//!   longer exists lose that name, and go when nothing is left of them;
//! - switching off background network trouble (loss, jitter, duplication, corruption).
//!
//! A candidate is kept only if its run violates the same invariant; one that no longer
//! parses (a job's gate removed, say) is simply not kept. A smaller cluster may also
//! fail with one of the next few seeds (removing a node changes every later random
//! draw); the result then carries that seed. Shrinking is greedy, so the result is
//! small, not necessarily the smallest.

use crate::random_faults::concrete_faults;
use crate::scenario::{self, Scenario};
use std::path::{Path, PathBuf};
use toml::{Table, Value};

/// What went wrong before shrinking could start.
#[derive(Debug, thiserror::Error)]
pub enum ShrinkError {
    #[error("{0}")]
    Scenario(#[from] scenario::ScenarioError),
    #[error("seed {0}: every invariant held, nothing to shrink")]
    NoViolation(u64),
}

/// The outcome: the smallest failing scenario found.
pub struct Shrunk {
    /// The seed the result fails with (also its `seed` key): the one asked for, or a
    /// nearby one a smaller cluster failed with.
    pub seed: u64,
    /// The invariant every kept candidate violated.
    pub invariant: String,
    /// The violation in the smallest scenario.
    pub at_ms: u64,
    pub detail: String,
    /// The scenario, as TOML text (with a comment saying where it came from).
    pub text: String,
    /// Scenario runs spent.
    pub runs: usize,
    pub faults: (usize, usize),
    pub nodes: (usize, usize),
    pub duration_ms: (u64, u64),
}

/// Counts and plays candidates.
struct Oracle<'a> {
    path: &'a Path,
    seed: u64,
    invariant: String,
    runs: usize,
    max_runs: usize,
    progress: &'a mut dyn FnMut(&str),
}

impl Oracle<'_> {
    fn budget_left(&self) -> bool {
        self.runs < self.max_runs
    }

    /// `Some((at_ms, detail))` if `doc` parses and its run violates the invariant.
    fn fails(&mut self, doc: &Table) -> Option<(u64, String)> {
        let s = self.parse(doc)?;
        self.fails_with(&s, self.seed)
    }

    fn parse(&self, doc: &Table) -> Option<Scenario> {
        let text = toml::to_string(doc).ok()?;
        scenario::parse(&text, self.path, &[]).ok()
    }

    fn fails_with(&mut self, s: &Scenario, seed: u64) -> Option<(u64, String)> {
        if !self.budget_left() {
            return None;
        }
        self.runs += 1;
        let report = crate::run(s, seed);
        report
            .invariants
            .violations
            .iter()
            .find(|v| v.invariant == self.invariant)
            .map(|v| (v.at_ms, v.detail.clone()))
    }

    /// As [`Oracle::fails`], but a smaller cluster may also fail with one of the next
    /// [`RESEEDS`] seeds: removing a node changes every later random draw, and the
    /// failure is a property of the scenario, not of one draw. The seed that failed is
    /// kept (and written into the result).
    fn fails_reseeding(&mut self, doc: &mut Table) -> Option<(u64, String)> {
        let s = self.parse(doc)?;
        for k in 0..=RESEEDS {
            let seed = self.seed.wrapping_add(k);
            if let Some(hit) = self.fails_with(&s, seed) {
                if k > 0 {
                    self.seed = seed;
                    doc.insert("seed".into(), Value::Integer(seed as i64));
                }
                return Some(hit);
            }
        }
        None
    }
}

/// How many further seeds a node reduction is tried with.
const RESEEDS: u64 = 4;

fn array_len(doc: &Table, key: &str) -> usize {
    doc.get(key)
        .and_then(Value::as_array)
        .map_or(0, |a| a.len())
}

fn node_count(s: &Scenario) -> usize {
    s.nodes().len()
}

/// Shrink `text` (the scenario file at `path`, relative paths resolved from there) for
/// `seed`, spending at most `max_runs` runs. `progress` hears one line per kept step.
pub fn shrink(
    text: &str,
    path: &Path,
    seed: u64,
    max_runs: usize,
    progress: &mut dyn FnMut(&str),
) -> Result<Shrunk, ShrinkError> {
    let original = scenario::parse(text, path, &[])?;
    let first = crate::run(&original, seed);
    let Some(v) = first.invariants.violations.first() else {
        return Err(ShrinkError::NoViolation(seed));
    };
    let mut doc: Table = text
        .parse()
        .map_err(|e: toml::de::Error| scenario::err(path, "(syntax)", e.to_string()))?;
    let faults_before = concrete_faults(&original, seed).len();
    let mut best = (v.at_ms, v.detail.clone());
    let mut oracle = Oracle {
        path,
        seed,
        invariant: v.invariant.clone(),
        runs: 1,
        max_runs: max_runs.max(2),
        progress,
    };
    // The random faults, written out (the same draws, so the same run).
    let written = written_out(&doc, &original, seed);
    if let Some(hit) = oracle.fails(&written) {
        doc = written;
        best = hit;
    }

    loop {
        let before = toml::to_string(&doc).unwrap_or_default();
        if let Some(hit) = shorten(&mut doc, &mut oracle, best.0) {
            best = hit;
        }
        for key in ["fault", "job", "load"] {
            if let Some(hit) = remove_entries(&mut doc, key, &mut oracle) {
                best = hit;
            }
        }
        if let Some(hit) = remove_nodes(&mut doc, &mut oracle) {
            best = hit;
        }
        if let Some(hit) = quiet_network(&mut doc, &mut oracle) {
            best = hit;
        }
        if toml::to_string(&doc).unwrap_or_default() == before || !oracle.budget_left() {
            break;
        }
    }

    let final_scenario = scenario::parse(&toml::to_string(&doc).unwrap_or_default(), path, &[])?;
    let header = format!(
        "# Shrunk by `meridian-sim shrink` from {} (seed {seed}): `{}` is violated at {} ms\n\
         # with seed {final_seed}. Replay: meridian-sim run THIS_FILE\n",
        path.display(),
        oracle.invariant,
        best.0,
        final_seed = oracle.seed,
    );
    Ok(Shrunk {
        seed: oracle.seed,
        invariant: oracle.invariant.clone(),
        at_ms: best.0,
        detail: best.1,
        text: format!("{header}{}", toml::to_string(&doc).unwrap_or_default()),
        runs: oracle.runs,
        faults: (faults_before, final_scenario.faults.len()),
        nodes: (node_count(&original), node_count(&final_scenario)),
        duration_ms: (
            original.duration.as_millis() as u64,
            final_scenario.duration.as_millis() as u64,
        ),
    })
}

/// `doc` (the document of `s`) with its `random` faults replaced by the concrete faults
/// they draw for `seed`, and `seed` as its seed: the same run, every fault spelled out.
fn written_out(doc: &Table, s: &Scenario, seed: u64) -> Table {
    let concrete: Vec<Value> = concrete_faults(s, seed)
        .iter()
        .filter_map(|f| Value::try_from(f).ok())
        .collect();
    let mut written = doc.clone();
    if concrete.is_empty() {
        written.remove("fault");
    } else {
        written.insert("fault".into(), Value::Array(concrete));
    }
    written.insert("seed".into(), Value::Integer(seed as i64));
    written
}

/// The scenario `text` (at `path`) for `seed` with every `random` fault written out as
/// the concrete faults it draws: playing the result with `seed` is the same run.
pub fn materialize(text: &str, path: &Path, seed: u64) -> Result<String, ShrinkError> {
    let s = scenario::parse(text, path, &[])?;
    let doc: Table = text
        .parse()
        .map_err(|e: toml::de::Error| scenario::err(path, "(syntax)", e.to_string()))?;
    Ok(toml::to_string(&written_out(&doc, &s, seed)).unwrap_or_default())
}

/// End the run one second after the violation, then try halving what is left; faults
/// and jobs scheduled after the new end go with it.
fn shorten(doc: &mut Table, o: &mut Oracle, at_ms: u64) -> Option<(u64, String)> {
    let mut kept = None;
    let mut end_ms = at_ms + 1_000;
    loop {
        let current = doc
            .get("duration")
            .and_then(Value::as_str)
            .and_then(|d| humantime::parse_duration(d).ok())
            .map_or(u64::MAX, |d| d.as_millis() as u64);
        if end_ms >= current {
            return kept;
        }
        let mut c = doc.clone();
        set_duration(&mut c, end_ms);
        match o.fails(&c) {
            Some(hit) => {
                (o.progress)(&format!("duration -> {} ms", end_ms));
                *doc = c;
                end_ms = hit.0 + 1_000;
                kept = Some(hit);
                // A violation earlier than before: try ending the run sooner still.
            }
            None => return kept,
        }
    }
}

fn set_duration(doc: &mut Table, end_ms: u64) {
    let d = std::time::Duration::from_millis(end_ms);
    doc.insert(
        "duration".into(),
        Value::String(humantime::format_duration(d).to_string()),
    );
    for key in ["fault", "job", "load"] {
        if let Some(Value::Array(list)) = doc.get_mut(key) {
            list.retain(|e| {
                e.get("at")
                    .and_then(Value::as_str)
                    .and_then(|a| humantime::parse_duration(a).ok())
                    .is_none_or(|a| a <= d)
            });
        }
    }
}

/// Delta debugging over the array `key`: remove chunks of halving size while the run
/// still fails.
fn remove_entries(doc: &mut Table, key: &str, o: &mut Oracle) -> Option<(u64, String)> {
    let mut kept = None;
    let mut chunk = array_len(doc, key).div_ceil(2);
    while chunk >= 1 && o.budget_left() {
        let mut start = 0;
        while start < array_len(doc, key) && o.budget_left() {
            let mut c = doc.clone();
            if let Some(Value::Array(list)) = c.get_mut(key) {
                let end = (start + chunk).min(list.len());
                list.drain(start..end);
                if list.is_empty() {
                    c.remove(key);
                }
            }
            match o.fails(&c) {
                Some(hit) => {
                    (o.progress)(&format!(
                        "{key}: removed {chunk}, {} left",
                        array_len(&c, key)
                    ));
                    *doc = c;
                    kept = Some(hit);
                }
                None => start += chunk,
            }
        }
        if chunk == 1 {
            break;
        }
        chunk = chunk.div_ceil(2);
    }
    kept
}

/// Fewer gates, managers and workers per DC, then fewer DCs.
fn remove_nodes(doc: &mut Table, o: &mut Oracle) -> Option<(u64, String)> {
    let mut kept = None;
    let dcs = array_len(doc, "dc");
    for d in (0..dcs).rev() {
        for role in ["workers", "managers", "gates"] {
            loop {
                let n = dc_count(doc, d, role);
                if n == 0 || !o.budget_left() {
                    break;
                }
                let mut tried = false;
                let mut candidates = vec![0, 1, n / 4, n / 2, 3 * n / 4, n - 1];
                candidates.sort_unstable();
                candidates.dedup();
                for m in candidates.into_iter().filter(|m| *m < n) {
                    let mut c = doc.clone();
                    set_dc_count(&mut c, d, role, m);
                    prune_names(&mut c);
                    if let Some(hit) = o.fails_reseeding(&mut c) {
                        (o.progress)(&format!("dc[{d}].{role}: {n} -> {m}"));
                        *doc = c;
                        kept = Some(hit);
                        tried = true;
                        break;
                    }
                }
                if !tried {
                    break;
                }
            }
        }
    }
    // Whole DCs (a DC left with no nodes, or one the failure does not need).
    let mut d = array_len(doc, "dc");
    while d > 0 && array_len(doc, "dc") > 1 && o.budget_left() {
        d -= 1;
        let mut c = doc.clone();
        if let Some(Value::Array(list)) = c.get_mut("dc") {
            list.remove(d);
        }
        prune_names(&mut c);
        if let Some(hit) = o.fails_reseeding(&mut c) {
            (o.progress)(&format!("dc[{d}] removed"));
            *doc = c;
            kept = Some(hit);
        }
    }
    kept
}

fn dc_count(doc: &Table, d: usize, role: &str) -> usize {
    doc.get("dc")
        .and_then(Value::as_array)
        .and_then(|a| a.get(d))
        .and_then(|t| t.get(role))
        .and_then(Value::as_integer)
        .map_or(0, |n| n.max(0) as usize)
}

fn set_dc_count(doc: &mut Table, d: usize, role: &str, n: usize) {
    if let Some(Value::Table(t)) = doc
        .get_mut("dc")
        .and_then(Value::as_array_mut)
        .and_then(|a| a.get_mut(d))
    {
        t.insert(role.into(), Value::Integer(n as i64));
    }
}

/// The DC names and node names (`<dc>/<role>-<index>`) the document defines.
fn names(doc: &Table) -> (Vec<String>, Vec<String>) {
    let mut dcs = Vec::new();
    let mut nodes = Vec::new();
    for t in doc
        .get("dc")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(name) = t.get("name").and_then(Value::as_str) else {
            continue;
        };
        dcs.push(name.to_string());
        for (key, role) in [
            ("gates", "gate"),
            ("managers", "manager"),
            ("workers", "worker"),
        ] {
            let n = t.get(key).and_then(Value::as_integer).unwrap_or(0).max(0);
            for i in 0..n {
                nodes.push(format!("{name}/{role}-{i}"));
            }
        }
    }
    (dcs, nodes)
}

/// Drop the names of nodes and DCs that no longer exist from every fault, and the
/// faults left naming nothing.
fn prune_names(doc: &mut Table) {
    let (dcs, nodes) = names(doc);
    let known = |v: &Value| {
        v.as_str()
            .is_some_and(|s| dcs.iter().any(|d| d == s) || nodes.iter().any(|n| n == s))
    };
    let Some(Value::Array(faults)) = doc.get_mut("fault") else {
        return;
    };
    faults.retain_mut(|f| {
        let Some(t) = f.as_table_mut() else {
            return true;
        };
        for key in ["nodes", "dcs"] {
            if let Some(Value::Array(list)) = t.get_mut(key) {
                list.retain(known);
                if list.is_empty() {
                    return false;
                }
            }
        }
        for key in ["from", "to"] {
            if t.get(key).is_some_and(|v| v.is_str() && !known(v)) {
                return false;
            }
        }
        if let Some(Value::Array(groups)) = t.get_mut("groups") {
            for g in groups.iter_mut() {
                if let Some(list) = g.as_array_mut() {
                    list.retain(known);
                }
            }
            groups.retain(|g| g.as_array().is_some_and(|l| !l.is_empty()));
            if groups.is_empty() {
                return false;
            }
        }
        if let Some(Value::Array(between)) = t.get("between") {
            if !between.iter().all(known) {
                return false;
            }
        }
        match t.get("dc").and_then(Value::as_str) {
            Some("gates") | None => true,
            Some(dc) => dcs.iter().any(|d| d == dc),
        }
    });
    if faults.is_empty() {
        doc.remove("fault");
    }
}

/// Background loss, jitter, duplication and corruption off, one at a time.
fn quiet_network(doc: &mut Table, o: &mut Oracle) -> Option<(u64, String)> {
    let mut kept = None;
    for key in ["loss", "jitter", "duplicate", "corrupt"] {
        let set = doc
            .get("network")
            .and_then(|n| n.get(key))
            .and_then(Value::as_float)
            .is_some_and(|x| x != 0.0);
        if !set {
            continue;
        }
        let mut c = doc.clone();
        if let Some(Value::Table(net)) = c.get_mut("network") {
            net.remove(key);
        }
        if let Some(hit) = o.fails(&c) {
            (o.progress)(&format!("network.{key} removed"));
            *doc = c;
            kept = Some(hit);
        }
    }
    kept
}

/// Where `shrink` writes its result by default: next to the scenario,
/// `<stem>.shrunk-seed<N>.toml`.
pub fn default_output(path: &Path, seed: u64) -> PathBuf {
    let stem = path
        .file_stem()
        .map_or("scenario".into(), |s| s.to_string_lossy().into_owned());
    path.with_file_name(format!("{stem}.shrunk-seed{seed}.toml"))
}
