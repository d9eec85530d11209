//! The driver samples its own loop and process for the node (membership.md §6.1's loop
//! lag, backpressure.md §2's resources and latency): a loop something blocks raises
//! Lifeguard's local health score, datagrams that wait seconds to be handled grade the
//! node overloaded, and the resource samples reach the node.

use meridian_driver_tokio::config::NodeFile;
use meridian_driver_tokio::runner::{spawn_with, Bound, Options};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

mod common;

fn value(page: &str, series: &str) -> f64 {
    common::value(page, series).unwrap_or_else(|| panic!("no {series} in {page}"))
}

/// A lone worker (no peers: no probe round can lower its score, no datagram but the
/// test's arrives) with metrics and `opts`: the node, its address, its metrics address.
async fn lone_node(
    opts: Options,
) -> (
    meridian_driver_tokio::runner::NodeHandle,
    std::net::SocketAddr,
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
            ..opts
        },
    );
    (node, at, metrics_at)
}

// One runtime thread: the node's loop and the blocking task share it, as a node's loop
// shares a thread with whatever blocks it in production.
#[tokio::test(flavor = "current_thread")]
async fn a_blocked_loop_raises_the_local_health_score() {
    let (node, _, metrics_at) = lone_node(Options::default()).await;
    let page = common::scrape(metrics_at).await;
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
    tokio::time::sleep(Duration::from_millis(4_500)).await;
    blocking.store(false, Ordering::Relaxed);
    hog.await.unwrap();
    let page = common::scrape(metrics_at).await;
    let samples = value(&page, "meridian_self_samples_total{kind=\"loop_lag\"}");
    assert!(samples >= 3.0, "{page}");
    assert!(
        value(&page, "meridian_self_last{what=\"loop_lag\"}") > 2.0,
        "{page}"
    );
    let raised = value(&page, "meridian_local_health{cluster=\"1\"}");
    assert!(raised >= 6.0, "three critical samples or more: {page}");
    // No resource samples unless asked for.
    assert_eq!(
        value(&page, "meridian_self_samples_total{kind=\"resources\"}"),
        0.0
    );
    // Three lagging samples in a row degraded the loop; five good ones after it mean
    // it has recovered: -1 (about 6 s on).
    let start = std::time::Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let page = common::scrape(metrics_at).await;
        if value(&page, "meridian_local_health{cluster=\"1\"}") < raised {
            assert!(
                value(&page, "meridian_self_last{what=\"loop_lag\"}") <= 0.5,
                "{page}"
            );
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(12), "{page}");
    }
    node.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_samples_reach_the_node_once_a_second() {
    let (node, _, metrics_at) = lone_node(Options {
        resources: true,
        ..Options::default()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let page = common::scrape(metrics_at).await;
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

// AD-18's latency sample is a datagram's wait from the kernel's receive stamp to the end
// of its step: datagrams that sit in the socket's buffer while the loop is blocked for
// 3 s wait ~3 s, above the 2,000 ms absolute bound, so the node grades itself
// overloaded (and would shed all but Critical traffic).
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "current_thread")]
async fn datagrams_that_wait_seconds_grade_the_node_overloaded() {
    let (node, at, metrics_at) = lone_node(Options::default()).await;
    let page = common::scrape(metrics_at).await;
    assert_eq!(value(&page, "meridian_overload_state"), 0.0, "{page}");
    let blocking = Arc::new(AtomicBool::new(false));
    // A sender outside the runtime, so the block does not hold it back: twelve
    // datagrams as soon as the loop is blocked.
    let sender = std::thread::spawn({
        let blocking = blocking.clone();
        move || {
            while !blocking.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(1));
            }
            let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            for i in 0..12u8 {
                sock.send_to(&[0xEE, i], at).unwrap();
            }
        }
    });
    tokio::spawn({
        let blocking = blocking.clone();
        async move {
            blocking.store(true, Ordering::Release);
            std::thread::sleep(Duration::from_secs(3));
        }
    })
    .await
    .unwrap();
    sender.join().unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let page = common::scrape(metrics_at).await;
    assert_eq!(
        value(&page, "meridian_self_samples_total{kind=\"message_wait\"}"),
        12.0,
        "{page}"
    );
    assert!(
        value(&page, "meridian_self_last{what=\"message_wait_ms\"}") > 2_000.0,
        "{page}"
    );
    assert_eq!(value(&page, "meridian_overload_state"), 3.0, "{page}");
    node.kill();
}

// Frames are sampled too: each one's wait on the node's queue, floored at 5 ms while
// the node is idle (and so graded healthy). The node's journal shows what it was fed,
// and replays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_are_latency_samples_too() {
    use meridian_core::journal::{self, Record, RecordedInput, Replay};
    use tokio::io::AsyncWriteExt;
    let path = std::env::temp_dir().join(format!(
        "meridian-self-watch-{}.journal",
        std::process::id()
    ));
    let (node, at, metrics_at) = lone_node(Options {
        record: Some(std::fs::File::create(&path).unwrap()),
        ..Options::default()
    })
    .await;
    let mut conn = tokio::net::TcpStream::connect(at).await.unwrap();
    let me = meridian_driver_tokio::addr_of("127.0.0.1:9".parse().unwrap());
    let mut bytes = Vec::new();
    for frame in [me.as_bytes(), &[0xEE, 1], &[0xEE, 2], &[0xEE, 3]] {
        bytes.extend_from_slice(&(frame.len() as u32).to_be_bytes());
        bytes.extend_from_slice(frame);
    }
    conn.write_all(&bytes).await.unwrap();
    let start = std::time::Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let page = common::scrape(metrics_at).await;
        if value(&page, "meridian_transport_total{what=\"frames_in\"}") == 3.0 {
            assert_eq!(
                value(&page, "meridian_self_samples_total{kind=\"message_wait\"}"),
                3.0,
                "{page}"
            );
            assert!(
                value(&page, "meridian_self_last{what=\"message_wait_ms\"}") >= 5.0,
                "the floor: {page}"
            );
            assert_eq!(value(&page, "meridian_overload_state"), 0.0, "{page}");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{page}");
    }
    // Leaving flushes the journal.
    node.leave(Duration::from_millis(10)).await;
    let records = journal::decode_all(&std::fs::read(&path).unwrap()).unwrap();
    let _ = std::fs::remove_file(&path);
    let waits: Vec<f64> = records
        .iter()
        .filter_map(|r| match r {
            Record::Step {
                input: RecordedInput::ProcessingLatency { ms },
                ..
            } => Some(*ms),
            _ => None,
        })
        .collect();
    assert_eq!(waits.len(), 3, "{waits:?}");
    assert!(waits.iter().all(|ms| *ms >= 5.0), "{waits:?}");
    assert!(matches!(
        journal::replay(&records).unwrap(),
        Replay::Identical { .. }
    ));
}
