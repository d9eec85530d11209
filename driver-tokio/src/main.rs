//! `meridian-node`: runs one gate, manager or worker over real UDP and TCP.
//!
//! `meridian-node run --config FILE` starts the node described by FILE (see
//! `meridian_driver_tokio::config`); SIGINT or SIGTERM makes it leave gracefully.
//! `meridian-node members --node ADDR` and `meridian-node rtt --node ADDR ID` ask a
//! running node (on its TCP port) for its membership table and an RTT estimate; `--json`
//! for scripts.

use clap::{Parser, Subcommand};
use meridian_driver_tokio::admin::{self, Answer, Request};
use meridian_driver_tokio::config::NodeFile;
use meridian_driver_tokio::runner::{spawn_with, Bound, Options};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// `println!` / `print!` / `eprintln!` without their panic when the stream is gone: a
/// query piped into `head` still exits by its answer, and a node whose log reader died
/// (its stderr a pipe nobody reads) keeps running and, on SIGTERM, still leaves
/// gracefully instead of panicking on the line that announces it. A reader that went
/// away (a broken pipe) is no error; any other failure to write a query's answer (a full
/// disk under `> file`) is said on stderr and makes the query exit 1
/// ([`answer_written`]). What cannot be written to stderr is dropped: there is nowhere
/// left to say it.
macro_rules! out {
    ($($arg:tt)*) => {
        emit(format_args!($($arg)*), false)
    };
}
macro_rules! outln {
    ($($arg:tt)*) => {
        emit(format_args!($($arg)*), true)
    };
}
macro_rules! note {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

#[derive(Parser)]
#[command(name = "meridian-node", version, about = "Run a Meridian node")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the node described by a TOML file until SIGINT/SIGTERM (then leave).
    Run {
        #[arg(long)]
        config: PathBuf,
        /// Write the node's journal (every input, its instant, a digest of the outputs)
        /// here, for `meridian-sim replay`.
        #[arg(long)]
        record: Option<PathBuf>,
    },
    /// The membership table of the node listening at --node.
    Members {
        #[arg(long, default_value = "127.0.0.1:7101")]
        node: SocketAddr,
        #[arg(long)]
        json: bool,
    },
    /// Write a development CA and one certificate per role (gate, manager, worker) into
    /// --out, for `[tls]` (`ca.pem`, `<role>.pem`, `<role>.key`).
    Certs {
        #[arg(long)]
        out: PathBuf,
    },
    /// Submit the job JOB.toml describes to the gate at --node.
    Submit {
        #[arg(long, default_value = "127.0.0.1:7101")]
        node: SocketAddr,
        job: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// The jobs the gate at --node leads, and those it finished lately.
    Jobs {
        #[arg(long, default_value = "127.0.0.1:7101")]
        node: SocketAddr,
        #[arg(long)]
        json: bool,
    },
    /// The RTT estimate of the node at --node to node ID.
    Rtt {
        #[arg(long, default_value = "127.0.0.1:7101")]
        node: SocketAddr,
        id: u32,
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Run { config, record } => {
            let file = match NodeFile::load(&config) {
                Ok(f) => f,
                Err(e) => {
                    note!("meridian-node: {e}");
                    return ExitCode::from(2);
                }
            };
            tracing_subscriber::fmt()
                .with_max_level(file.log_level().expect("checked when the file was read"))
                .with_writer(std::io::stderr)
                .init();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a tokio runtime");
            let base = config
                .parent()
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("."));
            rt.block_on(run(file, base, record))
        }
        Cmd::Members { node, json } => ask(node, Request::Members, json),
        Cmd::Rtt { node, id, json } => ask(node, Request::Rtt { node: id }, json),
        Cmd::Jobs { node, json } => ask(node, Request::Jobs, json),
        Cmd::Certs { out } => match write_certs(&out) {
            Ok(()) => {
                outln!(
                    "CA and gate/manager/worker certificates written to {}",
                    out.display()
                );
                answer_written()
            }
            Err(e) => {
                note!("meridian-node: {e}");
                ExitCode::from(1)
            }
        },
        Cmd::Submit { node, job, json } => {
            let parsed = std::fs::read_to_string(&job)
                .map_err(|e| e.to_string())
                .and_then(|t| toml::from_str::<admin::JobFile>(&t).map_err(|e| e.to_string()));
            match parsed {
                Ok(j) => ask(node, Request::Submit(j), json),
                Err(e) => {
                    note!("meridian-node: {}: {e}", job.display());
                    ExitCode::from(2)
                }
            }
        }
    }
}

