//! The HTML report (`meridian-sim run SCENARIO --html FILE`, issue 9): one
//! self-contained page (no scripts or styles fetched from anywhere) with hand-written
//! SVG charts, drawn from the run's trace (sim/TRACE.md) and its report:
//!
//! - membership: per node, over time, whether some other node held it suspect or dead,
//!   with faults shaded (partitions as bands until the heal, others as marks);
//! - coordinates: the Vivaldi map (first two components) and estimated against true RTT;
//! - routing: each dispatch of a job to a DC over time, fallbacks marked;
//! - backpressure: each DC's level as the nodes reporting it saw it over time;
//! - jobs: each job from submission to its end, coloured by how it ended.
//!
//! A chart with nothing to show (no jobs in the run, say) still has its frame and says
//! why, so the page always has all five.

use crate::report::Report;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

/// The charts, by section id, in page order.
pub const CHARTS: [&str; 5] = [
    "membership",
    "coordinates",
    "routing",
    "backpressure",
    "jobs",
];

const WIDTH: f64 = 1100.0;
const LEFT: f64 = 190.0;
const RIGHT: f64 = 20.0;
/// Rows drawn at most per chart (nodes, jobs); the page says what was left out.
const MAX_ROWS: usize = 150;
const PALETTE: [&str; 8] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Maps simulated time (ms) onto the chart's width.
struct TimeAxis {
    end_ms: f64,
}

impl TimeAxis {
    fn x(&self, t_ms: f64) -> f64 {
        LEFT + (t_ms.clamp(0.0, self.end_ms) / self.end_ms.max(1.0)) * (WIDTH - LEFT - RIGHT)
    }

    /// Tick marks and labels along the bottom at `y`.
    fn draw(&self, svg: &mut String, top: f64, y: f64) {
        let step = nice_step(self.end_ms / 1000.0 / 8.0);
        let mut t = 0.0;
        while t <= self.end_ms / 1000.0 + 1e-9 {
            let x = self.x(t * 1000.0);
            let _ = write!(
                svg,
                r##"<line x1="{x:.1}" y1="{top:.1}" x2="{x:.1}" y2="{y:.1}" stroke="#eee"/><text x="{x:.1}" y="{:.1}" font-size="10" text-anchor="middle">{}</text>"##,
                y + 12.0,
                fmt_secs(t)
            );
            t += step;
        }
    }
}

fn nice_step(raw: f64) -> f64 {
    for s in [
        1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
    ] {
        if s >= raw {
            return s;
        }
    }
    7200.0
}

fn fmt_secs(s: f64) -> String {
    if s >= 60.0 && (s % 60.0).abs() < 1e-9 {
        format!("{}m", s / 60.0)
    } else {
        format!("{s}s")
    }
}

fn t_ms(line: &Value) -> f64 {
    line.get("t_ms").and_then(Value::as_f64).unwrap_or(0.0)
}

/// The inner object of an event line of `type` `kind` with variant `variant`
/// (`{"Job": {"RouteDispatch": {...}}}`), if it is one.
fn job_event<'a>(line: &'a Value, variant: &str) -> Option<&'a Value> {
    line.get("event")?.get("Job")?.get(variant)
}

fn svg_open(height: f64, label: &str) -> String {
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:.0}" viewBox="0 0 {WIDTH} {height:.0}" role="img" aria-label="{}">"#,
        esc(label)
    )
}

fn empty_chart(label: &str, why: &str) -> String {
    let mut svg = svg_open(60.0, label);
    let _ = write!(
        svg,
        r##"<rect x="{LEFT}" y="5" width="{:.0}" height="40" fill="#fafafa" stroke="#ccc"/><text x="{:.0}" y="30" font-size="12" text-anchor="middle" fill="#666">{}</text></svg>"##,
        WIDTH - LEFT - RIGHT,
        (WIDTH + LEFT - RIGHT) / 2.0,
        esc(why)
    );
    svg
}

