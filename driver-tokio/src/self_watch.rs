//! What a node's shell measures about its own process for the core's health machines
//! (the core decides; the shell only samples):
//!
//! - membership.md §6.1's **loop lag**: once a second the node's loop sleeps 10 ms and
//!   reports `(actual - 10 ms) / 10 ms` as `Input::LoopLag`. The sleep is a branch of
//!   the node's own `select!`, so it measures how late *that loop* gets round to a
//!   timer: a loop busy stepping a backlog, or a runtime thread something else blocks,
//!   shows as lag. Lifeguard raises the node's health score on lagging samples (> 0.5)
//!   and slows its own failure detection down rather than accuse healthy peers.
//! - backpressure.md §2's **resource signal** (AD-18): each second, this process's CPU
//!   use (CPU time over wall time, in percent of the cores it may use) and resident
//!   memory (in percent of the memory it may use: the machine's, or the cgroup's limit
//!   when lower), as `Input::Resources`. Linux only (it reads `/proc`); elsewhere no
//!   resource sample is sent. The sample is the *process's*: nodes embedded in one
//!   process share it, which is why [`crate::runner::Options::resources`] is off unless
//!   asked for (the `meridian-node` binary, one node per process, asks).

use std::time::Duration;
use tokio::time::Instant;

/// membership.md §6.1: a 10 ms sleep...
pub const LAG_SLEEP: Duration = Duration::from_millis(10);
/// ...sampled each second.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// One measurement for the node.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sample {
    LoopLag { ratio: f64 },
    Resources { cpu_percent: f64, mem_percent: f64 },
}

/// The loop's self-watch: one timer that alternates between waiting for the next
/// second and the 10 ms lag sleep. At the start of each sleep it also reads the
/// process's resources, when it has a meter.
#[derive(Debug)]
pub struct SelfWatch {
    phase: Phase,
    meter: Option<ResourceMeter>,
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    /// The next sample starts at this instant.
    Waiting(Instant),
    /// The lag sleep started at this instant.
    Sleeping(Instant),
}

impl SelfWatch {
    /// Starts watching at `now`; the first sample is a second away. `resources`: also
    /// sample CPU and memory (when this platform tells them).
    pub fn new(now: Instant, resources: bool) -> SelfWatch {
        SelfWatch {
            phase: Phase::Waiting(now + SAMPLE_EVERY),
            meter: resources.then(ResourceMeter::new).flatten(),
        }
    }

    /// When the loop should call [`SelfWatch::fired`] next.
    pub fn deadline(&self) -> Instant {
        match self.phase {
            Phase::Waiting(at) => at,
            Phase::Sleeping(started) => started + LAG_SLEEP,
        }
    }

    /// The timer fired and the loop got round to it at `now`.
    pub fn fired(&mut self, now: Instant) -> Option<Sample> {
        match self.phase {
            Phase::Waiting(_) => {
                self.phase = Phase::Sleeping(now);
                self.meter.as_mut().and_then(|m| m.sample(now))
            }
            Phase::Sleeping(started) => {
                // A late loop starts the next second from the sleep's start, not from
                // now: the samples stay one a second however late each one was.
                self.phase = Phase::Waiting((started + SAMPLE_EVERY).max(now));
                Some(Sample::LoopLag {
                    ratio: lag_ratio(now.saturating_duration_since(started)),
                })
            }
        }
    }
}

/// membership.md §6.1: `(actual - 10 ms) / 10 ms` (negative when a timer fires early,
/// which the core treats as no lag).
pub fn lag_ratio(actual: Duration) -> f64 {
    (actual.as_secs_f64() - LAG_SLEEP.as_secs_f64()) / LAG_SLEEP.as_secs_f64()
}

/// Linux's clock ticks a second for `/proc`'s CPU times (`USER_HZ`: fixed at 100 by the
/// kernel's user-space ABI on every architecture this driver builds for).
const USER_HZ: f64 = 100.0;

/// Reads this process's CPU time and resident memory from `/proc`.
#[derive(Debug)]
struct ResourceMeter {
    /// CPU seconds (user + system) and when they were read.
    last: (f64, Instant),
    /// Bytes this process may use: the machine's memory, or the cgroup's limit.
    mem_limit: f64,
    /// Cores this process may use (the cgroup's quota counts).
    cores: f64,
}

impl ResourceMeter {
    fn new() -> Option<ResourceMeter> {
        let cpu = cpu_seconds(&read("/proc/self/stat")?)?;
        let machine = mem_total_bytes(&read("/proc/meminfo")?)?;
        let cgroup = read("/sys/fs/cgroup/memory.max").and_then(|s| cgroup_limit_bytes(&s));
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Some(ResourceMeter {
            last: (cpu, Instant::now()),
            mem_limit: cgroup.map_or(machine, |c| c.min(machine)),
            cores: cores as f64,
        })
    }

