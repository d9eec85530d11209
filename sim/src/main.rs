//! `meridian-sim`: run a scenario, sweep it over many seeds, shrink a failing seed, filter
//! a trace, replay a real node's journal.
//! Exit status: 0 every invariant held, 1 an invariant was violated, 2 bad input.

use clap::{Parser, Subcommand};
use meridian_sim::report::Report;
use meridian_sim::{median, scenario};
use std::path::PathBuf;
use std::process::ExitCode;

/// `println!` for what `run`, `sweep` and `shrink` tell the user, except that a stdout
/// that went away (`meridian-sim run X | head -3`) is not an error: `println!` would
/// panic there, before the report is written and with exit status 101. The run goes
/// on, writes its report and exits 0, 1 or 2 as it would have. Any other write error is
/// said once on stderr.
macro_rules! say {
    ($($arg:tt)*) => {
        say(format_args!($($arg)*))
    };
}

fn say(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    use std::sync::atomic::{AtomicBool, Ordering};
    static FAILED: AtomicBool = AtomicBool::new(false);
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{line}") {
        if e.kind() != std::io::ErrorKind::BrokenPipe && !FAILED.swap(true, Ordering::Relaxed) {
            eprintln!("meridian-sim: stdout: {e}");
        }
    }
}

#[derive(Parser)]
#[command(
    name = "meridian-sim",
    version,
    about = "Deterministic multi-DC simulator for Meridian"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Play one scenario for one seed; print a summary and write a JSON report.
    Run {
        scenario: PathBuf,
        /// Overrides the scenario's seed.
        #[arg(long)]
        seed: Option<u64>,
        /// Where to write the JSON report [default: ./meridian-report-<name>-seed<N>.json].
        #[arg(long)]
        report: Option<PathBuf>,
        /// Where to write the event trace (JSON lines, sim/TRACE.md).
        #[arg(long)]
        trace: Option<PathBuf>,
        /// Where to write a self-contained HTML page of charts (membership timeline,
        /// coordinate map, routing, backpressure, jobs). Drawn from the run's trace,
        /// held in memory: meant for runs of up to a few hundred nodes.
        #[arg(long)]
        html: Option<PathBuf>,
        /// Override a scenario key, e.g. --set membership.lifeguard=false
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Add random faults: RATE a simulated minute, of every kind, from 20 s on.
        #[arg(long, value_name = "RATE")]
        chaos: Option<f64>,
    },
    /// Play many seeds in parallel and list any seed that violated an invariant.
    Sweep {
        scenario: PathBuf,
        /// Seed range A..B (B excluded) or A..=B.
        #[arg(long)]
        seeds: String,
        /// Worker threads (default: all cores).
        #[arg(long)]
        jobs: Option<usize>,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Add random faults: RATE a simulated minute, of every kind, from 20 s on.
        #[arg(long, value_name = "RATE")]
        chaos: Option<f64>,
        /// Write every seed's report as a JSON array.
        #[arg(long)]
        report: Option<PathBuf>,
        /// No progress bar and no line per seed: only the failing seeds and the totals.
        /// (The progress bar is only ever drawn on a terminal.)
        #[arg(long)]
        quiet: bool,
    },
    /// Reduce a failing run to a small repro: remove faults, jobs, nodes and DCs and
    /// shorten the run while it still violates the same invariant (with the same seed,
    /// or for fewer nodes one of the next four), then write the smallest scenario found. Exit 0 written, 1 nothing to shrink (every invariant
    /// held), 2 bad input.
    Shrink {
        scenario: PathBuf,
        /// The failing seed [default: the scenario's].
        #[arg(long)]
        seed: Option<u64>,
        /// Where to write the result [default: <scenario>.shrunk-seed<N>.toml beside it].
        #[arg(long)]
        out: Option<PathBuf>,
        /// At most this many scenario runs.
        #[arg(long, default_value_t = 600)]
        max_runs: usize,
        /// No progress lines.
        #[arg(long)]
        quiet: bool,
        /// Add random faults as `run --chaos` does (the shrunk scenario writes them out).
        #[arg(long, value_name = "RATE")]
        chaos: Option<f64>,
    },
    /// Filter a trace (`run --trace FILE`, format in sim/TRACE.md) by node, kind and
    /// time window; prints the kept lines (the header first) as JSON lines.
    Trace {
        file: PathBuf,
        /// A node name, `dc/*` for a prefix, or a DC's name (repeatable).
        #[arg(long = "node")]
        nodes: Vec<String>,
        /// A line kind (event, fault, violation, end) or type (Member, Election, Job,
        /// partition, an invariant's name, ...), case-insensitive (repeatable).
        #[arg(long = "kind")]
        kinds: Vec<String>,
        /// From this simulated time on (humantime: 90s, 2m).
        #[arg(long, value_parser = humantime::parse_duration)]
        from: Option<std::time::Duration>,
        /// Up to this simulated time.
        #[arg(long, value_parser = humantime::parse_duration)]
        to: Option<std::time::Duration>,
    },
    /// Replay a node's journal (`meridian-node run --record FILE`): build the same
    /// machine, feed it every recorded input at its instant, and check that every step
    /// emits exactly what it emitted in production. Exit 0 identical, 1 diverged, 2 an
    /// unreadable journal.
    Replay { journal: PathBuf },
}

