//! Prometheus text exposition (issue 8): what a node's machine knows of itself, rendered
//! on request, plus the driver's transport counters and the events it has seen, by
//! kind. Served over plain HTTP on the node file's `metrics` address; every request
//! gets the same page.

use crate::runner::DriverStats;
use meridian_core::io::Event;
use meridian_core::jobs::JobEvent;
use meridian_core::membership::member::Status;
use meridian_core::node::Node;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::sync::atomic::Ordering;

/// Events counted by kind (the variant's name; job events by theirs). Counting is on
/// the node task's path for every event, so it keys by the enum discriminant and
/// spells a kind's name once, the first time it is seen.
#[derive(Debug, Default)]
pub struct EventCounts {
    by_kind: HashMap<Kind, (String, u64)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Node(std::mem::Discriminant<Event>),
    Job(std::mem::Discriminant<JobEvent>),
}

impl EventCounts {
    pub fn count(&mut self, e: &Event) {
        let kind = match e {
            Event::Job(j) => Kind::Job(std::mem::discriminant(j)),
            other => Kind::Node(std::mem::discriminant(other)),
        };
        if let Some((_, n)) = self.by_kind.get_mut(&kind) {
            *n += 1;
            return;
        }
        let name = match e {
            Event::Job(j) => format!("Job{}", variant(j)),
            other => variant(other),
        };
        self.by_kind.insert(kind, (name, 1));
    }

    /// `(kind, count)`, by kind name.
    pub fn counts(&self) -> BTreeMap<&str, u64> {
        self.by_kind
            .values()
            .map(|(name, n)| (name.as_str(), *n))
            .collect()
    }
}

fn variant<T: std::fmt::Debug>(v: &T) -> String {
    let s = format!("{v:?}");
    s.split(|c: char| !c.is_alphanumeric() && c != '_')
        .next()
        .unwrap_or("")
        .to_string()
}

/// One metric's rows: labels and value.
type Series = Vec<(String, f64)>;

