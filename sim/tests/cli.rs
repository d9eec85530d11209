//! The binary's contract: exit 0 when invariants hold, 2 with a message naming the file
//! and the key for a bad scenario or arguments.

use std::path::PathBuf;
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_meridian-sim"))
}

fn write(name: &str, body: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("meridian-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p
}

const GOOD: &str = r#"
name = "tiny"
duration = "30s"
seed = 4
[[dc]]
name = "a"
managers = 2
workers = 3
"#;

fn run_bad(name: &str, body: &str) -> String {
    let p = write(name, body);
    let out = bin().arg("run").arg(&p).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains(name), "names the file: {err}");
    err
}

#[test]
fn good_scenario_runs_and_writes_the_report() {
    let p = write("good.toml", GOOD);
    let report = p.with_extension("json");
    let out = bin()
        .args(["run"])
        .arg(&p)
        .arg("--report")
        .arg(&report)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("scenario tiny (seed 4)"), "{stdout}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    for key in [
        "scenario",
        "seed",
        "sim_duration_ms",
        "events",
        "wall_ms",
        "trace_hash",
        "messages",
        "membership",
        "invariants",
    ] {
        assert!(json.get(key).is_some(), "report lacks {key}");
    }
    for key in ["sent", "delivered", "dropped", "bytes"] {
        assert!(json["messages"].get(key).is_some(), "messages lacks {key}");
    }
    for key in ["false_positives", "detections", "converged_at_ms"] {
        assert!(
            json["membership"].get(key).is_some(),
            "membership lacks {key}"
        );
    }
}

/// `meridian-sim run X | head -1`: the reader is gone before the summary is printed.
/// The run still writes its report and exits 0 (it panicked with 101 before writing
/// it). The pipe's read end is closed before the process starts, so every write to its
/// stdout fails, whatever the timing.
#[test]
fn a_closed_stdout_still_writes_the_report_and_exits_by_the_invariants() {
    let p = write("closed-stdout.toml", GOOD);
    let report = p.with_extension("closed.json");
    let _ = std::fs::remove_file(&report);
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = bin()
        .args(["run"])
        .arg(&p)
        .arg("--report")
        .arg(&report)
        .stdout(writer)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(json["scenario"], "tiny");
}

#[test]
fn unknown_action_names_the_key() {
    let err = run_bad(
        "unknown-action.toml",
        &format!("{GOOD}\n[[fault]]\nat = \"5s\"\naction = \"explode\"\n"),
    );
    assert!(err.contains("fault[0]"), "{err}");
    assert!(err.contains("explode"), "{err}");
}

#[test]
fn missing_key_names_the_key() {
    let err = run_bad(
        "missing-key.toml",
        "name = \"x\"\nseed = 1\n[[dc]]\nname = \"a\"\nworkers = 2\n",
    );
    assert!(err.contains("duration"), "{err}");
}

#[test]
fn bad_duration_names_the_key() {
    let err = run_bad("bad-duration.toml", &GOOD.replace("\"30s\"", "\"thirty\""));
    assert!(err.contains("duration"), "{err}");
    assert!(err.contains("thirty"), "{err}");
}

#[test]
fn unknown_node_in_a_fault_names_the_key() {
    let err = run_bad(
        "unknown-node.toml",
        &format!("{GOOD}\n[[fault]]\nat = \"5s\"\naction = \"crash\"\nnodes = [\"a/worker-9\"]\n"),
    );
    assert!(err.contains("fault[0].nodes"), "{err}");
}

