//! The trace format (sim/TRACE.md, version 1) and `meridian-sim trace`'s filter.

mod common;

use meridian_sim::trace::{filter, Filter, TraceError, TRACE_VERSION};
use serde_json::Value;

fn traced(
    name: &str,
    overrides: &[&str],
    seed: Option<u64>,
) -> (String, meridian_sim::report::Report) {
    let s = common::load(name, overrides);
    let mut buf = Vec::new();
    let r = meridian_sim::run_traced(&s, seed.unwrap_or(s.seed), &mut buf);
    (String::from_utf8(buf).unwrap(), r)
}

fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_trace_has_a_header_typed_lines_in_time_order_and_ends_with_the_hash() {
    let (text, r) = traced("three-dc-partition.toml", &[], None);
    let v = lines(&text);
    let header = &v[0];
    assert_eq!(header["trace"], "meridian-sim");
    assert_eq!(header["version"], TRACE_VERSION);
    assert_eq!(header["seed"], r.seed);
    assert_eq!(header["nodes"].as_array().unwrap().len(), r.nodes);
    assert_eq!(header["nodes"][0], "us-east/gate-0");
    let body = &v[1..];
    let mut last = 0.0;
    for l in body {
        let t = l["t_ms"].as_f64().unwrap();
        assert!(t >= last, "{l}");
        last = t;
        assert!(l["kind"].is_string() && l["type"].is_string(), "{l}");
        if l["kind"] == "event" {
            // `type` names the event's top-level kind, and the node is a known name.
            let ty = l["type"].as_str().unwrap();
            assert!(l["event"].get(ty).is_some(), "{l}");
            assert!(header["nodes"].as_array().unwrap().contains(&l["node"]));
        }
    }
    let faults: Vec<&Value> = body.iter().filter(|l| l["kind"] == "fault").collect();
    assert_eq!(faults.len(), 2);
    assert_eq!(faults[0]["type"], "partition");
    assert_eq!(faults[0]["fault"]["groups"][0][0], "eu-west");
    assert_eq!(faults[0]["t_ms"], 60_000.0);
    assert_eq!(faults[1]["type"], "heal");
    let end = body.last().unwrap();
    assert_eq!(end["kind"], "end");
    assert_eq!(end["trace_hash"], r.trace_hash.as_str());
    assert_eq!(end["t_ms"], 360_000.0);
}

#[test]
fn drawn_random_faults_and_violations_are_traced() {
    // The random fixture with the planted bug (test builds only), on a seed that trips
    // it: drawn faults appear one by one, and the violation the run reports is in the
    // trace.
    let planted = common::load("random-faults.toml", &["membership.injected_bug=true"]);
    let seed = meridian_sim::sweep(&planted, 1..300, 2)
        .into_iter()
        .find(|r| !r.ok())
        .expect("a seed that trips the planted bug")
        .seed;
    let (text, r) = traced(
        "random-faults.toml",
        &["membership.injected_bug=true"],
        Some(seed),
    );
    let v = lines(&text);
    assert!(!text.contains("\"random\""));
    let faults = v.iter().filter(|l| l["kind"] == "fault").count();
    assert!(faults >= 3, "{faults}");
    let mut last = 0.0;
    for l in &v[1..] {
        let t = l["t_ms"].as_f64().unwrap();
        assert!(t >= last, "{l}");
        last = t;
    }
    let violations: Vec<&Value> = v.iter().filter(|l| l["kind"] == "violation").collect();
    assert_eq!(violations.len(), r.invariants.violations.len());
    assert!(!violations.is_empty());
    assert_eq!(
        violations[0]["type"].as_str().unwrap(),
        r.invariants.violations[0].invariant
    );
    assert_eq!(
        violations[0]["t_ms"].as_f64().unwrap() as u64,
        r.invariants.violations[0].at_ms
    );
}

#[test]
fn the_filter_keeps_what_is_asked_by_node_kind_and_window() {
    let (text, _) = traced("three-dc-partition.toml", &[], None);
    let all = lines(&text);
    let run = |f: &Filter| {
        let mut out = Vec::new();
        let (kept, read) = filter(text.as_bytes(), &mut out, f).unwrap();
        assert_eq!(read as usize, all.len() - 1);
        let got = lines(&String::from_utf8(out).unwrap());
        assert_eq!(got[0], all[0], "the header comes first");
        assert_eq!(got.len() as u64 - 1, kept);
        got[1..].to_vec()
    };
    let one = run(&Filter {
        nodes: vec!["eu-west/gate-0".into()],
        ..Default::default()
    });
    assert!(!one.is_empty());
    assert!(one.iter().all(|l| l["node"] == "eu-west/gate-0"));
    let expected = all.iter().filter(|l| l["node"] == "eu-west/gate-0").count();
    assert_eq!(one.len(), expected);
    // A DC's name and a prefix select the same nodes.
    let dc = run(&Filter {
        nodes: vec!["ap-south".into()],
        ..Default::default()
    });
    let prefix = run(&Filter {
        nodes: vec!["ap-south/*".into()],
        ..Default::default()
    });
    assert_eq!(dc, prefix);
    assert!(dc
        .iter()
        .all(|l| l["node"].as_str().unwrap().starts_with("ap-south/")));
    // Kinds and types, case-insensitive, within a window.
    let elections = run(&Filter {
        kinds: vec!["election".into(), "FAULT".into()],
        from_ms: Some(60_000.0),
        to_ms: Some(200_000.0),
        ..Default::default()
    });
    assert!(elections.iter().any(|l| l["type"] == "Election"));
    assert_eq!(elections.iter().filter(|l| l["kind"] == "fault").count(), 2);
    assert!(elections.iter().all(|l| {
        let t = l["t_ms"].as_f64().unwrap();
        (l["type"] == "Election" || l["kind"] == "fault") && (60_000.0..=200_000.0).contains(&t)
    }));
}

#[test]
fn the_filter_refuses_what_is_not_a_version_1_trace() {
    let mut out = Vec::new();
    let f = Filter::default();
    assert!(matches!(
        filter(&b"{\"hello\": 1}\n"[..], &mut out, &f),
        Err(TraceError::NoHeader)
    ));
    assert!(matches!(
        filter(&b""[..], &mut out, &f),
        Err(TraceError::NoHeader)
    ));
    let v2 = "{\"trace\":\"meridian-sim\",\"version\":2}\n";
    assert!(matches!(
        filter(v2.as_bytes(), &mut out, &f),
        Err(TraceError::Version(2))
    ));
    let broken = "{\"trace\":\"meridian-sim\",\"version\":1}\n{\"t_ms\":1}\nnot json\n";
    assert!(matches!(
        filter(broken.as_bytes(), &mut out, &f),
        Err(TraceError::BadLine { line: 3, .. })
    ));
}
