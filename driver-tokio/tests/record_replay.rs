//! Issue 8, record and replay: a real node's journal (`--record`) replays bit for bit
//! in the pure machine: same config, same inputs at the same instants, same outputs at
//! every step, through real sockets, real time, a crash of a peer and a leave.

use meridian_core::journal::{self, Record, Replay};
use meridian_core::membership::member::Status;
use meridian_driver_tokio::config::NodeFile;
use meridian_driver_tokio::runner::{spawn_with, Bound, Options};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_node_replays_identically() {
    let mut bound = Vec::new();
    for _ in 0..3 {
        bound.push(Bound::bind("127.0.0.1:0".parse().unwrap()).await.unwrap());
    }
    let addrs: Vec<_> = bound.iter().map(|b| b.local_addr()).collect();
    let path = std::env::temp_dir().join(format!("meridian-journal-{}.bin", std::process::id()));
    let mut nodes = Vec::new();
    for (i, b) in bound.into_iter().enumerate() {
        let file = NodeFile::parse(&format!(
            "id = {i}\nrole = \"worker\"\nbind = \"{}\"\nseeds = [\"{}\"]",
            addrs[i], addrs[0]
        ))
        .unwrap();
        let record = (i == 0).then(|| std::fs::File::create(&path).unwrap());
        let at = b.local_addr();
        nodes.push(spawn_with(
            b,
            file.node_config(at),
            Options {
                record,
                ..Options::default()
            },
        ));
    }
    let start = Instant::now();
    loop {
        let rows = nodes[0].members().await;
        if rows.iter().filter(|r| r.status == Status::Alive).count() == 3 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{rows:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    nodes.pop().unwrap().kill();
    // Until node 0 buries the crashed one: probes, timeouts, suspicion, gossip.
    loop {
        let rows = nodes[0].members().await;
        if rows
            .iter()
            .any(|r| r.node.0 == 2 && r.status == Status::Dead)
        {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{rows:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let other = nodes.pop().unwrap();
    nodes.pop().unwrap().leave(Duration::from_millis(200)).await;
    other.kill();

    let bytes = std::fs::read(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    let records = journal::decode_all(&bytes).unwrap();
    let kinds = |k: &str| {
        records
            .iter()
            .filter(|r| matches!(r, Record::Step { input, .. } if input.kind() == k))
            .count()
    };
    assert!(
        kinds("datagram") >= 5 && kinds("tick") >= 5,
        "{} records: {} datagrams, {} frames, {} ticks",
        records.len(),
        kinds("datagram"),
        kinds("frame"),
        kinds("tick")
    );
    assert_eq!(kinds("leave"), 1);
    match journal::replay(&records).unwrap() {
        Replay::Identical { steps, span } => {
            eprintln!("replayed {steps} steps over {span:?}");
            assert_eq!(steps, records.len() - 1);
            assert!(span > Duration::from_secs(3));
        }
        d => panic!("a real run did not replay: {d:?}"),
    }
}