static STDOUT_FAILED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn emit(text: std::fmt::Arguments<'_>, newline: bool) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let written = out
        .write_fmt(text)
        .and_then(|()| {
            if newline {
                out.write_all(b"\n")
            } else {
                Ok(())
            }
        })
        .and_then(|()| out.flush());
    if let Err(e) = written {
        if e.kind() != std::io::ErrorKind::BrokenPipe
            && !STDOUT_FAILED.swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            note!("meridian-node: stdout: {e}");
        }
    }
}

/// A command's exit status once its answer is out: 1 if stdout failed other than by
/// its reader going away.
fn answer_written() -> ExitCode {
    if STDOUT_FAILED.load(std::sync::atomic::Ordering::Relaxed) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn ask(node: SocketAddr, req: Request, json: bool) -> ExitCode {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let answer = match rt.block_on(admin::ask(node, &req)) {
        Ok(a) => a,
        Err(e) => {
            note!("meridian-node: {node}: {e}");
            return ExitCode::from(1);
        }
    };
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&answer).expect("answers serialize")
        );
        return answer_written();
    }
    match answer {
        Answer::Members { members } => out!("{}", admin::members_table(&members)),
        Answer::Rtt { estimate: Some(e) } => outln!(
            "node {}: {:.2} ms (sigma {:.2} ms, upper bound {:.2} ms)",
            e.node,
            e.rtt_ms,
            e.sigma_ms,
            e.ucb_ms
        ),
        Answer::Rtt { estimate: None } => outln!("no estimate yet"),
        Answer::Submitted { job, state } => outln!("job {job}: {state}"),
        Answer::Jobs { running, finished } => {
            out!("{}", admin::jobs_table(&running, &finished))
        }
        Answer::Error { message } => {
            note!("meridian-node: {message}");
            return ExitCode::from(1);
        }
    }
    answer_written()
}

async fn run(file: NodeFile, base: PathBuf, record: Option<PathBuf>) -> ExitCode {
    let journal = match record.as_ref().map(std::fs::File::create).transpose() {
        Ok(j) => j,
        Err(e) => {
            note!("meridian-node: cannot write the journal: {e}");
            return ExitCode::from(2);
        }
    };
    let bind = if file.membership.oob {
        Bound::bind_with_oob(file.bind).await
    } else {
        Bound::bind(file.bind).await
    };
    let bound = match bind {
        Ok(b) => b,
        Err(e) => {
            note!("meridian-node: cannot bind {}: {e}", file.bind);
            return ExitCode::from(1);
        }
    };
    let at = bound.local_addr();
    let keyring = file.keyring().expect("checked when the file was read");
    let tls = match file.tls(&base) {
        Ok(t) => t,
        Err(e) => {
            note!("meridian-node: {e}");
            return ExitCode::from(2);
        }
    };
    let metrics = match file.metrics.map(std::net::TcpListener::bind).transpose() {
        Ok(m) => m,
        Err(e) => {
            note!("meridian-node: cannot serve metrics: {e}");
            return ExitCode::from(1);
        }
    };
    let node = spawn_with(
        bound,
        file.node_config(at),
        Options {
            record: journal,
            keyring,
            metrics,
            workload: (file.role() == meridian_core::Role::Worker)
                .then(|| file.workflow_ms.unwrap_or((1000, 3000))),
            tls,
            resources: file.resource_samples,
        },
    );
    note!(
        "meridian-node: {} (id {}, {:?}) on {at}",
        file.name,
        file.id,
        file.role()
    );
    wait_for_signal().await;
    note!("meridian-node: leaving");
    node.leave(Duration::from_secs(1)).await;
    ExitCode::SUCCESS
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("a SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn write_certs(out: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    use meridian_core::Role;
    use meridian_driver_tokio::tls::DevCa;
    std::fs::create_dir_all(out)?;
    let ca = DevCa::new()?;
    std::fs::write(out.join("ca.pem"), ca.cert_pem())?;
    for (role, name) in [
        (Role::Gate, "gate"),
        (Role::Manager, "manager"),
        (Role::Worker, "worker"),
    ] {
        let (cert, key) = ca.issue(role, name)?;
        std::fs::write(out.join(format!("{name}.pem")), cert)?;
        std::fs::write(out.join(format!("{name}.key")), key)?;
    }
    Ok(())
}
