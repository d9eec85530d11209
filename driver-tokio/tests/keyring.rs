//! Issue 8, security: with a keyring, gossip datagrams (and frames) are sealed; a node
//! with another key, or none, cannot join: whatever it sends is counted and dropped.

use meridian_core::membership::member::Status;
use meridian_driver_tokio::config::NodeFile;
use meridian_driver_tokio::runner::{spawn_with, Bound, NodeHandle, Options};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const K1: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const K2: &str = "2222222222222222222222222222222222222222222222222222222222222222";
const K3: &str = "3333333333333333333333333333333333333333333333333333333333333333";

async fn node(id: u32, seed: Option<std::net::SocketAddr>, keys: &[&str]) -> NodeHandle {
    let b = Bound::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let at = b.local_addr();
    let keys: Vec<String> = keys.iter().map(|k| format!("\"{k}\"")).collect();
    let file = NodeFile::parse(&format!(
        "id = {id}\nrole = \"worker\"\nbind = \"{at}\"\nseeds = [{}]\n[security]\nkeys = [{}]",
        seed.map(|s| format!("\"{s}\"")).unwrap_or_default(),
        keys.join(", ")
    ))
    .unwrap();
    let keyring = file.keyring().unwrap();
    spawn_with(
        b,
        file.node_config(at),
        Options {
            keyring,
            ..Options::default()
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_nodes_holding_a_key_join() {
    // Mid-rotation: a seals with K1, b already with K2; each accepts both.
    let a = node(0, None, &[K1, K2]).await;
    let b = node(1, Some(a.addr), &[K2, K1]).await;
    let stranger = node(2, Some(a.addr), &[K3]).await;
    let plain = {
        let bnd = Bound::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let at = bnd.local_addr();
        let f = NodeFile::parse(&format!(
            "id = 3\nrole = \"worker\"\nbind = \"{at}\"\nseeds = [\"{}\"]",
            a.addr
        ))
        .unwrap();
        meridian_driver_tokio::runner::spawn(bnd, f.node_config(at))
    };
    let start = Instant::now();
    loop {
        let rows = a.members().await;
        if rows
            .iter()
            .any(|r| r.node.0 == 1 && r.status == Status::Alive)
        {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{rows:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let rows = a.members().await;
    for outsider in [2, 3] {
        assert!(
            !rows
                .iter()
                .any(|r| r.node.0 == outsider && r.status == Status::Alive),
            "node {outsider} joined without the key: {rows:?}"
        );
    }
    assert!(a.stats.datagrams_rejected.load(Ordering::Relaxed) > 0);
    assert!(
        stranger.members().await.iter().all(|r| r.node.0 == 2),
        "the stranger learned nobody"
    );
    for n in [a, b, stranger, plain] {
        n.kill();
    }
}
