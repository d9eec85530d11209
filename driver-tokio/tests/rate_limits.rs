//! AD-24 on a real gate (backpressure.md §4): one host may submit 50 jobs in 10 s; the
//! 51st is refused with the wait the limiter computed, and the metrics count it.

use meridian_driver_tokio::admin::{self, Answer, JobFile, Request};
use meridian_driver_tokio::config::NodeFile;
use meridian_driver_tokio::runner::{spawn_with, Bound, Options};

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gate_refuses_the_51st_submission_of_a_host_within_10_s() {
    let b = Bound::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let at = b.local_addr();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let metrics_at = listener.local_addr().unwrap();
    let file = NodeFile::parse(&format!(
        "id = 0\nrole = \"gate\"\nbind = \"{at}\"\nvoters = [{{ id = 0, addr = \"{at}\" }}]"
    ))
    .unwrap();
    let node = spawn_with(
        b,
        file.node_config(at),
        Options {
            metrics: Some(listener),
            ..Options::default()
        },
    );
    let started = std::time::Instant::now();
    let mut states = Vec::new();
    for id in 0..51 {
        let job = JobFile {
            id: Some(1_000 + id),
            workflows: 1,
            datacenters: Some(1),
            dcs: None,
            prefer: vec![],
            timeout_s: None,
            key: None,
        };
        match admin::ask(at, &Request::Submit(job)).await.unwrap() {
            Answer::Submitted { state, .. } => states.push(state),
            other => panic!("{other:?}"),
        }
    }
    // All 51 inside one window (a loopback round trip is well under 10 s / 51).
    assert!(started.elapsed() < std::time::Duration::from_secs(9));
    for (k, s) in states[..50].iter().enumerate() {
        assert!(!s.starts_with("refused"), "submission {k}: {s}");
    }
    let last = &states[50];
    assert!(
        last.starts_with("refused: rate limited (AD-24, job_submit), retry after "),
        "{last}"
    );
    let page = common::scrape(metrics_at).await;
    assert_eq!(
        common::value(
            &page,
            "meridian_rate_limit_requests_total{outcome=\"refused\"}"
        ),
        Some(1.0),
        "{page}"
    );
    assert_eq!(
        common::value(
            &page,
            "meridian_rate_limit_requests_total{outcome=\"allowed\"}"
        ),
        Some(50.0)
    );
    assert_eq!(
        common::value(&page, "meridian_rate_limit_clients"),
        Some(1.0)
    );
    node.kill();
}
