//! Transparent huge pages for the simulator's heap.
//!
//! A world of 1,000 nodes holds ~130 MiB of machine state, and every event touches a
//! different machine's tables: the run is bound by memory latency, and with 4 KiB pages
//! most of those touches also miss the TLB. glibc's malloc backs its heap with
//! transparent huge pages when the process starts with
//! `GLIBC_TUNABLES=glibc.malloc.hugetlb=1` (glibc 2.35 and later; the kernel's THP mode
//! `madvise` or `always`). That cut a 1,000-node run's wall time by 9-14% here (paired
//! runs), with the same peak memory and, since the heap's layout never reaches the
//! machines, the same trace. A tunable is read only when a process starts, so the
//! simulator re-executes itself once with it set.
//!
//! The same execution keeps freed memory in the process: `trim_threshold` 1 GiB (the
//! heap's top is not handed back to the kernel as it shrinks) and `mmap_threshold`
//! 32 MiB (a push-pull frame's buffers come from the heap instead of a fresh mapping
//! each). Each page handed back and taken again is a page fault and a page of zeroing,
//! a 2 MiB page under huge pages: at 2,000 nodes the kernel's page clearing was 5% of
//! the run. Without them the run took 1.05x the wall (paired), at the same peak.
//!
//! glibc 2.36 (this machine's) decides whether the kernel's THP mode is `madvise` by reading
//! `/sys/kernel/mm/transparent_hugepage/enabled` (23 bytes) into a 24-byte buffer and
//! comparing it with `strcmp`, without terminating it: the 24th byte is whatever the
//! stack held, so the tunable takes effect or not at random from one launch to the next
//! (`strace` shows the launches that fail never read `hpage_pmd_size`). Our bench
//! executable lost its huge pages in 4 to 7 launches out of 10, `meridian-sim` in none
//! seen. So the re-executed process checks that its heap really is marked for huge
//! pages (the `hg` flag of `[heap]` in `/proc/self/smaps`, after one allocation large
//! enough to grow the heap by a huge page) and, if not, executes itself again, at most
//! [`MAX_EXECS`] times in all; then it runs as it is.
//!
//! Nothing happens when `GLIBC_TUNABLES` is already set (the user's tunables win), when
//! `MERIDIAN_SIM_HUGE_PAGES` is set (to anything: `off` opts out; the re-executed process
//! carries `on`), under valgrind, or off Linux. A debugger sees the `exec`: run with
//! `MERIDIAN_SIM_HUGE_PAGES=off` to debug the process you started. Where glibc or the
//! kernel does not support it, the tunable is ignored and nothing changes.

// Off Linux nothing here is used but the entry point.
#![cfg_attr(not(target_os = "linux"), allow(dead_code))]

use std::ffi::OsString;

const MARK: &str = "MERIDIAN_SIM_HUGE_PAGES";
/// The mark of the first re-execution; later ones carry `on` and their number.
const MARK_ON: &str = "on";
/// Executions with the tunable before a process settles for what it got.
pub const MAX_EXECS: u32 = 8;
const TUNABLE: &str = "glibc.malloc.hugetlb=1:glibc.malloc.trim_threshold=1073741824:glibc.malloc.mmap_threshold=33554432";

/// Re-execute this process with the huge-page tunable, unless told not to; returns only
/// if it did not (or could not) re-execute.
pub fn reexec_with_huge_pages() {
    #[cfg(target_os = "linux")]
    {
        let mark = std::env::var_os(MARK);
        let tunables = std::env::var_os("GLIBC_TUNABLES");
        if let Some(execs) = execs_so_far(mark.as_ref()) {
            // Re-executed: retry while glibc missed the kernel's mode (see above), as
            // long as the tunables are ours (glibc cuts them short in the environment
            // as it parses them: what is left is a prefix of ours).
            let ours = tunables
                .as_ref()
                .and_then(|t| t.to_str())
                .is_some_and(|t| !t.is_empty() && TUNABLE.starts_with(t));
            if ours && execs < MAX_EXECS && madvise_mode() && !heap_marked_for_huge_pages() {
                exec_with_tunable(execs + 1);
            }
            return;
        }
        if wanted(tunables, mark, std::env::var_os("LD_PRELOAD")) {
            exec_with_tunable(1);
        }
    }
}