fn parse_range(s: &str) -> Result<std::ops::Range<u64>, String> {
    let (a, b, inclusive) = if let Some((a, b)) = s.split_once("..=") {
        (a, b, true)
    } else if let Some((a, b)) = s.split_once("..") {
        (a, b, false)
    } else {
        return Err(format!("--seeds {s:?}: expected A..B or A..=B"));
    };
    let a: u64 = a
        .trim()
        .parse()
        .map_err(|_| format!("--seeds: bad start {a:?}"))?;
    let b: u64 = b
        .trim()
        .parse()
        .map_err(|_| format!("--seeds: bad end {b:?}"))?;
    let end = if inclusive { b + 1 } else { b };
    if end <= a {
        return Err(format!("--seeds {s:?} is empty"));
    }
    Ok(a..end)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(
        cli.cmd,
        Cmd::Run { .. } | Cmd::Sweep { .. } | Cmd::Shrink { .. }
    ) {
        meridian_sim::huge_pages::reexec_with_huge_pages();
    }
    match cli.cmd {
        Cmd::Replay { journal } => replay(&journal),
        Cmd::Trace {
            file,
            nodes,
            kinds,
            from,
            to,
        } => {
            let f = meridian_sim::trace::Filter {
                nodes,
                kinds,
                from_ms: from.map(|d| d.as_secs_f64() * 1000.0),
                to_ms: to.map(|d| d.as_secs_f64() * 1000.0),
            };
            trace(&file, &f)
        }
        Cmd::Shrink {
            scenario: path,
            seed,
            out,
            max_runs,
            quiet,
            chaos,
        } => shrink(&path, seed, out, max_runs, quiet, chaos),
        Cmd::Run {
            scenario: path,
            seed,
            report,
            trace,
            html,
            set,
            chaos,
        } => {
            let sc = match load(&path, &set, chaos) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("meridian-sim: {e}");
                    return ExitCode::from(2);
                }
            };
            let seed = seed.unwrap_or(sc.seed);
            let rep = match (&trace, &html) {
                // The page is drawn from the trace: keep it in memory (and write it too
                // if asked).
                (_, Some(h)) => {
                    let mut buf = Vec::new();
                    let rep = meridian_sim::run_for_html(&sc, seed, &mut buf);
                    if let Some(t) = &trace {
                        if let Err(e) = std::fs::write(t, &buf) {
                            eprintln!("meridian-sim: {}: {e}", t.display());
                            return ExitCode::from(2);
                        }
                    }
                    let lines: Vec<serde_json::Value> = buf
                        .split(|b| *b == b'\n')
                        .filter(|l| !l.is_empty())
                        .filter_map(|l| serde_json::from_slice(l).ok())
                        .collect();
                    let page = meridian_sim::html::render(&rep, &lines);
                    if let Err(e) = std::fs::write(h, page) {
                        eprintln!("meridian-sim: {}: {e}", h.display());
                        return ExitCode::from(2);
                    }
                    say!("  html report written to {}", h.display());
                    rep
                }
                (Some(t), None) => {
                    let file = match std::fs::File::create(t) {
                        Ok(f) => f,
                        Err(e) => {
                            eprintln!("meridian-sim: {}: {e}", t.display());
                            return ExitCode::from(2);
                        }
                    };
                    let mut w = std::io::BufWriter::new(file);
                    meridian_sim::run_traced(&sc, seed, &mut w)
                }
                (None, None) => meridian_sim::run(&sc, seed),
            };
            say!("{}", rep.summary());
            // The report is always written: by default next to where we run.
            let report = report.unwrap_or_else(|| {
                PathBuf::from(format!(
                    "meridian-report-{}-seed{}.json",
                    rep.scenario, rep.seed
                ))
            });
            say!("  report written to {}", report.display());
            {
                let p = report;
                if let Err(e) =
                    std::fs::write(&p, serde_json::to_string_pretty(&rep).expect("json"))
                {
                    eprintln!("meridian-sim: {}: {e}", p.display());
                    return ExitCode::from(2);
                }
            }
            if rep.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Cmd::Sweep {
            scenario: path,
            seeds,
            jobs,
            set,
            chaos,
            report,
            quiet,
        } => {
            let range = match parse_range(&seeds) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("meridian-sim: {e}");
                    return ExitCode::from(2);
                }
            };
            let sc = match load(&path, &set, chaos) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("meridian-sim: {e}");
                    return ExitCode::from(2);
                }
            };
            let jobs =
                jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            let started = std::time::Instant::now();
            let bar = progress_bar(range.end - range.start, quiet);
            let reports = meridian_sim::sweep_with_progress(&sc, range, jobs, &|| bar.inc(1));
            bar.finish_and_clear();
            print_sweep(&reports, started.elapsed(), quiet);
            if let Some(p) = report {
                if let Err(e) =
                    std::fs::write(&p, serde_json::to_string_pretty(&reports).expect("json"))
                {
                    eprintln!("meridian-sim: {}: {e}", p.display());
                    return ExitCode::from(2);
                }
            }
            if reports.iter().all(Report::ok) {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
    }
}

