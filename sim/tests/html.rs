//! The HTML report (issue 9): one self-contained page with every chart, drawn from the
//! run's trace; and, with a headless Chromium on the machine (CI installs one), that it
//! renders with every chart present and no console error.

mod common;

use std::path::PathBuf;
use std::process::Command;

fn page(name: &str) -> (String, meridian_sim::report::Report) {
    let s = common::load(name, &[]);
    let mut buf = Vec::new();
    let r = meridian_sim::run_for_html(&s, s.seed, &mut buf);
    let lines: Vec<serde_json::Value> = String::from_utf8(buf)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (meridian_sim::html::render(&r, &lines), r)
}

fn section<'a>(html: &'a str, id: &str) -> &'a str {
    let start = html
        .find(&format!("<section id=\"{id}\">"))
        .unwrap_or_else(|| panic!("no {id} section"));
    let end = html[start..].find("</section>").unwrap() + start;
    &html[start..end]
}

#[test]
fn the_page_has_every_chart_drawn_from_the_run() {
    let (html, r) = page("three-dc-partition.toml");
    assert!(html.starts_with("<!doctype html>"));
    // Self-contained: nothing is fetched.
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http"));
    for id in meridian_sim::html::CHARTS {
        assert!(section(&html, id).contains("<svg"), "{id}");
    }
    // Membership: a row per node, the cut shaded from 60 s to the heal, and the nodes
    // the other side declared dead drawn so.
    let m = section(&html, "membership");
    assert_eq!(
        m.matches("font-size=\"10\" text-anchor=\"end\"").count(),
        r.nodes
    );
    assert!(m.contains("&quot;action&quot;:&quot;partition&quot;"));
    assert!(m.contains("eu-west/manager-0: dead to some from"));
    assert!(!m.contains("us-east/worker-0: dead to some"));
    // Coordinates: a point per node, the pairs the report scored.
    let c = section(&html, "coordinates");
    assert_eq!(
        c.matches("<circle").count() - 3,
        r.nodes + c.matches("r=\"1.6\"").count()
    );
    // No jobs here: those charts say so rather than vanish.
    assert!(section(&html, "jobs").contains("no jobs were submitted"));
    // Same run, same page (but for the wall time in the summary).
    let charts = |h: &str| h[h.find("</pre>").unwrap()..].to_string();
    assert!(charts(&page("three-dc-partition.toml").0) == charts(&html));
}

#[test]
fn routing_backpressure_and_job_charts_show_what_happened() {
    let (html, r) = page("overload-burst.toml");
    let jobs = section(&html, "jobs");
    let submitted = r.jobs.as_ref().unwrap().submitted;
    assert_eq!(jobs.matches("<title>job ").count() as u64, submitted);
    assert!(jobs.contains("Completed</title>"));
    assert!(section(&html, "backpressure").contains("Reject from"));
    let (html, _) = page("routing-dc-degrades.toml");
    assert!(section(&html, "routing").contains("<circle"));
}

fn browser() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("MERIDIAN_BROWSER") {
        return Some(PathBuf::from(p));
    }
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .map(PathBuf::from)
}

