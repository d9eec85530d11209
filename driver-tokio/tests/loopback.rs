//! Issue 8, acceptance 2 (loopback part): ten real nodes on 127.0.0.1 join and
//! converge; a killed node is declared dead by every other; a node that leaves is marked
//! left, not dead. Real sockets, real time, the same machines the simulator runs.

use meridian_core::membership::member::Status;
use meridian_core::{NodeId, Role};
use meridian_driver_tokio::config::NodeFile;
use meridian_driver_tokio::runner::{spawn, Bound, NodeHandle};
use std::time::{Duration, Instant};

/// Ten nodes of one DC: three managers (the election group) and seven workers, every
/// one seeded with the first two managers.
async fn cluster() -> Vec<NodeHandle> {
    let mut bound = Vec::new();
    for _ in 0..10 {
        bound.push(Bound::bind("127.0.0.1:0".parse().unwrap()).await.unwrap());
    }
    let addrs: Vec<_> = bound.iter().map(|b| b.local_addr()).collect();
    let voters: String = (0..3)
        .map(|i| format!("{{ id = {i}, addr = \"{}\" }}", addrs[i]))
        .collect::<Vec<_>>()
        .join(", ");
    let mut nodes = Vec::new();
    for (i, b) in bound.into_iter().enumerate() {
        let manager = i < 3;
        let text = format!(
            "id = {i}\nname = \"dc1/node-{i}\"\nrole = \"{}\"\ndc = 0\nbind = \"{}\"\nseeds = [\"{}\", \"{}\"]\n{}",
            if manager { "manager" } else { "worker" },
            addrs[i],
            addrs[0],
            addrs[1],
            if manager { format!("voters = [{voters}]\n") } else { String::new() },
        );
        let file = NodeFile::parse(&text).unwrap();
        assert_eq!(
            file.role(),
            if manager { Role::Manager } else { Role::Worker }
        );
        let at = b.local_addr();
        nodes.push(spawn(b, file.node_config(at)));
    }
    nodes
}

/// The slowest "declared dead by every other node" of the simulated twin.
fn simulated_all_dead_max() -> Duration {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/scenarios/loopback-ten.toml");
    let s = meridian_sim::scenario::load(&path, &[]).unwrap();
    let ms = meridian_sim::sweep(&s, 1..21, 2)
        .iter()
        .flat_map(|r| r.membership.detections.clone())
        .map(|d| d.all_dead_ms.expect("dead everywhere") - d.crashed_at_ms)
        .max()
        .expect("a crash");
    Duration::from_millis(ms)
}

/// Polls `cond` over every node's view until it holds for all of them.
async fn until(
    nodes: &[NodeHandle],
    within: Duration,
    what: &str,
    cond: impl Fn(NodeId, &[meridian_driver_tokio::runner::MemberRow]) -> bool,
) -> Duration {
    let start = Instant::now();
    loop {
        let mut all = true;
        for n in nodes {
            if !cond(n.node, &n.members().await) {
                all = false;
                break;
            }
        }
        if all {
            return start.elapsed();
        }
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn status_of(rows: &[meridian_driver_tokio::runner::MemberRow], node: NodeId) -> Option<Status> {
    rows.iter().find(|r| r.node == node).map(|r| r.status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_nodes_converge_detect_a_crash_and_see_a_leave() {
    let mut nodes = cluster().await;
    let joined = until(&nodes, Duration::from_secs(30), "converge", |me, rows| {
        (0..10)
            .map(NodeId)
            .filter(|n| *n != me)
            .all(|n| status_of(rows, n) == Some(Status::Alive))
    })
    .await;
    eprintln!("10 nodes converged in {joined:?}");
    // Settle, as the simulated cluster has before its crash at 60 s.
    tokio::time::sleep(Duration::from_secs(10)).await;

    // A crash: the task and its sockets go at once, nothing announced.
    let dead = nodes.pop().unwrap();
    let dead_id = dead.node;
    dead.kill();
    let detected = until(
        &nodes,
        Duration::from_secs(60),
        "crash detected",
        |_, rows| status_of(rows, dead_id) == Some(Status::Dead),
    )
    .await;
    eprintln!("crash of {dead_id:?} declared dead by all 9 others in {detected:?}");
    // The same cluster, config and crash in the simulator (fixtures/scenarios/
    // loopback-ten.toml, 20 seeds): real detection stays within its slowest, plus the
    // polling and scheduling a real run adds.
    let sim_max = simulated_all_dead_max();
    eprintln!("simulator: slowest dead-everywhere over 20 seeds {sim_max:?}");
    assert!(
        detected <= sim_max + Duration::from_secs(3),
        "real {detected:?} vs simulated {sim_max:?}"
    );

    // A graceful leave: marked left, never dead.
    let leaving = nodes.pop().unwrap();
    let left_id = leaving.node;
    leaving.leave(Duration::from_millis(500)).await;
    let seen = until(&nodes, Duration::from_secs(10), "leave seen", |_, rows| {
        status_of(rows, left_id) == Some(Status::Left)
    })
    .await;
    eprintln!("leave of {left_id:?} seen by all 8 others in {seen:?}");
    // Still left (not declared dead) a while later.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for n in &nodes {
        assert_eq!(status_of(&n.members().await, left_id), Some(Status::Left));
        assert!(
            n.stats
                .datagrams_in
                .load(std::sync::atomic::Ordering::Relaxed)
                > 0
        );
    }
    for n in nodes {
        n.kill();
    }
}