/// A progress bar on standard error, drawn only on a terminal and without `--quiet`
/// (indicatif draws nothing when standard error is not a terminal).
fn progress_bar(seeds: u64, quiet: bool) -> indicatif::ProgressBar {
    if quiet {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(seeds);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} seeds  {per_sec}  eta {eta}")
            .expect("a valid template"),
    );
    bar
}

fn print_sweep(reports: &[Report], wall: std::time::Duration, quiet: bool) {
    if !quiet {
        say!(
            "{:>8}  {:16}  {:>6}  {:>10}  {:>12}",
            "seed",
            "trace_hash",
            "fp",
            "violations",
            "converged_s"
        );
    }
    let mut first_dead = Vec::new();
    let mut all_dead = Vec::new();
    let mut undetected = 0;
    for r in reports {
        let conv = r
            .membership
            .converged_at_ms
            .map_or("-".into(), |t| format!("{:.1}", t as f64 / 1000.0));
        if !quiet {
            say!(
                "{:>8}  {}  {:>6}  {:>10}  {:>12}",
                r.seed,
                r.trace_hash,
                r.membership.false_positives,
                r.invariants.violations_total,
                conv
            );
        }
        for d in &r.membership.detections {
            match (d.first_dead_ms, d.all_dead_ms) {
                (Some(f), Some(a)) => {
                    first_dead.push(f - d.crashed_at_ms);
                    all_dead.push(a - d.crashed_at_ms);
                }
                _ => undetected += 1,
            }
        }
    }
    let bad: Vec<u64> = reports.iter().filter(|r| !r.ok()).map(|r| r.seed).collect();
    let fp: u64 = reports.iter().map(|r| r.membership.false_positives).sum();
    let msgs: u64 = reports.iter().map(|r| r.messages.sent).sum();
    say!(
        "{} seeds in {:.1} s wall; {} simulated messages",
        reports.len(),
        wall.as_secs_f64(),
        msgs
    );
    say!("false positives: {fp} in total");
    if !first_dead.is_empty() || undetected > 0 {
        let ms = |v: Option<u64>| v.map_or("-".into(), |v| format!("{:.1} s", v as f64 / 1000.0));
        say!(
            "crash detection: median first dead {}, median dead everywhere {}, max dead everywhere {}; {} crashes not dead everywhere",
            ms(median(first_dead.clone())),
            ms(median(all_dead.clone())),
            ms(all_dead.iter().max().copied()),
            undetected
        );
    }
    if bad.is_empty() {
        say!("invariants held on every seed");
    } else {
        say!("{:<32}  {:>6}  {:>10}", "invariant", "seeds", "violations");
        for (name, (seeds, count)) in meridian_sim::violations_by_invariant(reports) {
            say!("{name:<32}  {seeds:>6}  {count:>10}");
        }
        say!("seeds with invariant violations: {bad:?}");
    }
}

