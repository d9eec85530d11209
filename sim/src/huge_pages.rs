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
//! Nothing happens when `GLIBC_TUNABLES` is already set (the user's tunables win), when
//! `MERIDIAN_SIM_HUGE_PAGES` is set (to anything: `off` opts out; the re-executed process
//! carries `on`), under valgrind, or off Linux. A debugger sees the `exec`: run with
//! `MERIDIAN_SIM_HUGE_PAGES=off` to debug the process you started. Where glibc or the
//! kernel does not support it, the tunable is ignored and nothing changes.

// Off Linux nothing here is used but the entry point.
#![cfg_attr(not(target_os = "linux"), allow(dead_code))]

use std::ffi::OsString;

const MARK: &str = "MERIDIAN_SIM_HUGE_PAGES";
const TUNABLE: &str = "glibc.malloc.hugetlb=1:glibc.malloc.trim_threshold=1073741824:glibc.malloc.mmap_threshold=33554432";

/// Re-execute this process with the huge-page tunable, unless told not to; returns only
/// if it did not (or could not) re-execute.
pub fn reexec_with_huge_pages() {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        if !wanted(
            std::env::var_os("GLIBC_TUNABLES"),
            std::env::var_os(MARK),
            std::env::var_os("LD_PRELOAD"),
        ) {
            return;
        }
        let Ok(exe) = std::env::current_exe() else {
            return;
        };
        // `exec` replaces this process (same pid, same standard streams) and returns
        // only on failure, in which case the run simply goes on without huge pages.
        let mut args = std::env::args_os();
        let arg0 = args.next().unwrap_or_else(|| exe.clone().into_os_string());
        let _ = std::process::Command::new(exe)
            .arg0(arg0)
            .args(args)
            .env("GLIBC_TUNABLES", TUNABLE)
            .env(MARK, "on")
            .exec();
    }
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
    mark.is_some_and(|m| m == "on")
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
        assert!(!child_asks_itself(Some("off".into())));
        assert!(!child_asks_itself(None));
    }
}
