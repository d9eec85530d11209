//! Issue 8, observability: a node serves Prometheus text with its members by status,
//! its probe/suspicion counters, coordinate error, events by kind and transport counts.

use meridian_core::membership::member::Status;
use meridian_driver_tokio::config::NodeFile;
use meridian_driver_tokio::runner::{spawn_with, Bound, Options};
use std::time::{Duration, Instant};

mod common;
use common::{scrape, value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_serves_its_metrics() {
    let b0 = Bound::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let b1 = Bound::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let (a0, a1) = (b0.local_addr(), b1.local_addr());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let metrics_at = listener.local_addr().unwrap();
    let file = |id: u32, at, seed| {
        NodeFile::parse(&format!(
            "id = {id}\nrole = \"worker\"\nbind = \"{at}\"\nseeds = [\"{seed}\"]"
        ))
        .unwrap()
    };
    let n0 = spawn_with(
        b0,
        file(0, a0, a1).node_config(a0),
        Options {
            metrics: Some(listener),
            ..Options::default()
        },
    );
    let n1 = spawn_with(b1, file(1, a1, a0).node_config(a1), Options::default());
    let start = Instant::now();
    while !n0
        .members()
        .await
        .iter()
        .any(|r| r.node.0 == 1 && r.status == Status::Alive)
    {
        assert!(start.elapsed() < Duration::from_secs(20));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let page = scrape(metrics_at).await;
    assert!(page.starts_with("HTTP/1.1 200 OK"), "{page}");
    assert!(page.contains("# TYPE meridian_members gauge"));
    // Workers of DC 0 are cluster 1: the peer alive, nobody dead.
    assert_eq!(
        value(&page, "meridian_members{cluster=\"1\",status=\"alive\"}"),
        Some(1.0),
        "{page}"
    );
    assert_eq!(
        value(&page, "meridian_members{cluster=\"1\",status=\"dead\"}"),
        Some(0.0)
    );
    assert!(value(&page, "meridian_probes_total{cluster=\"1\"}").unwrap() >= 2.0);
    assert!(value(&page, "meridian_coordinate_error{cluster=\"1\"}").is_some());
    // Every probe's timeout looked for the peer's coordinate; from the second probe on
    // the first one's ACK has put it in the table.
    let lookups = value(
        &page,
        "meridian_coordinate_timeout_lookups_total{cluster=\"1\"}",
    )
    .unwrap();
    let hits = value(
        &page,
        "meridian_coordinate_timeout_hits_total{cluster=\"1\"}",
    )
    .unwrap();
    assert!(
        lookups >= 2.0 && (1.0..=lookups).contains(&hits),
        "{lookups} {hits}"
    );
    assert!(value(&page, "meridian_events_total{kind=\"Member\"}").unwrap() >= 1.0);
    assert!(value(&page, "meridian_transport_total{what=\"datagrams_in\"}").unwrap() > 0.0);
    n0.kill();
    n1.kill();
}