/// Everything the charts read from the trace, in one pass.
struct Trace<'a> {
    nodes: Vec<String>,
    dcs: Vec<String>,
    lines: &'a [Value],
}

impl<'a> Trace<'a> {
    fn new(lines: &'a [Value]) -> Self {
        let nodes: Vec<String> = lines
            .first()
            .and_then(|h| h.get("nodes"))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        let mut dcs: Vec<String> = Vec::new();
        for n in &nodes {
            let dc = n.split('/').next().unwrap_or("").to_string();
            if !dcs.contains(&dc) {
                dcs.push(dc);
            }
        }
        Trace {
            nodes,
            dcs,
            lines: lines.get(1..).unwrap_or(&[]),
        }
    }

    fn dc_of(&self, node: &str) -> usize {
        let dc = node.split('/').next().unwrap_or("");
        self.dcs.iter().position(|d| d == dc).unwrap_or(0)
    }
}

/// The whole page for a run: its report and its trace's lines (header first).
pub fn render(report: &Report, trace_lines: &[Value]) -> String {
    let trace = Trace::new(trace_lines);
    let axis = TimeAxis {
        end_ms: report.sim_duration_ms as f64,
    };
    let mut page = String::new();
    let title = format!("meridian-sim: {} (seed {})", report.scenario, report.seed);
    let _ = write!(
        page,
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{t}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 24px; color: #222; }}
h1 {{ font-size: 20px; }} h2 {{ font-size: 16px; margin-top: 28px; }}
pre {{ background: #f6f6f6; padding: 10px; font-size: 12px; overflow-x: auto; }}
p.note {{ color: #555; font-size: 13px; max-width: 1100px; }}
svg {{ display: block; background: #fff; }}
</style></head><body>
<h1>{t}</h1>
<pre>{summary}</pre>
"#,
        t = esc(&title),
        summary = esc(&report.summary())
    );
    let sections: [(&str, &str, String); 5] = [
        (
            "membership",
            "Membership: how the others saw each node",
            membership(&trace, &axis),
        ),
        (
            "coordinates",
            "Vivaldi coordinates at the end of the run",
            coordinates(report, &trace),
        ),
        (
            "routing",
            "Routing: job dispatches per DC",
            routing(&trace, &axis),
        ),
        (
            "backpressure",
            "Backpressure levels per DC",
            backpressure(&trace, &axis),
        ),
        ("jobs", "Jobs: submission to end", jobs(&trace, &axis)),
    ];
    for (id, heading, body) in sections {
        let _ = write!(
            page,
            "<section id=\"{id}\"><h2>{}</h2>\n{body}\n</section>\n",
            esc(heading)
        );
    }
    // A self-check the headless-browser test reads: every chart has a drawn SVG.
    let _ = write!(
        page,
        r#"<script>
(function () {{
  var ids = {ids};
  var drawn = ids.filter(function (id) {{
    var s = document.querySelector('#' + id + ' svg');
    return s && s.childElementCount > 0 && s.getBBox().width > 0;
  }});
  if (drawn.length !== ids.length) {{
    console.error('charts missing: ' + ids.filter(function (i) {{ return drawn.indexOf(i) < 0; }}).join(','));
  }}
  document.body.setAttribute('data-charts', String(drawn.length));
}})();
</script>
</body></html>
"#,
        ids = serde_json::to_string(&CHARTS).unwrap_or_default()
    );
    page
}

/// One observer's view of subject `s` went from `old` to `new` at `t`: update the counts
/// of views per state and, if the subject's display state changed, start a segment.
fn recount(
    counts: &mut [[u32; 4]],
    segments: &mut [Vec<(f64, u8)>],
    s: usize,
    old: u8,
    new: u8,
    t: f64,
) {
    counts[s][old as usize] = counts[s][old as usize].saturating_sub(1);
    counts[s][new as usize] += 1;
    let state = if counts[s][2] > 0 {
        2
    } else if counts[s][1] > 0 {
        1
    } else if counts[s][3] > 0 {
        3
    } else {
        0
    };
    let last = segments[s].last().map_or(0, |x| x.1);
    if state != last {
        segments[s].push((t, state));
    }
}

/// Display state of a subject: 0 nobody doubts it, 1 some node holds it suspect,
/// 2 some node holds it dead, 3 it left (some node holds it left, none dead).
const STATE_COLOURS: [&str; 4] = ["#cfe8cf", "#f5c242", "#d62728", "#9aa7b8"];
const STATE_NAMES: [&str; 4] = ["alive to all", "suspected", "dead to some", "left"];

fn membership(trace: &Trace, axis: &TimeAxis) -> String {
    let n = trace.nodes.len();
    if n == 0 {
        return empty_chart("membership", "no nodes in the trace");
    }
    let index: HashMap<&str, usize> = trace
        .nodes
        .iter()
        .enumerate()
        .map(|(i, s)| (s.as_str(), i))
        .collect();
    // (observer, cluster, subject) -> status code; counts per subject.
    let mut held: HashMap<(usize, u64, usize), u8> = HashMap::new();
    let mut counts = vec![[0u32; 4]; n];
    let mut segments: Vec<Vec<(f64, u8)>> = vec![vec![(0.0, 0)]; n];
    let code = |status: Option<&str>| match status {
        Some("Suspect") => 1,
        Some("Dead") => 2,
        Some("Left") => 3,
        _ => 0,
    };
    for line in trace.lines {
        // A machine that stops takes its views with it: what it held counts no more.
        if line["kind"] == "node" && line["type"] != "started" {
            if let Some(&obs) = line
                .get("node")
                .and_then(Value::as_str)
                .and_then(|o| index.get(o))
            {
                let gone: Vec<((usize, u64, usize), u8)> = held
                    .iter()
                    .filter(|((o, _, _), _)| *o == obs)
                    .map(|(k, v)| (*k, *v))
                    .collect();
                let mut gone = gone;
                gone.sort_unstable();
                for (key, old) in gone {
                    held.remove(&key);
                    recount(&mut counts, &mut segments, key.2, old, 0, t_ms(line));
                }
            }
            continue;
        }
        let Some(m) = line.get("event").and_then(|e| e.get("Member")) else {
            continue;
        };
        let (Some(obs), Some(subj)) = (
            line.get("node")
                .and_then(Value::as_str)
                .and_then(|o| index.get(o)),
            m.get("node").and_then(Value::as_u64),
        ) else {
            continue;
        };
        let s = subj as usize;
        if s >= n {
            continue;
        }
        let cluster = m.get("cluster").and_then(Value::as_u64).unwrap_or(0);
        let new = code(
            m.get("to")
                .and_then(|t| t.get("status"))
                .and_then(Value::as_str),
        );
        let old = held.insert((*obs, cluster, s), new).unwrap_or(0);
        if old != new {
            recount(&mut counts, &mut segments, s, old, new, t_ms(line));
        }
    }
    // Nodes that were ever doubted first, then the rest, up to MAX_ROWS.
    let mut rows: Vec<usize> = (0..n).filter(|s| segments[*s].len() > 1).collect();
    rows.extend((0..n).filter(|s| segments[*s].len() <= 1));
    rows.truncate(MAX_ROWS);
    rows.sort_unstable();
    let row_h = if rows.len() > 60 { 7.0 } else { 14.0 };
    let top = 24.0;
    let height = top + rows.len() as f64 * row_h + 40.0;
    let mut svg = svg_open(height, "membership timeline");
    axis.draw(&mut svg, top, top + rows.len() as f64 * row_h);
    // Legend.
    for (k, (c, name)) in STATE_COLOURS.iter().zip(STATE_NAMES).enumerate() {
        let x = LEFT + k as f64 * 130.0;
        let _ = write!(
            svg,
            r##"<rect x="{x}" y="4" width="12" height="12" fill="{c}"/><text x="{:.0}" y="14" font-size="11">{name}</text>"##,
            x + 16.0
        );
    }
    let _ = write!(
        svg,
        r##"<rect x="{:.0}" y="4" width="12" height="12" fill="#9ecae1" opacity="0.5"/><text x="{:.0}" y="14" font-size="11">partition</text>"##,
        LEFT + 4.0 * 130.0,
        LEFT + 4.0 * 130.0 + 16.0
    );
    for (r, &s) in rows.iter().enumerate() {
        let y = top + r as f64 * row_h;
        if row_h >= 10.0 || r % 5 == 0 {
            let _ = write!(
                svg,
                r#"<text x="{:.0}" y="{:.1}" font-size="{}" text-anchor="end">{}</text>"#,
                LEFT - 6.0,
                y + row_h - 3.0,
                if row_h >= 10.0 { 10 } else { 7 },
                esc(&trace.nodes[s])
            );
        }
        let segs = &segments[s];
        for (k, (start, state)) in segs.iter().enumerate() {
            let end = segs.get(k + 1).map_or(axis.end_ms, |x| x.0);
            let (x0, x1) = (axis.x(*start), axis.x(end));
            let _ = write!(
                svg,
                r#"<rect x="{x0:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{}: {} from {:.1} s</title></rect>"#,
                (x1 - x0).max(0.5),
                row_h - 1.0,
                STATE_COLOURS[*state as usize],
                esc(&trace.nodes[s]),
                STATE_NAMES[*state as usize],
                start / 1000.0
            );
        }
    }
    faults(&mut svg, trace, axis, top, top + rows.len() as f64 * row_h);
    svg.push_str("</svg>");
    if rows.len() < n {
        let _ = write!(
            svg,
            "<p class=\"note\">{} of {n} nodes shown (those ever doubted first).</p>",
            rows.len()
        );
    }
    svg
}

/// Faults over a chart: a partition as a band until the next heal (or the end), every
/// other fault as a mark; hovering shows the fault as the scenario states it.
fn faults(svg: &mut String, trace: &Trace, axis: &TimeAxis, top: f64, bottom: f64) {
    let mut open: Option<(f64, String)> = None;
    let band = |svg: &mut String, from: f64, to: f64, what: &str| {
        let (x0, x1) = (axis.x(from), axis.x(to));
        let _ = write!(
            svg,
            r##"<rect x="{x0:.1}" y="{top:.1}" width="{:.1}" height="{:.1}" fill="#9ecae1" opacity="0.35"><title>{}</title></rect>"##,
            (x1 - x0).max(1.0),
            bottom - top,
            esc(what)
        );
    };
    for line in trace.lines.iter().filter(|l| l["kind"] == "fault") {
        let t = t_ms(line);
        let what = line.get("fault").map(Value::to_string).unwrap_or_default();
        match line.get("type").and_then(Value::as_str) {
            Some("partition") | Some("isolate_leader") => {
                if let Some((from, w)) = open.take() {
                    band(svg, from, t, &w);
                }
                open = Some((t, what));
            }
            Some("heal") => {
                if let Some((from, w)) = open.take() {
                    band(svg, from, t, &w);
                }
            }
            _ => {
                let x = axis.x(t);
                let _ = write!(
                    svg,
                    r##"<line x1="{x:.1}" y1="{top:.1}" x2="{x:.1}" y2="{bottom:.1}" stroke="#555" stroke-dasharray="3,2"><title>{}</title></line>"##,
                    esc(&what)
                );
            }
        }
    }
    if let Some((from, w)) = open {
        band(svg, from, axis.end_ms, &w);
    }
}

fn coordinates(report: &Report, trace: &Trace) -> String {
    let Some(c) = report.coords.as_ref().filter(|c| !c.plot.points.is_empty()) else {
        return empty_chart(
            "coordinates",
            "no coordinates (coordinates off, or no node had a sample)",
        );
    };
    let panel = 420.0;
    let height = panel + 60.0;
    let mut svg = svg_open(height, "Vivaldi coordinate map and estimate error");
    // Left: the map.
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for (_, _, x, y) in &c.plot.points {
        lo = lo.min(x.min(*y));
        hi = hi.max(x.max(*y));
    }
    let span = (hi - lo).max(1.0) * 1.1;
    let mid = (hi + lo) / 2.0;
    let (ox, oy) = (40.0, 30.0);
    let map = |v: f64| (v - (mid - span / 2.0)) / span * panel;
    let _ = write!(
        svg,
        r##"<rect x="{ox}" y="{oy}" width="{panel}" height="{panel}" fill="none" stroke="#ccc"/><text x="{ox}" y="20" font-size="12">map: first two components (ms), {} nodes, colour = DC</text>"##,
        c.plot.points.len()
    );
    for (node, _, x, y) in &c.plot.points {
        let name = trace.nodes.get(*node).map_or("?", String::as_str);
        let colour = PALETTE[trace.dc_of(name) % PALETTE.len()];
        let _ = write!(
            svg,
            r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{colour}" opacity="0.8"><title>{} ({x:.1}, {y:.1}) ms</title></circle>"#,
            ox + map(*x),
            oy + panel - map(*y),
            esc(name)
        );
    }
    for (k, dc) in trace.dcs.iter().enumerate() {
        let x = ox + k as f64 * 110.0;
        let _ = write!(
            svg,
            r#"<circle cx="{:.0}" cy="{:.0}" r="4" fill="{c}"/><text x="{:.0}" y="{:.0}" font-size="11" fill="{c}">{}</text>"#,
            x + 4.0,
            oy + panel + 16.0,
            x + 12.0,
            oy + panel + 20.0,
            esc(dc),
            c = PALETTE[k % PALETTE.len()],
        );
    }
    // Right: estimate against truth.
    let (px, py) = (ox + panel + 140.0, 30.0);
    let max = c
        .plot
        .pairs
        .iter()
        .map(|(t, e)| t.max(*e))
        .fold(1.0, f64::max)
        * 1.05;
    let sc = |v: f64| v / max * panel;
    let _ = write!(
        svg,
        r##"<rect x="{px}" y="{py}" width="{panel}" height="{panel}" fill="none" stroke="#ccc"/><line x1="{px}" y1="{:.1}" x2="{:.1}" y2="{py}" stroke="#999" stroke-dasharray="4,3"/><text x="{px}" y="20" font-size="12">estimated vs true RTT (ms), {} pairs; median error {:.3}, p90 {:.3}</text><text x="{:.0}" y="{:.0}" font-size="11" text-anchor="middle">true RTT, max {max:.0} ms</text>"##,
        py + panel,
        px + panel,
        c.plot.pairs.len(),
        c.median_rel_error,
        c.p90_rel_error,
        px + panel / 2.0,
        py + panel + 20.0
    );
    for (t, e) in &c.plot.pairs {
        let _ = write!(
            svg,
            r##"<circle cx="{:.1}" cy="{:.1}" r="1.6" fill="#1f77b4" opacity="0.5"/>"##,
            px + sc(*t),
            py + panel - sc(*e)
        );
    }
    svg.push_str("</svg>");
    svg
}

fn routing(trace: &Trace, axis: &TimeAxis) -> String {
    let dispatches: Vec<(f64, usize, bool)> = trace
        .lines
        .iter()
        .filter_map(|l| {
            let d = job_event(l, "RouteDispatch")?;
            let dc = d.get("dc").and_then(Value::as_u64)? as usize;
            let fallback = d.get("fallback").and_then(Value::as_bool).unwrap_or(false);
            Some((t_ms(l), dc, fallback))
        })
        .collect();
    if dispatches.is_empty() {
        return empty_chart(
            "routing",
            "no routing decisions (no job was routed in this run)",
        );
    }
    let rows = trace
        .dcs
        .len()
        .max(1 + dispatches.iter().map(|d| d.1).max().unwrap_or(0));
    let (top, row_h) = (24.0, 26.0);
    let mut svg = svg_open(top + rows as f64 * row_h + 40.0, "routing decisions per DC");
    axis.draw(&mut svg, top, top + rows as f64 * row_h);
    let _ = write!(
        svg,
        r##"<circle cx="{LEFT}" cy="10" r="4" fill="#1f77b4"/><text x="{:.0}" y="14" font-size="11">dispatch (primary)</text><circle cx="{:.0}" cy="10" r="4" fill="#d62728"/><text x="{:.0}" y="14" font-size="11">dispatch (fallback)</text>"##,
        LEFT + 8.0,
        LEFT + 150.0,
        LEFT + 158.0
    );
    for r in 0..rows {
        let y = top + r as f64 * row_h;
        let name = trace
            .dcs
            .get(r)
            .cloned()
            .unwrap_or_else(|| format!("dc {r}"));
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" y1="{:.1}" x2="{:.0}" y2="{:.1}" stroke="#ddd"/><text x="{:.0}" y="{:.1}" font-size="11" text-anchor="end">{}</text>"##,
            y + row_h / 2.0,
            WIDTH - RIGHT,
            y + row_h / 2.0,
            LEFT - 6.0,
            y + row_h / 2.0 + 4.0,
            esc(&name)
        );
    }
    for (t, dc, fallback) in &dispatches {
        let _ = write!(
            svg,
            r##"<circle cx="{:.1}" cy="{:.1}" r="4" fill="{}" opacity="0.8"><title>{:.1} s</title></circle>"##,
            axis.x(*t),
            top + *dc as f64 * row_h + row_h / 2.0,
            if *fallback { "#d62728" } else { "#1f77b4" },
            t / 1000.0
        );
    }
    faults(&mut svg, trace, axis, top, top + rows as f64 * row_h);
    svg.push_str("</svg>");
    svg
}

const LEVEL_COLOURS: [(&str, &str); 4] = [
    ("None", "#cfe8cf"),
    ("Throttle", "#f5c242"),
    ("Batch", "#ff7f0e"),
    ("Reject", "#d62728"),
];

fn backpressure(trace: &Trace, axis: &TimeAxis) -> String {
    // (reporting node, DC) -> level changes.
    let mut series: BTreeMap<(String, u64), Vec<(f64, String)>> = BTreeMap::new();
    for l in trace.lines {
        let Some(b) = job_event(l, "BackpressureLevel").or_else(|| job_event(l, "DcBackpressure"))
        else {
            continue;
        };
        let (Some(node), Some(dc), Some(level)) = (
            l.get("node").and_then(Value::as_str),
            b.get("dc").and_then(Value::as_u64),
            b.get("level").and_then(Value::as_str),
        ) else {
            continue;
        };
        let s = series.entry((node.to_string(), dc)).or_default();
        if s.last().map(|x| x.1.as_str()) != Some(level) {
            s.push((t_ms(l), level.to_string()));
        }
    }
    if series.is_empty() {
        return empty_chart(
            "backpressure",
            "no backpressure signals (no load reached the stats buffers in this run)",
        );
    }
    let rows: Vec<_> = series.into_iter().take(MAX_ROWS).collect();
    let (top, row_h) = (24.0, 14.0);
    let mut svg = svg_open(
        top + rows.len() as f64 * row_h + 40.0,
        "backpressure levels",
    );
    axis.draw(&mut svg, top, top + rows.len() as f64 * row_h);
    for (k, (name, c)) in LEVEL_COLOURS.iter().enumerate() {
        let x = LEFT + k as f64 * 110.0;
        let _ = write!(
            svg,
            r#"<rect x="{x}" y="4" width="12" height="12" fill="{c}"/><text x="{:.0}" y="14" font-size="11">{name}</text>"#,
            x + 16.0
        );
    }
    for (r, ((node, dc), changes)) in rows.iter().enumerate() {
        let y = top + r as f64 * row_h;
        let dc_name = trace
            .dcs
            .get(*dc as usize)
            .cloned()
            .unwrap_or_else(|| dc.to_string());
        let _ = write!(
            svg,
            r#"<text x="{:.0}" y="{:.1}" font-size="10" text-anchor="end">{} on {}</text>"#,
            LEFT - 6.0,
            y + row_h - 3.0,
            esc(&dc_name),
            esc(node)
        );
        for (k, (start, level)) in changes.iter().enumerate() {
            let end = changes.get(k + 1).map_or(axis.end_ms, |x| x.0);
            let colour = LEVEL_COLOURS
                .iter()
                .find(|(n, _)| n == level)
                .map_or("#ccc", |x| x.1);
            let (x0, x1) = (axis.x(*start), axis.x(end));
            let _ = write!(
                svg,
                r#"<rect x="{x0:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{colour}"><title>{}: {} from {:.1} s</title></rect>"#,
                (x1 - x0).max(0.5),
                row_h - 1.0,
                esc(&dc_name),
                esc(level),
                start / 1000.0
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// A job's life as the trace tells it: submitted at, and ended at and how.
type JobSpan = (f64, Option<(f64, String)>);

fn jobs(trace: &Trace, axis: &TimeAxis) -> String {
    let mut jobs: BTreeMap<String, JobSpan> = BTreeMap::new();
    for l in trace.lines {
        if let Some(s) = job_event(l, "Submitted") {
            let id = s.get("job").map(Value::to_string).unwrap_or_default();
            jobs.entry(id).or_insert((t_ms(l), None));
        } else if let Some(f) = job_event(l, "Finished") {
            let id = f.get("job").map(Value::to_string).unwrap_or_default();
            let how = f
                .get("state")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_string();
            if let Some(j) = jobs.get_mut(&id) {
                j.1.get_or_insert((t_ms(l), how));
            }
        }
    }
    if jobs.is_empty() {
        return empty_chart("jobs", "no jobs were submitted in this run");
    }
    let total = jobs.len();
    let mut rows: Vec<(String, JobSpan)> = jobs.into_iter().collect();
    rows.sort_by(|a, b| a.1 .0.total_cmp(&b.1 .0).then(a.0.cmp(&b.0)));
    rows.truncate(MAX_ROWS);
    let row_h = if rows.len() > 60 { 6.0 } else { 12.0 };
    let top = 24.0;
    let mut svg = svg_open(top + rows.len() as f64 * row_h + 40.0, "job timelines");
    axis.draw(&mut svg, top, top + rows.len() as f64 * row_h);
    let colour = |how: Option<&str>| match how {
        Some("Completed") => "#2ca02c",
        Some("Failed") => "#d62728",
        Some("TimedOut") => "#ff7f0e",
        _ => "#999",
    };
    for (k, name) in ["Completed", "Failed", "TimedOut", "still running"]
        .iter()
        .enumerate()
    {
        let x = LEFT + k as f64 * 120.0;
        let _ = write!(
            svg,
            r#"<rect x="{x}" y="4" width="12" height="12" fill="{}"/><text x="{:.0}" y="14" font-size="11">{name}</text>"#,
            colour(Some(name)),
            x + 16.0
        );
    }
    for (r, (id, (start, end))) in rows.iter().enumerate() {
        let y = top + r as f64 * row_h;
        let (stop, how) = match end {
            Some((t, how)) => (*t, Some(how.as_str())),
            None => (axis.end_ms, None),
        };
        let (x0, x1) = (axis.x(*start), axis.x(stop));
        let _ = write!(
            svg,
            r#"<rect x="{x0:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>job {}: {:.1} s to {:.1} s, {}</title></rect>"#,
            (x1 - x0).max(1.0),
            row_h - 1.0,
            colour(how),
            esc(id),
            start / 1000.0,
            stop / 1000.0,
            how.unwrap_or("still running")
        );
    }
    faults(&mut svg, trace, axis, top, top + rows.len() as f64 * row_h);
    svg.push_str("</svg>");
    if rows.len() < total {
        let _ = write!(
            svg,
            "<p class=\"note\">{} of {total} jobs shown (the first submitted).</p>",
            rows.len()
        );
    }
    svg
}