    fn sample(&mut self, now: Instant) -> Option<Sample> {
        let cpu = cpu_seconds(&read("/proc/self/stat")?)?;
        let rss = rss_bytes(&read("/proc/self/status")?)?;
        let (cpu_before, at) = std::mem::replace(&mut self.last, (cpu, now));
        let wall = now.saturating_duration_since(at).as_secs_f64();
        if wall <= 0.0 {
            return None;
        }
        Some(Sample::Resources {
            cpu_percent: cpu_percent(cpu - cpu_before, wall, self.cores),
            mem_percent: 100.0 * rss / self.mem_limit,
        })
    }
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// CPU time used over `wall` seconds, in percent of `cores` cores.
fn cpu_percent(cpu_seconds: f64, wall: f64, cores: f64) -> f64 {
    (100.0 * cpu_seconds / (wall * cores)).max(0.0)
}

/// `utime + stime` (fields 14 and 15 of `/proc/self/stat`), in seconds. The command
/// name (field 2) is in parentheses and may hold spaces, so fields count from the last
/// `)`.
fn cpu_seconds(stat: &str) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / USER_HZ)
}

/// A `Key:   123 kB` line of `/proc/self/status` or `/proc/meminfo`, in bytes.
fn kb_line(text: &str, key: &str) -> Option<f64> {
    let line = text.lines().find(|l| l.starts_with(key))?;
    let kb: u64 = line[key.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb as f64 * 1024.0)
}

fn rss_bytes(status: &str) -> Option<f64> {
    kb_line(status, "VmRSS:")
}

fn mem_total_bytes(meminfo: &str) -> Option<f64> {
    kb_line(meminfo, "MemTotal:").filter(|b| *b > 0.0)
}

/// cgroup v2's `memory.max`: a byte count, or `max` (no limit).
fn cgroup_limit_bytes(text: &str) -> Option<f64> {
    text.trim()
        .parse::<u64>()
        .ok()
        .map(|b| b as f64)
        .filter(|b| *b > 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lag_sample_is_the_sleeps_overrun_over_ten_ms() {
        for (ms, ratio) in [(10, 0.0), (15, 0.5), (40, 3.0), (5, -0.5)] {
            let got = lag_ratio(Duration::from_millis(ms));
            assert!((got - ratio).abs() < 1e-9, "{ms} ms: {got}");
        }
    }

    #[test]
    fn one_lag_sample_a_second_however_late_the_loop_is() {
        let t0 = Instant::now();
        let mut w = SelfWatch::new(t0, false);
        assert_eq!(w.deadline(), t0 + SAMPLE_EVERY);
        // The sleep starts when the loop gets to the timer; no meter, no resources.
        let start = t0 + SAMPLE_EVERY;
        assert_eq!(w.fired(start), None);
        assert_eq!(w.deadline(), start + LAG_SLEEP);
        // The loop is 25 ms late: 35 ms for a 10 ms sleep.
        let woke = start + Duration::from_millis(35);
        match w.fired(woke) {
            Some(Sample::LoopLag { ratio }) => assert!((ratio - 2.5).abs() < 1e-9),
            other => panic!("{other:?}"),
        }
        assert_eq!(w.deadline(), start + SAMPLE_EVERY);
        // A loop stuck for three seconds samples at once, then a second later again.
        let start = start + SAMPLE_EVERY;
        w.fired(start);
        let woke = start + Duration::from_secs(3);
        match w.fired(woke) {
            Some(Sample::LoopLag { ratio }) => assert!((ratio - 299.0).abs() < 1e-9),
            other => panic!("{other:?}"),
        }
        assert_eq!(w.deadline(), woke);
    }

    #[test]
    fn proc_files_parse_and_garbage_gives_no_sample() {
        // A command name with spaces and parentheses; utime 250, stime 50 ticks.
        let stat = "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3";
        assert_eq!(cpu_seconds(stat), Some(3.0));
        assert_eq!(cpu_seconds("4242 (x) S 1"), None);
        assert_eq!(cpu_seconds("garbage"), None);
        let status = "Name:\tmeridian-node\nVmPeak:\t  9000 kB\nVmRSS:\t    2048 kB\n";
        assert_eq!(rss_bytes(status), Some(2048.0 * 1024.0));
        assert_eq!(rss_bytes("VmRSS: lots"), None);
        assert_eq!(
            mem_total_bytes("MemTotal:       1024 kB\nMemFree: 1 kB\n"),
            Some(1024.0 * 1024.0)
        );
        assert_eq!(cgroup_limit_bytes("max\n"), None);
        assert_eq!(cgroup_limit_bytes("1073741824\n"), Some(1073741824.0));
        // Two of four cores busy for a second: 50%.
        assert_eq!(cpu_percent(2.0, 1.0, 4.0), 50.0);
    }

    #[test]
    fn on_linux_the_meter_reads_this_process() {
        let meter = ResourceMeter::new();
        if !cfg!(target_os = "linux") {
            return;
        }
        let mut meter = meter.expect("Linux has /proc");
        // Burn some CPU so the second reading differs from the first.
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < Duration::from_millis(50) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        match meter.sample(Instant::now()) {
            Some(Sample::Resources {
                cpu_percent,
                mem_percent,
            }) => {
                assert!(cpu_percent > 0.0, "{cpu_percent}");
                assert!(mem_percent > 0.0 && mem_percent < 100.0, "{mem_percent}");
            }
            other => panic!("{other:?}"),
        }
    }
}
