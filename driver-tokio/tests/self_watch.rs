//! The driver samples its own loop and process for the node (membership.md §6.1's loop
//! lag, backpressure.md §2's resources): a loop something blocks raises Lifeguard's
//! local health score, and the resource samples reach the node.

use meridian_driver_tokio::config::NodeFile;
use meridian_driver_tokio::runner::{spawn_with, Bound, Options};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn value(page: &str, series: &str) -> f64 {
    page.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l[series.len()..].trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in {page}"))
}

async fn metrics(at: std::net::SocketAddr) -> String {
    tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(at).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    })
    .await
    .unwrap()
}

/// A lone worker (no peers: no probe round can lower its score) with metrics.
async fn lone_node(
    resources: bool,
) -> (
    meridian_driver_tokio::runner::NodeHandle,
    std::net::SocketAddr,
) {
    let b = Bound::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let at = b.local_addr();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let metrics_at = listener.local_addr().unwrap();
    let file = NodeFile::parse(&format!("id = 0\nrole = \"worker\"\nbind = \"{at}\"")).unwrap();
    let node = spawn_with(
        b,
        file.node_config(at),
        Options {
            metrics: Some(listener),
            resources,
            ..Options::default()
        },
    );
    (node, metrics_at)
}

// One runtime thread: the node's loop and the blocking task share it, as a node's loop
// shares a thread with whatever blocks it in production.
#[tokio::test(flavor = "current_thread")]
async fn a_blocked_loop_raises_the_local_health_score() {
    let (node, metrics_at) = lone_node(false).await;
    let page = metrics(metrics_at).await;
    assert_eq!(value(&page, "meridian_local_health{cluster=\"1\"}"), 0.0);
    // Something blocks the runtime's thread 40 ms at a time: each 10 ms lag sleep takes
    // at least 40 ms, a critical sample (ratio > 2.0), +2 each.
    let blocking = Arc::new(AtomicBool::new(true));
    let hog = tokio::spawn({
        let blocking = blocking.clone();
        async move {
            while blocking.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(40));
                tokio::task::yield_now().await;
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    blocking.store(false, Ordering::Relaxed);
    hog.await.unwrap();
    let page = metrics(metrics_at).await;
    let samples = value(&page, "meridian_self_samples_total{kind=\"loop_lag\"}");
    assert!(samples >= 2.0, "{page}");
    assert!(
        value(&page, "meridian_self_last{what=\"loop_lag\"}") > 2.0,
        "{page}"
    );
    let raised = value(&page, "meridian_local_health{cluster=\"1\"}");
    assert!(raised >= 4.0, "two critical samples or more: {page}");
    // No resource samples unless asked for.
    assert_eq!(
        value(&page, "meridian_self_samples_total{kind=\"resources\"}"),
        0.0
    );
    // Five good samples after a degraded stretch: the loop has recovered, -1.
    tokio::time::sleep(Duration::from_millis(6_500)).await;
    let page = metrics(metrics_at).await;
    assert!(
        value(&page, "meridian_self_last{what=\"loop_lag\"}") <= 0.5,
        "{page}"
    );
    assert!(
        value(&page, "meridian_local_health{cluster=\"1\"}") < raised,
        "{page}"
    );
    node.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_samples_reach_the_node_once_a_second() {
    let (node, metrics_at) = lone_node(true).await;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let page = metrics(metrics_at).await;
    let samples = value(&page, "meridian_self_samples_total{kind=\"resources\"}");
    if cfg!(target_os = "linux") {
        assert!((2.0..=3.0).contains(&samples), "{page}");
        let mem = value(&page, "meridian_self_last{what=\"mem_percent\"}");
        assert!(mem > 0.0 && mem < 50.0, "{page}");
        let cpu = value(&page, "meridian_self_last{what=\"cpu_percent\"}");
        assert!((0.0..70.0).contains(&cpu), "an idle node: {page}");
        // An idle node with room to spare grades itself healthy.
        assert_eq!(value(&page, "meridian_overload_state"), 0.0, "{page}");
    } else {
        assert_eq!(samples, 0.0);
    }
    node.kill();
}