#[test]
fn bad_seed_range_exits_2() {
    let p = write("sweep.toml", GOOD);
    let out = bin()
        .arg("sweep")
        .arg(&p)
        .args(["--seeds", "9..3"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn sweep_lists_every_seed_and_exits_0() {
    let p = write("sweep-ok.toml", GOOD);
    let out = bin()
        .arg("sweep")
        .arg(&p)
        .args(["--seeds", "1..4", "--jobs", "2"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("invariants held on every seed"), "{stdout}");
}

#[test]
fn sweep_per_seed_hashes_do_not_depend_on_jobs() {
    let p = write("sweep-jobs.toml", GOOD);
    let per_seed = |jobs: &str| -> Vec<String> {
        let out = bin()
            .arg("sweep")
            .arg(&p)
            .args(["--seeds", "1..7", "--jobs", jobs])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0));
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter(|l| {
                l.trim_start()
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_digit())
                    && l.split_whitespace().count() == 5
            })
            .map(str::to_string)
            .collect()
    };
    let one = per_seed("1");
    assert_eq!(one.len(), 6, "{one:?}");
    assert_eq!(one, per_seed("2"));
}

#[test]
fn run_always_writes_a_report() {
    let p = write("default-report.toml", GOOD);
    let dir = p.parent().unwrap();
    let out = bin().current_dir(dir).arg("run").arg(&p).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(dir.join("meridian-report-tiny-seed4.json").exists());
}

/// `meridian-sim replay`: a journal replays (exit 0), a journal whose outputs were not
/// what this machine emits diverges (exit 1), a broken file is refused (exit 2).
#[test]
fn replay_checks_a_journal_step_by_step() {
    use meridian_core::journal::{self, Record, RecordedInput, JOURNAL_VERSION};
    use meridian_core::leadership::ElectionConfig;
    use meridian_core::membership::Config;
    use meridian_core::node::{Input, Node, NodeConfig};
    use meridian_core::{Addr, DcId, Incarnation, Instant, NodeId, Role};
    let cfg = NodeConfig {
        node: NodeId(1),
        role: Role::Manager,
        dc: DcId(0),
        addr: Addr::from_u32(1),
        seeds: vec![Addr::from_u32(2)],
        observe: vec![],
        membership: Config::default(),
        incarnation: Incarnation(0),
        seed: 3,
        voters: vec![(NodeId(1), Addr::from_u32(1))],
        election: ElectionConfig::default(),
        persisted_vote: (0, None),
        backpressure: true,
        job_silence: true,
        routing_hysteresis: true,
    };
    // A lone manager: it joins, retries its seed, elects itself, ticks for 30 s.
    let (mut node, out) = Node::new(cfg.clone(), Instant::ZERO);
    let mut records = vec![Record::Start {
        version: JOURNAL_VERSION,
        config: Box::new(cfg),
        at: Instant::ZERO,
        digest: journal::digest(&out),
    }];
    while let Some(at) = node.next_deadline().filter(|t| t.as_millis() < 30_000) {
        let out = node.step(Input::Tick, at);
        records.push(Record::Step {
            at,
            input: RecordedInput::Tick,
            digest: journal::digest(&out),
        });
    }
    assert!(records.len() > 10);
    let bytes: Vec<u8> = records.iter().flat_map(journal::encode).collect();
    let good = write("node.journal", "");
    std::fs::write(&good, &bytes).unwrap();
    let out = bin()
        .args(["replay", good.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("every output identical"), "{text}");

    let mut bent = records.clone();
    if let Record::Step { digest, .. } = &mut bent[5] {
        *digest ^= 1;
    }
    let bent_path = write("bent.journal", "");
    std::fs::write(
        &bent_path,
        bent.iter().flat_map(journal::encode).collect::<Vec<u8>>(),
    )
    .unwrap();
    let out = bin()
        .args(["replay", bent_path.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("DIVERGED at step 5"), "{text}");

    let broken = write("broken.journal", "not a journal");
    let out = bin()
        .args(["replay", broken.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// `shrink`: a failing seed gives a smaller scenario file that fails the same way
/// (exit 0); a run with nothing violated exits 1; a bad scenario exits 2.
#[test]
fn shrink_writes_a_smaller_failing_scenario() {
    // The test build carries the planted bug (meridian-core's `injected-bugs`).
    let planted = format!(
        "{}\n[membership]\ninjected_bug = true\n",
        std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../fixtures/scenarios/random-faults.toml")
        )
        .unwrap()
    );
    let p = write("planted.toml", &planted);
    let out_path = p.with_file_name("planted-min.toml");
    // A seed that trips the planted bug (this test binary's core has it too).
    let s = meridian_sim::scenario::parse(&planted, &p, &[]).unwrap();
    let seed = meridian_sim::sweep(&s, 1..300, 2)
        .into_iter()
        .find(|r| !r.ok())
        .expect("a seed that trips the planted bug")
        .seed
        .to_string();
    let out = bin()
        .args([
            "shrink",
            p.to_str().unwrap(),
            "--seed",
            &seed,
            "--quiet",
            "--out",
        ])
        .arg(&out_path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("dead-ends-by-higher-inc"), "{text}");
    let min = std::fs::read_to_string(&out_path).unwrap();
    assert!(
        min.len() < planted.len() && min.contains("seed = "),
        "{min}"
    );
    let rerun = bin()
        .args(["run", out_path.to_str().unwrap(), "--report"])
        .arg(p.with_file_name("planted-min.json"))
        .output()
        .unwrap();
    assert_eq!(rerun.status.code(), Some(1), "the repro fails on its own");

    let good = write("good.toml", GOOD);
    let out = bin()
        .args(["shrink", good.to_str().unwrap(), "--quiet"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to shrink"));

    let bad = write(
        "bad-shrink.toml",
        "name = \"x\"\nduration = \"soon\"\nseed = 1\n",
    );
    let out = bin()
        .args(["shrink", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("duration"));
}

/// `trace`: filters a run's trace file (exit 0), refuses a file that is not one (exit 2).
#[test]
fn trace_filters_a_trace_file() {
    let p = write("traced.toml", GOOD);
    let t = p.with_file_name("traced.jsonl");
    let out = bin()
        .args([
            "run",
            p.to_str().unwrap(),
            "--trace",
            t.to_str().unwrap(),
            "--report",
        ])
        .arg(p.with_file_name("traced.json"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let out = bin()
        .args([
            "trace",
            t.to_str().unwrap(),
            "--node",
            "a/manager-0",
            "--kind",
            "Member",
            "--to",
            "10s",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    let body: Vec<&str> = text.lines().skip(1).collect();
    assert!(!body.is_empty());
    assert!(body
        .iter()
        .all(|l| l.contains("\"node\":\"a/manager-0\"") && l.contains("\"type\":\"Member\"")));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("{} of ", body.len())));
    let out = bin().args(["trace", p.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a meridian-sim trace"));
}

/// `run` re-executes itself once with glibc's huge-page tunable (`src/huge_pages.rs`):
/// the report, its trace hash and the exit status are those of a run that opted out.
#[test]
fn huge_pages_change_nothing_a_run_reports() {
    let p = write("huge-pages.toml", GOOD);
    let dir = p.parent().unwrap().to_path_buf();
    let run = |mark: Option<&str>, report: &str| {
        let mut cmd = bin();
        cmd.env_remove("GLIBC_TUNABLES")
            .env_remove("MERIDIAN_SIM_HUGE_PAGES");
        if let Some(m) = mark {
            cmd.env("MERIDIAN_SIM_HUGE_PAGES", m);
        }
        let out = cmd
            .arg("run")
            .arg(&p)
            .arg("--report")
            .arg(dir.join(report))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0));
        let r: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join(report)).unwrap()).unwrap();
        (
            r["trace_hash"].clone(),
            r["events"].clone(),
            r["messages"].clone(),
        )
    };
    let with = run(None, "with.json");
    let without = run(Some("off"), "without.json");
    assert_eq!(with, without);
    assert!(with.0.as_str().is_some_and(|h| h.len() == 16));
}

/// `--chaos RATE` turns any scenario into a chaos variant of itself: random faults from
/// 20 s on, drawn from the seed (the same each time); a rate that is not a positive
/// number is refused with exit 2, naming the flag.
#[test]
fn chaos_adds_random_faults_from_twenty_seconds_on() {
    let p = write("chaos.toml", GOOD);
    let fault_times = |chaos: Option<&str>| -> Vec<f64> {
        let trace = p.with_extension(format!("{}.trace", chaos.unwrap_or("none")));
        let mut cmd = bin();
        // The report goes beside the trace, not into the working directory (the crate's).
        let report = trace.with_extension("report.json");
        cmd.arg("run").arg(&p).arg("--trace").arg(&trace);
        cmd.arg("--report").arg(&report);
        if let Some(rate) = chaos {
            cmd.args(["--chaos", rate]);
        }
        let out = cmd.output().unwrap();
        assert_ne!(out.status.code(), Some(2), "{:?}", out);
        std::fs::read_to_string(&trace)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|v| v["kind"] == "fault")
            .map(|v| v["t_ms"].as_f64().unwrap())
            .collect()
    };
    assert!(fault_times(None).is_empty());
    let chaos = fault_times(Some("60"));
    // 60 a minute over the last 10 of 30 s: about 10.
    assert!(chaos.len() >= 3, "{chaos:?}");
    assert!(chaos.iter().all(|t| *t >= 20_000.0), "{chaos:?}");
    assert_eq!(fault_times(Some("60")), chaos, "drawn from the seed");

    for bad in ["0", "-1", "nan"] {
        let out = bin()
            .arg("run")
            .arg(&p)
            .arg(format!("--chaos={bad}"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "--chaos {bad}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("--chaos"));
    }
}

/// A job's `stall` names a DC or workers that exist, and at least one of them.
#[test]
fn a_bad_stall_names_the_key() {
    let base = "name = \"s\"\nduration = \"1m\"\nseed = 1\n[[dc]]\nname = \"a\"\ngates = 1\nmanagers = 1\nworkers = 2\n[[job]]\nat = \"5s\"\ngate = \"a/gate-0\"\nworkflows = 1\nworkflow_duration = [\"1s\", \"2s\"]\n";
    let parse = |stall: &str| {
        let text = format!("{base}stall = {stall}\n");
        meridian_sim::scenario::parse(&text, std::path::Path::new("stall.toml"), &[])
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    assert_eq!(
        parse("{ nodes = [\"a/worker-1\"], after = \"9s\" }"),
        Ok(())
    );
    assert_eq!(parse("{ dc = \"a\", after = \"9s\" }"), Ok(()));
    let unknown = parse("{ nodes = [\"a/worker-7\"], after = \"9s\" }").unwrap_err();
    assert!(unknown.contains("job[0].stall.nodes"), "{unknown}");
    let no_dc = parse("{ dc = \"b\", after = \"9s\" }").unwrap_err();
    assert!(no_dc.contains("job[0].stall.dc"), "{no_dc}");
    let neither = parse("{ after = \"9s\" }").unwrap_err();
    assert!(neither.contains("job[0].stall"), "{neither}");
}
