//! AD-24 with the spec's numbers (backpressure.md §4, §10 invariants 1 and 9).

use super::*;
use proptest::prelude::*;

fn at_ms(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn a_window_weighs_the_previous_one_by_what_is_left_of_it() {
    let mut w = SlidingWindow::new(10, secs(10), at_ms(0));
    for _ in 0..10 {
        assert!(w.try_acquire(1, at_ms(0)).is_ok());
    }
    assert!(w.try_acquire(1, at_ms(9_999)).is_err());
    // One window later the ten weigh fully, then less and less.
    assert_eq!(w.effective(at_ms(10_000)), 10.0);
    assert!(w.try_acquire(1, at_ms(10_000)).is_err());
    assert_eq!(w.effective(at_ms(15_000)), 5.0);
    for _ in 0..5 {
        assert!(w.try_acquire(1, at_ms(15_000)).is_ok());
    }
    assert!(w.try_acquire(1, at_ms(15_000)).is_err());
    assert_eq!(w.remaining(at_ms(15_000)), 0);
    // Two windows or more after the start of the current one: both counts are zero.
    assert_eq!(w.effective(at_ms(30_000)), 0.0);
    assert_eq!(w.remaining(at_ms(30_000)), 10);
}

#[test]
fn the_window_start_advances_by_whole_windows() {
    let mut w = SlidingWindow::new(4, secs(10), at_ms(0));
    assert!(w.try_acquire(4, at_ms(3_000)).is_ok());
    // 12 s: one window passed, so the start is 10 s and 20% of it has gone.
    assert!((w.effective(at_ms(12_000)) - 3.2).abs() < 1e-9);
}

#[test]
fn a_refusal_says_when_the_request_would_pass() {
    // 10 / 10 s, all ten taken at 0; refused at 2 s: p = 1 - (10 - 1) / 10 = 0.1, so
    // 8 s to the window's end plus 0.1 of a window: 9 s.
    let mut w = SlidingWindow::new(10, secs(10), at_ms(0));
    w.try_acquire(10, at_ms(0)).unwrap();
    assert_eq!(w.try_acquire(1, at_ms(2_000)), Err(Some(secs(9))));
    // And it does pass then, not a moment before.
    assert!(!w.clone().would_accept(1, at_ms(10_900)));
    assert!(w.try_acquire(1, at_ms(11_000)).is_ok());
}

#[test]
fn a_request_larger_than_the_limit_never_passes() {
    let mut w = SlidingWindow::new(10, secs(10), at_ms(0));
    assert_eq!(w.try_acquire(11, at_ms(0)), Err(None));
}

#[test]
fn a_computed_wait_is_at_least_10_ms() {
    // 1 per 1 ms, taken at 0 and refused at 0.999 ms: 1 µs to the end plus a whole
    // window is 1.001 ms, floored to 10 ms.
    let mut short = SlidingWindow::new(1, Duration::from_millis(1), at_ms(0));
    short.try_acquire(1, Instant::from_micros(0)).unwrap();
    let wait = short.try_acquire(1, Instant::from_micros(999)).unwrap_err();
    assert_eq!(wait, Some(Duration::from_millis(10)));
    // On a 10 s window the same arithmetic is above the floor: 1 ms + 10 s.
    let mut w = SlidingWindow::new(1, secs(10), at_ms(0));
    w.try_acquire(1, at_ms(0)).unwrap();
    assert_eq!(
        w.try_acquire(1, at_ms(9_999)),
        Err(Some(Duration::from_millis(10_001)))
    );
}

#[test]
fn the_table_has_the_spec_s_limits() {
    let table: Vec<(&str, u32, u64)> = Operation::ALL
        .iter()
        .map(|o| (o.name(), o.limit().0, o.limit().1.as_secs()))
        .collect();
    assert_eq!(
        table,
        vec![
            ("stats_update", 500, 10),
            ("heartbeat", 200, 10),
            ("progress_update", 300, 10),
            ("job_submit", 50, 10),
            ("job_status", 100, 10),
            ("workflow_dispatch", 100, 10),
            ("cancel", 20, 10),
            ("reconnect", 10, 10),
            ("default", 100, 10),
        ]
    );
    assert_eq!(STRESS_LIMIT, (100, secs(60)));
    assert_eq!(MAX_CLIENTS, 10_000);
    assert_eq!(CLIENT_IDLE, secs(300));
}

const ALICE: ClientId = ClientId::Submitter(1);

/// One request of the default operation from `client` at `ms`, graded Healthy.
fn request(l: &mut AdaptiveLimiter, client: ClientId, ms: u64) -> Result<(), Refusal> {
    l.check(
        client,
        Operation::Other,
        Priority::High,
        OverloadState::Healthy,
        at_ms(ms),
    )
}
const BOB: ClientId = ClientId::Submitter(2);

#[test]
fn healthy_counts_each_client_and_operation_apart() {
    let mut l = AdaptiveLimiter::default();
    let h = OverloadState::Healthy;
    let submit = Operation::JobSubmit;
    for i in 0..50 {
        assert!(
            l.check(ALICE, submit, Priority::High, h, at_ms(i * 100))
                .is_ok(),
            "submission {i}"
        );
    }
    let refused = l
        .check(ALICE, submit, Priority::High, h, at_ms(5_000))
        .unwrap_err();
    assert_eq!(refused.operation, submit);
    assert_eq!(refused.tokens_remaining, 0);
    assert_eq!(refused.grade, h);
    assert!(refused
        .retry_after
        .is_some_and(|w| w >= Duration::from_millis(10)));
    // Another client, and another operation of the same client, have their own counters.
    assert!(l
        .check(BOB, submit, Priority::High, h, at_ms(5_000))
        .is_ok());
    assert!(l
        .check(ALICE, Operation::JobStatus, Priority::High, h, at_ms(5_000))
        .is_ok());
    assert_eq!(
        l.counts(),
        LimiterCounts {
            allowed: 52,
            rejected: 1,
            evicted: 0
        }
    );
}

#[test]
fn critical_always_passes_whatever_the_grade_and_the_counters() {
    let mut l = AdaptiveLimiter::default();
    for i in 0..20 {
        l.check(
            ALICE,
            Operation::Cancel,
            Priority::Normal,
            OverloadState::Healthy,
            at_ms(i),
        )
        .unwrap();
    }
    for grade in [
        OverloadState::Healthy,
        OverloadState::Busy,
        OverloadState::Stressed,
        OverloadState::Overloaded,
    ] {
        for _ in 0..1_000 {
            assert!(l
                .check(
                    ALICE,
                    Operation::Cancel,
                    Priority::Critical,
                    grade,
                    at_ms(30)
                )
                .is_ok());
        }
    }
}

#[test]
fn overloaded_refuses_all_but_critical_and_busy_refuses_low() {
    let mut l = AdaptiveLimiter::default();
    let o = OverloadState::Overloaded;
    for p in [Priority::High, Priority::Normal, Priority::Low] {
        let r = l
            .check(ALICE, Operation::Heartbeat, p, o, at_ms(0))
            .unwrap_err();
        assert_eq!(r.retry_after, Some(GRADE_RETRY_AFTER));
        assert_eq!(r.tokens_remaining, 200);
    }
    let b = OverloadState::Busy;
    assert!(l
        .check(ALICE, Operation::Heartbeat, Priority::Low, b, at_ms(0))
        .is_err());
    assert!(l
        .check(ALICE, Operation::Heartbeat, Priority::Normal, b, at_ms(0))
        .is_ok());
    assert!(l
        .check(ALICE, Operation::Heartbeat, Priority::High, b, at_ms(0))
        .is_ok());
    // A refusal by grade creates no client state.
    let mut fresh = AdaptiveLimiter::default();
    fresh
        .check(BOB, Operation::Other, Priority::High, o, at_ms(0))
        .unwrap_err();
    assert!(fresh.is_empty());
}

#[test]
fn stressed_allows_a_client_100_requests_a_minute_over_all_operations() {
    let mut l = AdaptiveLimiter::default();
    let s = OverloadState::Stressed;
    // 100 stats updates (their own limit is 500 / 10 s) use up the client's minute...
    for i in 0..100 {
        l.check(ALICE, Operation::StatsUpdate, Priority::Normal, s, at_ms(i))
            .unwrap();
    }
    let r = l
        .check(
            ALICE,
            Operation::StatsUpdate,
            Priority::Normal,
            s,
            at_ms(100),
        )
        .unwrap_err();
    // p = 1 - 99 / 100 = 0.01 of a minute after the window's end at 60 s: 60.5 s.
    assert_eq!(r.retry_after, Some(Duration::from_millis(60_500)));
    // ...for every operation, not for other clients.
    assert!(l
        .check(ALICE, Operation::JobStatus, Priority::High, s, at_ms(100))
        .is_err());
    assert!(l
        .check(BOB, Operation::StatsUpdate, Priority::Normal, s, at_ms(100))
        .is_ok());
    // Healthy again: only the per-operation counters apply.
    assert!(l
        .check(
            ALICE,
            Operation::StatsUpdate,
            Priority::Normal,
            OverloadState::Healthy,
            at_ms(200)
        )
        .is_ok());
    // A minute on the 100 weigh fully; at 90 s, half of them.
    assert!(l
        .check(
            ALICE,
            Operation::JobStatus,
            Priority::High,
            s,
            at_ms(60_000)
        )
        .is_err());
    for _ in 0..50 {
        l.check(
            ALICE,
            Operation::JobStatus,
            Priority::High,
            s,
            at_ms(90_000),
        )
        .unwrap();
    }
    assert!(l
        .check(
            ALICE,
            Operation::JobStatus,
            Priority::High,
            s,
            at_ms(90_000)
        )
        .is_err());
}

#[test]
fn stressed_never_hands_out_an_operation_s_used_up_allowance_again() {
    let mut l = AdaptiveLimiter::default();
    for i in 0..20 {
        l.check(
            ALICE,
            Operation::Cancel,
            Priority::High,
            OverloadState::Healthy,
            at_ms(i),
        )
        .unwrap();
    }
    let r = l
        .check(
            ALICE,
            Operation::Cancel,
            Priority::High,
            OverloadState::Stressed,
            at_ms(50),
        )
        .unwrap_err();
    assert_eq!(r.operation, Operation::Cancel);
    assert_eq!(r.grade, OverloadState::Stressed);
}

#[test]
fn the_table_holds_10_000_clients_and_forgets_the_idle() {
    let mut l = AdaptiveLimiter::default();
    for c in 0..MAX_CLIENTS as u64 {
        request(&mut l, ClientId::Submitter(c), c).unwrap();
    }
    assert_eq!(l.len(), MAX_CLIENTS);
    // Client 0 comes back, so client 1 is now the least recently active.
    request(&mut l, ClientId::Submitter(0), 20_000).unwrap();
    request(&mut l, ClientId::Node(NodeId(7)), 20_001).unwrap();
    assert_eq!(l.len(), MAX_CLIENTS);
    assert_eq!(l.counts().evicted, 1);
    assert!(!l.clients.contains_key(&ClientId::Submitter(1)));
    assert!(l.clients.contains_key(&ClientId::Submitter(0)));
    assert_eq!(l.by_activity.len(), l.len());
    // 300 s after their last request the idle go; the two recent ones stay a while.
    l.sweep(at_ms(MAX_CLIENTS as u64 + 300_000));
    assert_eq!(l.len(), 2);
    l.sweep(at_ms(320_001));
    assert!(l.is_empty());
    assert!(l.by_activity.is_empty());
}

#[test]
fn a_full_table_of_idle_clients_is_swept_before_anyone_is_evicted() {
    let mut l = AdaptiveLimiter::default();
    for c in 0..MAX_CLIENTS as u64 {
        request(&mut l, ClientId::Submitter(c), 0).unwrap();
    }
    let newcomer = ClientId::Node(NodeId(1));
    request(&mut l, newcomer, 300_000).unwrap();
    assert_eq!(l.len(), 1);
    assert!(l.clients.contains_key(&newcomer));
    assert_eq!(l.counts().evicted, 0);
}

proptest! {
    /// Invariant 9: within any stretch of one window, a (client, operation) is accepted
    /// at most its limit plus what the previous window still weighs: never over twice
    /// the limit, and never over the limit inside one aligned window.
    #[test]
    fn accepted_requests_never_exceed_the_window_s_allowance(
        max in 1u32..30,
        window_ms in 1u64..5_000,
        gaps in proptest::collection::vec(0u64..400, 1..400),
        grades in proptest::collection::vec(0u8..3, 1..400),
    ) {
        let mut l = AdaptiveLimiter::default();
        let mut w = SlidingWindow::new(max, Duration::from_millis(window_ms), at_ms(0));
        let mut accepted: Vec<u64> = Vec::new();
        let mut limiter_accepted: Vec<u64> = Vec::new();
        let mut t = 0;
        for (i, gap) in gaps.iter().enumerate() {
            t += gap;
            if w.try_acquire(1, at_ms(t)).is_ok() {
                accepted.push(t);
            }
            // The adaptive limiter, its grade changing under it, keeps the same bound
            // for its operation (reconnect: 10 / 10 s).
            let grade = match grades[i % grades.len()] {
                0 => OverloadState::Healthy,
                1 => OverloadState::Busy,
                _ => OverloadState::Stressed,
            };
            if l.check(ALICE, Operation::Reconnect, Priority::High, grade, at_ms(t)).is_ok() {
                limiter_accepted.push(t);
            }
        }
        let most_in_a_window = |times: &[u64], window: u64| {
            (0..times.len())
                .map(|i| times[..=i].iter().filter(|&&a| a + window > times[i]).count())
                .max()
                .unwrap_or(0) as u32
        };
        prop_assert!(most_in_a_window(&accepted, window_ms) <= 2 * max);
        prop_assert!(most_in_a_window(&limiter_accepted, 10_000) <= 2 * 10);
        // Inside each aligned window, at most `max`.
        let mut per_window: std::collections::BTreeMap<u64, u32> = Default::default();
        for a in &accepted {
            *per_window.entry(a / window_ms).or_default() += 1;
        }
        prop_assert!(per_window.values().all(|&n| n <= max));
        prop_assert!(l.counts().allowed + l.counts().rejected == gaps.len() as u64);
    }
}

/// A node tracks up to 10,000 clients: a counter is 24 bytes, a client with one
/// operation's counter under 120.
#[test]
fn a_counter_is_24_bytes() {
    assert_eq!(core::mem::size_of::<SlidingWindow>(), 24);
    assert!(core::mem::size_of::<ClientState>() <= 120);
}

/// No CONTROL job message has an operation: so none is ever counted by a limiter or
/// held back by a client (the node relies on this instead of checking the class too).
#[test]
fn no_control_message_is_counted() {
    use crate::backpressure::class::{job_class, MessageClass};
    for seed in 0..50 {
        for m in crate::wire::tests::job_samples(seed) {
            if job_class(&m) == MessageClass::Control {
                assert_eq!(Operation::of(&m), None, "{m:?}");
            }
        }
    }
}
