//! Issue 8, acceptance 1: the local cluster of `fixtures/cluster/` (what `just cluster`
//! starts) comes up as real processes, and `meridian-node members` on any node lists
//! every member of its cluster alive; a job submitted through the CLI completes over
//! mutual TLS; SIGTERM makes a node leave, even one whose stderr nobody reads any more.

use meridian_driver_tokio::admin::MemberView;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_meridian-node");

struct Cluster(Vec<Child>);

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn members(port: u16) -> Option<Vec<MemberView>> {
    let out = Command::new(BIN)
        .args(["members", "--node", &format!("127.0.0.1:{port}"), "--json"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    serde_json::from_value(v.get("members")?.clone()).ok()
}

#[test]
fn the_local_cluster_lists_every_node_alive_and_leaves_on_sigterm() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/cluster");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 12, "3 DCs x (gate, 2 managers, worker)");
    let mut cluster = Cluster(Vec::new());
    for f in &files {
        // eu-west's worker logs into a pipe nobody reads (its read end is closed before
        // the node starts, as when an operator's log collector died): it must run, and
        // leave on SIGTERM below, all the same.
        let stderr = if f.ends_with("eu-west-worker-0.toml") {
            let (reader, writer) = std::io::pipe().unwrap();
            drop(reader);
            Stdio::from(writer)
        } else {
            Stdio::null()
        };
        cluster.0.push(
            Command::new(BIN)
                .args(["run", "--config", f.to_str().unwrap()])
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .unwrap(),
        );
    }
    // Gates share one cluster (3 members); each DC's managers and worker another (3).
    let ports: Vec<u16> = [71u16, 72, 73]
        .iter()
        .flat_map(|p| (1..=4).map(move |k| p * 100 + k))
        .collect();
    let start = Instant::now();
    let mut pending = ports.clone();
    while !pending.is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "not all alive within 60 s: {pending:?}"
        );
        pending.retain(|p| {
            !members(*p).is_some_and(|m| m.len() == 3 && m.iter().all(|r| r.status == "alive"))
        });
        std::thread::sleep(Duration::from_millis(250));
    }
    eprintln!("12 nodes alive everywhere in {:?}", start.elapsed());
    // A gate's table is the gates; a manager's is its DC.
    let gates = members(7101).unwrap();
    assert_eq!(
        gates.iter().map(|m| m.node).collect::<Vec<_>>(),
        vec![7101, 7201, 7301]
    );
    assert!(gates.iter().all(|m| m.role == "gate"));
    let dc = members(7202).unwrap();
    assert_eq!(
        dc.iter().map(|m| m.node).collect::<Vec<_>>(),
        vec![7202, 7203, 7204]
    );
    // A job through the CLI: gates, managers and workers talk over mutual TLS (the
    // files' [tls]) and it completes.
    // A DC whose latest heartbeat predates its workers' registration is UNHEALTHY
    // (AD-16), and a job with nowhere to go fails at once (AD-17): as a client would,
    // submit again while that happens, for at most 30 s.
    let job = dir.join("jobs/example.toml");
    let first_try = Instant::now();
    let id: u64 = loop {
        let out = Command::new(BIN)
            .args(["submit", "--node", "127.0.0.1:7101", job.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let mut words = text.split_whitespace().skip(1);
        let id: u64 = words
            .next()
            .and_then(|s| s.trim_end_matches(':').parse().ok())
            .expect("job <id>: <state>");
        if words.next() != Some("failed") {
            break id;
        }
        assert!(
            first_try.elapsed() < Duration::from_secs(30),
            "every job refused for 30 s: {text}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let start = Instant::now();
    loop {
        let out = Command::new(BIN)
            .args(["jobs", "--node", "127.0.0.1:7101", "--json"])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let done = v["finished"]
            .as_array()
            .and_then(|f| f.iter().find(|e| e[0] == id))
            .map(|e| e[1].clone());
        if let Some(state) = done {
            assert_eq!(state, "completed");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{v}");
        std::thread::sleep(Duration::from_millis(250));
    }
    eprintln!("job {id} completed in {:?}", start.elapsed());
    // SIGTERM: eu-west's worker leaves; its managers mark it left.
    let worker = &cluster.0[files
        .iter()
        .position(|f| f.ends_with("eu-west-worker-0.toml"))
        .unwrap()];
    let ok = Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let start = Instant::now();
    loop {
        let m = members(7202).unwrap_or_default();
        if m.iter().any(|r| r.node == 7204 && r.status == "left") {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "{m:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
