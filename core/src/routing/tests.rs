use super::health::DcHealth;
use super::router::*;
use crate::id::DcId;
use crate::time::{secs, Instant};
use proptest::prelude::*;

fn cand(dc: u16, health: DcHealth, rtt: f64) -> Candidate {
    Candidate {
        dc: DcId(dc),
        health,
        stale: false,
        available_cores: 8,
        total_cores: 8,
        queue_depth: 0,
        circuit_pressure: 0.0,
        total_managers: 3,
        healthy_managers: 3,
        rtt_ucb_ms: Some(rtt),
        quality: 1.0,
    }
}

const J: RouteKey = RouteKey(1);

#[test]
fn excludes_and_demotions_with_their_reasons() {
    let ok = cand(0, DcHealth::Healthy, 10.0);
    assert_eq!(exclusion(&ok), None);
    let unhealthy = cand(0, DcHealth::Unhealthy, 10.0);
    assert_eq!(exclusion(&unhealthy), Some(Exclusion::Unhealthy));
    let none = Candidate {
        total_managers: 0,
        ..ok
    };
    assert_eq!(exclusion(&none), Some(Exclusion::NoRegisteredManagers));
    let open = Candidate {
        healthy_managers: 0,
        ..ok
    };
    assert_eq!(exclusion(&open), Some(Exclusion::AllManagersCircuitOpen));
    // Soft: stale health is DEGRADED, a missing coordinate is 100 ms at quality 0.
    let stale = Candidate { stale: true, ..ok };
    assert_eq!(
        (exclusion(&stale), bucket(&stale)),
        (None, DcHealth::Degraded)
    );
    let cfg = RoutingConfig::default();
    let blind = Candidate {
        rtt_ucb_ms: None,
        quality: 0.0,
        ..ok
    };
    assert_eq!(rtt_ucb(&cfg, &blind), 100.0);
    assert_eq!(rtt_ucb(&cfg, &cand(0, DcHealth::Healthy, 0.2)), 1.0);
    assert_eq!(rtt_ucb(&cfg, &cand(0, DcHealth::Healthy, 1e9)), 10_000.0);
}

#[test]
fn load_and_quality_factors_with_their_caps() {
    let cfg = RoutingConfig::default();
    let c = Candidate {
        available_cores: 4,
        total_cores: 8,
        queue_depth: 10,
        circuit_pressure: 0.5,
        ..cand(0, DcHealth::Healthy, 10.0)
    };
    // 1 + 0.5 * 0.5 + 0.3 * 10/20 + 0.2 * 0.5 = 1.5
    assert!((load_factor(&cfg, &c) - 1.5).abs() < 1e-12);
    // No cores: util 1.
    let nocores = Candidate {
        total_cores: 0,
        available_cores: 0,
        queue_depth: 0,
        circuit_pressure: 0.0,
        ..c
    };
    assert!((load_factor(&cfg, &nocores) - 1.5).abs() < 1e-12);
    let steep = RoutingConfig {
        a_util: 100.0,
        ..cfg.clone()
    };
    assert_eq!(load_factor(&steep, &nocores), 5.0);
    assert_eq!(quality_penalty(&cfg, 1.0), 1.0);
    assert_eq!(quality_penalty(&cfg, 0.0), 1.5);
    let harsh = RoutingConfig {
        a_quality: 10.0,
        ..cfg
    };
    assert_eq!(quality_penalty(&harsh, 0.0), 2.0);
}

