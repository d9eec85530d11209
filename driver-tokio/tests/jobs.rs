//! Issue 8: a job submitted to a real gate is routed to its DC, run by real workers
//! (the stand-in workload) and completes; `submit` and `jobs` go through the operator
//! protocol, as `meridian-node submit` / `jobs` do.

use meridian_driver_tokio::admin::{self, Answer, JobFile, Request};
use meridian_driver_tokio::config::NodeFile;
use meridian_driver_tokio::runner::{spawn_with, Bound, NodeHandle, Options};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submitted_job_completes_on_real_nodes() {
    // Node 0: the gate; 1-2: DC 0's managers; 3-4: its workers.
    let mut bound = Vec::new();
    for _ in 0..5 {
        bound.push(Bound::bind("127.0.0.1:0".parse().unwrap()).await.unwrap());
    }
    let a: Vec<_> = bound.iter().map(|b| b.local_addr()).collect();
    let texts = [
        format!(
            "id = 0\nrole = \"gate\"\nbind = \"{}\"\nvoters = [{{ id = 0, addr = \"{}\" }}]\n[[observe]]\ndc = 0\nseeds = [\"{}\", \"{}\"]",
            a[0], a[0], a[1], a[2]
        ),
        format!(
            "id = 1\nrole = \"manager\"\nbind = \"{}\"\nseeds = [\"{}\"]\nvoters = [{{ id = 1, addr = \"{}\" }}, {{ id = 2, addr = \"{}\" }}]",
            a[1], a[2], a[1], a[2]
        ),
        format!(
            "id = 2\nrole = \"manager\"\nbind = \"{}\"\nseeds = [\"{}\"]\nvoters = [{{ id = 1, addr = \"{}\" }}, {{ id = 2, addr = \"{}\" }}]",
            a[2], a[1], a[1], a[2]
        ),
        format!("id = 3\nrole = \"worker\"\nbind = \"{}\"\nseeds = [\"{}\"]", a[3], a[1]),
        format!("id = 4\nrole = \"worker\"\nbind = \"{}\"\nseeds = [\"{}\"]", a[4], a[1]),
    ];
    let mut nodes: Vec<NodeHandle> = Vec::new();
    for (b, text) in bound.into_iter().zip(texts) {
        let f = NodeFile::parse(&text).unwrap();
        let at = b.local_addr();
        let worker = f.role() == meridian_core::Role::Worker;
        nodes.push(spawn_with(
            b,
            f.node_config(at),
            Options {
                workload: worker.then_some((500, 1500)),
                ..Options::default()
            },
        ));
    }
    // Right after boot the gate may already hold DC 0's first heartbeat, sent before
    // any worker registered: a DC without workers is UNHEALTHY (AD-16) and a job with
    // nowhere to go fails at once (AD-17). A client then submits again; within 30 s
    // the DC must take one, and that one must complete.
    let booted = Instant::now();
    let mut id = 42;
    loop {
        let job = JobFile {
            id: Some(id),
            workflows: 6,
            datacenters: Some(1),
            dcs: None,
            prefer: vec![],
            timeout_s: Some(120),
            key: None,
        };
        let answer = admin::ask(a[0], &Request::Submit(job)).await.unwrap();
        eprintln!("submitted: {answer:?}");
        match &answer {
            Answer::Submitted { job, state } if *job == id && state != "failed" => break,
            Answer::Submitted { job, .. } if *job == id => {
                assert!(
                    booted.elapsed() < Duration::from_secs(30),
                    "every job refused for 30 s after boot"
                );
                id += 1;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            other => panic!("{other:?}"),
        }
    }
    let start = Instant::now();
    loop {
        match admin::ask(a[0], &Request::Jobs).await.unwrap() {
            Answer::Jobs { finished, running } => {
                if let Some((_, state)) = finished.iter().find(|(j, _)| *j == id) {
                    assert_eq!(state, "completed");
                    eprintln!("job {id} completed in {:?}", start.elapsed());
                    break;
                }
                assert!(
                    start.elapsed() < Duration::from_secs(60),
                    "not done in 60 s: {running:?}"
                );
            }
            other => panic!("{other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // A manager holds no job list: the operator is told so.
    assert!(matches!(
        admin::ask(a[1], &Request::Jobs).await.unwrap(),
        Answer::Error { .. }
    ));
    for n in nodes {
        n.kill();
    }
}