#[test]
fn the_three_dc_partition_page_renders_in_headless_chromium() {
    let Some(chrome) = browser() else {
        assert!(
            std::env::var_os("MERIDIAN_REQUIRE_BROWSER").is_none(),
            "MERIDIAN_REQUIRE_BROWSER is set but no chromium was found"
        );
        eprintln!("SKIPPED: no headless Chromium here (CI installs one)");
        return;
    };
    let dir = std::env::temp_dir().join(format!("meridian-html-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let html = dir.join("three-dc-partition.html");
    let png = dir.join("three-dc-partition.png");
    let out = Command::new(env!("CARGO_BIN_EXE_meridian-sim"))
        .arg("run")
        .arg(common::fixture("three-dc-partition.toml"))
        .arg("--html")
        .arg(&html)
        .arg("--report")
        .arg(dir.join("report.json"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let url = format!("file://{}", html.display());
    let headless = |extra: &[&str]| {
        Command::new(&chrome)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                "--enable-logging=stderr",
                "--v=0",
            ])
            .arg(format!("--user-data-dir={}", dir.join("profile").display()))
            .args(extra)
            .arg(&url)
            .output()
            .unwrap()
    };
    // The page's own check ran: every chart's SVG has a drawn, non-empty box.
    let dom = headless(&["--dump-dom"]);
    let dom_text = String::from_utf8_lossy(&dom.stdout);
    assert!(dom_text.contains("data-charts=\"5\""), "{dom_text:.400}");
    let log = String::from_utf8_lossy(&dom.stderr);
    assert!(
        !log.lines().any(|l| l.contains(":CONSOLE")),
        "console output: {log}"
    );
    // And it paints: a screenshot of a real size.
    let shot = headless(&[
        "--window-size=1200,2600",
        &format!("--screenshot={}", png.display()),
    ]);
    let bytes = std::fs::read(&png)
        .unwrap_or_else(|_| panic!("no screenshot: {}", String::from_utf8_lossy(&shot.stderr)));
    assert!(
        bytes.starts_with(b"\x89PNG") && bytes.len() > 50_000,
        "{}",
        bytes.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The plot data is kept only for the HTML report: a sweep holds every report.
#[test]
fn only_a_run_for_the_html_report_keeps_the_plot_data() {
    let s = common::load("jobs-basic.toml", &[]);
    let plain = meridian_sim::run(&s, 1);
    let plot = &plain.coords.as_ref().unwrap().plot;
    assert!(plot.points.is_empty() && plot.pairs.is_empty());
    let mut sink = Vec::new();
    let drawn = meridian_sim::run_for_html(&s, 1, &mut sink);
    let plot = &drawn.coords.as_ref().unwrap().plot;
    assert_eq!(plot.points.len(), drawn.nodes);
    assert!(!plot.pairs.is_empty());
    // Same run either way.
    assert_eq!(plain.trace_hash, drawn.trace_hash);
}

/// A node's views go with it: a node cut off (so it holds every other node suspect or
/// dead) that then crashes does not leave the others drawn as doubted for the rest of
/// the run.
#[test]
fn a_crashed_nodes_views_do_not_linger_on_the_chart() {
    let text = r#"
name = "isolated-then-crashed"
duration = "2m"
seed = 2
[[dc]]
name = "a"
managers = 1
workers = 5
[network]
intra_dc_rtt_ms = 1.0
[[fault]]
at = "10s"
action = "partition"
groups = [["a/worker-4"]]
[[fault]]
at = "50s"
action = "crash"
nodes = ["a/worker-4"]
[[fault]]
at = "55s"
action = "heal"
"#;
    let s = meridian_sim::scenario::parse(text, std::path::Path::new("t.toml"), &[]).unwrap();
    let mut buf = Vec::new();
    let r = meridian_sim::run_for_html(&s, s.seed, &mut buf);
    let trace = String::from_utf8(buf).unwrap();
    assert!(trace.contains(r#""kind":"node","node":"a/worker-4","t_ms":50000.0,"type":"crashed""#));
    let lines: Vec<serde_json::Value> = trace
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let html = meridian_sim::html::render(&r, &lines);
    let m = section(&html, "membership");
    // worker-4 doubted the others during the cut...
    assert!(
        m.contains("a/manager-0: dead to some from") || m.contains("a/manager-0: suspected from")
    );
    // ...and once it is gone, they end as nobody doubts them.
    for n in [
        "a/manager-0",
        "a/worker-0",
        "a/worker-1",
        "a/worker-2",
        "a/worker-3",
    ] {
        let last = m.rfind(&format!("<title>{n}: ")).unwrap();
        assert!(
            m[last..].starts_with(&format!("<title>{n}: alive to all")),
            "{n}: {}",
            &m[last..last + 80]
        );
    }
}