/// Replace this process by itself under the tunable; `execs` counts this execution.
/// `exec` keeps the pid and the standard streams, and returns only on failure, in which
/// case the run simply goes on as it is.
#[cfg(target_os = "linux")]
fn exec_with_tunable(execs: u32) {
    use std::os::unix::process::CommandExt;
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| exe.clone().into_os_string());
    let mark = if execs == 1 {
        MARK_ON.to_string()
    } else {
        format!("{MARK_ON}{execs}")
    };
    let _ = std::process::Command::new(exe)
        .arg0(arg0)
        .args(args)
        .env("GLIBC_TUNABLES", TUNABLE)
        .env(MARK, mark)
        .exec();
}

/// How many executions under our tunable led to this process: `Some(1)` for mark `on`,
/// `Some(k)` for `on<k>`, `None` when the settings are not ours.
fn execs_so_far(mark: Option<&OsString>) -> Option<u32> {
    let rest = mark?.to_str()?.strip_prefix(MARK_ON)?;
    if rest.is_empty() {
        Some(1)
    } else {
        rest.parse().ok().filter(|k| *k >= 2)
    }
}

/// Whether the kernel hands out transparent huge pages only where asked (`madvise`),
/// the one mode in which the heap's `hg` flag tells whether glibc asked.
#[cfg(target_os = "linux")]
fn madvise_mode() -> bool {
    std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
        .is_ok_and(|mode| mode.contains("[madvise]"))
}

/// Grow the heap by more than a huge page (the allocation is below the `mmap_threshold`
/// we set, so it comes from the heap, and stays there for later use when freed) and
/// read whether glibc marked the heap for huge pages.
#[cfg(target_os = "linux")]
fn heap_marked_for_huge_pages() -> bool {
    let grow: Vec<u8> = Vec::with_capacity(4 << 20);
    std::hint::black_box(&grow);
    drop(grow);
    std::fs::read_to_string("/proc/self/smaps").is_ok_and(|smaps| heap_flags_have_hg(&smaps))
}

/// In an `smaps` listing: does a `[heap]` mapping's `VmFlags` line include `hg`? (The
/// heap can be split in several mappings, e.g. a first small extension glibc did not
/// mark followed by marked ones.)
fn heap_flags_have_hg(smaps: &str) -> bool {
    let mut in_heap = false;
    for line in smaps.lines() {
        if let Some(flags) = line.strip_prefix("VmFlags:") {
            if in_heap && flags.split_whitespace().any(|f| f == "hg") {
                return true;
            }
        } else if line.split_whitespace().next().is_some_and(|range| {
            range.contains('-') && range.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
        }) {
            // A mapping's header line: `start-end perms offset dev inode [path]`.
            in_heap = line.ends_with("[heap]");
        }
    }
    false
}

/// Prepare `cmd`, a child this process starts, to ask for the huge pages itself.
///
/// glibc rewrites `GLIBC_TUNABLES` in a process's own environment as it parses it: a
/// child of the re-executed process would inherit `glibc.malloc.hugetlb=1` alone,
/// without the trim and mmap thresholds above. When the settings are ours (our mark is
/// `on`), the child gets neither variable and re-executes itself with the whole set; a
/// user's own settings, or opt-out, are passed on untouched.
pub fn for_child(cmd: &mut std::process::Command) {
    if ours_applied() {
        cmd.env_remove("GLIBC_TUNABLES").env_remove(MARK);
    }
}

/// Whether this process runs under the settings this module asked for (it is the
/// re-executed process), rather than the user's own or none.
pub fn ours_applied() -> bool {
    child_asks_itself(std::env::var_os(MARK))
}

fn child_asks_itself(mark: Option<OsString>) -> bool {
    execs_so_far(mark.as_ref()).is_some()
}