/// The page.
pub fn render(node: &Node, stats: &DriverStats, events: &EventCounts) -> String {
    let mut s = String::new();
    let mut gauge = |name: &str, help: &str, kind: &str, rows: Series| {
        let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, v) in rows {
            if labels.is_empty() {
                let _ = writeln!(s, "{name} {v}");
            } else {
                let _ = writeln!(s, "{name}{{{labels}}} {v}");
            }
        }
    };
    let mut members = Vec::new();
    let mut counters: Vec<(&str, &str, Series)> = vec![
        ("meridian_probes_total", "Direct probes sent.", Vec::new()),
        (
            "meridian_indirect_probes_total",
            "Indirect probes sent.",
            Vec::new(),
        ),
        (
            "meridian_suspicions_total",
            "Members this node suspected.",
            Vec::new(),
        ),
        (
            "meridian_refutations_total",
            "Suspicions of itself this node refuted.",
            Vec::new(),
        ),
        ("meridian_push_pulls_total", "Full-state syncs.", Vec::new()),
        (
            "meridian_sync_digests_total",
            "Periodic syncs begun with a table digest.",
            Vec::new(),
        ),
        (
            "meridian_syncs_in_step_total",
            "Periodic syncs whose digests matched (no full sync needed).",
            Vec::new(),
        ),
        (
            "meridian_coordinate_timeout_lookups_total",
            "Probe and suspicion timeouts that asked for the peer's coordinate.",
            Vec::new(),
        ),
        (
            "meridian_coordinate_timeout_hits_total",
            "Of those, the ones that found it in the peer table (the others used the widest timeout).",
            Vec::new(),
        ),
    ];
    let mut coord = Vec::new();
    let mut lhm = Vec::new();
    for m in node.memberships() {
        let c = m.identity().cluster.0;
        for st in [
            Status::Unconfirmed,
            Status::Alive,
            Status::Suspect,
            Status::Dead,
            Status::Left,
        ] {
            let n = m.members().filter(|x| x.status == st).count();
            members.push((
                format!("cluster=\"{c}\",status=\"{}\"", variant(&st).to_lowercase()),
                n as f64,
            ));
        }
        let st = m.stats();
        let (lookups, hits) = m.coordinates().timeout_lookups();
        for (i, v) in [
            st.probes,
            st.indirect_probes,
            st.suspicions,
            st.refutations,
            st.push_pulls,
            st.sync_digests,
            st.syncs_in_step,
            lookups,
            hits,
        ]
        .into_iter()
        .enumerate()
        {
            counters[i].2.push((format!("cluster=\"{c}\""), v as f64));
        }
        let engine = m.coordinates();
        coord.push((format!("cluster=\"{c}\""), engine.own().error));
        lhm.push((format!("cluster=\"{c}\""), m.lhm_score() as f64));
    }
    gauge(
        "meridian_members",
        "Members of each cluster this node tracks, by status.",
        "gauge",
        members,
    );
    for (name, help, rows) in counters {
        gauge(name, help, "counter", rows);
    }
    gauge(
        "meridian_coordinate_error",
        "The node's Vivaldi error estimate, per cluster.",
        "gauge",
        coord,
    );
    gauge(
        "meridian_local_health",
        "Lifeguard's local health multiplier score.",
        "gauge",
        lhm,
    );
    let f = |a: &std::sync::atomic::AtomicU64| f64::from_bits(a.load(Ordering::Relaxed));
    gauge(
        "meridian_overload_state",
        "AD-18's grade of this node: 0 healthy, 1 busy, 2 stressed, 3 overloaded.",
        "gauge",
        vec![(String::new(), node.overload_state() as u8 as f64)],
    );
    gauge(
        "meridian_self_samples_total",
        "Samples the driver took of its own process for the node (self_watch).",
        "counter",
        vec![
            (
                "kind=\"loop_lag\"".into(),
                stats.loop_lag_samples.load(Ordering::Relaxed) as f64,
            ),
            (
                "kind=\"resources\"".into(),
                stats.resource_samples.load(Ordering::Relaxed) as f64,
            ),
            (
                "kind=\"message_wait\"".into(),
                stats.wait_samples.load(Ordering::Relaxed) as f64,
            ),
        ],
    );
    gauge(
        "meridian_self_last",
        "The last of those samples: loop lag ratio, CPU and memory percent, a message's wait.",
        "gauge",
        vec![
            ("what=\"loop_lag\"".into(), f(&stats.last_loop_lag)),
            ("what=\"cpu_percent\"".into(), f(&stats.last_cpu_percent)),
            ("what=\"mem_percent\"".into(), f(&stats.last_mem_percent)),
            ("what=\"message_wait_ms\"".into(), f(&stats.last_wait_ms)),
        ],
    );
    let rl = node.rate_limit_counts();
    gauge(
        "meridian_rate_limit_requests_total",
        "AD-24: requests this node's rate limiter allowed and refused (clients' submissions, peers' reports).",
        "counter",
        vec![
            ("outcome=\"allowed\"".into(), rl.limiter.allowed as f64),
            ("outcome=\"refused\"".into(), rl.limiter.rejected as f64),
        ],
    );
    gauge(
        "meridian_rate_limit_clients",
        "AD-24: clients the rate limiter tracks (at most 10,000; idle 300 s are dropped).",
        "gauge",
        vec![(String::new(), rl.clients as f64)],
    );
    gauge(
        "meridian_rate_limit_held_total",
        "AD-24: messages this node did not send because their receiver asked it to wait.",
        "counter",
        vec![(String::new(), rl.held as f64)],
    );
    gauge(
        "meridian_backpressure_fill",
        "A leader manager's stats buffer fill (0..1).",
        "gauge",
        node.buffer_fill()
            .map(|f| vec![(String::new(), f)])
            .unwrap_or_default(),
    );
    gauge(
        "meridian_job_entries",
        "Per-job table entries this node holds.",
        "gauge",
        vec![(String::new(), node.job_table_len() as f64)],
    );
    gauge(
        "meridian_events_total",
        "Events the node's machines emitted, by kind (routing decisions are JobRouted).",
        "counter",
        events
            .counts()
            .into_iter()
            .map(|(k, v)| (format!("kind=\"{k}\""), v as f64))
            .collect(),
    );
    let t = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed) as f64;
    gauge(
        "meridian_transport_total",
        "The driver's transport counters.",
        "counter",
        vec![
            ("what=\"datagrams_in\"".into(), t(&stats.datagrams_in)),
            (
                "what=\"datagrams_rejected\"".into(),
                t(&stats.datagrams_rejected),
            ),
            ("what=\"frames_in\"".into(), t(&stats.frames_in)),
            ("what=\"frames_rejected\"".into(), t(&stats.frames_rejected)),
            ("what=\"frames_dropped\"".into(), t(&stats.frames_dropped)),
            ("what=\"send_errors\"".into(), t(&stats.send_errors)),
            ("what=\"oob_in\"".into(), t(&stats.oob_in)),
            ("what=\"oob_dropped\"".into(), t(&stats.oob_dropped)),
            ("what=\"decode_errors\"".into(), node.decode_errors() as f64),
            (
                "what=\"oob_unanswered_for_rate\"".into(),
                node.oob_counts().0 as f64,
            ),
            ("what=\"oob_unread\"".into(), node.oob_counts().1 as f64),
        ],
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_counted_by_kind() {
        let mut c = EventCounts::default();
        c.count(&Event::Job(JobEvent::Forgotten {
            job: meridian_core::JobId(1),
        }));
        c.count(&Event::Job(JobEvent::Forgotten {
            job: meridian_core::JobId(2),
        }));
        c.count(&Event::Job(JobEvent::FlushLevel {
            level: meridian_core::backpressure::stats::Level::None,
        }));
        assert_eq!(c.counts().get("JobForgotten"), Some(&2));
        assert_eq!(c.counts().get("JobFlushLevel"), Some(&1));
    }
}
