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
//!   memory (in percent of the memory it may use: the machine's, or the lowest limit
//!   on its cgroup and the cgroup's ancestors, v2 or v1, when lower), as
//!   `Input::Resources`. Linux only (it reads `/proc`); elsewhere no resource sample
//!   is sent. The sample is the *process's*: nodes embedded in one
//!   process share it, which is why [`crate::runner::Options::resources`] is off unless
//!   asked for (the `meridian-node` binary, one node per process, asks).

use std::path::Path;
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
    /// Bytes this process may use: the machine's memory, or its cgroups' lowest limit.
    mem_limit: f64,
    /// Cores this process may use (the cgroup's quota counts).
    cores: f64,
}

impl ResourceMeter {
    fn new() -> Option<ResourceMeter> {
        let cpu = cpu_seconds(&read("/proc/self/stat")?)?;
        let machine = mem_total_bytes(&read("/proc/meminfo")?)?;
        let cgroup = read("/proc/self/cgroup")
            .and_then(|c| cgroup_memory_limit(Path::new("/sys/fs/cgroup"), &c));
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
    read_path(Path::new(path))
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

/// cgroup v2's `memory.max` or v1's `memory.limit_in_bytes`: a byte count, or `max`
/// (v2) or a page-rounded `i64::MAX` (v1) for no limit.
fn cgroup_limit_bytes(text: &str) -> Option<f64> {
    text.trim()
        .parse::<u64>()
        .ok()
        .filter(|b| *b > 0 && *b < 1 << 62)
        .map(|b| b as f64)
}

/// The lowest memory limit on this process's cgroup and its ancestors, under the
/// cgroup mount `root`, from `/proc/self/cgroup`'s text. cgroup v2 (`0::<path>`, limits
/// in `<root>/<path>/memory.max`) when mounted there, else v1's memory controller
/// (`N:memory:<path>`, `<root>/memory/<path>/memory.limit_in_bytes`). Limits apply
/// from every ancestor, hence the walk up; in a container the host's path may not
/// exist under the container's mount, and the walk reaches the container's own root.
fn cgroup_memory_limit(root: &Path, proc_self_cgroup: &str) -> Option<f64> {
    let mut v1 = None;
    let mut v2 = None;
    for line in proc_self_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if controllers.is_empty() {
            v2 = Some(path);
        } else if controllers.split(',').any(|c| c == "memory") {
            v1 = Some(path);
        }
    }
    let (base, path, file) = match (v2, v1) {
        (Some(path), _) if root.join("cgroup.controllers").exists() => {
            (root.to_path_buf(), path, "memory.max")
        }
        (_, Some(path)) => (root.join("memory"), path, "memory.limit_in_bytes"),
        _ => return None,
    };
    let mut dir = base.join(path.trim_start_matches('/'));
    let mut lowest: Option<f64> = None;
    loop {
        if let Some(limit) = read_path(&dir.join(file)).and_then(|t| cgroup_limit_bytes(&t)) {
            lowest = Some(lowest.map_or(limit, |l| l.min(limit)));
        }
        if dir == base || !dir.pop() {
            return lowest;
        }
    }
}

fn read_path(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
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
        assert_eq!(cgroup_limit_bytes("9223372036854771712\n"), None);
        assert_eq!(cgroup_limit_bytes("1073741824\n"), Some(1073741824.0));
        // Two of four cores busy for a second: 50%.
        assert_eq!(cpu_percent(2.0, 1.0, 4.0), 50.0);
    }

    #[test]
    fn the_memory_limit_is_the_lowest_of_the_cgroup_and_its_ancestors() {
        let root = std::env::temp_dir().join(format!("meridian-cgroup-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let write = |rel: &str, text: &str| {
            let p = root.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        // v1: a limited slice above an unlimited service.
        write("memory/memory.limit_in_bytes", "9223372036854771712\n");
        write("memory/slice/memory.limit_in_bytes", "2147483648\n");
        write(
            "memory/slice/svc/memory.limit_in_bytes",
            "9223372036854771712\n",
        );
        let v1 = "4:memory:/slice/svc\n1:cpu:/\n0::/\n";
        assert_eq!(cgroup_memory_limit(&root, v1), Some(2147483648.0));
        // A host path the mount does not have (a container): its own root's limit.
        write("memory/memory.limit_in_bytes", "1073741824\n");
        let elsewhere = "4:memory:/host/path/ctr\n";
        assert_eq!(cgroup_memory_limit(&root, elsewhere), Some(1073741824.0));
        // v2, once the unified hierarchy is mounted at the root.
        write("cgroup.controllers", "cpu memory\n");
        write("svc/memory.max", "536870912\n");
        write("memory.max", "max\n");
        assert_eq!(cgroup_memory_limit(&root, "0::/svc\n"), Some(536870912.0));
        assert_eq!(cgroup_memory_limit(&root, "0::/\n"), None);
        assert_eq!(cgroup_memory_limit(&root, "garbage"), None);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn on_linux_the_meter_reads_this_process() {
        let meter = ResourceMeter::new();
        if !cfg!(target_os = "linux") {
            return;
        }
        let mut meter = meter.expect("Linux has /proc");
        // Burn CPU until the process's CPU time has moved on (a 10 ms tick; on a loaded
        // machine the wall clock may run far ahead of it).
        let cpu = || cpu_seconds(&read("/proc/self/stat").unwrap()).unwrap();
        let (start, at_start) = (std::time::Instant::now(), cpu());
        let mut x = 0u64;
        while cpu() == at_start {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "no CPU time in 10 s"
            );
            for _ in 0..100_000 {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            }
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