#[test]
fn scores_multiply_and_preference_stays_inside_the_bucket() {
    let t = Instant::ZERO;
    let mut r = Router::new(RoutingConfig::default());
    let a = Candidate {
        available_cores: 4,
        ..cand(0, DcHealth::Healthy, 50.0)
    };
    let b = cand(1, DcHealth::Healthy, 60.0);
    let busy = cand(2, DcHealth::Busy, 1.0);
    // a: 50 * 1.25 = 62.5; b: 60 * 1.0 = 60: b first. Preferring a: 56.25: a first.
    let d = r.route(J, &[a, b, busy], &[], 1, true, t);
    assert_eq!(d.primaries, vec![DcId(1)]);
    assert_eq!(d.scores[0], (DcId(1), 60.0));
    assert_eq!(d.scores[1], (DcId(0), 62.5));
    let d = r.route(RouteKey(2), &[a, b, busy], &[DcId(0)], 1, true, t);
    assert_eq!(d.primaries, vec![DcId(0)]);
    assert_eq!(d.scores[0], (DcId(0), 56.25));
    // The 1 ms BUSY DC never outranks a HEALTHY one, however fast (and preferred).
    let d = r.route(RouteKey(3), &[a, b, busy], &[DcId(2)], 2, true, t);
    assert_eq!(d.primary_bucket, Some(DcHealth::Healthy));
    assert_eq!(d.fallbacks, vec![DcId(2)]);
    // Two DCs asked for: at most max_primary_dcs (2), from the primary bucket only.
    let d = r.route(RouteKey(4), &[a, busy], &[], 3, true, t);
    assert_eq!((d.primaries, d.fallbacks), (vec![DcId(0)], vec![DcId(2)]));
}

#[test]
fn fallback_chain_orders_buckets_and_unhealthy_never_appears() {
    let t = Instant::ZERO;
    let mut r = Router::new(RoutingConfig::default());
    let cs = [
        cand(0, DcHealth::Degraded, 1.0),
        cand(1, DcHealth::Busy, 90.0),
        cand(2, DcHealth::Unhealthy, 1.0),
        cand(3, DcHealth::Busy, 10.0),
    ];
    let d = r.route(J, &cs, &[], 1, true, t);
    assert_eq!(d.primary_bucket, Some(DcHealth::Busy));
    assert_eq!(d.primaries, vec![DcId(3)]);
    assert_eq!(d.fallbacks, vec![DcId(1), DcId(0)]);
    let d = r.route(
        RouteKey(9),
        &[cand(2, DcHealth::Unhealthy, 1.0)],
        &[],
        1,
        true,
        t,
    );
    assert_eq!(d.reason, RouteReason::NoCandidate);
    assert!(d.primaries.is_empty() && d.fallbacks.is_empty());
}

#[test]
fn hold_down_improvement_and_forced_switches() {
    let t = Instant::ZERO;
    let mut r = Router::new(RoutingConfig::default());
    let a = |rtt| cand(0, DcHealth::Healthy, rtt);
    let b = |rtt| cand(1, DcHealth::Healthy, rtt);
    let d = r.route(J, &[a(50.0), b(100.0)], &[], 1, true, t);
    assert_eq!(
        (d.primaries[0], d.reason),
        (DcId(0), RouteReason::InitialSelection)
    );
    // B becomes much better inside the 30 s hold-down: kept, and still listed first.
    let d = r.route(J, &[a(50.0), b(10.0)], &[], 1, true, t + secs(29));
    assert_eq!(
        (d.primaries[0], d.reason),
        (DcId(0), RouteReason::HoldDownRetained)
    );
    assert_eq!(d.fallbacks, vec![DcId(1)]);
    // After it: B 41 is not < 0.8 * 50 = 40: kept; 39 is: switched.
    let d = r.route(J, &[a(50.0), b(41.0)], &[], 1, true, t + secs(30));
    assert_eq!(d.primaries[0], DcId(0));
    let d = r.route(J, &[a(50.0), b(39.0)], &[], 1, true, t + secs(31));
    assert_eq!(
        (d.primaries[0], d.reason, d.switched),
        (
            DcId(1),
            RouteReason::ImprovementThresholdMet,
            Some((DcId(0), DcId(1)))
        )
    );
    // Inside the new hold-down, B is excluded: forced away at once.
    let d = r.route(
        J,
        &[a(50.0), cand(1, DcHealth::Unhealthy, 1.0)],
        &[],
        1,
        true,
        t + secs(32),
    );
    assert_eq!(
        (d.primaries[0], d.reason),
        (DcId(0), RouteReason::ExclusionForced)
    );
    // A drops to BUSY while B is HEALTHY again: a forced bucket drop.
    let d = r.route(
        J,
        &[cand(0, DcHealth::Busy, 50.0), b(60.0)],
        &[],
        1,
        true,
        t + secs(33),
    );
    assert_eq!(
        (d.primaries[0], d.reason),
        (DcId(1), RouteReason::BucketDropForced)
    );
    assert_eq!(r.state(J).unwrap().switch_count, 3);
}

