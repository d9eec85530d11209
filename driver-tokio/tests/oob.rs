//! membership.md §9's out-of-band channel over real UDP (loopback): a node started with
//! `membership.oob` answers probes on its port + 100, sealed under its keyring when it
//! has one, and counts and drops what it cannot take.

use meridian_core::wire::{OobFrame, OobKind};
use meridian_driver_tokio::config::NodeFile;
use meridian_driver_tokio::keyring::Keyring;
use meridian_driver_tokio::runner::{spawn_with, Bound, NodeHandle, Options};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::net::UdpSocket;

const K1: &str = "1111111111111111111111111111111111111111111111111111111111111111";

/// A lone worker with the OOB channel on; with `key`, a closed cluster.
async fn node(key: Option<&str>) -> (NodeHandle, SocketAddr, Option<Keyring>) {
    let b = Bound::bind_with_oob("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let at = b.local_addr();
    let security = key.map_or(String::new(), |k| format!("[security]\nkeys = [\"{k}\"]\n"));
    let file = NodeFile::parse(&format!(
        "id = 0\nrole = \"worker\"\nbind = \"{at}\"\nseeds = []\n[membership]\noob = true\n{security}"
    ))
    .unwrap();
    let keyring = file.keyring().unwrap();
    let h = spawn_with(
        b,
        file.node_config(at),
        Options {
            keyring: keyring.clone(),
            ..Options::default()
        },
    );
    let oob = SocketAddr::new(at.ip(), at.port() + 100);
    (h, oob, keyring)
}

async fn answer(sock: &UdpSocket) -> Option<Vec<u8>> {
    let mut buf = [0u8; 128];
    let got = tokio::time::timeout(Duration::from_secs(5), sock.recv_from(&mut buf)).await;
    got.ok().map(|r| buf[..r.unwrap().0].to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_answers_oob_probes_on_its_port_plus_100() {
    let (h, oob, _) = node(None).await;
    let me = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    // Neither garbage nor an oversize datagram gets an answer; the probe after them does.
    me.send_to(&[0xff, 1], oob).await.unwrap();
    me.send_to(&[1; 100], oob).await.unwrap();
    me.send_to(&OobFrame::new(OobKind::Probe, 77).encode(), oob)
        .await
        .unwrap();
    let got = answer(&me).await.expect("an answer within 5 s");
    assert_eq!(OobFrame::decode(&got), Ok(OobFrame::new(OobKind::Ack, 77)));
    assert_eq!(h.stats.oob_in.load(Ordering::Relaxed), 3);
    assert_eq!(
        h.stats.oob_dropped.load(Ordering::Relaxed),
        1,
        "the oversize one"
    );
    // A crash takes the OOB socket with it: the port can be bound again.
    h.kill();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while UdpSocket::bind(oob).await.is_err() {
        assert!(std::time::Instant::now() < deadline, "{oob} still bound");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_keyring_only_sealed_probes_are_answered_and_answers_are_sealed() {
    let (h, oob, keyring) = node(Some(K1)).await;
    let k = keyring.expect("a keyring");
    let me = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    me.send_to(&OobFrame::new(OobKind::Probe, 1).encode(), oob)
        .await
        .unwrap();
    me.send_to(&k.seal(&OobFrame::new(OobKind::Probe, 2).encode()), oob)
        .await
        .unwrap();
    let got = answer(&me).await.expect("an answer within 5 s");
    let plain = k.open(&got).expect("sealed under the cluster's key");
    assert_eq!(OobFrame::decode(&plain), Ok(OobFrame::new(OobKind::Ack, 2)));
    assert_eq!(
        h.stats.oob_dropped.load(Ordering::Relaxed),
        1,
        "the plain probe"
    );
    h.kill();
}