/// Re-execute only if neither the user nor an earlier execution has decided, and not
/// under valgrind (its tools preload `vgpreload_*`; an `exec` would leave the profiler
/// watching nothing but the start-up).
fn wanted(tunables: Option<OsString>, mark: Option<OsString>, preload: Option<OsString>) -> bool {
    let under_valgrind = preload.is_some_and(|p| p.to_string_lossy().contains("vgpreload"));
    tunables.is_none() && mark.is_none() && !under_valgrind
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_undecided_process_reexecutes() {
        assert!(wanted(None, None, None));
        assert!(wanted(None, None, Some("/usr/lib/libfoo.so".into())));
        // The re-executed process, and a user who opted out.
        assert!(!wanted(Some(TUNABLE.into()), Some("on".into()), None));
        assert!(!wanted(None, Some("off".into()), None));
        // A user's own tunables are left alone.
        assert!(!wanted(Some("glibc.malloc.arena_max=2".into()), None, None));
        // Under valgrind.
        let vg = "/usr/libexec/valgrind/vgpreload_core-amd64-linux.so";
        assert!(!wanted(None, None, Some(vg.into())));
    }

    #[test]
    fn only_our_own_settings_are_taken_from_a_child() {
        assert!(child_asks_itself(Some("on".into())));
        assert!(child_asks_itself(Some("on3".into())));
        assert!(!child_asks_itself(Some("off".into())));
        assert!(!child_asks_itself(None));
    }

    #[test]
    fn the_mark_counts_the_executions() {
        assert_eq!(execs_so_far(Some(&"on".into())), Some(1));
        assert_eq!(execs_so_far(Some(&"on2".into())), Some(2));
        assert_eq!(execs_so_far(Some(&"on8".into())), Some(MAX_EXECS));
        for not_ours in ["off", "on1", "on0", "onx", "yes"] {
            assert_eq!(execs_so_far(Some(&not_ours.into())), None, "{not_ours}");
        }
        assert_eq!(execs_so_far(None), None);
    }

    #[test]
    fn the_heap_mark_is_read_from_the_heap_mapping_alone() {
        let marked = "\
55b0cc760000-55b0d4600000 rw-p 00000000 00:00 0                          [heap]
Size:             129664 kB
AnonHugePages:    129024 kB
VmFlags: rd wr mr mw me ac hg 
7f0000000000-7f0000200000 rw-p 00000000 00:00 0
VmFlags: rd wr mr mw me ac 
";
        assert!(heap_flags_have_hg(marked));
        // Unmarked heap, though a later mapping is marked.
        let unmarked = "\
5626dca1b000-5626e4844000 rw-p 00000000 00:00 0                          [heap]
Size:             129188 kB
VmFlags: rd wr mr mw me ac 
7f0000000000-7f0000200000 rw-p 00000000 00:00 0
VmFlags: rd wr mr mw me ac hg 
";
        assert!(!heap_flags_have_hg(unmarked));
        // A heap split in two mappings, the second marked.
        let split = "\
5626dca1b000-5626dcc00000 rw-p 00000000 00:00 0                          [heap]
VmFlags: rd wr mr mw me ac 
5626dcc00000-5626e4800000 rw-p 00000000 00:00 0                          [heap]
AnonHugePages:    126976 kB
VmFlags: rd wr mr mw me ac hg 
";
        assert!(heap_flags_have_hg(split));
        assert!(!heap_flags_have_hg(
            "7f00-7f01 rw-p 0 00:00 0\nVmFlags: rd hg\n"
        ));
    }

    /// On this machine's kind of host (Linux, THP `madvise`): the process the test
    /// harness runs has no tunable, so its heap is not marked, and the check says so.
    /// The marked case is covered by the bench and the simulator's own runs.
    #[cfg(target_os = "linux")]
    #[test]
    fn an_unmarked_heap_is_seen_as_unmarked() {
        if madvise_mode() && std::env::var_os("GLIBC_TUNABLES").is_none() {
            assert!(!heap_marked_for_huge_pages());
        }
    }
}