#[test]
fn degradation_must_last_10_s_and_a_failed_primary_is_left() {
    let t = Instant::ZERO;
    let mut r = Router::new(RoutingConfig::default());
    let a = |rtt| cand(0, DcHealth::Healthy, rtt);
    let b = |rtt| cand(1, DcHealth::Healthy, rtt);
    r.route(J, &[a(40.0), b(50.0)], &[], 1, true, t);
    // A at 1.5x its selection score (60 >= 1.5 * 40) from 1 s: not for 10 s yet.
    let d = r.route(J, &[a(60.0), b(50.0)], &[], 1, true, t + secs(1));
    assert_eq!(d.primaries[0], DcId(0));
    let d = r.route(J, &[a(60.0), b(50.0)], &[], 1, true, t + secs(10));
    assert_eq!(d.primaries[0], DcId(0), "9 s of degradation");
    let d = r.route(J, &[a(60.0), b(50.0)], &[], 1, true, t + secs(11));
    assert_eq!(
        (d.primaries[0], d.reason),
        (DcId(1), RouteReason::DegradationForced)
    );
    // B's dispatch fails: B doubles for 120 s and is left despite the hold-down.
    r.record_dispatch_failure(J, DcId(1), t + secs(12));
    let d = r.route(J, &[a(60.0), b(50.0)], &[], 1, true, t + secs(12));
    assert_eq!(
        (d.primaries[0], d.reason),
        (DcId(0), RouteReason::CooldownPenalty)
    );
    assert!(d.scores.contains(&(DcId(1), 100.0)));
    let d = r.route(J, &[a(60.0), b(50.0)], &[], 1, true, t + secs(132));
    assert!(
        d.scores.contains(&(DcId(1), 50.0)),
        "cooldown over: {:?}",
        d.scores
    );
}

#[test]
fn bootstrap_ranks_by_spare_capacity_then_queue() {
    let t = Instant::ZERO;
    let mut r = Router::new(RoutingConfig::default());
    let roomy = Candidate {
        available_cores: 8,
        total_cores: 8,
        rtt_ucb_ms: None,
        quality: 0.0,
        ..cand(0, DcHealth::Healthy, 0.0)
    };
    let tight = Candidate {
        available_cores: 1,
        ..roomy
    };
    let tight = Candidate {
        dc: DcId(1),
        ..tight
    };
    let queued = Candidate {
        dc: DcId(2),
        queue_depth: 5,
        ..roomy
    };
    let d = r.route(J, &[tight, queued, roomy], &[], 1, false, t);
    assert!(d.bootstrap);
    assert_eq!(
        d.scores.iter().map(|(dc, _)| dc.0).collect::<Vec<_>>(),
        vec![0, 2, 1]
    );
    // Nobody is excluded for lack of coordinates.
    assert_eq!(d.primaries.len() + d.fallbacks.len(), 3);
    // The mode changes: the stored score is rebased to the primary's scored value, so the
    // improvement test compares like with like.
    let d = r.route(J, &[tight, queued, roomy], &[], 1, true, t + secs(40));
    assert!(!d.bootstrap);
    let s = r.state(J).unwrap();
    assert_eq!(s.primary, Some(DcId(0)));
    assert!(s.selected_score > 10.0, "{}", s.selected_score);
}

