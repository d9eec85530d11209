//! Issue 8, mutual TLS: frames flow between nodes whose certificates the cluster CA
//! issued and whose roles may talk; a worker is refused by a gate, a certificate from
//! another CA and a node without TLS are refused by everyone.

use meridian_core::membership::member::Status;
use meridian_core::Role;
use meridian_driver_tokio::config::NodeFile;
use meridian_driver_tokio::runner::{spawn_with, Bound, NodeHandle, Options};
use meridian_driver_tokio::tls::{DevCa, Tls};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

async fn start(text: String, b: Bound, tls: Option<Tls>) -> NodeHandle {
    let f = NodeFile::parse(&text).unwrap();
    let at = b.local_addr();
    spawn_with(
        b,
        f.node_config(at),
        Options {
            tls,
            ..Options::default()
        },
    )
}

fn identity(ca: &DevCa, role: Role) -> Tls {
    let (cert, key) = ca.issue(role, "test").unwrap();
    Tls::from_pem(&ca.cert_pem(), &cert, &key, role).unwrap()
}

async fn bind() -> (Bound, SocketAddr) {
    let b = Bound::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let a = b.local_addr();
    (b, a)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_need_a_certificate_of_the_cluster_and_a_role_that_may_talk() {
    let ca = DevCa::new().unwrap();
    let rogue_ca = DevCa::new().unwrap();
    let (bm, m) = bind().await;
    let (bw, w) = bind().await;
    let (bg, g) = bind().await;
    let manager = start(
        format!(
            "id = 1\nrole = \"manager\"\nbind = \"{m}\"\nvoters = [{{ id = 1, addr = \"{m}\" }}]"
        ),
        bm,
        Some(identity(&ca, Role::Manager)),
    )
    .await;
    let worker = start(
        format!("id = 2\nrole = \"worker\"\nbind = \"{w}\"\nseeds = [\"{m}\"]"),
        bw,
        Some(identity(&ca, Role::Worker)),
    )
    .await;
    let gate = start(
        format!(
            "id = 3\nrole = \"gate\"\nbind = \"{g}\"\nvoters = [{{ id = 3, addr = \"{g}\" }}]\n[[observe]]\ndc = 0\nseeds = [\"{m}\"]"
        ),
        bg,
        Some(identity(&ca, Role::Gate)),
    )
    .await;
    let start_at = Instant::now();
    while !manager
        .members()
        .await
        .iter()
        .any(|r| r.node.0 == 2 && r.status == Status::Alive)
    {
        assert!(start_at.elapsed() < Duration::from_secs(20));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The gate registered with the manager and hears its heartbeats: frames both ways.
    let start_at = Instant::now();
    while gate.stats.frames_in.load(Ordering::Relaxed) == 0
        || manager.stats.frames_in.load(Ordering::Relaxed) == 0
    {
        assert!(
            start_at.elapsed() < Duration::from_secs(20),
            "no frames over TLS"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(manager.stats.tls_rejected.load(Ordering::Relaxed), 0);
    assert_eq!(gate.stats.tls_rejected.load(Ordering::Relaxed), 0);

    // A worker dialling the gate's frame port (a compromised worker, say): its
    // certificate is the cluster's, but the gate refuses a worker.
    let worker_tls = identity(&ca, Role::Worker);
    let tcp = tokio::net::TcpStream::connect(g).await.unwrap();
    if let Ok(mut s) = worker_tls.connector.connect(Tls::server_name(), tcp).await {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let _ = s.write_all(&[0, 0, 0, 6, 127, 0, 0, 1, 0, 9]).await;
        let _ = s.flush().await;
        let mut buf = [0u8; 1];
        // The gate closes the connection (EOF or an error), it never answers.
        let r = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await;
        assert!(matches!(r, Ok(Ok(0)) | Ok(Err(_))), "{r:?}");
    }
    // Another CA's manager, and a node without TLS, dialling the manager: refused.
    let (br, r) = bind().await;
    let rogue = start(
        format!("id = 5\nrole = \"worker\"\nbind = \"{r}\"\nseeds = [\"{m}\"]"),
        br,
        Some(identity(&rogue_ca, Role::Worker)),
    )
    .await;
    let (bp, p) = bind().await;
    let plain = start(
        format!("id = 6\nrole = \"worker\"\nbind = \"{p}\"\nseeds = [\"{m}\"]"),
        bp,
        None,
    )
    .await;
    let start_at = Instant::now();
    while gate.stats.tls_rejected.load(Ordering::Relaxed) == 0
        || manager.stats.tls_rejected.load(Ordering::Relaxed) < 2
    {
        assert!(
            start_at.elapsed() < Duration::from_secs(20),
            "gate refused {}, manager {}",
            gate.stats.tls_rejected.load(Ordering::Relaxed),
            manager.stats.tls_rejected.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for n in [manager, worker, gate, rogue, plain] {
        n.kill();
    }
}