fn replay(path: &std::path::Path) -> ExitCode {
    use meridian_core::journal;
    let records = match std::fs::read(path)
        .map_err(|e| e.to_string())
        .and_then(|b| journal::decode_all(&b).map_err(|e| e.to_string()))
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("meridian-sim: {}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    match journal::replay(&records) {
        Ok(journal::Replay::Identical { steps, span }) => {
            say!(
                "replayed {steps} steps ({:.1} s of the node's time): every output identical",
                span.as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Ok(journal::Replay::Diverged { step, at, input }) => {
            say!(
                "DIVERGED at step {step} ({input} at {:.6} s): the machine emitted something else",
                at.as_micros() as f64 / 1e6
            );
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("meridian-sim: {}: {e}", path.display());
            ExitCode::from(2)
        }
    }
}

/// Read `path`, apply `--chaos` and then `--set`.
fn load(
    path: &std::path::Path,
    set: &[String],
    chaos: Option<f64>,
) -> Result<scenario::Scenario, String> {
    let text = read_with_chaos(path, chaos)?;
    scenario::parse(&text, path, set).map_err(|e| e.to_string())
}

fn read_with_chaos(path: &std::path::Path, chaos: Option<f64>) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    match chaos {
        None => Ok(text),
        Some(rate) if rate.is_finite() && rate > 0.0 => Ok(scenario::with_chaos(&text, rate)),
        Some(rate) => Err(format!(
            "--chaos {rate}: must be a positive number of faults per simulated minute"
        )),
    }
}

fn shrink(
    path: &std::path::Path,
    seed: Option<u64>,
    out: Option<PathBuf>,
    max_runs: usize,
    quiet: bool,
    chaos: Option<f64>,
) -> ExitCode {
    use meridian_sim::shrink::{default_output, shrink, ShrinkError};
    let text = match read_with_chaos(path, chaos) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("meridian-sim: {e}");
            return ExitCode::from(2);
        }
    };
    let seed = match seed {
        Some(s) => s,
        None => match scenario::parse(&text, path, &[]) {
            Ok(s) => s.seed,
            Err(e) => {
                eprintln!("meridian-sim: {e}");
                return ExitCode::from(2);
            }
        },
    };
    let mut progress = |line: &str| {
        if !quiet {
            eprintln!("  {line}");
        }
    };
    match shrink(&text, path, seed, max_runs, &mut progress) {
        Err(ShrinkError::NoViolation(seed)) => {
            eprintln!("meridian-sim: seed {seed}: every invariant held, nothing to shrink");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("meridian-sim: {e}");
            ExitCode::from(2)
        }
        Ok(s) => {
            let out = out.unwrap_or_else(|| default_output(path, seed));
            if let Err(e) = std::fs::write(&out, &s.text) {
                eprintln!("meridian-sim: {}: {e}", out.display());
                return ExitCode::from(2);
            }
            say!(
                "`{}` still violated at {} ms with seed {} ({})\n  faults {} -> {}, nodes {} -> {}, duration {} -> {} ms, {} runs\n  written to {}",
                s.invariant,
                s.at_ms,
                s.seed,
                s.detail,
                s.faults.0,
                s.faults.1,
                s.nodes.0,
                s.nodes.1,
                s.duration_ms.0,
                s.duration_ms.1,
                s.runs,
                out.display()
            );
            ExitCode::SUCCESS
        }
    }
}

fn trace(path: &std::path::Path, f: &meridian_sim::trace::Filter) -> ExitCode {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) => {
            eprintln!("meridian-sim: {}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match meridian_sim::trace::filter(std::io::BufReader::new(file), &mut out, f) {
        Ok((kept, read)) => {
            drop(out);
            eprintln!("{kept} of {read} lines");
            ExitCode::SUCCESS
        }
        // The reader went away (`trace FILE | head`): nothing went wrong here.
        Err(meridian_sim::trace::TraceError::Io(e))
            if e.kind() == std::io::ErrorKind::BrokenPipe =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("meridian-sim: {}: {e}", path.display());
            ExitCode::from(2)
        }
    }
}