fn arb_candidate() -> impl Strategy<Value = Candidate> {
    (
        0u16..6,
        0u8..4,
        any::<bool>(),
        0u32..16,
        0u32..16,
        0u32..50,
        0u32..4,
        0u32..4,
        proptest::option::of(0.0f64..500.0),
        0.0f64..1.0,
    )
        .prop_map(
            |(dc, h, stale, avail, total, q, tm, hm, rtt, quality)| Candidate {
                dc: DcId(dc),
                health: [
                    DcHealth::Healthy,
                    DcHealth::Busy,
                    DcHealth::Degraded,
                    DcHealth::Unhealthy,
                ][h as usize],
                stale,
                available_cores: avail,
                total_cores: total,
                queue_depth: q,
                circuit_pressure: hm as f64 / 4.0,
                total_managers: tm,
                healthy_managers: hm.min(tm),
                rtt_ucb_ms: rtt,
                quality,
            },
        )
}

proptest! {
    /// routing.md §14.1, 2, 8, 9: whatever the candidates, nothing excluded is routed to;
    /// every primary is in the best non-empty bucket; the chain's buckets never rise; every
    /// eligible DC appears exactly once; the factors stay in their ranges.
    #[test]
    fn bucket_safety_holds_for_arbitrary_inputs(
        cands in proptest::collection::vec(arb_candidate(), 0..8),
        count in 1usize..4,
        mature in any::<bool>(),
    ) {
        let mut r = Router::new(RoutingConfig::default());
        let d = r.route(J, &cands, &[DcId(1)], count, mature, Instant::ZERO);
        let mut eligible: Vec<&Candidate> = cands.iter().filter(|c| exclusion(c).is_none()).collect();
        eligible.sort_by_key(|c| c.dc);
        eligible.dedup_by_key(|c| c.dc);
        let chain: Vec<DcId> = d.primaries.iter().chain(d.fallbacks.iter()).copied().collect();
        prop_assert_eq!(chain.len(), eligible.len());
        let bucket_of = |dc: DcId| bucket(eligible.iter().find(|c| c.dc == dc).unwrap());
        let best = eligible.iter().map(|c| bucket(c)).min();
        for p in &d.primaries {
            prop_assert_eq!(Some(bucket_of(*p)), best);
        }
        for w in chain.windows(2) {
            prop_assert!(bucket_of(w[0]) <= bucket_of(w[1]), "{:?}", chain);
        }
        let mut seen = chain.clone();
        seen.sort();
        seen.dedup();
        prop_assert_eq!(seen.len(), chain.len());
        let cfg = RoutingConfig::default();
        for c in &eligible {
            let l = load_factor(&cfg, c);
            prop_assert!((1.0..=5.0).contains(&l));
            let q = quality_penalty(&cfg, c.quality);
            prop_assert!((1.0..=2.0).contains(&q));
            let u = rtt_ucb(&cfg, c);
            prop_assert!((1.0..=10_000.0).contains(&u));
        }
    }

    /// routing.md §14.3, 4: over any sequence of calls, a job's primary changes inside the
    /// 30 s hold-down only for a forced reason, and a voluntary switch needs a score under
    /// 0.8x the current one.
    #[test]
    fn no_switch_inside_hold_down_unless_forced(
        rounds in proptest::collection::vec((proptest::collection::vec(arb_candidate(), 1..5), 0u64..20), 1..40),
    ) {
        let mut r = Router::new(RoutingConfig::default());
        let mut now = Instant::ZERO;
        for (cands, dt) in rounds {
            now = now + secs(dt);
            let before = r.state(J).cloned();
            let d = r.route(J, &cands, &[], 1, true, now);
            if let (Some((from, to)), Some(prev)) = (d.switched, before) {
                prop_assert_eq!(prev.primary, Some(from));
                if !d.reason.forced() {
                    prop_assert_eq!(d.reason, RouteReason::ImprovementThresholdMet);
                    prop_assert!(now.saturating_since(prev.selected_at) >= secs(30));
                    let score = |dc: DcId| d.scores.iter().find(|(x, _)| *x == dc).map(|(_, s)| *s);
                    let (new, cur) = (score(to).unwrap(), score(from).unwrap());
                    prop_assert!(new < 0.8 * cur, "{} vs {}", new, cur);
                }
            }
        }
    }
}
